"""Image files: the magnitude readers of ``fastmri-zoo simulate`` and of the training-data synthesis, and
the files ``fastmri-zoo denoise`` reads and writes back in the same format.

:func:`load_magnitude` (NIfTI, a DICOM series folder, numpy; :func:`load_nifti`,
:func:`load_dicom_series`, :func:`load_numpy`) gives float32 magnitude slices (slices, H, W).
:func:`read_image_file` keeps what writing the same format back needs, and
:func:`write_image_file` writes it.

The format follows from the path (:func:`image_format`):

=========  ==============================================  ==============================================
format     read                                            written (same format, atomically)
=========  ==============================================  ==============================================
``nifti``  ``.nii`` / ``.nii.gz``: a 2D image or a 3D      the input's header and affine, float32 data
           volume (a singleton 4th axis allowed), the
           scaling applied (as ``simulate.load_nifti``)
``dicom``  a ``.dcm`` file (one image or multi-frame),     the input's datasets with the new pixels in
           or a folder holding one series                  their stored integer type (rescale slope and
           (``simulate.read_dicom_series``)                intercept kept), marked DERIVED, new series and
                                                           instance UIDs; a folder for a folder, one file
                                                           name per input file
``h5``     ``reconstruction`` (``fastmri-zoo reconstruct``  ``reconstruction`` float32 (slices, h, w), as
           output), else ``reconstruction_rss`` /          fastMRI's submission files
           ``reconstruction_esc`` (``h5.read_image_h5``)   (``h5.write_reconstruction_h5``), the input's
                                                           attributes kept
``npy``    ``.npy``: 2D or 3D, real or complex             the input's shape, float32 or complex64
``npz``    ``.npz``: its image array                       the archive with that array replaced, the
           (``simulate.npz_image_key``)                    others kept
=========  ==============================================  ==============================================

A 3D image is a stack of 2D slices along ``slice_axis``: by default the last axis of a NIfTI
volume (as ``fastmri-zoo simulate``), the first of a numpy array (the zoo's (slices, H, W)), the
series or frame axis of DICOM and the slice axis of the fastMRI h5 layout. Values must be finite.
No TensorFlow here: files are read and checked before a model loads.
"""

from __future__ import annotations

import copy
import gzip
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..checks import check_finite, check_output_path, check_rank
from ..utils import atomic_write, default_permissions
from .h5 import read_image_h5, write_reconstruction_h5

__all__ = [
    "load_magnitude",
    "load_nifti",
    "load_dicom_series",
    "load_numpy",
    "read_dicom_series",
    "dicom_pixels",
    "npz_image_key",
    "IMAGE_FORMATS",
    "ImageFile",
    "image_format",
    "read_image_file",
    "check_image_output",
    "write_image_file",
]

#: The formats :func:`read_image_file` reads and :func:`write_image_file` writes.
IMAGE_FORMATS = ("nifti", "dicom", "h5", "npy", "npz")
_SUFFIXES = {".nii": "nifti", ".nii.gz": "nifti", ".dcm": "dicom", ".h5": "h5", ".npy": "npy", ".npz": "npz"}
_DESCRIPTION = ("NIfTI (.nii, .nii.gz), DICOM (a .dcm file or a folder holding one series), h5 (.h5: "
                "'reconstruction' or a fastMRI reference) or numpy (.npy, .npz)")


NIFTI_SUFFIXES = (".nii", ".nii.gz")
NUMPY_SUFFIXES = (".npy", ".npz")
_NPZ_KEYS = ("magnitude", "image", "images", "data")


# ---------------------------------------------------------------------------- arrays to slices


def _slices(name: str, array: np.ndarray, slice_axis: int | None, default_axis: int) -> tuple[np.ndarray, int | None]:
    """(slices, H, W) of a 2D image or a 3D volume along ``slice_axis`` (``default_axis`` when None), and that
    axis (None for a 2D image)."""
    check_rank(name, array, (2, 3), "(H, W) image or 3D volume")
    if array.size == 0:
        raise ValueError(f"{name}: expected an image with pixels, got an empty array of shape {array.shape}.")
    if array.ndim == 2:
        return array[None], None
    axis = default_axis if slice_axis is None else int(slice_axis)
    if not -3 <= axis < 3:
        raise ValueError(f"slice_axis: expected an axis of the 3D volume in [-3, 2], got {axis}.")
    return np.moveaxis(array, axis, 0), axis % 3


def _values(name: str, array: np.ndarray, keep_complex: bool) -> np.ndarray:
    """Finite float32 values (complex64 with ``keep_complex``, else the modulus of complex values)."""
    if np.iscomplexobj(array) and not keep_complex:
        array = np.abs(array)
    if not np.issubdtype(array.dtype, np.number) or array.dtype == bool:
        raise ValueError(f"{name}: expected numeric image values, got dtype {array.dtype}.")
    array = np.ascontiguousarray(array, dtype=np.complex64 if np.iscomplexobj(array) else np.float32)
    check_finite(name, array)
    return array


def _without_time_axis(array: np.ndarray) -> np.ndarray:
    # NIfTI volumes often carry a singleton time axis.
    return array[..., 0] if array.ndim == 4 and array.shape[-1] == 1 else array


def _as_slices(name: str, array: np.ndarray, slice_axis: int) -> np.ndarray:
    """float32 (slices, H, W) magnitudes from a 2D image or a 3D volume split along ``slice_axis``."""
    stack, _ = _slices(name, _without_time_axis(np.asarray(array)), slice_axis, slice_axis)
    return _values(name, stack, keep_complex=False)


# ---------------------------------------------------------------------------- magnitude readers


def _read_nifti(path) -> tuple[Any, np.ndarray]:
    """(nibabel image, float32 data with its scaling applied) of a NIfTI file."""
    import nibabel  # optional dependency: only NIfTI files need it

    try:
        image = nibabel.load(os.fspath(path))
        return image, np.asanyarray(image.dataobj).astype(np.float32)
    except (nibabel.filebasedimages.ImageFileError, OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable NIfTI file: {error}") from None


def load_nifti(path: str | os.PathLike, slice_axis: int = -1) -> np.ndarray:
    """Magnitude slices float32 (slices, H, W) of a NIfTI file (scaling applied by nibabel)."""
    return _as_slices(str(path), _read_nifti(path)[1], slice_axis)


def _slice_position(dataset) -> float | None:
    """Position of a DICOM slice along the normal of its image plane."""
    position = getattr(dataset, "ImagePositionPatient", None)
    orientation = getattr(dataset, "ImageOrientationPatient", None)
    if position is None:
        return None
    position = np.asarray(position, dtype=np.float64)
    if orientation is None:
        return float(position[2])
    orientation = np.asarray(orientation, dtype=np.float64)
    normal = np.cross(orientation[:3], orientation[3:])
    return float(position @ normal)


def read_dicom_series(folder: str | os.PathLike) -> list[tuple[str, Any]]:
    """The DICOM images of a folder holding one series, in slice order: ``[(file name, pydicom dataset), ...]``.

    Slices are ordered by position along the slice normal (ImagePositionPatient and
    ImageOrientationPatient) when every file has it, else by InstanceNumber. Files that
    are not DICOM are ignored; a folder of several series or of none raises a ValueError.
    """
    import pydicom  # optional dependency: only DICOM files need it
    from pydicom.errors import InvalidDicomError

    folder = os.fspath(folder)
    found = []
    for name in sorted(os.listdir(folder)):
        file_path = os.path.join(folder, name)
        if not os.path.isfile(file_path):
            continue
        try:
            dataset = pydicom.dcmread(file_path)
        except (InvalidDicomError, OSError):
            continue
        if "PixelData" in dataset:
            found.append((name, dataset))
    if not found:
        raise ValueError(f"{folder}: expected a folder of DICOM images (one series), found none.")
    series = {getattr(d, "SeriesInstanceUID", None) for _, d in found}
    if len(series) > 1:
        raise ValueError(
            f"{folder}: expected one DICOM series, found {len(series)} (SeriesInstanceUID differ); "
            "put each series in its own folder."
        )
    positions = [_slice_position(d) for _, d in found]
    if all(p is not None for p in positions) and len(set(positions)) == len(positions):
        order = np.argsort(positions, kind="stable")
    else:
        numbers = [int(getattr(d, "InstanceNumber", 0) or 0) for _, d in found]
        order = np.argsort(numbers, kind="stable")
    return [found[index] for index in order]


def _dicom_rescale(dataset) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept) of a DICOM dataset (1, 0 when absent)."""
    return float(getattr(dataset, "RescaleSlope", 1.0) or 1.0), float(getattr(dataset, "RescaleIntercept", 0.0) or 0.0)


def dicom_pixels(dataset) -> np.ndarray:
    """The image of a DICOM dataset, float32 (rows, columns) (or (frames, rows, columns)), RescaleSlope /
    RescaleIntercept applied."""
    slope, intercept = _dicom_rescale(dataset)
    return dataset.pixel_array.astype(np.float32) * slope + intercept


def _dicom_stack(name: str, datasets) -> np.ndarray:
    """The images of DICOM datasets stacked: (slices, rows, columns), or one multi-frame file's frames."""
    for file_name, dataset in datasets:
        if int(getattr(dataset, "SamplesPerPixel", 1) or 1) != 1:
            raise ValueError(f"{name}: {file_name} holds colour images; expected grey-level (SamplesPerPixel 1).")
    pixels = [dicom_pixels(dataset) for _, dataset in datasets]
    shapes = {p.shape for p in pixels}
    if len(shapes) > 1:
        raise ValueError(f"{name}: DICOM images of different sizes {sorted(shapes)}; expected one series.")
    if len(pixels) == 1 and pixels[0].ndim == 3:
        return pixels[0]
    if pixels[0].ndim != 2:
        raise ValueError(f"{name}: expected a series of 2D DICOM images or one multi-frame file, got images of "
                         f"shape {pixels[0].shape}.")
    return np.stack(pixels)


def load_dicom_series(folder: str | os.PathLike) -> np.ndarray:
    """Magnitude slices float32 (slices, rows, columns) of a folder holding one DICOM series
    (:func:`read_dicom_series`: slice order, one series), RescaleSlope / RescaleIntercept applied."""
    folder = os.fspath(folder)
    return _as_slices(folder, _dicom_stack(folder, read_dicom_series(folder)), 0)


def npz_image_key(path, keys: Sequence[str]) -> str:
    """The array of an ``.npz`` archive holding the image: its only one, else the one named ``magnitude``,
    ``image``, ``images`` or ``data``; a ValueError naming ``path`` otherwise."""
    keys = list(keys)
    key = keys[0] if len(keys) == 1 else next((k for k in _NPZ_KEYS if k in keys), None)
    if key is None:
        raise ValueError(f"{os.fspath(path)}: expected one array or one named {' / '.join(_NPZ_KEYS)}, found {keys}.")
    return key


def _read_numpy(path: str) -> tuple[np.ndarray, tuple[str, dict] | None]:
    """(the image array, (its key, every array) of an ``.npz`` or None) of a numpy file."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except EOFError:
        raise ValueError(f"{path}: not a readable numpy file: it is empty or truncated.") from None
    except (ValueError, OSError) as error:
        raise ValueError(f"{path}: not a readable numpy file: {error}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return loaded, None
    with loaded:
        arrays = {key: loaded[key] for key in loaded.keys()}
    key = npz_image_key(path, list(arrays))
    return arrays[key], (key, arrays)


def load_numpy(path: str | os.PathLike, slice_axis: int = -1) -> np.ndarray:
    """Magnitude slices float32 (slices, H, W) of a ``.npy`` file or a ``.npz`` archive.

    An ``.npz`` must hold one array, or one named ``magnitude``, ``image``, ``images`` or ``data``.
    """
    path = os.fspath(path)
    return _as_slices(path, _read_numpy(path)[0], slice_axis)


def load_magnitude(source, slice_axis: int = -1) -> np.ndarray:
    """Magnitude slices float32 (slices, H, W) from a path (NIfTI, DICOM folder, numpy) or an array."""
    if not isinstance(source, (str, os.PathLike)):
        return _as_slices("magnitude", np.asarray(source), slice_axis)
    path = os.fspath(source)
    if not os.path.exists(path):
        raise FileNotFoundError(f"inputs: no such file or folder: {path!r}")
    if os.path.isdir(path):
        return load_dicom_series(path)
    lower = path.lower()
    if lower.endswith(NIFTI_SUFFIXES):
        return load_nifti(path, slice_axis)
    if lower.endswith(NUMPY_SUFFIXES):
        return load_numpy(path, slice_axis)
    raise ValueError(
        f"inputs: cannot read {path!r}; expected a NIfTI file (.nii, .nii.gz), a numpy file "
        "(.npy, .npz) or a folder holding one DICOM series."
    )


# ---------------------------------------------------------------------------- image files, read and written back


def _suffix(path: str) -> str | None:
    lower = path.lower()
    return next((suffix for suffix in sorted(_SUFFIXES, key=len, reverse=True) if lower.endswith(suffix)), None)


def image_format(path: str | os.PathLike, must_exist: bool = True) -> str:
    """The format of ``path`` (:data:`IMAGE_FORMATS`) from its suffix, or a folder (DICOM); a ValueError for
    anything else, a FileNotFoundError for a missing input (``must_exist``)."""
    path = os.fspath(path)
    if must_exist and not os.path.exists(path):
        raise FileNotFoundError(f"image: no such file or folder: {path!r}")
    if os.path.isdir(path):
        return "dicom"
    suffix = _suffix(path)
    if suffix is None:
        raise ValueError(f"image: unknown format of {path!r}; expected {_DESCRIPTION}.")
    return _SUFFIXES[suffix]


@dataclass
class ImageFile:
    """An image file read by :func:`read_image_file`.

    images: float32 (slices, H, W) (complex64 for a complex numpy array); slice_axis: the axis of the
    stored array the slices were taken along (None: a 2D image, one slice); shape: the stored array's
    shape; source: what writing the format back needs (the NIfTI image, the DICOM datasets, the h5
    dataset name and attributes, the other arrays of an npz).
    """

    path: str
    format: str
    images: np.ndarray
    slice_axis: int | None
    shape: tuple[int, ...]
    source: Any = field(default=None, repr=False)

    def stored(self, images: np.ndarray) -> np.ndarray:
        """``images`` (slices, H, W) laid out as the stored array was (the inverse of reading)."""
        images = np.asarray(images)
        if images.shape != self.images.shape:
            raise ValueError(f"images: expected the shape {self.images.shape} of the file's slices, got {images.shape}.")
        array = images[0] if self.slice_axis is None else np.moveaxis(images, 0, self.slice_axis)
        return array.reshape(self.shape)


def read_image_file(path: str | os.PathLike, slice_axis: int | None = None) -> ImageFile:
    """Read an image file of any of :data:`IMAGE_FORMATS` (see the module docstring); ``slice_axis``
    overrides the default slice axis of a 3D NIfTI or numpy array. Raises FileNotFoundError, or a ValueError
    naming the file (unknown format, unreadable, wrong shape, NaN / Inf)."""
    path = os.fspath(path)
    kind = image_format(path)
    if slice_axis is not None and kind not in ("nifti", "npy", "npz"):
        raise ValueError(f"slice_axis: only for 3D NIfTI and numpy images; the slices of a {kind} file are fixed.")
    if kind == "h5":
        key, images, attrs = read_image_h5(path)
        return ImageFile(path, kind, images, 0, images.shape, (key, attrs))
    if kind == "nifti":
        source, array = _read_nifti(path)
        stack, axis = _slices(path, _without_time_axis(array), slice_axis, -1)
    elif kind == "dicom":
        source = _dicom_datasets(path)
        array = _dicom_stack(path, source)
        if array.ndim == 3 and len(source) == 1 and not os.path.isdir(path) and array.shape[0] == 1:
            array = array[0]
        stack, axis = _slices(path, array, None, 0)
    else:
        array, source = _read_numpy(path)
        stack, axis = _slices(path, array, slice_axis, 0)
    return ImageFile(path, kind, _values(path, stack, keep_complex=kind != "nifti"), axis, array.shape, source)


def _dicom_datasets(path: str) -> list[tuple[str, Any]]:
    """[(file name, dataset)] of a DICOM file, or of the series of a folder (:func:`read_dicom_series`)."""
    if os.path.isdir(path):
        return read_dicom_series(path)
    import pydicom  # optional dependency: only DICOM files need it
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError) as error:
        raise ValueError(f"{path}: not a readable DICOM file: {error}") from None
    if "PixelData" not in dataset:
        raise ValueError(f"{path}: a DICOM file without an image (no PixelData).")
    return [(os.path.basename(path), dataset)]


def check_image_output(name: str, path: str | os.PathLike, image: ImageFile) -> str:
    """``path`` if the output of ``image`` can be written there: the input's format (a folder for a DICOM
    folder), not the input itself, in an existing folder; else a ValueError naming the option ``name``."""
    path = os.fspath(path)
    if image.format == "dicom" and os.path.isdir(image.path):
        if os.path.realpath(path) == os.path.realpath(image.path):
            raise ValueError(f"{name}: {path!r} is the input folder; refusing to replace it, give another output path.")
        if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
            raise ValueError(f"{name}: {path!r} exists; the output of a DICOM folder is a new (or empty) folder.")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise ValueError(f"{name}: the folder of {path!r} does not exist ({parent!r}).")
        return path
    path = check_output_path(name, path, {"input": image.path})
    kind = image_format(path, must_exist=False)
    if kind != image.format:
        raise ValueError(f"{name}: {path!r} is a {kind} path but the input is a {image.format} file; "
                         "the output keeps the input's format.")
    return path


def write_image_file(image: ImageFile, images: np.ndarray, path: str | os.PathLike,
                     attrs: dict[str, Any] | None = None) -> str:
    """Write ``images`` (the shape of ``image.images``) to ``path`` in the format of ``image`` (see the module
    docstring), atomically: a temporary file or folder beside ``path``, renamed once complete. ``attrs``: what
    the file should record of how it was made (h5 attributes, NIfTI description, DICOM SeriesDescription;
    ``{"description": ...}`` at least). Returns the path."""
    path = check_image_output("path", path, image)
    attrs = dict(attrs or {})
    array = image.stored(images)
    if image.format == "dicom":
        return _write_dicom(image, array, path, attrs.get("description", ""))
    with atomic_write(path) as temporary:
        if image.format == "nifti":
            _write_nifti(image, array, temporary, attrs.get("description", ""), gzipped=path.lower().endswith(".gz"))
        elif image.format == "h5":
            key, stored_attrs = image.source
            kept = {k: v for k, v in stored_attrs.items() if isinstance(v, (str, int, float, bool))}
            write_reconstruction_h5(temporary, array, {**kept, **attrs, "source_dataset": key})
        else:
            dtype = np.complex64 if np.iscomplexobj(array) else np.float32
            with open(temporary, "wb") as file:
                if image.format == "npy":
                    np.save(file, array.astype(dtype))
                else:
                    key, arrays = image.source
                    np.savez(file, **{**arrays, key: array.astype(dtype)})
    return path


def _write_nifti(image: ImageFile, array: np.ndarray, temporary: str, description: str, gzipped: bool) -> None:
    original = image.source
    header = original.header.copy()
    header.set_data_dtype(np.float32)
    out = type(original)(array.astype(np.float32), original.affine, header)
    out.header.set_slope_inter(1.0, 0.0)
    if description and "descrip" in out.header.keys():
        out.header["descrip"] = description[:79].encode("ascii", errors="replace")
    data = out.to_bytes()
    with open(temporary, "wb") as file:
        file.write(gzip.compress(data) if gzipped else data)


def _stored_pixels(dataset, values: np.ndarray) -> np.ndarray:
    """``values`` (in the dataset's rescaled units) as its stored integers: rounded, clipped to BitsStored."""
    slope, intercept = _dicom_rescale(dataset)
    bits = int(getattr(dataset, "BitsStored", 16) or 16)
    signed = int(getattr(dataset, "PixelRepresentation", 0) or 0) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    stored = np.clip(np.round((values - intercept) / slope), low, high)
    return stored.astype(dataset.pixel_array.dtype)


def _write_dicom(image: ImageFile, array: np.ndarray, path: str, description: str) -> str:
    from pydicom.uid import generate_uid  # optional dependency: only DICOM files need it

    series = generate_uid()
    frames = array if image.slice_axis is not None else array[None]
    if len(image.source) == 1 and frames.ndim == 3 and frames.shape[0] > 1:
        frames = frames[None]  # one multi-frame file: all frames in its one dataset
    outputs = []
    for (name, dataset), values in zip(image.source, frames):
        out = copy.deepcopy(dataset)
        stored = _stored_pixels(dataset, values)
        if out.file_meta.TransferSyntaxUID.is_compressed:
            out.decompress()
        out.PixelData = stored.tobytes()
        out.SeriesInstanceUID = series
        out.SOPInstanceUID = generate_uid()
        out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
        out.ImageType = ["DERIVED", "SECONDARY"]
        if description:
            out.SeriesDescription = description[:64]
        outputs.append((name, out))
    if not os.path.isdir(image.path):
        with atomic_write(path) as temporary:
            outputs[0][1].save_as(temporary, enforce_file_format=True)
        return path
    parent = os.path.dirname(os.path.abspath(path))
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    try:
        for name, out in outputs:
            out.save_as(os.path.join(staging, name), enforce_file_format=True)
            default_permissions(os.path.join(staging, name))
        default_permissions(staging, directory=True)
        os.replace(staging, path)  # onto a missing or empty folder (check_image_output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path
