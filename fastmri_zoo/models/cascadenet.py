"""Cascade-net / DCCNN (Schlemper et al. 2018): CNN + k-space replacement, cascaded."""

from __future__ import annotations

import keras

from ..layers import ConvStack, KSpaceReplacement, channels_to_complex, complex_to_channels
from .cartesian import CartesianModel

__all__ = ["CascadeNet"]


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class CascadeNet(CartesianModel):
    """Cascade of ``n_cascade`` residual CNNs, each followed by data consistency.

    x_0 = A^H y; x_{i+1} = DC(x_i + CNN_i(x_i)) where CNN_i has ``n_convs``
    convolutions of ``n_filters`` channels and a linear 3x3 convolution to 2
    channels, and DC replaces the sampled k-space values (``noiseless``) or
    averages them with a learned weight. Defaults: D5C5 with 48 filters, the
    thesis benchmark (424,570 parameters).

    inputs: ``kspace`` complex64 (batch, H, W) [or (batch, coils, H, W) with
    ``smaps`` when ``multicoil``; DC is then applied to each coil's k-space of
    S x], ``mask``; output: complex64 (batch, H, W).
    """

    def __init__(
        self,
        n_cascade: int = 5,
        n_convs: int = 5,
        n_filters: int = 48,
        activation: str = "relu",
        noiseless: bool = True,
        multicoil: bool = False,
        **kwargs,
    ):
        super().__init__(multicoil=multicoil, **kwargs)
        self.n_cascade = n_cascade
        self.n_convs = n_convs
        self.n_filters = n_filters
        self.activation = activation
        self.noiseless = noiseless
        self.image_nets = [
            ConvStack(n_outputs=2, n_convs=n_convs, n_filters=n_filters, activation=activation, name=f"image_net_{i}")
            for i in range(n_cascade)
        ]
        self.data_consistency = [
            KSpaceReplacement(noiseless=noiseless, name=f"data_consistency_{i}") for i in range(n_cascade)
        ]

    def call(self, inputs, training=None):
        kspace, operator = self.operator(inputs)
        image = operator.adjoint(kspace)
        for image_net, dc in zip(self.image_nets, self.data_consistency):
            update = image_net(complex_to_channels(image[..., None]), training=training)
            image = image + channels_to_complex(update)[..., 0]
            image = dc.project_image(image, kspace, operator)
        return image

    def get_config(self):
        config = super().get_config()
        config.update(
            n_cascade=self.n_cascade,
            n_convs=self.n_convs,
            n_filters=self.n_filters,
            activation=self.activation,
            noiseless=self.noiseless,
            multicoil=self.multicoil,
        )
        return config
