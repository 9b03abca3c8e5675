"""Differentiable architecture search of the cells of an unrolled network: first-order DARTS and MiLeNAS.

A *searchable* model is one whose prior holds search cells sharing architecture logits alpha,
e.g. :class:`~fastmri_zoo.models.NasNet` with ``genotype=None``. It exposes

- ``architecture_weights``: the list of alpha variables, each (edges, operations) logits;
- ``network_weights``: every other trainable variable (w);
- ``derived_genotype()``: the :class:`~fastmri_zoo.layers.Genotype` of the current alpha;
- ``search_space`` and ``n_nodes``: what alpha's rows and columns are (for the history).

One step of the search (:class:`ArchitectureSearch`) takes a batch of each of two disjoint
splits, ``(inputs, target)`` as the zoo's pipelines give them, and the loss L (default: L1
between the magnitude of the network's output and the fully sampled image, Yan et al. sec. 3.2.3):

- ``"darts"``, first-order DARTS (Liu et al. 2019), alternating: alpha <- alpha - eta_alpha
  grad_alpha L_val(w, alpha) on the validation batch, then w <- w - eta_w grad_w L_train(w, alpha)
  on the training batch with the updated alpha. alpha never sees the training split, w never
  the validation split.
- ``"milenas"``, mixed-level (He et al. 2020, eq. 6), both from the same (w, alpha):
  w <- w - eta_w grad_w L_train and alpha <- alpha - eta_alpha (grad_alpha L_train + beta
  grad_alpha L_val); one forward pass of the training batch gives both training gradients.

w and alpha have separate optimisers (the update rules above with eta read as the optimiser's
rule: Adam by default). :meth:`ArchitectureSearch.epoch` runs several steps; FedAutoMRI's clients
(the federated search) call it on their own splits between averaging rounds. :func:`search`
runs the whole search: alpha, the softmax entropy and the derived genotype recorded at every
epoch end, stopping when the genotype has not changed for ``patience`` epochs or at ``steps``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import keras
import numpy as np
import tensorflow as tf

from ..checks import check_scalar
from ..layers import Genotype
from ..layers.nas import search_space_operations
from ..training.fit import _model_inputs
from ..training.losses import get_loss
from ..training.optimizers import get_optimizer
from .backup import read_backup, write_backup

__all__ = [
    "METHODS",
    "ARCHITECTURE_OPTIMIZER",
    "ArchitectureSearch",
    "EpochRecord",
    "SearchResult",
    "softmax_entropy",
    "search",
]

#: The search methods of :class:`ArchitectureSearch`.
METHODS = ("darts", "milenas")
#: The default optimiser of alpha: DARTS' Adam with beta_1 = 0.5.
ARCHITECTURE_OPTIMIZER = {"name": "adam", "beta_1": 0.5, "beta_2": 0.999}


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}.")
    return method


def softmax_entropy(alpha) -> float:
    """The mean over edges (rows) of the entropy, in nats, of softmax(alpha) over the operations.

    alpha: (edges, operations) logits, or a list of such matrices (their rows pooled). log(operations)
    for uniform weights, 0 when every edge has picked one operation.
    """
    rows = np.concatenate([np.asarray(a, np.float64).reshape(-1, np.shape(a)[-1])
                           for a in (alpha if isinstance(alpha, (list, tuple)) else [alpha])])
    shifted = rows - rows.max(axis=1, keepdims=True)
    log_weights = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(np.mean(-(np.exp(log_weights) * log_weights).sum(axis=1)))


def _optimizer(identifier, learning_rate: float, clipnorm: float | None = None):
    """An optimiser given as an instance is used as it is; a name or a dict gets the learning rate and clipnorm."""
    if isinstance(identifier, keras.optimizers.Optimizer):
        return identifier
    return get_optimizer(identifier, learning_rate, clipnorm)


def _split(batch):
    inputs, target = batch
    return (_model_inputs(inputs) if isinstance(inputs, dict) else inputs), target


class ArchitectureSearch:
    """One step (and epochs) of DARTS or MiLeNAS on a built searchable model (module docstring).

    method: ``"darts"`` or ``"milenas"``; beta: MiLeNAS' weight of the validation gradient
    (unused by DARTS). network_optimizer / architecture_optimizer: optimisers of w and alpha
    (instances, used as they are, or names and dicts of :func:`~fastmri_zoo.training.get_optimizer`,
    given ``learning_rate`` and ``clipnorm`` for w, ``alpha_learning_rate`` for alpha); by default
    Adam for w and :data:`ARCHITECTURE_OPTIMIZER` for alpha. loss: a loss of :mod:`~fastmri_zoo.training.losses`
    (default ``"l1"``).
    """

    def __init__(
        self,
        model: keras.Model,
        method: str = "darts",
        *,
        beta: float = 1.0,
        network_optimizer=None,
        architecture_optimizer=None,
        learning_rate: float = 1e-3,
        alpha_learning_rate: float = 3e-4,
        clipnorm: float | None = 5.0,
        loss="l1",
    ):
        self.method = check_method(method)
        self.beta = check_scalar("beta", beta, at_least=0)
        if not model.built:
            raise ValueError("model: expected a built model (call it once on a batch, or model.build(None)).")
        self.model = model
        self.architecture_variables = list(getattr(model, "architecture_weights", []))
        if not self.architecture_variables:
            raise ValueError(f"model: {type(model).__name__} has no architecture weights; expected a model whose "
                             "prior holds search cells (e.g. NasNet with genotype=None).")
        self.network_variables = list(model.network_weights)
        self.loss = get_loss(loss)
        self.network_optimizer = _optimizer(network_optimizer or "adam", learning_rate, clipnorm)
        self.architecture_optimizer = _optimizer(architecture_optimizer or ARCHITECTURE_OPTIMIZER, alpha_learning_rate)
        for optimizer, variables in ((self.network_optimizer, self.network_variables),
                                     (self.architecture_optimizer, self.architecture_variables)):
            if not optimizer.built:  # its slots made now, not while the step is traced
                optimizer.build(variables)
        self._step = tf.function(self._darts_step if method == "darts" else self._milenas_step)

    def _loss(self, batch):
        inputs, target = _split(batch)
        return self.loss(target, self.model(inputs, training=True))

    def _darts_step(self, train_batch, val_batch):
        with tf.GradientTape() as tape:
            val_loss = self._loss(val_batch)
        architecture_gradients = tape.gradient(val_loss, self.architecture_variables)
        self.architecture_optimizer.apply_gradients(zip(architecture_gradients, self.architecture_variables))
        with tf.GradientTape() as tape:
            train_loss = self._loss(train_batch)
        network_gradients = tape.gradient(train_loss, self.network_variables)
        self.network_optimizer.apply_gradients(zip(network_gradients, self.network_variables))
        return train_loss, val_loss

    def _milenas_step(self, train_batch, val_batch):
        count = len(self.network_variables)
        with tf.GradientTape() as tape:
            train_loss = self._loss(train_batch)
        gradients = tape.gradient(train_loss, self.network_variables + self.architecture_variables)
        with tf.GradientTape() as tape:
            val_loss = self._loss(val_batch)
        val_gradients = tape.gradient(val_loss, self.architecture_variables)
        architecture_gradients = [g + self.beta * v for g, v in zip(gradients[count:], val_gradients)]
        self.architecture_optimizer.apply_gradients(zip(architecture_gradients, self.architecture_variables))
        self.network_optimizer.apply_gradients(zip(gradients[:count], self.network_variables))
        return train_loss, val_loss

    def step(self, train_batch, val_batch) -> dict[str, float]:
        """One update of alpha and w; returns the losses of the two batches before it
        (``train_loss``, ``val_loss``; DARTS' training loss is taken after alpha's update)."""
        train_loss, val_loss = self._step(train_batch, val_batch)
        return {"train_loss": float(train_loss), "val_loss": float(val_loss)}

    def epoch(self, train_batches: Iterator, val_batches: Iterator, steps: int,
              on_step: Callable[[dict], None] | None = None) -> dict[str, float]:
        """``steps`` steps on the next batches of the two iterators; the mean losses."""
        totals = {"train_loss": 0.0, "val_loss": 0.0}
        for _ in range(check_scalar("steps", steps, integer=True, at_least=1)):
            losses = self.step(next(train_batches), next(val_batches))
            for key in totals:
                totals[key] += losses[key]
            if on_step is not None:
                on_step(losses)
        return {key: value / steps for key, value in totals.items()}

    def alpha(self) -> np.ndarray:
        """The architecture logits now: float32 (edges, operations) (rows of several matrices stacked)."""
        return np.concatenate([np.asarray(v.numpy(), np.float32) for v in self.architecture_variables])


@dataclass
class EpochRecord:
    """The state of a search at the end of an epoch (epoch 0: before the first step)."""

    epoch: int
    step: int
    train_loss: float
    val_loss: float
    entropy: float
    alpha: np.ndarray
    genotype: Genotype

    def to_dict(self) -> dict:
        return {"epoch": self.epoch, "step": self.step, "train_loss": self.train_loss, "val_loss": self.val_loss,
                "entropy": self.entropy, "alpha": self.alpha.tolist(), "genotype": self.genotype.to_config()}

    @classmethod
    def from_dict(cls, entry: dict) -> "EpochRecord":
        return cls(int(entry["epoch"]), int(entry["step"]), float(entry["train_loss"]), float(entry["val_loss"]),
                   float(entry["entropy"]), np.asarray(entry["alpha"], np.float32), Genotype.parse(entry["genotype"]))


@dataclass
class SearchResult:
    """What :func:`search` returns: the derived genotype, the per-epoch history and how it stopped."""

    genotype: Genotype
    history: list[EpochRecord]
    steps: int
    stopped: str  # "patience" (the genotype settled) or "steps" (the budget ran out)
    method: str
    search_space: list[str]
    n_nodes: int
    wall_time: float
    settings: dict = field(default_factory=dict)


def _batches(data: tf.data.Dataset | Iterable) -> Iterator:
    if isinstance(data, tf.data.Dataset):
        return iter(data.repeat())
    return iter(data)


def search(
    model: keras.Model,
    train_data,
    val_data,
    *,
    method: str = "darts",
    steps: int,
    steps_per_epoch: int | None = None,
    patience: int | None = None,
    beta: float = 1.0,
    learning_rate: float = 1e-3,
    alpha_learning_rate: float = 3e-4,
    clipnorm: float | None = 5.0,
    network_optimizer=None,
    architecture_optimizer=None,
    loss="l1",
    progress: bool = False,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    backup: str | os.PathLike | None = None,
    fingerprint=None,
) -> SearchResult:
    """Search the cells of ``model`` with w on ``train_data`` and alpha on ``val_data``.

    model: a searchable model (module docstring), built here on the first training batch if it
    is not. train_data / val_data: disjoint splits, each a ``tf.data.Dataset`` (repeated) or an
    iterator of ``(inputs, target)`` batches; inputs a dict (``scale`` is dropped) as from
    :func:`~fastmri_zoo.training.training_data`. steps: the most steps of
    :class:`ArchitectureSearch` (method, beta, optimisers, loss: as there);
    steps_per_epoch (default ``min(steps, 50)``): alpha, the mean entropy of softmax(alpha)
    (:func:`softmax_entropy`) and the genotype are recorded after each epoch (and before the
    first step, as epoch 0). patience: stop once the derived genotype is the same at ``patience``
    consecutive epoch ends after the first; None runs all the steps. progress: a tqdm bar over the
    steps. on_epoch_end: called with each :class:`EpochRecord` as it is made.

    backup: a folder where the search's state is written after every epoch (:mod:`.backup`); when it
    holds the backup of the same ``fingerprint`` (a JSON-able description of what is searched), the
    search resumes from it: weights, alpha, both optimisers, history and patience count as they were,
    ``steps`` counted from the first step of the first run (the data iterators are the caller's: give
    fresh draws). A search its backup records as stopped by ``patience`` is not run again; one that ran
    out of steps continues when given more.
    """
    steps = check_scalar("steps", steps, integer=True, at_least=1)
    steps_per_epoch = check_scalar("steps_per_epoch", min(steps, 50) if steps_per_epoch is None else steps_per_epoch,
                                   integer=True, at_least=1)
    if patience is not None:
        patience = check_scalar("patience", patience, integer=True, at_least=1)
    check_method(method)
    train_batches, val_batches = _batches(train_data), _batches(val_data)
    first = next(train_batches)
    if not model.built:
        model(_split(first)[0])
    searcher = ArchitectureSearch(model, method, beta=beta, network_optimizer=network_optimizer,
                                  architecture_optimizer=architecture_optimizer, learning_rate=learning_rate,
                                  alpha_learning_rate=alpha_learning_rate, clipnorm=clipnorm, loss=loss)
    train_batches = _prepend(first, train_batches)
    optimizer_variables = [v for o in (searcher.network_optimizer, searcher.architecture_optimizer) for v in o.variables]

    def record(epoch, step, losses):
        alpha = searcher.alpha()
        entry = EpochRecord(epoch, step, losses["train_loss"], losses["val_loss"], softmax_entropy(alpha), alpha,
                            model.derived_genotype())
        history.append(entry)
        if on_epoch_end is not None:
            on_epoch_end(entry)
        return entry

    def save(done, unchanged, stopped):
        if backup is not None:
            write_backup(backup, fingerprint, weights=model.get_weights(),
                         optimizer=[v.numpy() for v in optimizer_variables], history=[e.to_dict() for e in history],
                         step=done, unchanged=unchanged, stopped=stopped, wall_time=earlier + time.time() - start)

    start, earlier = time.time(), 0.0
    history: list[EpochRecord] = []
    done, unchanged, stopped = 0, 0, "steps"
    state = None if backup is None else read_backup(backup, fingerprint)
    if state is not None:
        model.set_weights(state["weights"])
        if len(state["optimizer"]) != len(optimizer_variables):
            raise ValueError(f"{backup}: the backup holds {len(state['optimizer'])} optimiser variables, this search "
                             f"{len(optimizer_variables)}; choose a new OUT_DIR.")
        for variable, value in zip(optimizer_variables, state["optimizer"]):
            variable.assign(np.reshape(value, variable.shape))
        history = [EpochRecord.from_dict(entry) for entry in state["history"]]
        done, unchanged, earlier = int(state["step"]), int(state["unchanged"]), float(state["wall_time_seconds"])
        # a search stopped by its budget continues when given more steps; one stopped by patience is done
        stopped = "patience" if state["stopped"] == "patience" else "steps"
    else:
        record(0, 0, {"train_loss": float("nan"), "val_loss": float("nan")})
        save(0, 0, None)
    bar = None
    if progress and stopped != "patience":
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=min(done, steps), desc=f"search ({method})", unit="step")
    try:
        while done < steps and stopped != "patience":
            count = min(steps_per_epoch, steps - done)
            losses = searcher.epoch(train_batches, val_batches, count,
                                    on_step=None if bar is None else lambda _: bar.update(1))
            done += count
            previous = history[-1].genotype
            entry = record(len(history), done, losses)
            unchanged = unchanged + 1 if entry.genotype == previous else 0
            if bar is not None:
                bar.set_postfix(train=f"{entry.train_loss:.4f}", val=f"{entry.val_loss:.4f}",
                                entropy=f"{entry.entropy:.3f}", unchanged=unchanged)
            if patience is not None and unchanged >= patience:
                stopped = "patience"
            save(done, unchanged, "patience" if stopped == "patience" else None)
    finally:
        if bar is not None:
            bar.close()
    settings = dict(method=method, steps=steps, steps_per_epoch=steps_per_epoch, patience=patience, beta=beta,
                    learning_rate=learning_rate, alpha_learning_rate=alpha_learning_rate, clipnorm=clipnorm,
                    loss=loss if isinstance(loss, (str, dict)) else type(loss).__name__)
    return SearchResult(
        genotype=history[-1].genotype, history=history, steps=done, stopped=stopped, method=method,
        search_space=search_space_operations(model.search_space), n_nodes=int(model.n_nodes),
        wall_time=earlier + time.time() - start, settings=settings,
    )


def _prepend(first, rest: Iterator) -> Iterator:
    yield first
    yield from rest
