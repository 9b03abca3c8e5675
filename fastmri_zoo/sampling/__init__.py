"""Sampling patterns of an acquisition.

- ``cartesian``: fastMRI's column mask functions, with fastMRI's names, signatures and
  masks (random, equispaced, equispaced_fraction, magic, magic_fraction), and per-volume /
  per-slice seeds; masks are float32 (1, W) for a k-space (..., H, W), (1, ..., 1, W, 1)
  for fastMRI's (..., H, W, 2).
- ``trajectories``: non-Cartesian trajectories in the NUFFT's layout, float32
  (ndim, num_shots * samples_per_shot), shot by shot, in radians per pixel within
  [-pi, pi]: radial, spiral, 3D kooshball.
"""

from .cartesian import (
    MASK_TYPES,
    EquispacedMaskFractionFunc,
    EquiSpacedMaskFunc,
    EquispacedMaskFunc,
    MagicMaskFractionFunc,
    MagicMaskFunc,
    MaskFunc,
    RandomMaskFunc,
    center_mask,
    create_mask_for_mask_type,
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
    "EquiSpacedMaskFunc",
    "EquispacedMaskFunc",
    "EquispacedMaskFractionFunc",
    "MagicMaskFunc",
    "MagicMaskFractionFunc",
    "MASK_TYPES",
    "create_mask_for_mask_type",
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
