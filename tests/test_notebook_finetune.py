"""The fine-tuning notebook executes, and fine-tuning beats the pretrained network on held-out cardiac
images; the bundled cardiac images it uses are what they claim to be."""

import re
from pathlib import Path

import numpy as np
import pytest

from fastmri_zoo.demo import bundled_sample
from fastmri_zoo.samples import cardiac_images
from tests.notebook_helpers import execute_notebook, figures

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "finetune.ipynb"
#: the rows of the notebook's table: method, PSNR (dB), SSIM (means over the held-out images)
TABLE_ROW = re.compile(r"^(zero-filled|pretrained|fine-tuned|from scratch)\s+(\d+\.\d+)\s+(\d\.\d+)\s*$", re.M)


def test_cardiac_sample_loader():
    train, heldout = cardiac_images()
    assert train.shape == (16, 128, 128) and heldout.shape == (8, 128, 128)
    assert train.dtype == np.float32 and heldout.dtype == np.float32
    for images in (train, heldout):
        assert images.min() >= 0 and images.max() <= 1
        # every image has content (magnitudes in [0, 1], each peaking well above 0)
        assert (images.reshape(len(images), -1).max(axis=1) > 0.5).all()
    with np.load(bundled_sample("cardiac_sax")) as sample:
        # the loader returns the stored values divided by the stored scale
        np.testing.assert_allclose(heldout, sample["heldout"] / 65535.0, rtol=1e-6)
        assert float(sample["scale"]) == 65535.0
        assert not set(sample["train_files"].tolist()) & set(sample["heldout_files"].tolist())
        assert len(set(sample["train_files"].tolist())) == 16 and len(set(sample["heldout_files"].tolist())) == 8
        attribution = str(sample["attribution"])
        assert "Deep-ADMM-Net" in attribution and "MIT" in attribution and str(sample["licence"]) == "MIT"
    # no held-out image is (close to) a fine-tuning image
    distances = np.abs(heldout[:, None] - train[None]).mean(axis=(2, 3))
    assert distances.min() > 0.01


@pytest.mark.slow
def test_finetune_notebook_executes(tmp_path, monkeypatch):
    # the training cells take minutes on 2 CPU cores (more on a loaded machine)
    notebook, outputs = execute_notebook(NOTEBOOK, tmp_path, monkeypatch)
    table = {method: (float(psnr), float(ssim)) for method, psnr, ssim in TABLE_ROW.findall(outputs)}
    assert set(table) == {"zero-filled", "pretrained", "fine-tuned", "from scratch"}, outputs[-2000:]
    assert table["fine-tuned"][0] > table["pretrained"][0] > table["zero-filled"][0]
    assert table["fine-tuned"][1] > table["pretrained"][1] > table["zero-filled"][1]
    assert table["fine-tuned"][0] > table["from scratch"][0]
    assert figures(notebook)  # the figure cell drew an image
