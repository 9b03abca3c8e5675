"""tf.data pipelines: shapes, dtypes, determinism, masks, normalisation, round trips."""

import os

import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.data.h5 import read_fastmri_h5, write_fastmri_h5
from fastmri_zoo.data.pipelines import cartesian_dataset, center_crop, list_h5_files
from fastmri_zoo.data.simulate import simulate_files
from fastmri_zoo.sampling import create_mask_func, slice_seed
from tests.conftest import crandn

H, W, SLICES, COILS = 24, 20, 3, 4


def np_ifftc(kspace):
    """Centred orthonormal 2D inverse FFT with numpy (independent of the package)."""
    shifted = np.fft.ifftshift(kspace, axes=(-2, -1))
    return np.fft.fftshift(np.fft.ifft2(shifted, norm="ortho"), axes=(-2, -1))


def phantom_volume(rng, slices=SLICES, height=H, width=W):
    """Smooth blobs, float32 (H, W, slices) as a NIfTI / numpy volume would be stored."""
    y, x = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    images = []
    for _ in range(slices):
        cy, cx = rng.uniform(-0.3, 0.3, 2)
        images.append(np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 0.3) + 0.2 * ((y / 0.8) ** 2 + (x / 0.7) ** 2 < 1))
    return np.stack(images, -1).astype(np.float32)


@pytest.fixture(scope="module")
def multicoil_folder(tmp_path_factory):
    rng = np.random.default_rng(1)
    folder = tmp_path_factory.mktemp("multicoil")
    simulate_files([phantom_volume(rng), phantom_volume(rng)], folder, coils=COILS, seed=2, progress=False)
    return str(folder)


@pytest.fixture(scope="module")
def singlecoil_folder(tmp_path_factory):
    rng = np.random.default_rng(3)
    folder = tmp_path_factory.mktemp("singlecoil")
    simulate_files([phantom_volume(rng)], folder, coils=1, seed=4, progress=False)
    return str(folder)


def full_mask(shape, seed=None):
    return np.ones((1, shape[-1]), np.float32), shape[-1]


def file_slices(folder):
    """(path, slice index) in the order of the pipelines without shuffling."""
    return [(p, s) for p in list_h5_files(folder) for s in range(read_fastmri_h5(p).num_slices)]


def examples(dataset):
    """The examples of a batched dataset, as numpy, without the batch axis."""
    return [({k: v.numpy() for k, v in inputs.items()}, target.numpy()) for inputs, target in dataset.unbatch()]


# ---------------------------------------------------------------------------- Cartesian


def test_cartesian_multicoil_shapes_dtypes_and_masks(multicoil_folder):
    dataset = cartesian_dataset(multicoil_folder, "random", [0.2], [4], multicoil=True, seed=5, batch_size=2)
    spec_inputs, spec_target = dataset.element_spec
    assert spec_inputs["kspace"].shape.as_list() == [None, COILS, H, W]
    assert spec_inputs["kspace"].dtype == tf.complex64
    assert spec_inputs["mask"].shape.as_list() == [None, 1, W]
    assert spec_inputs["smaps"].shape.as_list() == [None, COILS, H, W]
    assert spec_inputs["scale"].shape.as_list() == [None]
    assert spec_target.shape.as_list() == [None, H, W] and spec_target.dtype == tf.float32

    batches = list(dataset)
    assert [b[1].shape[0] for b in batches] == [2, 2, 2]
    flat = [(k, v) for inputs, target in batches for k, v in zip(
        range(2), zip(inputs["kspace"].numpy(), inputs["mask"].numpy(), inputs["scale"].numpy(), target.numpy()))]
    reference_mask_func = create_mask_func("random", [0.2], [4])
    for (path, slice_index), (_, (kspace, mask, scale, target)) in zip(file_slices(multicoil_folder), flat):
        volume = read_fastmri_h5(path, slices=[slice_index])
        expected_mask, _ = reference_mask_func(volume.kspace.shape[1:], seed=slice_seed(os.path.basename(path), slice_index, 5))
        np.testing.assert_array_equal(mask, expected_mask)
        assert 0 < mask.mean() < 0.5
        np.testing.assert_allclose(kspace * scale, volume.kspace[0] * expected_mask, atol=1e-6)
        np.testing.assert_allclose(target * scale, volume.reference[0], atol=1e-6)
        # scale = max of the zero-filled RSS, so the normalised zero-filled image peaks at 1.
        zero_filled = np.sqrt((np.abs(np_ifftc(kspace)) ** 2).sum(0))
        assert zero_filled.max() == pytest.approx(1.0, abs=1e-5)


def test_cartesian_fully_sampled_gives_back_reference(multicoil_folder, singlecoil_folder):
    for inputs, target in examples(cartesian_dataset(multicoil_folder, full_mask, multicoil=True)):
        coil_images = np_ifftc(inputs["kspace"])
        np.testing.assert_allclose(np.sqrt((np.abs(coil_images) ** 2).sum(0)), target, atol=1e-5)
        # SENSE adjoint with the estimated maps (from the fully sampled k-space) is the RSS too.
        sense = (np.conj(inputs["smaps"]) * coil_images).sum(0)
        np.testing.assert_allclose(np.abs(sense), target, atol=1e-5)
        assert np.abs(sense.imag).max() < 1e-5
        assert target.max() == pytest.approx(1.0, abs=1e-5)
    for inputs, target in examples(cartesian_dataset(singlecoil_folder, full_mask, multicoil=False)):
        assert inputs["kspace"].shape == (H, W) and "smaps" not in inputs
        np.testing.assert_allclose(np.abs(np_ifftc(inputs["kspace"])), target, atol=1e-5)


def test_cartesian_emulated_single_coil_from_multicoil(multicoil_folder):
    data = examples(cartesian_dataset(multicoil_folder, full_mask, multicoil=False, normalize=False))
    for (path, slice_index), (inputs, target) in zip(file_slices(multicoil_folder), data):
        reference = read_fastmri_h5(path, slices=[slice_index]).reference
        assert inputs["kspace"].shape == (H, W)
        assert inputs["scale"] == pytest.approx(1.0)
        np.testing.assert_allclose(np.abs(np_ifftc(inputs["kspace"])), reference[0], atol=1e-5)
        np.testing.assert_allclose(target, reference[0], atol=0)


def test_cartesian_determinism_and_seeds(multicoil_folder):
    def masks(**kwargs):
        dataset = cartesian_dataset(multicoil_folder, "equispaced_fraction", [0.1], [4], multicoil=True, **kwargs)
        return [(inputs["mask"], inputs["scale"], target) for inputs, target in examples(dataset)]

    first, second = masks(seed=1), masks(seed=1)
    for a, b in zip(first, second):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    other = masks(seed=2)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))
    # Shuffling is seeded and keeps each slice's mask (the mask depends on the slice, not the order).
    shuffled = masks(seed=1, shuffle=True)
    assert [s[1] for s in shuffled] == [s[1] for s in masks(seed=1, shuffle=True)]
    assert sorted(s[1].item() for s in shuffled) == sorted(s[1].item() for s in first)
    by_scale = {s[1].item(): s[0] for s in first}
    for mask, scale, _ in shuffled:
        np.testing.assert_array_equal(mask, by_scale[scale.item()])


def test_cartesian_reference_smaller_than_kspace(tmp_path, rng):
    kspace = crandn(rng, (2, 3, 16, 12))
    rss = np.sqrt((np.abs(np_ifftc(kspace)) ** 2).sum(1))
    reference = center_crop(rss, (8, 6)).astype(np.float32)
    write_fastmri_h5(tmp_path / "cropped.h5", kspace, reference)
    dataset = cartesian_dataset(tmp_path, full_mask, multicoil=True, batch_size=2)
    inputs, target = next(iter(dataset))
    assert inputs["kspace"].shape == (2, 3, 16, 12) and target.shape == (2, 8, 6)
    scale = inputs["scale"].numpy()[:, None, None]
    output = np.sqrt((np.abs(np_ifftc(inputs["kspace"].numpy())) ** 2).sum(1))
    np.testing.assert_allclose(center_crop(output, target.shape[1:]) * scale, reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(target.numpy() * scale, reference, rtol=1e-6)


def test_cartesian_without_reference_uses_rss(tmp_path, rng):
    kspace = crandn(rng, (1, 2, 8, 8))
    write_fastmri_h5(tmp_path / "noref.h5", kspace)
    (inputs, target), = examples(cartesian_dataset(tmp_path, full_mask, multicoil=True, normalize=False))
    np.testing.assert_allclose(target, np.sqrt((np.abs(np_ifftc(kspace[0])) ** 2).sum(0)), rtol=1e-5)


def test_cartesian_bad_input(tmp_path, singlecoil_folder):
    with pytest.raises(ValueError, match="multicoil=True needs multicoil k-space"):
        cartesian_dataset(singlecoil_folder, "random", [0.08], [4], multicoil=True)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        cartesian_dataset(tmp_path / "absent", "random", [0.08], [4], multicoil=True)
    with pytest.raises(ValueError, match="found none"):
        cartesian_dataset(tmp_path, "random", [0.08], [4], multicoil=True)
    with pytest.raises(ValueError, match="mask_type: expected one of"):
        cartesian_dataset(singlecoil_folder, "spiral", [0.08], [4], multicoil=False)
    with pytest.raises(ValueError, match="batch_size: expected a positive integer"):
        cartesian_dataset(singlecoil_folder, "random", [0.08], [4], multicoil=False, batch_size=0)


def test_center_crop():
    x = np.arange(5 * 6).reshape(5, 6)
    np.testing.assert_array_equal(center_crop(x, (3, 2)), x[1:4, 2:4])
    np.testing.assert_array_equal(center_crop(tf.constant(x), (2, 3)).numpy(), x[1:3, 1:4])
    with pytest.raises(ValueError, match="expected crop sizes"):
        center_crop(x, (6, 2))


# ---------------------------------------------------------------------------- non-Cartesian


def finufft_forward(images, traj):
    """Orthonormal type-2 NUFFT with finufft: images (batch, *shape), traj (ndim, nsamples)."""
    import finufft

    shape = images.shape[1:]
    traj = traj.astype(np.float64)
    transform = {2: finufft.nufft2d2, 3: finufft.nufft3d2}[len(shape)]
    out = [transform(*traj, image.astype(np.complex128), isign=-1, eps=1e-9) for image in images]
    return np.stack(out) / np.sqrt(np.prod(shape))


def finufft_adjoint(kspace, traj, shape):
    """Orthonormal type-1 NUFFT (adjoint) with finufft: kspace (batch, nsamples)."""
    import finufft

    traj = traj.astype(np.float64)
    transform = {2: finufft.nufft2d1, 3: finufft.nufft3d1}[len(shape)]
    out = [transform(*traj, y.astype(np.complex128), tuple(shape), isign=1, eps=1e-9) for y in kspace]
    return np.stack(out) / np.sqrt(np.prod(shape))


@pytest.mark.parametrize("trajectory", ["radial", "spiral"])
def test_noncartesian_multicoil_matches_finufft(multicoil_folder, trajectory):
    from fastmri_zoo.data.pipelines import noncartesian_dataset
    from fastmri_zoo.sampling import radial_trajectory, spiral_trajectory

    dataset = noncartesian_dataset(multicoil_folder, trajectory, acceleration=2, multicoil=True, batch_size=2)
    expected_traj = {"radial": radial_trajectory, "spiral": spiral_trajectory}[trajectory](W, 2).reshape(2, -1)
    nsamples = expected_traj.shape[-1]
    spec_inputs, spec_target = dataset.element_spec
    assert spec_inputs["kspace"].shape.as_list() == [None, COILS, nsamples]
    assert spec_inputs["traj"].shape.as_list() == [None, 2, nsamples]
    assert spec_inputs["dcomp"].shape.as_list() == [None, nsamples]
    assert spec_inputs["smaps"].shape.as_list() == [None, COILS, H, W]
    assert spec_target.shape.as_list() == [None, H, W]
    assert {k: v.dtype for k, v in spec_inputs.items()} == {
        "kspace": tf.complex64, "traj": tf.float32, "dcomp": tf.float32, "smaps": tf.complex64, "scale": tf.float32}

    data = examples(dataset)
    assert len(data) == 2 * SLICES
    for (path, slice_index), (inputs, target) in zip(file_slices(multicoil_folder), data):
        volume = read_fastmri_h5(path, slices=[slice_index])
        coil_images = np_ifftc(volume.kspace[0])
        np.testing.assert_array_equal(inputs["traj"], expected_traj)
        assert np.all(inputs["dcomp"] > 0) and np.all(np.isfinite(inputs["dcomp"]))
        reference_kspace = finufft_forward(coil_images, expected_traj)
        error = np.linalg.norm(inputs["kspace"] * inputs["scale"] - reference_kspace) / np.linalg.norm(reference_kspace)
        assert error < 1e-3
        np.testing.assert_allclose(target * inputs["scale"], volume.reference[0], rtol=1e-6)
        # scale: the density-compensated adjoint (RSS over coils) of the normalised k-space peaks at 1.
        adjoint = finufft_adjoint(inputs["kspace"] * inputs["dcomp"], expected_traj, (H, W))
        assert np.sqrt((np.abs(adjoint) ** 2).sum(0)).max() == pytest.approx(1.0, abs=1e-3)
        # Estimated maps: normalised, and combining the true coil images with them gives the RSS.
        rss = np.sqrt((np.abs(coil_images) ** 2).sum(0))
        inside = rss > 0.3 * rss.max()
        np.testing.assert_allclose((np.abs(inputs["smaps"]) ** 2).sum(0)[inside], 1.0, atol=1e-5)
        combined = np.abs((np.conj(inputs["smaps"]) * coil_images).sum(0))
        assert np.abs(combined[inside] / rss[inside] - 1).max() < 0.15


def test_noncartesian_single_coil_and_determinism(multicoil_folder, singlecoil_folder):
    from fastmri_zoo.data.pipelines import noncartesian_dataset

    first = examples(noncartesian_dataset(singlecoil_folder, "radial", 3, multicoil=False, golden_angle=True))
    second = examples(noncartesian_dataset(singlecoil_folder, "radial", 3, multicoil=False, golden_angle=True))
    for (a, ta), (b, tb) in zip(first, second):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_array_equal(ta, tb)
    (path, slice_index), (inputs, target) = file_slices(singlecoil_folder)[1], first[1]
    volume = read_fastmri_h5(path, slices=[slice_index])
    assert inputs["kspace"].ndim == 1 and "smaps" not in inputs
    reference_kspace = finufft_forward(np_ifftc(volume.kspace), inputs["traj"])[0]
    assert np.linalg.norm(inputs["kspace"] * inputs["scale"] - reference_kspace) < 1e-3 * np.linalg.norm(reference_kspace)
    # A multicoil file read single-coil: the NUFFT of the RSS image.
    (path, slice_index), (inputs, target) = file_slices(multicoil_folder)[0], examples(
        noncartesian_dataset(multicoil_folder, "spiral", 2, multicoil=False, normalize=False).take(1))[0]
    volume = read_fastmri_h5(path, slices=[slice_index])
    assert inputs["scale"] == 1.0
    rss_image = np.sqrt((np.abs(np_ifftc(volume.kspace[0])) ** 2).sum(0))
    reference_kspace = finufft_forward(rss_image[None], inputs["traj"])[0]
    assert np.linalg.norm(inputs["kspace"] - reference_kspace) < 1e-3 * np.linalg.norm(reference_kspace)
    np.testing.assert_array_equal(target, volume.reference[0])


def test_noncartesian_crops_to_reference_and_checks_sizes(tmp_path, rng):
    from fastmri_zoo.data.pipelines import noncartesian_dataset

    kspace = crandn(rng, (2, 2, 16, 12))
    rss = np.sqrt((np.abs(np_ifftc(kspace)) ** 2).sum(1))
    write_fastmri_h5(tmp_path / "a.h5", kspace, center_crop(rss, (10, 10)).astype(np.float32))
    (inputs, target), _ = examples(noncartesian_dataset(tmp_path, "radial", 2, multicoil=True, normalize=False))
    assert target.shape == (10, 10) and inputs["smaps"].shape == (2, 10, 10)
    reference_kspace = finufft_forward(center_crop(np_ifftc(kspace[0]), (10, 10)), inputs["traj"])
    assert np.linalg.norm(inputs["kspace"] - reference_kspace) < 1e-3 * np.linalg.norm(reference_kspace)
    write_fastmri_h5(tmp_path / "b.h5", kspace, center_crop(rss, (8, 8)).astype(np.float32))
    with pytest.raises(ValueError, match=r"image_shape: the files have different reference sizes \[\(8, 8\), \(10, 10\)\]"):
        noncartesian_dataset(tmp_path, "radial", 2, multicoil=True)
    assert examples(noncartesian_dataset(tmp_path, "radial", 2, True, image_shape=(8, 8)))[0][1].shape == (8, 8)
    with pytest.raises(ValueError, match=r"image_shape: \(20, 8\) is larger than the k-space grid"):
        noncartesian_dataset(tmp_path, "radial", 2, True, image_shape=(20, 8))
    with pytest.raises(ValueError, match="trajectory: expected 'radial' or 'spiral', got 'rosette'"):
        noncartesian_dataset(tmp_path, "rosette", 2, True, image_shape=(8, 8))


@pytest.mark.parametrize("multicoil", [False, True])
def test_noncartesian_3d_volumes(multicoil_folder, multicoil):
    from fastmri_zoo.data.pipelines import noncartesian_3d_dataset
    from fastmri_zoo.sampling import kooshball_trajectory

    dataset = noncartesian_3d_dataset(multicoil_folder, acceleration=4, multicoil=multicoil)
    traj = kooshball_trajectory((SLICES, H, W), 4).reshape(3, -1)
    spec_inputs, spec_target = dataset.element_spec
    kspace_shape = [None, COILS, traj.shape[-1]] if multicoil else [None, traj.shape[-1]]
    assert spec_inputs["kspace"].shape.as_list() == kspace_shape
    assert spec_target.shape.as_list() == [None, SLICES, H, W]
    data = examples(dataset)
    assert len(data) == 2
    for path, (inputs, target) in zip(list_h5_files(multicoil_folder), data):
        volume = read_fastmri_h5(path)
        coil_volume = np.moveaxis(np_ifftc(volume.kspace), 0, 1)  # (coils, slices, H, W)
        if not multicoil:
            coil_volume = np.sqrt((np.abs(coil_volume) ** 2).sum(0, keepdims=True))
        np.testing.assert_array_equal(inputs["traj"], traj)
        reference_kspace = finufft_forward(coil_volume, traj)
        if not multicoil:
            reference_kspace = reference_kspace[0]
        error = np.linalg.norm(inputs["kspace"] * inputs["scale"] - reference_kspace) / np.linalg.norm(reference_kspace)
        assert error < 1e-3
        np.testing.assert_allclose(target * inputs["scale"], volume.reference, rtol=1e-6)
        coil_kspace = inputs["kspace"] if multicoil else inputs["kspace"][None]
        adjoint = finufft_adjoint(coil_kspace * inputs["dcomp"], traj, (SLICES, H, W))
        assert np.sqrt((np.abs(adjoint) ** 2).sum(0)).max() == pytest.approx(1.0, abs=1e-3)
        if multicoil:
            assert inputs["smaps"].shape == (COILS, SLICES, H, W)


def test_noncartesian_density_is_computed_once_per_trajectory(singlecoil_folder, monkeypatch):
    """A data set built again for the same trajectory reuses its Pipe-Menon weights; another one does not."""
    from fastmri_zoo.data import pipelines, preprocessing
    from fastmri_zoo.utils import LRUCache

    calls = []
    original = preprocessing.pipe_menon_density
    monkeypatch.setattr(preprocessing, "pipe_menon_density", lambda *a, **k: calls.append(a) or original(*a, **k))
    monkeypatch.setattr(preprocessing, "DENSITY_CACHE", LRUCache(maxsize=4))
    first = examples(pipelines.noncartesian_dataset(singlecoil_folder, "radial", 3).take(1))[0][0]
    again = examples(pipelines.noncartesian_dataset(singlecoil_folder, "radial", 3).take(1))[0][0]
    assert len(calls) == 1
    np.testing.assert_array_equal(again["dcomp"], first["dcomp"])
    expected = original(first["traj"], (H, W)).numpy()
    np.testing.assert_allclose(first["dcomp"], expected, rtol=1e-6)
    examples(pipelines.noncartesian_dataset(singlecoil_folder, "radial", 2).take(1))
    assert len(calls) == 2
