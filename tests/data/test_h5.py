"""fastMRI-layout HDF5 files: round trips, atomic writes, validation messages."""

import os

import h5py
import numpy as np
import pytest

from fastmri_zoo.data.h5 import read_fastmri_h5, validate_fastmri_h5, write_fastmri_h5
from tests.conftest import crandn


@pytest.fixture
def multicoil(rng):
    kspace = crandn(rng, (3, 4, 10, 8))
    reference = rng.random((3, 6, 6)).astype(np.float32)
    return kspace, reference


def _raw_file(path, **datasets):
    """Write datasets (and attrs under key 'attrs') with h5py directly, bypassing checks."""
    attrs = datasets.pop("attrs", {})
    with h5py.File(path, "w") as handle:
        for name, value in datasets.items():
            handle.create_dataset(name, data=value)
        for name, value in attrs.items():
            handle.attrs[name] = value
    return str(path)


def test_cartesian_round_trip(tmp_path, multicoil):
    kspace, reference = multicoil
    mask = np.array([0, 1, 0, 1, 1, 0, 1, 0], np.float32)
    path = write_fastmri_h5(
        tmp_path / "vol.h5", kspace, reference, acquisition="CORPD_FBK", mask=mask,
        ismrmrd_header="<ismrmrdHeader/>", extra={"patient_id": "p1", "acceleration": 4},
    )
    volume = read_fastmri_h5(path)
    np.testing.assert_array_equal(volume.kspace, kspace)
    assert volume.kspace.dtype == np.complex64
    np.testing.assert_array_equal(volume.reference, reference)
    assert volume.reference.dtype == np.float32
    assert volume.reference_key == "reconstruction_rss"
    np.testing.assert_array_equal(volume.mask, mask)
    assert volume.ismrmrd_header == "<ismrmrdHeader/>"
    assert volume.attrs["acquisition"] == "CORPD_FBK"
    assert volume.attrs["patient_id"] == "p1" and volume.attrs["acceleration"] == 4
    assert volume.attrs["max"] == pytest.approx(float(reference.max()))
    assert volume.attrs["norm"] == pytest.approx(float(np.sqrt((reference.astype(np.float64) ** 2).sum())), rel=1e-6)
    assert volume.multicoil and not volume.noncartesian and volume.num_slices == 3
    # Independent reader: h5py sees the fastMRI keys.
    with h5py.File(path, "r") as handle:
        assert set(handle.keys()) == {"kspace", "reconstruction_rss", "mask", "ismrmrd_header"}
        np.testing.assert_array_equal(handle["kspace"][()], kspace)


def test_single_coil_esc_and_slice_selection(tmp_path, rng):
    kspace = crandn(rng, (5, 6, 4))
    esc = rng.random((5, 6, 4)).astype(np.float32)
    path = write_fastmri_h5(tmp_path / "sc.h5", kspace, reconstruction_esc=esc)
    volume = read_fastmri_h5(path, slices=[4, 1, 1])
    assert not volume.multicoil
    assert volume.reference_key == "reconstruction_esc"
    np.testing.assert_array_equal(volume.kspace, kspace[[4, 1, 1]])
    np.testing.assert_array_equal(volume.reference, esc[[4, 1, 1]])
    assert volume.slice_indices == (4, 1, 1)
    single = read_fastmri_h5(path, slices=-1)
    np.testing.assert_array_equal(single.kspace, kspace[4:5])
    ranged = read_fastmri_h5(path, slices=slice(1, 5, 2))
    np.testing.assert_array_equal(ranged.kspace, kspace[1:5:2])
    with pytest.raises(ValueError, match="slices: index 7 is out of range for a file with 5 slices"):
        read_fastmri_h5(path, slices=[7])


def test_noncartesian_round_trip_shared_and_per_slice_trajectory(tmp_path, rng):
    nsamples = 50
    kspace = crandn(rng, (2, 3, nsamples))
    traj = rng.uniform(-np.pi, np.pi, (2, nsamples)).astype(np.float32)
    dcomp = rng.random(nsamples).astype(np.float32)
    reference = rng.random((2, 8, 8)).astype(np.float32)
    path = write_fastmri_h5(tmp_path / "nc.h5", kspace, reference, trajectory=traj, dcomp=dcomp,
                            image_shape=(8, 8), acquisition="radial")
    volume = read_fastmri_h5(path, slices=1)
    assert volume.noncartesian and volume.multicoil
    np.testing.assert_array_equal(volume.kspace, kspace[1:2])
    np.testing.assert_array_equal(volume.trajectory, traj)
    np.testing.assert_array_equal(volume.dcomp, dcomp)
    assert volume.image_shape == (8, 8)
    assert "image_shape" not in volume.attrs
    assert validate_fastmri_h5(path)["layout"] == "noncartesian"

    per_slice = rng.uniform(-np.pi, np.pi, (2, 3, nsamples)).astype(np.float32)
    per_dcomp = rng.random((2, nsamples)).astype(np.float32)
    path3 = write_fastmri_h5(tmp_path / "nc3.h5", kspace[:, 0], trajectory=per_slice, dcomp=per_dcomp,
                             image_shape=(4, 8, 8))
    volume = read_fastmri_h5(path3, slices=[1])
    assert not volume.multicoil
    np.testing.assert_array_equal(volume.trajectory, per_slice[1:2])
    np.testing.assert_array_equal(volume.dcomp, per_dcomp[1:2])
    assert volume.image_shape == (4, 8, 8)


def test_write_rejects_bad_input(tmp_path, rng):
    with pytest.raises(ValueError, match="kspace: expected complex values"):
        write_fastmri_h5(tmp_path / "x.h5", rng.random((2, 4, 4)))
    with pytest.raises(ValueError, match=r"kspace: expected a 3 or 4-dimensional array \(slices, \[coils,\] H, W\)"):
        write_fastmri_h5(tmp_path / "x.h5", crandn(rng, (4, 4)))
    with pytest.raises(ValueError, match="reconstruction_rss: has 3 slices but kspace has 2"):
        write_fastmri_h5(tmp_path / "x.h5", crandn(rng, (2, 4, 4)), np.ones((3, 4, 4)))
    with pytest.raises(ValueError, match=r"trajectory: expected values in \[-pi, pi\]"):
        write_fastmri_h5(tmp_path / "x.h5", crandn(rng, (1, 5)), trajectory=np.full((2, 5), 4.0),
                         image_shape=(4, 4))
    with pytest.raises(ValueError, match="image_shape: required"):
        write_fastmri_h5(tmp_path / "x.h5", crandn(rng, (1, 5)), trajectory=np.zeros((2, 5)))
    with pytest.raises(ValueError, match="kspace: expected finite values"):
        bad = crandn(rng, (1, 4, 4))
        bad[0, 0, 0] = np.nan
        write_fastmri_h5(tmp_path / "x.h5", bad)
    assert os.listdir(tmp_path) == []


def test_atomic_write_keeps_previous_file(tmp_path, multicoil, monkeypatch):
    kspace, reference = multicoil
    path = write_fastmri_h5(tmp_path / "vol.h5", kspace, reference)
    original = open(path, "rb").read()

    # A failure in the middle of writing (here: an attribute h5py cannot store).
    with pytest.raises(TypeError):
        write_fastmri_h5(path, kspace * 2, reference, extra={"bad": object()})
    assert open(path, "rb").read() == original
    assert os.listdir(tmp_path) == ["vol.h5"]

    # A failure at the very last step (the rename).
    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_fastmri_h5(path, kspace * 3, reference)
    monkeypatch.undo()
    assert open(path, "rb").read() == original
    assert os.listdir(tmp_path) == ["vol.h5"]
    np.testing.assert_array_equal(read_fastmri_h5(path).kspace, kspace)


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_fastmri_h5(tmp_path / "absent.h5")
    with pytest.raises(FileNotFoundError):
        validate_fastmri_h5(tmp_path / "absent.h5")
    with pytest.raises(ValueError, match="expected an HDF5 file, got the folder"):
        validate_fastmri_h5(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_fastmri_h5(tmp_path / "no" / "x.h5", np.ones((1, 2, 2), np.complex64))


def test_not_hdf5_and_truncated(tmp_path, multicoil):
    text = tmp_path / "notes.h5"
    text.write_text("this is not HDF5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        validate_fastmri_h5(text)
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        read_fastmri_h5(text)
    good = write_fastmri_h5(tmp_path / "good.h5", *multicoil)
    data = open(good, "rb").read()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        validate_fastmri_h5(truncated)


@pytest.mark.parametrize(
    "datasets, message",
    [
        ({"image": np.ones((2, 4, 4), np.float32), "reconstruction_rss": np.ones((2, 4, 4), np.float32)},
         r"kspace: missing dataset; the file holds \['image', 'reconstruction_rss'\]"),
        ({}, "kspace: missing dataset; the file holds no datasets"),
        ({"kspace": np.ones((2, 4, 4), np.float32)}, "kspace: expected dtype complex64, got float32"),
        ({"kspace": np.ones((2, 4, 4), np.complex128)}, "kspace: expected dtype complex64, got complex128"),
        ({"kspace": np.ones((4, 4), np.complex64)},
         r"kspace: expected 3 or 4 dimensions \(slices, H, W\) or \(slices, coils, H, W\), got shape \(4, 4\)"),
        ({"kspace": np.ones((2, 4, 4), np.complex64), "reconstruction_rss": np.ones((3, 4, 4), np.float32)},
         "reconstruction_rss: has 3 slices but kspace has 2"),
        ({"kspace": np.ones((2, 4, 4), np.complex64), "reconstruction_esc": np.ones((2, 4, 4), np.float64)},
         "reconstruction_esc: expected dtype float32, got float64"),
        ({"kspace": np.ones((2, 4, 4), np.complex64), "reconstruction_rss": np.ones((2, 16), np.float32)},
         r"reconstruction_rss: expected 3 dimensions"),
        ({"kspace": np.ones((2, 4, 4), np.complex64), "mask": np.ones(5, np.float32)},
         r"mask: expected shape \(4,\) \(one value per column\), \(4, 4\) or \(2, 4, 4\) .* got \(5,\)"),
        ({"kspace": np.ones((2, 4, 4), np.complex64), "attrs": {"max": "big"}},
         "max: expected a finite number attribute"),
        ({"kspace": np.ones((1, 5), np.complex64), "trajectory": np.zeros((2, 5), np.float32)},
         "image_shape: non-Cartesian file .* without the attribute 'image_shape'"),
        ({"kspace": np.ones((1, 5), np.complex64), "trajectory": np.zeros((2, 6), np.float32),
          "attrs": {"image_shape": [4, 4]}},
         "trajectory: has 6 samples but kspace has 5"),
        ({"kspace": np.ones((1, 5), np.complex64), "trajectory": np.zeros((3, 5), np.float32),
          "attrs": {"image_shape": [4, 4]}},
         r"trajectory: has 3 spatial coordinates but image_shape \[4, 4\] has 2 dimensions"),
        ({"kspace": np.ones((1, 5), np.complex64), "trajectory": np.full((2, 5), 3.5, np.float32),
          "attrs": {"image_shape": [4, 4]}},
         r"trajectory: expected values in \[-pi, pi\] radians per pixel, got values in \[3.5, 3.5\]"),
        ({"kspace": np.ones((1, 5), np.complex64), "trajectory": np.zeros((2, 5), np.float64),
          "attrs": {"image_shape": [4, 4]}},
         "trajectory: expected dtype float32"),
        ({"kspace": np.ones((2, 5), np.complex64), "trajectory": np.zeros((3, 2, 5), np.float32),
          "attrs": {"image_shape": [4, 4]}},
         "trajectory: has 3 slices but kspace has 2"),
        ({"kspace": np.ones((1, 5), np.complex64), "trajectory": np.zeros((2, 5), np.float32),
          "dcomp": np.ones(4, np.float32), "attrs": {"image_shape": [4, 4]}},
         r"dcomp: expected shape \(5,\) or \(1, 5\), got \(4,\)"),
        ({"kspace": np.ones((1, 5), np.complex64), "trajectory": np.zeros((2, 5), np.float32),
          "attrs": {"image_shape": [4, 0]}},
         r"image_shape: expected 2 or 3 positive integers, got \[4, 0\]"),
        ({"kspace": np.ones((1, 4, 4), np.complex64), "dcomp": np.ones(4, np.float32)},
         "dcomp: density compensation without a 'trajectory'"),
    ],
)
def test_validation_messages(tmp_path, datasets, message):
    path = _raw_file(tmp_path / "bad.h5", **datasets)
    with pytest.raises(ValueError, match=message):
        validate_fastmri_h5(path)
    with pytest.raises(ValueError, match=message):
        read_fastmri_h5(path)


def test_validation_finds_nan_and_lists_every_problem(tmp_path, rng):
    kspace = crandn(rng, (20, 2, 4, 4))
    kspace[17, 1, 2, 3] = np.nan
    kspace[3, 0, 0, 0] = np.inf
    path = _raw_file(tmp_path / "nan.h5", kspace=kspace, reconstruction_rss=np.ones((19, 4, 4), np.float32))
    with pytest.raises(ValueError) as info:
        validate_fastmri_h5(path)
    message = str(info.value)
    assert "reconstruction_rss: has 19 slices but kspace has 20" in message
    assert "kspace: expected finite values, got 1 NaN and 1 Inf among 640 entries" in message
    good = _raw_file(tmp_path / "good.h5", kspace=crandn(rng, (2, 4, 4)))
    summary = validate_fastmri_h5(good)
    assert summary == {"layout": "cartesian", "multicoil": False, "kspace_shape": (2, 4, 4),
                       "reference": None, "reference_shape": None, "image_shape": None}
    # read only checks the slices it reads.
    nan_file = _raw_file(tmp_path / "nan2.h5", kspace=kspace)
    assert read_fastmri_h5(nan_file, slices=[5]).kspace.shape == (1, 2, 4, 4)
    with pytest.raises(ValueError, match="kspace: expected finite values"):
        read_fastmri_h5(nan_file, slices=[17])


def test_fastmri_style_header_and_mask_as_written_by_h5py(tmp_path, rng):
    """A file as the fastMRI data set stores it: header as a bytes dataset, mask dataset."""
    header = b"<?xml version='1.0'?><ismrmrdHeader><encoding/></ismrmrdHeader>"
    path = _raw_file(tmp_path / "fastmri.h5", kspace=crandn(rng, (2, 3, 8, 6)), mask=np.ones(6, np.float32),
                     ismrmrd_header=np.bytes_(header), attrs={"acquisition": "CORPDFS_FBK", "max": 1.5})
    volume = read_fastmri_h5(path)
    assert volume.ismrmrd_header == header.decode()
    assert volume.acquisition == "CORPDFS_FBK" and volume.attrs["max"] == 1.5
    assert volume.reference is None
