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


#: The slowest tests (nodeid prefixes) and roughly how many seconds each takes in the slow run on two
#: workers (the --durations list of the slow run, 153 tests in 38 min, 2026-12-07; refresh them from
#: `.ci/run`'s list when they drift). Only their order matters: see below.
LONGEST_TESTS = {
    "tests/test_bench_reconode.py": 503,
    "tests/training/test_recipes.py::test_every_federation_recipe_federates_through_the_cli[nasnet-fedautomri": 370,
    "tests/test_notebook_uncertainty.py": 308,
    "tests/test_notebook_finetune.py": 302,
    "tests/federated/test_deployment.py": 244,
    "tests/test_notebook_search.py": 234,
    "tests/training/test_recipes.py::test_every_recipe_trains_through_the_cli[learnlet-ista": 135,
    "tests/federated/test_federated.py::test_an_interrupted_federation_resumes_where_it_stopped[fedautomri]": 122,
    "tests/test_bench_irim.py": 108,
    "tests/test_bench_noncartesian.py::test_quick_run_prints_the_table_and_the_three_models_agree": 91,
    "tests/training/test_recipes.py::test_every_federation_recipe_federates_through_the_cli[dccnn-fedavg": 89,
    "tests/training/test_recipes.py::test_every_recipe_trains_through_the_cli[irim-3d": 87,
    "tests/training/test_recipes.py::test_every_recipe_trains_through_the_cli[irim-cartesian-multicoil": 86,
    "tests/test_notebook_learnlets.py": 78,
    "tests/training/test_recipes.py::test_every_recipe_trains_through_the_cli[irim-cartesian-singlecoil": 77,
    "tests/test_notebook_federated.py": 73,
    "tests/test_bench_cpu_settings.py": 68,
    "tests/federated/test_federated.py::test_fedprox_with_mu_zero_equals_fedavg": 55,
}


def _expected_seconds(item) -> float:
    return next((seconds for prefix, seconds in LONGEST_TESTS.items() if item.nodeid.startswith(prefix)), 0.0)


@pytest.hookimpl(trylast=True)  # after -m has deselected what this run leaves out
def pytest_collection_modifyitems(config, items):
    """Start the longest tests first, alternately at the head of each half of the run's order.

    pytest-xdist's worksteal (the slow tests' `.ci/run` line) hands each of two workers one contiguous
    half of the collection, and an idle worker takes the tail of the other's queue. In collection order
    the longest tests fell together and late (the notebooks, the benches, the recipes), so the run could
    end on one of them while the other worker idled for minutes. Here each half starts with every other
    long test, longest first, and ends with the short ones. Every other order is kept as collected."""
    expected = {item: _expected_seconds(item) for item in items}
    long = sorted((item for item in items if expected[item]), key=expected.get, reverse=True)
    if not long:
        return
    short = [item for item in items if not expected[item]]
    first_half = long[0::2] + short[: max(0, len(items) // 2 - len(long[0::2]))]
    placed = set(first_half)
    items[:] = first_half + long[1::2] + [item for item in short if item not in placed]
