"""Smoke test of bench/noncartesian.py: its --quick run prints the whole table (Toeplitz, tfkbnufft
explicit and sparse explicit NC-PDNets, their ratios), the three agree, and its FLOP counts match
hand-computed closed forms; its --prepare-3d --quick run prints the preparation of a kooshball volume
beside the 3D network, with totals and ratios that follow from the rows."""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "noncartesian.py"

ROWS = [
    "inference s/slice, eager (kernel cached)",
    "inference s/slice, graph (kernel per call)",
    "training step s (kernel per step)",
    "forward pass GFLOP (analytic)",
    "+ Toeplitz kernel when rebuilt",
    "matmul rate GFLOP/s",
    "alone, best of 5",
    "floor s = FLOP / rate",
    "measured / floor, eager (kernel cached)",
    "measured / floor, graph (kernel per call)",
    "at the best rate alone, eager",
    "at the best rate alone, graph",
    "relative difference |x_T - x_tfk| / |x_tfk|",
    "relative difference |x_sparse - x_tfk| / |x_tfk|",
    "coil-map refiner (U-net per coil)",
    "A^H D y (sparse gridding)",
    "Toeplitz kernel (PSF NUFFT, 2x grid)",
    "Toeplitz A^H D A x - A^H D y",
    "in all: FFT of the coils on 2x grid",
    "explicit A^H D (A x - y), tfkbnufft",
    "explicit A^H D (A x - y), sparse",
    "in it: interpolation, tfkbnufft",
    "in it: interpolation, sparse",
    "in it: spreading, tfkbnufft",
    "in it: spreading, sparse",
    "image net (3 convolutions)",
]


def numbers_after(line: str, label: str) -> list[float]:
    return [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]\d+)?", line.split(label, 1)[1])]


def test_quick_run_prints_the_table_and_the_three_models_agree():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    found = {}
    for label in ROWS:
        matching = [line for line in lines if label in line]
        assert matching, f"row {label!r} missing from:\n{result.stdout}"
        found[label] = numbers_after(matching[0], label)

    for label in ROWS[:3]:
        toeplitz, tfkbnufft, sparse, tfkbnufft_ratio, sparse_ratio = found[label]
        assert toeplitz > 0 and tfkbnufft > 0 and sparse > 0
        assert tfkbnufft_ratio == pytest.approx(tfkbnufft / toeplitz, rel=0.02, abs=0.01)
        assert sparse_ratio == pytest.approx(sparse / toeplitz, rel=0.02, abs=0.01)
    # Both explicit models do the same operations, so the same count and floor.
    toeplitz_gflop, tfkbnufft_gflop, sparse_gflop = found["forward pass GFLOP (analytic)"]
    assert tfkbnufft_gflop == sparse_gflop > toeplitz_gflop > 0
    (difference,) = found["relative difference |x_T - x_tfk| / |x_tfk|"]
    assert 0 <= difference < 1e-3
    (difference,) = found["relative difference |x_sparse - x_tfk| / |x_tfk|"]
    assert 0 <= difference < 1e-4
    assert found["matmul rate GFLOP/s"][-1] > 0  # the rate interleaved with the inference runs
    (best,) = found["alone, best of 5"]
    assert best > 0
    # The ratios at the best rate are the interleaved ones scaled by best / interleaved rate.
    scale = best / found["matmul rate GFLOP/s"][-1]
    for mode, label in (("eager", "eager (kernel cached)"), ("graph", "graph (kernel per call)")):
        interleaved = found[f"measured / floor, {label}"]
        at_best = found[f"at the best rate alone, {mode}"]
        assert at_best == pytest.approx([scale * ratio for ratio in interleaved], rel=0.02, abs=0.02)
    # 64 x 64 image net: 3x3 convolutions 12 -> 32 -> 32 -> 10 channels, 2 k^2 cin cout H W flops each.
    calls, gflop = found["image net (3 convolutions)"][:2]
    assert calls == 10
    assert gflop == pytest.approx(2 * 9 * (12 * 32 + 32 * 32 + 32 * 10) * 64 * 64 / 1e9, abs=5e-4)
    # Gridding of the --quick run's 2 coils, 2048 samples: 2 P^2 8 flops per sample and coil, P = 6.
    for label in ROWS[-5:-1]:
        calls, gflop = found[label][:2]
        assert calls == 10
        assert gflop == pytest.approx(2 * 2 * 36 * 8 * 2048 / 1e9, abs=5e-4)


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_noncartesian", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flop_counts_match_closed_forms():
    bench = load_bench()
    from fastmri_zoo.models import NCPDNet

    model = NCPDNet(multicoil=True, refine_smaps=True)
    model.build_layers()
    size, coils, nsamples = 64, 3, 2048
    flops = bench.forward_flops(model, size, coils, nsamples)
    pixels = size * size
    assert bench.fft_flops(1024) == 5 * 1024 * 10
    assert flops["image_net"] == 2 * 9 * (12 * 32 + 32 * 32 + 32 * 10) * pixels
    # Refiner U-net, channels [4, 8, 16], two 3x3 convolutions per scale, 2x2 up-convolutions,
    # 1x1 head 4 -> 4 and output 4 -> 2, per pixel of each scale (2 k^2 cin cout):
    full = 2 * (9 * 2 * 4 + 9 * 4 * 4 + 4 * 8 * 4 + 9 * 8 * 4 + 9 * 4 * 4 + 4 * 4 + 4 * 2)
    half = 2 * (9 * 4 * 8 + 9 * 8 * 8 + 4 * 16 * 8 + 9 * 16 * 8 + 9 * 8 * 8)
    quarter = 2 * (9 * 8 * 16 + 9 * 16 * 16)
    assert flops["refiner"] == coils * (full * pixels + half * pixels / 4 + quarter * pixels / 16)
    grid = 4 * pixels
    fft = 5 * grid * math.log2(grid)
    # Toeplitz: per coil 2 FFTs and one kernel product on the 2x grid, smaps and conj(smaps) products.
    assert flops["toeplitz"] == pytest.approx(coils * (2 * fft + 6 * grid + 12 * pixels) + 2 * coils * pixels)
    # Explicit: the same FFTs plus interpolation and spreading of 6 x 6 neighbours per sample and coil.
    gridding = 2 * 36 * 8 * nsamples
    assert flops["explicit"] - flops["toeplitz"] == pytest.approx(
        coils * (2 * gridding + 4 * nsamples + 12 * pixels - 6 * grid) - 2 * pixels
    )
    assert flops["gridding"] == coils * gridding


PREPARATION_ROWS = [
    "trajectory (kooshball)",
    "density weights (Pipe-Menon)",
    "acquisition (forward NUFFT of the volume)",
    "preprocessing (A^H D y, scale[, coil maps])",
    "network, Toeplitz kernel built",
    "network, kernel cached",
    "preparation, first volume of a trajectory",
    "preparation, further volumes (density cached)",
    "preparation / network, first volume",
    "preparation / network, further volumes",
]


def printed_ratio_bounds(numerator: float, denominator: float) -> tuple[float, float]:
    """The range a ratio printed to 2 decimals can take when its two terms were printed to 3 decimals:
    each printed term is within 0.0005 of the value the ratio was computed from, the ratio within 0.005
    (the quick run's terms are hundredths of a second, so the terms' rounding alone moves it by percents)."""
    return ((numerator - 0.0005) / (denominator + 0.0005) - 0.005,
            (numerator + 0.0005) / (denominator - 0.0005) + 0.005)


def test_prepare_3d_quick_prints_the_preparation_beside_the_network():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--prepare-3d", "--quick"], capture_output=True, text=True, timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    found = {}
    for label in PREPARATION_ROWS:
        matching = [line for line in lines if label in line]
        assert matching, f"row {label!r} missing from:\n{result.stdout}"
        found[label] = numbers_after(matching[0], label)
    stages = PREPARATION_ROWS[:4]
    for column in (0, 1):  # wall, CPU
        assert all(found[label][column] >= 0 for label in PREPARATION_ROWS[:8])
        first = sum(found[label][column] for label in stages)
        further = sum(found[label][column] for label in stages[2:])
        assert found[PREPARATION_ROWS[6]][column] == pytest.approx(first, abs=0.003)
        assert found[PREPARATION_ROWS[7]][column] == pytest.approx(further, abs=0.003)
        network_first, network_next = found[PREPARATION_ROWS[4]][column], found[PREPARATION_ROWS[5]][column]
        assert network_first >= 0.001 and network_next >= 0.001
        for total_row, network, ratio_row in ((6, network_first, 8), (7, network_next, 9)):
            low, high = printed_ratio_bounds(found[PREPARATION_ROWS[total_row]][column], network)
            assert low <= found[PREPARATION_ROWS[ratio_row]][column] <= high, (total_row, column, low, high)
