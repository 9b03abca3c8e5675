"""Smoke test of bench/allocator.py: its --quick run prints the PDNet row, times and CPU seconds
positive, and the ratio is the row's own default / BFC step time (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "allocator.py"


def test_quick_run_prints_the_row_and_its_ratio():
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=1200,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("pdnet-cartesian-singlecoil-af4")]
    fields = row.split()
    default, user, system, pooled, pooled_user, pooled_system = map(float, fields[1:7])
    assert default > 0 and pooled > 0 and user > 0 and pooled_user > 0 and system >= 0 and pooled_system >= 0
    ratio = float(fields[7].rstrip("x"))
    # the printed times carry 3 decimals, so the ratio of the printed values is known to their rounding
    low, high = (default - 5e-4) / (pooled + 5e-4), (default + 5e-4) / (pooled - 5e-4)
    assert low - 0.005 <= ratio <= high + 0.005
