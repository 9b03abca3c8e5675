"""MoDL: model-based deep learning (Aggarwal, Mani & Jacob 2019).

One shared residual CNN denoiser and one proximal (conjugate-gradient)
data-consistency step with a learned regularisation weight, unrolled
``n_iter`` times with the same weights in every iteration.
"""

from __future__ import annotations

import keras

from ..layers import ConvStack, ProximalStep
from .unrolled import UnrolledModel

__all__ = ["MoDL"]


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class MoDL(UnrolledModel):
    """MoDL: x_0 = A^H y, then for k = 1..``n_iter`` (weights shared across k)::

        z_k = x_{k-1} + CNN(x_{k-1})                               (residual denoiser D_w)
        x_k = argmin_x ||A x - y||^2 + lam ||x - z_k||^2           (``n_cg_iter`` CG steps)

    i.e. x_k solves (A^H A + lam I) x = A^H y + lam z_k
    (:class:`~fastmri_zoo.layers.ProximalStep`, ``operator.prox_l2``). The CNN
    is a :class:`ConvStack` of ``n_layers`` 3x3 convolutions (``n_filters``
    channels, ReLU, batch norm on the hidden convolutions after the first when
    ``batch_norm``), the last one linear to 2 channels (real, imaginary); the
    paper's setting is 5 layers of 64 filters. ``lam`` is learned, initialised
    to ``initial_regularization`` (0.05 as in the authors' code).
    A = M F (single-coil) or M F S (``multicoil``, SENSE with the given ``smaps``).
    ``cg_iterations`` (the old name of ``n_cg_iter``) still loads from configs.

    inputs: ``kspace`` complex64 (batch, H, W) or (batch, coils, H, W), ``mask``
    real broadcastable to (batch, H, W), ``smaps`` complex64 (batch, coils, H, W)
    when multicoil; output: complex64 (batch, H, W).

    Stable layer names: ``denoiser`` (its convolutions ``conv_i`` /
    ``output_conv``) and ``data_consistency`` (weight ``regularization``).
    """

    STEP_ORDER = ("prior", "data")
    SHARED_PRIOR = True
    RENAMED_ARGUMENTS = {"cg_iterations": "n_cg_iter"}

    def __init__(
        self,
        n_iter: int = 10,
        n_layers: int = 5,
        n_filters: int = 64,
        activation: str = "relu",
        batch_norm: bool = True,
        n_cg_iter: int = 10,
        initial_regularization: float = 0.05,
        trainable_regularization: bool = True,
        multicoil: bool = False,
        **kwargs,
    ):
        super().__init__(n_iter=n_iter, multicoil=multicoil, **kwargs)
        if int(n_cg_iter) < 1:
            raise ValueError(f"n_cg_iter: expected a positive integer, got {n_cg_iter}.")
        if int(n_layers) < 2:
            raise ValueError(f"n_layers: expected at least 2 convolutions (hidden + output), got {n_layers}.")
        self.n_layers = int(n_layers)
        self.n_filters = int(n_filters)
        self.activation = activation
        self.batch_norm = bool(batch_norm)
        self.n_cg_iter = int(n_cg_iter)
        self.initial_regularization = float(initial_regularization)
        self.trainable_regularization = bool(trainable_regularization)
        self.denoiser = ConvStack(
            n_outputs=2,
            n_convs=self.n_layers - 1,
            n_filters=self.n_filters,
            activation=activation,
            batch_norm=self.batch_norm,
            name="denoiser",
        )
        self.data_consistency = ProximalStep(
            initial_regularization=self.initial_regularization,
            n_cg_iter=self.n_cg_iter,
            trainable_regularization=self.trainable_regularization,
            name="data_consistency",
        )

    @classmethod
    def small_config(cls) -> dict:
        return dict(n_iter=2, n_layers=3, n_filters=8, n_cg_iter=3)

    def build_layers(self) -> None:
        self.denoiser.build((None, None, None, 2))

    def data_step(self, i, state, measurements, operator, training=None):
        return self.data_consistency(state, measurements, operator=operator)

    def get_config(self):
        config = super().get_config()
        config.update(
            n_layers=self.n_layers,
            n_filters=self.n_filters,
            activation=self.activation,
            batch_norm=self.batch_norm,
            n_cg_iter=self.n_cg_iter,
            initial_regularization=self.initial_regularization,
            trainable_regularization=self.trainable_regularization,
            multicoil=self.multicoil,
        )
        return config
