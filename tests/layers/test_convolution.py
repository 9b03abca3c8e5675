"""same_convolution and the Conv2D / Conv3D layers: values and both gradients equal TensorFlow's
own convolution and its autodiff gradients (an independent kernel), and a dense numpy correlation;
Conv2DTranspose / Conv3DTranspose (block_upsample) against Keras' layers and a numpy block sum."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.layers import Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose, ConvStack, same_convolution
from fastmri_zoo.layers.convolution import forward_convolution_gradients, tensorflow_gradients


def _numpy_same_correlation(x, kernel):
    """Direct sum: y[n, p, o] = sum_{d, i} x[n, p + d - k//2, i] kernel[d, i, o], zero outside."""
    k = kernel.shape[:-2]
    pads = [(0, 0)] + [(s // 2, s // 2) for s in k] + [(0, 0)]
    xp = np.pad(x, pads)
    out = np.zeros(x.shape[:-1] + (kernel.shape[-1],), np.float64)
    for offset in np.ndindex(*k):
        window = xp[(slice(None),) + tuple(slice(o, o + n) for o, n in zip(offset, x.shape[1:-1]))]
        out += np.einsum("...i,io->...o", window, kernel[offset])
    return out


def _gradients(fn, x, kernel, dy):
    return tf.function(_tape_gradients)(fn, x, kernel, dy)  # (TF's eager Conv3D gradient fails)


def _tape_gradients(fn, x, kernel, dy):
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = fn(x, kernel)
        loss = tf.reduce_sum(y * dy)
    return y, tape.gradient(loss, [x, kernel])


@pytest.mark.parametrize(
    "shape, kernel_size",
    [((2, 9, 7, 3), (3, 3)), ((1, 8, 8, 4), (1, 1)), ((2, 6, 10, 2), (5, 3)), ((1, 5, 6, 4, 2), (3, 3, 3))],
)
def test_same_convolution_matches_tensorflow_and_numpy(shape, kernel_size):
    rng = np.random.default_rng(0)
    c_out = 5
    x = tf.constant(rng.standard_normal(shape), tf.float32)
    kernel = tf.constant(rng.standard_normal(kernel_size + (shape[-1], c_out)), tf.float32)
    dy = tf.constant(rng.standard_normal(shape[:-1] + (c_out,)), tf.float32)

    y, (dx, dk) = _gradients(same_convolution, x, kernel, dy)
    y_ref, (dx_ref, dk_ref) = _gradients(lambda a, b: tf.nn.convolution(a, b, padding="SAME"), x, kernel, dy)

    np.testing.assert_allclose(y.numpy(), _numpy_same_correlation(x.numpy(), kernel.numpy()), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx.numpy(), dx_ref.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(dk.numpy(), dk_ref.numpy(), rtol=1e-5, atol=1e-4)


def test_same_convolution_gradient_by_finite_differences():
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal((1, 5, 5, 2)), tf.float64)
    kernel = tf.constant(rng.standard_normal((3, 3, 2, 2)), tf.float64)
    theoretical, numerical = tf.test.compute_gradient(same_convolution, [x, kernel])
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-6)


def test_same_convolution_in_a_function_with_unknown_sizes():
    fn = tf.function(
        lambda x, k: _tape_gradients(same_convolution, x, k, tf.ones_like(same_convolution(x, k))),
        input_signature=[tf.TensorSpec((None, None, None, 3)), tf.TensorSpec((3, 3, 3, 4))],
    )
    x = tf.random.normal((2, 7, 9, 3))
    kernel = tf.random.normal((3, 3, 3, 4))
    y, (dx, dk) = fn(x, kernel)
    y_ref, (dx_ref, dk_ref) = _gradients(
        lambda a, b: tf.nn.convolution(a, b, padding="SAME"), x, kernel, tf.ones((2, 7, 9, 4))
    )
    np.testing.assert_allclose(dk.numpy(), dk_ref.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(dx.numpy(), dx_ref.numpy(), rtol=1e-5, atol=1e-4)


def test_same_convolution_rejects_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        same_convolution(tf.zeros((1, 4, 4, 1)), tf.zeros((2, 2, 1, 1)))


@pytest.mark.parametrize("forward_gradients", [False, True])
@pytest.mark.parametrize(
    "cls, keras_cls, shape, kwargs",
    [
        (Conv2D, keras.layers.Conv2D, (2, 8, 8, 3), dict(kernel_size=3, padding="same", activation="relu")),
        (Conv2D, keras.layers.Conv2D, (2, 8, 8, 3), dict(kernel_size=2, padding="same")),  # even: Keras' own op
        (Conv2D, keras.layers.Conv2D, (2, 8, 8, 3), dict(kernel_size=3, strides=2, padding="same")),
        (Conv2D, keras.layers.Conv2D, (2, 8, 8, 3), dict(kernel_size=3, dilation_rate=2, padding="same")),
        (Conv2D, keras.layers.Conv2D, (2, 8, 8, 3), dict(kernel_size=3, padding="valid")),
        (Conv3D, keras.layers.Conv3D, (1, 4, 6, 6, 2), dict(kernel_size=3, padding="same", use_bias=False)),
        (Conv2DTranspose, keras.layers.Conv2DTranspose, (2, 5, 7, 3), dict(kernel_size=2, strides=2)),
        (Conv2DTranspose, keras.layers.Conv2DTranspose, (2, 5, 7, 3), dict(kernel_size=(3, 2), strides=(3, 2))),
        (Conv2DTranspose, keras.layers.Conv2DTranspose, (2, 5, 7, 3), dict(kernel_size=3, strides=2)),  # Keras' op
        (Conv3DTranspose, keras.layers.Conv3DTranspose, (2, 3, 4, 5, 3), dict(kernel_size=2, strides=2)),
    ],
)
def test_layers_equal_keras_layers_in_values_and_gradients(cls, keras_cls, shape, kwargs, forward_gradients):
    rng = np.random.default_rng(2)
    x = tf.constant(rng.standard_normal(shape), tf.float32)
    ours, theirs = cls(4, **kwargs), keras_cls(4, **kwargs)
    ours.build(shape)
    theirs.build(shape)
    theirs.set_weights([w + 0.1 * rng.standard_normal(w.shape) for w in ours.get_weights()])
    ours.set_weights(theirs.get_weights())
    results = []
    for layer in (ours, theirs):
        with forward_convolution_gradients() if forward_gradients else tensorflow_gradients():
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
                loss = tf.reduce_sum(y * y)
        results.append([y] + tape.gradient(loss, [x] + layer.trainable_variables))
    for a, b in zip(*results):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shape, kernel_size", [((2, 3, 4, 5), (2, 2)), ((1, 3, 2, 4), (3, 2)), ((2, 2, 3, 2, 3), (2, 2, 2))])
def test_block_upsampling_is_a_block_sum(shape, kernel_size):
    """out[n, k p + d, o] = bias[o] + sum_i x[n, p, i] kernel[d, o, i], in numpy, in a graph with unknown sizes."""
    rng = np.random.default_rng(3)
    layer = (Conv2DTranspose if len(kernel_size) == 2 else Conv3DTranspose)(4, kernel_size, strides=kernel_size)
    layer.build(shape)
    layer.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()])
    kernel, bias = (w.astype(np.float64) for w in layer.get_weights())
    x = rng.standard_normal(shape)
    expected = np.zeros((shape[0],) + tuple(n * k for n, k in zip(shape[1:-1], kernel_size)) + (4,))
    for offset in np.ndindex(*kernel_size):
        window = (slice(None),) + tuple(slice(d, None, k) for d, k in zip(offset, kernel_size))
        expected[window] = np.einsum("...i,oi->...o", x, kernel[offset])
    expected += bias
    unknown = tf.TensorSpec((None,) * (len(shape) - 1) + (shape[-1],), tf.float32)
    traced = tf.function(layer, input_signature=[unknown])
    for y in (layer(tf.constant(x, tf.float32)), traced(tf.constant(x, tf.float32))):
        assert y.shape == expected.shape
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_blocks_use_the_layers_and_keep_their_weight_names():
    stack = ConvStack(n_outputs=2, n_convs=2, n_filters=4, name="denoiser")
    stack.build((None, None, None, 2))
    assert all(isinstance(conv, Conv2D) for conv in stack.convs + [stack.output_conv])
    assert isinstance(stack.output_conv, keras.layers.Conv2D)  # what the legacy weight order looks for
    assert [w.path for w in stack.weights][:2] == ["denoiser/conv_0/kernel", "denoiser/conv_0/bias"]


def _gradient_op_types(layer, x) -> set:
    @tf.function
    def gradient(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, layer.trainable_variables)

    graph = gradient.get_concrete_function(x).graph
    types = {op.type for op in graph.get_operations()}
    for function in graph.as_graph_def().library.function:
        types |= {node.op for node in function.node_def}
    return types


def test_gradients_are_tensorflows_unless_asked_for_forward_convolutions():
    x = tf.zeros((1, 6, 6, 2))
    layer = Conv2D(3, 3, padding="same")
    layer.build(x.shape)
    assert "Conv2DBackpropFilter" in _gradient_op_types(layer, x)
    with forward_convolution_gradients():
        assert "Conv2DBackpropFilter" not in _gradient_op_types(layer, x)
        with tensorflow_gradients():
            assert "Conv2DBackpropFilter" in _gradient_op_types(layer, x)
    assert "Conv2DBackpropFilter" in _gradient_op_types(layer, x)
