"""Reusable Keras layers: complex <-> channels and the complex-denoiser wrapper, the data steps of the
unrolled networks, convolutions and up-convolutions, instance normalisation, denoiser blocks (CNN, DnCNN, U-net, MWCNN), coil-map refiner."""

from .blocks import ChannelAttention, ConvStack, DnCNN, UNetBlock, make_activation
from .complex import ChannelsToComplex, ComplexToChannels, channels_to_complex, complex_denoise, complex_to_channels
from .convolution import Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose, same_convolution
from .data_consistency import ConjugateGradientDC, GradientStep, KSpaceReplacement, ProximalStep, data_gradient
from .invertible import AdditiveCoupling, HouseholderConv, InvertibleLayer, InvertibleUNet, PixelShuffleBlock, invert_to_learn
from .learnlets import Learnlet, LearnletStep, NormalisationUpdate, pyramid_analysis, pyramid_synthesis
from .mwcnn import MWCNN, haar_dwt, haar_iwt
from .nas import (OPERATIONS, SEARCH_SPACES, CellNetwork, CellOperation, Genotype, GenotypeCell, MixedOperation,
                  ResidualBlock, SearchCell, derive_genotype, edge_count)
from .normalization import GroupNormalization, instance_normalization
from .ode import LearnedSolverStep, TimeConv, TimeDependentCNN, odeint, odeint_adjoint
from .recurrent import ConvGRUCell, RecurrentConvNet
from .sensitivity import SensitivityMapRefiner

__all__ = [
    "same_convolution",
    "Conv2D",
    "Conv3D",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "GroupNormalization",
    "instance_normalization",
    "complex_to_channels",
    "channels_to_complex",
    "ComplexToChannels",
    "ChannelsToComplex",
    "KSpaceReplacement",
    "GradientStep",
    "ProximalStep",
    "ConjugateGradientDC",
    "data_gradient",
    "complex_denoise",
    "ConvStack",
    "DnCNN",
    "ChannelAttention",
    "UNetBlock",
    "MWCNN",
    "haar_dwt",
    "haar_iwt",
    "make_activation",
    "SensitivityMapRefiner",
    "TimeConv",
    "TimeDependentCNN",
    "LearnedSolverStep",
    "odeint",
    "odeint_adjoint",
    "HouseholderConv",
    "PixelShuffleBlock",
    "AdditiveCoupling",
    "InvertibleLayer",
    "InvertibleUNet",
    "invert_to_learn",
    "ConvGRUCell",
    "RecurrentConvNet",
    "Learnlet",
    "LearnletStep",
    "NormalisationUpdate",
    "pyramid_analysis",
    "pyramid_synthesis",
    "OPERATIONS",
    "SEARCH_SPACES",
    "CellOperation",
    "MixedOperation",
    "SearchCell",
    "Genotype",
    "derive_genotype",
    "edge_count",
    "GenotypeCell",
    "ResidualBlock",
    "CellNetwork",
]
