"""The uncertainty notebook (issue #17): Colab-ready, offline, the shipped prior on a held-out slice, and it executes."""

import json
import re
from pathlib import Path

import nbformat
import pytest

from tests.notebook_helpers import execute_notebook, figures

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "uncertainty.ipynb"
TABLE_ROW = re.compile(r"^(zero-filled|one sample|posterior mean)\s+(\d+\.\d+)\s+(\d\.\d+)\s*$", re.M)
SCORES = re.compile(r"^(all pixels|the head)\s+Spearman\(std, \|error\|\) (-?\d\.\d+)\s+90% interval coverage (\d\.\d+)",
                    re.M)


def test_the_notebook_installs_on_colab_reads_bundled_data_and_loads_the_shipped_prior():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert 'if "google.colab" in sys.modules' in code[0] and "pip" in code[0]
    source = "\n".join(code)
    assert "/work/" not in source and "bundled_sample(" in source  # only data shipped with the package
    assert 'prior = fastmri_zoo.load("score-prior-ixi")' in source and "fit(" not in source  # no stand-in trained
    assert "held out" in notebook.cells[0].source  # the sampled subject is one the prior never saw
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # stored clean
    assert json.loads(NOTEBOOK.read_text())["metadata"]["colab"] == {"provenance": []}


@pytest.mark.slow
def test_uncertainty_notebook_executes(tmp_path, monkeypatch):
    # sampling takes minutes on 2 CPU cores (more on a loaded machine)
    notebook, outputs = execute_notebook(NOTEBOOK, tmp_path, monkeypatch)
    table = {method: (float(psnr), float(ssim)) for method, psnr, ssim in TABLE_ROW.findall(outputs)}
    assert set(table) == {"zero-filled", "one sample", "posterior mean"}, outputs[-2000:]
    assert all(10 < psnr < 60 and 0 < ssim <= 1 for psnr, ssim in table.values()), table
    scores = {pixels: (float(spearman), float(coverage)) for pixels, spearman, coverage in SCORES.findall(outputs)}
    assert set(scores) == {"all pixels", "the head"}, outputs[-2000:]
    assert all(-1 <= spearman <= 1 and 0 <= coverage <= 1 for spearman, coverage in scores.values()), scores
    assert "40 samples per pixel" in outputs
    pdnet = re.search(r"^PDNet\s+(\d+\.\d+)\s+(\d\.\d+)\s*$", outputs, re.M)
    assert pdnet and 10 < float(pdnet.group(1)) < 60, outputs[-2000:]
    assert figures(notebook) == 1
