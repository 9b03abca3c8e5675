"""MoDL and E2E VarNet: parameter counts, closed-form unrolled loops (numpy), ACS detection,
old argument names, bad input (the generic checks: tests/models/families.py)."""


import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.models import MoDL, VarNet
from fastmri_zoo.models.varnet import acs_mask
from tests.conftest import crandn
from tests.models.conftest import SIZE, make_inputs, np_fftc, np_ifftc, zero_weights

SMALL_MODL = dict(n_iter=2, n_layers=3, n_filters=8, n_cg_iter=4)
SMALL_VARNET = dict(n_iter=2, chans=4, pools=2, sens_chans=4, sens_pools=2)

# --------------------------------------------------------------------------- counts


def conv_count(cin, cout, k=3, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def fastmri_unet_count(cin, cout, chans, pools):
    """fastMRI U-net: bias-free 3x3 conv blocks (2 per scale), 2x2 bias-free transposed
    convolutions, a biased 1x1 output convolution."""
    total, channels, c = 0, [chans * 2**i for i in range(pools + 1)], cin
    for ch in channels:
        total += conv_count(c, ch, bias=False) + conv_count(ch, ch, bias=False)
        c = ch
    for ch in reversed(channels[:-1]):
        total += conv_count(2 * ch, ch, k=2, bias=False)
        total += conv_count(2 * ch, ch, bias=False) + conv_count(ch, ch, bias=False)
    return total + conv_count(chans, cout, k=1)


def built_parameter_count(model):
    """Parameters after ``build`` (weights built directly, no forward pass)."""
    model.build(None)
    return sum(int(np.prod(w.shape)) for w in model.weights)


@pytest.mark.slow
def test_modl_parameter_count_paper_setting():
    # 5 layers of 64 filters (Aggarwal et al. 2019), batch norm (gamma, beta + 2 moving
    # statistics) after the 3 middle convolutions, one learned lambda.
    model = MoDL()
    expected = conv_count(2, 64) + 3 * conv_count(64, 64) + conv_count(64, 2) + 3 * 4 * 64 + 1
    assert built_parameter_count(model) == expected == 113_923
    assert len(model.trainable_variables) == 2 * 5 + 2 * 3 + 1  # shared weights: one denoiser, one lambda


@pytest.mark.slow
def test_varnet_parameter_count_paper_setting():
    model = VarNet()
    count = built_parameter_count(model)
    assert count == fastmri_unet_count(2, 2, 8, 4) + 12 * (fastmri_unet_count(2, 2, 18, 4) + 1)
    # Sriram et al. 2020: about 30M parameters for 12 cascades of 18-channel U-nets.
    assert abs(count - 30e6) / 30e6 < 0.01


def test_built_parameter_count_equals_keras_count_after_a_call(rng):
    _, inputs = make_inputs(rng, multicoil=True, batch=1)
    model = VarNet(**SMALL_VARNET)
    model(inputs)
    fresh = VarNet(**SMALL_VARNET)
    assert built_parameter_count(fresh) == model.count_params()


# --------------------------------------------------------------------------- shapes, configs


def test_old_argument_names_still_load_from_configs():
    """n_cascades (VarNet) and cg_iterations (MoDL) were renamed n_iter and n_cg_iter."""
    config = VarNet(**SMALL_VARNET).get_config()
    config["n_cascades"] = config.pop("n_iter")
    varnet = VarNet.from_config(config)
    assert varnet.n_iter == 2 and len(varnet.image_nets) == 2 and "n_cascades" not in varnet.get_config()
    config = MoDL(**SMALL_MODL).get_config()
    config["cg_iterations"] = config.pop("n_cg_iter")
    modl = MoDL.from_config(config)
    assert modl.n_cg_iter == 4 and modl.data_consistency.n_cg_iter == 4


def test_stable_layer_names(rng):
    _, inputs = make_inputs(rng, multicoil=True)
    modl = MoDL(**SMALL_MODL, multicoil=True)
    modl(inputs)
    assert {layer.name for layer in modl.layers} == {"denoiser", "data_consistency"}
    varnet = VarNet(**SMALL_VARNET)
    varnet(inputs)
    assert [layer.name for layer in varnet.layers] == ["sensitivity_net", "image_net_0", "image_net_1"]
    assert [w.path.split("/")[-1] for w in varnet.weights[:2]] == ["dc_weight_0", "dc_weight_1"]


# --------------------------------------------------------------------------- MoDL closed forms


def test_modl_zero_denoiser_single_coil_matches_closed_form(rng):
    # A^H A + lam I is diagonal in k-space (eigenvalues 1 + lam and lam): CG converges in 2
    # steps, and each iteration is x_k = F^-1[(m y + lam F x_{k-1}) / (m + lam)].
    _, inputs = make_inputs(rng, multicoil=False)
    model = MoDL(n_iter=3, n_layers=2, n_filters=4, n_cg_iter=3, initial_regularization=0.3)
    model(inputs)
    zero_weights(model)
    lam = 0.7
    model.data_consistency.regularization.assign(lam)
    mask, y = inputs["mask"], inputs["kspace"]
    x = np_ifftc(y)
    for _ in range(3):
        x = np_ifftc((mask * y + lam * np_fftc(x)) / (mask + lam))
    np.testing.assert_allclose(model(inputs).numpy(), x, atol=1e-5)


def test_modl_zero_denoiser_multicoil_matches_dense_solve(rng):
    size, coils = 8, 3
    image = crandn(rng, (1, size, size))
    smaps = crandn(rng, (1, coils, size, size))
    mask = (rng.uniform(size=(1, 1, size)) < 0.5).astype(np.float32)
    mask[..., size // 2] = 1
    kspace = (np_fftc(image[:, None] * smaps) * mask[:, None]).astype(np.complex64)
    inputs = {"kspace": kspace, "mask": mask, "smaps": smaps}
    lam = 0.5
    model = MoDL(n_iter=2, n_layers=2, n_filters=4, n_cg_iter=40, initial_regularization=lam, multicoil=True)
    model.denoiser.build((None, None, None, 2))
    zero_weights(model)
    model.data_consistency.regularization.assign(lam)
    # Dense A = diag(mask) F S built column by column from unit images.
    n = size * size
    columns = []
    for j in range(n):
        e = np.zeros((size, size), np.complex128)
        e.flat[j] = 1
        columns.append((np_fftc(e[None] * smaps[0].astype(np.complex128)) * mask[0]).reshape(-1))
    a = np.stack(columns, axis=1)
    y = kspace[0].reshape(-1).astype(np.complex128)
    x = (a.conj().T @ y).reshape(-1)
    for _ in range(2):
        x = np.linalg.solve(a.conj().T @ a + lam * np.eye(n), a.conj().T @ y + lam * x)
    np.testing.assert_allclose(model(inputs).numpy()[0], x.reshape(size, size), atol=2e-4)


# --------------------------------------------------------------------------- VarNet closed forms


def np_acs(columns):
    """Reference: walk from the centre column outwards while columns are sampled."""
    width = columns.shape[-1]
    out = np.zeros_like(columns)
    for b, row in enumerate(columns):
        centre = width // 2
        if not row[centre]:
            continue
        lo = hi = centre
        while lo - 1 >= 0 and row[lo - 1]:
            lo -= 1
        while hi + 1 < width and row[hi + 1]:
            hi += 1
        out[b, lo : hi + 1] = 1
    return out


def test_acs_mask_matches_reference(rng):
    columns = (rng.uniform(size=(6, 20)) < 0.5).astype(np.float32)
    columns[0, 7:14] = 1  # a wide centre block
    columns[1, :] = 1  # fully sampled
    columns[2, 10] = 0  # centre not sampled
    columns[3, 10:12] = 1
    columns[3, 9] = 0  # run starting at the centre
    np.testing.assert_array_equal(acs_mask(columns[:, None]).numpy(), np_acs(columns))
    np.testing.assert_array_equal(acs_mask(columns[0]).numpy(), np_acs(columns[:1]))
    # A row-varying (batch, H, W) mask: a column counts only where every row is sampled.
    full = np.ones((1, 4, 20), np.float32)
    full[0, 2, 12] = 0
    expected = np.zeros((1, 20), np.float32)
    expected[0, :12] = 1
    np.testing.assert_array_equal(acs_mask(full).numpy(), expected)


def constant_image_net_reference(kspace, mask, etas):
    """VarNet with every U-net output zero: the NormUnet returns the per-item mean (real and
    imaginary channels), so the sensitivity maps are constants per coil and the regulariser
    is E(mean(R(k))). numpy transcription of the cascade."""
    batch, coils, h, w = kspace.shape
    columns = np.broadcast_to(mask, (batch, 1, w))[:, 0]
    acs = np_acs((columns > 0).astype(np.float32))
    low = np_ifftc(kspace * acs[:, None, None, :])
    means = low.mean(axis=(2, 3))  # (batch, coils)
    smaps = means / np.sqrt((np.abs(means) ** 2).sum(1, keepdims=True))
    smaps = np.broadcast_to(smaps[:, :, None, None], kspace.shape)
    m = mask[:, None]
    current = kspace.astype(np.complex128)
    for eta in etas:
        combined = (smaps.conj() * np_ifftc(current)).sum(1)
        regulariser = np_fftc(smaps * combined.mean(axis=(1, 2))[:, None, None, None])
        current = current - eta * m * (current - kspace) - regulariser
    return current, smaps


def test_varnet_zero_unets_match_numpy_cascade(rng):
    _, inputs = make_inputs(rng, multicoil=True)
    model = VarNet(n_iter=3, chans=4, pools=2, sens_chans=4, sens_pools=2, output_mode="sense")
    model(inputs)
    zero_weights(model)
    etas = [0.3, 0.7, 1.4]
    for weight, eta in zip(model.dc_weights, etas):
        weight.assign(eta)
    current, smaps = constant_image_net_reference(inputs["kspace"], inputs["mask"], etas)
    np.testing.assert_allclose(
        model.sensitivity_maps(tf.constant(inputs["kspace"]), inputs["mask"]).numpy(), smaps, atol=1e-5
    )
    expected_sense = (smaps.conj() * np_ifftc(current)).sum(1)
    np.testing.assert_allclose(model(inputs).numpy(), expected_sense, atol=1e-4)
    rss_model = VarNet.from_config(dict(model.get_config(), output_mode="rss"))
    rss_model(inputs)
    rss_model.set_weights(model.get_weights())
    expected_rss = np.sqrt((np.abs(np_ifftc(current)) ** 2).sum(1))
    out = rss_model(inputs).numpy()
    np.testing.assert_allclose(out.real, expected_rss, atol=1e-4)
    assert np.all(out.imag == 0)


# --------------------------------------------------------------------------- training, bad input


BAD = [
    ("missing_smaps", "missing \\['smaps'\\]"),
    ("mask_width", "mask has 30 columns"),
    ("nan_kspace", "kspace: expected finite values"),
    ("single_coil_kspace", "multicoil model"),
]


@pytest.mark.parametrize("cls,kwargs", [(MoDL, dict(SMALL_MODL, multicoil=True)), (VarNet, SMALL_VARNET)],
                         ids=["modl", "varnet"])
@pytest.mark.parametrize("problem,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_before_building(cls, kwargs, problem, message, rng):
    _, inputs = make_inputs(rng, multicoil=True)
    if problem == "missing_smaps":
        del inputs["smaps"]
    elif problem == "mask_width":
        inputs["mask"] = np.ones((1, SIZE - 2), np.float32)
    elif problem == "nan_kspace":
        inputs["kspace"] = inputs["kspace"].copy()
        inputs["kspace"][0, 1, 2, 3] = np.nan
    else:
        inputs["kspace"] = inputs["kspace"][:, 0]
    model = cls(**kwargs)
    with pytest.raises(ValueError, match=message):
        model(inputs)
    assert not model.built  # nothing was computed or created


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match="output_mode"):
        VarNet(output_mode="magnitude")
    with pytest.raises(ValueError, match="sensitivity_source"):
        VarNet(sensitivity_source="espirit")
    with pytest.raises(ValueError, match="n_layers"):
        MoDL(n_layers=1)
