"""Pictures written as PNG: reconstructions side by side with their error maps, posterior mean and standard
deviation maps, and training curves."""

from __future__ import annotations

import os
import tempfile
from typing import Mapping, Sequence, Union

import numpy as np

from .checks import default_permissions

# a training log: a log.csv path or the columns read_training_log returns
LogSource = Union[str, os.PathLike, Mapping[str, np.ndarray]]

__all__ = ["save_comparison_png", "save_uncertainty_png", "read_training_log", "curve_scale", "curve_floor",
           "save_training_curve_png", "validation_curves", "save_validation_curves_png"]


def save_comparison_png(
    path: str | os.PathLike,
    images: Mapping[str, np.ndarray],
    reference: np.ndarray | None = None,
    metrics: Mapping[str, Mapping[str, float]] | None = None,
    title: str | None = None,
) -> str:
    """Write a figure: one column per image, and a row of |image - reference| when given.

    images: name -> magnitude (H, W); reference: magnitude (H, W) shown first;
    metrics: name -> {"psnr": ..., "ssim": ...} printed under each image.
    The file is written to a temporary name and renamed, so a failed run never
    leaves a half-written PNG. Returns the path.
    """
    panels = dict(images)
    if not panels:
        raise ValueError("images: expected at least one image to draw, got none.")
    for name, image in panels.items():
        if np.ndim(image) != 2:
            raise ValueError(f"images[{name!r}]: expected a 2D magnitude (H, W), got shape {np.shape(image)}.")
    columns = ([("reference", reference)] if reference is not None else []) + list(panels.items())
    rows = 2 if reference is not None else 1
    vmax = float(np.max(np.abs(reference))) if reference is not None else max(float(np.max(np.abs(v))) for v in panels.values())
    fig = _figure((3.2 * len(columns), 3.4 * rows))
    axes = fig.subplots(rows, len(columns), squeeze=False)
    for col, (name, image) in enumerate(columns):
        ax = axes[0, col]
        ax.imshow(np.abs(image), cmap="gray", vmin=0, vmax=vmax)
        label = name
        if metrics and name in metrics:
            values = metrics[name]
            label += "\n" + "  ".join(f"{k.upper()} {v:.3f}" if k != "psnr" else f"PSNR {v:.2f} dB"
                                      for k, v in values.items())
        ax.set_title(label, fontsize=9)
        ax.axis("off")
        if reference is not None:
            err_ax = axes[1, col]
            if name == "reference":
                err_ax.axis("off")
                err_ax.text(0.5, 0.5, "|error| x 5\n(same scale for all)", ha="center", va="center", fontsize=9)
                continue
            err_ax.imshow(np.abs(np.abs(image) - np.abs(reference)), cmap="inferno", vmin=0, vmax=vmax / 5)
            err_ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save_figure(fig, path)


def save_uncertainty_png(
    path: str | os.PathLike,
    zero_filled: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    reference: np.ndarray | None = None,
    metrics: Mapping[str, Mapping[str, float]] | None = None,
    title: str | None = None,
) -> str:
    """Write a figure of one slice's posterior: zero-filled, posterior mean, standard-deviation map and, with a
    ``reference``, the reference first and |posterior mean - reference| last.

    zero_filled, mean, std, reference: real (H, W) (magnitudes; ``mean`` may be complex, its magnitude is drawn).
    Images share the gray scale of the reference (else of the mean); the standard deviation and the error share
    one colour scale (the 99th percentile of both), so where the error is large the map should be bright too.
    metrics: name -> {"psnr": ..., "ssim": ...} under "zero-filled" and "posterior mean". Written through a
    temporary file and a rename. Returns the path.
    """
    mean = np.abs(mean)
    for name, image in (("zero_filled", zero_filled), ("mean", mean), ("std", std), ("reference", reference)):
        if image is not None and (np.ndim(image) != 2 or np.shape(image) != mean.shape):
            raise ValueError(f"{name}: expected a 2D image of the mean's shape {mean.shape}, got {np.shape(image)}.")
    error = None if reference is None else np.abs(mean - reference)
    gray = float(np.max(reference if reference is not None else mean)) or 1.0
    spread = np.concatenate([np.ravel(std)] + ([] if error is None else [np.ravel(error)]))
    colour = float(np.percentile(spread, 99)) or 1.0
    panels = ([("reference", reference, "gray", gray)] if reference is not None else []) + [
        ("zero-filled", zero_filled, "gray", gray),
        ("posterior mean", mean, "gray", gray),
        ("posterior std", std, "magma", colour),
    ] + ([("|mean - reference|", error, "magma", colour)] if error is not None else [])
    # square panels with room above them for two lines of title and the suptitle: tight_layout places the
    # titles from the axes' boxes, which an image shrinks when they are taller than wide
    fig = _figure((3.2 * len(panels), 4.2))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, image, cmap, vmax) in zip(axes, panels):
        ax.imshow(image, cmap=cmap, vmin=0, vmax=vmax)
        values = (metrics or {}).get(name)
        label = name + (f"\nPSNR {values['psnr']:.2f} dB  SSIM {values['ssim']:.3f}" if values else "")
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save_figure(fig, path)


def _figure(size):
    """A matplotlib figure drawn by the Agg canvas, outside pyplot: it neither changes the backend of
    the caller's session (inline figures in Jupyter keep working) nor stays registered in pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig, path) -> str:
    """Write ``fig`` to ``path`` through a temporary file and a rename."""
    fig.tight_layout()
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
    os.close(handle)
    try:
        fig.savefig(tmp, dpi=110)
        default_permissions(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_training_log(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The columns of a training ``log.csv`` (Keras ``CSVLogger``: ``epoch``, ``psnr``,
    ``val_psnr``, ...) as float arrays, one value per epoch; later rows of a repeated epoch
    (a resumed run) replace earlier ones."""
    import csv

    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "epoch" not in rows[0]:
        raise ValueError(f"{os.fspath(path)}: expected a CSV training log with an 'epoch' column.")
    by_epoch = {}
    for row in rows:
        if row.get("epoch") in (None, "", "epoch"):  # a header repeated by an appending logger
            continue
        by_epoch[int(float(row["epoch"]))] = row
    epochs = sorted(by_epoch)
    columns = {}
    for key in rows[0]:
        values = []
        for epoch in epochs:
            try:
                values.append(float(by_epoch[epoch].get(key, "nan")))
            except ValueError:
                values.append(np.nan)
        columns[key] = np.asarray(values, np.float64)
    return columns


def curve_scale(*curves) -> str:
    """"log" for curves of positive values spanning more than a factor of 10 (non-finite values ignored),
    else "linear"."""
    values = np.concatenate([np.asarray(curve, np.float64).ravel() for curve in curves]) if curves else np.zeros(0)
    values = values[np.isfinite(values)]
    return "log" if values.size and values.min() > 0 and values.max() > 10 * values.min() else "linear"


#: A PSNR curve's axis reaches this far below its best value (or just below the lowest baseline); epochs
#: further down (a diverged run: -250 dB) are drawn on the axis' floor, marked, so the rest stays readable.
DIVERGED_DB = 15.0


def curve_floor(metric: str, curves, baselines=()) -> float | None:
    """The lowest value a PSNR curve's axis shows: ``DIVERGED_DB`` below the best finite value of ``curves``,
    lowered to 1 dB under the lowest baseline; None (the whole curve) when nothing falls below it or the
    metric is not PSNR."""
    if metric != "psnr":
        return None
    values = np.concatenate([np.asarray(curve, np.float64).ravel() for curve in curves]) if curves else np.zeros(0)
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None
    floor = min([finite.max() - DIVERGED_DB, *(float(b) - 1.0 for b in baselines)])
    return floor if (~np.isfinite(values) | (values < floor)).any() else None


def _log_columns(log) -> Mapping[str, np.ndarray]:
    """A ``log.csv`` path's columns (:func:`read_training_log`), or columns already read."""
    return log if isinstance(log, Mapping) else read_training_log(log)


def _epoch_steps(columns: Mapping[str, np.ndarray], steps_per_epoch: int) -> np.ndarray:
    """The optimizer step at the end of each logged epoch."""
    return (np.asarray(columns["epoch"]) + 1) * int(steps_per_epoch)


def _finish_curve_axes(ax, metric: str, ylabel: str, baselines, first_colour: int, title) -> None:
    """Baselines as dashed horizontal lines (colours from ``C{first_colour}``), labels, grid, legend, title."""
    for index, (label, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, color=f"C{first_colour + index}", ls="--", lw=1, label=label)
    ax.set_xlabel("optimizer steps")
    ax.set_ylabel(ylabel + (" (dB)" if metric == "psnr" else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)


def validation_curves(
    logs: Mapping[str, LogSource | Sequence[LogSource]], steps_per_epoch: int, metric: str = "psnr"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """label -> (optimizer steps, validation ``metric``) of each run's ``log.csv`` (or
    :func:`read_training_log` columns), one point per epoch: runs compared on the same validation examples.
    A label given a list of logs is a run continued from another's weights (``"initial_weights"``): each
    log's steps count on from the last step of the one before it."""
    curves = {}
    for label, sources in logs.items():
        chain = list(sources) if isinstance(sources, (list, tuple)) else [sources]
        if not chain:
            raise ValueError(f"{label}: expected a log.csv or a list of them, got an empty list.")
        steps, values, offset = [], [], 0
        for log in chain:
            columns = _log_columns(log)
            if f"val_{metric}" not in columns:
                raise ValueError(f"{label}: its log has no column 'val_{metric}'; columns: {sorted(columns)}.")
            steps.append(offset + _epoch_steps(columns, steps_per_epoch))
            values.append(np.asarray(columns[f"val_{metric}"], np.float64))
            offset = steps[-1][-1] if len(steps[-1]) else offset
        curves[label] = (np.concatenate(steps), np.concatenate(values))
    return curves


def save_validation_curves_png(
    path: str | os.PathLike,
    logs: Mapping[str, LogSource | Sequence[LogSource]],
    steps_per_epoch: int,
    metric: str = "psnr",
    baselines: Mapping[str, float] | None = None,
    title: str | None = None,
) -> str:
    """Write the validation curves of several runs (label -> ``log.csv``, or a list: a run and its
    continuations; :func:`validation_curves`) on one axis against optimizer steps, with ``baselines``
    (label -> value) as horizontal lines. Returns the path."""
    curves = validation_curves(logs, steps_per_epoch, metric)
    fig = _figure((5.5, 3.4))
    ax = fig.subplots()
    for index, (label, (steps, values)) in enumerate(curves.items()):
        ax.plot(steps, values, "o-", color=f"C{index}", ms=3, label=label)
    _finish_curve_axes(ax, metric, f"validation {metric.upper()}", baselines, len(curves), title)
    return _save_figure(fig, path)


def save_training_curve_png(
    path: str | os.PathLike,
    log: str | os.PathLike | Mapping[str, np.ndarray],
    steps_per_epoch: int,
    metric: str = "psnr",
    baselines: Mapping[str, float] | None = None,
    title: str | None = None,
    kept_step: int | None = None,
) -> str:
    """Write the validation (and training) curve of ``metric`` against optimizer steps.

    log: a ``log.csv`` path or :func:`read_training_log`'s columns; baselines: label -> value
    drawn as horizontal lines (e.g. zero-filled on the same validation examples); kept_step: the step
    whose weights a run kept (``fit(keep="best")``), marked on the validation curve. A curve of positive
    values spanning more than a factor of 10 (a loss falling from its first epochs) is drawn on a
    logarithmic axis; PSNR epochs far below the rest (:func:`curve_floor`) sit on the axis' floor, marked
    as diverged. Returns the path.
    """
    columns = _log_columns(log)
    if f"val_{metric}" not in columns and metric not in columns:
        raise ValueError(f"log: no column {metric!r} or 'val_{metric}'; columns: {sorted(columns)}.")
    steps = _epoch_steps(columns, steps_per_epoch)
    drawn = {key: np.asarray(columns[key], np.float64) for key in (metric, f"val_{metric}") if key in columns}
    floor = curve_floor(metric, list(drawn.values()), list((baselines or {}).values()))
    if floor is not None:
        below = np.zeros(steps.shape, bool)
        for key, values in drawn.items():
            off = ~np.isfinite(values) | (values < floor)
            below |= off
            drawn[key] = np.where(off, floor, values)
    fig = _figure((5.5, 3.4))
    ax = fig.subplots()
    if metric in drawn:
        ax.plot(steps, drawn[metric], color="0.6", lw=1, label=f"training (running mean over the epoch)")
    if f"val_{metric}" in drawn:
        ax.plot(steps, drawn[f"val_{metric}"], "o-", color="C0", ms=3, label="validation")
        if kept_step is not None and int(kept_step) in steps.tolist():
            at = steps.tolist().index(int(kept_step))
            ax.plot([kept_step], [drawn[f"val_{metric}"][at]], "*", color="C3", ms=11, label=f"kept (step {kept_step:,})")
    if floor is not None:
        ax.plot(steps[below], np.full(int(below.sum()), floor), "v", color="C3", ms=6,
                label=f"diverged (below {floor:.0f} dB)")
        ax.set_ylim(bottom=floor - 0.5)
    ax.set_yscale(curve_scale(*drawn.values()))
    _finish_curve_axes(ax, metric, metric.upper(), baselines, 1, title)
    return _save_figure(fig, path)
