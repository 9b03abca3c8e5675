"""Learned refinement of coil sensitivity maps (as in the E2E VarNet and XPDNet)."""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from ..physics import normalize_by_rss
from .blocks import UNetBlock
from .complex import complex_denoise

__all__ = ["SensitivityMapRefiner"]


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class SensitivityMapRefiner(keras.layers.Layer):
    """smaps -> normalize_by_rss(smaps + U-net(smaps)), the U-net applied to each coil.

    smaps: complex64 (batch, coils, H, W) -> complex64 (batch, coils, H, W). Each
    coil map is a 2-channel image for a small U-net (default: 3 scales of
    [4, 8, 16] channels, leaky ReLU 0.1, 7,458 parameters as in the original
    NCPDNet / UPDNet refiner); the refined maps are renormalised so that their
    root-sum-of-squares over coils is 1 (0 in the background).

    ``head_activation=True`` applies ``activation`` after the U-net's 1x1 head
    convolution too, as the authors' refiner does in the code that wrote their
    published NCPDNet / UPDNet / XPDNet checkpoints.
    """

    def __init__(
        self,
        layers_n_channels: Sequence[int] = (4, 8, 16),
        activation: str = "lrelu",
        head_channels: int | None = 4,
        residual: bool = True,
        head_activation: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.layers_n_channels = [int(c) for c in layers_n_channels]
        self.activation = activation
        self.head_channels = head_channels
        self.residual = residual
        self.head_activation = head_activation
        self.unet = UNetBlock(
            n_outputs=2,
            layers_n_channels=self.layers_n_channels,
            activation=activation,
            head_channels=head_channels,
            head_activation=head_activation,
            name="unet",
        )

    def build(self, input_shape=None):
        # The U-net's weights do not depend on the map size.
        self.unet.build((None, None, None, 2))

    def call(self, smaps):
        shape = tf.shape(smaps)
        per_coil = tf.reshape(smaps, tf.concat([[-1], shape[2:], [1]], axis=0))
        refined = complex_denoise(self.unet, per_coil, channels=True, residual=self.residual)
        refined = tf.reshape(refined, shape)
        return normalize_by_rss(refined)

    def get_config(self):
        config = super().get_config()
        config.update(
            layers_n_channels=list(self.layers_n_channels),
            activation=self.activation,
            head_channels=self.head_channels,
            residual=self.residual,
            head_activation=self.head_activation,
        )
        return config
