"""Centred orthonormal Fourier transforms.

``fftc(x, ndim)`` equals numpy's
``fftshift(fftn(ifftshift(x, axes), axes=axes, norm="ortho"), axes)`` over the
last ``ndim`` axes: k-space and image both have their origin at index N // 2.
"""

from __future__ import annotations

import tensorflow as tf

from ..checks import check_rank
from .base import LinearOperator, as_complex64

__all__ = ["fftc", "ifftc", "FFT"]

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
