"""Compressed-sensing baseline through the BART toolbox (``bart pics``), if it is installed.

BART (Uecker et al., https://mrirecon.github.io/bart/) is not a dependency:
:func:`bart_pics` calls the ``bart`` executable found on PATH and exchanges
data through temporary files in BART's ``.cfl`` / ``.hdr`` format, written and
read here (:func:`write_cfl`, :func:`read_cfl`):

- ``name.hdr``: text, the line ``# Dimensions`` then the sizes separated by
  spaces (each followed by a space), then a newline;
- ``name.cfl``: the raw complex64 values (little-endian float32 real,
  imaginary pairs) in column-major (Fortran) order: the first index varies fastest.

BART's axes are (READ, PHASE1, PHASE2, COIL, MAPS, ...); a zoo slice
(coils, H, W) becomes (H, W, 1, coils).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..checks import check_complex, check_finite, check_rank, check_same_dim, check_scalar

__all__ = ["bart_available", "bart_pics", "write_cfl", "read_cfl", "REGULARIZATIONS"]

#: ``regularization`` names and the ``bart pics`` options they map to (2D: wavelet / TV over axes 0 and 1).
REGULARIZATIONS = {
    "l1-wavelet": lambda lam: ["-R", f"W:3:0:{lam:g}"],
    "tv": lambda lam: ["-R", f"T:3:0:{lam:g}"],
    "l2": lambda lam: ["-l2", "-r", f"{lam:g}"],
}


def bart_available(executable: str = "bart") -> bool:
    """True if the BART executable ``executable`` is found on PATH (or is an existing path)."""
    return shutil.which(executable) is not None


def write_cfl(name: str | os.PathLike, array) -> None:
    """Write ``array`` (any shape, cast to complex64) as ``name.hdr`` + ``name.cfl``."""
    array = np.asarray(array, dtype=np.complex64)
    if array.ndim == 0:
        array = array.reshape(1)
    name = Path(name)
    header = "# Dimensions\n" + "".join(f"{size} " for size in array.shape) + "\n"
    name.with_suffix(".hdr").write_text(header, encoding="ascii")
    array.astype("<c8").ravel(order="F").tofile(name.with_suffix(".cfl"))


def read_cfl(name: str | os.PathLike) -> np.ndarray:
    """Read ``name.hdr`` + ``name.cfl`` into a complex64 array of the header's shape."""
    name = Path(name)
    lines = name.with_suffix(".hdr").read_text(encoding="ascii").splitlines()
    try:
        position = next(i for i, line in enumerate(lines) if line.strip() == "# Dimensions")
        shape = tuple(int(size) for size in lines[position + 1].split())
    except (StopIteration, IndexError, ValueError):
        raise ValueError(f"{name.with_suffix('.hdr')}: not a BART header (expected a '# Dimensions' line and sizes).") from None
    data = np.fromfile(name.with_suffix(".cfl"), dtype="<c8")
    if data.size != int(np.prod(shape)):
        raise ValueError(
            f"{name.with_suffix('.cfl')}: holds {data.size} complex values but the header's shape {shape} "
            f"needs {int(np.prod(shape))}."
        )
    return data.reshape(shape, order="F").astype(np.complex64)


def bart_pics(
    kspace,
    smaps,
    mask,
    regularization: str = "l1-wavelet",
    lam: float = 0.01,
    iterations: int = 50,
    extra_args: tuple[str, ...] = (),
    executable: str = "bart",
) -> np.ndarray:
    """Parallel-imaging compressed sensing by ``bart pics``, one slice at a time.

    kspace: complex (batch, coils, H, W) or (coils, H, W); smaps: complex, the
    same shape; mask: real, broadcastable to (batch, H, W) (passed to BART as
    the sampling pattern, and applied to the k-space). regularization:
    ``"l1-wavelet"``, ``"tv"`` or ``"l2"`` with weight ``lam``; ``iterations``
    (``-i``); ``-S`` rescales the image to the scale of the data. Returns the
    complex64 image (batch, H, W) (or (H, W) unbatched).

    Raises a RuntimeError if ``executable`` is not found or BART fails.
    """
    if not bart_available(executable):
        raise RuntimeError(
            f"bart_pics: the BART executable {executable!r} is not on PATH. Install the BART toolbox "
            "(https://mrirecon.github.io/bart/, e.g. 'apt install bart') or pass executable='/path/to/bart'."
        )
    if regularization not in REGULARIZATIONS:
        raise ValueError(f"regularization: expected one of {sorted(REGULARIZATIONS)}, got {regularization!r}.")
    lam = check_scalar("lam", lam, at_least=0)
    iterations = check_scalar("iterations", iterations, integer=True, at_least=1)
    kspace, smaps = np.asarray(kspace), np.asarray(smaps)
    for name, value in (("kspace", kspace), ("smaps", smaps)):
        check_complex(name, value)
        check_rank(name, value, (3, 4), "(coils, H, W) or (batch, coils, H, W)")
        check_finite(name, value)
    if kspace.shape != smaps.shape:
        raise ValueError(f"smaps: expected the shape of kspace {kspace.shape}, got {smaps.shape}.")
    unbatched = kspace.ndim == 3
    if unbatched:
        kspace, smaps = kspace[None], smaps[None]
    batch, _, height, width = kspace.shape
    mask = np.asarray(mask, dtype=np.float32)
    check_rank("mask", mask, (1, 2, 3), "broadcastable to (batch, H, W)")
    check_same_dim("mask", mask.shape[-1], "kspace", width, "columns (phase-encoding width W)")
    check_finite("mask", mask)
    mask = np.broadcast_to(mask, (batch, height, width))

    options = ["-S", "-i", str(iterations), *REGULARIZATIONS[regularization](lam), *extra_args]
    images = []
    with tempfile.TemporaryDirectory(prefix="fastmri_zoo_bart_") as folder:
        folder = Path(folder)
        for b in range(batch):
            # (coils, H, W) -> BART (H, W, 1, coils)
            write_cfl(folder / "kspace", (kspace[b] * mask[b]).transpose(1, 2, 0)[:, :, None, :])
            write_cfl(folder / "smaps", smaps[b].transpose(1, 2, 0)[:, :, None, :])
            write_cfl(folder / "pattern", mask[b][:, :, None, None])
            command = [
                executable, "pics", *options, "-p", str(folder / "pattern"),
                str(folder / "kspace"), str(folder / "smaps"), str(folder / "image"),
            ]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(
                    f"bart pics failed (exit code {result.returncode}) running {' '.join(command)}:\n"
                    f"{result.stderr.strip() or result.stdout.strip()}"
                )
            image = read_cfl(folder / "image")
            images.append(image.reshape(height, width))
    out = np.stack(images).astype(np.complex64)
    return out[0] if unbatched else out
