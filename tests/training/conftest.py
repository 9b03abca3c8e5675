"""Simulated fastMRI-layout folders for the training tests (32 x 32 phantoms)."""

import numpy as np
import pytest

from fastmri_zoo.data.simulate import simulate_files

SIZE = 32


def phantoms(rng, slices, size=SIZE):
    """Sums of a few discs of random position, radius and intensity: (slices, size, size)."""
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    images = np.zeros((slices, size, size))
    for image in images:
        for _ in range(4):
            cx, cy = rng.uniform(-0.5, 0.5, 2)
            radius = rng.uniform(0.15, 0.4)
            image += rng.uniform(0.3, 1.0) * (((xx - cx) ** 2 + (yy - cy) ** 2) < radius**2)
    return images


def write_folder(folder, rng, volumes, slices, coils):
    simulate_files([phantoms(rng, slices) for _ in range(volumes)], folder, coils=coils, seed=0,
                   progress=False, slice_axis=0)
    return folder


@pytest.fixture(scope="session")
def singlecoil_data(tmp_path_factory):
    """A folder with train/ (2 volumes x 4 slices) and val/ (1 volume x 2 slices), single-coil."""
    root = tmp_path_factory.mktemp("singlecoil")
    rng = np.random.default_rng(1)
    write_folder(root / "train", rng, 2, 4, coils=1)
    write_folder(root / "val", rng, 1, 2, coils=1)
    return root


@pytest.fixture(scope="session")
def recipe_data_root(tmp_path_factory):
    """A tiny data root in the layout of scripts/prepare_ixi.py: singlecoil/ and multicoil/ (4 coils)
    with train/ (2 volumes x 3 slices) and val/ (1 x 2), volumes/ (whole 8-slice volumes), and
    magnitude/ (8 x 32 x 32 magnitude volumes, .npy) for the recipes that synthesise examples."""
    root = tmp_path_factory.mktemp("data_root")
    rng = np.random.default_rng(2)
    for folder, coils in (("singlecoil", 1), ("multicoil", 4)):
        write_folder(root / folder / "train", rng, 2, 3, coils=coils)
        write_folder(root / folder / "val", rng, 1, 2, coils=coils)
    write_folder(root / "volumes" / "train", rng, 1, VOLUME_SLICES, coils=1)
    write_folder(root / "volumes" / "val", rng, 1, VOLUME_SLICES, coils=1)
    for part, count in (("train", 2), ("val", 1)):  # magnitude volumes of the synthesis recipes
        (root / "magnitude" / part).mkdir(parents=True)
        for index in range(count):
            np.save(root / "magnitude" / part / f"volume{index}.npy", phantoms(rng, VOLUME_SLICES))
    return root


VOLUME_SLICES = 8
