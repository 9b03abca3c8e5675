"""BART wrapper: the cfl/hdr format (always), the call plumbing with a stand-in executable
(always), and the real ``bart pics`` under ``-m bart`` (BART installed; not in the default or slow selection)."""

import shutil
import stat
import sys
import textwrap

import numpy as np
import pytest

from fastmri_zoo.baselines import bart_available, bart_pics, cg_sense, read_cfl, write_cfl
from tests.conftest import crandn


def np_ifftc(x, axes=(-2, -1)):
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(x, axes=axes), axes=axes, norm="ortho"), axes=axes)


def np_fftc(x, axes=(-2, -1)):
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(x, axes=axes), axes=axes, norm="ortho"), axes=axes)


@pytest.mark.parametrize("shape", [(7,), (3, 4), (5, 6, 1, 4), (2, 1, 3, 1, 2)])
def test_cfl_round_trip(shape, tmp_path, rng):
    array = crandn(rng, shape)
    write_cfl(tmp_path / "x", array)
    back = read_cfl(tmp_path / "x")
    assert back.dtype == np.complex64 and back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_cfl_layout_is_bart_format(tmp_path):
    # BART: "# Dimensions" line, each size followed by a space; values column-major, float32 (re, im) pairs.
    array = (np.arange(6).reshape(2, 3) + 1j * np.arange(6).reshape(2, 3) * 10).astype(np.complex64)
    write_cfl(tmp_path / "x", array)
    assert (tmp_path / "x.hdr").read_text() == "# Dimensions\n2 3 \n"
    raw = np.fromfile(tmp_path / "x.cfl", dtype="<f4")
    expected = []
    for j in range(3):
        for i in range(2):
            expected += [array[i, j].real, array[i, j].imag]
    np.testing.assert_array_equal(raw, np.array(expected, np.float32))


def test_read_cfl_accepts_bart_padded_headers_and_refuses_bad_files(tmp_path):
    values = np.arange(6, dtype=np.complex64)
    values.astype("<c8").tofile(tmp_path / "y.cfl")
    (tmp_path / "y.hdr").write_text("# Dimensions\n2 3 1 1 1 \n# Command\nbart ones\n")
    np.testing.assert_array_equal(read_cfl(tmp_path / "y")[:, :, 0, 0, 0], values.reshape(2, 3, order="F"))
    (tmp_path / "y.hdr").write_text("# Dimensions\n4 3 \n")
    with pytest.raises(ValueError, match="holds 6 complex values"):
        read_cfl(tmp_path / "y")
    (tmp_path / "y.hdr").write_text("hello\n")
    with pytest.raises(ValueError, match="not a BART header"):
        read_cfl(tmp_path / "y")


def multicoil_problem(rng, batch=2, coils=3, size=16):
    image = crandn(rng, (batch, size, size))
    smaps = crandn(rng, (batch, coils, size, size))
    smaps /= np.sqrt((np.abs(smaps) ** 2).sum(1, keepdims=True))
    mask = (rng.uniform(size=(batch, 1, size)) < 0.5).astype(np.float32)
    mask[..., size // 2 - 2 : size // 2 + 2] = 1
    kspace = (np_fftc(image[:, None] * smaps) * mask[:, None]).astype(np.complex64)
    return kspace, smaps.astype(np.complex64), mask


def test_missing_executable_gives_a_clear_error(rng, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not bart_available()
    kspace, smaps, mask = multicoil_problem(rng)
    with pytest.raises(RuntimeError, match="BART executable 'bart' is not on PATH"):
        bart_pics(kspace, smaps, mask)


FAKE_BART = """\
#!{python}
# Stand-in for 'bart pics': records its arguments and returns the SENSE adjoint
# sum_c conj(S_c) F^-1 (P y_c) of BART-layout (H, W, 1, coils) inputs.
import sys
import numpy as np

def read(name):
    lines = open(name + ".hdr").read().splitlines()
    shape = tuple(int(s) for s in lines[1].split())
    return np.fromfile(name + ".cfl", dtype="<c8").reshape(shape, order="F")

args = sys.argv[1:]
open({log!r}, "a").write(" ".join(args) + "\\n")
kspace, smaps, out = read(args[-3]), read(args[-2]), args[-1]
pattern = read(args[args.index("-p") + 1])
axes = (0, 1)
coil_images = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(kspace * pattern, axes=axes), axes=axes, norm="ortho"), axes=axes)
image = (np.conj(smaps) * coil_images).sum(axis=3, keepdims=True)
open(out + ".hdr", "w").write("# Dimensions\\n" + "".join(f"{{s}} " for s in image.shape) + "\\n")
image.astype("<c8").ravel(order="F").tofile(out + ".cfl")
"""


def test_call_plumbing_with_a_stand_in_executable(rng, tmp_path):
    log = tmp_path / "calls.txt"
    fake = tmp_path / "fake_bart"
    fake.write_text(FAKE_BART.format(python=sys.executable, log=str(log)))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    kspace, smaps, mask = multicoil_problem(rng)
    image = bart_pics(kspace, smaps, mask, regularization="tv", lam=0.02, iterations=7, executable=str(fake))
    expected = (np.conj(smaps) * np_ifftc(kspace * mask[:, None])).sum(1)
    assert image.shape == (2, 16, 16) and image.dtype == np.complex64
    np.testing.assert_allclose(image, expected, atol=1e-5)
    calls = log.read_text().splitlines()
    assert len(calls) == 2  # one call per slice
    assert calls[0].startswith("pics -S -i 7 -R T:3:0:0.02 -p ")
    single = bart_pics(kspace[0], smaps[0], mask[0], regularization="l2", lam=0.5, executable=str(fake))
    np.testing.assert_allclose(single, expected[0], atol=1e-5)
    assert " -l2 -r 0.5 " in log.read_text().splitlines()[-1]


def test_bad_arguments(rng, tmp_path):
    fake = tmp_path / "fake_bart"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    kspace, smaps, mask = multicoil_problem(rng)
    with pytest.raises(ValueError, match="regularization"):
        bart_pics(kspace, smaps, mask, regularization="l0", executable=str(fake))
    with pytest.raises(ValueError, match="smaps: expected the shape"):
        bart_pics(kspace, smaps[:, :2], mask, executable=str(fake))
    with pytest.raises(ValueError, match="mask has 14 columns"):
        bart_pics(kspace, smaps, mask[..., :14], executable=str(fake))
    with pytest.raises(RuntimeError, match="exit code 3"):
        bart_pics(kspace, smaps, mask, executable=str(fake))


@pytest.mark.bart
def test_bart_pics_l2_agrees_with_cg_sense(rng):
    assert shutil.which("bart"), "-m bart: the BART toolbox ('bart') must be on PATH"
    kspace, smaps, mask = multicoil_problem(rng, batch=1, size=32)
    image = bart_pics(kspace, smaps, mask, regularization="l2", lam=1e-4, iterations=100)
    reference = cg_sense(kspace, mask, smaps, num_iterations=100, regularization=1e-4).numpy()
    # BART may scale its image differently: compare after the best complex scale factor.
    scale = np.vdot(image, reference) / np.vdot(image, image)
    assert np.linalg.norm(scale * image - reference) / np.linalg.norm(reference) < 0.05
    wavelet = bart_pics(kspace, smaps, mask, regularization="l1-wavelet", lam=1e-3, iterations=50)
    assert wavelet.shape == (1, 32, 32) and np.isfinite(wavelet).all()
