"""The calling convention of the zoo's denoisers: ``model({"image": x, "sigma": s})``.

- ``image``: float32 (batch, H, W, C) real images, each channel denoised on its own, or complex64
  (batch, H, W), denoised as its real and imaginary parts (two channels) and returned complex64;
- ``sigma``: float32 (batch,) or (batch, 1), the noise standard deviation of each image, in the
  image's units (0: no noise).

The output has the image's shape and dtype. A denoiser is a :class:`Denoiser` (a zoo model of
task ``"denoising"``: presets, ``fastmri_zoo.load`` and the one trainer as for the reconstruction
networks) that defines ``denoise(x float32 (batch, H, W, C), sigma float32 (batch,))``; the input
checks and the complex-to-channels wrapping are written here once. The families:
``models.learnlets`` (:class:`~fastmri_zoo.models.LearnletDenoiser`, the wavelet baseline) and
``models.unet`` (:class:`~fastmri_zoo.models.UNetDenoiser`).
"""

from __future__ import annotations

import tensorflow as tf

from ..layers import channels_to_complex, complex_to_channels
from ..layers.learnlets import check_pyramid_size
from .base import ZooModel

__all__ = ["Denoiser", "check_denoising_inputs", "denoise_channels"]


def check_denoising_inputs(inputs, n_scales: int, owner: str):
    """(image, sigma) tensors of a denoiser's input dict, or a ValueError naming what is wrong.

    n_scales: H and W must be multiples of 2^n_scales (0: any size).
    """
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


def denoise_channels(denoise, image: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """``denoise(x float32 (batch, H, W, C), sigma)`` applied to a real image, or to a complex one's two channels."""
    if image.dtype.is_complex:
        return channels_to_complex(denoise(complex_to_channels(image[..., None]), sigma))[..., 0]
    return denoise(image, sigma)


class Denoiser(ZooModel):
    """The calling convention shared by the denoisers (see the module docstring): validation before
    Keras builds or traces anything, complex images as two channels; zoo models of task ``"denoising"``.

    Subclasses define ``denoise(x, sigma)`` and, when their transform needs H and W multiples of
    2^k (a pyramid of k scales), ``n_scales`` = k.
    """

    TASK = "denoising"
    #: H and W must be multiples of 2^n_scales (0: any size)
    n_scales = 0

    def __call__(self, inputs, *args, **kwargs):
        # Validate before Keras traces or builds anything, so bad input fails first and cleanly.
        check_denoising_inputs(inputs, self.n_scales, type(self).__name__)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, training=None):
        image, sigma = check_denoising_inputs(inputs, self.n_scales, type(self).__name__)
        return denoise_channels(self.denoise, image, sigma)

    def denoise(self, x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        """x float32 (batch, H, W, C), sigma float32 (batch,) or (batch, 1) -> the denoised x."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)
