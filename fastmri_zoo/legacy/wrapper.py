"""The authors' pre- and post-processing around a zoo network, so inputs and outputs are in physical units."""

from __future__ import annotations

from typing import Mapping

import keras
import tensorflow as tf

from ..models.base import ReconstructionModel
from ..presets import resolve_class, zeros_like_signature

__all__ = ["LegacyReconstruction", "original_crop", "OUTPUT_CROPS"]

#: ``output_crop`` values: None (OASIS: no crop) or "fastmri" (the original's
#: general_fastmri_format: 320 x 320, or ``inputs["output_shape"]`` when given).
OUTPUT_CROPS = (None, "fastmri")
FASTMRI_CROP = (320, 320)


def original_crop(image: tf.Tensor, rows, cols) -> tf.Tensor:
    """The original code's centre crop of the last two axes, its index arithmetic and TF slicing included.

    Start row H // 2 - rows // 2 (one less when ``rows`` is odd), start column
    W // 2 - cols // 2; as in TF slicing, a negative start counts from the end
    and bounds are clamped, so an image smaller than the crop comes back whole.
    image: (batch, H, W) any dtype.
    """
    shape = tf.shape(image)
    height, width = shape[-2], shape[-1]
    rows = tf.cast(rows, tf.int32)
    cols = tf.cast(cols, tf.int32)
    start_row = height // 2 - rows // 2 - tf.math.floormod(rows, 2)
    start_col = width // 2 - cols // 2
    return image[..., start_row : start_row + rows, start_col : start_col + cols]


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class LegacyReconstruction(ReconstructionModel):
    """A zoo network configured as one of the authors' published checkpoints, with their pre/post-processing.

    The network was trained on k-space multiplied by ``kspace_scale`` (1e6 for
    fastMRI, 1e-2 for OASIS); this model multiplies ``inputs["kspace"]`` by it,
    runs ``network`` and divides the image by it, so k-space in physical units
    gives an image in physical units. ``output_crop="fastmri"`` then crops as the
    original did: to ``inputs["output_shape"]`` = (rows, cols) when given (the
    brain checkpoints), else to 320 x 320 (images smaller than that come back
    whole); ``None`` leaves the image uncropped (OASIS).

    inputs: those of ``network`` (``kspace``, ``mask``, ``smaps``, ``traj``,
    ``dcomp``, ``image_shape`` for single-coil non-Cartesian networks...), plus
    optionally ``output_shape`` int (2,) or (batch, 2) (the first row is used
    for the whole batch, as in the original).
    Output: complex64 (batch, *spatial), cropped as described.
    ``input_signature`` ({key: {"shape", "dtype"}}) is a small input the model
    can be built on (``example_inputs()``).

    ``input_units = "physical"`` tells callers (e.g. a reconstruction loop that
    normalises k-space for the zoo's own checkpoints) to pass the data as is.
    """

    input_units = "physical"

    def __init__(
        self,
        network,
        kspace_scale: float = 1.0,
        output_crop: str | None = None,
        input_signature: Mapping | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(network, Mapping):
            network = keras.saving.deserialize_keras_object(dict(network), safe_mode=True)
        if not isinstance(network, ReconstructionModel):
            raise ValueError(f"network: expected a zoo ReconstructionModel or its config, got {type(network).__name__}.")
        if output_crop not in OUTPUT_CROPS:
            raise ValueError(f"output_crop: expected one of {OUTPUT_CROPS}, got {output_crop!r}.")
        if not float(kspace_scale) > 0:
            raise ValueError(f"kspace_scale: expected a positive number, got {kspace_scale!r}.")
        self.network = network
        self.kspace_scale = float(kspace_scale)
        self.output_crop = output_crop
        self.input_signature = None if input_signature is None else {
            str(key): {"shape": list(spec["shape"]), "dtype": str(spec["dtype"])} for key, spec in input_signature.items()
        }
        self.multicoil = bool(getattr(network, "multicoil", False))
        # The wrapper takes the network's inputs: its acquisition gives REQUIRED_INPUTS and the checks.
        self.ndim = network.ndim
        self.acquisition = network.acquisition

    @classmethod
    def from_checkpoint(cls, checkpoint) -> "LegacyReconstruction":
        """The built, untrained model of a :class:`~fastmri_zoo.legacy.LegacyCheckpoint`.

        Its network class is looked up by the Keras registered name ``checkpoint.network``.
        """
        network = resolve_class(checkpoint.network)(**checkpoint.network_kwargs)
        model = cls(network, kspace_scale=checkpoint.kspace_scale, output_crop=checkpoint.output_crop,
                    input_signature=checkpoint.input_signature, name=checkpoint.name.replace("-", "_"))
        model.build()
        return model

    def example_inputs(self) -> dict:
        """Zero inputs of ``input_signature`` (used to build the model and by ``save_to_preset``)."""
        if self.input_signature is None:
            raise ValueError(f"{self.name}: no input_signature recorded; pass example inputs explicitly.")
        return zeros_like_signature(self.input_signature)

    def __call__(self, inputs, *args, **kwargs):
        # Sizes given as Python ints travel as call arguments: Keras takes only tensors in the input dict.
        if isinstance(inputs, Mapping) and ("image_shape" in inputs or "output_shape" in inputs):
            inputs = dict(inputs)
            for key in ("image_shape", "output_shape"):
                if key in inputs:
                    kwargs[key] = inputs.pop(key)
        return super().__call__(inputs, *args, **kwargs)

    def build(self, input_shape=None):
        if not self.network.built:
            self.network.build(None)  # every zoo network creates its weights without a forward pass
        self.built = True

    def call(self, inputs, training=None, image_shape=None, output_shape=None):
        self.check_inputs(inputs, image_shape)
        network_inputs = dict(inputs)
        scale = tf.constant(self.kspace_scale, tf.complex64)
        network_inputs["kspace"] = tf.cast(inputs["kspace"], tf.complex64) * scale
        if image_shape is not None:
            network_inputs["image_shape"] = image_shape
        image = self.network(network_inputs, training=training) / scale
        if self.output_crop == "fastmri":
            if output_shape is not None:
                output_shape = tf.reshape(tf.convert_to_tensor(output_shape), [-1, 2])[0]
                image = original_crop(image, output_shape[0], output_shape[1])
            else:
                image = original_crop(image, *FASTMRI_CROP)
        return image

    def get_config(self):
        config = super().get_config()
        network = keras.saving.serialize_keras_object(self.network)
        network.pop("build_config", None)  # the wrapper builds its network itself
        network.pop("compile_config", None)
        config.update(
            network=network,
            kspace_scale=self.kspace_scale,
            output_crop=self.output_crop,
            input_signature=None if self.input_signature is None else {
                key: {"shape": list(spec["shape"]), "dtype": spec["dtype"]} for key, spec in self.input_signature.items()
            },
        )
        return config
