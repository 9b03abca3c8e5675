"""Differentiable architecture search cells (DARTS, Liu et al. 2019) for the denoiser of an unrolled network.

After Yan et al. 2020, "Neural Architecture Search for Compressed Sensing MR Image
Reconstruction" (sec. 3.2), and FedAutoMRI's search space.

- :data:`OPERATIONS`: the one registry of candidate operations, by name. Every operation
  maps float32 (batch, H, W, C) to (batch, H, W, C): stride 1 and "same" padding for every
  kernel and dilation, on odd and even sizes alike (the authors' dilation-3 operation
  shrinks the map; this one does not). Operations with weights start with a ReLU and have
  no bias (DARTS' ReLU-conv, batch norm removed as in the authors' code).
- :data:`SEARCH_SPACES`: a search space is a list of operation names (``"A"``, ``"B"``,
  ``"fedautomri"``).
- :class:`MixedOperation`: sum_k softmax(alpha)_k op_k(x) over a search space.
- :class:`SearchCell`: the cell of the search (eqs. 8-14). States 0 and 1 are the cell
  inputs C_{l-2} and C_{l-1}, each through ReLU + 1x1 convolution to C channels; node i
  (state i + 2) is the sum of mixed operations over states 0 ... i + 1; the cell returns the
  concatenation of its nodes (n_nodes * C channels). alpha (one row of logits per edge,
  edges node by node, :func:`edge_count`) is an argument of the call, not a weight of the
  cell: the architecture weights live apart from the network weights (they are shared by
  every cell and optimised on another split).
- :class:`Genotype`: per node, the two strongest incoming edges, each with its strongest
  operation other than ``none`` (:func:`derive_genotype`, DARTS' rule); JSON round trip.
- :class:`GenotypeCell`: the discrete cell of a genotype (same inputs, preprocessing and
  output as the search cell).
- :class:`CellNetwork`: the denoiser of one cascade: 3x3 convolution to C channels, stacked
  cells (searched, discrete, or DCCNN residual blocks), ReLU and 3x3 convolution to the output.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from .convolution import Conv2D

__all__ = [
    "OPERATIONS",
    "SEARCH_SPACES",
    "search_space_operations",
    "search_space_config",
    "edge_count",
    "CellOperation",
    "MixedOperation",
    "SearchCell",
    "Genotype",
    "derive_genotype",
    "GenotypeCell",
    "ResidualBlock",
    "CellNetwork",
]


# ---------------------------------------------------------------------------------------- operations


def _convolution(kernel_size: int, dilation: int = 1) -> Callable[[int], list]:
    def build(channels: int) -> list:
        return [Conv2D(channels, kernel_size, dilation_rate=dilation, padding="same", use_bias=False, name="conv")]

    return build


def _separable(kernel_size: int, dilation: int = 1) -> Callable[[int], list]:
    """One depthwise k x k (dilated) convolution, then one pointwise 1x1 convolution."""

    def build(channels: int) -> list:
        return [
            keras.layers.DepthwiseConv2D(
                kernel_size, dilation_rate=dilation, padding="same", use_bias=False, name="depthwise"
            ),
            Conv2D(channels, 1, padding="same", use_bias=False, name="pointwise"),
        ]

    return build


def _spatially_factorised(length: int) -> Callable[[int], list]:
    """A length x 1 convolution, then a 1 x length one (DARTS' conv_7x1_1x7 pair)."""

    def build(channels: int) -> list:
        return [
            Conv2D(channels, (length, 1), padding="same", use_bias=False, name="conv_column"),
            Conv2D(channels, (1, length), padding="same", use_bias=False, name="conv_row"),
        ]

    return build


#: The candidate operations by name: ``builder(channels) -> layers`` applied in order after a
#: ReLU; ``None`` for the two weightless ones (``none``: zero, ``skip_connect``: identity).
OPERATIONS: dict[str, Callable[[int], list] | None] = {
    "none": None,
    "skip_connect": None,
    "conv_3x3": _convolution(3),
    "conv_5x5": _convolution(5),
    "conv_7x7": _convolution(7),
    "dil2_conv_3x3": _convolution(3, 2),
    "dil3_conv_3x3": _convolution(3, 3),
    "sep_conv_3x3": _separable(3),
    "sep_conv_5x5": _separable(5),
    "sep_conv_7x7": _separable(7),
    "dil2_sep_conv_3x3": _separable(3, 2),
    "dil3_sep_conv_3x3": _separable(3, 3),
    "conv_9x1_1x9": _spatially_factorised(9),
}

#: Search spaces as lists of operation names: Yan et al.'s A and B (sec. 3.2.2; B replaces the
#: dilation-3 operation by the 9x1 / 1x9 pair) and FedAutoMRI's.
SEARCH_SPACES: dict[str, list[str]] = {
    "A": ["sep_conv_3x3", "dil2_sep_conv_3x3", "dil3_sep_conv_3x3", "skip_connect", "none"],
    "B": ["sep_conv_3x3", "dil2_sep_conv_3x3", "conv_9x1_1x9", "skip_connect", "none"],
    "fedautomri": [
        "conv_3x3",
        "conv_5x5",
        "conv_7x7",
        "dil2_conv_3x3",
        "dil3_conv_3x3",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "sep_conv_7x7",
    ],
}


def _check_operation(name: str) -> str:
    if name not in OPERATIONS:
        raise ValueError(f"operation: expected one of {sorted(OPERATIONS)}, got {name!r}.")
    return name


def search_space_operations(search_space: str | Sequence[str]) -> list[str]:
    """The operation names of a search space: a name of :data:`SEARCH_SPACES` or a list of names."""
    if isinstance(search_space, str):
        if search_space not in SEARCH_SPACES:
            raise ValueError(f"search_space: expected one of {sorted(SEARCH_SPACES)} or a list of operations, "
                             f"got {search_space!r}.")
        return list(SEARCH_SPACES[search_space])
    names = [_check_operation(str(name)) for name in search_space]
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"search_space: expected distinct operation names, got {names}.")
    return names


def search_space_config(search_space: str | Sequence[str]) -> str | list[str]:
    """A search space as stored in a config: its name, or its list of operation names."""
    return search_space if isinstance(search_space, str) else list(search_space)


def edge_count(n_nodes: int) -> int:
    """Edges of a search cell: node i has i + 2 inputs, so 2 + 3 + ... + (n_nodes + 1)."""
    return n_nodes * (n_nodes + 3) // 2


def _edge_offsets(n_nodes: int) -> list[int]:
    """Row of alpha where node i's edges start."""
    return [i * (i + 3) // 2 for i in range(n_nodes)]


def _build_once(layer, *shapes) -> None:
    """Build a sub-layer unless built (a model's ``build`` runs again when it is deserialised)."""
    if not layer.built:
        layer.build(*shapes)


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class CellOperation(keras.layers.Layer):
    """The operation ``operation`` of :data:`OPERATIONS` on ``channels`` channels.

    x: float32 (batch, H, W, channels) -> float32 (batch, H, W, channels).
    """

    def __init__(self, operation: str, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.operation = _check_operation(operation)
        self.channels = int(channels)
        builder = OPERATIONS[operation]
        self.convolutions = builder(self.channels) if builder is not None else []

    def build(self, input_shape):
        shape = (None, None, None, self.channels)
        for layer in self.convolutions:
            _build_once(layer, shape)

    def call(self, x):
        if self.operation == "none":
            return tf.zeros_like(x)
        if self.operation == "skip_connect":
            return x
        x = tf.nn.relu(x)
        for layer in self.convolutions:
            x = layer(x)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(operation=self.operation, channels=self.channels)
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class MixedOperation(keras.layers.Layer):
    """sum_k softmax(alpha)_k op_k(x) over the operations of ``search_space``.

    x: float32 (batch, H, W, channels); alpha: float32 (n_operations,) logits -> like x.
    """

    def __init__(self, search_space: str | Sequence[str], channels: int, **kwargs):
        super().__init__(**kwargs)
        self.search_space = search_space_config(search_space)
        self.channels = int(channels)
        self.operations = [
            CellOperation(name, self.channels, name=name) for name in search_space_operations(search_space)
        ]

    def build(self, x_shape, alpha_shape=None):
        for operation in self.operations:
            _build_once(operation, (None, None, None, self.channels))

    def call(self, x, alpha):
        weights = tf.nn.softmax(alpha)
        return tf.add_n([weights[k] * operation(x) for k, operation in enumerate(self.operations)])

    def get_config(self):
        config = super().get_config()
        config.update(search_space=self.search_space, channels=self.channels)
        return config


def _preprocessing(channels: int) -> list:
    return [Conv2D(channels, 1, padding="same", use_bias=False, name=f"preprocess_{k}") for k in range(2)]


def _preprocess(convolutions, prev_prev, prev) -> list:
    """States 0 and 1 of a cell: ReLU + 1x1 convolution of C_{l-2} and C_{l-1}."""
    return [conv(tf.nn.relu(x)) for conv, x in zip(convolutions, (prev_prev, prev))]


def _build_preprocessing(convolutions, prev_prev_shape, prev_shape) -> None:
    for conv, shape in zip(convolutions, (prev_prev_shape, prev_shape)):
        _build_once(conv, (None, None, None, int(shape[-1])))


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class SearchCell(keras.layers.Layer):
    """The continuous relaxation of a cell: every edge a :class:`MixedOperation`.

    prev_prev (C_{l-2}), prev (C_{l-1}): float32 (batch, H, W, any channels); alpha: float32
    (``edge_count(n_nodes)``, n_operations) logits, node 0's edges (from states 0, 1) first, then
    node 1's (states 0, 1, 2), ... -> float32 (batch, H, W, n_nodes * channels).
    """

    def __init__(self, n_nodes: int = 3, channels: int = 32, search_space: str | Sequence[str] = "A", **kwargs):
        super().__init__(**kwargs)
        if int(n_nodes) < 1:
            raise ValueError(f"n_nodes: expected a positive integer, got {n_nodes}.")
        self.n_nodes = int(n_nodes)
        self.channels = int(channels)
        self.search_space = search_space_config(search_space)
        self.preprocessing = _preprocessing(self.channels)
        self.edges = [
            [MixedOperation(search_space, self.channels, name=f"node_{i}_edge_{j}") for j in range(i + 2)]
            for i in range(self.n_nodes)
        ]

    def build(self, prev_prev_shape, prev_shape, alpha_shape=None):
        _build_preprocessing(self.preprocessing, prev_prev_shape, prev_shape)
        for node in self.edges:
            for edge in node:
                _build_once(edge, (None, None, None, self.channels))

    def call(self, prev_prev, prev, alpha):
        states = _preprocess(self.preprocessing, prev_prev, prev)
        for offset, node in zip(_edge_offsets(self.n_nodes), self.edges):
            incoming = [edge(state, alpha[offset + j]) for j, (edge, state) in enumerate(zip(node, states))]
            states.append(tf.add_n(incoming))
        return tf.concat(states[2:], axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(n_nodes=self.n_nodes, channels=self.channels, search_space=self.search_space)
        return config


# ---------------------------------------------------------------------------------------- genotypes


@dataclasses.dataclass(frozen=True)
class Genotype:
    """A discrete cell: per node, its incoming edges as (operation name, input state) pairs.

    States: 0 = C_{l-2}, 1 = C_{l-1}, 2 + i = node i; node i takes states < i + 2. The cell
    output is the concatenation of all nodes. JSON form (:meth:`to_config`, :meth:`to_json`):
    ``[[["sep_conv_3x3", 0], ["skip_connect", 1]], ...]``, one list per node.
    """

    nodes: tuple[tuple[tuple[str, int], ...], ...]

    def __post_init__(self):
        nodes = tuple(tuple((str(op), int(state)) for op, state in node) for node in self.nodes)
        if not nodes:
            raise ValueError("genotype: expected at least one node.")
        for i, node in enumerate(nodes):
            if not node:
                raise ValueError(f"genotype: node {i} has no incoming edge.")
            for op, state in node:
                _check_operation(op)
                if op == "none":
                    raise ValueError(f"genotype: node {i} uses 'none', which a derived genotype never holds.")
                if not 0 <= state < i + 2:
                    raise ValueError(f"genotype: node {i} takes input state {state}, expected 0 ... {i + 1}.")
        object.__setattr__(self, "nodes", nodes)

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @classmethod
    def parse(cls, genotype: "Genotype | Sequence | str | os.PathLike") -> "Genotype":
        """A Genotype from itself, its config (nested lists), its JSON text or the path of a JSON
        file holding it (``genotype.json`` of ``fastmri-zoo search``; relative to the working folder)."""
        if isinstance(genotype, Genotype):
            return genotype
        if isinstance(genotype, os.PathLike) or (isinstance(genotype, str) and not genotype.lstrip().startswith("[")):
            path = os.fspath(genotype)
            try:
                with open(path, encoding="utf-8") as file:
                    genotype = json.load(file)
            except OSError as error:
                raise ValueError(f"genotype: expected nested lists, their JSON text or a JSON file; cannot read "
                                 f"{path!r} ({error.strerror}).") from None
            except ValueError as error:
                raise ValueError(f"genotype: {path} is not valid JSON ({error}).") from None
        elif isinstance(genotype, str):
            genotype = json.loads(genotype)
        return cls(tuple(tuple(tuple(edge) for edge in node) for node in genotype))

    def to_config(self) -> list:
        return [[[op, state] for op, state in node] for node in self.nodes]

    def to_json(self) -> str:
        return json.dumps(self.to_config())


def derive_genotype(alpha, search_space: str | Sequence[str], n_nodes: int, edges_per_node: int = 2) -> Genotype:
    """DARTS' rule: per node the ``edges_per_node`` strongest incoming edges, each with its
    strongest operation other than ``none``.

    alpha: (``edge_count(n_nodes)``, n_operations) logits as :class:`SearchCell` takes them. An
    edge's strength is the largest softmax weight of its operations other than ``none``; ties go
    to the lower index. The chosen edges of a node are listed by input state.
    """
    names = search_space_operations(search_space)
    alpha = np.asarray(alpha, np.float64)
    if alpha.shape != (edge_count(n_nodes), len(names)):
        raise ValueError(f"alpha: expected shape {(edge_count(n_nodes), len(names))}, got {alpha.shape}.")
    candidates = [k for k, name in enumerate(names) if name != "none"]
    if not candidates:
        raise ValueError("search_space: expected an operation other than 'none'.")
    weights = np.exp(alpha - alpha.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    nodes = []
    for i, offset in enumerate(_edge_offsets(n_nodes)):
        rows = weights[offset : offset + i + 2][:, candidates]
        best = rows.argmax(axis=1)
        strength = rows.max(axis=1)
        chosen = sorted(np.argsort(-strength, kind="stable")[:edges_per_node])
        nodes.append(tuple((names[candidates[best[j]]], int(j)) for j in chosen))
    return Genotype(tuple(nodes))


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class GenotypeCell(keras.layers.Layer):
    """The discrete cell of a :class:`Genotype` (its JSON form or the object).

    prev_prev (C_{l-2}), prev (C_{l-1}): float32 (batch, H, W, any channels) ->
    float32 (batch, H, W, n_nodes * channels).
    """

    def __init__(self, genotype, channels: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.genotype = Genotype.parse(genotype).to_config()
        self.channels = int(channels)
        self.preprocessing = _preprocessing(self.channels)
        self.edges = [
            [CellOperation(op, self.channels, name=f"node_{i}_edge_{state}") for op, state in node]
            for i, node in enumerate(self.genotype)
        ]

    def build(self, prev_prev_shape, prev_shape):
        _build_preprocessing(self.preprocessing, prev_prev_shape, prev_shape)
        for node in self.edges:
            for edge in node:
                _build_once(edge, (None, None, None, self.channels))

    def call(self, prev_prev, prev):
        states = _preprocess(self.preprocessing, prev_prev, prev)
        for node, operations in zip(self.genotype, self.edges):
            states.append(tf.add_n([operation(states[state]) for (_, state), operation in zip(node, operations)]))
        return tf.concat(states[2:], axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(genotype=self.genotype, channels=self.channels)
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class ResidualBlock(keras.layers.Layer):
    """DCCNN-3res' block: ReLU(x + conv(ReLU(conv(x)))), two 3x3 convolutions with bias.

    Called like a cell, ``block(prev_prev, prev)``, it uses ``prev`` only. prev: float32
    (batch, H, W, channels) -> same shape.
    """

    def __init__(self, channels: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.convolutions = [Conv2D(self.channels, 3, padding="same", name=f"conv_{k}") for k in range(2)]

    def build(self, prev_prev_shape, prev_shape):
        for conv in self.convolutions:
            _build_once(conv, (None, None, None, self.channels))

    def call(self, prev_prev, prev):
        return tf.nn.relu(prev + self.convolutions[1](tf.nn.relu(self.convolutions[0](prev))))

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels)
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class CellNetwork(keras.layers.Layer):
    """The denoiser module of one cascade: head, ``n_cells`` stacked cells, tail.

    head: 3x3 convolution (bias) to ``channels``; cell l takes (C_{l-2}, C_{l-1}) (the head's
    output for both of the first cell); tail: ReLU and 3x3 convolution (bias) to ``n_outputs``.
    ``cell``: ``"search"`` (:class:`SearchCell` of ``n_nodes`` nodes over ``search_space``; the
    call then takes ``alpha``), ``"residual"`` (:class:`ResidualBlock`, the DCCNN-3res
    baseline) or a genotype (:class:`GenotypeCell`, its nodes give ``n_nodes``).
    x: float32 (batch, H, W, C_in) -> float32 (batch, H, W, n_outputs).
    """

    def __init__(
        self,
        cell="search",
        channels: int = 32,
        n_cells: int = 3,
        n_nodes: int = 3,
        search_space: str | Sequence[str] = "A",
        n_outputs: int = 2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.searching = isinstance(cell, str) and cell == "search"
        if isinstance(cell, str) and cell in ("search", "residual"):
            self.cell = cell
        else:
            genotype = Genotype.parse(cell)
            self.cell = genotype.to_config()
            n_nodes = genotype.n_nodes
        self.channels = int(channels)
        self.n_cells = int(n_cells)
        self.n_nodes = int(n_nodes)
        self.search_space = search_space_config(search_space)
        self.n_outputs = int(n_outputs)
        self.head = Conv2D(self.channels, 3, padding="same", name="head")
        self.cells = [self._make_cell(f"cell_{l}") for l in range(self.n_cells)]
        self.tail = Conv2D(self.n_outputs, 3, padding="same", name="tail")

    def _make_cell(self, name: str) -> keras.layers.Layer:
        if self.cell == "search":
            return SearchCell(self.n_nodes, self.channels, self.search_space, name=name)
        if self.cell == "residual":
            return ResidualBlock(self.channels, name=name)
        return GenotypeCell(self.cell, self.channels, name=name)

    @property
    def cell_channels(self) -> int:
        """Channels of a cell's output."""
        return self.channels if self.cell == "residual" else self.n_nodes * self.channels

    def build(self, x_shape, alpha_shape=None):
        _build_once(self.head, x_shape)
        prev_prev = prev = (None, None, None, self.channels)
        for cell in self.cells:
            _build_once(cell, prev_prev, prev)
            prev_prev, prev = prev, (None, None, None, self.cell_channels)
        _build_once(self.tail, prev)

    def call(self, x, alpha=None, training=None):
        if self.searching and alpha is None:
            raise ValueError("alpha: a searching CellNetwork needs the architecture weights.")
        prev_prev = prev = self.head(x)
        for cell in self.cells:
            out = cell(prev_prev, prev, alpha) if self.searching else cell(prev_prev, prev)
            prev_prev, prev = prev, out
        return self.tail(tf.nn.relu(prev))

    def get_config(self):
        config = super().get_config()
        config.update(
            cell=self.cell,
            channels=self.channels,
            n_cells=self.n_cells,
            n_nodes=self.n_nodes,
            search_space=self.search_space,
            n_outputs=self.n_outputs,
        )
        return config
