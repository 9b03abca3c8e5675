"""Reconstruction networks, one module per architecture family.

``base.ReconstructionModel`` owns the acquisition (validation, operator, dummy inputs) and the preset
I/O; ``unrolled.UnrolledModel`` is the one unrolled loop (initialisation, ``n_iter`` x (data step,
prior)) that PDNet, XPDNet, NC-PDNet, GriddedPDNet, Cascade-net, MoDL, VarNet, KIKI-net and the learnlet
ISTA network (``LearnletNet``) override. Denoisers (``denoising.Denoiser``: learnlets, wavelets, U-net) take
(image, sigma) instead of k-space.
Each family offers ``small_config()`` for the generated tests (tests/models/families.py).
"""

from .base import ReconstructionModel, crop_center, magnitude
from .cartesian import CartesianModel
from .cascadenet import CascadeNet
from .irim import IRIM, RIM
from .kikinet import KIKINet
from .denoising import Denoiser
from .learnlets import LearnletDenoiser, LearnletNet, WaveletHardThresholding
from .modl import MoDL
from .nasnet import NasNet, ResidualDCCNN
from .ncpdnet import GriddedPDNet, NCPDNet, NonCartesianModel, UNetAdjDcomp
from .pdnet import PDNet, XPDNet
from .reconode import ReconODE
from .score import ScoreNetwork
from .unet import UNet, UNetDenoiser
from .unrolled import UnrolledModel
from .varnet import VarNet

__all__ = [
    "ReconstructionModel",
    "crop_center",
    "magnitude",
    "CartesianModel",
    "UnrolledModel",
    "UNet",
    "CascadeNet",
    "KIKINet",
    "PDNet",
    "XPDNet",
    "MoDL",
    "VarNet",
    "ReconODE",
    "ScoreNetwork",
    "NonCartesianModel",
    "NCPDNet",
    "UNetAdjDcomp",
    "GriddedPDNet",
    "IRIM",
    "RIM",
    "Denoiser",
    "LearnletDenoiser",
    "WaveletHardThresholding",
    "UNetDenoiser",
    "LearnletNet",
    "NasNet",
    "ResidualDCCNN",
]
