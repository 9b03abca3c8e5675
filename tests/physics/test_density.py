"""Density compensation: Pipe-Menon vs the radial closed form, normalisation, reconstruction."""

import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.physics import NUFFT, normalize_density, pipe_menon_density, radial_density
from tests.physics.test_nufft import ndft_matrix, radial_traj, relative_error, smooth_object


def dense_dc_gain(dcomp, traj, shape):
    """(A^H D A 1)[shape // 2] with the dense NDFT: the quantity the weights normalise to 1."""
    matrix = ndft_matrix(traj, shape)[0]
    centre = np.ravel_multi_index(tuple(n // 2 for n in shape), shape)
    return np.real(np.sum(matrix[:, centre].conj() * dcomp * matrix.sum(1)))


@pytest.mark.parametrize("samples_per_spoke", [32, 64])
def test_pipe_menon_agrees_with_radial_closed_form(samples_per_spoke):
    shape = (32, 32)
    traj = radial_traj(32, samples_per_spoke)
    iterative = pipe_menon_density(traj, shape).numpy()
    closed = radial_density(traj, shape).numpy()
    # Away from the k-space edge (where Pipe-Menon's kernel finds no neighbours
    # outside the disc and wraps around) the two describe the same ramp.
    inner = np.hypot(*traj) < 0.8 * np.pi
    assert np.corrcoef(iterative[inner], closed[inner])[0, 1] > 0.99
    assert relative_error(iterative[inner], closed[inner]) < 0.1
    if samples_per_spoke == 32:
        assert np.corrcoef(iterative, closed)[0, 1] > 0.95


@pytest.mark.parametrize(
    "shape, storage",
    [((24, 20), "stored"), ((8, 10, 12), "stored"), ((8, 10, 12), "csr"), ((8, 10, 12), "streamed")],
)
def test_pipe_menon_matches_tfkbnufft_gridding_iteration(shape, storage, monkeypatch):
    """The iteration d <- d / |G G^H d| run with tfkbnufft's own interpolation and spreading, then normalised.

    storage: the NUFFT's cached matrices, the matrix stored as scipy CSR row blocks (past
    ``nufft.MAX_STORED_ENTRIES``), or every product streamed (past ``max_stored_entries`` too).
    """
    from tfkbnufft.nufft.interp_functions import adjkbinterp, kbinterp

    from fastmri_zoo.physics import nufft
    from fastmri_zoo.physics.nufft import GRIDDING_CACHE, TABLE_OVERSAMPLING, grid_shape_for, kb_operators

    rng = np.random.default_rng(5)
    traj = rng.uniform(-np.pi, np.pi, (len(shape), 300)).astype(np.float32)
    _, _, interpob = kb_operators(shape, grid_shape_for(shape, 2.0), 6, TABLE_OVERSAMPLING)
    weights = tf.ones((1, 1, 300), tf.complex64)
    om = tf.constant(traj[None])
    for _ in range(4):
        weights = weights / tf.cast(tf.abs(kbinterp(adjkbinterp(weights, om, interpob), om, interpob)), tf.complex64)
    expected = normalize_density(tf.math.real(weights[:, 0]), traj, shape).numpy()[0]
    GRIDDING_CACHE.clear()
    if storage != "stored":
        monkeypatch.setattr(nufft, "MAX_STORED_ENTRIES", 0)
        monkeypatch.setattr(nufft, "BLOCK_ENTRIES", 6**3 * 70)  # 5 blocks, the last one short
        monkeypatch.setattr(nufft, "CHUNK_ENTRIES", 6**3 * 70)
    got = pipe_menon_density(traj, shape, num_iterations=4, max_stored_entries=0 if storage == "streamed" else 2**28)
    GRIDDING_CACHE.clear()
    assert relative_error(got.numpy(), expected) < 1e-4


def test_pipe_menon_leaves_its_matrix_to_the_nufft_of_the_same_trajectory(monkeypatch):
    """Past the NUFFT's stored size, the iterations' CSR matrix replaces the cached streamed gridding, and
    the NUFFTs that follow use it: the same k-space (to float32 rounding) as the dense NDFT gives."""
    from fastmri_zoo.physics import nufft
    from fastmri_zoo.physics.nufft import GRIDDING_CACHE

    shape = (6, 8, 10)
    rng = np.random.default_rng(3)
    traj = rng.uniform(-np.pi, np.pi, (3, 200)).astype(np.float32)
    image = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    expected = ndft_matrix(traj, shape)[0] @ image.reshape(-1)
    monkeypatch.setattr(nufft, "MAX_STORED_ENTRIES", 0)
    GRIDDING_CACHE.clear()
    streamed = NUFFT(traj, shape).forward(image[None]).numpy()[0]
    (cached,) = GRIDDING_CACHE.entries.values()
    assert cached.streamed and cached.csr is None
    pipe_menon_density(traj, shape, num_iterations=2)
    (cached,) = GRIDDING_CACHE.entries.values()
    assert not cached.streamed and cached.csr is not None
    stored = NUFFT(traj, shape).forward(image[None]).numpy()[0]
    GRIDDING_CACHE.clear()
    assert relative_error(streamed, expected) < 2e-3  # the NUFFT's own accuracy against the NDFT
    assert relative_error(stored, streamed) < 1e-5


def test_radial_closed_form_values():
    shape = (16, 16)
    traj = radial_traj(10, 16)
    weights = radial_density(traj, shape).numpy()
    radius = np.hypot(*traj)
    step = 2 * np.pi / 16
    expected = np.where(radius > 0, radius, step / 4)
    expected = expected / dense_dc_gain(expected, traj, shape)
    assert relative_error(weights, expected) < 1e-3


def test_kooshball_closed_form_is_quadratic():
    shape = (8, 8, 8)
    rng = np.random.default_rng(3)
    directions = rng.standard_normal((3, 20))
    directions /= np.linalg.norm(directions, axis=0)
    radii = (np.arange(8) - 4) * 2 * np.pi / 8
    traj = (directions[:, :, None] * radii).reshape(3, -1).astype(np.float32)
    weights = radial_density(traj, shape).numpy()
    radius = np.linalg.norm(traj, axis=0)
    expected = np.where(radius > 0, radius**2, (2 * np.pi / 8) ** 2 / 12)
    expected = expected / dense_dc_gain(expected, traj, shape)
    assert relative_error(weights, expected) < 1e-3


@pytest.mark.parametrize("method", ["pipe_menon", "closed_form"])
@pytest.mark.parametrize("samples_per_spoke", [32, 64])
def test_adjoint_dcomp_reconstructs_smooth_image_at_af1(method, samples_per_spoke):
    # AF 1: N = 32 spokes. Measured errors 4-10 %: the gridding reconstruction is a
    # polar quadrature of the inverse Fourier integral with ring spacing 2 pi / S, coarse
    # next to the width of a smooth image's spectrum (about 1 / sigma = 0.2 rad/px here),
    # plus the angular gap 2 pi / N at the k-space edge, so the bound is 15 %.
    shape = (32, 32)
    traj = radial_traj(32, samples_per_spoke)
    if method == "pipe_menon":
        dcomp = pipe_menon_density(traj, shape)
    else:
        dcomp = radial_density(traj, shape)
    image = smooth_object(shape)
    op = NUFFT(traj, shape, dcomp=dcomp)
    reconstruction = op.adjoint_dcomp(op.forward(image)).numpy()
    y, x = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    inside = np.hypot(x, y) < shape[0] / 2
    assert relative_error(reconstruction[0][inside], image[0][inside]) < 0.15


def test_normalisation_gives_unit_dc_gain_and_unit_cartesian_weights():
    shape = (12, 10)
    traj = radial_traj(12, 24)
    weights = pipe_menon_density(traj, shape).numpy()
    assert abs(dense_dc_gain(weights, traj, shape) - 1) < 1e-3
    grid = np.meshgrid(*[(np.arange(n) - n // 2) * 2 * np.pi / n for n in shape], indexing="ij")
    cartesian = np.stack([g.ravel() for g in grid]).astype(np.float32)
    np.testing.assert_allclose(pipe_menon_density(cartesian, shape).numpy(), 1.0, atol=1e-3)
    scaled = normalize_density(np.full(cartesian.shape[1], 7.0, np.float32), cartesian, shape).numpy()
    np.testing.assert_allclose(scaled, 1.0, atol=1e-3)


def test_output_layout_follows_traj():
    shape = (16, 16)
    traj = radial_traj(8, 16)
    batched = np.stack([traj, traj[::-1]])
    for function in (pipe_menon_density, radial_density):
        single = function(traj, shape)
        many = function(batched, shape)
        assert single.dtype.name == "float32" and single.shape == (traj.shape[1],)
        assert many.shape == (2, traj.shape[1])
        np.testing.assert_allclose(many.numpy()[0], single.numpy(), rtol=1e-4)


def test_bad_inputs_raise():
    traj = radial_traj(8, 16)
    with pytest.raises(ValueError, match="num_iterations"):
        pipe_menon_density(traj, (16, 16), num_iterations=0)
    with pytest.raises(ValueError, match=r"traj: expected values in \[-3.14"):
        pipe_menon_density(traj * 2, (16, 16))
    with pytest.raises(ValueError, match=r"traj: expected .*ndim = 3 coordinates"):
        radial_density(traj, (16, 16, 16))
