"""Memory of a training step, measured the one way both memory benchmarks share.

TensorFlow's CPU tensors do not come from glibc's heap counters (``mallinfo2`` sees none of them)
and the allocator keeps freed pages resident, so neither the heap statistics nor the resident
memory shows what a step holds. TensorFlow's own allocator statistics do:
``tf.config.experimental.reset_memory_stats`` / ``get_memory_info`` on ``CPU:0`` (public API)
give the bytes in tensors now and their peak since the reset. TensorFlow counts only from the
first of those calls on (and subtracts every later free), so ``start_counting()`` comes first in
the measuring process, before any model or input exists.
"""

from __future__ import annotations

import platform
import resource
from typing import Callable

from fastmri_zoo.runtime import TRAINING_CPU_ENVIRONMENT

#: What a measuring process's environment needs before TensorFlow starts: the CPU allocator that keeps
#: those statistics (BFC), and oneDNN's kernels. TensorFlow chooses both by itself only on CPUs where it
#: turns oneDNN on by default (recent Intel ones). Elsewhere (an AMD EPYC, say) ``reset_memory_stats``
#: fails with "Cannot reset memory stats for device 'CPU:0'", and Eigen's convolutions take scratch
#: buffers that dwarf a small model's activations (about 60 MB in every ReconODE step at 64 x 64,
#: against 8 MB with oneDNN). With both set, every machine measures the same kernels.
ENVIRONMENT = TRAINING_CPU_ENVIRONMENT  # what the training commands ask for (fastmri_zoo.runtime)


def start_counting() -> None:
    """Turn on TensorFlow's CPU allocator statistics; call before building anything."""
    import tensorflow as tf

    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
    except ValueError as error:
        raise RuntimeError(
            f"TensorFlow keeps no memory statistics on this CPU ({error}): start the measuring process with "
            f"{ENVIRONMENT} in its environment (bench/memory.py's ENVIRONMENT)."
        ) from None


def tensor_mb() -> float:
    """MB held in TensorFlow tensors on the CPU now (weights, optimizer slots, live inputs)."""
    import tensorflow as tf

    return tf.config.experimental.get_memory_info("CPU:0")["current"] / 2**20


def step_peak_mb(run: Callable[[], object]) -> float:
    """The peak MB of tensors allocated while ``run()`` runs, above those held before it."""
    import tensorflow as tf

    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    run()
    return (tf.config.experimental.get_memory_info("CPU:0")["peak"] - before) / 2**20


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far, in MB (ru_maxrss: KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 2**10
