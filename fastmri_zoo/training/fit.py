"""Train and fine-tune reconstruction networks, for every acquisition, and priors: ``fit``, ``training_data``,
``image_training_data``, ``finetune``.

The one trainer of the package: ``fastmri-zoo train RECIPE.json`` (:mod:`.config`), ``fastmri-zoo
finetune`` and every shipped checkpoint go through ``fit``. ``training_data`` builds its pipelines
for any acquisition (Cartesian, non-Cartesian 2D radial / spiral, 3D kooshball; single-coil or
multicoil) from an acquisition description (the ``acquisition`` section of a recipe);
``image_training_data`` the complex images a prior (``models.ScoreNetwork``, task ``"prior"``)
learns from. A prior trains on its own objective, residual denoising score matching
(``loss="dsm"``: its ``train_step`` / ``test_step``), optionally with its kernels projected to a
spectral norm after every step (``spectral_norm``, ``models.score.SpectralNormProjection``);
everything else below (backups, logs, run record, preset) is the same for both tasks.

``fit`` wraps the network in a small training model whose loss is computed by the
toolkit's :mod:`~fastmri_zoo.training.losses` on the network's complex output (Keras'
compiled loss would cast it to float32 and drop the imaginary part), then runs
``keras.Model.fit`` with

- gradient clipping (``clipnorm``, on the optimizer); under ``tf.distribute`` with several
  replicas the clipping factor is that of the all-reduced (global-batch) gradient, so a
  multi-replica step equals the single-device step on the same global batch;
- validation PSNR / SSIM / NMSE on magnitudes after each epoch (``metrics.ReconstructionMetric``);
  3D networks (``ndim == 3``) are trained and scored slice by slice: (batch, D, H, W) volumes
  become (batch * D, H, W) slices before the loss and the metrics, which leave out the slices whose
  target is zero everywhere (their NMSE and PSNR are undefined: a slab padding a thin volume); a 2D
  example whose target is zero everywhere stops the run with an ``InvalidArgumentError`` naming it
  (the metrics assert inside the graph) instead of an infinite loss and NaN weights;
- a progress bar (Keras ``verbose``), ``RUN_DIR/log.csv`` and TensorBoard logs in ``RUN_DIR/logs``;
- ``keras.callbacks.BackupAndRestore`` in ``RUN_DIR/backup`` (weights, optimizer state and
  epoch, written at the end of each epoch): calling ``fit`` again with the same ``run_dir``
  after an interruption resumes at the last completed epoch, so the total number of
  optimizer steps stays ``steps``;
- at the end, ``RUN_DIR/run.json`` (settings, validation metrics, wall time summed over
  the sessions) and, with ``preset_dir``, ``save_to_preset`` with a model card filled
  from the run.

Run-directory layout: ``backup/``, ``logs/`` (TensorBoard), ``log.csv``, ``validation_curve.png``
(redrawn after each epoch), ``sessions.json`` (one entry per call: starting epoch, wall time), ``run.json``
(and, with ``keep="best"``, ``best.weights.h5`` and ``best.json``: the best validation epoch's weights). Under ``MultiWorkerMirroredStrategy``
(``TF_CONFIG``; :func:`strategy_from_environment`) the chief writes these and the preset; the other
workers keep their backups and logs in ``RUN_DIR/<task type>-<index>/``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import h5py
import keras
import tensorflow as tf

from ..checks import check_scalar
from ..data.pipelines import (
    cartesian_dataset,
    list_h5_files,
    noncartesian_3d_dataset,
    noncartesian_dataset,
    check_noise_range,
    synthesized_cartesian_dataset,
    synthesized_denoising_dataset,
    synthesized_image_dataset,
    synthesized_noncartesian_dataset,
)
from ..data.synthesis import Synthesis
from ..metrics import ReconstructionMetric
from ..models.base import ReconstructionModel, ZooModel
from ..models.score import SpectralNormProjection
from ..presets import from_preset, save_to_preset
from ..utils import atomic_write, center_crop, write_json, write_text
from .losses import ReconstructionLoss, get_loss
from .optimizers import get_optimizer

__all__ = [
    "fit",
    "finetune",
    "FitResult",
    "freeze_layers",
    "l1_magnitude_step",
    "training_data",
    "image_training_data",
    "acquisition_dataset",
    "check_acquisition",
    "cartesian_training_data",
    "acquisition_from_metadata",
    "strategy_from_environment",
    "DEFAULT_LEARNING_RATE",
    "FINETUNE_LR_FACTOR",
    "KEEP",
    "read_best_state",
    "check_keep",
    "kept_sentence",
]

#: Learning rate of ``fit`` when none is given.
DEFAULT_LEARNING_RATE = 1e-3
#: ``finetune`` defaults to ``DEFAULT_LEARNING_RATE / FINETUNE_LR_FACTOR``.
FINETUNE_LR_FACTOR = 10.0
#: The loss of a prior: residual denoising score matching (``models.score.denoising_score_matching_loss``).
DSM_LOSS = "dsm"

_SESSIONS_FILE = "sessions.json"
_RUN_FILE = "run.json"
#: ``fit(keep=...)``: the weights after the last step, or those of the best validation epoch.
KEEP = ("last", "best")
BEST_WEIGHTS_FILE = "best.weights.h5"
BEST_STATE_FILE = "best.json"
BEST_STATE_ATTRIBUTE = "fastmri_zoo_best"  # the kept weights' epoch, step and value, inside best.weights.h5


@dataclass
class FitResult:
    """What ``fit`` returns: the trained network and the facts of the run."""

    model: ZooModel
    metrics: dict[str, float]
    steps: int
    epochs: int
    batch_size: int
    wall_time: float
    run_dir: Path
    preset_dir: Path | None
    history: dict[str, list[float]] = field(default_factory=dict)
    resumed_from_epoch: int = 0


# --------------------------------------------------------------------------- training model


def _as_slices(volumes):
    """(batch, D, H, W) -> (batch * D, H, W): 3D networks are trained and scored slice-wise."""
    return tf.reshape(volumes, tf.concat([[-1], tf.shape(volumes)[-2:]], 0))


def _slices_with_signal(target, prediction, axis: int = 0):
    """``target`` and ``prediction`` (slices along ``axis`` of the prediction: 1 for a stack of iterates) without
    the target slices that are zero everywhere: a 3D network's slab may hold such slices (the zero slices padding
    a volume thinner than the slab, or slices outside the object), whose NMSE and PSNR are undefined."""
    signal = tf.reduce_max(tf.abs(target), axis=tf.range(1, tf.rank(target))) > 0
    return tf.boolean_mask(target, signal), tf.boolean_mask(prediction, signal, axis=axis)


class _TrainingModel(keras.Model):
    """network(inputs), centre-cropped to the target size (as slices for 3D networks); loss from
    the toolkit, never Keras' compiled loss (which would cast a complex prediction to float32)."""

    def __init__(self, network: ReconstructionModel, loss: ReconstructionLoss, target_shape=None,
                 volumes: bool = False, multi_worker: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.reconstruction_loss = loss
        self.target_shape = None if target_shape is None else tuple(int(s) for s in target_shape)
        self.volumes = bool(volumes)
        self.multi_worker = bool(multi_worker)
        # networks trained on the loss averaged over their iterates (the RIM, Putzky & Welling 2019)
        self.loss_over_steps = bool(getattr(network, "LOSS_OVER_STEPS", False))

    def _logs(self, logs):
        # Under MultiWorkerMirroredStrategy Keras averages each replica's logs along axis 0, which
        # scalars lack: give them that axis (the values are already aggregated over the replicas).
        if not self.multi_worker:
            return logs
        return {key: tf.reshape(value, [1]) for key, value in logs.items()}

    def train_step(self, data):
        return self._logs(super().train_step(data))

    def test_step(self, data):
        return self._logs(super().test_step(data))

    def _as_target(self, output):
        if self.volumes:
            output = _as_slices(output)
        if self.target_shape is not None and tuple(output.shape[-2:]) != self.target_shape:
            output = center_crop(output, self.target_shape)
        return output

    def call(self, inputs, training=None):
        if self.loss_over_steps:  # (n_iter, batch, ...): every iterate, the last one scored by the metrics
            return tf.stack([self._as_target(output)
                             for output in self.network(inputs, training=training, all_steps=True)])
        return self._as_target(self.network(inputs, training=training))

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        y_pred = y_pred[-1] if self.loss_over_steps else y_pred
        if self.volumes:
            y, y_pred = _slices_with_signal(y, y_pred)
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self.volumes:
            y, y_pred = _slices_with_signal(y, y_pred, axis=1 if self.loss_over_steps else 0)
        if self.loss_over_steps:
            iterates = tf.unstack(y_pred)
            loss = tf.add_n([self.reconstruction_loss(y, iterate, sample_weight) for iterate in iterates])
            loss = loss / len(iterates)
        else:
            loss = self.reconstruction_loss(y, y_pred, sample_weight)
        if self.losses:  # regularisers, scaled for tf.distribute as the compiled loss is
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            loss = loss + tf.add_n([tf.cast(extra, loss.dtype) for extra in self.losses]) / replicas
        return loss


# --------------------------------------------------------------------------- helpers


def check_keep(keep, name: str = "keep") -> str:
    """``keep`` if it is one of ``KEEP``; a ValueError naming ``name`` otherwise."""
    if keep not in KEEP:
        raise ValueError(f"{name}: expected one of {list(KEEP)}, got {keep!r}.")
    return keep


def check_learning_rate_drops(drops, steps: int, steps_per_epoch: int) -> list[tuple[int, float]]:
    """``drops`` as a sorted list of ``(step, factor)``: each step a multiple of ``steps_per_epoch``
    in (0, ``steps``), each factor positive (a factor above 1 raises the rate again: a warm restart,
    as when a finished run is extended), the rate never above the starting one; raises a ValueError naming what was expected."""
    checked = []
    for drop in drops or ():
        if isinstance(drop, (str, bytes)) or not hasattr(drop, "__len__") or len(drop) != 2:
            raise ValueError(f"learning_rate_drops: expected [step, factor] pairs, got {drop!r}.")
        step = check_scalar("learning_rate_drops step", drop[0], integer=True, at_least=1)
        factor = check_scalar("learning_rate_drops factor", drop[1], above=0)
        if step >= steps or step % steps_per_epoch:
            raise ValueError(f"learning_rate_drops: step {step} must be below steps={steps} and a multiple of "
                             f"steps_per_epoch={steps_per_epoch} (the rate is set at epoch starts).")
        checked.append((int(step), float(factor)))
    if len({step for step, _ in checked}) != len(checked):
        raise ValueError(f"learning_rate_drops: expected distinct steps, got {[s for s, _ in checked]}.")
    checked.sort()
    scale = 1.0
    for step, factor in checked:  # the running product is learning_rate_at(step, 1.0, checked)
        scale *= factor
        if scale > 1 + 1e-9:
            raise ValueError(f"learning_rate_drops: from step {step} the rate would be {scale:g} times the starting "
                             "rate; expected at most 1 (a restart returns to the starting rate).")
    return checked


def learning_rate_at(step: int, learning_rate: float, drops: Sequence[tuple[int, float]]) -> float:
    """The learning rate at optimizer step ``step``: ``learning_rate`` times every factor whose step is reached."""
    rate = float(learning_rate)
    for start, factor in drops:
        if step >= start:
            rate *= factor
    return rate


def _build_optimizer_ahead(optimizer, model: keras.Model) -> None:
    """Make ``optimizer``'s variables for ``model``'s trainable weights now, if the model is built. Left to the first
    traced training step, their creation makes TensorFlow trace that ``tf.function`` a second time (a minute for
    the i-RIM recipes on one core)."""
    if model.built and not optimizer.built:
        optimizer.build(model.trainable_variables)


def l1_magnitude_step(model: keras.Model, optimizer, jit_compile: bool = False) -> Callable:
    """``step(inputs, target) -> loss``: one optimizer step on mean(| |model(inputs)| - target |).

    The L1-on-magnitude objective of the shipped checkpoints as a bare ``tf.function``
    (XLA-compiled with ``jit_compile``), without ``fit``'s machinery: for benchmarks and quick
    training checks.
    """

    _build_optimizer_ahead(optimizer, model)

    @tf.function(jit_compile=jit_compile)
    def step(inputs, target):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(tf.abs(model(inputs, training=True)) - target))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def _walk_layers(layer) -> list:
    found = []
    for child in getattr(layer, "layers", []) or []:
        found.append(child)
        found.extend(_walk_layers(child))
    return found


def freeze_layers(network: keras.Model, names: Sequence[str]) -> list[str]:
    """Set ``trainable = False`` on the sub-layers of ``network`` whose name is one of
    ``names`` or starts with one of them (``"image_net"`` freezes ``image_net_0``, ...).
    Returns the frozen layer names; raises a ValueError for a name that matches nothing."""
    if isinstance(names, str):
        names = [names]
    layers = _walk_layers(network)
    frozen = []
    for name in names:
        matches = [layer for layer in layers if layer.name == name or layer.name.startswith(name)]
        if not matches:
            available = sorted({layer.name for layer in layers})
            raise ValueError(
                f"freeze: no sub-layer of {type(network).__name__} is named {name!r} or starts with it; "
                f"its layers are {available}."
            )
        for layer in matches:
            layer.trainable = False
            if layer.name not in frozen:
                frozen.append(layer.name)
    return frozen


def _model_inputs(inputs: dict) -> dict:
    # "scale" is for going back to file units; the networks do not take it.
    return {key: value for key, value in inputs.items() if key != "scale"}


def _check_dataset(name: str, dataset) -> None:
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(f"{name}: expected a batched tf.data.Dataset of (inputs dict, target), got {type(dataset).__name__}.")
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], dict)):
        raise ValueError(
            f"{name}: expected elements (inputs dict, target) as from data.cartesian_dataset, got element spec {spec}."
        )


def _static_target_shape(dataset) -> tuple | None:
    shape = dataset.element_spec[1].shape
    if shape.rank is None or shape.rank < 2 or None in shape[-2:]:
        return None
    return tuple(int(s) for s in shape[-2:])


def _clip_summed_gradients(optimizer) -> None:
    """Clip the all-reduced gradient, not each replica's share of it.

    Keras applies ``clipnorm`` / ``global_clipnorm`` to each replica's gradient before summing
    them over the replicas, so with clipping active a multi-replica step differs from the
    one-device step on the same global batch. Here each replica's share is scaled by the clipping
    factor of the summed gradient (clipping is a scaling, so the sum of the scaled shares is the
    clipped sum), and the optimizer's own all-reduce then gives the single-device update.
    """
    if optimizer.clipvalue:
        raise ValueError("clipvalue: element-wise clipping is not a scaling; under tf.distribute use clipnorm.")
    if not (optimizer.clipnorm or optimizer.global_clipnorm):
        return

    def factor(norm, limit):
        return limit / tf.maximum(norm, limit)

    def clip(grads):
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return per_replica_clip(grads)
        present = [g for g in grads if g is not None]
        summed = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present))
        norms = [None if g is None else tf.norm(next(summed)) for g in grads]
        if optimizer.clipnorm:
            limit = tf.cast(optimizer.clipnorm, tf.float32)
            return [None if g is None else g * tf.cast(factor(n, limit), g.dtype) for g, n in zip(grads, norms)]
        limit = tf.cast(optimizer.global_clipnorm, tf.float32)
        scale = factor(tf.linalg.global_norm([n for n in norms if n is not None]), limit)
        return [None if g is None else g * tf.cast(scale, g.dtype) for g in grads]

    per_replica_clip = optimizer._clip_gradients
    optimizer._clip_gradients = clip


def strategy_from_environment() -> tf.distribute.Strategy | None:
    """``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` describes a cluster of several tasks,
    else None (the default strategy). Create it before any other TensorFlow work."""
    config = os.environ.get("TF_CONFIG")
    if not config:
        return None
    try:
        cluster = json.loads(config).get("cluster", {})
    except ValueError:
        raise ValueError(f"TF_CONFIG: not valid JSON: {config!r}.") from None
    if sum(len(tasks) for tasks in cluster.values()) < 2:
        return None
    return tf.distribute.MultiWorkerMirroredStrategy()


def _in_cluster(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is not None and bool(resolver.cluster_spec().as_dict())


def _worker_name(strategy) -> str | None:
    """None on the chief (or without a cluster), else "<task type>-<index>" of this worker."""
    if not _in_cluster(strategy):
        return None
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    if task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0):
        return None
    return f"{task_type}-{task_id}"


def _rebuild_in_scope(network: ReconstructionModel, strategy) -> tuple[ReconstructionModel, list | None]:
    """The same architecture created under ``strategy.scope()``, and the weights to give it."""
    weights = network.get_weights() if network.built else None
    with strategy.scope():
        clone = type(network).from_config(network.get_config())
    return clone, weights


class _SessionLog(keras.callbacks.Callback):
    """Appends one entry per ``fit`` session to sessions.json (starting epoch, epochs done, seconds)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.start = None
        self.entry = None

    def _sessions(self) -> list:
        if self.path.is_file():
            try:
                return json.loads(self.path.read_text())
            except ValueError:
                return []
        return []

    def _write(self):
        sessions = self._sessions()
        if sessions and sessions[-1].get("id") == self.entry["id"]:
            sessions[-1] = self.entry
        else:
            sessions.append(self.entry)
        write_json(self.path, sessions)

    def on_train_begin(self, logs=None):
        self.start = time.time()
        self.entry = {"id": f"{os.getpid()}-{self.start}", "start_epoch": None, "epochs_done": 0, "seconds": 0.0}

    def on_epoch_begin(self, epoch, logs=None):
        if self.entry["start_epoch"] is None:
            self.entry["start_epoch"] = int(epoch)
            self._write()

    def on_epoch_end(self, epoch, logs=None):
        self.entry["epochs_done"] = int(epoch) + 1
        self.entry["seconds"] = time.time() - self.start
        self._write()

    def on_train_end(self, logs=None):
        self.entry["seconds"] = time.time() - self.start
        self._write()


class _BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the best validation ``monitor`` in ``RUN_DIR/best.weights.h5``, its epoch,
    step and value written into the same file (an HDF5 attribute) before it atomically replaces the last one, so the
    weights and what they are can never disagree, and a resumed run continues from the best so far.
    ``RUN_DIR/best.json`` mirrors the attribute for people."""

    def __init__(self, network, run_dir: Path, monitor: str, mode: str, steps_per_epoch: int):
        super().__init__()
        self.network = network  # the zoo model, not the training wrapper keras fits
        self.weights_path, self.state_path = run_dir / BEST_WEIGHTS_FILE, run_dir / BEST_STATE_FILE
        self.monitor, self.mode, self.steps_per_epoch = monitor, mode, steps_per_epoch
        self.state = read_best_state(run_dir)
        if self.state is not None:  # the mirror may lag the weights (a kill between the two writes)
            write_json(self.state_path, self.state)

    def _better(self, value: float) -> bool:
        if self.state is None:
            return True
        return value > self.state["value"] if self.mode == "max" else value < self.state["value"]

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)) or not self._better(float(value)):
            return
        state = {"epoch": int(epoch), "step": (int(epoch) + 1) * self.steps_per_epoch, "monitor": self.monitor,
                 "value": float(value)}
        with atomic_write(self.weights_path, suffix=".weights.h5") as temporary:  # Keras wants that ending
            self.network.save_weights(temporary)
            with h5py.File(temporary, "a") as weights:
                weights.attrs[BEST_STATE_ATTRIBUTE] = json.dumps(state)
        self.state = state
        write_json(self.state_path, state)


def kept_sentence(kept: dict, steps: int | None = None) -> str:
    """What a card says of weights kept by ``keep="best"`` (``kept``: :func:`read_best_state`'s record;
    ``steps``: the run's, to tell whether the best step was the last)."""
    best = f"the best validation {kept['monitor'].removeprefix('val_')} ({kept['value']:.4g})"
    if steps is not None and int(kept["step"]) == int(steps):
        return f"The weights are those of the last step, {kept['step']:,}, also {best}."
    return f"The weights are those of step {kept['step']:,}, {best}, not the last step's."


def read_best_state(run_dir) -> dict | None:
    """The epoch, step, monitored metric and value of the weights kept in ``RUN_DIR/best.weights.h5`` (read from
    the file itself), or None."""
    weights_path = Path(run_dir) / BEST_WEIGHTS_FILE
    if not weights_path.is_file():
        return None
    with h5py.File(weights_path, "r") as weights:
        state = weights.attrs.get(BEST_STATE_ATTRIBUTE)
    return None if state is None else json.loads(state)


class _CurvePlot(keras.callbacks.Callback):
    """Redraws ``RUN_DIR/validation_curve.png`` from ``log.csv`` after each epoch (after the
    CSV logger has written it): validation and training ``metric`` (PSNR; a prior's DSM loss)
    against optimizer steps."""

    def __init__(self, log_path: Path, png_path: Path, steps_per_epoch: int, metric: str = "psnr"):
        super().__init__()
        self.log_path, self.png_path, self.steps_per_epoch = log_path, png_path, steps_per_epoch
        self.metric = metric

    def on_epoch_end(self, epoch, logs=None):
        from ..viz import save_training_curve_png  # lazy: matplotlib only when a run draws its curve

        try:
            save_training_curve_png(self.png_path, self.log_path, self.steps_per_epoch, metric=self.metric)
        except (OSError, ValueError) as error:  # a picture must never stop a training run
            warnings.warn(f"validation curve not drawn: {error}", stacklevel=2)


def _json_number(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _first_batch(dataset: tf.data.Dataset):
    for inputs, target in dataset.take(1):
        return inputs, target
    raise ValueError("train_dataset: it is empty; expected at least one batch.")


def _describe_optimizer(optimizer, learning_rate_drops: Sequence[tuple[int, float]] = ()) -> str:
    """The optimizer in words; with drops, its schedule (``learning rate 0.001, x0.1 from step 6000``)
    from the starting rate, not the rate it ended at."""
    config = keras.saving.serialize_keras_object(optimizer)
    inner = getattr(optimizer, "inner_optimizer", None)
    text = type(optimizer).__name__
    if inner is not None:
        text += f"({type(inner).__name__}, sync_period={optimizer.sync_period}, slow_step_size={optimizer.slow_step_size})"
    lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    done = int(keras.ops.convert_to_numpy(optimizer.iterations))
    start = lr / learning_rate_at(done, 1.0, learning_rate_drops)  # undo the drops already applied
    schedule = "".join(f", x{factor:g} from step {step}" for step, factor in learning_rate_drops)
    clip = config["config"].get("clipnorm", getattr(optimizer, "clipnorm", None))
    return f"{text}, learning rate {start:.6g}{schedule}" + (f", clipnorm {clip:g}" if clip else "")


# --------------------------------------------------------------------------- fit


def fit(
    model: ZooModel | Callable[[], ZooModel],
    train_dataset: tf.data.Dataset,
    val_dataset: tf.data.Dataset | None = None,
    *,
    steps: int,
    steps_per_epoch: int | None = None,
    loss=None,
    optimizer="adam",
    learning_rate: float | None = DEFAULT_LEARNING_RATE,
    clipnorm: float | None = 1.0,
    run_dir: str | os.PathLike,
    seed: int | None = 0,
    freeze: Sequence[str] = (),
    strategy: tf.distribute.Strategy | None = None,
    preset_dir: str | os.PathLike | None = None,
    val_steps: int | None = None,
    verbose="auto",
    card: Mapping[str, Any] | None = None,
    command: str | None = None,
    data_description: str | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    run_eagerly: bool = False,
    learning_rate_drops: Sequence[Sequence[float]] = (),
    spectral_norm: float | None = None,
    keep: str = "last",
) -> FitResult:
    """Train ``model`` for ``steps`` optimizer steps, resumably, and optionally export a preset.

    model: a zoo model of task "reconstruction" (a ReconstructionModel), "denoising" (a
    ``models.Denoiser``) or "prior" (a ``models.ScoreNetwork``), or a zero-argument callable building
    one (called after
    seeding, under ``strategy.scope()``); a model built outside ``strategy``'s scope is
    rebuilt in it with the same weights. train_dataset / val_dataset: batched
    ``tf.data.Dataset`` of ``(inputs, target)`` as ``data.cartesian_dataset`` returns
    (inputs a dict, complex64 k-space; target float32 (batch, h, w) magnitudes, or complex
    targets for ``on="complex"`` losses; an ``inputs["scale"]`` entry is dropped); for a denoiser,
    ``({"image": noisy, "sigma": s}, clean)`` as ``data.synthesized_denoising_dataset`` returns; for a
    prior, ``({"image": x}, x)`` of clean complex64 images as ``data.synthesized_image_dataset``
    returns (both from :func:`image_training_data`). Callbacks the network needs in any training
    (``ZooModel.training_callbacks``: a learnlet's noise normalisation) are added. The
    training set is repeated as needed. steps: total optimizer steps, a multiple of
    ``steps_per_epoch`` (default: ``min(steps, 100)``); one backup and one validation per
    epoch. loss: a name of ``losses.LOSSES``, a dict ``{"name": ..., **kwargs}`` or a
    ``ReconstructionLoss`` (its mean over the images of the batch is minimised; 3D networks:
    over the slices of the volumes); default "l1"; a prior's loss is ``"dsm"`` (its default and
    only loss: the network's own ``train_step``, sigma ~ N(0, s^2) with s its ``sigma_scale``;
    validated on a fixed draw, its ``test_step``). spectral_norm: after every optimizer step
    (and before the first) every convolution kernel is rescaled to this spectral norm
    (``models.score.SpectralNormProjection``; the thesis' priors use 2.0); None: no projection. keep:
    ``"last"`` (the weights after the last step) or ``"best"`` (those of the epoch with the best validation
    PSNR, a prior's lowest validation loss; kept in ``RUN_DIR/best.weights.h5`` and ``best.json`` as training
    goes, so a run that degrades late, or diverges, still ends with its best point; needs validation data).
    optimizer: a name ("adam", "radam", "lookahead_radam", any
    Keras optimizer), a dict or an optimizer instance; ``learning_rate`` and ``clipnorm``
    are set on it. learning_rate_drops: ``[(step, factor), ...]``: from optimizer step ``step``
    on (a multiple of ``steps_per_epoch``, below ``steps``) the learning rate is ``learning_rate``
    times the product of the factors reached (:func:`learning_rate_at`), set at each epoch's start,
    so a resumed run follows the same schedule. seed: ``keras.utils.set_random_seed`` at the start. freeze: sub-layer
    names or prefixes kept fixed (:func:`freeze_layers`). val_steps: validation batches per
    epoch (default: all, cached in memory). preset_dir: where ``save_to_preset`` writes the
    trained network; ``card`` adds or overrides model-card fields (a ``description`` is
    followed by the run's facts); ``command`` and ``data_description`` fill its training
    command and data sections. When the training
    dataset comes from ``data.pipelines`` its ``preprocessor`` is checked against the network
    and recorded in the preset. run_eagerly: run the steps eagerly (3D non-Cartesian
    networks: the per-trajectory caches, e.g. the Toeplitz kernel, are then computed once).

    strategy: e.g. ``tf.distribute.MirroredStrategy()`` or ``MultiWorkerMirroredStrategy()``
    (:func:`strategy_from_environment`); the dataset's batch is the global batch, split over
    the replicas, and the update equals the single-device one on that batch (gradient
    clipping included, see the module docstring).

    Returns a :class:`FitResult` (trained network, final validation metrics, ...).
    """
    steps = check_scalar("steps", steps, integer=True, at_least=1)
    if spectral_norm is not None:
        spectral_norm = check_scalar("spectral_norm", spectral_norm, above=0)
    steps_per_epoch = min(steps, 100) if steps_per_epoch is None else steps_per_epoch
    steps_per_epoch = check_scalar("steps_per_epoch", steps_per_epoch, integer=True, at_least=1)
    if steps % steps_per_epoch:
        raise ValueError(
            f"steps: expected a multiple of steps_per_epoch={steps_per_epoch} (backups and validation happen "
            f"at epoch ends), got {steps}."
        )
    if val_steps is not None:
        val_steps = check_scalar("val_steps", val_steps, integer=True, at_least=1)
    check_keep(keep)
    if keep == "best" and val_dataset is None:
        raise ValueError("keep: 'best' picks the weights by their validation metric; give a val_dataset.")
    learning_rate_drops = check_learning_rate_drops(learning_rate_drops, steps, steps_per_epoch)
    if learning_rate_drops and learning_rate is None:
        raise ValueError("learning_rate_drops: expected a learning_rate to scale, got None.")
    _check_dataset("train_dataset", train_dataset)
    if val_dataset is not None:
        _check_dataset("val_dataset", val_dataset)
    if run_dir is None:
        raise ValueError("run_dir: expected a folder for backups and logs, got None.")
    run_dir = Path(run_dir).expanduser().absolute()
    scope_strategy = strategy or tf.distribute.get_strategy()
    worker = _worker_name(scope_strategy)
    if worker is not None:  # only the chief writes the run's records and the preset
        run_dir, preset_dir = run_dir / worker, None
    run_dir.mkdir(parents=True, exist_ok=True)
    epochs = steps // steps_per_epoch
    if seed is not None:
        keras.utils.set_random_seed(int(seed))

    train = train_dataset.map(lambda x, y: (_model_inputs(x), y))
    example_inputs, example_target = _first_batch(train)
    batch_size = int(example_target.shape[0])

    if isinstance(model, ZooModel):
        network, weights = model, None
        if strategy is not None and model.distribute_strategy is not strategy:
            network, weights = _rebuild_in_scope(model, strategy)
    elif callable(model):
        with scope_strategy.scope():
            network, weights = model(), None
        if not isinstance(network, ZooModel):
            raise ValueError(f"model: the callable returned a {type(network).__name__}, expected a ReconstructionModel, "
                             "a denoiser or a prior (ScoreNetwork).")
    else:
        raise ValueError(f"model: expected a ReconstructionModel, a denoiser, a prior (ScoreNetwork) or a callable "
                         f"building one, got {type(model).__name__}.")
    prior = network.TASK == "prior"
    if network.TASK not in ("reconstruction", "denoising", "prior"):
        raise ValueError(f"model: fit trains reconstruction networks, denoisers and priors; {type(network).__name__} "
                         f"is a {network.TASK} model.")
    if prior and loss not in (None, DSM_LOSS):
        raise ValueError(f"loss: a prior ({type(network).__name__}) is trained by denoising score matching, "
                         f"loss {DSM_LOSS!r}; got {loss!r}.")
    if prior:
        # A prior is called on (image, sigma): the preset records both, at the training images' size.
        images = example_inputs["image"]
        example_inputs = {"image": images, "sigma": tf.zeros(tf.shape(images)[:1], tf.float32)}

    preprocessor = getattr(train_dataset, "preprocessor", None)
    if preprocessor is not None:
        preprocessor.check_model(network)  # before any computation
    volumes = int(getattr(network, "ndim", 2) or 2) == 3
    if volumes:
        train = train.map(lambda x, y: (x, _as_slices(y)))
    train = train.repeat()
    val = None
    if val_dataset is not None:
        val = val_dataset.map(lambda x, y: (_model_inputs(x), _as_slices(y) if volumes else y))
        if val_steps is not None:
            val = val.take(val_steps)
        val = val.cache()

    with scope_strategy.scope():
        if not network.built:
            network(example_inputs)  # BackupAndRestore needs built weights
        if weights is not None:
            network.set_weights(weights)
        frozen = freeze_layers(network, freeze) if freeze else []
        loss_fn = None if prior else get_loss("l1" if loss is None else loss)
        opt = get_optimizer(optimizer, learning_rate, clipnorm)
        if scope_strategy.num_replicas_in_sync > 1:
            _clip_summed_gradients(opt)
    # Under MultiWorkerMirroredStrategy the training model is made outside the strategy's scope and
    # compiled and trained inside it: Keras then takes the strategy from the scope and skips its
    # symbolic build on a distributed batch, which cannot reduce dict inputs across workers (one
    # replica per worker: the metric variables are then made in the first step). The training model
    # has no variables of its own.
    multi_worker = _in_cluster(scope_strategy)
    if prior:
        trainer, metrics = network, None  # its own train_step / test_step: the DSM loss
    else:
        with (contextlib.nullcontext() if multi_worker else scope_strategy.scope()):
            trainer = _TrainingModel(network, loss_fn, _static_target_shape(train_dataset), volumes=volumes,
                                     multi_worker=multi_worker, name="training_model")
        metrics = [ReconstructionMetric("psnr"), ReconstructionMetric("ssim"), ReconstructionMetric("nmse")]
    with scope_strategy.scope():
        if not prior:
            trainer(example_inputs)
        trainer.compile(optimizer=opt, metrics=metrics, jit_compile=False, run_eagerly=bool(run_eagerly))
        # (as BackupAndRestore does when it resumes a run; without a distribution strategy Keras would not)
        _build_optimizer_ahead(trainer.optimizer, trainer)
    if not network.trainable_weights:
        raise ValueError(f"freeze: {frozen} leaves {type(network).__name__} with no trainable weights.")
    if preprocessor is not None:
        network.preprocessor = preprocessor  # recorded by save_to_preset (preprocessor.json)

    sessions_path = run_dir / _SESSIONS_FILE
    session_log = _SessionLog(sessions_path)
    all_callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), save_freq="epoch", delete_checkpoint=False),
        keras.callbacks.CSVLogger(str(run_dir / "log.csv"), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False, update_freq="epoch"),
        session_log,
        *network.training_callbacks(),  # e.g. the noise normalisation of learnlets
        _CurvePlot(run_dir / "log.csv", run_dir / "validation_curve.png", steps_per_epoch,
                   metric="loss" if prior else "psnr"),
        *([SpectralNormProjection(spectral_norm)] if spectral_norm is not None else []),
        *([_BestWeights(network, run_dir, "val_loss" if prior else "val_psnr", "min" if prior else "max", steps_per_epoch)]
          if keep == "best" else []),
        *([keras.callbacks.LearningRateScheduler(
            lambda epoch, _: learning_rate_at(epoch * steps_per_epoch, learning_rate, learning_rate_drops))]
          if learning_rate_drops else []),
        *callbacks,
    ]
    with scope_strategy.scope():
        history = trainer.fit(
            train,
            validation_data=val,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=all_callbacks,
            verbose=verbose,
            shuffle=False,  # the pipeline shuffles
        )
    done = int(keras.ops.convert_to_numpy(opt.iterations))
    if done != steps:
        raise RuntimeError(
            f"fit: the optimizer took {done} steps in total, expected {steps}; the backup in "
            f"{run_dir / 'backup'} does not belong to this run (remove it to start afresh)."
        )

    kept = None
    if keep == "best":
        kept = read_best_state(run_dir)
        if kept is None:
            raise RuntimeError(f"keep: no epoch had a finite validation metric; nothing was kept in {run_dir}.")
        network.load_weights(str(run_dir / BEST_WEIGHTS_FILE))
    if val is not None:
        with scope_strategy.scope():
            evaluated = trainer.evaluate(val, verbose=0, return_dict=True)
        final_metrics = {key: float(evaluated[key]) for key in ("psnr", "ssim", "nmse") if key in evaluated}
        final_metrics["loss"] = float(evaluated["loss"])
    else:
        final_metrics = {}
    sessions = json.loads(sessions_path.read_text()) if sessions_path.is_file() else []
    # This session is the last entry; no starting epoch means the run was already complete.
    start_epoch = sessions[-1].get("start_epoch") if sessions else 0
    resumed_from = epochs if start_epoch is None else int(start_epoch)
    wall_time = float(sum(entry.get("seconds", 0.0) for entry in sessions))

    optimizer_text = _describe_optimizer(opt, learning_rate_drops)
    if prior:
        loss_text = (f"denoising score matching (residual, noise-conditional; sigma ~ N(0, s^2), s = "
                     f"{network.sigma_scale:g})")
    else:
        loss_text = f"{type(loss_fn).__name__}({json.dumps({k: v for k, v in loss_fn.get_config().items() if k not in ('name', 'reduction')})})"
    if spectral_norm is not None:
        loss_text += f", kernels projected to spectral norm {spectral_norm:g} after every step"
    command = command or f"fastmri_zoo.training.fit(..., steps={steps}, steps_per_epoch={steps_per_epoch})"
    run = {
        "model": keras.saving.serialize_keras_object(network)["config"] | {"class_name": type(network).__name__},
        "command": command,
        "data": data_description,
        "steps": steps,
        "steps_per_epoch": steps_per_epoch,
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": optimizer_text,
        "optimizer_config": keras.saving.serialize_keras_object(opt),
        "optimizer_iterations": done,
        "loss": loss_text,
        "task": network.TASK,
        "spectral_norm": spectral_norm,
        "seed": seed,
        "frozen_layers": frozen,
        "replicas": scope_strategy.num_replicas_in_sync,
        "run_eagerly": bool(run_eagerly),
        "validation_metrics": {k: _json_number(v) for k, v in final_metrics.items()},
        "validation_batches": None if val is None else int(sum(1 for _ in val)),
        "wall_time_seconds": wall_time,
        "sessions": len(sessions),
        "resumed_from_epoch": resumed_from,
        "kept": kept or "last",
    }
    write_text(run_dir / _RUN_FILE, json.dumps(run, indent=1, default=str))  # atomic; default=str: the configs' odd values

    preset_path = None
    if preset_dir is not None:
        card_fields = {
            "description": (
                f"{type(network).__name__} trained with fastmri_zoo.training.fit: {steps} steps of batch "
                f"{batch_size} ({epochs} epochs of {steps_per_epoch}), optimizer {optimizer_text}, loss {loss_text}, "
                f"seed {seed}, {scope_strategy.num_replicas_in_sync} replica(s), wall time {wall_time:.0f} s"
                + (f", frozen layers {frozen}" if frozen else "") + "."
                + (" " + kept_sentence(kept, steps) if kept else "")
            ),
            "architecture": type(network).__name__,
            "training_data": data_description,
            "training_command": command,
            "evaluation_data": "the validation set of the run" if val is not None else None,
            "metrics": {k: v for k, v in final_metrics.items() if k != "loss" and math.isfinite(v)},
        }
        given = dict(card or {})
        if given.get("description"):  # the caller's description, then the facts of the run
            given["description"] = f"{given['description']} {card_fields['description']}"
        card_fields.update(given)
        example = {key: value[:1].numpy() for key, value in example_inputs.items()}
        preset_path = save_to_preset(network, preset_dir, example_inputs=example, **card_fields)

    return FitResult(
        model=network,
        metrics=final_metrics,
        steps=done,
        epochs=epochs,
        batch_size=batch_size,
        wall_time=wall_time,
        run_dir=run_dir,
        preset_dir=preset_path,
        history={key: [float(v) for v in values] for key, values in history.history.items()},
        resumed_from_epoch=resumed_from,
    )


# --------------------------------------------------------------------------- data and fine-tuning

#: The pipeline options an ``acquisition`` description may give, by (kind, ndim); the rest is named.
_ACQUISITION_OPTIONS = {
    ("cartesian", 2): {"mask_type", "center_fraction", "acceleration", "normalize"},
    ("noncartesian", 2): {"trajectory", "acceleration", "normalize", "image_shape", "golden_angle", "oversampling",
                          "dcomp_iterations"},
    ("noncartesian", 3): {"trajectory", "acceleration", "normalize", "volume_shape", "oversampling",
                          "dcomp_iterations"},
}
_TRAJECTORIES = {2: ("radial", "spiral"), 3: ("kooshball",)}


def check_acquisition(acquisition: Mapping[str, Any], where: str = "acquisition") -> dict:
    """A validated copy of an acquisition description (the ``acquisition`` section of a recipe).

    ``{"kind": "cartesian", "multicoil": bool, "mask_type": "random" | "equispaced" |
    "equispaced_fraction", "center_fraction": float or list, "acceleration": float or list}``;
    ``{"kind": "noncartesian", "ndim": 2, "multicoil": bool, "trajectory": "radial" | "spiral",
    "acceleration": N / shots, [image_shape, golden_angle, oversampling, dcomp_iterations]}``;
    ``{"kind": "noncartesian", "ndim": 3, "multicoil": bool, "trajectory": "kooshball",
    "acceleration": D W / shots, [volume_shape, oversampling, dcomp_iterations]}``; every kind
    takes ``normalize`` (default True). Raises a ValueError naming the offending key.
    """
    if not isinstance(acquisition, Mapping):
        raise ValueError(f"{where}: expected a JSON object with a 'kind', got {acquisition!r}.")
    options = dict(acquisition)
    kind = options.pop("kind", None)
    ndim = options.pop("ndim", 2)
    multicoil = options.pop("multicoil", False)
    if (kind, ndim) not in _ACQUISITION_OPTIONS:
        raise ValueError(
            f"{where}: expected kind 'cartesian' (ndim 2) or 'noncartesian' (ndim 2 or 3), got kind {kind!r}, "
            f"ndim {ndim!r}."
        )
    if not isinstance(multicoil, bool):
        raise ValueError(f"{where}.multicoil: expected true or false, got {multicoil!r}.")
    allowed = _ACQUISITION_OPTIONS[(kind, ndim)]
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} for a {ndim}D {kind} acquisition; accepted: "
                         f"{sorted(allowed | {'kind', 'ndim', 'multicoil'})}.")
    if kind == "noncartesian":
        trajectory = options.get("trajectory")
        if trajectory not in _TRAJECTORIES[ndim]:
            raise ValueError(f"{where}.trajectory: expected one of {list(_TRAJECTORIES[ndim])} for ndim {ndim}, "
                             f"got {trajectory!r}.")
    return {"kind": kind, "ndim": ndim, "multicoil": multicoil, **options}


def check_synthesis(synthesis: Mapping[str, Any], acquisition: Mapping[str, Any] | None,
                    where: str = "data.synthesis") -> Synthesis:
    """The :class:`~fastmri_zoo.data.synthesis.Synthesis` of a recipe's ``data.synthesis`` block,
    checked against its (checked) acquisition: Cartesian or 2D non-Cartesian (the synthesised
    examples are slices), one coil for single-coil, at least 2 for multicoil, and a non-Cartesian
    ``image_shape``, if given, equal to ``size`` (the grid of the examples). ``acquisition`` None:
    the images themselves (a prior's), one coil."""
    if acquisition is None:
        options = Synthesis.from_dict(synthesis, where)
        if options.coils != 1:
            raise ValueError(f"{where}.coils: a prior learns coil-combined images, one coil; got {options.coils}.")
        return options
    if acquisition["ndim"] != 2:
        raise ValueError(f"{where}: synthesis from volumes makes 2D slices; expected a Cartesian or a 2D "
                         f"non-Cartesian acquisition (ndim 2), got a {acquisition['ndim']}D {acquisition['kind']} one.")
    options = Synthesis.from_dict(synthesis, where)
    if acquisition["multicoil"] != (options.coils > 1):
        raise ValueError(f"{where}.coils: {options.coils} coil(s) for a "
                         f"{'multicoil' if acquisition['multicoil'] else 'single-coil'} acquisition; expected "
                         f"{'at least 2' if acquisition['multicoil'] else '1'}.")
    image_shape = acquisition.get("image_shape")
    if image_shape is not None and tuple(int(n) for n in image_shape) != options.size:
        raise ValueError(f"{where}.size: {list(options.size)} but acquisition.image_shape is {list(image_shape)}; "
                         "expected the same grid (or no image_shape: the examples are on synthesis.size).")
    return options


#: Recipe names of the acquisition options -> the pipelines' keyword arguments (the Cartesian
#: ones take lists of centre fractions and accelerations).
_PIPELINE_NAMES = {"cartesian": {"center_fraction": "center_fractions", "acceleration": "accelerations"}}


def _pipeline_options(acquisition: Mapping[str, Any]) -> dict:
    """The keyword arguments of the pipeline of a checked ``acquisition`` (:func:`check_acquisition`):
    ``multicoil`` and the acquisition's options, renamed as the pipelines name them; a 3D
    acquisition's ``trajectory`` (always a kooshball) is left out."""
    renamed = _PIPELINE_NAMES.get(acquisition["kind"], {})
    options = {renamed.get(key, key): value for key, value in acquisition.items() if key not in ("kind", "ndim")}
    if acquisition["ndim"] == 3:
        options.pop("trajectory")
    return options


def acquisition_dataset(folder: str | os.PathLike, acquisition: Mapping[str, Any], *, seed: int | None = 0,
                        batch_size: int = 1, shuffle: bool = False) -> tf.data.Dataset:
    """The pipeline of ``acquisition`` (:func:`check_acquisition`) on the files of ``folder``:
    ``data.cartesian_dataset``, ``data.noncartesian_dataset`` or ``data.noncartesian_3d_dataset``
    (``drop_remainder`` when shuffled). seed: per-slice Cartesian masks and the shuffling; None
    redraws them."""
    acquisition = check_acquisition(acquisition)
    common = dict(seed=seed, batch_size=batch_size, shuffle=shuffle, drop_remainder=shuffle)
    if acquisition["kind"] == "cartesian":
        pipeline = cartesian_dataset
    else:
        pipeline = noncartesian_3d_dataset if acquisition["ndim"] == 3 else noncartesian_dataset
    return pipeline(folder, **_pipeline_options(acquisition), **common)


def training_data(
    train_dir: str | os.PathLike,
    val_dir: str | os.PathLike | None = None,
    acquisition: Mapping[str, Any] | None = None,
    *,
    batch_size: int = 1,
    seed: int | None = 0,
    fixed_train_masks: bool = False,
    synthesis: Mapping[str, Any] | None = None,
) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
    """Training and validation pipelines for ``fit``, for any acquisition.

    acquisition: see :func:`check_acquisition` (default: Cartesian single-coil, random masks,
    AF 4, centre fraction 0.08); the pipelines are ``data.cartesian_dataset``,
    ``data.noncartesian_dataset`` and ``data.noncartesian_3d_dataset``.
    Training: shuffled, ``drop_remainder`` batches, Cartesian masks redrawn at each visit of a
    slice (``fixed_train_masks=False``: seed None, the shuffling is then unseeded too) or fixed
    per slice by ``seed``; non-Cartesian data have one fixed trajectory. Validation: in order,
    masks fixed per slice by ``seed`` (0 when ``seed`` is None), the same at every epoch and run.
    synthesis (Cartesian or 2D non-Cartesian, :func:`check_synthesis`): the folders hold magnitude
    volumes and the examples are synthesised (``data.synthesized_cartesian_dataset``,
    ``data.synthesized_noncartesian_dataset``) on the grid ``synthesis.size``: training endless and
    augmented, every example (and Cartesian mask) new; validation ``val_examples`` fixed examples
    of seed ``seed`` (0 when None), not augmented.
    """
    acquisition = check_acquisition(acquisition or {"kind": "cartesian", "mask_type": "random",
                                                    "center_fraction": 0.08, "acceleration": 4})
    _check_folders(train_dir, val_dir)
    if synthesis is not None:
        options = check_synthesis(synthesis, acquisition)
        cartesian = acquisition["kind"] == "cartesian"
        pipeline = synthesized_cartesian_dataset if cartesian else synthesized_noncartesian_dataset
        settings = _pipeline_options(acquisition)
        settings.pop("image_shape", None)  # the grid is synthesis.size (check_synthesis)
        train = pipeline(train_dir, options, seed=None, batch_size=batch_size, **settings)
        val = None if val_dir is None else pipeline(val_dir, options, seed=0 if seed is None else seed,
                                                    batch_size=batch_size, **settings)
        return train, val
    list_h5_files(train_dir)
    train_seed = seed if fixed_train_masks else None
    train = acquisition_dataset(train_dir, acquisition, seed=train_seed, batch_size=batch_size, shuffle=True)
    val = None if val_dir is None else acquisition_dataset(val_dir, acquisition, seed=0 if seed is None else seed,
                                                batch_size=batch_size, shuffle=False)
    return train, val


def _check_folders(train_dir, val_dir) -> None:
    for name, folder in (("train_dir", train_dir), ("val_dir", val_dir)):
        if folder is not None and not os.path.isdir(folder):
            raise FileNotFoundError(f"{name}: no such folder: {os.fspath(folder)!r}")


def image_training_data(
    train_dir: str | os.PathLike,
    val_dir: str | os.PathLike | None = None,
    synthesis: Mapping[str, Any] | Synthesis | None = None,
    *,
    batch_size: int = 1,
    seed: int | None = 0,
    sigma: Sequence[float] | None = None,
) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
    """Training and validation images of a prior for ``fit``: ``data.synthesized_image_dataset`` on the
    magnitude volumes of ``train_dir`` and ``val_dir`` (complex slices with a smooth random phase, one coil,
    :func:`check_synthesis` with no acquisition); with ``sigma`` = [low, high], the examples of a denoiser
    instead: ``data.synthesized_denoising_dataset`` (magnitude slices, noise of a standard deviation drawn
    uniformly in [low, high] for each). Training: endless and augmented, every image new;
    validation: ``val_examples`` fixed images of seed ``seed`` (0 when None), not augmented."""
    options = check_synthesis(synthesis.to_dict() if isinstance(synthesis, Synthesis) else synthesis or {}, None)
    _check_folders(train_dir, val_dir)
    if sigma is None:
        pipeline = synthesized_image_dataset
    else:
        pipeline = functools.partial(synthesized_denoising_dataset, sigma=check_noise_range(sigma, "sigma"))
    train = pipeline(train_dir, options, seed=None, batch_size=batch_size)
    val = None if val_dir is None else pipeline(val_dir, options, seed=0 if seed is None else seed,
                                                batch_size=batch_size)
    return train, val


def cartesian_training_data(
    train_dir: str | os.PathLike,
    val_dir: str | os.PathLike | None = None,
    *,
    mask_type: str = "random",
    center_fractions: float | Sequence[float] = 0.08,
    accelerations: float | Sequence[float] = 4,
    multicoil: bool = False,
    batch_size: int = 1,
    seed: int | None = 0,
    fixed_train_masks: bool = False,
    normalize: bool = True,
) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
    """:func:`training_data` of a Cartesian acquisition, its settings as keyword arguments."""
    acquisition = {"kind": "cartesian", "multicoil": bool(multicoil), "mask_type": mask_type,
                   "center_fraction": center_fractions, "acceleration": accelerations, "normalize": normalize}
    return training_data(train_dir, val_dir, acquisition, batch_size=batch_size, seed=seed,
                         fixed_train_masks=fixed_train_masks)


def acquisition_from_metadata(metadata: Mapping[str, Any] | None, model) -> dict | None:
    """The acquisition description of a preset from its ``metadata.json["acquisition"]`` (what
    its model card records: mask type, centre fraction and acceleration, or trajectory and
    acceleration) and the model's ``multicoil`` / ``ndim``; None when the metadata has none."""
    recorded = dict(metadata or {})
    multicoil = bool(getattr(model, "multicoil", False))
    if "trajectory" in recorded:
        ndim = 3 if recorded["trajectory"] == "kooshball" else int(getattr(model, "ndim", 2) or 2)
        acquisition = {"kind": "noncartesian", "ndim": ndim, "multicoil": multicoil,
                       "trajectory": recorded["trajectory"], "acceleration": recorded.get("acceleration", 4)}
        # "oversampling" / "dcomp_iterations": presets written by the trainer (the recipe's acquisition);
        # "readout_oversampling": the earlier presets' record
        if "oversampling" in recorded or "readout_oversampling" in recorded:
            acquisition["oversampling"] = recorded.get("oversampling", recorded.get("readout_oversampling"))
        if "dcomp_iterations" in recorded:
            acquisition["dcomp_iterations"] = recorded["dcomp_iterations"]
        return acquisition
    if "mask_type" in recorded:
        return {"kind": "cartesian", "multicoil": multicoil, "mask_type": recorded["mask_type"],
                "center_fraction": recorded.get("center_fraction", 0.08),
                "acceleration": recorded.get("acceleration", 4)}
    return None


def _split_data_dir(data_dir) -> tuple[Path, Path | None]:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data_dir: no such folder: {str(data_dir)!r}")
    if (data_dir / "train").is_dir():
        val = data_dir / "val"
        return data_dir / "train", val if val.is_dir() else None
    return data_dir, None


def _describe_acquisition(acquisition: dict) -> str:
    coils = "multicoil" if acquisition["multicoil"] else "single-coil"
    if acquisition["kind"] == "cartesian":
        return (f"{coils} Cartesian, {acquisition.get('mask_type', 'random')} masks, accelerations "
                f"{acquisition.get('acceleration', 4)}, centre fractions {acquisition.get('center_fraction', 0.08)}")
    return (f"{coils} {acquisition['ndim']}D non-Cartesian, {acquisition['trajectory']} trajectory, acceleration "
            f"{acquisition.get('acceleration', 4)}")


def finetune(
    name_or_model: str | os.PathLike | ReconstructionModel,
    data_dir: str | os.PathLike,
    *,
    steps: int = 200,
    steps_per_epoch: int | None = None,
    learning_rate: float | None = None,
    freeze: Sequence[str] = (),
    run_dir: str | os.PathLike,
    preset_dir: str | os.PathLike | None = None,
    loss="l1",
    optimizer="adam",
    clipnorm: float | None = 1.0,
    batch_size: int = 1,
    acquisition: Mapping[str, Any] | None = None,
    seed: int | None = 0,
    val_steps: int | None = None,
    strategy: tf.distribute.Strategy | None = None,
    verbose="auto",
    card: Mapping[str, Any] | None = None,
    command: str | None = None,
    run_eagerly: bool = False,
) -> FitResult:
    """Continue training a checkpoint on the fastMRI-layout files of ``data_dir``.

    name_or_model: a registry name, a preset folder, ``hf://...`` (``presets.from_preset``)
    or a model. data_dir: a folder of ``.h5`` files, or one with ``train/`` (and optionally
    ``val/``) sub-folders. learning_rate: default ``DEFAULT_LEARNING_RATE /
    FINETUNE_LR_FACTOR`` (1e-4). freeze: sub-layer names or prefixes kept fixed (e.g.
    ``["smaps_refiner"]`` or ``["image_net_0", "image_net_1"]``). acquisition: see
    :func:`check_acquisition`; default the checkpoint's own (its preset metadata), else
    Cartesian random masks AF 4 with the model's ``multicoil``. The rest is as in :func:`fit`.
    """
    train_dir, val_dir = _split_data_dir(data_dir)
    if isinstance(name_or_model, ReconstructionModel):
        model, source = name_or_model, type(name_or_model).__name__
    else:
        source = os.fspath(name_or_model)
        model = from_preset(source)
    if learning_rate is None:
        learning_rate = DEFAULT_LEARNING_RATE / FINETUNE_LR_FACTOR
    if acquisition is None:
        metadata = (getattr(model, "preset_metadata", None) or {}).get("acquisition")
        acquisition = acquisition_from_metadata(metadata, model) or {
            "kind": "cartesian", "multicoil": bool(getattr(model, "multicoil", False)), "mask_type": "random",
            "center_fraction": 0.08, "acceleration": 4}
    acquisition = check_acquisition(acquisition)
    train, val = training_data(train_dir, val_dir, acquisition, batch_size=batch_size, seed=seed)
    data_description = (
        f"fine-tuning of {source} on {train_dir.name}/ ({len(list_h5_files(train_dir))} files)"
        + (f", validation {val_dir.name}/ ({len(list_h5_files(val_dir))} files)" if val_dir else "")
        + f"; {_describe_acquisition(acquisition)}"
    )
    return fit(
        model, train, val, steps=steps, steps_per_epoch=steps_per_epoch, loss=loss, optimizer=optimizer,
        learning_rate=learning_rate, clipnorm=clipnorm, run_dir=run_dir, seed=seed, freeze=freeze,
        strategy=strategy, preset_dir=preset_dir, val_steps=val_steps, verbose=verbose, card=card,
        command=command or f"fastmri_zoo.training.finetune({source!r}, ..., steps={steps}, learning_rate={learning_rate:g})",
        data_description=data_description, run_eagerly=run_eagerly,
    )
