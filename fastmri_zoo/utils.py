"""Small helpers shared across the package (no TensorFlow, no import from the rest of fastmri_zoo).

- :func:`array_digest`: the key of per-trajectory data (its bytes and shape);
- :class:`LRUCache`: the one least-recently-used cache of per-trajectory data
  (gridding matrices, Toeplitz kernels, density weights);
- :func:`center_crop`: fastMRI's centre crop of the last axes (numpy arrays and tensors);
- :func:`split_named`: ``{"name": ..., **options}`` identifiers of losses and optimizers;
- :func:`plain`: a JSON-ready copy of a config value.
"""

from __future__ import annotations

import collections
import hashlib
import json
from typing import Any, Callable, Hashable, Sequence

import numpy as np

__all__ = ["array_digest", "LRUCache", "center_crop", "split_named", "plain"]


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
