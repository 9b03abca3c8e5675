"""The quickstart notebook executes from top to bottom (so it cannot rot)."""

from pathlib import Path

import pytest

from tests.notebook_helpers import execute_notebook, figures

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_executes(tmp_path, monkeypatch):
    notebook, outputs = execute_notebook(NOTEBOOK, tmp_path, monkeypatch, timeout=600)
    assert "CG-SENSE" in outputs and "zero-filled" in outputs
    assert figures(notebook)  # the figure cell produced an image
