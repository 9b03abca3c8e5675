"""Sparse-matrix gridding of the NUFFT (``gridding="sparse"``) against tfkbnufft's gridding and finufft.

The sparse path is built from tfkbnufft's table, so the tfkbnufft path
(``gridding="tfkbnufft"``) must agree to float32 round-off; finufft (type 2 /
type 1, the module docstring's conventions) is the independent reference.
"""

import finufft
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.physics import NUFFT, nufft, point_spread_function
from fastmri_zoo.physics.nufft import GRIDDING_CACHE, SparseGridding, grid_shape_for
from tests.conftest import crandn


def relative_error(got, expected):
    return np.linalg.norm(np.asarray(got) - np.asarray(expected)) / np.linalg.norm(expected)


def random_traj(rng, shape, batch, nsamples):
    return rng.uniform(-np.pi, np.pi, (batch, len(shape), nsamples)).astype(np.float32)


def unit_smaps(rng, batch, coils, shape):
    maps = crandn(rng, (batch, coils, *shape))
    return maps / np.sqrt((np.abs(maps) ** 2).sum(1, keepdims=True))


CASES = {
    "2d_single": ((16, 20), None),
    "2d_multicoil": ((16, 20), 3),
    "2d_odd_single": ((15, 12), None),
    "3d_single": ((8, 10, 12), None),
    "3d_multicoil": ((8, 10, 12), 2),
}


@pytest.fixture(params=list(CASES), ids=list(CASES))
def case(request, rng):
    """Two different trajectories (batch 2), images and k-space of matching shapes."""
    shape, coils = CASES[request.param]
    traj = random_traj(rng, shape, 2, 300)
    smaps = None if coils is None else unit_smaps(rng, 2, coils, shape)
    x = crandn(rng, (2, *shape))
    y = crandn(rng, (2, 300) if coils is None else (2, coils, 300))
    return shape, traj, smaps, x, y


def operators(traj, shape, **kwargs):
    return NUFFT(traj, shape, gridding="sparse", **kwargs), NUFFT(traj, shape, gridding="tfkbnufft", **kwargs)


def test_default_is_sparse():
    assert NUFFT(np.zeros((2, 5), np.float32), (8, 8)).gridding == "sparse"


@pytest.fixture(params=["stored", "streamed", "csr"])
def storage(request, monkeypatch):
    """Stored sparse matrices, streamed products (nothing stored, chunks of a few samples plus a remainder), or
    the interpolation matrix alone as scipy CSR row blocks (``storage="csr"``, a few blocks plus a remainder)."""
    if request.param == "streamed":
        monkeypatch.setattr(nufft, "MAX_STORED_ENTRIES", 0)
        monkeypatch.setattr(nufft, "CHUNK_ENTRIES", 7000)
        monkeypatch.setattr(nufft, "SPREAD_CHUNK_ENTRIES", 7000)
    if request.param == "csr":
        monkeypatch.setattr(nufft, "BLOCK_ENTRIES", 7000)
        cached = nufft.sparse_gridding
        monkeypatch.setattr(nufft, "sparse_gridding", lambda traj, *geometry: SparseGridding(traj, *geometry, storage="csr")
                            if traj.shape.is_fully_defined() else cached(traj, *geometry))
    GRIDDING_CACHE.clear()
    yield request.param
    GRIDDING_CACHE.clear()


def test_forward_and_adjoint_match_tfkbnufft(case, storage):
    shape, traj, smaps, x, y = case
    sparse, reference = operators(traj, shape, smaps=smaps)
    assert sparse._sparse.streamed == (storage == "streamed")
    assert (sparse._sparse.csr is not None) == (storage == "csr")
    assert relative_error(sparse.forward(x), reference.forward(x).numpy()) < 1e-4
    assert relative_error(sparse.adjoint(y), reference.adjoint(y).numpy()) < 1e-4


def test_adjointness(case):
    shape, traj, smaps, x, y = case
    op = NUFFT(traj, shape, smaps=smaps)
    lhs = np.vdot(y.astype(np.complex128), op.forward(x).numpy().astype(np.complex128))
    rhs = np.vdot(op.adjoint(y).numpy().astype(np.complex128), x.astype(np.complex128))
    assert abs(lhs - rhs) / abs(lhs) < 1e-5


@pytest.mark.parametrize("shape", [(16, 20), (8, 10, 12)])
def test_forward_and_adjoint_match_finufft(shape, rng, storage):
    # finufft: one coordinate array per image axis in image-axis order, mode n - N // 2 at index n.
    traj = random_traj(rng, shape, 2, 400)
    x = crandn(rng, (2, *shape))
    y = crandn(rng, (2, 400))
    scale = 1 / np.sqrt(np.prod(shape))
    type2 = finufft.nufft2d2 if len(shape) == 2 else finufft.nufft3d2
    type1 = finufft.nufft2d1 if len(shape) == 2 else finufft.nufft3d1
    op = NUFFT(traj, shape, gridding="sparse")
    got_y, got_x = op.forward(x).numpy(), op.adjoint(y).numpy()
    for b in range(2):
        coords = [traj[b, axis].astype(np.float64) for axis in range(len(shape))]
        expected_y = type2(*coords, x[b].astype(np.complex128), isign=-1, eps=1e-9) * scale
        expected_x = type1(*coords, y[b].astype(np.complex128), shape, isign=1, eps=1e-9) * scale
        assert relative_error(got_y[b], expected_y) < 1e-3
        assert relative_error(got_x[b], expected_x) < 1e-3


def test_shared_trajectory_and_broadcast_data(rng, storage):
    """One trajectory for a batch of images (extra columns) and one image for a batch of trajectories."""
    shape = (12, 16)
    one_traj = random_traj(rng, shape, 1, 200)
    smaps = unit_smaps(rng, 3, 2, shape)
    x = crandn(rng, (3, *shape))
    sparse, reference = operators(one_traj[0], shape, smaps=smaps)
    assert relative_error(sparse.forward(x), reference.forward(x).numpy()) < 1e-4
    y = crandn(rng, (3, 2, 200))
    assert relative_error(sparse.adjoint(y), reference.adjoint(y).numpy()) < 1e-4

    two_traj = random_traj(rng, shape, 2, 200)
    sparse, reference = operators(two_traj, shape)
    assert relative_error(sparse.forward(x[:1]), reference.forward(x[:1]).numpy()) < 1e-4
    assert relative_error(sparse.adjoint(y[:1, 0]), reference.adjoint(y[:1, 0]).numpy()) < 1e-4


@pytest.mark.parametrize(
    "options",
    [
        {"oversampling": 1.5, "numpoints": 4},
        {"oversampling": 2.0, "numpoints": 5, "table_oversampling": 2**10},
        {"oversampling": 1.25, "numpoints": 3, "table_oversampling": 2**6},
    ],
    ids=["os1.5_np4", "np5_table2^10", "os1.25_np3_table2^6"],
)
def test_options_keep_their_meaning(options, rng):
    """Other grid sizes, kernel widths and tables: still tfkbnufft's result (including its coarser tables' error)."""
    shape = (10, 14)
    traj = random_traj(rng, shape, 2, 250)
    x = crandn(rng, (2, *shape))
    y = crandn(rng, (2, 250))
    sparse, reference = operators(traj, shape, **options)
    assert sparse.grid_shape == grid_shape_for(shape, options["oversampling"])
    assert relative_error(sparse.forward(x), reference.forward(x).numpy()) < 1e-4
    assert relative_error(sparse.adjoint(y), reference.adjoint(y).numpy()) < 1e-4


@pytest.mark.parametrize(
    "shape, coils",
    # 3D: tfkbnufft's reference gradient is the slowest part (the 3D forward / adjoint are matched above)
    [((16, 20), 3), pytest.param((6, 8, 10), None, marks=pytest.mark.slow)],
    ids=["2d_multicoil", "3d_single"],
)
def test_gradients_match_tfkbnufft(shape, coils, rng, storage):
    """d/dx and d/dsmaps of |A^H D (A x - y)|^2 through both paths, eagerly and in tf.function."""
    traj = random_traj(rng, shape, 2, 200)
    dcomp = rng.uniform(0.5, 1.5, (2, 200)).astype(np.float32)
    smaps = None if coils is None else tf.constant(unit_smaps(rng, 2, coils, shape))
    x = tf.constant(crandn(rng, (2, *shape)))
    y = tf.constant(crandn(rng, (2, 200) if coils is None else (2, coils, 200)))

    def loss_and_grads(gridding):
        with tf.GradientTape() as tape:
            tape.watch(x)
            if smaps is not None:
                tape.watch(smaps)
            op = NUFFT(traj, shape, smaps=smaps, dcomp=dcomp, gridding=gridding)
            residual = op.adjoint_dcomp(op.forward(x) - y)
            loss = tf.reduce_sum(tf.abs(residual) ** 2)
        sources = [x] if smaps is None else [x, smaps]
        return tape.gradient(loss, sources)

    expected = loss_and_grads("tfkbnufft")
    for grads in (loss_and_grads("sparse"), tf.function(lambda: loss_and_grads("sparse"))()):
        for got, want in zip(grads, expected):
            assert relative_error(got, want.numpy()) < 1e-4


def test_gradient_is_the_adjoint(rng):
    """For L = 1/2 |A x - y|^2 TensorFlow's gradient with respect to complex x is A^H (A x - y)."""
    shape = (12, 10)
    traj = random_traj(rng, shape, 1, 150)
    op = NUFFT(traj, shape)
    x = tf.constant(crandn(rng, (1, *shape)))
    y = crandn(rng, (1, 150))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = 0.5 * tf.reduce_sum(tf.abs(op.forward(x) - y) ** 2)
    gradient = tape.gradient(loss, x).numpy()
    # Reference A^H r through an independent dense NDFT in numpy.
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    phase = sum(traj[0, a, :, None].astype(np.float64) * grids[a].ravel() for a in range(2))
    matrix = np.exp(-1j * phase) / np.sqrt(np.prod(shape))
    residual = matrix @ x.numpy()[0].ravel() - y[0]
    expected = (matrix.conj().T @ residual).reshape(shape)
    assert relative_error(gradient[0], expected) < 1e-3


def test_graph_and_eager_agree_and_cache(rng):
    shape = (12, 16)
    traj = random_traj(rng, shape, 2, 200)
    x = crandn(rng, (2, *shape))
    GRIDDING_CACHE.clear()
    eager = NUFFT(traj, shape)
    assert NUFFT(traj.copy(), shape)._sparse is eager._sparse  # same bytes: cached
    assert NUFFT(traj, shape, numpoints=4)._sparse is not eager._sparse  # other geometry
    other = traj.copy()
    other[0, 0, 0] *= 0.5
    assert NUFFT(other, shape)._sparse is not eager._sparse
    graph = tf.function(lambda t, image: NUFFT(t, shape).forward(image))
    np.testing.assert_allclose(graph(tf.constant(traj), x).numpy(), eager.forward(x).numpy(), rtol=0, atol=1e-6)


def test_matrices_are_each_others_conjugate_transpose(rng):
    """The spreading matrix is the conjugate transpose of the interpolation matrix (block-diagonal per trajectory)."""
    shape = (6, 8)
    traj = tf.constant(random_traj(rng, shape, 2, 40))
    grid = grid_shape_for(shape, 2.0)
    gridding = SparseGridding(traj, shape, grid, 4, 2**8)
    interpolation = tf.sparse.to_dense(tf.sparse.reorder(gridding.interpolation)).numpy()
    spreading = tf.sparse.to_dense(tf.sparse.reorder(gridding.spreading)).numpy()
    cells = int(np.prod(grid))
    assert interpolation.shape == (80, 2 * cells)
    np.testing.assert_array_equal(spreading, interpolation.conj().T)
    assert not interpolation[:40, cells:].any() and not interpolation[40:, :cells].any()
    assert (np.count_nonzero(interpolation, axis=1) <= 16).all()


@pytest.mark.parametrize("shape", [(8, 12), (4, 6, 6)])
def test_point_spread_function_matches_tfkbnufft(shape, rng):
    traj = random_traj(rng, shape, 1, 200)
    dcomp = rng.uniform(0.5, 1.5, 200).astype(np.float32)
    got = point_spread_function(traj, shape, dcomp, gridding="sparse")
    expected = point_spread_function(traj, shape, dcomp, gridding="tfkbnufft").numpy()
    assert relative_error(got, expected) < 1e-4


def test_bad_gridding_raises():
    with pytest.raises(ValueError, match="gridding"):
        NUFFT(np.zeros((2, 5), np.float32), (8, 8), gridding="dense")


def test_large_trajectories_stream_instead_of_storing(rng, monkeypatch):
    """Past MAX_STORED_ENTRIES nothing is stored; the threshold counts batch x samples x numpoints**ndim."""
    shape = (6, 8, 8)
    traj = tf.constant(random_traj(rng, shape, 2, 50))
    grid = grid_shape_for(shape, 2.0)
    monkeypatch.setattr(nufft, "MAX_STORED_ENTRIES", 2 * 50 * 4**3)
    assert not SparseGridding(traj, shape, grid, 4, 2**8).streamed
    monkeypatch.setattr(nufft, "MAX_STORED_ENTRIES", 2 * 50 * 4**3 - 1)
    gridding = SparseGridding(traj, shape, grid, 4, 2**8)
    assert gridding.streamed and not hasattr(gridding, "interpolation")
    # storage="csr" stores the interpolation matrix alone, whatever its size: 2 x 50 samples in blocks of 30.
    monkeypatch.setattr(nufft, "BLOCK_ENTRIES", 2 * 15 * 4**3)
    gridding = SparseGridding(traj, shape, grid, 4, 2**8, storage="csr")
    assert not gridding.streamed and not hasattr(gridding, "spreading")
    assert [start for start, _ in gridding.csr] == [0, 15, 30, 45]
    assert [tuple(block.shape) for _, block in gridding.csr] == [(30, 2 * int(np.prod(grid)))] * 3 + [(10, 2 * int(np.prod(grid)))]
    with pytest.raises(ValueError, match="storage"):
        SparseGridding(traj, shape, grid, 4, 2**8, storage="dense")


def test_lru_cache_keeps_the_most_recently_used_entries():
    """The one cache of per-trajectory data (gridding matrices, Toeplitz kernels, density weights)."""
    from fastmri_zoo.utils import LRUCache, array_digest

    cache, built = LRUCache(maxsize=2), []

    def build(value):
        return lambda: built.append(value) or value

    assert cache.get("a", build(1)) == 1 and cache.get("b", build(2)) == 2
    assert cache.get("a", build(10)) == 1  # cached, and now the most recent
    cache.get("c", build(3))  # evicts "b", the least recently used
    assert "a" in cache and "b" not in cache and len(cache) == 2
    assert cache.get(None, build(4)) == 4 and len(cache) == 2  # key None: built, not stored
    assert built == [1, 2, 3, 4]
    traj = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert array_digest(traj) == array_digest(tf.constant(traj)) != array_digest(traj.reshape(3, 2))
    assert array_digest(traj, None) != array_digest(traj)
    with pytest.raises(ValueError, match="maxsize"):
        LRUCache(0)


@pytest.mark.parametrize("spread_entries", [7000, 40000, 10**7], ids=["chunk_floor", "between", "grid_cap"])
def test_streamed_spreading_in_grid_sized_chunks_matches_tfkbnufft(spread_entries, monkeypatch, rng):
    """A streamed spreading takes chunks of the grid's size (cells x columns) clipped to
    [CHUNK_ENTRIES, SPREAD_CHUNK_ENTRIES]: several chunks, one, or the floor; the adjoint is tfkbnufft's whatever
    the chunking (3D, 2 coils: the 16 x 20 x 24 grid x 2 columns is 15,360 x 2 cells)."""
    monkeypatch.setattr(nufft, "MAX_STORED_ENTRIES", 0)
    monkeypatch.setattr(nufft, "CHUNK_ENTRIES", 7000)
    monkeypatch.setattr(nufft, "SPREAD_CHUNK_ENTRIES", spread_entries)
    GRIDDING_CACHE.clear()
    shape = (8, 10, 12)
    traj = random_traj(rng, shape, 1, 400)
    smaps = unit_smaps(rng, 1, 2, shape)
    y = crandn(rng, (1, 2, 400))
    sparse, reference = operators(traj, shape, smaps=smaps)
    assert sparse._sparse.streamed
    requested = []
    chunks = SparseGridding._chunks

    def recording(self, columns, entries=None):
        requested.append(None if entries is None else int(entries))
        return chunks(self, columns, entries)

    monkeypatch.setattr(SparseGridding, "_chunks", recording)
    assert relative_error(sparse.adjoint(y), reference.adjoint(y).numpy()) < 1e-4
    assert requested == [min(max(16 * 20 * 24 * 2, 7000), spread_entries)]
    GRIDDING_CACHE.clear()
