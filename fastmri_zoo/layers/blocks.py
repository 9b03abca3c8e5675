"""Real-valued convolutional building blocks: plain CNN, DnCNN, U-net, channel attention.

All blocks take and return channels-last float32 tensors (batch, H, W, C), or
(batch, D, H, W, C) for ``ConvStack`` and ``UNetBlock`` built with ``ndim=3``;
complex data goes through :mod:`fastmri_zoo.layers.complex` first. Every
sub-layer gets a stable name (``conv_3``, ``down_1_conv_0``, ...), so weights
stay loadable across versions.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from .convolution import Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose
from .normalization import GroupNormalization

__all__ = ["make_activation", "ConvStack", "DnCNN", "ChannelAttention", "UNetBlock"]


def make_activation(spec: str | None, name: str, ndim: int = 2) -> keras.layers.Layer:
    """Activation layer from a JSON-friendly spec.

    ``"relu"``, ``"linear"`` / ``None``, ``"prelu"`` (one slope per channel,
    shared over space), ``"lrelu"`` (leaky ReLU of slope 0.1, the original
    KIKI-net / NCPDNet refiner), ``"leaky_relu:<slope>"`` (e.g.
    ``"leaky_relu:0.2"`` as in the fastMRI U-net), ``"sigmoid"``. ``ndim``: the
    number of spatial axes the PReLU slopes are shared over.
    """
    if spec in (None, "linear"):
        return keras.layers.Identity(name=name)
    if spec == "relu":
        return keras.layers.ReLU(name=name)
    if spec == "sigmoid":
        return keras.layers.Activation("sigmoid", name=name)
    if spec == "prelu":
        return keras.layers.PReLU(shared_axes=list(range(1, ndim + 1)), name=name)
    if spec == "lrelu":
        return keras.layers.LeakyReLU(negative_slope=0.1, name=name)
    if isinstance(spec, str) and spec.startswith("leaky_relu"):
        _, _, slope = spec.partition(":")
        return keras.layers.LeakyReLU(negative_slope=float(slope or 0.2), name=name)
    raise ValueError(
        "activation: expected 'relu', 'linear', 'prelu', 'lrelu', 'leaky_relu:<slope>' or "
        f"'sigmoid', got {spec!r}."
    )


def _build_by_calling(layer, input_shape, size: int, ndim: int = 2) -> None:
    """Create every sub-layer's weights by one call on a small zero input.

    The weights of these blocks do not depend on H and W, only on the channels.
    """
    channels = int(input_shape[-1])
    layer.call(tf.zeros((1,) + (size,) * ndim + (channels,)), training=False)


def _check_ndim(ndim) -> int:
    if ndim not in (2, 3):
        raise ValueError(f"ndim: expected 2 (images) or 3 (volumes) spatial axes, got {ndim!r}.")
    return int(ndim)


#: Keras layer classes per number of spatial axes.
_CONV = {2: Conv2D, 3: Conv3D}
_CONV_TRANSPOSE = {2: Conv2DTranspose, 3: Conv3DTranspose}
_POOL = {
    ("max", 2): keras.layers.MaxPooling2D,
    ("max", 3): keras.layers.MaxPooling3D,
    ("avg", 2): keras.layers.AveragePooling2D,
    ("avg", 3): keras.layers.AveragePooling3D,
}
_UPSAMPLING = {2: keras.layers.UpSampling2D, 3: keras.layers.UpSampling3D}


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class ConvStack(keras.layers.Layer):
    """A plain CNN: ``n_convs`` convolutions with activation, then a linear convolution.

    x: float32 (batch, H, W, C_in) -> float32 (batch, H, W, n_outputs). With
    ``n_convs=5, n_filters=48, n_outputs=2`` this is one Cascade-net block; with
    ``n_convs=2, n_filters=32`` one PDNet primal or dual network. ``ndim=3``:
    3D convolutions on (batch, D, H, W, C_in) volumes (NC-PDNet 3D).
    """

    def __init__(
        self,
        n_outputs: int = 2,
        n_convs: int = 3,
        n_filters: int = 32,
        kernel_size: int = 3,
        output_kernel_size: int | None = None,
        activation: str | None = "relu",
        use_bias: bool = True,
        batch_norm: bool = False,
        ndim: int = 2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        ndim = _check_ndim(ndim)
        if n_convs < 0 or n_outputs < 1 or n_filters < 1:
            raise ValueError(
                f"n_convs, n_filters, n_outputs: expected n_convs >= 0 and positive sizes, "
                f"got n_convs={n_convs}, n_filters={n_filters}, n_outputs={n_outputs}."
            )
        self.n_outputs = n_outputs
        self.n_convs = n_convs
        self.n_filters = n_filters
        self.kernel_size = kernel_size
        self.output_kernel_size = output_kernel_size
        self.activation = activation
        self.use_bias = use_bias
        self.batch_norm = batch_norm
        self.ndim = ndim
        self.convs = []
        self.norms = []
        self.activations = []
        for i in range(n_convs):
            self.convs.append(
                _CONV[ndim](n_filters, kernel_size, padding="same", use_bias=use_bias, name=f"conv_{i}")
            )
            # DnCNN: batch norm on every hidden convolution but the first.
            self.norms.append(keras.layers.BatchNormalization(name=f"norm_{i}") if batch_norm and i > 0 else None)
            self.activations.append(make_activation(activation, name=f"activation_{i}", ndim=ndim))
        self.output_conv = _CONV[ndim](
            n_outputs,
            output_kernel_size or kernel_size,
            padding="same",
            use_bias=use_bias,
            name="output_conv",
        )

    def build(self, input_shape):
        _build_by_calling(self, input_shape, 1, self.ndim)

    def call(self, x, training=None):
        for conv, norm, act in zip(self.convs, self.norms, self.activations):
            x = conv(x)
            if norm is not None:
                x = norm(x, training=training)
            x = act(x)
        return self.output_conv(x)

    def get_config(self):
        config = super().get_config()
        config.update(
            n_outputs=self.n_outputs,
            n_convs=self.n_convs,
            n_filters=self.n_filters,
            kernel_size=self.kernel_size,
            output_kernel_size=self.output_kernel_size,
            activation=self.activation,
            use_bias=self.use_bias,
            batch_norm=self.batch_norm,
            ndim=self.ndim,
        )
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class DnCNN(ConvStack):
    """DnCNN (Zhang et al. 2017): conv + ReLU, (conv + BN + ReLU) x (depth - 2), conv.

    ``n_convs`` counts the hidden convolutions (depth - 1). The residual (noise)
    connection is left to the caller: XPDNet adds the output to its primal buffer.
    """

    def __init__(self, n_outputs: int = 2, n_convs: int = 16, n_filters: int = 64, batch_norm: bool = True, **kwargs):
        super().__init__(n_outputs=n_outputs, n_convs=n_convs, n_filters=n_filters, batch_norm=batch_norm, **kwargs)


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class ChannelAttention(keras.layers.Layer):
    """Squeeze-and-excitation channel attention (Hu et al. 2018), as in the XPDNet U-nets.

    x: float32 (batch, H, W, C) -> x * sigmoid(W2 act(W1 mean_{H,W}(x))), W1: C -> C // reduction.
    """

    def __init__(self, reduction: int = 4, activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        self.reduction = reduction
        self.activation = activation

    def build(self, input_shape):
        channels = int(input_shape[-1])
        hidden = max(channels // self.reduction, 1)
        if self.activation == "prelu":
            # On the squeezed (batch, C) vector a PReLU has one slope per channel.
            self.squeeze_activation = keras.layers.PReLU(name="activation")
        else:
            self.squeeze_activation = make_activation(self.activation, name="activation")
        self.dense_down = keras.layers.Dense(hidden, name="dense")
        self.dense_up = keras.layers.Dense(channels, name="dense_1")
        self.squeeze_activation.build((None, hidden))
        self.dense_down.build((None, channels))
        self.dense_up.build((None, hidden))

    def call(self, x):
        weights = tf.reduce_mean(x, axis=[1, 2])
        weights = self.dense_up(self.squeeze_activation(self.dense_down(weights)))
        return x * tf.sigmoid(weights)[:, None, None, :]

    def get_config(self):
        config = super().get_config()
        config.update(reduction=self.reduction, activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class UNetBlock(keras.layers.Layer):
    """Real-valued U-net (Ronneberger et al. 2015) with the variants the zoo needs.

    x: float32 (batch, H, W, C_in) -> float32 (batch, H, W, n_outputs). H and W
    are zero-padded to a multiple of 2^(scales - 1) and cropped back.

    - ``layers_n_channels``: channels per scale, top to bottom (the last is the
      bottleneck); ``layers_n_non_lins`` convolutions per scale.
    - ``upsampling="upsample_conv"``: nearest up-sampling then a 2x2 convolution
      with activation (the thesis U-net); ``"transpose"``: 2x2 stride-2 transposed
      convolution + normalisation + activation (fastMRI).
    - ``skip_first``: concatenate [skip, up] (thesis) or [up, skip] (fastMRI).
    - head: if ``head_channels`` is set, a 1x1 convolution to ``head_channels``
      (with activation if ``head_activation``), then a linear 1x1 convolution to
      ``n_outputs``; otherwise one linear 1x1 convolution.
    - ``normalization="instance"`` (no affine), ``dropout``, ``use_bias`` as in fastMRI.
    - ``channel_attention``: squeeze-excitation after the first scale's encoder,
      the last decoder convolutions and the head convolution (XPDNet U-nets).
    - ``ndim=3``: the same U-net with 3D convolutions, pooling and up-sampling on
      (batch, D, H, W, C_in) volumes (D, H and W padded); no channel attention.
    """

    def __init__(
        self,
        n_outputs: int = 1,
        layers_n_channels: Sequence[int] = (16, 32, 64, 128),
        layers_n_non_lins: int = 2,
        activation: str = "relu",
        pool: str = "max",
        upsampling: str = "upsample_conv",
        skip_first: bool = True,
        head_channels: int | None = 4,
        head_activation: bool = False,
        normalization: str | None = None,
        use_bias: bool = True,
        dropout: float = 0.0,
        channel_attention: bool = False,
        ndim: int = 2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        ndim = _check_ndim(ndim)
        if channel_attention and ndim != 2:
            raise ValueError(f"channel_attention: only available with ndim=2, got ndim={ndim}.")
        layers_n_channels = [int(c) for c in layers_n_channels]
        if len(layers_n_channels) < 1:
            raise ValueError("layers_n_channels: expected at least one scale, got [].")
        if pool not in ("max", "avg"):
            raise ValueError(f"pool: expected 'max' or 'avg', got {pool!r}.")
        if upsampling not in ("upsample_conv", "transpose"):
            raise ValueError(f"upsampling: expected 'upsample_conv' or 'transpose', got {upsampling!r}.")
        if normalization not in (None, "instance"):
            raise ValueError(f"normalization: expected None or 'instance', got {normalization!r}.")
        self.n_outputs = n_outputs
        self.layers_n_channels = layers_n_channels
        self.layers_n_non_lins = layers_n_non_lins
        self.activation = activation
        self.pool = pool
        self.upsampling = upsampling
        self.skip_first = skip_first
        self.head_channels = head_channels
        self.head_activation = head_activation
        self.normalization = normalization
        self.use_bias = use_bias
        self.dropout = dropout
        self.channel_attention = channel_attention
        self.ndim = ndim
        self.n_scales = len(layers_n_channels)

        self.down_blocks = [self._conv_block(c, f"down_{i}") for i, c in enumerate(layers_n_channels[:-1])]
        self.bottleneck = self._conv_block(layers_n_channels[-1], "bottleneck")
        pooling = _POOL[pool, ndim]
        self.pools = [pooling(2, name=f"pool_{i}") for i in range(self.n_scales - 1)]
        self.ups = []
        self.up_blocks = []
        for i in reversed(range(self.n_scales - 1)):
            channels = layers_n_channels[i]
            self.ups.append(self._up_layers(channels, f"up_{i}"))
            self.up_blocks.append(self._conv_block(channels, f"up_{i}"))
        self.attention = {}
        if channel_attention:
            act = "prelu" if activation == "prelu" else "relu"
            for where in ("encoder", "decoder", "head"):
                self.attention[where] = ChannelAttention(activation=act, name=f"attention_{where}")
        if head_channels is not None:
            self.head_conv = _CONV[ndim](head_channels, 1, use_bias=True, name="head_conv")
            self.head_act = make_activation(activation if head_activation else None, name="head_activation", ndim=ndim)
        self.output_conv = _CONV[ndim](n_outputs, 1, use_bias=True, name="output_conv")

    def _conv_block(self, channels, prefix):
        layers = []
        for j in range(self.layers_n_non_lins):
            layers.append(_CONV[self.ndim](channels, 3, padding="same", use_bias=self.use_bias, name=f"{prefix}_conv_{j}"))
            layers.extend(self._post_conv(f"{prefix}_{j}"))
        return layers

    def _post_conv(self, prefix):
        layers = []
        if self.normalization == "instance":
            layers.append(
                GroupNormalization(groups=-1, center=False, scale=False, epsilon=1e-5, name=f"{prefix}_norm")
            )
        layers.append(make_activation(self.activation, name=f"{prefix}_activation", ndim=self.ndim))
        if self.dropout:
            layers.append(keras.layers.Dropout(self.dropout, name=f"{prefix}_dropout"))
        return layers

    def _up_layers(self, channels, prefix):
        if self.upsampling == "upsample_conv":
            return [
                _UPSAMPLING[self.ndim](2, name=f"{prefix}_upsample"),
                _CONV[self.ndim](channels, 2, padding="same", use_bias=self.use_bias, name=f"{prefix}_upconv"),
                make_activation(self.activation, name=f"{prefix}_upconv_activation", ndim=self.ndim),
            ]
        layers = [
            _CONV_TRANSPOSE[self.ndim](channels, 2, strides=2, use_bias=self.use_bias, name=f"{prefix}_transpose")
        ]
        return layers + self._post_conv(f"{prefix}_transpose")

    def build(self, input_shape):
        _build_by_calling(self, input_shape, 2 ** (self.n_scales - 1), self.ndim)

    @staticmethod
    def _run(layers, x, training):
        for layer in layers:
            x = layer(x, training=training) if isinstance(layer, keras.layers.Dropout) else layer(x)
        return x

    def call(self, x, training=None):
        factor = 2 ** (self.n_scales - 1)
        sizes = [tf.shape(x)[axis] for axis in range(1, self.ndim + 1)]
        pads = [(-size) % factor for size in sizes]
        x = tf.pad(x, [[0, 0]] + [[pad // 2, pad - pad // 2] for pad in pads] + [[0, 0]])
        skips = []
        for i, (block, pool) in enumerate(zip(self.down_blocks, self.pools)):
            x = self._run(block, x, training)
            if i == 0 and self.channel_attention:
                x = self.attention["encoder"](x)
            skips.append(x)
            x = pool(x)
        x = self._run(self.bottleneck, x, training)
        for up, block, skip in zip(self.ups, self.up_blocks, reversed(skips)):
            x = self._run(up, x, training)
            x = tf.concat([skip, x] if self.skip_first else [x, skip], axis=-1)
            x = self._run(block, x, training)
        if self.channel_attention:
            x = self.attention["decoder"](x)
        if self.head_channels is not None:
            x = self.head_act(self.head_conv(x))
            if self.channel_attention:
                x = self.attention["head"](x)
        x = self.output_conv(x)
        crop = tuple(slice(pad // 2, pad // 2 + size) for pad, size in zip(pads, sizes))
        return x[(slice(None),) + crop + (slice(None),)]

    def get_config(self):
        config = super().get_config()
        config.update(
            n_outputs=self.n_outputs,
            layers_n_channels=list(self.layers_n_channels),
            layers_n_non_lins=self.layers_n_non_lins,
            activation=self.activation,
            pool=self.pool,
            upsampling=self.upsampling,
            skip_first=self.skip_first,
            head_channels=self.head_channels,
            head_activation=self.head_activation,
            normalization=self.normalization,
            use_bias=self.use_bias,
            dropout=self.dropout,
            channel_attention=self.channel_attention,
            ndim=self.ndim,
        )
        return config
