"""Running a zoo model on a fastMRI-layout file, slice by slice.

The inputs are prepared by the model's preprocessor (``data.preprocessing``: the one the
training pipelines use, recorded in the preset as ``preprocessor.json`` or derived from its
``metadata.json``), and the output is multiplied back by the scale, so reconstructions are
in the units of the file.

- Cartesian files: where k-space was sampled is read from the data (its non-zero entries,
  per location, after the file's ``mask`` when it has one; ``read_sampling``): a column
  pattern or a 2D pattern is used as the mask as it is; fully sampled k-space is undersampled
  retrospectively (the checkpoint's acquisition, or the options given). Coil maps come from
  the fully sampled centre, everything is divided by the maximum of the zero-filled magnitude.
- Non-Cartesian files (a ``trajectory`` dataset, see ``data.h5``): raw samples,
  trajectory and density compensation (the file's ``dcomp`` or Pipe-Menon
  weights), everything divided by the maximum of the density-compensated
  adjoint (RSS over coils); coil maps from the data itself, the low-resolution
  adjoint of the centre of k-space (``estimate_sensitivity_maps_nufft``). Such
  files usually have no reference: the baseline beside the network is the
  adjoint + density compensation, and no metric is computed.

Everything about a file and the options is checked before a model is loaded, and this
module imports TensorFlow only when a model runs: ``checkpoint_spec`` reads what a
checkpoint takes from its preset folder's JSON files, ``plan_reconstruction`` reads and
checks the file against it (paths, layout, coils, 2D / 3D, sampling, memory) and
``run_plan`` runs the loaded model. ``reconstruct_file`` is the two in one for a model in
hand. Raw errors of TensorFlow and h5py met on the way are re-raised as one-line
``ValueError`` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
from tqdm.auto import tqdm

from . import registry
from .checks import check_memory, check_output_path, library_error_message
from .data.h5 import FastMRIVolume, dcomp_problem, read_fastmri_h5, validate_fastmri_h5, write_reconstruction_h5
from .hub import CONFIG_FILE, METADATA_FILE, PREPROCESSOR_FILE
from .presets import resolve_preset_folder
from .sampling import MASK_TYPES, create_mask_func
from .utils import center_crop

__all__ = [
    "ModelSpec",
    "model_spec",
    "checkpoint_spec",
    "check_options",
    "Sampling",
    "read_sampling",
    "infer_mask",
    "undersample",
    "ReconstructionPlan",
    "check_task",
    "check_file",
    "cartesian_batch",
    "plan_reconstruction",
    "run_plan",
    "reconstruct_cartesian",
    "slab_starts",
    "is_noncartesian",
    "noncartesian_inputs",
    "reconstruct_noncartesian",
    "reconstruct_file",
    "FileReconstruction",
]

# Lazy imports below say "TensorFlow": this module is imported by the command line before any
# model is loaded, so that files and options are checked in a second, not after TensorFlow's start-up.


# ---------------------------------------------------------------------------- what a model takes


@dataclass(frozen=True)
class ModelSpec:
    """What a checkpoint takes, known without building it; None: not recorded (then not checked
    before the model is loaded, only after).

    kind: "cartesian" or "noncartesian"; multicoil; ndim: 2 or 3 (image axes); image_shape: the
    grid a non-Cartesian model was built or trained on, or the image size of a prior or denoiser;
    acquisition: metadata.json's ``acquisition`` (how fully sampled files are undersampled);
    name: for messages; folder: the preset folder the spec was read from; task: what the
    checkpoint is for (``registry.TASKS``); arguments: the constructor arguments of config.json.
    """

    name: str
    kind: str | None = None
    multicoil: bool | None = None
    ndim: int | None = None
    image_shape: tuple[int, ...] | None = None
    acquisition: Mapping[str, Any] = field(default_factory=dict)
    folder: str | None = None
    task: str = "reconstruction"
    arguments: Mapping[str, Any] = field(default_factory=dict)


def model_spec(model, name: str | None = None) -> ModelSpec:
    """The spec of a built model: its preprocessor (``data.preprocessing.preprocessor_for``) and preset metadata."""
    from .data.preprocessing import preprocessor_for  # lazy: TensorFlow (see the note at the top)

    preprocessor = preprocessor_for(model)
    image_shape = getattr(preprocessor, "image_shape", None)
    acquisition = dict((getattr(model, "preset_metadata", None) or {}).get("acquisition") or {})
    return ModelSpec(name or type(model).__name__, preprocessor.kind, preprocessor.multicoil, preprocessor.ndim,
                     tuple(image_shape) if image_shape else None, acquisition,
                     task=getattr(model, "TASK", "reconstruction"))


def _read_json(path: Path) -> dict:
    """A JSON object, or {} when missing or broken (the loader reports broken files with its own message)."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return content if isinstance(content, dict) else {}


def _spec_of_folder(name: str, folder: Path) -> ModelSpec:
    config, metadata = _read_json(folder / CONFIG_FILE), _read_json(folder / METADATA_FILE)
    preprocessor = _read_json(folder / PREPROCESSOR_FILE)
    kind = multicoil = ndim = image_shape = None
    signature = metadata.get("input_signature")
    if isinstance(signature, dict) and isinstance(signature.get("kspace"), dict):
        rank = len(signature["kspace"].get("shape") or ())
        kind = "noncartesian" if "traj" in signature else "cartesian"
        multicoil = rank == (3 if kind == "noncartesian" else 4)
        traj_shape = (signature.get("traj") or {}).get("shape") or ()
        ndim = int(traj_shape[-2]) if kind == "noncartesian" and len(traj_shape) >= 2 else 2
    arguments = config.get("config") if isinstance(config.get("config"), dict) else {}
    if isinstance(arguments.get("multicoil"), bool):
        multicoil = arguments["multicoil"]
    if arguments.get("ndim") in (2, 3):
        ndim = arguments["ndim"]
    if isinstance(arguments.get("image_shape"), list):
        image_shape = tuple(int(n) for n in arguments["image_shape"])
    if preprocessor.get("kind") in ("cartesian", "noncartesian"):
        kind = preprocessor["kind"]
        multicoil = bool(preprocessor.get("multicoil", multicoil))
        ndim = int(preprocessor.get("ndim") or ndim or 2)
        if isinstance(preprocessor.get("image_shape"), list):
            image_shape = tuple(int(n) for n in preprocessor["image_shape"])
    acquisition = metadata.get("acquisition") if isinstance(metadata.get("acquisition"), dict) else {}
    if multicoil is None and isinstance(acquisition.get("multicoil"), bool):
        multicoil = acquisition["multicoil"]
    task = metadata.get("task", "reconstruction")
    if isinstance(signature, dict) and isinstance(signature.get("image"), dict):  # a denoiser or a prior
        shape = signature["image"].get("shape") or ()
        image_shape = tuple(int(n) for n in shape[1:3]) if len(shape) >= 3 and None not in shape[1:3] else None
    return ModelSpec(name, kind, multicoil, ndim, image_shape, dict(acquisition), str(folder), task, arguments)


def checkpoint_spec(handle) -> ModelSpec:
    """The spec of a checkpoint (registry name, preset folder or ``hf://``), read from its preset folder's
    ``config.json``, ``metadata.json`` and ``preprocessor.json`` without building the model (no TensorFlow);
    a registered checkpoint of another format (the authors' Keras-2 files) is described by its registry entry.
    Unknown names raise the registry's ValueError (with the closest names)."""
    text = os.fspath(handle)
    if text in registry.list_models():
        entry = registry.get_entry(text)
        if entry.converts_on_load:
            kind = "cartesian" if entry.trajectory == "cartesian" else "noncartesian"
            return ModelSpec(text, kind, entry.coils == "multicoil", 3 if entry.coils == "3d" else 2)
    folder, _ = resolve_preset_folder(handle, weights=False)
    return _spec_of_folder(text, Path(folder))


# ---------------------------------------------------------------------------- options


def _option(key: str, cli: bool) -> str:
    return "--" + key.replace("_", "-") if cli else key


def check_options(*, acceleration=None, center_fraction=None, mask_type=None, seed=0, batch_size=1,
                  cli: bool = False) -> None:
    """ValueError naming the option (``--acceleration`` when ``cli``) when one is out of range; None means
    "not given" (the checkpoint's value is used), never 0."""
    def number(key, value):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{_option(key, cli)}: expected a number, got {value!r}.")
        return float(value)

    if acceleration is not None:
        value = number("acceleration", acceleration)
        if not (math.isfinite(value) and value > 1):
            raise ValueError(f"{_option('acceleration', cli)}: expected an acceleration factor > 1 (e.g. 4: a quarter "
                             f"of the columns sampled), got {acceleration!r}.")
    if center_fraction is not None:
        value = number("center_fraction", center_fraction)
        if not (math.isfinite(value) and 0 < value < 1):
            raise ValueError(f"{_option('center_fraction', cli)}: expected a fraction in (0, 1) of the columns "
                             f"fully sampled in the centre (e.g. 0.08), got {center_fraction!r}.")
    if mask_type is not None and mask_type not in MASK_TYPES:
        raise ValueError(f"{_option('mask_type', cli)}: expected one of {sorted(MASK_TYPES)}, got {mask_type!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**32:
        raise ValueError(f"{_option('seed', cli)}: expected an integer in [0, 2**32), got {seed!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or int(batch_size) < 1:
        raise ValueError(f"{_option('batch_size', cli)}: expected a whole number >= 1 (slices per network call), "
                         f"got {batch_size!r}.")


# ---------------------------------------------------------------------------- Cartesian sampling


@dataclass(frozen=True)
class Sampling:
    """Where Cartesian k-space was sampled.

    mask: float32 0 / 1, (1, W) or (slices, 1, W) per column, (1, H, W) or (slices, H, W) for a 2D
    pattern (leading 1: the same for every slice); pattern: "full" (every column sampled), "columns"
    or "2D".
    """

    mask: np.ndarray
    pattern: str

    @property
    def acceleration(self) -> float:
        """Sampled locations over all locations, inverted (columns for a column mask)."""
        return float(1 / self.mask.mean())

    @property
    def per_slice(self) -> bool:
        return self.mask.shape[0] > 1

    def describe(self) -> str:
        per = " per slice" if self.per_slice else ""
        if self.pattern == "2D":
            return f"2D pattern{per} ({100 / self.acceleration:.1f}% of k-space, AF {self.acceleration:.2f})"
        if self.pattern == "columns":
            return f"column mask{per} ({int(round(self.mask.shape[-1] / self.acceleration))} of " \
                   f"{self.mask.shape[-1]} columns, AF {self.acceleration:.2f})"
        return "fully sampled k-space"


def read_sampling(kspace) -> Sampling:
    """Where ``kspace`` complex (slices, [coils,] H, W) was sampled: its non-zero entries, per location
    (any coil). Rows zero in every column (readout zero-padding) do not make a pattern 2D; slices that are
    entirely zero take the pattern of the others. Raises when every entry is zero."""
    kspace = np.asarray(kspace)
    if kspace.ndim not in (3, 4):
        raise ValueError(f"kspace: expected (slices, H, W) or (slices, coils, H, W), got shape {kspace.shape}.")
    sampled = kspace != 0
    if kspace.ndim == 4:
        sampled = sampled.any(axis=1)
    acquired = sampled.any(axis=(1, 2))
    if not acquired.any():
        raise ValueError("kspace: every entry is zero; nothing was sampled.")
    rows, columns = sampled.any(axis=2), sampled.any(axis=1)
    by_columns = np.array_equal(sampled, rows[:, :, None] & columns[:, None, :])
    patterns = columns[:, None, :] if by_columns else sampled  # (slices, 1, W) or (slices, H, W)
    kept = patterns[acquired]
    if all(np.array_equal(pattern, kept[0]) for pattern in kept[1:]):
        mask = kept[:1]
    else:
        mask = np.where(acquired[:, None, None], patterns, kept.any(axis=0)[None])
    pattern = "2D" if not by_columns else ("full" if mask.all() else "columns")
    return Sampling(mask.astype(np.float32), pattern)


def _centre_width(mask: np.ndarray) -> int:
    """Width of the contiguous sampled block around column W // 2 in the centre row, every slice sampling it
    (for column masks: ``data.preprocessing.acs_width``'s number); 0 when the centre is not sampled."""
    mask = np.asarray(mask) > 0
    row = mask.reshape((-1,) + mask.shape[-2:]).all(axis=0)[mask.shape[-2] // 2]
    centre = row.shape[0] // 2
    if not row[centre]:
        return 0
    right = int(np.argmin(np.append(row[centre:], False)))
    left = int(np.argmin(np.append(row[: centre + 1][::-1], False)))
    return right + left - 1


def infer_mask(kspace: np.ndarray) -> tuple[np.ndarray, int]:
    """The sampling mask of Cartesian k-space read from its non-zero entries (``read_sampling``) and
    the width of the sampled block around the centre column W // 2 (in the centre row).

    kspace: complex (slices, [coils,] H, W). Returns mask float32 ((1, W) or (slices, 1, W) per column,
    (1, H, W) or (slices, H, W) for a 2D pattern), num_low_frequencies.
    """
    sampling = read_sampling(kspace)
    width = _centre_width(sampling.mask)
    if width == 0:
        raise ValueError("kspace: the centre of k-space (column W // 2) is not sampled; expected Cartesian k-space "
                         "with a fully sampled centre (autocalibration lines).")
    return (sampling.mask[0] if sampling.mask.shape[:2] == (1, 1) else sampling.mask), width


def undersample(kspace: np.ndarray, mask_type: str, center_fraction: float, acceleration: float,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Retrospective undersampling with one fastMRI mask for the whole volume.

    Returns the masked k-space (complex64), the mask float32 (1, W) and the number of centre columns.
    """
    kspace = np.asarray(kspace)
    mask, num_low = create_mask_func(mask_type, center_fraction, acceleration)(kspace.shape, seed=seed)
    mask = np.asarray(mask, np.float32).reshape(1, -1)
    return (kspace * mask).astype(np.complex64), mask, int(num_low)


def _apply_mask(kspace: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """k-space (slices, [coils,] H, W) times a file mask (W,), (H, W) or (slices, H, W)."""
    if mask.ndim == 3 and kspace.ndim == 4:
        mask = mask[:, None]
    return (kspace * mask).astype(np.complex64)


# ---------------------------------------------------------------------------- checks of a file against a model


def _check_layout(spec: ModelSpec, path: str, *, noncartesian: bool, multicoil: bool, kspace_shape: tuple,
                  image_shape, cli: bool) -> None:
    """Clear errors when a model of ``spec`` cannot take a file of this layout (before anything is computed)."""
    name = spec.name
    if spec.kind == "noncartesian" and not noncartesian:
        raise ValueError(
            f"{path}: has no 'trajectory' dataset, so it holds Cartesian k-space {kspace_shape}; "
            f"{name} is a non-Cartesian model. A non-Cartesian file needs kspace (slices, [coils,] nsamples), "
            "trajectory float32 (ndim, nsamples) in radians per pixel and the attribute image_shape "
            "(see fastmri_zoo.data.h5)."
        )
    if spec.kind == "cartesian" and noncartesian:
        raise ValueError(
            f"{path}: holds non-Cartesian k-space (a 'trajectory' dataset); {name} is a Cartesian model. "
            "Use a non-Cartesian one (fastmri-zoo list --trajectory radial)."
        )
    if spec.multicoil is not None and multicoil != spec.multicoil:
        layout = "(slices, coils, nsamples)" if noncartesian else "(slices, coils, H, W)"
        if multicoil:
            raise ValueError(
                f"kspace: {name} is a single-coil model but the file holds {kspace_shape[1]} coils ({path}, "
                f"kspace {kspace_shape}); use a multicoil model (fastmri-zoo list --coils multicoil) or combine "
                "the coils first."
            )
        raise ValueError(
            f"kspace: {name} is a multicoil model but {path} holds single-coil k-space {kspace_shape}; "
            f"expected {layout}, or use a single-coil model."
        )
    if noncartesian and spec.ndim is not None and image_shape is not None and spec.ndim != len(image_shape):
        raise ValueError(
            f"image_shape: {name} reconstructs {spec.ndim}D images but {path} has the {len(image_shape)}D grid "
            f"{list(image_shape)}; use a {len(image_shape)}D model."
        )


def _noncartesian_memory(image_shape, coils: int, nsamples: int) -> float:
    """Bytes a non-Cartesian reconstruction holds at once (an estimate, within a factor of about 2):
    per pixel the coil images and maps, the 2^ndim times larger gridding grid per coil and the
    Toeplitz kernel (complex64), and the network's feature maps; per sample the gridding
    coefficients (stored up to ``physics.nufft.MAX_STORED_ENTRIES``, then streamed)."""
    ndim = len(image_shape)
    pixels = float(np.prod([float(n) for n in image_shape]))
    per_pixel = 8 * (2 * coils + 2**ndim * (coils + 1)) + 256
    gridding = min(float(nsamples) * 6**ndim, 2.0**25) * 48
    return pixels * per_pixel + float(nsamples) * 32 * coils + gridding


def check_task(spec: ModelSpec, task: str = "reconstruction") -> None:
    """ValueError when the checkpoint of ``spec`` is not for ``task`` (a prior given to ``reconstruct``, ...)."""
    if spec.task == task:
        return
    commands = {"reconstruction": "fastmri-zoo reconstruct", "prior": "fastmri-zoo sample"}
    use = f"; use {commands[spec.task]} {spec.name} FILE.h5" if spec.task in commands else ""
    raise ValueError(f"{spec.name}: is a {spec.task} checkpoint, not a {task} one{use} "
                     f"(fastmri-zoo list --task {task} lists the {task} checkpoints).")


def check_file(spec: ModelSpec, input_path, *, need_reference: bool = False, cli: bool = False,
               task: str = "reconstruction") -> dict:
    """The quick check of a file against a model (shapes and small datasets, no k-space read): the
    checkpoint's task (``check_task``), the file's layout, coils, 2D / 3D grid and, with ``need_reference``,
    a reference to score against. Returns ``validate_fastmri_h5``'s summary; raises FileNotFoundError /
    ValueError naming the file."""
    check_task(spec, task)
    summary = validate_fastmri_h5(input_path, check_values=False)
    path = os.fspath(input_path)
    _check_layout(spec, path, noncartesian=summary["layout"] == "noncartesian", multicoil=summary["multicoil"],
                  kspace_shape=summary["kspace_shape"], image_shape=summary["image_shape"], cli=cli)
    if need_reference and summary["reference"] is None:
        raise ValueError(f"{path}: has no reference image (reconstruction_rss or reconstruction_esc) to score against.")
    return summary


@dataclass
class ReconstructionPlan:
    """A file read and checked against a model, before the model is loaded: what ``run_plan`` reconstructs.

    Cartesian: ``kspace`` complex64 masked, ``mask`` (see ``Sampling``), ``num_low_frequencies`` (None: read
    from the column mask by the preprocessor), ``acceleration``, ``retrospective`` (undersampled here) and
    ``sampling``, one line saying what was done. Non-Cartesian: ``image_shape`` the grid.
    """

    spec: ModelSpec
    path: str
    volume: FastMRIVolume
    output: str | None = None
    png: str | None = None
    batch_size: int = 4
    kspace: np.ndarray | None = None
    mask: np.ndarray | None = None
    num_low_frequencies: int | None = None
    acceleration: float = float("nan")
    retrospective: bool = False
    mask_type: str | None = None
    sampling: str = ""
    image_shape: tuple[int, ...] | None = None

    @property
    def noncartesian(self) -> bool:
        return self.volume.noncartesian


def plan_reconstruction(spec: ModelSpec, input_path, output_path=None, png=None, *, acceleration=None,
                        mask_type=None, center_fraction=None, seed: int = 0, batch_size: int = 4, image_shape=None,
                        need_reference: bool = False, cli: bool = False, task: str = "reconstruction"
                        ) -> ReconstructionPlan:
    """Check everything about a reconstruction of ``input_path`` by a model of ``spec`` before the model is
    loaded, and prepare the k-space (see ``reconstruct_file`` for the arguments).

    Refused with a ValueError naming the file or option: a checkpoint of another task than ``task``
    (``"prior"``: the file is read for posterior sampling, ``posterior.files``), options out of range
    (``check_options``), an output or figure path that is an input file or a folder, a file that does
    not follow the layout (``data.h5``), a model of another kind, coil mode or dimension, a grid
    needing more memory than the machine has, a file sampling nothing or not its k-space centre,
    undersampling options for a file already undersampled. ``cli``: name options as the command does
    (``--acceleration``).
    """
    check_task(spec, task)
    check_options(acceleration=acceleration, center_fraction=center_fraction, mask_type=mask_type, seed=seed,
                  batch_size=batch_size, cli=cli)
    path = os.fspath(input_path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"input: no such file: {path!r}")
    if output_path is not None:
        output_path = check_output_path("--output" if cli else "output_path", output_path, {"input file": path})
    if png is not None:
        png = check_output_path("--png" if cli else "png", png, {"input file": path, "output file": output_path},
                                create_folder=True)  # the figure writer creates its folder
    if spec.kind == "cartesian" and image_shape is not None:
        raise ValueError(f"{_option('image_shape', cli)}: only for non-Cartesian models; {spec.name} is Cartesian "
                         "and reconstructs on the k-space grid.")
    volume = read_fastmri_h5(path, image_shape=image_shape)
    _check_layout(spec, path, noncartesian=volume.noncartesian, multicoil=volume.multicoil,
                  kspace_shape=volume.kspace.shape, image_shape=volume.image_shape, cli=cli)
    if need_reference and volume.reference is None:
        raise ValueError(f"{path}: has no reference image (reconstruction_rss or reconstruction_esc) to score against.")
    plan = ReconstructionPlan(spec, path, volume, output_path, png, int(batch_size))
    if volume.noncartesian:
        given = [_option(key, cli) for key, value in (("acceleration", acceleration), ("mask_type", mask_type),
                                                        ("center_fraction", center_fraction)) if value is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)}: retrospective Cartesian undersampling does not apply to the non-Cartesian "
                f"file {path}; its samples are reconstructed as acquired."
            )
        coils = volume.kspace.shape[1] if volume.multicoil else 1
        label = _option("image_shape", cli) if image_shape is not None else f"{path}: image_shape"
        check_memory(label, _noncartesian_memory(volume.image_shape, coils, volume.kspace.shape[-1]),
                     f"reconstructing on the grid {list(volume.image_shape)} ({coils} coil(s), "
                     f"{volume.kspace.shape[-1]} samples)")
        plan.image_shape = volume.image_shape
        plan.acceleration = float(volume.attrs.get("acceleration", float("nan")))
        return plan
    _plan_cartesian(plan, acceleration=acceleration, mask_type=mask_type, center_fraction=center_fraction,
                    seed=seed, cli=cli)
    if spec.ndim == 3:  # slabs: one column mask for every slice (``_reconstruct_slabs``), checked before loading
        if not _one_column_mask(_model_mask(plan.mask, plan.kspace.shape)):
            raise ValueError(
                f"{path}: {spec.name} reconstructs 3D slabs and takes one column mask shared by every slice "
                f"(a 3D acquisition's phase encodes); the file's sampling is {plan.sampling.removeprefix('sampling: ')}."
            )
    return plan


def one_acceleration(acquisition, acceleration=None) -> dict:
    """A recorded acquisition with one acceleration. A checkpoint trained on several (a list, with a list of
    centre fractions in the same order, e.g. [4, 8] and [0.08, 0.04]) is run at the ``acceleration`` asked
    for with its centre fraction when it is one of them, else at its first, the setting its name and card
    lead with (never at one drawn at random, as fastMRI's mask functions do with lists)."""
    acquisition = dict(acquisition)
    listed = acquisition.get("acceleration")
    if isinstance(listed, (list, tuple)):
        values = [float(value) for value in listed]
        index = values.index(float(acceleration)) if acceleration is not None and float(acceleration) in values else 0
        acquisition["acceleration"] = listed[index]
        if isinstance(acquisition.get("center_fraction"), (list, tuple)):
            acquisition["center_fraction"] = acquisition["center_fraction"][index]
    return acquisition


def _plan_cartesian(plan: ReconstructionPlan, *, acceleration, mask_type, center_fraction, seed, cli) -> None:
    """Sampling of a Cartesian file: the file's pattern as is, or fully sampled k-space undersampled here."""
    volume, path = plan.volume, plan.path
    kspace, source = volume.kspace, "the zeros of kspace"
    if volume.mask is not None:
        kspace = _apply_mask(kspace, volume.mask)
        source = f"the file's mask {tuple(volume.mask.shape)}"
    try:
        sampling = read_sampling(kspace)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if sampling.pattern == "full":
        recorded = one_acceleration(plan.spec.acquisition or {}, acceleration)
        given = acceleration is not None
        if acceleration is None:
            acceleration = recorded.get("acceleration")
        if acceleration is None:
            raise ValueError(
                f"{path}: the k-space is fully sampled and {plan.spec.name} records no acquisition; pass "
                f"{_option('acceleration', cli)} (and {_option('mask_type', cli)}, {_option('center_fraction', cli)}) "
                "to undersample it retrospectively."
            )
        mask_type = mask_type if mask_type is not None else recorded.get("mask_type", "equispaced_fraction")
        center_fraction = center_fraction if center_fraction is not None else recorded.get("center_fraction", 0.08)
        try:
            kspace, mask, num_low = undersample(kspace, mask_type, center_fraction, acceleration, seed)
        except ValueError as error:
            raise ValueError(
                f"retrospective undersampling of {path} ({mask_type} mask, acceleration {acceleration:g}, centre "
                f"fraction {center_fraction:g}): {error}"
            ) from None
        plan.kspace, plan.mask, plan.num_low_frequencies = kspace, mask, num_low
        plan.retrospective, plan.mask_type = True, mask_type
        plan.acceleration = float(1 / mask.mean())
        origin = "as given" if given else "the checkpoint's acquisition"
        plan.sampling = (f"sampling: {os.path.basename(path)} is fully sampled; undersampled retrospectively: "
                         f"{mask_type} mask, AF {plan.acceleration:.2f} ({num_low} centre columns, seed {seed}; "
                         f"{origin})")
        return
    given = [_option(key, cli) for key, value in (("acceleration", acceleration), ("mask_type", mask_type),
                                                    ("center_fraction", center_fraction)) if value is not None]
    if given:
        raise ValueError(
            f"{given[0]}: {path} is already undersampled ({sampling.describe()}, read from {source}); "
            "retrospective undersampling applies only to fully sampled files."
        )
    if _centre_width(sampling.mask) == 0:
        where = "column W // 2" if sampling.pattern == "columns" else "location (H // 2, W // 2)"
        raise ValueError(
            f"{path}: kspace: the centre of k-space ({where}) is not sampled ({sampling.describe()}, read from "
            f"{source}); expected a fully sampled centre (autocalibration lines) to normalise the input and "
            "estimate coil maps."
        )
    plan.kspace, plan.mask = kspace, sampling.mask
    plan.num_low_frequencies = _centre_width(sampling.mask) if sampling.pattern == "2D" else None
    plan.acceleration, plan.mask_type = sampling.acceleration, "from file"
    plan.sampling = f"sampling: {sampling.describe()} read from {source}; used as the mask, not undersampled again"


# ---------------------------------------------------------------------------- running a model


@contextlib.contextmanager
def _library_errors(source: str | None) -> Iterator[None]:
    """Re-raise raw TensorFlow / h5py / Keras errors as one-line ValueErrors naming ``source``."""
    try:
        yield
    except (ValueError, FileNotFoundError):
        raise
    except Exception as error:
        message = library_error_message(error, source)
        if message is None:
            raise
        raise ValueError(message) from None


def _preprocessor(model, kind):
    """The model's preprocessor (``data.preprocessing.preprocessor_for``), which must be of ``kind``."""
    from .data.preprocessing import preprocessor_for  # lazy: TensorFlow (see the note at the top)

    preprocessor = preprocessor_for(model)
    if not isinstance(preprocessor, kind):
        raise ValueError(
            f"preprocessor: {type(model).__name__} records a {preprocessor.kind} preprocessor, "
            f"expected a {kind.kind} one for these inputs."
        )
    return preprocessor


def _model_mask(mask, kspace_shape: tuple) -> np.ndarray:
    """A Cartesian mask as float32 (n, 1, W) or (n, H, W), n 1 or the number of slices; raises when it does
    not fit k-space of ``kspace_shape`` (slices, [coils,] H, W)."""
    mask = np.asarray(mask, np.float32)
    slices, height, width = kspace_shape[0], kspace_shape[-2], kspace_shape[-1]
    if mask.ndim == 1:
        mask = mask[None, None]
    elif mask.ndim == 2:
        mask = mask[None]
    allowed = {(1, 1, width), (slices, 1, width), (1, height, width), (slices, height, width)}
    if mask.ndim != 3 or mask.shape not in allowed:
        raise ValueError(
            f"mask: expected (W,), (1, W), (slices, 1, W), (H, W) or (slices, H, W) with W={width}, H={height}, "
            f"slices={slices} (kspace {tuple(kspace_shape)}), got shape {np.shape(mask)}."
        )
    return mask


def reconstruct_cartesian(model, kspace: np.ndarray, mask: np.ndarray, num_low_frequencies: int | None,
                          batch_size: int = 4, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude reconstructions (slices, H, W) of masked Cartesian k-space, in the file's units,
    and the zero-filled magnitudes (RSS over coils) computed on the way.

    kspace: complex64 (slices, H, W) or (slices, coils, H, W), already masked; mask float32 0 / 1:
    per column (1, W) or (slices, 1, W), or a 2D pattern (H, W) or (slices, H, W) (given to the
    network as (batch, H, W); the coil maps then come from ``num_low_frequencies`` centre columns);
    num_low_frequencies: the fully sampled centre columns (None: read from a column mask). The inputs
    are the model's ``CartesianPreprocessor``'s. A 3D model (``ndim=3``, single-coil) reconstructs the slices
    in slabs of the depth it was trained on (``_reconstruct_slabs``), with one column mask for every slice.
    Raw TensorFlow errors come back as one-line ValueErrors.
    """
    check_options(batch_size=batch_size)
    with _library_errors(None):
        return _reconstruct_cartesian(model, np.asarray(kspace), mask, num_low_frequencies, batch_size, progress)


def _reconstruct_cartesian(model, kspace, mask, num_low_frequencies, batch_size, progress):
    import tensorflow as tf  # lazy: TensorFlow (see the note at the top)

    from .data.preprocessing import CartesianPreprocessor  # lazy: TensorFlow (see the note at the top)

    preprocessor = _preprocessor(model, CartesianPreprocessor)
    multicoil = bool(model.multicoil)
    if kspace.ndim == 4 and not multicoil:
        raise ValueError(
            f"kspace: {type(model).__name__} is a single-coil model but the file holds {kspace.shape[1]} coils; "
            "use a multicoil model (fastmri-zoo list --coils multicoil) or combine the coils first."
        )
    if kspace.ndim == 3 and multicoil:
        raise ValueError(
            f"kspace: {type(model).__name__} is a multicoil model but the file holds single-coil k-space "
            "(slices, H, W); use a single-coil model."
        )
    if kspace.ndim not in (3, 4):
        raise ValueError(f"kspace: expected (slices, H, W) or (slices, coils, H, W), got shape {kspace.shape}.")
    _cartesian_mask(mask, kspace.shape, num_low_frequencies)  # checked before any slice is prepared
    preprocessor.check_model(model)
    if preprocessor.ndim == 3:
        return _reconstruct_slabs(model, preprocessor, kspace, mask, batch_size, progress)
    outputs, zero_filled_images = [], []
    starts = range(0, kspace.shape[0], batch_size)
    for start in tqdm(starts, desc="reconstruct", unit="batch", disable=not progress):
        inputs, scales, zero_filled = cartesian_batch(preprocessor, kspace, mask, num_low_frequencies,
                                                      start, start + batch_size)
        image = tf.abs(model(inputs)) * scales[:, None, None]
        outputs.append(image.numpy())
        zero_filled_images.append(zero_filled.numpy())
    return np.concatenate(outputs).astype(np.float32), np.concatenate(zero_filled_images).astype(np.float32)


def slab_starts(slices: int, depth: int) -> list[int]:
    """First slices of the slabs of ``depth`` that cover ``slices`` slices: every ``depth``-th, the last one
    moved back to end at the last slice (so it overlaps its neighbour) when ``depth`` does not divide
    ``slices``; one slab (zero slices after the file's) when the file is thinner than a slab."""
    starts = list(range(0, max(slices - depth, 0) + 1, depth))
    if starts[-1] + depth < slices:
        starts.append(slices - depth)
    return starts


def _one_column_mask(mask: np.ndarray) -> bool:
    """Whether a ``_model_mask`` layout is one column mask for every slice (what 3D slabs take)."""
    return mask.shape[1] == 1 and np.array_equal(mask, np.broadcast_to(mask[:1], mask.shape))


def _reconstruct_slabs(model, preprocessor, kspace, mask, batch_size, progress):
    """3D single-coil models (``CartesianPreprocessor(ndim=3)``): the file's slices (2D k-space each, one
    column mask shared by all) in slabs of the depth the model was trained on (``slab_starts``), each
    slab's 3D k-space the centred FFT of its slices' k-space along the slice axis; a slice covered by two
    slabs keeps the first slab's image."""
    import tensorflow as tf  # lazy: TensorFlow (see the note at the top)

    depth = preprocessor.depth
    if depth is None:
        raise ValueError(f"preprocessor: {type(model).__name__} is a 3D model whose preprocessor records no slab "
                         "depth (CartesianPreprocessor(ndim=3, depth=D)); expected the D it was trained on.")
    mask = _model_mask(mask, kspace.shape)
    if not _one_column_mask(mask):
        raise ValueError(
            f"mask: {type(model).__name__} reconstructs 3D slabs and takes one column mask shared by every slice "
            f"(1, W) (a 3D acquisition's phase encodes, fully sampled along the slices), got "
            + (f"{mask.shape[0]} different column masks (slices, 1, W)." if mask.shape[1] == 1 else
               f"a 2D pattern {mask.shape[1:]}.")
        )
    slices = kspace.shape[0]
    if slices < depth:  # zero slices after the file's: a slab of the trained depth
        kspace = np.concatenate([kspace, np.zeros((depth - slices,) + kspace.shape[1:], kspace.dtype)])
    starts = slab_starts(slices, depth)
    images = np.zeros((max(slices, depth),) + kspace.shape[1:], np.float32)
    zero_filled_images = np.zeros_like(images)
    done = np.zeros(len(images), bool)
    batches = [starts[i:i + batch_size] for i in range(0, len(starts), batch_size)]
    for batch_starts in tqdm(batches, desc="reconstruct", unit="batch", disable=not progress):
        slabs = np.stack([kspace[start:start + depth] for start in batch_starts])
        slabs = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(slabs, axes=1), axis=1, norm="ortho"), axes=1)
        inputs, scales, zero_filled = preprocessor(tf.constant(slabs, tf.complex64), mask[0])
        image = (tf.abs(model(inputs)) * scales[:, None, None, None]).numpy()
        for start, slab_image, slab_zero_filled in zip(batch_starts, image, zero_filled.numpy()):
            new = ~done[start:start + depth]
            images[start:start + depth][new] = slab_image[new]
            zero_filled_images[start:start + depth][new] = slab_zero_filled[new]
            done[start:start + depth] = True
    return images[:slices], zero_filled_images[:slices]


def _cartesian_mask(mask, kspace_shape: tuple, num_low_frequencies: int | None) -> tuple[np.ndarray, int | None]:
    """(the mask as ``_model_mask`` lays it out, the centre columns of a 2D pattern read from it when not given)."""
    mask = _model_mask(mask, kspace_shape)
    if mask.shape[1] != 1 and num_low_frequencies is None:
        num_low_frequencies = _centre_width(mask)
        if num_low_frequencies == 0:
            raise ValueError("mask: the centre of k-space (H // 2, W // 2) is not sampled; expected a fully "
                             "sampled centre to normalise the input and estimate coil maps.")
    return mask, num_low_frequencies


def cartesian_batch(preprocessor, kspace: np.ndarray, mask: np.ndarray, num_low_frequencies: int | None,
                    start: int, stop: int):
    """The preprocessed slices ``start:stop`` of masked Cartesian k-space: ``(inputs, scales, zero-filled)``
    of ``preprocessor`` (a ``data.preprocessing.CartesianPreprocessor``).

    kspace: complex64 (slices, [coils,] H, W), masked; mask: float32 (n, 1, W) per column or (n, H, W) a 2D
    pattern, n 1 or the number of slices (any layout ``_model_mask`` takes); num_low_frequencies: the fully
    sampled centre columns (None: read from the mask). The inputs' ``mask`` is (batch, 1, W) per column,
    (batch, H, W) for a 2D pattern; the zero-filled magnitudes float32 (batch, H, W) are in the units of ``kspace``.
    """
    import tensorflow as tf  # lazy: TensorFlow (see the note at the top)

    mask, num_low_frequencies = _cartesian_mask(mask, kspace.shape, num_low_frequencies)
    batch = kspace[start:stop]
    batch_mask = mask if mask.shape[0] == 1 else mask[start:stop]
    if batch_mask.shape[1] == 1:
        # a shared column mask goes in as (1, W), as it always has
        column_mask = batch_mask[0] if batch_mask.shape[0] == 1 else batch_mask
        return preprocessor(tf.constant(batch, tf.complex64), column_mask, num_low_frequencies)
    # The preprocessor masks by columns: the k-space is masked here and the network gets the 2D pattern.
    masked = batch * (batch_mask[:, None] if batch.ndim == 4 else batch_mask)
    inputs, scales, zero_filled = preprocessor(tf.constant(masked, tf.complex64),
                                               np.ones((1, batch.shape[-1]), np.float32), num_low_frequencies)
    inputs = dict(inputs, mask=tf.broadcast_to(tf.constant(batch_mask), (batch.shape[0],) + batch.shape[-2:]))
    return inputs, scales, zero_filled


def takes_physical_units(model) -> bool:
    """Whether ``model`` takes k-space as acquired (its preprocessor does not normalise: e.g. the
    authors' converted checkpoints, ``input_units == "physical"``, which apply their own scale)
    rather than normalised by the maximum of the zero-filled / adjoint + DCp magnitude like the
    zoo's checkpoints."""
    from .data.preprocessing import preprocessor_for  # lazy: TensorFlow (see the note at the top)

    return not preprocessor_for(model).normalize


def is_noncartesian(model) -> bool:
    """Whether ``model`` takes non-Cartesian inputs (its required inputs include ``traj``)."""
    from .data.preprocessing import takes_trajectory  # lazy: TensorFlow (see the note at the top)

    return takes_trajectory(model)


def noncartesian_inputs(kspace, traj, image_shape, dcomp, normalize: bool = True, preprocessor=None
                        ) -> tuple[dict[str, Any], float, np.ndarray]:
    """Model inputs for one slice (volume in 3D), prepared as ``data.pipelines.noncartesian_dataset`` does
    (by ``preprocessor``, a ``data.preprocessing.NonCartesianPreprocessor``; default: the pipelines' one
    with ``normalize``), with a batch axis of 1.

    kspace: complex64 (coils, nsamples) multicoil or (nsamples,) single-coil, in the units of the
    file; traj: float32 (ndim, nsamples), radians per pixel; image_shape: (H, W) or (D, H, W);
    dcomp: float32 (nsamples,). The scale is the maximum of the density-compensated adjoint
    (RSS over coils); k-space is divided by it (``normalize=False``: the scale is 1, for models
    taking physical units, see ``takes_physical_units``). Multicoil coil maps: the low-resolution
    density-compensated adjoint of the samples with |k| < ``smaps_center_radius`` (0.1 pi, as in
    training), each coil divided by the RSS.

    Returns (inputs, scale, adjoint): inputs {"kspace": complex64 (1, [coils,] nsamples),
    "traj": float32 (1, ndim, nsamples), "dcomp": float32 (1, nsamples), "smaps": complex64
    (1, coils, *image_shape) (multicoil)}, the scale (float) and the adjoint + density
    compensation image complex64 (*image_shape) in the units of the file (coils combined with
    the conjugate coil maps).
    """
    with _library_errors(None):
        return _noncartesian_inputs(kspace, traj, image_shape, dcomp, normalize, preprocessor)


def _noncartesian_inputs(kspace, traj, image_shape, dcomp, normalize=True, preprocessor=None):
    from .data.preprocessing import NonCartesianPreprocessor  # lazy: TensorFlow (see the note at the top)

    image_shape = tuple(int(n) for n in image_shape)
    if preprocessor is None:
        preprocessor = NonCartesianPreprocessor(multicoil=np.ndim(kspace) == 2, ndim=len(image_shape),
                                                image_shape=image_shape, normalize=normalize)
    inputs, scale, adjoint = preprocessor(kspace, traj, dcomp, image_shape)
    return {key: value[None] for key, value in inputs.items()}, float(scale), adjoint.numpy()


def _per_slice(array, num_slices: int, per_slice_rank: int):
    """Index function for a dataset stored once (rank ``per_slice_rank``) or per slice."""
    if array is None:
        return lambda index: None
    array = np.asarray(array)
    if array.ndim == per_slice_rank:
        return lambda index: array
    return lambda index: array[index]


def reconstruct_noncartesian(model, kspace: np.ndarray, traj: np.ndarray, image_shape, dcomp=None,
                             progress: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Network and adjoint + density compensation magnitudes of non-Cartesian k-space, in the file's units.

    kspace: complex64 (slices, coils, nsamples) or (slices, nsamples) (in 3D one "slice" is a
    volume); traj: float32 (ndim, nsamples) shared or (slices, ndim, nsamples), radians per pixel;
    image_shape: (H, W) or (D, H, W); dcomp: float32 (nsamples,), (slices, nsamples) or None
    (Pipe-Menon weights, ``physics.pipe_menon_density`` with its defaults, computed once per
    distinct trajectory). Given weights are rescaled as every density of the package is
    (``physics.normalize_density``: A^H D A maps a constant image to itself at the centre), so
    their overall scale does not matter; they must be >= 0 and not all zero. model: a non-Cartesian
    zoo model, or None for the adjoint only. The inputs, scale and weights are the model's
    ``NonCartesianPreprocessor``'s (the pipelines' defaults when ``model`` is None) on the grid
    ``image_shape``: a single-coil model is told that grid (``inputs["image_shape"]``), whatever size
    it was trained on. Raw TensorFlow errors come back as one-line ValueErrors.

    Returns (network float32 (slices, *image_shape) or None, adjoint + DCp float32
    (slices, *image_shape), dcomp float32 (nsamples,) or (slices, nsamples) as used).
    """
    with _library_errors(None):
        return _reconstruct_noncartesian(model, kspace, traj, image_shape, dcomp, progress)


def _reconstruct_noncartesian(model, kspace, traj, image_shape, dcomp=None, progress=True):
    import tensorflow as tf  # lazy: TensorFlow (see the note at the top)

    from .data.preprocessing import NonCartesianPreprocessor  # lazy: TensorFlow (see the note at the top)

    kspace = np.asarray(kspace)
    if kspace.ndim not in (2, 3):
        raise ValueError(
            f"kspace: expected (slices, nsamples) or (slices, coils, nsamples) non-Cartesian k-space, "
            f"got shape {kspace.shape}."
        )
    if 0 in kspace.shape:
        raise ValueError(f"kspace: holds no slices, coils or samples (shape {kspace.shape}).")
    image_shape = tuple(int(n) for n in image_shape)
    num_slices = kspace.shape[0]
    traj = np.asarray(traj, np.float32)
    if traj.ndim not in (2, 3) or traj.shape[-2] != len(image_shape) or traj.shape[-1] != kspace.shape[-1] or (
            traj.ndim == 3 and traj.shape[0] != num_slices):
        raise ValueError(
            f"traj: expected ({len(image_shape)}, {kspace.shape[-1]}) or ({num_slices}, {len(image_shape)}, "
            f"{kspace.shape[-1]}) (ndim of image_shape {image_shape}, samples of kspace), got shape {traj.shape}."
        )
    multicoil = kspace.ndim == 3
    if model is None:
        preprocessor = NonCartesianPreprocessor(multicoil=multicoil, ndim=len(image_shape))
    else:
        preprocessor = _preprocessor(model, NonCartesianPreprocessor)
    if dcomp is not None:
        dcomp = np.asarray(dcomp, np.float32)
        if dcomp.shape not in ((kspace.shape[-1],), (num_slices, kspace.shape[-1])):
            raise ValueError(
                f"dcomp: expected shape ({kspace.shape[-1]},) or ({num_slices}, {kspace.shape[-1]}), got {dcomp.shape}."
            )
        problem = dcomp_problem(dcomp)
        if problem:
            raise ValueError(problem)
    # Pipe-Menon weights, or given weights of any scale brought to the one the networks were trained
    # with: once for a shared trajectory and weights, else slice by slice.
    traj_of, dcomp_of = _per_slice(traj, num_slices, 2), _per_slice(dcomp, num_slices, 1)
    if traj.ndim == 2 and (dcomp is None or dcomp.ndim == 1):
        dcomp = preprocessor.density(traj, dcomp, image_shape).numpy()
    else:
        dcomp = np.stack([preprocessor.density(traj_of(i), dcomp_of(i), image_shape).numpy()
                          for i in range(num_slices)])
    dcomp_of = _per_slice(dcomp, num_slices, 1)
    network, adjoint = [], []
    for index in tqdm(range(num_slices), desc="reconstruct", unit="slice", disable=not progress):
        inputs, scale, image = _noncartesian_inputs(kspace[index], traj_of(index), image_shape, dcomp_of(index),
                                                    preprocessor=preprocessor)
        adjoint.append(np.abs(image))
        if model is not None:
            if not multicoil:
                inputs["image_shape"] = image_shape
            output = model(inputs)
            network.append(np.abs(tf.convert_to_tensor(output).numpy()[0]) * scale)
    network_images = np.stack(network).astype(np.float32) if model is not None else None
    return network_images, np.stack(adjoint).astype(np.float32), dcomp


@dataclass
class FileReconstruction:
    """What ``reconstruct_file`` produced: images in the file's units, cropped to the reference size.

    ``zero_filled`` holds the baseline named by ``baseline``: the zero-filled inverse FFT for
    Cartesian files, the adjoint + density compensation for non-Cartesian ones. ``acceleration``
    is NaN when a non-Cartesian file does not record it. ``sampling``: one line saying how a
    Cartesian file's sampling was read and used (``ReconstructionPlan.sampling``).
    """

    reconstruction: np.ndarray
    zero_filled: np.ndarray
    reference: np.ndarray | None
    acceleration: float
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    baseline: str = "zero-filled"
    noncartesian: bool = False
    sampling: str = ""


def _middle_image(images: np.ndarray) -> np.ndarray:
    """The middle slice of (slices, H, W), or the middle partition of the middle volume of (slices, D, H, W)."""
    image = images[images.shape[0] // 2]
    return image[image.shape[0] // 2] if image.ndim == 3 else image


def _run_noncartesian(model, plan: ReconstructionPlan, progress, model_name):
    from . import metrics as zoo_metrics  # lazy: TensorFlow (see the note at the top)

    volume, image_shape, input_path = plan.volume, plan.image_shape, plan.path
    from .data.preprocessing import NonCartesianPreprocessor  # lazy: TensorFlow (see the note at the top)

    trained_on = _preprocessor(model, NonCartesianPreprocessor).image_shape
    network, adjoint, _ = _reconstruct_noncartesian(model, volume.kspace, volume.trajectory, image_shape,
                                                    dcomp=volume.dcomp, progress=progress)
    reference = volume.reference
    if reference is not None:
        if any(r > n for r, n in zip(reference.shape[1:], image_shape)):
            raise ValueError(
                f"{volume.reference_key}: the reference {reference.shape[1:]} is larger than the image grid "
                f"{list(image_shape)}; reconstruct on a grid at least as large (--image-shape)."
            )
        network = np.asarray(center_crop(network, reference.shape[1:]))
        adjoint = np.asarray(center_crop(adjoint, reference.shape[1:]))
    acceleration = plan.acceleration
    baseline = "adjoint + DCp"
    result = FileReconstruction(network, adjoint, reference, acceleration, baseline=baseline, noncartesian=True)
    label = model_name or type(model).__name__
    source = os.path.basename(input_path)
    if reference is not None:
        flat = (-1,) + reference.shape[-2:]  # 3D volumes are scored slice by slice, as one volume
        result.metrics = {
            "network": zoo_metrics.evaluate_volume(reference.reshape(flat), network.reshape(flat)),
            baseline: zoo_metrics.evaluate_volume(reference.reshape(flat), adjoint.reshape(flat)),
        }
    result.attrs = {
        "model": label,
        "source": source,
        "trajectory": "non-Cartesian",
        "image_shape": np.asarray(image_shape, np.int64),
        "density_compensation": "from file" if volume.dcomp is not None else "Pipe-Menon",
    }
    if trained_on is not None and tuple(trained_on) != tuple(image_shape):
        # Explicit, never a silent fall-back to the size the model was built for.
        result.attrs["model_image_shape"] = np.asarray(trained_on, np.int64)
        result.attrs["note"] = (f"{label} was trained on the grid {list(trained_on)}; reconstructed on the "
                                f"file's grid {list(image_shape)}")
    if reference is None:
        result.attrs["metrics"] = "none (the input has no fully sampled reference)"
    if np.isfinite(acceleration):
        result.attrs["acceleration"] = acceleration
    if plan.output is not None:
        write_reconstruction_h5(plan.output, network, attrs=result.attrs)
    if plan.png is not None:
        from .viz import save_comparison_png  # lazy: matplotlib is loaded only when a figure is asked for

        middle = network.shape[0] // 2
        af = f", AF {acceleration:.2f}" if np.isfinite(acceleration) else ""
        note = "" if reference is not None else "; no reference, no metrics"
        save_comparison_png(
            plan.png,
            {baseline: _middle_image(adjoint), label: _middle_image(network)},
            reference=None if reference is None else _middle_image(reference),
            metrics={label: result.metrics["network"], baseline: result.metrics[baseline]} if result.metrics else None,
            title=f"{source}, slice {middle}{af}{note}",
        )
    return result


def _run_cartesian(model, plan: ReconstructionPlan, progress, model_name):
    from . import metrics as zoo_metrics  # lazy: TensorFlow (see the note at the top)

    image, zero_filled = _reconstruct_cartesian(model, plan.kspace, plan.mask, plan.num_low_frequencies,
                                                plan.batch_size, progress)
    reference = plan.volume.reference
    if reference is not None:
        image = np.asarray(center_crop(image, reference.shape[-2:]))
        zero_filled = np.asarray(center_crop(zero_filled, reference.shape[-2:]))
    result = FileReconstruction(image, zero_filled, reference, plan.acceleration, sampling=plan.sampling)
    if reference is not None:
        result.metrics = {"network": zoo_metrics.evaluate_volume(reference, image),
                          "zero-filled": zoo_metrics.evaluate_volume(reference, zero_filled)}
    label = model_name or type(model).__name__
    result.attrs = {
        "model": label,
        "acceleration": result.acceleration,
        "mask_type": plan.mask_type or "from file",
        "source": os.path.basename(plan.path),
        "retrospective": plan.retrospective,
        "sampling": plan.sampling.removeprefix("sampling: "),
    }
    if plan.output is not None:
        write_reconstruction_h5(plan.output, image, attrs=result.attrs)
    if plan.png is not None:
        from .viz import save_comparison_png  # lazy: matplotlib is loaded only when a figure is asked for

        middle = image.shape[0] // 2
        save_comparison_png(
            plan.png,
            {label: image[middle], "zero-filled": zero_filled[middle]},
            reference=None if reference is None else reference[middle],
            metrics={label: result.metrics["network"], "zero-filled": result.metrics["zero-filled"]} if result.metrics else None,
            title=f"{os.path.basename(plan.path)}, slice {middle}, AF {result.acceleration:.1f}",
        )
    return result


def run_plan(model, plan: ReconstructionPlan, *, progress: bool = True, model_name: str | None = None
             ) -> FileReconstruction:
    """Run ``model`` on a planned file (``plan_reconstruction``) and write the outputs it names.

    The model is checked against the plan first (its spec may be more precise than the one read from
    the preset folder); raw TensorFlow / h5py errors come back as one-line ValueErrors naming the file.
    """
    spec = model_spec(model, model_name or plan.spec.name)
    check_task(spec)
    volume = plan.volume
    _check_layout(spec, plan.path, noncartesian=volume.noncartesian, multicoil=volume.multicoil,
                  kspace_shape=volume.kspace.shape, image_shape=volume.image_shape, cli=False)
    with _library_errors(plan.path):
        if plan.noncartesian:
            return _run_noncartesian(model, plan, progress, model_name)
        return _run_cartesian(model, plan, progress, model_name)


def reconstruct_file(model, input_path, output_path=None, png=None, *, acceleration=None, mask_type=None,
                     center_fraction=None, seed: int = 0, batch_size: int = 4, progress: bool = True,
                     model_name: str | None = None, image_shape=None) -> FileReconstruction:
    """Reconstruct every slice of a fastMRI-layout file and write ``reconstruction`` (fastMRI layout).

    Cartesian files: where k-space was sampled is read from the data (``read_sampling``: its non-zero
    entries per location, after the file's ``mask`` when it has one). An undersampled file (a column
    mask or a 2D pattern) is used as is, its pattern given to the network; giving ``acceleration``,
    ``mask_type`` or ``center_fraction`` for it is an error. A fully sampled file is undersampled
    retrospectively: by ``acceleration`` / ``mask_type`` / ``center_fraction`` when given, else by the
    acquisition recorded in the model's preset. ``result.sampling`` says which. ``png``: a figure of the
    middle slice (reconstruction, zero-filled and, when the file holds a reference, the reference and
    error maps).

    Non-Cartesian files (``trajectory`` dataset; the model must be non-Cartesian): the raw
    samples are reconstructed as acquired (see ``reconstruct_noncartesian``) on the file's
    ``image_shape`` grid, or on ``image_shape`` when given; ``png`` shows adjoint + density
    compensation beside the network. No metric is computed (such files have no reference).
    ``batch_size`` applies to Cartesian files only (non-Cartesian slices go one at a time).

    Everything is checked before the network runs (``plan_reconstruction``): an ``output_path`` or
    ``png`` that is the input file is refused, never overwritten.
    """
    plan = plan_reconstruction(model_spec(model, model_name), input_path, output_path, png, acceleration=acceleration,
                               mask_type=mask_type, center_fraction=center_fraction, seed=seed, batch_size=batch_size,
                               image_shape=image_shape)
    return run_plan(model, plan, progress=progress, model_name=model_name)
