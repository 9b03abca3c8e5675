"""Smoke test of bench/cpu_settings.py: its --quick run prints the U-net row, times and CPU seconds
positive for each of the three settings, and each ratio is the row's own default / setting step time
(no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "cpu_settings.py"


def test_quick_run_prints_the_row_and_its_ratios():
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=1500,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("unet-cartesian-singlecoil-af4")]
    fields = row.split()
    cells = [tuple(map(float, fields[1 + 3 * i:4 + 3 * i])) for i in range(3)]  # default, BFC, BFC+oneDNN
    for step, user, system in cells:
        assert step > 0 and user > 0 and system >= 0
    default = cells[0][0]
    for (step, _, _), printed in zip(cells[1:], fields[10:12], strict=True):
        ratio = float(printed.rstrip("x"))
        # the printed times carry 3 decimals, so the ratio of the printed values is known to their rounding
        low, high = (default - 5e-4) / (step + 5e-4), (default + 5e-4) / (step - 5e-4)
        assert low - 0.005 <= ratio <= high + 0.005
