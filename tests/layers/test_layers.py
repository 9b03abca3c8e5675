"""Layers against numpy closed forms: complex <-> channels, data consistency, blocks."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo import layers, physics
from tests.conftest import crandn


def np_fftc(x):
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def np_ifftc(x):
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def test_complex_channels_layout_and_round_trip(rng):
    x = crandn(rng, (2, 5, 4, 3))
    channels = layers.complex_to_channels(x).numpy()
    assert channels.dtype == np.float32 and channels.shape == (2, 5, 4, 6)
    np.testing.assert_array_equal(channels[..., :3], x.real)
    np.testing.assert_array_equal(channels[..., 3:], x.imag)
    np.testing.assert_array_equal(layers.channels_to_complex(channels).numpy(), x)
    np.testing.assert_array_equal(layers.ChannelsToComplex()(layers.ComplexToChannels()(x)).numpy(), x)


def test_complex_channels_bad_input():
    with pytest.raises(ValueError, match="complex"):
        layers.complex_to_channels(np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="even number of channels"):
        layers.channels_to_complex(np.zeros((1, 3), np.float32))


def test_kspace_replacement_noiseless_and_noisy(rng):
    estimate = crandn(rng, (2, 6, 8))
    measured = crandn(rng, (2, 6, 8))
    mask = (rng.uniform(size=(2, 1, 8)) < 0.5).astype(np.float32)
    measured = measured * mask
    out = layers.KSpaceReplacement()(estimate, measured, mask).numpy()
    np.testing.assert_allclose(out, np.where(mask > 0, measured, estimate), atol=1e-6)
    noisy = layers.KSpaceReplacement(noiseless=False, initial_noise_weight=3.0)
    out = noisy(estimate, measured, mask).numpy()
    expected = np.where(mask > 0, (estimate + 3.0 * measured) / 4.0, estimate)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert len(noisy.trainable_weights) == 1


def test_kspace_replacement_project_image_sense(rng):
    image = crandn(rng, (1, 8, 6))
    smaps = crandn(rng, (1, 3, 8, 6))
    mask = (rng.uniform(size=(1, 6)) < 0.5).astype(np.float32)
    kspace = crandn(rng, (1, 3, 8, 6)) * mask
    op = physics.SENSE(mask, smaps)
    out = layers.KSpaceReplacement().project_image(image, kspace, op).numpy()
    coil_k = np_fftc(image[:, None] * smaps)
    coil_k = np.where(mask > 0, kspace, coil_k)
    expected = (np.conj(smaps) * np_ifftc(coil_k)).sum(1)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_gradient_step_matches_numpy_and_full_sampling_gives_adjoint(rng):
    image = crandn(rng, (2, 8, 8))
    kspace = crandn(rng, (2, 8, 8))
    mask = (rng.uniform(size=(1, 8)) < 0.5).astype(np.float32)
    step = layers.GradientStep(initial_step_size=0.3)
    out = step(image, kspace * mask, operator=physics.CartesianSingleCoil(mask)).numpy()
    residual = mask * np_fftc(image) - kspace * mask
    np.testing.assert_allclose(out, image - 0.3 * np_ifftc(mask * residual), atol=1e-5)
    full = np.ones((1, 8), np.float32)
    out = layers.GradientStep()(image, kspace, operator=physics.CartesianSingleCoil(full)).numpy()
    np.testing.assert_allclose(out, np_ifftc(kspace), atol=1e-5)


def test_conjugate_gradient_dc_matches_dense_solve(rng):
    h, w = 6, 4
    mask = (rng.uniform(size=(1, w)) < 0.6).astype(np.float32)
    smaps = crandn(rng, (1, 2, h, w))
    kspace = crandn(rng, (1, 2, h, w)) * mask
    denoised = crandn(rng, (1, h, w))
    op = physics.SENSE(mask, smaps)
    dc = layers.ConjugateGradientDC(initial_regularization=0.1, num_iterations=h * w)
    got = dc(denoised, kspace, operator=op).numpy().ravel()
    basis = np.eye(h * w, dtype=np.complex64).reshape(h * w, h, w)
    a = np.stack([op.forward(b[None]).numpy().ravel() for b in basis], axis=1)
    rhs = a.conj().T @ kspace.ravel() + 0.1 * denoised.ravel()
    expected = np.linalg.solve(a.conj().T @ a + 0.1 * np.eye(h * w), rhs)
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-4


def test_conv_stack_zero_weights_and_shapes():
    stack = layers.ConvStack(n_outputs=4, n_convs=2, n_filters=8)
    x = np.random.default_rng(1).standard_normal((2, 9, 7, 3)).astype(np.float32)
    assert stack(x).shape == (2, 9, 7, 4)
    # 3x3x3x8+8, 3x3x8x8+8, 3x3x8x4+4
    assert stack.count_params() == (27 * 8 + 8) + (72 * 8 + 8) + (72 * 4 + 4)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_outputs=1),
        dict(n_outputs=2, layers_n_channels=[4, 8], activation="prelu", channel_attention=True, head_channels=2),
        dict(n_outputs=1, layers_n_channels=[4, 8, 16], upsampling="transpose", normalization="instance",
             use_bias=False, skip_first=False, head_channels=None, pool="avg", activation="leaky_relu:0.2"),
    ],
)
def test_unet_block_odd_sizes_and_config_round_trip(kwargs):
    block = layers.UNetBlock(**kwargs)
    x = np.random.default_rng(2).standard_normal((1, 13, 10, 2)).astype(np.float32)
    y = block(x)
    assert y.shape == (1, 13, 10, kwargs["n_outputs"])
    clone = layers.UNetBlock.from_config(json.loads(json.dumps(block.get_config())))
    clone(x)
    clone.set_weights(block.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), y.numpy(), atol=1e-6)


def test_sensitivity_refiner_output_has_unit_rss(rng):
    refiner = layers.SensitivityMapRefiner()
    smaps = crandn(rng, (1, 3, 16, 12))
    refined = refiner(smaps).numpy()
    np.testing.assert_allclose(np.sqrt((np.abs(refined) ** 2).sum(1)), 1.0, atol=1e-5)
    assert refiner.count_params() == 7458


def test_activation_spec_errors():
    with pytest.raises(ValueError, match="activation"):
        layers.make_activation("swishy", name="a")
    slope = layers.make_activation("leaky_relu:0.3", name="a")
    np.testing.assert_allclose(slope(np.array([-1.0, 2.0], np.float32)).numpy(), [-0.3, 2.0])
