"""Search recipes: the JSON file of ``fastmri-zoo search RECIPE.json --data DIR -o OUT_DIR``.

A search recipe is a training recipe (:mod:`fastmri_zoo.training.config`: ``name``, ``model``,
``data``, ``acquisition``, optional ``training`` and ``card``) with a ``search`` block::

    {
      "name": "nasnet-ixi",
      "model": {"class": "NasNet", "kwargs": {"n_iter": 3, "n_cells": 3, "n_filters": 32}},
      "data": {"folder": "singlecoil", "train": "train", "val": "val"},
      "acquisition": {"kind": "cartesian", "mask_type": "random", "center_fraction": 0.08, "acceleration": 4},
      "search": {"method": "darts", "space": "A", "nodes": 3, "steps": 3000, "steps_per_epoch": 100,
                 "batch_size": 2, "learning_rate": 0.001, "alpha_learning_rate": 0.0003, "beta": 1.0,
                 "patience": 5, "clipnorm": 5.0, "seed": 0, "loss": "l1"},
      "training": {"steps": 20000, "batch_size": 2, "learning_rate_drops": [[15000, 0.1]]}
    }

- ``search``: ``method`` (``"darts"`` or ``"milenas"``) and ``steps`` (the most steps) are
  required; ``space`` (a name of ``layers.SEARCH_SPACES`` or a list of operation names,
  default ``"A"``), ``nodes`` (3), ``steps_per_epoch`` (``min(steps, 50)``), ``batch_size`` (2),
  ``learning_rate`` (w, 1e-3), ``alpha_learning_rate`` (3e-4), ``beta`` (MiLeNAS, 1.0),
  ``patience`` (stop once the genotype is unchanged for that many epochs; null: run every step),
  ``clipnorm`` (of w's gradients, 5.0), ``seed`` (0), ``loss`` (``"l1"``) and ``fixed_masks``
  (false: new masks at every visit of a slice, unseeded; true: one mask per slice fixed by ``seed``
  and a seeded order, for a reproducible search; h5 data only, as ``training.fixed_train_masks``).
  Unknown keys are errors.
- ``model``: a model class with search cells (``NasNet``) and its kwargs, without ``genotype``,
  ``n_nodes`` or ``search_space`` (the search block gives them).
- ``data``: w is trained on ``data.train`` and alpha on ``data.val`` (disjoint splits, both drawn as
  training data: shuffled, new masks, augmented when synthesised), so ``val`` is required.
- ``training`` (optional): the retraining of the searched network; with it, the search also writes
  ``OUT_DIR/recipe.json``, the same recipe without ``search`` and with the genotype in
  ``model.kwargs``, for ``fastmri-zoo train OUT_DIR/recipe.json --data DIR``.

:func:`run_search_recipe` writes ``OUT_DIR/genotype.json``, ``alpha_history.csv``, ``cell.png``
(:mod:`.outputs`) and ``search.json`` (the facts of the run), and keeps ``OUT_DIR/backup/`` after
every epoch (:mod:`.backup`): the same command on the same OUT_DIR resumes an interrupted search
(weights, alpha, optimisers and history as they were; new examples drawn), and a search that ran
out of steps continues when the recipe gives it more.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import keras

from ..checks import check_scalar
from ..layers.nas import search_space_config, search_space_operations
from ..training.config import Recipe, _check_keys, model_classes, read_recipe_file, recipe_from_dict
from ..training.fit import training_data
from ..training.losses import get_loss
from .backup import backup_step
from .darts import EpochRecord, SearchResult, check_method, search
from .outputs import (genotype_summary, save_cell_png, save_search_history_png, write_alpha_history, write_genotype,
                      write_json)

__all__ = ["SearchOptions", "SearchRecipe", "check_block", "check_search_options", "check_search_space",
           "load_search_recipe", "run_search_recipe", "OUTPUT_FILES"]

#: The files ``fastmri-zoo search`` writes in OUT_DIR (``recipe.json`` only when the recipe has ``training``).
OUTPUT_FILES = ("genotype.json", "alpha_history.csv", "cell.png", "history.png", "search.json", "recipe.json")
#: The folder of OUT_DIR where a search keeps its state after every epoch (:mod:`.backup`): the same
#: command resumes an interrupted search from it.
BACKUP_DIR = "backup"
#: Model arguments the search block sets.
_SEARCHED_ARGUMENTS = {"genotype": "the search derives it", "n_nodes": "give search.nodes",
                       "search_space": "give search.space"}


@dataclass(frozen=True)
class SearchOptions:
    """A validated ``search`` block (see the module docstring)."""

    method: str
    steps: int
    space: Any = "A"
    nodes: int = 3
    steps_per_epoch: int | None = None
    batch_size: int = 2
    learning_rate: float = 1e-3
    alpha_learning_rate: float = 3e-4
    beta: float = 1.0
    patience: int | None = None
    clipnorm: float | None = 5.0
    seed: int | None = 0
    loss: Any = "l1"
    fixed_masks: bool = False


def check_block(where: str, cls, block, required: tuple[str, ...] = (), numbers: dict | None = None) -> dict:
    """An options block of a recipe (``search`` here, ``federation`` of a federation recipe) checked against
    the fields of the dataclass ``cls``: no unknown key, every key of ``required``, and the numbers of
    ``numbers`` (key -> keyword arguments of :func:`~fastmri_zoo.checks.check_scalar`, plus ``allow_none``).
    Returns a copy of ``block`` holding the checked numbers; a ValueError names ``where.key``."""
    _check_keys(where, block, {f.name for f in dataclasses.fields(cls)}, required)
    options = dict(block)
    for key, rule in (numbers or {}).items():
        rule = dict(rule)
        allow_none = rule.pop("allow_none", False)
        if key in options and not (options[key] is None and allow_none):
            options[key] = check_scalar(f"{where}.{key}", options[key], **rule)
    return options


def check_search_space(space, where: str = "search.space"):
    """The JSON form of a search space (a name of ``layers.SEARCH_SPACES`` or a list of operation names);
    a ValueError naming ``where`` when it is neither."""
    try:
        search_space_operations(space)
    except ValueError as error:  # "search_space: ..." or "operation: ...": the key here is ``where``
        raise ValueError(f"{where}: {str(error).split(': ', 1)[-1]}") from None
    return search_space_config(space)


def check_search_options(block, where: str = "search") -> SearchOptions:
    """The :class:`SearchOptions` of a ``search`` block; raises a ValueError naming the offending key."""
    options = check_block(where, SearchOptions, block, ("method", "steps"), {
        "steps": dict(integer=True, at_least=1), "nodes": dict(integer=True, at_least=1),
        "steps_per_epoch": dict(integer=True, at_least=1, allow_none=True),
        "batch_size": dict(integer=True, at_least=1),
        "learning_rate": dict(above=0), "alpha_learning_rate": dict(above=0), "beta": dict(at_least=0),
        "patience": dict(integer=True, at_least=1, allow_none=True), "clipnorm": dict(above=0, allow_none=True),
        "seed": dict(integer=True, allow_none=True)})
    try:
        check_method(options["method"])
    except ValueError as error:
        raise ValueError(f"{where}.{error}") from None
    if not isinstance(options.get("fixed_masks", False), bool):
        raise ValueError(f"{where}.fixed_masks: expected true or false, got {options['fixed_masks']!r}.")
    try:
        get_loss(options.get("loss", "l1"))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}.loss: {error}") from None
    options["space"] = check_search_space(options.get("space", "A"), f"{where}.space")
    return SearchOptions(**options)


@dataclass
class SearchRecipe:
    """A validated search recipe: its training-recipe part (``recipe``: model in search mode, data,
    acquisition), the ``search`` options, and the file as read (``raw``)."""

    recipe: Recipe
    options: SearchOptions
    raw: dict

    @property
    def retraining(self) -> bool:
        """Whether the recipe says how to retrain the searched network (a ``training`` block)."""
        return "training" in self.raw

    def retraining_recipe(self, genotype) -> dict:
        """The training recipe of the searched network: the file without ``search``, the genotype in
        ``model.kwargs``."""
        recipe = {key: copy.deepcopy(value) for key, value in self.raw.items() if key != "search"}
        recipe["model"]["kwargs"] = {**(recipe["model"].get("kwargs") or {}), "genotype": genotype.to_config()}
        return recipe


def load_search_recipe(path: str | os.PathLike) -> SearchRecipe:
    """Read and validate a search recipe (see the module docstring) before anything is built;
    raises ValueError / FileNotFoundError naming the offending key."""
    path = Path(path)
    raw = read_recipe_file(path)
    if not isinstance(raw, dict) or "search" not in raw:
        raise ValueError("recipe: missing required key(s) ['search']; a search recipe is a training recipe "
                         "with a 'search' block (see fastmri_zoo.search.recipe).")
    options = check_search_options(raw["search"])
    model = raw.get("model")
    kwargs = model.get("kwargs") if isinstance(model, dict) else None
    model_class = model_classes().get(model.get("class")) if isinstance(model, dict) and isinstance(
        model.get("class"), str) else None
    if model_class is not None and not set(_SEARCHED_ARGUMENTS) <= set(inspect.signature(model_class).parameters):
        raise ValueError(f"model.class: {model['class']} has no search cells; expected a model class whose cells "
                         f"are searched (arguments {sorted(_SEARCHED_ARGUMENTS)}: NasNet).")
    for key, reason in _SEARCHED_ARGUMENTS.items():
        if isinstance(kwargs, dict) and key in kwargs:
            raise ValueError(f"model.kwargs.{key}: not in a search recipe ({reason}).")
    # The rest is a training recipe: it goes through the trainer's own validation, with the search network's arguments and, without a training block, a stand-in one.
    part = {key: copy.deepcopy(value) for key, value in raw.items() if key != "search"}
    if isinstance(model, dict) and (kwargs is None or isinstance(kwargs, dict)):
        part["model"]["kwargs"] = {**(kwargs or {}), "n_nodes": options.nodes, "search_space": options.space}
    part.setdefault("training", {"steps": options.steps})
    recipe = recipe_from_dict(part, source=path)
    if recipe.data.get("val") is None:
        raise ValueError("data.val: a search needs two disjoint splits: w is trained on data.train and the "
                         "architecture weights on data.val; expected a folder name, got null or nothing.")
    return SearchRecipe(recipe=recipe, options=options, raw=raw)


def run_search_recipe(
    search_recipe: SearchRecipe,
    data_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    steps: int | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    command: str | None = None,
) -> tuple[SearchResult, dict[str, str]]:
    """Run the search of ``search_recipe`` on the data root ``data_dir`` (default: the recipe's
    folder) and write its outputs in ``out_dir`` (created). steps: fewer steps, for a check;
    progress, on_epoch_end: as in :func:`~fastmri_zoo.search.darts.search`.
    Returns the :class:`~fastmri_zoo.search.darts.SearchResult` and ``{file name: path}`` written."""
    recipe, options = search_recipe.recipe, search_recipe.options
    total = options.steps if steps is None else check_scalar("steps", steps, integer=True, at_least=1)
    folders = recipe.data_folders(data_dir)
    for part in ("train", "val"):
        if not folders[part].is_dir():
            raise FileNotFoundError(f"data.{part}: no such folder: {str(folders[part])!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"OUT_DIR: {str(out_dir)!r} is a file; expected a folder.")
    out_dir.mkdir(parents=True, exist_ok=True)

    backup = out_dir / BACKUP_DIR
    resumed = backup_step(backup)  # a resumed search draws new examples: its seeds move on with the steps done
    if options.seed is not None:
        keras.utils.set_random_seed(options.seed + 2 * resumed)
    splits = {}
    for offset, part in enumerate(("train", "val")):  # both drawn as training data: w on one, alpha on the other
        # (with fixed masks, another seed for each split: files of the same name get other masks)
        seed = None if options.seed is None else options.seed + offset + 2 * resumed
        splits[part], _ = training_data(folders[part], None, recipe.acquisition, batch_size=options.batch_size,
                                        seed=seed, fixed_train_masks=options.fixed_masks,
                                        synthesis=recipe.data.get("synthesis"))
    model = recipe.build_model()
    if getattr(splits["train"], "preprocessor", None) is not None:
        splits["train"].preprocessor.check_model(model)
    result = search(
        model, splits["train"], splits["val"], method=options.method, steps=total,
        steps_per_epoch=min(options.steps_per_epoch or min(total, 50), total), patience=options.patience,
        beta=options.beta, learning_rate=options.learning_rate, alpha_learning_rate=options.alpha_learning_rate,
        clipnorm=options.clipnorm, loss=options.loss, progress=progress, on_epoch_end=on_epoch_end,
        backup=backup, fingerprint=search_fingerprint(search_recipe),
    )
    return result, write_search_outputs(search_recipe, result, out_dir, command)


def search_fingerprint(search_recipe: SearchRecipe) -> dict:
    """What a search's backup must match to be resumed: the recipe's model, data, acquisition and search
    block, but the search's step budget (a search can be given more steps) and the card."""
    raw = search_recipe.raw
    block = {key: value for key, value in raw["search"].items() if key != "steps"}
    return {"model": raw.get("model"), "data": raw.get("data"), "acquisition": raw.get("acquisition"), "search": block}


def write_search_outputs(search_recipe: SearchRecipe, result: SearchResult, out_dir: Path, command: str | None
                         ) -> dict[str, str]:
    """The files of :data:`OUTPUT_FILES` for ``result``, each written atomically."""
    name = search_recipe.recipe.name or (search_recipe.recipe.source.stem if search_recipe.recipe.source else "search")
    first, last = result.history[0], result.history[-1]
    data = search_recipe.recipe.data
    written = {
        "genotype.json": write_genotype(out_dir / "genotype.json", result.genotype),
        "alpha_history.csv": write_alpha_history(out_dir / "alpha_history.csv", result.history, result.search_space,
                                                 result.n_nodes),
        "cell.png": save_cell_png(out_dir / "cell.png", result.genotype,
                                  title=f"{name}: {result.method} cell after {result.steps} steps"),
    }
    written["history.png"] = save_search_history_png(out_dir / "history.png", written["alpha_history.csv"],
                                                     title=f"{name}: {result.method} search")
    facts = {
        "recipe": None if search_recipe.recipe.source is None else Path(search_recipe.recipe.source).name,
        "command": command,
        # under the data root as the command names it, not this machine's folders
        "data": {part: "/".join(p for p in ("DATA_DIR", data.get("folder", ""), data[part]) if p)
                 for part in ("train", "val", "test") if data.get(part) is not None},
        "acquisition": search_recipe.recipe.acquisition,
        "model": {"class": search_recipe.recipe.model_class, "kwargs": search_recipe.recipe.model_kwargs},
        "search": dataclasses.asdict(search_recipe.options),
        "settings": result.settings,
        "search_space": result.search_space,
        "n_nodes": result.n_nodes,
        "steps": result.steps,
        "epochs": len(result.history) - 1,
        "stopped": result.stopped,
        "entropy": {"first": first.entropy, "last": last.entropy},
        "losses": {"train": last.train_loss, "val": last.val_loss},
        "genotype": result.genotype.to_config(),
        "wall_time_seconds": result.wall_time,
    }
    written["search.json"] = write_json(out_dir / "search.json", facts)
    if search_recipe.retraining:
        written["recipe.json"] = write_json(out_dir / "recipe.json", search_recipe.retraining_recipe(result.genotype))
    return written


def describe_result(result: SearchResult, written: dict[str, str]) -> list[str]:
    """The lines ``fastmri-zoo search`` prints at the end."""
    first, last = result.history[0], result.history[-1]
    why = (f"the genotype unchanged for {result.settings.get('patience')} epochs" if result.stopped == "patience"
           else "all the steps done")
    lines = [
        f"searched {result.steps} steps ({result.method}, {len(result.history) - 1} epochs; stopped: {why}) in "
        f"{result.wall_time:.0f} s; entropy of softmax(alpha) {first.entropy:.3f} -> {last.entropy:.3f}; last "
        f"losses: train {last.train_loss:.4g}, val {last.val_loss:.4g}",
        "genotype:",
        *(f"  {line}" for line in genotype_summary(result.genotype).splitlines()),
        *(f"wrote {path}" for path in written.values()),
    ]
    if "recipe.json" in written:
        lines.append(f"retrain: fastmri-zoo train {written['recipe.json']} --data DATA_DIR")
    return lines
