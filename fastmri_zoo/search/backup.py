"""The backup a search keeps after every epoch, from which the same command resumes an interrupted search.

``OUT_DIR/backup/`` (``fastmri-zoo search``; :func:`~fastmri_zoo.search.darts.search`'s ``backup``):

- ``arrays-epochNNNN.npz``: the model's weights (``weight_0`` ...; w and alpha, in ``model.weights``
  order) and the two optimisers' variables (``optimizer_0`` ...: moments and step counts);
- ``state.json``: the ``fingerprint`` of what was searched (the recipe's model, data, acquisition and
  search block but its step budget, so a search can be given more steps), the step, epoch and
  wall time reached, the epochs without a change of genotype, ``stopped`` ("patience" once the genotype
  settled, else None: a search that ran out of steps continues when given more),
  the history of every epoch end (losses, entropy, alpha, genotype) and the arrays file's name.

The arrays are written first, then ``state.json`` naming them, then older arrays files are removed:
an interruption at any point leaves a consistent pair. A backup of another fingerprint is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..utils import write_json, write_npz

__all__ = ["BACKUP_STATE", "backup_step", "read_backup", "write_backup"]

BACKUP_STATE = "state.json"


def _state(folder) -> dict | None:
    path = Path(folder) / BACKUP_STATE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: an unreadable search backup ({error}); remove the folder to start afresh.") from None


def backup_step(folder) -> int:
    """The step a backup in ``folder`` reached (0 when there is none)."""
    state = _state(folder)
    return 0 if state is None else int(state["step"])


def read_backup(folder, fingerprint) -> dict | None:
    """The backup in ``folder`` (``state.json``'s content with ``weights`` and ``optimizer``: lists of numpy
    arrays), or None when there is none; a ValueError when it is the backup of another search."""
    state = _state(folder)
    if state is None:
        return None
    if state.get("fingerprint") != json.loads(json.dumps(fingerprint)):
        raise ValueError(f"{folder}: the backup of another search (its {BACKUP_STATE} records another model, data, "
                         "acquisition or search settings); choose a new OUT_DIR, or run that recipe to resume it.")
    with np.load(Path(folder) / state["arrays_file"], allow_pickle=False) as stored:
        state["weights"] = [stored[f"weight_{i}"] for i in range(state["weight_count"])]
        state["optimizer"] = [stored[f"optimizer_{i}"] for i in range(state["optimizer_count"])]
    return state


def write_backup(folder, fingerprint, *, weights, optimizer, history: list[dict], step: int, unchanged: int,
                 stopped: str | None, wall_time: float) -> None:
    """Write the backup of a search at the end of epoch ``len(history) - 1`` (module docstring)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    epoch = len(history) - 1
    name = f"arrays-epoch{epoch:04d}.npz"
    arrays = {f"weight_{i}": np.asarray(w) for i, w in enumerate(weights)}
    arrays |= {f"optimizer_{i}": np.asarray(v) for i, v in enumerate(optimizer)}
    write_npz(folder / name, **arrays)
    write_json(folder / BACKUP_STATE, {
        "fingerprint": fingerprint, "step": int(step), "epoch": epoch, "unchanged": int(unchanged), "stopped": stopped,
        "wall_time_seconds": float(wall_time), "history": history, "arrays_file": name,
        "weight_count": len(weights), "optimizer_count": len(optimizer)})
    for old in folder.glob("arrays-epoch*.npz"):
        if old.name != name:
            os.remove(old)
