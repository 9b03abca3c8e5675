"""Multi-level wavelet CNN (MWCNN, Liu et al. 2018) and the 2D Haar wavelet transform it pools with.

The Haar transform replaces pooling / up-sampling of a U-net: it halves H and W
and multiplies the channels by 4 without losing information, and its inverse is
exact. Both are fixed (no weights). Layout: channels-last float32 (batch, H, W, C).
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from ..checks import check_rank
from .blocks import _build_by_calling, make_activation
from .convolution import Conv2D

__all__ = ["haar_dwt", "haar_iwt", "MWCNN"]


def haar_dwt(x: tf.Tensor) -> tf.Tensor:
    """One level of the orthonormal 2D Haar transform, sub-bands stacked in channels.

    x: float32 (batch, H, W, C) with H, W even -> float32 (batch, H/2, W/2, 4C),
    channels ordered sub-band first: [LL (C), HL (C), LH (C), HH (C)], as in Liu
    et al.'s MWCNN. With a, b, c, d the pixels (2i, 2j), (2i, 2j+1), (2i+1, 2j),
    (2i+1, 2j+1): LL = (a+b+c+d)/2, HL = (-a+b-c+d)/2 (detail along W),
    LH = (-a-b+c+d)/2 (detail along H), HH = (a-b-c+d)/2. The 4x4 transform is
    orthonormal, so energy is preserved and :func:`haar_iwt` is its transpose.
    """
    x = tf.convert_to_tensor(x)
    check_rank("x", x, 4, "(batch, H, W, C)")
    height, width = x.shape[1], x.shape[2]
    if (height is not None and height % 2) or (width is not None and width % 2):
        raise ValueError(f"x: haar_dwt expects even H and W in (batch, H, W, C), got shape {tuple(x.shape)}.")
    a = x[:, 0::2, 0::2, :]
    b = x[:, 0::2, 1::2, :]
    c = x[:, 1::2, 0::2, :]
    d = x[:, 1::2, 1::2, :]
    low_low = (a + b + c + d) / 2
    high_low = (-a + b - c + d) / 2
    low_high = (-a - b + c + d) / 2
    high_high = (a - b - c + d) / 2
    return tf.concat([low_low, high_low, low_high, high_high], axis=-1)


def haar_iwt(x: tf.Tensor) -> tf.Tensor:
    """Exact inverse of :func:`haar_dwt`.

    x: float32 (batch, H/2, W/2, 4C), channels [LL, HL, LH, HH] -> float32 (batch, H, W, C).
    """
    x = tf.convert_to_tensor(x)
    check_rank("x", x, 4, "(batch, H/2, W/2, 4C)")
    if x.shape[-1] is not None and x.shape[-1] % 4:
        raise ValueError(f"x: haar_iwt expects a multiple of 4 channels (4 sub-bands), got {x.shape[-1]}.")
    low_low, high_low, low_high, high_high = tf.split(x, 4, axis=-1)
    a = (low_low - high_low - low_high + high_high) / 2
    b = (low_low + high_low - low_high - high_high) / 2
    c = (low_low - high_low + low_high - high_high) / 2
    d = (low_low + high_low + low_high + high_high) / 2
    shape = tf.shape(a)
    batch, half_h, half_w, channels = shape[0], shape[1], shape[2], shape[3]
    # Interleave columns (a, b) and (c, d), then rows.
    even_rows = tf.reshape(tf.stack([a, b], axis=3), [batch, half_h, 2 * half_w, channels])
    odd_rows = tf.reshape(tf.stack([c, d], axis=3), [batch, half_h, 2 * half_w, channels])
    return tf.reshape(tf.stack([even_rows, odd_rows], axis=2), [batch, 2 * half_h, 2 * half_w, channels])


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class MWCNN(keras.layers.Layer):
    """Multi-level wavelet CNN (Liu et al. 2018), laid out as the XPDNet MWCNN of Ramzi et al.

    x: float32 (batch, H, W, C_in) -> float32 (batch, H, W, n_outputs). H and W
    are zero-padded to a multiple of 2^scales and cropped back.

    With S = ``len(n_filters_per_scale)`` scales, F = ``first_conv_n_filters``,
    f_s = ``n_filters_per_scale[s]``, m_s = ``n_convs_per_scale[s]``::

        first  = (n_first_convs convs to F)(x)
        e_0    = (m_0 convs to f_0)(DWT(first)),  e_s = (m_s convs to f_s)(DWT(e_{s-1}))
        d      = e_{S-1}
        for s = S-1 .. 0:
            if s < S-1: d = IWT(d) + e_s
            d = (m_s - 1 convs to f_s, 1 conv to 4 f_{s-1} (4F for s = 0))(d)
        out    = output_conv((n_first_convs - 1 convs to F)(IWT(d) + first))

    Every conv is ``kernel_size`` square, ``use_bias`` (default none, as in the
    authors' XPDNet), optional batch norm, ``activation``; ``output_conv`` is
    linear with a bias. ``residual`` adds ``x`` to the output. Defaults are the
    authors' XPDNet "medium" MWCNN ([64, 128, 256] filters, 3 convs per scale,
    2 first convs of 32, no bias): 6,217,930 parameters for 12 inputs and 10
    outputs, the denoiser of their XPDNet-brain checkpoints.

    Sub-layer names (and weight order, which follows the authors' checkpoints):
    ``first_conv_{0..2 n_first_convs - 2}``, ``output_conv``, then per scale
    ``scale_{s}_conv_{0..2 m_s - 1}`` (encoder convs, then decoder convs).
    """

    def __init__(
        self,
        n_outputs: int = 2,
        n_filters_per_scale: Sequence[int] = (64, 128, 256),
        n_convs_per_scale: Sequence[int] = (3, 3, 3),
        n_first_convs: int = 2,
        first_conv_n_filters: int = 32,
        kernel_size: int = 3,
        activation: str | None = "relu",
        use_bias: bool = False,
        batch_norm: bool = False,
        residual: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        n_filters_per_scale = [int(f) for f in n_filters_per_scale]
        n_convs_per_scale = [int(n) for n in n_convs_per_scale]
        if not n_filters_per_scale or len(n_filters_per_scale) != len(n_convs_per_scale):
            raise ValueError(
                "n_filters_per_scale, n_convs_per_scale: expected two non-empty lists of the same length "
                f"(one entry per scale), got {n_filters_per_scale} and {n_convs_per_scale}."
            )
        if min(n_filters_per_scale) < 1 or min(n_convs_per_scale) < 1:
            raise ValueError(
                "n_filters_per_scale, n_convs_per_scale: expected positive entries, "
                f"got {n_filters_per_scale} and {n_convs_per_scale}."
            )
        if n_first_convs < 1 or first_conv_n_filters < 1 or n_outputs < 1:
            raise ValueError(
                "n_first_convs, first_conv_n_filters, n_outputs: expected positive integers, "
                f"got {n_first_convs}, {first_conv_n_filters}, {n_outputs}."
            )
        self.n_outputs = n_outputs
        self.n_filters_per_scale = n_filters_per_scale
        self.n_convs_per_scale = n_convs_per_scale
        self.n_first_convs = n_first_convs
        self.first_conv_n_filters = first_conv_n_filters
        self.kernel_size = kernel_size
        self.activation = activation
        self.use_bias = use_bias
        self.batch_norm = batch_norm
        self.residual = residual
        self.n_scales = len(n_filters_per_scale)

        # Creation order = weight order: first convs, output conv, then each scale
        # (encoder, decoder), as in the authors' checkpoints.
        self.first_convs = [
            self._conv(first_conv_n_filters, f"first_conv_{i}") for i in range(2 * n_first_convs - 1)
        ]
        self.output_conv = Conv2D(
            n_outputs, kernel_size, padding="same", use_bias=True, name="output_conv"
        )
        self.scale_convs = []
        for s, (filters, n_convs) in enumerate(zip(n_filters_per_scale, n_convs_per_scale)):
            # The last decoder conv gives 4x the channels of the scale above, for its IWT.
            above = first_conv_n_filters if s == 0 else n_filters_per_scale[s - 1]
            widths = [filters] * (2 * n_convs - 1) + [4 * above]
            self.scale_convs.append([self._conv(w, f"scale_{s}_conv_{j}") for j, w in enumerate(widths)])
        self.first_post = [self._post(f"first_{i}") for i in range(2 * n_first_convs - 1)]
        self.scale_post = [
            [self._post(f"scale_{s}_{j}") for j in range(2 * n_convs)] for s, n_convs in enumerate(n_convs_per_scale)
        ]

    def _conv(self, filters, name):
        return Conv2D(filters, self.kernel_size, padding="same", use_bias=self.use_bias, name=name)

    def _post(self, prefix):
        norm = keras.layers.BatchNormalization(name=f"{prefix}_norm") if self.batch_norm else None
        return norm, make_activation(self.activation, name=f"{prefix}_activation")

    def build(self, input_shape):
        if self.residual and int(input_shape[-1]) != self.n_outputs:
            raise ValueError(
                f"residual: the input ({input_shape[-1]} channels) is added to the output, so n_outputs must "
                f"equal it, got n_outputs={self.n_outputs}."
            )
        _build_by_calling(self, input_shape, 2**self.n_scales)

    @staticmethod
    def _apply(conv, post, x, training):
        norm, activation = post
        x = conv(x)
        if norm is not None:
            x = norm(x, training=training)
        return activation(x)

    def call(self, x, training=None):
        factor = 2**self.n_scales
        height, width = tf.shape(x)[1], tf.shape(x)[2]
        pad_h = (-height) % factor
        pad_w = (-width) % factor
        padded = tf.pad(x, [[0, 0], [pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]])

        features = padded
        for i in range(self.n_first_convs):
            features = self._apply(self.first_convs[i], self.first_post[i], features, training)
        first_features = features
        encoded = []
        for s, n_convs in enumerate(self.n_convs_per_scale):
            features = haar_dwt(features)
            for j in range(n_convs):
                features = self._apply(self.scale_convs[s][j], self.scale_post[s][j], features, training)
            encoded.append(features)
        for s in reversed(range(self.n_scales)):
            n_convs = self.n_convs_per_scale[s]
            if s < self.n_scales - 1:
                features = haar_iwt(features) + encoded[s]
            for j in range(n_convs, 2 * n_convs):
                features = self._apply(self.scale_convs[s][j], self.scale_post[s][j], features, training)
        features = haar_iwt(features) + first_features
        for i in range(self.n_first_convs, 2 * self.n_first_convs - 1):
            features = self._apply(self.first_convs[i], self.first_post[i], features, training)
        out = self.output_conv(features)
        if self.residual:
            out = out + padded
        return out[:, pad_h // 2 : pad_h // 2 + height, pad_w // 2 : pad_w // 2 + width, :]

    def get_config(self):
        config = super().get_config()
        config.update(
            n_outputs=self.n_outputs,
            n_filters_per_scale=list(self.n_filters_per_scale),
            n_convs_per_scale=list(self.n_convs_per_scale),
            n_first_convs=self.n_first_convs,
            first_conv_n_filters=self.first_conv_n_filters,
            kernel_size=self.kernel_size,
            activation=self.activation,
            use_bias=self.use_bias,
            batch_norm=self.batch_norm,
            residual=self.residual,
        )
        return config
