"""NasNet and its DCCNN-3res baseline: parameter counts by closed form (170,022 for DCCNN-3res),
more nodes more parameters, the search network's architecture weights apart from its network
weights, the derived genotype rebuilding the same network, and noiseless data consistency last.
The generic checks (config, graph, preset, Adam steps) come from tests/models/families.py."""

import json

import numpy as np
import pytest

from fastmri_zoo.layers import Genotype, edge_count
from fastmri_zoo.models import NasNet, ResidualDCCNN
from tests.layers.test_nas import HAND_SET_ALPHA, HAND_SET_GENOTYPE, closed_form_parameters
from tests.models.conftest import make_inputs, np_fftc, perturb_all_weights
from tests.models.families import check_adam_steps, run_family_checks


def chain_genotype(n_nodes):
    """Node i: a separable 3x3 from state i and a dilated one from state i + 1."""
    return [[["sep_conv_3x3", i], ["dil2_sep_conv_3x3", i + 1]] for i in range(n_nodes)]


def nasnet_parameters(genotype, n_iter, n_cells, channels):
    """Closed form: per cascade, head 3x3 (2 -> C, bias), cells (1x1 preprocessing of both inputs,
    the genotype's operations), tail 3x3 (n C -> 2, bias)."""
    n_nodes = len(genotype)
    operations = sum(closed_form_parameters(op, channels) for node in genotype for op, _ in node)
    inputs = [(channels, channels)] + [(channels, n_nodes * channels)] + [(n_nodes * channels,) * 2] * (n_cells - 2)
    preprocessing = sum((a + b) * channels for a, b in inputs[:n_cells])
    head, tail = 9 * 2 * channels + channels, 9 * n_nodes * channels * 2 + 2
    return n_iter * (head + preprocessing + n_cells * operations + tail)


def dccnn_parameters(n_iter, n_cells, channels):
    return n_iter * (9 * 2 * channels + channels + n_cells * 2 * (9 * channels**2 + channels) + 9 * channels * 2 + 2)


def built(model):
    model.build(None)
    return model


def test_dccnn_3res_has_the_papers_170022_parameters():
    assert dccnn_parameters(3, 3, 32) == 170_022
    assert built(ResidualDCCNN()).count_params() == 170_022
    assert built(ResidualDCCNN(n_iter=2, n_cells=1, n_filters=8)).count_params() == dccnn_parameters(2, 1, 8)


@pytest.mark.parametrize("n_cells", [1, 2, 3])
def test_nasnet_parameters_by_closed_form(n_cells):
    model = built(NasNet(n_iter=2, n_cells=n_cells, n_filters=8, genotype=HAND_SET_GENOTYPE))
    assert model.count_params() == nasnet_parameters(HAND_SET_GENOTYPE, 2, n_cells, 8)


def test_more_nodes_more_parameters():
    counts = [built(NasNet(genotype=chain_genotype(n))).count_params() for n in (2, 3, 4)]
    assert counts == [nasnet_parameters(chain_genotype(n), 3, 3, 32) for n in (2, 3, 4)]
    assert counts[0] < counts[1] < counts[2]
    search_counts = [built(NasNet(n_iter=1, n_filters=4, n_nodes=n)).count_params() for n in (2, 3, 4)]
    assert search_counts[0] < search_counts[1] < search_counts[2]


def test_search_network_keeps_alpha_apart_and_derives_the_genotype():
    model = built(NasNet(n_iter=2, n_cells=2, n_filters=4, n_nodes=3, search_space="A"))
    assert [v.shape for v in model.architecture_weights] == [(edge_count(3), 5)]
    assert model.architecture_weights[0].path.endswith("/alpha")
    names = {v.path for v in model.network_weights}
    assert model.architecture_weights[0].path not in names
    assert len(model.network_weights) + 1 == len(model.trainable_weights)
    # the shared logits: one matrix for every cell of every cascade
    assert sum("alpha" in v.path for v in model.weights) == 1
    model.architecture_weights[0].assign(HAND_SET_ALPHA)
    assert model.derived_genotype().to_config() == HAND_SET_GENOTYPE
    discrete = built(NasNet(genotype=HAND_SET_GENOTYPE))
    assert discrete.architecture_weights == [] and discrete.derived_genotype() == Genotype.parse(HAND_SET_GENOTYPE)


def test_genotype_json_round_trip_rebuilds_the_same_nasnet(rng):
    model = built(NasNet(n_iter=2, n_cells=2, n_filters=4, n_nodes=3))
    model.architecture_weights[0].assign(HAND_SET_ALPHA)
    text = model.derived_genotype().to_json()
    first = built(NasNet(n_iter=2, n_cells=2, n_filters=4, genotype=json.loads(text)))
    config = built(NasNet(n_iter=2, n_cells=2, n_filters=4, genotype=text)).get_config()
    second = NasNet.from_config(json.loads(json.dumps(config)))
    second.build(None)
    perturb_all_weights(first, rng)
    second.set_weights(first.get_weights())
    _, inputs = make_inputs(rng, multicoil=False)
    np.testing.assert_array_equal(second(inputs).numpy(), first(inputs).numpy())
    assert second.get_config()["genotype"] == HAND_SET_GENOTYPE


def test_genotype_and_n_nodes_must_agree():
    with pytest.raises(ValueError, match="n_nodes"):
        NasNet(genotype=HAND_SET_GENOTYPE, n_nodes=2)


@pytest.mark.parametrize("cls", [NasNet, ResidualDCCNN])
def test_sampled_kspace_is_the_measured_one(cls, rng):
    model = built(cls(**cls.small_config()))
    _, inputs = make_inputs(rng, multicoil=False)
    out = model(inputs).numpy()
    kspace = np_fftc(out)
    mask = np.broadcast_to(inputs["mask"], out.shape)
    assert np.abs(kspace * (1 - mask)).max() > 0.1 * np.abs(kspace).max()  # the network changed the rest
    np.testing.assert_allclose(kspace * mask, inputs["kspace"], atol=1e-5 * np.abs(kspace).max())


def test_search_network_through_the_generic_checks(rng, tmp_path):
    kwargs = dict(n_iter=1, n_cells=2, n_filters=4, n_nodes=1, search_space=["sep_conv_3x3", "skip_connect", "none"])
    run_family_checks(NasNet, kwargs, rng, tmp_path)
    check_adam_steps(NasNet, kwargs, rng)
