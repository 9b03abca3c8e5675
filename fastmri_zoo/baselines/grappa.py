"""GRAPPA (Griswold et al. 2002) for equispaced multicoil Cartesian k-space with an ACS block.

numpy only. Each missing phase-encoding column (last axis) is a linear
combination, learned on the fully sampled autocalibration (ACS) block, of
acquired neighbours in all coils: ``kernel_size = (readout, phase)`` points, by
default 5 readout points on each of the 2 acquired columns nearest the missing
one, one on each side (in general the ``ceil(phase / 2)`` nearest acquired
columns on the left and the ``phase // 2`` nearest on the right).

Kernels: one per distinct pattern of source offsets. On an integer-step mask
(fastMRI's ``equispaced``) the columns between two outer acquired ones give the
R - 1 patterns (-r, R - r), r = 1 .. R - 1; the columns next to the ACS block
have closer sources (ACS columns) and their own kernels. A fractional-step mask
(``equispaced_fraction``, spacing alternating between g and g + 1 columns) gives
the patterns of both spacings, so it needs no special case.

Border: a discrete k-space is periodic (it is the DFT of the coil images), and
so is the linear relation between coils that GRAPPA learns, so sources beyond
the first or last readout row, or beyond the first or last phase-encoding
column, are taken circularly: every point, the border included, is estimated
with a full kernel (calibration rows wrap around the readout axis as well).
Where the wrap-around spacing of the outermost columns is too wide for the ACS
block (a step that does not divide W), the farthest source columns of those
kernels are dropped until the ACS block can calibrate them; any other kernel it
cannot calibrate is an error.

Calibration: for a pattern, the source matrix S (one row per ACS position where
the pattern fits: readout row x target column; coils x source columns x readout
points columns) and the targets T (coils columns) give the Tikhonov-regularised
least squares W = (S^H S + lam I)^-1 S^H T with ``lam = regularization *
lambda_min(S^H S)``. For noisy data the smallest eigenvalue of S^H S is the
noise floor of the calibration, ~ m sigma^2 for m rows and noise variance
sigma^2 per sample; for noiseless (simulated) data it is nearly 0. So the
regularisation follows the noise level and not the scale of the k-space, and a
clean acquisition is barely regularised. Each pattern needs at least twice as
many calibration rows as unknowns (2 x coils x phase x readout).

The default ``regularization = 1`` (lam = the noise floor) comes from this
sweep at fastMRI's AF 4 setting (centre fraction 0.08; PSNR in dB over the
volume against the RSS of the fully sampled k-space, mean over the mask
offsets; ``python bench/grappa.py`` prints it):

=====================================  =====  =====  =====  =====  =====  =====  =====  ===========
regularization                         0      0.25   0.5    1      2      4      10     zero-filled
=====================================  =====  =====  =====  =====  =====  =====  =====  ===========
IXI, 3 slices x 8 coils, equispaced    56.38  56.41  56.32  55.99  55.30  54.35  53.08  24.09
real 4-coil brain, equispaced          31.24  31.48  31.67  31.97  32.37  32.79  33.09  25.58
IXI, equispaced_fraction (step 5.5)    34.18  34.06  33.90  33.61  33.15  32.53  31.49  23.61
brain, equispaced_fraction (5.36)      23.46  24.37  25.03  25.97  27.06  28.07  28.88  25.07
=====================================  =====  =====  =====  =====  =====  =====  =====  ===========

The IXI slices (``samples/ixi_heldout_multicoil.h5``) are simulated without
noise, so any regularisation costs a little (0.42 dB at the default); on the
real, noisy brain slice it pays (best at 10, 1.1 dB above the default; its 4
coils cannot support an outer step above 5 columns, where only strong
regularisation stays above zero filling). On the 15 held-out IXI volumes (750
slices, equispaced AF 4) the default gives 57.58 dB against 57.87 unregularised.
Relative to the largest eigenvalue instead (this function's rule before), the IXI
slices need less than 1e-10 (55.7 dB; 1e-3 gives 27.8) while the brain slice is
best at 1e-3 (33.1): the largest eigenvalue measures the signal, not the noise.
"""

from __future__ import annotations

import numpy as np

from ..checks import check_complex, check_finite, check_rank, check_same_dim, check_scalar

__all__ = ["grappa", "equispaced_pattern", "border_points"]

#: calibration rows per unknown weight that a kernel needs (least squares with fewer overfits the ACS)
_ROWS_PER_UNKNOWN = 2
#: complex values of gathered sources held at once when a kernel is applied (2 ** 21: 32 MB)
_CHUNK_ELEMENTS = 2**21


def _ifftc(x: np.ndarray) -> np.ndarray:
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(x, axes=axes), norm="ortho"), axes=axes)


def _mask_columns(mask, batch: int, width: int) -> np.ndarray:
    """bool (batch, W): a column is sampled when every row of the mask is."""
    mask = np.asarray(mask)
    if np.iscomplexobj(mask):
        raise ValueError(f"mask: expected real values (0/1), got dtype {mask.dtype}.")
    check_rank("mask", mask, (1, 2, 3), "(W,), (1, W), (batch, 1, W) or (batch, H, W)")
    check_same_dim("mask", mask.shape[-1], "kspace", width, "columns (phase-encoding width W)")
    check_finite("mask", mask)
    columns = mask > 0
    if columns.ndim == 3:
        columns = columns.all(axis=1)
    columns = columns.reshape(-1, width)
    if columns.shape[0] not in (1, batch):
        raise ValueError(f"mask has {columns.shape[0]} batch items but kspace has {batch}; expected 1 or {batch}.")
    return np.broadcast_to(columns, (batch, width))


def _acs_block(columns: np.ndarray, min_acs: int) -> tuple[int, int]:
    """(acs_start, acs_stop): the run of sampled columns containing W // 2."""
    width = columns.size
    centre = width // 2
    start = stop = centre
    if columns[centre]:
        while start > 0 and columns[start - 1]:
            start -= 1
        while stop < width and columns[stop]:
            stop += 1
    if stop - start < min_acs:
        raise ValueError(
            f"mask: GRAPPA needs a fully sampled autocalibration (ACS) block of at least {min_acs} columns "
            f"around the centre column {centre}; found {stop - start}."
        )
    return start, stop


def _outer_columns(columns: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """(sampled columns outside the ACS block, the gaps between consecutive ones on either side of it)."""
    outside = np.flatnonzero(columns)
    outside = outside[(outside < start) | (outside >= stop)]
    gaps = np.concatenate([np.diff(outside[outside < start]), np.diff(outside[outside >= stop])])
    if gaps.size == 0:
        raise ValueError(
            "mask: expected equispaced sampled columns outside the ACS block (at least two on one side), "
            f"got {outside.size} sampled column(s) outside it."
        )
    return outside, gaps


def equispaced_pattern(columns, min_acs: int = 2) -> tuple[int, int, int, int]:
    """(acceleration R, offset, acs_start, acs_stop) of an integer-step sampled-column pattern.

    columns: bool (W,). The ACS block is the run of sampled columns containing
    W // 2 (``acs_start <= c < acs_stop``); outside it the sampled columns must
    be exactly ``offset, offset + R, ...`` (fastMRI's equispaced masks). A fully
    sampled pattern gives R = 1. Raises a ValueError otherwise, or if the ACS
    block has fewer than ``min_acs`` columns. (:func:`grappa` also takes the
    fractional-step masks, which this function refuses.)
    """
    columns = np.asarray(columns, bool)
    width = columns.size
    if columns.all():
        return 1, 0, 0, width
    start, stop = _acs_block(columns, min_acs)
    outside, gaps = _outer_columns(columns, start, stop)
    acceleration = int(gaps.min())
    offset = int(outside[0] % acceleration)
    expected = np.arange(offset, width, acceleration)
    expected = expected[(expected < start) | (expected >= stop)]
    if not np.array_equal(outside, expected):
        raise ValueError(
            f"mask: not equispaced: outside the ACS block [{start}, {stop}) the sampled columns should be "
            f"every {acceleration}-th column from {offset}, but {np.setxor1d(outside, expected)[:8].tolist()} differ."
        )
    return acceleration, offset, start, stop


def _check_equispaced(columns: np.ndarray, start: int, stop: int) -> None:
    """Outside the ACS block consecutive sampled columns are g or g + 1 apart (one integer g): fastMRI's
    equispaced (integer step) and equispaced_fraction (rounded fractional step) masks; a random mask is refused,
    its many distinct gaps would each need their own kernel."""
    _, gaps = _outer_columns(columns, start, stop)
    step = int(gaps.min())
    sampled = np.flatnonzero(columns)
    wide = np.flatnonzero(np.diff(sampled) > step + 1)
    if gaps.max() > step + 1 or wide.size:
        pairs = [(int(sampled[i]), int(sampled[i + 1])) for i in wide[:4]]
        raise ValueError(
            f"mask: not equispaced: outside the ACS block [{start}, {stop}) consecutive sampled columns should be "
            f"{step} or {step + 1} columns apart (an integer or fractional equispaced step), but the gaps range "
            f"from {step} to {int(np.diff(sampled).max())}" + (f", e.g. between columns {pairs}." if pairs else ".")
        )


def _source_patterns(columns: np.ndarray, n_phase: int) -> dict[tuple[int, ...], np.ndarray]:
    """{source offsets: missing columns}: for each missing column c the offsets d (c + d taken modulo W) of
    its ceil(n_phase / 2) nearest acquired columns on the left and n_phase // 2 nearest on the right."""
    width = columns.size
    acquired = np.flatnonzero(columns)
    missing = np.flatnonzero(~columns)
    left = np.sort((missing[:, None] - acquired[None, :]) % width, axis=1)[:, : n_phase - n_phase // 2]
    right = np.sort((acquired[None, :] - missing[:, None]) % width, axis=1)[:, : n_phase // 2]
    offsets = np.sort(np.concatenate([-left, right], axis=1), axis=1)
    patterns: dict[tuple[int, ...], list[int]] = {}
    for column, row in zip(missing, offsets):
        patterns.setdefault(tuple(int(d) for d in row), []).append(int(column))
    return {key: np.asarray(value) for key, value in patterns.items()}


def _span(offsets) -> int:
    """Columns spanned by a target and its sources, minus 1."""
    return max(max(offsets), 0) - min(min(offsets), 0)


def _calibration_rows(offsets, acs_width: int, height: int) -> int:
    return height * max(acs_width - _span(offsets), 0)


def _kernels(columns, coils, height, n_readout, n_phase, start, stop):
    """[(source offsets, missing columns)]: the patterns, with those of wrapped-around sources trimmed (their
    farthest source dropped) until the ACS block calibrates them; raises when another one cannot be."""
    width, acs_width = columns.size, stop - start
    kernels: dict[tuple[int, ...], list[np.ndarray]] = {}
    for offsets, missing in _source_patterns(columns, n_phase).items():
        unknowns = coils * len(offsets) * n_readout
        if _calibration_rows(offsets, acs_width, height) < _ROWS_PER_UNKNOWN * unknowns:
            wraps = ((missing[:, None] + np.asarray(offsets)[None, :] < 0)
                     | (missing[:, None] + np.asarray(offsets)[None, :] >= width)).any(axis=1)
            if not wraps.all():
                needed = _span(offsets) + -(-_ROWS_PER_UNKNOWN * unknowns // height)
                raise ValueError(
                    f"mask: GRAPPA with {n_phase} source columns {offsets} around column {int(missing[~wraps][0])} "
                    f"and {n_readout} readout points in {coils} coils needs an ACS block of at least {needed} "
                    f"columns ({_ROWS_PER_UNKNOWN} calibration rows per unknown weight); found {acs_width} "
                    f"(columns {start} to {stop - 1}). Use a wider ACS block or a smaller kernel_size."
                )
            trimmed = list(offsets)
            while len(trimmed) > 1 and _calibration_rows(trimmed, acs_width, height) < (
                _ROWS_PER_UNKNOWN * coils * len(trimmed) * n_readout
            ):
                trimmed.remove(max(trimmed, key=abs))
            offsets = tuple(trimmed)
            if _calibration_rows(offsets, acs_width, height) < _ROWS_PER_UNKNOWN * coils * n_readout:
                raise ValueError(
                    f"mask: the ACS block (columns {start} to {stop - 1}) has too few calibration rows "
                    f"({height} readout rows) for a {n_readout}-point kernel in {coils} coils."
                )
        kernels.setdefault(offsets, []).append(missing)
    return [(offsets, np.concatenate(parts)) for offsets, parts in kernels.items()]


def _sources(kspace: np.ndarray, columns: np.ndarray, n_readout: int) -> np.ndarray:
    """Source rows (H, n, coils * offsets * n_readout) of n targets: columns int (n, offsets) of kspace
    (coils, H, W'), and at each readout row h the n_readout rows centred on it, wrapped around."""
    height, half = kspace.shape[1], n_readout // 2
    picked = kspace[:, :, columns]  # (coils, H, n, offsets)
    picked = np.concatenate([picked[:, height - half :], picked, picked[:, :half]], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(picked, n_readout, axis=1)  # (coils, H, n, offsets, n_readout)
    return windows.transpose(1, 2, 0, 3, 4).reshape(height, columns.shape[0], -1)


def _calibrate(acs: np.ndarray, offsets, n_readout: int, regularization: float) -> np.ndarray:
    """Weights complex128 (coils * len(offsets) * n_readout, coils) of one pattern, from acs (coils, H, A)."""
    coils, _, acs_width = acs.shape
    offsets = np.asarray(offsets)
    targets = np.arange(max(-offsets.min(), 0), acs_width - max(offsets.max(), 0))
    sources = _sources(acs, targets[:, None] + offsets[None, :], n_readout)
    sources = sources.reshape(-1, sources.shape[-1])
    values = acs[:, :, targets].transpose(1, 2, 0).reshape(-1, coils)
    gram = sources.conj().T @ sources
    eigenvalues = np.linalg.eigvalsh(gram)
    if eigenvalues[-1] <= 0:
        return np.zeros((sources.shape[1], coils), np.complex128)
    # the floor keeps the solve defined when S^H S is singular (a dead coil); 1e-12 leaves noiseless data intact
    lam = max(regularization * max(eigenvalues[0], 0.0), 1e-12 * eigenvalues[-1])
    return np.linalg.solve(gram + lam * np.eye(gram.shape[0]), sources.conj().T @ values)


def _apply(kspace: np.ndarray, missing: np.ndarray, offsets, weights: np.ndarray, n_readout: int) -> np.ndarray:
    """Estimate (coils, H, len(missing)) of the missing columns: the kernel applied with circular sources."""
    coils, height, width = kspace.shape
    estimate = np.empty((height, missing.size, coils), np.complex128)
    # a few columns at a time keeps the gathered sources near _CHUNK_ELEMENTS whatever the size of the k-space
    chunk = max(1, _CHUNK_ELEMENTS // (height * weights.shape[0]))
    for first in range(0, missing.size, chunk):
        columns = (missing[first : first + chunk, None] + np.asarray(offsets)[None, :]) % width
        estimate[:, first : first + chunk] = _sources(kspace, columns, n_readout) @ weights
    return estimate.transpose(2, 0, 1)


def _grappa_item(kspace, columns, n_readout, n_phase, regularization):
    coils, height, width = kspace.shape
    if columns.all():
        return kspace.copy()
    start, stop = _acs_block(columns, 2)
    _check_equispaced(columns, start, stop)
    if np.count_nonzero(columns) < n_phase:
        raise ValueError(
            f"kernel_size: {n_phase} source columns, but the mask samples only {np.count_nonzero(columns)} columns."
        )
    kernels = _kernels(columns, coils, height, n_readout, n_phase, start, stop)
    data = kspace.astype(np.complex128)
    acs = data[:, :, start:stop]
    filled = data.copy()
    for offsets, missing in kernels:
        weights = _calibrate(acs, offsets, n_readout, regularization)
        filled[:, :, missing] = _apply(data, missing, offsets, weights, n_readout)
    return filled


def grappa(
    kspace,
    mask,
    kernel_size: tuple[int, int] = (5, 2),
    regularization: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """GRAPPA reconstruction of equispaced multicoil Cartesian k-space.

    kspace: complex (coils, H, W) or (batch, coils, H, W), zero where not sampled;
    mask: real, its last axis the W phase-encoding columns: (W,), (1, W),
    (batch, 1, W) or (batch, H, W). The sampled columns must be a fully sampled
    ACS block around W // 2 plus equispaced columns outside it, with an integer
    step (fastMRI's ``equispaced``) or a rounded fractional one
    (``equispaced_fraction``: gaps of g and g + 1 columns). kernel_size:
    (readout points, odd; acquired source columns). regularization: Tikhonov
    weight relative to the smallest eigenvalue of S^H S, the noise floor of the
    calibration (0: plain least squares; the module docstring has the sweep
    behind the default).

    Returns ``(filled_kspace, image)``: complex64 k-space of the input's shape in
    which every missing column is estimated and the acquired ones (ACS included)
    are left untouched, and the float32 root-sum-of-squares image (batch, H, W)
    (or (H, W) for an unbatched input) of its centred orthonormal inverse FFT.
    """
    kspace = np.asarray(kspace)
    check_complex("kspace", kspace)
    check_rank("kspace", kspace, (3, 4), "(coils, H, W) or (batch, coils, H, W), multicoil")
    unbatched = kspace.ndim == 3
    batch_kspace = kspace[None] if unbatched else kspace
    if batch_kspace.shape[1] < 2:
        raise ValueError(
            f"kspace: GRAPPA needs multicoil data (at least 2 coils on axis {0 if unbatched else 1}), "
            f"got shape {kspace.shape}."
        )
    check_finite("kspace", kspace)
    if (
        len(kernel_size) != 2
        or int(kernel_size[0]) != kernel_size[0]
        or int(kernel_size[1]) != kernel_size[1]
        or kernel_size[0] < 1
        or kernel_size[0] % 2 == 0
        or kernel_size[1] < 1
    ):
        raise ValueError(
            f"kernel_size: expected (odd readout size >= 1, source columns >= 1), got {kernel_size!r}."
        )
    regularization = check_scalar("regularization", regularization, at_least=0)
    n_readout, n_phase = int(kernel_size[0]), int(kernel_size[1])
    batch, _, height, width = batch_kspace.shape
    if height < n_readout:
        raise ValueError(f"kspace: {height} readout rows is fewer than the kernel's {n_readout}.")
    columns = _mask_columns(mask, batch, width)
    filled = np.stack(
        [_grappa_item(batch_kspace[b], columns[b], n_readout, n_phase, regularization) for b in range(batch)]
    ).astype(np.complex64)
    image = np.sqrt((np.abs(_ifftc(filled)) ** 2).sum(axis=1)).astype(np.float32)
    if unbatched:
        return filled[0], image[0]
    return filled, image


def border_points(columns: np.ndarray, height: int, half: int = 2) -> np.ndarray:
    """bool (H, W): the missing points whose kernel (``half`` rows above and below) reaches past
    the edge of k-space: the first and last ``half`` readout rows and the columns outside the
    acquired span. columns: bool (W,), the acquired columns. For checking how GRAPPA treats the
    border (tests, ``bench/grappa.py``)."""
    columns = np.asarray(columns, bool)
    acquired = np.flatnonzero(columns)
    region = np.zeros((height, columns.size), bool)
    region[:half] = region[height - half :] = True
    region[:, : acquired.min()] = region[:, acquired.max() + 1 :] = True
    region[:, columns] = False
    return region
