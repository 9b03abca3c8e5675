"""Trust on first use for Hub files whose sha256 the zoo has never seen.

The authors' Keras-2 checkpoints were published without a hash the zoo could
pin (and this project could not download them to compute one). So the first
successful load records the file's sha256 in the user's Hugging Face cache
folder (``<HF cache>/fastmri_zoo/first_seen_sha256.json``, written atomically),
after the file passed the structure check and every value was finite; every
later load checks the file against that record. A file that changed on the Hub
or in the cache is then refused, with both hashes and the record's path.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

__all__ = ["record_path", "recorded_sha256", "record_sha256", "record_key"]

RECORD_FOLDER = "fastmri_zoo"
RECORD_FILE = "first_seen_sha256.json"


def record_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """The record file inside ``cache_dir`` or, by default, huggingface_hub's cache folder."""
    if cache_dir is None:
        from huggingface_hub import constants

        cache_dir = constants.HF_HUB_CACHE
    return Path(cache_dir).expanduser() / RECORD_FOLDER / RECORD_FILE


def record_key(repo_id: str, filename: str, revision: str | None) -> str:
    """``owner/name/filename@revision`` (revision ``main`` when none is pinned)."""
    return f"{repo_id}/{filename}@{revision or 'main'}"


def _read(path: Path) -> dict:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path}: the zoo's record of first-seen sha256 is not valid JSON ({error}); "
            "delete it to record the files again at their next load."
        ) from None
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object of first-seen sha256 records, got {type(content).__name__}.")
    return content


def recorded_sha256(key: str, cache_dir: str | os.PathLike | None = None) -> str | None:
    """The sha256 recorded for ``key`` at its first load, or None."""
    entry = _read(record_path(cache_dir)).get(key)
    return entry.get("sha256") if isinstance(entry, dict) else None


def record_sha256(key: str, sha256: str, commit: str | None = None,
                  cache_dir: str | os.PathLike | None = None) -> Path:
    """Record ``sha256`` for ``key`` (atomically: a temporary file, then a rename). Returns the record's path.

    An existing, different record is never overwritten: that is a ValueError.
    """
    path = record_path(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = _read(path)
    previous = records.get(key)
    if isinstance(previous, dict) and previous.get("sha256") not in (None, sha256):
        raise ValueError(
            f"{key}: the record in {path} holds sha256 {previous['sha256']}, not {sha256}; "
            "it is not overwritten."
        )
    records[key] = {"sha256": sha256, "commit": commit, "first_seen": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    handle, staging = tempfile.mkstemp(prefix=f".{RECORD_FILE}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(records, stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.replace(staging, path)
    except BaseException:
        try:
            os.unlink(staging)
        except FileNotFoundError:
            pass
        raise
    return path
