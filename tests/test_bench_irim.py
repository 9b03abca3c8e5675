"""Smoke test of bench/irim_memory.py: its --quick run prints a row per network and T, whose
parameter counts follow the networks' closed forms, and ratios that follow from the rows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "irim_memory.py"
NETWORKS = ("i-RIM invert to learn", "i-RIM backpropagation", "RIM")


def irim_layer(c, h, d):
    """Parameters of one invertible layer: Householder 3 x c, G (down, middle, up, with gains)."""
    c1, c2 = c // 2, c - c // 2
    return 3 * c + (c1 * d * d * h + 2 * h) + (9 * h * h + 2 * h) + (h * d * d * 2 * c2 + 2 * c2)


def test_quick_run_prints_every_row_and_consistent_ratios():
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=1200,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {}
    for line in result.stdout.splitlines():
        for network in NETWORKS:
            if line.startswith(network):
                numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", line[len(network):])]
                rows[network, int(numbers[0])] = numbers
    assert set(rows) == {(n, t) for n in NETWORKS for t in (1, 2)}, result.stdout
    # --quick: C = 8, four of the authors' layers (d = 1, 2, 2, 1) at their widths / 16; RIM 8 channels
    widths = [4, 8, 8, 4]
    downsampling = [1, 2, 2, 1]
    step = sum(irim_layer(8, h, d) for h, d in zip(widths, downsampling))
    gru = 2 * (8 * 24 + 24)
    rim = (25 * 4 * 8 + 8) + gru + (9 * 8 * 8 + 8) + gru + 9 * 8 * 2
    for network in NETWORKS:
        for steps in (1, 2):
            _, params, base, peak, train, seconds, peak_ratio, train_ratio, step_ratio = rows[network, steps]
            expected = rim if network == "RIM" else steps * step
            assert params == expected
            assert 0 <= train <= peak and base <= peak and seconds > 0
            first = rows[network, 1]
            # printed values are rounded (memory to 0.1 MB, seconds to 1 ms; ratios to 0.01)
            checks = ((peak_ratio, peak, first[3], 0.05), (train_ratio, train, first[4], 0.05),
                      (step_ratio, seconds, first[5], 0.0005))
            for ratio, value, base_value, unit in checks:
                rounding = value / base_value * (unit / max(value, unit) + unit / max(base_value, unit))
                assert ratio == pytest.approx(value / base_value, abs=0.006 + rounding)
    ratio_line = next(line for line in result.stdout.splitlines() if line.startswith("step time, invert to learn"))
    ratios = [float(r) for r in re.findall(r"(\d+\.\d+)x", ratio_line)]
    for ratio, t in zip(ratios, (1, 2)):
        memory_free, plain = rows[NETWORKS[0], t][5], rows[NETWORKS[1], t][5]
        rounding = memory_free / plain * (0.0005 / memory_free + 0.0005 / plain)
        assert ratio == pytest.approx(memory_free / plain, abs=0.006 + rounding)
