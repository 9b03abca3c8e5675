"""Shared helpers of the legacy-checkpoint tests: the copied fixtures (tests/legacy/data) and golden inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"

#: Network options of the reduced fixtures (README of the data: same constructor, smaller widths / iterations).
REDUCED_UPDNET_KNEE = dict(
    n_iter=3,
    denoiser_kwargs={"layers_n_channels": [4, 8, 16, 32], "activation": "prelu", "channel_attention": True},
)
REDUCED_XPDNET_BRAIN = dict(n_iter=2, denoiser_kwargs={"n_filters_per_scale": [8, 16, 32], "first_conv_n_filters": 16})


def relative_error(actual, expected) -> float:
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def manifest(folder: str) -> dict:
    return json.loads((DATA / folder / "manifest.json").read_text())


def golden(folder: str) -> dict:
    with np.load(DATA / folder / "golden.npz") as arrays:
        return {key: arrays[key] for key in arrays.files}


def cartesian_inputs(arrays: dict, kspace_scale: float) -> dict:
    """The zoo inputs (physical units) of a Cartesian golden: k-space divided by the original scale factor.

    The goldens store k-space as (batch, [coils,] H, W, 1), already multiplied by the scale, and the mask as uint8.
    """
    mask = arrays["mask"]
    inputs = {
        "kspace": (arrays["kspace"][..., 0] / kspace_scale).astype(np.complex64),
        # multicoil masks are stored (batch, 1, 1, W): the zoo takes (batch, 1, W)
        "mask": (mask.reshape(mask.shape[0], 1, mask.shape[-1]) if mask.ndim == 4 else mask).astype(np.float32),
    }
    if "smaps" in arrays:
        inputs["smaps"] = arrays["smaps"]
    if "output_shape" in arrays:
        inputs["output_shape"] = arrays["output_shape"]
    return inputs
