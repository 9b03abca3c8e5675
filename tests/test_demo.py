import os

import numpy as np
import pytest

from fastmri_zoo import cli, physics
from fastmri_zoo.data.h5 import read_fastmri_h5
from fastmri_zoo.demo import bundled_sample


def test_bundled_sample_is_consistent():
    """The reference stored with the sample is the RSS of the inverse FFT of its k-space."""
    volume = read_fastmri_h5(bundled_sample())
    images = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(volume.kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(volume.reference, np.sqrt((np.abs(images) ** 2).sum(1)), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(physics.rss(images).numpy(), volume.reference, rtol=1e-4, atol=1e-9)


@pytest.mark.slow  # the full demo (CG-SENSE on the bundled sample, twice); the sample itself is checked above
def test_demo_command_writes_png_and_cg_sense_beats_zero_filled(tmp_path, capsys):
    png = tmp_path / "demo.png"
    assert cli.main(["demo", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "CG-SENSE" in out and "zero-filled" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from fastmri_zoo.demo import run_demo

    scores = run_demo(output_png=os.fspath(tmp_path / "again.png"), verbose=False)
    assert scores["CG-SENSE"]["psnr"] > scores["zero-filled"]["psnr"] + 1.0
