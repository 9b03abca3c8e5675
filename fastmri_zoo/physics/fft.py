"""Centred orthonormal Fourier transforms, and the pruned FFTs of zero-padded images.

``fftc(x, ndim)`` equals numpy's
``fftshift(fftn(ifftshift(x, axes), axes=axes, norm="ortho"), axes)`` over the
last ``ndim`` axes: k-space and image both have their origin at index N // 2.

``padded_fft(x, grid_shape)`` is ``tf.signal.fft2d`` / ``fft3d`` of x zero-padded
at the end of each axis to ``grid_shape``, and ``cropped_ifft(y, image_shape)``
the ``ifft2d`` / ``ifft3d`` of y cropped to its first ``image_shape`` indices
(the NUFFT's oversampled grid, the Toeplitz embedding's 2x grid). Both go one
axis at a time with ``tf.signal.fft`` along the last axis, transforming an axis
before the others are padded (or after they are cropped), so the zeros are
never transformed and the cropped-away rows never computed: on a 2x grid,
(2 + 4) / 8 of the full transform's work in 2D, (2 + 4 + 8) / 24 in 3D.
Between axes the spatial axes are rotated (a transpose); the last rotation can
be skipped with ``layout=SPECTRUM_LAYOUT``, the spatial axes rolled left by one
((H, W) -> (W, H), (D, H, W) -> (H, W, D)), in which a product in k-space
(the Toeplitz kernel) costs no transpose.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from ..checks import check_rank
from .base import LinearOperator, as_complex64, transpose

__all__ = ["fftc", "ifftc", "FFT", "padded_fft", "cropped_ifft", "to_layout", "IMAGE_LAYOUT", "SPECTRUM_LAYOUT"]

#: Spatial axis layouts of ``padded_fft`` / ``cropped_ifft``: the image's own, and its axes rolled left by one.
IMAGE_LAYOUT = "image"
SPECTRUM_LAYOUT = "spectrum"

_TRANSFORMS = {
    (1, False): tf.signal.fft,
    (2, False): tf.signal.fft2d,
    (3, False): tf.signal.fft3d,
    (1, True): tf.signal.ifft,
    (2, True): tf.signal.ifft2d,
    (3, True): tf.signal.ifft3d,
}


def _centred(x: tf.Tensor, ndim: int, inverse: bool) -> tf.Tensor:
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim: expected 1, 2 or 3 spatial dimensions, got {ndim}.")
    x = as_complex64("x", x)
    check_rank("x", x, range(ndim, ndim + 8), f"(..., {ndim} spatial axes)")
    axes = list(range(-ndim, 0))
    spatial = tf.shape(x)[-ndim:]
    n = tf.cast(tf.reduce_prod(spatial), tf.float32)
    scale = tf.complex(tf.math.rsqrt(n), 0.0)
    x = tf.signal.ifftshift(x, axes=axes)
    x = _TRANSFORMS[(ndim, inverse)](x)
    # tf's inverse transforms divide by N; orthonormal means sqrt(N) each way.
    x = x * (tf.complex(n, 0.0) * scale if inverse else scale)
    return tf.signal.fftshift(x, axes=axes)


def fftc(x, ndim: int = 2) -> tf.Tensor:
    """Centred orthonormal FFT over the last ``ndim`` axes. complex64 in and out."""
    return _centred(x, ndim, inverse=False)


def ifftc(x, ndim: int = 2) -> tf.Tensor:
    """Centred orthonormal inverse FFT over the last ``ndim`` axes."""
    return _centred(x, ndim, inverse=True)


def _layout_order(layout: str, ndim: int) -> list[int]:
    """The spatial axes (0 = first) in the order a layout stores them."""
    if layout == IMAGE_LAYOUT:
        return list(range(ndim))
    if layout == SPECTRUM_LAYOUT:
        return list(range(1, ndim)) + [0]
    raise ValueError(f"layout: expected {IMAGE_LAYOUT!r} or {SPECTRUM_LAYOUT!r}, got {layout!r}.")


def _rotate(x: tf.Tensor, ndim: int, to_front: bool) -> tf.Tensor:
    """Roll the last ``ndim`` axes by one: the last spatial axis to the front, or the first to the back."""
    lead = list(range(x.shape.rank - ndim))
    spatial = [len(lead) + i for i in range(ndim)]
    spatial = spatial[-1:] + spatial[:-1] if to_front else spatial[1:] + spatial[:1]
    return transpose(x, lead + spatial)


def to_layout(x, ndim: int, layout: str, current: str = IMAGE_LAYOUT) -> tf.Tensor:
    """x (..., ndim spatial axes) stored in the ``current`` layout, transposed to ``layout``."""
    order, target = _layout_order(current, ndim), _layout_order(layout, ndim)
    x = tf.convert_to_tensor(x)
    while order != target:
        x = _rotate(x, ndim, to_front=False)
        order = order[1:] + order[:1]
    return x


def padded_fft(x, grid_shape: Sequence[int], layout: str = IMAGE_LAYOUT) -> tf.Tensor:
    """``fftNd`` (no normalisation) of x zero-padded at the end of each axis to ``grid_shape``, pruned.

    x: complex64 (..., *image_shape) with image_shape <= grid_shape per axis;
    returns complex64 (..., *grid_shape) in ``layout`` (module docstring). Equal
    to ``tf.signal.fft2d`` / ``fft3d`` of ``tf.pad(x, ...)`` to float32 rounding.
    """
    grid_shape = [int(n) for n in grid_shape]
    ndim = len(grid_shape)
    x = as_complex64("x", x)
    order = list(range(ndim))
    target = _layout_order(layout, ndim)
    for step in range(ndim):
        if step:
            x = _rotate(x, ndim, to_front=True)
            order = order[-1:] + order[:-1]
        size = x.shape[-1]
        padding = grid_shape[order[-1]] - (tf.shape(x)[-1] if size is None else int(size))
        if size is None or padding:
            x = tf.pad(x, [[0, 0]] * (x.shape.rank - 1) + [[0, padding]])
        x = tf.signal.fft(x)
    while order != target:
        x = _rotate(x, ndim, to_front=True)
        order = order[-1:] + order[:-1]
    return x


def cropped_ifft(y, image_shape: Sequence[int], layout: str = IMAGE_LAYOUT) -> tf.Tensor:
    """``ifftNd`` (divided by the grid size, as tf's) of y, cropped to its first ``image_shape`` indices, pruned.

    y: complex64 (..., *grid_shape) stored in ``layout`` (module docstring);
    returns complex64 (..., *image_shape) in the image layout. Equal to
    ``tf.signal.ifft2d`` / ``ifft3d`` of y followed by the crop, to float32 rounding.
    """
    image_shape = [int(n) for n in image_shape]
    ndim = len(image_shape)
    y = as_complex64("y", y)
    order = _layout_order(layout, ndim)
    for step in range(ndim):
        if step:
            y = _rotate(y, ndim, to_front=False)
            order = order[1:] + order[:1]
        y = tf.signal.ifft(y)[..., : image_shape[order[-1]]]
    while order != sorted(order):
        y = _rotate(y, ndim, to_front=False)
        order = order[1:] + order[:1]
    return y


class FFT(LinearOperator):
    """Fully sampled Cartesian acquisition: A = F (unitary).

    x: complex64 (batch, *spatial); y: complex64 (batch, *spatial).
    """

    def __init__(self, ndim: int = 2):
        self.ndim = ndim

    def forward(self, x):
        return fftc(x, self.ndim)

    def adjoint(self, y):
        return ifftc(y, self.ndim)

    def normal(self, x):
        return as_complex64("x", x)

    def __repr__(self):
        return f"FFT(ndim={self.ndim})"
