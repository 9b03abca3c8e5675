"""Convolution layers of the zoo: ``Conv2D`` / ``Conv3D`` (with an optional gradient by forward
convolutions) and ``Conv2DTranspose`` / ``Conv3DTranspose`` (the non-overlapping up-convolution as
one matrix product).

Gradients. TensorFlow 2.21's CPU build (oneDNN on) runs the forward convolution and both of its
gradients (``Conv2DBackpropInput``, ``Conv2DBackpropFilter`` and their 3D forms) on oneDNN kernels.
Both gradients of a stride-1 "same" convolution with an odd kernel can also be written as forward
convolutions (:func:`same_convolution`): the input gradient is the convolution of the output
gradient with the kernel flipped in space and its channel axes swapped; the filter gradient is the
"valid" convolution of the padded input, its batch and channel axes swapped, with the output
gradient as the kernel. That was once the default here;
measured again on one thread (both gradients of a 3 x 3 convolution, side by side in one process),
it is 2.2x slower than TensorFlow's own at 1 x 320 x 320 x 32 -> 32 channels, 1.3x at
2 x 128 x 128 x 32 -> 32 and 2.0x at 1 x 320 x 320 x 2 -> 32; over a whole training step of the
shipped Cartesian recipes (``bench/training.py``, 2 x 128 x 128, one thread) TensorFlow's gradients
run at 0.91-1.24x the speed of the forward-convolution ones (PDNet 1.21x, U-net 1.24x, Cascade-net
0.91x, within the noise of a shared machine for the others). So :class:`Conv2D` and :class:`Conv3D`
use TensorFlow's gradients; within :func:`forward_convolution_gradients` they trace
:func:`same_convolution` instead (for side-by-side timings and checks). Same weights, names and
configuration as Keras' layers.

Up-convolutions. A transposed convolution whose kernel equals its stride ("valid", the fastMRI
U-net's 2 x 2 stride-2 up-convolution) has no overlap: every output block of kernel size is one
input pixel times the kernel. :class:`Conv2DTranspose` / :class:`Conv3DTranspose` compute it as one
matrix product (input channels -> kernel positions x output channels, oneDNN) and a reshuffle of
the positions into space, instead of TensorFlow's ``Conv2DBackpropInput``; same numbers to float32
rounding, same weights, gradients by the same two operations.
"""

from __future__ import annotations

import contextlib
import threading

import keras
import tensorflow as tf

__all__ = ["same_convolution", "Conv2D", "Conv3D", "Conv2DTranspose", "Conv3DTranspose",
           "forward_convolution_gradients", "tensorflow_gradients"]

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
def _gradients(forward: bool):
    previous = getattr(_settings, "forward_gradients", False)
    _settings.forward_gradients = forward
    try:
        yield
    finally:
        _settings.forward_gradients = previous


def forward_convolution_gradients():
    """Within this block, :class:`Conv2D` and :class:`Conv3D` trace :func:`same_convolution` (gradients
    by forward convolutions) where it applies: for side-by-side timings and checks.

    It applies to what is traced inside the block (a ``tf.function`` traced earlier keeps its graph).
    """
    return _gradients(forward=True)


def tensorflow_gradients():
    """Within this block, :class:`Conv2D` and :class:`Conv3D` trace TensorFlow's own convolution and
    gradients, what ``keras.layers.Conv2D`` does: the default, also inside a
    :func:`forward_convolution_gradients` block."""
    return _gradients(forward=False)


def _uses_same_convolution(layer) -> bool:
    return (
        getattr(_settings, "forward_gradients", False)
        and layer.padding == "same"
        and layer.data_format == "channels_last"
        and layer.groups == 1
        and all(s == 1 for s in layer.strides)
        and all(d == 1 for d in layer.dilation_rate)
        and all(k % 2 == 1 for k in layer.kernel_size)
    )


class _ForwardGradientConvolution:
    """Mixin: route eligible convolutions through :func:`same_convolution` when asked for."""

    def convolution_op(self, inputs, kernel):
        if _uses_same_convolution(self):
            return same_convolution(inputs, kernel)
        return super().convolution_op(inputs, kernel)


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class Conv2D(_ForwardGradientConvolution, keras.layers.Conv2D):
    """``keras.layers.Conv2D``; :func:`same_convolution`'s gradients within :func:`forward_convolution_gradients`."""


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class Conv3D(_ForwardGradientConvolution, keras.layers.Conv3D):
    """``keras.layers.Conv3D``; :func:`same_convolution`'s gradients within :func:`forward_convolution_gradients`."""


def block_upsample(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """Transposed convolution with stride = kernel size and "valid" padding, channels last.

    x: float32 (batch, *spatial, C_in); kernel: (*k, C_out, C_in) (Keras' transposed-convolution
    layout). Returns (batch, *(k * spatial), C_out) with out[n, k p + d, o] = sum_i x[n, p, i] kernel[d, i -> o],
    equal to ``tf.nn.conv_transpose(x, kernel, output_shape, strides=k, padding="VALID")``.
    """
    k = [int(n) for n in kernel.shape[:-2]]
    rank = len(k)
    c_out, c_in = int(kernel.shape[-2]), int(kernel.shape[-1])
    # (C_in, *k, C_out) as a matrix: each input pixel gives prod(k) output pixels of C_out channels.
    matrix = tf.reshape(tf.transpose(kernel, [rank + 1] + list(range(rank)) + [rank]), [c_in, -1])
    shape = tf.shape(x)
    blocks = tf.matmul(tf.reshape(x, [-1, c_in]), matrix)
    if rank == 2 and k[0] == k[1]:
        return tf.nn.depth_to_space(tf.reshape(blocks, tf.concat([shape[:-1], [-1]], 0)), k[0])
    # (batch, *spatial, *k, C_out) -> (batch, s_0, k_0, s_1, k_1, ..., C_out), then merge each pair.
    blocks = tf.reshape(blocks, tf.concat([shape[:-1], k + [c_out]], 0))
    order = [0] + [axis for i in range(rank) for axis in (1 + i, 1 + rank + i)] + [1 + 2 * rank]
    spatial = [shape[1 + i] * k[i] for i in range(rank)]
    return tf.reshape(tf.transpose(blocks, order), tf.concat([shape[:1], tf.stack(spatial), [c_out]], 0))


class _BlockTransposedConvolution:
    """Mixin: a transposed convolution with kernel = strides, "valid", by :func:`block_upsample`."""

    def call(self, inputs):
        if not (
            self.padding == "valid"
            and self.data_format == "channels_last"
            and tuple(self.strides) == tuple(self.kernel_size)
            and self.output_padding is None
            and all(d == 1 for d in self.dilation_rate)
        ):
            return super().call(inputs)
        outputs = block_upsample(inputs, tf.convert_to_tensor(self.kernel))
        if self.use_bias:
            outputs = outputs + self.bias
        if self.activation is not None:
            return self.activation(outputs)
        return outputs


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class Conv2DTranspose(_BlockTransposedConvolution, keras.layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose``, by :func:`block_upsample` when the kernel equals the strides."""


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class Conv3DTranspose(_BlockTransposedConvolution, keras.layers.Conv3DTranspose):
    """``keras.layers.Conv3DTranspose``, by :func:`block_upsample` when the kernel equals the strides."""
