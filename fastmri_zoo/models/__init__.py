"""Reconstruction networks, one module per architecture family."""

from .base import ReconstructionModel, crop_center, magnitude

__all__ = ["ReconstructionModel", "crop_center", "magnitude"]
