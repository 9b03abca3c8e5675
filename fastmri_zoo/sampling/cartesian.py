"""Cartesian column masks with the signatures and semantics of fastMRI's mask functions.

A mask function draws, for a k-space of shape (..., H, W), a 0/1 mask over the
W phase-encoding columns: a fully sampled block of ``num_low_frequencies``
centre columns plus outer columns chosen at random (``RandomMaskFunc``), on
a regular grid (``EquiSpacedMaskFunc``, ``EquispacedMaskFractionFunc``) or on
two offset grids, one per half of k-space (``MagicMaskFunc``,
``MagicMaskFractionFunc``).

Names, signatures and masks are those of ``fastmri.data.subsample``
(facebookresearch/fastMRI), so code written for fastMRI runs unchanged and
draws the same masks:

- ``MaskFunc(center_fractions, accelerations, allow_any_combination=False, seed=None)``;
  ``mask_func(shape, offset=None, seed=None) -> (mask, num_low_frequencies)``;
  ``create_mask_for_mask_type(mask_type_str, center_fractions, accelerations)``.
- ``num_low_frequencies = round(W * center_fraction)``; the centre block is
  columns ``pad .. pad + num_low_frequencies - 1`` with
  ``pad = (W - num_low_frequencies + 1) // 2``.
- one (center_fraction, acceleration) pair is drawn per call with the
  function's ``numpy.random.RandomState`` (``rng.randint(len(pairs))``, or
  ``rng.choice`` of each with ``allow_any_combination``), then the offset or
  the outer columns are drawn from the same generator;
- ``seed`` given to a call re-seeds the generator for that call only
  (an int or a tuple of ints, e.g. ``volume_seed(fname)``) and restores its
  state afterwards, so the same seed always gives the same mask.

Shapes: the zoo's k-space shape (..., H, W) gives a mask float32 (1, W)
(broadcastable to (H, W) and (batch, H, W)); fastMRI's (..., H, W, 2), whose
trailing axis of 2 is the real / imaginary pair, gives fastMRI's mask shape
(1, ..., 1, W, 1), broadcastable to that k-space. A trailing axis of size 2
is always read as fastMRI's real / imaginary axis.

Differences from fastMRI: the mask is a numpy array, not a torch tensor;
misconfigurations that fastMRI lets through or fails on obscurely raise a
``ValueError`` naming them (a centre larger than the sampling budget or of
no column, an ``offset`` past the last column, non-integer
accelerations of the equispaced and magic masks, a seed where
``allow_any_combination`` goes). The zoo's earlier names stay as aliases:
``EquispacedMaskFunc`` (= ``EquiSpacedMaskFunc``) and ``create_mask_func``
(``create_mask_for_mask_type`` with a seed).
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
    """Base class: centre block + outer columns from ``calculate_acceleration_mask``.

    center_fractions: fraction(s) of the W columns fully sampled in the centre, each in (0, 1).
    accelerations: acceleration(s) R > 1, the same length as ``center_fractions``; about W / R
        columns are sampled in total.
    allow_any_combination: draw the centre fraction and the acceleration independently
        instead of as pairs (then the two lists may differ in length).
    seed: seed of the function's own generator (int or tuple of ints).

    The signature is fastMRI's: a seed goes third only as ``seed=``.
    """

    #: whether accelerations must be whole numbers (equispaced steps)
    _integer_accelerations = False
    #: whether a centre exactly as large as the sampling budget W / R is allowed
    _centre_may_fill_budget = True

    def __init__(
        self,
        center_fractions: float | Sequence[float],
        accelerations: float | Sequence[float],
        allow_any_combination: bool = False,
        seed: Seed | None = None,
    ):
        if not isinstance(allow_any_combination, (bool, np.bool_)):
            raise ValueError(
                f"allow_any_combination: expected a bool, got {allow_any_combination!r}; the "
                f"signature is fastMRI's {type(self).__name__}(center_fractions, accelerations, "
                "allow_any_combination=False, seed=None), so a seed must be passed as seed=..."
            )
        center_fractions = _as_list("center_fractions", center_fractions)
        accelerations = _as_list("accelerations", accelerations)
        if len(center_fractions) != len(accelerations) and not allow_any_combination:
            raise ValueError(
                f"center_fractions and accelerations: expected sequences of the same length "
                f"(one centre fraction per acceleration, or allow_any_combination=True), got "
                f"{len(center_fractions)} centre fractions {center_fractions} and "
                f"{len(accelerations)} accelerations {accelerations}."
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
                relation = "<=" if self._centre_may_fill_budget else "<"
                raise ValueError(
                    f"center_fractions and accelerations: the centre fraction {c:g} with "
                    f"acceleration {a:g} samples more than 1 / {a:g} of k-space in the centre "
                    f"alone; expected center_fraction * acceleration {relation} 1, got {c * a:g}."
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
            f"accelerations={self.accelerations}, "
            f"allow_any_combination={self.allow_any_combination}, seed={self.seed!r})"
        )

    def __call__(
        self, shape: Sequence[int], offset: int | None = None, seed: Seed | None = None
    ) -> tuple[np.ndarray, int]:
        """Draw a mask for a k-space of shape (..., H, W), or fastMRI's (..., H, W, 2).

        offset: first outer column of the equispaced and magic masks (drawn from the
            generator when None; ignored by ``RandomMaskFunc``, as in fastMRI).
        seed: re-seeds the generator for this call only (int or tuple of ints);
            None continues the function's own random stream.
        Returns ``mask``: float32 of 0/1, (1, W) for (..., H, W) or (1, ..., 1, W, 1) for
        (..., H, W, 2); and ``num_low_frequencies``: int, the number of fully sampled centre
        columns.
        """
        num_cols, mask_shape = _mask_layout(shape)
        offset = _check_offset(offset)
        seed = _check_seed("seed", seed)
        with self._lock:
            if seed is None:
                mask, num_low = self._sample(num_cols, offset)
            else:
                state = self.rng.get_state()
                self.rng.seed(seed)
                try:
                    mask, num_low = self._sample(num_cols, offset)
                finally:
                    self.rng.set_state(state)
        return mask.reshape(mask_shape), num_low

    def choose_acceleration(self) -> tuple[float, float]:
        """Draw one (center_fraction, acceleration) pair from the function's generator."""
        if self.allow_any_combination:
            return self.rng.choice(self.center_fractions), self.rng.choice(self.accelerations)
        choice = self.rng.randint(len(self.center_fractions))
        return self.center_fractions[choice], self.accelerations[choice]

    def _sample(self, num_cols: int, offset: int | None) -> tuple[np.ndarray, int]:
        """One mask, float32 (W,), and its number of centre columns."""
        center_fraction, acceleration = self.choose_acceleration()
        num_low, acceleration = self._centre_and_acceleration(num_cols, center_fraction, acceleration)
        outer = self.calculate_acceleration_mask(num_cols, acceleration, offset, num_low)
        return np.maximum(center_mask(num_cols, num_low), outer.astype(np.float32)), num_low

    def _centre_and_acceleration(
        self, num_cols: int, center_fraction: float, acceleration: float
    ) -> tuple[int, float]:
        """(num_low_frequencies, acceleration of the outer columns) for W columns."""
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
        return num_low, acceleration

    def calculate_acceleration_mask(
        self, num_cols: int, acceleration: float, offset: int | None, num_low_frequencies: int
    ) -> np.ndarray:
        """0/1 array (num_cols,) of the outer columns (fastMRI's hook of the same name)."""
        raise NotImplementedError


def _mask_layout(shape: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """(W, mask shape) of a k-space shape: the zoo's (..., H, W) or fastMRI's (..., H, W, 2)."""
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(
            f"shape: expected the k-space shape (..., H, W) or fastMRI's (..., H, W, 2), got {shape!r}."
        ) from None
    if len(shape) >= 1 and shape[-1] == 2:
        if len(shape) < 3:
            raise ValueError(
                f"shape: a trailing axis of 2 is fastMRI's real / imaginary axis, so {shape} reads as "
                "fastMRI's (..., H, W, 2) layout, which needs at least 3 axes; expected (..., H, W) "
                "or (..., H, W, 2)."
            )
        num_cols = check_scalar("shape[-2] (W of (..., H, W, 2))", shape[-2], integer=True, at_least=2)
        return num_cols, (1,) * (len(shape) - 2) + (num_cols, 1)
    if len(shape) < 2:
        raise ValueError(
            f"shape: expected the k-space shape (..., H, W) with at least 2 axes, or fastMRI's "
            f"(..., H, W, 2), got {shape}."
        )
    num_cols = check_scalar("shape[-1] (W)", shape[-1], integer=True, at_least=2)
    return num_cols, (1, num_cols)


def _check_offset(offset) -> int | None:
    if offset is None:
        return None
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
        raise ValueError(
            f"offset: expected None or an int (the first outer column; the call is fastMRI's "
            f"mask_func(shape, offset=None, seed=None), so a seed must be passed as seed=...), "
            f"got {offset!r} ({type(offset).__name__})."
        )
    return int(offset)


def _outer_offset(rng: np.random.RandomState, offset: int | None, period: int, num_cols: int) -> int:
    """The offset of equispaced outer columns: drawn in [0, period) when None; a given one may be
    larger, as in fastMRI, but must leave a column to sample."""
    if offset is None:
        return int(rng.randint(0, high=period))
    if not 0 <= offset < num_cols:
        raise ValueError(
            f"offset: expected an int in [0, W={num_cols}) (drawn in [0, {period}) when not given), "
            f"got {offset}."
        )
    return offset


class RandomMaskFunc(MaskFunc):
    """Centre block + outer columns kept independently with probability p.

    p = (W / R - num_low) / (W - num_low), so the expected number of sampled
    columns is exactly W / R (the centre counts towards it). ``offset`` is ignored.
    """

    def calculate_acceleration_mask(self, num_cols, acceleration, offset, num_low_frequencies):
        prob = (num_cols / acceleration - num_low_frequencies) / (num_cols - num_low_frequencies)
        return self.rng.uniform(size=num_cols) < prob


class EquiSpacedMaskFunc(MaskFunc):
    """Centre block + every R-th column from an offset (drawn in [0, R) when not given).

    As in fastMRI the centre is added on top of the equispaced columns, so the
    realised acceleration is a little below R; accelerations must be integers.
    """

    _integer_accelerations = True

    def calculate_acceleration_mask(self, num_cols, acceleration, offset, num_low_frequencies):
        acceleration = int(acceleration)
        offset = _outer_offset(self.rng, offset, acceleration, num_cols)
        mask = np.zeros(num_cols, dtype=np.float32)
        mask[offset::acceleration] = 1.0
        return mask


#: the zoo's earlier name of ``EquiSpacedMaskFunc``
EquispacedMaskFunc = EquiSpacedMaskFunc


class EquispacedMaskFractionFunc(MaskFunc):
    """Centre block + columns equispaced with a fractional step chosen so that,
    counting the centre, W / R columns are sampled (up to rounding).

    The step is R (num_low - W) / (num_low R - W); outer columns are the
    rounded positions offset, offset + step, ... below W - 1 (offset drawn in [0, round(step))).
    """

    _centre_may_fill_budget = False

    def calculate_acceleration_mask(self, num_cols, acceleration, offset, num_low_frequencies):
        num_low = num_low_frequencies
        step = acceleration * (num_low - num_cols) / (num_low * acceleration - num_cols)
        offset = _outer_offset(self.rng, offset, max(round(step), 1), num_cols)
        mask = np.zeros(num_cols, dtype=np.float32)
        columns = np.around(np.arange(offset, num_cols - 1, step)).astype(np.int64)
        mask[columns] = 1.0
        return mask


class MagicMaskFunc(MaskFunc):
    """Offset sampling (Defazio 2019, arXiv:1912.01101): equispaced columns every R, on
    grids shifted against each other in the two halves of k-space, so that with
    conjugate symmetry the halves complete each other; centre block on top.

    Unshifted (DC at column 0), the ceil(W / 2) non-negative frequencies are sampled every R
    from o + 1 (even offset o) or o + 2 (odd), the floor(W / 2) negative ones, counted from
    the highest (-1, -2, ...), every R from o + 2 (even o) or o - 1 (odd); the mask is then
    fftshifted. offset o drawn in [0, R) when not given; accelerations must be integers.
    """

    _integer_accelerations = True

    def calculate_acceleration_mask(self, num_cols, acceleration, offset, num_low_frequencies):
        acceleration = int(acceleration)
        offset = _outer_offset(self.rng, offset, acceleration, num_cols)
        first_positive, first_negative = (offset + 1, offset + 2) if offset % 2 == 0 else (offset + 2, offset - 1)
        num_positive = (num_cols + 1) // 2
        positive = np.zeros(num_positive, dtype=np.float32)
        negative = np.zeros(num_cols - num_positive, dtype=np.float32)  # index m: frequency -(m + 1)
        positive[first_positive::acceleration] = 1.0
        negative[first_negative::acceleration] = 1.0
        return np.fft.fftshift(np.concatenate([positive, negative[::-1]]))


class MagicMaskFractionFunc(MagicMaskFunc):
    """``MagicMaskFunc`` whose step is chosen so that, counting the centre, about W / R
    columns are sampled: T = round(W / R) columns, of which num_low =
    min(max(round(W * center_fraction), 1), T) in the centre (bounded as fastMRI bounds it), the
    outer ones every round(W / (T - num_low)) columns. Accelerations may be fractional.
    """

    _integer_accelerations = False
    _centre_may_fill_budget = False

    def _centre_and_acceleration(self, num_cols, center_fraction, acceleration):
        target = int(round(num_cols / acceleration))
        num_low = max(min(int(round(num_cols * center_fraction)), target), 1)
        if target - num_low < 1:
            raise ValueError(
                f"shape: W={num_cols} columns is too small for center_fraction "
                f"{center_fraction:g} and acceleration {acceleration:g}: round(W / acceleration) = "
                f"{target} columns to sample leave none outside the {num_low} centre columns; "
                "expected at least one outer column."
            )
        return num_low, int(round(num_cols / (target - num_low)))


MASK_TYPES = {
    "random": RandomMaskFunc,
    "equispaced": EquiSpacedMaskFunc,
    "equispaced_fraction": EquispacedMaskFractionFunc,
    "magic": MagicMaskFunc,
    "magic_fraction": MagicMaskFractionFunc,
}


def create_mask_func(
    mask_type: str,
    center_fractions: float | Sequence[float],
    accelerations: float | Sequence[float],
    seed: Seed | None = None,
) -> MaskFunc:
    """Mask function by name (``MASK_TYPES``: "random", "equispaced", "equispaced_fraction",
    "magic", "magic_fraction"), its generator seeded with ``seed``."""
    if mask_type not in MASK_TYPES:
        raise ValueError(
            f"mask_type: expected one of {sorted(MASK_TYPES)}, got {mask_type!r}."
        )
    return MASK_TYPES[mask_type](center_fractions, accelerations, seed=seed)


def create_mask_for_mask_type(
    mask_type_str: str,
    center_fractions: float | Sequence[float],
    accelerations: float | Sequence[float],
) -> MaskFunc:
    """fastMRI's factory: ``create_mask_func`` without a seed."""
    return create_mask_func(mask_type_str, center_fractions, accelerations)


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
