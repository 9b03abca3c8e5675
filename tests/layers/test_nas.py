"""The architecture-search cells against numpy: every operation against a zero-padded dilated
correlation written in numpy (odd and even sizes), parameter counts by closed form, the mixed
operation against a numpy softmax, DARTS' genotype rule on hand-set logits, the search cell with
saturated logits equal to the discrete cell, and the genotype JSON round trip."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.layers import (
    OPERATIONS,
    SEARCH_SPACES,
    CellNetwork,
    CellOperation,
    Genotype,
    GenotypeCell,
    MixedOperation,
    SearchCell,
    derive_genotype,
    edge_count,
)

CHANNELS = 3
#: (batch, H, W): odd by even and even by odd
SHAPES = [(2, 7, 10), (1, 8, 5)]

# ------------------------------------------------------------------ numpy reference of the operations


def np_correlate(x, kernel, dilation=1, depthwise=False):
    """'Same' zero-padded dilated cross-correlation: x (batch, H, W, C_in), kernel (kh, kw, C_in, C_out)
    (or (kh, kw, C, 1) with ``depthwise``)."""
    kh, kw = kernel.shape[:2]
    ph, pw = dilation * (kh - 1) // 2, dilation * (kw - 1) // 2
    height, width = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    out = 0.0
    for i in range(kh):
        for j in range(kw):
            patch = padded[:, i * dilation : i * dilation + height, j * dilation : j * dilation + width]
            out = out + (patch * kernel[i, j, :, 0] if depthwise else patch @ kernel[i, j])
    return out


#: name -> (kind, kernel size, dilation) written out independently of the registry
REFERENCE = {
    "none": ("zero", None, None),
    "skip_connect": ("identity", None, None),
    "conv_3x3": ("conv", 3, 1),
    "conv_5x5": ("conv", 5, 1),
    "conv_7x7": ("conv", 7, 1),
    "dil2_conv_3x3": ("conv", 3, 2),
    "dil3_conv_3x3": ("conv", 3, 3),
    "sep_conv_3x3": ("separable", 3, 1),
    "sep_conv_5x5": ("separable", 5, 1),
    "sep_conv_7x7": ("separable", 7, 1),
    "dil2_sep_conv_3x3": ("separable", 3, 2),
    "dil3_sep_conv_3x3": ("separable", 3, 3),
    "conv_9x1_1x9": ("factorised", 9, 1),
}


def np_operation(name, x, kernels):
    kind, _, dilation = REFERENCE[name]
    if kind == "zero":
        return np.zeros_like(x)
    if kind == "identity":
        return x
    x = np.maximum(x, 0.0)
    if kind == "conv":
        return np_correlate(x, kernels[0], dilation)
    if kind == "separable":
        return np_correlate(np_correlate(x, kernels[0], dilation, depthwise=True), kernels[1])
    return np_correlate(np_correlate(x, kernels[0]), kernels[1])


def closed_form_parameters(name, channels):
    kind, k, _ = REFERENCE[name]
    if kind in ("zero", "identity"):
        return 0
    return {"conv": k * k * channels**2, "separable": k * k * channels + channels**2,
            "factorised": 2 * k * channels**2}[kind]


def randomise(layer, rng):
    for variable in layer.weights:
        variable.assign(rng.standard_normal(variable.shape).astype(np.float32) * 0.3)


def test_the_reference_covers_the_registry_and_the_spaces():
    assert set(REFERENCE) == set(OPERATIONS)
    assert SEARCH_SPACES["A"] == ["sep_conv_3x3", "dil2_sep_conv_3x3", "dil3_sep_conv_3x3", "skip_connect", "none"]
    assert set(SEARCH_SPACES["B"]) == set(SEARCH_SPACES["A"]) - {"dil3_sep_conv_3x3"} | {"conv_9x1_1x9"}
    assert len(SEARCH_SPACES["fedautomri"]) == 8 and "none" not in SEARCH_SPACES["fedautomri"]


@pytest.mark.parametrize("shape", SHAPES, ids=["odd-even", "even-odd"])
@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_operation_keeps_size_and_channels_and_matches_numpy(name, shape, rng):
    operation = CellOperation(name, CHANNELS)
    operation.build((None, None, None, CHANNELS))
    randomise(operation, rng)
    x = rng.standard_normal(shape + (CHANNELS,)).astype(np.float32)
    out = operation(x).numpy()
    assert out.shape == x.shape
    kernels = [layer.kernel.numpy() for layer in operation.convolutions]
    np.testing.assert_allclose(out, np_operation(name, x, kernels), rtol=1e-4, atol=1e-4)
    assert operation.count_params() == closed_form_parameters(name, CHANNELS)


def test_unknown_operation_and_space_fail_with_the_names():
    with pytest.raises(ValueError, match="operation"):
        CellOperation("max_pool_3x3", 4)
    with pytest.raises(ValueError, match="search_space"):
        MixedOperation("C", 4)


def np_softmax(logits):
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


@pytest.mark.parametrize("space", sorted(SEARCH_SPACES))
def test_mixed_operation_is_the_softmax_weighted_sum(space, rng):
    mixed = MixedOperation(space, CHANNELS)
    mixed.build((None, None, None, CHANNELS))
    randomise(mixed, rng)
    x = rng.standard_normal((1, 7, 6, CHANNELS)).astype(np.float32)
    alpha = rng.standard_normal(len(SEARCH_SPACES[space])).astype(np.float32)
    expected = sum(
        w * np_operation(op.operation, x, [layer.kernel.numpy() for layer in op.convolutions])
        for w, op in zip(np_softmax(alpha.astype(np.float64)), mixed.operations)
    )
    np.testing.assert_allclose(mixed(x, alpha).numpy(), expected, rtol=1e-4, atol=1e-4)
    assert mixed.count_params() == sum(closed_form_parameters(name, CHANNELS) for name in SEARCH_SPACES[space])


# ------------------------------------------------------------------ the genotype rule

#: Space A's order: sep_conv_3x3, dil2_sep_conv_3x3, dil3_sep_conv_3x3, skip_connect, none
HAND_SET_ALPHA = np.array([
    # node 0 (states 0, 1): both edges kept; 'none' dominates edge 0, whose best other op is skip
    [0, 0, 0, 1, 10],
    [0, 5, 0, 0, 0],
    # node 1 (states 0, 1, 2): the raw logits favour state 0 (3 > 2), the softmax weights do not
    # (0.2 < 0.649 sep, 0.528 dil3): DARTS compares softmax weights
    [3, 3, 3, 3, 3],
    [2, 0, 0, 0, 0],
    [0, 0, 1.5, 0, 0],
    # node 2 (states 0 ... 3): 'none' everywhere strongest on state 0; skip 0.93 on state 2,
    # sep 0.405 on state 1, a uniform row (ties: the first op) on state 3
    [0, 0, 0, 0, 20],
    [1, 0, 0, 0, 0],
    [0, 0, 0, 4, 0],
    [0, 0, 0, 0, 0],
], np.float32)
HAND_SET_GENOTYPE = [
    [["skip_connect", 0], ["dil2_sep_conv_3x3", 1]],
    [["sep_conv_3x3", 1], ["dil3_sep_conv_3x3", 2]],
    [["sep_conv_3x3", 1], ["skip_connect", 2]],
]


def test_genotype_rule_on_hand_set_alphas():
    assert edge_count(3) == len(HAND_SET_ALPHA) == 9
    assert derive_genotype(HAND_SET_ALPHA, "A", 3).to_config() == HAND_SET_GENOTYPE


@pytest.mark.parametrize("space", ["A", "B"])
def test_none_is_never_in_a_derived_genotype(space, rng):
    none = SEARCH_SPACES[space].index("none")
    for n_nodes in (1, 2, 3, 4):
        for scale in (0.1, 3.0):
            alpha = rng.standard_normal((edge_count(n_nodes), 5)) * scale
            alpha[:, none] += 10.0  # 'none' the strongest op of every edge
            genotype = derive_genotype(alpha, space, n_nodes)
            assert genotype.n_nodes == n_nodes
            for i, node in enumerate(genotype.to_config()):
                states = [state for _, state in node]
                assert len(node) == 2 and len(set(states)) == 2 and all(0 <= s < i + 2 for s in states)
                assert all(op != "none" and op in SEARCH_SPACES[space] for op, _ in node)


def test_genotype_validation():
    with pytest.raises(ValueError, match="none"):
        Genotype.parse([[["none", 0], ["skip_connect", 1]]])
    with pytest.raises(ValueError, match="state"):
        Genotype.parse([[["skip_connect", 2]]])
    with pytest.raises(ValueError, match="alpha"):
        derive_genotype(np.zeros((4, 5)), "A", 3)


# ------------------------------------------------------------------ cells


def cell_input(rng, channels, shape=(2, 7, 6)):
    return rng.standard_normal(shape + (channels,)).astype(np.float32)


def test_search_cell_with_saturated_alphas_is_the_discrete_cell(rng):
    """Logits of +50 on the genotype's operations and on 'none' elsewhere turn every mixed
    operation into one operation: the search cell then computes the discrete cell."""
    channels, n_nodes = 4, 3
    genotype = Genotype.parse(HAND_SET_GENOTYPE)
    names = SEARCH_SPACES["A"]
    alpha = np.zeros((edge_count(n_nodes), len(names)), np.float32)
    offsets = [0, 2, 5]  # node i's edges start after 2 + 3 + ... + (i + 1) rows
    for i, node in enumerate(genotype.to_config()):
        chosen = {state: op for op, state in node}
        for state in range(i + 2):
            alpha[offsets[i] + state, names.index(chosen.get(state, "none"))] = 50.0
    search = SearchCell(n_nodes, channels, "A")
    search.build((None, None, None, 5), (None, None, None, 6))
    discrete = GenotypeCell(genotype, channels)
    discrete.build((None, None, None, 5), (None, None, None, 6))
    randomise(search, rng)
    # the discrete cell takes the search cell's weights: preprocessing, and the chosen operation of each kept edge
    for source, target in zip(search.preprocessing, discrete.preprocessing):
        target.kernel.assign(source.kernel)
    for i, (node, operations) in enumerate(zip(genotype.to_config(), discrete.edges)):
        for (op, state), operation in zip(node, operations):
            source = search.edges[i][state].operations[names.index(op)]
            for a, b in zip(operation.weights, source.weights):
                a.assign(b)
    prev_prev, prev = cell_input(rng, 5), cell_input(rng, 6)
    out = search(prev_prev, prev, alpha).numpy()
    assert out.shape == (2, 7, 6, n_nodes * channels)
    np.testing.assert_allclose(out, discrete(prev_prev, prev).numpy(), rtol=1e-4, atol=1e-4)


def test_search_cell_parameters_by_closed_form():
    channels, n_nodes = 4, 3
    cell = SearchCell(n_nodes, channels, "B")
    cell.build((None, None, None, 7), (None, None, None, 12))
    per_edge = sum(closed_form_parameters(name, channels) for name in SEARCH_SPACES["B"])
    assert cell.count_params() == (7 + 12) * channels + edge_count(n_nodes) * per_edge
    assert not cell.weights or all("alpha" not in v.path for v in cell.weights)


def test_genotype_json_round_trip_rebuilds_the_same_network(rng):
    genotype = derive_genotype(HAND_SET_ALPHA, "A", 3)
    text = genotype.to_json()
    assert Genotype.parse(text) == genotype and Genotype.parse(json.loads(text)) == genotype
    network = CellNetwork(genotype, channels=4, n_cells=2)
    network.build((None, None, None, 2))
    randomise(network, rng)
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(network)))
    rebuilt = keras.saving.deserialize_keras_object(config)
    assert rebuilt.get_config() == network.get_config() and rebuilt.cell == HAND_SET_GENOTYPE
    if not rebuilt.built:
        rebuilt.build((None, None, None, 2))
    rebuilt.set_weights(network.get_weights())
    x = cell_input(rng, 2)
    np.testing.assert_array_equal(rebuilt(x).numpy(), network(x).numpy())


def test_search_network_needs_alpha_and_passes_its_gradient(rng):
    network = CellNetwork("search", channels=4, n_cells=2, n_nodes=2, search_space="A")
    network.build((None, None, None, 2))
    x = cell_input(rng, 2)
    with pytest.raises(ValueError, match="alpha"):
        network(x)
    alpha = tf.Variable(rng.standard_normal((edge_count(2), 5)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(network(x, alpha=alpha)))
    gradient = tape.gradient(loss, alpha).numpy()
    assert gradient.shape == (5, 5) and np.isfinite(gradient).all() and np.abs(gradient).max() > 0
