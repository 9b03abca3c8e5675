"""Every shipped checkpoint loads offline and beats its baseline on a held-out subject.

The held-out slices are bundled samples (``fastmri_zoo/samples/ixi_heldout_*.h5``) of an IXI
subject that no checkpoint saw in training; the reference is the fully sampled image.
Cartesian checkpoints must beat zero-filled; non-Cartesian ones the adjoint with density
compensation (RSS over coils), on the acquisition recorded in their preset, simulated from the
same slices (3D: from the bundled held-out volume).

Loading and running every paper-size checkpoint is marked ``slow`` (CI runs it after the default suite);
the small-size checks of the same code paths are in tests/models and tests/test_inference_*.
"""

import shutil

import numpy as np
import pytest
import tensorflow as tf

import fastmri_zoo
from fastmri_zoo import metrics
from fastmri_zoo.demo import bundled_sample
from fastmri_zoo.inference import reconstruct_file
from fastmri_zoo.registry import list_entries

SHIPPED = [entry for entry in list_entries(pretrained=True) if entry.bundled and entry.dataset is None]
CARTESIAN = [entry for entry in SHIPPED if entry.trajectory == "cartesian"]
NONCARTESIAN = [entry for entry in SHIPPED if entry.trajectory != "cartesian"]


def test_the_zoo_ships_trained_checkpoints():
    assert {"pdnet-cartesian-singlecoil-af4", "kikinet-cartesian-singlecoil-af4"} <= {entry.name for entry in SHIPPED}


@pytest.mark.slow
@pytest.mark.parametrize("entry", CARTESIAN, ids=lambda entry: entry.name)
def test_loads_offline_and_beats_zero_filled(entry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = fastmri_zoo.load(entry.name)
    sample = bundled_sample(f"ixi_heldout_{entry.coils}")
    result = reconstruct_file(model, sample, seed=0, progress=False)
    # the acquisition the preset records (a federated checkpoint's name gives none: its sites differ)
    recorded = model.preset_metadata["acquisition"]["acceleration"]
    assert entry.acceleration in (None, recorded)
    # trained on several accelerations (NasNet: [4, 8]): run at the first
    first = recorded[0] if isinstance(recorded, list) else recorded
    assert result.acceleration == pytest.approx(first, rel=0.1)
    # scores computed here from the returned images, independently of reconstruct_file's own
    network = metrics.psnr(result.reference, result.reconstruction)
    zero_filled = metrics.psnr(result.reference, result.zero_filled)
    assert network > zero_filled
    assert metrics.ssim(result.reference, result.reconstruction) > metrics.ssim(result.reference, result.zero_filled)
    assert np.all(np.isfinite(result.reconstruction))


def noncartesian_heldout(entry, folder):
    """(inputs, target) of the held-out sample under the entry's recorded acquisition."""
    from fastmri_zoo.data import h5, pipelines
    from fastmri_zoo.data.simulate import simulate_volume

    model = fastmri_zoo.load(entry.name)
    acquisition = model.preset_metadata["acquisition"]
    if entry.coils == "3d":
        with np.load(bundled_sample("ixi_heldout_volume")) as sample:
            magnitude = sample["magnitude"].astype(np.float32)
        kspace, reference = simulate_volume(magnitude, coils=1, seed=0)
        h5.write_fastmri_h5(folder / "volume.h5", kspace, reference, acquisition="simulated")
        dataset = pipelines.noncartesian_3d_dataset(folder, acquisition["acceleration"])
    else:
        shutil.copy(bundled_sample(f"ixi_heldout_{entry.coils}"), folder / "slices.h5")
        dataset = pipelines.noncartesian_dataset(
            folder, acquisition["trajectory"], acquisition["acceleration"], multicoil=entry.coils == "multicoil",
            batch_size=8)
    inputs, target = next(iter(dataset))
    return model, {key: value for key, value in inputs.items() if key != "scale"}, target.numpy()


@pytest.mark.slow
@pytest.mark.parametrize("entry", NONCARTESIAN, ids=lambda entry: entry.name)
def test_noncartesian_loads_offline_and_beats_adjoint_dcomp(entry, monkeypatch, tmp_path):
    from fastmri_zoo.physics import NUFFT, rss

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, inputs, target = noncartesian_heldout(entry, tmp_path)
    network = np.abs(model(inputs).numpy())
    # baseline computed here, independently of the model: RSS of the coils' A^H D y
    kspace = inputs["kspace"] if entry.coils == "multicoil" else inputs["kspace"][:, None]
    operator = NUFFT(inputs["traj"], target.shape[1:])
    adjoint = rss(operator.coil_images(kspace * tf.cast(inputs["dcomp"], tf.complex64)[:, None]), axis=1).numpy()
    if entry.coils == "3d":  # one volume, scored slice-wise as the model cards are
        target, network, adjoint = target[0], network[0], adjoint[0]
    assert np.all(np.isfinite(network))
    assert metrics.psnr(target, network) > metrics.psnr(target, adjoint)
    assert metrics.ssim(target, network) > metrics.ssim(target, adjoint)


DENOISERS = [entry for entry in list_entries(pretrained=True) if entry.bundled and entry.task == "denoising"]


@pytest.mark.slow
@pytest.mark.parametrize("entry", DENOISERS, ids=lambda entry: entry.name)
def test_denoisers_load_offline_and_denoise_a_held_out_slice(entry, monkeypatch):
    """Each shipped denoiser, on the bundled held-out IXI slices (peak 1) with white noise of sigma 25 / 255:
    PSNR at least 3 dB above the noisy input (fastMRI PSNR, computed here)."""
    import h5py

    from fastmri_zoo.denoise import denoise_images

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = fastmri_zoo.load(entry.name)
    with h5py.File(bundled_sample("ixi_heldout_singlecoil"), "r") as handle:
        clean = handle["reconstruction_rss"][()].astype(np.float32)
    clean /= clean.reshape(len(clean), -1).max(axis=1)[:, None, None]
    sigma = 25 / 255
    noisy = (clean + sigma * np.random.default_rng(0).standard_normal(clean.shape)).astype(np.float32)
    denoised = denoise_images(model, noisy, sigma)
    for truth, before, after in zip(clean, noisy, denoised):
        assert metrics.psnr(truth, after, maxval=1.0) > metrics.psnr(truth, before, maxval=1.0) + 3
