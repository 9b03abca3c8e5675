"""Cartesian undersampled acquisitions: single-coil (M F) and SENSE (M F S).

Layouts (2D; 3D adds a leading depth axis D to every spatial part):

- image ``x``: complex64 (batch, H, W)
- k-space ``y``: complex64 (batch, H, W) single-coil, (batch, coils, H, W) SENSE
- ``mask``: real, broadcastable to the image (batch, H, W), e.g. (batch, 1, W)
  for a fastMRI column mask; values are 0/1 (or sampling weights)
- ``smaps``: complex64 (batch, coils, H, W)
"""

from __future__ import annotations

import tensorflow as tf

from ..checks import check_broadcastable, check_finite, check_rank, real_to_complex64, static_shape
from .base import LinearOperator, as_complex64
from .fft import fftc, ifftc

__all__ = ["CartesianSingleCoil", "SENSE"]


def _prepare_mask(mask, ndim: int, image_shape=None) -> tf.Tensor:
    mask = tf.convert_to_tensor(mask)
    if mask.dtype.is_complex:
        raise ValueError(
            f"mask: expected real values (0/1 or sampling weights), got dtype {mask.dtype.name}."
        )
    check_rank("mask", mask, range(0, ndim + 2), f"broadcastable to (batch, {ndim} spatial axes)")
    check_finite("mask", mask)
    if image_shape is not None:
        check_broadcastable("mask", mask, image_shape, "the image")
    return tf.cast(mask, tf.complex64)


class CartesianSingleCoil(LinearOperator):
    """A x = mask * F x for one receive coil.

    mask: real, broadcastable to (batch, *spatial); ndim: 2 or 3.
    """

    def __init__(self, mask, ndim: int = 2):
        self.ndim = ndim
        self.mask = _prepare_mask(mask, ndim)

    def _check_image(self, name, x):
        x = as_complex64(name, x)
        check_rank(name, x, self.ndim + 1, f"(batch, {self.ndim} spatial axes)")
        check_broadcastable("mask", self.mask, static_shape(x), name)
        check_finite(name, x)
        return x

    def forward(self, x):
        x = self._check_image("x", x)
        return self.mask * fftc(x, self.ndim)

    def adjoint(self, y):
        y = self._check_image("kspace", y)
        return ifftc(tf.math.conj(self.mask) * y, self.ndim)

    def prox_l2(self, z, y, gamma=None, n_iter: int = 10):
        """Closed form F^-1[(F z + gamma m y) / (1 + gamma m^2)]; gamma=None: F^-1[where(m > 0, y / m, F z)].

        For a 0/1 mask and gamma=None this is k-space replacement, bitwise
        ``(1 - m) F z + m y``. ``n_iter`` is unused (no iterations).
        """
        z = self._check_image("z", z)
        y = self._check_image("kspace", y)
        kspace = fftc(z, self.ndim)
        if gamma is None:
            sampled = tf.math.real(self.mask) > 0
            ones = tf.ones_like(self.mask)
            kspace = tf.where(sampled, y / tf.where(sampled, self.mask, ones), kspace)
        else:
            gamma = real_to_complex64(gamma)
            kspace = (kspace + gamma * tf.math.conj(self.mask) * y) / (1.0 + gamma * tf.math.conj(self.mask) * self.mask)
        return ifftc(kspace, self.ndim)

    def __repr__(self):
        return f"CartesianSingleCoil(mask shape={static_shape(self.mask)}, ndim={self.ndim})"


class SENSE(LinearOperator):
    """A x = mask * F (S x): multicoil Cartesian acquisition.

    mask: real, broadcastable to (batch, *spatial); smaps: complex64
    (batch, coils, *spatial). forward: (batch, *spatial) -> (batch, coils, *spatial).
    """

    def __init__(self, mask, smaps, ndim: int = 2):
        self.ndim = ndim
        self.smaps = as_complex64("smaps", smaps)
        check_rank("smaps", self.smaps, ndim + 2, f"(batch, coils, {ndim} spatial axes)")
        check_finite("smaps", self.smaps)
        mask = _prepare_mask(mask, ndim)
        # A mask with a batch axis gets a coil axis; a lower-rank one broadcasts as is.
        if mask.shape.rank == ndim + 1:
            mask = tf.expand_dims(mask, 1)
        self.mask = mask
        check_broadcastable("mask", self.mask, static_shape(self.smaps), "smaps")

    def forward(self, x):
        x = as_complex64("x", x)
        check_rank("x", x, self.ndim + 1, f"(batch, {self.ndim} spatial axes)")
        check_finite("x", x)
        return self.mask * fftc(tf.expand_dims(x, 1) * self.smaps, self.ndim)

    def adjoint(self, y):
        y = as_complex64("kspace", y)
        check_rank("kspace", y, self.ndim + 2, f"(batch, coils, {self.ndim} spatial axes)")
        ycoils, scoils = static_shape(y)[1], static_shape(self.smaps)[1]
        if ycoils is not None and scoils is not None and ycoils != scoils:
            raise ValueError(
                f"kspace has {ycoils} coils but smaps has {scoils} coils; they must match."
            )
        check_finite("kspace", y)
        coil_images = ifftc(tf.math.conj(self.mask) * y, self.ndim)
        return tf.reduce_sum(tf.math.conj(self.smaps) * coil_images, axis=1)

    def __repr__(self):
        return f"SENSE(smaps shape={static_shape(self.smaps)}, ndim={self.ndim})"
