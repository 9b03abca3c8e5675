"""Measurement operators of MRI acquisitions.

Every operator has ``forward`` (A x), ``adjoint`` (A^H y), ``normal``
(A^H A x) and ``prox_l2``; see ``base.LinearOperator``. ``acquisition``
turns a model's input dict into (measurements, operator): ``make_acquisition``.
"""

from .base import LinearOperator
from .cartesian import SENSE, CartesianSingleCoil
from .cg import conjugate_gradient
from .coils import estimate_sensitivity_maps, normalize_by_rss, rss
from .density import normalize_density, pipe_menon_density, radial_density
from .fft import FFT, fftc, ifftc
from .nufft import NUFFT, estimate_sensitivity_maps_nufft
from .toeplitz import ToeplitzNormal, point_spread_function
from .noncartesian import DensityWeightedNUFFT, gridded_operator, sampled_cells
from .acquisition import (
    Acquisition,
    CartesianAcquisition,
    GriddedAcquisition,
    InputSpec,
    NonCartesianAcquisition,
    make_acquisition,
)

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
    "DensityWeightedNUFFT",
    "sampled_cells",
    "gridded_operator",
    "InputSpec",
    "Acquisition",
    "CartesianAcquisition",
    "NonCartesianAcquisition",
    "GriddedAcquisition",
    "make_acquisition",
    "pipe_menon_density",
    "radial_density",
    "normalize_density",
    "estimate_sensitivity_maps_nufft",
]
