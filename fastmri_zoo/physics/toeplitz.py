"""Toeplitz embedding of the NUFFT normal operator A^H D A.

With the orthonormal NUFFT of ``nufft.py``,

    (A^H D A x)[p] = N^{-1} sum_n h[p - n] x[n],   h[m] = sum_j d_j exp(i k_j . m),

a convolution with the point-spread function h, whose support is m in [-N, N)
per axis. Zero-padding x to a 2N grid makes that convolution circular, so
A^H D A is one FFT pair on the 2N grid and a multiplication by the FFT of h.
h is computed once, by an adjoint NUFFT onto a 2N image grid (with the
NUFFT's gridding, ``"sparse"`` matrices by default).

Multicoil: A^H D A x = sum_c conj(S_c) T(S_c x), T the single-coil operator.
No gridding is done per call, which is why this is much faster than forward +
adjoint. Only the construction grids (not XLA-compilable); applying the
operator is plain FFTs and element-wise products. The FFT pair is pruned
(``fft.padded_fft`` / ``fft.cropped_ifft``): the zero half of the padded image
is not transformed, the rows cropped away are not computed, and the product
with the kernel is taken in the transform's own axis order (``SPECTRUM_LAYOUT``),
so no transpose is spent to restore the image's.

``ToeplitzNormal`` is a self-adjoint ``LinearOperator`` T = A^H D A:
``forward`` = ``adjoint`` = T (also ``__call__``), so its own ``normal`` is
T^H T = T^2, as for any operator. The kernel is cached per trajectory,
density weights and geometry when eager (``TOEPLITZ_KERNELS``,
:meth:`ToeplitzNormal.cached`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from ..checks import check_batch, check_finite, check_rank, static_shape
from ..utils import LRUCache, array_digest
from .base import LinearOperator, as_complex64
from .fft import IMAGE_LAYOUT, SPECTRUM_LAYOUT, cropped_ifft, padded_fft, to_layout
from .nufft import TABLE_OVERSAMPLING, NUFFT, check_image, prepare_dcomp, prepare_traj

__all__ = ["ToeplitzNormal", "point_spread_function", "TOEPLITZ_KERNELS"]

#: Toeplitz kernels of the last trajectories, keyed by the bytes of traj and dcomp and the geometry
#: (inference over many slices of one trajectory builds the kernel once). Eager only.
TOEPLITZ_KERNELS = LRUCache(maxsize=4)


def point_spread_function(
    traj,
    image_shape: Sequence[int],
    dcomp=None,
    oversampling: float = 2.0,
    numpoints: int = 6,
    table_oversampling: int = TABLE_OVERSAMPLING,
    gridding: str = "sparse",
) -> tf.Tensor:
    """h[m] = sum_j d_j exp(i k_j . m) for m in [-N, N) per axis.

    traj: float32 (batch, ndim, nsamples) or (ndim, nsamples); dcomp: float32
    (batch, nsamples), (nsamples,) or None (ones); oversampling, numpoints,
    table_oversampling, gridding: the NUFFT's (``NUFFT``). Returns complex64
    (batch, *2 image_shape), index m + N holding h[m].
    """
    ndim = len(image_shape)
    traj = prepare_traj(traj, ndim)
    double = tuple(2 * int(n) for n in image_shape)
    weights = tf.ones_like(traj[:, 0]) if dcomp is None else prepare_dcomp(dcomp, traj.shape[-1])
    # The adjoint NUFFT on the 2N grid is (2N)^{-ndim/2} sum_j d_j exp(i k_j . (m' - N)).
    psf = NUFFT(
        traj, double, oversampling=oversampling, numpoints=numpoints, table_oversampling=table_oversampling,
        gridding=gridding,
    ).adjoint(
        tf.cast(weights, tf.complex64)
    )
    return psf * tf.cast(np.sqrt(np.prod(double)), tf.complex64)


class ToeplitzNormal(LinearOperator):
    """T = A^H D A of a NUFFT as one FFT pair on a 2x grid: a self-adjoint operator.

    traj, image_shape, dcomp, smaps, oversampling, numpoints,
    table_oversampling, gridding: as for ``NUFFT``. ``forward(x)`` =
    ``adjoint(x)`` = T x: x complex64 (batch, *image_shape) -> same shape;
    ``normal(x)`` = T^2 x. ``kernel``: complex64 (batch, *2 image_shape), the
    FFT of the point-spread function divided by N; it does not depend on
    smaps, so :meth:`from_kernel` reuses it and :meth:`cached` takes it from
    ``TOEPLITZ_KERNELS``.
    """

    def __init__(
        self,
        traj,
        image_shape: Sequence[int],
        dcomp=None,
        smaps=None,
        oversampling: float = 2.0,
        numpoints: int = 6,
        table_oversampling: int = TABLE_OVERSAMPLING,
        gridding: str = "sparse",
    ):
        self._set_geometry(image_shape, smaps)
        psf = point_spread_function(
            traj, self.image_shape, dcomp, oversampling, numpoints, table_oversampling, gridding
        )
        self.batch = psf.shape[0]
        axes = list(range(-self.ndim, 0))
        # Put h[0] at index 0 so that a plain circular convolution applies it.
        double = tuple(2 * n for n in self.image_shape)
        spectrum = padded_fft(tf.signal.ifftshift(psf, axes=axes), double, SPECTRUM_LAYOUT)
        self._spectrum_kernel = spectrum / tf.cast(np.prod(self.image_shape), tf.complex64)
        self.kernel = to_layout(self._spectrum_kernel, self.ndim, IMAGE_LAYOUT, current=SPECTRUM_LAYOUT)

    def _set_geometry(self, image_shape: Sequence[int], smaps) -> None:
        self.image_shape = tuple(int(n) for n in image_shape)
        self.ndim = len(self.image_shape)
        if self.ndim not in (2, 3):
            raise ValueError(f"image_shape: expected 2 or 3 spatial sizes, got {tuple(image_shape)}.")
        self.smaps = None
        if smaps is not None:
            self.smaps = as_complex64("smaps", smaps)
            check_rank("smaps", self.smaps, self.ndim + 2, f"(batch, coils, {self.ndim} spatial axes)")
            check_finite("smaps", self.smaps)
            check_image("smaps[:, 0]", self.smaps[:, 0], self.image_shape)

    @classmethod
    def cached(
        cls,
        traj,
        image_shape: Sequence[int],
        dcomp=None,
        smaps=None,
        oversampling: float = 2.0,
        numpoints: int = 6,
        table_oversampling: int = TABLE_OVERSAMPLING,
        gridding: str = "sparse",
    ) -> "ToeplitzNormal":
        """The operator, its kernel taken from / stored in ``TOEPLITZ_KERNELS`` when eager (built in the graph otherwise).

        Arguments as for the constructor.
        """
        image_shape = tuple(int(n) for n in image_shape)
        traj = prepare_traj(traj, len(image_shape))
        if dcomp is not None:
            dcomp = prepare_dcomp(dcomp, traj.shape[-1])
        settings = (image_shape, float(oversampling), int(numpoints), int(table_oversampling), gridding)
        key = (array_digest(traj, dcomp), settings) if tf.executing_eagerly() else None
        kernel = TOEPLITZ_KERNELS.get(key, lambda: cls(traj, image_shape, dcomp, None, *settings[1:]).kernel)
        return cls.from_kernel(kernel, image_shape, smaps=smaps)

    @classmethod
    def from_kernel(cls, kernel, image_shape: Sequence[int], smaps=None) -> "ToeplitzNormal":
        """The operator of an existing ``kernel`` (another ToeplitzNormal's, e.g. with other smaps).

        kernel: complex64 (batch, *2 image_shape); smaps: complex64 (batch, coils, *image_shape) or None.
        """
        operator = cls.__new__(cls)
        operator._set_geometry(image_shape, smaps)
        kernel = as_complex64("toeplitz_kernel", kernel)
        double = tuple(2 * n for n in operator.image_shape)
        check_rank("toeplitz_kernel", kernel, operator.ndim + 1, f"(batch, {operator.ndim} axes of 2 image_shape)")
        spatial = static_shape(kernel)[1:]
        if any(a is not None and a != b for a, b in zip(spatial, double)):
            raise ValueError(
                f"toeplitz_kernel: expected spatial shape {double} (twice image_shape {operator.image_shape}), "
                f"got {spatial}."
            )
        operator.kernel = kernel
        operator._spectrum_kernel = to_layout(kernel, operator.ndim, SPECTRUM_LAYOUT)
        operator.batch = kernel.shape[0]
        return operator

    def _apply(self, images: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        """The circular convolution on the 2x grid, cropped: kernel in ``SPECTRUM_LAYOUT``."""
        double = tuple(2 * n for n in self.image_shape)
        spectrum = padded_fft(images, double, SPECTRUM_LAYOUT)
        return cropped_ifft(spectrum * kernel, self.image_shape, SPECTRUM_LAYOUT)

    def forward(self, x) -> tf.Tensor:
        """T x = A^H D A x; x complex64 (batch, *image_shape)."""
        x = check_image("x", x, self.image_shape)
        check_batch("x", x.shape[0], "traj", self.batch)
        if self.smaps is None:
            return self._apply(x, self._spectrum_kernel)
        coil_images = self._apply(x[:, None] * self.smaps, self._spectrum_kernel[:, None])
        return tf.reduce_sum(tf.math.conj(self.smaps) * coil_images, axis=1)

    def adjoint(self, y) -> tf.Tensor:
        """T^H y = T y: the operator is self-adjoint (D real)."""
        return self.forward(y)

    def __repr__(self) -> str:
        return f"ToeplitzNormal(image_shape={self.image_shape}, kernel shape={static_shape(self.kernel)})"
