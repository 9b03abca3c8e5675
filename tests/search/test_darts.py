"""DARTS and MiLeNAS against independent references: on a problem whose right operation is known
(a target that only a dilation-3 operation reaches on one input and only a dilation-2 one on the
other) alpha moves to those operations, the entropy of softmax(alpha) falls and the genotype settles;
one step of each method equals the SGD update computed with tf.GradientTape, which also shows what
data each variable learns from (DARTS: alpha from the validation batch only, w from the training
batch only; MiLeNAS: alpha from grad_train + beta grad_val); each optimiser touches only its own variables."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.layers import SearchCell, derive_genotype, edge_count
from fastmri_zoo.models import NasNet
from fastmri_zoo.search import ArchitectureSearch, search, softmax_entropy
from tests.models.conftest import make_inputs

#: separable 3x3 convolutions reaching offsets 0, 1 / 0, 2 / 0, 3 along each axis, and 'none'
SHIFT_SPACE = ["sep_conv_3x3", "dil2_sep_conv_3x3", "dil3_sep_conv_3x3", "none"]


class ShiftProblem(keras.Model):
    """A search cell of one node (two edges: from input ``a`` and from input ``b``) and its logits,
    following the searchable-model protocol of fastmri_zoo.search; the output is the node's first channel."""

    def __init__(self, channels=4):
        super().__init__()
        self.search_space, self.n_nodes = SHIFT_SPACE, 1
        self.cell = SearchCell(1, channels, SHIFT_SPACE)
        self.alpha = self.add_weight(shape=(edge_count(1), len(SHIFT_SPACE)), name="alpha",
                                     initializer=keras.initializers.RandomNormal(stddev=1e-3))

    @property
    def architecture_weights(self):
        return [self.alpha]

    @property
    def network_weights(self):
        return [v for v in self.trainable_weights if v is not self.alpha]

    def derived_genotype(self):
        return derive_genotype(self.alpha.numpy(), self.search_space, self.n_nodes)

    def call(self, inputs):
        return self.cell(inputs["a"], inputs["b"], self.alpha)[..., :1]


def shift_batches(seed, batch=4, size=16):
    """target(i, j) = a(i + 3, j) + b(i + 2, j) (zero beyond the border), a and b uniform in [0, 1):
    on the edge from a only the dilation-3 operation has a tap at offset 3, on the edge from b only
    the dilation-2 one has a tap at offset 2."""
    rng = np.random.default_rng(seed)
    while True:
        a, b = (rng.uniform(size=(batch, size, size, 1)).astype(np.float32) for _ in range(2))
        target = np.zeros_like(a)
        target[:, :-3] += a[:, 3:]
        target[:, :-2] += b[:, 2:]
        yield {"a": a, "b": b}, target


def np_entropy(alpha):
    weights = np.exp(alpha - alpha.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    return float(np.mean([-sum(w * np.log(w) for w in row) for row in weights]))


def run_shift_search(method, patience=None, steps=600):
    keras.utils.set_random_seed(0)
    model = ShiftProblem()
    result = search(model, shift_batches(1), shift_batches(2), method=method, steps=steps, steps_per_epoch=20,
                    patience=patience, learning_rate=3e-3, alpha_learning_rate=3e-2)
    return model, result


@pytest.mark.parametrize("method", ["darts", "milenas"])
def test_alpha_moves_to_the_operations_the_target_needs(method):
    model, result = run_shift_search(method)
    weights = tf.nn.softmax(model.alpha).numpy()
    assert weights[0].argmax() == SHIFT_SPACE.index("dil3_sep_conv_3x3") and weights[0].max() > 0.9
    assert weights[1].argmax() == SHIFT_SPACE.index("dil2_sep_conv_3x3") and weights[1].max() > 0.9
    assert result.genotype.to_config() == [[["dil3_sep_conv_3x3", 0], ["dil2_sep_conv_3x3", 1]]]
    assert result.stopped == "steps" and result.steps == 600 and len(result.history) == 31
    # the recorded entropy is the numpy one of the recorded alpha, and it falls from log(4) to near 0
    entropy = np.array([entry.entropy for entry in result.history])
    np.testing.assert_allclose(entropy, [np_entropy(entry.alpha.astype(np.float64)) for entry in result.history],
                               rtol=1e-6)
    assert abs(entropy[0] - np.log(4)) < 1e-5 and entropy[-1] < 0.2 * entropy[0]
    assert entropy[-5:].max() < entropy[:5].min()
    # the recorded genotype is DARTS' rule on the recorded alpha; it stops changing
    assert all(entry.genotype == derive_genotype(entry.alpha, SHIFT_SPACE, 1) for entry in result.history)
    assert all(entry.genotype == result.genotype for entry in result.history[-15:])
    # and the network learned the target: the L1 loss is far below that of predicting zero (mean |target| ~ 0.9)
    assert result.history[-1].val_loss < 0.05


def test_the_search_stops_once_the_genotype_is_unchanged_for_patience_epochs():
    patience = 3
    _, result = run_shift_search("darts", patience=patience)
    genotypes = [entry.genotype for entry in result.history]
    # the first epoch end whose genotype equals that of the `patience` epoch ends before it
    first_settled = next(e for e in range(patience, len(genotypes))
                         if all(g == genotypes[e] for g in genotypes[e - patience : e]))
    assert result.stopped == "patience" and len(genotypes) - 1 == first_settled
    assert result.steps == 20 * first_settled < 600
    assert [entry.step for entry in result.history] == [20 * e for e in range(first_settled + 1)]


def test_softmax_entropy_closed_form():
    assert softmax_entropy(np.zeros((3, 5))) == pytest.approx(np.log(5))
    assert softmax_entropy(np.array([[60.0, 0, 0], [0, 0, 60.0]])) == pytest.approx(0.0, abs=1e-20)
    alpha = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    assert softmax_entropy(alpha) == pytest.approx(np_entropy(alpha), rel=1e-12)
    assert softmax_entropy([alpha[:1], alpha[1:]]) == pytest.approx(np_entropy(alpha), rel=1e-12)


# ------------------------------------------------------------------ one step against tf.GradientTape


class RecordingSGD(keras.optimizers.SGD):
    """Plain SGD that records the variables each of its updates touches."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.touched = []

    def apply(self, grads, trainable_variables=None):
        self.touched.append(sorted(v.path for v in trainable_variables))
        return super().apply(grads, trainable_variables)


def nasnet_batch(rng):
    image, inputs = make_inputs(rng, multicoil=False)
    return inputs, np.abs(image).astype(np.float32)


def l1(model, batch):
    """The L1 loss written independently: mean | |model(inputs)| - target | (equal-size images)."""
    inputs, target = batch
    return tf.reduce_mean(tf.abs(tf.abs(model(inputs)) - target))


def gradients(model, batch, variables):
    with tf.GradientTape() as tape:
        loss = l1(model, batch)
    return [g.numpy() for g in tape.gradient(loss, variables)]


def searchable_nasnet():
    keras.utils.set_random_seed(3)
    model = NasNet(n_iter=1, n_cells=1, n_filters=3, n_nodes=2, search_space="A")
    model.build(None)
    # logits away from zero, so that every operation weighs differently
    model.alpha.assign(np.random.default_rng(4).standard_normal(model.alpha.shape).astype(np.float32))
    return model


def assert_update(before, after, learning_rate, gradient, scale):
    """(before - after) / learning_rate == gradient, up to 1e-4 of ``scale`` (the largest gradient of
    the update: some variables, e.g. the bias of the output convolution, whose constant image data
    consistency replaces, have gradients at the level of float32 noise) and the float32 rounding of ``after``."""
    update = (np.asarray(before, np.float64) - np.asarray(after, np.float64)) / learning_rate
    rounding = 4 * np.finfo(np.float32).eps * np.abs(after).max() / learning_rate
    np.testing.assert_allclose(update, gradient, rtol=1e-3, atol=1e-4 * scale + rounding)


@pytest.mark.parametrize("method", ["darts", "milenas"])
def test_one_step_is_the_sgd_update_of_the_right_gradients(method, rng):
    model = searchable_nasnet()
    train, val = nasnet_batch(rng), nasnet_batch(rng)
    alpha = model.alpha
    network = model.network_weights
    assert alpha.path not in {v.path for v in network} and len(network) + 1 == len(model.trainable_weights)
    # large steps, so that the updates stand well above the float32 rounding of the weights
    network_rate, alpha_rate, beta = 100.0, 10.0, 0.7
    network_optimizer, architecture_optimizer = RecordingSGD(learning_rate=network_rate), RecordingSGD(
        learning_rate=alpha_rate)
    searcher = ArchitectureSearch(model, method, beta=beta, network_optimizer=network_optimizer,
                                  architecture_optimizer=architecture_optimizer)
    alpha_before = alpha.numpy()
    network_before = [v.numpy() for v in network]
    alpha_val = gradients(model, val, [alpha])[0]
    alpha_train = gradients(model, train, [alpha])[0]
    network_train = gradients(model, train, network)

    losses = searcher.step(train, val)

    if method == "milenas":
        # both updates from the same point; alpha's gradient mixes the two splits
        expected_alpha = alpha_train + beta * alpha_val
        assert_update(alpha_before, alpha.numpy(), alpha_rate, expected_alpha, np.abs(expected_alpha).max())
        expected_network = network_train
        assert losses["train_loss"] == pytest.approx(float(l1_at(model, train, network_before, alpha_before)), rel=1e-5)
    else:
        # alpha from the validation batch alone, then w from the training batch at the new alpha
        assert_update(alpha_before, alpha.numpy(), alpha_rate, alpha_val, np.abs(alpha_val).max())
        assert np.abs(alpha_val - alpha_train).max() > 0.1 * np.abs(alpha_val).max()  # the splits differ
        alpha_after, network_after = alpha.numpy(), [v.numpy() for v in network]
        for variable, value in zip(network, network_before):
            variable.assign(value)
        expected_network = gradients(model, train, network)  # at (w0, alpha1)
        for variable, value in zip(network, network_after):
            variable.assign(value)
        assert losses["train_loss"] == pytest.approx(float(l1_at(model, train, network_before, alpha_after)), rel=1e-5)
    scale = max(np.abs(gradient).max() for gradient in expected_network)
    assert scale > 0
    for variable, before, gradient in zip(network, network_before, expected_network):
        assert_update(before, variable.numpy(), network_rate, gradient, scale)
    assert losses["val_loss"] == pytest.approx(float(l1_at(model, val, network_before, alpha_before)), rel=1e-5)
    # each optimiser updated its own variables only, once
    assert architecture_optimizer.touched == [[alpha.path]]
    assert network_optimizer.touched == [sorted(v.path for v in network)]


def l1_at(model, batch, network_values, alpha_value):
    """The loss of ``batch`` at the given weights (the model's weights are put back afterwards)."""
    variables = model.network_weights + [model.alpha]
    saved = [v.numpy() for v in variables]
    for variable, value in zip(variables, [*network_values, alpha_value]):
        variable.assign(value)
    loss = l1(model, batch)
    for variable, value in zip(variables, saved):
        variable.assign(value)
    return loss


def test_bad_arguments_fail_with_their_names():
    model = searchable_nasnet()
    with pytest.raises(ValueError, match="method"):
        ArchitectureSearch(model, "enas")
    with pytest.raises(ValueError, match="beta"):
        ArchitectureSearch(model, "milenas", beta=-1)
    discrete = NasNet(**NasNet.small_config())
    discrete.build(None)
    with pytest.raises(ValueError, match="architecture weights"):
        ArchitectureSearch(discrete)
    with pytest.raises(ValueError, match="built"):
        ArchitectureSearch(NasNet(n_iter=1, n_cells=1, n_filters=2, n_nodes=1))
    for key, value in (("steps", 0), ("steps_per_epoch", -1), ("patience", 0)):
        with pytest.raises(ValueError, match=key):
            search(model, shift_batches(0), shift_batches(1), **{"steps": 5, key: value})
