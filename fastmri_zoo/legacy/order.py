"""The documented Keras-2 weight order of the original networks, expressed on the zoo's layers.

Keras 2 pairs the weighted layer groups of an ``.h5`` file with the model's
weighted layers *by position*, then assigns each group's weights by position.
To convert a file we therefore need, for every zoo sub-network, the list of
"Keras-2 layers" it corresponds to (each a list of zoo variables, in the order
Keras 2 stored them), in the order the original built them. This module gives
that list for each zoo block; it never looks at names.

The orders (from the original fastmri-reproducible-benchmark code and the
manifests of its published checkpoints):

- plain CNN (:class:`~fastmri_zoo.layers.ConvStack`): each convolution
  ``[kernel, bias]``, then the output convolution;
- U-net (:class:`~fastmri_zoo.layers.UNetBlock`, built by the original's
  recursive functional ``unet``): the first scale's convolutions, its channel
  attention, the deeper scales' convolutions down to the bottleneck, then from
  the deepest scale up each 2x2 up-convolution followed by that scale's
  convolutions, the decoder's channel attention, the 1x1 head convolution,
  the head's channel attention, the 1x1 output convolution. A PReLU is the
  convolution's *activation object*, so its ``alpha`` is the third weight of
  that convolution: ``[kernel, bias, alpha]``;
- channel attention (:class:`~fastmri_zoo.layers.ChannelAttention`):
  ``[activation alpha (PReLU only), dense kernel, dense bias, dense_1 kernel, dense_1 bias]``;
- MWCNN (:class:`~fastmri_zoo.layers.MWCNN`): attribute-tracking order, i.e.
  the first convolutions, the output convolution, then each scale's encoder
  and decoder convolutions (the zoo layer creates them in that order);
- coil-map refiner (:class:`~fastmri_zoo.layers.SensitivityMapRefiner`): its U-net.
"""

from __future__ import annotations

import keras

from ..layers import MWCNN, ChannelAttention, ConvStack, SensitivityMapRefiner, UNetBlock

__all__ = ["keras2_layers", "flatten"]

_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def _convolution(conv) -> list:
    return [conv.kernel] + ([conv.bias] if conv.use_bias else [])


def _sequence(layers, units: list) -> None:
    """Append the Keras-2 layers of a run of zoo layers (convolution, [norm], activation, ...) to ``units``."""
    for layer in layers:
        if isinstance(layer, _CONVOLUTIONS):
            units.append(_convolution(layer))
        elif isinstance(layer, keras.layers.PReLU):
            if not units:
                raise ValueError(f"{layer.name}: a PReLU without a preceding convolution has no Keras-2 counterpart.")
            units[-1].append(layer.alpha)
        elif layer.weights:
            raise ValueError(
                f"{layer.name}: {type(layer).__name__} has weights but no known Keras-2 counterpart "
                "in the original networks."
            )


def _channel_attention(layer: ChannelAttention) -> list:
    alpha = [layer.squeeze_activation.alpha] if isinstance(layer.squeeze_activation, keras.layers.PReLU) else []
    return alpha + [layer.dense_down.kernel, layer.dense_down.bias, layer.dense_up.kernel, layer.dense_up.bias]


def _unet(block: UNetBlock) -> list[list]:
    units: list[list] = []
    attention = block.attention
    for i, layers in enumerate(block.down_blocks):
        _sequence(layers, units)
        if i == 0 and attention:
            units.append(_channel_attention(attention["encoder"]))
    _sequence(block.bottleneck, units)
    for up, layers in zip(block.ups, block.up_blocks):
        _sequence(up, units)
        _sequence(layers, units)
    if attention:
        units.append(_channel_attention(attention["decoder"]))
    if block.head_channels is not None:
        _sequence([block.head_conv, block.head_act], units)
        if attention:
            units.append(_channel_attention(attention["head"]))
    _sequence([block.output_conv], units)
    return units


def _conv_stack(stack: ConvStack) -> list[list]:
    units: list[list] = []
    for conv, norm, activation in zip(stack.convs, stack.norms, stack.activations):
        _sequence([conv] + ([norm] if norm is not None else []) + [activation], units)
    _sequence([stack.output_conv], units)
    return units


def _mwcnn(network: MWCNN) -> list[list]:
    if network.batch_norm:
        raise ValueError(f"{network.name}: an MWCNN with batch norm has no known Keras-2 counterpart.")
    units: list[list] = []
    _sequence(network.first_convs + [network.output_conv], units)
    for convs in network.scale_convs:
        _sequence(convs, units)
    return units


def keras2_layers(layer) -> list[list]:
    """The Keras-2 layers with weights that the zoo ``layer`` corresponds to, in the original's order.

    Each entry lists the zoo variables (``keras.Variable``) of one Keras-2
    layer, in the order Keras 2 stored its weights. ``layer`` must be built.
    """
    if not layer.built:
        raise ValueError(f"layer: {layer.name} is not built; call the model once before converting weights.")
    if isinstance(layer, SensitivityMapRefiner):
        return _unet(layer.unet)
    if isinstance(layer, UNetBlock):
        return _unet(layer)
    if isinstance(layer, MWCNN):
        return _mwcnn(layer)
    if isinstance(layer, ConvStack):
        return _conv_stack(layer)
    if isinstance(layer, ChannelAttention):
        return [_channel_attention(layer)]
    if isinstance(layer, _CONVOLUTIONS):
        return [_convolution(layer)]
    raise ValueError(f"layer: no documented Keras-2 weight order for {type(layer).__name__} ({layer.name}).")


def flatten(units: list[list]) -> list:
    """All variables of a list of Keras-2 layers, in order (one group of a subclassed original)."""
    return [variable for unit in units for variable in unit]
