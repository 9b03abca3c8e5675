"""Image files read and written back in the same format (data.images): each format's round trip against
the arrays written with nibabel / pydicom / h5py / numpy directly, what each writer keeps (NIfTI affine,
DICOM rescale and stored integers, npz's other arrays, h5 attributes), atomic writes that never replace
the input, and bad files."""

import os

import h5py
import nibabel
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from fastmri_zoo.data.images import check_image_output, image_format, read_image_file, write_image_file
from tests.data.test_simulate import _write_dicom_slice


def no_temporary_files(folder):
    return not [name for name in os.listdir(folder) if name.endswith(".tmp")]


@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz"])
def test_nifti_round_trip_keeps_the_affine(tmp_path, rng, name):
    volume = rng.uniform(0, 100, (8, 10, 3)).astype(np.float32)
    affine = np.diag([0.9, 1.1, 2.5, 1.0])
    nibabel.save(nibabel.Nifti1Image(volume, affine), tmp_path / name)
    image = read_image_file(tmp_path / name)
    assert image.format == "nifti" and image.images.shape == (3, 8, 10) and image.slice_axis == 2
    np.testing.assert_array_equal(image.images, np.moveaxis(volume, -1, 0))
    out = write_image_file(image, 2 * image.images, tmp_path / f"out_{name}", {"description": "denoised"})
    written = nibabel.load(out)
    np.testing.assert_allclose(written.get_fdata(), 2 * volume, rtol=1e-6)
    np.testing.assert_array_equal(written.affine, nibabel.load(tmp_path / name).affine)  # as stored (float32)
    assert written.get_data_dtype() == np.float32 and written.header["descrip"].tobytes().startswith(b"denoised")
    # another slice axis reads other slices and writes the same volume back
    image = read_image_file(tmp_path / name, slice_axis=0)
    assert image.images.shape == (8, 10, 3)
    np.testing.assert_allclose(nibabel.load(write_image_file(image, image.images, tmp_path / "o.nii")).get_fdata(),
                               volume, rtol=1e-6)
    assert no_temporary_files(tmp_path)


def test_numpy_round_trips(tmp_path, rng):
    complex_volume = rng.standard_normal((3, 4, 5)) + 1j * rng.standard_normal((3, 4, 5))
    np.save(tmp_path / "c.npy", complex_volume)
    image = read_image_file(tmp_path / "c.npy")
    assert image.images.dtype == np.complex64 and image.slice_axis == 0
    out = np.load(write_image_file(image, image.images, tmp_path / "c_out.npy"))
    assert out.dtype == np.complex64
    np.testing.assert_allclose(out, complex_volume, rtol=1e-6)

    plane = rng.uniform(size=(6, 7))
    np.savez(tmp_path / "a.npz", image=plane, affine=np.eye(4))
    image = read_image_file(tmp_path / "a.npz")
    assert image.images.shape == (1, 6, 7) and image.slice_axis is None
    with np.load(write_image_file(image, image.images + 1, tmp_path / "a_out.npz")) as written:
        assert sorted(written.keys()) == ["affine", "image"]
        np.testing.assert_allclose(written["image"], plane + 1, rtol=1e-6)
        np.testing.assert_array_equal(written["affine"], np.eye(4))


def test_h5_reads_a_reconstruction_or_a_reference_and_writes_a_reconstruction(tmp_path, rng):
    reference = rng.uniform(size=(2, 6, 6)).astype(np.float32)
    with h5py.File(tmp_path / "raw.h5", "w") as handle:
        handle["kspace"] = np.zeros((2, 6, 6), np.complex64)
        handle["reconstruction_rss"] = reference
        handle.attrs["acquisition"] = "CORPD_FBK"
    image = read_image_file(tmp_path / "raw.h5")
    np.testing.assert_array_equal(image.images, reference)
    out = write_image_file(image, image.images * 3, tmp_path / "out.h5", {"sigma": 0.5})
    with h5py.File(out, "r") as handle:
        np.testing.assert_allclose(handle["reconstruction"][()], reference * 3, rtol=1e-6)
        assert handle.attrs["sigma"] == 0.5 and handle.attrs["acquisition"] == "CORPD_FBK"
        assert handle.attrs["source_dataset"] == "reconstruction_rss"
    # the output of a denoising (or a reconstruction) reads back as the images it holds
    np.testing.assert_allclose(read_image_file(out).images, reference * 3, rtol=1e-6)


def test_dicom_series_round_trip_keeps_the_stored_integers(tmp_path, rng):
    series = generate_uid()
    folder = tmp_path / "series"
    folder.mkdir()
    stored = [rng.integers(0, 4000, (6, 8)) for _ in range(3)]
    for k in range(3):  # positions opposite to file names: the series order is the positions'
        _write_dicom_slice(folder / f"{k}.dcm", stored[k], instance=k + 1, position=-k, series_uid=series,
                           slope=2.0, intercept=-5.0)
    image = read_image_file(folder)
    expected = np.stack([stored[k] * 2.0 - 5.0 for k in (2, 1, 0)])
    np.testing.assert_array_equal(image.images, expected)
    # values between stored levels are rounded to the nearest one, values out of range clipped
    values = image.images + 2.9
    values[0, 0, 0] = -1e6
    out = write_image_file(image, values, tmp_path / "denoised", {"description": "denoised"})
    assert sorted(os.listdir(out)) == ["0.dcm", "1.dcm", "2.dcm"]
    written = pydicom.dcmread(os.path.join(out, "2.dcm"))
    expected_stored = np.clip(np.round((values[0] + 5.0) / 2.0), 0, 65535)
    np.testing.assert_array_equal(written.pixel_array, expected_stored)
    assert written.SeriesInstanceUID != series and written.SeriesDescription == "denoised"
    assert list(written.ImageType) == ["DERIVED", "SECONDARY"]
    assert written.SOPInstanceUID == written.file_meta.MediaStorageSOPInstanceUID
    assert written.SOPInstanceUID != pydicom.dcmread(folder / "2.dcm").SOPInstanceUID
    # a single file is written as a single file
    single = read_image_file(folder / "1.dcm")
    assert single.images.shape == (1, 6, 8) and single.slice_axis is None
    out = write_image_file(single, single.images, tmp_path / "one.dcm")
    np.testing.assert_array_equal(read_image_file(out).images, single.images)


def test_outputs_never_replace_the_input_and_keep_its_format(tmp_path, rng):
    np.save(tmp_path / "a.npy", rng.uniform(size=(4, 4)))
    image = read_image_file(tmp_path / "a.npy")
    before = (tmp_path / "a.npy").read_bytes()
    with pytest.raises(ValueError, match="is the input"):
        write_image_file(image, image.images, tmp_path / "a.npy")
    os.symlink(tmp_path / "a.npy", tmp_path / "link.npy")
    with pytest.raises(ValueError, match="is the input"):
        check_image_output("-o", tmp_path / "link.npy", image)
    with pytest.raises(ValueError, match="is a nifti path but the input is a npy file"):
        check_image_output("-o", tmp_path / "a.nii", image)
    with pytest.raises(ValueError, match="folder of .* does not exist"):
        check_image_output("-o", tmp_path / "missing" / "b.npy", image)
    with pytest.raises(ValueError, match="expected the shape"):
        write_image_file(image, np.zeros((2, 4, 4)), tmp_path / "b.npy")
    assert (tmp_path / "a.npy").read_bytes() == before and no_temporary_files(tmp_path)
    folder = tmp_path / "series"
    folder.mkdir()
    _write_dicom_slice(folder / "0.dcm", np.ones((4, 4)), 1, 0, generate_uid())
    series = read_image_file(folder)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for target, message in ((folder, "is the input folder"), (tmp_path / "full", "exists")):
        with pytest.raises(ValueError, match=message):
            check_image_output("-o", target, series)


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="unknown format"):
        image_format(tmp_path / "a.png", must_exist=False)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="unknown format"):
        read_image_file(tmp_path / "a.txt")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_image_file(tmp_path / "missing.npy")
    nan = np.ones((4, 4), np.float32)
    nan[1, 2] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(ValueError, match="expected finite values, got 1 NaN"):
        read_image_file(tmp_path / "nan.npy")
    np.save(tmp_path / "4d.npy", np.ones((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="H, W\\) image or 3D volume"):
        read_image_file(tmp_path / "4d.npy")
    (tmp_path / "broken.nii.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="not a readable NIfTI file"):
        read_image_file(tmp_path / "broken.nii.gz")
    with h5py.File(tmp_path / "k.h5", "w") as handle:
        handle["kspace"] = np.zeros((1, 4, 4), np.complex64)
    with pytest.raises(ValueError, match="expected images in one of the datasets"):
        read_image_file(tmp_path / "k.h5")
    with pytest.raises(ValueError, match="slice_axis: only for 3D NIfTI and numpy"):
        read_image_file(tmp_path / "k.h5", slice_axis=1)
