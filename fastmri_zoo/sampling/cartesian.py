"""Cartesian column masks with the semantics of fastMRI's mask functions.

A mask function draws, for a k-space of shape (..., H, W), a 0/1 mask over the
W phase-encoding columns: a fully sampled block of ``num_low_frequencies``
centre columns plus outer columns chosen at random (``RandomMaskFunc``) or on
a regular grid (``EquispacedMaskFunc``, ``EquispacedMaskFractionFunc``).

Behaviour follows ``fastmri.data.subsample`` (facebookresearch/fastMRI):

- ``num_low_frequencies = round(W * center_fraction)``; the centre block is
  columns ``pad .. pad + num_low_frequencies - 1`` with
  ``pad = (W - num_low_frequencies + 1) // 2``.
- one (center_fraction, acceleration) pair is drawn per call with the
  function's ``numpy.random.RandomState`` (``rng.randint(len(pairs))``), then
  the outer columns are drawn from the same generator;
- ``seed`` given to ``__call__`` re-seeds the generator for that call only
  (an int or a tuple of ints, e.g. ``volume_seed(fname)``) and restores its
  state afterwards, so the same seed always gives the same mask.

Differences: the mask comes back as a float32 numpy array of shape (1, W)
(broadcastable to (H, W) and (batch, H, W)) instead of a torch tensor, the
shape argument has no trailing real/imaginary axis, and misconfigurations
that fastMRI lets through silently (a centre larger than the sampling budget)
raise ``ValueError``.
"""

from __future__ import annotations

import os
import threading
from typing import Sequence

import numpy as np

from ..checks import check_scalar

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
]

Seed = int | Sequence[int]

# Unicode code points end at 0x10FFFF, so this value never comes from a
# character: it separates the file name from the extra seed entries and makes
# volume_seed / slice_seed injective.
_SEED_SEPARATOR = 0xFFFFFFFF


def _as_list(name: str, values) -> list:
    if np.isscalar(values):
        return [values]
    values = list(values)
    if not values:
        raise ValueError(f"{name}: expected at least one value, got an empty sequence.")
    return values


def _check_seed(name: str, seed) -> Seed | None:
    """Seeds are what ``RandomState.seed`` takes: None, an int or ints in [0, 2**32)."""
    if seed is None:
        return None
    entries = [seed] if np.isscalar(seed) else list(seed)
    if not entries:
        raise ValueError(f"{name}: expected an int or a non-empty tuple of ints, got {seed!r}.")
    for entry in entries:
        if isinstance(entry, bool) or not isinstance(entry, (int, np.integer)):
            raise ValueError(
                f"{name}: expected an int or a tuple of ints, got {seed!r} "
                f"(entry {entry!r} is {type(entry).__name__})."
            )
        if not 0 <= int(entry) < 2**32:
            raise ValueError(f"{name}: expected seed entries in [0, 2**32), got {int(entry)}.")
    return int(seed) if np.isscalar(seed) else tuple(int(e) for e in entries)


def center_mask(num_cols: int, num_low_frequencies: int) -> np.ndarray:
    """Fully sampled centre block as fastMRI places it: float32 (num_cols,).

    Columns ``pad .. pad + num_low_frequencies - 1`` are 1 with
    ``pad = (num_cols - num_low_frequencies + 1) // 2``.
    """
    num_cols = check_scalar("num_cols", num_cols, integer=True, at_least=1)
    num_low_frequencies = check_scalar(
        "num_low_frequencies", num_low_frequencies, integer=True, at_least=0
    )
    if num_low_frequencies > num_cols:
        raise ValueError(
            f"num_low_frequencies: expected at most num_cols={num_cols}, got {num_low_frequencies}."
        )
    mask = np.zeros(num_cols, dtype=np.float32)
    pad = (num_cols - num_low_frequencies + 1) // 2
    mask[pad : pad + num_low_frequencies] = 1.0
    return mask


class MaskFunc:
    """Base class: centre block + outer columns from ``_acceleration_mask``.

    center_fractions: fraction(s) of the W columns fully sampled in the centre, each in (0, 1).
    accelerations: acceleration(s) R > 1, the same length as ``center_fractions``; about W / R
        columns are sampled in total.
    seed: seed of the function's own generator (int or tuple of ints), as fastMRI.
    allow_any_combination: draw the centre fraction and the acceleration independently
        instead of as pairs (fastMRI's option of the same name).
    """

    #: whether accelerations must be whole numbers (equispaced steps)
    _integer_accelerations = False
    #: whether a centre exactly as large as the sampling budget W / R is allowed
    _centre_may_fill_budget = True

    def __init__(
        self,
        center_fractions: float | Sequence[float],
        accelerations: float | Sequence[float],
        seed: Seed | None = None,
        *,
        allow_any_combination: bool = False,
    ):
        center_fractions = _as_list("center_fractions", center_fractions)
        accelerations = _as_list("accelerations", accelerations)
        if len(center_fractions) != len(accelerations) and not allow_any_combination:
            raise ValueError(
                f"center_fractions and accelerations: expected sequences of the same length "
                f"(one centre fraction per acceleration), got {len(center_fractions)} centre "
                f"fractions {center_fractions} and {len(accelerations)} accelerations {accelerations}."
            )
        self.center_fractions = [
            check_scalar(f"center_fractions[{i}]", c, above=0.0, below=1.0)
            for i, c in enumerate(center_fractions)
        ]
        self.accelerations = [
            check_scalar(
                f"accelerations[{i}]", a, integer=self._integer_accelerations, above=1.0
            )
            for i, a in enumerate(accelerations)
        ]
        pairs = (
            [(c, a) for c in self.center_fractions for a in self.accelerations]
            if allow_any_combination
            else list(zip(self.center_fractions, self.accelerations))
        )
        for c, a in pairs:
            # The centre alone must not exceed the W / R sampled columns.
            if c * a > 1.0 or (c * a == 1.0 and not self._centre_may_fill_budget):
                raise ValueError(
                    f"center_fractions and accelerations: the centre fraction {c:g} with "
                    f"acceleration {a:g} samples more than 1 / {a:g} of k-space in the centre "
                    f"alone; expected center_fraction * acceleration < 1, got {c * a:g}."
                )
        self.allow_any_combination = bool(allow_any_combination)
        self.seed = _check_seed("seed", seed)
        self.rng = np.random.RandomState(self.seed)
        # tf.data pipelines call one mask function from several threads (parallel map): re-seeding the
        # shared generator, drawing and restoring it must not interleave, or a slice gets another's mask.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(center_fractions={self.center_fractions}, "
            f"accelerations={self.accelerations}, seed={self.seed!r})"
        )

    def __call__(
        self, shape: Sequence[int], seed: Seed | None = None, *, offset: int | None = None
    ) -> tuple[np.ndarray, int]:
        """Draw a mask for a k-space of shape (..., H, W).

        seed: re-seeds the generator for this call only (int or tuple of ints);
            None continues the function's own random stream.
        offset: first outer column of the equispaced masks (drawn at random when None).
        Returns ``mask``: float32 (1, W) of 0/1, and ``num_low_frequencies``: int, the number
        of fully sampled centre columns.
        """
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(
                f"shape: expected the k-space shape (..., H, W) with at least 2 axes, got {shape}."
            )
        num_cols = check_scalar("shape[-1] (W)", shape[-1], integer=True, at_least=2)
        seed = _check_seed("seed", seed)
        with self._lock:
            if seed is None:
                return self._sample(num_cols, offset)
            state = self.rng.get_state()
            self.rng.seed(seed)
            try:
                return self._sample(num_cols, offset)
            finally:
                self.rng.set_state(state)

    def choose_acceleration(self) -> tuple[float, float]:
        """Draw one (center_fraction, acceleration) pair from the function's generator."""
        if self.allow_any_combination:
            return self.rng.choice(self.center_fractions), self.rng.choice(self.accelerations)
        choice = self.rng.randint(len(self.center_fractions))
        return self.center_fractions[choice], self.accelerations[choice]

    def _sample(self, num_cols: int, offset: int | None) -> tuple[np.ndarray, int]:
        center_fraction, acceleration = self.choose_acceleration()
        num_low = int(round(num_cols * center_fraction))
        if num_low < 1:
            raise ValueError(
                f"shape: W={num_cols} columns is too small for center_fraction "
                f"{center_fraction:g}: round(W * center_fraction) = 0 centre columns; "
                f"expected W >= {int(np.ceil(0.5 / center_fraction))}."
            )
        budget = num_cols / acceleration
        if num_low > budget or (num_low == budget and not self._centre_may_fill_budget):
            raise ValueError(
                f"shape: W={num_cols} columns is too small for center_fraction "
                f"{center_fraction:g} and acceleration {acceleration:g}: the {num_low} centre "
                f"columns exceed the W / acceleration = {budget:g} columns to sample."
            )
        outer = self._acceleration_mask(num_cols, acceleration, offset, num_low)
        mask = np.maximum(center_mask(num_cols, num_low), outer.astype(np.float32))
        return mask.reshape(1, num_cols), num_low

    def _acceleration_mask(
        self, num_cols: int, acceleration: float, offset: int | None, num_low: int
    ) -> np.ndarray:
        """0/1 array (num_cols,) of the outer columns; subclasses define it."""
        raise NotImplementedError


class RandomMaskFunc(MaskFunc):
    """Centre block + outer columns kept independently with probability p.

    p = (W / R - num_low) / (W - num_low), so the expected number of sampled
    columns is exactly W / R (the centre counts towards it).
    """

    def _acceleration_mask(self, num_cols, acceleration, offset, num_low):
        prob = (num_cols / acceleration - num_low) / (num_cols - num_low)
        return self.rng.uniform(size=num_cols) < prob


class EquispacedMaskFunc(MaskFunc):
    """Centre block + every R-th column from a random offset in [0, R).

    As in fastMRI the centre is added on top of the equispaced columns, so the
    realised acceleration is a little below R; accelerations must be integers.
    """

    _integer_accelerations = True

    def _acceleration_mask(self, num_cols, acceleration, offset, num_low):
        acceleration = int(acceleration)
        if offset is None:
            offset = self.rng.randint(0, high=acceleration)
        offset = check_scalar("offset", offset, integer=True, at_least=0, below=acceleration)
        mask = np.zeros(num_cols, dtype=np.float32)
        mask[offset::acceleration] = 1.0
        return mask


class EquispacedMaskFractionFunc(MaskFunc):
    """Centre block + columns equispaced with a fractional step chosen so that,
    counting the centre, W / R columns are sampled (up to rounding).

    The step is R (num_low - W) / (num_low R - W); outer columns are the
    rounded positions offset, offset + step, ... below W - 1.
    """

    _centre_may_fill_budget = False

    def _acceleration_mask(self, num_cols, acceleration, offset, num_low):
        step = acceleration * (num_low - num_cols) / (num_low * acceleration - num_cols)
        if offset is None:
            offset = self.rng.randint(0, high=round(step))
        offset = check_scalar("offset", offset, integer=True, at_least=0, below=max(round(step), 1))
        mask = np.zeros(num_cols, dtype=np.float32)
        columns = np.around(np.arange(offset, num_cols - 1, step)).astype(np.int64)
        mask[columns] = 1.0
        return mask


MASK_TYPES = {
    "random": RandomMaskFunc,
    "equispaced": EquispacedMaskFunc,
    "equispaced_fraction": EquispacedMaskFractionFunc,
}


def create_mask_func(
    mask_type: str,
    center_fractions: float | Sequence[float],
    accelerations: float | Sequence[float],
    seed: Seed | None = None,
) -> MaskFunc:
    """Mask function by name: "random", "equispaced" or "equispaced_fraction"."""
    if mask_type not in MASK_TYPES:
        raise ValueError(
            f"mask_type: expected one of {sorted(MASK_TYPES)}, got {mask_type!r}."
        )
    return MASK_TYPES[mask_type](center_fractions, accelerations, seed)


def _name_codes(filename: str) -> tuple[int, ...]:
    if not isinstance(filename, (str, os.PathLike)):
        raise ValueError(
            f"filename: expected a file name (str), got {type(filename).__name__}."
        )
    name = os.path.basename(os.fspath(filename))
    if not name:
        raise ValueError(f"filename: expected a non-empty file name, got {filename!r}.")
    return tuple(ord(c) for c in name)


def volume_seed(filename: str, seed: int = 0) -> tuple[int, ...]:
    """Deterministic mask seed of one volume, derived from its file name.

    With ``seed=0`` this is fastMRI's ``tuple(map(ord, fname))`` of the base name
    (folders are ignored, so a file keeps its mask wherever it is stored); another
    ``seed`` gives a different, equally reproducible family of masks. Pass it as
    ``mask_func(shape, seed=volume_seed(fname))``.
    """
    codes = _name_codes(filename)
    seed = check_scalar("seed", seed, integer=True, at_least=0, below=2**32)
    return codes if seed == 0 else codes + (_SEED_SEPARATOR, seed)


def slice_seed(filename: str, slice_index: int, seed: int = 0) -> tuple[int, ...]:
    """Deterministic mask seed of one slice of a volume: differs between slices,
    between files and from every ``volume_seed``."""
    codes = _name_codes(filename)
    seed = check_scalar("seed", seed, integer=True, at_least=0, below=2**32)
    slice_index = check_scalar("slice_index", slice_index, integer=True, at_least=0, below=2**32)
    return codes + (_SEED_SEPARATOR, seed, slice_index)
