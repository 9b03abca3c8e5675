"""Instance normalisation (layers.normalization): numpy's per-item, per-channel statistics, Keras'
GroupNormalization in values and gradients, any batch (folded into the channels) and 2D or 3D."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.layers import GroupNormalization, UNetBlock, instance_normalization


def _numpy_instance_norm(x, epsilon):
    axes = tuple(range(1, x.ndim - 1))
    mean = x.mean(axes, keepdims=True)
    variance = ((x - mean) ** 2).mean(axes, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon)


@pytest.mark.parametrize("shape", [(1, 12, 10, 5), (3, 12, 10, 5), (2, 4, 6, 8, 3), (1, 4, 6, 8, 3)])
def test_instance_normalization_matches_numpy_with_any_batch(shape):
    rng = np.random.default_rng(0)
    # Different offsets and scales per item and channel, so a mix-up of items or channels shows.
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3, (shape[0],) + (1,) * (len(shape) - 2) + (shape[-1],))
    x = (x + rng.uniform(-2, 2, (shape[0],) + (1,) * (len(shape) - 2) + (shape[-1],))).astype(np.float32)
    expected = _numpy_instance_norm(x.astype(np.float64), 1e-5)
    unknown = tf.TensorSpec((None,) * (len(shape) - 1) + (shape[-1],), tf.float32)
    traced = tf.function(lambda v: instance_normalization(v, 1e-5), input_signature=[unknown])
    for y in (instance_normalization(tf.constant(x), 1e-5), traced(tf.constant(x))):
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("center_scale", [False, True])
@pytest.mark.parametrize("shape", [(1, 9, 7, 4), (2, 9, 7, 4)])
def test_layer_equals_keras_group_normalization_in_values_and_gradients(shape, center_scale):
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal(shape) * 2 + 1, tf.float32)
    dy = tf.constant(rng.standard_normal(shape), tf.float32)
    kwargs = dict(groups=-1, center=center_scale, scale=center_scale, epsilon=1e-5)
    ours, theirs = GroupNormalization(**kwargs), keras.layers.GroupNormalization(**kwargs)
    ours.build(shape)
    theirs.build(shape)
    weights = [w + rng.standard_normal(w.shape) for w in theirs.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    results = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * dy)
        results.append([layer(x)] + tape.gradient(loss, [x] + layer.trainable_variables))
    for a, b in zip(*results):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=2e-5)


def test_groups_of_several_channels_stay_keras_group_normalization():
    rng = np.random.default_rng(2)
    x = tf.constant(rng.standard_normal((2, 6, 6, 4)), tf.float32)
    ours, theirs = GroupNormalization(groups=2), keras.layers.GroupNormalization(groups=2)
    np.testing.assert_allclose(ours(x).numpy(), theirs(x).numpy(), rtol=1e-6, atol=1e-6)


def test_fastmri_unet_uses_it_under_keras_weight_names():
    block = UNetBlock(layers_n_channels=[4, 8], normalization="instance", upsampling="transpose", name="unet")
    block.build((None, None, None, 1))
    norms = [layer for layer in block.down_blocks[0] if isinstance(layer, keras.layers.GroupNormalization)]
    assert norms and all(isinstance(layer, GroupNormalization) for layer in norms)
    # Same class names as Keras' layers: the weight paths of saved checkpoints do not change.
    assert type(norms[0]).__name__ == "GroupNormalization"
    assert type(block.ups[0][0]).__name__ == "Conv2DTranspose"
    graph = tf.function(block).get_concrete_function(tf.TensorSpec((1, 8, 8, 1), tf.float32)).graph
    types = {op.type for op in graph.get_operations()}
    assert "FusedBatchNormV3" in types and "Conv2DBackpropInput" not in types
