"""The named checkpoints of the zoo and where each one lives.

Every checkpoint has a task (:data:`TASKS`): ``"reconstruction"`` (k-space in, image out; the
default), ``"denoising"`` ((image, sigma) in, image out) or ``"prior"`` (a score network for
``posterior.sample_posterior``). A reconstruction checkpoint is named
``{architecture}[-{variant}]-{trajectory}-{coils}[-af{N}][-{dataset}]`` (e.g.
``ncpdnet-radial-multicoil``, ``pdnet-cartesian-singlecoil-af4``,
``unet-adjdcomp-radial-multicoil``); a denoiser or a prior, which is tied to no acquisition,
``{architecture}[-{variant}]-{task}[-{dataset}]`` (e.g. ``score-prior-ixi``,
``learnlet-denoising-ixi``). Each name maps to a frozen :class:`CheckpointEntry` giving its
task, format, the Keras class it loads as, the preset folder bundled under the repository's
``weights/`` (``fastmri_zoo/_weights`` in an installed wheel) and its Hugging Face Hub location
(repo id, file name, pinned revision, sha256 of the weights).

Names come from one description per checkpoint, read when the registry is first asked
(nothing registers itself at import), one source per checkpoint format:

- ``"preset"``: every folder of :func:`weights_dirs` holding a ``recipe.json`` with a
  ``card`` block (task, architecture, variant, trajectory, coils, acceleration, dataset,
  description; optional ``hub_repo`` / ``hub_filename`` / ``hub_revision``) beside its
  ``metadata.json`` (sha256 of the weights, class name): :func:`preset_entry`;
- ``"keras2"``: the authors' published Keras-2 files, converted on load
  (:data:`fastmri_zoo.legacy.checkpoints.LEGACY_CHECKPOINTS`): :func:`keras2_entry`.

:func:`register` adds further entries explicitly (e.g. a user's own checkpoints).
This module reads JSON files only: listing names and model cards never imports
TensorFlow.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .hub import CARD_FILE, CONFIG_FILE, METADATA_FILE, RECIPE_FILE, WEIGHTS_FILE, cached_file
from .legacy.checkpoints import LEGACY_CHECKPOINTS, LegacyCheckpoint

__all__ = [
    "CheckpointEntry",
    "TASKS",
    "COILS",
    "FORMATS",
    "RECIPE_FILE",
    "ENTRY_FIELDS",
    "preset_entry",
    "keras2_entry",
    "builtin_entries",
    "preset_names",
    "register",
    "unregister",
    "get_entry",
    "list_entries",
    "list_models",
    "info",
    "weights_dirs",
    "packaged_weights_root",
    "bundled_folder",
    "unknown_name_error",
]

#: What a checkpoint is for: reconstruction networks, denoisers of (image, sigma), priors (score networks).
TASKS = ("reconstruction", "denoising", "prior")
COILS = ("singlecoil", "multicoil", "3d")
#: Checkpoint formats, each with its own loader (``fastmri_zoo.presets.LOADERS``): zoo preset
#: folders, and the authors' Keras-2 files converted by :mod:`fastmri_zoo.legacy`.
FORMATS = ("preset", "keras2")
#: The fields of a recipe.json card block the registry reads: the name's parts, the description
#: and, once pushed, the Hub location (other card fields are the model card's, see presets.CARD_FIELDS).
ENTRY_FIELDS = ("task", "architecture", "variant", "trajectory", "coils", "acceleration", "dataset", "description",
                "hub_repo", "hub_filename", "hub_revision")
#: Keras registered name of what a "keras2" checkpoint loads as.
KERAS2_CLASS_NAME = "fastmri_zoo>LegacyReconstruction"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

#: Environment variable naming an extra folder searched first for bundled presets.
WEIGHTS_DIR_ENV = "FASTMRI_ZOO_WEIGHTS_DIR"
#: The bundled presets: the repository's top-level folder (their one source, read in place by
#: editable checkouts) and its copy inside a built wheel's package (setup.py writes it).
REPOSITORY_WEIGHTS = "weights"
PACKAGED_WEIGHTS = "_weights"


@dataclass(frozen=True)
class CheckpointEntry:
    """One named checkpoint.

    ``task`` (:data:`TASKS`): a reconstruction checkpoint gives its ``trajectory`` and ``coils``
    (and ``acceleration`` when trained at one); a denoiser or a prior gives none of the three
    (it is tied to no acquisition). ``name`` is derived from the other fields when left empty;
    when given it must equal that derived name. ``bundled`` is a folder name under
    ``weights/``; ``hub_filename`` is the weights file's path inside
    ``hub_repo`` (its folder holds the rest of the preset: config.json,
    metadata.json, README.md); ``hub_revision`` is a 40-hex commit so a
    cached download is reused without a request. ``builder`` (optional) returns
    the untrained architecture when no preset folder can be reached, for
    ``load(name, pretrained=False)``. ``loader`` (optional) loads checkpoints
    that are not zoo preset folders (the authors' Keras-2 files, converted on
    load by :mod:`fastmri_zoo.legacy`, or a user's own format):
    ``loader(pretrained=..., revision=..., endpoint=..., cache_dir=..., token=...)``.
    An entry with a loader or of a format other than "preset" brings its own
    integrity checks, so its Hub revision and sha256 may be unknown.
    """

    architecture: str
    trajectory: str | None = None
    coils: str | None = None
    acceleration: int | None = None
    dataset: str | None = None
    #: what the architecture is applied to, when it is not the raw acquisition (e.g. "adjdcomp":
    #: a U-net on the density-compensated adjoint); it follows the architecture in the name
    variant: str | None = None
    name: str = ""
    description: str = ""
    bundled: str | None = None
    hub_repo: str | None = None
    hub_filename: str = "model.weights.h5"
    hub_revision: str | None = None
    sha256: str | None = None
    pretrained: bool = False
    format: str = "preset"
    class_name: str | None = None
    task: str = "reconstruction"
    builder: Callable[[], Any] | None = field(default=None, compare=False, repr=False)
    loader: Callable[..., Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task: expected one of {TASKS}, got {self.task!r}.")
        reconstruction = self.task == "reconstruction"
        for attribute in ("architecture", "trajectory") if reconstruction else ("architecture",):
            value = getattr(self, attribute)
            if not isinstance(value, str) or not _SLUG.match(value):
                raise ValueError(
                    f"{attribute}: expected a lowercase name of letters, digits and '_' "
                    f"(no '-', it separates the parts of a checkpoint name), got {value!r}."
                )
        if reconstruction and self.coils not in COILS:
            raise ValueError(f"coils: expected one of {COILS}, got {self.coils!r}.")
        if not reconstruction:
            given = [key for key in ("trajectory", "coils", "acceleration") if getattr(self, key) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: a {self.task} checkpoint is tied to no acquisition; leave out trajectory, "
                    f"coils and acceleration (its name is architecture[-variant]-{self.task}[-dataset])."
                )
        if self.format not in FORMATS:
            raise ValueError(f"format: expected one of {FORMATS}, got {self.format!r}.")
        if self.acceleration is not None and (
            isinstance(self.acceleration, bool) or not isinstance(self.acceleration, int) or self.acceleration < 1
        ):
            raise ValueError(f"acceleration: expected a positive int or None, got {self.acceleration!r}.")
        for attribute in ("dataset", "variant"):
            value = getattr(self, attribute)
            if value is not None and not _SLUG.match(value):
                raise ValueError(
                    f"{attribute}: expected a lowercase name of letters, digits and '_', got {value!r}."
                )
        expected = self.expected_name()
        if not self.name:
            object.__setattr__(self, "name", expected)
        elif self.name != expected:
            pattern = ("architecture[-variant]-trajectory-coils[-afN][-dataset]" if self.task == "reconstruction"
                       else "architecture[-variant]-task[-dataset]")
            raise ValueError(f"name: expected {expected!r} ({pattern}), got {self.name!r}.")
        if self.hub_repo is not None:
            if not _REPO_ID.match(self.hub_repo):
                raise ValueError(f"hub_repo: expected 'owner/name', got {self.hub_repo!r}.")
            unpinned_allowed = self.converts_on_load and self.hub_revision is None
            if not unpinned_allowed and (self.hub_revision is None or not _COMMIT.match(self.hub_revision)):
                raise ValueError(
                    f"hub_revision: {self.name} must pin its Hub revision to a 40-hex commit id, "
                    f"got {self.hub_revision!r}."
                )
        if self.hub_filename.startswith("/") or (
            not self.converts_on_load and not self.hub_filename.endswith(".weights.h5")
        ):
            raise ValueError(
                f"hub_filename: expected a relative path ending in '.weights.h5', got {self.hub_filename!r}."
            )
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise ValueError(f"sha256: expected 64 lowercase hex digits, got {self.sha256!r}.")
        if self.pretrained:
            if self.sha256 is None and not self.converts_on_load:
                raise ValueError(f"sha256: the pretrained checkpoint {self.name} needs the sha256 of its weights.")
            if self.bundled is None and self.hub_repo is None:
                raise ValueError(
                    f"bundled, hub_repo: the pretrained checkpoint {self.name} needs a bundled folder or a Hub repo."
                )

    def expected_name(self) -> str:
        """``{architecture}[-{variant}]-{trajectory}-{coils}[-af{N}][-{dataset}]`` (reconstruction),
        ``{architecture}[-{variant}]-{task}[-{dataset}]`` (denoising, prior)."""
        acquisition = [self.trajectory, self.coils] if self.task == "reconstruction" else [self.task]
        parts = [self.architecture] + ([self.variant] if self.variant else []) + acquisition
        if self.acceleration is not None:
            parts.append(f"af{self.acceleration}")
        if self.dataset is not None:
            parts.append(self.dataset)
        return "-".join(parts)

    @property
    def converts_on_load(self) -> bool:
        """True when the checkpoint is not a zoo preset folder (its loader checks and converts its own files)."""
        return self.loader is not None or self.format != "preset"

    @property
    def hub_subfolder(self) -> str:
        """Folder of the preset inside ``hub_repo`` ('' for the repository root)."""
        return self.hub_filename.rpartition("/")[0]


# ---------------------------------------------------------------------------- the sources, one per format


def _read_json_object(path: Path) -> dict:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error}).") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(content).__name__}.")
    return content


def preset_entry(folder: str | os.PathLike) -> CheckpointEntry | None:
    """The entry described by a preset folder's ``recipe.json`` (block ``card``) and ``metadata.json``.

    None when the folder has no recipe.json or the recipe has no card (it names
    no checkpoint). The card gives the name's parts and the description; the
    metadata gives the weights' sha256 and the class name (without metadata,
    the recipe's ``model.class``, and the checkpoint is not pretrained). A
    recipe's ``name``, when given, must equal the name the card spells.
    """
    folder = Path(folder)
    recipe_path = folder / RECIPE_FILE
    if not recipe_path.is_file():
        return None
    recipe = _read_json_object(recipe_path)
    card = recipe.get("card")
    if card is None:
        return None
    if not isinstance(card, dict):
        raise ValueError(f"{recipe_path}: 'card' must be an object, got {type(card).__name__}.")
    metadata_path = folder / METADATA_FILE
    metadata = _read_json_object(metadata_path) if metadata_path.is_file() else {}
    class_name = metadata.get("class_name")
    if class_name is None:
        model_class = (recipe.get("model") or {}).get("class")
        class_name = model_class if model_class is None or ">" in model_class else f"fastmri_zoo>{model_class}"
    sha256 = metadata.get("weights_sha256")
    fields = {key: card[key] for key in ENTRY_FIELDS if card.get(key) is not None}
    recorded_task = metadata.get("task", "reconstruction")
    if metadata and fields.get("task", "reconstruction") != recorded_task:
        raise ValueError(
            f"{recipe_path}: the card's task {fields.get('task', 'reconstruction')!r} differs from the task of the "
            f"weights in {METADATA_FILE}, {recorded_task!r}."
        )
    try:
        entry = CheckpointEntry(
            **fields, bundled=folder.name, sha256=sha256,
            pretrained=sha256 is not None and (folder / WEIGHTS_FILE).is_file(), format="preset",
            class_name=class_name,
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"{recipe_path}: the card does not describe a checkpoint: {error}") from None
    if recipe.get("name") not in (None, entry.name):
        raise ValueError(f"{recipe_path}: name {recipe['name']!r} differs from the name its card spells, {entry.name!r}.")
    return entry


def keras2_entry(checkpoint: LegacyCheckpoint) -> CheckpointEntry:
    """The entry of one of the authors' Keras-2 checkpoints (format "keras2", converted on load)."""
    return CheckpointEntry(
        architecture=checkpoint.architecture, trajectory=checkpoint.trajectory, coils=checkpoint.coils,
        acceleration=checkpoint.acceleration, dataset=checkpoint.dataset, description=checkpoint.card(),
        hub_repo=checkpoint.hub_repo, hub_filename=checkpoint.hub_filename, pretrained=True,
        format="keras2", class_name=KERAS2_CLASS_NAME,
    )


def _preset_folders(roots: Iterable[Path]) -> list[Path]:
    return [folder for root in roots if root.is_dir() for folder in sorted(root.iterdir()) if folder.is_dir()]


def _state(folder: Path) -> tuple:
    """What an entry read from ``folder`` depends on: the modification times of its description and weights."""
    times = []
    for filename in (RECIPE_FILE, METADATA_FILE, WEIGHTS_FILE):
        try:
            times.append((folder / filename).stat().st_mtime_ns)
        except OSError:
            times.append(None)
    return (folder, *times)


_BUILTIN: dict[tuple, dict[str, CheckpointEntry]] = {}


def builtin_entries() -> dict[str, CheckpointEntry]:
    """The entries of every format's source: the Keras-2 table, then the preset folders of :func:`weights_dirs`.

    A preset folder takes precedence over a Keras-2 checkpoint of the same name,
    and the first folder of :func:`weights_dirs` over later ones (as for loading).
    The small JSON files are read again only when a folder or one of its files changes.
    """
    folders = _preset_folders(weights_dirs())
    key = tuple(_state(folder) for folder in folders)
    if key not in _BUILTIN:
        entries = {entry.name: entry for entry in map(keras2_entry, LEGACY_CHECKPOINTS)}
        presets: dict[str, CheckpointEntry] = {}
        for folder in folders:
            entry = preset_entry(folder)
            if entry is not None:
                presets.setdefault(entry.name, entry)
        entries.update(presets)
        _BUILTIN.clear()  # one state is kept: the folders as they are now
        _BUILTIN[key] = entries
    return _BUILTIN[key]


#: Entries added with :func:`register` (they take precedence over the built-in ones).
_REGISTERED: dict[str, CheckpointEntry] = {}


def _all_entries() -> dict[str, CheckpointEntry]:
    return {**builtin_entries(), **_REGISTERED}


# ---------------------------------------------------------------------------- queries


def register(entry: CheckpointEntry, *, replace: bool = False) -> CheckpointEntry:
    """Add ``entry`` to the registry explicitly (re-registering an identical entry is a no-op).

    For checkpoints that have no preset folder with a recipe.json in :func:`weights_dirs`
    (e.g. a user's own entries, or a loader of another format).
    """
    if not isinstance(entry, CheckpointEntry):
        raise ValueError(f"entry: expected a CheckpointEntry, got {type(entry).__name__}.")
    existing = _all_entries().get(entry.name)
    if existing is not None and existing != entry and not replace:
        raise ValueError(
            f"entry: a different checkpoint is already registered as {entry.name!r}; pass replace=True to replace it."
        )
    _REGISTERED[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove an entry added with :func:`register` (no error if absent; built-in entries stay)."""
    _REGISTERED.pop(name, None)


def unknown_name_error(name: str) -> ValueError:
    """The ValueError raised for a name that is not registered, listing the closest names."""
    names = sorted(_all_entries())
    close = difflib.get_close_matches(str(name), names, n=5, cutoff=0.5)
    if close:
        hint = f"closest names: {', '.join(close)}"
    elif names:
        hint = f"registered names: {', '.join(names[:20])}{' ...' if len(names) > 20 else ''}"
    else:
        hint = "the registry is empty"
    return ValueError(f"name: unknown checkpoint {name!r}; {hint}. fastmri_zoo.list_models() lists them all.")


def get_entry(name: str) -> CheckpointEntry:
    """The entry registered as ``name``; unknown names raise a ValueError with the closest names."""
    try:
        return _all_entries()[name]
    except (KeyError, TypeError):
        raise unknown_name_error(name) from None


_FILTERS = ("task", "architecture", "trajectory", "coils", "acceleration", "dataset", "pretrained")


def list_entries(**filters: Any) -> list[CheckpointEntry]:
    """Registered entries (sorted by name) whose fields equal every given filter.

    Filters: ``task``, ``architecture``, ``trajectory``, ``coils``, ``acceleration``,
    ``dataset``, ``pretrained``; ``None`` means "any".
    """
    unknown = sorted(set(filters) - set(_FILTERS))
    if unknown:
        raise ValueError(f"filters: unknown filter(s) {unknown}; expected some of {list(_FILTERS)}.")
    if filters.get("coils") is not None and filters["coils"] not in COILS:
        raise ValueError(f"coils: expected one of {COILS}, got {filters['coils']!r}.")
    if filters.get("task") is not None and filters["task"] not in TASKS:
        raise ValueError(f"task: expected one of {TASKS}, got {filters['task']!r}.")
    active = {key: value for key, value in filters.items() if value is not None}
    return [
        entry
        for name, entry in sorted(_all_entries().items())
        if all(getattr(entry, key) == value for key, value in active.items())
    ]


def list_models(**filters: Any) -> list[str]:
    """Names of the registered checkpoints matching ``filters`` (see :func:`list_entries`)."""
    return [entry.name for entry in list_entries(**filters)]


def preset_names(class_names: Iterable[str]) -> list[str]:
    """Sorted names of the checkpoints that load as one of ``class_names`` (Keras registered names).

    ``NCPDNet.presets`` asks for the registered names of ``NCPDNet`` and its subclasses.
    """
    wanted = set(class_names)
    return [name for name, entry in sorted(_all_entries().items()) if entry.class_name in wanted]


def packaged_weights_root(package: str | os.PathLike | None = None) -> Path:
    """The folder of the bundled presets for the ``fastmri_zoo`` package folder ``package`` (default: this one).

    An installed wheel carries the repository's ``weights/`` as ``fastmri_zoo/_weights``
    (copied there by setup.py at build time); an editable checkout has no such folder
    and reads ``weights/`` beside the package. Only one of the two is searched, so an
    installed package never looks at a ``weights`` folder that happens to sit in
    site-packages.
    """
    package = Path(__file__).resolve().parent if package is None else Path(package)
    packaged = package / PACKAGED_WEIGHTS
    return packaged if packaged.is_dir() else package.parent / REPOSITORY_WEIGHTS


def weights_dirs() -> list[Path]:
    """Folders searched, in order, for bundled presets.

    ``$FASTMRI_ZOO_WEIGHTS_DIR`` if set, then :func:`packaged_weights_root`: the
    package's ``_weights`` folder (installed wheels) or else the repository's
    ``weights/`` next to the ``fastmri_zoo`` package (editable checkouts).
    """
    folders = []
    if os.environ.get(WEIGHTS_DIR_ENV):
        folders.append(Path(os.environ[WEIGHTS_DIR_ENV]).expanduser())
    folders.append(packaged_weights_root())
    return folders


def bundled_folder(entry: CheckpointEntry) -> Path | None:
    """The bundled preset folder of ``entry`` if one exists on disk (holding its weights), else None."""
    if entry.bundled is None:
        return None
    for root in weights_dirs():
        folder = root / entry.bundled
        if (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file():
            return folder
    return None


def _generated_card(entry: CheckpointEntry) -> str:
    acceleration = f"{entry.acceleration}" if entry.acceleration is not None else "not fixed"
    if entry.hub_repo:
        revision = entry.hub_revision or "not pinned"
        hub = f"{entry.hub_repo} ({entry.hub_filename} at revision {revision})"
    else:
        hub = "none"
    status = (
        "pretrained weights available"
        if entry.pretrained
        else "no trained weights yet: load(name, pretrained=False) gives the architecture with fresh weights"
    )
    if entry.task == "reconstruction":
        acquisition = (f"- trajectory: {entry.trajectory}\n- coils: {entry.coils}\n"
                       f"- acceleration: {acceleration}\n")
    else:
        acquisition = "- acquisition: any (a denoiser or prior of images)\n"
    return (
        f"# {entry.name}\n\n"
        f"{entry.description or 'No description provided.'}\n\n"
        f"- task: {entry.task}\n"
        f"- architecture: {entry.architecture}\n"
        f"{acquisition}"
        f"- dataset: {entry.dataset or 'not provided'}\n"
        f"- status: {status}\n"
        f"- bundled folder: {entry.bundled or 'none'}\n"
        f"- Hub: {hub}\n"
        f"- weights sha256: {entry.sha256 or ('recorded at the first download' if entry.converts_on_load else 'not provided')}\n"
    )


def info(name: str) -> str:
    """The model card of ``name``: the preset's README.md when it is on disk, else a card built from the entry.

    Looks at the bundled folder, then the local Hugging Face cache; never downloads.
    """
    entry = get_entry(name)
    folder = bundled_folder(entry)
    if folder is not None and (folder / CARD_FILE).is_file():
        return (folder / CARD_FILE).read_text(encoding="utf-8")
    if entry.hub_repo is not None and not entry.converts_on_load:  # a converted checkpoint's Hub folder is no preset
        readme = cached_file(entry.hub_repo, _join(entry.hub_subfolder, CARD_FILE), revision=entry.hub_revision)
        if readme is not None:
            return Path(readme).read_text(encoding="utf-8")
    return _generated_card(entry)


def _join(folder: str, filename: str) -> str:
    return f"{folder}/{filename}" if folder else filename
