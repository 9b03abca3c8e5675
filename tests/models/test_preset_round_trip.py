"""Every model class of fastmri_zoo.models through save_to_preset / from_preset (local folder):
the same config and bit-identical outputs."""

import json

import numpy as np
import pytest


from fastmri_zoo.models import CascadeNet, KIKINet, MoDL, PDNet, UNet, VarNet, XPDNet
from fastmri_zoo.presets import from_preset, save_to_preset
from tests.models.conftest import make_inputs, exported_model_classes

UNET_SMALL = dict(layers_n_channels=[4, 8, 16])

ROUND_TRIPS = [
    ("unet", UNet, dict(UNET_SMALL), False),
    ("unet_fastmri_mc", UNet, dict(layers_n_channels=[4, 8], input_mode="complex", normalization="instance",
                                   upsampling="transpose", use_bias=False, multicoil=True), True),
    ("cascadenet", CascadeNet, dict(n_cascade=2, n_convs=2, n_filters=8, noiseless=False), False),
    ("kikinet", KIKINet, dict(n_iter=2, n_convs=2, n_filters=8), False),
    ("pdnet", PDNet, dict(n_iter=2, n_filters=8), False),
    ("xpdnet_single", XPDNet, dict(denoiser="dncnn", denoiser_kwargs=dict(n_convs=2, n_filters=8), n_iter=2), False),
    ("xpdnet_mc_refiner", XPDNet, dict(denoiser="unet", denoiser_kwargs=dict(layers_n_channels=[4, 8]), n_iter=2,
                                       multicoil=True, refine_smaps=True), True),
    ("modl", MoDL, dict(n_iter=2, n_layers=3, n_filters=8, cg_iterations=3), False),
    ("modl_mc", MoDL, dict(n_iter=2, n_layers=3, n_filters=8, cg_iterations=3, multicoil=True), True),
    ("varnet", VarNet, dict(n_cascades=2, chans=4, pools=2, sens_chans=4, sens_pools=2), True),
]


def test_every_model_class_is_covered():
    exported = exported_model_classes()
    covered = {cls for _, cls, _, _ in ROUND_TRIPS}
    assert exported - covered == set(), f"add a round-trip case for {sorted(c.__name__ for c in exported - covered)}"


def perturb_all_weights(model, rng):
    """Move every variable (kernels, scalar step sizes, batch-norm statistics) away from its
    initial value, so a loader that silently kept fresh or default weights would be caught."""
    for variable in model.weights:
        value = variable.numpy()
        noise = rng.uniform(0.05, 0.15, size=value.shape).astype(value.dtype)
        variable.assign(np.abs(value) + noise if "variance" in variable.path else value + noise)


@pytest.mark.parametrize("name,cls,kwargs,multicoil", ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS])
def test_save_then_load_gives_identical_outputs_and_config(name, cls, kwargs, multicoil, tmp_path, rng):
    _, inputs = make_inputs(rng, multicoil, batch=1)
    model = cls(**kwargs)
    model(inputs)
    perturb_all_weights(model, rng)
    out = model(inputs).numpy()
    folder = save_to_preset(model, tmp_path / name, example_inputs=inputs, description=f"round trip of {name}")
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.weights.h5", "metadata.json", "README.md"}

    loaded = from_preset(str(folder))
    assert type(loaded) is cls
    assert json.loads(json.dumps(loaded.get_config())) == json.loads(json.dumps(model.get_config()))
    assert loaded.count_params() == model.count_params()
    np.testing.assert_array_equal(loaded(inputs).numpy(), out)
    # The class method gives the same model.
    again = cls.from_preset(str(folder))
    np.testing.assert_array_equal(again(inputs).numpy(), out)
