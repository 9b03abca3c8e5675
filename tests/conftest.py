import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def crandn(rng, shape):
    """Standard complex Gaussian array, complex64."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
