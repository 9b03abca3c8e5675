import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from fastmri_zoo.runtime import prefer_training_cpu_settings  # noqa: E402  (imports no TensorFlow)

# Before TensorFlow starts in a test process (and in the processes tests start, which inherit this
# environment): the CPU settings TensorFlow chooses by itself on recent Intel CPUs, its pooled allocator
# and oneDNN's kernels, asked for on every CPU as the training commands do, so the suite runs the same
# kernels on every machine; elsewhere (an AMD EPYC) TensorFlow's default took 1.3-2.3x the time of a
# training step (bench/cpu_settings.py). A caller's TF_CPU_ALLOCATOR_USE_BFC / TF_ENABLE_ONEDNN_OPTS is kept.
prefer_training_cpu_settings()

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def crandn(rng, shape):
    """Standard complex Gaussian array, complex64."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
