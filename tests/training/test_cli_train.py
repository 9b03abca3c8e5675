"""fastmri-zoo train / finetune: config validation, and a run killed mid-way that resumes."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastmri_zoo import cli

REPO = Path(__file__).resolve().parents[2]


def write_config(folder: Path, data_dir: Path, **overrides) -> Path:
    config = {
        "model": {"class": "UNet", "kwargs": {"layers_n_channels": [4, 8], "residual": True}},
        "data": str(data_dir),
        "pipeline": {"mask_type": "random", "accelerations": [4], "center_fractions": [0.08], "multicoil": False},
        "loss": "l1",
        "optimizer": "adam",
        "learning_rate": 0.003,
        "steps": 60,
        "steps_per_epoch": 5,
        "batch_size": 2,
        "seed": 0,
        "run_dir": "run",
        "output": "preset",
        "card": {"name": "tiny-unet"},
    }
    config.update(overrides)
    path = folder / "config.json"
    path.write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    return path


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"stepz": 10}, r"config: unknown key\(s\) \['stepz'\]"),
        ({"steps": None}, r"config: missing required key\(s\) \['steps'\]"),
        ({"model": {"class": "UNett"}}, r"model.class: unknown model class 'UNett'; expected one of \[.*'UNet'"),
        ({"model": {"class": "UNet", "args": {}}}, r"model: unknown key\(s\) \['args'\]"),
        ({"data": "absent"}, r"data: no such folder: .*absent"),
        ({"data": {"train": "absent"}}, r"data.train: no such folder"),
        ({"pipeline": {"mask": "random"}}, r"pipeline: unknown key\(s\) \['mask'\]"),
        ({"learning_rate": -1}, r"learning_rate: expected a value > 0"),
        ({"card": {"author": "me"}}, r"card: unknown model-card field\(s\) \['author'\]"),
    ],
)
def test_bad_config_gives_a_clear_error(tmp_path, singlecoil_data, capsys, overrides, message):
    path = write_config(tmp_path, singlecoil_data, **overrides)
    assert cli.main(["train", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("fastmri-zoo train: error:")
    assert __import__("re").search(message, error), error


def test_missing_config_and_bad_model_kwargs(tmp_path, singlecoil_data, capsys):
    assert cli.main(["train", str(tmp_path / "absent.json")]) == 2
    assert "CONFIG: no such file" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{not json")
    assert cli.main(["train", str(tmp_path / "broken.json")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    path = write_config(tmp_path, singlecoil_data, model={"class": "UNet", "kwargs": {"layers": 3}})
    assert cli.main(["train", str(path)]) == 2
    assert "model.kwargs: UNet does not accept them" in capsys.readouterr().err


def test_finetune_reports_a_missing_data_folder(tmp_path, capsys):
    assert cli.main(["finetune", "some-model", str(tmp_path / "absent")]) == 2
    assert "data_dir: no such folder" in capsys.readouterr().err  # checked before loading anything


def _train_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "fastmri_zoo.cli", "train", str(config), "--verbose", "2"]


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
    config = write_config(tmp_path, singlecoil_data, steps=5 * epochs, steps_per_epoch=5)
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
