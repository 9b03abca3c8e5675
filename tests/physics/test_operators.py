"""One suite over every measurement operator: adjointness, linearity, gradient, normal, prox_l2.

Adding an operator means adding one entry to ``OPERATORS``: a factory
``rng -> (operator, image_shape, measurement_shape, adjoint_tolerance)``, and
one to ``TINY_OPERATORS`` (the same operator on a few pixels, batch 1) for the
dense check of ``prox_l2``.
"""

import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo import physics
from tests.conftest import crandn

FFT_TOL = 1e-5
NUFFT_TOL = 1e-3


def _column_mask(rng, batch, width):
    mask = (rng.uniform(size=(batch, 1, width)) < 0.4).astype(np.float32)
    mask[..., width // 2 - 2 : width // 2 + 2] = 1
    return mask


def _smaps(rng, batch, coils, spatial):
    maps = crandn(rng, (batch, coils, *spatial))
    return maps / np.sqrt((np.abs(maps) ** 2).sum(1, keepdims=True))


def fft2d(rng):
    return physics.FFT(ndim=2), (2, 12, 10), (2, 12, 10), FFT_TOL


def fft3d(rng):
    return physics.FFT(ndim=3), (2, 6, 8, 10), (2, 6, 8, 10), FFT_TOL


def cartesian_single(rng):
    return physics.CartesianSingleCoil(_column_mask(rng, 2, 10)), (2, 12, 10), (2, 12, 10), FFT_TOL


def cartesian_single_3d(rng):
    mask = (rng.uniform(size=(2, 6, 1, 10)) < 0.5).astype(np.float32)
    return physics.CartesianSingleCoil(mask, ndim=3), (2, 6, 8, 10), (2, 6, 8, 10), FFT_TOL


def sense(rng):
    op = physics.SENSE(_column_mask(rng, 2, 10), _smaps(rng, 2, 4, (12, 10)))
    return op, (2, 12, 10), (2, 4, 12, 10), FFT_TOL


def sense_3d(rng):
    mask = (rng.uniform(size=(2, 6, 1, 10)) < 0.5).astype(np.float32)
    op = physics.SENSE(mask, _smaps(rng, 2, 3, (6, 8, 10)), ndim=3)
    return op, (2, 6, 8, 10), (2, 3, 6, 8, 10), FFT_TOL


def _radial(rng, spokes, samples):
    angles = rng.uniform(0, np.pi, spokes)
    radii = (np.arange(samples) - samples // 2) * 2 * np.pi / samples
    traj = np.stack([np.outer(np.sin(angles), radii), np.outer(np.cos(angles), radii)])
    return traj.reshape(2, -1).astype(np.float32)


def nufft_single(rng):
    return physics.NUFFT(_radial(rng, 12, 24), (12, 10)), (2, 12, 10), (2, 288), NUFFT_TOL


def nufft_multicoil(rng):
    op = physics.NUFFT(_radial(rng, 12, 24), (12, 10), smaps=_smaps(rng, 2, 4, (12, 10)))
    return op, (2, 12, 10), (2, 4, 288), NUFFT_TOL


def nufft_3d(rng):
    traj = rng.uniform(-np.pi, np.pi, (2, 3, 200)).astype(np.float32)
    op = physics.NUFFT(traj, (6, 8, 10), smaps=_smaps(rng, 2, 3, (6, 8, 10)))
    return op, (2, 6, 8, 10), (2, 3, 200), NUFFT_TOL


def _dcomp(rng, batch, nsamples):
    return rng.uniform(0.2, 1.5, (batch, nsamples)).astype(np.float32)


def weighted_nufft(rng):
    op = physics.DensityWeightedNUFFT(_radial(rng, 12, 24), (12, 10), dcomp=_dcomp(rng, 2, 288))
    return op, (2, 12, 10), (2, 288), NUFFT_TOL


def weighted_nufft_toeplitz(rng):
    op = physics.DensityWeightedNUFFT(
        _radial(rng, 12, 24), (12, 10), smaps=_smaps(rng, 2, 4, (12, 10)), dcomp=_dcomp(rng, 1, 288), toeplitz=True
    )
    return op, (2, 12, 10), (2, 4, 288), NUFFT_TOL


def weighted_nufft_legacy(rng):
    op = physics.DensityWeightedNUFFT(
        _radial(rng, 12, 24), (12, 10), smaps=_smaps(rng, 2, 3, (12, 10)), dcomp=_dcomp(rng, 2, 288),
        toeplitz=True, legacy_im_size=(16, 14),
    )
    return op, (2, 12, 10), (2, 3, 288), NUFFT_TOL


def weighted_nufft_3d(rng):
    traj = rng.uniform(-np.pi, np.pi, (2, 3, 200)).astype(np.float32)
    op = physics.DensityWeightedNUFFT(traj, (6, 8, 10), dcomp=_dcomp(rng, 2, 200), toeplitz=True)
    return op, (2, 6, 8, 10), (2, 200), NUFFT_TOL


def toeplitz_normal(rng):
    op = physics.ToeplitzNormal(_radial(rng, 12, 24), (12, 10), dcomp=_dcomp(rng, 2, 288),
                                smaps=_smaps(rng, 2, 3, (12, 10)))
    return op, (2, 12, 10), (2, 12, 10), NUFFT_TOL


def gridded(rng):
    traj, shape = _radial(rng, 8, 12), (12, 10)
    kspace = crandn(rng, (2, traj.shape[-1]))
    _, op = physics.gridded_operator(kspace, traj, shape, dcomp=_dcomp(rng, 1, traj.shape[-1]))
    return op, (2, *shape), (2, *shape), FFT_TOL


def gridded_multicoil(rng):
    traj, shape = _radial(rng, 8, 12), (12, 10)
    kspace = crandn(rng, (2, 3, traj.shape[-1]))
    _, op = physics.gridded_operator(kspace, traj, shape, smaps=_smaps(rng, 2, 3, shape))
    return op, (2, *shape), (2, 3, *shape), FFT_TOL


OPERATORS = [fft2d, fft3d, cartesian_single, cartesian_single_3d, sense, sense_3d,
             nufft_single, nufft_multicoil, nufft_3d, weighted_nufft, weighted_nufft_toeplitz,
             weighted_nufft_legacy, weighted_nufft_3d, toeplitz_normal, gridded, gridded_multicoil]


def _inner(a, b):
    return np.vdot(np.asarray(a).ravel(), np.asarray(b).ravel())


@pytest.fixture(params=OPERATORS, ids=lambda f: f.__name__)
def operator_case(request, rng):
    return request.param(rng)


def test_adjointness(operator_case, rng):
    op, xshape, yshape, tol = operator_case
    x, y = crandn(rng, xshape), crandn(rng, yshape)
    lhs = _inner(op.forward(x).numpy(), y)
    rhs = _inner(x, op.adjoint(y).numpy())
    assert abs(lhs - rhs) / abs(lhs) < tol


def test_linearity(operator_case, rng):
    op, xshape, _, tol = operator_case
    x1, x2 = crandn(rng, xshape), crandn(rng, xshape)
    a, b = np.complex64(0.7 - 1.3j), np.complex64(-2.1 + 0.4j)
    combined = op.forward(a * x1 + b * x2).numpy()
    separate = a * op.forward(x1).numpy() + b * op.forward(x2).numpy()
    assert np.linalg.norm(combined - separate) / np.linalg.norm(separate) < 10 * tol


def test_normal_is_adjoint_of_forward(operator_case, rng):
    op, xshape, _, tol = operator_case
    x = crandn(rng, xshape)
    expected = op.adjoint(op.forward(x)).numpy()
    got = op.normal(x).numpy()
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 10 * tol


def test_gradient_of_data_fidelity(operator_case, rng):
    """d/dx 0.5 ||A x - y||^2 is A^H (A x - y); TF returns the conjugate-convention gradient."""
    op, xshape, yshape, tol = operator_case
    x = tf.Variable(crandn(rng, xshape))
    y = crandn(rng, yshape)
    with tf.GradientTape() as tape:
        residual = op.forward(x) - y
        loss = 0.5 * tf.reduce_sum(tf.math.real(residual * tf.math.conj(residual)))
    grad = tape.gradient(loss, x).numpy()
    expected = op.adjoint(op.forward(x) - y).numpy()
    assert np.linalg.norm(grad - expected) / np.linalg.norm(expected) < 10 * tol


def test_in_tf_function(operator_case, rng):
    op, xshape, _, tol = operator_case
    x = crandn(rng, xshape)
    traced = tf.function(lambda v: op.normal(v))
    expected = op.normal(x).numpy()
    assert np.linalg.norm(traced(x).numpy() - expected) / np.linalg.norm(expected) < 10 * tol


def test_every_operator_is_a_linear_operator(operator_case):
    assert isinstance(operator_case[0], physics.LinearOperator)


# --------------------------------------------------------------------------- prox_l2 against a dense solve

# The same operators on a few pixels with batch 1: (operator, image_shape, measurement_shape).
TINY_SHAPE = (6, 5)


def _tiny_traj(rng):
    return rng.uniform(-np.pi, np.pi, (2, 24)).astype(np.float32)


TINY_OPERATORS = {
    "fft2d": lambda rng: (physics.FFT(ndim=2), (1, *TINY_SHAPE)),
    "cartesian_single": lambda rng: (physics.CartesianSingleCoil(_column_mask(rng, 1, 5)), (1, *TINY_SHAPE)),
    "cartesian_weights": lambda rng: (
        physics.CartesianSingleCoil(rng.uniform(0, 2, (1, 6, 5)).astype(np.float32)), (1, *TINY_SHAPE)),
    "sense": lambda rng: (physics.SENSE(_column_mask(rng, 1, 5), _smaps(rng, 1, 2, TINY_SHAPE)),
                          (1, 2, *TINY_SHAPE)),
    "nufft_multicoil": lambda rng: (physics.NUFFT(_tiny_traj(rng), TINY_SHAPE, smaps=_smaps(rng, 1, 2, TINY_SHAPE)),
                                    (1, 2, 24)),
    "weighted_nufft_toeplitz": lambda rng: (
        physics.DensityWeightedNUFFT(_tiny_traj(rng), TINY_SHAPE, dcomp=_dcomp(rng, 1, 24), toeplitz=True,
                                     legacy_im_size=(8, 7)), (1, 24)),
    "toeplitz_normal": lambda rng: (physics.ToeplitzNormal(_tiny_traj(rng), TINY_SHAPE, dcomp=_dcomp(rng, 1, 24)),
                                    (1, *TINY_SHAPE)),
}


def dense_matrix(op, image_shape):
    """The explicit matrix (measurements x pixels) of op, one basis image per batch item."""
    pixels = int(np.prod(image_shape[1:]))
    basis = np.eye(pixels, dtype=np.complex64).reshape(pixels, *image_shape[1:])
    columns = op.forward(basis).numpy().reshape(pixels, -1)
    return columns.T.astype(np.complex128)


@pytest.mark.parametrize("gamma", [0.5, None], ids=["gamma", "projection"])
@pytest.mark.parametrize("name", list(TINY_OPERATORS))
def test_prox_l2_against_a_dense_solve(name, gamma, rng):
    op, yshape = TINY_OPERATORS[name](rng)
    xshape = (1, *TINY_SHAPE)
    matrix = dense_matrix(op, xshape)
    z, y = crandn(rng, xshape), crandn(rng, yshape)
    zv, yv = z.reshape(-1).astype(np.complex128), y.reshape(-1).astype(np.complex128)
    gram = matrix.conj().T @ matrix
    if gamma is None:
        # The data kept exactly: the least-squares solution nearest z, z + A^+ (y - A z).
        expected = zv + np.linalg.pinv(matrix, rcond=1e-4) @ (yv - matrix @ zv)
    else:
        expected = np.linalg.solve(gram + np.eye(len(zv)) / gamma, matrix.conj().T @ yv + zv / gamma)
    got = op.prox_l2(z, y, gamma=gamma, n_iter=60).numpy().reshape(-1)
    tolerance = 1e-4 if isinstance(op, (physics.FFT, physics.CartesianSingleCoil)) else 2e-3
    if gamma is None and not isinstance(op, (physics.FFT, physics.CartesianSingleCoil)):
        # CG on a singular system converges only on the well-conditioned part: compare the normal equations.
        residual = gram @ got - matrix.conj().T @ yv
        assert np.linalg.norm(residual) / np.linalg.norm(matrix.conj().T @ yv) < 2e-2
        return
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < tolerance


def test_cartesian_projection_is_kspace_replacement_bitwise(rng):
    mask = _column_mask(rng, 2, 10)
    op = physics.CartesianSingleCoil(mask)
    z, y = crandn(rng, (2, 12, 10)), crandn(rng, (2, 12, 10)) * mask
    m = tf.cast(mask, tf.complex64)
    replaced = physics.ifftc((1.0 - m) * physics.fftc(z) + m * y).numpy()
    np.testing.assert_array_equal(op.prox_l2(z, y).numpy(), replaced)


def test_default_prox_l2_is_the_cg_of_the_regularised_normal_equations(rng):
    """LinearOperator.prox_l2 is MoDL's CG step with lam = 1 / gamma (same solver, same start)."""
    op = physics.SENSE(_column_mask(rng, 2, 10), _smaps(rng, 2, 3, (12, 10)))
    z, y = crandn(rng, (2, 12, 10)), crandn(rng, (2, 3, 12, 10))
    lam = 0.05
    rhs = op.adjoint(y) + lam * z
    expected = physics.conjugate_gradient(op.normal, rhs, x0=z, num_iterations=4, regularization=lam).numpy()
    got = op.prox_l2(z, y, gamma=1 / lam, n_iter=4).numpy()
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-5
