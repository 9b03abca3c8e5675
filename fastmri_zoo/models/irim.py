"""Recurrent inference machines: the invertible i-RIM (Putzky & Welling 2019) and the RIM it builds on.

:class:`IRIM` trains with memory independent of its depth ("invert to learn",
``layers.invertible.invert_to_learn``); :class:`RIM` is the paper's baseline
(sec. 3.3). Both are unrolled networks on any acquisition whose operator gives
the gradient A^H (A x - y) (Cartesian single-coil, SENSE, the non-Cartesian
and gridded operators), 2D or 3D.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from ..checks import static_shape
from ..layers import channels_to_complex, complex_to_channels, data_gradient
from ..layers.invertible import FANNED_DOWNSAMPLING, GradientCoupling, InvertibleUNet, build_once, invert_to_learn
from ..layers.recurrent import RecurrentConvNet
from .unrolled import UnrolledModel

__all__ = ["IRIM", "RIM"]

#: G widths of the authors' single-coil fastMRI i-RIM (their ``--n_network_hidden``), with FANNED_DOWNSAMPLING.
FANNED_HIDDEN_CHANNELS = (64, 64, 128, 128, 256, 1024, 1024, 256, 128, 128, 64, 64)


def _plain_list(value):
    return value if isinstance(value, int) or value is None else [int(v) for v in value]


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class IRIM(UnrolledModel):
    """Invertible recurrent inference machine (i-RIM), ``n_iter`` steps with their own weights.

    The machine state s has ``state_channels`` (C >= 4) channels, float32 (batch, *spatial, C):
    channels 0, 1 the real and imaginary parts of the image x, the others latent. It starts as
    [A^H y, 0, ..., 0]. Each step t (eq. 10 of the paper) is

    - the data step (``layers.invertible.GradientCoupling``): channels 2, 3 += A^H (A x - y),
      computed from the image channels, which it leaves unchanged (the authors' code; so the
      step is undone exactly by subtracting the same gradient);
    - the step's network (``image_net_t``, a ``layers.InvertibleUNet``): invertible layers
      y = U^T coupling(U x) with per-layer ``downsampling`` d (default the authors' fanned
      1, 1, 2, 2, 4, 8, 8, 4, 2, 2, 1, 1), G widths ``hidden_channels`` (default theirs for
      single-coil fastMRI) and ``coupling_channels`` (default all C).

    The output is the image channels of the final state, complex64 (batch, *spatial).
    ``invert_to_learn=True``: training gradients by invert to learn (one ``tf.custom_gradient``
    around all steps; the inputs of every layer are recomputed by inverting it, so memory does not
    grow with ``n_iter``; the weights and the initial state A^H y get gradients, the measurements
    inside the data steps do not); ``False``: plain backpropagation through the same network.
    The image's H and W must be multiples of every d (lcm; 8 by default): checked before any
    computation. ``ndim=3``: 3D convolutions on (batch, D, H, W, C), down-sampling H and W only.

    The defaults (C = 64, 8 steps, the authors' widths) give a network of about 275 million
    weights; checkpoints for the CPU use smaller widths (their recipes say which).
    """

    def __init__(
        self,
        n_iter: int = 8,
        state_channels: int = 64,
        hidden_channels: int | Sequence[int] = FANNED_HIDDEN_CHANNELS,
        downsampling: Sequence[int] = FANNED_DOWNSAMPLING,
        coupling_channels: int | Sequence[int] | None = None,
        n_reflections: int = 3,
        invert_to_learn: bool = True,
        multicoil: bool = False,
        **kwargs,
    ):
        super().__init__(n_iter=n_iter, multicoil=multicoil, **kwargs)
        if int(state_channels) < 4:
            raise ValueError(
                "state_channels: the state holds the image (2 channels) and the gradient added to the next 2, "
                f"so at least 4, got {state_channels}."
            )
        self.state_channels = int(state_channels)
        self.hidden_channels = _plain_list(hidden_channels)
        self.downsampling = _plain_list(downsampling)
        self.coupling_channels = _plain_list(coupling_channels)
        self.n_reflections = int(n_reflections)
        self.invert_to_learn = bool(invert_to_learn)
        self.image_nets = [
            InvertibleUNet(
                self.state_channels, self.hidden_channels, self.downsampling, self.coupling_channels,
                self.n_reflections, ndim=self.ndim, name=f"image_net_{i}",
            )
            for i in range(self.n_iter)
        ]

    @classmethod
    def small_config(cls) -> dict:
        return dict(n_iter=2, state_channels=6, hidden_channels=8, downsampling=[1, 2])

    def build_layers(self) -> None:
        for net in self.image_nets:
            build_once(net, (None,) * (self.ndim + 1) + (self.state_channels,))

    @property
    def size_multiple(self) -> int:
        """H and W of the image must be multiples of this (the lcm of the down-sampling factors)."""
        return self.image_nets[0].size_multiple

    def check_inputs(self, inputs, image_shape=None) -> None:
        super().check_inputs(inputs, image_shape)
        if hasattr(self.acquisition, "image_shape_of"):
            size = self.acquisition.image_shape_of(inputs, image_shape, type(self).__name__)
        else:
            size = static_shape(inputs["kspace"])[-self.ndim:]
        multiple = self.size_multiple
        if any(n is not None and n % multiple for n in size[-2:]):
            raise ValueError(
                f"kspace: {type(self).__name__} down-samples H and W by factors {self.image_nets[0].downsampling}, "
                f"so the image's H and W must be multiples of {multiple}; got an image of size {tuple(size)}. "
                f"Zero-pad (or crop) k-space to multiples of {multiple}."
            )

    def initial_state(self, measurements, operator, training=None) -> tf.Tensor:
        """[Re A^H y, Im A^H y, 0, ..., 0], float32 (batch, *spatial, C)."""
        adjoint = operator.adjoint(measurements)
        zeros = tf.zeros(tf.concat([tf.shape(adjoint), [self.state_channels - 2]], 0), tf.float32)
        return tf.concat([tf.math.real(adjoint)[..., None], tf.math.imag(adjoint)[..., None], zeros], axis=-1)

    def data_step(self, i, state, measurements, operator, training=None):
        return GradientCoupling(operator, measurements).call(state)

    def prior_step(self, i, state, training=None):
        return self.image_nets[i](state, training=training)

    def output(self, state, measurements, operator):
        return tf.complex(state[..., 0], state[..., 1])

    def stages(self, measurements, operator) -> list:
        """Every invertible stage of the machine in order (data steps and invertible layers), each with
        ``call`` and its exact ``inverse``: ``invert_to_learn``'s input, and a way to run it backwards."""
        data = GradientCoupling(operator, measurements)
        return [stage for net in self.image_nets for stage in [data] + net.stages()]

    def call(self, inputs, training=None, image_shape=None):
        if not self.invert_to_learn:
            return super().call(inputs, training=training, image_shape=image_shape)
        measurements, operator = self.measurements_and_operator(inputs, image_shape, training=training)
        state = self.initial_state(measurements, operator, training=training)
        state = invert_to_learn(self.stages(measurements, operator), state)
        return self.output(state, measurements, operator)

    def get_config(self):
        config = super().get_config()
        config.update(
            state_channels=self.state_channels,
            hidden_channels=self.hidden_channels,
            downsampling=self.downsampling,
            coupling_channels=self.coupling_channels,
            n_reflections=self.n_reflections,
            invert_to_learn=self.invert_to_learn,
            multicoil=self.multicoil,
        )
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class RIM(UnrolledModel):
    """Recurrent inference machine, the baseline of Putzky & Welling (2019, sec. 3.3).

    One recurrent network (``layers.RecurrentConvNet``: conv 5x5 -> ConvGRU -> conv 3x3 dilation 2
    -> ConvGRU -> conv 3x3 dilation 2, ``hidden_channels`` wide) shared by the ``n_iter`` steps,
    its hidden states carried from step to step. From x_0 = A^H y, step t:
    g = A^H (A x_t - y); (delta, h) = net([x_t, g] as 4 real channels, h); x_{t+1} = x_t + delta.

    ``model(inputs)`` returns the last estimate, complex64 (batch, *spatial), which is what ``fit``
    trains. ``model(inputs, all_steps=True)`` returns the list of the ``n_iter`` estimates: the
    paper trains on the loss averaged over them, i.e. in a custom training step
    ``loss = sum(loss_fn(target, x) for x in model(inputs, training=True, all_steps=True)) / n_iter``.
    ``kernel_sizes`` / ``dilations`` of the three convolutions and ``gru_kernel_size`` (1, as in
    the authors' code) are configurable.
    """

    SHARED_PRIOR = True
    #: ``training.fit`` trains it on the loss averaged over the ``n_iter`` estimates (the paper's)
    LOSS_OVER_STEPS = True

    def __init__(
        self,
        n_iter: int = 8,
        hidden_channels: int = 64,
        kernel_sizes: Sequence[int] = (5, 3, 3),
        dilations: Sequence[int] = (1, 2, 2),
        gru_kernel_size: int = 1,
        multicoil: bool = False,
        **kwargs,
    ):
        super().__init__(n_iter=n_iter, multicoil=multicoil, **kwargs)
        self.hidden_channels = int(hidden_channels)
        self.kernel_sizes = _plain_list(kernel_sizes)
        self.dilations = _plain_list(dilations)
        self.gru_kernel_size = int(gru_kernel_size)
        self.denoiser = RecurrentConvNet(
            2, self.hidden_channels, self.kernel_sizes, self.dilations, self.gru_kernel_size, ndim=self.ndim,
            name="recurrent_net",
        )

    @classmethod
    def small_config(cls) -> dict:
        return dict(n_iter=2, hidden_channels=8)

    def build_layers(self) -> None:
        build_once(self.denoiser, (None,) * (self.ndim + 1) + (4,))

    def initial_state(self, measurements, operator, training=None) -> dict:
        return dict(image=operator.adjoint(measurements), hidden=None)

    def data_step(self, i, state, measurements, operator, training=None) -> dict:
        return dict(state, gradient=data_gradient(operator, state["image"], measurements))

    def prior_step(self, i, state, training=None) -> dict:
        image = state["image"]
        stacked = complex_to_channels(tf.stack([image, state["gradient"]], axis=-1))
        delta, hidden = self.denoiser(stacked, state["hidden"], training=training)
        return dict(state, image=image + channels_to_complex(delta)[..., 0], hidden=hidden)

    def output(self, state, measurements, operator):
        return state["image"]

    def call(self, inputs, training=None, image_shape=None, all_steps: bool = False):
        measurements, operator = self.measurements_and_operator(inputs, image_shape, training=training)
        state = self.initial_state(measurements, operator, training=training)
        estimates = []
        for i in range(self.n_iter):
            state = self.iteration(i, state, measurements, operator, training=training)
            estimates.append(self.output(state, measurements, operator))
        return estimates if all_steps else estimates[-1]

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_channels=self.hidden_channels,
            kernel_sizes=self.kernel_sizes,
            dilations=self.dilations,
            gru_kernel_size=self.gru_kernel_size,
            multicoil=self.multicoil,
        )
        return config
