"""Input validation shared by the whole package.

Every check raises a ``ValueError`` that names the argument, says what was
expected and what came, so a user can fix the call without reading the code.
The checks accept numpy arrays and TensorFlow tensors. Value checks (NaN/Inf,
bounds) only run where values are known: on numpy arrays and eager tensors;
inside a traced ``tf.function`` they are skipped, shape checks are not.
"""

from __future__ import annotations

import numbers
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf

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
]


def static_shape(x) -> tuple:
    """Shape of ``x`` as a tuple; unknown dimensions are ``None``."""
    if isinstance(x, (tf.Tensor, tf.Variable)):
        return tuple(x.shape.as_list()) if x.shape.rank is not None else ()
    return tuple(np.shape(x))


def _has_values(x) -> bool:
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return True
    return isinstance(x, (tf.Tensor, tf.Variable)) and tf.executing_eagerly()


def check_rank(name: str, x, ranks: int | Iterable[int], layout: str) -> None:
    """Raise unless ``x`` has one of ``ranks`` dimensions.

    ``layout`` describes the expected axes, e.g. ``"(batch, coils, H, W)"``.
    """
    ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
    shape = static_shape(x)
    if isinstance(x, tf.Tensor) and x.shape.rank is None:
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
    is_complex = dtype.is_complex if isinstance(dtype, tf.DType) else np.iscomplexobj(x)
    if not is_complex:
        dname = dtype.name if hasattr(dtype, "name") else str(dtype)
        raise ValueError(
            f"{name}: expected complex values (complex64), got dtype {dname}. "
            "Real-valued k-space usually means the real and imaginary parts were "
            "split into channels or only the magnitude was stored."
        )


def as_complex64(name: str, x) -> tf.Tensor:
    """Convert ``x`` to a complex64 tensor, refusing real input (``check_complex``)."""
    x = tf.convert_to_tensor(x)
    check_complex(name, x)
    return tf.cast(x, tf.complex64)


def check_finite(name: str, x) -> None:
    """Raise if ``x`` holds NaN or Inf (skipped inside traced graphs)."""
    if not _has_values(x):
        return
    values = x.numpy() if isinstance(x, (tf.Tensor, tf.Variable)) else np.asarray(x)
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
    values = x.numpy() if isinstance(x, (tf.Tensor, tf.Variable)) else np.asarray(x)
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


def default_permissions(path, directory: bool = False) -> None:
    """Give a file (or folder) made by ``tempfile`` the permissions a plain ``open`` would:
    tempfile creates them private (0600 / 0700), which an atomic rename would keep."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)
