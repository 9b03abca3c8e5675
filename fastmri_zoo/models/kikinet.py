"""KIKI-net (Eo et al. 2018): CNNs alternating between k-space and image space."""

from __future__ import annotations

import keras

from ..layers import ConvStack, KSpaceReplacement, complex_denoise
from ..physics import fftc, ifftc
from .unrolled import UnrolledModel

__all__ = ["KIKINet"]


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class KIKINet(UnrolledModel):
    """``n_iter`` pairs of a k-space CNN (K) and an image CNN (I), single-coil.

    As in the authors' benchmark implementation: k_0 = y; for each pair,
    k = K_i(k) (not residual), x = F^-1 k, x = x + I_i(x) (residual); from the
    second pair on, K_i gets F DC(x) (:class:`~fastmri_zoo.layers.KSpaceReplacement`:
    sampled values replaced by y, or averaged with a learned weight when not
    ``noiseless``). The data step of iteration i is (DC, K_i, F^-1), its prior
    I_i. Each CNN has ``n_convs`` 3x3 convolutions of ``n_filters`` channels and
    a linear 1x1 convolution to 2 channels. Defaults (KIKI, 16 convolutions, 48
    filters, leaky ReLU 0.1) give 1,251,080 parameters.

    ``kspace_residual=True`` makes the k-space CNNs residual too (k = k + K_i(k)),
    same parameters; the network then starts near the zero-filled reconstruction
    instead of having to learn the identity in k-space, which trains far faster on
    a small budget (the shipped ``kikinet-cartesian-singlecoil-af4`` uses it).

    inputs: ``kspace`` complex64 (batch, H, W), ``mask``; output: complex64 (batch, H, W).
    """

    def __init__(
        self,
        n_iter: int = 2,
        n_convs: int = 16,
        n_filters: int = 48,
        activation: str = "lrelu",
        noiseless: bool = True,
        kspace_residual: bool = False,
        **kwargs,
    ):
        kwargs.pop("multicoil", None)
        super().__init__(n_iter=n_iter, multicoil=False, **kwargs)
        self.n_convs = n_convs
        self.n_filters = n_filters
        self.activation = activation
        self.noiseless = noiseless
        self.kspace_residual = kspace_residual

        def cnn(name):
            return ConvStack(
                n_outputs=2, n_convs=n_convs, n_filters=n_filters, activation=activation, output_kernel_size=1, name=name
            )

        self.kspace_nets = [cnn(f"kspace_net_{i}") for i in range(self.n_iter)]
        self.image_nets = [cnn(f"image_net_{i}") for i in range(self.n_iter)]
        self.data_consistency = [
            KSpaceReplacement(noiseless=noiseless, name=f"data_consistency_{i}") for i in range(1, self.n_iter)
        ]

    @classmethod
    def small_config(cls) -> dict:
        return dict(n_iter=2, n_convs=2, n_filters=8)

    def build_layers(self) -> None:
        for net in self.kspace_nets + self.image_nets:
            net.build((None, None, None, 2))

    def initial_state(self, measurements, operator, training=None):
        return None  # the first k-space network starts from the measurements

    def data_step(self, i, state, measurements, operator, training=None):
        kspace = measurements if i == 0 else fftc(self.data_consistency[i - 1](state, measurements, operator=operator))
        kspace = complex_denoise(self.kspace_nets[i], kspace, residual=self.kspace_residual, training=training)
        return ifftc(kspace)

    def get_config(self):
        config = super().get_config()
        config.update(
            n_convs=self.n_convs,
            n_filters=self.n_filters,
            activation=self.activation,
            noiseless=self.noiseless,
            kspace_residual=self.kspace_residual,
        )
        return config
