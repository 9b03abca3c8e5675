"""The linear-operator interface every measurement model follows."""

from __future__ import annotations

import tensorflow as tf


class LinearOperator:
    """A linear map A from images to measurements.

    Subclasses implement ``forward`` (A x) and ``adjoint`` (A^H y); ``normal``
    (A^H A x) defaults to their composition and is overridden where a faster
    form exists (e.g. the Toeplitz embedding of a NUFFT). Everything an
    acquisition needs (mask, coil maps, trajectory, density weights) is held
    as tensors, so an operator can be built inside ``tf.data`` or a
    ``tf.function`` and is differentiable with ``tf.GradientTape``.
    """

    def forward(self, x: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def adjoint(self, y: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def normal(self, x: tf.Tensor) -> tf.Tensor:
        return self.adjoint(self.forward(x))

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        return self.forward(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def as_complex64(name: str, x) -> tf.Tensor:
    """Convert ``x`` to a complex64 tensor, refusing real input."""
    from ..checks import check_complex

    x = tf.convert_to_tensor(x)
    check_complex(name, x)
    return tf.cast(x, tf.complex64)
