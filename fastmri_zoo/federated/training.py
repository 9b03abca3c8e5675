"""What a client does with the weights it receives, without Flower: local training (FedAvg, FedProx),
the local MiLeNAS search, the bias-corrected moving average of the global weights, and evaluation.

- :func:`model_arrays` / :func:`set_model_arrays`: a model's weights as ``{name: float32 array}`` in the
  model's order, names ``"NNNN:path"`` (index and variable path without the model's own name, so two
  processes agree), and back, refusing another architecture's weights.
- :class:`LocalTraining`: ``local_steps`` optimizer steps of the trainer's loss
  (:mod:`~fastmri_zoo.training.losses`) and optimizer (:mod:`~fastmri_zoo.training.optimizers`, new at
  every round, gradient clipping by ``clipnorm``) from given weights; with ``proximal_mu`` the loss is
  L(w) + mu / 2 ||w - w_global||^2 over the trainable weights, w_global the global weights the site
  received (FedProx, Li et al. 2020); ``proximal_mu=None`` leaves the term out of the graph (FedAvg).
- :class:`BiasCorrectedEMA`: the client-side average of the global weights of FedAutoMRI (eq. 7, with
  Adam's bias correction): m_t = gamma m_{t-1} + (1 - gamma) w_t, m_0 = 0, used as m_t / (1 - gamma^t).
- :class:`LocalSearch`: MiLeNAS steps (:class:`~fastmri_zoo.search.ArchitectureSearch`) on a site's
  two splits: w on the training split, alpha on the training and alpha splits.
- :func:`evaluate`: mean loss, PSNR, SSIM and NMSE (fastMRI's definitions, image by image on magnitudes)
  over a site's held-out examples.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import tensorflow as tf

from .. import metrics
from ..search import ArchitectureSearch
from ..training.fit import _model_inputs
from ..training.losses import get_loss
from ..training.optimizers import get_optimizer

__all__ = ["model_arrays", "set_model_arrays", "LocalTraining", "BiasCorrectedEMA", "LocalSearch", "evaluate"]


def _variable_names(model) -> list[str]:
    prefix = f"{model.name}/"
    return [f"{index:04d}:{variable.path.removeprefix(prefix)}" for index, variable in enumerate(model.weights)]


def model_arrays(model) -> dict[str, np.ndarray]:
    """The weights of a built ``model``: ``{"NNNN:path": float32 array}`` in the model's order."""
    return {name: np.asarray(variable.numpy(), np.float32)
            for name, variable in zip(_variable_names(model), model.weights)}


def set_model_arrays(model, arrays: Mapping[str, np.ndarray]) -> None:
    """Give a built ``model`` the weights ``arrays`` (as :func:`model_arrays` names them); raises a
    ValueError when they belong to another architecture."""
    names = _variable_names(model)
    if list(arrays) != names:
        missing, extra = sorted(set(names) - set(arrays)), sorted(set(arrays) - set(names))
        raise ValueError(f"arrays: not the weights of this {type(model).__name__} ({len(arrays)} arrays for "
                         f"{len(names)} weights; missing {missing[:3]}, unexpected {extra[:3]}).")
    for name, variable in zip(names, model.weights):
        value = np.asarray(arrays[name])
        shape = tuple(variable.shape)
        if value.shape != shape and not (value.size == 1 and shape == ()):  # a message gives scalars shape (1,)
            raise ValueError(f"arrays[{name!r}]: shape {value.shape}, the model's weight is {shape}.")
        variable.assign(value.reshape(shape).astype(variable.dtype))


class BiasCorrectedEMA:
    """The moving average m_t = gamma m_{t-1} + (1 - gamma) w_t (m_0 = 0) of a sequence of weight
    dicts, read bias-corrected: m_t / (1 - gamma^t), the weighted mean of w_1 ... w_t with weights
    proportional to gamma^(t - s). A constant sequence is left unchanged."""

    def __init__(self, gamma: float, average: Mapping[str, np.ndarray] | None = None, steps: int = 0):
        if not 0 <= gamma < 1:
            raise ValueError(f"gamma: expected a value in [0, 1), got {gamma!r}.")
        self.gamma = float(gamma)
        self.steps = int(steps)
        self.average = None if average is None else {k: np.asarray(v, np.float64) for k, v in average.items()}

    def _next(self, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        previous = self.average or {key: 0.0 for key in weights}
        if self.average is not None and list(self.average) != list(weights):
            raise ValueError("weights: not those the average was kept of (another architecture).")
        return {key: self.gamma * previous[key] + (1.0 - self.gamma) * np.asarray(value, np.float64)
                for key, value in weights.items()}

    def _corrected(self, average: dict, steps: int) -> dict[str, np.ndarray]:
        scale = 1.0 - self.gamma ** steps
        return {key: (value / scale).astype(np.float32) for key, value in average.items()}

    def update(self, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Fold in w_t; returns m_t / (1 - gamma^t) (float32)."""
        self.average = self._next(weights)
        self.steps += 1
        return self._corrected(self.average, self.steps)

    def peek(self, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """What :meth:`update` would return for ``weights``, without folding them in."""
        return self._corrected(self._next(weights), self.steps + 1)


def _strip_scale(batch):
    inputs, target = batch
    return _model_inputs(inputs), target


class _FreshOptimizers:
    """Calling it puts built optimizers back in the state they were built in (moments and step count), so
    every round starts from a fresh optimizer without tracing the step again."""

    def __init__(self, optimizers):
        self.variables = [v for optimizer in optimizers for v in optimizer.variables]
        self.values = [np.array(v.numpy()) for v in self.variables]

    def __call__(self, values: list[np.ndarray] | None = None) -> None:
        """Put the optimizers back in their built state, or in ``values`` (a list :meth:`state` returned)."""
        values = self.values if values is None else values
        if len(values) != len(self.variables):
            raise ValueError(f"optimizer state: expected {len(self.variables)} arrays, got {len(values)}.")
        for variable, value in zip(self.variables, values):
            variable.assign(np.reshape(value, variable.shape))

    def state(self) -> list[np.ndarray]:
        """The optimizers' variables now (moments, step counts), to carry to the next round."""
        return [np.array(variable.numpy()) for variable in self.variables]


class LocalTraining:
    """Local optimizer steps on a built ``model`` (module docstring); one instance serves every round:
    :meth:`run` starts from fresh optimizer state, or from the state an earlier run left."""

    def __init__(self, model, *, loss="l1", optimizer="adam", learning_rate: float = 1e-3,
                 clipnorm: float | None = 1.0, proximal: bool = False):
        if not model.built:
            raise ValueError("model: expected a built model.")
        self.model = model
        self.loss = get_loss(loss)
        self.variables = list(model.trainable_variables)
        self.optimizer = get_optimizer(optimizer, learning_rate, clipnorm)
        self.optimizer.build(self.variables)
        self._reset = _FreshOptimizers([self.optimizer])
        self.proximal = bool(proximal)
        self.mu = tf.Variable(0.0, trainable=False, dtype=tf.float32)
        self.anchor = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables] if proximal else []
        self._step = tf.function(self._train_step)

    def _train_step(self, inputs, target):
        with tf.GradientTape() as tape:
            data_loss = self.loss(target, self.model(inputs, training=True))
            total = data_loss
            if self.proximal:
                distance = tf.add_n([tf.reduce_sum(tf.square(v - a)) for v, a in zip(self.variables, self.anchor)])
                total = data_loss + 0.5 * self.mu * distance
        gradients = tape.gradient(total, self.variables)
        self.optimizer.apply_gradients(zip(gradients, self.variables))
        return data_loss

    def run(self, batches: Iterable, proximal_mu: float | None = None,
            anchor: Mapping[str, np.ndarray] | None = None, optimizer_state: list[np.ndarray] | None = None) -> float:
        """One optimizer step per batch ``(inputs, target)`` from the model's current weights; with
        ``proximal_mu`` (an instance made with ``proximal=True``) the proximal term pulls towards ``anchor``,
        the global weights w_global (``{name: array}`` as :func:`model_arrays` names them; default: the
        model's weights at the start). The optimizer starts fresh, or from ``optimizer_state`` (what
        :meth:`optimizer_state` returned after an earlier run). Returns the mean data loss."""
        if (proximal_mu is not None) != self.proximal:
            raise ValueError("proximal_mu: given exactly when the training was made with proximal=True.")
        if anchor is not None and not self.proximal:
            raise ValueError("anchor: the weights of FedProx's proximal term; this training has none.")
        self._reset(optimizer_state)
        if self.proximal:
            self.mu.assign(float(proximal_mu))
            names = {id(variable): name for name, variable in zip(_variable_names(self.model), self.model.weights)}
            for target, variable in zip(self.anchor, self.variables):
                value = variable if anchor is None else np.reshape(anchor[names[id(variable)]], variable.shape)
                target.assign(value)
        losses = [float(self._step(*_strip_scale(batch))) for batch in batches]
        if not losses:
            raise ValueError("batches: expected at least one batch.")
        return float(np.mean(losses))

    def optimizer_state(self) -> list[np.ndarray]:
        """The optimizer's state after the last :meth:`run` (give it to the next run to continue it)."""
        return self._reset.state()


class LocalSearch:
    """MiLeNAS on a built search network (e.g. ``NasNet(genotype=None)``): an
    :class:`~fastmri_zoo.search.ArchitectureSearch` whose optimizers start fresh at every :meth:`run`."""

    def __init__(self, model, *, beta: float = 1.0, learning_rate: float = 1e-3, alpha_learning_rate: float = 3e-4,
                 clipnorm: float | None = 1.0, loss="l1", optimizer="adam"):
        self.searcher = ArchitectureSearch(model, "milenas", beta=beta, network_optimizer=optimizer,
                                           learning_rate=learning_rate, alpha_learning_rate=alpha_learning_rate,
                                           clipnorm=clipnorm, loss=loss)
        self._reset = _FreshOptimizers([self.searcher.network_optimizer, self.searcher.architecture_optimizer])

    def run(self, train_batches: Iterable, alpha_batches: Iterable, steps: int,
            optimizer_state: list[np.ndarray] | None = None) -> dict[str, float]:
        """``steps`` MiLeNAS steps, w on ``train_batches``, alpha on both, from fresh optimizers or from
        ``optimizer_state``; the mean ``train_loss`` and ``val_loss``."""
        self._reset(optimizer_state)
        return self.searcher.epoch(iter(train_batches), iter(alpha_batches), steps)

    def optimizer_state(self) -> list[np.ndarray]:
        """Both optimizers' state after the last :meth:`run`."""
        return self._reset.state()


def evaluate(model, dataset, loss="l1") -> dict[str, float]:
    """Mean ``loss`` (the training loss) and mean ``psnr``, ``ssim``, ``nmse`` image by image
    (:mod:`fastmri_zoo.metrics`, magnitudes, data range the target's maximum) over ``dataset``."""
    loss_fn = get_loss(loss)
    totals = {"loss": [], "psnr": [], "ssim": [], "nmse": []}
    for batch in dataset:
        inputs, target = _strip_scale(batch)
        output = model(inputs, training=False)
        totals["loss"].append(float(loss_fn(target, output)) * int(target.shape[0]))
        for truth, estimate in zip(np.asarray(target), np.abs(np.asarray(output))):
            totals["psnr"].append(metrics.psnr(truth, estimate))
            totals["ssim"].append(metrics.ssim(truth, estimate))
            totals["nmse"].append(metrics.nmse(truth, estimate))
    count = len(totals["psnr"])
    if not count:
        raise ValueError("dataset: expected at least one held-out example.")
    return {"loss": float(np.sum(totals["loss"]) / count),
            **{key: float(np.mean(values)) for key, values in totals.items() if key != "loss"}}
