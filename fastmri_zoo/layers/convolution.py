"""Convolution layers whose training gradients run on the forward-convolution kernel.

On the CPU, TensorFlow 2.21 runs a forward convolution through oneDNN but its two
gradients (``Conv2DBackpropInput``, ``Conv2DBackpropFilter``) through generic Eigen
kernels: at 2 x 128 x 128 x 32 channels the filter gradient costs 5x the forward
convolution, and in PDNet the gradients took 80% of a training step. Both gradients of a
stride-1 "same" convolution with an odd kernel are themselves forward convolutions:

- the input gradient is the convolution of the output gradient with the kernel flipped
  in space and with its channel axes swapped;
- the filter gradient is the "valid" convolution of the padded input, its batch and
  channel axes swapped, with the output gradient used as the kernel.

:func:`same_convolution` computes them that way (same numbers as TensorFlow's own gradients
to float32 rounding; ``tests/layers/test_convolution.py``), which makes a PDNet training
step 1.6x faster here (``bench/training.py``). :class:`Conv2D` and :class:`Conv3D` are
the Keras layers with the same weights, names and configuration, using it where it applies
(stride 1, dilation 1, odd kernel, "same" padding) and Keras' own convolution elsewhere.
"""

from __future__ import annotations

import contextlib
import threading

import keras
import tensorflow as tf

__all__ = ["same_convolution", "Conv2D", "Conv3D", "tensorflow_gradients"]

_settings = threading.local()


def same_convolution(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """Stride-1 "same" convolution, channels last, odd kernel, gradients by forward convolutions.

    x: (batch, *spatial, C_in); kernel: (*k, C_in, C_out) with every k odd. Returns
    (batch, *spatial, C_out), equal to ``tf.nn.convolution(x, kernel, padding="SAME")``.
    """
    kernel_size = tuple(int(k) for k in kernel.shape[:-2])
    if any(k % 2 == 0 for k in kernel_size):
        raise ValueError(f"kernel: expected odd spatial sizes, got {kernel_size}.")
    rank = len(kernel_size)
    spatial = list(range(1, rank + 1))
    pads = [[0, 0]] + [[k // 2, k // 2] for k in kernel_size] + [[0, 0]]
    # (batch, *spatial, C) <-> (C, *spatial, batch): batch and channels trade places.
    swap = [rank + 1] + spatial + [0]
    # (*spatial, batch, C) from (batch, *spatial, C), and (*k, C_in, C_out) from (C_in, *k, C_out).
    batch_inside = spatial + [0, rank + 1]
    # The kernel flipped in space with C_in and C_out swapped: the input gradient's kernel.
    kernel_axes = list(range(rank))
    adjoint_order = kernel_axes + [rank + 1, rank]

    @tf.custom_gradient
    def convolve(x, kernel):
        def gradient(dy):
            adjoint = tf.transpose(tf.reverse(kernel, kernel_axes), adjoint_order)
            dx = tf.nn.convolution(dy, adjoint, padding="SAME")
            padded = tf.transpose(tf.pad(x, pads), swap)
            dkernel = tf.nn.convolution(padded, tf.transpose(dy, batch_inside), padding="VALID")
            return dx, tf.transpose(dkernel, batch_inside)

        return tf.nn.convolution(x, kernel, padding="SAME"), gradient

    return convolve(tf.convert_to_tensor(x), tf.convert_to_tensor(kernel))


@contextlib.contextmanager
def tensorflow_gradients():
    """Within this block, :class:`Conv2D` and :class:`Conv3D` trace TensorFlow's own convolution
    and gradients (what ``keras.layers.Conv2D`` does): for side-by-side timings and checks.

    It applies to what is traced inside the block (a ``tf.function`` traced earlier keeps its graph).
    """
    previous = getattr(_settings, "tensorflow_gradients", False)
    _settings.tensorflow_gradients = True
    try:
        yield
    finally:
        _settings.tensorflow_gradients = previous


def _uses_same_convolution(layer) -> bool:
    return (
        not getattr(_settings, "tensorflow_gradients", False)
        and layer.padding == "same"
        and layer.data_format == "channels_last"
        and layer.groups == 1
        and all(s == 1 for s in layer.strides)
        and all(d == 1 for d in layer.dilation_rate)
        and all(k % 2 == 1 for k in layer.kernel_size)
    )


class _FastGradientConvolution:
    """Mixin: route eligible convolutions through :func:`same_convolution`."""

    def convolution_op(self, inputs, kernel):
        if _uses_same_convolution(self):
            return same_convolution(inputs, kernel)
        return super().convolution_op(inputs, kernel)


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class Conv2D(_FastGradientConvolution, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with :func:`same_convolution`'s gradients where they apply."""


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class Conv3D(_FastGradientConvolution, keras.layers.Conv3D):
    """``keras.layers.Conv3D`` with :func:`same_convolution`'s gradients where they apply."""
