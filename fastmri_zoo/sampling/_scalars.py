"""Validation of scalar sampling parameters (accelerations, sizes, fractions).

``fastmri_zoo.checks.check_in_range`` only knows closed intervals; the sampling
parameters need open bounds (an acceleration must be > 1, a centre fraction
lies in (0, 1)) and integer checks, so these few lines live here.
"""

from __future__ import annotations

import numbers

__all__ = ["check_scalar"]


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
