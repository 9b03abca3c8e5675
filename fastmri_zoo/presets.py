"""Checkpoints as preset folders (the keras-hub convention), written and read safely.

A preset folder holds

- ``config.json``: ``keras.saving.serialize_keras_object(model)`` (registered
  class name + constructor kwargs), without build or compile state;
- ``model.weights.h5``: ``model.save_weights``;
- ``metadata.json``: package / Keras / TensorFlow versions, parameter count,
  sha256 of the weights, the model's task (``registry.TASKS``) and the input
  signature (key -> shape, dtype) the model was built with, so a loader can
  build it on zeros before loading;
- ``README.md``: a Hugging Face model card with YAML front matter.

Loading reads only JSON and the HDF5 weights file (never pickle), checks the
weights' sha256 against metadata.json (and against the registry when loaded
by name) before building anything, rebuilds the class with
``keras.saving.deserialize_keras_object(..., safe_mode=True)`` and refuses
weights whose layout does not fit the architecture with a ValueError naming
the variables and shapes.

Presets belong to their class (keras-hub style): ``NCPDNet.presets`` lists the
registered names that load as an NCPDNet, ``NCPDNet.from_preset(name)`` loads
one. A registered name is loaded by the loader of its format (:data:`LOADERS`):
zoo preset folders here, the authors' Keras-2 files by :mod:`fastmri_zoo.legacy`.

TensorFlow and Keras are imported inside the functions that build models, so
that ``import fastmri_zoo`` (which exposes :func:`load`) stays light.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

from . import registry
from .hub import (
    CARD_FIGURE_FILES,
    CARD_FILE,
    CONFIG_FILE,
    METADATA_FILE,
    OPTIONAL_PRESET_FILES,
    PRESET_FILES,
    WEIGHTS_FILE,
    ChecksumError,
    HubLocation,
    download_preset,
    parse_hf_handle,
    resolve_endpoint,
    sha256_file,
)
from .legacy import checkpoints as keras2_checkpoints
from .version import __version__

__all__ = [
    "PRESET_FORMAT",
    "CARD_FIELDS",
    "INPUT_DTYPES",
    "LOADERS",
    "PresetNames",
    "preset_names",
    "resolve_class",
    "save_to_preset",
    "from_preset",
    "load",
    "export_hub",
    "push",
    "load_preset",
    "verify_preset_folder",
    "resolve_preset_folder",
    "input_signature",
    "zeros_like_signature",
    "model_card",
]

PRESET_FORMAT = "fastmri_zoo.preset"
PRESET_FORMAT_VERSION = 1

#: dtypes of the calling convention's input keys, used when a built model only reports shapes
#: (reconstruction networks take k-space; denoisers and priors an image and its noise level).
INPUT_DTYPES = {
    "kspace": "complex64",
    "smaps": "complex64",
    "mask": "float32",
    "traj": "float32",
    "dcomp": "float32",
    "image": "complex64",
    "sigma": "float32",
}

#: Keyword arguments accepted by ``save_to_preset`` for the model card.
CARD_FIELDS = (
    "name",
    "description",
    "architecture",
    "paper",
    "training_data",
    "training_command",
    "metrics",
    "evaluation_data",
    "intended_use",
    "limitations",
    "license",
    "datasets",
    "tags",
    "trajectory",
    "coils",
    "acceleration",
    "acquisition",
)

_NOT_PROVIDED = "Not provided."


# --------------------------------------------------------------------------- presets owned by classes


class PresetNames:
    """``Class.presets``: the registered names that load as ``Class`` or a subclass (a read-only descriptor).

    ``models.base.ZooModel`` (the base of reconstruction networks, denoisers and priors) holds
    one (``presets = PresetNames()``); it also marks the classes this module builds, so that a
    config naming any other registered Keras object is refused.
    """

    def __get__(self, instance, owner) -> list[str]:
        return preset_names(owner)


def _is_zoo_model(cls) -> bool:
    return isinstance(cls, type) and isinstance(inspect.getattr_static(cls, "presets", None), PresetNames)


def preset_names(cls) -> list[str]:
    """Sorted registered names whose checkpoint loads as ``cls`` or one of its subclasses."""
    import keras

    classes, stack = [], [cls]
    while stack:
        current = stack.pop()
        classes.append(current)
        stack.extend(current.__subclasses__())
    return registry.preset_names(keras.saving.get_registered_name(c) for c in classes)


# --------------------------------------------------------------------------- signatures


def _tensor_spec(value) -> dict:
    import numpy as np
    import tensorflow as tf

    if isinstance(value, (tf.Tensor, tf.Variable)):
        return {"shape": [None if d is None else int(d) for d in value.shape.as_list()], "dtype": value.dtype.name}
    array = np.asarray(value)
    return {"shape": [int(d) for d in array.shape], "dtype": array.dtype.name}


def input_signature(model, example_inputs: Mapping[str, Any] | None = None) -> dict[str, dict]:
    """The input signature ``{key: {"shape": [...], "dtype": "..."}}`` a preset records.

    Taken from ``example_inputs`` if given, else from ``model.example_inputs()``
    if the class defines it, else from the shapes the built model reports
    (``get_build_config``) with the dtypes of the calling convention.
    """
    if example_inputs is None and callable(getattr(model, "example_inputs", None)):
        example_inputs = model.example_inputs()
    if example_inputs is not None:
        if not isinstance(example_inputs, Mapping):
            raise ValueError(
                f"example_inputs: expected a dict of arrays keyed like the model inputs, got {type(example_inputs).__name__}."
            )
        return {str(key): _tensor_spec(value) for key, value in example_inputs.items()}
    build_config = model.get_build_config() if getattr(model, "built", False) else None
    shapes = (build_config or {}).get("input_shape")
    if not isinstance(shapes, Mapping):
        raise ValueError(
            f"model: cannot tell the input signature of the {'built' if model.built else 'unbuilt'} "
            f"{type(model).__name__}; pass example_inputs={{'kspace': ..., ...}} (the dict it is called on) "
            "or define example_inputs() on the class."
        )
    signature = {}
    for key, shape in shapes.items():
        if key not in INPUT_DTYPES:
            raise ValueError(
                f"model: input key {key!r} has no conventional dtype (known: {sorted(INPUT_DTYPES)}); "
                "pass example_inputs to save_to_preset."
            )
        shape = [None if d is None else int(d) for d in shape]
        if any(d is None for d in shape[1:]):
            raise ValueError(
                f"model: input {key!r} was built with shape {shape}; a preset needs every non-batch dimension "
                "known to rebuild it. Pass example_inputs to save_to_preset."
            )
        signature[key] = {"shape": shape, "dtype": INPUT_DTYPES[key]}
    return signature


def zeros_like_signature(signature: Mapping[str, Mapping]) -> dict:
    """Zero tensors for each key of ``signature`` (an unknown batch size becomes 1)."""
    import tensorflow as tf

    inputs = {}
    for key, spec in signature.items():
        try:
            shape = [1 if d is None else int(d) for d in spec["shape"]]
            dtype = tf.as_dtype(spec["dtype"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"input_signature: entry {key!r} should be {{'shape': [...], 'dtype': '...'}}, got {spec!r} ({error})."
            ) from None
        inputs[key] = tf.zeros(shape, dtype=dtype)
    return inputs


# --------------------------------------------------------------------------- model card


def _yaml_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"metrics: values must be finite numbers, got {value!r}.")
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid double-quoted YAML scalar


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in str(text).lower()).strip("-")


def model_card(
    name: str,
    metadata: Mapping[str, Any],
    **card: Any,
) -> str:
    """The README.md of a preset: YAML front matter (license, library_name, tags, datasets, metrics, model-index)
    and the sections architecture, paper, training data, training command, validation metrics, intended use and limits.

    Missing fields read "Not provided."; ``metrics`` is a dict ``{"psnr": 35.1, "ssim": 0.91, ...}``.
    """
    unknown = sorted(set(card) - set(CARD_FIELDS))
    if unknown:
        raise ValueError(f"card: unknown model-card field(s) {unknown}; accepted: {list(CARD_FIELDS)}.")
    metrics = card.get("metrics") or {}
    if not isinstance(metrics, Mapping):
        raise ValueError(f"metrics: expected a dict of metric name -> number, got {type(metrics).__name__}.")
    for metric, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"metrics: {metric!r} should be a finite number, got {value!r}.")
    datasets = list(card.get("datasets") or [])
    task = metadata.get("task", "reconstruction")
    tags = ["fastmri-zoo", "mri", "mri-reconstruction" if task == "reconstruction" else f"mri-{task}", "tensorflow"]
    # the class name, not card["architecture"]: that is free text for trained checkpoints ("XPDNet with {...}")
    model_class = str(metadata.get("class_name") or "").rpartition(">")[2]
    for extra in [model_class, card.get("trajectory"), card.get("coils"), *(card.get("tags") or [])]:
        if extra and _slug(extra) and _slug(extra) not in tags:
            tags.append(_slug(extra))
    if card.get("acceleration") is not None:
        tags.append(f"af{card['acceleration']}")

    front = ["---", f"license: {_yaml_scalar(card.get('license') or 'mit')}", "library_name: keras", "tags:"]
    front += [f"- {_yaml_scalar(tag)}" for tag in tags]
    if datasets:
        front += ["datasets:"] + [f"- {_yaml_scalar(d)}" for d in datasets]
    if metrics:
        front += ["metrics:"] + [f"- {_yaml_scalar(_slug(m))}" for m in metrics]
        front += [
            "model-index:",
            f"- name: {_yaml_scalar(name)}",
            "  results:",
            "  - task:",
            "      type: image-to-image",
            f"      name: MRI {task}",
            "    dataset:",
            f"      type: {_yaml_scalar(datasets[0] if datasets else 'custom')}",
            f"      name: {_yaml_scalar(card.get('evaluation_data') or 'not provided')}",
            "    metrics:",
        ]
        for metric, value in metrics.items():
            front += [
                f"    - type: {_yaml_scalar(_slug(metric))}",
                f"      value: {_yaml_scalar(value)}",
                f"      name: {_yaml_scalar(metric)}",
            ]
    front.append("---")

    def section(title: str, text: Any) -> list[str]:
        return [f"## {title}", "", str(text).strip() if text else _NOT_PROVIDED, ""]

    signature = metadata.get("input_signature", {})
    inputs = "\n".join(
        f"| `{key}` | {tuple(spec['shape'])} | {spec['dtype']} |" for key, spec in signature.items()
    )
    architecture = card.get("architecture") or _NOT_PROVIDED
    architecture = (
        f"{architecture}\n\nKeras class `{metadata.get('class_name', '?')}`, "
        f"{int(metadata.get('parameter_count', 0)):,} parameters. It was built on these inputs:\n\n"
        f"| key | shape | dtype |\n| --- | --- | --- |\n{inputs}"
    )
    if card.get("training_command"):
        command = f"```\n{str(card['training_command']).strip()}\n```"
    else:
        command = None
    if metrics:
        rows = "\n".join(f"| {metric} | {value:g} |" for metric, value in metrics.items())
        evaluated_on = card.get("evaluation_data") or "evaluation data not provided"
        metric_text = f"On {evaluated_on}:\n\n| metric | value |\n| --- | --- |\n{rows}"
    else:
        metric_text = None
    limits = [card.get("intended_use") or f"Intended use: {_NOT_PROVIDED.lower()}"]
    limits.append(card.get("limitations") or f"Known limitations: {_NOT_PROVIDED.lower()}")
    limits.append("Research use only: these weights are not validated for clinical diagnosis.")
    facts = [
        f"- fastmri_zoo {metadata.get('fastmri_zoo_version', '?')}, Keras {metadata.get('keras_version', '?')}, "
        f"TensorFlow {metadata.get('tensorflow_version', '?')}",
        f"- `{WEIGHTS_FILE}` sha256: `{metadata.get('weights_sha256', '?')}`",
    ]
    body = [
        f"# {name}",
        "",
        str(card.get("description") or "No description provided.").strip(),
        "",
        *section("Architecture", architecture),
        *section("Paper", card.get("paper")),
        *section("Training data", card.get("training_data")),
        *section("Training command", command),
        *section("Validation metrics", metric_text),
        *section("Intended use and limits", "\n\n".join(limits)),
        "## How to load",
        "",
        "```python",
        "import fastmri_zoo",
        f"model = fastmri_zoo.load({name!r})  # a registry name; or from_preset('path/to/folder' or 'hf://owner/repo')",
        "```",
        "",
        "## Files",
        "",
        *facts,
        "",
    ]
    return "\n".join(front) + "\n\n" + "\n".join(body)


# --------------------------------------------------------------------------- saving


def _model_config(model) -> dict:
    import keras

    config = keras.saving.serialize_keras_object(model)
    config.pop("build_config", None)  # the input signature in metadata.json replaces it
    config.pop("compile_config", None)
    try:
        return json.loads(json.dumps(config))
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"model: the config of {type(model).__name__} is not JSON-serializable ({error}); "
            "get_config() must return plain values (numbers, strings, lists, dicts, serialized Keras objects)."
        ) from None


def differing_config_keys(ours: Mapping, theirs: Mapping) -> list[str]:
    """The keys whose values differ between two model configs, compared as their JSON (tuples as lists)."""
    ours, theirs = json.loads(json.dumps(dict(ours))), json.loads(json.dumps(dict(theirs)))
    return sorted(key for key in set(ours) | set(theirs) if ours.get(key) != theirs.get(key))


def _check_round_trip(model, config: dict) -> None:
    import keras

    rebuilt = keras.saving.deserialize_keras_object(config, safe_mode=True)
    differing = differing_config_keys(model.get_config(), rebuilt.get_config())
    if differing:
        raise ValueError(
            f"model: {type(model).__name__}.get_config() does not round trip through from_config "
            f"(differing keys: {differing}); every constructor argument must be stored and returned by get_config."
        )


def _safe_replace_folder(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target``; an existing preset at ``target`` is replaced, anything else refused."""
    if target.exists():
        if not target.is_dir():
            raise ValueError(f"preset_dir: {str(target)!r} exists and is not a folder.")
        contents = list(target.iterdir())
        if contents and not (target / CONFIG_FILE).is_file():
            raise ValueError(
                f"preset_dir: {str(target)!r} holds files but is not a preset folder (no {CONFIG_FILE}); "
                "refusing to replace it. Choose a new or empty folder."
            )
        backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        backup.rmdir()
        os.replace(target, backup)
        try:
            os.replace(staging, target)
        except OSError:
            os.replace(backup, target)
            raise
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(staging, target)


def _build(model, signature: Mapping[str, Mapping]) -> None:
    """Create the weights of an unbuilt zoo model of input ``signature``."""
    if getattr(model, "builds_its_layers", lambda: False)():
        model.build(None)  # a zoo model creates its weights directly: no forward pass at the recorded size
    else:
        model(zeros_like_signature(signature))


def _weights_only(model, signature: Mapping[str, Mapping]):
    """``model``, or a copy with its weights when it is compiled: Keras' ``save_weights`` of a compiled model
    also saves its optimizer's state (a prior trained by its own ``train_step``), which a preset never holds."""
    if getattr(model, "optimizer", None) is None:
        return model
    copy = type(model).from_config(model.get_config())
    _build(copy, signature)
    copy.set_weights(model.get_weights())
    return copy


def save_to_preset(model, preset_dir: str | os.PathLike, *, example_inputs: Mapping | None = None, **card) -> Path:
    """Write ``model`` as a preset folder ``preset_dir`` (atomically: a temporary folder, then a rename).

    ``example_inputs``: the dict the model is called on (only shapes and dtypes
    are recorded); needed when the model is unbuilt or its class has no
    ``example_inputs()``. ``card``: model-card fields, see ``CARD_FIELDS``.
    Returns the folder.
    """
    import keras
    import tensorflow as tf

    if not _is_zoo_model(type(model)):
        raise ValueError(f"model: expected a ReconstructionModel, got {type(model).__name__}; a checkpoint holds a "
                         "zoo model (models.base.ZooModel: reconstruction network, denoiser or prior).")
    unknown = sorted(set(card) - set(CARD_FIELDS))
    if unknown:
        raise ValueError(f"card: unknown model-card field(s) {unknown}; accepted: {list(CARD_FIELDS)}.")
    registered = keras.saving.get_registered_name(type(model))
    if keras.saving.get_registered_object(registered) is not type(model):
        raise ValueError(
            f"model: {type(model).__name__} is not registered; decorate it with "
            "@keras.saving.register_keras_serializable(package='fastmri_zoo')."
        )
    signature = input_signature(model, example_inputs)
    task = getattr(model, "TASK", "reconstruction")
    if not model.built:
        model(zeros_like_signature(signature) if example_inputs is None else dict(example_inputs))
    config = _model_config(model)
    _check_round_trip(model, config)

    target = Path(preset_dir).expanduser().absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp.", dir=target.parent))
    from .checks import default_permissions  # lazy: checks imports TensorFlow; this module stays TF-free

    default_permissions(staging, directory=True)
    try:
        weights_path = staging / WEIGHTS_FILE
        _weights_only(model, signature).save_weights(str(weights_path))
        metadata = {
            "format": PRESET_FORMAT,
            "format_version": PRESET_FORMAT_VERSION,
            "class_name": registered,
            "fastmri_zoo_version": __version__,
            "keras_version": keras.__version__,
            "tensorflow_version": tf.__version__,
            "python_version": platform.python_version(),
            "parameter_count": int(model.count_params()),
            "weights_file": WEIGHTS_FILE,
            "weights_sha256": sha256_file(weights_path),
            "task": task,
            "input_signature": signature,
        }
        if card.get("acquisition") is not None:
            # How inputs were made in training (mask type, centre fraction, acceleration,
            # normalisation): inference replays it on fully sampled files.
            metadata["acquisition"] = dict(card["acquisition"])
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        if task == "reconstruction":  # denoisers and priors take images: no k-space to prepare
            # --- preprocessing hook (owned by data.preprocessing): preprocessor.json, how inputs are prepared.
            # Lazy import: data.preprocessing imports TensorFlow, this module stays TF-free at import.
            from .data.preprocessing import save_preprocessor  # lazy: imports TensorFlow

            save_preprocessor(model, staging, card.get("acquisition"))
            # --- end of the preprocessing hook
        card.setdefault("name", target.name)
        (staging / CARD_FILE).write_text(model_card(metadata=metadata, **card), encoding="utf-8")
        _safe_replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


# --------------------------------------------------------------------------- loading


def _read_json(path: Path) -> dict:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: missing; a preset folder needs {CONFIG_FILE}, {METADATA_FILE} and {WEIGHTS_FILE}.") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error}).") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(content).__name__}.")
    return content


def verify_preset_folder(folder: str | os.PathLike, expected_sha256: str | None = None, *, weights: bool = True) -> dict:
    """Check a preset folder before anything is built from it; return its metadata.

    The sha256 of ``model.weights.h5`` must equal metadata.json's
    ``weights_sha256`` and, when given, ``expected_sha256`` (the registry's);
    otherwise :class:`~fastmri_zoo.hub.ChecksumError` (a ValueError) names the
    file and both hashes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"preset: expected a preset folder, got {str(folder)!r} which is not a folder.")
    metadata = _read_json(folder / METADATA_FILE)
    _read_json(folder / CONFIG_FILE)
    if not weights:
        return metadata
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ValueError(f"{weights_path}: missing; a preset folder needs {CONFIG_FILE}, {METADATA_FILE} and {WEIGHTS_FILE}.")
    recorded = metadata.get("weights_sha256")
    if not isinstance(recorded, str):
        raise ValueError(f"{folder / METADATA_FILE}: no 'weights_sha256' entry; cannot verify {WEIGHTS_FILE}.")
    actual = sha256_file(weights_path)
    if actual != recorded:
        raise ChecksumError(
            f"{weights_path}: sha256 mismatch with {METADATA_FILE}: expected {recorded}, got {actual}. "
            "The file was modified or corrupted; it was not loaded.",
            weights_path, recorded, actual,
        )
    if expected_sha256 is not None and actual != expected_sha256:
        raise ChecksumError(
            f"{weights_path}: sha256 mismatch with the registry: expected {expected_sha256}, got {actual}. "
            "These are not the weights the registry pins; they were not loaded.",
            weights_path, expected_sha256, actual,
        )
    return metadata


def resolve_class(config: Mapping | str):
    """The registered zoo model class (``models.base.ZooModel``) named by a config (or a Keras registered name
    such as ``"fastmri_zoo>NCPDNet"``), importing only fastmri_zoo modules."""
    import keras

    if isinstance(config, str):
        config = {"registered_name": config}
    registered = config.get("registered_name") or config.get("class_name")
    if not isinstance(registered, str):
        raise ValueError(f"config.json: no 'registered_name' / 'class_name' string, got {registered!r}.")
    cls = keras.saving.get_registered_object(registered)
    if cls is None:
        # Model families register their classes when imported; only our own package is imported here.
        candidates = ["fastmri_zoo.models"]
        module = config.get("module")
        if isinstance(module, str) and (module == "fastmri_zoo" or module.startswith("fastmri_zoo.")):
            candidates.append(module)
        for name in candidates:
            try:
                importlib.import_module(name)
            except ImportError:
                pass
        cls = keras.saving.get_registered_object(registered)
    if cls is None:
        raise ValueError(
            f"config.json: unknown model class {registered!r}; import the module that registers it "
            "(keras.saving.register_keras_serializable) before loading."
        )
    if not _is_zoo_model(cls):
        raise ValueError(f"config.json: {registered!r} is not a ReconstructionModel subclass nor another zoo model "
                         "(denoiser, prior); refusing to build it.")
    return cls


def _weights_layout(path: str | os.PathLike) -> dict[str, tuple]:
    """``{dataset path: shape}`` of every array in a Keras ``.weights.h5`` file."""
    import h5py

    layout: dict[str, tuple] = {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset):
            layout[name] = tuple(item.shape)

    with h5py.File(path, "r") as handle:
        handle.visititems(visit)
    return layout


def _check_weights_fit(model, weights_path: Path) -> None:
    """Raise a ValueError naming the variables whose presence or shape differs between the file and the model."""
    with tempfile.TemporaryDirectory(prefix="fastmri_zoo_layout_") as scratch:
        reference = Path(scratch) / "expected.weights.h5"
        model.save_weights(str(reference))
        expected = _weights_layout(reference)
    found = _weights_layout(weights_path)
    problems = []
    for key in sorted(set(expected) | set(found)):
        if key not in found:
            problems.append(f"{key}: missing from the file (the model expects shape {expected[key]})")
        elif key not in expected:
            problems.append(f"{key}: in the file with shape {found[key]}, but the model has no such variable")
        elif expected[key] != found[key]:
            problems.append(f"{key}: shape {found[key]} in the file, the model expects {expected[key]}")
    if problems:
        shown = "; ".join(problems[:6]) + ("; ..." if len(problems) > 6 else "")
        raise ValueError(
            f"{weights_path}: the weights do not fit {type(model).__name__} as configured in config.json "
            f"({len(problems)} variable(s) differ): {shown}."
        )


def load_preset(folder: str | os.PathLike, *, expected_sha256: str | None = None, pretrained: bool = True):
    """Build the model of a local preset folder and, if ``pretrained``, load its verified weights."""
    import keras

    folder = Path(folder)
    metadata = verify_preset_folder(folder, expected_sha256, weights=pretrained)
    config = _read_json(folder / CONFIG_FILE)
    resolve_class(config)
    model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    signature = metadata.get("input_signature")
    if not isinstance(signature, Mapping) or not signature:
        if pretrained:
            raise ValueError(f"{folder / METADATA_FILE}: no 'input_signature'; cannot build the model to load weights.")
        return model
    _build(model, signature)
    if pretrained:
        weights_path = folder / WEIGHTS_FILE
        _check_weights_fit(model, weights_path)
        try:
            model.load_weights(str(weights_path))
        except Exception as error:  # Keras raises several types; the caller gets one clear ValueError
            raise ValueError(f"{weights_path}: could not be loaded into {type(model).__name__}: {error}") from error
    model.preset_metadata = metadata
    if getattr(model, "TASK", "reconstruction") == "reconstruction":  # denoisers and priors take no k-space
        # --- preprocessing hook (owned by data.preprocessing): the preset's preprocessor.json, or the one
        # derived from metadata.json["acquisition"] and the model. Lazy import: TensorFlow (see above).
        from .data.preprocessing import load_preprocessor  # lazy: imports TensorFlow

        model.preprocessor = load_preprocessor(folder, model, metadata)
        # --- end of the preprocessing hook
    return model


#: What :func:`load` / :func:`from_preset` accept, for error messages.
HANDLE_FORMS = (
    "a registered checkpoint name (fastmri_zoo.list_models()), a preset folder "
    "(config.json, metadata.json, model.weights.h5) or 'hf://owner/repo[/subfolder][@revision]'"
)


def _is_path_like(handle: str) -> bool:
    return os.sep in handle or "/" in handle or handle.startswith((".", "~")) or os.path.isabs(handle)


def _handle_text(handle: str | os.PathLike) -> str:
    """``handle`` as text; a path object always means a folder, even when its text is a registered name."""
    if not isinstance(handle, (str, os.PathLike)):
        raise ValueError(f"handle: expected {HANDLE_FORMS}, got {type(handle).__name__} {handle!r}.")
    text = os.fspath(handle)
    if not isinstance(text, str):
        raise ValueError(f"handle: expected a str path, got {type(text).__name__} {text!r}.")
    if isinstance(handle, os.PathLike) and not _is_path_like(text):
        text = os.path.join(os.curdir, text)
    return text


def resolve_preset_folder(
    handle: str | os.PathLike,
    revision: str | None = None,
    *,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    weights: bool = True,
):
    """Turn a handle into ``(local preset folder, registry entry or None)``.

    ``handle``: ``hf://owner/repo[/subfolder][@revision]``, a local preset
    folder, or a registry name (bundled folder first, then its pinned Hub
    location). Hub downloads are verified; a local folder is not yet.
    """
    handle_text = _handle_text(handle)
    if handle_text.endswith(".keras"):
        raise ValueError(
            f"handle: {handle_text!r} is a .keras archive; fastmri_zoo loads preset folders only "
            "(config.json + model.weights.h5). Open it with keras.saving.load_model(path, safe_mode=True) "
            "and save it with model.save_to_preset(folder)."
        )
    if handle_text.startswith("hf://"):
        location = parse_hf_handle(handle_text, revision)
        folder = download_preset(location, endpoint=endpoint, cache_dir=cache_dir, token=token, weights=weights)
        return folder, None
    path = Path(handle_text).expanduser()
    if path.is_dir() and (_is_path_like(handle_text) or handle_text not in registry.list_models()):
        if revision is not None:
            raise ValueError(f"revision: a local folder has no revisions, got revision={revision!r} for {handle_text!r}.")
        return path, None
    if _is_path_like(handle_text) and not path.exists():
        raise ValueError(f"handle: no preset folder at {handle_text!r}; expected {HANDLE_FORMS}.")
    if path.is_file() and (_is_path_like(handle_text) or handle_text not in registry.list_models()):
        raise ValueError(f"handle: {handle_text!r} is a file; expected {HANDLE_FORMS}.")
    try:
        entry = registry.get_entry(handle_text)
    except ValueError as error:
        raise ValueError(f"{error} A handle is {HANDLE_FORMS}.") from None
    pinned = revision is None or revision == entry.hub_revision
    if pinned:
        bundled = registry.bundled_folder(entry)
        if bundled is not None:
            return bundled, entry
    if entry.hub_repo is None:
        if entry.bundled:
            searched = ", ".join(repr(str(root)) for root in registry.weights_dirs())
            where = (f"its bundled folder {entry.bundled!r} (with {CONFIG_FILE} and {WEIGHTS_FILE}) "
                     f"is in none of {searched}")
        else:
            where = "it has no bundled folder"
        raise ValueError(f"name: {entry.name} has no weights to load: {where}, and it has no Hub repo.")
    location = HubLocation(entry.hub_repo, entry.hub_subfolder, revision or entry.hub_revision)
    folder = download_preset(
        location,
        expected_sha256=entry.sha256 if pinned else None,
        endpoint=endpoint,
        cache_dir=cache_dir,
        token=token,
        weights=weights,
    )
    return folder, entry


def load(
    handle: str | os.PathLike,
    pretrained: bool = True,
    revision: str | None = None,
    *,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
):
    """The model of ``handle``, with its trained weights (``pretrained=True``) or fresh ones.

    ``handle`` is one of

    - a registered name (:func:`fastmri_zoo.list_models`): weights come from the
      bundled folder (offline) when there is one and ``revision`` is None or the
      pinned one, else from the Hub at the pinned revision (or ``revision``); the
      loader is the one of the entry's format (:data:`LOADERS`), or the entry's own;
    - a local preset folder (a path; a registered name wins over a folder of the
      same name in the working directory, write ``./name`` or pass a Path for the folder);
    - ``hf://owner/repo[/subfolder][@revision]``.

    Weights' sha256 are checked before anything is loaded.
    """
    handle_text = _handle_text(handle)
    if not handle_text.startswith("hf://") and not _is_path_like(handle_text) and handle_text in registry.list_models():
        entry = registry.get_entry(handle_text)
        options = dict(pretrained=pretrained, revision=revision, endpoint=endpoint, cache_dir=cache_dir, token=token)
        if entry.loader is not None:  # an explicitly registered entry with its own loader
            return entry.loader(**options)
        return LOADERS[entry.format](entry.name, **options)
    folder, entry = resolve_preset_folder(
        handle_text, revision, endpoint=endpoint, cache_dir=cache_dir, token=token, weights=pretrained
    )
    return load_preset(folder, expected_sha256=entry.sha256 if entry is not None else None, pretrained=pretrained)


def _load_registered_preset(
    name: str,
    pretrained: bool = True,
    revision: str | None = None,
    *,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
):
    """The loader of format "preset": the entry's bundled folder, else its Hub folder."""
    entry = registry.get_entry(name)
    if not pretrained:
        bundled = registry.bundled_folder(entry)
        if revision is None and bundled is not None:
            return load_preset(bundled, pretrained=False)
        if revision is None and entry.builder is not None:
            return entry.builder()
        if entry.hub_repo is None:
            raise ValueError(f"name: {name} has no bundled folder, builder or Hub repo to build the architecture from.")
        folder, _ = resolve_preset_folder(
            name, revision, endpoint=endpoint, cache_dir=cache_dir, token=token, weights=False
        )
        return load_preset(folder, pretrained=False)
    if not entry.pretrained:
        raise ValueError(
            f"name: {name} has no trained weights yet (it is not listed as pretrained); "
            f"use fastmri_zoo.load({name!r}, pretrained=False) for the architecture with fresh weights."
        )
    folder, entry = resolve_preset_folder(name, revision, endpoint=endpoint, cache_dir=cache_dir, token=token)
    pinned = revision is None or revision == entry.hub_revision
    return load_preset(folder, expected_sha256=entry.sha256 if pinned else None)


def from_preset(
    handle: str | os.PathLike,
    revision: str | None = None,
    *,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    pretrained: bool = True,
):
    """:func:`load` under keras-hub's name: a registry name, a local preset folder or
    ``hf://owner/repo[/subfolder][@revision]``."""
    return load(handle, pretrained, revision, endpoint=endpoint, cache_dir=cache_dir, token=token)


#: The loader of each checkpoint format (``registry.FORMATS``): ``loader(name, pretrained, revision, *, endpoint,
#: cache_dir, token)``. A foreign format is one more loader here, not a special case in the registry.
LOADERS = {
    "preset": _load_registered_preset,
    "keras2": keras2_checkpoints.load,
}


# --------------------------------------------------------------------------- publishing


def export_hub(name: str, out_dir: str | os.PathLike) -> Path:
    """Write the preset of checkpoint ``name`` (or of a local preset folder) to ``out_dir``, ready for upload.

    The files are verified (sha256 of the weights against metadata.json and the
    registry) and laid out as the registry expects them on the Hub: inside the
    subfolder of the entry's ``hub_filename``, if any. ``out_dir`` must not exist
    or be empty. Returns ``out_dir``.
    """
    folder, entry = resolve_preset_folder(name)
    verify_preset_folder(folder, expected_sha256=entry.sha256 if entry is not None else None)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"out_dir: expected a new or empty folder, got {str(out_dir)!r} which holds files.")
    target = out_dir / entry.hub_subfolder if entry is not None and entry.hub_subfolder else out_dir
    target.mkdir(parents=True, exist_ok=True)
    for filename in dict.fromkeys(PRESET_FILES + OPTIONAL_PRESET_FILES + CARD_FIGURE_FILES):
        source = Path(folder) / filename
        if source.is_file():
            shutil.copyfile(source, target / filename)
    return out_dir


def push(
    name: str,
    repo_id: str,
    token: str | None = None,
    endpoint: str | None = None,
    *,
    private: bool | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
) -> str:
    """Upload the preset of ``name`` (a registry name or a local preset folder) to ``repo_id``; return the commit id.

    Creates the repository if needed and uploads the files of
    :func:`export_hub` in one commit (``HfApi.create_commit``; the same commit
    API ``upload_folder`` uses, restricted to the preset's files). Pin the
    returned commit id as ``hub_revision`` in the card block of the preset's recipe.json.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    endpoint = resolve_endpoint(endpoint)
    api = HfApi(endpoint=endpoint, token=token)
    with tempfile.TemporaryDirectory(prefix="fastmri_zoo_push_") as staging:
        export_hub(name, staging)
        operations = [
            CommitOperationAdd(path_in_repo=path.relative_to(staging).as_posix(), path_or_fileobj=str(path))
            for path in sorted(Path(staging).rglob("*"))
            if path.is_file()
        ]
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message or f"Upload fastmri-zoo checkpoint {name}",
            revision=revision,
        )
    return commit.oid
