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


def test_cg_in_a_graph_is_one_loop_with_the_values_and_gradients_of_the_unrolled_iterations(rng):
    """In a tf.function, CG is one while loop (its graph does not grow with the iteration count) whose
    solution and gradient (with respect to the right-hand side and the regularisation, through every
    iteration) equal those of the same iterations run eagerly, step by step."""
    import tensorflow as tf

    h, w, coils = 8, 6, 3
    mask = (rng.uniform(size=(1, 1, w)) < 0.6).astype(np.float32)
    op = physics.SENSE(mask, crandn(rng, (2, coils, h, w)))
    rhs, x0 = tf.constant(crandn(rng, (2, h, w))), tf.constant(crandn(rng, (2, h, w)))
    weight = tf.constant(crandn(rng, (2, h, w)))

    def solve(rhs, lam, iterations):
        with tf.GradientTape() as tape:
            tape.watch([rhs, lam])
            x = physics.conjugate_gradient(op.normal, rhs, x0=x0, num_iterations=iterations, regularization=lam)
            loss = tf.reduce_sum(tf.abs(x * weight) ** 2)
        return (x, *tape.gradient(loss, [rhs, lam]))

    lam = tf.constant(0.05)
    eager = solve(rhs, lam, 7)
    graph = tf.function(solve).get_concrete_function(rhs, lam, 7)
    for got, expected in zip(graph(rhs, lam), eager, strict=True):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=2e-5, atol=2e-5 * np.abs(expected).max())
    assert any(op.type.endswith("While") for op in graph.graph.get_operations())  # (Stateless)While
    longer = tf.function(solve).get_concrete_function(rhs, lam, 30)
    assert len(longer.graph.get_operations()) == len(graph.graph.get_operations())
