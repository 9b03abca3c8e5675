"""Reconstruction losses as Keras 3 losses, on magnitudes or on complex images.

Every loss compares a prediction with a target, image by image, and returns one value
per image (batch,), which Keras then averages over the batch (and scales for
``tf.distribute``). Accepted layouts, for ``y_true`` and ``y_pred`` alike:

- complex64 (batch, H, W): a complex image;
- float (batch, H, W) or (batch, H, W, 1): a magnitude (or any real image);
- float (batch, H, W, 2): real and imaginary parts as two channels.

``on="magnitude"`` (default) compares |y_true| with |y_pred|; ``on="complex"``
compares the complex images and needs a complex (or 2-channel) target. The prediction
is centre-cropped to the target's (h, w) when it is larger (fastMRI references are
crops of the k-space grid).

Keras 3's ``Loss.__call__`` casts its inputs to float32, which keeps only the real
part of a complex tensor. These losses turn complex inputs into two real channels
*before* that cast, so calling them on complex predictions is safe; the toolkit's
``fit`` goes further and never hands complex outputs to Keras' compiled loss.

Definitions (per image, sums and means over the H x W pixels, d = pred - gt):

- ``l1``: mean |d| (the complex modulus in complex mode);
- ``mse``: mean |d|^2;
- ``nmse``: sum |d|^2 / sum |gt|^2 (``metrics.nmse_tf``);
- ``ssim``: 1 - SSIM (``metrics.ssim_tf``: uniform 7x7 window, K1 0.01, K2 0.03, data
  range the max of the target image). Complex mode: 1 - the mean of the SSIMs of the
  real and of the imaginary parts, both with the data range max |gt|;
- ``ms_ssim``: 1 - MS-SSIM (Wang, Simoncelli & Bovik 2003) built on the same window:
  contrast-structure at scales 1..M-1 and the SSIM at scale M, 2x2 average pooling
  between scales, weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333) (the first M of them,
  renormalised, when ``scales`` = M < 5); negative terms are clipped at 0 before the
  fractional powers, as ``tf.image.ssim_multiscale`` does. Needs H, W >= 7 * 2^(M-1);
- ``l1_ms_ssim``: alpha (1 - MS-SSIM) + (1 - alpha) L1, the compound loss of Zhao et al.
  (2017) used for the XPDNet entry to the 2020 fastMRI challenge (Ramzi et al. 2020).
  Default alpha = 0.98, the value in the XPDNet authors' training code
  (fastmri-reproducible-benchmark, ``compound_l1_mssim_loss``); Zhao et al. proposed 0.84;
- ``l1_ssim``: L1 + beta (1 - SSIM) with beta = 0.5, the loss of ReconODE.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from ..checks import check_rank, check_scalar, static_shape
from ..layers.complex import channels_to_complex, complex_to_channels
from ..metrics import SSIM_K1, SSIM_K2, SSIM_WIN_SIZE, nmse_tf, ssim_terms_tf, ssim_tf
from ..utils import center_crop, split_named

__all__ = [
    "ReconstructionLoss",
    "L1Loss",
    "MSELoss",
    "NMSELoss",
    "SSIMLoss",
    "MSSSIMLoss",
    "L1MSSSIMLoss",
    "L1SSIMLoss",
    "LOSSES",
    "MS_SSIM_WEIGHTS",
    "get_loss",
    "ms_ssim_tf",
]

#: Scale weights of MS-SSIM (Wang, Simoncelli & Bovik 2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

_LAYOUT = "(batch, H, W) complex, (batch, H, W[, 1]) magnitude or (batch, H, W, 2) real/imaginary channels"
_MODES = ("magnitude", "complex")


# --------------------------------------------------------------------------- layouts


def _to_real_layout(x):
    """Complex (batch, H, W) -> float32 (batch, H, W, 2); anything else unchanged."""
    x = tf.convert_to_tensor(x)
    if x.dtype.is_complex:
        return complex_to_channels(tf.cast(x, tf.complex64)[..., None])
    return x


def _to_image(name: str, x) -> tuple[tf.Tensor, bool]:
    """(image, is_complex): complex64 (batch, H, W) for 2-channel input, else float32 (batch, H, W)."""
    x = tf.convert_to_tensor(x)
    if x.dtype.is_complex:
        return tf.cast(x, tf.complex64), True
    check_rank(name, x, (3, 4), _LAYOUT)
    x = tf.cast(x, tf.float32)
    if x.shape.rank == 3:
        return x, False
    channels = x.shape[-1]
    if channels == 1:
        return x[..., 0], False
    if channels == 2:
        return channels_to_complex(x)[..., 0], True
    raise ValueError(f"{name}: expected {_LAYOUT}, got shape {static_shape(x)}.")


def _spatial_crop(gt: tf.Tensor, pred: tf.Tensor) -> tf.Tensor:
    """``pred`` centre-cropped to the (h, w) of ``gt`` when its static size is larger."""
    target = static_shape(gt)[-2:]
    size = static_shape(pred)[-2:]
    if None in target or None in size or tuple(target) == tuple(size):
        return pred
    for axis, (t, s) in enumerate(zip(target, size)):
        if t > s:
            raise ValueError(
                f"y_pred: its images ({tuple(size)}) are smaller than the target's ({tuple(target)}) "
                f"along axis {axis - 2}; expected a prediction at least as large as the target."
            )
    return center_crop(pred, target)


# --------------------------------------------------------------------------- MS-SSIM


def _scale_weights(scales: int | None, weights: Sequence[float] | None) -> tuple[float, ...]:
    if weights is None:
        count = len(MS_SSIM_WEIGHTS) if scales is None else check_scalar("scales", scales, integer=True, at_least=1)
        if count > len(MS_SSIM_WEIGHTS):
            raise ValueError(
                f"scales: expected at most {len(MS_SSIM_WEIGHTS)} with the default weights, got {count}; "
                "pass weights for more scales."
            )
        chosen = MS_SSIM_WEIGHTS[:count]
        total = sum(chosen)
        return tuple(w / total for w in chosen)
    weights = tuple(check_scalar(f"weights[{i}]", w, at_least=0) for i, w in enumerate(weights))
    if not weights:
        raise ValueError("weights: expected at least one scale weight, got none.")
    if scales is not None and scales != len(weights):
        raise ValueError(f"scales: {scales} does not match the {len(weights)} weights given.")
    return weights


def ms_ssim_tf(gt, pred, maxval=None, scales: int | None = None, weights: Sequence[float] | None = None) -> tf.Tensor:
    """Per-image multi-scale SSIM (see the module docstring), differentiable in ``pred``.

    gt, pred: float (batch, H, W) or (batch, H, W, 1); maxval: None (max of each target
    image), a scalar or (batch,). scales: number of scales M (default 5); weights: one
    exponent per scale, finest first (default: Wang et al.'s, renormalised for M < 5).
    Returns float32 (batch,). Needs H and W >= 7 * 2^(M-1).
    """
    weights = _scale_weights(scales, weights)
    gt, is_complex = _to_image("gt", gt)
    pred, pred_complex = _to_image("pred", pred)
    if is_complex or pred_complex:
        raise ValueError("gt, pred: ms_ssim_tf compares real images; pass magnitudes (tf.abs) or real parts.")
    height, width = static_shape(gt)[-2:]
    smallest = SSIM_WIN_SIZE * 2 ** (len(weights) - 1)
    for what, size in (("H", height), ("W", width)):
        if size is not None and size < smallest:
            raise ValueError(
                f"gt: MS-SSIM with {len(weights)} scales needs {what} >= {smallest} (7 x 2^{len(weights) - 1}), "
                f"got shape {static_shape(gt)}; use fewer scales."
            )
    if maxval is None:
        data_range = tf.reduce_max(gt, axis=(1, 2))
    else:
        data_range = tf.broadcast_to(tf.cast(maxval, tf.float32), tf.shape(gt)[:1])
    data_range = tf.stop_gradient(data_range)[:, None, None]
    c1 = tf.square(SSIM_K1 * data_range)
    c2 = tf.square(SSIM_K2 * data_range)
    x, y = gt, pred
    result = tf.ones(tf.shape(gt)[:1], tf.float32)
    for scale, weight in enumerate(weights):
        luminance, contrast_structure = ssim_terms_tf(x, y, c1, c2)
        if scale == len(weights) - 1:
            term = tf.reduce_mean(luminance * contrast_structure, axis=(1, 2))
        else:
            term = tf.reduce_mean(contrast_structure, axis=(1, 2))
            pool = [1, 2, 2, 1]
            x = tf.nn.avg_pool2d(x[..., None], pool, pool, "VALID")[..., 0]
            y = tf.nn.avg_pool2d(y[..., None], pool, pool, "VALID")[..., 0]
        result = result * tf.pow(tf.nn.relu(term), weight)
    return result


# --------------------------------------------------------------------------- losses


class ReconstructionLoss(keras.losses.Loss):
    """Base of the reconstruction losses: layouts, magnitude / complex mode, cropping.

    Subclasses implement ``per_image(gt, pred) -> (batch,)`` on float32 magnitudes
    (``on="magnitude"``) or complex64 images (``on="complex"``), both (batch, h, w).
    """

    def __init__(self, on: str = "magnitude", name: str | None = None, reduction="sum_over_batch_size", dtype=None):
        if on not in _MODES:
            raise ValueError(f"on: expected one of {list(_MODES)}, got {on!r}.")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.on = on

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Keras casts both to float32 next: hand it real channels, not complex values.
        return super().__call__(_to_real_layout(y_true), _to_real_layout(y_pred), sample_weight)

    def call(self, y_true, y_pred):
        gt, gt_complex = _to_image("y_true", y_true)
        pred, pred_complex = _to_image("y_pred", y_pred)
        pred = _spatial_crop(gt, pred)
        if self.on == "magnitude":
            gt = tf.abs(gt) if gt_complex else gt
            pred = tf.abs(pred) if pred_complex else pred
        else:
            if not gt_complex:
                raise ValueError(
                    f"y_true: {type(self).__name__}(on='complex') needs a complex target ({_LAYOUT}, with phase), "
                    f"got a real one of shape {static_shape(y_true)}; use on='magnitude' for magnitude targets."
                )
            if not pred_complex:
                pred = tf.complex(pred, tf.zeros_like(pred))
        return self.per_image(gt, pred)

    def per_image(self, gt: tf.Tensor, pred: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        config = super().get_config()
        config["on"] = self.on
        return config


def _l1(gt, pred):
    return tf.reduce_mean(tf.abs(pred - gt), axis=(1, 2))


def _ssim_loss(gt, pred):
    if not gt.dtype.is_complex:
        return 1.0 - ssim_tf(gt, pred)
    data_range = tf.reduce_max(tf.abs(gt), axis=(1, 2))
    real = ssim_tf(tf.math.real(gt), tf.math.real(pred), maxval=data_range)
    imag = ssim_tf(tf.math.imag(gt), tf.math.imag(pred), maxval=data_range)
    return 1.0 - 0.5 * (real + imag)


def _ms_ssim_loss(gt, pred, scales, weights):
    if not gt.dtype.is_complex:
        return 1.0 - ms_ssim_tf(gt, pred, scales=scales, weights=weights)
    data_range = tf.reduce_max(tf.abs(gt), axis=(1, 2))
    parts = [
        ms_ssim_tf(part(gt), part(pred), maxval=data_range, scales=scales, weights=weights)
        for part in (tf.math.real, tf.math.imag)
    ]
    return 1.0 - 0.5 * (parts[0] + parts[1])


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class L1Loss(ReconstructionLoss):
    """Mean absolute error per image: mean |pred - gt| (complex modulus in complex mode)."""

    def __init__(self, on: str = "magnitude", name: str = "l1", **kwargs):
        super().__init__(on=on, name=name, **kwargs)

    def per_image(self, gt, pred):
        return _l1(gt, pred)


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class MSELoss(ReconstructionLoss):
    """Mean squared error per image: mean |pred - gt|^2."""

    def __init__(self, on: str = "magnitude", name: str = "mse", **kwargs):
        super().__init__(on=on, name=name, **kwargs)

    def per_image(self, gt, pred):
        return tf.reduce_mean(tf.square(tf.abs(pred - gt)), axis=(1, 2))


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class NMSELoss(ReconstructionLoss):
    """Normalised MSE per image, sum |pred - gt|^2 / sum |gt|^2 (``metrics.nmse_tf``; eq. 18 of the i-RIM
    paper). ``pixel_fraction`` (e.g. 0.01, the paper's 3D training): both sums over a random subset of
    about that fraction of the pixels, drawn anew at each call."""

    def __init__(self, on: str = "magnitude", pixel_fraction: float | None = None, name: str = "nmse", **kwargs):
        super().__init__(on=on, name=name, **kwargs)
        if pixel_fraction is not None:
            pixel_fraction = check_scalar("pixel_fraction", pixel_fraction, above=0)
            if pixel_fraction > 1:
                raise ValueError(f"pixel_fraction: expected a fraction in (0, 1], got {pixel_fraction!r}.")
        self.pixel_fraction = pixel_fraction

    def per_image(self, gt, pred):
        if self.pixel_fraction is not None:
            keep = tf.cast(tf.cast(tf.random.uniform(tf.shape(gt)) < self.pixel_fraction, tf.float32), gt.dtype)
            gt, pred = gt * keep, pred * keep
        if gt.dtype.is_complex:
            # Real and imaginary parts side by side: the same sums of squares.
            gt = tf.concat([tf.math.real(gt), tf.math.imag(gt)], axis=-1)
            pred = tf.concat([tf.math.real(pred), tf.math.imag(pred)], axis=-1)
        return nmse_tf(gt, pred)

    def get_config(self):
        return {**super().get_config(), "pixel_fraction": self.pixel_fraction}


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class SSIMLoss(ReconstructionLoss):
    """1 - SSIM per image (``metrics.ssim_tf``; complex mode: mean over real and imaginary parts)."""

    def __init__(self, on: str = "magnitude", name: str = "ssim", **kwargs):
        super().__init__(on=on, name=name, **kwargs)

    def per_image(self, gt, pred):
        return _ssim_loss(gt, pred)


class _MultiScaleMixin:
    def _init_scales(self, scales, weights):
        self.weights = None if weights is None else [float(w) for w in weights]
        self.scales = len(_scale_weights(scales, weights))

    def _scale_config(self) -> dict:
        return {"scales": self.scales, "weights": self.weights}


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class MSSSIMLoss(_MultiScaleMixin, ReconstructionLoss):
    """1 - MS-SSIM per image (:func:`ms_ssim_tf`), ``scales`` scales (default 5)."""

    def __init__(self, on: str = "magnitude", scales: int | None = None, weights=None, name: str = "ms_ssim", **kwargs):
        super().__init__(on=on, name=name, **kwargs)
        self._init_scales(scales, weights)

    def per_image(self, gt, pred):
        return _ms_ssim_loss(gt, pred, self.scales, self.weights)

    def get_config(self):
        return {**super().get_config(), **self._scale_config()}


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class L1MSSSIMLoss(_MultiScaleMixin, ReconstructionLoss):
    """alpha (1 - MS-SSIM) + (1 - alpha) L1, the compound loss of the XPDNet challenge entry.

    alpha = 0.98 by default (the XPDNet authors' training code; Zhao et al. 2017 used 0.84).
    """

    def __init__(self, on: str = "magnitude", alpha: float = 0.98, scales: int | None = None, weights=None,
                 name: str = "l1_ms_ssim", **kwargs):
        super().__init__(on=on, name=name, **kwargs)
        self.alpha = check_scalar("alpha", alpha, at_least=0)
        if self.alpha > 1:
            raise ValueError(f"alpha: expected a weight in [0, 1], got {alpha!r}.")
        self._init_scales(scales, weights)

    def per_image(self, gt, pred):
        return self.alpha * _ms_ssim_loss(gt, pred, self.scales, self.weights) + (1.0 - self.alpha) * _l1(gt, pred)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, **self._scale_config()}


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class L1SSIMLoss(ReconstructionLoss):
    """L1 + beta (1 - SSIM), beta = 0.5 as in ReconODE."""

    def __init__(self, on: str = "magnitude", beta: float = 0.5, name: str = "l1_ssim", **kwargs):
        super().__init__(on=on, name=name, **kwargs)
        self.beta = check_scalar("beta", beta, at_least=0)

    def per_image(self, gt, pred):
        return _l1(gt, pred) + self.beta * _ssim_loss(gt, pred)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}


#: Loss names accepted by :func:`get_loss`, ``fit`` and the ``train`` config.
LOSSES = {
    "l1": L1Loss,
    "mse": MSELoss,
    "nmse": NMSELoss,
    "ssim": SSIMLoss,
    "ms_ssim": MSSSIMLoss,
    "l1_ms_ssim": L1MSSSIMLoss,
    "l1_ssim": L1SSIMLoss,
}


def get_loss(identifier, **kwargs) -> ReconstructionLoss:
    """A loss from a name in :data:`LOSSES` (with ``kwargs``, e.g. ``on="complex"``), a dict
    ``{"name": ..., **kwargs}``, or a :class:`ReconstructionLoss` instance (returned as is)."""
    if isinstance(identifier, ReconstructionLoss):
        if kwargs:
            raise ValueError(f"loss: keyword arguments {sorted(kwargs)} only apply to a loss given by name.")
        return identifier
    identifier, kwargs = split_named("loss", identifier, kwargs, LOSSES)
    if not isinstance(identifier, str) or identifier.lower() not in LOSSES:
        raise ValueError(f"loss: expected one of {sorted(LOSSES)} or a ReconstructionLoss, got {identifier!r}.")
    cls = LOSSES[identifier.lower()]
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise ValueError(f"loss: bad arguments for {identifier!r}: {error}.") from None
