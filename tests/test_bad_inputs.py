"""Bad inputs, through the command (``cli.main``) and the API (``fastmri_zoo.inference``).

Each case gets a clear error or the right behaviour. A clear error is: exit code 2 (a ValueError from the
API), one or two lines on stderr naming the file or option and saying what was expected, no traceback, no
input replaced and no temporary file left. Checks that must come before the model is loaded are run with
the loader replaced by a failure (``no_load``), which is itself what they test; a bad file is reported
without importing TensorFlow at all (a subprocess checks it). Signals are sent to the command in a
subprocess. The default cases use a tiny test network and small generated files; the shipped checkpoints
are only read (their JSON files), never built, except in the tests marked slow.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from fastmri_zoo import cli
from fastmri_zoo.data.h5 import read_fastmri_h5, write_fastmri_h5, write_reconstruction_h5
from fastmri_zoo.hub import sha256_file
from fastmri_zoo.inference import (
    check_options,
    reconstruct_cartesian,
    reconstruct_file,
    reconstruct_noncartesian,
    read_sampling,
)
from fastmri_zoo.utils import atomic_write
from tests.zoo_helpers import TinyResidual, trained_model

ROOT = Path(__file__).resolve().parents[1]
ACQUISITION = {"mask_type": "equispaced_fraction", "center_fraction": 0.25, "acceleration": 2}
SIZE = 16


# ---------------------------------------------------------------------------- numpy references


def np_fftc(x):
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def np_ifftc(x):
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def expected_tiny(model, kspace, mask):
    """The tiny single-coil network on masked k-space, computed here: mask (slices or 1, H or 1, W)."""
    masked = kspace * mask
    scale = np.abs(np_ifftc(masked)).max(axis=(-2, -1))
    batch_mask = np.broadcast_to(mask, (kspace.shape[0],) + mask.shape[1:]).astype(np.float32)
    out = model({"kspace": (masked / scale[:, None, None]).astype(np.complex64), "mask": batch_mask})
    return np.abs(np.asarray(out)) * scale[:, None, None]


# ---------------------------------------------------------------------------- data and a checkpoint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny single-coil Cartesian preset folder (the checkpoint records a retrospective acquisition)."""
    from fastmri_zoo.presets import from_preset

    folder = trained_model(filters=3, seed=2).save_to_preset(tmp_path_factory.mktemp("tiny") / "preset",
                                                              description="tiny", acquisition=ACQUISITION)
    return from_preset(str(folder)), Path(folder)


def _image(rng, slices=3):
    yy, xx = np.mgrid[-1:1:SIZE * 1j, -1:1:SIZE * 1j]
    image = np.stack([(xx**2 + yy**2 < 0.7) * (1 + 0.2 * s) * np.exp(1j * xx) for s in range(slices)])
    return (image + 0.01 * (rng.standard_normal(image.shape) + 1j * rng.standard_normal(image.shape))).astype(np.complex64)


@pytest.fixture
def data(tmp_path):
    """Small files in tmp_path/data: a fully sampled single-coil volume with its reference, and friends."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data"
    folder.mkdir()
    image = _image(rng)
    kspace = np_fftc(image).astype(np.complex64)
    reference = np.abs(image).astype(np.float32)
    paths = {"kspace": kspace, "reference": reference, "folder": folder}
    paths["full"] = write_fastmri_h5(folder / "full.h5", kspace, reference, acquisition="test")
    multicoil = np.stack([kspace, 0.5 * kspace], axis=1)
    paths["multicoil"] = write_fastmri_h5(folder / "multicoil.h5", multicoil, reference)
    traj = rng.uniform(-3, 3, (2, 200)).astype(np.float32)
    samples = (rng.standard_normal((1, 200)) + 1j * rng.standard_normal((1, 200))).astype(np.complex64)
    paths["traj"], paths["samples"] = traj, samples
    paths["nc2d"] = write_fastmri_h5(folder / "nc2d.h5", samples, trajectory=traj, image_shape=(SIZE, SIZE))
    paths["nc_multicoil"] = write_fastmri_h5(folder / "nc_multicoil.h5", np.stack([samples, samples], 1),
                                             trajectory=traj, image_shape=(SIZE, SIZE))
    return paths


def raw_file(path, attrs=None, **datasets):
    """An h5 file written with h5py directly (bypassing the writer's checks)."""
    with h5py.File(path, "w") as handle:
        for key, value in datasets.items():
            handle.create_dataset(key, data=value)
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value
    return str(path)


def digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def temporary_files(folder) -> list:
    return sorted(str(p) for p in Path(folder).rglob(".*.tmp"))


@pytest.fixture
def no_load(monkeypatch):
    """The command must refuse before loading the model: loading fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(cli, "_load_for_cli", refuse)


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_clear_error(code, err, *needles, exit_code=2):
    """Exit code, one or two lines naming what is asked, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == exit_code, err
    assert 1 <= len(lines) <= 2, err
    assert "Traceback" not in err and len(err) < 600, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"


# ---------------------------------------------------------------------------- outputs never replace inputs


def test_output_equal_to_input_is_refused_in_every_spelling(tiny, data, no_load, capsys, monkeypatch):
    _, preset = tiny
    folder, full = data["folder"], data["full"]
    before = digest(folder)
    os.symlink(full, folder / "link.h5")
    os.link(full, folder / "hard.h5")
    (folder / "sub").mkdir()
    monkeypatch.chdir(folder / "sub")
    for output in (full, folder / "link.h5", folder / "hard.h5", "../full.h5", "../sub/../full.h5"):
        code, _, err = run_cli(capsys, "reconstruct", preset, "../full.h5", "-o", output)
        assert_clear_error(code, err, "--output", "is the input file", "refusing to replace it")
    code, _, err = run_cli(capsys, "reconstruct", preset, full, "--png", "../link.h5")
    assert_clear_error(code, err, "--png", "is the input file")
    code, _, err = run_cli(capsys, "reconstruct", preset, full, "-o", "../out.h5", "--png", folder / "out.h5")
    assert_clear_error(code, err, "--png", "is the output file")
    after = digest(folder)
    assert {name: after[name] for name in before} == before and not temporary_files(folder)
    # the API refuses too, before anything runs
    model, _ = tiny
    with pytest.raises(ValueError, match="output_path: .* is the input file"):
        reconstruct_file(model, full, folder / "link.h5", progress=False)
    assert digest(folder) == after


def test_output_folder_or_missing_folder_is_refused(tiny, data, no_load, capsys):
    _, preset = tiny
    code, _, err = run_cli(capsys, "reconstruct", preset, data["full"], "-o", data["folder"])
    assert_clear_error(code, err, "--output", "expected a file path, got the folder")
    code, _, err = run_cli(capsys, "reconstruct", preset, data["full"], "-o", data["folder"] / "no" / "out.h5")
    assert_clear_error(code, err, "--output", "does not exist")
    code, _, err = run_cli(capsys, "reconstruct", preset, data["full"], "--png", data["folder"])
    assert_clear_error(code, err, "--png", "got the folder")
    code, _, err = run_cli(capsys, "reconstruct", preset, data["full"], "--png", Path(data["full"]) / "fig.png")
    assert_clear_error(code, err, "--png", "cannot create the folder", "is a file")


# ---------------------------------------------------------------------------- options, before the model


@pytest.mark.parametrize("options, needles", [
    (["--acceleration", "0"], ["--acceleration", "expected an acceleration factor > 1", "got 0.0"]),
    (["--acceleration", "1"], ["--acceleration", "> 1"]),
    (["--acceleration", "-4"], ["--acceleration", "> 1"]),
    (["--acceleration", "nan"], ["--acceleration", "got nan"]),
    (["--center-fraction", "0"], ["--center-fraction", "expected a fraction in (0, 1)", "got 0.0"]),
    (["--center-fraction", "1.5"], ["--center-fraction", "got 1.5"]),
    (["--batch-size", "0"], ["--batch-size", "expected a whole number >= 1", "got 0"]),
    (["--batch-size", "-2"], ["--batch-size", "got -2"]),
    (["--seed", "-1"], ["--seed", "expected an integer in [0, 2**32)"]),
    (["--mask-type", "equispaced", "--acceleration", "2.5"], ["retrospective undersampling", "full.h5", "equispaced"]),
    (["--acceleration", "2", "--center-fraction", "0.9"], ["retrospective undersampling", "centre fraction 0.9"]),
    (["--image-shape", "16", "16"], ["--image-shape", "only for non-Cartesian models"]),
])
def test_options_out_of_range_are_errors_never_replaced(tiny, data, no_load, capsys, options, needles):
    _, preset = tiny
    code, _, err = run_cli(capsys, "reconstruct", preset, data["full"], "-o", data["folder"] / "out.h5", *options)
    assert_clear_error(code, err, *needles)
    assert not (data["folder"] / "out.h5").exists()


@pytest.mark.parametrize("options, needles", [
    (["--acceleration", "0"], ["--acceleration", "> 1"]),
    (["--center-fraction", "0"], ["--center-fraction", "(0, 1)"]),
    (["--batch-size", "0"], ["--batch-size", ">= 1"]),
])
def test_evaluate_options_are_checked_first(tiny, data, no_load, capsys, options, needles):
    _, preset = tiny
    code, _, err = run_cli(capsys, "evaluate", preset, data["folder"], *options)
    assert_clear_error(code, err, *needles)


def test_api_options():
    for kwargs, needle in [({"acceleration": 0}, "acceleration: expected an acceleration factor > 1"),
                           ({"center_fraction": 0.0}, "center_fraction: expected a fraction"),
                           ({"batch_size": 0}, "batch_size: expected a whole number"),
                           ({"mask_type": "poisson"}, "mask_type: expected one of"),
                           ({"acceleration": True}, "acceleration: expected a number")]:
        with pytest.raises(ValueError, match=needle):
            check_options(**kwargs)
    check_options(acceleration=4, center_fraction=0.08, mask_type="random", seed=3, batch_size=2)


def test_undersampling_options_for_an_undersampled_file_are_errors(tiny, data, no_load, capsys):
    _, preset = tiny
    mask = np.zeros(SIZE, np.float32)
    mask[::2] = 1
    mask[SIZE // 2 - 2: SIZE // 2 + 2] = 1
    under = write_fastmri_h5(data["folder"] / "under.h5", data["kspace"] * mask, data["reference"])
    for option, value in (("--acceleration", "4"), ("--center-fraction", "0.1"), ("--mask-type", "random")):
        code, _, err = run_cli(capsys, "reconstruct", preset, under, option, value)
        assert_clear_error(code, err, option, "under.h5 is already undersampled", "column mask")


# ---------------------------------------------------------------------------- files, before the model


def test_missing_folder_and_foreign_inputs(tiny, data, no_load, capsys):
    _, preset = tiny
    folder = data["folder"]
    (folder / "notes.h5").write_text("not HDF5")
    truncated = folder / "truncated.h5"
    truncated.write_bytes(Path(data["full"]).read_bytes()[:3000])
    for path, needles in [(folder / "absent.h5", ["input: no such file", "absent.h5"]),
                          (folder, ["expected an HDF5 file, got the folder"]),
                          (folder / "notes.h5", ["notes.h5", "not a readable HDF5 file"]),
                          (truncated, ["truncated.h5", "not a readable HDF5 file"])]:
        code, _, err = run_cli(capsys, "reconstruct", preset, path, "-o", folder / "out.h5")
        assert_clear_error(code, err, *needles)
    assert not (folder / "out.h5").exists() and not temporary_files(folder)


def _cartesian_cases(folder, kspace, reference):
    columns = np.ones(SIZE, np.float32)
    columns[::3] = 0
    columns[1] = 7.5
    multicoil = np.stack([kspace, kspace], axis=1)
    nan_reference = reference.copy()
    nan_reference[0, 0, 0] = np.nan
    nan_kspace = kspace.copy()
    nan_kspace[1, 2, 3] = np.nan
    off_centre = kspace.copy()
    off_centre[..., SIZE // 2] = 0
    return [
        ("mask75", {"kspace": kspace, "mask": columns},
         ["mask75.h5", "mask: expected 0 (not sampled) or 1 (sampled)", "7.5"]),
        ("mask_zero", {"kspace": kspace, "mask": np.zeros(SIZE, np.float32)}, ["mask_zero.h5", "samples nothing"]),
        ("mask_shape", {"kspace": kspace, "mask": np.ones(SIZE + 1, np.float32)},
         ["mask_shape.h5", f"mask: expected shape ({SIZE},) (one value per column)", f"got ({SIZE + 1},)"]),
        ("no_coils", {"kspace": np.zeros((3, 0, SIZE, SIZE), np.complex64)},
         ["no_coils.h5", "kspace: holds no coils"]),
        ("no_slices", {"kspace": np.zeros((0, SIZE, SIZE), np.complex64)}, ["no_slices.h5", "holds no slices"]),
        ("nan_reference", {"kspace": kspace, "reconstruction_rss": nan_reference},
         ["nan_reference.h5", "reconstruction_rss: expected finite values"]),
        ("nan_kspace", {"kspace": nan_kspace}, ["nan_kspace.h5", "kspace: expected finite values"]),
        ("all_zero", {"kspace": np.zeros_like(kspace)}, ["all_zero.h5", "every entry is zero"]),
        ("off_centre", {"kspace": off_centre}, ["off_centre.h5", "the centre of k-space", "is not sampled"]),
        ("multicoil", {"kspace": multicoil}, ["single-coil model but the file holds 2 coils", "multicoil.h5"]),
        ("real", {"kspace": np.abs(kspace)}, ["real.h5", "kspace: expected dtype complex64, got float32"]),
        ("reference_slices", {"kspace": kspace, "reconstruction_rss": reference[:2]},
         ["reference_slices.h5", "reconstruction_rss: has 2 slices but kspace has 3"]),
        ("trajectory", {"kspace": kspace[:, 0], "trajectory": np.zeros((2, SIZE), np.float32),
                        "attrs": {"image_shape": [SIZE, SIZE]}},
         ["trajectory.h5", "holds non-Cartesian k-space", "is a Cartesian model"]),
    ]


def test_bad_cartesian_files_are_named_before_the_model_loads(tiny, data, no_load, capsys):
    _, preset = tiny
    folder = data["folder"]
    for stem, datasets, needles in _cartesian_cases(folder, data["kspace"], data["reference"]):
        path = raw_file(folder / f"{stem}.h5", **datasets)
        code, _, err = run_cli(capsys, "reconstruct", preset, path, "-o", folder / "out.h5")
        assert_clear_error(code, err, *needles)
        # and through the API, with the same message
        with pytest.raises(ValueError, match=re.escape(needles[0])):
            reconstruct_file(tiny[0], path, folder / "out.h5", progress=False)
    assert not (folder / "out.h5").exists() and not temporary_files(folder)


NONCARTESIAN_CASES = [
    # (checkpoint, file maker, options, needles)
    ("ncpdnet-radial-3d", lambda d: d["nc2d"], [],
     ["ncpdnet-radial-3d reconstructs 3D images", "nc2d.h5 has the 2D grid [16, 16]"]),
    ("ncpdnet-radial-singlecoil", lambda d: d["nc_multicoil"], [],
     ["ncpdnet-radial-singlecoil is a single-coil model but the file holds 2 coils", "nc_multicoil.h5"]),
    ("ncpdnet-radial-multicoil", lambda d: d["nc2d"], [],
     ["ncpdnet-radial-multicoil is a multicoil model", "nc2d.h5 holds single-coil k-space"]),
    ("ncpdnet-radial-singlecoil", lambda d: d["full"], [],
     ["full.h5: has no 'trajectory' dataset", "non-Cartesian model"]),
    ("pdnet-cartesian-singlecoil-af4", lambda d: d["nc2d"], [], ["nc2d.h5: holds non-Cartesian k-space"]),
    ("ncpdnet-radial-singlecoil", lambda d: d["nc2d"], ["--acceleration", "4"],
     ["--acceleration", "does not apply to the non-Cartesian file"]),
    ("ncpdnet-radial-singlecoil", lambda d: d["nc2d"], ["--image-shape", "32768", "32768"],
     ["--image-shape", "grid [32768, 32768]", "GiB of memory (estimate), more than the"]),
    ("ncpdnet-radial-singlecoil", lambda d: d["nc2d"], ["--image-shape", "16", "0"],
     ["image_shape: expected 2 or 3 positive integers"]),
    ("ncpdnet-radial-singlecoil",
     lambda d: raw_file(d["folder"] / "big.h5", kspace=d["samples"], trajectory=d["traj"],
                        attrs={"image_shape": [32768, 32768]}), [],
     ["big.h5: image_shape", "needs about", "of memory (estimate)"]),
    ("ncpdnet-radial-singlecoil",
     lambda d: raw_file(d["folder"] / "dcomp0.h5", kspace=d["samples"], trajectory=d["traj"],
                        dcomp=np.zeros(200, np.float32), attrs={"image_shape": [SIZE, SIZE]}), [],
     ["dcomp0.h5", "dcomp: expected some positive weights, got all zeros"]),
    ("ncpdnet-radial-singlecoil",
     lambda d: raw_file(d["folder"] / "dcomp_neg.h5", kspace=d["samples"], trajectory=d["traj"],
                        dcomp=-np.ones(200, np.float32), attrs={"image_shape": [SIZE, SIZE]}), [],
     ["dcomp_neg.h5", "dcomp: expected weights >= 0, got 200 negative"]),
    ("ncpdnet-radial-singlecoil",
     lambda d: raw_file(d["folder"] / "traj_slices.h5", kspace=np.concatenate([d["samples"]] * 2),
                        trajectory=np.stack([d["traj"]] * 3), attrs={"image_shape": [SIZE, SIZE]}), [],
     ["traj_slices.h5", "trajectory: has 3 slices but kspace has 2"]),
]


@pytest.mark.parametrize("name, make, options, needles", NONCARTESIAN_CASES)
def test_noncartesian_mismatches_are_refused_before_the_model_loads(data, no_load, capsys, name, make, options,
                                                                      needles):
    # shipped checkpoints: only their JSON files are read, the model is never built (no_load)
    code, _, err = run_cli(capsys, "reconstruct", name, make(data), *options)
    assert_clear_error(code, err, *needles)


def test_a_bad_file_is_reported_without_loading_tensorflow(tmp_path):
    """The hostile pass waited 20-28 s for a missing file and 120 s (3.7 GiB) for a 2D file given to the 3D
    model: the checks now run before TensorFlow is even imported (about 1 s; not asserted here)."""
    nc2d = write_fastmri_h5(tmp_path / "nc2d.h5", np.ones((1, 20), np.complex64),
                            trajectory=np.zeros((2, 20), np.float32), image_shape=(8, 8))
    code = ("import sys, time; started = time.perf_counter(); from fastmri_zoo import cli; "
            "rc = cli.main(['reconstruct', 'ncpdnet-radial-3d', sys.argv[1], '-o', sys.argv[2]]); "
            "print('TENSORFLOW', 'tensorflow' in sys.modules, time.perf_counter() - started); sys.exit(rc)")
    for path, needle in ((tmp_path / "absent.h5", "no such file"), (nc2d, "reconstructs 3D images")):
        result = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "out.h5")],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and needle in result.stderr
        _, imported, _seconds = result.stdout.split()
        assert imported == "False"  # the speed itself is not asserted (a noisy machine): TensorFlow never loads


# ---------------------------------------------------------------------------- evaluate


def test_evaluate_checks_every_file_first_and_prints_full_names_without_nan(tiny, data, capsys, monkeypatch):
    model, preset = tiny
    folder = data["folder"] / "eval"
    folder.mkdir()
    shutil.copy(data["full"], folder / "a.h5")
    write_fastmri_h5(folder / "b.h5", data["kspace"])  # no reference
    loaded = []
    monkeypatch.setattr(cli, "_load_for_cli", lambda *args: loaded.append(args) or model)
    code, _, err = run_cli(capsys, "evaluate", preset, folder)
    assert_clear_error(code, err, "b.h5: has no reference image")
    assert not loaded  # refused before the model was loaded
    os.remove(folder / "b.h5")
    code, out, _ = run_cli(capsys, "evaluate", preset, folder)
    assert code == 0 and "nan" not in out and "+-" not in out and "one volume: no spread" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert set(rows) == {"zero-filled", str(preset)}  # the full name, not cut
    result = reconstruct_file(model, folder / "a.h5", progress=False)
    assert rows[str(preset)][0] == f"{result.metrics['network']['psnr']:.4f}"
    shutil.copy(data["full"], folder / "c.h5")
    code, out, _ = run_cli(capsys, "evaluate", preset, folder)
    assert code == 0 and "mean +- std over volumes" in out and " +- 0.0000" in out and "nan" not in out
    for argv, needle in (([folder / "none"], "no such folder"), ([data["full"]], "expected a folder of .h5 files")):
        code, _, err = run_cli(capsys, "evaluate", preset, *argv)
        assert_clear_error(code, err, needle)


# ---------------------------------------------------------------------------- sampling read from the data


def _poisson_like(rng, shape=(SIZE, SIZE)):
    """A variable-density 2D pattern with a fully sampled 4 x 4 centre; every column holds a sample."""
    yy, xx = np.mgrid[-1:1:shape[0] * 1j, -1:1:shape[1] * 1j]
    pattern = rng.random(shape) < 0.1 + 0.6 * np.exp(-(xx**2 + yy**2) * 4)
    pattern[shape[0] // 2 - 2: shape[0] // 2 + 2, shape[1] // 2 - 2: shape[1] // 2 + 2] = True
    pattern[0] = True  # a sample in every column: read by columns, it would look fully sampled
    return pattern.astype(np.float32)


def test_a_2d_pattern_is_used_as_the_mask_never_undersampled_again(tiny, data, capsys):
    model, preset = tiny
    rng = np.random.default_rng(5)
    pattern = _poisson_like(rng)
    kspace, reference, folder = data["kspace"], data["reference"], data["folder"]
    path = write_fastmri_h5(folder / "poisson.h5", kspace * pattern, reference)
    sampling = read_sampling(read_fastmri_h5(path).kspace)
    assert sampling.pattern == "2D" and sampling.mask.shape == (1, SIZE, SIZE)
    np.testing.assert_array_equal(sampling.mask[0], pattern)
    code, out, err = run_cli(capsys, "reconstruct", preset, path, "-o", folder / "out.h5")
    assert code == 0, err
    line = next(line for line in out.splitlines() if "sampling:" in line)
    assert "2D pattern" in line and "used as the mask, not undersampled again" in line
    assert f"AF {1 / pattern.mean():.2f}" in out
    with h5py.File(folder / "out.h5") as handle:
        got = handle["reconstruction"][()]
    want = expected_tiny(model, kspace, pattern[None])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * want.max())


@pytest.mark.parametrize("layout", ["shared", "per_slice", "columns"])
def test_a_stored_mask_is_applied_and_used(tiny, data, layout):
    """The h5 ``mask`` may be per column (W,) as fastMRI's, 2D (H, W) or per slice (slices, H, W)."""
    model, _ = tiny
    rng = np.random.default_rng(6)
    kspace, folder = data["kspace"], data["folder"]
    if layout == "shared":
        mask = _poisson_like(rng)
        model_mask = mask[None]
    elif layout == "per_slice":
        mask = model_mask = np.stack([_poisson_like(rng) for _ in range(kspace.shape[0])])
    else:
        mask = np.zeros(SIZE, np.float32)
        mask[::2] = 1
        mask[SIZE // 2 - 2: SIZE // 2 + 2] = 1
        model_mask = mask[None, None]
    path = write_fastmri_h5(folder / f"{layout}.h5", kspace, data["reference"], mask=mask)  # fully sampled data
    assert read_fastmri_h5(path).mask.shape == mask.shape
    result = reconstruct_file(model, path, progress=False)
    assert "not undersampled again" in result.sampling and "the file's mask" in result.sampling
    assert result.acceleration == pytest.approx(1 / mask.mean())
    want = expected_tiny(model, kspace, model_mask)
    np.testing.assert_allclose(result.reconstruction, want, rtol=1e-4, atol=1e-5 * want.max())


def test_sampling_reader_separates_full_columns_and_2d():
    rng = np.random.default_rng(1)
    kspace = (rng.standard_normal((2, 3, 8, 10)) + 1j * rng.standard_normal((2, 3, 8, 10))).astype(np.complex64)
    assert read_sampling(kspace).pattern == "full"
    padded = kspace.copy()
    padded[:, :, :2] = 0  # readout zero-padding (whole rows) does not make a pattern 2D
    assert read_sampling(padded).pattern == "full"
    columns = kspace.copy()
    columns[..., ::3] = 0
    sampling = read_sampling(columns)
    assert sampling.pattern == "columns" and sampling.mask.shape == (1, 1, 10)
    assert sampling.acceleration == pytest.approx(10 / 6)
    per_slice = columns.copy()
    per_slice[1, ..., 1] = 0
    assert read_sampling(per_slice).mask.shape == (2, 1, 10)
    one_coil = kspace.copy()
    one_coil[:, 1:, 3, 4] = 0  # zero in two coils only: still sampled
    assert read_sampling(one_coil).pattern == "full"
    hole = kspace.copy()
    hole[:, :, 3, 4] = 0
    sampling = read_sampling(hole)
    assert sampling.pattern == "2D" and sampling.mask[0, 3, 4] == 0 and sampling.mask.sum() == 79
    empty_slice = columns.copy()
    empty_slice[0] = 0  # an empty slice takes the others' pattern
    assert read_sampling(empty_slice).mask.shape == (1, 1, 10)


def test_writing_masks_of_every_layout_and_refusing_bad_ones(tmp_path):
    kspace = np.ones((2, 4, 6), np.complex64)
    for mask, stored in ((np.ones(6), (6,)), (np.ones((1, 6)), (6,)), (np.ones((4, 6)), (4, 6)),
                         (np.ones((2, 4, 6)), (2, 4, 6))):
        path = write_fastmri_h5(tmp_path / "m.h5", kspace, mask=mask)
        assert read_fastmri_h5(path).mask.shape == stored
    assert read_fastmri_h5(path, slices=[1]).mask.shape == (1, 4, 6)  # per-slice masks follow the slices read
    for mask, needle in ((np.full(6, 2.0), "got also 2"), (np.zeros(6), "samples nothing"),
                         (np.ones((3, 4, 6)), r"mask: expected shape \(6,\)")):
        with pytest.raises(ValueError, match=needle):
            write_fastmri_h5(tmp_path / "bad.h5", kspace, mask=mask)
    assert not (tmp_path / "bad.h5").exists()


# ---------------------------------------------------------------------------- the API


def test_api_checks_arrays(tiny):
    model, _ = tiny
    rng = np.random.default_rng(2)
    kspace = (rng.standard_normal((3, 8, 8)) + 1j * rng.standard_normal((3, 8, 8))).astype(np.complex64)
    with pytest.raises(ValueError, match=r"mask: expected .* slices=3 .* got shape \(2, 1, 8\)"):
        reconstruct_cartesian(model, kspace, np.ones((2, 1, 8), np.float32), None, progress=False)
    with pytest.raises(ValueError, match="batch_size: expected a whole number >= 1"):
        reconstruct_cartesian(model, kspace, np.ones((1, 8), np.float32), None, batch_size=0, progress=False)
    traj = rng.uniform(-3, 3, (2, 30)).astype(np.float32)
    samples = kspace.reshape(3, -1)[:, :30]
    for dcomp, needle in ((np.zeros(30), "all zeros"), (-np.ones(30), "expected weights >= 0"),
                          (np.ones(29), r"dcomp: expected shape \(30,\)")):
        with pytest.raises(ValueError, match=needle):
            reconstruct_noncartesian(None, samples, traj, (8, 8), dcomp=dcomp, progress=False)
    with pytest.raises(ValueError, match="kspace: holds no slices, coils or samples"):
        reconstruct_noncartesian(None, np.zeros((1, 0, 30), np.complex64), traj, (8, 8), progress=False)


class BrokenShapes(TinyResidual):
    """A model whose call fails inside TensorFlow (a batch mismatch, as kspace against smaps)."""

    def call(self, inputs):
        import tensorflow as tf

        return inputs["kspace"] * tf.ones((7,) + tuple(inputs["kspace"].shape[1:]), tf.complex64)


def test_tensorflow_errors_become_one_line_naming_the_file(tiny, data):
    model, _ = tiny
    broken = BrokenShapes(filters=3)
    broken.preset_metadata = {"acquisition": ACQUISITION}
    with pytest.raises(ValueError) as info:
        reconstruct_file(broken, data["full"], progress=False)
    message = str(info.value)
    assert message.startswith(f"{data['full']}: TensorFlow could not run the model") and "Incompatible shapes" in message
    assert "\n" not in message and len(message) < 400
    with pytest.raises(ValueError, match="^TensorFlow could not run the model"):
        reconstruct_cartesian(broken, data["kspace"], np.ones((1, SIZE), np.float32), 4, progress=False)


# ---------------------------------------------------------------------------- checkpoints: weights and config


def _preset_copy(tiny, tmp_path, name):
    _, preset = tiny
    folder = tmp_path / name
    shutil.copytree(preset, folder)
    return folder


def _record_sha(folder):
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["weights_sha256"] = sha256_file(folder / "model.weights.h5")
    (folder / "metadata.json").write_text(json.dumps(metadata))


def test_truncated_or_foreign_weights_are_named(tiny, data, tmp_path, capsys):
    truncated = _preset_copy(tiny, tmp_path, "truncated")
    weights = truncated / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:2000])
    _record_sha(truncated)  # the sha256 matches: the file itself is broken
    text = _preset_copy(tiny, tmp_path, "text")
    (text / "model.weights.h5").write_text("not HDF5 at all")
    _record_sha(text)
    for folder in (truncated, text):
        code, _, err = run_cli(capsys, "reconstruct", folder, data["full"], "-o", tmp_path / "out.h5")
        assert_clear_error(code, err, f"{folder}/model.weights.h5", "not a readable HDF5 file")
    unrecorded = _preset_copy(tiny, tmp_path, "unrecorded")
    (unrecorded / "model.weights.h5").write_text("swapped")
    code, _, err = run_cli(capsys, "reconstruct", unrecorded, data["full"], "-o", tmp_path / "out.h5")
    assert_clear_error(code, err, "model.weights.h5", "sha256 mismatch")
    assert not (tmp_path / "out.h5").exists()


def test_a_config_with_a_nested_lambda_is_refused_in_one_line_and_never_run(tiny, data, tmp_path, capsys):
    import keras

    from fastmri_zoo.models import XPDNet

    marker = tmp_path / "executed"
    evil = keras.layers.Lambda(eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]"))  # the path inlined
    config = keras.saving.serialize_keras_object(XPDNet(**XPDNet.small_config()))
    config["config"]["denoiser"] = keras.saving.serialize_keras_object(evil)
    folder = _preset_copy(tiny, tmp_path, "lambda")
    (folder / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli(capsys, "reconstruct", folder, data["full"], "-o", tmp_path / "out.h5")
    assert_clear_error(code, err, f"{folder}/config.json")
    assert not marker.exists() and not (tmp_path / "out.h5").exists()


# ---------------------------------------------------------------------------- demo and simulate


def test_demo_checks_before_loading(monkeypatch, capsys, tmp_path):
    from fastmri_zoo import demo

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(demo, "load", refuse)
    sample = demo.bundled_sample("brain_4coil")
    before = Path(sample).read_bytes()
    for argv, needles in [(["--acceleration", "0", "--png", tmp_path / "d.png"],
                           ["acceleration: expected an acceleration factor > 1"]),
                          (["--png", sample], ["output_png", "is the bundled sample"]),
                          (["pdnet-cartesian-singlecoil-af4", "--png", tmp_path / "d.png"],
                           ["single-coil model but the file holds 4 coils", "brain_4coil.h5"])]:
        code, _, err = run_cli(capsys, "demo", *argv)
        assert_clear_error(code, err, *needles)
    assert Path(sample).read_bytes() == before and not (tmp_path / "d.png").exists()



def test_simulate_bad_outputs_and_inputs(tmp_path, capsys):
    image = tmp_path / "image.npy"
    np.save(image, np.ones((8, 8), np.float32))
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    code, _, err = run_cli(capsys, "simulate", image, not_a_folder)
    assert_clear_error(code, err, "output_dir: expected a folder", "file.txt")
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    code, _, err = run_cli(capsys, "simulate", empty, tmp_path / "out")
    assert_clear_error(code, err, "empty.npy: not a readable numpy file")
    zero = tmp_path / "zero.npy"
    np.save(zero, np.zeros((0, 8), np.float32))
    code, _, err = run_cli(capsys, "simulate", zero, tmp_path / "out")
    assert_clear_error(code, err, "zero.npy", "expected an image with pixels")
    assert not temporary_files(tmp_path)


# ---------------------------------------------------------------------------- signals and temporary files


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a shell may start the test run with SIGINT ignored


def _wait_for(process, marker: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = process.stdout.readline()
        if not line:
            break
        if marker in line:
            return
    process.kill()
    raise AssertionError(f"{marker!r} never came; stderr: {process.stderr.read()}")


# The h5 writer made slow: it announces WRITING after creating its temporary file, then sleeps.
SLOW_WRITER = r"""
original = h5py.Group.create_dataset
def slow_create_dataset(self, *args, **kwargs):
    print("WRITING", flush=True)
    time.sleep(120)
    return original(self, *args, **kwargs)
h5py.Group.create_dataset = slow_create_dataset
"""

# The command with the model replaced by a stub (no TensorFlow): it sleeps while "running", or the h5 writer
# sleeps after creating its temporary file, until the test sends a signal.
STUBBED_COMMAND = r"""
import sys, time
import h5py, numpy as np
from fastmri_zoo import cli, inference
from fastmri_zoo.data.h5 import write_reconstruction_h5

phase, argv = sys.argv[1], sys.argv[2:]

def run_plan(model, plan, **kwargs):
    if phase == "model":
        print("RUNNING", flush=True)
        time.sleep(120)
    write_reconstruction_h5(plan.output, np.ones((3, 16, 16), np.float32))
    raise AssertionError("not interrupted")

""" + SLOW_WRITER + r"""
cli._load_for_cli = lambda *args: object()
inference.run_plan = run_plan
sys.exit(cli.main(argv))
"""


@pytest.mark.parametrize("phase, sig, code, word", [
    ("model", signal.SIGINT, 130, "interrupted (SIGINT)"),
    ("model", signal.SIGTERM, 143, "terminated (SIGTERM)"),
    ("writing", signal.SIGINT, 130, "interrupted (SIGINT)"),
    ("writing", signal.SIGTERM, 143, "terminated (SIGTERM)"),
])
def test_signals_exit_with_one_line_and_leave_the_previous_output(tiny, data, phase, sig, code, word):
    _, preset = tiny
    output = data["folder"] / "out.h5"
    write_reconstruction_h5(output, np.zeros((3, 16, 16), np.float32))
    previous = output.read_bytes()
    process = subprocess.Popen(
        [sys.executable, "-c", STUBBED_COMMAND, phase, "reconstruct", str(preset), str(data["full"]), "-o", str(output)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    _wait_for(process, "RUNNING" if phase == "model" else "WRITING")
    if phase == "writing":
        assert temporary_files(data["folder"])  # the case is real: a temporary file is there
    process.send_signal(sig)
    # exiting (TensorFlow's teardown) took over 60 s once with the 2 cores shared by three trainings
    _, err = process.communicate(timeout=180)
    assert process.returncode == code
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and word in lines[0] and "Traceback" not in err, err
    assert output.read_bytes() == previous and not temporary_files(data["folder"])


KILLED_WRITER = r"""
import sys, time
import h5py, numpy as np
from fastmri_zoo.data.h5 import write_reconstruction_h5

original = h5py.Group.create_dataset
def slow_create_dataset(self, *args, **kwargs):
    print("WRITING", flush=True)
    time.sleep(120)
h5py.Group.create_dataset = slow_create_dataset
write_reconstruction_h5(sys.argv[1], np.ones((2, 4, 4), np.float32))
"""


def test_a_temporary_file_left_by_sigkill_is_removed_by_the_next_write(tmp_path):
    output = tmp_path / "out.h5"
    write_reconstruction_h5(output, np.zeros((2, 4, 4), np.float32))
    previous = output.read_bytes()
    process = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(output)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(process, "WRITING")
    process.kill()
    process.wait(timeout=60)
    left = temporary_files(tmp_path)
    assert len(left) == 1 and Path(left[0]).name.startswith(".out.h5.")  # what SIGKILL leaves
    assert output.read_bytes() == previous
    foreign = tmp_path / ".out.h5.abcdef.tmp"  # not ours (no host and process in its name): left alone
    foreign.write_text("x")
    write_reconstruction_h5(output, np.ones((2, 4, 4), np.float32))
    assert temporary_files(tmp_path) == [str(foreign)]
    with h5py.File(output) as handle:
        np.testing.assert_array_equal(handle["reconstruction"][()], np.ones((2, 4, 4)))


def test_atomic_write_keeps_a_live_writer_s_temporary_file(tmp_path):
    target = tmp_path / "x.bin"
    with atomic_write(target) as first:
        Path(first).write_bytes(b"one")
        with atomic_write(target) as second:  # this process is alive: its temporary file is not stale
            assert os.path.exists(first)
            Path(second).write_bytes(b"two")
        assert target.read_bytes() == b"two"
    assert target.read_bytes() == b"one" and not temporary_files(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as third:
            Path(third).write_bytes(b"three")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"one" and not temporary_files(tmp_path)


# ---------------------------------------------------------------------------- slow: the real thing


REAL_COMMAND = r"""
import sys, time
import h5py
import tests.zoo_helpers  # registers the tiny test network
from fastmri_zoo import cli

""" + SLOW_WRITER + r"""
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow  # a subprocess importing TensorFlow and running the tiny network
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_while_the_real_command_writes(tiny, data, sig, code):
    _, preset = tiny
    output = data["folder"] / "out.h5"
    write_reconstruction_h5(output, np.zeros((3, 16, 16), np.float32))
    previous = output.read_bytes()
    process = subprocess.Popen(
        [sys.executable, "-c", REAL_COMMAND, "reconstruct", str(preset), str(data["full"]), "-o", str(output)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    _wait_for(process, "WRITING", timeout=300)
    process.send_signal(sig)
    # exiting (TensorFlow's teardown) took over 60 s once with the 2 cores shared by three trainings
    _, err = process.communicate(timeout=180)
    assert process.returncode == code
    assert "Traceback" not in err and ("interrupted" in err or "terminated" in err)
    assert output.read_bytes() == previous and not temporary_files(data["folder"])


@pytest.mark.slow  # builds the shipped checkpoints
@pytest.mark.parametrize("name", ["unet-cartesian-singlecoil-af4", "xpdnet-cartesian-multicoil-af4",
                                  "ncpdnet-radial-3d", "ncpdnet-radial-multicoil", "unet-adjdcomp-radial-multicoil"])
def test_the_spec_read_from_json_is_the_built_model_s(name):
    from fastmri_zoo import load
    from fastmri_zoo.inference import checkpoint_spec, model_spec

    read, built = checkpoint_spec(name), model_spec(load(name), name)
    for key in ("kind", "multicoil", "ndim", "acquisition"):
        assert getattr(read, key) == getattr(built, key), key


@pytest.mark.slow  # builds the shipped Cartesian checkpoints
@pytest.mark.parametrize("name", ["unet-cartesian-singlecoil-af4", "cascadenet-cartesian-singlecoil-af4",
                                  "kikinet-cartesian-singlecoil-af4", "pdnet-cartesian-singlecoil-af4",
                                  "xpdnet-cartesian-multicoil-af4"])
def test_shipped_cartesian_checkpoints_take_a_2d_pattern(name, tmp_path):
    from fastmri_zoo import load

    rng = np.random.default_rng(3)
    multicoil = "multicoil" in name
    image = _image(rng, slices=2)
    kspace = np_fftc(np.stack([image, 0.7 * image], 1) if multicoil else image).astype(np.complex64)
    pattern = _poisson_like(rng)
    path = write_fastmri_h5(tmp_path / "poisson.h5", kspace * pattern, np.abs(image).astype(np.float32))
    result = reconstruct_file(load(name), path, progress=False)
    assert "2D pattern" in result.sampling and np.isfinite(result.reconstruction).all()
    assert result.metrics["network"]["psnr"] > 0
