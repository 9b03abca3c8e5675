"""Cartesian physics against numpy references, and bad-input errors."""

import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo import physics
from tests.conftest import crandn


def numpy_fftc(x, ndim):
    axes = tuple(range(-ndim, 0))
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(x, axes=axes), axes=axes, norm="ortho"), axes=axes)


def numpy_ifftc(x, ndim):
    axes = tuple(range(-ndim, 0))
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(x, axes=axes), axes=axes, norm="ortho"), axes=axes)


@pytest.mark.parametrize("ndim,shape", [(2, (3, 16, 12)), (2, (2, 15, 9)), (3, (2, 6, 7, 8)), (2, (2, 4, 10, 10))])
def test_fftc_matches_numpy(ndim, shape, rng):
    x = crandn(rng, shape)
    np.testing.assert_allclose(physics.fftc(x, ndim).numpy(), numpy_fftc(x, ndim), atol=1e-5, rtol=0)
    np.testing.assert_allclose(physics.ifftc(x, ndim).numpy(), numpy_ifftc(x, ndim), atol=1e-5, rtol=0)


def test_sense_matches_numpy(rng):
    x = crandn(rng, (2, 12, 10))
    smaps = crandn(rng, (2, 3, 12, 10))
    mask = (rng.uniform(size=(2, 1, 10)) < 0.5).astype(np.float32)
    expected = mask[:, None] * numpy_fftc(x[:, None] * smaps, 2)
    got = physics.SENSE(mask, smaps).forward(x).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    back = (np.conj(smaps) * numpy_ifftc(expected, 2)).sum(1)
    np.testing.assert_allclose(physics.SENSE(mask, smaps).adjoint(expected).numpy(), back, atol=1e-5, rtol=0)


def test_fully_sampled_sense_with_rss_maps_is_identity(rng):
    coil_images = crandn(rng, (1, 4, 16, 16))
    smaps = physics.normalize_by_rss(coil_images).numpy()
    x = crandn(rng, (1, 16, 16))
    op = physics.SENSE(np.ones((1, 16), np.float32), smaps)
    np.testing.assert_allclose(op.normal(x).numpy(), x, atol=1e-5)


def test_rss_matches_numpy(rng):
    x = crandn(rng, (2, 5, 8, 8))
    np.testing.assert_allclose(physics.rss(x).numpy(), np.sqrt((np.abs(x) ** 2).sum(1)), rtol=1e-6)


def test_sensitivity_maps_from_centre_recover_smooth_maps(rng):
    n, coils = 64, 4
    yy, xx = np.mgrid[-1:1:n * 1j, -1:1:n * 1j]
    image = np.exp(-(xx**2 + yy**2) / 0.5).astype(np.complex64)
    true = np.stack([np.exp(-((xx - np.cos(a)) ** 2 + (yy - np.sin(a)) ** 2)) * np.exp(1j * a * xx)
                     for a in np.linspace(0, 2 * np.pi, coils, endpoint=False)])
    true = true / np.sqrt((np.abs(true) ** 2).sum(0))
    kspace = numpy_fftc(true * image, 2)[None].astype(np.complex64)
    maps = physics.estimate_sensitivity_maps(kspace, num_low_freqs=24).numpy()[0]
    inside = xx**2 + yy**2 < 0.5
    err = np.linalg.norm((maps - true)[:, inside]) / np.linalg.norm(true[:, inside])
    assert err < 0.05
    np.testing.assert_allclose((np.abs(maps) ** 2).sum(0)[inside], 1.0, atol=1e-4)


def test_real_kspace_is_refused():
    with pytest.raises(ValueError, match="kspace: expected complex"):
        physics.SENSE(np.ones((1, 8)), np.ones((1, 2, 8, 8), np.complex64)).adjoint(np.ones((1, 2, 8, 8), np.float32))


def test_wrong_rank_is_refused():
    op = physics.CartesianSingleCoil(np.ones((1, 8), np.float32))
    with pytest.raises(ValueError, match=r"x: expected a 3-dimensional array \(batch, 2 spatial axes\), got shape \(8, 8\)"):
        op.forward(np.ones((8, 8), np.complex64))


def test_mask_that_does_not_broadcast_is_refused():
    op = physics.CartesianSingleCoil(np.ones((1, 1, 9), np.float32))
    with pytest.raises(ValueError, match=r"mask: shape \(1, 1, 9\) does not broadcast"):
        op.forward(np.ones((1, 8, 8), np.complex64))


def test_nan_is_refused():
    x = np.ones((1, 8, 8), np.complex64)
    x[0, 2, 3] = np.nan
    with pytest.raises(ValueError, match="x: expected finite values, got 1 NaN"):
        physics.CartesianSingleCoil(np.ones((1, 8), np.float32)).forward(x)


def test_coil_mismatch_is_refused():
    op = physics.SENSE(np.ones((1, 8), np.float32), np.ones((1, 3, 8, 8), np.complex64))
    with pytest.raises(ValueError, match="kspace has 4 coils but smaps has 3"):
        op.adjoint(np.ones((1, 4, 8, 8), np.complex64))


def test_operator_inside_tf_data(rng):
    mask = np.ones((1, 8), np.float32)
    images = crandn(rng, (4, 8, 8))
    ds = tf.data.Dataset.from_tensor_slices(images).batch(2).map(
        lambda x: physics.CartesianSingleCoil(mask).forward(x))
    got = np.concatenate([b.numpy() for b in ds])
    np.testing.assert_allclose(got, numpy_fftc(images, 2), atol=1e-5)
