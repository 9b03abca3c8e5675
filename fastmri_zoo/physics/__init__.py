"""Measurement operators of MRI acquisitions.

Every operator has ``forward`` (A x), ``adjoint`` (A^H y) and ``normal``
(A^H A x); see ``base.LinearOperator``.
"""

from .base import LinearOperator
from .cartesian import SENSE, CartesianSingleCoil
from .cg import conjugate_gradient
from .coils import estimate_sensitivity_maps, normalize_by_rss, rss
from .density import normalize_density, pipe_menon_density, radial_density
from .fft import FFT, fftc, ifftc
from .nufft import NUFFT, estimate_sensitivity_maps_nufft
from .toeplitz import ToeplitzNormal, point_spread_function

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
    "NUFFT",
    "ToeplitzNormal",
    "point_spread_function",
    "pipe_menon_density",
    "radial_density",
    "normalize_density",
    "estimate_sensitivity_maps_nufft",
]
