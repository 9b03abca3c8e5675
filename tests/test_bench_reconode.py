"""Smoke test of bench/reconode_memory.py: its --quick run prints every row and ratio, the parameter
counts are the models', and its memory numbers meet the issue's acceptance (memory only: no timing
is asserted): checkpointing cuts LT-RK4's peak by half, FA's peak at 20 steps is at most 1.2x its
peak at 5 steps while FT's grows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "reconode_memory.py"
LABELS = ["LT-RK4 N=5", "LT-RK4 N=5 checkpointed"] + [f"{m}-RK4 N={n}" for m in ("FT", "FA") for n in (5, 20)]


def test_quick_run_prints_the_table_and_meets_the_memory_targets():
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=3000,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {}
    for line in result.stdout.splitlines():
        for label in LABELS:
            if re.match(re.escape(label) + r"\s+\d", line):
                params, peak, low, high, seconds = line[len(label):].split()
                rows[label] = (int(params), float(peak), float(seconds))
                assert float(low) <= float(peak) <= float(high), line
    assert set(rows) == set(LABELS), result.stdout
    assert rows["LT-RK4 N=5"][0] == 159210 and rows["FT-RK4 N=5"][0] == rows["FA-RK4 N=20"][0] == 30686
    assert all(peak > 0 and seconds > 0 for _, peak, seconds in rows.values())
    assert rows["LT-RK4 N=5 checkpointed"][1] <= 0.5 * rows["LT-RK4 N=5"][1]
    assert rows["FA-RK4 N=20"][1] <= 1.2 * rows["FA-RK4 N=5"][1]
    assert rows["FT-RK4 N=20"][1] > 2 * rows["FT-RK4 N=5"][1]
    assert "LT-RK4 checkpointed / plain" in result.stdout and "FA / FT at N=20" in result.stdout
