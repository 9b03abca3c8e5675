"""Simulate fastMRI-layout k-space from magnitude images.

Recipe, per volume of magnitude images m (slices, H, W):

1. m is made non-negative (|m|) and divided by its maximum, so the volume peaks at 1;
2. a smooth, low-order random phase phi (``smooth_phase``) turns it into the complex image
   x = m exp(i phi);
3. ``simulate_coil_maps`` gives birdcage-like coil sensitivities S_c (the same for every
   slice) normalised so that sum_c |S_c|^2 = 1 at every pixel of the field of view;
4. coil images S_c x, k-space y_c = fftc(S_c x) (centred orthonormal 2D FFT over (H, W));
5. optionally complex Gaussian noise at a given SNR (``add_noise``).

The reference stored as ``reconstruction_rss`` is the root-sum-of-squares of the noiseless
coil images, which equals the normalised magnitude m (the sensitivities are normalised).
With one coil the map is 1 and k-space is single-coil (slices, H, W).

Inputs: NIfTI (``.nii``, ``.nii.gz``), a folder holding one DICOM series, numpy ``.npy`` /
``.npz`` files and in-memory arrays (the readers of :mod:`~fastmri_zoo.data.images`); 3D inputs are
split into 2D slices along ``slice_axis``.
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..checks import check_finite, check_output_path, check_rank
from ..physics import fftc, rss
from ..sampling import volume_seed
from .h5 import write_fastmri_h5
from .images import (  # the readers live in images; re-exported here
    NIFTI_SUFFIXES,
    NUMPY_SUFFIXES,
    load_dicom_series,
    load_magnitude,
    load_nifti,
    load_numpy,
)

__all__ = [
    "load_magnitude",
    "load_nifti",
    "load_dicom_series",
    "load_numpy",
    "smooth_phase",
    "simulate_coil_maps",
    "add_noise",
    "simulate_volume",
    "simulate_files",
]

# ---------------------------------------------------------------------------- simulation


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _grid(shape: Sequence[int]) -> list[np.ndarray]:
    """Coordinates in [-1, 1] along each axis (0 for an axis of size 1), broadcastable to ``shape``."""
    axes = []
    for i, size in enumerate(shape):
        coords = np.linspace(-1.0, 1.0, size) if size > 1 else np.zeros(1)
        view = [1] * len(shape)
        view[i] = size
        axes.append(coords.reshape(view))
    return axes


def smooth_phase(shape: Sequence[int], rng=None, order: int = 2, amplitude: float = np.pi) -> np.ndarray:
    """Smooth random phase, float32 ``shape`` (any rank), in [-amplitude, amplitude].

    A polynomial of total degree <= ``order`` in coordinates scaled to [-1, 1] along
    every axis, with standard-normal coefficients, rescaled so that its largest absolute
    value is ``amplitude`` radians (0 everywhere when it is constant zero).
    """
    shape = tuple(int(s) for s in shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"shape: expected positive sizes, got {shape}.")
    if order < 0:
        raise ValueError(f"order: expected a polynomial degree >= 0, got {order}.")
    rng = _rng(rng)
    coords = _grid(shape)
    exponents = [e for e in np.ndindex(*([order + 1] * len(shape))) if sum(e) <= order]
    coefficients = rng.standard_normal(len(exponents))
    phase = np.zeros(shape)
    for coefficient, exponent in zip(coefficients, exponents):
        term = np.ones(1)
        for axis, power in zip(coords, exponent):
            term = term * axis**power
        phase = phase + coefficient * term
    peak = np.abs(phase).max()
    if peak > 0:
        phase = phase * (amplitude / peak)
    return phase.astype(np.float32)


def simulate_coil_maps(shape: Sequence[int], num_coils: int, rng=None, coil_radius: float = 1.5) -> np.ndarray:
    """Birdcage-like coil sensitivities, complex64 (num_coils, *shape).

    shape: (H, W) or (D, H, W). The coils sit on a circle of radius ``coil_radius``
    (in units of the half field of view) around the centre of the (H, W) plane, evenly
    spaced, the ring turned by a random angle drawn from ``rng`` (None: no rotation);
    in 3D the coils are split into rings of at most 8 spread along D. Coil c sees a pixel
    r with magnitude 1 / |r - p_c| and phase half the angle of r - p_c relative to the
    direction of the centre (a smooth, loop-coil-like pattern). The maps are then divided by sqrt(sum_c |S_c|^2), so that
    sum_c |S_c|^2 = 1 at every pixel; one coil gives a map of ones.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"shape: expected (H, W) or (D, H, W) with positive sizes, got {shape}.")
    if int(num_coils) != num_coils or num_coils < 1:
        raise ValueError(f"num_coils: expected a positive integer, got {num_coils}.")
    num_coils = int(num_coils)
    if coil_radius <= np.sqrt(2) and num_coils > 1:
        raise ValueError(
            f"coil_radius: expected > sqrt(2) (coils outside the field of view), got {coil_radius}."
        )
    if num_coils == 1:
        return np.ones((1,) + shape, np.complex64)
    rotation = 0.0 if rng is None else _rng(rng).uniform(0.0, 2.0 * np.pi)
    coords = _grid(shape)
    y, x = coords[-2], coords[-1]
    z = coords[0] if len(shape) == 3 else None
    num_rings = int(np.ceil(num_coils / 8)) if z is not None else 1
    ring_of_coil = np.arange(num_coils) % num_rings
    ring_depths = np.linspace(-1.0, 1.0, num_rings) if num_rings > 1 else np.zeros(1)
    maps = []
    for coil in range(num_coils):
        angle = rotation + 2.0 * np.pi * coil / num_coils
        dy = y - coil_radius * np.sin(angle)
        dx = x - coil_radius * np.cos(angle)
        distance2 = dy**2 + dx**2
        if z is not None:
            distance2 = distance2 + (z - ring_depths[ring_of_coil[coil]]) ** 2
        # Half the angle of r - p_c seen from the coil, zero at the centre of the object.
        # (every pixel lies within +-90 degrees of that direction, so the angle never wraps)
        phase = 0.5 * np.angle((dx + 1j * dy) * np.exp(-1j * (angle + np.pi)))
        sensitivity = np.exp(1j * phase) / np.sqrt(distance2)
        maps.append(np.broadcast_to(sensitivity, shape))
    maps = np.stack(maps)
    maps = maps / np.sqrt(np.sum(np.abs(maps) ** 2, axis=0, keepdims=True))
    return maps.astype(np.complex64)


def add_noise(kspace: np.ndarray, snr_db: float, rng=None) -> np.ndarray:
    """k-space plus complex white Gaussian noise at ``snr_db`` decibels.

    SNR = mean |y|^2 / sigma^2 over all entries of ``kspace``; the noise n has
    E|n|^2 = sigma^2, split equally between real and imaginary parts. complex64 out.
    """
    kspace = np.asarray(kspace)
    if not np.iscomplexobj(kspace):
        raise ValueError(f"kspace: expected complex values (complex64), got dtype {kspace.dtype}.")
    snr_db = float(snr_db)
    if not np.isfinite(snr_db):
        raise ValueError(f"snr_db: expected a finite number of decibels, got {snr_db}.")
    rng = _rng(rng)
    signal_power = float(np.mean(np.abs(kspace.astype(np.complex128)) ** 2))
    sigma = np.sqrt(signal_power / 10.0 ** (snr_db / 10.0))
    noise = rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape)
    return (kspace + noise * (sigma / np.sqrt(2.0))).astype(np.complex64)


def simulate_volume(
    magnitude,
    coils: int = 8,
    seed=0,
    snr_db: float | None = None,
    chunk_slices: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate Cartesian k-space from magnitude images (see the module docstring).

    magnitude: real (slices, H, W) (complex input is replaced by its modulus).
    coils: number of receive coils (1 = single-coil). seed: int (or a numpy Generator)
    driving the phase, the coil maps and the noise. snr_db: None for noiseless data.
    Returns kspace: complex64 (slices, coils, H, W) (single-coil: (slices, H, W)) and
    reference: float32 (slices, H, W), the RSS of the noiseless coil images.
    """
    magnitude = np.asarray(magnitude)
    check_rank("magnitude", magnitude, 3, "(slices, H, W)")
    magnitude = np.abs(magnitude).astype(np.float32)
    check_finite("magnitude", magnitude)
    peak = float(magnitude.max()) if magnitude.size else 0.0
    if peak <= 0:
        raise ValueError("magnitude: expected an image with some positive values, got all zeros.")
    magnitude = magnitude / peak
    rng = _rng(seed)
    num_slices, height, width = magnitude.shape
    phase = smooth_phase(magnitude.shape, rng)
    maps = simulate_coil_maps((height, width), coils, rng)
    kspace = np.empty((num_slices, coils, height, width), np.complex64)
    reference = np.empty((num_slices, height, width), np.float32)
    for start in range(0, num_slices, chunk_slices):
        stop = min(start + chunk_slices, num_slices)
        image = magnitude[start:stop] * np.exp(1j * phase[start:stop])
        coil_images = (image[:, None] * maps[None]).astype(np.complex64)
        kspace[start:stop] = fftc(coil_images, 2).numpy()
        reference[start:stop] = rss(coil_images, axis=1).numpy()
    if snr_db is not None:
        kspace = add_noise(kspace, snr_db, rng)
    if coils == 1:
        kspace = kspace[:, 0]
    return kspace, reference


def _output_stem(source, index: int) -> str:
    if not isinstance(source, (str, os.PathLike)):
        return f"array_{index:03d}"
    name = os.path.basename(os.path.normpath(os.fspath(source)))
    for suffix in NIFTI_SUFFIXES + NUMPY_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def simulate_files(
    inputs: Iterable,
    output_dir: str | os.PathLike,
    coils: int = 8,
    seed: int = 0,
    snr_db: float | None = None,
    slice_axis: int = -1,
    progress: bool = True,
    slices: slice | None = None,
) -> list[str]:
    """Simulate one fastMRI-layout ``.h5`` file per input; returns the paths written.

    inputs: paths (NIfTI, DICOM series folder, ``.npy`` / ``.npz``) or arrays (2D or 3D);
    an array is named ``array_000``, ``array_001``, ... by its position. output_dir is
    created if needed; the output is ``<input name without extension>.h5`` (a suffix
    ``_1``, ``_2``, ... is added when two inputs share a name). Each file gets its own
    generator, ``numpy.random.default_rng(volume_seed(output file name, seed))``, so its
    data do not depend on the other inputs. Files hold ``kspace``, ``reconstruction_rss`` and the attributes
    ``acquisition="simulated"``, ``max``, ``norm``, ``coils``, ``seed``, ``snr_db``
    (NaN when noiseless) and ``source``. slices: keep only these slices of each volume
    (e.g. ``slice(20, 70)`` to drop the empty slices at the edges of a head volume).
    """
    inputs = list(inputs) if not isinstance(inputs, (str, os.PathLike, np.ndarray)) else [inputs]
    if not inputs:
        raise ValueError("inputs: expected at least one image file, folder or array, got none.")
    if int(coils) != coils or coils < 1:
        raise ValueError(f"coils: expected a positive integer, got {coils}.")
    output_dir = os.fspath(output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"output_dir: expected a folder for the .h5 files, got the file {output_dir!r}.")
    # Check every input exists before spending time on the first ones.
    for source in inputs:
        if isinstance(source, (str, os.PathLike)) and not os.path.exists(source):
            raise FileNotFoundError(f"inputs: no such file or folder: {os.fspath(source)!r}")
    os.makedirs(output_dir, exist_ok=True)
    written: list[str] = []
    used: set[str] = set()
    # delay: no progress bar before the first file is read, so that an unreadable one gives one line
    for index, source in enumerate(tqdm(inputs, desc="simulate", unit="file", disable=not progress, delay=2)):
        stem = _output_stem(source, index)
        name, counter = f"{stem}.h5", 0
        while name in used:
            counter += 1
            name = f"{stem}_{counter}.h5"
        used.add(name)
        magnitude = load_magnitude(source, slice_axis)
        if slices is not None:
            kept = magnitude[slices]
            if kept.shape[0] == 0:
                raise ValueError(
                    f"slices: {slices} keeps no slice of {os.fspath(source) if isinstance(source, (str, os.PathLike)) else name} "
                    f"which has {magnitude.shape[0]} slices along axis {slice_axis}."
                )
            magnitude = kept
        rng = np.random.default_rng(volume_seed(name, seed))
        kspace, reference = simulate_volume(magnitude, int(coils), rng, snr_db)
        source_name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else name
        sources = {"input": source_name} if isinstance(source, (str, os.PathLike)) else {}
        path = write_fastmri_h5(
            check_output_path("output", os.path.join(output_dir, name), sources),
            kspace,
            reference,
            acquisition="simulated",
            extra={
                "coils": int(coils),
                "seed": int(seed),
                "snr_db": float("nan") if snr_db is None else float(snr_db),
                "source": os.path.basename(os.path.normpath(source_name)),
            },
        )
        written.append(path)
    return written
