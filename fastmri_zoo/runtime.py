"""A quiet command line: TensorFlow's start-up lines hidden, the zoo's own output kept.

Importing TensorFlow and tfkbnufft and creating the first device print lines the zoo did not
write and that tell a CPU user nothing (absl's "All log messages before absl::InitializeLog()",
"Could not find cuda drivers", "failed call to cuInit", a CPU-instruction notice, a deprecation
warning from tfkbnufft); ``TF_CPP_MIN_LOG_LEVEL`` does not silence the first ones, and they
come whenever TensorFlow is first imported, which the command does as late as it can (bad
inputs are reported before). :func:`quiet_native_output` therefore keeps, for the whole
command, file descriptor 2 (where native libraries write) on a temporary file while Python's
``sys.stderr`` (the zoo's messages, progress bars, warnings) still reaches the terminal; the
captured text is shown when the command fails unexpectedly, so nothing a bug report needs is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings

__all__ = ["quiet_native_output", "QUIET_LOGGERS", "prefer_training_cpu_settings", "POOLED_ALLOCATOR_VARIABLE",
           "ONEDNN_VARIABLE", "TRAINING_CPU_ENVIRONMENT", "ONEDNN_NOTICE"]

#: Python loggers set to errors only in a quiet command (TensorFlow's "From ...: is deprecated" lines).
QUIET_LOGGERS = ("tensorflow", "absl", "h5py")


#: TensorFlow's switch for its pooled CPU allocator (BFC).
POOLED_ALLOCATOR_VARIABLE = "TF_CPU_ALLOCATOR_USE_BFC"

#: TensorFlow's switch for oneDNN's CPU kernels (convolutions, matrix products, their gradients).
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"

#: The CPU settings TensorFlow chooses by itself only where it turns oneDNN on by default (recent
#: Intel CPUs), asked for on every CPU by the training commands, the memory benchmarks and the test suite: the pooled
#: allocator and oneDNN's kernels.
TRAINING_CPU_ENVIRONMENT = {POOLED_ALLOCATOR_VARIABLE: "true", ONEDNN_VARIABLE: "1"}

#: What TensorFlow logs as it starts (an INFO line: TF_CPP_MIN_LOG_LEVEL 0) when it runs oneDNN's kernels.
ONEDNN_NOTICE = "oneDNN custom operations are on"


def prefer_training_cpu_settings() -> None:
    """Ask TensorFlow for :data:`TRAINING_CPU_ENVIRONMENT`, each setting unless the caller's environment chose.

    Where TensorFlow does not turn oneDNN on by itself (an AMD EPYC, say) it allocates CPU tensors with
    plain ``malloc``, so each of a training step's large tensors is mapped and unmapped at every step
    (the page faults cost system time), and it runs Eigen's convolutions, slower than oneDNN's.
    ``bench/cpu_settings.py`` on an AMD EPYC core (the other one training): a training step of the PDNet
    recipe 3.42 s by default, 2.22 s pooled, 1.50 s pooled with oneDNN (2.29x); of the LT-RK4 recipe 5.61 /
    4.83 / 3.41 s (1.64x); of the i-RIM recipe 8.08 / 6.29 / 6.40 s (1.26x, the pool's alone).
    TensorFlow reads both variables when it starts, so the training commands call this before importing
    it. ``TF_CPU_ALLOCATOR_USE_BFC=false`` or ``TF_ENABLE_ONEDNN_OPTS=0`` in the caller's environment is kept.
    """
    for variable, value in TRAINING_CPU_ENVIRONMENT.items():
        os.environ.setdefault(variable, value)


_terminal = None


def _terminal_stream():
    """A text stream on a duplicate of the process's standard error, made once per process (so
    that a logging handler created while a command runs stays usable after it)."""
    global _terminal
    if _terminal is None:
        encoding = getattr(sys.__stderr__, "encoding", None) or "utf-8"
        _terminal = open(os.dup(2), "w", buffering=1, encoding=encoding, errors="backslashreplace")
    return _terminal


def _writes_to_fd2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # e.g. pytest's capsys: not a file
        return False


@contextlib.contextmanager
def quiet_native_output(enabled: bool = True):
    """While active (``enabled``): native writes to fd 2 go to a temporary file, ``sys.stderr``
    (when it is the process's standard error) writes to the terminal through a duplicate of it,
    TensorFlow's and absl's Python loggers report errors only, and deprecation warnings are
    hidden. Yields a function returning the captured native output (empty when not enabled).
    Everything is restored on exit."""
    if not enabled:
        yield lambda: ""
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    previous_levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    python_stderr = sys.stderr
    python_stderr.flush()
    swap = _writes_to_fd2(python_stderr)
    terminal = _terminal_stream() if swap else None
    saved_fd2 = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        if swap:
            sys.stderr = terminal
        os.dup2(capture.fileno(), 2)

        def captured() -> str:
            capture.flush()
            capture.seek(0)
            return capture.read().decode(errors="replace")

        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved_fd2, 2)
            os.close(saved_fd2)
            sys.stderr = python_stderr
            for name, level in previous_levels.items():
                logging.getLogger(name).setLevel(level)
