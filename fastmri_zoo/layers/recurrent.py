"""Convolutional recurrent layers: the ConvGRU cell and the recurrent network of the RIM.

Channels-last float32 tensors (batch, H, W, C), or (batch, D, H, W, C) with ``ndim=3``.
A hidden state of ``None`` starts at zeros.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from ..checks import check_scalar
from .blocks import _CONV, _check_ndim
from .invertible import build_once

__all__ = ["ConvGRUCell", "RecurrentConvNet"]


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class ConvGRUCell(keras.layers.Layer):
    """A GRU whose fully connected maps are convolutions (PyTorch's GRU equations, as the authors' RIM).

    With W_* x the ``input_conv`` (input -> 3 hidden channels, split z, r, n) and U_* h the
    ``hidden_conv`` (hidden -> 3 hidden), both with biases::

        z = sigmoid(W_z x + U_z h),  r = sigmoid(W_r x + U_r h),
        n = tanh(W_n x + r * (U_n h)),  h' = (1 - z) h + z n

    x: (batch, *spatial, C_in); h: (batch, *spatial, hidden_channels) or None (zeros); returns h'.
    Kernels start orthogonal, biases at zero (the authors' initialisation).
    """

    def __init__(self, hidden_channels: int = 64, kernel_size: int = 1, dilation: int = 1, ndim: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.hidden_channels = check_scalar("hidden_channels", hidden_channels, integer=True, at_least=1)
        self.kernel_size = check_scalar("kernel_size", kernel_size, integer=True, at_least=1)
        self.dilation = check_scalar("dilation", dilation, integer=True, at_least=1)
        self.ndim = _check_ndim(ndim)
        conv = dict(padding="same", dilation_rate=self.dilation, kernel_initializer="orthogonal")
        self.input_conv = _CONV[self.ndim](3 * self.hidden_channels, self.kernel_size, name="input_conv", **conv)
        self.hidden_conv = _CONV[self.ndim](3 * self.hidden_channels, self.kernel_size, name="hidden_conv", **conv)

    def build(self, input_shape):
        spatial = (None,) * (self.ndim + 1)
        build_once(self.input_conv, spatial + (int(input_shape[-1]),))
        build_once(self.hidden_conv, spatial + (self.hidden_channels,))

    def initial_hidden(self, x) -> tf.Tensor:
        """Zeros (batch, *spatial, hidden_channels) for an input x."""
        return tf.zeros(tf.concat([tf.shape(x)[:-1], [self.hidden_channels]], 0), x.dtype)

    def call(self, x, hidden=None):
        if hidden is None:
            hidden = self.initial_hidden(x)
        x_z, x_r, x_n = tf.split(self.input_conv(x), 3, axis=-1)
        h_z, h_r, h_n = tf.split(self.hidden_conv(hidden), 3, axis=-1)
        update = tf.sigmoid(x_z + h_z)
        reset = tf.sigmoid(x_r + h_r)
        candidate = tf.tanh(x_n + reset * h_n)
        return (1.0 - update) * hidden + update * candidate

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_channels": self.hidden_channels,
            "kernel_size": self.kernel_size,
            "dilation": self.dilation,
            "ndim": self.ndim,
        }


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class RecurrentConvNet(keras.layers.Layer):
    """Convolution -> ReLU -> ConvGRU, repeated, then a linear output convolution: the RIM's network.

    The defaults are the RIM of Putzky & Welling (2019, sec. 3.3): conv 5x5 -> ConvGRU -> conv 3x3
    (dilation 2) -> ConvGRU -> conv 3x3 (dilation 2) to ``n_outputs``, 64 channels everywhere, the
    GRUs with 1x1 kernels (the authors' code), no bias on the output convolution.

    kernel_sizes, dilations: of the convolutions (one more than there are GRUs: the last is the
    output convolution). x: (batch, *spatial, C_in); hidden: a list of one state per GRU, or None.
    Returns (output (batch, *spatial, n_outputs), the new hidden states).
    """

    def __init__(
        self,
        n_outputs: int = 2,
        hidden_channels: int = 64,
        kernel_sizes: Sequence[int] = (5, 3, 3),
        dilations: Sequence[int] = (1, 2, 2),
        gru_kernel_size: int = 1,
        ndim: int = 2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.kernel_sizes = [int(k) for k in kernel_sizes]
        self.dilations = [int(d) for d in dilations]
        if len(self.kernel_sizes) < 2 or len(self.dilations) != len(self.kernel_sizes):
            raise ValueError(
                "kernel_sizes, dilations: expected equal lengths of at least 2 (the last is the output "
                f"convolution), got {self.kernel_sizes} and {self.dilations}."
            )
        self.n_outputs = int(n_outputs)
        self.hidden_channels = int(hidden_channels)
        self.gru_kernel_size = int(gru_kernel_size)
        self.ndim = _check_ndim(ndim)
        conv = _CONV[self.ndim]
        self.convs = [
            conv(self.hidden_channels, k, padding="same", dilation_rate=d, name=f"conv_{i}")
            for i, (k, d) in enumerate(zip(self.kernel_sizes[:-1], self.dilations[:-1]))
        ]
        self.grus = [
            ConvGRUCell(self.hidden_channels, self.gru_kernel_size, ndim=self.ndim, name=f"gru_{i}")
            for i in range(len(self.convs))
        ]
        self.output_conv = conv(
            self.n_outputs, self.kernel_sizes[-1], padding="same", dilation_rate=self.dilations[-1], use_bias=False,
            name="output_conv",
        )

    def build(self, input_shape):
        spatial = (None,) * (self.ndim + 1)
        channels = int(input_shape[-1])
        for conv, gru in zip(self.convs, self.grus):
            build_once(conv, spatial + (channels,))
            build_once(gru, spatial + (self.hidden_channels,))
            channels = self.hidden_channels
        build_once(self.output_conv, spatial + (channels,))

    def call(self, x, hidden=None):
        hidden = list(hidden) if hidden is not None else [None] * len(self.grus)
        states = []
        for conv, gru, state in zip(self.convs, self.grus, hidden):
            x = gru(tf.nn.relu(conv(x)), state)
            states.append(x)
        return self.output_conv(x), states

    def get_config(self):
        return {
            **super().get_config(),
            "n_outputs": self.n_outputs,
            "hidden_channels": self.hidden_channels,
            "kernel_sizes": list(self.kernel_sizes),
            "dilations": list(self.dilations),
            "gru_kernel_size": self.gru_kernel_size,
            "ndim": self.ndim,
        }
