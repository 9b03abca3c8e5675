"""Data steps of the unrolled networks: the one small set every model draws from.

Each step takes an image estimate, the measurements y and the acquisition's
:class:`~fastmri_zoo.physics.LinearOperator` A (any of them: Cartesian,
SENSE, density-weighted NUFFT, gridded), passed as a keyword argument because
Keras only accepts tensors positionally: ``step(image, kspace, operator=op)``.

- :func:`data_gradient`: A^H (A x - y), the gradient of 1/2 ||A x - y||^2
  (what PDNet / XPDNet / NC-PDNet feed their image networks; no weights).
- :class:`GradientStep`: x - eta A^H (A x - y), eta learned (or fixed, then weightless).
- :class:`ProximalStep`: MoDL's step, ``operator.prox_l2`` with a learned
  regularisation weight lam: argmin_x ||A x - y||^2 + lam ||x - z||^2
  (conjugate gradient, or a closed form where the operator has one).
- :class:`KSpaceReplacement`: Cascade-net / KIKI-net: ``operator.prox_l2`` with
  gamma = nu (noisy, nu learned) or gamma -> infinity (``noiseless``): on a
  Cartesian acquisition, sampled k-space values replaced by the measured ones
  or averaged with them.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ..checks import real_to_complex64

__all__ = ["data_gradient", "GradientStep", "ProximalStep", "ConjugateGradientDC", "KSpaceReplacement"]


def data_gradient(operator, image: tf.Tensor, measurements: tf.Tensor, adjoint_measurements=None) -> tf.Tensor:
    """A^H (A x - y) for image x (batch, *spatial) and measurements y of ``operator``.

    With ``adjoint_measurements`` (= A^H y, computed once) it is
    ``operator.normal(x) - A^H y``, which uses the operator's fast normal form
    (e.g. the Toeplitz embedding of a NUFFT) instead of a forward and an adjoint.
    """
    if adjoint_measurements is not None:
        return operator.normal(image) - adjoint_measurements
    return operator.adjoint(operator.forward(image) - measurements)


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class GradientStep(keras.layers.Layer):
    """x - eta A^H (A x - y): one gradient step on the data term.

    eta is a weight ``step_size`` initialised to ``initial_step_size`` when
    ``trainable_step``, else the fixed number ``initial_step_size`` (no weight).
    image: complex64 (batch, *spatial); kspace: the measurements of ``operator``.
    """

    def __init__(self, initial_step_size: float = 1.0, trainable_step: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.initial_step_size = float(initial_step_size)
        self.trainable_step = bool(trainable_step)
        if self.trainable_step:
            self.step_size = self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(initial_step_size),
                name="step_size",
            )

    def call(self, image, kspace, *, operator, adjoint_measurements=None):
        eta = self.step_size if self.trainable_step else self.initial_step_size
        eta = real_to_complex64(eta)
        return image - eta * data_gradient(operator, image, kspace, adjoint_measurements)

    def get_config(self):
        config = super().get_config()
        config.update(initial_step_size=self.initial_step_size, trainable_step=self.trainable_step)
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class ProximalStep(keras.layers.Layer):
    """MoDL data consistency: x = argmin_x ||A x - y||^2 + lam ||x - z||^2.

    That is ``operator.prox_l2(z, y, gamma=1 / lam)`` (it solves
    (A^H A + lam I) x = A^H y + lam z, by ``n_cg_iter`` conjugate-gradient steps
    from z unless the operator has a closed form). lam is the weight
    ``regularization``, initialised to ``initial_regularization`` and learned if
    ``trainable_regularization``. denoised (z): complex64 (batch, *spatial).
    ``num_iterations`` (the old name of ``n_cg_iter``) still loads.
    """

    def __init__(
        self,
        initial_regularization: float = 0.05,
        n_cg_iter: int = 10,
        trainable_regularization: bool = True,
        **kwargs,
    ):
        n_cg_iter = kwargs.pop("num_iterations", n_cg_iter)
        super().__init__(**kwargs)
        if int(n_cg_iter) < 1:
            raise ValueError(f"n_cg_iter: expected a positive integer, got {n_cg_iter}.")
        self.initial_regularization = initial_regularization
        self.n_cg_iter = int(n_cg_iter)
        self.trainable_regularization = trainable_regularization
        self.regularization = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(initial_regularization),
            trainable=trainable_regularization,
            name="regularization",
        )

    def call(self, denoised, kspace, *, operator):
        lam = tf.convert_to_tensor(self.regularization)
        return operator.prox_l2(denoised, kspace, gamma=1.0 / lam, n_iter=self.n_cg_iter)

    def get_config(self):
        config = super().get_config()
        config.update(
            initial_regularization=self.initial_regularization,
            n_cg_iter=self.n_cg_iter,
            trainable_regularization=self.trainable_regularization,
        )
        return config


#: The former name of :class:`ProximalStep` (same weights, same layer).
ConjugateGradientDC = ProximalStep


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class KSpaceReplacement(keras.layers.Layer):
    """x = ``operator.prox_l2(z, y, gamma)``: gamma = nu, or gamma -> infinity when ``noiseless``.

    Schlemper et al. 2018 (Cascade-net), eq. (8): on a Cartesian acquisition,
    F x = (1 - m) F z + m (F z + nu y) / (1 + nu): a noiseless acquisition
    replaces the sampled values of the estimate by the measurement, a noisy one
    averages them with the learned weight nu (``noise_weight``, initialised to
    ``initial_noise_weight``). Any other operator gets its own proximal step
    (e.g. SENSE: conjugate gradient on the coil-combined problem).
    image: complex64 (batch, *spatial); kspace: the measurements of ``operator``.
    """

    def __init__(self, noiseless: bool = True, initial_noise_weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.noiseless = noiseless
        self.initial_noise_weight = initial_noise_weight
        if not noiseless:
            self.noise_weight = self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(initial_noise_weight),
                name="noise_weight",
            )

    def call(self, image, kspace, *, operator):
        gamma = None if self.noiseless else tf.convert_to_tensor(self.noise_weight)
        return operator.prox_l2(image, kspace, gamma=gamma)

    def get_config(self):
        config = super().get_config()
        config.update(noiseless=self.noiseless, initial_noise_weight=self.initial_noise_weight)
        return config
