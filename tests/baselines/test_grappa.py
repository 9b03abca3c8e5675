"""GRAPPA against an independent least-squares GRAPPA (numpy, loop by loop), the fully sampled truth of a
simulated phantom, and the bundled IXI and real 4-coil brain slices."""

import numpy as np
import pytest

from fastmri_zoo.baselines import grappa
from fastmri_zoo.baselines.grappa import border_points, equispaced_pattern
from fastmri_zoo.data.h5 import read_fastmri_h5
from fastmri_zoo.demo import bundled_sample
from fastmri_zoo.metrics import psnr
from fastmri_zoo.sampling.cartesian import EquispacedMaskFractionFunc, EquispacedMaskFunc

SIZE, COILS, ACS = 64, 8, 24


def np_fftc(x):
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def np_ifftc(x):
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def rss(coil_images):
    return np.sqrt((np.abs(coil_images) ** 2).sum(axis=-3))


def nrmse(estimate, truth):
    return np.linalg.norm(estimate - truth) / np.linalg.norm(truth)


def reference_grappa(kspace, columns, kernel_size=(5, 2), regularization=1.0):
    """GRAPPA written point by point from its definition (coils, H, W) -> (coils, H, W) complex128.

    Sources of a missing column c: the ceil(n / 2) nearest acquired columns on its left and the n // 2 on its
    right, counting around the k-space edge, and n_readout rows centred on the target row, wrapped around.
    Columns whose sources wrap around lose their farthest source while the ACS block has fewer than two
    calibration rows per unknown. Weights: least squares on the ACS block, augmented with sqrt(lam) I rows,
    lam = max(regularization * s_min^2, 1e-12 * s_max^2) for the singular values s of the source matrix.
    """
    coils, height, width = kspace.shape
    kspace = kspace.astype(np.complex128)
    n_readout, n_phase = kernel_size
    half = n_readout // 2
    start = stop = width // 2
    while start > 0 and columns[start - 1]:
        start -= 1
    while stop < width and columns[stop]:
        stop += 1

    def calibration_rows(offsets):
        return height * (stop - start - (max(max(offsets), 0) - min(min(offsets), 0)))

    def sources(h, c, offsets):
        """kspace[coil, (h + j) % H, (c + d) % W] for every coil, then d in offsets, then j in -half .. half."""
        rows = (h + np.arange(-half, half + 1)) % height
        return kspace[:, rows][:, :, (c + np.asarray(offsets)) % width].transpose(0, 2, 1).ravel()

    weights = {}
    filled = kspace.copy()
    for c in range(width):
        if columns[c]:
            continue
        left, right, step = [], [], 1
        while len(left) < n_phase - n_phase // 2:
            if columns[(c - step) % width]:
                left.append(-step)
            step += 1
        step = 1
        while len(right) < n_phase // 2:
            if columns[(c + step) % width]:
                right.append(step)
            step += 1
        offsets = sorted(left + right)
        if any(not 0 <= c + d < width for d in offsets):
            while len(offsets) > 1 and calibration_rows(offsets) < 2 * coils * len(offsets) * n_readout:
                offsets.remove(max(offsets, key=abs))
        offsets = tuple(offsets)
        assert calibration_rows(offsets) >= 2 * coils * len(offsets) * n_readout, "the test's masks fit their ACS"
        if offsets not in weights:
            rows, targets = [], []
            for t in range(start, stop):
                if all(start <= t + d < stop for d in offsets):
                    for h in range(height):
                        rows.append(sources(h, t, offsets))
                        targets.append(kspace[:, h, t])
            matrix, targets = np.array(rows), np.array(targets)
            singular = np.linalg.svd(matrix, compute_uv=False)
            lam = max(regularization * singular[-1] ** 2, 1e-12 * singular[0] ** 2)
            augmented = np.concatenate([matrix, np.sqrt(lam) * np.eye(matrix.shape[1])])
            padded_targets = np.concatenate([targets, np.zeros((matrix.shape[1], coils))])
            weights[offsets] = np.linalg.lstsq(augmented, padded_targets, rcond=None)[0]
        for h in range(height):
            filled[:, h, c] = sources(h, c, offsets) @ weights[offsets]
    return filled


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


@pytest.fixture(scope="module")
def ixi_kspace():
    """The bundled IXI slices: (3, 8, 120, 120) complex64, noiseless simulated coils."""
    return read_fastmri_h5(bundled_sample("ixi_heldout_multicoil")).kspace


@pytest.fixture(scope="module")
def brain_kspace():
    """The bundled real 4-coil brain slice: (4, 256, 256) complex64."""
    return read_fastmri_h5(bundled_sample("brain_4coil")).kspace[0]


def equispaced_mask(acceleration, offset=1, acs=ACS, width=SIZE, stop=None):
    mask = np.zeros(width, np.float32)
    mask[offset:stop:acceleration] = 1
    mask[width // 2 - acs // 2 : width // 2 + acs // 2] = 1
    return mask


def fastmri_mask(func, kspace, offset):
    return np.asarray(func(kspace.shape, offset=offset)[0]).reshape(kspace.shape[-1])




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


@pytest.mark.parametrize(
    "case",
    [
        "R4",  # 3 interior kernels, 2 beside the ACS block
        "R3 kernel 3x4 unregularised",
        "fractional step",  # gaps of 4 and 5 columns (fastMRI's equispaced_fraction, step 4.76)
        "wide wrap-around",  # outer columns 6 .. 58 only: the kernels across the edge are trimmed
    ],
)
def test_matches_independent_least_squares_grappa(case, phantom_kspace):
    kernel_size, regularization = (5, 2), 1.0
    if case == "R4":
        mask = equispaced_mask(4, offset=1, acs=8)
    elif case == "R3 kernel 3x4 unregularised":
        mask, kernel_size, regularization = equispaced_mask(3, offset=2, acs=12), (3, 4), 0.0
    elif case == "fractional step":
        mask = fastmri_mask(EquispacedMaskFractionFunc(center_fractions=[10 / SIZE], accelerations=[3]),
                            phantom_kspace, 1)
        assert set(np.diff(np.flatnonzero(mask[: SIZE // 2 - 6]))) == {4, 5}
    else:
        mask = equispaced_mask(4, offset=6, acs=8, stop=59)
    undersampled = phantom_kspace * mask
    expected = reference_grappa(undersampled, mask > 0, kernel_size, regularization)
    filled, image = grappa(undersampled, mask, kernel_size=kernel_size, regularization=regularization)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(filled, expected, rtol=0, atol=2e-6 * scale)
    # every point is estimated, the border rows and columns included
    missing = ~(mask > 0)
    assert np.all(np.abs(filled[:, :, missing]).sum(axis=0) > 0)
    assert nrmse(image, rss(np_ifftc(phantom_kspace))) < 0.5 * nrmse(
        rss(np_ifftc(undersampled)), rss(np_ifftc(phantom_kspace)))


def test_border_is_estimated_as_well_as_the_interior(ixi_kspace):
    """IXI slice at fastMRI's AF 4: replacing the border (first and last 2 readout rows, the columns beyond the
    outermost acquired ones) by the truth gains almost nothing. With zero-padded sources it gained 20 dB."""
    kspace = ixi_kspace[1]
    reference = rss(np_ifftc(kspace))
    for offset in (0, 3):
        mask = fastmri_mask(EquispacedMaskFunc(center_fractions=[0.08], accelerations=[4]), kspace, offset)
        filled, image = grappa(kspace * mask, mask)
        region = border_points(mask > 0, kspace.shape[-2])
        exact_border = rss(np_ifftc(np.where(region, kspace, filled)))
        assert psnr(reference, exact_border) - psnr(reference, image) < 0.25
        assert psnr(reference, image) > 50
        # border points are estimated to the same relative accuracy as the interior ones
        interior = ~region & ~(mask > 0)[None, :]
        border_error = nrmse(filled[:, region], kspace[:, region])
        assert border_error < 3 * nrmse(filled[:, interior], kspace[:, interior]) and border_error < 0.05


def _sweep(kspace, masks, regularizations):
    reference = rss(np_ifftc(kspace))
    return {
        r: np.mean([psnr(reference, grappa(kspace * m, m, regularization=r)[1]) for m in masks])
        for r in regularizations
    }


def test_default_regularization_is_within_half_a_db_of_the_best(ixi_kspace):
    """The bundled IXI slices at AF 4 (one equispaced offset; every offset in the slow test below)."""
    mask = fastmri_mask(EquispacedMaskFunc(center_fractions=[0.08], accelerations=[4]), ixi_kspace, 1)
    default = psnr(rss(np_ifftc(ixi_kspace)), grappa(ixi_kspace * mask, mask)[1])
    sweep = _sweep(ixi_kspace, [mask], (0, 0.25, 4))
    assert default > max(sweep.values()) - 0.5
    assert default > 50


@pytest.mark.slow
def test_default_regularization_sweep_on_every_offset(ixi_kspace, brain_kspace):
    """Every equispaced offset at AF 4: IXI within 0.5 dB of the best of a sweep; on the real, noisy brain
    slice the default is stable: above the unregularised fit and far above zero filling."""
    regularizations = (0, 0.25, 0.5, 1, 2, 4, 10)
    func = EquispacedMaskFunc(center_fractions=[0.08], accelerations=[4])
    for kspace, name in ((ixi_kspace, "ixi"), (brain_kspace, "brain")):
        masks = [fastmri_mask(func, kspace, offset) for offset in range(4)]
        reference = rss(np_ifftc(kspace))
        sweep = _sweep(kspace, masks, regularizations)
        default = sweep[1]  # the default regularization
        zero_filled = np.mean([psnr(reference, rss(np_ifftc(kspace * m))) for m in masks])
        if name == "ixi":
            assert default > max(sweep.values()) - 0.5
        else:
            assert default > sweep[0] + 0.2 and default > zero_filled + 5
            assert max(sweep.values()) - default < 2


def test_real_brain_slice_is_stable(brain_kspace):
    mask = fastmri_mask(EquispacedMaskFunc(center_fractions=[0.08], accelerations=[4]), brain_kspace, 0)
    reference = rss(np_ifftc(brain_kspace))
    filled, image = grappa(brain_kspace * mask, mask)
    unregularised = grappa(brain_kspace * mask, mask, regularization=0)[1]
    assert np.all(np.isfinite(filled))
    assert psnr(reference, image) > psnr(reference, unregularised) + 0.2
    assert psnr(reference, image) > psnr(reference, rss(np_ifftc(brain_kspace * mask))) + 5


def test_fractional_step_mask(ixi_kspace):
    """XPDNet's equispaced_fraction masks: a kernel per pattern of acquired neighbours (gaps of 5 and 6)."""
    kspace = ixi_kspace[0]
    reference = rss(np_ifftc(kspace))
    func = EquispacedMaskFractionFunc(center_fractions=[0.08], accelerations=[4])
    for offset in (0, 4):
        mask = fastmri_mask(func, kspace, offset)
        assert set(np.diff(np.flatnonzero(mask[:50]))) == {5, 6}
        filled, image = grappa(kspace * mask, mask)
        np.testing.assert_array_equal(filled[:, :, mask > 0], (kspace * mask)[:, :, mask > 0])
        # offset 4: the wrap-around gap of 10 columns leaves 1-column kernels at the edge (28.2 dB; offset 0: 33.9)
        assert psnr(reference, image) > psnr(reference, rss(np_ifftc(kspace * mask))) + 4
    # AF 8 with fastMRI's 4 % centre: 5 ACS columns cannot calibrate gaps of 11 and 12 columns
    mask = fastmri_mask(EquispacedMaskFractionFunc(center_fractions=[0.04], accelerations=[8]), kspace, 0)
    with pytest.raises(ValueError, match="needs an ACS block of at least 1[34] columns.*found 5"):
        grappa(kspace * mask, mask)


def test_fastmri_equispaced_masks_batched_match_per_item(phantom_kspace):
    func = EquispacedMaskFunc(center_fractions=[12 / SIZE], accelerations=[3], seed=0)
    masks = np.stack([fastmri_mask(func, phantom_kspace, offset) for offset in (0, 2)])
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


def test_dead_coil_and_empty_kspace(phantom_kspace):
    """A coil of zeros makes S^H S singular: the solve stays defined and the other coils are still filled."""
    mask = equispaced_mask(4)
    kspace = phantom_kspace.copy()
    kspace[3] = 0
    filled, image = grappa(kspace * mask, mask)
    assert np.all(np.isfinite(filled)) and np.abs(filled[3]).max() < 1e-6 * np.abs(filled).max()
    truth = rss(np_ifftc(kspace))
    assert nrmse(image, truth) < 0.5 * nrmse(rss(np_ifftc(kspace * mask)), truth)
    filled, image = grappa(np.zeros_like(kspace), mask)
    assert not filled.any() and not image.any()


def test_fully_sampled_input_is_returned_unchanged(phantom_kspace):
    filled, image = grappa(phantom_kspace, np.ones(SIZE, np.float32))
    np.testing.assert_array_equal(filled, phantom_kspace)
    np.testing.assert_allclose(image, rss(np_ifftc(phantom_kspace)), rtol=1e-5)


def test_equispaced_pattern():
    assert equispaced_pattern(equispaced_mask(4, offset=3) > 0) == (4, 3, 19, 44)  # column 19 = 3 + 4 * 4 joins the ACS block
    assert equispaced_pattern(np.ones(10, bool)) == (1, 0, 0, 10)


def test_too_few_acs_columns_are_refused(phantom_kspace, ixi_kspace):
    mask = np.zeros(SIZE, np.float32)
    mask[1::4] = 1
    with pytest.raises(ValueError, match="autocalibration"):
        grappa(phantom_kspace * mask, mask)
    # An ACS block (columns 29 to 33) too narrow for the kernel at this acceleration: its span of 4 columns plus
    # 3, for 2 x 80 unknowns on 64 rows.
    narrow = equispaced_mask(4, acs=4)
    with pytest.raises(ValueError, match=r"needs an ACS block of at least 7 columns .*found 5"):
        grappa(phantom_kspace * narrow, narrow)
    # fastMRI's AF 8 with a 4 % centre on 120 columns: 5 ACS columns for gaps of 8
    mask = fastmri_mask(EquispacedMaskFunc(center_fractions=[0.04], accelerations=[8]), ixi_kspace, 0)
    with pytest.raises(ValueError, match="needs an ACS block of at least 10 columns.*found 5"):
        grappa(ixi_kspace * mask, mask)


def test_mask_not_equispaced_is_refused(phantom_kspace):
    rng = np.random.default_rng(0)
    mask = (rng.uniform(size=SIZE) < 0.3).astype(np.float32)
    mask[SIZE // 2 - 12 : SIZE // 2 + 12] = 1
    with pytest.raises(ValueError, match="not equispaced"):
        grappa(phantom_kspace * mask, mask)
    # one column of an equispaced mask missing: a gap of 8 among gaps of 4
    mask = equispaced_mask(4)
    mask[9] = 0
    with pytest.raises(ValueError, match="not equispaced.*4 or 5 columns apart.*5, 13"):
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
    with pytest.raises(ValueError, match="kspace: expected a 3 or 4-dimensional"):
        grappa(phantom_kspace[None, None], mask)
    with pytest.raises(ValueError, match="mask: expected a 1 or 2 or 3-dimensional"):
        grappa(phantom_kspace, np.ones((1, 1, 1, SIZE), np.float32))
    with pytest.raises(ValueError, match="mask has 3 batch items but kspace has 2"):
        grappa(np.stack([phantom_kspace] * 2), np.ones((3, 1, SIZE), np.float32))
    bad = phantom_kspace.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="kspace: expected finite"):
        grappa(bad, mask)
    bad_mask = mask.copy()
    bad_mask[0] = np.nan
    with pytest.raises(ValueError, match="mask: expected finite"):
        grappa(phantom_kspace, bad_mask)
    with pytest.raises(ValueError, match="mask: expected real"):
        grappa(phantom_kspace, mask.astype(np.complex64))
    with pytest.raises(ValueError, match="kernel_size"):
        grappa(phantom_kspace * mask, mask, kernel_size=(4, 2))
    with pytest.raises(ValueError, match="regularization"):
        grappa(phantom_kspace * mask, mask, regularization=-1.0)
    with pytest.raises(ValueError, match="regularization"):
        grappa(phantom_kspace * mask, mask, regularization=float("nan"))
