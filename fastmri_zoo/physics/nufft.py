"""Non-uniform FFT (NUFFT) acquisitions: single-coil and multicoil (SENSE).

Conventions (the whole package uses them):

- ``traj``: float32 (batch, ndim, nsamples), or (ndim, nsamples) shared by the
  batch; a 3-axis traj is always a batch, so a trajectory split into shots
  (ndim, num_shots, samples_per_shot) is flattened first (``traj.reshape(ndim, -1)``,
  the layout the ``fastmri_zoo.sampling`` generators return). Units are radians
  per pixel and every value lies in [-pi, pi] (k = pi is the Nyquist edge;
  [-0.5, 0.5) cycles per pixel is *not* accepted silently as it is only checked
  against [-pi, pi]). The ``ndim`` axis follows the image axes: 2D (k_H, k_W),
  3D (k_D, k_H, k_W).
- The transform is orthonormal and centred:
  ``y_j = N^{-1/2} sum_n x_n exp(-i k_j . (n - shape // 2))`` with N the
  number of pixels, so a fully sampled Cartesian grid given as a trajectory
  reproduces ``fftc``.
- image ``x``: complex64 (batch, *image_shape); k-space ``y``: complex64
  (batch, nsamples) single-coil, (batch, coils, nsamples) multicoil;
  ``smaps``: complex64 (batch, coils, *image_shape); ``dcomp``: float32
  (batch, nsamples) or (nsamples,).

The transform is Kaiser-Bessel gridding on an ``oversampling`` times larger
grid, as tfkbnufft computes it: apodization (tfkbnufft's scaling
coefficients), zero-padding to the grid, FFT, then interpolation to the
samples (the adjoint: spreading, inverse FFT, crop, conjugate apodization);
the FFTs skip the zero padding and the cropped rows (``fft.padded_fft``,
``fft.cropped_ifft``).
``gridding`` chooses how the interpolation / spreading step runs:

- ``"sparse"`` (default): two precomputed sparse matrices built from
  tfkbnufft's own Kaiser-Bessel table lookup (same table, same rounding, so
  the same coefficients; results agree to ~1e-5): an interpolation matrix
  (samples x grid cells) and its conjugate transpose, the spreading matrix
  (grid cells x samples), both with the samples sorted by grid cell; they
  are applied with ``tf.sparse.sparse_dense_matmul`` with the coils as
  columns, about 10x faster than tfkbnufft's per-offset gather / scatter
  loops (``SparseGridding``). Building them costs a few table gathers and
  one argsort over the samples (~20 ms for 32k samples in 2D): eagerly
  they are cached per trajectory and geometry (``GRIDDING_CACHE``, an ``LRUCache``); inside
  ``tf.function`` or ``tf.data`` they are built in the graph, at each NUFFT
  construction, i.e. once per call of the function. Memory:
  numpoints**ndim complex64 values and int64 index pairs per sample, twice
  (about 57 MB for 32k samples in 2D, 4 entries cached at most). Past
  ``MAX_STORED_ENTRIES`` (3D kooshballs: 6.7 GB for 648k samples) the
  matrices are not stored: each product recomputes the coefficients in
  chunks, one axis at a time (~2 s forward, ~3.4 s adjoint for a
  90 x 120 x 120 volume here, against 5.6 s and 17.5 s with tfkbnufft's
  loops; under 2 GB).
- ``"tfkbnufft"``: tfkbnufft's ``kbnufft_forward`` / ``kbnufft_adjoint``.

Neither is XLA-compilable: models using them must not be ``jit_compile`` d.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np
import scipy.sparse
import tensorflow as tf
from tfkbnufft import kbnufft_adjoint, kbnufft_forward
from tfkbnufft.kbnufft import KbNufftModule

from ..checks import check_batch, check_finite, check_in_range, check_rank, check_same_dim, static_shape
from ..utils import LRUCache, array_digest
from .base import LinearOperator, as_complex64, transpose
from .coils import normalize_by_rss
from .fft import cropped_ifft, padded_fft

__all__ = ["NUFFT", "estimate_sensitivity_maps_nufft"]

# Trajectories computed in float32 may overshoot pi by a few ulps.
TRAJ_TOLERANCE = 1e-5
# Kernel table points per grid cell: the nearest-table-entry lookup limits accuracy
# to about 1e-3 with tfkbnufft's default 2**10, 2**14 costs only memory.
TABLE_OVERSAMPLING = 2**14


@functools.lru_cache(maxsize=32)
def kb_operators(image_shape: tuple, grid_shape: tuple, numpoints: int, table_oversampling: int = TABLE_OVERSAMPLING):
    """Cached (forward, adjoint, interpob) tfkbnufft ops for one geometry.

    Building the interpolation tables is slow, so they are built once per
    (image_shape, grid_shape, numpoints, table_oversampling). The ops take x
    complex64 (batch, coils, *image_shape) and om float32 (batch, ndim, nsamples).
    """
    # Lift out of any graph being traced so the cached tables are eager constants.
    with tf.init_scope():
        module = KbNufftModule(
            im_size=image_shape, grid_size=grid_shape, norm="ortho", numpoints=numpoints,
            table_oversamp=int(table_oversampling),
        )
        interpob = module._extract_nufft_interpob()
    return kbnufft_forward(interpob), kbnufft_adjoint(interpob), interpob


def grid_shape_for(image_shape: Sequence[int], oversampling: float) -> tuple:
    """Oversampled gridding shape: each axis times ``oversampling``, rounded up to even."""
    return tuple(int(2 * math.ceil(oversampling * n / 2)) for n in image_shape)


GRIDDING_METHODS = ("sparse", "tfkbnufft")


def check_gridding(gridding) -> str:
    """``gridding`` if it is one of ``GRIDDING_METHODS``, else a ValueError."""
    if not isinstance(gridding, str) or gridding not in GRIDDING_METHODS:
        raise ValueError(
            f"gridding: expected one of {list(GRIDDING_METHODS)} (how the NUFFT interpolates and spreads), "
            f"got {gridding!r}."
        )
    return gridding

# Past this many stored entries (batch x samples x numpoints**ndim; 24 bytes each, twice), SparseGridding
# streams instead: 2**25 entries are ~1.6 GB of matrices, a 3D kooshball of 648k samples would need 6.7 GB.
MAX_STORED_ENTRIES = 2**25
# Entries x data columns per chunk of a streamed product (~70 MB of complex64 per temporary).
CHUNK_ENTRIES = 2**23
# At most this many per chunk of a streamed spreading on a large grid (~270 MB per temporary; see _stream_spread).
SPREAD_CHUNK_ENTRIES = 2**25
# Entries computed per chunk while SparseGridding(storage="csr") builds its matrix (~200 MB of matrix per chunk).
BLOCK_ENTRIES = 2**24
STORAGE_MODES = ("auto", "csr")


class SparseGridding:
    """Kaiser-Bessel interpolation and spreading of a batch of trajectories as sparse matrices.

    traj: float32 (batch_traj, ndim, nsamples), radians per pixel;
    image_shape, grid_shape, numpoints, table_oversampling: the geometry of
    ``kb_operators``. The coefficients are tfkbnufft's (``kbinterp``): for
    each sample and each of the numpoints**ndim neighbouring grid cells, the
    product over axes of the table entry nearest to the distance, times the
    phase exp(i k . image_shape // 2) of tfkbnufft's built-in fftshift.

    ``interpolation``: complex64 SparseTensor (batch_traj * nsamples,
    batch_traj * G) block-diagonal (one block per trajectory, G grid cells),
    entries grouped by sample; ``spreading``: its conjugate transpose
    (G cells x samples), a matrix of its own because the gradient of each
    product is the other one. In both the samples are ordered by their first
    grid cell (one argsort over the samples), so the products read and write
    the grid nearly in cell order whatever the order of the trajectory: on a
    shuffled radial trajectory this halves the time of either product, and
    sorting all entries by cell is no faster.

    ``streamed``: when the matrices would hold more than ``MAX_STORED_ENTRIES``
    entries (a 3D kooshball: 648k samples x 216 neighbours), nothing is
    stored; each product recomputes the same coefficients chunk by chunk
    (``CHUNK_ENTRIES``), gathering (interpolation) or segment-summing
    (spreading) against the grid. Decided from the static shape of traj.

    ``storage="csr"`` (eager, static shapes; otherwise as ``"auto"``) stores the
    interpolation matrix whatever its size as scipy CSR row blocks of
    ``BLOCK_ENTRIES`` entries (``csr``: (first sample, matrix); the samples in
    the order of their first grid cell), and spreads by the adjoint products of
    the same blocks: 12 bytes per entry (complex64 value, int32 cell), a
    quarter of the two TensorFlow matrices (1.7 GB for the kooshball above),
    built in ~2 s there; each product then runs on one thread in ~0.3 s, about
    4x faster than streamed and than TensorFlow's sparse products of the same
    blocks with int64 indices. For many products with one trajectory (the
    iterations of ``density.pipe_menon_density``), not for a NUFFT's few.
    The products go through ``tf.numpy_function``: not XLA-compilable.
    """

    def __init__(self, traj: tf.Tensor, image_shape: tuple, grid_shape: tuple, numpoints: int, table_oversampling: int,
                 storage: str = "auto"):
        if storage not in STORAGE_MODES:
            raise ValueError(f"storage: expected one of {list(STORAGE_MODES)}, got {storage!r}.")
        self.grid_shape = tuple(grid_shape)
        self.grid_size = int(np.prod(grid_shape))
        self.image_shape = tuple(image_shape)
        self.numpoints = int(numpoints)
        self.neighbours = self.numpoints ** len(self.grid_shape)
        self.table_oversampling = int(table_oversampling)
        _, _, interpob = kb_operators(self.image_shape, self.grid_shape, self.numpoints, self.table_oversampling)
        self._tables = [tf.cast(table, tf.complex64) for table in interpob["table"]]
        traj = tf.convert_to_tensor(traj, tf.float32)
        self._traj = traj
        batch = tf.shape(traj, out_type=tf.int64)[0]
        nsamples = tf.shape(traj, out_type=tf.int64)[2]
        self._blocks = tf.cast(batch, tf.int32)
        self._nsamples = tf.cast(nsamples, tf.int32)
        static_batch, _, static_samples = traj.shape
        entries = None if None in (static_batch, static_samples) else static_batch * static_samples * self.neighbours
        self.csr = None
        if storage == "csr" and entries is not None and tf.executing_eagerly():
            self.streamed = False
            self.csr = self._interpolation_csr(traj)
            return
        self.streamed = entries is not None and entries > MAX_STORED_ENTRIES
        if self.streamed:
            # Cell numbers in int32 when every grid of the batch fits (gathers and sums on half the bytes).
            self._index_dtype = tf.int32 if static_batch * self.grid_size < 2**31 else tf.int64
            return
        # Samples in the order of their first grid cell: both products then read and write the grid
        # nearly sequentially, whatever the order of the trajectory (an argsort over samples, not entries).
        order = self._cell_order(traj)
        values, columns = self._entries(tf.gather(traj, order, axis=2, batch_dims=1))
        values = tf.reshape(values, [-1, self.neighbours])  # (batch * nsamples, neighbours)
        columns = tf.reshape(columns, [-1, self.neighbours])
        rows = tf.reshape(tf.cast(order, tf.int64) + tf.range(batch, dtype=tf.int64)[:, None] * nsamples, [-1])
        rows = tf.reshape(tf.broadcast_to(rows[:, None], tf.shape(columns)), [-1])
        columns, values = tf.reshape(columns, [-1]), tf.reshape(values, [-1])
        total_samples, total_cells = batch * nsamples, batch * self.grid_size
        self.interpolation = tf.SparseTensor(
            tf.stack([rows, columns], 1), values, tf.stack([total_samples, total_cells])
        )
        self.spreading = tf.SparseTensor(
            tf.stack([columns, rows], 1), tf.math.conj(values), tf.stack([total_cells, total_samples])
        )

    def _cell_order(self, traj: tf.Tensor) -> tf.Tensor:
        """int32 (batch, nsamples): each trajectory's samples in the order of their first grid cell."""
        return tf.argsort(self._neighbour_cells_of(self._axis_factors(traj), tf.int64, first_only=True), axis=-1)

    def _axis_factors(self, traj: tf.Tensor) -> list:
        """Per-axis interpolation coefficients and grid cells of the samples of traj (batch, ndim, m).

        Returns, for each axis, (coefficients complex64, cells int64 within the axis), both (batch, m,
        numpoints): the coefficient of a neighbour is the product over the axes of theirs (tfkbnufft's
        table entries), the first axis' already multiplied by the phase of tfkbnufft's built-in fftshift.
        """
        # As tfkbnufft's kbinterp / calc_coef_and_indices, in float32: grid units, first neighbour, table index.
        # The scale is one constant as in tfkbnufft's graph (grappler folds its grid / (2 pi)): float32
        # positions often fall exactly half-way between table entries, so the rounding must see the same value.
        grid = tf.constant(self.grid_shape, tf.float32)
        tm = traj * (grid / (2 * tf.constant(math.pi)))[None, :, None]
        length = float(self.table_oversampling)
        center = int(math.floor(self.numpoints * length / 2))
        offsets = tf.range(self.numpoints, dtype=tf.int64)
        factors = []
        for axis in range(len(self.grid_shape)):
            position = tm[:, axis, :, None]
            first = 1 + tf.cast(tf.floor(position - self.numpoints / 2.0), tf.int64)
            indices = first + offsets
            distance = tf.cast(tf.round((position - tf.cast(indices, tf.float32)) * length), tf.int64)
            coefficient = tf.gather(self._tables[axis], distance + center)
            factors.append((coefficient, tf.math.floormod(indices, self.grid_shape[axis])))
        # tfkbnufft's built-in fftshift, exp(i k . image_shape // 2), in float64: in float32 its phase
        # (up to pi N / 2) is off by ~1e-5 radians.
        n_shift = tf.constant([n // 2 for n in self.image_shape], tf.float64)
        phase = tf.einsum("bdm,d->bm", tf.cast(traj, tf.float64), n_shift)
        shift = tf.cast(tf.exp(tf.complex(tf.zeros_like(phase), phase)), tf.complex64)
        factors[0] = (factors[0][0] * shift[..., None], factors[0][1])
        return factors

    def _entries(self, traj: tf.Tensor, cells_dtype=tf.int64):
        """Interpolation coefficients and grid cells of the samples of traj (batch, ndim, m).

        Returns values complex64 and cells ``cells_dtype`` in the batch's stacked grids, both (batch, m,
        neighbours).
        """
        factors = self._axis_factors(traj)
        coefficients = factors[0][0]
        for coefficient, _ in factors[1:]:
            # outer product over the axes (a batched matrix product), earlier axes varying slowest (tfkbnufft's
            # Jlist order)
            coefficients = tf.linalg.matmul(coefficients[..., :, None], coefficient[..., None, :])
            coefficients = tf.reshape(coefficients, tf.concat([tf.shape(coefficients)[:2], [-1]], 0))
        return coefficients, self._neighbour_cells_of(factors, cells_dtype)

    def _chunks(self, columns: tf.Tensor, entries=None):
        """Samples per chunk and number of chunks of a streamed product with these data columns, ``entries``
        entries x columns per chunk (default ``CHUNK_ENTRIES``)."""
        per_sample = self._blocks * self.neighbours * tf.shape(columns)[1]
        size = tf.maximum(1, (CHUNK_ENTRIES if entries is None else entries) // per_sample)
        return size, (self._nsamples + size - 1) // size

    def _neighbour_cells(self, factors: list) -> tf.Tensor:
        """Cells (batch, m, numpoints**ndim) of every neighbour in the batch's stacked grids, int32 when they fit."""
        return self._neighbour_cells_of(factors, self._index_dtype)

    def _neighbour_cells_of(self, factors: list, dtype, first_only: bool = False) -> tf.Tensor:
        """Cells of every neighbour (batch, m, numpoints**ndim), or of the first one (batch, m), in the batch's
        stacked grids, as ``dtype``."""
        strides = np.cumprod((1,) + self.grid_shape[:0:-1])[::-1]
        if first_only:
            factors = [(None, cell[..., :1]) for _, cell in factors]
        cells = tf.cast(factors[0][1], dtype) * int(strides[0])
        cells = cells + tf.range(self._blocks, dtype=dtype)[:, None, None] * self.grid_size
        for (_, cell), stride in zip(factors[1:], strides[1:]):
            cell = tf.cast(cell, dtype) * int(stride)
            cells = tf.reshape(cells[..., :, None] + cell[..., None, :], tf.concat([tf.shape(cell)[:2], [-1]], 0))
        return cells[..., 0] if first_only else cells

    def _stream_interpolate(self, columns: tf.Tensor) -> tf.Tensor:
        """Interpolation without a stored matrix: (batch * G, K) -> (batch * nsamples, K), chunk by chunk.

        Each sample gathers its numpoints**ndim neighbours and contracts them one axis at a time, last
        axis first, with that axis' coefficients (a batched matrix product per axis: the products of
        the coefficients over the axes are never formed).
        """
        size, count = self._chunks(columns)
        width = tf.shape(columns)[1]

        def body(i, parts):
            factors = self._axis_factors(self._traj[:, :, i * size:(i + 1) * size])
            samples = tf.gather(columns, self._neighbour_cells(factors))  # (batch, m, neighbours, K)
            shape = tf.shape(samples)
            samples = transpose(samples, [3, 0, 1, 2])  # (K, batch, m, neighbours): coefficients broadcast over K
            for coefficient, _ in reversed(factors):
                samples = tf.reshape(samples, tf.concat([[width], shape[:2], [-1, self.numpoints]], 0))
                samples = tf.linalg.matmul(samples, coefficient[..., None])
            samples = tf.reshape(samples, tf.stack([width, shape[0], shape[1]]))
            return i + 1, parts.write(i, transpose(samples, [2, 1, 0]))

        parts = tf.TensorArray(tf.complex64, size=count, infer_shape=False)
        _, parts = tf.while_loop(lambda i, _: i < count, body, (tf.constant(0), parts), parallel_iterations=1)
        return tf.reshape(transpose(parts.concat(), [1, 0, 2]), tf.stack([-1, width]))

    def _stream_spread(self, columns: tf.Tensor) -> tf.Tensor:
        """Spreading without a stored matrix: (batch * nsamples, K) -> (batch * G, K), chunk by chunk.

        Each sample's contributions, its value times the conjugate coefficients of its neighbours, are
        built one axis at a time (batched outer products), then summed into the grid.
        """
        width = tf.shape(columns)[1]
        cells_total = tf.cast(self._blocks, self._index_dtype) * self.grid_size
        # Every chunk writes a whole grid (its zeroed partial sum, then the addition): chunks of at least the
        # grid's size, up to SPREAD_CHUNK_ENTRIES, keep that traffic below the chunks' own (on the 4x grid of a
        # kooshball's Toeplitz kernel, 83M cells: 5 chunks instead of 17, 2.2x faster).
        written = tf.cast(cells_total, tf.int64) * tf.cast(width, tf.int64)
        entries = tf.cast(tf.clip_by_value(written, CHUNK_ENTRIES, SPREAD_CHUNK_ENTRIES), tf.int32)
        size, count = self._chunks(columns, entries)
        # (K, batch, nsamples): the coefficients broadcast over K
        samples = transpose(tf.reshape(columns, tf.stack([self._blocks, self._nsamples, width])), [2, 0, 1])

        def body(i, grid):
            factors = self._axis_factors(self._traj[:, :, i * size:(i + 1) * size])
            contributions = samples[:, :, i * size:(i + 1) * size, None, None]  # (K, batch, m, 1, 1)
            for coefficient, _ in factors:
                contributions = tf.linalg.matmul(contributions, tf.math.conj(coefficient)[..., None, :])
                shape = tf.shape(contributions)
                contributions = tf.reshape(contributions, tf.concat([shape[:3], [-1, 1]], 0))
            contributions = transpose(contributions[..., 0], [1, 2, 3, 0])  # (batch, m, neighbours, K)
            part = tf.math.unsorted_segment_sum(
                tf.reshape(contributions, tf.stack([-1, width])), tf.reshape(self._neighbour_cells(factors), [-1]),
                cells_total,
            )
            return i + 1, tf.ensure_shape(grid + part, grid.shape)

        grid = tf.zeros(tf.stack([tf.cast(cells_total, tf.int64), tf.cast(width, tf.int64)]), tf.complex64)
        _, grid = tf.while_loop(lambda i, _: i < count, body, (tf.constant(0), grid), parallel_iterations=1)
        return grid

    def _interpolation_csr(self, traj: tf.Tensor) -> list:
        """The interpolation matrix (batch * m, batch * G) as row blocks: (first sample, scipy CSR matrix).

        The samples of each trajectory are taken in the order of their first grid cell (``_order``, one
        argsort over the samples), so that a product reads and writes the grid nearly in order. A block holds
        the rows of ``BLOCK_ENTRIES`` entries (for every trajectory of the batch); each row has exactly
        ``neighbours`` entries, so its row pointers are a range, and its values (complex64) and cells (int32)
        are the arrays TensorFlow computed, not copies.
        """
        batch, _, nsamples = traj.shape
        if BLOCK_ENTRIES >= 2**31 or batch * self.grid_size >= 2**31:
            raise ValueError(f"storage='csr': {batch} grids of {self.grid_size} cells do not fit int32 indices; "
                             f"use storage='auto'.")
        self._order = self._cell_order(traj)
        self._inverse_order = tf.argsort(self._order, axis=-1)
        traj = tf.gather(traj, self._order, axis=2, batch_dims=1)
        size = max(1, BLOCK_ENTRIES // (batch * self.neighbours))
        blocks = []
        for start in range(0, nsamples, size):
            values, cells = self._entries(traj[:, :, start:start + size], tf.int32)
            rows = batch * values.shape[1]
            pointers = np.arange(rows + 1, dtype=np.int32) * np.int32(self.neighbours)
            # np.asarray shares TensorFlow's buffers (Tensor.numpy() copies them: most of the build's time here).
            matrix = scipy.sparse.csr_matrix((np.asarray(values).reshape(-1), np.asarray(cells).reshape(-1), pointers),
                                             shape=(rows, batch * self.grid_size))
            blocks.append((start, matrix))
        return blocks

    def _csr_product(self, columns: tf.Tensor, interpolate: bool) -> tf.Tensor:
        """Interpolation (batch * G, K) -> (batch * nsamples, K), or spreading (its adjoint, back), by the CSR
        row blocks, in the trajectory's sample order. scipy's products run on one thread and read 12 bytes per
        entry (complex64 value, int32 cell); spreading is conj(M^T conj(x)), M^T a view of M."""
        batch, _, nsamples = self._traj.shape
        blocks = self.csr

        def interpolation(grid):
            parts = [np.asarray(block @ grid, np.complex64).reshape(batch, -1, grid.shape[1]) for _, block in blocks]
            return np.concatenate(parts, axis=1)

        def spreading(samples):  # (batch, nsamples, K) in the blocks' sample order
            grid = np.zeros((batch * self.grid_size, samples.shape[2]), np.complex64)
            for start, block in blocks:
                part = samples[:, start:start + block.shape[0] // batch].reshape(-1, samples.shape[2])
                grid += block.T @ np.conj(part)
            return np.conj(grid, out=grid)

        width = tf.shape(columns)[1]
        if interpolate:
            out = tf.numpy_function(interpolation, [columns], tf.complex64, stateful=False)
            # Back from the blocks' sample order (by first grid cell) to the trajectory's.
            out = tf.gather(out, self._inverse_order, axis=1, batch_dims=1)
            return tf.reshape(out, tf.stack([batch * nsamples, width]))
        samples = tf.reshape(columns, tf.stack([batch, nsamples, width]))
        samples = tf.gather(samples, self._order, axis=1, batch_dims=1)
        return tf.reshape(tf.numpy_function(spreading, [samples], tf.complex64, stateful=False),
                          tf.stack([batch * self.grid_size, width]))

    def coil_kspace(self, coil_images: tf.Tensor) -> tf.Tensor:
        """The NUFFT of ``NUFFT`` with these matrices, coil by coil without coil maps: apodization, pruned FFT on
        the grid, interpolation. coil_images: complex64 (batch, coils, *image_shape) -> (batch, coils, nsamples)."""
        forward, _ = apodization(self.image_shape, self.grid_shape, self.numpoints, self.table_oversampling)
        grid = padded_fft(coil_images * forward, self.grid_shape)
        shape = tf.shape(grid)
        return self.interpolate(tf.reshape(grid, tf.stack([shape[0], shape[1], -1])))

    def _apply(self, data: tf.Tensor, interpolate: bool, out_length) -> tf.Tensor:
        """Interpolation (or spreading) of each (coil, image) column of data (batch, coils, L) -> (batch, coils, out_length).

        batch is batch_traj, or any batch when there is one trajectory (the
        images are then extra columns); data with batch 1 is broadcast to
        batch_traj. The gradient of either product is the other one.
        """
        shape = tf.shape(data)
        blocks = self._blocks
        batch = tf.maximum(shape[0], blocks)
        coils, length = shape[1], shape[2]
        data = tf.broadcast_to(data, tf.stack([batch, coils, length]))
        repeats = batch // blocks
        columns = tf.reshape(data, tf.stack([blocks, repeats, coils, length]))
        columns = tf.reshape(transpose(columns, [0, 3, 1, 2]), tf.stack([blocks * length, repeats * coils]))
        if self.streamed:
            forward, backward = self._stream_interpolate, self._stream_spread
        elif self.csr is not None:
            forward = functools.partial(self._csr_product, interpolate=True)
            backward = functools.partial(self._csr_product, interpolate=False)
        else:
            forward = functools.partial(tf.sparse.sparse_dense_matmul, self.interpolation)
            backward = functools.partial(tf.sparse.sparse_dense_matmul, self.spreading)
        if not interpolate:
            forward, backward = backward, forward

        @tf.custom_gradient
        def product(columns):
            def gradient(upstream):
                return backward(upstream)

            return forward(columns), gradient

        out = tf.reshape(product(columns), tf.stack([blocks, out_length, repeats, coils]))
        return tf.reshape(transpose(out, [0, 2, 3, 1]), tf.stack([batch, coils, out_length]))

    def interpolate(self, grid: tf.Tensor) -> tf.Tensor:
        """grid: complex64 (batch, coils, G) -> samples complex64 (batch, coils, nsamples)."""
        return self._apply(grid, True, self._nsamples)

    def spread(self, samples: tf.Tensor) -> tf.Tensor:
        """samples: complex64 (batch, coils, nsamples) -> grid complex64 (batch, coils, G)."""
        return self._apply(samples, False, self.grid_size)


def sparse_gridding(traj: tf.Tensor, image_shape: tuple, grid_shape: tuple, numpoints: int, table_oversampling: int,
                    storage: str = "auto"):
    """The ``SparseGridding`` of traj float32 (batch, ndim, nsamples) and this geometry.

    Eagerly it comes from ``GRIDDING_CACHE`` (slices of one acquisition, or the
    iterations of a reconstruction, build the matrices once); inside
    ``tf.function`` the matrices are built in the graph. ``storage="csr"``
    (eager, for many products: ``density.pipe_menon_density``) replaces a cached
    streamed gridding of the same key by the stored matrix, which every later NUFFT
    of that trajectory then uses.
    """
    geometry = (tuple(image_shape), tuple(grid_shape), int(numpoints), int(table_oversampling))
    key = (array_digest(traj), geometry) if tf.executing_eagerly() else None
    if storage == "csr" and key in GRIDDING_CACHE and GRIDDING_CACHE.entries[key].streamed:
        GRIDDING_CACHE.discard(key)
    return GRIDDING_CACHE.get(key, lambda: SparseGridding(traj, *geometry, storage=storage))


#: Shared by every NUFFT (keys hold everything the matrices depend on).
GRIDDING_CACHE = LRUCache(maxsize=4)


@functools.lru_cache(maxsize=32)
def apodization(image_shape: tuple, grid_shape: tuple, numpoints: int, table_oversampling: int):
    """(forward, adjoint) complex64 image_shape weights of the sparse-gridding NUFFT.

    tfkbnufft's scaling coefficients s, with its 'ortho' FFT scaling and the
    orthonormal NDFT's folded in: forward s / sqrt(N) (before the FFT
    without normalisation), adjoint conj(s) G / sqrt(N) (after
    ``tf.signal.ifft*d``, which divides by G), N pixels and G grid cells.
    """
    _, _, interpob = kb_operators(image_shape, grid_shape, numpoints, table_oversampling)
    pixels, cells = float(np.prod(image_shape)), float(np.prod(grid_shape))
    with tf.init_scope():
        coefficients = tf.cast(interpob["scaling_coef"], tf.complex64)
        forward = coefficients / tf.cast(math.sqrt(pixels), tf.complex64)
        adjoint = tf.math.conj(coefficients) * tf.cast(cells / math.sqrt(pixels), tf.complex64)
    return forward, adjoint


def prepare_traj(traj, ndim: int) -> tf.Tensor:
    """Validate a trajectory and return it as float32 (batch, ndim, nsamples).

    A 2-axis traj is (ndim, nsamples), a 3-axis one always a batch (batch, ndim, nsamples): a
    trajectory split into shots, (ndim, num_shots, samples_per_shot), must be flattened first
    (``traj.reshape(ndim, -1)``, the layout ``fastmri_zoo.sampling``'s generators return).
    """
    traj = tf.convert_to_tensor(traj)
    if traj.dtype.is_complex:
        raise ValueError(f"traj: expected real float32 values in radians per pixel, got dtype {traj.dtype.name}.")
    traj = tf.cast(traj, tf.float32)
    check_rank("traj", traj, (2, 3), "(batch, ndim, nsamples) or (ndim, nsamples)")
    shape = static_shape(traj)
    size = shape[-2] if shape else None  # () when the rank is unknown (a traced tensor)
    if size is not None and size != ndim:
        expected = (
            f"traj: expected (ndim, nsamples) or (batch, ndim, nsamples) with ndim = {ndim} coordinates "
            f"along axis -2 (one per image axis, image_shape has {ndim} axes), got shape {shape}"
        )
        if len(shape) == 3 and shape[0] == ndim:
            hint = (
                f"; a trajectory split into shots, (ndim, num_shots, samples_per_shot) = {shape}, is "
                f"flattened shot by shot with traj.reshape({ndim}, -1) (the layout of "
                "fastmri_zoo.sampling's generators)"
            )
        elif shape[-1] == ndim:
            hint = "; a trajectory stored as (nsamples, ndim) is transposed to (ndim, nsamples) first"
        else:
            hint = ""
        raise ValueError(expected + hint + ".")
    if traj.shape.rank == 2:
        traj = traj[None]
    check_finite("traj", traj)
    check_in_range("traj", traj, -math.pi - TRAJ_TOLERANCE, math.pi + TRAJ_TOLERANCE, " (radians per pixel, i.e. [-pi, pi])")
    return traj


def prepare_dcomp(dcomp, nsamples) -> tf.Tensor:
    """Validate density weights and return them as float32 (batch, nsamples)."""
    dcomp = tf.convert_to_tensor(dcomp)
    if dcomp.dtype.is_complex:
        raise ValueError(f"dcomp: expected real float32 weights, got dtype {dcomp.dtype.name}.")
    dcomp = tf.cast(dcomp, tf.float32)
    check_rank("dcomp", dcomp, (1, 2), "(batch, nsamples) or (nsamples,)")
    check_same_dim("dcomp", dcomp.shape[-1], "traj", nsamples, "samples")
    check_finite("dcomp", dcomp)
    if dcomp.shape.rank == 1:
        dcomp = dcomp[None]
    return dcomp


def check_image(name: str, x, image_shape: tuple) -> tf.Tensor:
    """Validate an image complex64 (batch, *image_shape)."""
    x = as_complex64(name, x)
    ndim = len(image_shape)
    check_rank(name, x, ndim + 1, f"(batch, {ndim} spatial axes)")
    spatial = static_shape(x)[1:]
    if any(a is not None and a != b for a, b in zip(spatial, image_shape)):
        raise ValueError(f"{name}: expected spatial shape {tuple(image_shape)}, got {spatial} (shape {static_shape(x)}).")
    check_finite(name, x)
    return x


class NUFFT(LinearOperator):
    """Non-Cartesian acquisition A x = F_traj (S x) (see the module docstring).

    traj: float32 (batch, ndim, nsamples) or (ndim, nsamples), radians per
    pixel in [-pi, pi]; image_shape: (H, W) or (D, H, W); smaps: complex64
    (batch, coils, *image_shape) or None for single-coil; dcomp: float32
    (batch, nsamples) or (nsamples,) or None (all ones); oversampling: gridding
    grid / image size; numpoints: Kaiser-Bessel kernel width in grid points;
    table_oversampling: kernel
    table points per grid cell (tfkbnufft's ``table_oversamp``; the original
    NC-PDNet used tfkbnufft's default 2**10); gridding: ``"sparse"`` or
    ``"tfkbnufft"``, how interpolation and spreading are computed (the
    module docstring; the same coefficients, results equal to ~1e-5).

    ``forward``: x complex64 (batch, *image_shape) -> (batch, nsamples) or
    (batch, coils, nsamples). ``adjoint`` is its exact adjoint and ``normal``
    = ``adjoint(forward(x))``, whatever ``dcomp``. ``adjoint_dcomp(y)`` =
    A^H D y with D = diag(dcomp), the "adjoint + DCp" reconstruction. The
    density-weighted operator D^{1/2} A, whose normal is A^H D A (by the
    Toeplitz embedding if wished), is
    :class:`~fastmri_zoo.physics.noncartesian.DensityWeightedNUFFT`;
    :class:`~fastmri_zoo.physics.toeplitz.ToeplitzNormal` is A^H D A alone.

    Not XLA-compilable; works eagerly, in ``tf.function`` and in
    ``tf.data`` map functions, and is differentiable with respect to x (and
    smaps), not with respect to traj.
    """

    def __init__(
        self,
        traj,
        image_shape: Sequence[int],
        smaps=None,
        dcomp=None,
        oversampling: float = 2.0,
        numpoints: int = 6,
        table_oversampling: int = TABLE_OVERSAMPLING,
        gridding: str = "sparse",
    ):
        self.image_shape = tuple(int(n) for n in image_shape)
        self.ndim = len(self.image_shape)
        if self.ndim not in (2, 3):
            raise ValueError(f"image_shape: expected 2 or 3 spatial sizes, got {tuple(image_shape)}.")
        if oversampling < 1:
            raise ValueError(f"oversampling: expected a grid oversampling factor >= 1, got {oversampling}.")
        self.oversampling = float(oversampling)
        self.numpoints = int(numpoints)
        if int(table_oversampling) < 1:
            raise ValueError(
                f"table_oversampling: expected a positive number of table points per grid cell, got {table_oversampling}."
            )
        self.table_oversampling = int(table_oversampling)
        self.gridding = check_gridding(gridding)
        self.traj = prepare_traj(traj, self.ndim)
        self.nsamples = self.traj.shape[-1]
        self.smaps = None
        if smaps is not None:
            self.smaps = as_complex64("smaps", smaps)
            check_rank("smaps", self.smaps, self.ndim + 2, f"(batch, coils, {self.ndim} spatial axes)")
            spatial = static_shape(self.smaps)[2:]
            if any(a is not None and a != b for a, b in zip(spatial, self.image_shape)):
                raise ValueError(
                    f"smaps: expected spatial shape {self.image_shape} (image_shape), got {spatial}."
                )
            check_finite("smaps", self.smaps)
            check_batch("traj", self.traj.shape[0], "smaps", self.smaps.shape[0])
        self.dcomp = None if dcomp is None else prepare_dcomp(dcomp, self.nsamples)
        if self.dcomp is not None:
            check_batch("dcomp", self.dcomp.shape[0], "traj", self.traj.shape[0])
        self.grid_shape = grid_shape_for(self.image_shape, self.oversampling)
        geometry = (self.image_shape, self.grid_shape, self.numpoints, self.table_oversampling)
        if self.gridding == "sparse":
            self._sparse = sparse_gridding(self.traj, *geometry)
            _, self._adjoint_apodization = apodization(*geometry)
        else:
            self._forward_op, self._adjoint_op, _ = kb_operators(*geometry)
            # tfkbnufft's 'ortho' divides by sqrt(grid size), the orthonormal NDFT by sqrt(image size).
            self._scale = tf.constant(
                math.sqrt(np.prod(self.grid_shape) / np.prod(self.image_shape)), tf.complex64
            )

    @property
    def multicoil(self) -> bool:
        return self.smaps is not None

    def _gridding_inputs(self, coil_data: tf.Tensor):
        """Broadcast (batch, coils, ...) data and the trajectory to a common batch size."""
        batch = tf.maximum(tf.shape(coil_data)[0], tf.shape(self.traj)[0])
        data = tf.broadcast_to(coil_data, tf.concat([[batch], tf.shape(coil_data)[1:]], 0))
        traj = tf.broadcast_to(self.traj, tf.concat([[batch], tf.shape(self.traj)[1:]], 0))
        return data, traj

    def forward(self, x) -> tf.Tensor:
        """x: complex64 (batch, *image_shape) -> k-space (batch[, coils], nsamples)."""
        x = check_image("x", x, self.image_shape)
        check_batch("x", x.shape[0], "traj", self.traj.shape[0])
        coil_images = x[:, None]
        if self.multicoil:
            coil_images = coil_images * self.smaps
        y = self.coil_kspace(coil_images)
        return y if self.multicoil else y[:, 0]

    def coil_kspace(self, coil_images: tf.Tensor) -> tf.Tensor:
        """Forward NUFFT of each coil image, without coil maps: (batch, coils, *image_shape) -> (batch, coils, nsamples)."""
        if self.gridding == "tfkbnufft":
            return self._forward_op(*self._gridding_inputs(coil_images)) * self._scale
        return self._sparse.coil_kspace(coil_images)

    def _check_kspace(self, y) -> tf.Tensor:
        y = as_complex64("kspace", y)
        if self.multicoil:
            check_rank("kspace", y, 3, "(batch, coils, nsamples) for a multicoil NUFFT")
            check_same_dim("kspace", y.shape[1], "smaps", self.smaps.shape[1], "coils")
        else:
            check_rank("kspace", y, 2, "(batch, nsamples) for a single-coil NUFFT")
        check_same_dim("kspace", y.shape[-1], "traj", self.nsamples, "samples")
        check_batch("kspace", y.shape[0], "traj", self.traj.shape[0])
        check_finite("kspace", y)
        return y

    def coil_images(self, coil_kspace: tf.Tensor) -> tf.Tensor:
        """Adjoint NUFFT of each coil, without coil maps: (batch, coils, nsamples) -> (batch, coils, *image_shape)."""
        if self.gridding == "tfkbnufft":
            return self._adjoint_op(*self._gridding_inputs(coil_kspace)) * self._scale
        grid = self._sparse.spread(coil_kspace)
        shape = tf.shape(grid)
        grid = tf.reshape(grid, tf.concat([shape[:2], self.grid_shape], 0))
        return cropped_ifft(grid, self.image_shape) * self._adjoint_apodization

    def _adjoint(self, y: tf.Tensor) -> tf.Tensor:
        coil_images = self.coil_images(y if self.multicoil else y[:, None])
        if self.multicoil:
            return tf.reduce_sum(tf.math.conj(self.smaps) * coil_images, axis=1)
        return coil_images[:, 0]

    def _weight(self, y: tf.Tensor) -> tf.Tensor:
        if self.dcomp is None:
            return y
        dcomp = tf.cast(self.dcomp, tf.complex64)
        return y * (dcomp[:, None] if self.multicoil else dcomp)

    def adjoint(self, y) -> tf.Tensor:
        """k-space (batch[, coils], nsamples) -> image complex64 (batch, *image_shape)."""
        return self._adjoint(self._check_kspace(y))

    def adjoint_dcomp(self, y) -> tf.Tensor:
        """Density-compensated adjoint A^H D y (the "adjoint + DCp" reconstruction)."""
        return self._adjoint(self._weight(self._check_kspace(y)))

    def normal_dcomp(self, x) -> tf.Tensor:
        """A^H D A x by forward + weighted adjoint: the normal of the density-weighted operator D^{1/2} A."""
        return self._adjoint(self._weight(self.forward(x)))

    def __repr__(self) -> str:
        coils = "single-coil" if self.smaps is None else f"{self.smaps.shape[1]} coils"
        return (
            f"NUFFT(image_shape={self.image_shape}, nsamples={self.nsamples}, {coils}, "
            f"dcomp={'yes' if self.dcomp is not None else 'no'}, gridding={self.gridding!r})"
        )


def estimate_sensitivity_maps_nufft(
    kspace,
    traj,
    image_shape: Sequence[int],
    dcomp=None,
    center_radius: float = 0.1 * math.pi,
    eps: float = 1e-6,
) -> tf.Tensor:
    """Coil maps from the low-resolution centre of non-Cartesian k-space.

    Samples with |k| < ``center_radius`` (radians per pixel) are kept, each
    coil is reconstructed by the density-compensated adjoint NUFFT and the
    coil images are divided by their root-sum-of-squares (``normalize_by_rss``).
    Without ``dcomp`` the low-resolution images are the plain adjoint, more
    blurred where the trajectory oversamples the centre.

    kspace: complex64 (batch, coils, nsamples); traj: float32 (batch, ndim,
    nsamples) or (ndim, nsamples); dcomp: float32 (batch, nsamples),
    (nsamples,) or None. Returns complex64 (batch, coils, *image_shape).
    """
    if not 0 < center_radius <= math.pi * math.sqrt(len(image_shape)):
        raise ValueError(
            f"center_radius: expected a radius in (0, pi * sqrt(ndim)] radians per pixel, got {center_radius}."
        )
    operator = NUFFT(traj, image_shape, dcomp=dcomp)
    kspace = as_complex64("kspace", kspace)
    check_rank("kspace", kspace, 3, "(batch, coils, nsamples)")
    check_same_dim("kspace", kspace.shape[-1], "traj", operator.nsamples, "samples")
    check_batch("kspace", kspace.shape[0], "traj", operator.traj.shape[0])
    check_finite("kspace", kspace)
    weights = tf.cast(tf.norm(operator.traj, axis=1) < center_radius, tf.float32)
    if operator.dcomp is not None:
        weights = weights * operator.dcomp
    low_resolution = operator.coil_images(kspace * tf.cast(weights, tf.complex64)[:, None])
    return normalize_by_rss(low_resolution, eps=eps)
