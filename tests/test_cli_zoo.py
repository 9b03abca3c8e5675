"""The zoo's commands on a checkpoint the tests create: list, info, reconstruct, evaluate, export-hub."""

import shutil

import h5py
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo import cli, metrics, registry
from fastmri_zoo.data.h5 import write_fastmri_h5
from fastmri_zoo.hub import sha256_file
from fastmri_zoo.registry import CheckpointEntry
from fastmri_zoo.sampling import create_mask_func
from tests.zoo_helpers import trained_model

ACQUISITION = {"mask_type": "equispaced_fraction", "center_fraction": 0.25, "acceleration": 2}
NAME = "tinynet-cartesian-singlecoil-af2"


def np_fftc(x):
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def np_ifftc(x):
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def _bundled_checkpoint(tmp_path, monkeypatch, acquisition, description, **entry):
    """(registered entry, model): a tiny trained network saved as a bundled checkpoint of the registry."""
    root = tmp_path / "weights"
    root.mkdir()
    monkeypatch.setenv(registry.WEIGHTS_DIR_ENV, str(root))
    model = trained_model(filters=3, seed=2)
    folder = model.save_to_preset(tmp_path / "preset", description=description, acquisition=acquisition)
    shutil.copytree(folder, root / "tiny")
    entry = CheckpointEntry(architecture="tinynet", trajectory="cartesian", coils="singlecoil", bundled="tiny",
                            sha256=sha256_file(folder / "model.weights.h5"), pretrained=True, **entry)
    registry.register(entry)
    return entry, model


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    entry, model = _bundled_checkpoint(tmp_path, monkeypatch, ACQUISITION, "A tiny test network.", acceleration=2)
    yield model
    registry.unregister(entry.name)


@pytest.fixture
def volume(tmp_path):
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[-1:1:24j, -1:1:32j]
    image = np.stack([(xx**2 + yy**2 < 0.7) * (1 + 0.3 * s) * np.exp(1j * xx) for s in range(3)]).astype(np.complex64)
    image += 0.01 * (rng.standard_normal(image.shape) + 1j * rng.standard_normal(image.shape))
    kspace = np_fftc(image).astype(np.complex64)
    path = tmp_path / "vol.h5"
    write_fastmri_h5(path, kspace, np.abs(image).astype(np.float32), acquisition="test")
    return path, kspace, np.abs(image)


def test_list_and_info(checkpoint, capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert NAME in out and "bundled" in out
    assert cli.main(["info", NAME]) == 0
    assert "A tiny test network." in capsys.readouterr().out


def _expected(model, kspace, seed=0, mask=None):
    """The reconstruction computed independently: numpy mask (the checkpoint's acquisition unless given),
    FFT and scale, then the network."""
    if mask is None:
        mask, _ = create_mask_func("equispaced_fraction", 0.25, 2)(kspace.shape, seed=seed)
    masked = kspace * mask
    scale = np.abs(np_ifftc(masked)).max(axis=(-2, -1))
    out = model({"kspace": tf.constant((masked / scale[:, None, None]).astype(np.complex64)),
                 "mask": tf.constant(np.broadcast_to(mask, (kspace.shape[0], 1, kspace.shape[-1])).astype(np.float32))})
    return np.abs(out.numpy()) * scale[:, None, None], np.abs(np_ifftc(masked))


def test_reconstruct_fully_sampled_file_replays_the_recorded_acquisition(checkpoint, volume, tmp_path, capsys):
    path, kspace, reference = volume
    out, png = tmp_path / "out.h5", tmp_path / "out.png"
    assert cli.main(["reconstruct", NAME, str(path), "-o", str(out), "--png", str(png)]) == 0
    with h5py.File(out) as handle:
        got = handle["reconstruction"][()]
        assert handle.attrs["acceleration"] == pytest.approx(2.0, rel=0.1)
    expected, _ = _expected(checkpoint, kspace)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.max())
    assert png.read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "PSNR" in out
    assert "sampling: vol.h5 is fully sampled; undersampled retrospectively: equispaced_fraction mask" in out


MIXED = {"mask_type": "random", "center_fraction": [0.25, 0.125], "acceleration": [2, 4]}


@pytest.fixture
def mixed_checkpoint(tmp_path, monkeypatch):
    """A checkpoint trained on two accelerations, each with its centre fraction (as NasNet's recipe)."""
    entry, model = _bundled_checkpoint(tmp_path, monkeypatch, MIXED, "Two accelerations.", variant="mixed")
    yield entry.name, model
    registry.unregister(entry.name)


@pytest.mark.parametrize("given, center_fraction, acceleration", [(None, 0.25, 2), ("4", 0.125, 4), ("3", 0.25, 3)])
def test_reconstruct_with_a_checkpoint_of_several_accelerations_uses_one(mixed_checkpoint, volume, tmp_path, capsys,
                                                                         given, center_fraction, acceleration):
    """Its first acceleration by default, one it was trained at with that one's centre fraction, never one drawn
    at random (fastMRI's mask functions draw from lists)."""
    name, model = mixed_checkpoint
    path, kspace, _ = volume
    out = tmp_path / "out.h5"
    assert cli.main(["reconstruct", name, str(path), "-o", str(out), *(["--acceleration", given] if given else [])]) == 0
    mask, num_low = create_mask_func("random", center_fraction, acceleration)(kspace.shape, seed=0)
    with h5py.File(out) as handle:
        got = handle["reconstruction"][()]
        assert handle.attrs["acceleration"] == pytest.approx(1 / mask.mean())
    np.testing.assert_allclose(got, _expected(model, kspace, mask=mask)[0], rtol=1e-4, atol=1e-5 * got.max())
    origin = "as given" if given else "the checkpoint's acquisition"
    assert (f"undersampled retrospectively: random mask, AF {1 / mask.mean():.2f} ({num_low} centre columns, seed 0; "
            f"{origin})") in capsys.readouterr().out


def test_reconstruct_uses_an_undersampled_file_as_is(checkpoint, volume, tmp_path, capsys):
    path, kspace, reference = volume
    mask, _ = create_mask_func("equispaced_fraction", 0.25, 2)(kspace.shape, seed=0)
    under = tmp_path / "under.h5"
    write_fastmri_h5(under, (kspace * mask).astype(np.complex64), reference.astype(np.float32))
    assert cli.main(["reconstruct", NAME, str(under), "-o", str(tmp_path / "o.h5")]) == 0
    assert "sampling: column mask (16 of 32 columns, AF 2.00) read from the zeros of kspace; used as the mask, " \
           "not undersampled again" in capsys.readouterr().out
    with h5py.File(tmp_path / "o.h5") as handle:
        got = handle["reconstruction"][()]
    np.testing.assert_allclose(got, _expected(checkpoint, kspace)[0], rtol=1e-4, atol=1e-5 * got.max())
    assert cli.main(["reconstruct", NAME, str(under), "-o", str(tmp_path / "o2.h5"), "--acceleration", "4"]) == 2
    assert "already undersampled" in capsys.readouterr().err
    assert not (tmp_path / "o2.h5").exists()


def test_evaluate_prints_network_and_zero_filled(checkpoint, volume, tmp_path, capsys):
    path, kspace, reference = volume
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(path, folder / "a.h5")
    assert cli.main(["evaluate", NAME, str(folder)]) == 0
    out = capsys.readouterr().out
    _, zero_filled = _expected(checkpoint, kspace)
    zf_psnr = metrics.psnr(reference, zero_filled)
    zf_line = next(line for line in out.splitlines() if line.startswith("zero-filled"))
    assert float(zf_line.split()[1]) == pytest.approx(zf_psnr, abs=1e-3)
    assert any(line.startswith(NAME + " ") for line in out.splitlines())  # the full name
    assert "one volume: no spread" in out and "nan" not in out


def test_clear_errors(checkpoint, volume, tmp_path, capsys):
    assert cli.main(["reconstruct", "tinynet-cartesian-singlecoil-af3", "x.h5", "-o", "y.h5"]) == 2
    assert NAME in capsys.readouterr().err  # the closest names are suggested
    multicoil = tmp_path / "mc.h5"
    write_fastmri_h5(multicoil, np.ones((1, 2, 8, 8), np.complex64))
    assert cli.main(["reconstruct", NAME, str(multicoil), "-o", str(tmp_path / "o.h5"), "--acceleration", "2"]) == 2
    assert "single-coil model but the file holds 2 coils" in capsys.readouterr().err


def test_export_hub_folder(checkpoint, tmp_path):
    assert cli.main(["export-hub", NAME, str(tmp_path / "export")]) == 0
    names = sorted(p.name for p in (tmp_path / "export").iterdir())
    assert {"config.json", "metadata.json", "model.weights.h5", "README.md"} <= set(names)


def test_list_and_info_commands_never_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys; from fastmri_zoo import cli; "
            "assert cli.main(['list']) == 0 and cli.main(['info', 'ncpdnet-radial-3d']) == 0; "
            "print('TENSORFLOW', 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "TENSORFLOW False"
    rows = {line.split()[0]: line.split()[-1] for line in result.stdout.splitlines()[1:-1] if line.strip()}
    assert rows["ncpdnet-radial-3d"] == "bundled" and rows["ncpdnet-radial-3d-oasis"] == "Hub"
    assert "# ncpdnet-radial-3d" in result.stdout  # the bundled model card
