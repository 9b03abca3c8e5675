"""Training recipes: the JSON file of ``fastmri-zoo train RECIPE.json``.

A recipe describes one training run completely; every shipped checkpoint keeps the one that
made it as ``weights/NAME/recipe.json``, and ``fastmri-zoo train weights/NAME/recipe.json
--data DATA_DIR`` trains it again through :func:`~fastmri_zoo.training.fit`::

    {
      "name": "ncpdnet-radial-multicoil",
      "model": {"class": "NCPDNet", "kwargs": {"multicoil": true, "refine_smaps": true}},
      "data": {"source": "ixi", "folder": "multicoil", "train": "train", "val": "val", "test": "test",
               "prepare": "python scripts/prepare_ixi.py IXI_T1_DIR DATA_DIR"},
      "acquisition": {"kind": "noncartesian", "ndim": 2, "multicoil": true, "trajectory": "radial",
                      "acceleration": 4},
      "training": {"loss": "l1", "optimizer": "adam", "learning_rate": 0.001, "clipnorm": 1.0,
                   "steps": 300, "steps_per_epoch": 25, "batch_size": 2, "seed": 0, "val_steps": 4,
                   "run_eagerly": false},
      "card": {"architecture": "ncpdnet", "variant": null, "trajectory": "radial", "coils": "multicoil",
               "acceleration": null, "dataset": null, "description": "...", "paper": "...", "notes": "..."}
    }

- ``model``: ``class`` (a model class of ``fastmri_zoo.models``) and its constructor ``kwargs``. The
  class's task (``models.base.ZooModel.TASK``) decides what the recipe trains: a reconstruction
  network (the sections below), or a prior (``ScoreNetwork``): see "Priors" below.
- ``data``: folders relative to the data root (the ``--data`` option; default the recipe's own
  folder): ``DATA_ROOT/folder/train`` (required), ``.../val`` (optional, null for none) and
  ``.../test`` (held-out, for evaluation only). ``source``, ``prepare`` (the command that
  writes the data root) and ``description`` (the model card's training-data text) are records.
  ``synthesis`` (Cartesian or 2D non-Cartesian acquisitions): the folders hold magnitude volumes
  and the examples are synthesised on the fly with augmentation (``data.synthesis.Synthesis``:
  all orientations, flips and rotations, zoom, coils, noise; validation a fixed seeded set) on
  the grid ``synthesis.size`` (a non-Cartesian ``image_shape``, of the acquisition or the model,
  must equal it).
- ``acquisition``: what the pipelines simulate (``training.fit.check_acquisition``).
- ``training``: ``steps`` (required), ``loss``, ``optimizer``, ``learning_rate``, ``clipnorm``,
  ``steps_per_epoch``, ``batch_size``, ``seed``, ``val_steps`` (validation batches per epoch),
  ``run_eagerly``, ``freeze``, ``fixed_train_masks``, ``learning_rate_drops`` (``[[step, factor],
  ...]``: the rate is multiplied by ``factor`` from ``step`` on; a factor above 1 restarts, never above
  ``learning_rate``), ``keep`` (``"last"``, default, or
  ``"best"``: the checkpoint is the best validation epoch's weights), ``initial_weights`` (the run starts
  from the weights of this checkpoint instead of fresh ones: a preset folder relative to the recipe's
  folder, a registered name or ``hf://...``; its class and configuration must be the recipe's model's;
  e.g. a zoo checkpoint fine-tuned on other data, or a network trained on small crops continued on
  larger ones; a resumed run continues from its backup) (see ``fit`` and ``training_data``).
- ``card``: the registry row (``registry.ENTRY_FIELDS``: ``task``, ``architecture``, ``variant``,
  ``trajectory``, ``coils``, ``acceleration``, ``dataset``, ``description``, ``hub_*``) and
  model-card text (``paper``, ``notes``, and any field of ``presets.CARD_FIELDS`` given as is).

Priors (a model class of task ``"prior"``, ``ScoreNetwork``): the recipe has no ``acquisition``
(a prior learns images, whatever acquires them); ``data.synthesis`` is required, one coil: the
training images are slices of the magnitude volumes of the data folders with a smooth random
phase (``data.synthesized_image_dataset``); ``training.loss`` is ``"dsm"`` (the default: residual
denoising score matching, sigma ~ N(0, s^2) with s the model's ``sigma_scale``) and
``training.spectral_norm`` (e.g. 2.0, the thesis') rescales every kernel to that spectral norm after
each step; the card's ``task`` is ``"prior"`` (no trajectory, coils, acceleration: the registry
names it ``architecture[-variant]-prior[-dataset]``)::

    {
      "name": "score-prior-ixi",
      "model": {"class": "ScoreNetwork", "kwargs": {"layers_n_channels": [32, 64, 128], "sigma_scale": 0.1}},
      "data": {"folder": "magnitude", "train": "train", "val": "val",
               "synthesis": {"size": [128, 128], "coils": 1, "snr_db": null}},
      "training": {"loss": "dsm", "optimizer": "adam", "learning_rate": 0.0001, "clipnorm": null,
                   "spectral_norm": 2.0, "steps": 20000, "steps_per_epoch": 500, "batch_size": 8},
      "card": {"task": "prior", "architecture": "score", "dataset": "ixi", "description": "..."}
    }

Denoisers (a model class of task ``"denoising"``: ``LearnletDenoiser``, ``UNetDenoiser``) are trained
the same way as priors, on magnitude volumes without an acquisition (``data.synthesis`` required,
one coil, ``snr_db`` null), on noisy slices of peak 1 and their clean versions
(``data.synthesized_denoising_dataset``): ``data.sigma`` = [low, high] gives the range the noise
standard deviation of each example is drawn from uniformly (default [0, 55 / 255], the thesis');
``training.loss`` is a reconstruction loss (e.g. ``"mse"``, the thesis'); the card's ``task`` is
``"denoising"`` (the registry names it ``architecture[-variant]-denoising[-dataset]``). Learnlets'
noise normalisation is re-estimated during training (``ZooModel.training_callbacks``).

Unknown keys are errors, so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import models
from ..checks import check_scalar
from ..data.pipelines import DENOISING_SIGMA, check_noise_range
from ..models.base import ReconstructionModel, ZooModel
from ..presets import CARD_FIELDS, CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE, differing_config_keys, resolve_preset_folder
from ..presets import load as load_checkpoint
from ..registry import ENTRY_FIELDS, RECIPE_FILE, list_models
from .fit import (DSM_LOSS, FitResult, check_acquisition, check_keep, check_learning_rate_drops, check_synthesis, fit,
                  image_training_data, strategy_from_environment, training_data)

__all__ = ["Recipe", "load_recipe", "run_recipe", "model_card", "model_classes", "RECIPE_FILE"]

_TOP_KEYS = {"name", "model", "data", "acquisition", "training", "card"}
_REQUIRED = ("model", "data", "training")
#: The tasks the trainer trains (``models.base.TASKS``).
_TRAINED_TASKS = ("reconstruction", "denoising", "prior")
_MODEL_KEYS = {"class", "kwargs"}
_DATA_KEYS = {"source", "folder", "train", "val", "test", "prepare", "description", "synthesis", "sigma"}
_TRAINING_KEYS = {
    "loss", "optimizer", "learning_rate", "clipnorm", "steps", "steps_per_epoch", "batch_size", "seed", "val_steps",
    "run_eagerly", "freeze", "fixed_train_masks", "learning_rate_drops", "spectral_norm", "keep", "initial_weights",
}
#: Card fields that ``fit`` fills from the run, not the recipe.
_FROM_THE_RUN = {"name", "training_command", "metrics", "acquisition"}
_CARD_KEYS = set(ENTRY_FIELDS) | {"paper", "notes"} | (set(CARD_FIELDS) - _FROM_THE_RUN)


@dataclass
class Recipe:
    """A validated recipe (see the module docstring)."""

    model_class: str
    model_kwargs: dict
    data: dict
    acquisition: dict | None
    steps: int
    name: str | None = None
    loss: Any = "l1"
    optimizer: Any = "adam"
    learning_rate: float = 1e-3
    clipnorm: float | None = 1.0
    steps_per_epoch: int | None = None
    batch_size: int = 1
    seed: int | None = 0
    val_steps: int | None = None
    run_eagerly: bool = False
    freeze: list = field(default_factory=list)
    fixed_train_masks: bool = False
    learning_rate_drops: list = field(default_factory=list)
    spectral_norm: float | None = None
    keep: str = "last"
    initial_weights: str | None = None
    card: dict = field(default_factory=dict)
    source: Path | None = None
    task: str = "reconstruction"

    def data_folders(self, data_dir: str | os.PathLike | None = None) -> dict[str, Path | None]:
        """{"train", "val", "test"}: the folders under the data root ``data_dir`` (default: the
        recipe file's folder); None where the recipe names none."""
        root = Path(data_dir).expanduser() if data_dir is not None else (
            self.source.parent if self.source is not None else Path.cwd())
        base = root / self.data.get("folder", "")
        return {part: None if self.data.get(part) is None else (base / self.data[part]).absolute()
                for part in ("train", "val", "test")}

    def build_model(self) -> ZooModel:
        try:
            return model_classes()[self.model_class](**self.model_kwargs)
        except (TypeError, ValueError) as error:
            raise ValueError(f"model.kwargs: {self.model_class} does not accept them: {error}") from None


def model_classes() -> dict[str, type]:
    """The model classes a recipe can build, by class name: the zoo models (``models.base.ZooModel``)."""
    found = {}
    for name in dir(models):
        value = getattr(models, name)
        if isinstance(value, type) and issubclass(value, ZooModel) and value not in (ZooModel, ReconstructionModel):
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


def _check_folder_name(where: str, value, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a folder name (a string){' or null' if allow_none else ''}, got {value!r}.")


def read_recipe_file(path: str | os.PathLike) -> Any:
    """The JSON content of the recipe file ``path`` (not yet validated); FileNotFoundError /
    ValueError naming the file when it is absent or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"RECIPE: no such file: {str(path)!r}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"RECIPE: {path} is not valid JSON ({error}).") from None


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and validate a recipe (see the module docstring); raises ValueError /
    FileNotFoundError naming the offending key, before anything is built."""
    return recipe_from_dict(read_recipe_file(path), source=Path(path))


def recipe_from_dict(raw: Any, source: str | os.PathLike | None = None) -> Recipe:
    """Validate the recipe ``raw`` (the content of a recipe file, see the module docstring) read
    from ``source``; raises ValueError naming the offending key, before anything is built."""
    path = Path(source) if source is not None else Path("recipe.json")
    if isinstance(raw, dict) and "training" not in raw and "steps" in raw:
        raise ValueError(
            "RECIPE: this is the former training-config format (top-level steps, pipeline, run_dir); move the "
            "settings into 'training' and 'acquisition' sections and pass --run-dir (see fastmri_zoo.training.config)."
        )
    _check_keys("recipe", raw, _TOP_KEYS, _REQUIRED)

    model = raw["model"]
    _check_keys("model", model, _MODEL_KEYS, ("class",))
    classes = model_classes()
    if model["class"] not in classes:
        raise ValueError(f"model.class: unknown model class {model['class']!r}; expected one of {sorted(classes)}.")
    kwargs = model.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"model.kwargs: expected a JSON object of constructor arguments, got {kwargs!r}.")
    task = classes[model["class"]].TASK
    if task not in _TRAINED_TASKS:
        raise ValueError(f"model.class: {model['class']} is a {task} model; the trainer trains reconstruction "
                         "networks, denoisers and priors (ScoreNetwork).")
    prior = task == "prior"
    images_only = task in ("prior", "denoising")  # trained on images, whatever acquires them

    data = raw["data"]
    _check_keys("data", data, _DATA_KEYS, ("train",))
    _check_folder_name("data.folder", data.get("folder", ""), allow_none=False)
    _check_folder_name("data.train", data["train"], allow_none=False)
    for part in ("val", "test"):
        _check_folder_name(f"data.{part}", data.get(part), allow_none=True)

    if task == "denoising":
        data["sigma"] = list(check_noise_range(data.get("sigma", DENOISING_SIGMA), "data.sigma"))
    elif data.get("sigma") is not None:
        raise ValueError(f"data.sigma: the noise levels of a denoiser's examples; {model['class']} is a {task} model.")
    if images_only:
        if raw.get("acquisition") is not None:
            raise ValueError(f"acquisition: {model['class']} is a {'prior' if prior else 'denoiser'}, trained on "
                             "images whatever acquires them; remove the acquisition section.")
        if data.get("synthesis") is None:
            raise ValueError(f"data.synthesis: a {'prior' if prior else 'denoiser'}'s training images are synthesised "
                             "from magnitude volumes; expected a data.synthesis block with one coil (see "
                             "fastmri_zoo.training.config).")
        acquisition, synthesis = None, check_synthesis(data["synthesis"], None)
    elif "acquisition" not in raw:
        raise ValueError("recipe: missing required key(s) ['acquisition'].")
    else:
        acquisition = check_acquisition(raw["acquisition"])
        synthesis = None if data.get("synthesis") is None else check_synthesis(data["synthesis"], acquisition)
    model_multicoil = kwargs.get("multicoil")
    if acquisition is not None and model_multicoil is not None and bool(model_multicoil) != acquisition["multicoil"]:
        raise ValueError(
            f"acquisition.multicoil: {acquisition['multicoil']} but model.kwargs.multicoil is {model_multicoil}; "
            "expected the same."
        )

    training = raw["training"]
    _check_keys("training", training, _TRAINING_KEYS, ("steps",))

    def number(key, default, integer=False, at_least=None, above=None, allow_none=False):
        value = training.get(key, default)
        if value is None and allow_none:
            return None
        return check_scalar(f"training.{key}", value, integer=integer, at_least=at_least, above=above)

    def flag(key):
        value = training.get(key, False)
        if not isinstance(value, bool):
            raise ValueError(f"training.{key}: expected true or false, got {value!r}.")
        return value

    freeze = training.get("freeze") or []
    if isinstance(freeze, str) or not all(isinstance(name, str) for name in freeze):
        raise ValueError(f"training.freeze: expected a list of layer names or prefixes, got {freeze!r}.")
    steps = number("steps", None, integer=True, at_least=1)
    steps_per_epoch = number("steps_per_epoch", None, integer=True, at_least=1, allow_none=True)
    if steps_per_epoch is not None and steps % steps_per_epoch:
        raise ValueError(f"training.steps: expected a multiple of steps_per_epoch={steps_per_epoch}, got {steps}.")

    learning_rate_drops = check_learning_rate_drops(
        training.get("learning_rate_drops") or [], steps, steps_per_epoch or min(steps, 100))

    loss = training.get("loss", DSM_LOSS if prior else "l1")
    if (loss == DSM_LOSS) != prior:
        raise ValueError(f"training.loss: {DSM_LOSS!r} is the loss of priors, and the only one; {model['class']} is a "
                         f"{task} model, got {loss!r}.")
    spectral_norm = number("spectral_norm", None, above=0, allow_none=True)
    keep = check_keep(training.get("keep", "last"), "training.keep")
    initial_weights = None
    if training.get("initial_weights") is not None:
        initial_weights = check_initial_weights(training["initial_weights"], path.absolute().parent)

    card = raw.get("card") or {}
    _check_keys("card", card, _CARD_KEYS)
    if card and card.get("task", "reconstruction") != task:
        raise ValueError(f"card.task: expected {task!r} ({model['class']} is a {task} model), "
                         f"got {card.get('task', 'reconstruction')!r}.")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name: expected a string, got {name!r}.")
    recipe = Recipe(
        name=name,
        model_class=model["class"],
        model_kwargs=kwargs,
        data=dict(data),
        acquisition=acquisition,
        steps=steps,
        loss=loss,
        optimizer=training.get("optimizer", "adam"),
        learning_rate=number("learning_rate", 1e-3, above=0),
        clipnorm=number("clipnorm", 1.0, above=0, allow_none=True),
        steps_per_epoch=steps_per_epoch,
        batch_size=number("batch_size", 1, integer=True, at_least=1),
        seed=number("seed", 0, integer=True, allow_none=True),
        val_steps=number("val_steps", None, integer=True, at_least=1, allow_none=True),
        run_eagerly=flag("run_eagerly"),
        freeze=list(freeze),
        fixed_train_masks=flag("fixed_train_masks"),
        learning_rate_drops=[list(drop) for drop in learning_rate_drops],
        spectral_norm=spectral_norm,
        keep=keep,
        initial_weights=initial_weights,
        card=dict(card),
        source=path.absolute(),
        task=task,
    )
    recipe.build_model()  # the constructor checks its arguments; no weights are made
    model_grid = kwargs.get("image_shape")
    if synthesis is not None and not images_only and acquisition["kind"] == "noncartesian" and model_grid is not None and (
            [int(n) for n in model_grid] != list(synthesis.size)):
        raise ValueError(
            f"data.synthesis.size: {list(synthesis.size)} but model.kwargs.image_shape is {list(model_grid)}; "
            "expected the same grid (the non-Cartesian examples are synthesised on synthesis.size)."
        )
    return recipe


def check_initial_weights(value: Any, recipe_folder: Path) -> str:
    """``training.initial_weights`` as a handle of ``presets.load``: a preset folder relative to
    ``recipe_folder`` (made absolute), a registered checkpoint name or ``hf://...``; raises
    ValueError naming what was expected (nothing is loaded)."""
    expected = (f"a preset folder relative to the recipe's folder ({CONFIG_FILE}, {METADATA_FILE}, {WEIGHTS_FILE}), "
                "a registered checkpoint name (fastmri_zoo.list_models()) or 'hf://owner/repo[/subfolder][@revision]'")
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"training.initial_weights: expected {expected}, got {value!r}.")
    if value.startswith("hf://"):
        return value
    folder = (recipe_folder / value).expanduser()
    if folder.is_dir():
        missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
        if missing:
            raise ValueError(f"training.initial_weights: {str(folder)!r} holds no {' or '.join(missing)}; "
                             f"expected {expected}.")
        return str(folder.absolute())
    if value in list_models():
        return value
    raise ValueError(f"training.initial_weights: {value!r} is neither a folder next to the recipe nor a registered "
                     f"checkpoint; expected {expected}.")


_KERAS_BOOKKEEPING = ("name", "trainable", "dtype")


def initial_weights_phrase(recipe: Recipe) -> str:
    """Check ``recipe.initial_weights`` against the recipe's model from its config.json (class and configuration,
    before any weights are read; ValueError naming the differences) and return how the card names it: the
    handle (a folder by its path relative to the recipe) and the weights' sha256. "" without initial weights."""
    if recipe.initial_weights is None:
        return ""
    handle = recipe.initial_weights
    folder, _ = resolve_preset_folder(handle)
    saved = json.loads((Path(folder) / CONFIG_FILE).read_text())
    fresh = recipe.build_model()
    if saved.get("class_name") != type(fresh).__name__:
        raise ValueError(f"training.initial_weights: {handle!r} is a {saved.get('class_name')}; expected a "
                         f"{type(fresh).__name__} (model.class).")
    ours = {key: value for key, value in fresh.get_config().items() if key not in _KERAS_BOOKKEEPING}
    theirs = {key: value for key, value in saved.get("config", {}).items() if key not in _KERAS_BOOKKEEPING}
    differ = differing_config_keys(ours, theirs)
    if differ:
        detail = "; ".join(f"{key}: {theirs.get(key)!r} there, {ours.get(key)!r} here" for key in differ)
        raise ValueError(f"training.initial_weights: {handle!r} is another configuration of {type(fresh).__name__} "
                         f"than model.kwargs ({detail}); expected the same network.")
    metadata = Path(folder) / METADATA_FILE  # a registered name's sha256 is its metadata's (test_registry)
    digest = json.loads(metadata.read_text()).get("weights_sha256") if metadata.is_file() else None
    if recipe.source is not None and Path(handle).is_absolute():
        handle = os.path.relpath(handle, recipe.source.parent)
    return f" starting from the weights of {handle}" + (f" (sha256 {digest[:12]})" if digest else "")


def initial_model(recipe: Recipe) -> ZooModel:
    """The network ``recipe`` trains: fresh weights, or those of ``recipe.initial_weights`` (checked first by
    :func:`initial_weights_phrase`)."""
    if recipe.initial_weights is None:
        return recipe.build_model()
    return load_checkpoint(recipe.initial_weights)


def model_card(recipe: Recipe, data_description: str) -> dict:
    """The model-card fields of the preset ``fit`` writes (the run adds command and metrics)."""
    card = {key: value for key, value in recipe.card.items() if key in CARD_FIELDS}
    # recipe.card["architecture"] is the registry's family name; the card's section names the
    # class and the constructor arguments the recipe gives it
    kwargs = recipe.model_kwargs or {}
    card["architecture"] = recipe.model_class + (
        f" with {json.dumps(kwargs, sort_keys=True)}" if kwargs else ", default configuration")
    notes = recipe.card.get("notes")
    if recipe.card.get("description"):
        card["description"] = recipe.card["description"] + (f" {notes}" if notes else "")
    card.setdefault("training_data", recipe.data.get("description") or data_description)
    if recipe.acquisition is not None:
        card["acquisition"] = dict(recipe.acquisition)
    if recipe.name:
        card["name"] = recipe.name
    return card


def run_recipe(
    recipe: Recipe,
    data_dir: str | os.PathLike | None = None,
    *,
    run_dir: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    steps: int | None = None,
    strategy=None,
    verbose="auto",
    command: str | None = None,
) -> FitResult:
    """Train ``recipe`` on the data root ``data_dir`` (see :meth:`Recipe.data_folders`).

    run_dir: backups and logs (default ``runs/NAME``); output: the preset folder written at the
    end (default ``RUN_DIR/preset``); steps: a shorter run for a check (``steps_per_epoch`` is
    then reduced to divide it). strategy: default :func:`~fastmri_zoo.training.fit.strategy_from_environment`
    (``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` describes a cluster).
    """
    started = initial_weights_phrase(recipe)  # checked against the recipe's model before anything else
    folders = recipe.data_folders(data_dir)
    for part in ("train", "val"):
        if folders[part] is not None and not folders[part].is_dir():
            raise FileNotFoundError(
                f"data.{part}: no such folder: {str(folders[part])!r}"
                + (f" (prepare the data with: {recipe.data['prepare']})" if recipe.data.get("prepare") else "")
            )
    total = recipe.steps if steps is None else check_scalar("steps", steps, integer=True, at_least=1)
    steps_per_epoch = recipe.steps_per_epoch
    if steps_per_epoch is not None and total % steps_per_epoch:
        steps_per_epoch = math.gcd(total, steps_per_epoch)
    # a shortened run (``steps``) keeps the drops it reaches at its epoch starts
    epoch = steps_per_epoch or min(total, 100)
    learning_rate_drops = [(step, factor) for step, factor in recipe.learning_rate_drops
                           if step < total and step % epoch == 0]
    name = recipe.name or (recipe.source.parent.name if recipe.source else "run")
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / name
    output = Path(output) if output is not None else run_dir / "preset"
    if strategy is None:
        strategy = strategy_from_environment()

    if recipe.task == "prior":
        train, val = image_training_data(folders["train"], folders["val"], recipe.data["synthesis"],
                                         batch_size=recipe.batch_size, seed=recipe.seed)
        examples = f"complex images {json.dumps(recipe.data['synthesis'])}"
    elif recipe.task == "denoising":
        train, val = image_training_data(folders["train"], folders["val"], recipe.data["synthesis"],
                                         batch_size=recipe.batch_size, seed=recipe.seed, sigma=recipe.data["sigma"])
        examples = (f"magnitude images {json.dumps(recipe.data['synthesis'])}, white Gaussian noise of standard "
                    f"deviation uniform in {recipe.data['sigma']}")
    else:
        train, val = training_data(folders["train"], folders["val"], recipe.acquisition, batch_size=recipe.batch_size,
                                   seed=recipe.seed, fixed_train_masks=recipe.fixed_train_masks,
                                   synthesis=recipe.data.get("synthesis"))
        examples = json.dumps(recipe.acquisition)
    data_description = (
        f"{folders['train'].name}/ of {folders['train'].parent}"
        + (f", validation {folders['val'].name}/" if folders["val"] is not None else "")
        + f"; {examples}"
    )
    drops = "".join(f", x{factor:g} from step {step}" for step, factor in learning_rate_drops)
    summary = (f"  (loss {recipe.loss}, optimizer {recipe.optimizer}, learning rate {recipe.learning_rate:g}{drops}, "
               f"clipnorm {recipe.clipnorm}, {total} steps of batch {recipe.batch_size}, seed {recipe.seed})"
               + (" keeping the best validation epoch's weights" if recipe.keep == "best" else "")
               + started)
    source = recipe.source.name if recipe.source else RECIPE_FILE
    command = (command or f"fastmri-zoo train {source} --data DATA_DIR") + summary
    return fit(
        lambda: initial_model(recipe), train, val, steps=total, steps_per_epoch=steps_per_epoch, loss=recipe.loss,
        optimizer=recipe.optimizer, learning_rate=recipe.learning_rate, clipnorm=recipe.clipnorm, run_dir=run_dir,
        seed=recipe.seed, freeze=recipe.freeze, strategy=strategy, preset_dir=output, val_steps=recipe.val_steps,
        verbose=verbose, card=model_card(recipe, data_description), command=command,
        data_description=data_description, run_eagerly=recipe.run_eagerly,
        learning_rate_drops=learning_rate_drops, spectral_norm=recipe.spectral_norm, keep=recipe.keep,
    )
