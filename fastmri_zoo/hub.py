"""Where a checkpoint comes from: the Hugging Face Hub, with integrity checks.

Downloads go through ``huggingface_hub`` (its cache, revision pinning and
``HF_HUB_OFFLINE``); the zoo then checks the sha256 it expects, which
``huggingface_hub`` does not. A mismatch deletes the cached file and downloads
it once more; a second mismatch raises :class:`ChecksumError` naming the file
and both hashes. A corrupted or truncated file is never returned.

The Hub endpoint is, in order: the ``endpoint`` argument, the
``FASTMRI_ZOO_HF_ENDPOINT`` environment variable, then huggingface_hub's own
default (``HF_ENDPOINT``, read when huggingface_hub is imported).

``huggingface_hub`` is imported inside the functions so that
``import fastmri_zoo`` stays fast. Publishing a registered checkpoint
(``export_hub``, ``push``) is in :mod:`fastmri_zoo.presets`, which knows the names.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HubError",
    "HubUnreachableError",
    "HubNotFoundError",
    "HubDownloadError",
    "ChecksumError",
    "HubLocation",
    "PRESET_FILES",
    "OPTIONAL_PRESET_FILES",
    "CARD_FIGURE_FILES",
    "PREPROCESSOR_FILE",
    "RECIPE_FILE",
    "ENDPOINT_ENV",
    "resolve_endpoint",
    "is_offline",
    "parse_hf_handle",
    "sha256_file",
    "cached_file",
    "download_file",
    "download_preset",
]

ENDPOINT_ENV = "FASTMRI_ZOO_HF_ENDPOINT"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"
CARD_FILE = "README.md"
#: How a preset's inputs are prepared (:mod:`fastmri_zoo.data.preprocessing`).
PREPROCESSOR_FILE = "preprocessor.json"
#: The training recipe, with the card block the registry reads (:mod:`fastmri_zoo.registry`).
RECIPE_FILE = "recipe.json"
#: The files of a preset folder, in the order they are fetched (weights last, once their hash is known).
PRESET_FILES = (CONFIG_FILE, METADATA_FILE, CARD_FILE, WEIGHTS_FILE)
#: Files a preset folder may hold besides the required ones; fetched when the Hub has them.
OPTIONAL_PRESET_FILES = (CARD_FILE, PREPROCESSOR_FILE, RECIPE_FILE)
#: Pictures a model card shows (uploaded with the preset, never needed to load it).
CARD_FIGURE_FILES = ("validation_curve.png",)

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HF_HANDLE = re.compile(r"^hf://(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?P<sub>(?:/[\w.-]+)*)/?(?:@(?P<rev>[^@/\s]+))?$")


class HubError(OSError):
    """A checkpoint could not be fetched from the Hugging Face Hub."""


class HubUnreachableError(HubError, ConnectionError):
    """The Hub could not be reached (or offline mode is on) and the file is not in the local cache."""


class HubNotFoundError(HubError, FileNotFoundError):
    """The Hub answered that the repository, the revision or the file does not exist."""


class HubDownloadError(HubError):
    """A transfer started but did not complete (connection closed, fewer bytes than announced)."""


class ChecksumError(ValueError):
    """A weights file's sha256 differs from the one expected; ``path``, ``expected``, ``actual`` say which."""

    def __init__(self, message: str, path: str | os.PathLike, expected: str, actual: str):
        super().__init__(message)
        self.path = str(path)
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class HubLocation:
    """A preset folder on the Hub: ``repo_id`` (owner/name), ``subfolder`` ('' = root), ``revision`` (None = main)."""

    repo_id: str
    subfolder: str = ""
    revision: str | None = None

    def path_of(self, filename: str) -> str:
        return f"{self.subfolder}/{filename}" if self.subfolder else filename

    def __str__(self) -> str:
        sub = f"/{self.subfolder}" if self.subfolder else ""
        rev = f"@{self.revision}" if self.revision else ""
        return f"hf://{self.repo_id}{sub}{rev}"


def resolve_endpoint(endpoint: str | None = None) -> str | None:
    """The Hub endpoint to pass to huggingface_hub: ``endpoint``, else ``$FASTMRI_ZOO_HF_ENDPOINT``, else None."""
    chosen = endpoint or os.environ.get(ENDPOINT_ENV) or None
    return chosen.rstrip("/") if chosen else None


def _endpoint_for_messages(endpoint: str | None) -> str:
    if endpoint:
        return endpoint
    from huggingface_hub import constants

    return constants.ENDPOINT


def is_offline() -> bool:
    """True when huggingface_hub's offline mode is on or ``HF_HUB_OFFLINE`` is set now.

    huggingface_hub reads ``HF_HUB_OFFLINE`` once at import; the zoo also reads
    it at call time so that setting it later still keeps the zoo off the network.
    """
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return bool(constants.is_offline_mode()) or value in {"1", "ON", "YES", "TRUE"}


def parse_hf_handle(handle: str, revision: str | None = None) -> HubLocation:
    """Parse ``hf://owner/repo[/subfolder][@revision]``; ``revision`` must agree with one in the handle."""
    match = _HF_HANDLE.match(handle) if isinstance(handle, str) else None
    if match is None:
        raise ValueError(f"handle: expected 'hf://owner/repo[/subfolder][@revision]', got {handle!r}.")
    in_handle = match.group("rev")
    if in_handle and revision and in_handle != revision:
        raise ValueError(f"revision: {revision!r} contradicts the revision {in_handle!r} in handle {handle!r}.")
    return HubLocation(match.group("repo"), match.group("sub").strip("/"), revision or in_handle)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_file(
    repo_id: str, filename: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None
) -> str | None:
    """Path of ``filename`` in the local Hugging Face cache, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
    return found if isinstance(found, str) else None


def _offline_hint(repo_id: str, filenames: list[str], revision: str | None) -> str:
    rev = f" --revision {revision}" if revision else ""
    return (
        "To work offline: download it beforehand while online with "
        f"`hf download {repo_id} {' '.join(filenames)}{rev}` (`huggingface-cli download ...` with older "
        "huggingface_hub), then set HF_HUB_OFFLINE=1 to use the warm cache; or load a checkpoint bundled in "
        "the package (fastmri_zoo.list_models(pretrained=True))."
    )


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level exception classes of whichever HTTP client huggingface_hub uses."""
    found: list[type[BaseException]] = []
    for module_name, attribute in (("httpx2", "TransportError"), ("httpx", "TransportError"),
                                   ("requests", "RequestException")):
        try:
            module = __import__(module_name)
            found.append(getattr(module, attribute))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def _hf_download(
    repo_id: str,
    filename: str,
    *,
    revision: str | None,
    endpoint: str | None,
    cache_dir: str | os.PathLike | None,
    token: str | bool | None,
    force_download: bool = False,
) -> Path:
    """hf_hub_download with the zoo's error messages."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = is_offline()
    where = f"{filename!r} of Hub repo {repo_id!r} (revision {revision or 'main'}, endpoint {_endpoint_for_messages(endpoint)})"
    hint = _offline_hint(repo_id, [filename], revision)
    try:
        path = hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            endpoint=endpoint,
            cache_dir=cache_dir,
            token=token,
            force_download=force_download,
            local_files_only=offline,
            library_name="fastmri-zoo",
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as error:
        if offline:
            raise HubUnreachableError(
                f"Offline mode is on (HF_HUB_OFFLINE) and {where} is not in the local cache. {hint}"
            ) from error
        raise HubUnreachableError(f"Could not reach the Hub to download {where}. {hint}") from error
    except RepositoryNotFoundError as error:
        raise HubNotFoundError(
            f"Hub repository {repo_id!r} was not found on {_endpoint_for_messages(endpoint)} "
            "(or it is private or gated: pass token=... or log in with `hf auth login`)."
        ) from error
    except RevisionNotFoundError as error:
        raise HubNotFoundError(
            f"Revision {revision!r} was not found in Hub repository {repo_id!r}: check the branch, tag or commit id."
        ) from error
    except EntryNotFoundError as error:
        raise HubNotFoundError(f"File {filename!r} was not found in Hub repository {repo_id!r} at revision "
                               f"{revision or 'main'}.") from error
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", "?")
        raise HubError(f"The Hub answered HTTP {status} while downloading {where}: {error}") from error
    except ValueError as error:
        if force_download:  # huggingface_hub raises ValueError when a forced download cannot reach the Hub
            raise HubUnreachableError(f"Could not reach the Hub to download {where} again. {hint}") from error
        raise
    except _transport_errors() as error:
        raise HubDownloadError(
            f"The download of {where} was interrupted ({type(error).__name__}: {error}); nothing was loaded "
            "and no partial file was kept. Retry when the connection is stable."
        ) from error
    except OSError as error:  # e.g. huggingface_hub's size consistency check after a truncated transfer
        raise HubDownloadError(
            f"The download of {where} failed ({error}); nothing was loaded and no partial file was kept. "
            "Retry when the connection is stable."
        ) from error
    return Path(path)


def _evict(path: Path) -> None:
    """Delete a cached file: its snapshot entry and the blob it points to."""
    target = Path(os.path.realpath(path))
    for item in (path, target):
        try:
            item.unlink()
        except FileNotFoundError:
            pass


def download_file(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    expected_sha256: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
) -> Path:
    """Download (or find in the cache) one file of a Hub repo and check its sha256.

    On a sha256 mismatch the cached copy is deleted and the file downloaded
    once more (force_download); if it still does not match, the bad copy is
    deleted and :class:`ChecksumError` names the file and both hashes.
    """
    endpoint = resolve_endpoint(endpoint)
    common = dict(revision=revision, endpoint=endpoint, cache_dir=cache_dir, token=token)
    path = _hf_download(repo_id, filename, **common)
    if expected_sha256 is None:
        return path
    actual = sha256_file(path)
    if actual == expected_sha256:
        return path
    _evict(path)
    where = f"{filename!r} from Hub repo {repo_id!r} (revision {revision or 'main'})"
    if is_offline():
        raise ChecksumError(
            f"sha256 mismatch for {where}: expected {expected_sha256}, the cached copy has {actual}. "
            "The corrupted copy was deleted; download it again while online (unset HF_HUB_OFFLINE).",
            path, expected_sha256, actual,
        )
    warnings.warn(
        f"sha256 mismatch for {where} (expected {expected_sha256}, got {actual}); "
        "deleted the cached copy, downloading it once more.",
        RuntimeWarning,
        stacklevel=2,
    )
    path = _hf_download(repo_id, filename, force_download=True, **common)
    actual = sha256_file(path)
    if actual != expected_sha256:
        _evict(path)
        raise ChecksumError(
            f"sha256 mismatch for {where} after a fresh download: expected {expected_sha256}, got {actual}. "
            "The file was deleted and not loaded; the file on the Hub differs from the one this checkpoint pins.",
            path, expected_sha256, actual,
        )
    return path


def _known_missing(repo_id: str, filename: str, revision: str | None, cache_dir) -> bool:
    """True when the cache records that ``filename`` does not exist at ``revision`` (an earlier 404),
    so an optional file of a pinned preset costs no request once its absence is known."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
    # a path when cached, None when unknown, a sentinel object when known to be missing
    return found is not None and not isinstance(found, (str, os.PathLike))


def _snapshot_commit(path: Path) -> str | None:
    """The commit id of a file in huggingface_hub's cache layout ``.../snapshots/<commit>/<file>``."""
    parts = Path(path).parts
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == "snapshots" and _COMMIT.match(parts[index + 1]):
            return parts[index + 1]
    return None


def download_preset(
    location: HubLocation,
    *,
    expected_sha256: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    weights: bool = True,
) -> Path:
    """Fetch a preset folder from the Hub into the cache and return the local folder.

    config.json and metadata.json come first; the weights (skipped when
    ``weights`` is False) are checked against ``expected_sha256`` or, when None,
    against the sha256 recorded in metadata.json. The card, preprocessor.json and
    recipe.json (:data:`OPTIONAL_PRESET_FILES`) are fetched when the repository has
    them. All files are taken from one commit (the one the first file resolved to).
    """
    common = dict(endpoint=endpoint, cache_dir=cache_dir, token=token)
    config = download_file(location.repo_id, location.path_of(CONFIG_FILE), revision=location.revision, **common)
    revision = _snapshot_commit(config) or location.revision
    metadata_path = download_file(location.repo_id, location.path_of(METADATA_FILE), revision=revision, **common)
    for filename in OPTIONAL_PRESET_FILES:
        if _known_missing(location.repo_id, location.path_of(filename), revision, cache_dir):
            continue
        try:
            download_file(location.repo_id, location.path_of(filename), revision=revision, **common)
        except HubNotFoundError:
            pass
    if weights:
        if expected_sha256 is None:
            try:
                expected_sha256 = json.loads(Path(metadata_path).read_text(encoding="utf-8"))["weights_sha256"]
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{metadata_path}: no readable 'weights_sha256' in metadata.json ({error}).") from None
        download_file(
            location.repo_id, location.path_of(WEIGHTS_FILE), revision=revision,
            expected_sha256=expected_sha256, **common,
        )
    return Path(config).parent
