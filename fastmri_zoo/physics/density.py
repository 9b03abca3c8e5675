"""Density compensation weights for non-Cartesian trajectories.

Every function here returns weights normalised the same way: the
density-compensated adjoint of a constant image reproduces it at the centre
of the field of view,

    (A^H D A 1)[image_shape // 2] = 1,

with A the orthonormal NUFFT of ``nufft.py``. This is the DC gain of the
"adjoint + DCp" reconstruction, so smooth images come back at the right scale
whatever fraction of k-space the trajectory covers (a radial trajectory
covers the inscribed disc only: normalising the point-spread-function peak
instead, i.e. sum(d) = N, would overestimate such images by 4/pi).
A fully sampled Cartesian grid gets weights 1.

traj: float32 (batch, ndim, nsamples) or (ndim, nsamples), radians per pixel
in [-pi, pi]; the weights are float32 (batch, nsamples) or (nsamples,)
following ``traj``.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from .nufft import NUFFT, TABLE_OVERSAMPLING, grid_shape_for, prepare_traj, sparse_gridding

__all__ = ["pipe_menon_density", "radial_density", "normalize_density"]


def _as_input_layout(weights: tf.Tensor, traj) -> tf.Tensor:
    return weights[0] if tf.convert_to_tensor(traj).shape.rank == 2 else weights


def normalize_density(dcomp, traj, image_shape: Sequence[int]) -> tf.Tensor:
    """Scale ``dcomp`` so that (A^H D A 1) equals 1 at the image centre.

    dcomp: float32 (batch, nsamples) or (nsamples,); traj: float32
    (batch, ndim, nsamples) or (ndim, nsamples). Returns float32 (batch,
    nsamples), one scale per batch element.
    """
    image_shape = tuple(int(n) for n in image_shape)
    traj = prepare_traj(traj, len(image_shape))
    dcomp = tf.cast(tf.convert_to_tensor(dcomp), tf.float32)
    if dcomp.shape.rank == 1:
        dcomp = dcomp[None]
    dcomp = tf.broadcast_to(dcomp, tf.shape(traj[:, 0]))
    ones = tf.ones((1,) + image_shape, tf.complex64)
    response = NUFFT(traj, image_shape, dcomp=dcomp).normal_dcomp(ones)
    centre = tuple(n // 2 for n in image_shape)
    gain = tf.math.real(response[(slice(None),) + centre])
    return dcomp / gain[:, None]


def pipe_menon_density(traj, image_shape: Sequence[int], num_iterations: int = 10, numpoints: int = 6) -> tf.Tensor:
    """Iterative density weights of Pipe and Menon (1999), as in NC-PDNet.

    d <- d / |G G^H d| from d = 1, with G the Kaiser-Bessel gridding
    interpolation of the NUFFT (2x grid, ``numpoints`` wide, no coil maps):
    the fixed point makes the gridded density flat (G: ``SparseGridding``,
    tfkbnufft's coefficients). The interpolation kernel
    is used rather than the whole NUFFT because the NUFFT's kernel, a
    Dirichlet kernel with negative side lobes, makes the iteration oscillate
    along the trajectory. The weights are then normalised as described in
    the module docstring.

    traj: float32 (batch, ndim, nsamples) or (ndim, nsamples); image_shape:
    (H, W) or (D, H, W). Returns float32 (batch, nsamples) or (nsamples,).
    Not XLA-compilable (sparse products).
    """
    image_shape = tuple(int(n) for n in image_shape)
    if num_iterations < 1:
        raise ValueError(f"num_iterations: expected a positive integer, got {num_iterations}.")
    om = tf.stop_gradient(prepare_traj(traj, len(image_shape)))
    gridding = sparse_gridding(om, image_shape, grid_shape_for(image_shape, 2.0), int(numpoints), TABLE_OVERSAMPLING)
    weights = tf.ones_like(om[:, :1, :], dtype=tf.complex64)
    for _ in range(num_iterations):
        density = tf.abs(gridding.interpolate(gridding.spread(weights)))
        weights = weights / tf.cast(density, tf.complex64)
    dcomp = normalize_density(tf.math.real(weights[:, 0]), om, image_shape)
    return _as_input_layout(dcomp, traj)


def _readout_spacing(traj: tf.Tensor) -> tf.Tensor:
    """Median distance between consecutive samples: the step along a spoke.

    traj: (batch, ndim, nsamples), shot-major, so jumps between shots are a
    minority that the median ignores. Returns (batch,).
    """
    steps = tf.norm(traj[:, :, 1:] - traj[:, :, :-1], axis=1)
    ordered = tf.sort(steps, axis=-1)
    return ordered[:, tf.shape(ordered)[-1] // 2]


def radial_density(traj, image_shape: Sequence[int]) -> tf.Tensor:
    """Closed-form density weights of a radial (diametric or centre-out) trajectory.

    A sample at radius |k| on one of S spokes with readout step dk stands for
    the area pi |k| dk / S of its ring (2D), or 2 pi |k|^2 dk / S of its shell
    (3D kooshball), so its weight is proportional to |k| (2D) or |k|^2 (3D).
    A sample at the centre shares the central disc (ball) of radius dk / 2
    among the spokes: weight dk / 4 (2D) or dk^2 / 12 (3D). Samples closer to
    the centre than that get the centre weight. Stack-of-stars trajectories
    are not radial in 3D: use the 2D weights per partition.

    traj: float32 (batch, ndim, nsamples) or (ndim, nsamples), shot-major
    (consecutive samples along a spoke; dk is their median distance);
    image_shape: (H, W) or (D, H, W), needed for the normalisation (module
    docstring), which scales with the number of pixels. Returns float32
    (batch, nsamples) or (nsamples,).
    """
    image_shape = tuple(int(n) for n in image_shape)
    ndim = len(image_shape)
    if ndim not in (2, 3):
        raise ValueError(f"image_shape: expected 2 or 3 spatial sizes, got {image_shape}.")
    om = tf.stop_gradient(prepare_traj(traj, ndim))
    spacing = _readout_spacing(om)[:, None]
    radius = tf.norm(om, axis=1)
    if ndim == 2:
        weights = tf.maximum(radius, spacing / 4)
    else:
        weights = tf.maximum(tf.square(radius), tf.square(spacing) / 12)
    return _as_input_layout(normalize_density(weights, om, image_shape), traj)
