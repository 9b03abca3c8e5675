"""ReconODE's own checks (the generic ones come from tests/models/families.py).

Parameter counts against the paper's (sec. 2.4, Table 1), data consistency against a numpy FFT,
the adjoint-trained model against backpropagation through the same solver, and checkpointing
against no checkpointing (same gradients); single-coil, multicoil SENSE and non-Cartesian inputs.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.models import ReconODE
from tests.models.conftest import inputs_for, make_inputs, make_noncartesian_inputs, np_fftc

SMALL = dict(n_iter=2, n_layers=3, n_filters=8)


def _model(**kwargs):
    keras.utils.set_random_seed(0)
    model = ReconODE(**{**SMALL, **kwargs})
    model.build(None)
    return model


def _loss_and_gradients(model, inputs, target, graph=True):
    inputs = {key: tf.convert_to_tensor(value) for key, value in inputs.items()}
    target = tf.convert_to_tensor(target, tf.float32)

    def step(inputs):
        with tf.GradientTape() as tape:
            output = model(inputs, training=True)
            loss = tf.reduce_mean(tf.abs(tf.abs(output) - target))
        return output, tape.gradient(loss, model.trainable_variables)

    output, gradients = (tf.function(step) if graph else step)(inputs)
    return output.numpy(), np.concatenate([g.numpy().ravel() for g in gradients])


@pytest.mark.parametrize(
    "mode,solver,expected",
    [("ft", "rk4", 0.03e6), ("fa", "euler", 0.03e6), ("lt", "rk2", 0.09e6), ("lt", "rk4", 0.15e6)],
)
def test_parameter_counts_match_the_paper(mode, solver, expected):
    model = ReconODE(mode=mode, solver=solver)
    model.build(None)
    assert abs(model.count_params() - expected) / expected < 0.15, model.count_params()


def test_lt_euler_rk2_rk4_grow_by_one_stage_block_each():
    counts = {}
    for solver in ("euler", "rk2", "rk4"):
        model = ReconODE(mode="lt", solver=solver)
        model.build(None)
        counts[solver] = model.count_params()
    dynamics = ReconODE(mode="ft")
    dynamics.build(None)
    # each stage is one 5 x 32 time-dependent CNN (a few more input channels for later stages)
    per_stage = (counts["rk4"] - counts["rk2"]) / 2
    assert abs(per_stage - dynamics.count_params()) / dynamics.count_params() < 0.1
    assert counts["euler"] < counts["rk2"] < counts["rk4"]


@pytest.mark.parametrize("mode,solver", [("ft", "rk2"), ("fa", "euler"), ("lt", "rk4")])
def test_output_keeps_the_measured_kspace(rng, mode, solver):
    _, inputs = make_inputs(rng, multicoil=False)
    model = _model(mode=mode, solver=solver)
    output = model(inputs).numpy()
    sampled = np.broadcast_to(inputs["mask"], output.shape) > 0
    np.testing.assert_allclose(np_fftc(output)[sampled], inputs["kspace"][sampled], atol=1e-4)
    # and the network changed the rest (a model that returned the zero-filled image would fail)
    assert np.abs(np_fftc(output)[~sampled]).max() > 1e-3


def test_adjoint_training_matches_backpropagation(rng):
    # the same forward pass; the adjoint's gradients are those of the exact flow of each step
    # (O(h^p) from backpropagation's): close with RK4, much further with Euler at h = 1/2
    target, inputs = inputs_for(_model(), rng)
    gaps = {}
    for solver in ("euler", "rk4"):
        ft = _model(mode="ft", solver=solver)
        fa = _model(mode="fa", solver=solver)
        fa.set_weights(ft.get_weights())
        out_ft, grad_ft = _loss_and_gradients(ft, inputs, target)
        out_fa, grad_fa = _loss_and_gradients(fa, inputs, target)
        np.testing.assert_allclose(out_fa, out_ft, rtol=1e-5, atol=1e-6)
        assert np.linalg.norm(grad_ft) > 0
        gaps[solver] = np.linalg.norm(grad_fa - grad_ft) / np.linalg.norm(grad_ft)
    assert gaps["rk4"] < 0.05 and gaps["rk4"] < gaps["euler"] / 4, gaps


@pytest.mark.parametrize(
    "mode,solver,multicoil,graph",
    [
        ("lt", "rk4", False, False),
        ("fa", "rk4", False, False),
        ("ft", "rk2", False, True),
        pytest.param("lt", "rk2", True, True, marks=pytest.mark.slow),
    ],
)
def test_checkpointing_changes_no_gradient(rng, mode, solver, multicoil, graph):
    target, inputs = inputs_for(_model(multicoil=multicoil), rng)
    plain = _model(mode=mode, solver=solver, multicoil=multicoil)
    checkpointed = _model(mode=mode, solver=solver, multicoil=multicoil, checkpointing=True)
    checkpointed.set_weights(plain.get_weights())
    out, gradients = _loss_and_gradients(plain, inputs, target, graph)
    out_ck, gradients_ck = _loss_and_gradients(checkpointed, inputs, target, graph)
    np.testing.assert_allclose(out_ck, out, atol=1e-6)
    np.testing.assert_allclose(gradients_ck, gradients, atol=1e-6 * np.abs(gradients).max())
    assert np.abs(gradients).max() > 0


def test_multicoil_output_fits_the_measurements(rng):
    image, inputs = make_inputs(rng, multicoil=True)
    output = _model(mode="lt", solver="rk2", multicoil=True)(inputs).numpy()
    # SENSE data consistency (10 conjugate-gradient steps on A^H A x = A^H y from the step's estimate)
    residual = np_fftc(output[:, None] * inputs["smaps"]) * inputs["mask"][:, None] - inputs["kspace"]
    assert np.linalg.norm(residual) < 0.05 * np.linalg.norm(inputs["kspace"])
    zero_filled = (np.conj(inputs["smaps"]) * np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(
        inputs["kspace"], axes=(-2, -1)), norm="ortho"), axes=(-2, -1))).sum(1)
    assert np.abs(output - zero_filled).max() > 1e-3


@pytest.mark.parametrize("mode", ["fa", "lt"])
def test_eager_equals_graph(rng, mode):
    target, inputs = inputs_for(_model(), rng)
    model = _model(mode=mode, solver="rk2")
    out_eager, grad_eager = _loss_and_gradients(model, inputs, target, graph=False)
    out_graph, grad_graph = _loss_and_gradients(model, inputs, target, graph=True)
    np.testing.assert_allclose(out_graph, out_eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad_graph, grad_eager, rtol=1e-4, atol=1e-6 * np.abs(grad_eager).max())


def test_non_cartesian_acquisition_and_config_round_trip(rng):
    options = dict(image_shape=[16, 16])
    model = _model(mode="fa", solver="euler", acquisition="noncartesian", acquisition_options=options)
    target, inputs = make_noncartesian_inputs(rng, multicoil=False, batch=1)
    out, gradients = _loss_and_gradients(model, inputs, target, graph=False)
    assert out.shape == target.shape and np.isfinite(out).all() and np.abs(gradients).max() > 0
    config = json.loads(json.dumps(model.get_config()))
    restored = ReconODE.from_config(config)
    restored.build(None)
    restored.set_weights(model.get_weights())
    assert restored.acquisition == model.acquisition
    np.testing.assert_allclose(restored(inputs).numpy(), model(inputs).numpy(), atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        ReconODE(mode="adjoint")
    with pytest.raises(ValueError, match="solver"):
        ReconODE(solver="rk3")
    with pytest.raises(ValueError, match="n_iter"):
        ReconODE(n_iter=0)


def test_frozen_dynamics_layers_under_the_adjoint(rng):
    # a frozen (non-trainable) layer: the adjoint passes its weights as constants, the output is
    # unchanged and the other weights still get the same gradients
    target, inputs = inputs_for(_model(), rng)
    model = _model(mode="fa", solver="rk2")
    reference, all_gradients = _loss_and_gradients(model, inputs, target, graph=False)
    model.dynamics.time_convs[0].trainable = False
    out, gradients = _loss_and_gradients(model, inputs, target, graph=False)
    np.testing.assert_allclose(out, reference, atol=1e-6)
    first_layer = sum(int(np.prod(v.shape)) for v in model.dynamics.time_convs[0].weights)
    assert gradients.size == all_gradients.size - first_layer
    np.testing.assert_allclose(gradients, all_gradients[first_layer:], rtol=1e-5, atol=1e-7)
