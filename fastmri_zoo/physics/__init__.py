"""Measurement operators of MRI acquisitions.

Every operator has ``forward`` (A x), ``adjoint`` (A^H y) and ``normal``
(A^H A x); see ``base.LinearOperator``.
"""

from .base import LinearOperator
from .cartesian import SENSE, CartesianSingleCoil
from .cg import conjugate_gradient
from .coils import estimate_sensitivity_maps, normalize_by_rss, rss
from .fft import FFT, fftc, ifftc

__all__ = [
    "LinearOperator",
    "FFT",
    "fftc",
    "ifftc",
    "CartesianSingleCoil",
    "SENSE",
    "conjugate_gradient",
    "rss",
    "normalize_by_rss",
    "estimate_sensitivity_maps",
]
