"""Cartesian masks: fastMRI semantics against closed forms, reproducibility, bad input."""

import numpy as np
import pytest

from fastmri_zoo.sampling import (
    MASK_TYPES,
    EquispacedMaskFractionFunc,
    EquispacedMaskFunc,
    RandomMaskFunc,
    center_mask,
    create_mask_func,
    slice_seed,
    volume_seed,
)

# Widths of fastMRI knee / brain k-space and two odd ones.
WIDTHS = [320, 368, 372, 396, 640, 333]
CONFIGS = [(0.08, 4), (0.04, 8)]


def centre_columns(width, center_fraction):
    num_low = round(width * center_fraction)
    pad = (width - num_low + 1) // 2
    return num_low, np.arange(pad, pad + num_low)


@pytest.mark.parametrize("mask_type", sorted(MASK_TYPES))
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("center_fraction, acceleration", CONFIGS)
def test_mask_layout_and_fully_sampled_centre(mask_type, width, center_fraction, acceleration):
    mask_func = create_mask_func(mask_type, [center_fraction], [acceleration])
    for seed in range(5):
        mask, num_low = mask_func((2, 640, width), seed=seed)
        assert mask.shape == (1, width) and mask.dtype == np.float32
        assert set(np.unique(mask)) <= {0.0, 1.0}
        expected_num_low, columns = centre_columns(width, center_fraction)
        assert num_low == expected_num_low
        np.testing.assert_array_equal(mask[0, columns], 1.0)
        # The DC column of a centred FFT (index W // 2) lies inside the centre block.
        assert columns[0] <= width // 2 <= columns[-1]
    kspace = np.ones((3, 640, width), np.complex64)
    assert (kspace * mask).shape == (3, 640, width)


def test_center_mask_closed_form():
    for width in (7, 8, 320, 333):
        for num_low in (n for n in (0, 1, 2, 5, 26) if n <= width):
            mask = center_mask(width, num_low)
            ones = np.flatnonzero(mask)
            assert ones.size == num_low
            if num_low:
                # Same number of empty columns on both sides, one more on the left when odd.
                left, right = ones[0], width - 1 - ones[-1]
                assert left - right in (0, 1) and left == (width - num_low + 1) // 2


@pytest.mark.parametrize("width", [320, 368, 640])
@pytest.mark.parametrize("center_fraction, acceleration", CONFIGS)
def test_random_mask_expected_columns(width, center_fraction, acceleration):
    """Outer columns are kept independently with p = (W/R - n_low) / (W - n_low)."""
    mask_func = RandomMaskFunc([center_fraction], [acceleration])
    num_seeds = 200
    masks = np.stack([mask_func((640, width), seed=s)[0][0] for s in range(num_seeds)])
    num_low, columns = centre_columns(width, center_fraction)
    prob = (width / acceleration - num_low) / (width - num_low)
    outer = np.delete(masks, columns, axis=1)
    # Binomial mean over num_seeds * (W - n_low) draws, within 4 standard errors.
    stderr = np.sqrt(prob * (1 - prob) / outer.size)
    assert abs(outer.mean() - prob) < 4 * stderr
    # Every outer column has the same rate (no bias towards an edge): each column is
    # Binomial(200, p); the max over columns stays within 5 standard errors.
    column_rate = outer.mean(axis=0)
    assert np.abs(column_rate - prob).max() < 5 * np.sqrt(prob * (1 - prob) / num_seeds)
    # Expected total = n_low + (W - n_low) p = W / R: mean realised acceleration within 5%.
    realised = width / masks.sum(axis=1).mean()
    assert abs(realised / acceleration - 1) < 0.05


def test_random_mask_matches_fastmri_draw_order():
    """fastMRI draws the pair index with randint, then W uniforms, from one RandomState."""
    center_fractions, accelerations, width = [0.08, 0.04], [4, 8], 368
    mask_func = RandomMaskFunc(center_fractions, accelerations)
    for seed in [0, 1, 42, (1, 2, 3), volume_seed("file1000001.h5")]:
        rng = np.random.RandomState(seed)
        choice = rng.randint(len(accelerations))
        num_low, columns = centre_columns(width, center_fractions[choice])
        prob = (width / accelerations[choice] - num_low) / (width - num_low)
        expected = (rng.uniform(size=width) < prob).astype(np.float32)
        expected[columns] = 1.0
        mask, got_num_low = mask_func((15, 640, width), seed=seed)
        assert got_num_low == num_low
        np.testing.assert_array_equal(mask[0], expected)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("acceleration", [2, 4, 8])
def test_equispaced_spacing(width, acceleration):
    mask_func = EquispacedMaskFunc([0.04], [acceleration])
    num_low, columns = centre_columns(width, 0.04)
    offsets = set()
    for seed in range(20):
        mask = mask_func((640, width), seed=seed)[0][0]
        outer = np.setdiff1d(np.flatnonzero(mask), columns)
        offset = outer[0] % acceleration
        offsets.add(offset)
        # Exactly the columns offset, offset + R, offset + 2R, ... outside the centre.
        expected = np.setdiff1d(np.arange(offset, width, acceleration), columns)
        np.testing.assert_array_equal(outer, expected)
    # Offsets are drawn from [0, R) and 20 draws visit more than one of them.
    assert offsets <= set(range(acceleration)) and len(offsets) > 1
    explicit = mask_func((640, width), offset=1)[0][0]
    np.testing.assert_array_equal(
        np.setdiff1d(np.flatnonzero(explicit), columns),
        np.setdiff1d(np.arange(1, width, acceleration), columns),
    )


@pytest.mark.parametrize("center_fraction, acceleration", CONFIGS)
def test_equispaced_fraction_hits_acceleration(center_fraction, acceleration):
    mask_func = EquispacedMaskFractionFunc([center_fraction], [acceleration])
    for width in range(256, 700, 7):
        num_low, columns = centre_columns(width, center_fraction)
        step = acceleration * (num_low - width) / (num_low * acceleration - width)
        for seed in range(4):
            mask = mask_func((640, width), seed=seed)[0][0]
            # Counting the centre, W / R columns up to the rounding of the positions.
            assert abs(mask.sum() - width / acceleration) < 2
            if width in WIDTHS or width % 5 == 0:
                assert abs(width / mask.sum() / acceleration - 1) < 0.05
            # Outer positions are rounded multiples of the fractional step.
            outer = np.setdiff1d(np.flatnonzero(mask), columns)
            gaps = np.diff(outer)
            gaps = gaps[gaps < step + 1.5]  # gaps across the centre block are longer
            assert set(gaps) <= {int(np.floor(step)), int(np.ceil(step))}
    for width in WIDTHS:
        mask = mask_func((640, width), seed=0)[0][0]
        assert abs(width / mask.sum() / acceleration - 1) < 0.05


@pytest.mark.parametrize("mask_type", sorted(MASK_TYPES))
def test_seeded_masks_reproducible_and_distinct(mask_type):
    shape = (640, 368)
    mask_func = create_mask_func(mask_type, [0.08, 0.04], [4, 8])
    other = create_mask_func(mask_type, [0.08, 0.04], [4, 8])
    for seed in [0, 7, (3, 4), volume_seed("file_brain_AXT2_200_2000019.h5")]:
        a, n_a = mask_func(shape, seed=seed)
        b, n_b = other(shape, seed=seed)
        np.testing.assert_array_equal(a, b)
        assert n_a == n_b
    masks = {mask_func(shape, seed=s)[0].tobytes() for s in range(30)}
    # Equispaced masks have only (2 configs x R offsets) variants; random ones are all distinct.
    assert len(masks) == 30 if mask_type == "random" else len(masks) > 4


def test_call_seed_leaves_own_stream_untouched():
    shape = (640, 320)
    a = RandomMaskFunc([0.08, 0.04], [4, 8], seed=3)
    b = RandomMaskFunc([0.08, 0.04], [4, 8], seed=3)
    a(shape, seed=99)
    for _ in range(3):
        np.testing.assert_array_equal(a(shape)[0], b(shape)[0])
    # Unseeded calls advance the stream: consecutive masks differ.
    assert not np.array_equal(a(shape)[0], a(shape)[0])


def test_pairs_chosen_at_random():
    mask_func = RandomMaskFunc([0.08, 0.04], [4, 8], seed=0)
    width = 320
    num_lows = [mask_func((640, width))[1] for _ in range(400)]
    low_4, low_8 = round(width * 0.08), round(width * 0.04)
    assert set(num_lows) == {low_4, low_8}
    # Binomial(400, 1/2): 4 standard deviations = 40.
    assert abs(num_lows.count(low_4) - 200) < 40


def test_volume_and_slice_seeds():
    name = "file1000031.h5"
    assert volume_seed(name) == tuple(ord(c) for c in name)
    assert volume_seed("/data/knee/val/" + name) == volume_seed(name)
    seeds = {volume_seed(f"file{i}.h5") for i in range(50)}
    seeds |= {volume_seed(name, seed=s) for s in range(1, 50)}
    seeds |= {slice_seed(name, z, seed=s) for z in range(40) for s in range(3)}
    assert len(seeds) == 50 + 49 + 120
    # "ab" with seed ord("d") must not collide with "abd".
    assert volume_seed("ab", seed=ord("d")) != volume_seed("abd")
    mask_func = RandomMaskFunc([0.08], [4])
    masks = [mask_func((640, 368), seed=slice_seed(name, z))[0] for z in range(10)]
    assert len({m.tobytes() for m in masks}) == 10
    again = mask_func((640, 368), seed=slice_seed(name, 3))[0]
    np.testing.assert_array_equal(again, masks[3])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(center_fractions=[0.08], accelerations=[1]), "accelerations"),
        (dict(center_fractions=[0.08], accelerations=[0.5]), "accelerations"),
        (dict(center_fractions=[0.0], accelerations=[4]), "center_fractions"),
        (dict(center_fractions=[1.0], accelerations=[4]), "center_fractions"),
        (dict(center_fractions=[-0.1], accelerations=[4]), "center_fractions"),
        (dict(center_fractions=[0.08, 0.04], accelerations=[4]), "same length"),
        (dict(center_fractions=[], accelerations=[]), "center_fractions"),
        (dict(center_fractions=[0.3], accelerations=[4]), "center_fraction \\* acceleration"),
        (dict(center_fractions=[0.08], accelerations=[4], seed=-1), "seed"),
        (dict(center_fractions=[0.08], accelerations=[4], seed=1.5), "seed"),
    ],
)
@pytest.mark.parametrize("mask_type", sorted(MASK_TYPES))
def test_bad_parameters(mask_type, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_mask_func(mask_type, **kwargs)


def test_bad_calls():
    mask_func = RandomMaskFunc([0.08], [4])
    with pytest.raises(ValueError, match="W=5 columns is too small"):
        mask_func((640, 5))  # round(5 * 0.08) = 0 centre columns
    with pytest.raises(ValueError, match="shape"):
        mask_func((368,))
    with pytest.raises(ValueError, match="seed"):
        mask_func((640, 368), seed="abc")
    with pytest.raises(ValueError, match="too small"):
        # round(8 * 0.2) = 2 centre columns but W / R = 1.78 columns to sample
        RandomMaskFunc([0.2], [4.5])((640, 8))
    with pytest.raises(ValueError, match="whole number"):
        EquispacedMaskFunc([0.08], [4.5])
    # An offset past the last column would sample no outer column (fastMRI allows any other).
    with pytest.raises(ValueError, match=r"offset: expected an int in \[0, W=368\).*got 368"):
        EquispacedMaskFunc([0.08], [4])((640, 368), offset=368)
    with pytest.raises(ValueError, match="offset.*got -1"):
        EquispacedMaskFunc([0.08], [4])((640, 368), offset=-1)
    # fastMRI's call order is (shape, offset, seed): a tuple seed in the offset place is refused.
    with pytest.raises(ValueError, match="offset: expected None or an int.*seed="):
        RandomMaskFunc([0.08], [4])((640, 368), volume_seed("file1.h5"))
    # ... and its constructor's third argument is allow_any_combination, not the seed.
    with pytest.raises(ValueError, match="allow_any_combination: expected a bool, got 3.*seed="):
        RandomMaskFunc([0.08], [4], 3)
    with pytest.raises(ValueError, match=r"shape: a trailing axis of 2 is fastMRI's real / imaginary.*\(368, 2\)"):
        mask_func((368, 2))
    with pytest.raises(ValueError, match="random.*equispaced.*equispaced_fraction|mask_type"):
        create_mask_func("poisson", [0.08], [4])
    try:
        create_mask_func("poisson", [0.08], [4])
    except ValueError as error:
        for name in MASK_TYPES:
            assert repr(name) in str(error)
    with pytest.raises(ValueError, match="filename"):
        volume_seed(1234)
    with pytest.raises(ValueError, match="slice_index"):
        slice_seed("file.h5", -1)
