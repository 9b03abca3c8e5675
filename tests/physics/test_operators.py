"""One suite over every measurement operator: adjointness, linearity, gradient, normal.

Adding an operator means adding one entry to ``OPERATORS``: a factory
``rng -> (operator, image_shape, measurement_shape, adjoint_tolerance)``.
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


def nufft_toeplitz(rng):
    op = physics.NUFFT(_radial(rng, 12, 24), (12, 10), smaps=_smaps(rng, 2, 4, (12, 10)), toeplitz=True)
    return op, (2, 12, 10), (2, 4, 288), NUFFT_TOL


OPERATORS = [fft2d, fft3d, cartesian_single, cartesian_single_3d, sense, sense_3d,
             nufft_single, nufft_multicoil, nufft_3d, nufft_toeplitz]


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
