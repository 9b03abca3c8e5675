"""Invertible layers of the i-RIM (Putzky & Welling 2019, "Invert to Learn to Invert") and invert to learn.

Every layer here maps channels-last float32 tensors (batch, H, W, C), or
(batch, D, H, W, C) with ``ndim=3``, to tensors of the same shape, and has an
exact inverse (``inverse``):

- :class:`HouseholderConv`: the orthogonal 1x1 convolution U = H_1 ... H_D, a
  product of D Householder reflections H_k = I - 2 v_k v_k^T / |v_k|^2 with
  learned v_k (exactly orthogonal for any v_k: the inverse is U^T);
- :class:`PixelShuffleBlock`: the residual function G of a coupling: a
  convolution of kernel d and stride d (down), a 3x3 convolution, a transposed
  convolution of kernel d and stride d (up), weight normalisation on each, ReLU
  between them, a GLU at the output, no bias on the last. A convolution of
  kernel d and stride d is a space-to-depth rearrangement followed by a 1x1
  convolution, and its transpose a 1x1 convolution followed by depth-to-space
  (non-overlapping blocks): that is how they are computed, so every convolution
  is a stride-1 "same" one with the zoo's fast gradients. In 3D the blocks are
  1 x d x d (no down-sampling along the slices, as in the authors' code);
- :class:`AdditiveCoupling`: on the first ``channels`` channels, split into
  x_1 (the first half) and x_2: y_1 = x_1, y_2 = x_2 + G(x_1); the other
  channels pass through;
- :class:`InvertibleLayer`: y = U^T coupling(U x) (eqs. 12-15 of the paper);
- :class:`InvertibleUNet`: a sequence of invertible layers with per-layer
  (coupling channels, hidden channels, d), by default the authors' "fanned"
  d = 1, 1, 2, 2, 4, 8, 8, 4, 2, 2, 1, 1;
- :class:`GradientCoupling`: the data step of an i-RIM (no weights): the
  gradient A^H (A x - y) of the image x held in the first two channels (real,
  imaginary) is added to the next two; it is undone by subtracting it again.

:func:`invert_to_learn` runs a sequence of such stages under one
``tf.custom_gradient``: the forward pass keeps only its output, and the
backward pass recomputes each stage's input by inverting the stage and takes
its local gradient on the fly, so training memory does not grow with depth.
"""

from __future__ import annotations

import math
from typing import Protocol, Sequence

import keras
import tensorflow as tf

from ..checks import check_scalar, static_shape
from .blocks import _check_ndim
from .convolution import Conv2D, Conv3D
from .data_consistency import data_gradient

__all__ = [
    "householder_matrix",
    "WeightNormConv2D",
    "WeightNormConv3D",
    "HouseholderConv",
    "PixelShuffleBlock",
    "AdditiveCoupling",
    "InvertibleLayer",
    "InvertibleUNet",
    "GradientCoupling",
    "InvertibleStage",
    "invert_to_learn",
    "FANNED_DOWNSAMPLING",
    "build_once",
]

#: The authors' per-layer down-sampling factors d of one i-RIM step (their ``--dilations``).
FANNED_DOWNSAMPLING = (1, 1, 2, 2, 4, 8, 8, 4, 2, 2, 1, 1)


def _check_channels(name: str, x, expected: int, layout: str) -> None:
    channels = static_shape(x)[-1]
    if channels is not None and channels != expected:
        raise ValueError(f"{name}: expected {expected} channels {layout}, got shape {static_shape(x)}.")


def build_once(layer: keras.layers.Layer, input_shape) -> None:
    """``layer.build(input_shape)`` unless it is built (a model may be built again, e.g. after loading)."""
    if not layer.built:
        layer.build(input_shape)


# --------------------------------------------------------------------------- weight normalisation


class _WeightNormalization:
    """Mixin: kernel = g v / |v| (Salimans & Kingma 2016), one gain g per output channel.

    ``blocks`` = P > 1: the output channels are ordered (block position p, channel c), the layout a
    transposed convolution of kernel d (P = d^2) has before depth-to-space; channel c's norm is then
    taken over all inputs and all P positions, as for the transposed convolution itself. The gains
    start at the norms of the initial kernel, so the initial convolution is the plain one.
    """

    def __init__(self, *args, blocks: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.blocks = int(blocks)
        if self.blocks < 1 or self.filters % self.blocks:
            raise ValueError(f"blocks: expected a positive divisor of filters={self.filters}, got {blocks}.")

    def build(self, input_shape):
        super().build(input_shape)
        self.gain = self.add_weight(
            shape=(self.filters // self.blocks,),
            initializer=lambda shape, dtype=None: tf.cast(self._norms(self.kernel), dtype or "float32"),
            name="gain",
        )

    def _norms(self, kernel) -> tf.Tensor:
        grouped = tf.reshape(kernel, (-1, self.blocks, self.filters // self.blocks))
        return tf.sqrt(tf.reduce_sum(tf.square(grouped), axis=(0, 1)))

    def normalized_kernel(self, kernel=None) -> tf.Tensor:
        """g v / |v| for the kernel v (by default the layer's)."""
        kernel = tf.convert_to_tensor(self.kernel if kernel is None else kernel)
        factor = tf.tile(tf.convert_to_tensor(self.gain) / self._norms(kernel), [self.blocks])
        return kernel * factor

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, self.normalized_kernel(kernel))

    # Keras' convolutions save only their kernel and bias: save and load every variable, the gains too.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        return {**super().get_config(), "blocks": self.blocks}


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class WeightNormConv2D(_WeightNormalization, Conv2D):
    """The zoo's :class:`Conv2D` with weight normalisation (a ``gain`` per output channel)."""


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class WeightNormConv3D(_WeightNormalization, Conv3D):
    """The zoo's :class:`Conv3D` with weight normalisation (a ``gain`` per output channel)."""


_WEIGHT_NORM_CONV = {2: WeightNormConv2D, 3: WeightNormConv3D}


# --------------------------------------------------------------------------- orthogonal 1x1 convolution


def householder_matrix(vectors: tf.Tensor) -> tf.Tensor:
    """U = H_1 H_2 ... H_D with H_k = I - 2 v_k v_k^T / |v_k|^2; vectors: (D, C) -> (C, C), orthogonal."""
    vectors = tf.convert_to_tensor(vectors)
    channels = vectors.shape[-1]
    matrix = tf.eye(channels, dtype=vectors.dtype)
    for k in range(vectors.shape[0]):
        v = vectors[k][:, None]
        reflection = tf.eye(channels, dtype=vectors.dtype) - 2.0 * tf.matmul(v, v, transpose_b=True) / tf.reduce_sum(
            tf.square(v)
        )
        matrix = tf.matmul(matrix, reflection)
    return matrix


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class HouseholderConv(keras.layers.Layer):
    """Orthogonal 1x1 convolution x -> U x of the channels, U a product of Householder reflections.

    n_reflections: D (3 in the paper; at most the number of channels); the vectors v_k
    (``vectors``, (D, C)) start standard normal, as in the authors' code. Works on any
    number of spatial axes. ``inverse(y)`` = U^T y.
    """

    def __init__(self, n_reflections: int = 3, **kwargs):
        super().__init__(**kwargs)
        if int(n_reflections) < 1:
            raise ValueError(f"n_reflections: expected a positive integer, got {n_reflections}.")
        self.n_reflections = int(n_reflections)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.vectors = self.add_weight(
            shape=(min(self.n_reflections, channels), channels),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="vectors",
        )

    def matrix(self) -> tf.Tensor:
        """U, float32 (C, C)."""
        return householder_matrix(self.vectors)

    def _apply(self, x, transpose: bool):
        _check_channels("x", x, int(self.vectors.shape[-1]), "(the channels this layer was built for)")
        # (U x)_i = sum_j U_ij x_j on the last axis; (U^T y)_j = sum_i U_ij y_i.
        equation = "...i,ij->...j" if transpose else "...j,ij->...i"
        return tf.einsum(equation, x, self.matrix())

    def call(self, x):
        return self._apply(x, transpose=False)

    def inverse(self, y):
        return self._apply(y, transpose=True)

    def get_config(self):
        return {**super().get_config(), "n_reflections": self.n_reflections}


# --------------------------------------------------------------------------- the residual function G


def _merge_slices(x, ndim: int):
    """(batch, D, H, W, C) -> (batch * D, H, W, C) in 3D (the 1 x d x d blocks are 2D); 2D unchanged."""
    if ndim == 2:
        return x
    shape = tf.shape(x)
    return tf.reshape(x, tf.concat([[-1], shape[2:]], 0))


def _split_slices(x, like, ndim: int):
    """Inverse of :func:`_merge_slices`, with the batch and depth of ``like``."""
    if ndim == 2:
        return x
    return tf.reshape(x, tf.concat([tf.shape(like)[:2], tf.shape(x)[1:]], 0))


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class PixelShuffleBlock(keras.layers.Layer):
    """G: down (kernel d, stride d) -> ReLU -> 3x3 -> ReLU -> up (transposed, kernel d, stride d) -> GLU.

    x: float32 (batch, H, W, C_in) (3D: (batch, D, H, W, C_in), blocks 1 x d x d) with H and W
    multiples of d; returns (batch, H, W, n_outputs). Convolutions: ``down`` (1x1 on the
    space-to-depth blocks, C_in d^2 -> hidden), ``middle`` (``kernel_size``, hidden -> hidden, 3D in
    3D), ``up`` (1x1 to d^2 (2 n_outputs) channels, no bias, then depth-to-space), each weight
    normalised. GLU: the first n_outputs channels times the sigmoid of the other n_outputs
    (``glu=False``: the up convolution gives n_outputs channels directly).
    """

    def __init__(
        self,
        n_outputs: int,
        hidden_channels: int = 64,
        downsampling: int = 1,
        kernel_size: int = 3,
        glu: bool = True,
        ndim: int = 2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_outputs = check_scalar("n_outputs", n_outputs, integer=True, at_least=1)
        self.hidden_channels = check_scalar("hidden_channels", hidden_channels, integer=True, at_least=1)
        self.downsampling = check_scalar("downsampling", downsampling, integer=True, at_least=1)
        self.kernel_size = check_scalar("kernel_size", kernel_size, integer=True, at_least=1)
        self.glu = bool(glu)
        self.ndim = _check_ndim(ndim)
        blocks = self.downsampling**2
        outputs = self.n_outputs * (2 if self.glu else 1)
        self.down = WeightNormConv2D(self.hidden_channels, 1, name="down")
        self.middle = _WEIGHT_NORM_CONV[self.ndim](
            self.hidden_channels, self.kernel_size, padding="same", name="middle"
        )
        self.up = WeightNormConv2D(outputs * blocks, 1, use_bias=False, blocks=blocks, name="up")

    def build(self, input_shape):
        channels = int(input_shape[-1])
        build_once(self.down, (None, None, None, channels * self.downsampling**2))
        build_once(self.middle, (None,) * (self.ndim + 1) + (self.hidden_channels,))
        build_once(self.up, (None, None, None, self.hidden_channels))

    def check_size(self, x) -> None:
        """A ValueError when H or W is not a multiple of d (the blocks could not be put back)."""
        spatial = static_shape(x)[-3:-1]
        if any(n is not None and n % self.downsampling for n in spatial):
            raise ValueError(
                f"x: {self.name} down-samples by {self.downsampling}, so H and W must be multiples of "
                f"{self.downsampling}; got shape {static_shape(x)}."
            )

    def call(self, x):
        self.check_size(x)
        d = self.downsampling
        merged = _merge_slices(x, self.ndim)
        blocks = tf.nn.space_to_depth(merged, d) if d > 1 else merged
        hidden = tf.nn.relu(self.down(blocks))
        hidden = _merge_slices(tf.nn.relu(self.middle(_split_slices(hidden, x, self.ndim))), self.ndim)
        out = self.up(hidden)
        out = _split_slices(tf.nn.depth_to_space(out, d) if d > 1 else out, x, self.ndim)
        if self.glu:
            value, gate = tf.split(out, 2, axis=-1)
            out = value * tf.sigmoid(gate)
        return out

    def get_config(self):
        return {
            **super().get_config(),
            "n_outputs": self.n_outputs,
            "hidden_channels": self.hidden_channels,
            "downsampling": self.downsampling,
            "kernel_size": self.kernel_size,
            "glu": self.glu,
            "ndim": self.ndim,
        }


# --------------------------------------------------------------------------- coupling and invertible layer


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class AdditiveCoupling(keras.layers.Layer):
    """y_1 = x_1, y_2 = x_2 + G(x_1) on the first ``channels`` channels; the others pass through.

    x_1: the first channels // 2 channels, x_2: the next channels - channels // 2; G is a
    :class:`PixelShuffleBlock` (``hidden_channels``, ``downsampling``). ``inverse``: x_2 = y_2 - G(y_1).
    """

    def __init__(self, channels: int, hidden_channels: int = 64, downsampling: int = 1, ndim: int = 2, **kwargs):
        super().__init__(**kwargs)
        if int(channels) < 2:
            raise ValueError(f"channels: a coupling splits its channels in two, so at least 2, got {channels}.")
        self.channels = int(channels)
        self.hidden_channels = int(hidden_channels)
        self.downsampling = int(downsampling)
        self.ndim = _check_ndim(ndim)
        self.n_left = self.channels // 2
        self.residual = PixelShuffleBlock(
            self.channels - self.n_left, self.hidden_channels, self.downsampling, ndim=self.ndim, name="residual"
        )

    def build(self, input_shape):
        if input_shape[-1] is not None and int(input_shape[-1]) < self.channels:
            raise ValueError(
                f"input_shape: {self.name} couples {self.channels} channels, got {input_shape[-1]} channels."
            )
        build_once(self.residual, tuple(input_shape[:-1]) + (self.n_left,))

    def _couple(self, x, sign: float):
        left, right, rest = x[..., : self.n_left], x[..., self.n_left : self.channels], x[..., self.channels :]
        return tf.concat([left, right + sign * self.residual(left), rest], axis=-1)

    def call(self, x):
        return self._couple(x, 1.0)

    def inverse(self, y):
        return self._couple(y, -1.0)

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "hidden_channels": self.hidden_channels,
            "downsampling": self.downsampling,
            "ndim": self.ndim,
        }


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class InvertibleLayer(keras.layers.Layer):
    """y = U^T coupling(U x): an orthogonal 1x1 convolution (:class:`HouseholderConv`) over all channels,
    an :class:`AdditiveCoupling` of the first ``channels`` of them, and U^T. ``inverse``: x = U^T
    coupling^-1(U y)."""

    def __init__(
        self,
        channels: int,
        hidden_channels: int = 64,
        downsampling: int = 1,
        n_reflections: int = 3,
        ndim: int = 2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.hidden_channels = int(hidden_channels)
        self.downsampling = int(downsampling)
        self.n_reflections = int(n_reflections)
        self.ndim = _check_ndim(ndim)
        self.rotation = HouseholderConv(self.n_reflections, name="rotation")
        self.coupling = AdditiveCoupling(
            self.channels, self.hidden_channels, self.downsampling, self.ndim, name="coupling"
        )

    def build(self, input_shape):
        build_once(self.rotation, input_shape)
        build_once(self.coupling, input_shape)

    def call(self, x):
        return self.rotation.inverse(self.coupling(self.rotation(x)))

    def inverse(self, y):
        return self.rotation.inverse(self.coupling.inverse(self.rotation(y)))

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "hidden_channels": self.hidden_channels,
            "downsampling": self.downsampling,
            "n_reflections": self.n_reflections,
            "ndim": self.ndim,
        }


def _per_layer(name: str, value, count: int) -> list[int]:
    values = [int(value)] * count if isinstance(value, int) else [int(v) for v in value]
    if len(values) != count or min(values) < 1:
        raise ValueError(f"{name}: expected a positive int or {count} positive ints (one per layer), got {value!r}.")
    return values


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class InvertibleUNet(keras.layers.Layer):
    """One step network of the i-RIM: invertible layers ``layer_0``, ``layer_1``, ... applied in turn.

    state_channels: C, the channels of the state (input and output, (batch, *spatial, C));
    downsampling: d of each layer (the number of layers; default :data:`FANNED_DOWNSAMPLING`);
    hidden_channels: the width of each layer's G (an int for all); coupling_channels: how many of
    the C channels each layer couples (default all). H and W must be multiples of every d.
    ``inverse`` undoes ``call``; ``stages()`` lists the layers for :func:`invert_to_learn`.
    """

    def __init__(
        self,
        state_channels: int = 64,
        hidden_channels: int | Sequence[int] = 64,
        downsampling: Sequence[int] = FANNED_DOWNSAMPLING,
        coupling_channels: int | Sequence[int] | None = None,
        n_reflections: int = 3,
        ndim: int = 2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.state_channels = int(state_channels)
        self.downsampling = _per_layer("downsampling", list(downsampling), len(downsampling))
        count = len(self.downsampling)
        if count < 1:
            raise ValueError("downsampling: expected at least one layer, got none.")
        self.hidden_channels = _per_layer("hidden_channels", hidden_channels, count)
        self.coupling_channels = _per_layer(
            "coupling_channels", self.state_channels if coupling_channels is None else coupling_channels, count
        )
        if not all(2 <= c <= self.state_channels for c in self.coupling_channels):
            raise ValueError(
                f"coupling_channels: expected values in [2, state_channels={self.state_channels}], "
                f"got {self.coupling_channels}."
            )
        self.n_reflections = int(n_reflections)
        self.ndim = _check_ndim(ndim)
        self.invertible_layers = [
            InvertibleLayer(c, h, d, self.n_reflections, self.ndim, name=f"layer_{i}")
            for i, (c, h, d) in enumerate(zip(self.coupling_channels, self.hidden_channels, self.downsampling))
        ]

    @property
    def size_multiple(self) -> int:
        """The number H and W must be multiples of: the least common multiple of the d."""
        return math.lcm(*self.downsampling)

    def build(self, input_shape):
        self.check_state_shape(input_shape)
        for layer in self.invertible_layers:
            build_once(layer, input_shape)

    def check_state_shape(self, shape) -> None:
        """A ValueError when a state of ``shape`` has not C channels and ndim spatial axes."""
        shape = tuple(shape)
        if len(shape) != self.ndim + 2 or (shape[-1] is not None and int(shape[-1]) != self.state_channels):
            axes = "H, W" if self.ndim == 2 else "D, H, W"
            raise ValueError(
                f"state: {self.name} expects (batch, {axes}, {self.state_channels}) (state_channels="
                f"{self.state_channels}), got shape {shape}."
            )

    def stages(self) -> list:
        return list(self.invertible_layers)

    def call(self, x):
        self.check_state_shape(static_shape(x))
        for layer in self.invertible_layers:
            x = layer(x)
        return x

    def inverse(self, y):
        self.check_state_shape(static_shape(y))
        for layer in reversed(self.invertible_layers):
            y = layer.inverse(y)
        return y

    def get_config(self):
        return {
            **super().get_config(),
            "state_channels": self.state_channels,
            "hidden_channels": list(self.hidden_channels),
            "downsampling": list(self.downsampling),
            "coupling_channels": list(self.coupling_channels),
            "n_reflections": self.n_reflections,
            "ndim": self.ndim,
        }


# --------------------------------------------------------------------------- the data step


class GradientCoupling:
    """The i-RIM's data step: s -> s with channels 2, 3 increased by the gradient A^H (A x - y) of the
    image x = s[..., 0] + i s[..., 1]. The image channels are unchanged, so ``inverse`` subtracts the
    same gradient (the authors' code: the gradient goes to the channels after the image).

    operator: a ``physics.LinearOperator``; measurements: y. State: float32 (batch, *spatial, C), C >= 4.
    No weights (``trainable_weights`` is empty).
    """

    trainable_weights: tuple = ()

    def __init__(self, operator, measurements):
        self.operator = operator
        self.measurements = measurements

    def _update(self, state, sign: float):
        image = tf.complex(state[..., 0], state[..., 1])
        gradient = data_gradient(self.operator, image, self.measurements)
        update = tf.stack([tf.math.real(gradient), tf.math.imag(gradient)], axis=-1)
        return tf.concat([state[..., :2], state[..., 2:4] + sign * update, state[..., 4:]], axis=-1)

    def call(self, state):
        return self._update(state, 1.0)

    def inverse(self, state):
        return self._update(state, -1.0)


# --------------------------------------------------------------------------- invert to learn


class InvertibleStage(Protocol):
    """What :func:`invert_to_learn` needs of a stage: ``call``, its exact ``inverse`` and its weights."""

    trainable_weights: Sequence

    def call(self, x): ...

    def inverse(self, y): ...


def _unique(variables) -> list:
    seen, unique = set(), []
    for variable in variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            unique.append(variable)
    return unique


def invert_to_learn(stages: Sequence[InvertibleStage], x: tf.Tensor) -> tf.Tensor:
    """stages[-1](... stages[0](x)), with gradients by invert to learn (memory independent of depth).

    One ``tf.custom_gradient`` around the whole sequence. The stages' weights are explicit inputs
    (read once here, so the caller's tape connects them to the variables); inside, the forward pass
    runs on ``tf.stop_gradient`` copies with the variables mapped to them (``keras.StatelessScope``),
    so no tape records it and only x, the weights and the output are kept. Backward, stage by stage
    from the last: the stage's input is recomputed by its ``inverse`` from its output, then the
    stage is run again under a local tape for the gradients of its input and weights (about twice
    the compute of plain backpropagation). In a ``tf.function`` each reconstruction waits for the
    incoming gradient (a control dependency), so it is not scheduled during the forward pass.

    Gradients reach x and the stages' trainable weights only: tensors the stages capture (e.g. the
    measurements and coil maps of a :class:`GradientCoupling`) are constants to this gradient.
    x: float32, any shape the stages take.
    """
    stages = list(stages)
    variables = _unique(v for stage in stages for v in stage.trainable_weights)
    index = {id(v): i for i, v in enumerate(variables)}
    weights = [tf.convert_to_tensor(v) for v in variables]

    @tf.custom_gradient
    def network(x, *weights):
        weights = [tf.stop_gradient(w) for w in weights]
        state = tf.stop_gradient(x)
        with keras.StatelessScope(state_mapping=list(zip(variables, weights))):
            for stage in stages:
                state = stage.call(state)
        output = state

        def gradient(upstream):
            totals = [None] * len(variables)
            state, upstream = output, tf.convert_to_tensor(upstream)
            for stage in reversed(stages):
                with tf.control_dependencies([upstream]):
                    state = tf.identity(state)
                own = [weights[index[id(v)]] for v in stage.trainable_weights]
                with keras.StatelessScope(state_mapping=list(zip(variables, weights))):
                    state = tf.stop_gradient(stage.inverse(state))
                with tf.GradientTape() as tape:
                    tape.watch([state] + own)
                    with keras.StatelessScope(state_mapping=list(zip(variables, weights))):
                        result = stage.call(state)
                grads = tape.gradient(result, [state] + own, output_gradients=upstream)
                upstream = grads[0] if grads[0] is not None else tf.zeros_like(state)
                for v, g in zip(stage.trainable_weights, grads[1:]):
                    if g is not None:
                        i = index[id(v)]
                        totals[i] = g if totals[i] is None else totals[i] + g
            return [upstream] + [tf.zeros_like(w) if g is None else g for w, g in zip(weights, totals)]

        return output, gradient

    return network(tf.convert_to_tensor(x), *weights)
