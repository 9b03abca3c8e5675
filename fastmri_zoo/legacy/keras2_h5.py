"""Reading the HDF5 weight files that Keras 2 (``tf.keras``, TF 2.x) wrote.

Two layouts occur:

- weights only (``model.save_weights('x.h5')``): the layer groups sit at the
  file root, whose attribute ``layer_names`` lists them;
- full model (``model.save('x.h5')``): the same groups sit under
  ``/model_weights`` (root attributes ``model_config`` / ``training_config``,
  optimizer state under ``/optimizer_weights``, ignored here).

Inside the weights group, ``layer_names`` lists every top-level layer in
``model.layers`` order (weightless ones included); an attribute above 64 kB is
split into ``layer_names0``, ``layer_names1``, ... . Each layer group's
attribute ``weight_names`` is its ordered weight list (an empty list is stored
as an empty float64 array) and each weight is the dataset
``<layer group>/<weight name>``. Names are stored as fixed-length bytes (TF 2.4
era, h5py 2) or variable-length strings (later); both are read. Keras 2 loads
these files by order, not by name, and so does this module's caller.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Keras2Weight", "Keras2Group", "Keras2File", "read_attribute_list"]


@dataclass(frozen=True)
class Keras2Weight:
    """One stored weight: its Keras-2 name, shape, dtype and dataset path in the file."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    h5_path: str


@dataclass(frozen=True)
class Keras2Group:
    """One layer group of the file (``weights`` empty for weightless layers)."""

    name: str
    weights: tuple[Keras2Weight, ...]


def _decode(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.bytes_):
        return bytes(value).decode("utf-8")
    return str(value)


def read_attribute_list(node, name: str) -> list[str] | None:
    """A list-of-names attribute of an h5py node, or None if absent.

    Handles both encodings (bytes and str arrays), the empty list stored as an
    empty float64 array, and Keras' chunking of large attributes into
    ``name0``, ``name1``, ... .
    """
    attrs = node.attrs
    if name in attrs:
        chunks = [attrs[name]]
    elif f"{name}0" in attrs:
        chunks = []
        index = 0
        while f"{name}{index}" in attrs:
            chunks.append(attrs[f"{name}{index}"])
            index += 1
    else:
        return None
    names: list[str] = []
    for chunk in chunks:
        array = np.asarray(chunk)
        if array.size == 0:
            continue
        if array.dtype.kind not in ("S", "U", "O"):
            raise ValueError(
                f"{node.name}: attribute {name!r} should hold names (strings), got an array of dtype {array.dtype}."
            )
        names.extend(_decode(item) for item in array.reshape(-1))
    return names


class Keras2File:
    """An open Keras-2 ``.h5`` weights file (use as a context manager).

    ``layout`` is ``"weights"`` or ``"full_model"``; ``groups`` lists every
    layer group in ``layer_names`` order; ``weighted_groups`` only those with
    weights, which is what Keras 2 pairs, in order, with the model's layers.
    ``read(weight)`` returns a weight's values as a numpy array.
    """

    def __init__(self, path: str | os.PathLike):
        import h5py

        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as error:
            raise ValueError(f"{self.path}: not a readable HDF5 file ({error}).") from None
        try:
            self._load_structure()
        except BaseException:
            self._file.close()
            raise

    def _load_structure(self) -> None:
        root = self._file
        if read_attribute_list(root, "layer_names") is not None:
            self.layout = "weights"
            weights_group = root
        elif "model_weights" in root and read_attribute_list(root["model_weights"], "layer_names") is not None:
            self.layout = "full_model"
            weights_group = root["model_weights"]
        else:
            raise ValueError(
                f"{self.path}: not a Keras-2 weights file: no 'layer_names' attribute at the root nor in "
                f"'/model_weights' (root keys: {sorted(root.keys())[:8]})."
            )
        self.keras_version = _decode(weights_group.attrs.get("keras_version", root.attrs.get("keras_version", "?")))
        self.backend = _decode(weights_group.attrs.get("backend", root.attrs.get("backend", "?")))
        groups = []
        for layer_name in read_attribute_list(weights_group, "layer_names"):
            if layer_name not in weights_group:
                raise ValueError(f"{self.path}: layer {layer_name!r} is listed in 'layer_names' but has no group.")
            group = weights_group[layer_name]
            weight_names = read_attribute_list(group, "weight_names")
            if weight_names is None:
                raise ValueError(f"{self.path}: layer group {group.name!r} has no 'weight_names' attribute.")
            weights = []
            for weight_name in weight_names:
                if weight_name not in group:
                    raise ValueError(
                        f"{self.path}: weight {weight_name!r} is listed in {group.name!r} but has no dataset."
                    )
                dataset = group[weight_name]
                weights.append(Keras2Weight(weight_name, tuple(int(d) for d in dataset.shape),
                                            str(dataset.dtype), dataset.name))
            groups.append(Keras2Group(layer_name, tuple(weights)))
        self.groups = tuple(groups)
        self.weighted_groups = tuple(group for group in groups if group.weights)

    def read(self, weight: Keras2Weight) -> np.ndarray:
        """The values of ``weight`` (numpy array, stored dtype)."""
        return np.asarray(self._file[weight.h5_path][()])

    @property
    def parameter_count(self) -> int:
        return int(sum(int(np.prod(w.shape)) for g in self.weighted_groups for w in g.weights))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "Keras2File":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
