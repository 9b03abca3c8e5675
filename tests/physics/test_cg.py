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


class _CastWarnings:
    """Counts TensorFlow's "casting complex64 to float32 discards the imaginary part" log records."""

    def __init__(self):
        import logging

        self.count = 0
        self.logger = logging.getLogger("tensorflow")
        self.handler = logging.Handler()
        self.handler.emit = self._emit

    def _emit(self, record):
        self.count += "casting an input of type complex64" in record.getMessage()

    def __enter__(self):
        self.logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)


def test_real_to_complex64_has_the_cast_values_and_gradient_without_its_warning(rng):
    """d/dx sum |x z|^2 = 2 x |z|^2 (closed form) through real_to_complex64, the value equal to tf.cast's;
    tracing the gradient of tf.cast logs TensorFlow's "discard the imaginary part" warning (the
    control), real_to_complex64's does not."""
    import tensorflow as tf

    from fastmri_zoo.checks import real_to_complex64

    x = tf.constant(rng.standard_normal(5).astype(np.float32))
    z = tf.constant(crandn(rng, (5,)))
    np.testing.assert_array_equal(real_to_complex64(x).numpy(), tf.cast(x, tf.complex64).numpy())

    def gradient_through(convert):
        @tf.function
        def gradient(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.abs(convert(x) * z) ** 2)
            return tape.gradient(loss, x)

        with _CastWarnings() as warnings:
            value = gradient(x).numpy()
        return value, warnings.count

    expected = 2 * x.numpy() * np.abs(z.numpy()) ** 2
    cast, cast_warnings = gradient_through(lambda x: tf.cast(x, tf.complex64))
    converted, warnings = gradient_through(real_to_complex64)
    np.testing.assert_allclose(converted, expected, rtol=1e-5)
    np.testing.assert_allclose(cast, expected, rtol=1e-5)
    assert cast_warnings >= 1 and warnings == 0


def test_training_a_learned_cg_regularisation_logs_no_cast_warning(rng):
    """The gradient of a multicoil MoDL's training step (its learned regularisation, through CG) is
    traced without TensorFlow's complex-to-real cast warning (it logged 10 of them before)."""
    import tensorflow as tf

    from fastmri_zoo.models import MoDL
    from fastmri_zoo.training import get_optimizer
    from fastmri_zoo.training.fit import l1_magnitude_step
    from tests.models.conftest import make_inputs

    model = MoDL(**MoDL.small_config(), multicoil=True)
    model.build(None)
    image, inputs = make_inputs(rng, multicoil=True)
    step = l1_magnitude_step(model, get_optimizer("adam", 1e-3))
    with _CastWarnings() as warnings:
        loss = float(step(inputs, tf.constant(np.abs(image))))
    assert np.isfinite(loss) and warnings.count == 0
