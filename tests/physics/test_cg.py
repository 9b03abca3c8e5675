import numpy as np

from fastmri_zoo import physics
from tests.conftest import crandn


def test_cg_matches_dense_solve(rng):
    """CG on (A^H A + lam I) x = A^H y against numpy's dense solve of the same system."""
    h, w, coils = 8, 6, 3
    mask = (rng.uniform(size=(1, 1, w)) < 0.6).astype(np.float32)
    smaps = crandn(rng, (1, coils, h, w))
    y = crandn(rng, (1, coils, h, w)) * mask[:, None]
    op = physics.SENSE(mask, smaps)
    lam = 0.05
    # Dense matrix of A from its action on the canonical basis.
    basis = np.eye(h * w, dtype=np.complex64).reshape(h * w, h, w)
    columns = [op.forward(b[None]).numpy().ravel() for b in basis]
    a = np.stack(columns, axis=1)
    expected = np.linalg.solve(a.conj().T @ a + lam * np.eye(h * w), a.conj().T @ y.ravel())
    got = physics.conjugate_gradient(op.normal, op.adjoint(y), num_iterations=h * w,
                                     regularization=lam).numpy().ravel()
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-4


def test_cg_tolerance_stops_early_without_nan(rng):
    op = physics.FFT()
    b = crandn(rng, (2, 8, 8))
    x = physics.conjugate_gradient(op.normal, b, num_iterations=5, tolerance=1e-3).numpy()
    np.testing.assert_allclose(x, b, atol=1e-5)
