"""The training commands ask TensorFlow for its pooled CPU allocator (BFC) unless the caller chose;
the other commands leave the allocator alone (``runtime.prefer_pooled_cpu_allocator``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fastmri_zoo import cli
from fastmri_zoo.runtime import POOLED_ALLOCATOR_VARIABLE


@pytest.mark.parametrize("command", ["train", "search", "federate"])
def test_a_training_command_asks_for_the_pooled_allocator(command, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(POOLED_ALLOCATOR_VARIABLE, raising=False)
    arguments = [command, str(tmp_path / "missing.json")] + ([] if command == "train" else ["-o", str(tmp_path / "out")])
    assert cli.main(arguments) == 2  # the missing recipe is reported...
    assert "missing.json" in capsys.readouterr().err
    assert os.environ[POOLED_ALLOCATOR_VARIABLE] == "true"  # ...after the choice was made


def test_the_callers_choice_is_kept_and_other_commands_choose_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(POOLED_ALLOCATOR_VARIABLE, "false")
    assert cli.main(["train", str(tmp_path / "missing.json")]) == 2
    assert os.environ[POOLED_ALLOCATOR_VARIABLE] == "false"
    monkeypatch.delenv(POOLED_ALLOCATOR_VARIABLE)
    assert cli.main(["list"]) == 0
    assert POOLED_ALLOCATOR_VARIABLE not in os.environ


_AFTER_TRAIN = """
import sys
from fastmri_zoo import cli
assert cli.main(["train", sys.argv[1]]) == 2
import tensorflow as tf
tf.config.experimental.reset_memory_stats("CPU:0")  # raises ValueError unless TensorFlow pools (BFC)
print("pooled")
"""


def test_tensorflow_pools_in_a_process_that_ran_a_training_command(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != POOLED_ALLOCATOR_VARIABLE}
    result = subprocess.run([sys.executable, "-c", _AFTER_TRAIN, str(tmp_path / "missing.json")], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["pooled"]
