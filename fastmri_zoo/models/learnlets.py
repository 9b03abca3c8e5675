"""Learnlet denoisers (thesis sec. 6.1, Appendix A) and the wavelet baseline on the same pyramid.

Both are denoisers, not reconstruction networks: ``model({"image": x, "sigma": s})`` with

- ``image``: float32 (batch, H, W, C) real images (each channel on its own), or complex64
  (batch, H, W), denoised as its real and imaginary parts (two channels) and returned complex64;
  H and W multiples of 2^n_scales;
- ``sigma``: float32 (batch,), the noise standard deviation of each image (in the image's units).

:class:`LearnletDenoiser` is one :class:`~fastmri_zoo.layers.learnlets.Learnlet`;
:class:`WaveletHardThresholding` hard-thresholds the fixed pyramid's details at
k_j sigma s_j (k = 3, 4 on the finest scale; s_j the detail's standard deviation for unit white
noise), the baseline the learnlets are compared with.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
import tensorflow as tf

from ..layers import channels_to_complex, complex_to_channels
from ..layers.learnlets import (
    Learnlet,
    check_pyramid_size,
    fold_channels,
    hard_threshold,
    noise_per_image,
    pyramid_analysis,
    pyramid_synthesis,
    unfold_channels,
)

__all__ = ["LearnletDenoiser", "WaveletHardThresholding", "LEARNLET_ARGUMENTS"]

#: The constructor arguments of :class:`LearnletDenoiser`: those of its learnlet.
LEARNLET_ARGUMENTS = tuple(name for name in inspect.signature(Learnlet.__init__).parameters if name not in ("self", "kwargs"))


def _check_denoising_inputs(inputs, n_scales: int, owner: str):
    """(image, sigma) tensors of a denoiser's input dict, or a ValueError naming what is wrong."""
    if not isinstance(inputs, dict) or not {"image", "sigma"} <= set(inputs):
        keys = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
        raise ValueError(f"{owner}: expected inputs {{'image': ..., 'sigma': ...}}, got {keys}.")
    image = tf.convert_to_tensor(inputs["image"])
    sigma = tf.convert_to_tensor(inputs["sigma"])
    rank = 3 if image.dtype.is_complex else 4
    if image.dtype not in (tf.float32, tf.complex64) or image.shape.rank != rank:
        raise ValueError(
            f"{owner}: image: expected float32 (batch, H, W, C) or complex64 (batch, H, W), "
            f"got {image.dtype.name} of shape {image.shape}."
        )
    check_pyramid_size(image.shape[1], image.shape[2], n_scales, name=f"{owner}: image")
    if not sigma.dtype.is_floating or sigma.shape.rank not in (0, 1, 2) or (
        sigma.shape.rank == 2 and sigma.shape[-1] not in (1, None)
    ):
        raise ValueError(f"{owner}: sigma: expected float32 (batch,) or (batch, 1), got {sigma.dtype.name} {sigma.shape}.")
    if sigma.shape.rank and None not in (sigma.shape[0], image.shape[0]) and sigma.shape[0] not in (1, image.shape[0]):
        raise ValueError(f"{owner}: sigma: expected one value per image ({image.shape[0]}), got shape {sigma.shape}.")
    if tf.executing_eagerly() and bool(tf.reduce_any(~(sigma >= 0.0))):
        raise ValueError(f"{owner}: sigma: expected non-negative noise levels, got {sigma.numpy()}.")
    return image, tf.cast(sigma, tf.float32)


def _denoise_channels(denoise, image: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """``denoise(x float32 (batch, H, W, C), sigma)`` applied to a real image, or to a complex one's two channels."""
    if image.dtype.is_complex:
        return channels_to_complex(denoise(complex_to_channels(image[..., None]), sigma))[..., 0]
    return denoise(image, sigma)


class _Denoiser(keras.Model):
    """The calling convention shared by the denoisers: validation, complex images as two channels."""

    def __call__(self, inputs, *args, **kwargs):
        # Validate before Keras traces or builds anything, so bad input fails first and cleanly.
        _check_denoising_inputs(inputs, self.n_scales, type(self).__name__)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, training=None):
        image, sigma = _check_denoising_inputs(inputs, self.n_scales, type(self).__name__)
        return _denoise_channels(self.denoise, image, sigma)

    def denoise(self, x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class LearnletDenoiser(_Denoiser):
    """A learnlet (:class:`~fastmri_zoo.layers.learnlets.Learnlet`) as a denoiser of (image, sigma).

    The arguments are the learnlet's (:data:`LEARNLET_ARGUMENTS`, returned by ``get_config``). The
    defaults are the thesis configuration: 5 scales, 256 filters + the identity, 11 x 11 analysis and
    13 x 13 synthesis filters, here with exact reconstruction.
    Train it with :class:`~fastmri_zoo.layers.learnlets.NormalisationUpdate` among the
    callbacks, so the noise normalisation follows the filters.
    """

    def __init__(self, **kwargs):
        learnlet_kwargs = {key: kwargs.pop(key) for key in LEARNLET_ARGUMENTS if key in kwargs}
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

    def update_normalisation(self, momentum: float = 0.0, seed: int | None = None):
        """Re-estimate the learnlet's noise normalisation (see ``Learnlet.estimate_normalisation``)."""
        return self.learnlet.estimate_normalisation(momentum=momentum, seed=seed)

    def get_config(self):
        config = super().get_config()
        learnlet = self.learnlet.get_config()
        config.update({key: learnlet[key] for key in LEARNLET_ARGUMENTS})
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class WaveletHardThresholding(_Denoiser):
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
