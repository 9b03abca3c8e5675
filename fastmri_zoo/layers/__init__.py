"""Reusable Keras layers: complex <-> channels, data consistency, denoiser blocks (CNN, DnCNN, U-net, MWCNN),
coil-map refiner."""

from .acquisition import cartesian_operator, check_cartesian_inputs, required_inputs
from .blocks import ChannelAttention, ConvStack, DnCNN, UNetBlock, make_activation
from .complex import ChannelsToComplex, ComplexToChannels, channels_to_complex, complex_to_channels
from .data_consistency import ConjugateGradientDC, GradientStep, KSpaceReplacement
from .mwcnn import MWCNN, haar_dwt, haar_iwt
from .sensitivity import SensitivityMapRefiner

__all__ = [
    "complex_to_channels",
    "channels_to_complex",
    "ComplexToChannels",
    "ChannelsToComplex",
    "KSpaceReplacement",
    "GradientStep",
    "ConjugateGradientDC",
    "ConvStack",
    "DnCNN",
    "ChannelAttention",
    "UNetBlock",
    "MWCNN",
    "haar_dwt",
    "haar_iwt",
    "make_activation",
    "SensitivityMapRefiner",
    "check_cartesian_inputs",
    "cartesian_operator",
    "required_inputs",
]
