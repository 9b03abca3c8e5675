"""Read, write and validate fastMRI-layout HDF5 files.

Cartesian layout (the one of the fastMRI data set, so real files drop in unchanged):

========================  =============================================  =====================
key                       shape / type                                   notes
========================  =============================================  =====================
``kspace`` (dataset)      complex64 (slices, H, W) single-coil,          W is the phase-encoding
                          complex64 (slices, coils, H, W) multicoil      axis (the one masks undersample)
``reconstruction_rss``    float32 (slices, h, w)                         optional reference; (h, w) may be
                                                                         smaller than (H, W) (centre crop)
``reconstruction_esc``    float32 (slices, h, w)                         optional reference (single-coil)
``mask`` (dataset)        float32 (W,) per column, (H, W) 2D, or          optional sampling pattern of the
                          (slices, H, W) per slice; values 0 / 1         file (see below)
``ismrmrd_header``        bytes (scalar dataset)                         optional XML header
attribute ``acquisition`` str                                            e.g. ``"CORPD_FBK"``, ``"simulated"``
attribute ``max``         float                                          max of the reference volume
attribute ``norm``        float                                          l2 norm of the reference volume
========================  =============================================  =====================

Non-Cartesian layout (this package's extension; a file is non-Cartesian exactly when it
has a ``trajectory`` dataset):

========================  =============================================  =====================
key                       shape / type                                   notes
========================  =============================================  =====================
``kspace`` (dataset)      complex64 (slices, nsamples) single-coil,      one row of samples per slice
                          complex64 (slices, coils, nsamples) multicoil  (per volume in 3D)
``trajectory``            float32 (ndim, nsamples) shared by all slices, radians per pixel, every value
                          or float32 (slices, ndim, nsamples)            in [-pi, pi]; axis order of the
                                                                         image: 2D (k_H, k_W), 3D (k_D, k_H, k_W)
``dcomp``                 float32 (nsamples,) or (slices, nsamples)      optional density compensation, >= 0
attribute ``image_shape`` int array (ndim,)                              image grid, e.g. (320, 320) or
                                                                         (64, 128, 128)
``reconstruction_rss``    float32 (slices, *image_shape)                 optional reference
attributes                ``acquisition``, ``max``, ``norm``             as in the Cartesian layout
========================  =============================================  =====================

Sampling of a Cartesian file: the locations k-space was acquired at are its non-zero
entries (per location (H, W), any coil), as in fastMRI's undersampled test files; a
``mask`` dataset (or attribute) multiplies k-space first, so a fully sampled file with a
mask is read as undersampled by that mask. A mask is per column (W,) (fastMRI's), or a 2D
pattern (H, W) shared by every slice, or (slices, H, W); its values are 0 or 1.

In 3D the leading axis indexes volumes (usually one per file). The NUFFT convention is
the package's: y_j = N^{-1/2} sum_n x_n exp(-i k_j . (n - N//2)).

Errors: a missing path raises ``FileNotFoundError``; anything else wrong (not an HDF5
file, missing ``kspace``, wrong dtype or rank, no coils, inconsistent shapes, NaN/Inf,
a mask of other values than 0 / 1, density weights negative or all zero) raises
``ValueError`` whose message names the file and lists every problem found. Nothing here
imports TensorFlow: files are checked before a model is loaded.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from ..checks import check_complex, check_finite, check_rank
from ..utils import atomic_write

__all__ = [
    "FastMRIVolume",
    "read_fastmri_h5",
    "write_fastmri_h5",
    "validate_fastmri_h5",
    "write_reconstruction_h5",
    "read_image_h5",
    "IMAGE_KEYS",
    "write_posterior_h5",
    "list_h5_files",
    "dcomp_problem",
    "REFERENCE_KEYS",
]

#: Reference images, in the order ``read_fastmri_h5`` prefers them.
REFERENCE_KEYS = ("reconstruction_rss", "reconstruction_esc")

_SliceSelection = int | slice | Sequence[int] | None


@dataclass
class FastMRIVolume:
    """The content of one fastMRI-layout file (or a selection of its slices).

    kspace: complex64 (slices, [coils,] H, W) Cartesian or (slices, [coils,] nsamples)
    non-Cartesian. reference: float32 (slices, h, w) (or (slices, *image_shape)) or None;
    reference_key names the dataset it came from. attrs: the file attributes (numpy
    scalars converted to Python values). mask: float32 (W,), (H, W) or (slices, H, W) (only the
    slices held), 0 / 1, or None. trajectory: float32
    (ndim, nsamples) or (slices, ndim, nsamples) for non-Cartesian files, else None;
    dcomp likewise (nsamples,) or (slices, nsamples); image_shape: tuple of ints.
    slice_indices: the indices in the file of the slices held.
    """

    path: str
    kspace: np.ndarray
    reference: np.ndarray | None = None
    reference_key: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    mask: np.ndarray | None = None
    ismrmrd_header: str | None = None
    trajectory: np.ndarray | None = None
    dcomp: np.ndarray | None = None
    image_shape: tuple[int, ...] | None = None
    slice_indices: tuple[int, ...] = ()

    @property
    def noncartesian(self) -> bool:
        return self.trajectory is not None

    @property
    def multicoil(self) -> bool:
        return self.kspace.ndim == (3 if self.noncartesian else 4)

    @property
    def num_slices(self) -> int:
        return int(self.kspace.shape[0])

    @property
    def acquisition(self) -> str | None:
        return self.attrs.get("acquisition")


# ---------------------------------------------------------------------------- validation


def list_h5_files(folder: str | os.PathLike) -> list[str]:
    """The ``*.h5`` files of ``folder``, sorted by name; raises if there are none."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        if os.path.exists(folder):
            raise ValueError(f"folder: expected a folder of .h5 files, got the file {folder!r}.")
        raise FileNotFoundError(f"folder: no such folder: {folder!r}")
    paths = sorted(glob.glob(os.path.join(glob.escape(folder), "*.h5")))
    if not paths:
        raise ValueError(f"folder: expected fastMRI-layout .h5 files in {folder!r}, found none.")
    return paths


def _check_path(path) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"path: no such file: {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"path: expected an HDF5 file, got the folder {path!r}.")
    return path


def _open(path: str) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise ValueError(
            f"{path}: not a readable HDF5 file (corrupt, truncated or another format): {error}"
        ) from None


def _is_complex64(dtype) -> bool:
    return np.dtype(dtype) == np.complex64


def _finite_problem(name: str, dataset: h5py.Dataset, chunk: int = 8) -> str | None:
    """Scan ``dataset`` slice-block by slice-block for NaN / Inf."""
    if dataset.shape == () or dataset.size == 0:
        return None
    n_nan = n_inf = 0
    for start in range(0, dataset.shape[0], chunk):
        block = dataset[start:start + chunk]
        n_nan += int(np.isnan(block).sum())
        n_inf += int(np.isinf(block).sum())
    if n_nan or n_inf:
        return f"{name}: expected finite values, got {n_nan} NaN and {n_inf} Inf among {dataset.size} entries."
    return None


def _attr_value(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return value.tolist() if value.ndim else value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _image_shape_of(handle: h5py.File, problems: list[str]) -> tuple[int, ...] | None:
    if "image_shape" not in handle.attrs:
        problems.append(
            "image_shape: non-Cartesian file (it has a 'trajectory') without the attribute "
            "'image_shape' (the image grid, e.g. [320, 320])."
        )
        return None
    raw = np.atleast_1d(np.asarray(handle.attrs["image_shape"]))
    if raw.ndim != 1 or raw.size not in (2, 3) or not np.issubdtype(raw.dtype, np.integer) or (raw <= 0).any():
        problems.append(
            f"image_shape: expected 2 or 3 positive integers, got {raw.tolist()} (dtype {raw.dtype})."
        )
        return None
    return tuple(int(v) for v in raw)


def _problems(handle: h5py.File, check_values: bool, image_shape: tuple[int, ...] | None = None) -> list[str]:
    """Every way ``handle`` departs from the layout of the module docstring.

    check_values: also scan k-space and references for NaN / Inf (reads them whole);
    the trajectory and density weights are small and always checked. image_shape: the
    grid of a non-Cartesian file given by the caller (replaces the attribute).
    """
    problems: list[str] = []
    keys = sorted(handle.keys())
    if "kspace" not in handle:
        problems.append(f"kspace: missing dataset; the file holds {keys if keys else 'no datasets'}.")
        return problems
    kspace = handle["kspace"]
    if not isinstance(kspace, h5py.Dataset):
        problems.append("kspace: expected a dataset, got a group.")
        return problems
    noncartesian = "trajectory" in handle
    if not _is_complex64(kspace.dtype):
        problems.append(f"kspace: expected dtype complex64, got {kspace.dtype}.")
    if noncartesian:
        layout = "(slices, nsamples) or (slices, coils, nsamples) for a non-Cartesian file"
        ranks = (2, 3)
    else:
        layout = "(slices, H, W) or (slices, coils, H, W)"
        ranks = (3, 4)
    if kspace.ndim not in ranks:
        problems.append(
            f"kspace: expected {ranks[0]} or {ranks[1]} dimensions {layout}, got shape {kspace.shape}."
        )
        return problems
    num_slices = kspace.shape[0]
    if num_slices == 0:
        problems.append(f"kspace: holds no slices (shape {kspace.shape}).")
    multicoil = kspace.ndim == ranks[1]
    if multicoil and kspace.shape[1] == 0:
        problems.append(f"kspace: holds no coils (shape {kspace.shape}, axis 1 is the coils); expected at least one.")
    if 0 in kspace.shape[1 + int(multicoil):]:
        what = "samples" if noncartesian else "rows or columns"
        problems.append(f"kspace: holds no {what} (shape {kspace.shape}).")

    if noncartesian:
        if image_shape is None:
            image_shape = _image_shape_of(handle, problems)
        nsamples = kspace.shape[-1]
        traj = handle["trajectory"]
        if traj.dtype != np.float32:
            problems.append(f"trajectory: expected dtype float32 (radians per pixel), got {traj.dtype}.")
        if traj.ndim not in (2, 3):
            problems.append(
                f"trajectory: expected (ndim, nsamples) or (slices, ndim, nsamples), got shape {traj.shape}."
            )
        else:
            if traj.ndim == 3 and traj.shape[0] != num_slices:
                problems.append(
                    f"trajectory: has {traj.shape[0]} slices but kspace has {num_slices}; they must match."
                )
            if traj.shape[-1] != nsamples:
                problems.append(
                    f"trajectory: has {traj.shape[-1]} samples but kspace has {nsamples}; they must match."
                )
            if image_shape is not None and traj.shape[-2] != len(image_shape):
                problems.append(
                    f"trajectory: has {traj.shape[-2]} spatial coordinates but image_shape "
                    f"{list(image_shape)} has {len(image_shape)} dimensions; they must match."
                )
            if np.issubdtype(traj.dtype, np.floating):  # small: always checked
                values = traj[()]
                if not np.isfinite(values).all():
                    problems.append("trajectory: expected finite values, got NaN or Inf.")
                elif values.size and np.abs(values).max() > np.pi * (1 + 1e-6):
                    problems.append(
                        f"trajectory: expected values in [-pi, pi] radians per pixel, got values in "
                        f"[{values.min():g}, {values.max():g}]."
                    )
        if "dcomp" in handle:
            dcomp = handle["dcomp"]
            if dcomp.dtype != np.float32:
                problems.append(f"dcomp: expected dtype float32, got {dcomp.dtype}.")
            if dcomp.shape not in ((nsamples,), (num_slices, nsamples)):
                problems.append(
                    f"dcomp: expected shape ({nsamples},) or ({num_slices}, {nsamples}), got {dcomp.shape}."
                )
            elif np.issubdtype(dcomp.dtype, np.floating):
                problem = dcomp_problem(dcomp[()])
                if problem:
                    problems.append(problem)
    elif "dcomp" in handle:
        problems.append("dcomp: density compensation without a 'trajectory'; a Cartesian file has none.")

    for key in REFERENCE_KEYS:
        if key not in handle:
            continue
        reference = handle[key]
        if reference.dtype != np.float32:
            problems.append(f"{key}: expected dtype float32, got {reference.dtype}.")
        expected_rank = 1 + (len(image_shape) if image_shape is not None else 2)
        if reference.ndim != expected_rank:
            problems.append(
                f"{key}: expected {expected_rank} dimensions (slices, {'D, ' if expected_rank == 4 else ''}h, w), "
                f"got shape {reference.shape}."
            )
        elif reference.shape[0] != num_slices:
            problems.append(
                f"{key}: has {reference.shape[0]} slices but kspace has {num_slices}; "
                "the reference must have one image per k-space slice."
            )
        if check_values and np.issubdtype(reference.dtype, np.floating):
            problem = _finite_problem(key, reference)
            if problem:
                problems.append(problem)

    if not noncartesian and ("mask" in handle or "mask" in handle.attrs):
        mask = handle["mask"] if "mask" in handle else np.asarray(handle.attrs["mask"])
        problems.extend(_mask_problems(mask, kspace.shape))
    if "acquisition" in handle.attrs and not isinstance(_attr_value(handle.attrs["acquisition"]), str):
        problems.append(f"acquisition: expected a string attribute, got {handle.attrs['acquisition']!r}.")
    for name in ("max", "norm"):
        if name in handle.attrs:
            value = np.asarray(handle.attrs[name])
            if value.size != 1 or not np.issubdtype(value.dtype, np.number) or not np.isfinite(value).all():
                problems.append(f"{name}: expected a finite number attribute, got {value.tolist()!r}.")
    if check_values and np.issubdtype(kspace.dtype, np.complexfloating) and kspace.size:
        problem = _finite_problem("kspace", kspace)
        if problem:
            problems.append(problem)
    return problems


def dcomp_problem(values: np.ndarray) -> str | None:
    """What is wrong with density weights float (nsamples,) or (slices, nsamples) (NaN / Inf, negative,
    all zero in a slice), or None."""
    if not np.isfinite(values).all():
        return f"dcomp: expected finite weights, got {int((~np.isfinite(values)).sum())} NaN or Inf."
    if (values < 0).any():
        return (f"dcomp: expected weights >= 0, got {int((values < 0).sum())} negative "
                f"(min {float(values.min()):g}).")
    rows = values.reshape(-1, values.shape[-1]) if values.size else values.reshape(0, 0)
    empty = [index for index, row in enumerate(rows) if not row.any()]
    if empty:
        where = "" if values.ndim == 1 else f" in slice(s) {empty[:5]}"
        return (f"dcomp: expected some positive weights, got all zeros{where} (every sample would be ignored); "
                "remove the dataset to use Pipe-Menon weights.")
    return None


def _mask_problems(mask, kspace_shape: tuple) -> list[str]:
    """What is wrong with a Cartesian ``mask`` (h5py dataset or array) for k-space of ``kspace_shape``."""
    height, width = kspace_shape[-2:]
    allowed = [(width,), (height, width), (kspace_shape[0], height, width)]
    if tuple(mask.shape) not in allowed:
        return [f"mask: expected shape {allowed[0]} (one value per column), {allowed[1]} or {allowed[2]} (a 2D "
                f"pattern, shared or per slice) for kspace {tuple(kspace_shape)}, got {tuple(mask.shape)}."]
    values = np.asarray(mask[()] if isinstance(mask, h5py.Dataset) else mask)
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool) or np.iscomplexobj(values):
        return [f"mask: expected real 0 / 1 values, got dtype {values.dtype}."]
    values = values.astype(np.float64)
    bad = np.unique(values[(values != 0) & (values != 1)])
    if bad.size:
        shown = ", ".join(f"{v:g}" for v in bad[:4]) + (", ..." if bad.size > 4 else "")
        return [f"mask: expected 0 (not sampled) or 1 (sampled) at each location, got also {shown}."]
    if not values.any():
        return ["mask: samples nothing (all zeros); expected 1 where k-space was acquired."]
    return []


def validate_fastmri_h5(path: str | os.PathLike, check_values: bool = True) -> dict[str, Any]:
    """Check that ``path`` follows the fastMRI layout (Cartesian or non-Cartesian).

    Returns a summary ``{"layout": "cartesian" | "noncartesian", "multicoil": bool,
    "kspace_shape": tuple, "reference": key or None, "reference_shape": tuple or None,
    "image_shape": tuple or None}``. Raises FileNotFoundError for a missing path and
    ValueError listing every problem (one per line) otherwise. check_values: scan the whole
    k-space and reference for NaN / Inf (False: shapes, dtypes and attributes only, fast).
    """
    path = _check_path(path)
    with _open(path) as handle:
        problems = _problems(handle, check_values=check_values)
        if problems:
            raise ValueError(f"{path}: not a valid fastMRI-layout file:\n  - " + "\n  - ".join(problems))
        noncartesian = "trajectory" in handle
        kspace_shape = tuple(handle["kspace"].shape)
        reference = next((k for k in REFERENCE_KEYS if k in handle), None)
        return {
            "layout": "noncartesian" if noncartesian else "cartesian",
            "multicoil": len(kspace_shape) == (3 if noncartesian else 4),
            "kspace_shape": kspace_shape,
            "reference": reference,
            "reference_shape": tuple(handle[reference].shape) if reference else None,
            "image_shape": _image_shape_of(handle, []) if noncartesian else None,
        }


# ---------------------------------------------------------------------------- reading


def _selection(slices: _SliceSelection, num_slices: int) -> np.ndarray:
    """Slice indices (sorted as requested) picked by ``slices``."""
    everything = np.arange(num_slices)
    if slices is None:
        return everything
    if isinstance(slices, slice):
        return everything[slices]
    if isinstance(slices, (int, np.integer)):
        slices = [int(slices)]
    indices = np.asarray(list(slices), dtype=np.int64)
    if indices.ndim != 1:
        raise ValueError(f"slices: expected an int, a slice or a list of ints, got {slices!r}.")
    bad = indices[(indices < -num_slices) | (indices >= num_slices)]
    if bad.size:
        raise ValueError(
            f"slices: index {int(bad[0])} is out of range for a file with {num_slices} slices."
        )
    return np.where(indices < 0, indices + num_slices, indices)


def _read_rows(dataset: h5py.Dataset, indices: np.ndarray) -> np.ndarray:
    """dataset[indices] for any order of indices (h5py wants them increasing and unique)."""
    if indices.size == dataset.shape[0] and np.array_equal(indices, np.arange(dataset.shape[0])):
        return dataset[()]
    unique, inverse = np.unique(indices, return_inverse=True)
    if unique.size and unique[-1] - unique[0] + 1 == unique.size:
        block = dataset[int(unique[0]):int(unique[-1]) + 1]
    else:
        block = dataset[unique]
    return block[inverse]


def _requested_image_shape(image_shape) -> tuple[int, ...] | None:
    if image_shape is None:
        return None
    values = np.atleast_1d(np.asarray(image_shape))
    if (values.ndim != 1 or values.size not in (2, 3) or not np.issubdtype(values.dtype, np.integer)
            or (values <= 0).any()):
        raise ValueError(f"image_shape: expected 2 or 3 positive integers, got {np.asarray(image_shape).tolist()}.")
    return tuple(int(v) for v in values)


def read_fastmri_h5(path: str | os.PathLike, slices: _SliceSelection = None,
                    image_shape: Sequence[int] | None = None) -> FastMRIVolume:
    """Read a fastMRI-layout file (Cartesian or non-Cartesian).

    slices: None (all), an int (kept as a slice axis of length 1), a ``slice`` or a list
    of ints. Only the selected slices are read from disk. image_shape: the image grid of a
    non-Cartesian file, replacing its ``image_shape`` attribute (or supplying it when the
    file has none); not allowed for a Cartesian file. The layout is validated first
    (shapes and dtypes; NaN / Inf only in what is read); problems raise ValueError.
    """
    path = _check_path(path)
    requested_shape = _requested_image_shape(image_shape)
    with _open(path) as handle:
        if requested_shape is not None and "trajectory" not in handle:
            raise ValueError(
                f"image_shape: given {list(requested_shape)} but {path} is a Cartesian file (no 'trajectory'); "
                "the grid of Cartesian k-space is its own shape."
            )
        problems = _problems(handle, check_values=False, image_shape=requested_shape)
        if problems:
            raise ValueError(f"{path}: not a valid fastMRI-layout file:\n  - " + "\n  - ".join(problems))
        kspace_ds = handle["kspace"]
        indices = _selection(slices, kspace_ds.shape[0])
        kspace = _read_rows(kspace_ds, indices)
        if not np.isfinite(kspace).all():
            raise ValueError(f"{path}: kspace: expected finite values, got NaN or Inf in the slices read.")
        reference_key = next((k for k in REFERENCE_KEYS if k in handle), None)
        reference = _read_rows(handle[reference_key], indices) if reference_key else None
        if reference is not None and not np.isfinite(reference).all():
            count = int((~np.isfinite(reference)).sum())
            raise ValueError(f"{path}: {reference_key}: expected finite values, got {count} NaN or Inf "
                             "in the slices read.")
        attrs = {name: _attr_value(value) for name, value in handle.attrs.items()}
        mask = None
        if "mask" in handle:
            mask = np.asarray(handle["mask"][()], dtype=np.float32)
        elif "mask" in attrs:
            mask = np.asarray(attrs["mask"], dtype=np.float32)
        if mask is not None and mask.ndim == 3:
            mask = mask[indices]
        header = None
        if "ismrmrd_header" in handle:
            header = _attr_value(handle["ismrmrd_header"][()])
        elif "ismrmrd_header" in attrs:
            header = attrs["ismrmrd_header"]
        trajectory = dcomp = image_shape = None
        if "trajectory" in handle:
            stored = attrs.pop("image_shape", None)
            image_shape = requested_shape or tuple(int(v) for v in np.atleast_1d(stored))
            traj_ds = handle["trajectory"]
            trajectory = traj_ds[()] if traj_ds.ndim == 2 else _read_rows(traj_ds, indices)
            if "dcomp" in handle:
                dcomp_ds = handle["dcomp"]
                dcomp = dcomp_ds[()] if dcomp_ds.ndim == 1 else _read_rows(dcomp_ds, indices)
        return FastMRIVolume(
            path=path,
            kspace=kspace,
            reference=reference,
            reference_key=reference_key,
            attrs=attrs,
            mask=mask,
            ismrmrd_header=header,
            trajectory=trajectory,
            dcomp=dcomp,
            image_shape=image_shape,
            slice_indices=tuple(int(i) for i in indices),
        )


#: Image datasets of an h5 file, in the order ``read_image_h5`` prefers them: a reconstruction
#: (``fastmri-zoo reconstruct`` output, fastMRI's submission files), then the references.
IMAGE_KEYS = ("reconstruction",) + REFERENCE_KEYS


def read_image_h5(path: str | os.PathLike) -> tuple[str, np.ndarray, dict[str, Any]]:
    """The images of an h5 file: ``(key, images, attrs)``, images float32 (slices, h, w) from the first
    of :data:`IMAGE_KEYS` the file holds, and the file attributes. Raises FileNotFoundError, or a
    ValueError naming the file when it is not HDF5, holds none of these datasets, or holds another
    shape or NaN / Inf."""
    path = _check_path(path)
    with _open(path) as handle:
        key = next((k for k in IMAGE_KEYS if k in handle), None)
        if key is None:
            raise ValueError(f"{path}: expected images in one of the datasets {list(IMAGE_KEYS)}, found "
                             f"{sorted(handle.keys())}.")
        images = _as_array(f"{path}: {key}", handle[key][()], np.float32, (3,), "(slices, h, w)")
        attrs = {name: _attr_value(value) for name, value in handle.attrs.items()}
    return key, images, attrs


# ---------------------------------------------------------------------------- writing


def _as_array(name: str, value, dtype, ranks: tuple[int, ...], layout: str) -> np.ndarray:
    array = np.asarray(value)
    if np.dtype(dtype).kind == "c":
        check_complex(name, array)
    elif np.iscomplexobj(array):
        raise ValueError(f"{name}: expected real values ({np.dtype(dtype)}), got dtype {array.dtype}.")
    check_rank(name, array, ranks, layout)
    array = array.astype(dtype, copy=False)
    check_finite(name, array)
    return array


def write_fastmri_h5(
    path: str | os.PathLike,
    kspace,
    reconstruction_rss=None,
    *,
    reconstruction_esc=None,
    acquisition: str = "unknown",
    mask=None,
    ismrmrd_header: str | bytes | None = None,
    trajectory=None,
    dcomp=None,
    image_shape: Sequence[int] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Write a fastMRI-layout file atomically; returns the path written.

    kspace: complex64 (slices, [coils,] H, W), or with ``trajectory`` complex64
    (slices, [coils,] nsamples). reconstruction_rss / reconstruction_esc: float32
    (slices, h, w) (non-Cartesian: (slices, *image_shape)). mask: Cartesian sampling
    pattern of 0 / 1, (W,) per column, (H, W) or (slices, H, W). trajectory: float32 (ndim, nsamples) or (slices, ndim, nsamples) in
    radians per pixel within [-pi, pi]; dcomp: float32 (nsamples,) or (slices, nsamples);
    image_shape: required with a trajectory. extra: more file attributes (str, numbers,
    small arrays). Attributes ``max`` and ``norm`` are computed from the reference
    (rss, else esc) unless ``extra`` gives them.

    The data go to a temporary file in the destination folder, which replaces ``path``
    only once complete: a failed write leaves any previous file untouched.
    """
    path = os.fspath(path)
    noncartesian = trajectory is not None
    ranks = (2, 3) if noncartesian else (3, 4)
    layout = "(slices, [coils,] nsamples)" if noncartesian else "(slices, [coils,] H, W)"
    kspace = _as_array("kspace", kspace, np.complex64, ranks, layout)
    num_slices = kspace.shape[0]
    datasets: dict[str, np.ndarray] = {"kspace": kspace}
    attrs: dict[str, Any] = {"acquisition": str(acquisition)}

    if noncartesian:
        if image_shape is None:
            raise ValueError("image_shape: required with a trajectory (the image grid, e.g. (320, 320)).")
        image_shape = tuple(int(v) for v in image_shape)
        if len(image_shape) not in (2, 3) or min(image_shape) <= 0:
            raise ValueError(f"image_shape: expected 2 or 3 positive integers, got {image_shape}.")
        traj = _as_array("trajectory", trajectory, np.float32, (2, 3), "(ndim, nsamples) or (slices, ndim, nsamples)")
        if traj.shape[-2] != len(image_shape):
            raise ValueError(
                f"trajectory: has {traj.shape[-2]} coordinates per sample but image_shape {image_shape} "
                f"has {len(image_shape)} dimensions; they must match."
            )
        if traj.shape[-1] != kspace.shape[-1]:
            raise ValueError(
                f"trajectory: has {traj.shape[-1]} samples but kspace has {kspace.shape[-1]}; they must match."
            )
        if traj.ndim == 3 and traj.shape[0] != num_slices:
            raise ValueError(f"trajectory: has {traj.shape[0]} slices but kspace has {num_slices}; they must match.")
        if traj.size and np.abs(traj).max() > np.pi * (1 + 1e-6):
            raise ValueError(
                f"trajectory: expected values in [-pi, pi] radians per pixel, got values in "
                f"[{traj.min():g}, {traj.max():g}]."
            )
        datasets["trajectory"] = traj
        attrs["image_shape"] = np.asarray(image_shape, dtype=np.int64)
        if dcomp is not None:
            dcomp = _as_array("dcomp", dcomp, np.float32, (1, 2), "(nsamples,) or (slices, nsamples)")
            if dcomp.shape not in ((kspace.shape[-1],), (num_slices, kspace.shape[-1])):
                raise ValueError(
                    f"dcomp: expected shape ({kspace.shape[-1]},) or ({num_slices}, {kspace.shape[-1]}), "
                    f"got {dcomp.shape}."
                )
            datasets["dcomp"] = dcomp
    elif dcomp is not None or image_shape is not None:
        raise ValueError("dcomp / image_shape: only for non-Cartesian files (give a trajectory).")

    ref_rank = 1 + (len(image_shape) if noncartesian else 2)
    for key, value in (("reconstruction_rss", reconstruction_rss), ("reconstruction_esc", reconstruction_esc)):
        if value is None:
            continue
        value = _as_array(key, value, np.float32, (ref_rank,), "(slices, h, w)" if ref_rank == 3 else "(slices, D, h, w)")
        if value.shape[0] != num_slices:
            raise ValueError(
                f"{key}: has {value.shape[0]} slices but kspace has {num_slices}; they must match."
            )
        datasets[key] = value
    reference = datasets.get("reconstruction_rss", datasets.get("reconstruction_esc"))
    if reference is not None:
        attrs["max"] = float(reference.max()) if reference.size else 0.0
        attrs["norm"] = float(np.linalg.norm(reference))
    if mask is not None:
        if noncartesian:
            raise ValueError("mask: a Cartesian sampling mask has no place in a non-Cartesian file.")
        mask = np.asarray(mask)
        if mask.ndim == 2 and mask.shape[0] == 1 and mask.shape[1] == kspace.shape[-1]:
            mask = mask[0]  # the zoo's (1, W) column masks
        problems = _mask_problems(mask, kspace.shape)
        if problems:
            raise ValueError(problems[0])
        datasets["mask"] = mask.astype(np.float32)
    for name, value in (extra or {}).items():
        if name in datasets or name in ("image_shape",):
            raise ValueError(f"extra: attribute {name!r} clashes with a dataset or reserved attribute.")
        attrs[name] = value

    if ismrmrd_header is not None:
        header = ismrmrd_header.encode("utf-8") if isinstance(ismrmrd_header, str) else ismrmrd_header
        datasets["ismrmrd_header"] = np.bytes_(header)
    return _write_atomically(path, datasets, attrs)


def _write_atomically(path, datasets: Mapping[str, Any], attrs: Mapping[str, Any]) -> str:
    """Write an h5 file through a temporary file in the destination folder, then rename it
    (``utils.atomic_write``: an interrupted write leaves the previous file and no temporary file)."""

    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"path: expected a file path, got the folder {path!r}.")
    with atomic_write(path) as temporary:
        with h5py.File(temporary, "w") as handle:
            for name, value in datasets.items():
                handle.create_dataset(name, data=value)
            for name, value in attrs.items():
                handle.attrs[name] = value
    return path


def write_reconstruction_h5(path, reconstruction, attrs: Mapping[str, Any] | None = None) -> str:
    """Write reconstructions as fastMRI's submission files do: dataset ``reconstruction``
    float32 (slices, h, w) (or (slices, D, h, w) in 3D), plus attributes; atomically."""

    reconstruction = np.asarray(reconstruction)
    if np.iscomplexobj(reconstruction):
        raise ValueError("reconstruction: expected magnitude images (real), got complex values.")
    check_rank("reconstruction", reconstruction, (3, 4), "(slices, h, w) or (slices, D, h, w)")
    check_finite("reconstruction", reconstruction)
    return _write_atomically(path, {"reconstruction": reconstruction.astype(np.float32)}, dict(attrs or {}))


def write_posterior_h5(path, mean, std, samples=None, attrs: Mapping[str, Any] | None = None) -> str:
    """Write posterior statistics atomically (``fastmri-zoo sample``): ``reconstruction`` float32
    (slices, h, w), the magnitude of the posterior mean (a fastMRI submission file's dataset), ``posterior_mean``
    complex64 (slices, h, w), ``posterior_std`` float32 (slices, h, w), the pixel-wise standard deviation
    sqrt(E|x - mean|^2) of the complex samples, and (optionally) ``samples`` complex64 (slices, n, h, w);
    plus attributes."""
    mean = _as_array("posterior_mean", mean, np.complex64, (3,), "(slices, h, w)")
    std = _as_array("posterior_std", std, np.float32, (3,), "(slices, h, w)")
    if std.shape != mean.shape:
        raise ValueError(f"posterior_std: expected the shape {mean.shape} of the mean, got {std.shape}.")
    datasets = {"reconstruction": np.abs(mean).astype(np.float32), "posterior_mean": mean, "posterior_std": std}
    if samples is not None:
        samples = _as_array("samples", samples, np.complex64, (4,), "(slices, n, h, w)")
        if samples.shape[:1] + samples.shape[2:] != mean.shape:
            raise ValueError(f"samples: expected (slices, n, h, w) with {mean.shape} for (slices, h, w), got {samples.shape}.")
        datasets["samples"] = samples
    return _write_atomically(path, datasets, dict(attrs or {}))
