"""Complex <-> real-channel conversion used inside every network.

Convolutions work on real tensors, so a complex tensor with ``C`` channels
becomes ``2C`` real channels: all real parts first, then all imaginary parts
(the layout of the original fastmri-reproducible-benchmark networks, so their
first-layer kernels keep their meaning).
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["complex_to_channels", "channels_to_complex", "ComplexToChannels", "ChannelsToComplex"]


def complex_to_channels(x: tf.Tensor) -> tf.Tensor:
    """complex64 (..., C) -> float32 (..., 2C) = concat([real(x), imag(x)], -1)."""
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_complex:
        raise ValueError(f"x: expected a complex tensor, got dtype {x.dtype.name}.")
    return tf.concat([tf.math.real(x), tf.math.imag(x)], axis=-1)


def channels_to_complex(x: tf.Tensor) -> tf.Tensor:
    """float32 (..., 2C) -> complex64 (..., C): first C channels real, next C imaginary."""
    x = tf.convert_to_tensor(x)
    channels = x.shape[-1]
    if channels is not None and channels % 2:
        raise ValueError(
            f"x: expected an even number of channels (real parts then imaginary parts), got {channels}."
        )
    real, imag = tf.split(tf.cast(x, tf.float32), 2, axis=-1)
    return tf.complex(real, imag)


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class ComplexToChannels(keras.layers.Layer):
    """Layer form of :func:`complex_to_channels`."""

    def call(self, x):
        return complex_to_channels(x)


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class ChannelsToComplex(keras.layers.Layer):
    """Layer form of :func:`channels_to_complex`."""

    def call(self, x):
        return channels_to_complex(x)
