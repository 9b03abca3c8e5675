"""The named checkpoints of the zoo and where each one lives.

A checkpoint is named ``{architecture}[-{variant}]-{trajectory}-{coils}[-af{N}][-{dataset}]``
(e.g. ``ncpdnet-radial-multicoil``, ``pdnet-cartesian-singlecoil-af4``,
``unet-adjdcomp-radial-multicoil``). Each name maps to a frozen :class:`CheckpointEntry`
giving the preset folder bundled under the repository's ``weights/`` and its Hugging
Face Hub location (repo id, file name, pinned revision, sha256 of the weights).

Model-family modules add their entries at import time with :func:`register`;
the registry itself ships no entries. This module imports nothing heavy, so
listing names stays fast; the family modules are imported on the first query.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "CheckpointEntry",
    "COILS",
    "register",
    "unregister",
    "get_entry",
    "list_entries",
    "list_models",
    "info",
    "weights_dirs",
    "bundled_folder",
    "unknown_name_error",
]

COILS = ("singlecoil", "multicoil", "3d")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

#: Environment variable naming an extra folder searched first for bundled presets.
WEIGHTS_DIR_ENV = "FASTMRI_ZOO_WEIGHTS_DIR"


@dataclass(frozen=True)
class CheckpointEntry:
    """One named checkpoint.

    ``name`` is derived from the other fields when left empty; when given it
    must equal that derived name. ``bundled`` is a folder name under
    ``weights/``; ``hub_filename`` is the weights file's path inside
    ``hub_repo`` (its folder holds the rest of the preset: config.json,
    metadata.json, README.md); ``hub_revision`` is a 40-hex commit so a
    cached download is reused without a request. ``builder`` (optional) returns
    the untrained architecture when no preset folder can be reached, for
    ``load(name, pretrained=False)``. ``loader`` (optional) loads checkpoints
    that are not zoo preset folders (the authors' Keras-2 files, converted on
    load by :mod:`fastmri_zoo.legacy`): ``loader(pretrained=..., revision=...,
    endpoint=..., cache_dir=..., token=...)``; such an entry brings its own
    integrity checks, so its Hub revision and sha256 may be unknown.
    """

    architecture: str
    trajectory: str
    coils: str
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
    builder: Callable[[], Any] | None = field(default=None, compare=False, repr=False)
    loader: Callable[..., Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for attribute in ("architecture", "trajectory"):
            value = getattr(self, attribute)
            if not isinstance(value, str) or not _SLUG.match(value):
                raise ValueError(
                    f"{attribute}: expected a lowercase name of letters, digits and '_' "
                    f"(no '-', it separates the parts of a checkpoint name), got {value!r}."
                )
        if self.coils not in COILS:
            raise ValueError(f"coils: expected one of {COILS}, got {self.coils!r}.")
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
            raise ValueError(
                f"name: expected {expected!r} (architecture[-variant]-trajectory-coils[-afN][-dataset]), "
                f"got {self.name!r}."
            )
        if self.hub_repo is not None:
            if not _REPO_ID.match(self.hub_repo):
                raise ValueError(f"hub_repo: expected 'owner/name', got {self.hub_repo!r}.")
            unpinned_allowed = self.loader is not None and self.hub_revision is None
            if not unpinned_allowed and (self.hub_revision is None or not _COMMIT.match(self.hub_revision)):
                raise ValueError(
                    f"hub_revision: {self.name} must pin its Hub revision to a 40-hex commit id, "
                    f"got {self.hub_revision!r}."
                )
        if self.hub_filename.startswith("/") or (self.loader is None and not self.hub_filename.endswith(".weights.h5")):
            raise ValueError(
                f"hub_filename: expected a relative path ending in '.weights.h5', got {self.hub_filename!r}."
            )
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise ValueError(f"sha256: expected 64 lowercase hex digits, got {self.sha256!r}.")
        if self.pretrained:
            if self.sha256 is None and self.loader is None:
                raise ValueError(f"sha256: the pretrained checkpoint {self.name} needs the sha256 of its weights.")
            if self.bundled is None and self.hub_repo is None:
                raise ValueError(
                    f"bundled, hub_repo: the pretrained checkpoint {self.name} needs a bundled folder or a Hub repo."
                )

    def expected_name(self) -> str:
        """``{architecture}[-{variant}]-{trajectory}-{coils}[-af{N}][-{dataset}]``."""
        parts = [self.architecture] + ([self.variant] if self.variant else []) + [self.trajectory, self.coils]
        if self.acceleration is not None:
            parts.append(f"af{self.acceleration}")
        if self.dataset is not None:
            parts.append(self.dataset)
        return "-".join(parts)

    @property
    def hub_subfolder(self) -> str:
        """Folder of the preset inside ``hub_repo`` ('' for the repository root)."""
        return self.hub_filename.rpartition("/")[0]


_REGISTRY: dict[str, CheckpointEntry] = {}
_FAMILIES_IMPORTED = False


def _import_families() -> None:
    """Import the model families once, so that their ``register`` calls have run."""
    global _FAMILIES_IMPORTED
    if not _FAMILIES_IMPORTED:
        importlib.import_module("fastmri_zoo.models")
        importlib.import_module("fastmri_zoo.legacy")  # the authors' Keras-2 checkpoints on the Hub
        _FAMILIES_IMPORTED = True


def register(entry: CheckpointEntry, *, replace: bool = False) -> CheckpointEntry:
    """Add ``entry`` to the registry (re-registering an identical entry is a no-op)."""
    if not isinstance(entry, CheckpointEntry):
        raise ValueError(f"entry: expected a CheckpointEntry, got {type(entry).__name__}.")
    existing = _REGISTRY.get(entry.name)
    if existing is not None and existing != entry and not replace:
        raise ValueError(
            f"entry: a different checkpoint is already registered as {entry.name!r}; pass replace=True to replace it."
        )
    _REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (no error if absent)."""
    _REGISTRY.pop(name, None)


def unknown_name_error(name: str) -> ValueError:
    """The ValueError raised for a name that is not registered, listing the closest names."""
    names = sorted(_REGISTRY)
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
    _import_families()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise unknown_name_error(name) from None


_FILTERS = ("architecture", "trajectory", "coils", "acceleration", "dataset", "pretrained")


def list_entries(**filters: Any) -> list[CheckpointEntry]:
    """Registered entries (sorted by name) whose fields equal every given filter.

    Filters: ``architecture``, ``trajectory``, ``coils``, ``acceleration``,
    ``dataset``, ``pretrained``; ``None`` means "any".
    """
    unknown = sorted(set(filters) - set(_FILTERS))
    if unknown:
        raise ValueError(f"filters: unknown filter(s) {unknown}; expected some of {list(_FILTERS)}.")
    if filters.get("coils") is not None and filters["coils"] not in COILS:
        raise ValueError(f"coils: expected one of {COILS}, got {filters['coils']!r}.")
    _import_families()
    active = {key: value for key, value in filters.items() if value is not None}
    return [
        entry
        for name, entry in sorted(_REGISTRY.items())
        if all(getattr(entry, key) == value for key, value in active.items())
    ]


def list_models(**filters: Any) -> list[str]:
    """Names of the registered checkpoints matching ``filters`` (see :func:`list_entries`)."""
    return [entry.name for entry in list_entries(**filters)]


def weights_dirs() -> list[Path]:
    """Folders searched, in order, for bundled presets.

    ``$FASTMRI_ZOO_WEIGHTS_DIR`` if set, the package data folder
    ``fastmri_zoo/weights`` (installed wheels), then the repository's
    ``weights/`` next to the ``fastmri_zoo`` package (editable installs).
    """
    package = Path(__file__).resolve().parent
    folders = []
    if os.environ.get(WEIGHTS_DIR_ENV):
        folders.append(Path(os.environ[WEIGHTS_DIR_ENV]).expanduser())
    folders += [package / "weights", package.parent / "weights"]
    return folders


def bundled_folder(entry: CheckpointEntry) -> Path | None:
    """The bundled preset folder of ``entry`` if one exists on disk (holding its weights), else None."""
    if entry.bundled is None:
        return None
    for root in weights_dirs():
        folder = root / entry.bundled
        if (folder / "config.json").is_file() and (folder / "model.weights.h5").is_file():
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
    return (
        f"# {entry.name}\n\n"
        f"{entry.description or 'No description provided.'}\n\n"
        f"- architecture: {entry.architecture}\n"
        f"- trajectory: {entry.trajectory}\n"
        f"- coils: {entry.coils}\n"
        f"- acceleration: {acceleration}\n"
        f"- dataset: {entry.dataset or 'not provided'}\n"
        f"- status: {status}\n"
        f"- bundled folder: {entry.bundled or 'none'}\n"
        f"- Hub: {hub}\n"
        f"- weights sha256: {entry.sha256 or ('recorded at the first download' if entry.loader else 'not provided')}\n"
    )


def info(name: str) -> str:
    """The model card of ``name``: the preset's README.md when it is on disk, else a card built from the entry.

    Looks at the bundled folder, then the local Hugging Face cache; never downloads.
    """
    entry = get_entry(name)
    folder = bundled_folder(entry)
    if folder is not None and (folder / "README.md").is_file():
        return (folder / "README.md").read_text(encoding="utf-8")
    if entry.hub_repo is not None and entry.loader is None:  # a loader's Hub folder is not a zoo preset
        from .hub import cached_file

        readme = cached_file(entry.hub_repo, _join(entry.hub_subfolder, "README.md"), revision=entry.hub_revision)
        if readme is not None:
            return Path(readme).read_text(encoding="utf-8")
    return _generated_card(entry)


def _join(folder: str, filename: str) -> str:
    return f"{folder}/{filename}" if folder else filename
