"""MWCNN and its Haar transform against numpy references: separable Haar filters, an explicit
numpy forward pass of the network, and a closed-form parameter count."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.layers import MWCNN, haar_dwt, haar_iwt
from fastmri_zoo.models import XPDNet
from tests.models.conftest import make_inputs

# ------------------------------------------------------------------ numpy references

LOW = np.array([1.0, 1.0]) / np.sqrt(2.0)
HIGH = np.array([-1.0, 1.0]) / np.sqrt(2.0)


def np_haar_dwt(x):
    """Separable Haar analysis: sub-band (row filter, column filter) in the order
    LL, HL (high-pass along W), LH (high-pass along H), HH, stacked sub-band first."""
    batch, height, width, channels = x.shape
    blocks = x.reshape(batch, height // 2, 2, width // 2, 2, channels)
    bands = [
        np.einsum("bipjqc,p,q->bijc", blocks, rows, cols)
        for rows, cols in ((LOW, LOW), (LOW, HIGH), (HIGH, LOW), (HIGH, HIGH))
    ]
    return np.concatenate(bands, axis=-1)


def np_conv_same(x, kernel, bias=None):
    """'same' 2D cross-correlation, x (B, H, W, I), kernel (k, k, I, O), as Keras Conv2D."""
    size = kernel.shape[0]
    before = (size - 1) // 2
    padded = np.pad(x, [(0, 0), (before, size - 1 - before), (before, size - 1 - before), (0, 0)])
    height, width = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for dy in range(size):
        for dx in range(size):
            out += padded[:, dy : dy + height, dx : dx + width, :] @ kernel[dy, dx]
    return out if bias is None else out + bias


def np_mwcnn(layer, x):
    """The documented MWCNN forward pass, written with numpy and the layer's weights (ReLU, no norm)."""
    weights = {w.path.split("/", 1)[1]: w.numpy().astype(np.float64) for w in layer.weights}

    def conv_relu(name, value):
        return np.maximum(np_conv_same(value, weights[f"{name}/kernel"], weights.get(f"{name}/bias")), 0.0)

    n_first = layer.n_first_convs
    factor = 2 ** layer.n_scales
    height, width = x.shape[1:3]
    pad_h, pad_w = (-height) % factor, (-width) % factor
    features = np.pad(x.astype(np.float64), [(0, 0), (pad_h // 2, pad_h - pad_h // 2),
                                            (pad_w // 2, pad_w - pad_w // 2), (0, 0)])
    for i in range(n_first):
        features = conv_relu(f"first_conv_{i}", features)
    first = features
    encoded = []
    for s, m in enumerate(layer.n_convs_per_scale):
        features = np_haar_dwt(features)
        for j in range(m):
            features = conv_relu(f"scale_{s}_conv_{j}", features)
        encoded.append(features)
    for s in reversed(range(layer.n_scales)):
        m = layer.n_convs_per_scale[s]
        if s < layer.n_scales - 1:
            features = np_haar_iwt(features) + encoded[s]
        for j in range(m, 2 * m):
            features = conv_relu(f"scale_{s}_conv_{j}", features)
    features = np_haar_iwt(features) + first
    for i in range(n_first, 2 * n_first - 1):
        features = conv_relu(f"first_conv_{i}", features)
    out = np_conv_same(features, weights["output_conv/kernel"], weights["output_conv/bias"])
    return out[:, pad_h // 2 : pad_h // 2 + height, pad_w // 2 : pad_w // 2 + width]


def np_haar_iwt(y):
    """Synthesis by the transpose of the separable analysis filters."""
    batch, half_h, half_w, channels4 = y.shape
    channels = channels4 // 4
    bands = np.split(y, 4, axis=-1)
    blocks = sum(
        np.einsum("bijc,p,q->bipjqc", band, rows, cols)
        for band, (rows, cols) in zip(bands, ((LOW, LOW), (LOW, HIGH), (HIGH, LOW), (HIGH, HIGH)))
    )
    return blocks.reshape(batch, 2 * half_h, 2 * half_w, channels)


def mwcnn_parameter_count(c_in, n_outputs, filters, convs, n_first, first_filters, kernel=3, use_bias=False):
    """Closed form: every conv is k*k*in*out (+ out if biased); the output conv always has a bias."""
    def conv(c_i, c_o, bias=use_bias):
        return kernel * kernel * c_i * c_o + (c_o if bias else 0)

    total = conv(c_in, first_filters) + (2 * n_first - 2) * conv(first_filters, first_filters)
    total += conv(first_filters, n_outputs, bias=True)
    above = first_filters
    for f, m in zip(filters, convs):
        total += conv(4 * above, f) + (2 * m - 2) * conv(f, f) + conv(f, 4 * above)
        above = f
    return total


# ------------------------------------------------------------------ Haar transform


def test_dwt_matches_separable_haar_filters(rng):
    x = rng.standard_normal((2, 6, 10, 3)).astype(np.float32)
    np.testing.assert_allclose(haar_dwt(x).numpy(), np_haar_dwt(x.astype(np.float64)), atol=1e-6)
    y = rng.standard_normal((2, 3, 5, 12)).astype(np.float32)
    np.testing.assert_allclose(haar_iwt(y).numpy(), np_haar_iwt(y.astype(np.float64)), atol=1e-6)


def test_iwt_inverts_dwt_both_ways(rng):
    x = rng.standard_normal((2, 8, 12, 5)).astype(np.float32)
    np.testing.assert_allclose(haar_iwt(haar_dwt(x)).numpy(), x, atol=1e-6)
    y = rng.standard_normal((2, 4, 6, 20)).astype(np.float32)
    np.testing.assert_allclose(haar_dwt(haar_iwt(y)).numpy(), y, atol=1e-6)


def test_dwt_is_orthonormal(rng):
    # Energy is preserved on random data ...
    x = rng.standard_normal((3, 16, 8, 2)).astype(np.float32)
    coefficients = haar_dwt(x).numpy()
    np.testing.assert_allclose(np.sum(coefficients.astype(np.float64) ** 2), np.sum(x.astype(np.float64) ** 2),
                               rtol=1e-6)
    # ... and the transform matrix (columns = DWT of each basis image) has orthonormal columns.
    basis = np.eye(4 * 6 * 2, dtype=np.float32).reshape(-1, 4, 6, 2)
    matrix = haar_dwt(basis).numpy().reshape(basis.shape[0], -1)
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(matrix.shape[0]), atol=1e-6)


def test_haar_bad_input():
    with pytest.raises(ValueError, match="even H and W"):
        haar_dwt(np.zeros((1, 5, 4, 2), np.float32))
    with pytest.raises(ValueError, match="multiple of 4 channels"):
        haar_iwt(np.zeros((1, 2, 2, 6), np.float32))
    with pytest.raises(ValueError, match="4-dimensional"):
        haar_dwt(np.zeros((4, 4, 2), np.float32))


# ------------------------------------------------------------------ MWCNN layer

SMALL = dict(n_filters_per_scale=[4, 6], n_convs_per_scale=[2, 1], n_first_convs=2, first_conv_n_filters=5)


def perturb(layer, rng):
    for variable in layer.weights:
        variable.assign(variable.numpy() + rng.uniform(-0.2, 0.2, size=variable.shape).astype(np.float32))


@pytest.mark.parametrize("shape", [(2, 8, 12, 2), (1, 10, 6, 2)], ids=["divisible", "padded"])
def test_mwcnn_matches_numpy_forward(shape, rng):
    layer = MWCNN(n_outputs=3, **SMALL)
    x = rng.standard_normal(shape).astype(np.float32)
    layer(x)
    perturb(layer, rng)
    out = layer(x).numpy()
    assert out.shape == shape[:3] + (3,)
    expected = np_mwcnn(layer, x)
    np.testing.assert_allclose(out, expected, atol=1e-4 * np.abs(expected).max())


def test_mwcnn_runs_on_two_channel_images_of_even_sizes(rng):
    layer = MWCNN(n_outputs=2, n_filters_per_scale=[4, 8, 8], n_convs_per_scale=[1, 1, 1], first_conv_n_filters=4)
    for height, width in [(16, 16), (18, 10), (34, 22)]:
        x = rng.standard_normal((2, height, width, 2)).astype(np.float32)
        out = layer(x).numpy()
        assert out.shape == (2, height, width, 2) and np.all(np.isfinite(out))
    # The fixed transforms add no weights: every weight is a conv kernel or the output bias.
    assert all(w.path.endswith("kernel") or w.path.endswith("output_conv/bias") for w in layer.weights)


def test_mwcnn_residual_adds_the_input(rng):
    layer = MWCNN(n_outputs=2, residual=True, **SMALL)
    x = rng.standard_normal((1, 8, 8, 2)).astype(np.float32)
    layer(x)
    for variable in layer.weights:
        variable.assign(np.zeros(variable.shape, np.float32))
    np.testing.assert_array_equal(layer(x).numpy(), x)
    with pytest.raises(ValueError, match="residual"):
        MWCNN(n_outputs=3, residual=True, **SMALL)(x)


@pytest.mark.parametrize(
    "c_in,n_outputs,kwargs",
    [
        (2, 2, SMALL),
        (4, 6, dict(n_filters_per_scale=[3, 5, 7], n_convs_per_scale=[1, 2, 3], n_first_convs=1,
                    first_conv_n_filters=2, use_bias=True, kernel_size=5)),
    ],
)
def test_mwcnn_parameter_count_closed_form(c_in, n_outputs, kwargs):
    layer = MWCNN(n_outputs=n_outputs, **kwargs)
    layer.build((None, None, None, c_in))
    expected = mwcnn_parameter_count(
        c_in, n_outputs, kwargs["n_filters_per_scale"], kwargs["n_convs_per_scale"], kwargs["n_first_convs"],
        kwargs["first_conv_n_filters"], kernel=kwargs.get("kernel_size", 3), use_bias=kwargs.get("use_bias", False),
    )
    assert layer.count_params() == expected


def test_mwcnn_defaults_match_the_authors_xpdnet_brain_denoiser():
    """The authors' XPDNet-brain checkpoints (155,569,040 parameters: a 4-scale [8, 16, 32, 64]
    coil-map refiner and 25 MWCNNs on 2 (5 + 1) channels to 2 x 5) list 6,217,930 parameters per
    image network; their reduced test model ([8, 16, 32] filters, 16 first filters) 111,466."""
    formula = mwcnn_parameter_count(12, 10, [64, 128, 256], [3, 3, 3], 2, 32)
    assert formula == 6_217_930
    layer = MWCNN(n_outputs=10)
    layer.build((None, None, None, 12))
    assert layer.count_params() == formula
    reduced = MWCNN(n_outputs=10, n_filters_per_scale=[8, 16, 32], first_conv_n_filters=16)
    reduced.build((None, None, None, 12))
    assert reduced.count_params() == mwcnn_parameter_count(12, 10, [8, 16, 32], [3, 3, 3], 2, 16) == 111_466
    # Weight order and shapes of one image network, as listed in the authors' checkpoint.
    shapes = [tuple(w.shape) for w in layer.weights]
    assert shapes[:5] == [(3, 3, 12, 32), (3, 3, 32, 32), (3, 3, 32, 32), (3, 3, 32, 10), (10,)]
    assert shapes[5:11] == [(3, 3, 128, 64)] + [(3, 3, 64, 64)] * 4 + [(3, 3, 64, 128)]
    assert shapes[-6:] == [(3, 3, 512, 256)] + [(3, 3, 256, 256)] * 4 + [(3, 3, 256, 512)]


def test_xpdnet_brain_configuration_parameter_total(rng):
    model = XPDNet(denoiser="mwcnn", n_iter=2, multicoil=True, refine_smaps=True,
                   refiner_kwargs=dict(layers_n_channels=[8, 16, 32, 64]))
    _, inputs = make_inputs(rng, multicoil=True, batch=1)
    model(inputs)
    per_iteration = model.image_nets[0].count_params()
    refiner = model.smaps_refiner.count_params()
    assert model.count_params() == 2 * per_iteration + refiner
    assert refiner + 25 * per_iteration == 155_569_040


def test_mwcnn_config_round_trip(rng):
    layer = MWCNN(n_outputs=4, activation="prelu", batch_norm=True, name="denoiser", **SMALL)
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    layer(x)
    perturb(layer, rng)
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is MWCNN
    assert clone.get_config() == layer.get_config()
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x, training=False).numpy(), layer(x, training=False).numpy())


def test_mwcnn_bad_arguments():
    with pytest.raises(ValueError, match="same length"):
        MWCNN(n_filters_per_scale=[4, 8], n_convs_per_scale=[1])
    with pytest.raises(ValueError, match="positive"):
        MWCNN(n_filters_per_scale=[4, 0], n_convs_per_scale=[1, 1])
    with pytest.raises(ValueError, match="n_first_convs"):
        MWCNN(n_first_convs=0)


def test_xpdnet_with_mwcnn_denoiser(rng):
    kwargs = dict(n_filters_per_scale=[4, 8], n_convs_per_scale=[1, 1], first_conv_n_filters=6)
    model = XPDNet(denoiser="mwcnn", denoiser_kwargs=kwargs, n_iter=2, n_primal=3)
    _, inputs = make_inputs(rng, multicoil=False, batch=2)
    out = model(inputs)
    assert out.shape == inputs["kspace"].shape and out.dtype == tf.complex64
    assert [type(net) for net in model.image_nets] == [MWCNN, MWCNN]
    assert model.image_nets[1].name == "image_net_1" and model.image_nets[0].n_outputs == 6
    assert model.image_nets[0].count_params() == mwcnn_parameter_count(8, 6, [4, 8], [1, 1], 2, 6)
    config = json.loads(json.dumps(model.get_config()))
    assert config["denoiser"] == "mwcnn" and config["denoiser_kwargs"] == kwargs
    clone = XPDNet.from_config(config)
    clone(inputs)
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone(inputs).numpy(), out.numpy())
