"""NC-PDNet: the authors' Keras-2 files, converted, reproduce the original outputs (tfkbnufft, 1024 table points).

The goldens ran the published configurations with a reduced NUFFT grid
(``im_size`` (64, 64) in 2D, (16, 32, 32) in 3D; the weights do not depend on
it) on images smaller than that grid (64 x 48, 14 x 32 x 28), so the original
zero-padding inside the NUFFT is exercised.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastmri_zoo.legacy import from_keras2_h5, get_checkpoint
from tests.legacy.conftest import DATA, golden, relative_error

TOLERANCE = 1e-4

CASES = [
    # (fixture folder, registry name, NUFFT grid of the golden, Keras version that wrote the file)
    ("NCPDNet-singlecoil-radial", "ncpdnet-radial-singlecoil-fastmri", [64, 64], "2.15.0"),
    ("NCPDNet-singlecoil-radial/era_tf24", "ncpdnet-radial-singlecoil-fastmri", [64, 64], "2.4.0"),
    ("NCPDNet-multicoil-radial", "ncpdnet-radial-multicoil-fastmri", [64, 64], "2.15.0"),
    ("NCPDNet-multicoil-radial/era_tf24", "ncpdnet-radial-multicoil-fastmri", [64, 64], "2.4.0"),
    ("NCPDNet-3D", "ncpdnet-radial-3d-oasis", [16, 32, 32], "2.15.0"),
]


def noncartesian_inputs(arrays: dict, kspace_scale: float, grid: list[int]) -> dict:
    """Zoo inputs (physical units) of an NC-PDNet golden: k-space stored (batch, coils, K, 1) times the scale;
    ``shape`` is the image width (2D, the height is the grid's) or the volume shape (3D)."""
    inputs = {"traj": arrays["traj"], "dcomp": arrays["dcomp"]}
    kspace = arrays["kspace"][..., 0] / kspace_scale
    if "smaps" in arrays:
        inputs.update(kspace=kspace.astype(np.complex64), smaps=arrays["smaps"])
    else:
        inputs["kspace"] = kspace[:, 0].astype(np.complex64)
        shape = arrays["shape"]
        inputs["image_shape"] = tuple(int(n) for n in shape[0]) if len(grid) == 3 else (grid[0], int(shape[0]))
    return inputs


@pytest.mark.parametrize("folder, name, grid, keras_version", CASES, ids=[c[0] for c in CASES])
def test_ncpdnet_golden(folder, name, grid, keras_version):
    checkpoint = get_checkpoint(name).with_network(legacy_im_size=grid)
    model = from_keras2_h5(DATA / folder / "model_weights.h5", checkpoint)
    assert model.keras2_source["keras_version"] == keras_version
    arrays = golden(folder)
    output = np.abs(model(noncartesian_inputs(arrays, checkpoint.kspace_scale, grid)).numpy())
    expected = arrays["output"][..., 0]
    assert output.shape == expected.shape
    assert relative_error(output * checkpoint.kspace_scale, expected) < TOLERANCE


def test_the_original_nufft_table_matters():
    """With the zoo's default 2**14 kernel-table points instead of the original 1024, the output moves by more
    than the tolerance: the entries must keep the original operator."""
    folder, grid = "NCPDNet-singlecoil-radial", [64, 64]
    checkpoint = get_checkpoint("ncpdnet-radial-singlecoil-fastmri")
    assert checkpoint.network_kwargs["table_oversampling"] == 1024
    finer = checkpoint.with_network(legacy_im_size=grid, table_oversampling=2**14)
    model = from_keras2_h5(DATA / folder / "model_weights.h5", finer)
    arrays = golden(folder)
    output = np.abs(model(noncartesian_inputs(arrays, checkpoint.kspace_scale, grid)).numpy())
    assert relative_error(output * checkpoint.kspace_scale, arrays["output"][..., 0]) > TOLERANCE
