"""Data-consistency layers, written once for every unrolled network.

- :class:`KSpaceReplacement`: Cascade-net / KIKI-net: sampled k-space values of
  the estimate are replaced by the measured ones (or averaged with them,
  weighted by a learned noise level).
- :class:`GradientStep`: PDNet / VarNet style x - eta A^H (A x - y), learned eta.
- :class:`ConjugateGradientDC`: MoDL: argmin_x ||A x - y||^2 + lam ||x - z||^2
  solved by conjugate gradient, learned lam.

The last two take the measurement operator from :mod:`fastmri_zoo.physics`
(``CartesianSingleCoil`` or ``SENSE``) as a keyword argument (Keras only
accepts tensors positionally): ``step(image, kspace, operator=op)``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ..physics import SENSE, conjugate_gradient, fftc, ifftc

__all__ = ["KSpaceReplacement", "GradientStep", "ConjugateGradientDC"]


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class KSpaceReplacement(keras.layers.Layer):
    """k_dc = (1 - m) k + m (k + nu y) / (1 + nu), with nu -> inf when ``noiseless``.

    Schlemper et al. 2018 (Cascade-net), eq. (8): where sampled, a noiseless
    acquisition replaces the estimate ``k`` by the measurement ``y``; a noisy
    one averages them with the learned weight ``nu`` (``noise_weight``,
    initialised to ``initial_noise_weight``).
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

    def call(self, kspace_estimate, kspace, mask):
        """kspace_estimate, kspace: complex64, same shape; mask: broadcastable to them."""
        mask = tf.cast(mask, tf.complex64)
        if self.noiseless:
            sampled = kspace
        else:
            nu = tf.cast(tf.convert_to_tensor(self.noise_weight), tf.complex64)
            sampled = (kspace_estimate + nu * kspace) / (1.0 + nu)
        return (1.0 - mask) * kspace_estimate + mask * sampled

    def project_image(self, image, kspace, operator):
        """Image-domain form: image (batch, H, W) -> F^-1 DC(F image), coil-wise for SENSE."""
        if isinstance(operator, SENSE):
            coil_kspace = fftc(image[:, None] * operator.smaps)
            coil_kspace = self(coil_kspace, kspace, operator.mask)
            return tf.reduce_sum(tf.math.conj(operator.smaps) * ifftc(coil_kspace), axis=1)
        return ifftc(self(fftc(image), kspace, operator.mask))

    def get_config(self):
        config = super().get_config()
        config.update(noiseless=self.noiseless, initial_noise_weight=self.initial_noise_weight)
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class GradientStep(keras.layers.Layer):
    """x - eta A^H (A x - y): one gradient step on the data term, eta learned.

    image: complex64 (batch, H, W); kspace: the measurements of ``operator``.
    """

    def __init__(self, initial_step_size: float = 1.0, trainable_step: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.initial_step_size = initial_step_size
        self.trainable_step = trainable_step
        self.step_size = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(initial_step_size),
            trainable=trainable_step,
            name="step_size",
        )

    def call(self, image, kspace, *, operator):
        eta = tf.cast(tf.convert_to_tensor(self.step_size), tf.complex64)
        return image - eta * operator.adjoint(operator.forward(image) - kspace)

    def get_config(self):
        config = super().get_config()
        config.update(initial_step_size=self.initial_step_size, trainable_step=self.trainable_step)
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class ConjugateGradientDC(keras.layers.Layer):
    """MoDL data consistency: solve (A^H A + lam I) x = A^H y + lam z by CG.

    denoised (z): complex64 (batch, H, W); ``num_iterations`` CG steps (fixed,
    so it traces in ``tf.function``), starting from z; lam learned if
    ``trainable_regularization``.
    """

    def __init__(
        self,
        initial_regularization: float = 0.05,
        num_iterations: int = 10,
        trainable_regularization: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.initial_regularization = initial_regularization
        self.num_iterations = num_iterations
        self.trainable_regularization = trainable_regularization
        self.regularization = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(initial_regularization),
            trainable=trainable_regularization,
            name="regularization",
        )

    def call(self, denoised, kspace, *, operator):
        lam = tf.convert_to_tensor(self.regularization)
        rhs = operator.adjoint(kspace) + tf.cast(lam, tf.complex64) * denoised
        return conjugate_gradient(
            operator.normal, rhs, x0=denoised, num_iterations=self.num_iterations, regularization=lam
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            initial_regularization=self.initial_regularization,
            num_iterations=self.num_iterations,
            trainable_regularization=self.trainable_regularization,
        )
        return config
