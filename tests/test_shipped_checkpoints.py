"""Every shipped checkpoint loads offline and beats zero-filled on a held-out subject.

The held-out slices are bundled samples (``fastmri_zoo/samples/ixi_heldout_*.h5``) of an IXI
subject that no checkpoint saw in training; the reference is the fully sampled image.
"""

import numpy as np
import pytest

import fastmri_zoo
from fastmri_zoo import metrics
from fastmri_zoo.demo import bundled_sample
from fastmri_zoo.inference import reconstruct_file
from fastmri_zoo.registry import list_entries

SHIPPED = [entry for entry in list_entries(pretrained=True) if entry.bundled and entry.dataset is None]


def test_the_zoo_ships_trained_checkpoints():
    assert {"pdnet-cartesian-singlecoil-af4"} <= {entry.name for entry in SHIPPED}


@pytest.mark.parametrize("entry", SHIPPED, ids=lambda entry: entry.name)
def test_loads_offline_and_beats_zero_filled(entry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = fastmri_zoo.load(entry.name)
    sample = bundled_sample(f"ixi_heldout_{entry.coils}")
    result = reconstruct_file(model, sample, seed=0, progress=False)
    assert result.acceleration == pytest.approx(entry.acceleration, rel=0.1)
    # scores computed here from the returned images, independently of reconstruct_file's own
    network = metrics.psnr(result.reference, result.reconstruction)
    zero_filled = metrics.psnr(result.reference, result.zero_filled)
    assert network > zero_filled
    assert metrics.ssim(result.reference, result.reconstruction) > metrics.ssim(result.reference, result.zero_filled)
    assert np.all(np.isfinite(result.reconstruction))
