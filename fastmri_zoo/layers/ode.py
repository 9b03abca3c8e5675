"""Neural-ODE blocks: explicit Runge-Kutta solvers from a Butcher tableau, their continuous adjoint,
time-dependent convolutions and the learned solver step of ReconODE (Chen, Chen & Sun, MICCAI 2020).

Solvers (paper eqs. 7-10) are written once, from a Butcher tableau (A, b, c)::

    k_i = f(x_n + h sum_{j<i} A_ij k_j, t_n + c_i h),    x_{n+1} = x_n + h sum_i b_i k_i

(the paper names the weights b_i "a_i" and the matrix A_ij "b_ij"). :data:`TABLEAUS` holds Euler,
RK2 (Heun: b = 1/2, 1/2; A_21 = c_2 = 1) and RK4 (classic: b = 1/6, 2/6, 2/6, 1/6; A_21 = A_32 =
c_2 = c_3 = 1/2; A_43 = c_4 = 1). A state is a tensor or any nest of tensors (``tf.nest``).

- :func:`odeint`: N fixed steps from t0 to t1 (t1 < t0 integrates backwards). Differentiating through
  it with ``tf.GradientTape`` is "FT" (backpropagation through the solver: memory grows with N).
- :func:`odeint_adjoint`: the same forward solve inside ``tf.custom_gradient``; its gradient is the
  continuous adjoint ("FA", Chen et al. 2018): the augmented state (x, a = dL/dx, dL/dargs) is solved
  backwards from t1 to t0 with the same tableau and the same N steps, x being reconstructed
  backwards from x(t1), so nothing of the forward solve is kept (memory does not grow with N). The
  gradient is that of the exact flow up to O(h^p), not the exact gradient of the discrete solve.
  Everything ``f`` depends on (network weights, conditioning data) is passed as explicit tensors in
  ``args``; ``f`` must read no variable (a Keras layer is called with ``stateless_call``). A sequence
  of calls sharing ``args`` (the cascades of an unrolled network, with data consistency between
  them) passes them on with ``chain=True``, so its gradient is summed call by call in the backward
  solves rather than held N times until TensorFlow adds the N contributions at the end.

Layers:

- :class:`TimeConv`: a time-dependent convolution (paper Fig. 2A): the time t goes through a learned
  linear map tau(t) = w t + b (two scalars per layer) and is concatenated to the feature maps as one
  constant channel before the convolution.
- :class:`TimeDependentCNN`: ``n_layers`` of them, ``n_filters`` channels, an activation between
  layers and a linear last layer (the dynamics f of ReconODE: 5 layers, 32 channels, ~0.03M).
- :class:`LearnedSolverStep`: ReconODE's learned solver (LT, eqs. 11-13). Stage i is a
  ``TimeDependentCNN`` G_i of (x_n, F_1 ... F_{i-1}, data) at time t_n, with dilation s - i + 1
  (s stages: dilations decrease stage by stage down to 1); an attention CNN of (x_n, F_1 ... F_s)
  at t_n gives per-pixel weights alpha_i (softmax over the stages, so they sum to 1 as a tableau's
  weights do) and x_{n+1} = x_n + h sum_i alpha_i F_i. The paper does not give the attention
  module's form nor what exactly enters it: this one is chosen as a 5-layer time-dependent CNN like
  the stages, which matches the paper's parameter counts (LT-RK2 0.09M, LT-RK4 0.15M: s + 1 blocks of
  ~0.03M); "the data" is the zero-filled image A^H y, as two channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import keras
import tensorflow as tf

from .blocks import make_activation
from .convolution import Conv2D, Conv3D

__all__ = [
    "ButcherTableau",
    "TABLEAUS",
    "get_tableau",
    "rk_step",
    "odeint",
    "odeint_adjoint",
    "TimeConv",
    "TimeDependentCNN",
    "LearnedSolverStep",
]


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method: ``a`` strictly lower triangular (stage i's rows), weights ``b``,
    nodes ``c``; ``order``: its order of accuracy."""

    name: str
    a: tuple
    b: tuple
    c: tuple
    order: int

    @property
    def stages(self) -> int:
        return len(self.b)


TABLEAUS = {
    "euler": ButcherTableau("euler", a=((),), b=(1.0,), c=(0.0,), order=1),
    "rk2": ButcherTableau("rk2", a=((), (1.0,)), b=(0.5, 0.5), c=(0.0, 1.0), order=2),
    "rk4": ButcherTableau(
        "rk4",
        a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
        b=(1 / 6, 2 / 6, 2 / 6, 1 / 6),
        c=(0.0, 0.5, 0.5, 1.0),
        order=4,
    ),
}


def get_tableau(solver) -> ButcherTableau:
    """A :class:`ButcherTableau` from its name in :data:`TABLEAUS` (or the tableau itself)."""
    if isinstance(solver, ButcherTableau):
        return solver
    if not isinstance(solver, str) or solver.lower() not in TABLEAUS:
        raise ValueError(f"solver: expected one of {sorted(TABLEAUS)}, got {solver!r}.")
    return TABLEAUS[solver.lower()]


def _combine(x, h: float, coefficients: Sequence[float], slopes: Sequence):
    """x + h sum_j coefficients[j] slopes[j] on nests of tensors, skipping zero coefficients."""
    terms = [(c, k) for c, k in zip(coefficients, slopes) if c != 0.0]
    if not terms:
        return x

    def combine(x, *ks):
        return x + sum((h * c) * k for (c, _), k in zip(terms, ks))  # Python floats: no float32 rounding

    return tf.nest.map_structure(combine, x, *[k for _, k in terms])


def rk_step(f: Callable, x, t: float, h: float, tableau) -> object:
    """One explicit Runge-Kutta step of dx/dt = f(x, t) from (x, t) with step h (any sign)."""
    tableau = get_tableau(tableau)
    slopes = []
    for row, node in zip(tableau.a, tableau.c):
        slopes.append(f(_combine(x, h, row, slopes), t + node * h))
    return _combine(x, h, tableau.b, slopes)


def odeint(f: Callable, x0, t0: float = 0.0, t1: float = 1.0, n_steps: int = 1, tableau="rk4"):
    """x(t1) of dx/dt = f(x, t), x(t0) = x0, by ``n_steps`` fixed steps of the tableau's method.

    x0: a tensor or a nest of tensors; t0, t1: Python floats (t1 < t0 integrates backwards).
    """
    if int(n_steps) < 1:
        raise ValueError(f"n_steps: expected a positive integer, got {n_steps}.")
    tableau = get_tableau(tableau)
    h = (float(t1) - float(t0)) / int(n_steps)
    x = x0
    for n in range(int(n_steps)):
        x = rk_step(f, x, float(t0) + n * h, h, tableau)
    return x


def odeint_adjoint(
    f: Callable, x0: tf.Tensor, args: Sequence, t0: float = 0.0, t1: float = 1.0, n_steps: int = 1, tableau="rk4",
    chain: bool = False,
):
    """:func:`odeint` of dx/dt = f(x, t, args) whose gradient is the continuous adjoint (module docstring).

    x0: float tensor; args: list of tensors ``f`` depends on (weights, data), which get gradients.
    Backwards, from t1 to t0 with the same steps: dx/dt = f, da/dt = -a^T df/dx,
    dg/dt = -a^T df/dargs, from (x(t1), dL/dx(t1), g1); then dL/dx0 = a(t0), dL/dargs = g(t0).

    Returns x(t1); with ``chain``, ``(x(t1), args_out)``: the same values as new tensors, for the next
    call of a sequence. g1 is then the gradient ``args_out`` receive (the later calls' sum), else 0, so
    the sequence's gradient with respect to ``args`` is accumulated in the backward solves one call at a
    time (and waits for them in a graph), instead of being held once per call until the end.
    """
    tableau = get_tableau(tableau)
    args = [tf.convert_to_tensor(arg) for arg in args]

    @tf.custom_gradient
    def solve(x0, *args):
        args = [tf.stop_gradient(arg) for arg in args]  # no tape records the forward solve: nothing of it is kept
        x1 = odeint(lambda x, t: f(x, t, args), tf.stop_gradient(x0), t0, t1, n_steps, tableau)

        def gradient(dx1, *dargs_later):
            dx1 = tf.convert_to_tensor(dx1)
            with tf.control_dependencies([dx1]):  # in a graph, the backward solve waits for its gradient
                x1_again = tf.identity(x1)
                # (and so do its starting sums: a graph allocating them early holds one per call)
                g1 = [tf.zeros_like(arg) if later is None else tf.identity(later)
                      for arg, later in zip(args, dargs_later or [None] * len(args))]
            def augmented(state, t):
                x, adjoint, accumulated = state
                # Neither x's backward chain nor the parts of f that do not read x (a time channel built
                # from a static shape, say) need the adjoint or the accumulated gradients: without this, a
                # graph may run them ahead and hold what they make, for every step of every call, until
                # the vector-Jacobian products that use them run (memory growing with N again)
                with tf.control_dependencies([adjoint, *accumulated]):
                    x = tf.identity(x)
                    with tf.GradientTape() as tape:
                        tape.watch([x] + args)
                        velocity = f(x, t, args)
                vjps = tape.gradient(
                    velocity, [x] + args, output_gradients=adjoint, unconnected_gradients=tf.UnconnectedGradients.ZERO
                )
                return velocity, -vjps[0], [-g for g in vjps[1:]]

            state = (tf.stop_gradient(x1_again), dx1, g1)
            _, dx0, dargs = odeint(augmented, state, t1, t0, n_steps, tableau)
            return (dx0, *dargs)

        if chain:
            return (x1, *[tf.identity(arg) for arg in args]), gradient
        return x1, gradient

    if chain:
        x1, *args_out = solve(tf.convert_to_tensor(x0), *args)
        return x1, args_out
    return solve(tf.convert_to_tensor(x0), *args)


# --------------------------------------------------------------------------- layers

_CONV = {2: Conv2D, 3: Conv3D}


def _time_channel(x: tf.Tensor, tau) -> tf.Tensor:
    """tau (a scalar or one per batch item) as a constant channel shaped like x[..., :1]."""
    tau = tf.cast(tau, x.dtype)
    if tau.shape.rank:
        tau = tf.reshape(tau, [-1] + [1] * (x.shape.rank - 1))
    return tf.ones_like(x[..., :1]) * tau


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class TimeConv(keras.layers.Layer):
    """Time-dependent convolution: conv(concat([x, tau(t)])) with tau(t) = w t + b learned.

    x: float32 (batch, *spatial, C); t: a scalar (float or tensor) or (batch,). Returns
    (batch, *spatial, filters). The convolution is the zoo's (:class:`~fastmri_zoo.layers.Conv2D`),
    "same" padding, with ``dilation_rate``. Weights ``time_weight`` (initialised to 1) and
    ``time_bias`` (0), then ``conv``'s kernel and bias.
    """

    def __init__(self, filters: int, kernel_size: int = 3, dilation_rate: int = 1, use_bias: bool = True,
                 ndim: int = 2, **kwargs):
        super().__init__(**kwargs)
        if ndim not in _CONV:
            raise ValueError(f"ndim: expected 2 (images) or 3 (volumes), got {ndim!r}.")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.dilation_rate = int(dilation_rate)
        self.use_bias = bool(use_bias)
        self.ndim = int(ndim)
        self.time_weight = self.add_weight(shape=(), initializer="ones", name="time_weight")
        self.time_bias = self.add_weight(shape=(), initializer="zeros", name="time_bias")
        self.conv = _CONV[self.ndim](
            self.filters, self.kernel_size, padding="same", dilation_rate=self.dilation_rate,
            use_bias=self.use_bias, name="conv",
        )

    def build(self, x_shape, t_shape=None):
        if not self.conv.built:  # (a second build, e.g. after deserialisation, creates nothing)
            self.conv.build(tuple(x_shape[:-1]) + (int(x_shape[-1]) + 1,))

    def call(self, x, t):
        tau = self.time_weight * tf.cast(t, self.time_weight.dtype) + self.time_bias
        return self.conv(tf.concat([x, _time_channel(x, tau)], axis=-1))

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, dilation_rate=self.dilation_rate,
                      use_bias=self.use_bias, ndim=self.ndim)
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class TimeDependentCNN(keras.layers.Layer):
    """``n_layers`` :class:`TimeConv` layers (``time_conv_0`` ...), ``n_filters`` channels, ``activation``
    between them and a linear last layer to ``n_outputs`` channels.

    x: float32 (batch, *spatial, C_in); t: scalar or (batch,). Returns (batch, *spatial, n_outputs).
    ReconODE's dynamics f: 5 layers, 32 channels (sec. 2.4).
    """

    def __init__(self, n_outputs: int = 2, n_layers: int = 5, n_filters: int = 32, kernel_size: int = 3,
                 dilation_rate: int = 1, activation: str = "relu", ndim: int = 2, **kwargs):
        super().__init__(**kwargs)
        if int(n_layers) < 1 or int(n_filters) < 1 or int(n_outputs) < 1:
            raise ValueError(
                f"n_layers, n_filters, n_outputs: expected positive integers, got {n_layers}, {n_filters}, {n_outputs}."
            )
        self.n_outputs = int(n_outputs)
        self.n_layers = int(n_layers)
        self.n_filters = int(n_filters)
        self.kernel_size = int(kernel_size)
        self.dilation_rate = int(dilation_rate)
        self.activation = activation
        self.ndim = int(ndim)
        self.time_convs = [
            TimeConv(self.n_outputs if i == self.n_layers - 1 else self.n_filters, self.kernel_size,
                     self.dilation_rate, ndim=self.ndim, name=f"time_conv_{i}")
            for i in range(self.n_layers)
        ]
        self.activations = [make_activation(activation, f"activation_{i}", self.ndim) for i in range(self.n_layers - 1)]

    def build(self, x_shape, t_shape=None):
        channels = int(x_shape[-1])
        for conv in self.time_convs:
            if not conv.built:
                conv.build(tuple(x_shape[:-1]) + (channels,))
            channels = conv.filters

    def call(self, x, t):
        for i, conv in enumerate(self.time_convs):
            x = conv(x, t=t)
            if i < len(self.activations):
                x = self.activations[i](x)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(n_outputs=self.n_outputs, n_layers=self.n_layers, n_filters=self.n_filters,
                      kernel_size=self.kernel_size, dilation_rate=self.dilation_rate, activation=self.activation,
                      ndim=self.ndim)
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class LearnedSolverStep(keras.layers.Layer):
    """One step of ReconODE's learned solver (LT): stages G_1 ... G_s and an attention combination.

    ``stages``: s (1, 2, 4 for Euler, RK2, RK4). Stage i (``stage_{i-1}``) is a
    :class:`TimeDependentCNN` of concat(x_n, F_1 ... F_{i-1}, data) at t_n with dilation s - i + 1;
    ``attention`` is one of concat(x_n, F_1 ... F_s) at t_n with s outputs, softmax over the stages.
    ``call(x, data, t=t_n, h=h)``: x, data float32 (batch, *spatial, C); returns
    x + h sum_i alpha_i F_i (batch, *spatial, C). See the module docstring for the choices.
    """

    def __init__(self, stages: int = 4, channels: int = 2, n_layers: int = 5, n_filters: int = 32,
                 kernel_size: int = 3, activation: str = "relu", ndim: int = 2, **kwargs):
        super().__init__(**kwargs)
        if int(stages) < 1:
            raise ValueError(f"stages: expected a positive integer, got {stages}.")
        self.stages = int(stages)
        self.channels = int(channels)
        self.n_layers = int(n_layers)
        self.n_filters = int(n_filters)
        self.kernel_size = int(kernel_size)
        self.activation = activation
        self.ndim = int(ndim)
        block = dict(n_layers=self.n_layers, n_filters=self.n_filters, kernel_size=self.kernel_size,
                     activation=activation, ndim=self.ndim)
        self.stage_nets = [
            TimeDependentCNN(n_outputs=self.channels, dilation_rate=self.stages - i, name=f"stage_{i}", **block)
            for i in range(self.stages)
        ]
        self.attention = TimeDependentCNN(n_outputs=self.stages, name="attention", **block)

    def build(self, x_shape, data_shape=None, t_shape=None, h_shape=None):
        spatial = tuple(x_shape[:-1])
        for i, net in enumerate(self.stage_nets):
            if not net.built:
                net.build(spatial + ((i + 2) * self.channels,))
        if not self.attention.built:
            self.attention.build(spatial + ((self.stages + 1) * self.channels,))

    def call(self, x, data, *, t, h):
        slopes = []
        for net in self.stage_nets:
            slopes.append(net(tf.concat([x] + slopes + [data], axis=-1), t=t))
        weights = tf.nn.softmax(self.attention(tf.concat([x] + slopes, axis=-1), t=t), axis=-1)
        combined = sum(weights[..., i : i + 1] * slope for i, slope in enumerate(slopes))
        return x + h * combined

    def get_config(self):
        config = super().get_config()
        config.update(stages=self.stages, channels=self.channels, n_layers=self.n_layers, n_filters=self.n_filters,
                      kernel_size=self.kernel_size, activation=self.activation, ndim=self.ndim)
        return config
