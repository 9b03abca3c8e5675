"""fastmri-zoo train / finetune: a recipe run killed mid-way resumes; finetune's options (recipe
validation: test_recipes.py)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fastmri_zoo import cli
from fastmri_zoo.models import UNet
from fastmri_zoo.presets import save_to_preset

REPO = Path(__file__).resolve().parents[2]


def write_recipe(folder: Path, data_dir: Path, **training) -> Path:
    """A tiny U-net recipe on ``data_dir`` (its train/ and val/ folders)."""
    recipe = {
        "name": "tiny-unet",
        "model": {"class": "UNet", "kwargs": {"layers_n_channels": [4, 8], "residual": True}},
        "data": {"folder": str(data_dir), "train": "train", "val": "val"},
        "acquisition": {"kind": "cartesian", "multicoil": False, "mask_type": "random", "center_fraction": 0.08,
                        "acceleration": 4},
        "training": {"loss": "l1", "optimizer": "adam", "learning_rate": 0.003, "steps": 60, "steps_per_epoch": 5,
                     "batch_size": 2, "seed": 0, **training},
        "card": {"description": "A tiny U-net."},
    }
    path = folder / "recipe.json"
    path.write_text(json.dumps(recipe))
    return path


def test_finetune_reports_a_missing_data_folder(tmp_path, capsys):
    assert cli.main(["finetune", "some-model", str(tmp_path / "absent")]) == 2
    assert "data_dir: no such folder" in capsys.readouterr().err  # checked before loading anything


def test_finetune_rejects_two_acquisitions(tmp_path, singlecoil_data, capsys):
    save_to_preset(UNet(layers_n_channels=(4, 8)), tmp_path / "preset",
                   example_inputs={"kspace": np.zeros((1, 32, 32), np.complex64), "mask": np.ones((1, 1, 32), np.float32)})
    assert cli.main(["finetune", str(tmp_path / "preset"), str(singlecoil_data), "--acquisition",
                     '{"kind": "cartesian"}', "--mask-type", "random"]) == 2
    assert "give either --acquisition or the Cartesian mask options" in capsys.readouterr().err
    assert cli.main(["finetune", str(tmp_path / "preset"), str(singlecoil_data), "--acquisition",
                     '{"kind": "noncartesian", "trajectory": "rosette"}']) == 2
    assert "acquisition.trajectory: expected one of ['radial', 'spiral']" in capsys.readouterr().err


def _train_command(recipe: Path) -> list[str]:
    return [sys.executable, "-m", "fastmri_zoo.cli", "train", str(recipe), "--run-dir", "run", "-o", "preset",
            "--verbose", "2"]


def _environment() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


@pytest.mark.slow
def test_train_resumes_after_being_killed(tmp_path, singlecoil_data):
    """Kill `fastmri-zoo train` after its first backup, rerun the same command: it continues at
    the saved epoch and ends with exactly `steps` optimizer steps, not a fresh start."""
    epochs = 12
    config = write_recipe(tmp_path, singlecoil_data, steps=5 * epochs, steps_per_epoch=5)
    metadata = tmp_path / "run" / "backup" / "training_metadata.json"
    log = (tmp_path / "first.log").open("w")
    process = subprocess.Popen(_train_command(config), cwd=tmp_path, env=_environment(), stdout=log,
                               stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not metadata.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, f"the run ended before its first backup: {(tmp_path / 'first.log').read_text()[-2000:]}"
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved_epoch = json.loads(metadata.read_text())["epoch"]
    assert 1 <= saved_epoch < epochs, "the first run must be stopped mid-way"
    assert not (tmp_path / "run" / "run.json").exists()

    second = subprocess.run(_train_command(config), cwd=tmp_path, env=_environment(), capture_output=True,
                            text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["optimizer_iterations"] == 5 * epochs  # restored optimizer state + the remaining epochs
    assert record["resumed_from_epoch"] == saved_epoch
    sessions = json.loads((tmp_path / "run" / "sessions.json").read_text())
    assert len(sessions) == 2 and sessions[0]["start_epoch"] == 0
    assert sessions[1]["start_epoch"] == saved_epoch and sessions[1]["epochs_done"] == epochs
    assert f"Epoch {saved_epoch + 1}/{epochs}" in second.stdout and f"Epoch {saved_epoch}/{epochs}" not in second.stdout
    rows = [int(row["epoch"]) for row in csv.DictReader((tmp_path / "run" / "log.csv").open())]
    assert rows[-(epochs - saved_epoch):] == list(range(saved_epoch, epochs))
    assert sorted(set(rows)) == list(range(epochs)) or sorted(set(rows)) == sorted(set(range(epochs)) - {saved_epoch - 1})
    assert (tmp_path / "preset" / "model.weights.h5").is_file()
    card = (tmp_path / "preset" / "README.md").read_text()
    assert "fastmri-zoo train" in card and f"{5 * epochs} steps of batch 2" in card

    # Running the finished command again trains nothing more and keeps the step count.
    third = subprocess.run(_train_command(config), cwd=tmp_path, env=_environment(), capture_output=True,
                           text=True, timeout=600)
    assert third.returncode == 0, third.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["optimizer_iterations"] == 5 * epochs
    assert "Epoch " not in third.stdout
