"""Sampling patterns of an acquisition.

- ``cartesian``: fastMRI-style column masks (random, equispaced, equispaced_fraction)
  and per-volume / per-slice seeds; masks are float32 (1, W).
- ``trajectories``: non-Cartesian trajectories, float32 (ndim, num_shots, samples_per_shot)
  in radians per pixel within [-pi, pi]: radial, spiral, 3D kooshball.
"""

from .cartesian import (
    MASK_TYPES,
    EquispacedMaskFractionFunc,
    EquispacedMaskFunc,
    MaskFunc,
    RandomMaskFunc,
    center_mask,
    create_mask_func,
    slice_seed,
    volume_seed,
)
from .trajectories import (
    GOLDEN_ANGLE,
    kooshball_trajectory,
    radial_trajectory,
    spiral_trajectory,
    trajectory_acceleration,
)

__all__ = [
    "MaskFunc",
    "RandomMaskFunc",
    "EquispacedMaskFunc",
    "EquispacedMaskFractionFunc",
    "MASK_TYPES",
    "create_mask_func",
    "center_mask",
    "volume_seed",
    "slice_seed",
    "GOLDEN_ANGLE",
    "radial_trajectory",
    "spiral_trajectory",
    "kooshball_trajectory",
    "trajectory_acceleration",
]
