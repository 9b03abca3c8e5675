"""The search notebook executes: the search on the bundled cardiac images ends with a lower entropy of
softmax(alpha) than it started with, a genotype without 'none', and the figures drawn."""

import re
from pathlib import Path

import numpy as np
import pytest

from tests.notebook_helpers import execute_notebook, figures

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "search.ipynb"
ENTROPY = re.compile(r"entropy of softmax\(alpha\): (\d\.\d+) at step 0 -> (\d\.\d+) at step (\d+)")
NODE = re.compile(r"^  node (\d) <- (\w+)\(([^)]+)\), (\w+)\(([^)]+)\)$", re.M)


@pytest.mark.slow
def test_search_notebook_executes(tmp_path, monkeypatch):
    # the search takes a few minutes on 2 CPU cores (more on a loaded machine)
    notebook, outputs = execute_notebook(NOTEBOOK, tmp_path, monkeypatch)
    first, last, steps = ENTROPY.search(outputs).groups()
    assert float(first) == pytest.approx(np.log(5), abs=1e-3)  # DARTS' near-zero initial logits
    assert float(last) < float(first) - 0.05 and 0 < int(steps) <= 500
    nodes = NODE.findall(outputs)
    assert [int(node[0]) for node in nodes] == [0, 1, 2]
    assert all(op != "none" for node in nodes for op in (node[1], node[3]))
    assert "NasNet with the searched cell" in outputs and "DCCNN-3res: 170,022" in outputs
    assert figures(notebook) >= 2  # the search history (entropy, weights per edge), the cell
