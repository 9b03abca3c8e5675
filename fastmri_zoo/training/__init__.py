"""Training toolkit: reconstruction losses, RAdam / Lookahead, resumable ``fit`` and ``finetune``.

``fit`` and ``finetune`` import TensorFlow-heavy modules; import them from here
(``from fastmri_zoo.training import fit``) or from :mod:`fastmri_zoo.training.fit`.
"""

from .fit import (
    DEFAULT_LEARNING_RATE, FitResult, cartesian_training_data, finetune, fit, freeze_layers, l1_magnitude_step,
)
from .losses import (
    LOSSES,
    L1Loss,
    L1MSSSIMLoss,
    L1SSIMLoss,
    MSELoss,
    MSSSIMLoss,
    NMSELoss,
    ReconstructionLoss,
    SSIMLoss,
    get_loss,
    ms_ssim_tf,
)
from .optimizers import Lookahead, RAdam, get_optimizer

__all__ = [
    "fit",
    "l1_magnitude_step",
    "finetune",
    "FitResult",
    "freeze_layers",
    "cartesian_training_data",
    "DEFAULT_LEARNING_RATE",
    "LOSSES",
    "ReconstructionLoss",
    "L1Loss",
    "MSELoss",
    "NMSELoss",
    "SSIMLoss",
    "MSSSIMLoss",
    "L1MSSSIMLoss",
    "L1SSIMLoss",
    "get_loss",
    "ms_ssim_tf",
    "RAdam",
    "Lookahead",
    "get_optimizer",
]
