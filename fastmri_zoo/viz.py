"""Pictures of reconstructions: side-by-side magnitudes and error maps, written as PNG."""

from __future__ import annotations

import os
import tempfile
from typing import Mapping

import numpy as np

from .checks import default_permissions

__all__ = ["save_comparison_png"]


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
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = dict(images)
    if not panels:
        raise ValueError("images: expected at least one image to draw, got none.")
    for name, image in panels.items():
        if np.ndim(image) != 2:
            raise ValueError(f"images[{name!r}]: expected a 2D magnitude (H, W), got shape {np.shape(image)}.")
    columns = ([("reference", reference)] if reference is not None else []) + list(panels.items())
    rows = 2 if reference is not None else 1
    vmax = float(np.max(np.abs(reference))) if reference is not None else max(float(np.max(np.abs(v))) for v in panels.values())
    fig, axes = plt.subplots(rows, len(columns), figsize=(3.2 * len(columns), 3.4 * rows), squeeze=False)
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
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
