"""The score network of issue #17: shapes, the division by |sigma|, the DSM loss and the spectral-norm projection."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.models import ScoreNetwork
from fastmri_zoo.models.score import SpectralNormProjection, denoising_score_matching_loss, project_spectral_norm
from tests.conftest import crandn


def kernel_norms(model):
    """{path: largest singular value of the kernel reshaped (k_h k_w C_in, C_out)} by numpy's SVD."""
    return {
        v.path: np.linalg.svd(v.numpy().reshape(-1, v.shape[-1]), compute_uv=False)[0]
        for v in model.trainable_variables
        if v.name == "kernel"
    }


def test_thesis_architecture_takes_sigma_at_the_input_and_the_lowest_scale():
    model = ScoreNetwork(name="score_network")  # the paths below, whatever networks the session made before
    model.build()
    kernels = {v.path: tuple(v.shape) for v in model.weights if v.name == "kernel"}
    # real, imaginary, sigma map -> 32 channels
    assert kernels["score_network/input_conv/kernel"] == (3, 3, 3, 32)
    # the lowest scale sees 64 pooled channels and the sigma map
    assert kernels["score_network/bottom_block_0/conv_0/kernel"] == (3, 3, 65, 128)
    assert kernels["score_network/up_0_block_0/conv_0/kernel"] == (3, 3, 64 + 32, 32)
    assert kernels["score_network/output_conv/kernel"] == (3, 3, 32, 2)


@pytest.mark.parametrize("shape", [(2, 8, 8), (3, 10, 14)])
def test_output_is_divided_by_abs_sigma(rng, shape):
    """With a zero output kernel and a bias (b_re, b_im) the network's output is (b_re + i b_im) / (|sigma| + floor)."""
    model = ScoreNetwork(**ScoreNetwork.small_config())
    model.build()
    model.output_conv.kernel.assign(tf.zeros_like(model.output_conv.kernel))
    model.output_conv.bias.assign([0.3, -0.7])
    sigma = np.array([0.5, -0.25, 0.0][: shape[0]], np.float32)
    score = model.score(crandn(rng, shape), sigma).numpy()
    assert score.shape == shape and score.dtype == np.complex64
    expected = (0.3 - 0.7j) / (np.abs(sigma) + model.sigma_floor)
    np.testing.assert_allclose(score, np.broadcast_to(expected[:, None, None], shape), rtol=1e-6)


def test_config_round_trip_gives_the_same_scores(rng):
    model = ScoreNetwork(**ScoreNetwork.small_config())
    model.build()
    x, sigma = crandn(rng, (2, 12, 12)), np.array([0.1, -0.3], np.float32)
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(keras.saving.serialize_keras_object(model))))
    assert type(restored) is ScoreNetwork and restored.get_config() == model.get_config()
    restored.build()
    restored.set_weights(model.get_weights())
    np.testing.assert_array_equal(restored.score(x, sigma).numpy(), model.score(x, sigma).numpy())


def test_dsm_loss_equals_numpy_with_a_gaussian_score(rng):
    tau = 0.8
    images, noise = crandn(rng, (3, 6, 5)) * tau, crandn(rng, (3, 6, 5))
    sigma = np.array([0.3, -0.1, 0.02], np.float32)

    def score(x, s):
        return -x / tf.cast(tf.reshape(tau**2 + s**2, [-1, 1, 1]), tf.complex64)

    loss = denoising_score_matching_loss(score, images, noise, sigma).numpy()
    s = sigma[:, None, None].astype(np.float64)
    residual = noise + s * (-(images + s * noise) / (tau**2 + s**2))
    np.testing.assert_allclose(loss, np.mean(np.sum(np.abs(residual) ** 2, axis=(1, 2))), rtol=1e-5)


def test_dsm_loss_of_the_network_matches_its_definition(rng):
    model = ScoreNetwork(**ScoreNetwork.small_config())
    model.build()
    images, noise = crandn(rng, (2, 8, 8)), crandn(rng, (2, 8, 8))
    sigma = np.array([0.2, -0.5], np.float32)
    scores = model.score(images + sigma[:, None, None] * noise, sigma).numpy()
    expected = np.mean(np.sum(np.abs(noise + sigma[:, None, None] * scores) ** 2, axis=(1, 2)))
    np.testing.assert_allclose(denoising_score_matching_loss(model.score, images, noise, sigma).numpy(), expected,
                               rtol=1e-5)


def test_spectral_norm_is_2_after_an_optimiser_step(rng):
    keras.utils.set_random_seed(0)
    model = ScoreNetwork(**ScoreNetwork.small_config())
    model.build()
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    assert not np.allclose(list(kernel_norms(model).values()), 2.0, rtol=0.02)  # Keras' initialisation
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(crandn(rng, (4, 8, 8)), batch_size=2, epochs=1, verbose=0,
                        callbacks=[SpectralNormProjection(2.0)])
    assert np.isfinite(history.history["loss"][-1]) and history.history["loss"][-1] > 0
    norms = kernel_norms(model)
    assert len(norms) == 16
    for path, norm in norms.items():
        assert abs(norm - 2.0) < 0.04, (path, norm)
    # Adam moved every weight: the projection acts after the optimiser's steps.
    moved = [not np.allclose(v.numpy(), before[v.path]) for v in model.trainable_variables]
    assert all(moved)
    # Biases are left alone: projecting again changes no bias.
    biases = {v.path: v.numpy().copy() for v in model.trainable_variables if v.name == "bias"}
    project_spectral_norm(model, 1.0)
    assert all(np.array_equal(v.numpy(), biases[v.path]) for v in model.trainable_variables if v.name == "bias")
    np.testing.assert_allclose(list(kernel_norms(model).values()), 1.0, rtol=1e-4)


@pytest.mark.parametrize("kwargs", [dict(layers_n_channels=[]), dict(n_blocks=0), dict(sigma_floor=0.0),
                                    dict(sigma_scale=float("nan"))])
def test_bad_constructor_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ScoreNetwork(**kwargs)


def test_preset_round_trip_records_the_image_size_and_no_optimizer_state(rng, tmp_path):
    """save_to_preset / from_preset (the zoo's preset mechanism): same class, config and scores; metadata says
    task "prior" and the image size; a compiled (trained) network's preset holds its weights only."""
    import h5py

    from fastmri_zoo import load
    from fastmri_zoo.models.base import ZooModel

    keras.utils.set_random_seed(1)
    model = ScoreNetwork(**ScoreNetwork.small_config())
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(crandn(rng, (2, 12, 12)), batch_size=2, epochs=1, verbose=0)  # the optimizer has state now
    example = {"image": np.zeros((1, 12, 12), np.complex64), "sigma": np.zeros((1,), np.float32)}
    folder = model.save_to_preset(tmp_path / "prior", example_inputs=example)
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["task"] == "prior" and metadata["class_name"] == "fastmri_zoo>ScoreNetwork"
    assert metadata["input_signature"] == {"image": {"shape": [1, 12, 12], "dtype": "complex64"},
                                           "sigma": {"shape": [1], "dtype": "float32"}}
    assert not (folder / "preprocessor.json").exists()  # a prior takes images, no k-space to prepare
    with h5py.File(folder / "model.weights.h5") as handle:
        assert "optimizer" not in handle
    for loaded in (ScoreNetwork.from_preset(str(folder)), load(folder), ZooModel.from_preset(str(folder))):
        assert type(loaded) is ScoreNetwork and loaded.get_config() == model.get_config()
        x, sigma = crandn(rng, (3, 12, 12)), np.array([0.1, -0.03, 0.0], np.float32)
        np.testing.assert_array_equal(loaded.score(x, sigma).numpy(), model.score(x, sigma).numpy())
    with pytest.raises(ValueError, match="cannot tell the input signature"):
        ScoreNetwork(**ScoreNetwork.small_config()).save_to_preset(tmp_path / "unbuilt")
