"""The base class every reconstruction network of the zoo derives from.

Calling convention (shared by Cartesian, non-Cartesian, single- and multicoil
models): ``model(inputs)`` where ``inputs`` is a dict

- ``kspace``: complex64, (batch, H, W) / (batch, coils, H, W) Cartesian,
  (batch, nsamples) / (batch, coils, nsamples) non-Cartesian
- ``mask``: float32 broadcastable to (batch, H, W) (Cartesian only)
- ``smaps``: complex64 (batch, coils, *spatial) (multicoil only)
- ``traj``: float32 (batch, ndim, nsamples), ``dcomp``: float32 (batch, nsamples)
  (non-Cartesian only)

and the output is the complex64 image (batch, *spatial). ``magnitude`` gives
the (cropped) magnitude that fastMRI evaluates.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ..data.pipelines import center_crop

__all__ = ["ReconstructionModel", "crop_center", "magnitude"]


#: fastMRI's centre crop of the last axes (one implementation, in the data module).
crop_center = center_crop


def magnitude(image: tf.Tensor, crop: tuple[int, int] | None = None) -> tf.Tensor:
    """|image| as float32, optionally centre-cropped to ``crop`` = (h, w)."""
    mag = tf.abs(image) if image.dtype.is_complex else image
    return crop_center(mag, crop) if crop is not None else mag


class ReconstructionModel(keras.Model):
    """Keras 3 subclassed model with the zoo's calling convention and preset I/O.

    Subclasses declare which inputs they need with ``REQUIRED_INPUTS`` and
    store every constructor argument under the same name (returned by
    ``get_config``), so ``cls.from_config(model.get_config())`` rebuilds them.
    """

    REQUIRED_INPUTS: tuple[str, ...] = ("kspace",)
    #: whether the model takes multicoil k-space (subclasses set it per instance)
    multicoil: bool = False

    def check_inputs(self, inputs) -> None:
        """Raise a ValueError if a required key is missing from ``inputs``."""
        if not isinstance(inputs, dict):
            raise ValueError(
                f"inputs: expected a dict with keys {list(self.REQUIRED_INPUTS)}, "
                f"got {type(inputs).__name__}."
            )
        missing = [key for key in self.REQUIRED_INPUTS if key not in inputs]
        if missing:
            raise ValueError(
                f"inputs: {type(self).__name__} needs keys {list(self.REQUIRED_INPUTS)}; "
                f"missing {missing}, got {sorted(inputs)}."
            )

    def save_to_preset(self, preset_dir, **card):
        """Write a checkpoint folder (config.json, model.weights.h5, metadata.json, README.md);
        returns its path. ``card``: model-card fields (``presets.CARD_FIELDS``), and
        ``example_inputs`` when the model is not built yet."""
        from ..presets import save_to_preset

        return save_to_preset(self, preset_dir, **card)

    @classmethod
    def from_preset(cls, handle: str, **kwargs) -> "ReconstructionModel":
        """Load a checkpoint from a registry name, a local folder or ``hf://owner/repo[@revision]``."""
        from ..presets import from_preset

        model = from_preset(handle, **kwargs)
        if cls is not ReconstructionModel and not isinstance(model, cls):
            raise ValueError(
                f"handle {handle!r} holds a {type(model).__name__}, not a {cls.__name__}; "
                f"use ReconstructionModel.from_preset or {type(model).__name__}.from_preset."
            )
        return model
