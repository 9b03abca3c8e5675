"""Running the notebooks of notebooks/ in the tests: top to bottom in a Jupyter kernel, as a reader would."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute_notebook(path: Path, tmp_path: Path, monkeypatch, timeout: int = 3600):
    """Execute the notebook at ``path`` in a python3 kernel whose working folder is ``tmp_path``; returns
    ``(notebook with its outputs, the text its code cells printed)``. The kernel draws figures with its
    inline backend (MPLBACKEND unset) and TensorFlow's start-up lines stay quiet."""
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
    )
    return notebook, text


def figures(notebook) -> int:
    """How many PNG images the notebook's code cells output."""
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))
