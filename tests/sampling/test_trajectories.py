"""Non-Cartesian trajectories: geometry against closed forms, acceleration, the layout the
NUFFT reads, bad input."""

import numpy as np
import pytest

from fastmri_zoo.physics import NUFFT
from fastmri_zoo.sampling import (
    GOLDEN_ANGLE,
    kooshball_trajectory,
    radial_trajectory,
    spiral_trajectory,
    trajectory_acceleration,
)

SIZES = [128, 256, 320, 384]
ACCELERATIONS = [2, 4, 6, 8, 10, 16]


def assert_in_pi_range(traj):
    assert traj.dtype == np.float32
    assert np.isfinite(traj).all()
    # Compared in float64: float32(pi) itself would be outside.
    assert np.abs(traj.astype(np.float64)).max() <= np.pi


def assert_diameters_through_origin(traj, centre_index):
    """Every sample of a shot lies on the line through the origin and the shot's first sample
    (at radius (S // 2) 2 pi / S, never the origin)."""
    direction = -traj[:, :, 0].astype(np.float64)
    direction /= np.linalg.norm(direction, axis=0)
    points = traj.astype(np.float64)
    along = np.einsum("ds,dsj->sj", direction, points)
    residual = points - direction[:, :, None] * along[None]
    assert np.abs(residual).max() < 1e-5
    np.testing.assert_array_equal(traj[:, :, centre_index], 0.0)


@pytest.mark.parametrize("golden_angle", [False, True])
@pytest.mark.parametrize("samples_per_shot", [None, 101, 2])
def test_radial_geometry(golden_angle, samples_per_shot):
    size, acceleration = 256, 4
    traj = radial_trajectory(size, acceleration, golden_angle, samples_per_shot=samples_per_shot)
    samples = samples_per_shot or 2 * size
    num_shots = round(size / acceleration)
    assert traj.shape == (2, num_shots * samples)  # the NUFFT's (ndim, nsamples), spoke by spoke
    traj = traj.reshape(2, num_shots, samples)
    assert_in_pi_range(traj)
    assert_diameters_through_origin(traj, samples // 2)
    # Equispaced radii (j - S//2) 2 pi / S along the spoke, signed by the spoke direction.
    angles = np.arctan2(-traj[0, :, 0], -traj[1, :, 0]).astype(np.float64)
    radii = traj[0] * np.sin(angles)[:, None] + traj[1] * np.cos(angles)[:, None]
    expected = (np.arange(samples) - samples // 2) * 2 * np.pi / samples
    np.testing.assert_allclose(radii, np.broadcast_to(expected, radii.shape), atol=1e-6)
    if samples % 2 == 0:  # spans [-pi, pi)
        assert radii.min() == pytest.approx(-np.pi, abs=1e-6)
    angles = np.mod(angles, np.pi)
    if golden_angle:
        increments = np.mod(np.diff(angles), np.pi)
        np.testing.assert_allclose(increments, np.deg2rad(111.24611797), atol=1e-5)
    else:
        np.testing.assert_allclose(angles, np.pi * np.arange(num_shots) / num_shots, atol=1e-5)


def test_golden_angle_value():
    assert np.rad2deg(GOLDEN_ANGLE) == pytest.approx(180 * (np.sqrt(5) - 1) / 2)
    assert np.rad2deg(GOLDEN_ANGLE) == pytest.approx(111.246, abs=1e-3)


@pytest.mark.parametrize("generator", [radial_trajectory, spiral_trajectory])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("acceleration", ACCELERATIONS)
def test_2d_realised_acceleration(generator, size, acceleration):
    traj = generator(size, acceleration, samples_per_shot=16)
    assert traj.shape == (2, round(size / acceleration) * 16)
    realised = trajectory_acceleration(traj, size, 16)
    assert realised == size / round(size / acceleration)
    assert trajectory_acceleration(traj, (size // 2, size), 16) == realised
    assert abs(realised / acceleration - 1) < 0.05


@pytest.mark.parametrize("density_exponent", [1.0, 1.5, 2.0])
def test_spiral_geometry(density_exponent):
    size, acceleration = 256, 8
    traj = spiral_trajectory(size, acceleration, density_exponent=density_exponent)
    num_shots, samples = round(size / acceleration), 2 * size
    assert traj.shape == (2, num_shots * samples)
    traj = traj.reshape(2, num_shots, samples)
    assert_in_pi_range(traj)
    # Every interleave starts at the origin and ends at radius pi.
    np.testing.assert_array_equal(traj[:, :, 0], 0.0)
    radius = np.hypot(traj[0].astype(np.float64), traj[1].astype(np.float64))
    np.testing.assert_allclose(radius[:, -1], np.pi, atol=1e-6)
    assert (np.diff(radius, axis=1) > 0).all()  # moves outwards
    # Interleave k is interleave 0 rotated by 2 pi k / num_shots.
    angle = 2 * np.pi * np.arange(num_shots) / num_shots
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    kh0, kw0 = traj[0, 0].astype(np.float64), traj[1, 0].astype(np.float64)
    np.testing.assert_allclose(traj[0], sin * kw0 + cos * kh0, atol=2e-6)
    np.testing.assert_allclose(traj[1], cos * kw0 - sin * kh0, atol=2e-6)
    # Default number of turns p / 2: from t = 1/(S-1) (sample 0 is the origin, angle
    # undefined) to t = 1 the unwrapped phase sweeps 2 pi (p / 2) (1 - 1/(S-1)).
    phase = np.unwrap(np.arctan2(traj[0, 0, 1:], traj[1, 0, 1:]).astype(np.float64))
    expected_sweep = np.pi * density_exponent * (1 - 1 / (samples - 1))
    assert phase[-1] - phase[0] == pytest.approx(expected_sweep, abs=1e-5)


@pytest.mark.parametrize("density_exponent", [1.0, 1.5, 2.0])
def test_spiral_density_decreases_with_radius(density_exponent):
    traj = spiral_trajectory(256, 4, density_exponent=density_exponent)
    radius = np.hypot(traj[0].astype(np.float64), traj[1].astype(np.float64)).ravel()
    edges = np.linspace(0, np.pi, 9)
    edges[-1] += 1e-6
    counts = np.histogram(radius, edges)[0]
    density = counts / (np.pi * np.diff(edges**2))
    assert (np.diff(density) < 0).all()
    # Closed form: t = (r / pi)**(1/p) is uniform, so an annulus holds the fraction
    # (b/pi)**(1/p) - (a/pi)**(1/p) of the samples (up to one sample per shot per edge).
    fractions = np.diff((np.minimum(edges, np.pi) / np.pi) ** (1 / density_exponent))
    samples_per_shot = 2 * 256
    np.testing.assert_allclose(counts / radius.size, fractions, atol=2 / samples_per_shot)


@pytest.mark.parametrize("samples_per_shot", [None, 65])
def test_kooshball_geometry(samples_per_shot):
    volume_shape, acceleration = (32, 48, 64), 8
    traj = kooshball_trajectory(volume_shape, acceleration, samples_per_shot=samples_per_shot)
    num_shots = round(32 * 64 / acceleration)
    samples = samples_per_shot or 2 * 64
    assert traj.shape == (3, num_shots * samples)
    traj = traj.reshape(3, num_shots, samples)
    assert_in_pi_range(traj)
    assert_diameters_through_origin(traj, samples // 2)
    radius = np.linalg.norm(traj.astype(np.float64), axis=0)
    expected = np.abs(np.arange(samples) - samples // 2) * 2 * np.pi / samples
    np.testing.assert_allclose(radius, np.broadcast_to(expected, radius.shape), atol=1e-6)


@pytest.mark.parametrize("volume_shape", [(8, 32, 32), (32, 64, 64), (64, 128, 128), (20, 40, 50)])
@pytest.mark.parametrize("acceleration", [4, 8, 16])
def test_kooshball_directions_uniform(volume_shape, acceleration):
    """Uniform directions on the sphere have E|cos| = 1/2 and E cos^2 = 1/3 to every axis.

    Tolerance 1/M (M spokes): a Fibonacci lattice integrates such smooth functions with
    O(1/M) error (measured <= 0.35/M for M = 8 .. 4096), whereas M i.i.d. uniform
    directions would miss E|cos| by 0.29/sqrt(M) on average (7x more at M = 128) and a
    lattice uniform in polar angle instead of its cosine would give 2/pi = 0.64 on k_D.
    """
    flat = kooshball_trajectory(volume_shape, acceleration, samples_per_shot=8)
    traj = flat.reshape(3, -1, 8)
    directions = -traj[:, :, 0].astype(np.float64)
    directions /= np.linalg.norm(directions, axis=0)
    num_shots = directions.shape[1]
    assert num_shots == round(volume_shape[0] * volume_shape[2] / acceleration)
    tolerance = 1.0 / num_shots
    np.testing.assert_allclose(np.abs(directions).mean(axis=1), 0.5, atol=tolerance)
    np.testing.assert_allclose((directions**2).mean(axis=1), 1 / 3, atol=tolerance)
    # The same statistic on a polar-angle-uniform hemisphere fails this tolerance.
    polar = (np.arange(num_shots) + 0.5) / num_shots * np.pi / 2
    assert abs(np.cos(polar).mean() - 0.5) > 2 * tolerance

    # Even spread, not only the right moments: each spoke owns a patch of area 2 pi / M of
    # the hemisphere, of side sqrt(2 pi / M). The smallest angle between two spoke lines is
    # measured at 0.52-0.66 of that side for M = 16 .. 4096; a lattice with a poor azimuth
    # step (0.5 rad) gives 0.39 and i.i.d. random directions 0.01-0.15.
    line_cos = np.abs(directions.T @ directions)
    np.fill_diagonal(line_cos, 0.0)
    min_angle = np.arccos(np.clip(line_cos.max(), -1.0, 1.0))
    assert min_angle > 0.45 * np.sqrt(2 * np.pi / num_shots)

    realised = trajectory_acceleration(flat, volume_shape, 8)
    assert realised == volume_shape[0] * volume_shape[2] / num_shots
    assert abs(realised / acceleration - 1) < 0.05


def test_trajectories_are_deterministic():
    for make in (
        lambda: radial_trajectory(128, 4, golden_angle=True),
        lambda: spiral_trajectory(128, 4),
        lambda: kooshball_trajectory((16, 32, 32), 4),
    ):
        np.testing.assert_array_equal(make(), make())


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: radial_trajectory(256, 0), "acceleration"),
        (lambda: radial_trajectory(256, -2), "acceleration"),
        (lambda: radial_trajectory(256, 600), "acceleration"),
        (lambda: radial_trajectory(1, 2), "image_size"),
        (lambda: radial_trajectory(256.5, 2), "image_size"),
        (lambda: radial_trajectory(256, 4, oversampling=0), "oversampling"),
        (lambda: radial_trajectory(256, 4, samples_per_shot=1), "samples_per_shot"),
        (lambda: spiral_trajectory(256, 0), "acceleration"),
        (lambda: spiral_trajectory(1, 4), "image_size"),
        (lambda: spiral_trajectory(256, 4, density_exponent=0), "density_exponent"),
        (lambda: spiral_trajectory(256, 4, num_turns=-1), "num_turns"),
        (lambda: kooshball_trajectory((32, 64), 4), "volume_shape"),
        (lambda: kooshball_trajectory(64, 4), "volume_shape"),
        (lambda: kooshball_trajectory((1, 64, 64), 4), "volume_shape"),
        (lambda: kooshball_trajectory((32, 64, 64), 0), "acceleration"),
        (lambda: trajectory_acceleration(np.zeros((2, 80)), (8, 64, 64), 8), "traj: expected 3 coordinates"),
        (lambda: trajectory_acceleration(np.zeros((3, 80)), 64, 8), "traj: expected 2 coordinates"),
        (lambda: trajectory_acceleration(np.zeros((2, 80)), (1, 2, 3, 4), 8), "image_size"),
        (lambda: trajectory_acceleration(np.zeros((2, 80)), 64, 7), "samples_per_shot: expected a divisor"),
        (lambda: trajectory_acceleration(np.zeros((2, 80)), 64, 0), "samples_per_shot"),
        (lambda: trajectory_acceleration(np.zeros(80), 64, 8), r"traj: expected the generators' layout"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("shape", [(2, 10, 8), (3, 10, 8)])
def test_acceleration_refuses_split_or_batched_trajectories(shape):
    with pytest.raises(ValueError, match=r"traj: expected the generators' layout \(ndim, nsamples\), got shape "
                       + repr(shape).replace("(", r"\(").replace(")", r"\)") + r".*traj.reshape\(ndim, -1\)"):
        trajectory_acceleration(np.zeros(shape), 64, 8)


def ndft(traj, image):
    """Dense NUFFT reference y_j = N^(-1/2) sum_n x_n exp(-i k_j . (n - shape // 2)), float64."""
    grid = np.meshgrid(*[np.arange(n) - n // 2 for n in image.shape], indexing="ij")
    positions = np.stack([g.ravel() for g in grid])  # (ndim, N)
    phases = traj.astype(np.float64).T @ positions  # (nsamples, N)
    return np.exp(-1j * phases) @ image.ravel() / np.sqrt(image.size)


def test_nufft_reads_generator_output_when_shots_equal_ndim():
    """radial_trajectory(32, 16) has 2 spokes in 2D: once a (2, 2, 64) array the NUFFT took as a
    batch of two 64-sample trajectories; now one 128-sample trajectory, read as such."""
    traj = radial_trajectory(32, 16)
    assert traj.shape == (2, 2 * 64)
    operator = NUFFT(traj, (32, 32))
    assert tuple(operator.traj.shape) == (1, 2, 128)
    rng = np.random.default_rng(0)
    image = (rng.standard_normal((32, 32)) + 1j * rng.standard_normal((32, 32))).astype(np.complex64)
    kspace = operator.forward(image[None]).numpy()
    assert kspace.shape == (1, 128)
    expected = ndft(traj, image)
    assert np.linalg.norm(kspace[0] - expected) / np.linalg.norm(expected) < 1e-3


def test_nufft_reads_kooshball_output_when_shots_equal_ndim():
    traj = kooshball_trajectory((8, 8, 8), 64 / 3, samples_per_shot=16)  # 3 spokes in 3D
    assert traj.shape == (3, 3 * 16)
    operator = NUFFT(traj, (8, 8, 8))
    rng = np.random.default_rng(1)
    volume = (rng.standard_normal((8, 8, 8)) + 1j * rng.standard_normal((8, 8, 8))).astype(np.complex64)
    kspace = operator.forward(volume[None]).numpy()
    expected = ndft(traj, volume)
    assert kspace.shape == (1, 48)
    assert np.linalg.norm(kspace[0] - expected) / np.linalg.norm(expected) < 1e-3


@pytest.mark.parametrize(
    "traj, image_shape",
    [
        (radial_trajectory(32, 8).reshape(2, 4, 64), (32, 32)),
        (spiral_trajectory(32, 4, samples_per_shot=20).reshape(2, 8, 20), (32, 32)),
        (kooshball_trajectory((8, 8, 8), 16, samples_per_shot=16).reshape(3, 4, 16), (8, 8, 8)),
    ],
)
def test_nufft_refuses_shot_split_layout_naming_it(traj, image_shape):
    ndim = len(image_shape)
    shape = repr(traj.shape).replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(
        ValueError,
        match=rf"traj: expected \(ndim, nsamples\) or \(batch, ndim, nsamples\) with ndim = {ndim} .*got shape "
        rf"{shape}; a trajectory split into shots, \(ndim, num_shots, samples_per_shot\) = {shape}, is flattened "
        rf"shot by shot with traj.reshape\({ndim}, -1\)",
    ):
        NUFFT(traj, image_shape)
    # Flattened as the message says, it is the generator's output again and is accepted.
    assert tuple(NUFFT(traj.reshape(ndim, -1), image_shape).traj.shape) == (1, ndim, traj.shape[1] * traj.shape[2])


def test_nufft_refuses_transposed_trajectory_naming_it():
    traj = radial_trajectory(32, 8).T  # (nsamples, 2)
    message = r"got shape \(256, 2\); a trajectory stored as \(nsamples, ndim\) is transposed"
    with pytest.raises(ValueError, match=message):
        NUFFT(traj, (32, 32))
