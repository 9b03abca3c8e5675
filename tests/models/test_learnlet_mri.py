"""Learnlets as the prior of MRI reconstruction networks, against numpy:

- LearnletNet (unrolled ISTA): with zero thresholds its learnlet is the identity whatever its filters
  (exact reconstruction), so the network is gradient descent on 1/2 ||A x - y||^2 with its learned step
  sizes, computed here in numpy for single-coil Cartesian and SENSE (on an image size the pyramid
  does not divide: padded and cropped back); one iteration with thresholds against the numpy learnlet
  (the threshold tied to the step size: sigma = lambda |eta|); any acquisition (non-Cartesian);
- XPDNet(denoiser="learnlet"): with zero thresholds each primal buffer takes a gradient step of the
  initial step size (numpy); the generic family checks;
- the padding helpers and the normalisation callback on models holding learnlets.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo import models
from fastmri_zoo.layers import LearnletStep, NormalisationUpdate
from fastmri_zoo.layers.learnlets import crop_padding, learnlets_of, pad_to_multiple
from tests.conftest import crandn
from tests.layers.test_learnlets import np_pyramid, np_upsample, randomise
from tests.models.conftest import make_noncartesian_inputs, np_fftc, np_ifftc
from tests.models.families import check_adam_steps, run_family_checks

SMALL_LEARNLET = models.LearnletDenoiser.small_config()


def cartesian_inputs(rng, shape, multicoil, batch=2, coils=3):
    """(inputs, numpy forward A, numpy adjoint A^H) of a random image and column mask of ``shape``."""
    image = crandn(rng, (batch, *shape))
    mask = (rng.uniform(size=(batch, 1, shape[1])) < 0.4).astype(np.float32)
    mask[..., shape[1] // 2 - 2 : shape[1] // 2 + 2] = 1.0
    if multicoil:
        smaps = crandn(rng, (batch, coils, *shape))
        smaps = (smaps / np.sqrt((np.abs(smaps) ** 2).sum(1, keepdims=True))).astype(np.complex64)

        def forward(x):
            return np_fftc(x[:, None] * smaps) * mask[:, None]

        def adjoint(y):
            return (np.conj(smaps) * np_ifftc(y * mask[:, None])).sum(1)

        inputs = {"mask": mask, "smaps": smaps}
    else:
        def forward(x):
            return np_fftc(x) * mask

        def adjoint(y):
            return np_ifftc(y * mask)

        inputs = {"mask": mask}
    inputs["kspace"] = forward(image.astype(np.complex128)).astype(np.complex64)
    return inputs, forward, adjoint


@pytest.mark.parametrize("multicoil", [False, True])
def test_zero_thresholds_make_gradient_descent(rng, multicoil):
    keras.utils.set_random_seed(0)
    model = models.LearnletNet(n_iter=3, multicoil=multicoil, **dict(SMALL_LEARNLET, n_scales=3))
    model.build(None)
    randomise(model.learnlet, rng)  # any filters: at zero thresholds the learnlet is the identity
    model.learnlet.thresholds.assign(np.zeros(model.learnlet.thresholds.shape, np.float32))
    steps = [0.7, 1.3, 0.9]
    for step, eta in zip(model.data_steps, steps):
        step.step_size.assign(eta)
    inputs, forward, adjoint = cartesian_inputs(rng, (20, 28), multicoil)  # 20 x 28: padded to 24 x 32
    out = model(inputs).numpy()
    y = inputs["kspace"].astype(np.complex128)
    x = adjoint(y)
    for eta in steps:
        x = x - eta * adjoint(forward(x) - y)
    assert out.shape == x.shape
    np.testing.assert_allclose(out, x, atol=2e-5 * np.abs(x).max())
    if multicoil:
        assert np.abs(x - adjoint(y)).max() > 0.05 * np.abs(x).max()  # the steps did move the image
    else:  # A A^H = M: A^H y is already a least-squares solution, which gradient steps keep
        np.testing.assert_allclose(x, adjoint(y), atol=1e-12)


def np_learnlet_one_scale(x, sigma, learnlet):
    """The numpy learnlet of one scale, 1 x 1 filters, no exact mode (tests/layers/test_learnlets.py)."""
    analysis = learnlet.analysis[0].kernel.numpy()[0, 0, 0]
    synthesis = learnlet.synthesis[0].kernel.numpy()[0, 0, :, 0]
    std = learnlet.coefficient_std[0].numpy()
    theta = learnlet.thresholds.numpy()[0]
    (detail,), coarse = np_pyramid(x, 1)
    coefficients = np.concatenate([detail[..., None] * analysis, detail[..., None]], axis=-1)
    thetas = np.array([theta[0]] * len(analysis) + [theta[1]])
    z = coefficients / std
    thresholded = std * np.sign(z) * np.maximum(np.abs(z) - thetas * sigma, 0)
    return np_upsample(coarse) + thresholded @ synthesis


def test_one_iteration_thresholds_at_lambda_times_the_step(rng):
    """SENSE, one iteration: z = x_0 - eta A^H (A x_0 - y) (numpy), then the numpy learnlet at sigma = lambda |eta|."""
    keras.utils.set_random_seed(0)
    model = models.LearnletNet(n_iter=1, n_scales=1, n_filters=2, analysis_kernel_size=1, synthesis_kernel_size=1,
                               exact_reconstruction=False, noise_size=32, multicoil=True)
    model.build(None)
    randomise(model.learnlet, rng)
    model.data_steps[0].step_size.assign(-0.8)  # the threshold follows |eta|
    model.regularization.assign(0.25)
    inputs, forward, adjoint = cartesian_inputs(rng, (16, 16), multicoil=True)
    y = inputs["kspace"].astype(np.complex128)
    z = adjoint(y) + 0.8 * adjoint(forward(adjoint(y)) - y)
    sigma = 0.25 * 0.8
    np.testing.assert_allclose(float(model.noise_level(0)), sigma, rtol=1e-6)
    expected = np_learnlet_one_scale(z.real, sigma, model.learnlet) + 1j * np_learnlet_one_scale(z.imag, sigma,
                                                                                                model.learnlet)
    np.testing.assert_allclose(model(inputs).numpy(), expected, atol=1e-4 * np.abs(expected).max())


def test_any_acquisition_noncartesian(rng):
    """On a density-weighted NUFFT the zero-threshold network is gradient descent with that operator."""
    keras.utils.set_random_seed(0)
    model = models.LearnletNet(n_iter=2, acquisition="noncartesian", acquisition_options={"image_shape": (16, 16)},
                               **SMALL_LEARNLET)
    model.build(None)
    model.learnlet.thresholds.assign(np.zeros(model.learnlet.thresholds.shape, np.float32))
    _, inputs = make_noncartesian_inputs(rng, batch=1)
    out = model(inputs).numpy()
    measurements, operator = model.operator({k: tf.constant(v) for k, v in inputs.items()}, (16, 16))
    x = operator.adjoint(measurements)
    for step in model.data_steps:
        x = x - float(step.step_size) * operator.adjoint(operator.forward(x) - measurements)
    np.testing.assert_allclose(out, x.numpy(), atol=1e-5 * np.abs(out).max())


def test_xpdnet_learnlet_zero_thresholds_make_gradient_steps_of_every_buffer(rng):
    keras.utils.set_random_seed(0)
    model = models.XPDNet(denoiser="learnlet", denoiser_kwargs=dict(SMALL_LEARNLET, initial_step_size=0.5),
                          n_primal=2, n_iter=3, multicoil=True)
    model.build(None)
    for image_net in model.image_nets:
        assert isinstance(image_net, LearnletStep)
        image_net.learnlet.thresholds.assign(np.zeros(image_net.learnlet.thresholds.shape, np.float32))
    inputs, forward, adjoint = cartesian_inputs(rng, (24, 20), multicoil=True)
    y = inputs["kspace"].astype(np.complex128)
    buffers = [adjoint(y), adjoint(y)]
    for _ in range(3):  # XPDNet evaluates the data gradient at buffer 0 and updates every buffer with it
        gradient = adjoint(forward(buffers[0]) - y)
        buffers = [p - 0.5 * gradient for p in buffers]
    np.testing.assert_allclose(model(inputs).numpy(), buffers[0], atol=2e-5 * np.abs(buffers[0]).max())
    assert np.abs(buffers[0] - adjoint(y)).max() > 0.05 * np.abs(buffers[0]).max()
    assert len(learnlets_of(model)) == 3


XPDNET_LEARNLET = dict(denoiser="learnlet", denoiser_kwargs=SMALL_LEARNLET, n_iter=2, n_primal=2)


def test_xpdnet_learnlet_family_checks(rng, tmp_path):
    run_family_checks(models.XPDNet, XPDNET_LEARNLET, rng, tmp_path)
    check_adam_steps(models.XPDNet, XPDNET_LEARNLET, rng)


def test_learnlet_step_bad_inputs():
    with pytest.raises(ValueError, match="positive even number"):
        LearnletStep(n_outputs=3)
    step = LearnletStep(n_outputs=4, **SMALL_LEARNLET)
    with pytest.raises(ValueError, match="expected n_outputs \\+ 2 = 6 input channels"):
        step.build((None, None, None, 8))
    with pytest.raises(ValueError, match="ndim: the learnlet is a 2D transform"):
        models.LearnletNet(ndim=3, **SMALL_LEARNLET)
    with pytest.raises(ValueError, match="initial_regularization"):
        models.LearnletNet(initial_regularization=-1.0, **SMALL_LEARNLET)


def test_padding_round_trip(rng):
    x = rng.standard_normal((2, 13, 20, 3)).astype(np.float32)
    padded, padding = pad_to_multiple(tf.constant(x), 8)
    assert padded.shape == (2, 16, 24, 3)
    np.testing.assert_array_equal(padded.numpy()[:, 1:14, 2:22], x)  # centred: p // 2 before
    assert np.abs(padded.numpy()).sum() == pytest.approx(np.abs(x).sum(), rel=1e-6)  # zeros around
    np.testing.assert_array_equal(crop_padding(padded, padding).numpy(), x)


def test_normalisation_update_of_a_model_holding_learnlets(rng):
    """NormalisationUpdate(model=network) updates the network's learnlets, whatever model Keras trains."""
    keras.utils.set_random_seed(0)
    network = models.XPDNet(**XPDNET_LEARNLET)
    network.build(None)
    (callback,) = network.training_callbacks()
    assert isinstance(callback, NormalisationUpdate) and callback.network is network
    callback.set_model(keras.Sequential([keras.layers.Dense(1)]))  # the trainer's wrapper: no learnlets needed
    learnlets = learnlets_of(network)
    for learnlet in learnlets:
        for std in learnlet.coefficient_std:
            std.assign(np.full(std.shape, 9.0, np.float32))
    callback.momentum = 0.0
    callback.on_train_batch_end(0)
    noise = np.random.default_rng(2).standard_normal((4, 32, 32, 1)).astype(np.float32)
    for learnlet in learnlets:
        expected = learnlet.coefficients(noise)[0].numpy().std(axis=(0, 1, 2))
        np.testing.assert_allclose(learnlet.coefficient_std[0].numpy(), expected, rtol=0.1)
    assert models.PDNet(**models.PDNet.small_config()).training_callbacks() == []
    with pytest.raises(ValueError, match="expected a model with learnlets"):
        NormalisationUpdate(model=models.PDNet(**models.PDNet.small_config()))
