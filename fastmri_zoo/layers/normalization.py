"""Normalisation layers: instance normalisation by the fused batch-normalisation kernel.

Instance normalisation (one group per channel, statistics over the spatial axes of each
item) is what the fastMRI U-net uses after every convolution. Keras' ``GroupNormalization``
computes it as a chain of element-wise operations and reductions (a mean, a squared
difference, a second mean, a product and a sum, each one pass over the activations, and
twice as many in the gradient), which made normalisation a third of the fastMRI U-net's
inference on the CPU. The statistics of one item's channels over its pixels are those of
a batch normalisation in training mode of that item alone, so :func:`instance_normalization`
hands the activations, with the items moved into the channel axis, to TensorFlow's
``FusedBatchNormV3`` (oneDNN on the CPU; one kernel forward, one backward), as PyTorch's
``instance_norm`` does with its batch norm. The results equal Keras' to float32 rounding
(the statistics are sums over H x W pixels summed in another order).
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["instance_normalization", "GroupNormalization"]


def instance_normalization(x: tf.Tensor, epsilon: float = 1e-5) -> tf.Tensor:
    """(x - mean) / sqrt(var + epsilon), mean and (biased) var over the spatial axes of each item and channel.

    x: float32 (batch, *spatial, C), channels last, one or more spatial axes. Same shape out.
    """
    x = tf.convert_to_tensor(x)
    rank = x.shape.rank
    channels = x.shape[-1]
    shape = tf.shape(x)
    if x.shape[0] == 1:
        # One item: its channels are the batch norm's channels, no reordering.
        folded = tf.reshape(x, [1, -1, 1, channels])
    else:
        # (batch, *spatial, C) -> (1, pixels, 1, batch C): one batch-norm channel per item and channel.
        items_inside = list(range(1, rank - 1)) + [0, rank - 1]
        folded = tf.reshape(tf.transpose(x, items_inside), [1, -1, 1, shape[0] * channels])
    groups = tf.shape(folded)[-1]
    normalised, _, _ = tf.compat.v1.nn.fused_batch_norm(
        folded,
        tf.ones([groups], x.dtype),
        tf.zeros([groups], x.dtype),
        epsilon=epsilon,
        is_training=True,
    )
    if x.shape[0] == 1:
        return tf.reshape(normalised, shape)
    spatial_first = tf.concat([shape[1:-1], shape[:1], shape[-1:]], 0)
    back = list(range(rank - 2, rank - 1)) + list(range(0, rank - 2)) + [rank - 1]
    return tf.transpose(tf.reshape(normalised, spatial_first), back)


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class GroupNormalization(keras.layers.GroupNormalization):
    """``keras.layers.GroupNormalization``; with one group per channel (instance normalisation,
    ``groups=-1`` or ``groups`` = channels) by :func:`instance_normalization`, then the optional
    ``scale`` and ``center`` weights."""

    def call(self, inputs):
        if self.groups != int(inputs.shape[self.axis]) or self.axis not in (-1, inputs.shape.rank - 1):
            return super().call(inputs)
        outputs = instance_normalization(tf.cast(inputs, "float32"), self.epsilon)
        if self.scale:
            outputs = outputs * tf.cast(self.gamma, outputs.dtype)
        if self.center:
            outputs = outputs + tf.cast(self.beta, outputs.dtype)
        return tf.cast(outputs, self.compute_dtype)
