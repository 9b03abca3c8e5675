"""`fastmri-zoo simulate` end to end: NIfTI in, files both pipeline families read."""

import os

import nibabel
import numpy as np
import pytest

from fastmri_zoo.cli import main
from fastmri_zoo.data.h5 import read_fastmri_h5, validate_fastmri_h5
from fastmri_zoo.data.pipelines import cartesian_dataset, noncartesian_3d_dataset, noncartesian_dataset


def np_ifftc(kspace):
    shifted = np.fft.ifftshift(kspace, axes=(-2, -1))
    return np.fft.fftshift(np.fft.ifft2(shifted, norm="ortho"), axes=(-2, -1))


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    y, x, z = np.meshgrid(np.linspace(-1, 1, 20), np.linspace(-1, 1, 16), np.linspace(-1, 1, 4), indexing="ij")
    volume = (np.exp(-(x**2 + y**2) / 0.4) * (1 + 0.3 * z) + 0.1).astype(np.float32) * 300
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), folder / "head.nii.gz")
    out = folder / "out"
    code = main(["simulate", str(folder / "head.nii.gz"), str(out), "--coils", "3", "--seed", "5", "--snr", "40"])
    assert code == 0
    return volume, str(out)


def test_cli_writes_valid_file(simulated, capsys):
    volume, out = simulated
    assert os.listdir(out) == ["head.h5"]
    path = os.path.join(out, "head.h5")
    assert validate_fastmri_h5(path)["kspace_shape"] == (4, 3, 20, 16)
    data = read_fastmri_h5(path)
    np.testing.assert_allclose(data.reference, np.moveaxis(volume, -1, 0) / volume.max(), atol=1e-5)
    assert data.attrs["snr_db"] == 40.0 and data.attrs["coils"] == 3 and data.attrs["seed"] == 5
    # Noise at 40 dB: the RSS of the coil images departs from the reference by ~1 % of the signal.
    rss = np.sqrt((np.abs(np_ifftc(data.kspace)) ** 2).sum(1))
    relative = np.linalg.norm(rss - data.reference) / np.linalg.norm(data.reference)
    assert 1e-3 < relative < 5e-2


def test_cli_output_feeds_cartesian_and_noncartesian_pipelines(simulated):
    _, out = simulated
    inputs, target = next(iter(cartesian_dataset(out, "equispaced", [0.25], [2], multicoil=True, batch_size=4)))
    assert inputs["kspace"].shape == (4, 3, 20, 16) and inputs["smaps"].shape == (4, 3, 20, 16)
    assert target.shape == (4, 20, 16)
    inputs, target = next(iter(noncartesian_dataset(out, "radial", 4, multicoil=True, batch_size=2)))
    assert inputs["kspace"].shape == (2, 3, 4 * 32) and inputs["traj"].shape == (2, 2, 4 * 32)
    assert inputs["smaps"].shape == (2, 3, 20, 16) and target.shape == (2, 20, 16)
    inputs, target = next(iter(noncartesian_3d_dataset(out, 8, multicoil=False)))
    assert inputs["traj"].shape[1] == 3 and target.shape == (1, 4, 20, 16)
    assert np.all(np.isfinite(inputs["kspace"].numpy())) and float(inputs["scale"][0]) > 0


def test_cli_reports_missing_input(tmp_path, capsys):
    code = main(["simulate", str(tmp_path / "absent.nii.gz"), str(tmp_path / "out")])
    assert code == 2
    assert "absent.nii.gz" in capsys.readouterr().err


def test_cli_slices_keeps_a_range(tmp_path):
    volume = np.random.default_rng(1).uniform(0.1, 1, (12, 10, 6)).astype(np.float32)
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), tmp_path / "v.nii.gz")
    assert main(["simulate", str(tmp_path / "v.nii.gz"), str(tmp_path / "o"), "--coils", "1", "--slices", "2:5"]) == 0
    data = read_fastmri_h5(tmp_path / "o" / "v.h5")
    assert data.kspace.shape == (3, 12, 10)
    kept = np.moveaxis(volume, -1, 0)[2:5]
    np.testing.assert_allclose(data.reference, kept / kept.max(), atol=1e-5)


def test_cli_rejects_bad_slices(tmp_path, capsys):
    volume = np.ones((8, 8, 4), np.float32)
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), tmp_path / "v.nii.gz")
    assert main(["simulate", str(tmp_path / "v.nii.gz"), str(tmp_path / "o"), "--slices", "a:b"]) == 2
    assert "--slices: expected START:STOP" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "v.nii.gz"), str(tmp_path / "o"), "--slices", "10:12"]) == 2
    assert "keeps no slice" in capsys.readouterr().err
