"""Loading a Keras-2 ``.h5`` checkpoint into a zoo model, by the documented order.

A *plan* says which zoo variables each weighted layer group of the original
file holds: a list of :class:`GroupPlan` (a label for messages and the zoo
variables in the original's order; see :mod:`.order`). The file is first
checked against the plan (number of weighted groups, weights per group, every
shape, float32 dtype) and refused with a :class:`LegacyStructureError` naming
the first group or weight that differs; then every value is read, checked to
be finite and assigned. Names in the file are only quoted in messages: Keras 2
itself matches by position and the names depend on the training process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .keras2_h5 import Keras2File

__all__ = [
    "GroupPlan",
    "LegacyStructureError",
    "structure_problems",
    "check_structure",
    "assign_weights",
    "load_keras2_weights",
]


class LegacyStructureError(ValueError):
    """A Keras-2 file whose structure is not the one the zoo expects for that checkpoint."""


@dataclass(frozen=True)
class GroupPlan:
    """One weighted layer group of the original: ``label`` (the zoo sub-network it fills) and its variables."""

    label: str
    variables: tuple

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(d) for d in variable.shape) for variable in self.variables]


def _variable_name(variable) -> str:
    return getattr(variable, "path", None) or variable.name


def structure_problems(found: Sequence[tuple[str, Sequence[tuple[str, tuple]]]], plan: Sequence[GroupPlan],
                       source: str) -> list[str]:
    """Differences between a file's weighted groups ``found`` = [(group name, [(weight name, shape), ...]), ...]
    and ``plan``, as sentences naming the group, the weight and both shapes (empty list: they match)."""
    problems = []
    if len(found) != len(plan):
        problems.append(
            f"{source} has {len(found)} layer groups with weights, the zoo expects {len(plan)} "
            f"(file: {[name for name, _ in found][:6]}{' ...' if len(found) > 6 else ''}; "
            f"zoo: {[group.label for group in plan][:6]}{' ...' if len(plan) > 6 else ''})"
        )
    for index, ((group_name, weights), group) in enumerate(zip(found, plan)):
        if len(weights) != len(group.variables):
            problems.append(
                f"group #{index} {group_name!r} holds {len(weights)} weights, the zoo's {group.label} expects "
                f"{len(group.variables)}"
            )
            continue
        for position, ((weight_name, shape), variable, expected) in enumerate(zip(weights, group.variables,
                                                                                  group.shapes)):
            if tuple(shape) != expected:
                problems.append(
                    f"group #{index} {group_name!r}, weight #{position} {weight_name!r} has shape {tuple(shape)}, "
                    f"the zoo's {group.label} expects {expected} (for {_variable_name(variable)})"
                )
    return problems


def check_structure(keras2_file: Keras2File, plan: Sequence[GroupPlan]) -> None:
    """Raise :class:`LegacyStructureError` if the file's weighted groups do not match ``plan``."""
    found = [(group.name, [(weight.name, weight.shape) for weight in group.weights])
             for group in keras2_file.weighted_groups]
    problems = structure_problems(found, plan, str(keras2_file.path))
    for group in keras2_file.weighted_groups:
        for weight in group.weights:
            if weight.dtype != "float32":
                problems.append(f"group {group.name!r}, weight {weight.name!r} is {weight.dtype}, expected float32")
    if problems:
        shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
        raise LegacyStructureError(
            f"{keras2_file.path}: refused, its structure differs from the expected one "
            f"({len(problems)} difference(s)): {shown}."
        )


def assign_weights(keras2_file: Keras2File, plan: Sequence[GroupPlan]) -> None:
    """Check the open ``keras2_file`` against ``plan`` and assign its values to the plan's variables.

    Nothing is assigned unless the structure matches and every value is finite.
    """
    check_structure(keras2_file, plan)
    values = []
    for group, expected in zip(keras2_file.weighted_groups, plan):
        for weight, variable in zip(group.weights, expected.variables):
            array = keras2_file.read(weight)
            if not np.all(np.isfinite(array)):
                bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
                raise LegacyStructureError(
                    f"{keras2_file.path}: refused, weight {weight.name!r} of group {group.name!r} holds "
                    f"{bad} non-finite value(s) (NaN or Inf); the file is corrupted or not a trained checkpoint."
                )
            values.append((variable, array))
    for variable, array in values:
        variable.assign(array.astype(np.float32))


def load_keras2_weights(path: str | os.PathLike, plan: Sequence[GroupPlan]) -> Keras2File:
    """:func:`assign_weights` from the Keras-2 file at ``path``; returns its (closed) description
    (layout, Keras version)."""
    with Keras2File(path) as keras2_file:
        assign_weights(keras2_file, plan)
    return keras2_file
