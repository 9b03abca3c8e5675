"""``fastmri-zoo denoise NAME IMAGE --sigma S [-o OUT] [--png PNG]`` on a tiny learnlet denoiser the tests
save as a preset:

- round trips per format (NIfTI, DICOM file and folder, h5, npy, npz): at sigma = 0 the learnlet (exact
  reconstruction) gives the input back, in the input's format and layout, whatever the image size (padded
  and cropped back); at sigma > 0 the output is the network applied to each slice divided by its peak,
  with sigma divided by the same, then multiplied back (computed here with the model directly);
- bad inputs fail with one line, exit code 2, before the model loads: unknown format, NaN, negative
  sigma, a reconstruction checkpoint, an output that is the input or of another format.
"""

import os

import h5py
import keras
import nibabel
import numpy as np
import pytest
from pydicom.uid import generate_uid

from fastmri_zoo import cli, models
from fastmri_zoo.data.images import read_image_file
from tests.data.test_simulate import _write_dicom_slice
from tests.layers.test_learnlets import randomise


@pytest.fixture(scope="module")
def denoiser(tmp_path_factory):
    """(preset folder, model): a small learnlet with random filters and thresholds in [0, 5]."""
    keras.utils.set_random_seed(0)
    model = models.LearnletDenoiser(**models.LearnletDenoiser.small_config())
    model.build()
    randomise(model.learnlet, np.random.default_rng(1))
    folder = tmp_path_factory.mktemp("denoiser") / "preset"
    model.save_to_preset(folder, example_inputs={"image": np.zeros((1, 16, 16, 1), np.float32),
                                                 "sigma": np.zeros(1, np.float32)}, description="tiny learnlet")
    return str(folder), model


def run(capsys, *args):
    code = cli.main(["denoise", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def direct(model, slices, sigma):
    """The model on each slice divided by its peak (sigma too), multiplied back: the command's definition."""
    outputs = []
    for image in slices:
        peak = np.abs(image).max()
        out = model({"image": (image / peak)[None, ..., None].astype(np.float32),
                     "sigma": np.array([sigma / peak], np.float32)}).numpy()[0, ..., 0]
        outputs.append(out * peak)
    return np.stack(outputs)


def test_npy_sigma_zero_returns_the_input_and_sigma_denoises(denoiser, tmp_path, capsys):
    folder, model = denoiser
    volume = np.random.default_rng(2).uniform(0, 300, (3, 20, 24)).astype(np.float32)  # 3 slices of 20 x 24
    np.save(tmp_path / "in.npy", volume)
    code, out, err = run(capsys, folder, tmp_path / "in.npy", "--sigma", 0, "-o", tmp_path / "out.npy")
    assert code == 0, err
    assert f"denoised {tmp_path / 'in.npy'}: 3 slice(s) of 20 x 24 (npy), sigma 0" in out
    assert f"wrote {tmp_path / 'out.npy'}" in out
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), volume, atol=1e-5 * 300)

    volume = volume[:, :16, :16]  # a multiple of 2^n_scales: no padding, the network as defined
    np.save(tmp_path / "in.npy", volume)
    code, out, err = run(capsys, folder, tmp_path / "in.npy", "--sigma", 30, "-o", tmp_path / "out.npy",
                         "--png", tmp_path / "f.png")
    assert code == 0, err
    result = np.load(tmp_path / "out.npy")
    np.testing.assert_allclose(result, direct(model, volume, 30.0), rtol=1e-5, atol=1e-3)
    assert np.abs(result - volume).max() > 1.0 and (tmp_path / "f.png").stat().st_size > 0
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_nifti_h5_npz_dicom_round_trips(denoiser, tmp_path, capsys):
    folder, _ = denoiser
    rng = np.random.default_rng(3)
    volume = rng.uniform(0, 100, (18, 20, 3)).astype(np.float32)
    nibabel.save(nibabel.Nifti1Image(volume, np.diag([1.0, 1.0, 2.0, 1.0])), tmp_path / "v.nii.gz")
    assert run(capsys, folder, tmp_path / "v.nii.gz", "--sigma", 0, "-o", tmp_path / "o.nii.gz")[0] == 0
    np.testing.assert_allclose(nibabel.load(tmp_path / "o.nii.gz").get_fdata(), volume, atol=1e-3)

    with h5py.File(tmp_path / "r.h5", "w") as handle:
        handle["reconstruction"] = volume.transpose(2, 0, 1)
    assert run(capsys, folder, tmp_path / "r.h5", "--sigma", 0, "-o", tmp_path / "o.h5")[0] == 0
    with h5py.File(tmp_path / "o.h5", "r") as handle:
        np.testing.assert_allclose(handle["reconstruction"][()], volume.transpose(2, 0, 1), atol=1e-3)
        assert handle.attrs["sigma"] == 0.0 and handle.attrs["denoiser"] == folder

    plane = rng.uniform(size=(12, 12))
    np.savez(tmp_path / "a.npz", image=plane, spacing=np.array([1.0, 1.0]))
    assert run(capsys, folder, tmp_path / "a.npz", "--sigma", 0, "-o", tmp_path / "o.npz")[0] == 0
    with np.load(tmp_path / "o.npz") as written:
        np.testing.assert_allclose(written["image"], plane, atol=1e-5)
        np.testing.assert_array_equal(written["spacing"], [1.0, 1.0])

    series = tmp_path / "series"
    series.mkdir()
    uid = generate_uid()
    for k in range(2):
        _write_dicom_slice(series / f"{k}.dcm", rng.integers(100, 4000, (16, 12)), k + 1, k, uid, slope=2.0)
    code, out, err = run(capsys, folder, series, "--sigma", 0, "-o", tmp_path / "denoised_series")
    assert code == 0, err
    assert "2 slice(s) of 16 x 12 (dicom)" in out
    np.testing.assert_array_equal(read_image_file(tmp_path / "denoised_series").images,
                                  read_image_file(series).images)  # the same stored integers at sigma 0


def test_bad_inputs_fail_before_the_model_loads(denoiser, tmp_path, capsys, monkeypatch):
    folder, _ = denoiser

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(cli, "_load_for_cli", no_loading)
    image = np.ones((8, 8), np.float32)
    np.save(tmp_path / "a.npy", image)
    nan = image.copy()
    nan[2, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    (tmp_path / "a.png").write_bytes(b"\x89PNG")
    cases = [
        ((folder, tmp_path / "a.png", "--sigma", 1), "unknown format of"),
        ((folder, tmp_path / "nan.npy", "--sigma", 1), "expected finite values, got 1 NaN"),
        ((folder, tmp_path / "a.npy", "--sigma", -1), "--sigma: expected a value >= 0"),
        ((folder, tmp_path / "a.npy", "--sigma", "nan"), "--sigma: expected a finite number"),
        ((folder, tmp_path / "a.npy", "--sigma", 1, "-o", tmp_path / "a.npy"), "is the input"),
        ((folder, tmp_path / "a.npy", "--sigma", 1, "-o", tmp_path / "b.nii"), "the output keeps the input's format"),
        (("pdnet-cartesian-singlecoil-af4", tmp_path / "a.npy", "--sigma", 1),
         "is a reconstruction checkpoint, not a denoising one"),
    ]
    for args, message in cases:
        code, out, err = run(capsys, *args)
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)
    assert np.array_equal(np.load(tmp_path / "a.npy"), image)


def test_help_lists_the_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["denoise", "--help"])
    text = capsys.readouterr().out
    assert "--sigma" in text and "--png" in text and "fastmri-zoo denoise" in text
    assert "denoise" in cli.COMMANDS
