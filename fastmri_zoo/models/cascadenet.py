"""Cascade-net / DCCNN (Schlemper et al. 2018): CNN + k-space replacement, cascaded."""

from __future__ import annotations

import keras

from ..layers import ConvStack, KSpaceReplacement
from .unrolled import UnrolledModel

__all__ = ["CascadeNet"]


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class CascadeNet(UnrolledModel):
    """Cascade of ``n_iter`` residual CNNs, each followed by data consistency.

    x_0 = A^H y; x_{i+1} = DC(x_i + CNN_i(x_i)) where CNN_i has ``n_convs``
    convolutions of ``n_filters`` channels and a linear 3x3 convolution to 2
    channels, and DC is :class:`~fastmri_zoo.layers.KSpaceReplacement`
    (``operator.prox_l2``): sampled k-space values replaced (``noiseless``) or
    averaged with a learned weight. Defaults: D5C5 with 48 filters, the thesis
    benchmark (424,570 parameters). ``n_cascade`` (the old name of ``n_iter``)
    still loads from configs.

    inputs: ``kspace`` complex64 (batch, H, W) [or (batch, coils, H, W) with
    ``smaps`` when ``multicoil``; DC is then the SENSE operator's proximal
    step], ``mask``; output: complex64 (batch, H, W).
    """

    STEP_ORDER = ("prior", "data")
    RENAMED_ARGUMENTS = {"n_cascade": "n_iter"}

    def __init__(
        self,
        n_iter: int = 5,
        n_convs: int = 5,
        n_filters: int = 48,
        activation: str = "relu",
        noiseless: bool = True,
        multicoil: bool = False,
        **kwargs,
    ):
        super().__init__(n_iter=n_iter, multicoil=multicoil, **kwargs)
        self.n_convs = n_convs
        self.n_filters = n_filters
        self.activation = activation
        self.noiseless = noiseless
        self.image_nets = [
            ConvStack(n_outputs=2, n_convs=n_convs, n_filters=n_filters, activation=activation, name=f"image_net_{i}")
            for i in range(self.n_iter)
        ]
        self.data_consistency = [
            KSpaceReplacement(noiseless=noiseless, name=f"data_consistency_{i}") for i in range(self.n_iter)
        ]

    @classmethod
    def small_config(cls) -> dict:
        return dict(n_iter=2, n_convs=2, n_filters=8)

    def build_layers(self) -> None:
        for image_net in self.image_nets:
            image_net.build((None, None, None, 2))

    def data_step(self, i, state, measurements, operator, training=None):
        return self.data_consistency[i](state, measurements, operator=operator)

    def get_config(self):
        config = super().get_config()
        config.update(
            n_convs=self.n_convs,
            n_filters=self.n_filters,
            activation=self.activation,
            noiseless=self.noiseless,
            multicoil=self.multicoil,
        )
        return config
