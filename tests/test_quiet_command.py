"""A quiet command: TensorFlow's start-up lines hidden unless --verbose, the zoo's own output kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import fastmri_zoo

SAMPLES = Path(fastmri_zoo.__file__).parent / "samples"

_NATIVE = """
import os, sys
from fastmri_zoo.runtime import quiet_native_output
with quiet_native_output({enabled}) as captured:
    os.write(2, b"native chatter\\n")          # what C++ libraries do
    print("zoo message", file=sys.stderr)     # what the zoo does
    sys.stderr.flush()
    kept = captured()
print("captured:", repr(kept))
os.write(2, b"after\\n")
"""


@pytest.mark.parametrize("enabled", [True, False])
def test_native_writes_are_captured_and_python_writes_shown(enabled):
    result = subprocess.run([sys.executable, "-c", _NATIVE.format(enabled=enabled)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "zoo message" in result.stderr and "after" in result.stderr  # fd 2 restored on exit
    if enabled:
        assert "native chatter" not in result.stderr
        assert "captured: 'native chatter\\n'" in result.stdout  # kept for a bug report
    else:
        assert "native chatter" in result.stderr and "captured: ''" in result.stdout


def test_help_names_every_option_with_help_and_examples(capsys):
    from fastmri_zoo.cli import COMMANDS, EXAMPLES, build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--version"])
    assert capsys.readouterr().out.strip() == f"fastmri-zoo {fastmri_zoo.__version__}"
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for name in COMMANDS:
        assert EXAMPLES[name] and all(line.startswith("fastmri-zoo " + name) for line in EXAMPLES[name])
        for action in subparsers[name]._actions:
            assert action.help, f"fastmri-zoo {name}: {action.option_strings or action.dest} has no help"
        text = subparsers[name].format_help()
        assert "examples:" in text
    assert "The ``fastmri-zoo`` command" not in parser.format_help()


@pytest.mark.slow
def test_reconstruct_prints_only_the_zoos_lines(tmp_path):
    """The acceptance: `fastmri-zoo reconstruct NAME FILE -o OUT.h5` prints no line the zoo did not write
    (non-Cartesian, so that tfkbnufft is imported too)."""
    out = tmp_path / "out.h5"
    result = subprocess.run(
        ["fastmri-zoo", "reconstruct", "unet-adjdcomp-radial-multicoil", str(SAMPLES / "radial_cardiac_12coil.h5"),
         "-o", str(out)], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.is_file()
    stderr_lines = [part for line in result.stderr.splitlines() for part in line.split("\r") if part.strip()]
    assert all(line.startswith("reconstruct") for line in stderr_lines), stderr_lines  # progress bars only
    for line in result.stdout.splitlines():
        assert not any(token in line for token in ("absl", "cuda", "tensorflow", "WARNING", "deprecat")), line
    verbose = subprocess.run(
        ["fastmri-zoo", "--verbose", "reconstruct", "unet-adjdcomp-radial-multicoil",
         str(SAMPLES / "radial_cardiac_12coil.h5"), "-o", str(tmp_path / "out2.h5")],
        capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert verbose.returncode == 0 and len(verbose.stderr.splitlines()) > len(stderr_lines)
