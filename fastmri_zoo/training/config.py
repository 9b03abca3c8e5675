"""The JSON configuration of ``fastmri-zoo train CONFIG.json``.

Example (paths relative to the config file's folder)::

    {
      "model": {"class": "UNet", "kwargs": {"layers_n_channels": [16, 32, 64, 128]}},
      "data": {"train": "ixi/singlecoil/train", "val": "ixi/singlecoil/val"},
      "pipeline": {"mask_type": "random", "accelerations": [4], "center_fractions": [0.08],
                   "multicoil": false},
      "loss": "l1",
      "optimizer": "radam",
      "learning_rate": 0.001,
      "clipnorm": 1.0,
      "steps": 600,
      "steps_per_epoch": 25,
      "batch_size": 2,
      "seed": 0,
      "run_dir": "runs/unet",
      "output": "presets/unet-cartesian-singlecoil-af4",
      "card": {"name": "unet-cartesian-singlecoil-af4", "paper": "..."}
    }

Required: ``model`` (``class``: a model class of ``fastmri_zoo.models``; ``kwargs``: its
constructor arguments), ``data`` (a folder with ``train/`` and optional ``val/``, a folder
of ``.h5`` files, or ``{"train": ..., "val": ...}``), ``steps`` and ``run_dir``.
Optional: ``pipeline`` (``mask_type``, ``accelerations``, ``center_fractions``,
``multicoil`` (default: the model's), ``fixed_train_masks``, ``normalize``), ``loss``
(name or ``{"name": ..., ...}``), ``optimizer`` (name or ``{"name": ..., ...}``),
``learning_rate``, ``clipnorm``, ``steps_per_epoch``, ``batch_size``, ``seed``,
``val_steps``, ``freeze``, ``output`` (the preset folder), ``card`` (model-card fields).
Unknown keys are errors, so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "load_train_config", "run_train_config", "model_classes"]

_TOP_KEYS = {
    "model", "data", "pipeline", "loss", "optimizer", "learning_rate", "clipnorm", "steps", "steps_per_epoch",
    "batch_size", "seed", "val_steps", "freeze", "run_dir", "output", "card",
}
_REQUIRED = ("model", "data", "steps", "run_dir")
_MODEL_KEYS = {"class", "kwargs"}
_DATA_KEYS = {"train", "val"}
_PIPELINE_KEYS = {"mask_type", "accelerations", "center_fractions", "multicoil", "fixed_train_masks", "normalize"}


@dataclass
class TrainConfig:
    """A validated training configuration; paths are absolute."""

    model_class: str
    model_kwargs: dict
    train_dir: Path
    val_dir: Path | None
    steps: int
    run_dir: Path
    pipeline: dict = field(default_factory=dict)
    loss: Any = "l1"
    optimizer: Any = "adam"
    learning_rate: float = 1e-3
    clipnorm: float | None = 1.0
    steps_per_epoch: int | None = None
    batch_size: int = 1
    seed: int | None = 0
    val_steps: int | None = None
    freeze: list = field(default_factory=list)
    output: Path | None = None
    card: dict = field(default_factory=dict)
    source: Path | None = None


def model_classes() -> dict[str, type]:
    """The model classes ``train`` can build, by class name."""
    from .. import models
    from ..models.base import ReconstructionModel

    found = {}
    for name in dir(models):
        value = getattr(models, name)
        if isinstance(value, type) and issubclass(value, ReconstructionModel) and value is not ReconstructionModel:
            found[name] = value
    return found


def _check_keys(where: str, mapping, allowed: set, required=()) -> None:
    if not isinstance(mapping, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(mapping).__name__}.")
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; accepted keys: {sorted(allowed)}.")
    missing = [key for key in required if key not in mapping]
    if missing:
        raise ValueError(f"{where}: missing required key(s) {missing}.")


def _folder(where: str, value, base: Path, must_exist: bool = True) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: expected a folder path (a string), got {value!r}.")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    if must_exist and not path.is_dir():
        raise FileNotFoundError(f"{where}: no such folder: {str(path)!r}")
    return path


def load_train_config(path: str | os.PathLike) -> TrainConfig:
    """Read and validate a training config (see the module docstring); raises ValueError /
    FileNotFoundError naming the offending key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CONFIG: no such file: {str(path)!r}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"CONFIG: {path} is not valid JSON ({error}).") from None
    _check_keys("config", raw, _TOP_KEYS, _REQUIRED)
    base = path.parent.absolute()

    model = raw["model"]
    _check_keys("model", model, _MODEL_KEYS, ("class",))
    classes = model_classes()
    class_name = model["class"]
    if class_name not in classes:
        raise ValueError(f"model.class: unknown model class {class_name!r}; expected one of {sorted(classes)}.")
    kwargs = model.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"model.kwargs: expected a JSON object of constructor arguments, got {kwargs!r}.")

    data = raw["data"]
    if isinstance(data, str):
        folder = _folder("data", data, base)
        if (folder / "train").is_dir():
            train_dir, val_dir = folder / "train", (folder / "val" if (folder / "val").is_dir() else None)
        else:
            train_dir, val_dir = folder, None
    else:
        _check_keys("data", data, _DATA_KEYS, ("train",))
        train_dir = _folder("data.train", data["train"], base)
        val_dir = _folder("data.val", data["val"], base) if data.get("val") is not None else None

    pipeline = dict(raw.get("pipeline") or {})
    _check_keys("pipeline", pipeline, _PIPELINE_KEYS)

    from ..checks import check_scalar

    def number(key, default, integer=False, at_least=None, above=None, allow_none=False):
        value = raw.get(key, default)
        if value is None and allow_none:
            return None
        return check_scalar(key, value, integer=integer, at_least=at_least, above=above)

    freeze = raw.get("freeze") or []
    if isinstance(freeze, str) or not all(isinstance(name, str) for name in freeze):
        raise ValueError(f"freeze: expected a list of layer names or prefixes, got {freeze!r}.")
    card = raw.get("card") or {}
    if not isinstance(card, dict):
        raise ValueError(f"card: expected a JSON object of model-card fields, got {card!r}.")
    from ..presets import CARD_FIELDS

    unknown_card = sorted(set(card) - set(CARD_FIELDS))
    if unknown_card:
        raise ValueError(f"card: unknown model-card field(s) {unknown_card}; accepted: {list(CARD_FIELDS)}.")
    output = raw.get("output")
    return TrainConfig(
        model_class=class_name,
        model_kwargs=kwargs,
        train_dir=train_dir,
        val_dir=val_dir,
        steps=number("steps", None, integer=True, at_least=1),
        run_dir=_folder("run_dir", raw["run_dir"], base, must_exist=False),
        pipeline=pipeline,
        loss=raw.get("loss", "l1"),
        optimizer=raw.get("optimizer", "adam"),
        learning_rate=number("learning_rate", 1e-3, above=0),
        clipnorm=number("clipnorm", 1.0, above=0, allow_none=True),
        steps_per_epoch=number("steps_per_epoch", None, integer=True, at_least=1, allow_none=True),
        batch_size=number("batch_size", 1, integer=True, at_least=1),
        seed=number("seed", 0, integer=True, allow_none=True),
        val_steps=number("val_steps", None, integer=True, at_least=1, allow_none=True),
        freeze=list(freeze),
        output=None if output is None else _folder("output", output, base, must_exist=False),
        card=card,
        source=path.absolute(),
    )


def run_train_config(config: TrainConfig, command: str | None = None, verbose="auto"):
    """Build the model and pipelines of ``config`` and run :func:`~fastmri_zoo.training.fit`."""
    from .fit import cartesian_training_data, fit

    cls = model_classes()[config.model_class]

    def build():
        try:
            return cls(**config.model_kwargs)
        except (TypeError, ValueError) as error:
            raise ValueError(f"model.kwargs: {config.model_class} does not accept them: {error}") from None

    pipeline = dict(config.pipeline)
    multicoil = pipeline.pop("multicoil", bool(config.model_kwargs.get("multicoil", False)))
    train, val = cartesian_training_data(
        config.train_dir, config.val_dir, multicoil=multicoil, batch_size=config.batch_size, seed=config.seed,
        **pipeline,
    )
    settings = {
        "mask_type": pipeline.get("mask_type", "random"),
        "accelerations": pipeline.get("accelerations", 4),
        "center_fractions": pipeline.get("center_fractions", 0.08),
    }
    data_description = (
        f"{config.train_dir.name}/ ({_count(config.train_dir)} files)"
        + (f", validation {config.val_dir.name}/ ({_count(config.val_dir)} files)" if config.val_dir else "")
        + f"; {'multicoil' if multicoil else 'single-coil'} Cartesian, {settings['mask_type']} masks, "
        f"accelerations {settings['accelerations']}, centre fractions {settings['center_fractions']}"
    )
    return fit(
        build, train, val, steps=config.steps, steps_per_epoch=config.steps_per_epoch, loss=config.loss,
        optimizer=config.optimizer, learning_rate=config.learning_rate, clipnorm=config.clipnorm,
        run_dir=config.run_dir, seed=config.seed, freeze=config.freeze, preset_dir=config.output,
        val_steps=config.val_steps, verbose=verbose, card=config.card,
        command=command or f"fastmri-zoo train {config.source.name if config.source else 'CONFIG.json'}",
        data_description=data_description,
    )


def _count(folder: Path) -> int:
    from ..data.pipelines import list_h5_files

    return len(list_h5_files(folder))


def split_named(kind: str, identifier, kwargs: dict, choices=None) -> tuple[Any, dict]:
    """``{"name": ..., **options}`` -> (name, options merged with ``kwargs``); other identifiers
    pass through unchanged. Shared by ``get_loss`` and ``get_optimizer``."""
    if not isinstance(identifier, dict):
        return identifier, kwargs
    config = dict(identifier)
    if "name" not in config:
        listed = f" (one of {sorted(choices)})" if choices else ""
        raise ValueError(f"{kind}: a dict needs a 'name'{listed}, got keys {sorted(config)}.")
    name = config.pop("name")
    return name, {**config, **kwargs}
