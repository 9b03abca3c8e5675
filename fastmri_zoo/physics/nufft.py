"""Non-uniform FFT (NUFFT) acquisitions: single-coil and multicoil (SENSE).

Conventions (the whole package uses them):

- ``traj``: float32 (batch, ndim, nsamples), or (ndim, nsamples) shared by the
  batch. Units are radians per pixel and every value lies in [-pi, pi]
  (k = pi is the Nyquist edge; [-0.5, 0.5) cycles per pixel is *not*
  accepted silently as it is only checked against [-pi, pi]). The ``ndim``
  axis follows the image axes: 2D (k_H, k_W), 3D (k_D, k_H, k_W).
- The transform is orthonormal and centred:
  ``y_j = N^{-1/2} sum_n x_n exp(-i k_j . (n - shape // 2))`` with N the
  number of pixels, so a fully sampled Cartesian grid given as a trajectory
  reproduces ``fftc``.
- image ``x``: complex64 (batch, *image_shape); k-space ``y``: complex64
  (batch, nsamples) single-coil, (batch, coils, nsamples) multicoil;
  ``smaps``: complex64 (batch, coils, *image_shape); ``dcomp``: float32
  (batch, nsamples) or (nsamples,).

The transform is computed with tfkbnufft (Kaiser-Bessel gridding on an
``oversampling`` times larger grid). Its ops are ``tf.function`` s that are
not XLA-compilable: models using them must not be ``jit_compile`` d.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np
import tensorflow as tf
from tfkbnufft import kbnufft_adjoint, kbnufft_forward
from tfkbnufft.kbnufft import KbNufftModule

from ..checks import check_finite, check_in_range, check_rank, check_same_dim, static_shape
from .base import LinearOperator, as_complex64
from .coils import normalize_by_rss

__all__ = ["NUFFT", "estimate_sensitivity_maps_nufft"]

# Trajectories computed in float32 may overshoot pi by a few ulps.
TRAJ_TOLERANCE = 1e-5
# Kernel table points per grid cell: the nearest-table-entry lookup limits accuracy
# to about 1e-3 with tfkbnufft's default 2**10, 2**14 costs only memory.
TABLE_OVERSAMPLING = 2**14


@functools.lru_cache(maxsize=32)
def kb_operators(image_shape: tuple, grid_shape: tuple, numpoints: int, table_oversampling: int = TABLE_OVERSAMPLING):
    """Cached (forward, adjoint, interpob) tfkbnufft ops for one geometry.

    Building the interpolation tables is slow, so they are built once per
    (image_shape, grid_shape, numpoints, table_oversampling). The ops take x
    complex64 (batch, coils, *image_shape) and om float32 (batch, ndim, nsamples).
    """
    # Lift out of any graph being traced so the cached tables are eager constants.
    with tf.init_scope():
        module = KbNufftModule(
            im_size=image_shape, grid_size=grid_shape, norm="ortho", numpoints=numpoints,
            table_oversamp=int(table_oversampling),
        )
        interpob = module._extract_nufft_interpob()
    return kbnufft_forward(interpob), kbnufft_adjoint(interpob), interpob


def grid_shape_for(image_shape: Sequence[int], oversampling: float) -> tuple:
    """Oversampled gridding shape: each axis times ``oversampling``, rounded up to even."""
    return tuple(int(2 * math.ceil(oversampling * n / 2)) for n in image_shape)


def prepare_traj(traj, ndim: int) -> tf.Tensor:
    """Validate a trajectory and return it as float32 (batch, ndim, nsamples)."""
    traj = tf.convert_to_tensor(traj)
    if traj.dtype.is_complex:
        raise ValueError(f"traj: expected real float32 values in radians per pixel, got dtype {traj.dtype.name}.")
    traj = tf.cast(traj, tf.float32)
    check_rank("traj", traj, (2, 3), "(batch, ndim, nsamples) or (ndim, nsamples)")
    if traj.shape.rank == 2:
        traj = traj[None]
    size = traj.shape[1]
    if size is not None and size != ndim:
        raise ValueError(
            f"traj: expected {ndim} coordinates along axis -2 (one per image axis, "
            f"image_shape has {ndim} axes), got {size}; shape {static_shape(traj)}."
        )
    check_finite("traj", traj)
    check_in_range("traj", traj, -math.pi - TRAJ_TOLERANCE, math.pi + TRAJ_TOLERANCE, " (radians per pixel, i.e. [-pi, pi])")
    return traj


def prepare_dcomp(dcomp, nsamples) -> tf.Tensor:
    """Validate density weights and return them as float32 (batch, nsamples)."""
    dcomp = tf.convert_to_tensor(dcomp)
    if dcomp.dtype.is_complex:
        raise ValueError(f"dcomp: expected real float32 weights, got dtype {dcomp.dtype.name}.")
    dcomp = tf.cast(dcomp, tf.float32)
    check_rank("dcomp", dcomp, (1, 2), "(batch, nsamples) or (nsamples,)")
    check_same_dim("dcomp", dcomp.shape[-1], "traj", nsamples, "samples")
    check_finite("dcomp", dcomp)
    if dcomp.shape.rank == 1:
        dcomp = dcomp[None]
    return dcomp


def check_image(name: str, x, image_shape: tuple) -> tf.Tensor:
    """Validate an image complex64 (batch, *image_shape)."""
    x = as_complex64(name, x)
    ndim = len(image_shape)
    check_rank(name, x, ndim + 1, f"(batch, {ndim} spatial axes)")
    spatial = static_shape(x)[1:]
    if any(a is not None and a != b for a, b in zip(spatial, image_shape)):
        raise ValueError(f"{name}: expected spatial shape {tuple(image_shape)}, got {spatial} (shape {static_shape(x)}).")
    check_finite(name, x)
    return x


def check_batch(name: str, batch, other_name: str, other_batch) -> None:
    """Batch sizes must be equal or one of them 1."""
    if batch is None or other_batch is None or batch == other_batch or 1 in (batch, other_batch):
        return
    raise ValueError(f"{name} has batch size {batch} but {other_name} has {other_batch}; expected equal sizes or 1.")


class NUFFT(LinearOperator):
    """Non-Cartesian acquisition A x = F_traj (S x) (see the module docstring).

    traj: float32 (batch, ndim, nsamples) or (ndim, nsamples), radians per
    pixel in [-pi, pi]; image_shape: (H, W) or (D, H, W); smaps: complex64
    (batch, coils, *image_shape) or None for single-coil; dcomp: float32
    (batch, nsamples) or (nsamples,) or None (all ones); oversampling: gridding
    grid / image size; numpoints: Kaiser-Bessel kernel width in grid points;
    toeplitz: compute ``normal`` with the Toeplitz embedding (one FFT pair on a
    2x grid, no gridding) instead of forward + adjoint; toeplitz_kernel: the
    ``toeplitz.kernel`` of an earlier NUFFT with the same traj, dcomp,
    image_shape, oversampling, numpoints and table (any smaps), reused instead
    of recomputed (only with ``toeplitz=True``); table_oversampling: kernel
    table points per grid cell (tfkbnufft's ``table_oversamp``; the original
    NC-PDNet used tfkbnufft's default 2**10).

    ``forward``: x complex64 (batch, *image_shape) -> (batch, nsamples) or
    (batch, coils, nsamples). ``adjoint`` is its exact adjoint.
    ``normal(x)`` = A^H D A x with D = diag(dcomp): the normal operator of the
    density-weighted problem, equal to ``adjoint(forward(x))`` only when
    ``dcomp`` is None. ``adjoint_dcomp(y)`` = A^H D y.

    Not XLA-compilable (tfkbnufft); works eagerly, in ``tf.function`` and in
    ``tf.data`` map functions, and is differentiable with respect to x.
    """

    def __init__(
        self,
        traj,
        image_shape: Sequence[int],
        smaps=None,
        dcomp=None,
        oversampling: float = 2.0,
        numpoints: int = 6,
        toeplitz: bool = False,
        toeplitz_kernel=None,
        table_oversampling: int = TABLE_OVERSAMPLING,
    ):
        self.image_shape = tuple(int(n) for n in image_shape)
        self.ndim = len(self.image_shape)
        if self.ndim not in (2, 3):
            raise ValueError(f"image_shape: expected 2 or 3 spatial sizes, got {tuple(image_shape)}.")
        if oversampling < 1:
            raise ValueError(f"oversampling: expected a grid oversampling factor >= 1, got {oversampling}.")
        self.oversampling = float(oversampling)
        self.numpoints = int(numpoints)
        if int(table_oversampling) < 1:
            raise ValueError(
                f"table_oversampling: expected a positive number of table points per grid cell, got {table_oversampling}."
            )
        self.table_oversampling = int(table_oversampling)
        if toeplitz_kernel is not None and not toeplitz:
            raise ValueError("toeplitz_kernel: a precomputed Toeplitz kernel needs toeplitz=True, got toeplitz=False.")
        self.traj = prepare_traj(traj, self.ndim)
        self.nsamples = self.traj.shape[-1]
        self.smaps = None
        if smaps is not None:
            self.smaps = as_complex64("smaps", smaps)
            check_rank("smaps", self.smaps, self.ndim + 2, f"(batch, coils, {self.ndim} spatial axes)")
            spatial = static_shape(self.smaps)[2:]
            if any(a is not None and a != b for a, b in zip(spatial, self.image_shape)):
                raise ValueError(
                    f"smaps: expected spatial shape {self.image_shape} (image_shape), got {spatial}."
                )
            check_finite("smaps", self.smaps)
            check_batch("traj", self.traj.shape[0], "smaps", self.smaps.shape[0])
        self.dcomp = None if dcomp is None else prepare_dcomp(dcomp, self.nsamples)
        if self.dcomp is not None:
            check_batch("dcomp", self.dcomp.shape[0], "traj", self.traj.shape[0])
        self.grid_shape = grid_shape_for(self.image_shape, self.oversampling)
        self._forward_op, self._adjoint_op, _ = kb_operators(
            self.image_shape, self.grid_shape, self.numpoints, self.table_oversampling
        )
        # tfkbnufft's 'ortho' divides by sqrt(grid size), the orthonormal NDFT by sqrt(image size).
        self._scale = tf.constant(
            math.sqrt(np.prod(self.grid_shape) / np.prod(self.image_shape)), tf.complex64
        )
        self.toeplitz = None
        if toeplitz:
            from .toeplitz import ToeplitzNormal

            if toeplitz_kernel is not None:
                self.toeplitz = ToeplitzNormal.from_kernel(toeplitz_kernel, self.image_shape, smaps=self.smaps)
            else:
                self.toeplitz = ToeplitzNormal(
                    self.traj, self.image_shape, dcomp=self.dcomp, smaps=self.smaps,
                    oversampling=self.oversampling, numpoints=self.numpoints,
                    table_oversampling=self.table_oversampling,
                )

    @property
    def multicoil(self) -> bool:
        return self.smaps is not None

    def _gridding_inputs(self, coil_data: tf.Tensor):
        """Broadcast (batch, coils, ...) data and the trajectory to a common batch size."""
        batch = tf.maximum(tf.shape(coil_data)[0], tf.shape(self.traj)[0])
        data = tf.broadcast_to(coil_data, tf.concat([[batch], tf.shape(coil_data)[1:]], 0))
        traj = tf.broadcast_to(self.traj, tf.concat([[batch], tf.shape(self.traj)[1:]], 0))
        return data, traj

    def forward(self, x) -> tf.Tensor:
        """x: complex64 (batch, *image_shape) -> k-space (batch[, coils], nsamples)."""
        x = check_image("x", x, self.image_shape)
        check_batch("x", x.shape[0], "traj", self.traj.shape[0])
        coil_images = x[:, None]
        if self.multicoil:
            coil_images = coil_images * self.smaps
        y = self._forward_op(*self._gridding_inputs(coil_images)) * self._scale
        return y if self.multicoil else y[:, 0]

    def _check_kspace(self, y) -> tf.Tensor:
        y = as_complex64("kspace", y)
        if self.multicoil:
            check_rank("kspace", y, 3, "(batch, coils, nsamples) for a multicoil NUFFT")
            check_same_dim("kspace", y.shape[1], "smaps", self.smaps.shape[1], "coils")
        else:
            check_rank("kspace", y, 2, "(batch, nsamples) for a single-coil NUFFT")
        check_same_dim("kspace", y.shape[-1], "traj", self.nsamples, "samples")
        check_batch("kspace", y.shape[0], "traj", self.traj.shape[0])
        check_finite("kspace", y)
        return y

    def coil_images(self, coil_kspace: tf.Tensor) -> tf.Tensor:
        """Adjoint NUFFT of each coil, without coil maps: (batch, coils, nsamples) -> (batch, coils, *image_shape)."""
        return self._adjoint_op(*self._gridding_inputs(coil_kspace)) * self._scale

    def _adjoint(self, y: tf.Tensor) -> tf.Tensor:
        coil_images = self.coil_images(y if self.multicoil else y[:, None])
        if self.multicoil:
            return tf.reduce_sum(tf.math.conj(self.smaps) * coil_images, axis=1)
        return coil_images[:, 0]

    def _weight(self, y: tf.Tensor) -> tf.Tensor:
        if self.dcomp is None:
            return y
        dcomp = tf.cast(self.dcomp, tf.complex64)
        return y * (dcomp[:, None] if self.multicoil else dcomp)

    def adjoint(self, y) -> tf.Tensor:
        """k-space (batch[, coils], nsamples) -> image complex64 (batch, *image_shape)."""
        return self._adjoint(self._check_kspace(y))

    def adjoint_dcomp(self, y) -> tf.Tensor:
        """Density-compensated adjoint A^H D y (the "adjoint + DCp" reconstruction)."""
        return self._adjoint(self._weight(self._check_kspace(y)))

    def normal(self, x) -> tf.Tensor:
        """A^H D A x; with ``toeplitz=True`` via the Toeplitz embedding."""
        if self.toeplitz is not None:
            x = check_image("x", x, self.image_shape)
            return self.toeplitz.normal(x)
        return self._adjoint(self._weight(self.forward(x)))

    def __repr__(self) -> str:
        coils = "single-coil" if self.smaps is None else f"{self.smaps.shape[1]} coils"
        return (
            f"NUFFT(image_shape={self.image_shape}, nsamples={self.nsamples}, {coils}, "
            f"dcomp={'yes' if self.dcomp is not None else 'no'}, toeplitz={self.toeplitz is not None})"
        )


def estimate_sensitivity_maps_nufft(
    kspace,
    traj,
    image_shape: Sequence[int],
    dcomp=None,
    center_radius: float = 0.1 * math.pi,
    eps: float = 1e-6,
) -> tf.Tensor:
    """Coil maps from the low-resolution centre of non-Cartesian k-space.

    Samples with |k| < ``center_radius`` (radians per pixel) are kept, each
    coil is reconstructed by the density-compensated adjoint NUFFT and the
    coil images are divided by their root-sum-of-squares (``normalize_by_rss``).
    Without ``dcomp`` the low-resolution images are the plain adjoint, more
    blurred where the trajectory oversamples the centre.

    kspace: complex64 (batch, coils, nsamples); traj: float32 (batch, ndim,
    nsamples) or (ndim, nsamples); dcomp: float32 (batch, nsamples),
    (nsamples,) or None. Returns complex64 (batch, coils, *image_shape).
    """
    if not 0 < center_radius <= math.pi * math.sqrt(len(image_shape)):
        raise ValueError(
            f"center_radius: expected a radius in (0, pi * sqrt(ndim)] radians per pixel, got {center_radius}."
        )
    operator = NUFFT(traj, image_shape, dcomp=dcomp)
    kspace = as_complex64("kspace", kspace)
    check_rank("kspace", kspace, 3, "(batch, coils, nsamples)")
    check_same_dim("kspace", kspace.shape[-1], "traj", operator.nsamples, "samples")
    check_batch("kspace", kspace.shape[0], "traj", operator.traj.shape[0])
    check_finite("kspace", kspace)
    weights = tf.cast(tf.norm(operator.traj, axis=1) < center_radius, tf.float32)
    if operator.dcomp is not None:
        weights = weights * operator.dcomp
    low_resolution = operator.coil_images(kspace * tf.cast(weights, tf.complex64)[:, None])
    return normalize_by_rss(low_resolution, eps=eps)
