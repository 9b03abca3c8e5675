"""Non-Cartesian 2D examples synthesised from magnitude volumes (data.synthesized_noncartesian_dataset)
and the recipe path that trains on them (check_synthesis, training_data, fastmri-zoo train)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastmri_zoo import cli
from fastmri_zoo.data import (
    NonCartesianPreprocessor,
    Synthesis,
    load_volumes,
    noncartesian_dataset,
    synthesized_noncartesian_dataset,
    write_fastmri_h5,
)
from fastmri_zoo.data.synthesis import SliceSynthesizer
from fastmri_zoo.sampling import radial_trajectory, spiral_trajectory
from fastmri_zoo.training import check_acquisition, load_recipe
from fastmri_zoo.training.fit import check_synthesis, training_data
from tests.data.test_pipelines import examples
from tests.models.conftest import np_fftc

SIZE = (16, 16)
TRAJECTORIES = {"radial": radial_trajectory, "spiral": spiral_trajectory}


def ndft(images, traj):
    """Orthonormal non-uniform DFT, directly: images (..., H, W), traj (2, nsamples) in radians per
    pixel along (H, W), pixel (H // 2, W // 2) the origin. Returns (..., nsamples)."""
    height, width = images.shape[-2:]
    rows, cols = np.arange(height) - height // 2, np.arange(width) - width // 2
    phases = np.exp(-1j * (traj[0][:, None, None] * rows[:, None] + traj[1][:, None, None] * cols[None, :]))
    return np.einsum("...hw,shw->...s", images.astype(np.complex128), phases) / np.sqrt(height * width)


def ndft_adjoint(kspace, traj, shape):
    """The adjoint of :func:`ndft`: kspace (..., nsamples) -> (..., H, W)."""
    height, width = shape
    rows, cols = np.arange(height) - height // 2, np.arange(width) - width // 2
    phases = np.exp(1j * (traj[0][:, None, None] * rows[:, None] + traj[1][:, None, None] * cols[None, :]))
    return np.einsum("...s,shw->...hw", kspace.astype(np.complex128), phases) / np.sqrt(height * width)


def blobs(shape, seed):
    """Smooth blobs on a background, float32 (D, H, W): slices with structure, no symmetry."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    volume = 0.2 * (sum((g / 0.9) ** 2 for g in grids) < 1)
    for _ in range(4):
        centre = rng.uniform(-0.4, 0.4, 3)
        volume = volume + rng.uniform(0.5, 1.0) * np.exp(-sum((g - c) ** 2 for g, c in zip(grids, centre)) / 0.1)
    return volume.astype(np.float32)


@pytest.fixture(scope="module")
def volumes_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("volumes")
    for i in range(2):
        np.save(folder / f"v{i}.npy", blobs((12, 16, 14), seed=i))
    return folder


@pytest.mark.parametrize("trajectory,multicoil", [("radial", True), ("spiral", False)])
def test_kspace_is_the_nufft_of_the_synthesised_coil_images(volumes_folder, trajectory, multicoil):
    coils = 3 if multicoil else 1
    options = Synthesis(size=SIZE, coils=coils, snr_db=(30, 30), noise_probability=1.0, min_signal=0.0,
                        val_examples=3)
    dataset = synthesized_noncartesian_dataset(volumes_folder, options, trajectory, acceleration=2,
                                               multicoil=multicoil, seed=7, batch_size=2)
    traj = TRAJECTORIES[trajectory](SIZE[1], 2).reshape(2, -1)
    nsamples = traj.shape[-1]
    spec_inputs, spec_target = dataset.element_spec
    assert spec_inputs["kspace"].shape.as_list() == ([None, coils, nsamples] if multicoil else [None, nsamples])
    assert spec_target.shape.as_list() == [None, *SIZE]
    assert ("smaps" in spec_inputs) == multicoil
    data = examples(dataset)
    assert len(data) == 3  # val_examples, the last batch kept

    synthesizer = SliceSynthesizer(load_volumes(volumes_folder), options)
    for index, (inputs, target) in enumerate(data):
        # Example i is the slice drawn from (seed, i), not augmented; its noise included.
        coil_images, reference = synthesizer.draw(np.random.default_rng((7, index)), augment=False)
        np.testing.assert_array_equal(inputs["traj"], traj)
        expected = ndft(coil_images, traj)
        kspace = inputs["kspace"] if multicoil else inputs["kspace"][None]
        error = np.linalg.norm(kspace * inputs["scale"] - expected) / np.linalg.norm(expected)
        assert error < 1e-4
        np.testing.assert_allclose(target * inputs["scale"], reference, rtol=1e-6)
        # The scale: the density-compensated adjoint of the normalised k-space (RSS over coils) peaks at 1.
        adjoint = ndft_adjoint(kspace * inputs["dcomp"], traj, SIZE)
        assert np.sqrt((np.abs(adjoint) ** 2).sum(0)).max() == pytest.approx(1.0, abs=1e-4)
        if multicoil:
            # Maps estimated from the centre of k-space: normalised, and combining the coil images
            # with them gives about their RSS.
            rss = np.sqrt((np.abs(coil_images) ** 2).sum(0))
            inside = reference > 0.3
            np.testing.assert_allclose((np.abs(inputs["smaps"]) ** 2).sum(0)[inside], 1.0, atol=1e-5)
            combined = np.abs((np.conj(inputs["smaps"]) * coil_images).sum(0))
            assert np.median(np.abs(combined[inside] / rss[inside] - 1)) < 0.1


@pytest.mark.parametrize("multicoil", [False, True])
def test_examples_equal_those_of_noncartesian_dataset_on_the_same_slice(volumes_folder, tmp_path, multicoil):
    """The same slice written as a fastMRI file gives the same example through noncartesian_dataset:
    one trajectory, density, normalisation and coil-map estimate."""
    options = Synthesis(size=SIZE, coils=4 if multicoil else 1, min_signal=0.0, val_examples=1)
    settings = dict(trajectory="radial", acceleration=2, multicoil=multicoil, golden_angle=True, oversampling=1.5,
                    dcomp_iterations=6)
    dataset = synthesized_noncartesian_dataset(volumes_folder, options, seed=0, **settings)
    (synthesised, target), = examples(dataset)
    assert dataset.preprocessor == NonCartesianPreprocessor(multicoil=multicoil, ndim=2, image_shape=SIZE,
                                                            dcomp_iterations=6)
    coil_images, reference = SliceSynthesizer(load_volumes(volumes_folder), options).draw(
        np.random.default_rng((0, 0)), augment=False)
    kspace = np_fftc(coil_images) if multicoil else np_fftc(coil_images[0])
    write_fastmri_h5(tmp_path / "slice.h5", kspace[None].astype(np.complex64), reference[None])
    (from_file, file_target), = examples(noncartesian_dataset(tmp_path, **settings))
    assert set(from_file) == set(synthesised)
    for key in synthesised:
        np.testing.assert_allclose(synthesised[key], from_file[key], rtol=1e-4,
                                   atol=1e-5 * np.abs(from_file[key]).max())
    np.testing.assert_allclose(target, file_target, rtol=1e-4)
    # normalize=False: scale 1, k-space in the units of the synthesised images (peak 1).
    (raw, raw_target), = examples(synthesized_noncartesian_dataset(volumes_folder, options, seed=0, normalize=False,
                                                                   **settings))
    assert raw["scale"] == 1.0
    np.testing.assert_allclose(raw["kspace"], synthesised["kspace"] * synthesised["scale"], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(raw_target, reference)


def test_validation_is_reproducible_and_training_is_fresh_and_augmented(volumes_folder, monkeypatch):
    augmented = []
    draw = SliceSynthesizer.draw
    monkeypatch.setattr(SliceSynthesizer, "draw",
                        lambda self, rng, augment=True: augmented.append(augment) or draw(self, rng, augment))
    options = Synthesis(size=SIZE, zoom=(0.8, 1.25), min_signal=0.0, val_examples=4)

    def validation(seed, **kwargs):
        return examples(synthesized_noncartesian_dataset(volumes_folder, options, "spiral", seed=seed, batch_size=3,
                                                         **kwargs))

    first, again, other = validation(5), validation(5), validation(6)
    assert len(first) == 4 and not any(augmented)
    for (a, ta), (b, tb) in zip(first, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_array_equal(ta, tb)
    assert not np.array_equal(first[0][1], other[0][1])
    (single, single_target), = validation(5, num_examples=1)
    np.testing.assert_array_equal(single_target, first[0][1])  # example i depends on (seed, i) only

    augmented.clear()
    train = synthesized_noncartesian_dataset(volumes_folder, options, "spiral", batch_size=2)
    assert train.element_spec[1].shape.as_list() == [2, *SIZE]  # endless: full batches
    batches = [target.numpy() for _, target in train.take(3)]
    restarted = [target.numpy() for _, target in train.take(1)]
    assert augmented and all(augmented)
    assert not np.array_equal(batches[0], batches[1]) and not np.array_equal(batches[0], restarted[0])
    assert not np.array_equal(batches[0][0], batches[0][1])


def test_coil_counts_are_checked(volumes_folder):
    with pytest.raises(ValueError, match="synthesis.coils: a multicoil acquisition needs at least 2 coils, got 1"):
        synthesized_noncartesian_dataset(volumes_folder, Synthesis(size=SIZE), multicoil=True)
    with pytest.raises(ValueError, match="synthesis.coils: a single-coil acquisition has 1 coil, got 4"):
        synthesized_noncartesian_dataset(volumes_folder, {"size": [16, 16], "coils": 4}, multicoil=False)
    with pytest.raises(ValueError, match="trajectory: expected 'radial' or 'spiral', got 'rosette'"):
        synthesized_noncartesian_dataset(volumes_folder, Synthesis(size=SIZE), "rosette")


def test_check_synthesis_takes_2d_noncartesian_acquisitions_only():
    radial = check_acquisition({"kind": "noncartesian", "ndim": 2, "multicoil": True, "trajectory": "radial",
                                "acceleration": 4})
    assert check_synthesis({"size": [32, 32], "coils": 8}, radial) == Synthesis(size=(32, 32), coils=8)
    with pytest.raises(ValueError, match=r"data.synthesis.coils: 1 coil\(s\) for a multicoil acquisition; "
                                         "expected at least 2"):
        check_synthesis({"coils": 1}, radial)
    spiral = check_acquisition({"kind": "noncartesian", "ndim": 2, "trajectory": "spiral", "acceleration": 4,
                                "image_shape": [24, 24]})
    with pytest.raises(ValueError, match=r"data.synthesis.coils: 8 coil\(s\) for a single-coil acquisition; "
                                         "expected 1"):
        check_synthesis({"size": [24, 24], "coils": 8}, spiral)
    assert check_synthesis({"size": [24, 24]}, spiral).size == (24, 24)
    with pytest.raises(ValueError, match=r"data.synthesis.size: \[32, 32\] but acquisition.image_shape is \[24, 24\]"):
        check_synthesis({"size": [32, 32]}, spiral)
    kooshball = check_acquisition({"kind": "noncartesian", "ndim": 3, "trajectory": "kooshball", "acceleration": 4})
    with pytest.raises(ValueError, match="data.synthesis: synthesis from volumes makes 2D slices; expected a "
                                         "Cartesian or a 2D non-Cartesian acquisition .ndim 2., got a 3D noncartesian"):
        check_synthesis({}, kooshball)


def _recipe(model: dict, **synthesis) -> dict:
    return {
        "name": "tiny-synthesised-radial",
        "model": model,
        "data": {"folder": "volumes", "train": "train", "val": "val",
                 "synthesis": {"size": list(SIZE), "coils": 3, "min_signal": 0.0, "zoom": [0.8, 1.25],
                               "snr_db": [20, 40], "val_examples": 2, **synthesis}},
        "acquisition": {"kind": "noncartesian", "ndim": 2, "multicoil": True, "trajectory": "radial",
                        "acceleration": 4},
        "training": {"steps": 2, "steps_per_epoch": 1, "batch_size": 2, "val_steps": 1, "seed": 0},
    }


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, volumes_folder):
    root = tmp_path_factory.mktemp("data_root")
    for part in ("train", "val"):
        (root / "volumes" / part).mkdir(parents=True)
        for path in volumes_folder.glob("*.npy"):
            (root / "volumes" / part / path.name).write_bytes(path.read_bytes())
    return root


def test_recipe_builds_synthesised_noncartesian_pipelines(data_root, tmp_path):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(_recipe({"class": "UNetAdjDcomp", "kwargs": {"multicoil": True}})))
    recipe = load_recipe(path)
    folders = recipe.data_folders(data_root)
    train, val = training_data(folders["train"], folders["val"], recipe.acquisition, batch_size=2,
                               synthesis=recipe.data["synthesis"])
    inputs, target = next(iter(train))
    assert inputs["kspace"].shape == (2, 3, 4 * 32) and inputs["smaps"].shape == (2, 3, *SIZE)  # 4 spokes of 32
    assert target.shape == (2, *SIZE)
    assert train.preprocessor == val.preprocessor == NonCartesianPreprocessor(multicoil=True, image_shape=SIZE)
    assert sum(y.shape[0] for _, y in val) == 2
    # A model built for another grid is refused before anything is built.
    path.write_text(json.dumps(_recipe({"class": "NCPDNet", "kwargs": {"multicoil": True, "image_shape": [32, 32]}})))
    with pytest.raises(ValueError, match=r"data.synthesis.size: \[16, 16\] but model.kwargs.image_shape is \[32, 32\]"):
        load_recipe(path)


@pytest.mark.slow  # a few NUFFT graphs to compile
@pytest.mark.parametrize("model", [
    {"class": "UNetAdjDcomp", "kwargs": {"multicoil": True, "layers_n_channels": [4, 8]}},
    {"class": "NCPDNet", "kwargs": {"multicoil": True, "n_iter": 2, "n_primal": 2, "n_filters": 4,
                                    "image_shape": list(SIZE)}},
])
def test_recipe_trains_through_the_cli(data_root, tmp_path, model):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(_recipe(model)))
    code = cli.main(["train", str(path), "--data", str(data_root), "--run-dir", str(tmp_path / "run"),
                     "-o", str(tmp_path / "preset"), "--verbose", "0"])
    assert code == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["optimizer_iterations"] == 2 and record["validation_batches"] == 1
    assert np.isfinite(record["validation_metrics"]["psnr"])
    preprocessor = json.loads((tmp_path / "preset" / "preprocessor.json").read_text())
    assert preprocessor["kind"] == "noncartesian" and preprocessor["image_shape"] == list(SIZE)
    assert preprocessor["multicoil"] is True
