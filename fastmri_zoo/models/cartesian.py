"""Shared input handling of the Cartesian networks (U-net, Cascade-net, KIKI-net, PDNet, XPDNet)."""

from __future__ import annotations

import numpy as np

from ..layers.acquisition import cartesian_operator, check_cartesian_inputs, required_inputs
from .base import ReconstructionModel

__all__ = ["CartesianModel"]


class CartesianModel(ReconstructionModel):
    """A ReconstructionModel on Cartesian k-space, single-coil or (``multicoil=True``) SENSE.

    inputs: ``kspace`` complex64 (batch, H, W) or (batch, coils, H, W), ``mask``
    real broadcastable to (batch, H, W), ``smaps`` complex64 (batch, coils, H, W)
    when multicoil. ``check_inputs`` raises a ValueError on missing keys, wrong
    ranks, a mask whose width is not the k-space width, coil-map shapes that do
    not match, or NaN/Inf values (the last only in eager mode).
    """

    REQUIRED_INPUTS = required_inputs(multicoil=False)

    def __init__(self, multicoil: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.multicoil = bool(multicoil)
        self.REQUIRED_INPUTS = required_inputs(self.multicoil)

    def check_inputs(self, inputs) -> None:
        super().check_inputs(inputs)
        check_cartesian_inputs(inputs, self.multicoil, type(self).__name__)

    def __call__(self, inputs, *args, **kwargs):
        # Validate before Keras traces or builds anything, so bad input fails first and cleanly.
        self.check_inputs(inputs)
        return super().__call__(inputs, *args, **kwargs)

    def operator(self, inputs):
        """(kspace complex64, CartesianSingleCoil or SENSE operator) from inputs checked in ``__call__``."""
        return cartesian_operator(inputs, self.multicoil)

    def build_from_config(self, config) -> None:
        """Create the weights (e.g. in ``keras.saving.load_model``) by one call on
        zero k-space of the recorded input shapes; unknown sizes become 8."""
        shapes = (config or {}).get("input_shape")
        if not isinstance(shapes, dict) or not all(key in shapes for key in self.REQUIRED_INPUTS):
            return
        dummy = {}
        for key in self.REQUIRED_INPUTS:
            shape = tuple(8 if size is None else int(size) for size in shapes[key])
            dtype = np.float32 if key == "mask" else np.complex64
            dummy[key] = np.ones(shape, dtype) if key != "kspace" else np.zeros(shape, dtype)
        self(dummy)
