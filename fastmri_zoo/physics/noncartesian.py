"""The non-Cartesian operators the networks unroll: density-weighted NUFFT and gridded k-space.

- :class:`DensityWeightedNUFFT`: B = c D^{1/2} F_traj P, the NUFFT weighted by
  the square root of the density weights, so that the plain gradient step
  B^H (B x - b) on its measurements b = D^{1/2} y is NC-PDNet's
  A^H D (A x - y) and its normal B^H B = A^H D A has a Toeplitz embedding.
- :func:`sampled_cells` and :func:`gridded_operator`: the NC-PDNet ablation's
  gridding of non-Cartesian k-space onto the Cartesian grid, where the
  acquisition becomes a masked FFT (``CartesianSingleCoil`` / ``SENSE``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import tensorflow as tf

from ..checks import as_complex64
from .base import LinearOperator
from .cartesian import SENSE, CartesianSingleCoil
from .fft import fftc
from .nufft import NUFFT, TABLE_OVERSAMPLING, check_gridding, grid_shape_for
from .toeplitz import ToeplitzNormal

__all__ = ["DensityWeightedNUFFT", "sampled_cells", "gridded_operator", "centred_pads"]


def centred_pads(image_shape: Sequence[int], grid: Sequence[int]) -> list[tuple[int, int]]:
    """(before, after) zero-padding of each axis that centres image_shape in grid (equal margins)."""
    return [((m - n) // 2, (m - n) // 2) for n, m in zip(image_shape, grid)]


class DensityWeightedNUFFT(LinearOperator):
    """B = c D^{1/2} F_traj P: the non-Cartesian acquisition as the networks unroll it.

    P zero-pads the image (batch, *image_shape) to ``nufft_shape`` (centred,
    equal margins; the identity without ``legacy_im_size``), F_traj is
    :class:`~fastmri_zoo.physics.NUFFT` on that grid (with coil maps, padded
    too), D = diag(dcomp) (the identity when dcomp is None), and c = 1, or,
    with ``legacy_im_size``, the scale of the original NC-PDNet's tfkbnufft
    ``norm='ortho'`` on a 2x grid: c = sqrt(prod(im_size) / prod(grid)).

    traj: float32 (batch, ndim, nsamples) or (ndim, nsamples); image_shape:
    (H, W) or (D, H, W); smaps: complex64 (batch, coils, *image_shape) or None;
    dcomp: float32 (batch, nsamples), (nsamples,) or None.

    - ``forward(x)`` = c sqrt(d) F P x: (batch, *image_shape) -> (batch[, coils], nsamples);
    - ``adjoint(b)`` = c P^H F^H (sqrt(d) b);
    - ``normal(x)`` = c^2 P^H F^H D F P x = adjoint(forward(x)) (up to
      sqrt(d)^2 vs d rounding), by the Toeplitz embedding when ``toeplitz``
      (kernel ``toeplitz_kernel`` if given, else from ``TOEPLITZ_KERNELS``
      when eager), else forward + weighted adjoint NUFFTs;
    - ``measurements(kspace)`` = sqrt(d) y: what ``forward`` is compared with,
      so ``adjoint(measurements(y))`` = c P^H F^H D y, the "adjoint + DCp";
    - ``adjoint_dcomp(y)`` = c P^H F^H D y directly, ``coil_images_dcomp(y)``
      the same per coil without coil maps.

    ``nufft``: the plain NUFFT on ``nufft_shape``; ``toeplitz``: its
    ``ToeplitzNormal`` (A^H D A on ``nufft_shape``) or None.
    table_oversampling, gridding, oversampling, numpoints: the NUFFT's.
    """

    def __init__(
        self,
        traj,
        image_shape: Sequence[int],
        smaps=None,
        dcomp=None,
        toeplitz: bool = False,
        toeplitz_kernel=None,
        legacy_im_size: Sequence[int] | None = None,
        table_oversampling: int = TABLE_OVERSAMPLING,
        gridding: str = "sparse",
        oversampling: float = 2.0,
        numpoints: int = 6,
    ):
        self.gridding = check_gridding(gridding)
        self.image_shape = tuple(int(n) for n in image_shape)
        self.ndim = len(self.image_shape)
        if toeplitz_kernel is not None and not toeplitz:
            raise ValueError("toeplitz_kernel: a precomputed Toeplitz kernel needs toeplitz=True, got toeplitz=False.")
        self.scale = 1.0
        nufft_shape = self.image_shape
        if legacy_im_size is not None:
            nufft_shape = tuple(int(n) for n in legacy_im_size)
            differences = [m - n for n, m in zip(self.image_shape, nufft_shape)]
            if len(nufft_shape) != self.ndim or min(differences) < 0 or any(d % 2 for d in differences):
                raise ValueError(
                    f"legacy_im_size: the image {self.image_shape} must fit in {nufft_shape} with an even margin on "
                    "every axis (the original zero-pads equally on both sides)."
                )
            self.scale = math.sqrt(np.prod(nufft_shape) / np.prod(grid_shape_for(nufft_shape, 2.0)))
        self.nufft_shape = nufft_shape
        self.pads = centred_pads(self.image_shape, nufft_shape)
        self._padded = any(p for pair in self.pads for p in pair)
        if smaps is not None:
            smaps = self._pad(as_complex64("smaps", smaps), leading=2)
        self.nufft = NUFFT(
            traj, nufft_shape, smaps=smaps, dcomp=dcomp, oversampling=oversampling, numpoints=numpoints,
            table_oversampling=table_oversampling, gridding=self.gridding,
        )
        self.sqrt_dcomp = None
        if self.nufft.dcomp is not None:
            sqrt_dcomp = tf.cast(tf.sqrt(self.nufft.dcomp), tf.complex64)
            self.sqrt_dcomp = sqrt_dcomp[:, None] if self.multicoil else sqrt_dcomp
        self.toeplitz = None
        if toeplitz:
            if toeplitz_kernel is not None:
                self.toeplitz = ToeplitzNormal.from_kernel(toeplitz_kernel, nufft_shape, smaps=self.nufft.smaps)
            else:
                self.toeplitz = ToeplitzNormal.cached(
                    self.nufft.traj, nufft_shape, dcomp=self.nufft.dcomp, smaps=self.nufft.smaps,
                    oversampling=oversampling, numpoints=numpoints, table_oversampling=table_oversampling,
                    gridding=self.gridding,
                )

    @property
    def multicoil(self) -> bool:
        return self.nufft.multicoil

    @property
    def dcomp(self):
        """float32 (batch, nsamples) density weights, or None."""
        return self.nufft.dcomp

    @property
    def traj(self) -> tf.Tensor:
        """float32 (batch, ndim, nsamples)."""
        return self.nufft.traj

    def _pad(self, x: tf.Tensor, leading: int = 1) -> tf.Tensor:
        if not self._padded:
            return x
        return tf.pad(x, [[0, 0]] * leading + [list(pair) for pair in self.pads])

    def _crop(self, x: tf.Tensor) -> tf.Tensor:
        if not self._padded:
            return x
        return x[(Ellipsis,) + tuple(slice(p, p + n) for (p, _), n in zip(self.pads, self.image_shape))]

    def _scaled(self, x: tf.Tensor, power: int = 1) -> tf.Tensor:
        return x if self.scale == 1.0 else x * tf.cast(self.scale**power, x.dtype)

    def _sqrt_weighted(self, y: tf.Tensor) -> tf.Tensor:
        return y if self.sqrt_dcomp is None else y * self.sqrt_dcomp

    def measurements(self, kspace) -> tf.Tensor:
        """b = sqrt(d) y: k-space complex64 (batch[, coils], nsamples) -> the measurements of this operator."""
        return self._sqrt_weighted(as_complex64("kspace", kspace))

    def forward(self, x) -> tf.Tensor:
        """x complex64 (batch, *image_shape) -> c sqrt(d) F P x, (batch[, coils], nsamples)."""
        return self._sqrt_weighted(self._scaled(self.nufft.forward(self._pad(x))))

    def adjoint(self, y) -> tf.Tensor:
        """b (batch[, coils], nsamples) -> c P^H F^H sqrt(d) b, complex64 (batch, *image_shape)."""
        return self._scaled(self._crop(self.nufft.adjoint(self._sqrt_weighted(as_complex64("kspace", y)))))

    def normal(self, x) -> tf.Tensor:
        """c^2 P^H F^H D F P x (Toeplitz embedding or forward + weighted adjoint, as built)."""
        padded = self._pad(x)
        normal = self.toeplitz.forward(padded) if self.toeplitz is not None else self.nufft.normal_dcomp(padded)
        return self._scaled(self._crop(normal), power=2)

    def adjoint_dcomp(self, y) -> tf.Tensor:
        """c P^H F^H D y: k-space (batch[, coils], nsamples) -> complex64 (batch, *image_shape)."""
        return self._scaled(self._crop(self.nufft.adjoint_dcomp(y)))

    def coil_images_dcomp(self, y) -> tf.Tensor:
        """Per-coil c P^H F^H D y_c without coil maps: (batch, coils, nsamples) -> (batch, coils, *image_shape)."""
        y = as_complex64("kspace", y)
        if self.nufft.dcomp is not None:
            y = y * tf.cast(self.nufft.dcomp, tf.complex64)[:, None]
        return self._scaled(self._crop(self.nufft.coil_images(y)))

    def __repr__(self) -> str:
        return (
            f"DensityWeightedNUFFT(image_shape={self.image_shape}, nufft_shape={self.nufft_shape}, "
            f"nsamples={self.nufft.nsamples}, multicoil={self.multicoil}, dcomp={self.dcomp is not None}, "
            f"toeplitz={self.toeplitz is not None}, gridding={self.gridding!r})"
        )


def sampled_cells(traj, image_shape: Sequence[int]) -> tf.Tensor:
    """float32 (batch, *image_shape) mask of the Cartesian cells holding at least one sample.

    Nearest-neighbour gridding of ones: k (radians per pixel) falls in cell
    round(k N / (2 pi)) + N // 2 (modulo N, as k = pi and -pi are the same
    frequency) along each axis. traj: float32 (batch, ndim, nsamples).
    """
    traj = tf.convert_to_tensor(traj, tf.float32)
    sizes = tf.constant([int(n) for n in image_shape], tf.float32)
    cells = tf.cast(tf.round(traj * sizes[None, :, None] / (2 * math.pi)), tf.int32)
    cells = tf.math.floormod(cells + tf.cast(sizes // 2, tf.int32)[None, :, None], tf.cast(sizes, tf.int32)[None, :, None])
    batch = tf.shape(traj)[0]
    nsamples = tf.shape(traj)[2]
    batch_index = tf.broadcast_to(tf.range(batch)[:, None], [batch, nsamples])
    indices = tf.concat([batch_index[..., None], tf.transpose(cells, [0, 2, 1])], axis=-1)
    counts = tf.scatter_nd(
        tf.reshape(indices, [-1, len(image_shape) + 1]),
        tf.ones([batch * nsamples], tf.float32),
        tf.concat([[batch], [int(n) for n in image_shape]], axis=0),
    )
    return tf.cast(counts > 0, tf.float32)


def gridded_operator(
    kspace,
    traj,
    image_shape: Sequence[int],
    dcomp=None,
    smaps=None,
    table_oversampling: int = TABLE_OVERSAMPLING,
    gridding: str = "sparse",
):
    """(gridded k-space complex64, CartesianSingleCoil or SENSE on the sampled cells).

    Each coil's density-compensated adjoint NUFFT F^H D y_c, then ``fftc``,
    kept on the cells holding at least one sample (:func:`sampled_cells`, the
    mask of the returned operator). kspace: complex64 (batch, nsamples), or
    (batch, coils, nsamples) with smaps complex64 (batch, coils, *image_shape).
    Returns gridded k-space (batch, *image_shape) or (batch, coils, *image_shape).
    """
    multicoil = smaps is not None
    ndim = len(image_shape)
    kspace = as_complex64("kspace", kspace)
    weighted = DensityWeightedNUFFT(
        traj, image_shape, dcomp=dcomp, table_oversampling=table_oversampling, gridding=gridding
    )
    coil_images = weighted.coil_images_dcomp(kspace if multicoil else kspace[:, None])
    mask = sampled_cells(weighted.traj, image_shape)
    gridded = fftc(coil_images, ndim) * tf.cast(mask[:, None], tf.complex64)
    if multicoil:
        return gridded, SENSE(mask, smaps, ndim=ndim)
    return gridded[:, 0], CartesianSingleCoil(mask, ndim=ndim)
