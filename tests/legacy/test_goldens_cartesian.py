"""The authors' Keras-2 files, converted, reproduce the outputs the original code computed (goldens).

Each golden was computed by the original TF 2.x code on the same file; the zoo
gets the same inputs in physical units (k-space divided by the original scale
factor) and its output, multiplied back, must match to < 1e-4 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.legacy import from_keras2_h5, get_checkpoint
from tests.legacy.conftest import (
    DATA,
    REDUCED_UPDNET_KNEE,
    REDUCED_XPDNET_BRAIN,
    cartesian_inputs,
    golden,
    relative_error,
)

TOLERANCE = 1e-4

CASES = [
    # (fixture folder, weights file, registry name, reduced network options, Keras version that wrote the file)
    ("PDNet-OASIS", "model_weights.h5", "pdnet-cartesian-singlecoil-af4-oasis", {}, "2.15.0"),
    ("PDNet-OASIS/era_tf24", "model_weights.h5", "pdnet-cartesian-singlecoil-af4-oasis", {}, "2.4.0"),
    ("CascadeNet-OASIS", "model_weights.h5", "cascadenet-cartesian-singlecoil-af4-oasis", {}, "2.15.0"),
    ("KIKI-net-OASIS", "model_weights.h5", "kikinet-cartesian-singlecoil-af4-oasis", {}, "2.15.0"),
    ("UPDNet-knee-af4", "reduced_model_weights.h5", "updnet-cartesian-multicoil-af4-fastmri", REDUCED_UPDNET_KNEE,
     "2.15.0"),
    ("UPDNet-knee-af4/era_tf24", "reduced_model_weights.h5", "updnet-cartesian-multicoil-af4-fastmri",
     REDUCED_UPDNET_KNEE, "2.4.0"),
    ("XPDNet-brain-af4", "reduced_model_weights.h5", "xpdnet-cartesian-multicoil-af4-fastmri", REDUCED_XPDNET_BRAIN,
     "2.15.0"),
]


@pytest.mark.parametrize("folder, filename, name, reduced, keras_version", CASES, ids=[c[0] for c in CASES])
def test_cartesian_golden(folder, filename, name, reduced, keras_version):
    checkpoint = get_checkpoint(name).with_network(**reduced)
    model = from_keras2_h5(DATA / folder / filename, checkpoint)
    assert model.keras2_source["keras_version"] == keras_version
    arrays = golden(folder)
    output = np.abs(model(cartesian_inputs(arrays, checkpoint.kspace_scale)).numpy()) * checkpoint.kspace_scale
    expected = arrays["output"][..., 0]
    assert output.shape == expected.shape
    assert relative_error(output, expected) < TOLERANCE


def test_unet_golden_linear_head_and_card_head():
    """U-net (full-model layout): the trained old_unet has a linear 4-channel head; the Hub card's newer
    U-net (ReLU head) gives ``output_card_unet`` with the same weights, so the option matters."""
    arrays = golden("UNet-OASIS")
    path = DATA / "UNet-OASIS" / "model_weights.h5"
    checkpoint = get_checkpoint("unet-cartesian-singlecoil-af4-oasis")
    model = from_keras2_h5(path, checkpoint)
    assert model.keras2_source["layout"] == "full_model"
    output = model.network.image_net(arrays["image"]).numpy()
    assert relative_error(output, arrays["output"]) < TOLERANCE
    assert relative_error(output, arrays["output_card_unet"]) > 100 * TOLERANCE

    card_head = from_keras2_h5(path, checkpoint.with_network(head_activation=True))
    assert relative_error(card_head.network.image_net(arrays["image"]).numpy(), arrays["output_card_unet"]) < TOLERANCE


def _centred_ifft2(kspace):
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=axes), norm="ortho"), axes=axes)


def test_unet_oasis_preprocessing_in_physical_units():
    """unet-...-oasis: |IFFT(1e-2 k)| into the U-net, output / 1e-2 (numpy reference of the pre/post-processing)."""
    model = from_keras2_h5(DATA / "UNet-OASIS" / "model_weights.h5", "unet-cartesian-singlecoil-af4-oasis")
    rng = np.random.default_rng(0)
    kspace = ((rng.standard_normal((1, 64, 48)) + 1j * rng.standard_normal((1, 64, 48))) * 3e-4).astype(np.complex64)
    mask = (rng.random((1, 48)) < 0.4).astype(np.float32)
    zero_filled = np.abs(_centred_ifft2(kspace * mask * 1e-2)).astype(np.float32)
    expected = model.network.image_net(zero_filled[..., None]).numpy()[..., 0] / 1e-2
    output = model({"kspace": kspace, "mask": mask}).numpy()
    assert np.all(output.imag == 0)
    assert relative_error(output.real, expected) < 1e-5


def test_unet_fastmri_crop_and_normalisation_in_physical_units():
    """unet-...-fastmri: the 320 x 320 centre crop of |IFFT(k)|, normalised per slice by (x - mean) / (std + 1e-11),
    goes through the U-net, whose output is mapped back by * std + mean (numpy reference)."""
    model = from_keras2_h5(DATA / "UNet-OASIS" / "model_weights.h5", "unet-cartesian-singlecoil-af4-fastmri")
    rng = np.random.default_rng(1)
    shape = (2, 336, 328)
    kspace = ((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * 2e-4).astype(np.complex64)
    mask = (rng.random((1, 328)) < 0.3).astype(np.float32)
    zero_filled = np.abs(_centred_ifft2(kspace * mask))[:, 8:328, 4:324]
    mean = zero_filled.mean(axis=(1, 2), keepdims=True)
    std = zero_filled.std(axis=(1, 2), keepdims=True)
    normalised = ((zero_filled - mean) / (std + 1e-11)).astype(np.float32)
    expected = model.network.image_net(normalised[..., None]).numpy()[..., 0] * std + mean
    output = model({"kspace": kspace, "mask": mask}).numpy()
    assert output.shape == (2, 320, 320)
    assert relative_error(output.real, expected) < 1e-5


def test_fastmri_crop_follows_the_original_index_arithmetic():
    """The original crop starts at H//2 - rows//2 (minus 1 for odd rows) and W//2 - cols//2, TF slicing rules."""
    from fastmri_zoo.legacy.wrapper import original_crop

    image = tf.reshape(tf.range(9 * 8), (1, 9, 8))
    np.testing.assert_array_equal(original_crop(image, 3, 3).numpy(), image.numpy()[:, 2:5, 3:6])
    np.testing.assert_array_equal(original_crop(image, 4, 5).numpy(), image.numpy()[:, 2:6, 2:7])
    # An image smaller than 320: the negative start lies before -H, so TF clamps and returns the whole image.
    np.testing.assert_array_equal(original_crop(image, 320, 320).numpy(), image.numpy())
