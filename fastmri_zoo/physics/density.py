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

from . import nufft
from .nufft import (
    NUFFT,
    TABLE_OVERSAMPLING,
    SparseGridding,
    grid_shape_for,
    prepare_traj,
    sparse_gridding,
)

__all__ = ["pipe_menon_density", "radial_density", "normalize_density", "PIPE_MENON_STORED_ENTRIES"]

#: Entries (batch x samples x numpoints**ndim) up to which pipe_menon_density stores its gridding matrix
#: for the iterations: 2**28 entries are 6.4 GB (a 90 x 120 x 120 kooshball at AF 4 has 140M, 3.4 GB).
PIPE_MENON_STORED_ENTRIES = 2**28


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
    return _normalized(dcomp, _gridding(traj, image_shape))


def _gridding(traj: tf.Tensor, image_shape: tuple, numpoints: int = 6, storage: str = "auto") -> SparseGridding:
    """The NUFFT's (``NUFFT``'s defaults: 2x grid, the cached matrices) ``SparseGridding`` of traj on image_shape."""
    return sparse_gridding(traj, image_shape, grid_shape_for(image_shape, 2.0), int(numpoints), TABLE_OVERSAMPLING,
                           storage)


def _normalized(dcomp: tf.Tensor, gridding: SparseGridding) -> tf.Tensor:
    """dcomp float32 (batch, nsamples) divided by (A^H D A 1)[centre], A the NUFFT of ``gridding``.

    (A^H D A 1)[c] = sum_j d_j (A 1)_j conj((A e_c)_j), e_c the image of the centre pixel: one forward
    NUFFT of two images instead of a forward and an adjoint one.
    """
    image_shape = gridding.image_shape
    centre = tf.scatter_nd([[n // 2 for n in image_shape]], tf.ones([1], tf.complex64), image_shape)
    probes = tf.stack([tf.ones(image_shape, tf.complex64), centre])[None]
    samples = gridding.coil_kspace(probes)
    gain = tf.reduce_sum(tf.cast(dcomp, tf.complex64) * samples[:, 0] * tf.math.conj(samples[:, 1]), axis=-1)
    return dcomp / tf.math.real(gain)[:, None]


def pipe_menon_density(traj, image_shape: Sequence[int], num_iterations: int = 10, numpoints: int = 6,
                       max_stored_entries: int = PIPE_MENON_STORED_ENTRIES) -> tf.Tensor:
    """Iterative density weights of Pipe and Menon (1999), as in NC-PDNet.

    d <- d / |G G^H d| from d = 1, with G the Kaiser-Bessel gridding
    interpolation of the NUFFT (2x grid, ``numpoints`` wide, no coil maps):
    the fixed point makes the gridded density flat (G: ``SparseGridding``,
    tfkbnufft's coefficients). The interpolation kernel
    is used rather than the whole NUFFT because the NUFFT's kernel, a
    Dirichlet kernel with negative side lobes, makes the iteration oscillate
    along the trajectory. The weights are then normalised as described in
    the module docstring.

    The 2 ``num_iterations`` products use one matrix G: a trajectory too large
    for the NUFFT's cached TensorFlow matrices (``nufft.MAX_STORED_ENTRIES``,
    e.g. a 3D kooshball) but within ``max_stored_entries`` (batch x samples x
    numpoints**ndim), when eager, stores G as scipy CSR row blocks
    (``SparseGridding`` with ``storage="csr"``, 12 bytes per entry: 1.7 GB for
    648k samples in 3D), about 4x faster per product than recomputing it in
    every product (streamed) and than TensorFlow's sparse products of the
    earlier stored blocks (24 bytes per entry). That matrix stays in
    ``nufft.GRIDDING_CACHE``, so the NUFFTs of the same trajectory that follow
    (simulating or reconstructing k-space) use it too. Past
    ``max_stored_entries``, or inside ``tf.function``, every product is streamed.

    traj: float32 (batch, ndim, nsamples) or (ndim, nsamples); image_shape:
    (H, W) or (D, H, W). Returns float32 (batch, nsamples) or (nsamples,).
    Not XLA-compilable (sparse products).
    """
    image_shape = tuple(int(n) for n in image_shape)
    if num_iterations < 1:
        raise ValueError(f"num_iterations: expected a positive integer, got {num_iterations}.")
    om = tf.stop_gradient(prepare_traj(traj, len(image_shape)))
    batch, _, nsamples = om.shape
    entries = None if None in (batch, nsamples) else batch * nsamples * int(numpoints) ** len(image_shape)
    many_products = entries is not None and nufft.MAX_STORED_ENTRIES < entries <= max_stored_entries
    gridding = _gridding(om, image_shape, numpoints, "csr" if many_products else "auto")
    weights = tf.ones_like(om[:, :1, :], dtype=tf.complex64)
    for _ in range(num_iterations):
        density = tf.abs(gridding.interpolate(gridding.spread(weights)))
        weights = weights / tf.cast(density, tf.complex64)
    # normalize_density's NUFFT has numpoints 6: the iterations' matrices when they are the same.
    normalizing = gridding if int(numpoints) == 6 else _gridding(om, image_shape)
    return _as_input_layout(_normalized(tf.math.real(weights[:, 0]), normalizing), traj)


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
