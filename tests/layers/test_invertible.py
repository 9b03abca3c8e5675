"""The i-RIM's invertible layers, the ConvGRU and invert to learn, against numpy / scipy references.

Householder products and orthogonality against numpy (float64); the residual block G against
a numpy strided convolution, scipy correlation and a numpy transposed convolution; each layer's
inverse against its input; the ConvGRU against the GRU equations in numpy; invert-to-learn
gradients against plain backpropagation through the same stages, eager and traced, 2D and 3D.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.signal import correlate

from fastmri_zoo import layers
from fastmri_zoo.layers.invertible import householder_matrix

SHAPES = {2: (2, 8, 8), 3: (1, 3, 8, 8)}


def state(rng, ndim, channels):
    return rng.standard_normal(SHAPES[ndim] + (channels,)).astype(np.float32)


def numpy_householder(vectors):
    u = np.eye(vectors.shape[1])
    for v in vectors.astype(np.float64):
        u = u @ (np.eye(len(v)) - 2.0 * np.outer(v, v) / (v @ v))
    return u


def test_householder_product_matches_numpy_and_is_orthogonal(rng):
    layer = layers.HouseholderConv(n_reflections=3)
    layer.build((None, None, None, 7))
    vectors = layer.vectors.numpy()
    assert vectors.shape == (3, 7)
    u = layer.matrix().numpy()
    np.testing.assert_allclose(u, numpy_householder(vectors), atol=1e-6)
    np.testing.assert_allclose(u.T.astype(np.float64) @ u, np.eye(7), atol=1e-6)
    # each reflection has determinant -1: three of them, -1
    assert np.linalg.det(u.astype(np.float64)) == pytest.approx(-1.0, abs=1e-5)
    x = state(rng, 2, 7)
    np.testing.assert_allclose(layer(x).numpy(), x @ numpy_householder(vectors).T, atol=1e-5)
    np.testing.assert_allclose(layer.inverse(x).numpy(), x @ numpy_householder(vectors), atol=1e-5)


def test_householder_reflections_limited_by_channels():
    layer = layers.HouseholderConv(n_reflections=3)
    layer.build((None, None, None, 2))
    assert layer.vectors.shape == (2, 2)
    # a single reflection of e_1 maps it to -e_1
    np.testing.assert_allclose(householder_matrix(np.array([[1.0, 0.0]], np.float32)).numpy(), np.diag([-1.0, 1.0]))


def numpy_block(block, x):
    """G of a PixelShuffleBlock (2D) from its normalised kernels: stride-d convolution, 3x3
    correlation, transposed stride-d convolution, GLU."""
    d = block.downsampling
    batch, height, width, cin = x.shape
    down = block.down.normalized_kernel().numpy().reshape(d, d, cin, -1)
    bias = block.down.bias.numpy()
    h, w = height // d, width // d
    hidden = np.zeros((batch, h, w, down.shape[-1]))
    for i in range(d):
        for j in range(d):
            hidden += np.einsum("byxc,co->byxo", x[:, i::d, j::d], down[i, j])
    hidden = np.maximum(hidden + bias, 0)
    middle = block.middle.normalized_kernel().numpy()
    mid = np.stack([
        np.stack([sum(correlate(hidden[b, ..., c], middle[..., c, o], mode="same") for c in range(hidden.shape[-1]))
                  for o in range(middle.shape[-1])], -1)
        for b in range(batch)
    ]) + block.middle.bias.numpy()
    mid = np.maximum(mid, 0)
    up = block.up.normalized_kernel().numpy().reshape(-1, d, d, 2 * block.n_outputs)
    out = np.zeros((batch, height, width, 2 * block.n_outputs))
    for i in range(d):
        for j in range(d):
            out[:, i::d, j::d] = np.einsum("byxc,co->byxo", mid, up[:, i, j])
    value, gate = np.split(out, 2, axis=-1)
    return value / (1 + np.exp(-gate))


@pytest.mark.parametrize("d", [1, 2, 4])
def test_residual_block_equals_strided_convolutions(rng, d):
    block = layers.PixelShuffleBlock(n_outputs=3, hidden_channels=5, downsampling=d)
    block.build((None, None, None, 2))
    for conv in (block.down, block.middle, block.up):
        conv.gain.assign(rng.uniform(0.5, 1.5, conv.gain.shape).astype(np.float32))
    block.down.bias.assign(rng.uniform(-0.2, 0.2, block.down.bias.shape).astype(np.float32))
    assert block.up.bias is None  # no bias on the last convolution
    x = rng.standard_normal((2, 8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(block(x).numpy(), numpy_block(block, x), atol=1e-5)


def test_weight_normalisation_per_output_channel(rng):
    block = layers.PixelShuffleBlock(n_outputs=3, hidden_channels=5, downsampling=2)
    block.build((None, None, None, 2))
    # the initial gains are the kernels' norms: the initial convolutions are the plain ones
    np.testing.assert_allclose(block.down.normalized_kernel().numpy(), block.down.kernel.numpy(), rtol=1e-5)
    for conv in (block.down, block.middle, block.up):
        conv.gain.assign(np.full(conv.gain.shape, 2.0, np.float32))
    down = block.down.normalized_kernel().numpy()
    np.testing.assert_allclose(np.sqrt((down**2).reshape(-1, 5).sum(0)), 2.0, rtol=1e-5)
    # the up kernel's norm is per channel of the transposed convolution: over inputs and the 2x2 positions
    up = block.up.normalized_kernel().numpy().reshape(5, 4, 6)
    np.testing.assert_allclose(np.sqrt((up**2).sum(axis=(0, 1))), 2.0, rtol=1e-5)


def make_layer(kind, ndim, channels):
    if kind == "householder":
        return layers.HouseholderConv(3)
    if kind == "coupling":
        return layers.AdditiveCoupling(channels - 1, hidden_channels=6, downsampling=2, ndim=ndim)
    if kind == "layer":
        return layers.InvertibleLayer(channels, hidden_channels=6, downsampling=4, ndim=ndim)
    return layers.InvertibleUNet(channels, hidden_channels=[6, 8, 6], downsampling=[1, 2, 1], ndim=ndim)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("kind", ["householder", "coupling", "layer", "unet"])
def test_inverse_of_each_layer_returns_its_input(rng, kind, ndim):
    keras.utils.set_random_seed(1)
    channels = 6
    layer = make_layer(kind, ndim, channels)
    x = state(rng, ndim, channels)
    layer.build(x.shape)
    y = layer(x).numpy()
    assert np.abs(y - x).max() > 0.1  # not the identity
    np.testing.assert_allclose(layer.inverse(y).numpy(), x, atol=1e-5)
    np.testing.assert_allclose(layer(layer.inverse(x)).numpy(), x, atol=1e-5)


def test_coupling_keeps_first_half_and_uncoupled_channels(rng):
    coupling = layers.AdditiveCoupling(5, hidden_channels=4)
    x = state(rng, 2, 8)
    y = coupling(x).numpy()
    np.testing.assert_array_equal(y[..., :2], x[..., :2])
    np.testing.assert_array_equal(y[..., 5:], x[..., 5:])
    residual = coupling.residual(x[..., :2]).numpy()
    np.testing.assert_allclose(y[..., 2:5], x[..., 2:5] + residual, atol=1e-6)


def test_invertible_layer_is_rotated_coupling(rng):
    layer = layers.InvertibleLayer(4, hidden_channels=4)
    x = state(rng, 2, 4)
    y = layer(x).numpy()
    u = layer.rotation.matrix().numpy().astype(np.float64)
    rotated = x @ u.T
    coupled = layer.coupling(rotated.astype(np.float32)).numpy()
    np.testing.assert_allclose(y, coupled @ u, atol=1e-5)


def test_unet_config_round_trip_and_parameter_count():
    net = layers.InvertibleUNet(6, hidden_channels=[4, 8], downsampling=[1, 2], coupling_channels=[6, 4])
    net.build((None, None, None, 6))
    # per layer: Householder 3 x 6; G: down (c1 d^2 h + h) + h gains, middle (9 h h + h) + h,
    # up (h d^2 2 c2) + 2 c2 gains, with c1 = c // 2, c2 = c - c1
    def count(c, h, d):
        c1, c2 = c // 2, c - c // 2
        return 18 + (c1 * d * d * h + 2 * h) + (9 * h * h + 2 * h) + (h * d * d * 2 * c2 + 2 * c2)
    assert net.count_params() == count(6, 4, 1) + count(4, 8, 2)
    config = json.loads(json.dumps(net.get_config()))
    assert layers.InvertibleUNet.from_config(config).get_config() == net.get_config()
    assert net.size_multiple == 2


def test_bad_states_and_sizes_raise_clear_errors(rng):
    net = layers.InvertibleUNet(6, hidden_channels=4, downsampling=[1, 4])
    net.build((None, None, None, 6))
    with pytest.raises(ValueError, match="state_channels=6"):
        net(state(rng, 2, 5))
    with pytest.raises(ValueError, match="state_channels=6"):
        net(state(rng, 3, 6))  # a volume into a 2D network
    with pytest.raises(ValueError, match="multiples of 4"):
        net(rng.standard_normal((1, 8, 10, 6)).astype(np.float32))
    with pytest.raises(ValueError, match="coupling_channels"):
        layers.InvertibleUNet(4, downsampling=[1], coupling_channels=[5])
    with pytest.raises(ValueError, match="hidden_channels"):
        layers.InvertibleUNet(4, hidden_channels=[4, 4], downsampling=[1])
    with pytest.raises(ValueError, match="at least 2"):
        layers.AdditiveCoupling(1)


# --------------------------------------------------------------------------- ConvGRU


def test_conv_gru_matches_numpy_equations(rng):
    cell = layers.ConvGRUCell(hidden_channels=3, kernel_size=3)
    x = rng.standard_normal((1, 6, 7, 2)).astype(np.float32)
    h = rng.standard_normal((1, 6, 7, 3)).astype(np.float32)
    out = cell(x, h).numpy()

    def conv(inputs, layer):
        kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
        return np.stack([sum(correlate(inputs[0, ..., c], kernel[..., c, o], mode="same")
                             for c in range(inputs.shape[-1])) + bias[o] for o in range(kernel.shape[-1])], -1)

    xz, xr, xn = np.split(conv(x, cell.input_conv), 3, -1)
    hz, hr, hn = np.split(conv(h, cell.hidden_conv), 3, -1)
    sigmoid = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    z, r = sigmoid(xz + hz), sigmoid(xr + hr)
    expected = (1 - z) * h[0] + z * np.tanh(xn + r * hn)
    np.testing.assert_allclose(out[0], expected, atol=1e-5)
    # no hidden state: zeros
    np.testing.assert_allclose(cell(x).numpy(), cell(x, np.zeros_like(h)).numpy(), atol=1e-7)
    # orthogonal initial kernels (1 x 1 here: the 2 x 9 input kernel has orthonormal rows)
    kernel = layers.ConvGRUCell(hidden_channels=3)
    kernel.build((None, None, None, 2))
    k = kernel.input_conv.kernel.numpy().reshape(2, 9)
    np.testing.assert_allclose(k @ k.T, np.eye(2), atol=1e-5)


def test_recurrent_net_parameter_count_3d_and_state():
    net = layers.RecurrentConvNet(n_outputs=2, hidden_channels=64)
    net.build((None, None, None, 4))
    gru = 2 * (64 * 192 + 192)
    # conv 5x5 4->64, GRU, conv 3x3 64->64, GRU, conv 3x3 64->2 without bias
    assert net.count_params() == (25 * 4 * 64 + 64) + gru + (9 * 64 * 64 + 64) + gru + 9 * 64 * 2 == 94_464
    net3 = layers.RecurrentConvNet(n_outputs=2, hidden_channels=4, ndim=3)
    out, hidden = net3(np.zeros((1, 3, 8, 8, 4), np.float32))
    assert out.shape == (1, 3, 8, 8, 2) and len(hidden) == 2 and hidden[0].shape == (1, 3, 8, 8, 4)


# --------------------------------------------------------------------------- invert to learn


def relative_errors(a, b):
    return [float(np.linalg.norm(np.asarray(u) - np.asarray(v)) / np.linalg.norm(np.asarray(v))) for u, v in zip(a, b)]


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "graph"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_invert_to_learn_gradients_equal_backpropagation(rng, ndim, traced):
    keras.utils.set_random_seed(2)
    nets = [layers.InvertibleUNet(6, hidden_channels=6, downsampling=[1, 2, 4, 1], ndim=ndim) for _ in range(2)]
    x = tf.constant(state(rng, ndim, 6))
    for net in nets:
        net.build(x.shape)
    stages = [stage for net in nets for stage in net.stages()]
    variables = [v for net in nets for v in net.trainable_variables]
    weight = tf.constant(rng.standard_normal(x.shape).astype(np.float32))

    def gradients(memory_free):
        with tf.GradientTape() as tape:
            tape.watch(x)
            if memory_free:
                y = layers.invert_to_learn(stages, x)
            else:
                y = x
                for stage in stages:
                    y = stage(y)
            loss = tf.reduce_sum(weight * y**2)
        return tape.gradient(loss, [x] + variables)

    run = tf.function(gradients) if traced else gradients
    plain, inverted = run(False), run(True)
    assert all(g is not None for g in inverted)
    assert max(relative_errors(inverted, plain)) < 1e-4
