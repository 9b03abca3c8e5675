"""Reconstruction networks, one module per architecture family."""

from .base import ReconstructionModel, crop_center, magnitude
from .cartesian import CartesianModel
from .cascadenet import CascadeNet
from .kikinet import KIKINet
from .modl import MoDL
from .ncpdnet import GriddedPDNet, NCPDNet, NonCartesianModel, UNetAdjDcomp
from .pdnet import PDNet, XPDNet
from .unet import UNet
from .varnet import VarNet

__all__ = [
    "ReconstructionModel",
    "crop_center",
    "magnitude",
    "CartesianModel",
    "UNet",
    "CascadeNet",
    "KIKINet",
    "PDNet",
    "XPDNet",
    "MoDL",
    "VarNet",
    "NonCartesianModel",
    "NCPDNet",
    "UNetAdjDcomp",
    "GriddedPDNet",
]

from . import checkpoints  # noqa: E402,F401  (registers the shipped checkpoints)
