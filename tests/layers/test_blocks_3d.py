"""The ndim=3 option of ConvStack and UNetBlock: scipy correlation, closed-form parameter counts,
and equality with the 2D block slice by slice on volumes that are constant along depth."""

import json

import keras
import numpy as np
import pytest
from scipy.signal import correlate

from fastmri_zoo import layers


def test_convstack_3d_single_convolution_equals_scipy_correlation(rng):
    block = layers.ConvStack(n_outputs=2, n_convs=0, kernel_size=3, ndim=3)
    x = rng.standard_normal((1, 5, 6, 7, 3)).astype(np.float32)
    out = block(x).numpy()
    kernel, bias = (w.numpy() for w in block.output_conv.weights)
    assert kernel.shape == (3, 3, 3, 3, 2)
    expected = np.stack(
        [sum(correlate(x[0, ..., c], kernel[..., c, o], mode="same") for c in range(3)) + bias[o] for o in range(2)],
        axis=-1,
    )
    np.testing.assert_allclose(out[0], expected, atol=1e-4)


def test_convstack_3d_parameter_count_and_config_round_trip():
    block = layers.ConvStack(n_outputs=4, n_convs=2, n_filters=16, ndim=3)
    block.build((None, None, None, None, 6))
    # NC-PDNet 3D image network: 3x3x3 convs 6 -> 16 -> 16 -> 4, with biases.
    assert block.count_params() == (27 * 6 * 16 + 16) + (27 * 16 * 16 + 16) + (27 * 16 * 4 + 4) == 11_268
    config = json.loads(json.dumps(block.get_config()))
    assert config["ndim"] == 3
    assert layers.ConvStack.from_config(config).get_config() == block.get_config()


def test_2d_defaults_and_old_configs_unchanged():
    block = layers.ConvStack(n_outputs=2, n_convs=1, n_filters=4)
    assert block.ndim == 2
    config = block.get_config()
    config.pop("ndim")  # a config written before the option existed
    assert layers.ConvStack.from_config(config).get_config() == block.get_config()
    unet_config = layers.UNetBlock(layers_n_channels=[4, 8]).get_config()
    unet_config.pop("ndim")
    assert layers.UNetBlock.from_config(unet_config).ndim == 2


def unet_3d_count(cin, channels, n_outputs, head, non_lins=2, taps=27, up_taps=8):
    """Closed-form count of the thesis U-net in 3D (3x3x3 convs, 2x2x2 up-convolutions)."""
    total, previous = 0, cin
    for c in channels:
        for _ in range(non_lins):
            total += taps * previous * c + c
            previous = c
    for c in reversed(channels[:-1]):
        total += up_taps * previous * c + c  # up-convolution from the scale below
        previous = 2 * c
        for _ in range(non_lins):
            total += taps * previous * c + c
            previous = c
    if head is not None:
        total += previous * head + head
        previous = head
    return total + previous * n_outputs + n_outputs


def embed_2d_in_3d(block_2d, block_3d):
    """Copy the 2D kernels into 3D ones acting on each depth slice alone: the centre depth tap of
    odd kernels, tap 0 of the 2-wide 'same' up-convolution, both taps of a stride-2 transposed one."""
    for w2, w3 in zip(block_2d.weights, block_3d.weights):
        value = w2.numpy()
        if w3.shape == value.shape:
            w3.assign(value)
            continue
        assert w3.shape[1:] == value.shape, (w3.path, w3.shape, value.shape)
        kernel = np.zeros(w3.shape, np.float32)
        depth = w3.shape[0]
        if "transpose" in w3.path:
            kernel[:] = value
        elif depth == 2:
            kernel[0] = value
        else:
            kernel[depth // 2] = value
        w3.assign(kernel)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(layers_n_channels=[4, 8, 16], head_channels=4),
        dict(layers_n_channels=[4, 8], pool="avg", upsampling="transpose", skip_first=False, head_channels=None,
             normalization="instance", activation="prelu"),
    ],
    ids=["thesis", "fastmri_prelu"],
)
def test_unet_3d_equals_2d_on_each_slice_of_a_depth_constant_volume(kwargs, rng):
    unet_2d = layers.UNetBlock(n_outputs=2, **kwargs)
    unet_3d = layers.UNetBlock(n_outputs=2, ndim=3, **kwargs)
    unet_2d.build((None, None, None, 3))
    unet_3d.build((None, None, None, None, 3))
    assert len(unet_2d.weights) == len(unet_3d.weights)
    for w in unet_2d.weights:  # random values, so every weight matters
        w.assign(rng.standard_normal(w.shape).astype(np.float32) * 0.3)
    embed_2d_in_3d(unet_2d, unet_3d)
    image = rng.standard_normal((1, 10, 13, 3)).astype(np.float32)  # not multiples of 4: pad and crop
    # Depth a multiple of 4, so no zero slices are padded in along depth (they would break the constancy).
    volume = np.repeat(image[:, None], 4, axis=1)
    out_2d = unet_2d(image).numpy()
    out_3d = unet_3d(volume).numpy()
    assert out_3d.shape == (1, 4, 10, 13, 2)
    for d in range(4):
        np.testing.assert_allclose(out_3d[:, d], out_2d, atol=1e-4, rtol=1e-4)


def test_unet_3d_parameter_count_and_serialisation(rng):
    unet = layers.UNetBlock(n_outputs=1, layers_n_channels=[4, 8, 16], ndim=3)
    volume = rng.standard_normal((1, 5, 9, 7, 2)).astype(np.float32)
    out = unet(volume).numpy()
    assert out.shape == (1, 5, 9, 7, 1)
    assert unet.count_params() == unet_3d_count(2, [4, 8, 16], 1, head=4)
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(keras.saving.serialize_keras_object(unet))))
    restored.build((None, None, None, None, 2))
    restored.set_weights(unet.get_weights())
    np.testing.assert_allclose(restored(volume).numpy(), out, atol=1e-6)


def test_bad_ndim_and_3d_channel_attention():
    with pytest.raises(ValueError, match="ndim: expected 2"):
        layers.ConvStack(ndim=4)
    with pytest.raises(ValueError, match="channel_attention: only available with ndim=2"):
        layers.UNetBlock(channel_attention=True, ndim=3)
