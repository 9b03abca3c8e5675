"""Every model class through ``fastmri-zoo reconstruct``: a preset folder and a small simulated
fastMRI-layout file in, ``reconstruction`` out, equal to the model applied directly to inputs
prepared here independently (numpy FFT, the preset's mask with seed 0, max-of-zero-filled scale,
ACS coil maps)."""


import h5py
import keras
import numpy as np
import pytest

from fastmri_zoo import cli
from fastmri_zoo.data.h5 import write_fastmri_h5
from fastmri_zoo.models import XPDNet
from fastmri_zoo.physics import estimate_sensitivity_maps
from fastmri_zoo.sampling import create_mask_func
from tests.models.conftest import np_fftc, np_ifftc
from tests.models.families import family_cases

SLICES, SIZE, COILS = 3, 32, 4
ACQUISITION = {"mask_type": "equispaced_fraction", "center_fraction": 0.25, "acceleration": 2}
MWCNN_SMALL = dict(n_filters_per_scale=[4, 8], n_convs_per_scale=[1, 1], first_conv_n_filters=12)

# The heaviest cases run in the slow selection (CI): the command's path is the same for every
# model, and these families' forward passes are checked at small size in test_families.py.
SLOW = {"VarNet-single", "VarNet-multicoil", "CascadeNet-multicoil", "xpdnet_mwcnn_mc_refined"}

# Every Cartesian family in its small configurations (generated), plus denoisers of XPDNet.
CASES = [
    (name, cls, kwargs, bool(kwargs.get("multicoil", False)))
    for name, cls, kwargs in family_cases()
    if cls.ACQUISITION == "cartesian"
] + [
    ("xpdnet_mwcnn_mc_refined", XPDNet, dict(denoiser="mwcnn", denoiser_kwargs=MWCNN_SMALL, n_iter=2, multicoil=True,
                                             refine_smaps=True), True),
    ("xpdnet_dncnn_dual_mc", XPDNet, dict(denoiser="dncnn", denoiser_kwargs=dict(n_convs=2, n_filters=8), n_iter=2,
                                          primal_only=False, n_dual=2, kspace_net_kwargs=dict(n_filters=8),
                                          multicoil=True), True),
]


def simulated_kspace(rng, multicoil):
    """Fully sampled k-space of smooth complex phantoms: (slices, H, W) or (slices, coils, H, W)."""
    y, x = np.meshgrid(np.linspace(-1, 1, SIZE), np.linspace(-1, 1, SIZE), indexing="ij")
    images = []
    for _ in range(SLICES):
        magnitude = sum(
            rng.uniform(0.5, 1.0) * np.exp(-((y - rng.uniform(-0.4, 0.4)) ** 2 + (x - rng.uniform(-0.4, 0.4)) ** 2)
                                            / rng.uniform(0.05, 0.2))
            for _ in range(3)
        )
        images.append(magnitude * np.exp(1j * np.pi * rng.uniform(-0.5, 0.5) * (x + y)))
    images = np.stack(images) * 1e-3  # arbitrary file units: the pipeline must scale them out and back
    if not multicoil:
        return np_fftc(images).astype(np.complex64)
    centres = [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    smaps = np.stack([np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 2.0) * np.exp(1j * (cy * y + cx * x))
                      for cy, cx in centres])
    return np_fftc(images[:, None] * smaps[None]).astype(np.complex64)


def prepared_inputs(kspace, multicoil):
    """What the reconstruct command should feed the model, computed with numpy."""
    mask, num_low = create_mask_func(**{"mask_type": ACQUISITION["mask_type"],
                                        "center_fractions": ACQUISITION["center_fraction"],
                                        "accelerations": ACQUISITION["acceleration"]})(kspace.shape, seed=0)
    mask = np.asarray(mask, np.float32).reshape(1, SIZE)
    assert num_low == round(SIZE * ACQUISITION["center_fraction"])
    assert abs(mask.mean() - 1 / ACQUISITION["acceleration"]) < 0.1
    masked = kspace * mask
    zero_filled = np.abs(np_ifftc(masked))
    if multicoil:
        zero_filled = np.sqrt(np.sum(zero_filled**2, axis=1))
    scales = zero_filled.reshape(SLICES, -1).max(axis=1)
    scaled = (masked / scales.reshape((-1,) + (1,) * (masked.ndim - 1))).astype(np.complex64)
    inputs = {"kspace": scaled, "mask": np.broadcast_to(mask, (SLICES, 1, SIZE)).astype(np.float32)}
    if multicoil:
        inputs["smaps"] = estimate_sensitivity_maps(scaled, num_low).numpy()
    return inputs, scales, zero_filled


def perturb_all_weights(model, rng):
    """Move every variable away from its initial value (a loader keeping fresh weights would show)."""
    for variable in model.weights:
        value = variable.numpy()
        noise = rng.uniform(-0.02, 0.02, size=value.shape).astype(value.dtype)
        variable.assign(np.abs(value) + np.abs(noise) if "variance" in variable.path else value + noise)


@pytest.mark.parametrize(
    "name,cls,kwargs,multicoil",
    [pytest.param(*case, marks=pytest.mark.slow) if case[0] in SLOW else case for case in CASES],
    ids=[c[0] for c in CASES],
)
def test_reconstruct_command_equals_the_model_on_independently_prepared_inputs(
    name, cls, kwargs, multicoil, tmp_path, rng, capsys
):
    kspace = simulated_kspace(rng, multicoil)
    reference = np.abs(np_ifftc(kspace))
    if multicoil:
        reference = np.sqrt(np.sum(reference**2, axis=1))
    h5 = tmp_path / "volume.h5"
    write_fastmri_h5(h5, kspace, reconstruction_rss=reference.astype(np.float32),
                     acquisition="AXT2" if multicoil else "CORPD_FBK")

    inputs, scales, zero_filled = prepared_inputs(kspace, multicoil)
    keras.utils.set_random_seed(0)  # the initial weights, and so the margin of the last check, fixed
    model = cls(**kwargs)
    model(inputs)
    perturb_all_weights(model, rng)
    expected = np.abs(model(inputs).numpy()) * scales[:, None, None]
    folder = model.save_to_preset(tmp_path / name, acquisition=ACQUISITION)

    out = tmp_path / "reconstruction.h5"
    assert cli.main(["reconstruct", str(folder), str(h5), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    with h5py.File(out, "r") as f:
        reconstruction = f["reconstruction"][()]
    assert reconstruction.shape == (SLICES, SIZE, SIZE) and reconstruction.dtype == np.float32
    np.testing.assert_allclose(reconstruction, expected, rtol=0, atol=1e-4 * expected.max())
    # The network did something: its output is not the zero-filled image it starts from. A small
    # randomly initialised network moves it by 1-2% of its maximum (CascadeNet-single: 1.5% with
    # seed 0, 1.0-2.1% over seeds); float error alone would stay near 1e-6.
    assert np.abs(reconstruction - zero_filled).max() > 2e-3 * zero_filled.max()
