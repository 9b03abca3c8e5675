"""RAdam and Lookahead step by step against numpy transcriptions of the published rules."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.training.optimizers import Lookahead, RAdam, get_optimizer

STEPS = 20


def quadratic_problem(rng):
    """f(x) = 1/2 x^T A x - b^T x for two variables (a 3-vector and a 2x2 matrix, flattened together)."""
    n = 7
    q = rng.standard_normal((n, n))
    a = q @ q.T / n + np.eye(n)
    b = rng.standard_normal(n)
    x0 = rng.standard_normal(n)
    return a, b, x0


def gradient(a, b, x):
    return a @ x - b


class NumpyRAdam:
    """Liu et al. 2020, Algorithm 2, with epsilon added to sqrt(v_t) as in Adam."""

    def __init__(self, lr, beta_1=0.9, beta_2=0.999, eps=1e-7, threshold=4.0):
        self.lr, self.b1, self.b2, self.eps, self.threshold = lr, beta_1, beta_2, eps, threshold
        self.t = 0
        self.m = self.v = None
        self.branches = []

    def step(self, x, g):
        if self.m is None:
            self.m, self.v = np.zeros_like(x), np.zeros_like(x)
        self.t += 1
        t, b1, b2 = self.t, self.b1, self.b2
        self.m = b1 * self.m + (1 - b1) * g
        self.v = b2 * self.v + (1 - b2) * g * g
        m_hat = self.m / (1 - b1**t)
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho_t > self.threshold:
            l_t = np.sqrt(1 - b2**t) / (np.sqrt(self.v) + self.eps)
            r_t = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            self.branches.append("rectified")
            return x - self.lr * r_t * l_t * m_hat
        self.branches.append("momentum")
        return x - self.lr * m_hat


class NumpyAdam:
    """Kingma & Ba with Keras' epsilon placement (epsilon added to sqrt(v_t)). Keras' Adam
    casts its Python-float betas through float32 in the bias corrections (not in the moment
    updates), so the reference does the same."""

    def __init__(self, lr, beta_1=0.9, beta_2=0.999, eps=1e-7):
        self.lr, self.eps, self.b1, self.b2 = lr, eps, beta_1, beta_2
        self.b1_power, self.b2_power = float(np.float32(beta_1)), float(np.float32(beta_2))
        self.t, self.m, self.v = 0, None, None

    def step(self, x, g):
        if self.m is None:
            self.m, self.v = np.zeros_like(x), np.zeros_like(x)
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        alpha = self.lr * np.sqrt(1 - self.b2_power**self.t) / (1 - self.b1_power**self.t)
        return x - alpha * self.m / (np.sqrt(self.v) + self.eps)


class NumpySGD:
    def __init__(self, lr):
        self.lr = lr

    def step(self, x, g):
        return x - self.lr * g


class NumpyLookahead:
    """Zhang et al. 2019, Algorithm 1: k fast steps, then phi += alpha (theta - phi), theta = phi."""

    def __init__(self, inner, k, alpha):
        self.inner, self.k, self.alpha = inner, k, alpha
        self.t, self.slow = 0, None

    def step(self, x, g):
        if self.slow is None:
            self.slow = x.copy()
        self.t += 1
        x = self.inner.step(x, g)
        if self.t % self.k == 0:
            self.slow = self.slow + self.alpha * (x - self.slow)
            x = self.slow.copy()
        return x


def run_keras(optimizer, a, b, x0, steps=STEPS):
    """Two float64 variables (3 and 2x2) holding the 7 entries of x; eager apply_gradients."""
    first = keras.Variable(x0[:3].copy(), dtype="float64")
    second = keras.Variable(x0[3:].reshape(2, 2).copy(), dtype="float64")
    trajectory = []
    for _ in range(steps):
        x = np.concatenate([first.numpy(), second.numpy().ravel()])
        g = gradient(a, b, x)
        optimizer.apply_gradients([(tf.constant(g[:3]), first), (tf.constant(g[3:].reshape(2, 2)), second)])
        trajectory.append(np.concatenate([first.numpy(), second.numpy().ravel()]))
    return np.array(trajectory)


def run_numpy(reference, a, b, x0, steps=STEPS):
    x, trajectory = x0.copy(), []
    for _ in range(steps):
        x = reference.step(x, gradient(a, b, x))
        trajectory.append(x.copy())
    return np.array(trajectory)


@pytest.mark.parametrize("beta_2", [0.999, 0.9])
def test_radam_matches_published_update_step_by_step(rng, beta_2):
    a, b, x0 = quadratic_problem(rng)
    reference = NumpyRAdam(0.05, beta_2=beta_2)
    expected = run_numpy(reference, a, b, x0)
    actual = run_keras(RAdam(0.05, beta_2=beta_2), a, b, x0)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)
    # The 20 steps cover both branches: momentum warm-up (rho_t <= 4) then rectified steps.
    assert reference.branches[:4] == ["momentum"] * 4
    assert "rectified" in reference.branches
    assert not np.allclose(actual[-1], x0)


def test_radam_threshold_five_as_the_authors_code(rng):
    a, b, x0 = quadratic_problem(rng)
    reference = NumpyRAdam(0.05, threshold=5.0)
    expected = run_numpy(reference, a, b, x0)
    np.testing.assert_allclose(run_keras(RAdam(0.05, rho_threshold=5.0), a, b, x0), expected, atol=1e-6, rtol=0)
    # beta_2 = 0.999: rho_5 = 4.99 < 5, so step 5 is still a momentum step with this threshold.
    assert reference.branches[4] == "momentum" and reference.branches[5] == "rectified"


@pytest.mark.parametrize(
    "inner,reference_inner,k,alpha",
    [
        (lambda: keras.optimizers.SGD(0.1), lambda: NumpySGD(0.1), 6, 0.5),
        (lambda: keras.optimizers.Adam(0.05), lambda: NumpyAdam(0.05), 5, 0.8),
        (lambda: RAdam(0.05), lambda: NumpyRAdam(0.05), 3, 0.5),
    ],
    ids=["sgd", "adam", "radam"],
)
def test_lookahead_matches_published_update_step_by_step(rng, inner, reference_inner, k, alpha):
    a, b, x0 = quadratic_problem(rng)
    expected = run_numpy(NumpyLookahead(reference_inner(), k, alpha), a, b, x0)
    actual = run_keras(Lookahead(inner(), sync_period=k, slow_step_size=alpha), a, b, x0)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)
    # Lookahead changes the trajectory: it is not the inner optimizer alone.
    plain = run_numpy(reference_inner(), a, b, x0)
    assert np.abs(plain[-1] - expected[-1]).max() > 1e-3


def test_lookahead_in_graph_mode_matches_eager(rng):
    a, b, x0 = quadratic_problem(rng)
    expected = run_numpy(NumpyLookahead(NumpyRAdam(0.05), 4, 0.5), a, b, x0)
    variable = keras.Variable(x0.copy(), dtype="float64")
    optimizer = Lookahead(RAdam(0.05), sync_period=4, slow_step_size=0.5)
    a_t, b_t = tf.constant(a), tf.constant(b)

    @tf.function
    def step():
        g = tf.linalg.matvec(a_t, variable.value) - b_t
        optimizer.apply_gradients([(g, variable)])

    optimizer.build([variable])
    for _ in range(STEPS):
        step()
    np.testing.assert_allclose(variable.numpy(), expected[-1], atol=1e-6, rtol=0)


def test_lookahead_through_keras_fit_matches_the_published_update(rng):
    """Through compile / fit (whose symbolic build runs the optimizer's build in a stateless scope) the slow
    weights start at the model's weights, phi_0 = theta_0: the trajectory equals numpy's; with a zero learning
    rate the weights stay where they are (they were halved at the first synchronisation when phi_0 was 0)."""
    inputs = rng.standard_normal((8, 3))
    targets = rng.standard_normal((8, 1))
    w0 = rng.standard_normal((3, 1))

    def keras_fit(learning_rate, steps):
        # float64 by the layer's own dtype: a global policy set elsewhere in the session would override floatx
        model = keras.Sequential([keras.Input((3,), dtype="float64"), keras.layers.Dense(1, use_bias=False, dtype="float64")])
        model.set_weights([w0])
        model.compile(optimizer=Lookahead(keras.optimizers.SGD(learning_rate), sync_period=3, slow_step_size=0.5),
                      loss="mse")
        model.fit(np.repeat(inputs[None], steps, 0).reshape(-1, 3), np.repeat(targets[None], steps, 0).reshape(-1, 1),
                  batch_size=8, epochs=1, shuffle=False, verbose=0)
        assert model.weights[0].dtype == "float64"
        return model.get_weights()[0]

    np.testing.assert_array_equal(keras_fit(0.0, 6), w0)
    reference, w = NumpyLookahead(NumpySGD(0.1), 3, 0.5), w0.ravel().copy()
    for _ in range(7):
        w = reference.step(w, 2.0 / len(inputs) * inputs.T @ (inputs @ w - targets.ravel()))
    np.testing.assert_allclose(keras_fit(0.1, 7).ravel(), w, rtol=0, atol=1e-6)  # Keras reduces the loss in float32


def test_optimizers_serialise_and_keep_their_settings():
    radam = RAdam(3e-4, beta_1=0.8, beta_2=0.99, rho_threshold=5.0, clipnorm=1.0)
    again = keras.saving.deserialize_keras_object(json.loads(json.dumps(keras.saving.serialize_keras_object(radam))))
    assert isinstance(again, RAdam)
    assert again.get_config() == radam.get_config()
    lookahead = Lookahead(RAdam(1e-3, clipnorm=0.5), sync_period=5, slow_step_size=0.6)
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(lookahead)))
    rebuilt = keras.saving.deserialize_keras_object(config)
    assert isinstance(rebuilt, Lookahead) and isinstance(rebuilt.inner_optimizer, RAdam)
    assert rebuilt.sync_period == 5 and rebuilt.slow_step_size == 0.6
    assert rebuilt.clipnorm == 0.5  # the inner optimizer's clipping is applied by the wrapper
    assert float(rebuilt.learning_rate) == pytest.approx(1e-3)


def test_lookahead_state_round_trips_through_save_weights(tmp_path, rng):
    """Slow weights and the inner moments are optimizer variables: a restored run continues identically."""
    a, b, x0 = quadratic_problem(rng)

    def model_and_optimizer():
        inputs = keras.Input((1,))
        model = keras.Model(inputs, keras.layers.Dense(7, use_bias=False, name="x")(inputs))
        model.get_layer("x").kernel.assign(x0[None].copy())
        return model, Lookahead(RAdam(0.05), sync_period=4)

    def steps(model, optimizer, count):
        kernel = model.get_layer("x").kernel
        for _ in range(count):
            g = gradient(a, b, kernel.numpy()[0].astype(np.float64)).astype(np.float32)
            optimizer.apply_gradients([(tf.constant(g[None]), kernel)])

    model, optimizer = model_and_optimizer()
    model.optimizer = optimizer
    steps(model, optimizer, 6)
    model.save_weights(tmp_path / "state.weights.h5")
    steps(model, optimizer, 6)
    straight = model.get_layer("x").kernel.numpy()

    restored, optimizer2 = model_and_optimizer()
    restored.optimizer = optimizer2
    optimizer2.build(restored.trainable_variables)
    restored.load_weights(tmp_path / "state.weights.h5")
    assert int(optimizer2.iterations) == 6 and int(optimizer2.inner_optimizer.iterations) == 6
    steps(restored, optimizer2, 6)
    np.testing.assert_allclose(restored.get_layer("x").kernel.numpy(), straight, atol=1e-6)


def test_get_optimizer_names_and_errors():
    assert isinstance(get_optimizer("radam", 1e-3), RAdam)
    lookahead = get_optimizer("lookahead_radam", 2e-3, clipnorm=1.0)
    assert isinstance(lookahead, Lookahead) and isinstance(lookahead.inner_optimizer, RAdam)
    assert lookahead.clipnorm == 1.0 and float(lookahead.learning_rate) == pytest.approx(2e-3)
    adam = get_optimizer({"name": "adam", "beta_1": 0.5}, 1e-4)
    assert isinstance(adam, keras.optimizers.Adam) and adam.beta_1 == 0.5
    with pytest.raises(ValueError, match="optimizer"):
        get_optimizer("adamm")
    with pytest.raises(ValueError, match="beta_2"):
        RAdam(beta_2=1.0)
    with pytest.raises(ValueError, match="rho_threshold"):
        RAdam(rho_threshold=3.0)
    with pytest.raises(ValueError, match="sync_period"):
        Lookahead("sgd", sync_period=0)
    with pytest.raises(ValueError, match="use_ema"):
        Lookahead(keras.optimizers.SGD(use_ema=True))
