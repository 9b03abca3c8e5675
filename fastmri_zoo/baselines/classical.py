"""Zero-filled and CG-SENSE reconstructions of Cartesian k-space."""

from __future__ import annotations

import tensorflow as tf

from ..physics import SENSE, CartesianSingleCoil, conjugate_gradient, rss, ifftc
from ..physics.base import as_complex64

__all__ = ["zero_filled", "cg_sense"]


def zero_filled(kspace, smaps=None, ndim: int = 2) -> tf.Tensor:
    """Inverse FFT of the k-space with unsampled entries left at zero.

    kspace: complex64 (batch, H, W) or (batch, coils, H, W). With ``smaps`` the
    coils are combined by A^H (complex image, (batch, H, W)); without, a
    multicoil input is combined by root-sum-of-squares (float32 magnitude).
    """
    kspace = as_complex64("kspace", kspace)
    if smaps is not None:
        return SENSE(1.0, smaps, ndim=ndim).adjoint(kspace)
    images = ifftc(kspace, ndim)
    if kspace.shape.rank == ndim + 2:
        return rss(images, axis=1)
    return images


def cg_sense(kspace, mask, smaps=None, num_iterations: int = 20, regularization: float = 0.0,
             ndim: int = 2) -> tf.Tensor:
    """CG-SENSE (Pruessmann et al. 2001): solve (A^H A + lam I) x = A^H y by conjugate gradient.

    kspace: complex64 (batch, coils, H, W) with smaps (batch, coils, H, W), or
    (batch, H, W) single-coil with ``smaps=None``; mask: broadcastable to
    (batch, H, W). Returns the complex image (batch, H, W).
    """
    op = SENSE(mask, smaps, ndim=ndim) if smaps is not None else CartesianSingleCoil(mask, ndim=ndim)
    rhs = op.adjoint(kspace)
    return conjugate_gradient(op.normal, rhs, num_iterations=num_iterations,
                              regularization=regularization)
