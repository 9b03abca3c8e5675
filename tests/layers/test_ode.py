"""Neural-ODE blocks (fastmri_zoo.layers.ode) against closed forms, finite differences and numpy.

- the tableau solvers' orders of accuracy on dx/dt = A x (closed form expm(A t) x0);
- the continuous adjoint: its gradients converge to those of backpropagation through the solver
  as the step shrinks, at least as fast as the solver's order; on a linear ODE it converges to the
  exact gradient expm(A)^T c; against central finite differences of the solution;
- the time-dependent convolution against a numpy correlation with the time channel;
- the learned solver's stages (dilations decreasing, inputs growing) and its attention weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy.linalg import expm

from fastmri_zoo.layers.ode import (
    TABLEAUS,
    LearnedSolverStep,
    TimeConv,
    TimeDependentCNN,
    get_tableau,
    odeint,
    odeint_adjoint,
    rk_step,
)

#: a damped rotation: solutions oscillate and decay, no step size hits an exact solution
A = np.array([[-0.3, 2.0], [-2.0, -0.3]])
X0 = np.array([[1.0, -0.5]])
STEPS = np.array([16, 32, 64, 128])


def slope(steps, errors) -> float:
    """The log-log slope of the errors against the step size 1 / steps."""
    return float(np.polyfit(np.log(1.0 / np.asarray(steps)), np.log(errors), 1)[0])


@pytest.mark.parametrize("solver", ["euler", "rk2", "rk4"])
def test_solver_order_on_a_linear_ode(solver):
    exact = X0 @ expm(A).T
    errors = []
    for n in STEPS:
        x1 = odeint(lambda x, t: x @ A.T, tf.constant(X0), 0.0, 1.0, int(n), solver).numpy()
        errors.append(np.abs(x1 - exact).max())
    assert abs(slope(STEPS, errors) - TABLEAUS[solver].order) < 0.3, errors


def test_one_step_of_each_tableau_against_its_formula():
    # dx/dt = t x^2: stages by hand (Euler, Heun, classic RK4) from x = 0.7, t = 0.2, h = 0.1
    def f(x, t):
        return t * x * x

    x, t, h = 0.7, 0.2, 0.1
    euler = x + h * f(x, t)
    k1 = f(x, t)
    heun = x + h / 2 * (k1 + f(x + h * k1, t + h))
    k2 = f(x + h / 2 * k1, t + h / 2)
    k3 = f(x + h / 2 * k2, t + h / 2)
    k4 = f(x + h * k3, t + h)
    rk4 = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    for solver, expected in (("euler", euler), ("rk2", heun), ("rk4", rk4)):
        got = rk_step(f, tf.constant(x, tf.float64), t, h, solver).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-14)


def test_backwards_integration_and_nested_states():
    # (x, y) with dx/dt = y, dy/dt = -x from t = 1 back to t = 0: cos / sin, as a tuple state
    x1, y1 = np.cos(1.0), -np.sin(1.0)
    x0, y0 = odeint(lambda s, t: (s[1], -s[0]), (tf.constant(x1, tf.float64), tf.constant(y1, tf.float64)),
                    1.0, 0.0, 64, "rk4")
    np.testing.assert_allclose([x0.numpy(), y0.numpy()], [1.0, 0.0], atol=1e-8)


def test_bad_solver_and_steps():
    with pytest.raises(ValueError, match="solver"):
        get_tableau("rk3")
    with pytest.raises(ValueError, match="n_steps"):
        odeint(lambda x, t: x, tf.ones(2), 0.0, 1.0, 0)


# --------------------------------------------------------------------------- the adjoint


def _nonlinear(x, t, args):
    weight, bias = args
    return tf.tanh(x @ weight + bias * t)


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    weight = tf.constant(0.8 * rng.standard_normal((4, 4)))
    bias = tf.constant(rng.standard_normal(4))
    x0 = tf.constant(rng.standard_normal((3, 4)))
    weights_of_loss = tf.constant(rng.standard_normal((3, 4)))
    return x0, [weight, bias], weights_of_loss


def _gradients(x0, args, c, n, solver, adjoint):
    with tf.GradientTape() as tape:
        tape.watch([x0] + args)
        if adjoint:
            x1 = odeint_adjoint(_nonlinear, x0, args, 0.0, 1.0, n, solver)
        else:
            x1 = odeint(lambda x, t: _nonlinear(x, t, args), x0, 0.0, 1.0, n, solver)
        loss = tf.reduce_sum(c * x1)
    return x1, np.concatenate([g.numpy().ravel() for g in tape.gradient(loss, [x0] + args)])


@pytest.mark.parametrize("solver", ["euler", "rk2", "rk4"])
def test_adjoint_gradients_converge_to_backpropagation_with_the_solver_order(solver):
    x0, args, c = _problem()
    steps = [4, 8, 16, 32]
    gaps = []
    for n in steps:
        forward, backprop = _gradients(x0, args, c, n, solver, adjoint=False)
        x1, adjoint = _gradients(x0, args, c, n, solver, adjoint=True)
        np.testing.assert_array_equal(x1.numpy(), forward.numpy())  # the same forward solve
        gaps.append(np.linalg.norm(adjoint - backprop) / np.linalg.norm(backprop))
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps
    assert slope(steps, gaps) > TABLEAUS[solver].order - 0.3, gaps


def test_adjoint_gradient_against_finite_differences():
    # directional derivatives of the solution's loss along random directions (x0, weight, bias)
    x0, args, c = _problem(1)
    _, adjoint = _gradients(x0, args, c, 32, "rk4", adjoint=True)

    def loss(values):
        x0_, weight, bias = np.split(values, [12, 28])
        x1 = odeint(lambda x, t: _nonlinear(x, t, [tf.constant(weight.reshape(4, 4)), tf.constant(bias)]),
                    tf.constant(x0_.reshape(3, 4)), 0.0, 1.0, 32, "rk4")
        return float(tf.reduce_sum(c * x1))

    point = np.concatenate([x0.numpy().ravel()] + [a.numpy().ravel() for a in args])
    directions = np.random.default_rng(2).standard_normal((6, point.size))
    eps = 1e-6
    numeric = [(loss(point + eps * v) - loss(point - eps * v)) / (2 * eps) for v in directions]
    np.testing.assert_allclose(directions @ adjoint, numeric, rtol=1e-6)


@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_adjoint_of_a_linear_ode_converges_to_the_exact_gradient(solver):
    # L = <c, x(1)>, x(1) = expm(A) x0: dL/dx0 = expm(A)^T c exactly
    c = np.array([[0.3, 1.2]])
    exact = c @ expm(A)
    errors = []
    for n in STEPS:
        x0 = tf.constant(X0)
        with tf.GradientTape() as tape:
            tape.watch(x0)
            x1 = odeint_adjoint(lambda x, t, args: x @ args[0], x0, [tf.constant(A.T)], 0.0, 1.0, int(n), solver)
            loss = tf.reduce_sum(c * x1)
        errors.append(np.abs(tape.gradient(loss, x0).numpy() - exact).max())
    assert abs(slope(STEPS, errors) - TABLEAUS[solver].order) < 0.3, errors


def test_adjoint_solves_backwards_with_the_same_steps():
    # s N evaluations of f forward, s N evaluations of the augmented dynamics backwards
    calls = []

    def counted(x, t, args):
        calls.append(t)
        return _nonlinear(x, t, args)

    x0, args, c = _problem()
    with tf.GradientTape() as tape:
        tape.watch(x0)
        loss = tf.reduce_sum(c * odeint_adjoint(counted, x0, args, 0.0, 1.0, 3, "rk4"))
    assert len(calls) == 12
    tape.gradient(loss, x0)
    assert len(calls) == 24
    # backwards from t = 1: the first backward stage is evaluated at t1, the last at t0
    assert calls[12] == pytest.approx(1.0) and calls[-1] == pytest.approx(0.0)


def test_adjoint_in_a_graph_equals_eager():
    x0, args, c = _problem()

    def gradients(x0, weight, bias):
        with tf.GradientTape() as tape:
            tape.watch([x0, weight, bias])
            loss = tf.reduce_sum(c * odeint_adjoint(_nonlinear, x0, [weight, bias], 0.0, 1.0, 4, "rk2"))
        return tape.gradient(loss, [x0, weight, bias])

    eager = gradients(x0, *args)
    graph = tf.function(gradients)(x0, *args)
    for e, g in zip(eager, graph):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-12)


def test_a_chained_sequence_has_the_gradient_of_the_unchained_one():
    # three calls sharing args with a non-linear map between them (as data consistency sits between
    # cascades): passing args on (chain=True) sums their gradient in the backward solves; TensorFlow's
    # own sum of the three contributions (chain=False) is the reference, eager and in a graph
    x0, args, c = _problem(seed=3)

    def gradients(x0, weight, bias, chain):
        with tf.GradientTape() as tape:
            tape.watch([x0, weight, bias])
            x, carried = x0, [weight, bias]
            for i in range(3):
                if chain:
                    x, carried = odeint_adjoint(_nonlinear, x, carried, i / 3, (i + 1) / 3, 2, "rk4", chain=True)
                else:
                    x = odeint_adjoint(_nonlinear, x, [weight, bias], i / 3, (i + 1) / 3, 2, "rk4")
                x = tf.sin(x)
            loss = tf.reduce_sum(c * x)
        return tape.gradient(loss, [x0, weight, bias])

    x1, carried = odeint_adjoint(_nonlinear, x0, args, 0.0, 1.0, 2, "rk4", chain=True)
    np.testing.assert_array_equal(x1.numpy(), odeint_adjoint(_nonlinear, x0, args, 0.0, 1.0, 2, "rk4").numpy())
    for passed, arg in zip(carried, args):
        np.testing.assert_array_equal(passed.numpy(), arg.numpy())
    for run in (gradients, tf.function(gradients)):
        chained, summed = run(x0, *args, True), run(x0, *args, False)
        for a, b in zip(chained, summed):
            assert np.abs(b.numpy()).max() > 1e-3
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- layers


def _correlate(x, kernel, bias, dilation):
    """numpy "same" correlation, channels last, odd kernel, dilation."""
    k = kernel.shape[0]
    pad = dilation * (k // 2)
    padded = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for i in range(k):
        for j in range(k):
            window = padded[:, i * dilation : i * dilation + x.shape[1], j * dilation : j * dilation + x.shape[2]]
            out += window @ kernel[i, j]
    return out + bias


@pytest.mark.parametrize("dilation", [1, 2])
def test_time_conv_against_numpy(rng, dilation):
    layer = TimeConv(5, 3, dilation_rate=dilation)
    layer.build((None, None, None, 3))
    layer.time_weight.assign(0.7)
    layer.time_bias.assign(-0.2)
    layer.conv.bias.assign(rng.standard_normal(5).astype(np.float32))
    x = rng.standard_normal((2, 9, 7, 3)).astype(np.float32)
    t = 0.35
    channel = np.full((2, 9, 7, 1), 0.7 * t - 0.2, np.float32)
    expected = _correlate(np.concatenate([x, channel], -1), layer.conv.kernel.numpy(), layer.conv.bias.numpy(), dilation)
    np.testing.assert_allclose(layer(x, t=t).numpy(), expected, rtol=1e-5, atol=1e-5)
    # one time per batch item
    times = np.array([0.1, 0.9], np.float32)
    per_item = layer(x, t=times).numpy()
    for b in range(2):
        np.testing.assert_allclose(per_item[b : b + 1], layer(x[b : b + 1], t=float(times[b])).numpy(), rtol=1e-6,
                                   atol=1e-6)  # float32 round-off of a batch of 2 against 1 (oneDNN blocks them apart)


def test_time_dependent_cnn_size():
    # 5 layers of 32 channels on (x, data) = 4 channels + the time channel: 3x3 kernels, biases, time maps
    net = TimeDependentCNN(n_outputs=2, n_layers=5, n_filters=32)
    net.build((None, None, None, 4))
    expected = (9 * 5 * 32 + 32) + 3 * (9 * 33 * 32 + 32) + (9 * 33 * 2 + 2) + 5 * 2
    assert net.count_params() == expected
    assert abs(expected - 30_000) / 30_000 < 0.15


def test_learned_solver_stages_and_attention(rng):
    step = LearnedSolverStep(stages=4, n_layers=2, n_filters=4)
    step.build((None, None, None, 2))
    assert [net.dilation_rate for net in step.stage_nets] == [4, 3, 2, 1]
    # stage i sees x_n, the i earlier stages and the data: 2 (i + 2) channels, plus time
    assert [net.time_convs[0].conv.kernel.shape[2] for net in step.stage_nets] == [5, 7, 9, 11]
    assert step.attention.time_convs[0].conv.kernel.shape[2] == 2 * 5 + 1
    x = rng.standard_normal((1, 8, 8, 2)).astype(np.float32)
    data = rng.standard_normal((1, 8, 8, 2)).astype(np.float32)
    # every stage a constant slope s_i (only the last bias): attention weights sum to 1, so
    # with equal slopes the step is x + h s whatever the attention says
    for net in step.stage_nets:
        for variable in net.weights:
            variable.assign(np.zeros(variable.shape, np.float32))
        net.time_convs[-1].conv.bias.assign([0.5, -1.0])
    step.attention.time_convs[-1].conv.bias.assign([3.0, -1.0, 0.0, 2.0])
    np.testing.assert_allclose(step(x, data, t=0.2, h=0.25).numpy(), x + 0.25 * np.array([0.5, -1.0]), atol=1e-6)
    # distinct slopes: the softmax of the attention's output weights them
    slopes = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0], [3.0, 3.0]], np.float32)
    for net, value in zip(step.stage_nets, slopes):
        net.time_convs[-1].conv.bias.assign(value)
    for variable in step.attention.weights:
        variable.assign(np.zeros(variable.shape, np.float32))
    logits = np.array([3.0, -1.0, 0.0, 2.0])
    step.attention.time_convs[-1].conv.bias.assign(logits)
    alpha = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(step(x, data, t=0.2, h=0.25).numpy(), x + 0.25 * alpha @ slopes, atol=1e-6)
