"""The training commands ask TensorFlow for its pooled CPU allocator (BFC) and oneDNN's kernels, each
unless the caller chose; the other commands leave both alone (``runtime.prefer_training_cpu_settings``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fastmri_zoo import cli
from fastmri_zoo.runtime import ONEDNN_NOTICE, ONEDNN_VARIABLE, POOLED_ALLOCATOR_VARIABLE, TRAINING_CPU_ENVIRONMENT

VARIABLES = (POOLED_ALLOCATOR_VARIABLE, ONEDNN_VARIABLE)


def test_the_settings_are_tensorflow_s_switches_turned_on():
    assert TRAINING_CPU_ENVIRONMENT == {"TF_CPU_ALLOCATOR_USE_BFC": "true", "TF_ENABLE_ONEDNN_OPTS": "1"}


@pytest.mark.parametrize("command", ["train", "search", "federate"])
def test_a_training_command_asks_for_both(command, tmp_path, monkeypatch, capsys):
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    arguments = [command, str(tmp_path / "missing.json")] + ([] if command == "train" else ["-o", str(tmp_path / "out")])
    assert cli.main(arguments) == 2  # the missing recipe is reported...
    assert "missing.json" in capsys.readouterr().err
    assert {variable: os.environ[variable] for variable in VARIABLES} == TRAINING_CPU_ENVIRONMENT  # ...after the choice


@pytest.mark.parametrize("chosen", [POOLED_ALLOCATOR_VARIABLE, ONEDNN_VARIABLE])
def test_the_callers_choice_is_kept_and_other_commands_choose_nothing(chosen, tmp_path, monkeypatch, capsys):
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(chosen, "0")
    assert cli.main(["train", str(tmp_path / "missing.json")]) == 2
    assert os.environ[chosen] == "0"  # the caller's choice, not overwritten...
    (other,) = set(VARIABLES) - {chosen}
    assert os.environ[other] == TRAINING_CPU_ENVIRONMENT[other]  # ...while the other setting is still asked for
    for variable in VARIABLES:
        monkeypatch.delenv(variable)
    assert cli.main(["list"]) == 0
    assert not set(VARIABLES) & set(os.environ)


_AFTER_TRAIN = """
import sys
from fastmri_zoo import cli
assert cli.main(["--verbose", "train", sys.argv[1]]) == 2  # --verbose: TensorFlow's start-up lines shown
import tensorflow as tf
tf.config.experimental.reset_memory_stats("CPU:0")  # raises ValueError unless TensorFlow pools (BFC)
print("pooled")
"""


def test_tensorflow_pools_and_runs_onednn_in_a_process_that_ran_a_training_command(tmp_path):
    """(On CPUs where TensorFlow chooses both by itself, recent Intel ones, this holds without the command too.)"""
    env = {key: value for key, value in os.environ.items() if key not in VARIABLES}
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"  # TensorFlow's start-up notice that it runs oneDNN is an INFO line
    result = subprocess.run([sys.executable, "-c", _AFTER_TRAIN, str(tmp_path / "missing.json")], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["pooled"]
    assert ONEDNN_NOTICE in result.stderr
