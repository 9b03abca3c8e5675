"""i-RIM and RIM: their own numbers (the generic checks come from tests/models/families.py).

The data step against numpy FFTs; the whole T = 8 i-RIM run backwards to its initial state;
invert-to-learn gradients against plain backpropagation of the same network (eager and traced,
2D, 3D, SENSE); networks whose learned parts are zero against the zero-filled image; parameter
counts in closed form; bad inputs rejected before any computation.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.layers.invertible import GradientCoupling
from fastmri_zoo.models import IRIM, RIM
from fastmri_zoo.training.losses import NMSELoss
from tests.conftest import crandn
from tests.models.conftest import make_inputs, np_fftc, np_ifftc

SMALL = dict(state_channels=6, hidden_channels=6, downsampling=[1, 2, 1])


def tensors(inputs):
    return {key: tf.convert_to_tensor(value) for key, value in inputs.items()}


def volume_inputs(rng, depth=3, size=8):
    """Single-coil 3D Cartesian inputs: a 3D FFT of a random volume, a column mask shared by the slices."""
    volume = crandn(rng, (1, depth, size, size))
    mask = np.zeros((1, 1, 1, size), np.float32)
    mask[..., ::2] = 1
    kspace = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(volume, axes=(-3, -2, -1)), axes=(-3, -2, -1), norm="ortho"),
                             axes=(-3, -2, -1))
    return volume, {"kspace": (kspace * mask).astype(np.complex64), "mask": mask}


def test_initial_state_and_data_step_match_numpy(rng):
    model = IRIM(n_iter=1, **SMALL)
    _, inputs = make_inputs(rng, multicoil=False)
    measurements, operator = model.operator(tensors(inputs))
    s0 = model.initial_state(measurements, operator).numpy()
    adjoint = np_ifftc(inputs["kspace"])
    np.testing.assert_allclose(s0[..., 0] + 1j * s0[..., 1], adjoint, atol=1e-5)
    assert s0.shape[-1] == 6 and not s0[..., 2:].any()
    s = rng.standard_normal(s0.shape).astype(np.float32)
    stepped = GradientCoupling(operator, measurements).call(s).numpy()
    x = s[..., 0] + 1j * s[..., 1]
    gradient = np_ifftc(np_fftc(x) * inputs["mask"] - inputs["kspace"])
    np.testing.assert_allclose(stepped[..., 2] + 1j * stepped[..., 3], s[..., 2] + 1j * s[..., 3] + gradient, atol=1e-5)
    np.testing.assert_array_equal(stepped[..., [0, 1, 4, 5]], s[..., [0, 1, 4, 5]])


def test_whole_irim_of_eight_steps_runs_backwards_to_its_initial_state(rng):
    keras.utils.set_random_seed(3)
    model = IRIM(n_iter=8, **SMALL)
    model.build(None)
    _, inputs = make_inputs(rng, multicoil=False, batch=1)
    measurements, operator = model.operator(tensors(inputs))
    s0 = model.initial_state(measurements, operator)
    s0 = s0 + tf.constant(rng.standard_normal(s0.shape).astype(np.float32))  # latent channels too
    stages = model.stages(measurements, operator)
    assert len(stages) == 8 * (1 + 3)
    s = s0
    for stage in stages:
        s = stage.call(s)
    assert np.abs(s - s0).max() > 0.5
    for stage in reversed(stages):
        s = stage.inverse(s)
    # float32 rounding at the states' scale (they grow to ~25 here), amplified through 24 couplings
    assert np.abs(s.numpy() - s0.numpy()).max() < 1e-4 * np.abs(s0.numpy()).max()


def gradient_pair(model_kwargs, inputs, target, traced, rng):
    keras.utils.set_random_seed(4)
    memory_free = IRIM(**model_kwargs, invert_to_learn=True)
    plain = IRIM(**model_kwargs, invert_to_learn=False)
    memory_free.build(None)
    plain.build(None)
    plain.set_weights(memory_free.get_weights())
    inputs, target = tensors(inputs), tf.convert_to_tensor(target)

    def gradients(model):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(model(inputs, training=True) - target) ** 2)
        return tape.gradient(loss, model.trainable_variables)

    run = (lambda model: tf.function(gradients)(model)) if traced else gradients
    return run(memory_free), run(plain)


# Tracing both networks takes most of a traced case's time: the 2D one runs by default (and
# tests/layers/test_invertible.py traces invert to learn in 2D and 3D), the others in the slow selection.
GRADIENT_CASES = [(case, traced) if case == "2d" or not traced else pytest.param(case, traced, marks=pytest.mark.slow)
                  for case in ("2d", "3d", "sense") for traced in (False, True)]


@pytest.mark.parametrize("case,traced", GRADIENT_CASES,
                         ids=[f"{c}-{'graph' if t else 'eager'}" for c in ("2d", "3d", "sense") for t in (False, True)])
def test_invert_to_learn_gradients_equal_backpropagation(rng, case, traced):
    if case == "3d":
        image, inputs = volume_inputs(rng)
        kwargs = dict(n_iter=2, ndim=3, **SMALL)
    else:
        image, inputs = make_inputs(rng, multicoil=case == "sense", batch=1)
        kwargs = dict(n_iter=2, multicoil=case == "sense", **SMALL)
    inverted, plain = gradient_pair(kwargs, inputs, image, traced, rng)
    assert len(inverted) == len(plain) and all(g is not None for g in inverted)
    errors = [np.linalg.norm(a - b) / np.linalg.norm(b) for a, b in zip(inverted, plain)]
    assert max(errors) < 1e-4, errors


def test_irim_with_zero_residuals_returns_zero_filled(rng):
    """With every G zero (gains of the up convolutions 0) each layer is U^T U = I, and the data steps
    never touch the image channels: the output is A^H y."""
    model = IRIM(n_iter=3, **SMALL)
    model.build(None)
    for net in model.image_nets:
        for layer in net.invertible_layers:
            gain = layer.coupling.residual.up.gain
            gain.assign(np.zeros(gain.shape, np.float32))
    _, inputs = make_inputs(rng, multicoil=False)
    np.testing.assert_allclose(model(inputs).numpy(), np_ifftc(inputs["kspace"]), atol=1e-5)


def test_irim_parameter_count_and_defaults():
    model = IRIM(n_iter=2, state_channels=8, hidden_channels=[4, 16], downsampling=[1, 4])
    model.build(None)

    def layer(c, h, d):  # Householder 3 x c; G as in tests/layers/test_invertible.py
        c1, c2 = c // 2, c - c // 2
        return 3 * c + (c1 * d * d * h + 2 * h) + (9 * h * h + 2 * h) + (h * d * d * 2 * c2 + 2 * c2)

    assert model.count_params() == 2 * (layer(8, 4, 1) + layer(8, 16, 4))
    default = IRIM()
    assert default.image_nets[0].downsampling == [1, 1, 2, 2, 4, 8, 8, 4, 2, 2, 1, 1]
    assert default.size_multiple == 8 and len(default.image_nets) == 8


def test_irim_3d_keeps_the_depth_and_matches_zero_filled_with_zero_residuals(rng):
    model = IRIM(n_iter=1, ndim=3, **SMALL)
    model.build(None)
    for layer in model.image_nets[0].invertible_layers:
        layer.coupling.residual.up.gain.assign(np.zeros(layer.coupling.residual.up.gain.shape, np.float32))
    _, inputs = volume_inputs(rng, depth=3)
    out = model(inputs).numpy()
    axes = (-3, -2, -1)
    zero_filled = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(inputs["kspace"], axes=axes), axes=axes, norm="ortho"),
                                  axes=axes)
    np.testing.assert_allclose(out, zero_filled, atol=1e-5)


def test_bad_inputs_rejected_before_any_computation(rng, monkeypatch):
    with pytest.raises(ValueError, match="state_channels"):
        IRIM(state_channels=3)
    model = IRIM(n_iter=1, state_channels=6, hidden_channels=4, downsampling=[1, 4])
    model.build(None)

    def computed(*args, **kwargs):
        raise AssertionError("the network ran on bad input")

    monkeypatch.setattr(model, "measurements_and_operator", computed)
    _, inputs = make_inputs(rng, multicoil=False)
    odd = {"kspace": inputs["kspace"][:, :30, :30], "mask": inputs["mask"][..., :30]}
    with pytest.raises(ValueError, match="multiples of 4"):
        model(odd)
    volume = IRIM(n_iter=1, ndim=3, **SMALL)
    with pytest.raises(ValueError, match="kspace"):
        volume(inputs)  # 2D single-coil k-space into the 3D model
    with pytest.raises(ValueError, match="state_channels=6"):
        model.image_nets[0](np.zeros((1, 8, 8, 5), np.float32))  # a state of another width


# --------------------------------------------------------------------------- RIM


def test_rim_steps_and_zero_output_convolution(rng):
    keras.utils.set_random_seed(5)
    model = RIM(n_iter=3, hidden_channels=8)
    image, inputs = make_inputs(rng, multicoil=False)
    steps = model(inputs, all_steps=True)
    assert len(steps) == 3
    np.testing.assert_allclose(steps[-1].numpy(), model(inputs).numpy(), atol=1e-6)
    assert np.abs(steps[0].numpy() - steps[-1].numpy()).max() > 1e-4
    # the step-averaged loss of the paper, differentiable through every step
    loss_fn = NMSELoss(on="complex")
    with tf.GradientTape() as tape:
        loss = tf.add_n([loss_fn(image, x) for x in model(inputs, training=True, all_steps=True)]) / 3
    assert all(g is not None for g in tape.gradient(loss, model.trainable_variables))
    model.denoiser.output_conv.kernel.assign(np.zeros(model.denoiser.output_conv.kernel.shape, np.float32))
    np.testing.assert_allclose(model(inputs).numpy(), np_ifftc(inputs["kspace"]), atol=1e-5)
    # defaults: 64 channels, the paper's network
    rim = RIM()
    rim.build(None)
    assert rim.count_params() == 94_464 and rim.n_iter == 8


def test_nmse_on_a_pixel_subset(rng):
    gt = rng.uniform(0.5, 1.0, (2, 64, 64)).astype(np.float32)
    tf.random.set_seed(0)
    subset = NMSELoss(pixel_fraction=0.01, reduction=None)
    # pred = 2 gt: the NMSE is 1 on any subset
    np.testing.assert_allclose(subset(gt, 2 * gt).numpy(), 1.0, rtol=1e-6)
    # gt = 1, an error of 1 on half the pixels: the full NMSE is 1/2, a subset's the share of wrong
    # pixels among its ~41: k / n, varying from call to call around 1/2
    ones = np.ones((1, 64, 64), np.float32)
    wrong = (rng.uniform(size=ones.shape) < 0.5).astype(np.float32)
    full = NMSELoss(reduction=None)(ones, ones + wrong).numpy()
    assert full[0] == pytest.approx(wrong.mean(), rel=1e-6)
    values = np.array([subset(ones, ones + wrong).numpy()[0] for _ in range(20)])
    assert len(np.unique(values)) > 5 and np.all((values > 0) & (values < 1))
    assert abs(values.mean() - full[0]) < 0.06
    np.testing.assert_allclose(NMSELoss(pixel_fraction=1.0, reduction=None)(ones, ones + wrong).numpy(), full,
                               rtol=1e-6)
    assert NMSELoss.from_config(subset.get_config()).pixel_fraction == 0.01
    with pytest.raises(ValueError, match="pixel_fraction"):
        NMSELoss(pixel_fraction=1.5)
