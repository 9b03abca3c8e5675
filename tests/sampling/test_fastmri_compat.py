"""fastMRI compatibility of the mask functions: same names, same signatures, same masks.

The reference is a transcription, written here, of what fastMRI documents for
``fastmri.data.subsample`` (class docstrings, argument descriptions, the arXiv paper of the
magic masks): it is not fastMRI's code and the tests do not import fastMRI. It states each mask
as a set of sampled columns (the magic masks as sets of signed frequencies), so it shares no
array manipulation with the zoo's implementation. What it transcribes:

- ``MaskFunc(center_fractions, accelerations, allow_any_combination=False, seed=None)`` owns a
  ``numpy.random.RandomState(seed)``; ``mask_func(shape, offset=None, seed=None)`` reads the
  k-space shape as (..., H, W, 2) (W = shape[-2]), re-seeds the generator with ``seed`` for the
  call only, and returns the mask shaped (1, ..., 1, W, 1) with ``num_low_frequencies``.
- A call first picks the centre fraction and acceleration: the pair ``rng.randint(len)`` or, with
  ``allow_any_combination``, ``rng.choice`` of the centre fractions then of the accelerations.
- ``num_low_frequencies = round(W * center_fraction)`` centre columns, from
  ``(W - num_low_frequencies + 1) // 2`` on.
- random: each column is kept when its ``rng.uniform`` draw (W draws) is below
  (W / R - num_low) / (W - num_low); equispaced: columns offset, offset + R, ... with offset
  ``rng.randint(0, R)`` when not given; equispaced_fraction: the positions
  ``numpy.arange(offset, W - 1, step)`` rounded half to even, step = R (num_low - W) / (num_low R - W), offset
  ``rng.randint(0, round(step))``; magic (Defazio 2019): offset o drawn in [0, R), frequencies
  o + 1 + k R (o even) or o + 2 + k R (o odd) among the ceil(W / 2) non-negative ones, and
  -(o + 3 + k R) (o even) or -(o + k R) (o odd) among the floor(W / 2) negative ones;
  magic_fraction: T = round(W / R) columns, num_low bounded to [1, T], and the magic pattern at
  acceleration round(W / (T - num_low)).
"""

import math

import numpy as np
import pytest

from fastmri_zoo.sampling import (
    MASK_TYPES,
    EquispacedMaskFractionFunc,
    EquiSpacedMaskFunc,
    EquispacedMaskFunc,
    MagicMaskFractionFunc,
    MagicMaskFunc,
    MaskFunc,
    RandomMaskFunc,
    create_mask_for_mask_type,
    create_mask_func,
    volume_seed,
)

CLASSES = {
    "random": RandomMaskFunc,
    "equispaced": EquiSpacedMaskFunc,
    "equispaced_fraction": EquispacedMaskFractionFunc,
    "magic": MagicMaskFunc,
    "magic_fraction": MagicMaskFractionFunc,
}


class FastMRITranscription:
    """fastMRI's documented mask semantics; masks for fastMRI's k-space shape (..., H, W, 2)."""

    def __init__(self, kind, center_fractions, accelerations, allow_any_combination=False, seed=None):
        self.kind = kind
        self.center_fractions = list(center_fractions)
        self.accelerations = list(accelerations)
        self.allow_any_combination = allow_any_combination
        self.rng = np.random.RandomState(seed)

    def __call__(self, shape, offset=None, seed=None):
        width = shape[-2]
        saved = None
        if seed is not None:
            saved = self.rng.get_state()
            self.rng.seed(seed)
        try:
            columns, num_low = self.sampled_columns(width, offset)
        finally:
            if saved is not None:
                self.rng.set_state(saved)
        mask = np.zeros(width, np.float32)
        mask[sorted(columns)] = 1.0
        return mask.reshape((1,) * (len(shape) - 2) + (width, 1)), num_low

    def sampled_columns(self, width, offset):
        if self.allow_any_combination:
            center_fraction = self.rng.choice(self.center_fractions)
            acceleration = self.rng.choice(self.accelerations)
        else:
            pair = self.rng.randint(len(self.center_fractions))
            center_fraction, acceleration = self.center_fractions[pair], self.accelerations[pair]
        num_low = round(width * center_fraction)
        outer_acceleration = acceleration
        if self.kind == "magic_fraction":
            target = round(width / acceleration)
            num_low = max(min(num_low, target), 1)
            outer_acceleration = round(width / (target - num_low))
        start = (width - num_low + 1) // 2
        centre = set(range(start, start + num_low))
        return centre | self.outer_columns(width, outer_acceleration, offset, num_low), num_low

    def outer_columns(self, width, acceleration, offset, num_low):
        rng = self.rng
        if self.kind == "random":
            keep = (width / acceleration - num_low) / (width - num_low)
            draws = rng.uniform(size=width)
            return {column for column in range(width) if draws[column] < keep}
        if self.kind == "equispaced":
            offset = rng.randint(0, round(acceleration)) if offset is None else offset
            return set(range(offset, width, acceleration))
        if self.kind == "equispaced_fraction":
            step = acceleration * (num_low - width) / (num_low * acceleration - width)
            offset = rng.randint(0, round(step)) if offset is None else offset
            # fastMRI's positions are numpy.arange(offset, W - 1, step): ceil((W - 1 - offset) / step)
            # values offset + k delta, delta the spacing of the first two, (offset + step) - offset,
            # which may differ from step in the last bit (it decides positions k delta + 0.5).
            count = math.ceil((width - 1 - offset) / step)
            delta = (offset + step) - offset
            return {round(offset + k * delta) for k in range(count)}
        # magic, magic_fraction: signed frequencies; frequency f sits in column W // 2 + f.
        offset = rng.randint(0, acceleration) if offset is None else offset
        if offset % 2 == 0:
            first_positive, first_negative = offset + 1, offset + 3
        else:
            first_positive, first_negative = offset + 2, offset
        positive = range(first_positive, (width + 1) // 2, acceleration)
        negative = range(first_negative, width // 2 + 1, acceleration)  # the magnitudes -f
        return {width // 2 + f for f in positive} | {width // 2 - f for f in negative}


# fastMRI's shapes (..., H, W, 2) and the zoo's (..., H, W); knee, brain and odd widths.
SHAPES = [(1, 640, 368, 2), (15, 640, 372, 2), (640, 320, 2), (1, 218, 170, 2), (2, 640, 333), (640, 396)]
CONFIGS = [
    ([0.08], [4], False),
    ([0.08, 0.04], [4, 8], False),
    ([0.08, 0.04], [4, 8, 2], True),  # lists of different lengths: only with allow_any_combination
]
FRACTIONAL_CONFIGS = [([0.1, 0.06], [3.5, 6.4], False), ([0.1], [2.5, 5.2], True)]
CALL_SEEDS = [None, 3, (1, 2, 3), volume_seed("file1000001.h5"), None, 0]
OFFSETS = [None, 0, 1, 5]  # 5 >= R for R = 4 and 2: fastMRI takes any offset


def fastmri_shape(shape):
    """The fastMRI-layout shape of the same k-space (a trailing real / imaginary axis)."""
    return shape if shape[-1] == 2 else shape + (2,)


def zoo_mask_shape(shape):
    width = shape[-2] if shape[-1] == 2 else shape[-1]
    return (1,) * (len(shape) - 2) + (width, 1) if shape[-1] == 2 else (1, width)


def cases():
    for kind in CLASSES:
        fractional = kind in ("random", "equispaced_fraction", "magic_fraction")
        for config in CONFIGS + (FRACTIONAL_CONFIGS if fractional else []):
            yield kind, config


@pytest.mark.parametrize("kind, config", list(cases()))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", [0, 42])
def test_identical_masks_for_the_same_positional_arguments(kind, config, shape, seed):
    center_fractions, accelerations, allow_any_combination = config
    zoo = CLASSES[kind](center_fractions, accelerations, allow_any_combination, seed)
    reference = FastMRITranscription(kind, center_fractions, accelerations, allow_any_combination, seed)
    # Seeded and unseeded calls interleaved: a seeded call must leave the function's own stream
    # where it was, so the unseeded ones stay in step with the reference too.
    for offset in OFFSETS:
        for call_seed in CALL_SEEDS:
            mask, num_low = zoo(shape, offset, call_seed)
            expected, expected_num_low = reference(fastmri_shape(shape), offset, call_seed)
            assert isinstance(num_low, int) and num_low == expected_num_low
            assert mask.dtype == np.float32 and mask.shape == zoo_mask_shape(shape)
            np.testing.assert_array_equal(mask.ravel(), expected.ravel())


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_keyword_arguments_and_factories(kind):
    shape = (1, 640, 368, 2)
    mask_func = CLASSES[kind](
        center_fractions=[0.08, 0.04], accelerations=[4, 8], allow_any_combination=True, seed=5
    )
    reference = FastMRITranscription(kind, [0.08, 0.04], [4, 8], allow_any_combination=True, seed=5)
    for offset, seed in [(None, None), (2, None), (None, 17), (1, (4, 5))]:
        mask, num_low = mask_func(shape=shape, offset=offset, seed=seed)
        expected, expected_num_low = reference(shape, offset, seed)
        assert num_low == expected_num_low
        np.testing.assert_array_equal(mask, expected)
    # The zoo's factory: the generator seeded by its seed argument.
    from_zoo_factory = create_mask_func(kind, [0.08, 0.04], [4, 8], seed=5)
    assert type(from_zoo_factory) is CLASSES[kind] and not from_zoo_factory.allow_any_combination
    reference = FastMRITranscription(kind, [0.08, 0.04], [4, 8], seed=5)
    for _ in range(3):
        np.testing.assert_array_equal(from_zoo_factory(shape)[0], reference(shape)[0])
    # fastMRI's factory takes no seed (its generator is unseeded): compare seeded calls.
    from_factory = create_mask_for_mask_type(kind, [0.08], [4])
    assert type(from_factory) is CLASSES[kind] and isinstance(from_factory, MaskFunc)
    assert from_factory.seed is None
    expected, _ = FastMRITranscription(kind, [0.08], [4])(shape, None, 123)
    np.testing.assert_array_equal(from_factory(shape, None, 123)[0], expected)


def test_names_and_aliases():
    assert EquispacedMaskFunc is EquiSpacedMaskFunc  # the zoo's earlier spelling
    assert {name: MASK_TYPES[name] for name in CLASSES} == CLASSES
    names = r"\['equispaced', 'equispaced_fraction', 'magic', 'magic_fraction', 'random'\]"
    with pytest.raises(ValueError, match=rf"mask_type: expected one of {names}, got 'poisson'"):
        create_mask_for_mask_type("poisson", [0.08], [4])


def test_fastmri_shape_with_real_imaginary_axis():
    """(..., H, W, 2) is fastMRI's k-space: W is shape[-2], not the 2 of the last axis."""
    kspace = np.ones((15, 640, 368, 2), np.float32)
    mask, num_low = RandomMaskFunc([0.08], [4])(kspace.shape, seed=0)
    assert mask.shape == (1, 1, 368, 1) and num_low == round(368 * 0.08)
    assert (kspace * mask).shape == kspace.shape
    # The same columns as for the zoo's layout of that k-space (15, 640, 368).
    zoo_mask, _ = RandomMaskFunc([0.08], [4])((15, 640, 368), seed=0)
    assert zoo_mask.shape == (1, 368)
    np.testing.assert_array_equal(mask[0, 0, :, 0], zoo_mask[0])


def test_second_positional_argument_is_the_offset():
    """fastMRI code ``EquiSpacedMaskFunc([.08], [4])(shape, 3)`` asks for offset 3, not seed 3."""
    shape = (1, 640, 368, 2)
    mask, num_low = EquispacedMaskFunc([0.08], [4])(shape, 3)
    centre_start = (368 - num_low + 1) // 2
    expected = np.zeros(368, np.float32)
    expected[3::4] = 1.0
    expected[centre_start : centre_start + num_low] = 1.0
    np.testing.assert_array_equal(mask.ravel(), expected)
    expected_reference, _ = FastMRITranscription("equispaced", [0.08], [4])(shape, 3)
    np.testing.assert_array_equal(mask, expected_reference)
