"""The one unrolled loop of the zoo: initialisation, then ``n_iter`` iterations of (data step, prior).

An unrolled network (PDNet, XPDNet, NC-PDNet, GriddedPDNet, Cascade-net,
MoDL, VarNet, KIKI-net) is a :class:`UnrolledModel` that says

- how it starts (``initial_state``: e.g. A^H y, buffers of copies of it, or y itself),
- its data step (``data_step``: a step from ``layers.data_consistency``, or
  the gradient A^H (A x - y) fed to the prior),
- its prior (``prior_step``, usually ``layers.complex_denoise`` around
  ``prior(i)``: the i-th of ``image_nets`` (untied) or the one ``denoiser``
  (``SHARED_PRIOR``)),
- the order of the two in an iteration (``STEP_ORDER``) and what it returns
  (``output``).

The state carried from one iteration to the next is whatever the family
needs (an image, a k-space, a dict of buffers). A new family overrides a step
or a prior; the loop, the acquisition, the validation, the config and the
preset I/O come from the bases.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..layers import complex_denoise
from .base import ReconstructionModel

__all__ = ["UnrolledModel"]


class UnrolledModel(ReconstructionModel):
    """``n_iter`` iterations of (data step, prior) after an initialisation.

    ``call``: (measurements y, operator A) from the acquisition (``measurements_and_operator``);
    state = ``initial_state(y, A)``; for i in range(n_iter): state = ``iteration(i, state, y, A)``,
    which runs the steps named in ``STEP_ORDER`` (``"data"``: ``data_step``, ``"prior"``:
    ``prior_step``); returns ``output(state)``.
    """

    STEP_ORDER: ClassVar[tuple[str, ...]] = ("data", "prior")
    #: one prior for every iteration (``self.denoiser``) instead of one per iteration (``self.image_nets``)
    SHARED_PRIOR: ClassVar[bool] = False
    RENAMED_ARGUMENTS: ClassVar[dict[str, str]] = {}

    def __init__(self, n_iter: int = 10, **kwargs):
        super().__init__(**kwargs)
        if int(n_iter) < 1:
            raise ValueError(f"n_iter: expected a positive integer, got {n_iter}.")
        self.n_iter = int(n_iter)

    # ------------------------------------------------------------------ the parts a family overrides

    def measurements_and_operator(self, inputs, image_shape=None, training=None):
        """(measurements, LinearOperator) of this call; by default the acquisition's."""
        return self.operator(inputs, image_shape)

    def initial_state(self, measurements, operator, training=None) -> Any:
        """The starting state; by default the adjoint A^H y."""
        return operator.adjoint(measurements)

    def data_step(self, i: int, state, measurements, operator, training=None):
        raise NotImplementedError

    def prior(self, i: int):
        """The network of iteration ``i``: ``denoiser`` if ``SHARED_PRIOR``, else ``image_nets[i]``."""
        return self.denoiser if self.SHARED_PRIOR else self.image_nets[i]

    def prior_step(self, i: int, state, training=None):
        """Residual complex denoising of the image state by ``prior(i)``."""
        return complex_denoise(self.prior(i), state, residual=True, training=training)

    def output(self, state, measurements, operator):
        """The reconstruction, complex64 (batch, *spatial); by default the state itself."""
        return state

    # ------------------------------------------------------------------ the loop, written once

    def iteration(self, i: int, state, measurements, operator, training=None):
        for step in self.STEP_ORDER:
            if step == "data":
                state = self.data_step(i, state, measurements, operator, training=training)
            else:
                state = self.prior_step(i, state, training=training)
        return state

    def call(self, inputs, training=None, image_shape=None):
        measurements, operator = self.measurements_and_operator(inputs, image_shape, training=training)
        state = self.initial_state(measurements, operator, training=training)
        for i in range(self.n_iter):
            state = self.iteration(i, state, measurements, operator, training=training)
        return self.output(state, measurements, operator)

    def get_config(self):
        config = super().get_config()
        config.update(n_iter=self.n_iter)
        return config
