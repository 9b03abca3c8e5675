"""GRAPPA (Griswold et al. 2002) for equispaced multicoil Cartesian k-space with an ACS block.

numpy only. Each missing phase-encoding column (last axis) is a linear
combination, learned on the fully sampled autocalibration (ACS) block, of the
acquired neighbours of all coils: ``kernel_size = (readout, phase)`` points,
by default 5 readout points on each of the 2 acquired columns that bracket the
missing one (at distances -r and R - r for the r-th missing column of each
period of R). One set of weights per r = 1 .. R - 1.

Calibration: for each r, the source matrix S (one row per target point in the
ACS block, coils x phase x readout columns) and the targets T (coils columns)
give the weights W = (S^H S + lam I)^-1 S^H T, a Tikhonov-regularised least
squares with ``lam = regularization * sigma_max(S)^2``: the regularisation is
relative to the largest eigenvalue of S^H S, so it does not depend on the scale
of the k-space.
"""

from __future__ import annotations

import numpy as np

from ..checks import check_complex, check_finite, check_rank, check_same_dim, check_scalar

__all__ = ["grappa", "equispaced_pattern"]


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


def equispaced_pattern(columns, min_acs: int = 2) -> tuple[int, int, int, int]:
    """(acceleration R, offset, acs_start, acs_stop) of a sampled-column pattern.

    columns: bool (W,). The ACS block is the run of sampled columns containing
    W // 2 (``acs_start <= c < acs_stop``); outside it the sampled columns must
    be exactly ``offset, offset + R, ...`` (fastMRI's equispaced masks). A fully
    sampled pattern gives R = 1. Raises a ValueError otherwise, or if the ACS
    block has fewer than ``min_acs`` columns.
    """
    columns = np.asarray(columns, bool)
    width = columns.size
    centre = width // 2
    if columns.all():
        return 1, 0, 0, width
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
    outside = np.flatnonzero(columns)
    outside = outside[(outside < start) | (outside >= stop)]
    gaps = np.concatenate([np.diff(outside[outside < start]), np.diff(outside[outside >= stop])])
    if gaps.size == 0:
        raise ValueError(
            "mask: expected equispaced sampled columns outside the ACS block (at least two on one side), "
            f"got {outside.size} sampled column(s) outside it."
        )
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


def _source_offsets(r: int, acceleration: int, n_phase: int) -> np.ndarray:
    """Column offsets of the acquired source columns around the r-th missing column of a period."""
    first = -((n_phase - 1) // 2)
    return np.arange(first, first + n_phase) * acceleration - r


def _gather(kspace: np.ndarray, columns: np.ndarray, offsets: np.ndarray, n_readout: int) -> np.ndarray:
    """Source rows: kspace (coils, H', W') padded as needed; for each target column c and each
    readout window, coils x len(offsets) x n_readout values -> (windows * len(columns), sources)."""
    windows = np.lib.stride_tricks.sliding_window_view(kspace, n_readout, axis=1)  # (coils, Hv, W', n_readout)
    picked = windows[:, :, columns[:, None] + offsets[None, :], :]  # (coils, Hv, n, n_phase, n_readout)
    picked = picked.transpose(1, 2, 0, 3, 4)
    return picked.reshape(picked.shape[0] * picked.shape[1], -1)


def _grappa_item(kspace, columns, n_readout, n_phase, regularization):
    coils, height, width = kspace.shape
    acceleration, offset, start, stop = equispaced_pattern(columns)
    if acceleration == 1:
        return kspace.copy()
    span = (n_phase - 1) * acceleration + 1
    if stop - start < span + 1:
        raise ValueError(
            f"mask: GRAPPA with {n_phase} source columns at acceleration {acceleration} needs an ACS block of at "
            f"least {span + 1} columns; found {stop - start} (columns {start} to {stop - 1})."
        )
    half = n_readout // 2
    data = kspace.astype(np.complex128)
    acs = data[:, :, start:stop]
    pad = (n_phase // 2 + 1) * acceleration
    padded = np.pad(data, ((0, 0), (half, half), (pad, pad)))
    filled = data.copy()
    all_columns = np.arange(width)
    for r in range(1, acceleration):
        offsets = _source_offsets(r, acceleration, n_phase)
        targets = np.arange(stop - start)
        targets = targets[(targets + offsets.min() >= 0) & (targets + offsets.max() < stop - start)]
        sources = _gather(acs, targets, offsets, n_readout)
        values = acs[:, half : height - half, targets].transpose(1, 2, 0).reshape(-1, coils)
        gram = sources.conj().T @ sources
        lam = regularization * np.linalg.eigvalsh(gram)[-1]
        weights = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), sources.conj().T @ values)
        missing = all_columns[~columns & ((all_columns - offset) % acceleration == r)]
        if missing.size == 0:
            continue
        estimate = _gather(padded, missing + pad, offsets, n_readout) @ weights  # (H * n, coils)
        filled[:, :, missing] = estimate.reshape(height, missing.size, coils).transpose(2, 0, 1)
    return filled


def grappa(
    kspace,
    mask,
    kernel_size: tuple[int, int] = (5, 2),
    regularization: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """GRAPPA reconstruction of equispaced multicoil Cartesian k-space.

    kspace: complex (coils, H, W) or (batch, coils, H, W), zero where not sampled;
    mask: real, its last axis the W phase-encoding columns: (W,), (1, W),
    (batch, 1, W) or (batch, H, W). The sampled columns must be a fully sampled
    ACS block around W // 2 plus every R-th column outside it (see
    :func:`equispaced_pattern`). kernel_size: (readout points, odd; acquired
    source columns). regularization: Tikhonov weight relative to the largest
    eigenvalue of S^H S (see the module docstring).

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
