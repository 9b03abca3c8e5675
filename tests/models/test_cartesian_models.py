"""Cartesian networks: parameter counts and closed-form behaviour (the generic checks: tests/models/families.py)."""

import json

import keras
import numpy as np
import pytest

from fastmri_zoo import layers
from fastmri_zoo.models import CascadeNet, KIKINet, PDNet, UNet, XPDNet
from tests.models.conftest import SIZE, make_inputs, np_ifftc, zero_weights

# Published sizes (Ramzi et al., thesis table 4.1: 482k, 425k, 1.25M, 318k); the exact
# integers are those of the authors' Keras checkpoints of the same architectures.
PUBLISHED = [
    (UNet, {}, 481_801, 482e3),
    (CascadeNet, {}, 424_570, 425e3),
    (KIKINet, {}, 1_251_080, 1.25e6),
    (PDNet, {}, 318_280, 318e3),
]


@pytest.mark.slow
@pytest.mark.parametrize("cls,kwargs,exact,thesis", PUBLISHED, ids=lambda v: getattr(v, "__name__", None))
def test_parameter_counts_match_thesis(cls, kwargs, exact, thesis):
    model = cls(**kwargs)
    model.build(None)  # weights built directly, no forward pass
    assert model.count_params() == exact
    assert abs(model.count_params() - thesis) / thesis < 0.01


def fastmri_unet_count(chans, pools):
    """Independent count of the fastMRI U-net: bias-free 3x3 conv blocks and 2x2
    transposed convolutions, a biased 1x1 output convolution."""

    def conv_block(cin, cout):
        return 9 * cin * cout + 9 * cout * cout

    total, channels, cin = 0, [chans * 2**i for i in range(pools + 1)], 1
    for c in channels:
        total += conv_block(cin, c)
        cin = c
    for c in reversed(channels[:-1]):
        total += 4 * (2 * c) * c + conv_block(2 * c, c)
    return total + chans + 1


@pytest.mark.slow
def test_fastmri_unet_configuration_count():
    model = UNet.fastmri(chans=32, num_pool_layers=4)
    model.build(None)
    assert model.count_params() == fastmri_unet_count(32, 4)


def test_keras_file_round_trip(tmp_path, rng):
    _, inputs = make_inputs(rng, multicoil=True)
    model = XPDNet(denoiser="dncnn", denoiser_kwargs=dict(n_convs=2, n_filters=4), n_iter=2, multicoil=True,
                   refine_smaps=True)
    out = model(inputs).numpy()
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded(inputs).numpy(), out, atol=1e-6)


def test_xpdnet_accepts_a_layer_as_denoiser(rng):
    _, inputs = make_inputs(rng, multicoil=False)
    denoiser = layers.ConvStack(n_outputs=4, n_convs=1, n_filters=6)
    model = XPDNet(denoiser=denoiser, n_primal=2, n_iter=3)
    assert model(inputs).shape == (2, SIZE, SIZE)
    assert [net.name for net in model.image_nets] == ["image_net_0", "image_net_1", "image_net_2"]
    # Fresh copies per iteration: 3 x (3*3*6*6+6 + 3*3*6*4+4) parameters.
    assert model.count_params() == 3 * ((9 * 6 * 6 + 6) + (9 * 6 * 4 + 4))
    clone = XPDNet.from_config(json.loads(json.dumps(model.get_config())))
    assert clone.get_config() == model.get_config()


@pytest.mark.parametrize("multicoil", [False, True])
def test_cascadenet_zero_network_with_full_mask_gives_back_the_image(multicoil, rng):
    image, inputs = make_inputs(rng, multicoil, full=True)
    model = CascadeNet(n_iter=2, n_convs=1, n_filters=4, multicoil=multicoil)
    model(inputs)
    zero_weights(model)
    np.testing.assert_allclose(model(inputs).numpy(), image, atol=1e-4)


def test_cascadenet_zero_network_keeps_measured_lines(rng):
    # With a zero CNN every cascade is the projection onto the data: F^-1 of the zero-filled k-space.
    _, inputs = make_inputs(rng, multicoil=False)
    model = CascadeNet(n_iter=2, n_convs=1, n_filters=4)
    model(inputs)
    zero_weights(model)
    np.testing.assert_allclose(model(inputs).numpy(), np_ifftc(inputs["kspace"]), atol=1e-5)


@pytest.mark.parametrize("multicoil", [False, True])
def test_xpdnet_zero_denoisers_return_the_adjoint(multicoil, rng):
    image, inputs = make_inputs(rng, multicoil, full=True)
    model = XPDNet(denoiser_kwargs=dict(layers_n_channels=[4, 8]), n_iter=2, multicoil=multicoil)
    model(inputs)
    zero_weights(model)
    np.testing.assert_allclose(model(inputs).numpy(), image, atol=1e-4)


def test_unet_residual_zero_network_returns_zero_filled_magnitude(rng):
    _, inputs = make_inputs(rng, multicoil=False)
    model = UNet(layers_n_channels=[4, 8], residual=True)
    model(inputs)
    zero_weights(model)
    out = model(inputs).numpy()
    np.testing.assert_allclose(out.real, np.abs(np_ifftc(inputs["kspace"])), atol=1e-5)
    np.testing.assert_array_equal(out.imag, 0.0)


@pytest.mark.parametrize("kspace_residual", [False, True])
def test_kikinet_zero_networks(kspace_residual, rng):
    # Zero CNNs: residual k-space nets pass the k-space through, so the output is F^-1 y;
    # the authors' non-residual ones output 0 k-space, so the image is 0.
    _, inputs = make_inputs(rng, multicoil=False)
    model = KIKINet(n_iter=2, n_convs=1, n_filters=4, kspace_residual=kspace_residual)
    model(inputs)
    zero_weights(model)
    expected = np_ifftc(inputs["kspace"]) if kspace_residual else 0.0
    np.testing.assert_allclose(model(inputs).numpy(), expected, atol=1e-5)
    assert KIKINet.from_config(model.get_config()).kspace_residual is kspace_residual


def test_pdnet_zero_networks_stay_at_zero(rng):
    # PDNet starts from an empty primal buffer: without learned updates nothing moves.
    _, inputs = make_inputs(rng, multicoil=False)
    model = PDNet(n_iter=2, n_filters=4)
    model(inputs)
    zero_weights(model)
    np.testing.assert_array_equal(model(inputs).numpy(), 0.0)


@pytest.mark.parametrize(
    "kwargs,multicoil,expected",
    [
        # UPDNet single-coil knee (authors' checkpoint): U-net [16, 32, 64], 10 iterations.
        pytest.param(dict(denoiser_kwargs=dict(layers_n_channels=[16, 32, 64]), n_iter=10), False, 1_186_000,
                     marks=pytest.mark.slow),
        # UPDNet multicoil knee: PReLU, channel attention, 25 iterations, refined coil maps.
        pytest.param(
            dict(denoiser_kwargs=dict(layers_n_channels=[16, 32, 64, 128], activation="prelu", channel_attention=True),
                 n_iter=25, refine_smaps=True), True, 12_126_858, marks=pytest.mark.slow),
    ],
    ids=["updnet_singlecoil", "updnet_multicoil"],
)
def test_updnet_parameter_counts_of_published_configurations(kwargs, multicoil, expected, rng):
    model = XPDNet(denoiser="unet", n_primal=5, primal_only=True, multicoil=multicoil, **kwargs)
    model.build(None)
    assert model.count_params() == expected


def test_old_argument_names_still_load_from_configs(rng):
    """n_cascade (CascadeNet) was renamed n_iter; configs saved with it load unchanged."""
    model = CascadeNet.from_config(dict(CascadeNet(n_iter=3, n_convs=1, n_filters=4).get_config(), n_cascade=3))
    assert model.n_iter == 3 and "n_cascade" not in model.get_config()
    config = CascadeNet(n_convs=1, n_filters=4).get_config()
    del config["n_iter"]
    config["n_cascade"] = 2
    assert CascadeNet.from_config(config).n_iter == 2 and len(CascadeNet.from_config(config).image_nets) == 2
