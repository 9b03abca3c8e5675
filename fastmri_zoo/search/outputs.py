"""What a search leaves on disk: the genotype (JSON), the alpha history (CSV) and a drawing of the cell (PNG).

- ``genotype.json``: :meth:`~fastmri_zoo.layers.Genotype.to_json`, one list per node of
  ``[operation, input state]`` pairs; ``NasNet(genotype="genotype.json")`` and
  ``Genotype.parse`` read it (file path, text or the parsed lists).
- ``alpha_history.csv``: one row per epoch end (epoch 0: before the first step): ``epoch``,
  ``step``, ``train_loss``, ``val_loss`` (means over the epoch's steps), ``entropy`` (mean over
  edges of the entropy of softmax(alpha), nats), ``genotype`` (its JSON) and one column per
  logit, ``node{i}_from{j}_{operation}``: the logit of ``operation`` on the edge from state j
  into node i (states 0 and 1 are the cell inputs C_{l-2}, C_{l-1}; state 2 + k is node k).
  :func:`read_alpha_history` reads it back.
- ``cell.png``: :func:`save_cell_png`, the cell as a graph (:func:`draw_cell`), drawn with matplotlib.
- ``history.png``: :func:`save_search_history_png`, the alpha history drawn (:func:`draw_search_history`):
  the entropy of softmax(alpha) with the steps where the genotype changed, and each edge's softmax
  weights against the steps.

Every file is written to a temporary name beside it and renamed (``utils.atomic_write``; the
writers ``write_text``, ``write_json`` and ``write_npz`` live in ``utils`` and are re-exported here).
"""

from __future__ import annotations

import csv
import json
import os
import re
from typing import Sequence

import numpy as np

from ..layers import Genotype, edge_count
from ..layers.nas import search_space_operations
from ..utils import atomic_write, write_json, write_npz, write_text
from ..viz import _figure, _save_figure
from .darts import EpochRecord

__all__ = [
    "alpha_columns",
    "write_text",
    "write_genotype",
    "write_alpha_history",
    "read_alpha_history",
    "write_json",
    "draw_cell",
    "save_cell_png",
    "draw_search_history",
    "save_search_history_png",
    "genotype_changes",
    "genotype_summary",
]

_COLUMN = re.compile(r"^node(\d+)_from(\d+)_(.+)$")
_SCALARS = ("epoch", "step", "train_loss", "val_loss", "entropy")


def alpha_columns(search_space: str | Sequence[str], n_nodes: int) -> list[str]:
    """The CSV column of each logit, row by row of alpha (node 0's edges first), operation by operation."""
    operations = search_space_operations(search_space)
    return [f"node{i}_from{j}_{op}" for i in range(n_nodes) for j in range(i + 2) for op in operations]


def write_genotype(path: str | os.PathLike, genotype: Genotype) -> str:
    """Write ``genotype.json`` (one line: :meth:`~fastmri_zoo.layers.Genotype.to_json`); returns the path."""
    return write_text(path, genotype.to_json() + "\n")


def write_alpha_history(path: str | os.PathLike, history: Sequence[EpochRecord], search_space: str | Sequence[str],
                        n_nodes: int) -> str:
    """Write the per-epoch records of a search (module docstring); returns the path."""
    columns = alpha_columns(search_space, n_nodes)
    with atomic_write(path) as temporary:
        with open(temporary, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow([*_SCALARS, "genotype", *columns])
            for entry in history:
                alpha = np.asarray(entry.alpha, np.float64).ravel()
                if alpha.size != len(columns):
                    raise ValueError(f"history: epoch {entry.epoch} has {alpha.size} logits, expected {len(columns)}.")
                writer.writerow([entry.epoch, entry.step, *(f"{value:.7g}" for value in
                                                            (entry.train_loss, entry.val_loss, entry.entropy)),
                                 entry.genotype.to_json(), *(f"{value:.7g}" for value in alpha)])
    return os.fspath(path)


def read_alpha_history(path: str | os.PathLike) -> dict:
    """An ``alpha_history.csv`` as arrays: ``epoch``, ``step`` (int), ``train_loss``, ``val_loss``,
    ``entropy`` (float, NaN losses at epoch 0), ``alpha`` float64 (epochs, edges, operations),
    ``genotype`` (a :class:`~fastmri_zoo.layers.Genotype` per epoch), ``operations`` and ``n_nodes``."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    if not rows or rows[0][: len(_SCALARS) + 1] != [*_SCALARS, "genotype"]:
        raise ValueError(f"{os.fspath(path)}: expected an alpha history with columns {[*_SCALARS, 'genotype']}, ...")
    header, body = rows[0], rows[1:]
    logits = [_COLUMN.match(name) for name in header[len(_SCALARS) + 1:]]
    if not logits or not all(logits):
        raise ValueError(f"{os.fspath(path)}: expected logit columns named node<i>_from<j>_<operation>.")
    operations = list(dict.fromkeys(match.group(3) for match in logits))
    n_nodes = max(int(match.group(1)) for match in logits) + 1
    if header[len(_SCALARS) + 1:] != alpha_columns(operations, n_nodes):
        raise ValueError(f"{os.fspath(path)}: the logit columns are not those of {n_nodes} nodes over {operations}.")
    table = {name: np.asarray([float(row[k]) for row in body]) for k, name in enumerate(_SCALARS)}
    table["epoch"], table["step"] = table["epoch"].astype(int), table["step"].astype(int)
    table["genotype"] = [Genotype.parse(row[len(_SCALARS)]) for row in body]
    table["alpha"] = np.asarray([[float(v) for v in row[len(_SCALARS) + 1:]] for row in body]).reshape(
        len(body), edge_count(n_nodes), len(operations))
    table.update(operations=operations, n_nodes=n_nodes)
    return table


# ------------------------------------------------------------------------------------ the drawing


def _state_label(state: int, tex: bool = True) -> str:
    inputs = ("$C_{l-2}$", "$C_{l-1}$") if tex else ("C_{l-2}", "C_{l-1}")
    return inputs[state] if state < 2 else f"node {state - 2}"


def _positions(n_nodes: int) -> dict:
    """Where each state is drawn: the two inputs on the left, the nodes zig-zagging to the right, the
    output last (key ``"out"``)."""
    places = {0: (0.0, 1.0), 1: (0.0, -1.0)}
    for i in range(n_nodes):
        places[i + 2] = (2.0 + 2.0 * i, 0.9 if i % 2 == 0 else -0.9)
    places["out"] = (2.0 + 2.0 * n_nodes, 0.0)
    return places


def draw_cell(genotype: Genotype | Sequence | str, ax=None, title: str | None = None):
    """Draw a genotype's cell on the matplotlib axes ``ax`` (a new figure's when None): the cell
    inputs C_{l-2} and C_{l-1}, the nodes, an arrow labelled with its operation for every edge,
    and dashed arrows from every node into the concatenated output C_l. Returns ``ax``."""
    from matplotlib.patches import FancyArrowPatch

    genotype = Genotype.parse(genotype)
    if ax is None:
        ax = _figure((2.6 + 1.9 * genotype.n_nodes, 3.2)).subplots()
    places = _positions(genotype.n_nodes)
    box = dict(boxstyle="round,pad=0.35", linewidth=1)
    colours = {0: "#cfe2f3", 1: "#cfe2f3", "out": "#f4cccc"}
    labels = {state: _state_label(state) for state in places if state != "out"} | {"out": "$C_l$ (concat)"}
    for state, (x, y) in places.items():
        ax.text(x, y, labels[state], ha="center", va="center", fontsize=9, zorder=3,
                bbox=box | dict(facecolor=colours.get(state, "#d9ead3"), edgecolor="0.3"))

    def arrow(start, end, rad, **style):
        patch = FancyArrowPatch(places[start], places[end], connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                mutation_scale=11, shrinkA=17, shrinkB=17, zorder=2, **style)
        ax.add_patch(patch)
        return patch

    for i, node in enumerate(genotype.nodes):
        target_y = places[i + 2][1]
        # The edge from the node just before (on the other side of the zig-zag) is straight; the others
        # bend, by at most half a unit, away from each other: the first of them (a source on the
        # target's side first) outward, beyond the target's side, the second inward (sources are left
        # of their targets, so rad < 0 bends up).
        curved = sorted((state for _, state in node if state != i + 1),
                        key=lambda state: (np.sign(places[state][1]) != np.sign(target_y), state))
        outward = -1.0 if target_y > 0 else 1.0
        sides = {state: outward * (1 if k == 0 else -1) for k, state in enumerate(curved)}
        for operation, state in node:
            (x0, y0), (x1, y1) = places[state], places[i + 2]
            rad = sides.get(state, 0.0) * min(0.25, 1.0 / np.hypot(x1 - x0, y1 - y0))
            arrow(state, i + 2, rad, color="0.25", linewidth=1.1)
            # the label on the arc's middle: matplotlib's arc3 puts it at the chord's middle plus
            # rad / 2 times the chord turned clockwise (equal aspect: data and display agree)
            mx, my = (x0 + x1) / 2 + rad * (y1 - y0) / 2, (y0 + y1) / 2 - rad * (x1 - x0) / 2
            ax.text(mx, my, operation, ha="center", va="center", fontsize=7, zorder=4,
                    bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.9))
        arrow(i + 2, "out", 0.0, color="0.55", linewidth=0.9, linestyle="--")
    xs = [x for x, _ in places.values()]
    ax.set_xlim(min(xs) - 0.9, max(xs) + 1.1)
    ax.set_ylim(-1.6, 1.6)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def save_cell_png(path: str | os.PathLike, genotype: Genotype | Sequence | str, title: str | None = None) -> str:
    """Write :func:`draw_cell`'s drawing of ``genotype`` to ``path`` (PNG, atomically); returns the path."""
    ax = draw_cell(genotype, title=title)
    return _save_figure(ax.figure, path)


def genotype_summary(genotype: Genotype) -> str:
    """One line per node: ``node i <- operation(state), operation(state)``."""
    return "\n".join(f"node {i} <- " + ", ".join(f"{op}({_state_label(state, tex=False)})" for op, state in node)
                     for i, node in enumerate(genotype.nodes))


def genotype_changes(history: dict) -> list[int]:
    """The steps of :func:`read_alpha_history`'s table at which the derived genotype differs from the
    epoch before."""
    return [int(step) for step, before, after in zip(history["step"][1:], history["genotype"][:-1],
                                                     history["genotype"][1:]) if before != after]


def draw_search_history(history: dict | str | os.PathLike, fig=None):
    """Draw a search's alpha history (:func:`read_alpha_history`'s table, or the CSV's path) on the
    matplotlib figure ``fig`` (a new one when None): on top, the entropy of softmax(alpha) (mean over
    edges) against the steps, log(number of operations) for uniform weights and a band where the
    genotype changed; below, one panel per edge (rows: the node it enters; columns: the state it
    leaves) with the softmax weight of each operation. Returns the figure."""
    if not isinstance(history, dict):
        history = read_alpha_history(history)
    steps, operations, n_nodes = history["step"], history["operations"], history["n_nodes"]
    alpha = np.asarray(history["alpha"], np.float64)
    weights = np.exp(alpha - alpha.max(axis=2, keepdims=True))
    weights /= weights.sum(axis=2, keepdims=True)  # (epochs, edges, operations)
    if fig is None:
        fig = _figure((2.4 * (n_nodes + 1) + 1.5, 2.6 + 2.0 * n_nodes))
    grid = fig.add_gridspec(n_nodes + 1, n_nodes + 1, height_ratios=[1.3] + [1.0] * n_nodes)
    top = fig.add_subplot(grid[0, :])
    top.plot(steps, history["entropy"], "o-", ms=3, color="C0", label="entropy of softmax(alpha), mean over edges")
    top.axhline(np.log(len(operations)), color="0.6", ls=":", lw=1, label=f"log {len(operations)} (uniform weights)")
    for number, step in enumerate(genotype_changes(history)):
        top.axvline(step, color="C3", alpha=0.25, lw=3, label="the genotype changed" if number == 0 else None)
    top.set_ylabel("nats")
    top.legend(fontsize=7, loc="lower left")
    top.grid(alpha=0.3)
    edge = 0
    first = None
    for i in range(n_nodes):
        for j in range(i + 2):
            ax = fig.add_subplot(grid[i + 1, j], sharex=top, sharey=first)
            first = first or ax
            for k, operation in enumerate(operations):
                ax.plot(steps, weights[:, edge, k], color=f"C{k}", lw=1.2, label=operation)
            ax.set_title(f"{_state_label(j)} -> node {i}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            edge += 1
    first.legend(fontsize=6, loc="upper left")
    first.set_ylabel("softmax weight", fontsize=8)
    fig.supxlabel("search steps", fontsize=9)
    return fig


def save_search_history_png(path: str | os.PathLike, history: dict | str | os.PathLike, title: str | None = None
                            ) -> str:
    """Write :func:`draw_search_history`'s figure to ``path`` (PNG, atomically); returns the path."""
    fig = draw_search_history(history)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save_figure(fig, path)
