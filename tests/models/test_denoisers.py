"""The denoisers' common interface (models.denoising) and the U-net baselines of the learnlets:

- UNetDenoiser without sigma is f(x), the same at any sigma; with the exact-reconstruction residual it is
  x - sigma f(x) for the same weights (so it returns its input at sigma = 0, whatever the weights), at any
  image size (the U-net pads), each channel (a complex image's real and imaginary parts) on its own;
- every denoiser (learnlet, wavelet, U-net) round-trips through its config and a preset folder (the input
  errors, the same for all, are in tests/models/test_learnlets.py).
"""

import json

import keras
import numpy as np
import pytest

import fastmri_zoo
from fastmri_zoo import models
from tests.conftest import crandn
from tests.models.conftest import perturb_all_weights

SMALL_UNET = models.UNetDenoiser.small_config()
DENOISERS = {
    "LearnletDenoiser": (models.LearnletDenoiser, models.LearnletDenoiser.small_config()),
    "WaveletHardThresholding": (models.WaveletHardThresholding, dict(n_scales=2, noise_size=32)),
    "UNetDenoiser": (models.UNetDenoiser, SMALL_UNET),
    "UNetDenoiser-exact": (models.UNetDenoiser, dict(SMALL_UNET, exact_reconstruction=True)),
}


def batch(rng, size=(16, 16), channels=1, sigma=(0.1, 0.3)):
    image = rng.standard_normal((len(sigma), *size, channels)).astype(np.float32)
    return {"image": image, "sigma": np.array(sigma, np.float32)}


def test_unet_with_and_without_the_exact_residual(rng):
    keras.utils.set_random_seed(0)
    plain = models.UNetDenoiser(**SMALL_UNET)
    exact = models.UNetDenoiser(**dict(SMALL_UNET, exact_reconstruction=True))
    plain.build()
    exact.build()
    perturb_all_weights(plain, rng)
    exact.set_weights(plain.get_weights())
    inputs = batch(rng, size=(18, 22), channels=2, sigma=(0.2, 0.7))  # not a multiple of 2: the U-net pads
    x, sigma = inputs["image"], inputs["sigma"]
    f = plain(inputs).numpy()
    assert f.shape == x.shape and np.abs(f).max() > 0.01
    # without sigma: f(x), whatever sigma
    np.testing.assert_array_equal(plain(dict(inputs, sigma=np.array([5.0, 0.0], np.float32))).numpy(), f)
    # each channel on its own: channel 1 alone gives the same
    np.testing.assert_allclose(plain(dict(inputs, image=x[..., 1:])).numpy()[..., 0], f[..., 1], atol=1e-6)
    # the residual: x - sigma f(x), and exactly x at sigma = 0
    np.testing.assert_allclose(exact(inputs).numpy(), x - sigma[:, None, None, None] * f, atol=1e-5)
    np.testing.assert_array_equal(exact(dict(inputs, sigma=np.zeros(2, np.float32))).numpy(), x)
    # a complex image: its real and imaginary parts as two channels
    z = crandn(rng, (2, 18, 22))
    out = exact({"image": z, "sigma": sigma}).numpy()
    assert out.dtype == np.complex64
    parts = exact({"image": np.stack([z.real, z.imag], -1).astype(np.float32), "sigma": sigma}).numpy()
    np.testing.assert_allclose(out, parts[..., 0] + 1j * parts[..., 1], atol=1e-5)


@pytest.mark.parametrize("key", list(DENOISERS))
def test_config_and_preset_round_trips(key, rng, tmp_path):
    cls, kwargs = DENOISERS[key]
    keras.utils.set_random_seed(0)
    model = cls(**kwargs)
    model.build()
    perturb_all_weights(model, rng)
    inputs = batch(rng)
    out = model(inputs).numpy()
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(keras.saving.serialize_keras_object(model))))
    assert type(restored) is cls and restored.get_config() == model.get_config()
    folder = model.save_to_preset(tmp_path / key, example_inputs=inputs, description=f"test of {key}")
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["task"] == "denoising" and not (folder / "preprocessor.json").exists()
    loaded = fastmri_zoo.load(str(folder))
    assert type(loaded) is cls and loaded.TASK == "denoising"
    np.testing.assert_array_equal(loaded(inputs).numpy(), out)
