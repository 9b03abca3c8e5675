"""Learnlets (thesis sec. 6.1, Appendix A): as denoisers, the wavelet baseline on the same pyramid, and
as the prior of an unrolled MRI reconstruction network.

:class:`LearnletDenoiser` is one :class:`~fastmri_zoo.layers.learnlets.Learnlet`;
:class:`WaveletHardThresholding` hard-thresholds the fixed pyramid's details at
k_j sigma s_j (k = 3, 4 on the finest scale; s_j the detail's standard deviation for unit white
noise), the baseline the learnlets are compared with. Both are denoisers
(:mod:`~fastmri_zoo.models.denoising`): ``model({"image": x, "sigma": s})``, H and W multiples of
2^n_scales.

:class:`LearnletNet` is a reconstruction network (k-space in, image out, on any acquisition):
unrolled proximal gradient (ISTA) whose proximal step is one learnlet shared by every iteration.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ..layers import GradientStep
from ..layers.learnlets import (
    LEARNLET_ARGUMENTS,
    Learnlet,
    check_pyramid_size,
    fold_channels,
    hard_threshold,
    learnlet_any_size,
    learnlet_arguments,
    noise_per_image,
    pop_learnlet_arguments,
    pyramid_analysis,
    pyramid_synthesis,
    unfold_channels,
)
from .denoising import Denoiser, denoise_channels
from .unrolled import UnrolledModel

__all__ = ["LearnletDenoiser", "WaveletHardThresholding", "LearnletNet", "LEARNLET_ARGUMENTS"]


class _OneLearnlet:
    """What a model holding one learnlet (``self.learnlet``) offers: the normalisation update
    :class:`~fastmri_zoo.layers.learnlets.NormalisationUpdate` calls."""

    learnlet: Learnlet

    def update_normalisation(self, momentum: float = 0.0, seed: int | None = None):
        """Re-estimate the learnlet's noise normalisation (see ``Learnlet.estimate_normalisation``)."""
        return self.learnlet.estimate_normalisation(momentum=momentum, seed=seed)


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class LearnletDenoiser(_OneLearnlet, Denoiser):
    """A learnlet (:class:`~fastmri_zoo.layers.learnlets.Learnlet`) as a denoiser of (image, sigma).

    The arguments are the learnlet's (:data:`LEARNLET_ARGUMENTS`, returned by ``get_config``). The
    defaults are the thesis configuration: 5 scales, 256 filters + the identity, 11 x 11 analysis and
    13 x 13 synthesis filters, here with exact reconstruction. ``training.fit`` keeps the noise
    normalisation up with the filters (:class:`~fastmri_zoo.layers.learnlets.NormalisationUpdate`);
    add that callback to a training loop of your own.
    """

    def __init__(self, **kwargs):
        learnlet_kwargs = pop_learnlet_arguments(kwargs)
        super().__init__(**kwargs)
        self.learnlet = Learnlet(**learnlet_kwargs, name="learnlet")

    @property
    def n_scales(self) -> int:
        return self.learnlet.n_scales

    @classmethod
    def small_config(cls) -> dict:
        return dict(n_scales=2, n_filters=4, analysis_kernel_size=3, synthesis_kernel_size=5, noise_size=32, noise_images=2)

    def build(self, input_shape=None):
        self.learnlet.build()
        self.built = True

    def denoise(self, x, sigma):
        return self.learnlet(x, sigma)

    def get_config(self):
        return {**super().get_config(), **learnlet_arguments(self.learnlet)}


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class WaveletHardThresholding(Denoiser):
    """Hard thresholding of the fixed pyramid's details: d_j -> HT(d_j, k_j sigma s_j), coarse band kept.

    k_j = ``threshold`` (3) and ``finest_threshold`` (4) on the finest scale; s_j the standard
    deviation of the scale-j detail of unit white noise, estimated once from ``noise_images``
    images of ``noise_size``^2 (seed 0) and stored as the non-trainable weight ``detail_std``.
    No trainable weights.
    """

    def __init__(
        self,
        n_scales: int = 5,
        threshold: float = 3.0,
        finest_threshold: float = 4.0,
        noise_size: int = 256,
        noise_images: int = 4,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(n_scales) < 1 or int(noise_images) < 1:
            raise ValueError(f"n_scales, noise_images: expected positive integers, got {n_scales}, {noise_images}.")
        if float(threshold) < 0 or float(finest_threshold) < 0:
            raise ValueError(f"threshold, finest_threshold: expected non-negative values, got {threshold}, {finest_threshold}.")
        check_pyramid_size(noise_size, noise_size, int(n_scales), name="noise_size")
        self._n_scales = int(n_scales)
        self.threshold = float(threshold)
        self.finest_threshold = float(finest_threshold)
        self.noise_size = int(noise_size)
        self.noise_images = int(noise_images)

    @property
    def n_scales(self) -> int:
        return self._n_scales

    def build(self, input_shape=None):
        if self.built:
            return
        self.detail_std = self.add_weight(shape=(self.n_scales,), initializer="ones", trainable=False, name="detail_std")
        self.built = True
        with tf.init_scope():  # eager, even when Keras builds the model while tracing a call
            noise = np.random.default_rng(0).standard_normal((self.noise_images, self.noise_size, self.noise_size, 1))
            details, _ = pyramid_analysis(tf.constant(noise, tf.float32), self.n_scales)
            self.detail_std.assign(tf.stack([tf.math.reduce_std(detail) for detail in details]))

    def denoise(self, x, sigma):
        folded, shape = fold_channels(x)
        sigma = noise_per_image(sigma, shape[0], shape[3])
        details, coarse = pyramid_analysis(folded, self.n_scales)
        factors = [self.finest_threshold] + [self.threshold] * (self.n_scales - 1)
        details = [
            hard_threshold(detail, factor * sigma * self.detail_std[j])
            for j, (detail, factor) in enumerate(zip(details, factors))
        ]
        return unfold_channels(pyramid_synthesis(details, coarse), shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            n_scales=self.n_scales,
            threshold=self.threshold,
            finest_threshold=self.finest_threshold,
            noise_size=self.noise_size,
            noise_images=self.noise_images,
        )
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class LearnletNet(_OneLearnlet, UnrolledModel):
    """Unrolled proximal gradient (ISTA) with a learnlet prior, on any 2D acquisition.

    x_0 = A^H y, then for i = 0 .. ``n_iter`` - 1::

        z       = x_i - eta_i A^H (A x_i - y)        data_step_i (GradientStep), eta_i learned
        x_{i+1} = L(z, lambda |eta_i|)               the one learnlet L, shared by every iteration

    and the output is x_n. L is a :class:`~fastmri_zoo.layers.learnlets.Learnlet` (its arguments,
    :data:`LEARNLET_ARGUMENTS`, are this network's) on the real and imaginary parts of the image
    (two channels), H and W zero-padded to multiples of 2^n_scales and cropped back.

    The threshold is tied to the step size as in ISTA, whose proximal step
    prox_{eta lambda ||W .||_1} soft-thresholds at eta lambda: L is given the noise level
    sigma_i = lambda |eta_i|, so its coefficient of scale j is soft-thresholded at
    theta_j lambda |eta_i| s (theta_j in [0, 5] the learnlet's scale-wise thresholds, s the
    coefficient's standard deviation for unit white noise). lambda >= 0 is learned (weight
    ``regularization``, initialised to ``initial_regularization``); the step sizes eta_i start at
    ``initial_step_size`` (1 is ISTA's 1 / ||A||^2 for an orthonormal FFT with a mask, and for
    SENSE with maps of unit root-sum-of-squares). At sigma = 0 a learnlet with exact
    reconstruction returns its input, so with lambda = 0 (or thresholds theta = 0) the network is
    ``n_iter`` gradient steps on 1/2 ||A x - y||^2.

    inputs: those of the acquisition (``kspace``, ``mask``, ``smaps`` when multicoil for the
    default Cartesian one); output: complex64 (batch, H, W). Train it with ``training.fit``, which
    keeps the learnlet's noise normalisation up with its filters.
    Stable layer names: ``learnlet``, ``data_step_i`` (weight ``step_size``).
    """

    STEP_ORDER = ("data", "prior")
    SHARED_PRIOR = True

    def __init__(
        self,
        n_iter: int = 10,
        initial_step_size: float = 1.0,
        initial_regularization: float = 0.02,
        multicoil: bool = False,
        **kwargs,
    ):
        learnlet_kwargs = pop_learnlet_arguments(kwargs)
        super().__init__(n_iter=n_iter, multicoil=multicoil, **kwargs)
        if self.ndim != 2:
            raise ValueError(f"ndim: the learnlet is a 2D transform, got ndim={self.ndim}.")
        if not float(initial_regularization) >= 0.0:
            raise ValueError(f"initial_regularization: expected a non-negative value, got {initial_regularization!r}.")
        self.initial_step_size = float(initial_step_size)
        self.initial_regularization = float(initial_regularization)
        self.learnlet = Learnlet(**learnlet_kwargs, name="learnlet")
        self.data_steps = [GradientStep(self.initial_step_size, name=f"data_step_{i}") for i in range(self.n_iter)]
        self.regularization = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.initial_regularization),
            constraint=keras.constraints.NonNeg(), name="regularization",
        )

    @classmethod
    def small_config(cls) -> dict:
        return dict(n_iter=2, **LearnletDenoiser.small_config())

    def build_layers(self) -> None:
        self.learnlet.build()

    def data_step(self, i, state, measurements, operator, training=None):
        return self.data_steps[i](state, measurements, operator=operator)

    def noise_level(self, i: int) -> tf.Tensor:
        """sigma_i = lambda |eta_i|, the noise level the learnlet of iteration i thresholds at (a scalar)."""
        return self.regularization * tf.abs(tf.convert_to_tensor(self.data_steps[i].step_size))

    def prior_step(self, i, state, training=None):
        sigma = tf.ones(tf.shape(state)[:1]) * self.noise_level(i)
        return denoise_channels(lambda x, s: learnlet_any_size(self.learnlet, x, s), state, sigma)

    def get_config(self):
        config = super().get_config()
        config.update(
            initial_step_size=self.initial_step_size,
            initial_regularization=self.initial_regularization,
            multicoil=self.multicoil,
            **learnlet_arguments(self.learnlet),
        )
        return config
