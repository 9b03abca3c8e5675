"""Input validation shared by the whole package.

Every check raises a ``ValueError`` that names the argument, says what was
expected and what came, so a user can fix the call without reading the code.
The checks accept numpy arrays and TensorFlow tensors. Value checks (NaN/Inf,
bounds) only run where values are known: on numpy arrays and eager tensors;
inside a traced ``tf.function`` they are skipped, shape checks are not.

This module does not import TensorFlow: files and command-line options are checked
before it is loaded (several seconds), so a bad input is reported at once. Nothing can
be a tensor before TensorFlow is imported, so the checks look for it in ``sys.modules``.

Also here: the checks of output paths (``check_output_path``: never onto an input, never a
folder) and of memory estimates (``check_memory``), and ``library_error_message``, which turns
the raw errors of h5py, Keras and TensorFlow into one line naming the file.
"""

from __future__ import annotations

import numbers
import os
import re
import sys
from typing import Iterable, Mapping, Sequence

import numpy as np

from .utils import default_permissions  # re-exported: it was defined here first

__all__ = [
    "check_rank",
    "check_complex",
    "check_finite",
    "check_broadcastable",
    "check_batch",
    "check_in_range",
    "check_same_dim",
    "check_scalar",
    "as_complex64",
    "default_permissions",
    "static_shape",
    "check_output_path",
    "check_memory",
    "physical_memory",
    "format_bytes",
    "library_error_kind",
    "library_error_message",
]


def _tensorflow():
    """TensorFlow when it is imported, else None (then no value can be a tensor)."""
    return sys.modules.get("tensorflow")


def _is_tensor(x) -> bool:
    tf = _tensorflow()
    return tf is not None and isinstance(x, (tf.Tensor, tf.Variable))


def static_shape(x) -> tuple:
    """Shape of ``x`` as a tuple; unknown dimensions are ``None``."""
    if _is_tensor(x):
        return tuple(x.shape.as_list()) if x.shape.rank is not None else ()
    return tuple(np.shape(x))


def _has_values(x) -> bool:
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return True
    return _is_tensor(x) and _tensorflow().executing_eagerly()


def check_rank(name: str, x, ranks: int | Iterable[int], layout: str) -> None:
    """Raise unless ``x`` has one of ``ranks`` dimensions.

    ``layout`` describes the expected axes, e.g. ``"(batch, coils, H, W)"``.
    """
    ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
    shape = static_shape(x)
    if _is_tensor(x) and x.shape.rank is None:
        return
    if len(shape) not in ranks:
        expected = " or ".join(str(r) for r in ranks)
        raise ValueError(
            f"{name}: expected a {expected}-dimensional array {layout}, "
            f"got shape {shape} ({len(shape)} dimensions)."
        )


def check_complex(name: str, x) -> None:
    """Raise unless ``x`` holds complex values."""
    dtype = x.dtype
    tf = _tensorflow()
    is_complex = dtype.is_complex if tf is not None and isinstance(dtype, tf.DType) else np.iscomplexobj(x)
    if not is_complex:
        dname = dtype.name if hasattr(dtype, "name") else str(dtype)
        raise ValueError(
            f"{name}: expected complex values (complex64), got dtype {dname}. "
            "Real-valued k-space usually means the real and imaginary parts were "
            "split into channels or only the magnitude was stored."
        )


def as_complex64(name: str, x):
    """Convert ``x`` to a complex64 tensor, refusing real input (``check_complex``)."""
    import tensorflow as tf  # only callers building tensors need it; the checks stay TensorFlow-free

    x = tf.convert_to_tensor(x)
    check_complex(name, x)
    return tf.cast(x, tf.complex64)


def real_to_complex64(x):
    """A real scalar or tensor (a learned weight, a step size, a norm) as complex64 with zero imaginary part.

    The same values and gradient (the real part of the upstream one) as ``tf.cast(x, tf.complex64)``,
    by ``tf.complex``: the gradient of a cast is a cast from complex to real, and TensorFlow logs "You
    are casting an input of type complex64 to an incompatible dtype float32" each time one is traced
    (a multicoil MoDL's training step logged it 10 times; Flower's clients repeated it for every site).
    A complex x is cast as it is."""
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    if x.dtype.is_complex:
        return tf.cast(x, tf.complex64)
    x = tf.cast(x, tf.float32)
    return tf.complex(x, tf.zeros_like(x))


def check_finite(name: str, x) -> None:
    """Raise if ``x`` holds NaN or Inf (skipped inside traced graphs)."""
    if not _has_values(x):
        return
    values = x.numpy() if _is_tensor(x) else np.asarray(x)
    if values.dtype == object:
        return
    finite = np.isfinite(values)
    if not finite.all():
        n_nan = int(np.isnan(values).sum())
        n_bad = int((~finite).sum())
        raise ValueError(
            f"{name}: expected finite values, got {n_nan} NaN and "
            f"{n_bad - n_nan} Inf among {values.size} entries."
        )


def check_batch(name: str, batch, other_name: str, other_batch) -> None:
    """Batch sizes must be equal or one of them 1 (None: unknown, accepted)."""
    if batch is None or other_batch is None or batch == other_batch or 1 in (batch, other_batch):
        return
    raise ValueError(f"{name} has batch size {batch} but {other_name} has {other_batch}; expected equal sizes or 1.")


def check_broadcastable(name: str, x, target_shape: Sequence, target_name: str) -> None:
    """Raise unless ``shape(x)`` broadcasts to ``target_shape``."""
    shape = static_shape(x)
    target = tuple(target_shape)
    ok = len(shape) <= len(target)
    if ok:
        for a, b in zip(reversed(shape), reversed(target)):
            if a is None or b is None:
                continue
            if a != 1 and a != b:
                ok = False
                break
    if not ok:
        raise ValueError(
            f"{name}: shape {shape} does not broadcast to the shape of "
            f"{target_name} {target}; expected each axis to be 1 or equal, aligned on the right."
        )


def check_in_range(name: str, x, low: float, high: float, unit: str = "") -> None:
    """Raise if any value of ``x`` lies outside ``[low, high]``."""
    if not _has_values(x):
        return
    values = x.numpy() if _is_tensor(x) else np.asarray(x)
    if values.size == 0:
        return
    lo, hi = float(values.min()), float(values.max())
    if lo < low or hi > high:
        raise ValueError(
            f"{name}: expected values in [{low:g}, {high:g}]{unit}, "
            f"got values in [{lo:g}, {hi:g}]."
        )


def check_same_dim(name_a: str, dim_a, name_b: str, dim_b, what: str) -> None:
    """Raise if two known sizes of the same quantity differ."""
    if dim_a is None or dim_b is None:
        return
    if int(dim_a) != int(dim_b):
        raise ValueError(
            f"{name_a} has {dim_a} {what} but {name_b} has {dim_b}; they must match."
        )


def check_scalar(
    name: str,
    value,
    *,
    integer: bool = False,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
) -> float | int:
    """Return ``value`` as a Python number, or raise a ``ValueError`` naming ``name``.

    above / below: open bounds (value > above, value < below); at_least: closed lower bound.
    integer: the value must be a whole number (an int, or a float like 4.0); it is returned as int.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = "an integer" if integer else "a real number"
        raise ValueError(f"{name}: expected {kind}, got {value!r} ({type(value).__name__}).")
    value = float(value) if not isinstance(value, numbers.Integral) else int(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name}: expected a finite number, got {value!r}.")
    if integer:
        if value != int(value):
            raise ValueError(f"{name}: expected a whole number, got {value!r}.")
        value = int(value)
    if above is not None and not value > above:
        raise ValueError(f"{name}: expected a value > {above:g}, got {value!r}.")
    if at_least is not None and not value >= at_least:
        raise ValueError(f"{name}: expected a value >= {at_least:g}, got {value!r}.")
    if below is not None and not value < below:
        raise ValueError(f"{name}: expected a value < {below:g}, got {value!r}.")
    return value


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (symlinks, relative paths, hard links), existing or not."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_output_path(name: str, path, inputs: Mapping[str, object] | None = None, *,
                      create_folder: bool = False) -> str:
    """Return ``path`` (a str) if a file can be written there without replacing an input.

    Raises a ValueError naming ``name`` when ``path`` is one of ``inputs`` ({what: path}: the same
    file through any symlink, relative path or hard link), is a folder, or its folder does not exist
    (``create_folder``: the writer creates it, then only a file in the way is refused).
    """
    path = os.fspath(path)
    if not path:
        raise ValueError(f"{name}: expected a file path, got an empty string.")
    for what, other in (inputs or {}).items():
        if other is not None and _same_file(path, os.fspath(other)):
            raise ValueError(f"{name}: {path!r} is the {what} {os.fspath(other)!r}; refusing to replace it, "
                             "give another output path.")
    if os.path.isdir(path):
        raise ValueError(f"{name}: expected a file path, got the folder {path!r}.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        if not create_folder:
            raise ValueError(f"{name}: the folder of {path!r} does not exist ({folder!r}).")
        ancestor = folder
        while not os.path.exists(ancestor):
            ancestor = os.path.dirname(ancestor)
        if not os.path.isdir(ancestor):
            raise ValueError(f"{name}: cannot create the folder of {path!r}: {ancestor!r} is a file.")
    return path


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (None if unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(size: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    size = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def check_memory(name: str, needed: float, what: str, limit: float | None = None) -> None:
    """Raise when ``needed`` bytes (an estimate of ``what``) exceed ``limit`` (default: the physical
    memory), with both numbers in the message: the run would be killed part-way, after minutes."""
    limit = physical_memory() if limit is None else limit
    if limit is not None and needed > limit:
        raise ValueError(
            f"{name}: {what} needs about {format_bytes(needed)} of memory (estimate), more than the "
            f"{format_bytes(limit)} of this machine."
        )


_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*m")
_FUNCTION_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*")
_KERAS_FRAMES = ("Exception encountered when calling", "Arguments received by")


def _first_line(text, limit: int = 240) -> str:
    """The line of a library's message that says what went wrong: without terminal colours, TensorFlow's
    ``{{function_node ...}}`` prefix and Keras's "Exception encountered when calling ..." frame; shortened."""
    text = _FUNCTION_NODE.sub("", _TERMINAL_CODES.sub("", str(text)))
    lines = [part.strip() for part in text.splitlines() if part.strip()]
    line = next((part for part in lines if not part.startswith(_KERAS_FRAMES)), lines[0] if lines else "")
    line = re.sub(r"\s+name:\s*$", "", line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def library_error_kind(error: BaseException) -> str | None:
    """Which library a raw error comes from: "tensorflow" (an OpError), "hdf5" (h5py's OSError / KeyError,
    which name no file), "keras" (a (de)serialisation error), or None."""
    tf = _tensorflow()
    if tf is not None and isinstance(error, tf.errors.OpError):
        return "tensorflow"
    module = type(error).__module__ or ""
    text = str(error)
    if module.startswith("h5py") or (isinstance(error, (OSError, KeyError)) and (_raised_in(error, "h5py") or any(
            word in text for word in ("HDF5", "synchronously open", "file signature not found", "truncated file")))):
        return "hdf5"
    if module.startswith("keras") or (isinstance(error, (ValueError, TypeError, AttributeError))
                                      and _raised_in(error, "keras")):
        return "keras"
    return None


def _raised_in(error: BaseException, package: str) -> bool:
    """Whether the innermost frame of ``error``'s traceback is in ``package`` (a top-level package name)."""
    traceback = error.__traceback__
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return f"{os.sep}{package}{os.sep}" in traceback.tb_frame.f_code.co_filename


def library_error_message(error: BaseException, source: str | None = None) -> str | None:
    """One line for a raw error of h5py, Keras (de)serialisation or TensorFlow (``library_error_kind``),
    naming ``source`` (the file or checkpoint being read or run); None for any other error.

    h5py raises OSError / KeyError without the file name, Keras a TypeError or ValueError of
    thousands of characters for an unsafe or broken config, TensorFlow an OpError such as
    ``Incompatible shapes: [2,8,8] vs. [3,8,8] [Op:Mul]``.
    """
    kind = library_error_kind(error)
    where = f"{source}: " if source else ""
    if kind == "tensorflow":
        message = _first_line(getattr(error, "message", "") or str(error))
        return (f"{where}TensorFlow could not run the model on these inputs ({message}); check that "
                "kspace, mask, smaps, traj and dcomp agree in batch and size.")
    if kind == "hdf5":
        return f"{where}not a readable HDF5 file ({_first_line(error)})."
    if kind == "keras":
        return f"{where}Keras could not rebuild the model ({_first_line(error)})."
    return None
