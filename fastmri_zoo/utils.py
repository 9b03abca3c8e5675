"""Small helpers shared across the package (no TensorFlow, no import from the rest of fastmri_zoo).

- :func:`array_digest`: the key of per-trajectory data (its bytes and shape);
- :class:`LRUCache`: the one least-recently-used cache of per-trajectory data
  (gridding matrices, Toeplitz kernels, density weights);
- :func:`center_crop`: fastMRI's centre crop of the last axes (numpy arrays and tensors);
- :func:`split_named`: ``{"name": ..., **options}`` identifiers of losses and optimizers;
- :func:`plain`: a JSON-ready copy of a config value;
- :func:`atomic_write`: the one way a file is written in place of another (a temporary file
  beside it, then a rename; stale temporary files of killed writers are removed);
- :func:`default_permissions`: the permissions a plain ``open`` would give a ``tempfile`` file;
- :func:`write_text`, :func:`write_json`, :func:`write_npz`: text, indented JSON and ``.npz``
  written through :func:`atomic_write`.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import hashlib
import json
import os
import socket
import tempfile
from typing import Any, Callable, Hashable, Iterator, Sequence

import numpy as np

__all__ = [
    "array_digest", "LRUCache", "center_crop", "split_named", "plain", "atomic_write", "default_permissions",
    "write_text", "write_json", "write_npz",
]


def array_digest(*arrays) -> str:
    """Hex blake2b digest (20 bytes) of the shapes and float32 bytes of arrays (None: a marker of its own).

    arrays: numpy arrays or eager tensors (anything ``np.asarray`` reads).
    The key of the per-trajectory caches (gridding matrices, Toeplitz kernels, density weights).
    """
    digest = hashlib.blake2b(digest_size=20)
    for array in arrays:
        if array is None:
            digest.update(b"none")
            continue
        value = np.ascontiguousarray(np.asarray(array, np.float32))
        digest.update(repr(value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


class LRUCache:
    """The ``maxsize`` most recently used values, by key.

    ``get(key, build)`` returns the stored value of ``key``, or ``build()``,
    stored under ``key``; ``key=None`` means "do not cache" (the caller passes
    it where the data has no bytes to digest, e.g. inside ``tf.function``), so
    ``build()`` runs every time. Keys are usually ``(array_digest(...),
    settings)``.
    """

    def __init__(self, maxsize: int = 4):
        if int(maxsize) < 1:
            raise ValueError(f"maxsize: expected a positive number of entries, got {maxsize!r}.")
        self.maxsize = int(maxsize)
        self.entries: collections.OrderedDict = collections.OrderedDict()

    def get(self, key: Hashable | None, build: Callable[[], Any]) -> Any:
        if key is None:
            return build()
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        value = build()
        self.entries[key] = value
        while len(self.entries) > self.maxsize:
            self.entries.popitem(last=False)
        return value

    def __contains__(self, key) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def clear(self) -> None:
        self.entries.clear()

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` (nothing if it is not stored)."""
        self.entries.pop(key, None)

    def __repr__(self) -> str:
        return f"LRUCache({len(self.entries)}/{self.maxsize} entries)"


def center_crop(x, shape: Sequence[int]):
    """Centre crop of the last ``len(shape)`` axes of ``x`` (numpy array or tensor).

    The crop starts at (N - n) // 2 along each axis (fastMRI's convention); every
    ``shape`` entry must be at most the size of its axis. Axes of unknown static
    size (inside a traced graph) are cropped with their dynamic size.
    """
    shape = tuple(int(s) for s in shape)
    sizes = tuple(x.shape[-len(shape):]) if shape else ()
    for axis, (size, crop) in enumerate(zip(sizes, shape)):
        if size is not None and not 0 < crop <= size:
            raise ValueError(
                f"shape: expected crop sizes in [1, {tuple(sizes)}] (the last axes of x), "
                f"got {shape}; axis {axis} has {size}."
            )
    index = [Ellipsis]
    for axis, (size, crop) in enumerate(zip(sizes, shape)):
        if size is None:
            import tensorflow as tf  # lazy: only traced tensors have unknown sizes; this module stays TF-free

            size = tf.shape(x)[len(x.shape) - len(shape) + axis]
        start = (size - crop) // 2
        index.append(slice(start, start + crop))
    return x[tuple(index)]


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


def plain(value):
    """A JSON-ready copy of a config value (Keras wraps dict and list attributes in trackers)."""
    return json.loads(json.dumps(value))


def default_permissions(path, directory: bool = False) -> None:
    """Give a file (or folder) made by ``tempfile`` the permissions a plain ``open`` would:
    tempfile creates them private (0600 / 0700), which an atomic rename would keep."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


def _host_tag() -> str:
    """A short tag of this machine: temporary files name their writer's host and process."""
    return hashlib.blake2b(socket.gethostname().encode(), digest_size=3).hexdigest()


def _writer_is_gone(temporary: str, host: str, suffix: str = "") -> bool:
    """Whether ``.NAME.<host>-<pid>-<random>.tmp<suffix>`` was left by a process of this host that no longer runs."""
    tag = os.path.basename(temporary)[: -len(".tmp" + suffix)].rsplit(".", 1)[-1]
    parts = tag.split("-")
    if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
        return False  # another host's, or not ours: left alone
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, owned by someone else
        return False
    return False


@contextlib.contextmanager
def atomic_write(path, suffix: str = "") -> Iterator[str]:
    """Write ``path`` atomically: yields a temporary path in the same folder, renamed onto ``path``
    when the block ends normally; removed when it raises (including KeyboardInterrupt), so a failed
    or interrupted write leaves any previous file untouched.

    The temporary file is ``.NAME.<host>-<pid>-<random>.tmp<suffix>`` (``suffix``: for writers that insist on
    a file name's ending, e.g. Keras' ``save_weights`` on ``.weights.h5``). A writer killed outright (SIGKILL)
    cannot remove it; the next ``atomic_write`` of the same ``path`` on this machine does, once that
    process no longer runs. Raises FileNotFoundError when the folder does not exist.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"path: the folder {folder!r} does not exist.")
    base = os.path.basename(path)
    host = _host_tag()
    for stale in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(base)}.*.tmp{glob.escape(suffix)}")):
        if _writer_is_gone(stale, host, suffix):
            with contextlib.suppress(OSError):
                os.remove(stale)
    descriptor, temporary = tempfile.mkstemp(
        dir=folder, prefix=f".{base}.{host}-{os.getpid()}-", suffix=".tmp" + suffix
    )
    os.close(descriptor)
    try:
        yield temporary
        default_permissions(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def write_text(path: str | os.PathLike, text: str) -> str:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_write(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
    return os.fspath(path)


def write_npz(path: str | os.PathLike, **arrays) -> str:
    """Write ``arrays`` as an uncompressed ``.npz`` (``numpy.savez``), atomically; returns the path."""
    with atomic_write(path) as temporary:
        with open(temporary, "wb") as file:
            np.savez(file, **arrays)
    return os.fspath(path)


def write_json(path: str | os.PathLike, value) -> str:
    """Write ``value`` as indented JSON, atomically; returns the path."""
    return write_text(path, json.dumps(value, indent=1) + "\n")
