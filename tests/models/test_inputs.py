"""Bad input to the Cartesian networks: clear ValueErrors before any computation."""

import numpy as np
import pytest

from fastmri_zoo.models import CascadeNet, KIKINet, PDNet, UNet, XPDNet
from tests.models.conftest import SIZE, make_inputs


def test_mask_width_mismatch(rng):
    _, inputs = make_inputs(rng, multicoil=False)
    inputs["mask"] = np.ones((1, SIZE - 2), np.float32)
    with pytest.raises(ValueError, match="mask has 30 columns"):
        PDNet(n_iter=1, n_filters=4)(inputs)


def test_missing_smaps_for_multicoil(rng):
    _, inputs = make_inputs(rng, multicoil=True)
    del inputs["smaps"]
    with pytest.raises(ValueError, match="missing \\['smaps'\\]"):
        CascadeNet(n_iter=1, n_convs=1, n_filters=4, multicoil=True)(inputs)


def test_single_coil_kspace_to_multicoil_model(rng):
    _, single = make_inputs(rng, multicoil=False)
    _, multi = make_inputs(rng, multicoil=True)
    single["smaps"] = multi["smaps"]
    with pytest.raises(ValueError, match="multicoil model"):
        XPDNet(denoiser_kwargs=dict(layers_n_channels=[4, 8]), n_iter=1, multicoil=True)(single)


def test_multicoil_kspace_to_single_coil_model(rng):
    _, multi = make_inputs(rng, multicoil=True)
    with pytest.raises(ValueError, match="single-coil model"):
        UNet(layers_n_channels=[4, 8])(multi)


def test_smaps_coils_mismatch(rng):
    _, multi = make_inputs(rng, multicoil=True)
    multi["smaps"] = multi["smaps"][:, :2]
    with pytest.raises(ValueError, match="smaps has 2 coils"):
        PDNet(n_iter=1, n_filters=4, multicoil=True)(multi)


@pytest.mark.parametrize("key", ["kspace", "mask"])
def test_non_finite_values(key, rng):
    _, inputs = make_inputs(rng, multicoil=False)
    inputs[key] = inputs[key].copy()
    inputs[key][0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=f"{key}: expected finite values"):
        KIKINet(n_iter=1, n_convs=1, n_filters=4)(inputs)


def test_real_kspace_refused(rng):
    _, inputs = make_inputs(rng, multicoil=False)
    inputs["kspace"] = np.abs(inputs["kspace"])
    with pytest.raises(ValueError, match="kspace: expected complex"):
        CascadeNet(n_iter=1, n_convs=1, n_filters=4)(inputs)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="denoiser"):
        XPDNet(denoiser="resnet")
    with pytest.raises(ValueError, match="refine_smaps"):
        XPDNet(refine_smaps=True)
    with pytest.raises(ValueError, match="input_mode"):
        UNet(input_mode="phase")
    with pytest.raises(ValueError, match="evaluated_primal"):
        XPDNet(n_primal=1, evaluated_primal=1)
