"""Shared pieces of the zoo tests: a tiny registered model, presets built from it, a fake-Hub fixture."""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.models.base import ReconstructionModel
from tests.conftest import crandn
from tests.fake_hub import FakeHub

SHAPE = (8, 8)


@keras.saving.register_keras_serializable(package="fastmri_zoo_tests")
class TinyResidual(ReconstructionModel):
    """Zero-filled image plus a two-layer conv correction on its real/imaginary channels.

    inputs: ``kspace`` complex64 (batch, H, W), ``mask`` float32 (batch, 1, W); output complex64 (batch, H, W).
    """

    REQUIRED_INPUTS = ("kspace", "mask")

    def __init__(self, filters: int = 4, kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.conv_in = keras.layers.Conv2D(filters, kernel_size, padding="same", activation="relu", name="conv_in")
        self.conv_out = keras.layers.Conv2D(2, kernel_size, padding="same", name="conv_out")

    def call(self, inputs):
        self.check_inputs(inputs)
        kspace = inputs["kspace"] * tf.cast(inputs["mask"], tf.complex64)
        image = tf.signal.fftshift(tf.signal.ifft2d(tf.signal.ifftshift(kspace, axes=(-2, -1))), axes=(-2, -1))
        channels = tf.stack([tf.math.real(image), tf.math.imag(image)], axis=-1)
        correction = self.conv_out(self.conv_in(channels))
        return image + tf.complex(correction[..., 0], correction[..., 1])

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size)
        return config


def example_inputs(seed: int = 0, batch: int = 2) -> dict:
    rng = np.random.default_rng(seed)
    mask = (rng.random((batch, 1, SHAPE[1])) < 0.5).astype(np.float32)
    return {"kspace": tf.constant(crandn(rng, (batch, *SHAPE))), "mask": tf.constant(mask)}


def trained_model(filters: int = 4, seed: int = 1) -> TinyResidual:
    """A built TinyResidual whose weights are set to seeded random values (not the initializer's)."""
    model = TinyResidual(filters=filters)
    model(example_inputs())
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.standard_normal(variable.shape).astype(np.float32) * 0.1)
    return model


def make_preset(folder: Path, filters: int = 4, seed: int = 1, **card) -> tuple[Path, TinyResidual]:
    model = trained_model(filters, seed)
    return model.save_to_preset(folder, **card) or folder, model


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def preset_files(folder: Path, subfolder: str = "") -> dict[str, bytes]:
    """The files of a preset folder as a fake-Hub commit, optionally inside ``subfolder``."""
    prefix = f"{subfolder}/" if subfolder else ""
    return {prefix + path.name: path.read_bytes() for path in sorted(Path(folder).iterdir()) if path.is_file()}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A running FakeHub; the zoo points at it, the HF cache is a temporary folder, offline mode is off."""
    import huggingface_hub.constants as hf_constants

    fake = FakeHub().start()
    cache = tmp_path / "hf_cache"
    monkeypatch.setenv("FASTMRI_ZOO_HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no_tokens"))
    fake.cache = cache
    yield fake
    fake.stop()


def go_offline(monkeypatch) -> None:
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
