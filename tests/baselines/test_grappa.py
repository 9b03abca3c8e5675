"""GRAPPA on simulated multicoil data (sharp phantom, smooth coils) against the fully sampled truth."""

import numpy as np
import pytest

from fastmri_zoo.baselines import grappa
from fastmri_zoo.baselines.grappa import equispaced_pattern
from fastmri_zoo.sampling.cartesian import EquispacedMaskFunc

SIZE, COILS, ACS = 64, 8, 24


def np_fftc(x):
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def np_ifftc(x):
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def rss(coil_images):
    return np.sqrt((np.abs(coil_images) ** 2).sum(axis=-3))


def nrmse(estimate, truth):
    return np.linalg.norm(estimate - truth) / np.linalg.norm(truth)


@pytest.fixture(scope="module")
def phantom_kspace():
    """Fully sampled k-space (coils, H, W): ellipses with a linear phase, 8 smooth Gaussian coils on a ring."""
    y, x = np.mgrid[-1 : 1 : SIZE * 1j, -1 : 1 : SIZE * 1j]

    def ellipse(cx, cy, a, b):
        return (((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1).astype(float)

    image = (
        ellipse(0, 0, 0.7, 0.85) - 0.6 * ellipse(0, -0.02, 0.6, 0.75) + 0.4 * ellipse(0.25, 0.1, 0.12, 0.3)
        + 0.3 * ellipse(-0.25, 0.1, 0.15, 0.25) + 0.5 * ellipse(0, 0.45, 0.08, 0.08)
    ) * np.exp(1j * np.pi * 0.3 * (x + y))
    angles = 2 * np.pi * np.arange(COILS) / COILS
    smaps = np.stack(
        [np.exp(-((x - 1.2 * np.cos(a)) ** 2 + (y - 1.2 * np.sin(a)) ** 2) / 1.5) * np.exp(1j * (a + 0.5 * x))
         for a in angles]
    )
    return np_fftc(smaps * image).astype(np.complex64)


def equispaced_mask(acceleration, offset=1, acs=ACS, width=SIZE):
    mask = np.zeros(width, np.float32)
    mask[offset::acceleration] = 1
    mask[width // 2 - acs // 2 : width // 2 + acs // 2] = 1
    return mask


@pytest.mark.parametrize("acceleration,tolerance,kspace_tolerance", [(2, 0.04, 0.25), (4, 0.1, 0.5)])
def test_grappa_reconstructs_far_better_than_zero_filled(acceleration, tolerance, kspace_tolerance, phantom_kspace):
    truth = rss(np_ifftc(phantom_kspace))
    mask = equispaced_mask(acceleration)
    undersampled = phantom_kspace * mask
    filled, image = grappa(undersampled, mask)
    assert filled.shape == phantom_kspace.shape and filled.dtype == np.complex64
    assert image.shape == (SIZE, SIZE) and image.dtype == np.float32
    np.testing.assert_allclose(image, rss(np_ifftc(filled)), rtol=1e-5, atol=1e-6 * truth.max())
    zero_filled_error = nrmse(rss(np_ifftc(undersampled)), truth)
    error = nrmse(image, truth)
    assert error < tolerance
    assert error < 0.5 * zero_filled_error
    # Acquired columns (ACS included) are returned untouched, every missing one is filled.
    sampled = mask > 0
    np.testing.assert_array_equal(filled[..., sampled], undersampled[..., sampled])
    assert np.all(np.abs(filled[..., ~sampled]).sum(axis=(0, 1)) > 0)
    # The missing (outer, low-energy) k-space itself is estimated; zero filling has error 1 there.
    assert nrmse(filled[..., ~sampled], phantom_kspace[..., ~sampled]) < kspace_tolerance


def test_fastmri_equispaced_masks_batched_match_per_item(phantom_kspace):
    func = EquispacedMaskFunc(center_fractions=[12 / SIZE], accelerations=[3], seed=0)
    masks = np.stack([np.asarray(func((SIZE, SIZE), offset=offset)[0]).reshape(SIZE) for offset in (0, 2)])
    kspace = np.stack([phantom_kspace * m for m in masks])
    filled, images = grappa(kspace, masks[:, None, :], kernel_size=(3, 4), regularization=1e-4)
    truth = rss(np_ifftc(phantom_kspace))
    for b in range(2):
        item_filled, item_image = grappa(kspace[b], masks[b], kernel_size=(3, 4), regularization=1e-4)
        np.testing.assert_array_equal(filled[b], item_filled)
        np.testing.assert_array_equal(images[b], item_image)
        assert nrmse(item_image, truth) < 0.5 * nrmse(rss(np_ifftc(kspace[b])), truth)


def test_regularization_is_relative_so_scaling_commutes(phantom_kspace):
    mask = equispaced_mask(4)
    filled, image = grappa(phantom_kspace * mask, mask)
    scaled_filled, scaled_image = grappa(1e-4 * phantom_kspace * mask, mask)
    np.testing.assert_allclose(scaled_filled, 1e-4 * filled, rtol=1e-4, atol=1e-9 * np.abs(filled).max())
    np.testing.assert_allclose(scaled_image, 1e-4 * image, rtol=1e-4, atol=1e-9 * image.max())


def test_fully_sampled_input_is_returned_unchanged(phantom_kspace):
    filled, image = grappa(phantom_kspace, np.ones(SIZE, np.float32))
    np.testing.assert_array_equal(filled, phantom_kspace)
    np.testing.assert_allclose(image, rss(np_ifftc(phantom_kspace)), rtol=1e-5)


def test_equispaced_pattern():
    assert equispaced_pattern(equispaced_mask(4, offset=3) > 0) == (4, 3, 19, 44)  # column 19 = 3 + 4 * 4 joins the ACS block
    assert equispaced_pattern(np.ones(10, bool)) == (1, 0, 0, 10)


def test_no_acs_region_is_refused(phantom_kspace):
    mask = np.zeros(SIZE, np.float32)
    mask[1::4] = 1
    with pytest.raises(ValueError, match="autocalibration"):
        grappa(phantom_kspace * mask, mask)
    # An ACS block too narrow for the kernel at this acceleration.
    narrow = equispaced_mask(4, acs=4)
    with pytest.raises(ValueError, match="ACS block of at least"):
        grappa(phantom_kspace * narrow, narrow)


def test_mask_not_equispaced_is_refused(phantom_kspace):
    rng = np.random.default_rng(0)
    mask = (rng.uniform(size=SIZE) < 0.3).astype(np.float32)
    mask[SIZE // 2 - 12 : SIZE // 2 + 12] = 1
    with pytest.raises(ValueError, match="not equispaced"):
        grappa(phantom_kspace * mask, mask)


def test_single_coil_is_refused(phantom_kspace):
    mask = equispaced_mask(2)
    with pytest.raises(ValueError, match="multicoil"):
        grappa(phantom_kspace[0] * mask, mask)
    with pytest.raises(ValueError, match="at least 2 coils"):
        grappa(phantom_kspace[:1] * mask, mask)


def test_other_bad_input(phantom_kspace):
    mask = equispaced_mask(2)
    with pytest.raises(ValueError, match="mask has 62 columns"):
        grappa(phantom_kspace, mask[:-2])
    with pytest.raises(ValueError, match="kspace: expected complex"):
        grappa(np.abs(phantom_kspace), mask)
    bad = phantom_kspace.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="kspace: expected finite"):
        grappa(bad, mask)
    with pytest.raises(ValueError, match="kernel_size"):
        grappa(phantom_kspace * mask, mask, kernel_size=(4, 2))
    with pytest.raises(ValueError, match="regularization"):
        grappa(phantom_kspace * mask, mask, regularization=-1.0)
