"""Layers against numpy closed forms: complex <-> channels, data consistency, blocks."""

import json

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
    image = crandn(rng, (2, 6, 8))
    measured = crandn(rng, (2, 6, 8))
    mask = (rng.uniform(size=(2, 1, 8)) < 0.5).astype(np.float32)
    measured = measured * mask
    op = physics.CartesianSingleCoil(mask)
    estimate = np_fftc(image)
    out = layers.KSpaceReplacement()(image, measured, operator=op).numpy()
    np.testing.assert_allclose(out, np_ifftc(np.where(mask > 0, measured, estimate)), atol=1e-5)
    noisy = layers.KSpaceReplacement(noiseless=False, initial_noise_weight=3.0)
    out = noisy(image, measured, operator=op).numpy()
    expected = np.where(mask > 0, (estimate + 3.0 * measured) / 4.0, estimate)
    np.testing.assert_allclose(out, np_ifftc(expected), atol=1e-5)
    assert len(noisy.trainable_weights) == 1
    assert not layers.KSpaceReplacement().weights


def dense_matrix(op, shape):
    """The operator as a dense (measurements, pixels) matrix, column by column."""
    basis = np.eye(int(np.prod(shape)), dtype=np.complex64).reshape(-1, *shape)
    return np.stack([op.forward(b[None]).numpy().ravel() for b in basis], axis=1)


@pytest.mark.parametrize("noiseless", [True, False])
def test_kspace_replacement_on_sense_is_its_proximal_step(noiseless, rng):
    """No SENSE special case: the data step is the operator's prox_l2 (dense least-squares reference)."""
    h, w = 6, 4
    image = crandn(rng, (1, h, w))
    smaps = crandn(rng, (1, 3, h, w))
    mask = (rng.uniform(size=(1, w)) < 0.6).astype(np.float32)
    kspace = crandn(rng, (1, 3, h, w)) * mask
    op = physics.SENSE(mask, smaps)
    a = dense_matrix(op, (h, w))
    step = layers.KSpaceReplacement(noiseless=noiseless, initial_noise_weight=2.0)
    got = step(image, kspace, operator=op).numpy().ravel()
    if noiseless:  # CG from z on A^H A x = A^H y: z plus the least-squares correction in range(A^H)
        z = image.ravel()
        expected = z + np.linalg.pinv(a) @ (kspace.ravel() - a @ z)
        tolerance = 1e-2  # 10 CG steps on a rank-deficient system
    else:
        rhs = a.conj().T @ kspace.ravel() + image.ravel() / 2.0
        expected = np.linalg.solve(a.conj().T @ a + np.eye(h * w) / 2.0, rhs)
        tolerance = 1e-3
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < tolerance


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
    fixed = layers.GradientStep(initial_step_size=0.3, trainable_step=False)
    assert not fixed.weights  # a fixed step carries no weight
    out = fixed(image, kspace * mask, operator=physics.CartesianSingleCoil(mask)).numpy()
    np.testing.assert_allclose(out, image - 0.3 * np_ifftc(mask * residual), atol=1e-5)


def test_data_gradient_normal_form_equals_forward_adjoint_form(rng):
    image = crandn(rng, (1, 8, 8))
    smaps = crandn(rng, (1, 2, 8, 8))
    mask = (rng.uniform(size=(1, 8)) < 0.5).astype(np.float32)
    op = physics.SENSE(mask, smaps)
    kspace = op.forward(crandn(rng, (1, 8, 8))).numpy()
    residual_form = layers.data_gradient(op, image, kspace).numpy()
    normal_form = layers.data_gradient(op, image, kspace, op.adjoint(kspace)).numpy()
    np.testing.assert_allclose(normal_form, residual_form, atol=1e-4)


def test_conjugate_gradient_dc_matches_dense_solve(rng):
    h, w = 6, 4
    mask = (rng.uniform(size=(1, w)) < 0.6).astype(np.float32)
    smaps = crandn(rng, (1, 2, h, w))
    kspace = crandn(rng, (1, 2, h, w)) * mask
    denoised = crandn(rng, (1, h, w))
    op = physics.SENSE(mask, smaps)
    dc = layers.ProximalStep(initial_regularization=0.1, n_cg_iter=h * w)
    got = dc(denoised, kspace, operator=op).numpy().ravel()
    basis = np.eye(h * w, dtype=np.complex64).reshape(h * w, h, w)
    a = np.stack([op.forward(b[None]).numpy().ravel() for b in basis], axis=1)
    rhs = a.conj().T @ kspace.ravel() + 0.1 * denoised.ravel()
    expected = np.linalg.solve(a.conj().T @ a + 0.1 * np.eye(h * w), rhs)
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-4
    # The former name and argument still build the same layer.
    config = dc.get_config()
    config["num_iterations"] = 3
    del config["n_cg_iter"]
    old = layers.ConjugateGradientDC.from_config(config)
    assert isinstance(old, layers.ProximalStep) and old.n_cg_iter == 3


def test_complex_denoise_normalisation_and_residual(rng):
    image = crandn(rng, (2, 8, 6)) * 3 + 1
    identity = lambda x, training=None: x  # noqa: E731
    # NormUnet: normalise, identity, map back -> the image itself
    out = layers.complex_denoise(identity, image, normalization="mean_std").numpy()
    np.testing.assert_allclose(out, image, atol=1e-5)
    # residual: identity + input = 2 x
    np.testing.assert_allclose(layers.complex_denoise(identity, image, residual=True).numpy(), 2 * image, atol=1e-5)
    # magnitude mode: |x| in, real out
    out = layers.complex_denoise(identity, image, mode="magnitude", normalization="mean_std").numpy()
    np.testing.assert_allclose(out, np.abs(image), atol=1e-5)
    # channels: C in, C' = 1 out, residual on the first channel
    first = lambda x, training=None: tf.concat([x[..., :1], x[..., 2:3]], -1)  # noqa: E731
    stacked = np.stack([image, 2 * image], -1)
    out = layers.complex_denoise(first, stacked, channels=True, residual=True).numpy()
    np.testing.assert_allclose(out[..., 0], 2 * image, atol=1e-5)


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
