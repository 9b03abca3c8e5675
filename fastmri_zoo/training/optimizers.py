"""Rectified Adam and Lookahead as Keras 3 optimizers (registered, serialisable).

``RAdam`` (Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond",
ICLR 2020, Algorithm 2). At step t (from 1), for each variable with gradient g::

    m_t = beta_1 m + (1 - beta_1) g            v_t = beta_2 v + (1 - beta_2) g^2
    m_hat = m_t / (1 - beta_1^t)
    rho_inf = 2 / (1 - beta_2) - 1             rho_t = rho_inf - 2 t beta_2^t / (1 - beta_2^t)
    if rho_t > rho_threshold:                  (the variance of the adaptive rate is tractable)
        l_t = sqrt(1 - beta_2^t) / (sqrt(v_t) + epsilon)
        r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
        theta = theta - lr r_t l_t m_hat
    else:                                      (SGD with bias-corrected momentum)
        theta = theta - lr m_hat

``rho_threshold`` is 4 as in the paper (r_t needs rho_t > 4); the authors' code uses 5.

``Lookahead`` (Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step
back", NeurIPS 2019) wraps any Keras optimizer: the inner optimizer updates the (fast)
weights at every step; the slow weights phi start at the initial weights and every k =
``sync_period`` steps become ``phi + alpha (theta - phi)`` (alpha = ``slow_step_size``),
and the fast weights are reset to them.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from ..checks import check_scalar
from ..utils import split_named

__all__ = ["RAdam", "Lookahead", "get_optimizer", "OPTIMIZERS"]


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class RAdam(keras.optimizers.Optimizer):
    """Rectified Adam (see the module docstring for the update).

    learning_rate, beta_1, beta_2, epsilon as Adam; ``rho_threshold``: the rectified
    (adaptive) step is taken when rho_t > rho_threshold (>= 4), else the un-adapted
    momentum step. The other keyword arguments (clipnorm, weight_decay, ...) are those of
    ``keras.optimizers.Optimizer``.
    """

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        rho_threshold: float = 4.0,
        name: str = "radam",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        for arg, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            value = check_scalar(arg, value, at_least=0)
            if not value < 1:
                raise ValueError(f"{arg}: expected a value in [0, 1), got {value!r}.")
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = check_scalar("epsilon", epsilon, at_least=0)
        self.rho_threshold = check_scalar("rho_threshold", rho_threshold, at_least=4)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        # convert_to_tensor, not cast: a cast would round the Python float to float32 first.
        beta_1 = ops.convert_to_tensor(self.beta_1, dtype=dtype)
        beta_2 = ops.convert_to_tensor(self.beta_2, dtype=dtype)
        beta_1_power = ops.power(beta_1, step)
        beta_2_power = ops.power(beta_2, step)
        index = self._get_variable_index(variable)
        m = self._momentums[index]
        v = self._velocities[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - beta_2))
        m_hat = ops.divide(m, 1 - beta_1_power)

        rho_inf = 2.0 / (1.0 - self.beta_2) - 1.0
        rho_t = rho_inf - 2.0 * step * beta_2_power / (1 - beta_2_power)
        rectified = ops.greater(rho_t, self.rho_threshold)
        # Keep the square root's argument positive on the momentum branch too.
        safe_rho = ops.where(rectified, rho_t, rho_inf)
        r_t = ops.sqrt(
            (safe_rho - 4.0) * (safe_rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * safe_rho)
        )
        adaptive = ops.divide(ops.sqrt(1 - beta_2_power), ops.add(ops.sqrt(v), self.epsilon))
        scale = ops.where(rectified, r_t * adaptive, ops.ones_like(adaptive))
        self.assign_sub(variable, ops.multiply(lr, ops.multiply(scale, m_hat)))

    def get_config(self):
        config = super().get_config()
        config.update(
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
            rho_threshold=self.rho_threshold,
        )
        return config


_UNSUPPORTED_INNER = ("use_ema", "gradient_accumulation_steps", "loss_scale_factor")


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class Lookahead(keras.optimizers.Optimizer):
    """Lookahead around ``optimizer`` (a Keras optimizer, its name or its serialised config).

    The inner optimizer's per-variable rule (and its learning rate, read through
    ``learning_rate``) updates the fast weights; gradient clipping and weight decay
    configured on the inner optimizer are applied once, by this wrapper. Slow weights are
    optimizer variables, so ``BackupAndRestore`` and ``save_weights`` keep them.
    """

    def __init__(self, optimizer="adam", sync_period: int = 6, slow_step_size: float = 0.5,
                 name: str = "lookahead", **kwargs):
        if isinstance(optimizer, (str, dict)):
            optimizer = keras.optimizers.get(optimizer)
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise ValueError(
                f"optimizer: expected a keras.optimizers.Optimizer, its name or config, got {type(optimizer).__name__}."
            )
        if isinstance(optimizer, Lookahead):
            raise ValueError("optimizer: expected a plain optimizer, got another Lookahead.")
        for arg in _UNSUPPORTED_INNER:
            if getattr(optimizer, arg, None):
                raise ValueError(f"optimizer: Lookahead does not support an inner optimizer with {arg} set.")
        if kwargs:
            raise ValueError(
                f"Lookahead: unexpected arguments {sorted(kwargs)}; set clipnorm, weight_decay, ... on the inner optimizer."
            )
        super().__init__(
            learning_rate=0.0,
            name=name,
            clipnorm=optimizer.clipnorm,
            clipvalue=optimizer.clipvalue,
            global_clipnorm=optimizer.global_clipnorm,
            weight_decay=optimizer.weight_decay,
        )
        self.inner_optimizer = optimizer
        self.sync_period = check_scalar("sync_period", sync_period, integer=True, at_least=1)
        self.slow_step_size = check_scalar("slow_step_size", slow_step_size, above=0)
        if self.slow_step_size > 1:
            raise ValueError(f"slow_step_size: expected a value in (0, 1], got {slow_step_size!r}.")

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.inner_optimizer.build(var_list)
        self._slow_weights = []
        for variable in var_list:  # phi_0 = theta_0 is set by the first apply (see there)
            self._slow_weights.append(self.add_variable_from_reference(variable, name="slow"))

    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        # The base constructor sets a placeholder rate before the inner optimizer exists.
        if "inner_optimizer" in self.__dict__:
            self.inner_optimizer.learning_rate = learning_rate

    def update_step(self, gradient, variable, learning_rate):
        self.inner_optimizer.update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = self.iterations + 1
        sync = ops.cast(ops.equal(ops.mod(step, self.sync_period), 0), dtype)
        slow = self._slow_weights[self._get_variable_index(variable)]
        # On a synchronisation step: phi += alpha (theta - phi); theta = phi. Else nothing.
        new_slow = ops.add(slow, ops.multiply(sync * self.slow_step_size, ops.subtract(variable, slow)))
        self.assign(slow, new_slow)
        self.assign(variable, ops.add(ops.multiply(sync, new_slow), ops.multiply(1 - sync, variable)))

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is not None and not self.built:
            self.build(list(trainable_variables))
        # phi_0 = theta_0, before the first update. Not in build(): Keras' fit builds the optimizer in a stateless
        # scope that discards assignments (phi_0 was 0, and the first synchronisation halved every weight).
        tf.cond(ops.equal(self.iterations, 0), self._start_slow_weights, lambda: tf.constant(False))
        super().apply(grads, trainable_variables)
        # The inner rule reads its own step counter (bias corrections): keep it in step.
        self.inner_optimizer.iterations.assign_add(1)

    def get_config(self):
        return {
            "name": self.name,
            "optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
            "sync_period": self.sync_period,
            "slow_step_size": self.slow_step_size,
        }

    def _start_slow_weights(self):
        for slow, variable in zip(self._slow_weights, self._trainable_variables):
            slow.assign(variable)
        return tf.constant(True)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(config.pop("optimizer"), custom_objects=custom_objects)
        return cls(inner, **config)


#: Optimizer names accepted by :func:`get_optimizer` (plus every name ``keras.optimizers.get`` knows).
OPTIMIZERS = {"radam": RAdam, "lookahead": Lookahead}


def get_optimizer(identifier="adam", learning_rate: float | None = None, clipnorm: float | None = None, **kwargs):
    """A fresh optimizer from a name ("adam", "radam", "lookahead_radam", "lookahead_adam", any
    Keras optimizer name), a dict ``{"name": ..., **kwargs}`` (``"lookahead"`` takes an
    ``"optimizer"`` entry for the inner one) or an instance (returned as is, with
    ``learning_rate`` / ``clipnorm`` set on it when given)."""
    if isinstance(identifier, keras.optimizers.Optimizer):
        target = identifier.inner_optimizer if isinstance(identifier, Lookahead) else identifier
        if learning_rate is not None:
            identifier.learning_rate = float(learning_rate)
        if clipnorm is not None:
            identifier.clipnorm = target.clipnorm = float(clipnorm)
        return identifier
    identifier, kwargs = split_named("optimizer", identifier, kwargs)
    if not isinstance(identifier, str):
        raise ValueError(f"optimizer: expected a name, a dict or a keras optimizer, got {identifier!r}.")
    name = identifier.lower()
    common = {}
    if learning_rate is not None:
        common["learning_rate"] = float(learning_rate)
    if clipnorm is not None:
        common["clipnorm"] = float(clipnorm)
    if name.startswith("lookahead"):
        inner = kwargs.pop("optimizer", name[len("lookahead_"):] if name.startswith("lookahead_") else "adam")
        lookahead_kwargs = {k: kwargs.pop(k) for k in ("sync_period", "slow_step_size") if k in kwargs}
        return Lookahead(get_optimizer(inner, learning_rate, clipnorm, **kwargs), **lookahead_kwargs)
    try:
        if name in OPTIMIZERS:
            return OPTIMIZERS[name](**common, **kwargs)
        known = keras.optimizers.get(name)
        return type(known)(**common, **kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"optimizer: cannot build {identifier!r} with {sorted({**common, **kwargs})}: {error}") from None
