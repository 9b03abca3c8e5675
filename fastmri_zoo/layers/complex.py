"""Complex <-> real-channel conversion used inside every network.

Convolutions work on real tensors, so a complex tensor with ``C`` channels
becomes ``2C`` real channels: all real parts first, then all imaginary parts
(the layout of the original fastmri-reproducible-benchmark networks, so their
first-layer kernels keep their meaning).
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["complex_to_channels", "channels_to_complex", "complex_denoise", "ComplexToChannels", "ChannelsToComplex"]


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


def _normalize(x: tf.Tensor, axes: list[int], unbiased: bool, floor: float, offset: float):
    """(x - mean) / std over ``axes`` per item, with the mean and std to map back."""
    mean = tf.reduce_mean(x, axis=axes, keepdims=True)
    std = tf.math.reduce_std(x, axis=axes, keepdims=True)
    if unbiased:
        # Unbiased std as torch.Tensor.std (fastMRI's NormUnet).
        count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), tf.float32)
        std = std * tf.sqrt(count / tf.maximum(count - 1.0, 1.0))
    if floor:
        std = tf.maximum(std, floor)
    return (x - mean) / (std + offset), mean, std


def complex_denoise(
    net,
    image: tf.Tensor,
    *,
    channels: bool = False,
    residual: bool = False,
    mode: str = "complex",
    normalization: str | None = None,
    training=None,
) -> tf.Tensor:
    """A real-valued network ``net`` used as a denoiser of complex images; the one complex-prior wrapper.

    image: complex64 (batch, *spatial), or (batch, *spatial, C) with ``channels=True``.

    - ``mode="complex"``: ``net`` sees the 2C real channels (real parts then
      imaginary parts, :func:`complex_to_channels`) and returns 2C' channels,
      read back as C' complex channels; ``residual`` adds the first C' input
      channels. ``normalization="mean_std"`` is fastMRI's NormUnet: each real
      channel of each item goes in as (x - mean) / std (unbiased std, floored
      at 1e-12) and the output comes back as ``* std + mean``.
    - ``mode="magnitude"``: ``net`` sees |image| (1 channel) and its real
      output is returned with a zero imaginary part; ``residual`` adds |image|;
      ``normalization="mean_std"`` uses the mean and std of |image| over the
      whole item (std + 1e-11), as the authors' fastMRI U-net evaluation.

    Returns complex64 shaped like ``image`` (C' channels with ``channels=True``).
    The network is called directly (not wrapped in a layer), so its weight paths
    stay those of the model attribute holding it.
    """
    if mode not in ("complex", "magnitude"):
        raise ValueError(f"mode: expected 'complex' or 'magnitude', got {mode!r}.")
    if normalization not in (None, "mean_std"):
        raise ValueError(f"normalization: expected None or 'mean_std', got {normalization!r}.")
    stacked = image if channels else image[..., None]
    if mode == "magnitude":
        x = tf.abs(stacked)
        if normalization == "mean_std":
            x, mean, std = _normalize(x, list(range(1, x.shape.rank)), unbiased=False, floor=0.0, offset=1e-11)
        out = net(x, training=training)
        if residual:
            out = out + x
        if normalization == "mean_std":
            out = out * std + mean
        result = tf.complex(out, tf.zeros_like(out))
    else:
        x = complex_to_channels(stacked)
        if normalization == "mean_std":
            x, mean, std = _normalize(x, list(range(1, x.shape.rank - 1)), unbiased=True, floor=1e-12, offset=0.0)
            out = net(x, training=training)
            if residual:
                out = out + x
            result = channels_to_complex(out * std + mean)
        else:
            result = channels_to_complex(net(x, training=training))
            if residual:
                result = stacked[..., : result.shape[-1]] + result
    return result if channels else result[..., 0]
