"""LearnletDenoiser and the wavelet hard-thresholding baseline: config round trips, complex images as
two channels, exact reconstruction, training with the normalisation callback, the baseline against a
numpy reference of the pyramid, and bad inputs (the same for every denoiser, the U-net's too)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.layers import NormalisationUpdate
from fastmri_zoo.models import LearnletDenoiser, UNetDenoiser, WaveletHardThresholding
from tests.conftest import crandn
from tests.layers.test_learnlets import np_pyramid, np_upsample, randomise

SMALL = LearnletDenoiser.small_config()


def inputs(rng, batch=2, size=16, channels=1, sigma=0.2):
    image = rng.standard_normal((batch, size, size, channels)).astype(np.float32)
    return {"image": image, "sigma": np.full(batch, sigma, np.float32)}


def test_config_json_round_trip_gives_the_same_output(rng):
    keras.utils.set_random_seed(0)
    model = LearnletDenoiser(**SMALL)
    model.build()
    randomise(model.learnlet, rng)
    batch = inputs(rng)
    out = model(batch).numpy()
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(keras.saving.serialize_keras_object(model))))
    assert type(restored) is LearnletDenoiser and restored.get_config() == model.get_config()
    restored.build()
    restored.set_weights(model.get_weights())
    np.testing.assert_array_equal(restored(batch).numpy(), out)
    graph = tf.function(lambda x: model(x))({k: tf.constant(v) for k, v in batch.items()})
    np.testing.assert_allclose(graph.numpy(), out, atol=1e-5)


def test_complex_images_are_two_channels(rng):
    keras.utils.set_random_seed(0)
    model = LearnletDenoiser(**SMALL)
    model.build()
    randomise(model.learnlet, rng)
    image = crandn(rng, (2, 16, 16))
    sigma = np.array([0.1, 0.4], np.float32)
    out = model({"image": image, "sigma": sigma}).numpy()
    assert out.dtype == np.complex64 and out.shape == image.shape
    real = model({"image": image.real[..., None], "sigma": sigma}).numpy()[..., 0]
    imag = model({"image": image.imag[..., None], "sigma": sigma}).numpy()[..., 0]
    np.testing.assert_allclose(out, real + 1j * imag, atol=1e-5)
    # sigma = 0: exact reconstruction of the complex image
    exact = model({"image": image, "sigma": np.zeros(2, np.float32)}).numpy()
    assert np.abs(exact - image).max() < 1e-5


def test_fit_with_the_normalisation_callback(rng):
    keras.utils.set_random_seed(0)
    model = LearnletDenoiser(**SMALL)
    model.build()
    clean = rng.standard_normal((4, 16, 16, 1)).astype(np.float32)
    sigma = np.full(4, 0.3, np.float32)
    noisy = clean + sigma[:, None, None, None] * rng.standard_normal(clean.shape).astype(np.float32)
    std_before = model.learnlet.coefficient_std[0].numpy().copy()
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    callback = NormalisationUpdate(momentum=0.5)
    history = model.fit({"image": noisy, "sigma": sigma}, clean, batch_size=2, epochs=2, verbose=0, callbacks=[callback])
    assert callback.updates == 4 and np.isfinite(history.history["loss"]).all()
    assert not np.allclose(model.learnlet.coefficient_std[0].numpy(), std_before)
    thresholds = model.learnlet.thresholds.numpy()
    assert (thresholds >= 0).all() and (thresholds <= 5).all()
    for analysis in model.learnlet.analysis:
        np.testing.assert_allclose(np.sqrt((analysis.kernel.numpy() ** 2).sum(axis=(0, 1, 2))), 1.0, atol=1e-5)


def test_wavelet_hard_thresholding_against_numpy(rng):
    model = WaveletHardThresholding(n_scales=3, noise_size=256)
    x = rng.standard_normal((2, 32, 32)).astype(np.float32)
    sigma = np.array([0.05, 0.2], np.float32)
    out = model({"image": x[..., None], "sigma": sigma}).numpy()[..., 0]
    noise_stds = [detail.std() for detail in np_pyramid(np.random.default_rng(9).standard_normal((4, 256, 256)), 3)[0]]
    np.testing.assert_allclose(model.detail_std.numpy(), noise_stds, rtol=0.03)
    details, coarse = np_pyramid(x.astype(np.float64), 3)
    image = coarse
    for j in reversed(range(3)):
        threshold = (4.0 if j == 0 else 3.0) * sigma[:, None, None] * model.detail_std.numpy()[j]
        image = np.where(np.abs(details[j]) > threshold, details[j], 0.0) + np_upsample(image)
    np.testing.assert_allclose(out, image, atol=1e-4)
    # sigma = 0 keeps every detail: the input comes back
    np.testing.assert_allclose(model({"image": x[..., None], "sigma": np.zeros(2, np.float32)}).numpy()[..., 0], x, atol=1e-5)
    assert not model.trainable_weights
    assert WaveletHardThresholding.from_config(model.get_config()).get_config() == model.get_config()


BAD_INPUT_CASES = {
    LearnletDenoiser: SMALL,
    WaveletHardThresholding: dict(n_scales=2, noise_size=32),
    UNetDenoiser: UNetDenoiser.small_config(),  # the same checks; any size (the U-net pads)
}


@pytest.mark.parametrize("cls", list(BAD_INPUT_CASES))
def test_bad_inputs(cls, rng):
    model = cls(**BAD_INPUT_CASES[cls])
    good = inputs(rng)
    with pytest.raises(ValueError, match="'image'"):
        model({"image": good["image"]})
    if model.n_scales:
        with pytest.raises(ValueError, match="multiples of 2\\^n_scales = 4"):
            model(dict(good, image=np.zeros((2, 18, 16, 1), np.float32)))
    with pytest.raises(ValueError, match="float32 \\(batch, H, W, C\\) or complex64"):
        model(dict(good, image=np.zeros((2, 16, 16), np.float32)))
    with pytest.raises(ValueError, match="non-negative"):
        model(dict(good, sigma=np.array([0.1, -0.1], np.float32)))
    with pytest.raises(ValueError, match="one value per image"):
        model(dict(good, sigma=np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match="sigma: expected float32"):
        model(dict(good, sigma=np.zeros((2, 2), np.float32)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="exact_reconstruction"):
        LearnletDenoiser(**dict(SMALL, identity=False))
    with pytest.raises(ValueError, match="threshold"):
        WaveletHardThresholding(threshold=-1.0)
    with pytest.raises(ValueError, match="noise_size"):
        WaveletHardThresholding(n_scales=5, noise_size=100)
