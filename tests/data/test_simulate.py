"""Simulation of fastMRI-layout k-space from magnitude images."""

import os

import nibabel
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from fastmri_zoo.data.h5 import read_fastmri_h5, validate_fastmri_h5
from fastmri_zoo.data.simulate import (
    add_noise,
    load_dicom_series,
    load_magnitude,
    simulate_coil_maps,
    simulate_files,
    simulate_volume,
    smooth_phase,
)
from tests.conftest import crandn


def phantom(slices=3, height=24, width=20):
    """Ellipses of different intensities, float32 (slices, H, W)."""
    y, x = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    volume = []
    for s in range(slices):
        image = 1.0 * ((y / 0.9) ** 2 + (x / 0.7) ** 2 < 1)
        image += 0.5 * (((y - 0.2) / 0.3) ** 2 + ((x + 0.1 * s) / 0.2) ** 2 < 1)
        volume.append(image * (s + 1))
    return np.stack(volume).astype(np.float32)


# ---------------------------------------------------------------------------- building blocks


@pytest.mark.parametrize("shape, coils", [((32, 24), 8), ((16, 16), 3), ((6, 12, 10), 12)])
def test_coil_maps_normalised_and_smooth(shape, coils):
    maps = simulate_coil_maps(shape, coils, np.random.default_rng(1))
    assert maps.shape == (coils,) + shape and maps.dtype == np.complex64
    np.testing.assert_allclose(np.sum(np.abs(maps) ** 2, axis=0), 1.0, atol=1e-5)
    # Coils differ: each one is strongest on its own side of the object.
    peaks = {np.unravel_index(np.argmax(np.abs(m)), shape) for m in maps}
    assert len(peaks) > 1
    # Smooth: most of each map's energy sits in the central quarter of its 2D spectrum
    # (white noise would put 1/16 there).
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(maps), axes=(-2, -1))) ** 2
    h, w = shape[-2:]
    centre = spectrum[..., h // 2 - h // 8:h // 2 + h // 8 + 1, w // 2 - w // 8:w // 2 + w // 8 + 1]
    assert (centre.sum((-2, -1)) / spectrum.sum((-2, -1))).min() > 0.85


def test_coil_maps_single_coil_and_seeding():
    np.testing.assert_array_equal(simulate_coil_maps((4, 5), 1), np.ones((1, 4, 5), np.complex64))
    a = simulate_coil_maps((8, 8), 4, np.random.default_rng(3))
    b = simulate_coil_maps((8, 8), 4, np.random.default_rng(3))
    c = simulate_coil_maps((8, 8), 4, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    with pytest.raises(ValueError, match="num_coils: expected a positive integer, got 0"):
        simulate_coil_maps((8, 8), 0)
    with pytest.raises(ValueError, match=r"shape: expected \(H, W\) or \(D, H, W\)"):
        simulate_coil_maps((8,), 2)


def test_smooth_phase_low_order():
    rng = np.random.default_rng(0)
    phase = smooth_phase((40, 30), rng)
    assert phase.shape == (40, 30) and phase.dtype == np.float32
    assert np.abs(phase).max() == pytest.approx(np.pi, rel=1e-6)
    # Degree <= 2: a least-squares fit with the 6 quadratic monomials is exact.
    y, x = np.meshgrid(np.linspace(-1, 1, 40), np.linspace(-1, 1, 30), indexing="ij")
    basis = np.stack([np.ones_like(x), y, x, y * y, x * y, x * x], -1).reshape(-1, 6)
    coeffs, *_ = np.linalg.lstsq(basis, phase.reshape(-1).astype(np.float64), rcond=None)
    np.testing.assert_allclose(basis @ coeffs, phase.reshape(-1), atol=1e-5)
    assert not np.allclose(smooth_phase((40, 30), rng), phase)
    np.testing.assert_array_equal(smooth_phase((5, 6, 7), 2), smooth_phase((5, 6, 7), 2))


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_add_noise_reaches_requested_snr(rng, snr_db):
    kspace = crandn(rng, (4, 128, 128)) * np.linspace(0.1, 3, 128).astype(np.float32)
    noisy = add_noise(kspace, snr_db, np.random.default_rng(5))
    assert noisy.dtype == np.complex64
    noise = noisy.astype(np.complex128) - kspace
    measured = 10 * np.log10(np.mean(np.abs(kspace) ** 2) / np.mean(np.abs(noise) ** 2))
    assert measured == pytest.approx(snr_db, abs=0.1)  # 0.1 dB = 2.3 % in noise power
    # Real and imaginary parts carry half the noise power each.
    assert np.var(noise.real) / np.var(noise.imag) == pytest.approx(1.0, abs=0.04)
    with pytest.raises(ValueError, match="kspace: expected complex values"):
        add_noise(np.ones(4), 10.0)


@pytest.mark.parametrize("coils", [1, 6])
def test_simulate_volume_rss_equals_normalised_magnitude(coils):
    magnitude = phantom()
    kspace, reference = simulate_volume(magnitude, coils, seed=7)
    expected_shape = (3, 24, 20) if coils == 1 else (3, coils, 24, 20)
    assert kspace.shape == expected_shape and kspace.dtype == np.complex64
    assert reference.dtype == np.float32
    normalised = magnitude / magnitude.max()
    np.testing.assert_allclose(reference, normalised, atol=1e-5)
    # Independent inverse: numpy's centred orthonormal inverse FFT of every coil, then RSS.
    coil_kspace = kspace if coils > 1 else kspace[:, None]
    shifted = np.fft.ifftshift(coil_kspace, axes=(-2, -1))
    coil_images = np.fft.fftshift(np.fft.ifft2(shifted, norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(np.sqrt((np.abs(coil_images) ** 2).sum(1)), normalised, atol=1e-5)
    # The phase is not trivial (it varies smoothly across the object).
    combined = coil_images[:, 0]
    inside = normalised > 0.5
    assert np.ptp(np.angle(combined[inside])) > 0.5
    # Deterministic in the seed.
    again, _ = simulate_volume(magnitude, coils, seed=7)
    np.testing.assert_array_equal(kspace, again)
    other, _ = simulate_volume(magnitude, coils, seed=8)
    assert np.abs(other - kspace).max() > 1e-3


def test_simulate_volume_noise_and_bad_input():
    magnitude = phantom(slices=2, height=32, width=32)
    clean, _ = simulate_volume(magnitude, 4, seed=1)
    noisy, reference = simulate_volume(magnitude, 4, seed=1, snr_db=20.0)
    noise = noisy.astype(np.complex128) - clean
    measured = 10 * np.log10(np.mean(np.abs(clean) ** 2) / np.mean(np.abs(noise) ** 2))
    assert measured == pytest.approx(20.0, abs=0.15)
    np.testing.assert_allclose(reference, magnitude / magnitude.max(), atol=1e-5)
    with pytest.raises(ValueError, match="magnitude: expected a 3-dimensional array"):
        simulate_volume(np.ones((4, 4)), 2)
    with pytest.raises(ValueError, match="magnitude: expected an image with some positive values"):
        simulate_volume(np.zeros((1, 4, 4)), 2)
    bad = magnitude.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="magnitude: expected finite values"):
        simulate_volume(bad, 2)


# ---------------------------------------------------------------------------- readers


def test_nifti_reader(tmp_path):
    volume = np.random.default_rng(0).random((12, 10, 5)).astype(np.float32)
    path = tmp_path / "brain.nii.gz"
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), path)
    slices = load_magnitude(path)
    np.testing.assert_allclose(slices, np.moveaxis(volume, -1, 0), rtol=1e-6)
    along_first = load_magnitude(path, slice_axis=0)
    np.testing.assert_allclose(along_first, volume, rtol=1e-6)
    # Scaled integer storage is unscaled by the reader.
    image = nibabel.Nifti1Image((volume * 1000).astype(np.int16), np.eye(4))
    image.header.set_slope_inter(0.5, 2.0)
    nibabel.save(image, tmp_path / "scaled.nii")
    np.testing.assert_allclose(load_magnitude(tmp_path / "scaled.nii"),
                               np.moveaxis((volume * 1000).astype(np.int16) * 0.5 + 2.0, -1, 0), rtol=1e-6)


def _write_dicom_slice(path, pixels, instance, position, series_uid, slope=1.0, intercept=0.0):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "MR"
    ds.InstanceNumber = instance
    if position is not None:
        ds.ImagePositionPatient = [0.0, 0.0, float(position)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("with_position", [True, False])
def test_dicom_series_reader_sorts_slices(tmp_path, with_position):
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 4000, (6, 8)) for _ in range(4)]
    series = generate_uid()
    # File names in an order unrelated to the slice order; positions run opposite to numbers.
    for name, k in zip(["d.dcm", "a.dcm", "c.dcm", "b.dcm"], [2, 0, 3, 1]):
        _write_dicom_slice(tmp_path / name, images[k], instance=k + 1,
                           position=(10.0 - 2.5 * k) if with_position else None,
                           series_uid=series, slope=2.0, intercept=-5.0)
    (tmp_path / "README.txt").write_text("not a DICOM file")
    volume = load_dicom_series(tmp_path)
    order = [3, 2, 1, 0] if with_position else [0, 1, 2, 3]
    expected = np.stack([images[k] * 2.0 - 5.0 for k in order]).astype(np.float32)
    np.testing.assert_array_equal(volume, expected)
    np.testing.assert_array_equal(load_magnitude(tmp_path), expected)


def test_dicom_reader_rejects_mixed_series_and_empty_folder(tmp_path):
    for k in range(2):
        _write_dicom_slice(tmp_path / f"{k}.dcm", np.ones((4, 4)), k + 1, k, series_uid=generate_uid())
    with pytest.raises(ValueError, match="expected one DICOM series, found 2"):
        load_dicom_series(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="found none"):
        load_dicom_series(empty)


def test_numpy_readers_and_errors(tmp_path):
    volume = np.random.default_rng(0).random((7, 6, 3)).astype(np.float32)
    np.save(tmp_path / "v.npy", volume)
    np.testing.assert_array_equal(load_magnitude(tmp_path / "v.npy"), np.moveaxis(volume, -1, 0))
    np.savez(tmp_path / "one.npz", anything=volume[..., 0])
    np.testing.assert_array_equal(load_magnitude(tmp_path / "one.npz"), volume[None, ..., 0])
    np.savez(tmp_path / "named.npz", mask=np.ones(3), magnitude=volume)
    np.testing.assert_array_equal(load_magnitude(tmp_path / "named.npz", slice_axis=0), volume)
    np.savez(tmp_path / "many.npz", a=volume, b=volume)
    with pytest.raises(ValueError, match=r"expected one array or one named magnitude.*found \['a', 'b'\]"):
        load_magnitude(tmp_path / "many.npz")
    np.testing.assert_array_equal(load_magnitude(volume[..., 0] + 1j), np.abs(volume[None, ..., 0] + 1j))
    with pytest.raises(ValueError, match=r"magnitude: expected a 2 or 3-dimensional array"):
        load_magnitude(np.ones(5))
    with pytest.raises(FileNotFoundError):
        load_magnitude(tmp_path / "absent.nii")
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="cannot read"):
        load_magnitude(tmp_path / "x.png")


# ---------------------------------------------------------------------------- files


def test_simulate_files_writes_valid_fastmri_files(tmp_path):
    volume = np.moveaxis(phantom(slices=2, height=16, width=12), 0, -1)  # (H, W, slices)
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), tmp_path / "knee.nii.gz")
    arrays = [phantom(slices=1, height=8, width=8)[0]]
    out = tmp_path / "out"
    paths = simulate_files([tmp_path / "knee.nii.gz"] + arrays, out, coils=4, seed=3, snr_db=30.0,
                           progress=False)
    assert [os.path.basename(p) for p in paths] == ["knee.h5", "array_001.h5"]
    summary = validate_fastmri_h5(paths[0])
    assert summary["kspace_shape"] == (2, 4, 16, 12) and summary["reference"] == "reconstruction_rss"
    data = read_fastmri_h5(paths[0])
    assert data.attrs["acquisition"] == "simulated" and data.attrs["coils"] == 4
    assert data.attrs["snr_db"] == 30.0 and data.attrs["source"] == "knee.nii.gz"
    expected = np.moveaxis(volume, -1, 0) / volume.max()
    np.testing.assert_allclose(data.reference, expected, atol=1e-5)
    assert data.attrs["max"] == pytest.approx(1.0)
    assert data.attrs["norm"] == pytest.approx(float(np.linalg.norm(expected)), rel=1e-5)
    # Same seed and name, same data; the array's file does not depend on the other inputs.
    again = simulate_files([tmp_path / "knee.nii.gz"], tmp_path / "again", coils=4, seed=3, snr_db=30.0,
                           progress=False)
    np.testing.assert_array_equal(read_fastmri_h5(again[0]).kspace, data.kspace)
    other = simulate_files([tmp_path / "knee.nii.gz"], tmp_path / "other", coils=4, seed=4, progress=False)
    assert np.abs(read_fastmri_h5(other[0]).kspace - data.kspace).max() > 1e-3


def test_simulate_files_name_clashes_and_errors(tmp_path):
    image = phantom(slices=1, height=8, width=8)[0]
    np.save(tmp_path / "a.npy", image)
    np.savez(tmp_path / "a.npz", image=np.stack([image, 2 * image], axis=-1))
    paths = simulate_files([tmp_path / "a.npy", tmp_path / "a.npz"], tmp_path / "o", coils=1, progress=False)
    assert [os.path.basename(p) for p in paths] == ["a.h5", "a_1.h5"]
    assert read_fastmri_h5(paths[0]).kspace.shape == (1, 8, 8)
    second = read_fastmri_h5(paths[1])  # 3D array split along its last axis
    assert second.kspace.shape == (2, 8, 8)
    np.testing.assert_allclose(second.reference, np.stack([image, 2 * image]) / (2 * image.max()), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="absent.nii"):
        simulate_files([tmp_path / "a.npy", tmp_path / "absent.nii"], tmp_path / "p", progress=False)
    assert not os.path.exists(tmp_path / "p" / "a.h5")
    with pytest.raises(ValueError, match="coils: expected a positive integer"):
        simulate_files([tmp_path / "a.npy"], tmp_path / "p", coils=0, progress=False)
    with pytest.raises(ValueError, match="inputs: expected at least one"):
        simulate_files([], tmp_path / "p", progress=False)
