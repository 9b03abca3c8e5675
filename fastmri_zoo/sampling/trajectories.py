"""Non-Cartesian k-space trajectories: 2D radial and spiral, 3D radial (kooshball).

Every generator returns ``traj``: float32 (ndim, nsamples), the layout the NUFFT
operators read, with nsamples = num_shots * samples_per_shot stored shot by shot
(sample j of shot k at index k * samples_per_shot + j), in radians per pixel, axis
order of the image axes ((k_H, k_W) in 2D, (k_D, k_H, k_W) in 3D).
``traj.reshape(ndim, num_shots, samples_per_shot)`` splits it into shots; that
split layout is for inspection only: an operator would read a 3-axis array as a
batch (batch, ndim, nsamples), so it refuses one whose axis -2 is not ndim and
cannot tell it from a batch when num_shots == ndim. Every value lies in [-pi, pi]:
float32(pi) is slightly larger than pi, so samples that would land on +-pi
are stored as the largest float32 below pi (an error of 2e-7 rad).

The acceleration factor is the one of the NC-PDNet paper: AF = N / num_shots
in 2D (N the image width) and AF = N * Nz / num_shots in 3D (N = W, Nz = D),
so ``num_shots = round(N / AF)``, resp. ``round(W * D / AF)``.

Along each radial spoke the samples are r_j = (j - S // 2) * 2 pi / S,
j = 0 .. S - 1 (S = samples_per_shot): they span [-pi, pi) for even S, and the
k-space centre (0, 0) is sample S // 2 of every spoke for any S.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..checks import check_scalar

__all__ = [
    "GOLDEN_ANGLE",
    "radial_trajectory",
    "spiral_trajectory",
    "kooshball_trajectory",
    "trajectory_acceleration",
]

#: Golden-angle increment of 2D radial sampling, pi (sqrt(5) - 1) / 2 rad = 111.246... degrees.
GOLDEN_ANGLE = np.pi * (np.sqrt(5.0) - 1.0) / 2.0

# Largest float32 not above pi: float32(pi) = 3.14159274 > pi.
_PI32 = np.nextafter(np.float32(np.pi), np.float32(0.0))


def _flat_float32(traj: np.ndarray) -> np.ndarray:
    """(ndim, num_shots, S) float64 -> float32 (ndim, num_shots * S), shot by shot, within [-pi, pi]."""
    traj = np.clip(traj.astype(np.float32), -_PI32, _PI32)
    return traj.reshape(traj.shape[0], -1)


def _num_shots(num_lines: int, acceleration: float, what: str) -> int:
    acceleration = check_scalar("acceleration", acceleration, above=0.0)
    num_shots = int(round(num_lines / acceleration))
    if num_shots < 1:
        raise ValueError(
            f"acceleration: {acceleration:g} leaves no shot for {what} = {num_lines} "
            f"(num_shots = round({num_lines} / {acceleration:g}) = 0); expected an "
            f"acceleration < {2 * num_lines}."
        )
    return num_shots


def _samples_per_shot(samples_per_shot, oversampling: float, size: int) -> int:
    if samples_per_shot is None:
        oversampling = check_scalar("oversampling", oversampling, above=0.0)
        samples_per_shot = int(round(oversampling * size))
        if samples_per_shot < 2:
            raise ValueError(
                f"oversampling: {oversampling:g} x {size} gives {samples_per_shot} samples per "
                "shot; expected at least 2."
            )
        return samples_per_shot
    return check_scalar("samples_per_shot", samples_per_shot, integer=True, at_least=2)


def _spoke_radii(samples_per_shot: int) -> np.ndarray:
    """Positions along a diameter, float64 (S,): (j - S // 2) 2 pi / S, 0 at index S // 2."""
    return (np.arange(samples_per_shot) - samples_per_shot // 2) * (2.0 * np.pi / samples_per_shot)


def radial_trajectory(
    image_size: int,
    acceleration: float,
    golden_angle: bool = False,
    oversampling: float = 2.0,
    samples_per_shot: int | None = None,
) -> np.ndarray:
    """2D radial spokes, each a full diameter through the k-space centre.

    image_size: N, the image width (pixels); acceleration: AF > 0, num_shots = round(N / AF).
    golden_angle: spoke k at angle k * 111.246... deg (mod 180 deg) instead of the uniform pi k / num_shots.
    samples_per_shot: S, defaults to round(oversampling * N); sample S // 2 of every spoke is (0, 0).
    Spoke angle theta is measured from the k_W axis: (k_H, k_W) = r (sin theta, cos theta).
    Returns traj: float32 (2, num_shots * S) in [-pi, pi], spoke by spoke.
    """
    image_size = check_scalar("image_size", image_size, integer=True, at_least=2)
    num_shots = _num_shots(image_size, acceleration, "image_size")
    samples = _samples_per_shot(samples_per_shot, oversampling, image_size)
    shots = np.arange(num_shots)
    if golden_angle:
        angles = np.mod(shots * GOLDEN_ANGLE, np.pi)
    else:
        angles = shots * (np.pi / num_shots)
    radii = _spoke_radii(samples)
    traj = np.stack(
        [np.sin(angles)[:, None] * radii, np.cos(angles)[:, None] * radii]
    )
    return _flat_float32(traj)


def spiral_trajectory(
    image_size: int,
    acceleration: float,
    oversampling: float = 2.0,
    samples_per_shot: int | None = None,
    density_exponent: float = 1.5,
    num_turns: float | None = None,
) -> np.ndarray:
    """2D variable-density spiral interleaves starting at the k-space centre.

    Interleave k (k = 0 .. num_shots - 1, num_shots = round(N / AF)) is
    r(t) = pi t**p, phi(t) = 2 pi (num_turns t + k / num_shots), t = j / (S - 1),
    (k_H, k_W) = r (sin phi, cos phi): it starts at (0, 0) and ends at radius pi.
    p = density_exponent: p = 1 is the Archimedean spiral (radial gap between turns
    constant); p > 1 packs the turns towards the centre. Samples per unit area fall
    off as r**(1 / p - 2), i.e. the density decreases with radius for every p > 1 / 2.

    num_turns: turns of each interleave; defaults to p / 2, which makes the radial
    gap between neighbouring interleaves at the edge, pi p / (num_turns num_shots),
    the Nyquist spacing 2 pi / N when AF = 1 (the textbook N / (2 interleaves) turns
    for p = 1), so an acceleration AF widens it AF times.
    samples_per_shot: S, defaults to round(oversampling * N).
    Returns traj: float32 (2, num_shots * S) in [-pi, pi], interleave by interleave.
    """
    image_size = check_scalar("image_size", image_size, integer=True, at_least=2)
    num_shots = _num_shots(image_size, acceleration, "image_size")
    samples = _samples_per_shot(samples_per_shot, oversampling, image_size)
    density_exponent = check_scalar("density_exponent", density_exponent, above=0.0)
    if num_turns is None:
        num_turns = density_exponent / 2.0
    num_turns = check_scalar("num_turns", num_turns, above=0.0)
    t = np.linspace(0.0, 1.0, samples)
    radii = np.pi * t**density_exponent
    phases = 2.0 * np.pi * (num_turns * t[None, :] + np.arange(num_shots)[:, None] / num_shots)
    traj = np.stack([radii * np.sin(phases), radii * np.cos(phases)])
    return _flat_float32(traj)


def _fibonacci_hemisphere(num_directions: int) -> np.ndarray:
    """Unit vectors, float64 (3, M), spread evenly over the hemisphere k_D > 0.

    cos(polar angle) = 1 - (i + 1/2) / M takes M equal steps, so each direction
    owns the same area; the azimuth advances by the golden angle 2 pi (2 - phi)
    (phi the golden ratio), which keeps neighbouring directions apart.
    """
    index = np.arange(num_directions)
    cos_polar = 1.0 - (index + 0.5) / num_directions
    sin_polar = np.sqrt(1.0 - cos_polar**2)
    azimuth = index * (np.pi * (3.0 - np.sqrt(5.0)))
    return np.stack([cos_polar, sin_polar * np.sin(azimuth), sin_polar * np.cos(azimuth)])


def kooshball_trajectory(
    volume_shape: tuple[int, int, int],
    acceleration: float,
    oversampling: float = 2.0,
    samples_per_shot: int | None = None,
) -> np.ndarray:
    """3D radial spokes ("kooshball"), each a full diameter through the centre.

    volume_shape: (D, H, W); acceleration: AF > 0, num_shots = round(W * D / AF).
    Spoke directions are a Fibonacci lattice on the hemisphere k_D > 0 (a diameter
    covers both hemispheres), so the spokes are spread uniformly over the sphere.
    samples_per_shot: S, defaults to round(oversampling * max(D, H, W)); sample
    S // 2 of every spoke is the origin.
    Returns traj: float32 (3, num_shots * S) in [-pi, pi], axes (k_D, k_H, k_W), spoke by spoke.
    """
    if isinstance(volume_shape, (int, np.integer)) or len(tuple(volume_shape)) != 3:
        raise ValueError(
            f"volume_shape: expected (D, H, W), three sizes, got {volume_shape!r}."
        )
    depth, height, width = (
        check_scalar(f"volume_shape[{i}]", s, integer=True, at_least=2)
        for i, s in enumerate(volume_shape)
    )
    num_shots = _num_shots(width * depth, acceleration, "W * D")
    samples = _samples_per_shot(samples_per_shot, oversampling, max(depth, height, width))
    directions = _fibonacci_hemisphere(num_shots)
    traj = directions[:, :, None] * _spoke_radii(samples)[None, None, :]
    return _flat_float32(traj)


def trajectory_acceleration(
    traj: np.ndarray, image_size: int | Sequence[int], samples_per_shot: int
) -> float:
    """Realised acceleration factor of a trajectory float32 (ndim, num_shots * samples_per_shot).

    image_size: N (2D), (H, W) (2D, N = W) or (D, H, W) (3D); samples_per_shot: S, so that
    num_shots = nsamples / S.
    Returns N / num_shots in 2D and W * D / num_shots in 3D.
    """
    traj = np.asarray(traj)
    if traj.ndim != 2:
        raise ValueError(
            f"traj: expected the generators' layout (ndim, nsamples), got shape {traj.shape}; a "
            "trajectory split into shots, (ndim, num_shots, samples_per_shot), is flattened with "
            "traj.reshape(ndim, -1), and a batch (batch, ndim, nsamples) has one acceleration per "
            "trajectory."
        )
    if isinstance(image_size, (int, np.integer)):
        size = (int(image_size),)
    else:
        size = tuple(image_size)
    if len(size) not in (1, 2, 3):
        raise ValueError(
            f"image_size: expected N, (H, W) or (D, H, W), got {image_size!r}."
        )
    size = tuple(
        check_scalar(f"image_size[{i}]", s, integer=True, at_least=1) for i, s in enumerate(size)
    )
    ndim = 3 if len(size) == 3 else 2
    if traj.shape[0] != ndim:
        raise ValueError(
            f"traj: expected {ndim} coordinates on axis 0 for image_size {image_size!r}, "
            f"got shape {traj.shape}."
        )
    samples_per_shot = check_scalar("samples_per_shot", samples_per_shot, integer=True, at_least=1)
    nsamples = traj.shape[1]
    if nsamples == 0 or nsamples % samples_per_shot:
        raise ValueError(
            f"samples_per_shot: expected a divisor of the {nsamples} samples of traj (shape "
            f"{traj.shape}), got {samples_per_shot}."
        )
    num_lines = size[-1] * size[0] if ndim == 3 else size[-1]
    return num_lines / (nsamples // samples_per_shot)
