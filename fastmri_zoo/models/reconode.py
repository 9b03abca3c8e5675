"""ReconODE (Chen, Chen & Sun, "MRI Image Reconstruction via Learning Optimization using Neural ODEs",
MICCAI 2020): reconstruction as a neural ODE solved by fixed, adjoint-trained or learned solvers."""

from __future__ import annotations

import functools

import keras
import tensorflow as tf

from ..layers import KSpaceReplacement, channels_to_complex, complex_to_channels
from ..layers.ode import LearnedSolverStep, TimeDependentCNN, get_tableau, odeint, odeint_adjoint
from .unrolled import UnrolledModel

__all__ = ["ReconODE", "RECONODE_MODES"]

#: "ft": backpropagation through the solver; "fa": continuous adjoint; "lt": learned solver.
RECONODE_MODES = ("ft", "fa", "lt")


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class ReconODE(UnrolledModel):
    """dx/dt = f(x, t, y) on [0, 1] from the zero-filled image, N = ``n_iter`` fixed solver steps,
    each followed by data consistency.

    x_0 = A^H y; for n = 0 ... N-1, with h = 1/N and t_n = n h:
    x_{n+1} = DC(step(x_n, t_n, h)), DC being :class:`~fastmri_zoo.layers.KSpaceReplacement`
    (the acquisition's ``prox_l2`` with gamma -> infinity: measured k-space values replace the
    estimate's on a Cartesian mask; conjugate gradient on SENSE and non-Cartesian operators).
    Images are handled as 2 real channels (real, imaginary).

    ``mode`` (paper sec. 2.2-2.3):

    - ``"ft"``: step = one step of the ``solver``'s Runge-Kutta method (``layers.ode.TABLEAUS``:
      ``"euler"``, ``"rk2"`` Heun, ``"rk4"`` classic) on the dynamics f = ``dynamics``, a
      :class:`~fastmri_zoo.layers.ode.TimeDependentCNN` (``n_layers`` time-dependent convolutions of
      ``n_filters`` channels; 5 x 32 is ~0.03M parameters) of concat(x, A^H y); trained by
      backpropagation through the solver.
    - ``"fa"``: the same network and forward pass; gradients by the continuous adjoint
      (``layers.ode.odeint_adjoint``: the augmented state solved backwards over each step with the
      same method), so training memory does not grow with the solver's stages or internal steps; the
      cascades pass the dynamics' weights on to one another (``odeint_adjoint``'s ``chain``), so their
      gradient is summed cascade by cascade and memory does not grow with ``n_iter`` either.
    - ``"lt"``: step = :class:`~fastmri_zoo.layers.ode.LearnedSolverStep` with as many stages as the
      ``solver``'s tableau (LT-Euler, LT-RK2 ~0.09M, LT-RK4 ~0.15M), one step function shared by
      the N cascades.

    ``checkpointing``: each cascade (step + DC) but the last runs under ``tf.recompute_grad``: its
    activations are recomputed during the backward pass instead of kept (same gradients, less
    memory, more time). The last cascade keeps its activations, as the last segment of PyTorch's
    ``checkpoint_sequential`` does: the backward pass starts with them, so keeping them costs no
    more than recomputing any one cascade, and it saves one of the N recomputations.

    Choices where the paper is silent: f and the learned stages see the zero-filled image A^H y as
    "the data" (two channels); time enters every layer by a scalar linear map (weight 1, bias 0 at
    start); DC is noiseless; the attention module is described in ``layers.ode``.

    inputs: those of the acquisition (Cartesian by default: ``kspace`` complex64 (batch, H, W) or
    (batch, coils, H, W) with ``smaps`` when ``multicoil``, and ``mask``); output: complex64
    (batch, H, W).
    """

    def __init__(
        self,
        n_iter: int = 5,
        mode: str = "lt",
        solver: str = "rk4",
        n_layers: int = 5,
        n_filters: int = 32,
        kernel_size: int = 3,
        activation: str = "relu",
        checkpointing: bool = False,
        multicoil: bool = False,
        **kwargs,
    ):
        super().__init__(n_iter=n_iter, multicoil=multicoil, **kwargs)
        if mode not in RECONODE_MODES:
            raise ValueError(f"mode: expected one of {list(RECONODE_MODES)}, got {mode!r}.")
        self.tableau = get_tableau(solver)
        self.mode = mode
        self.solver = self.tableau.name
        self.n_layers = int(n_layers)
        self.n_filters = int(n_filters)
        self.kernel_size = int(kernel_size)
        self.activation = activation
        self.checkpointing = bool(checkpointing)
        block = dict(n_layers=self.n_layers, n_filters=self.n_filters, kernel_size=self.kernel_size,
                     activation=activation, ndim=self.ndim)
        if mode == "lt":
            self.learned_solver = LearnedSolverStep(stages=self.tableau.stages, channels=2, name="learned_solver",
                                                    **block)
        else:
            self.dynamics = TimeDependentCNN(n_outputs=2, name="dynamics", **block)
        self.data_consistency = KSpaceReplacement(noiseless=True, name="data_consistency")

    @classmethod
    def small_config(cls) -> dict:
        return dict(n_iter=2, mode="lt", solver="rk2", n_layers=2, n_filters=4)

    def build_layers(self) -> None:
        spatial = (None,) * (self.ndim + 1)
        if self.mode == "lt":
            self.learned_solver.build(spatial + (2,))
        else:
            self.dynamics.build(spatial + (4,))

    # ------------------------------------------------------------------ the ODE

    def velocity(self, x, t, args, frozen=()):
        """f(x, t, y): the dynamics network with explicit weights; args = [*trainable weights, A^H y
        channels], ``frozen``: the values of its non-trainable weights (e.g. after ``freeze_layers``)."""
        *weights, data = args
        velocity, _ = self.dynamics.stateless_call(weights, list(frozen), tf.concat([x, data], axis=-1), t=t)
        return velocity

    def dynamics_arguments(self, data) -> list:
        """The tensors f depends on: [*the dynamics' trainable weights, A^H y channels]."""
        return [tf.convert_to_tensor(weight) for weight in self.dynamics.trainable_variables] + [data]

    def solver_step(self, i: int, x, data):
        """One step from t_i = i / n_iter of size 1 / n_iter; x, data: float32 (batch, *spatial, 2).

        In "fa" mode ``data`` is :meth:`dynamics_arguments` (as the previous step passed them on) and
        the step returns ``(x_next, arguments)`` (``odeint_adjoint``'s ``chain``: the cascades' weight
        gradient is summed step by step in the backward solves)."""
        h = 1.0 / self.n_iter
        t = i * h
        if self.mode == "lt":
            return self.learned_solver(x, data, t=t, h=h)
        frozen = [tf.convert_to_tensor(weight) for weight in self.dynamics.non_trainable_variables]
        velocity = functools.partial(self.velocity, frozen=frozen)
        if self.mode == "fa":
            return odeint_adjoint(velocity, x, data, t, t + h, 1, self.tableau, chain=True)
        args = self.dynamics_arguments(data)
        return odeint(lambda x, t: velocity(x, t, args), x, t, t + h, 1, self.tableau)

    # ------------------------------------------------------------------ the unrolled loop's parts

    def initial_state(self, measurements, operator, training=None):
        """(x_0, data): x_0 = A^H y as channels; data the same, or in "fa" mode the dynamics' arguments."""
        zero_filled = complex_to_channels(operator.adjoint(measurements)[..., None])
        return zero_filled, self.dynamics_arguments(zero_filled) if self.mode == "fa" else zero_filled

    def data_step(self, i, state, measurements, operator, training=None):
        return self.data_consistency(state, measurements, operator=operator)

    def iteration(self, i, state, measurements, operator, training=None):
        x, data = state  # data: A^H y channels, or in "fa" mode the dynamics' arguments as passed on

        def cascade(x, *data):
            data = list(data) if self.mode == "fa" else data[0]
            stepped = self.solver_step(i, x, data)
            if self.mode == "fa":
                stepped, data = stepped
            image = channels_to_complex(stepped)[..., 0]
            x = complex_to_channels(self.data_step(i, image, measurements, operator)[..., None])
            return (x, *data) if self.mode == "fa" else x

        if self.checkpointing and i < self.n_iter - 1:  # the last cascade is not recomputed (class docstring)
            cascade = tf.recompute_grad(cascade)
        if self.mode == "fa":
            x, *data = cascade(x, *data)
            return x, data
        return cascade(x, data), data

    def output(self, state, measurements, operator):
        return channels_to_complex(state[0])[..., 0]

    def get_config(self):
        config = super().get_config()
        config.update(
            mode=self.mode,
            solver=self.solver,
            n_layers=self.n_layers,
            n_filters=self.n_filters,
            kernel_size=self.kernel_size,
            activation=self.activation,
            checkpointing=self.checkpointing,
            multicoil=self.multicoil,
            ndim=self.ndim,
        )
        if self.acquisition_kind is not None:
            config["acquisition_options"] = self.acquisition.options()
        return config
