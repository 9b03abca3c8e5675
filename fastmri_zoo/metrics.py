"""Reconstruction metrics: NMSE, PSNR and SSIM as fastMRI's ``evaluate.py`` defines them.

Two families share one set of conventions:

* numpy, volume-wise (for reporting): ``nmse``, ``psnr``, ``ssim``, ``evaluate_volume``,
  ``summarize``. Inputs are magnitude volumes ``(slices, H, W)`` (a 2D image is one slice);
  the data range is ``gt.max()`` of the whole volume; SSIM is the mean over slices of the
  2D SSIM with a uniform 7x7 window, K1 = 0.01, K2 = 0.03, sample-covariance correction
  (49 / 48) and the 3-pixel border crop scikit-image applies before averaging. Computed in
  float64 whatever the input dtype.
* TensorFlow, per image (for training and graphs): ``nmse_tf``, ``psnr_tf``, ``ssim_tf``
  on ``(batch, H, W)`` or ``(batch, H, W, 1)``, returning ``(batch,)``, differentiable;
  the data range is the max of each target image unless ``maxval`` is given.
  ``ReconstructionMetric`` wraps them as a Keras metric.

Uncertainty maps (posterior sampling, ``posterior``) are scored pixel-wise in numpy:
``spearman_correlation`` (of the standard deviation and the error, say) and
``interval_coverage`` (how often the truth lies in the samples' central interval), over all pixels
or over the pixels of a mask such as ``foreground_mask`` (the object, without the background).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from scipy.ndimage import uniform_filter

from .checks import check_finite, check_rank, check_same_dim, static_shape

__all__ = [
    "nmse",
    "psnr",
    "ssim",
    "evaluate_volume",
    "summarize",
    "spearman_correlation",
    "interval_coverage",
    "foreground_mask",
    "nmse_tf",
    "psnr_tf",
    "ssim_tf",
    "ReconstructionMetric",
    "SSIM_WIN_SIZE",
    "SSIM_K1",
    "SSIM_K2",
]

SSIM_WIN_SIZE = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03

_VOLUME_LAYOUT = "(slices, H, W) or a single (H, W) image"
_AXIS_NAMES = ("slices", "rows (H)", "columns (W)")


# --------------------------------------------------------------------------- numpy


def _reject_complex(name: str, dtype, magnitude_hint: str) -> None:
    is_complex = dtype.is_complex if isinstance(dtype, tf.DType) else np.issubdtype(dtype, np.complexfloating)
    if is_complex:
        dname = dtype.name if hasattr(dtype, "name") else str(dtype)
        raise ValueError(
            f"{name}: expected real magnitude values, got dtype {dname}; "
            f"pass magnitudes ({magnitude_hint}) instead."
        )


def _as_volumes(gt, pred) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return float64 (slices, H, W) copies of ``gt`` and ``pred``."""
    arrays = []
    ranks = []
    for name, x in (("gt", gt), ("pred", pred)):
        x = np.asarray(x)
        _reject_complex(name, x.dtype, "np.abs(x)")
        check_rank(name, x, (2, 3), _VOLUME_LAYOUT)
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
                or x.dtype == np.bool_):
            raise ValueError(f"{name}: expected real numeric values, got dtype {x.dtype}.")
        check_finite(name, x)
        ranks.append(x.ndim)
        arrays.append(x.astype(np.float64)[None] if x.ndim == 2 else x.astype(np.float64))
    if ranks[0] != ranks[1]:
        raise ValueError(
            f"pred: expected the shape of gt {np.shape(gt)}, got shape {np.shape(pred)} "
            f"({ranks[1]} dimensions instead of {ranks[0]})."
        )
    gt, pred = arrays
    for axis, what in enumerate(_AXIS_NAMES):
        check_same_dim("gt", gt.shape[axis], "pred", pred.shape[axis], what)
    return gt, pred


def _data_range(gt: np.ndarray, maxval) -> float:
    if maxval is None:
        value = float(gt.max())
        if not value > 0:
            raise ValueError(
                f"gt: expected a positive maximum (the data range is gt.max()), got max {value:g}; "
                "an all-zero or non-positive target has no data range. Pass maxval explicitly "
                "if this is intended."
            )
        return value
    value = float(maxval)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"maxval: expected a finite positive data range, got {maxval!r}.")
    return value


def nmse(gt, pred) -> float:
    """Normalised mean squared error ``||gt - pred||^2 / ||gt||^2`` over the whole volume.

    gt, pred: real (slices, H, W) or (H, W), same shape.
    """
    gt, pred = _as_volumes(gt, pred)
    energy = float(np.sum(gt * gt))
    if energy == 0:
        raise ValueError("gt: expected a non-zero target (NMSE divides by ||gt||^2), got all zeros.")
    return float(np.sum((gt - pred) ** 2) / energy)


def psnr(gt, pred, maxval: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB over the whole volume.

    ``10 log10(maxval^2 / mean((gt - pred)^2))`` with ``maxval = gt.max()`` by default, as
    ``skimage.metrics.peak_signal_noise_ratio(gt, pred, data_range=gt.max())``.
    Returns ``inf`` when ``pred`` equals ``gt``.
    gt, pred: real (slices, H, W) or (H, W), same shape.
    """
    gt, pred = _as_volumes(gt, pred)
    data_range = _data_range(gt, maxval)
    mse = float(np.mean((gt - pred) ** 2))
    if mse == 0:
        return math.inf
    return float(10.0 * np.log10(data_range**2 / mse))


def _check_window_fits(name: str, shape: Sequence) -> None:
    h, w = shape[-2], shape[-1]
    if (h is not None and h < SSIM_WIN_SIZE) or (w is not None and w < SSIM_WIN_SIZE):
        raise ValueError(
            f"{name}: expected H and W of at least {SSIM_WIN_SIZE} (the SSIM window), "
            f"got shape {tuple(shape)}."
        )


def _ssim_map_terms(ux, uy, vx, vy, vxy, c1, c2):
    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
    denominator = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return numerator / denominator


def ssim(gt, pred, maxval: float | None = None) -> float:
    """Structural similarity averaged over slices, as fastMRI's ``evaluate.ssim``.

    Each slice is scored like ``skimage.metrics.structural_similarity(gt[i], pred[i],
    data_range=maxval)`` (uniform 7x7 window, K1 = 0.01, K2 = 0.03, sample covariance,
    3-pixel border crop); ``maxval = gt.max()`` of the whole volume by default.
    gt, pred: real (slices, H, W) or (H, W), same shape, H and W >= 7.
    """
    gt, pred = _as_volumes(gt, pred)
    _check_window_fits("gt", gt.shape)
    data_range = _data_range(gt, maxval)
    size = (1, SSIM_WIN_SIZE, SSIM_WIN_SIZE)  # no filtering across slices

    def local_mean(x):
        return uniform_filter(x, size=size)  # mode "reflect", as scikit-image

    ux, uy = local_mean(gt), local_mean(pred)
    uxx, uyy, uxy = local_mean(gt * gt), local_mean(pred * pred), local_mean(gt * pred)
    n = SSIM_WIN_SIZE**2
    cov_norm = n / (n - 1)  # unbiased (sample) covariance, scikit-image's default
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    ssim_map = _ssim_map_terms(ux, uy, vx, vy, vxy, c1, c2)
    pad = (SSIM_WIN_SIZE - 1) // 2
    per_slice = ssim_map[:, pad:-pad, pad:-pad].mean(axis=(1, 2))
    return float(per_slice.mean())


def evaluate_volume(gt, pred) -> dict[str, float]:
    """NMSE, PSNR and SSIM of one volume, each with fastMRI's defaults.

    gt, pred: real (slices, H, W) or (H, W). Returns ``{"nmse": ..., "psnr": ..., "ssim": ...}``.
    """
    return {"nmse": nmse(gt, pred), "psnr": psnr(gt, pred), "ssim": ssim(gt, pred)}


def summarize(results: Sequence[Mapping[str, float]], ddof: int = 1) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation over volumes of each metric.

    results: one dict per volume (e.g. from ``evaluate_volume``), all with the same keys.
    Returns ``{key: (mean, std)}``. ``ddof=1`` (sample standard deviation) as fastMRI's
    ``evaluate.py`` reports it; the std is NaN when there are not more than ``ddof`` volumes.
    """
    results = list(results)
    if not results:
        raise ValueError("results: expected at least one dict of metrics, got an empty sequence.")
    keys = list(results[0].keys())
    for i, item in enumerate(results):
        if set(item.keys()) != set(keys):
            raise ValueError(
                f"results[{i}]: expected the keys {sorted(keys)} of results[0], got {sorted(item.keys())}."
            )
    summary = {}
    for key in keys:
        values = np.asarray([float(item[key]) for item in results], dtype=np.float64)
        mean = float(values.mean())
        std = float(values.std(ddof=ddof)) if values.size > ddof else math.nan
        summary[key] = (mean, std)
    return summary


def _pixels(name: str, values, mask) -> np.ndarray:
    """``values`` as float64 over the pixels of ``mask`` (bool, the shape of the trailing axes), or all."""
    values = np.asarray(values)
    _reject_complex(name, values.dtype, "np.abs")
    values = values.astype(np.float64)
    check_finite(name, values)
    if mask is None:
        return values
    mask = np.asarray(mask, bool)
    if mask.shape != values.shape[values.ndim - mask.ndim:]:
        raise ValueError(f"mask: expected the shape {values.shape[values.ndim - mask.ndim:]} of the pixels, got {mask.shape}.")
    if not mask.any():
        raise ValueError("mask: selects no pixel.")
    return values[..., mask]


def spearman_correlation(a, b, mask=None) -> float:
    """Spearman's rank correlation between two real arrays of the same shape, pixel by pixel (e.g. the
    posterior standard deviation and |posterior mean - truth|): the Pearson correlation of their ranks,
    tied values sharing their mean rank. ``mask``: bool over the trailing axes, the pixels to use."""
    from scipy.stats import spearmanr  # lazy: scipy.stats only for the uncertainty metrics

    a, b = _pixels("a", a, mask), _pixels("b", b, mask)
    if a.shape != b.shape:
        raise ValueError(f"a, b: expected the same shape, got {a.shape} and {b.shape}.")
    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def foreground_mask(reference, fraction: float = 0.1) -> np.ndarray:
    """bool, the shape of ``reference``: the pixels of each image above ``fraction`` of that image's maximum.

    reference: real (..., H, W) magnitudes, one image per index of the leading axes; fraction in (0, 1).
    The object (a head, say) without the background, where errors and uncertainty are near zero
    together and would dominate a pixel-wise score of the whole image.
    """
    if not 0 < float(fraction) < 1:
        raise ValueError(f"fraction: expected a number in (0, 1), got {fraction!r}.")
    reference = _pixels("reference", reference, None)
    if reference.ndim < 2:
        raise ValueError(f"reference: expected images (..., H, W), got the shape {reference.shape}.")
    return reference > fraction * reference.max(axis=(-2, -1), keepdims=True)


def interval_coverage(samples, truth, level: float = 0.9, mask=None) -> float:
    """The fraction of pixels whose ``truth`` lies in the central ``level`` interval of ``samples``.

    samples: real (n, *shape), n >= 2 draws per pixel (e.g. posterior samples' magnitudes); truth:
    real (*shape). The interval of a pixel runs from the (1 - level) / 2 to the (1 + level) / 2 quantile
    of its samples (numpy's linear interpolation), ends included. ``mask``: bool over the trailing axes.
    With few samples the interval is that of the order statistics: n samples cover a new draw of their
    own distribution with probability about (n - 1) / (n + 1) when level is near 1 (8 samples: 0.78).
    """
    if not 0 < float(level) < 1:
        raise ValueError(f"level: expected a probability in (0, 1), got {level!r}.")
    samples, truth = _pixels("samples", samples, mask), _pixels("truth", truth, mask)
    if samples.ndim < 1 or samples.shape[0] < 2 or samples.shape[1:] != truth.shape:
        raise ValueError(f"samples: expected (n >= 2, *{truth.shape}) draws per pixel of truth, got {samples.shape}.")
    low, high = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return float(np.mean((truth >= low) & (truth <= high)))


# ---------------------------------------------------------------------- TensorFlow

_BATCH_LAYOUT = "(batch, H, W) or (batch, H, W, 1)"


def _as_image_batch(name: str, x, dtype=None) -> tf.Tensor:
    """Return ``x`` as a real float tensor (batch, H, W)."""
    x = tf.convert_to_tensor(x)
    _reject_complex(name, x.dtype, "tf.abs(x)")
    check_rank(name, x, (3, 4), _BATCH_LAYOUT)
    if x.shape.rank == 4 and x.shape[-1] is not None and x.shape[-1] != 1:
        raise ValueError(
            f"{name}: expected a single channel {_BATCH_LAYOUT}, got shape {static_shape(x)}; "
            "pass magnitudes, not real/imaginary channels."
        )
    if dtype is None:
        dtype = x.dtype if x.dtype.is_floating else tf.float32
    x = tf.cast(x, dtype)
    if x.shape.rank == 4:
        x = x[..., 0]
    check_finite(name, x)
    return x


def _as_pair(gt, pred) -> tuple[tf.Tensor, tf.Tensor]:
    gt = _as_image_batch("gt", gt)
    pred = _as_image_batch("pred", pred, dtype=gt.dtype)
    for axis, what in enumerate(("images (batch)", "rows (H)", "columns (W)")):
        check_same_dim("gt", gt.shape[axis], "pred", pred.shape[axis], what)
    return gt, pred


def _checked_positive(values: tf.Tensor, message: str) -> tf.Tensor:
    """``values`` once every entry is > 0: a ValueError with ``message`` in eager mode, an
    InvalidArgumentError with it when a graph runs (inside ``fit``, a user's all-zero target slice
    would otherwise give an infinite loss and NaN weights without a word)."""
    if tf.executing_eagerly():
        if not np.all(values.numpy() > 0):
            raise ValueError(message)
        return values
    with tf.control_dependencies([tf.debugging.assert_positive(values, message=message)]):
        return tf.identity(values)


def _data_range_tf(gt: tf.Tensor, maxval) -> tf.Tensor:
    """Per-image data range (batch,): max of each target image, or ``maxval`` broadcast."""
    if maxval is None:
        data_range = tf.reduce_max(gt, axis=(1, 2))
    else:
        data_range = tf.broadcast_to(tf.cast(maxval, gt.dtype), tf.shape(gt)[:1])
    if tf.executing_eagerly():
        values = data_range.numpy()
        bad = np.flatnonzero(~(values > 0))
        if bad.size:
            if maxval is None:
                raise ValueError(
                    f"gt: expected a positive maximum in every image (the data range), got max "
                    f"{values[bad[0]]:g} for image {bad[0]}; an all-zero target has no data range."
                )
            raise ValueError(f"maxval: expected a positive data range, got {values[bad[0]]:g}.")
    else:
        data_range = _checked_positive(data_range, "gt: expected a positive maximum in every image (the data "
                                                   "range, or maxval); an all-zero target has no data range.")
    # The data range is a property of the target, not something to optimise.
    return tf.stop_gradient(data_range)


def nmse_tf(gt, pred) -> tf.Tensor:
    """Per-image NMSE ``||gt - pred||^2 / ||gt||^2``.

    gt, pred: real float (batch, H, W) or (batch, H, W, 1); returns (batch,) in gt's float dtype.
    """
    gt, pred = _as_pair(gt, pred)
    energy = tf.reduce_sum(tf.square(gt), axis=(1, 2))
    energy = _checked_positive(energy, "gt: expected every target image to be non-zero (NMSE divides by "
                                       "||gt||^2), got an all-zero image.")
    return tf.reduce_sum(tf.square(gt - pred), axis=(1, 2)) / energy


def psnr_tf(gt, pred, maxval=None) -> tf.Tensor:
    """Per-image PSNR in dB, ``10 log10(maxval^2 / mean((gt - pred)^2))``.

    gt, pred: real float (batch, H, W) or (batch, H, W, 1). maxval: None (max of each target
    image), a scalar, or (batch,). Returns (batch,); ``inf`` where pred equals gt.
    """
    gt, pred = _as_pair(gt, pred)
    data_range = _data_range_tf(gt, maxval)
    mse = tf.reduce_mean(tf.square(gt - pred), axis=(1, 2))
    ten = tf.constant(10.0, gt.dtype)
    return ten * (tf.math.log(tf.square(data_range) / mse) / tf.math.log(ten))


def ssim_tf(gt, pred, maxval=None) -> tf.Tensor:
    """Per-image SSIM with the conventions of :func:`ssim` (uniform 7x7, K1 0.01, K2 0.03,
    sample covariance, 3-pixel border crop), differentiable in ``pred``.

    Only windows lying fully inside the image are used: that is exactly the region left
    after scikit-image's border crop, so no padding is needed.
    gt, pred: real float (batch, H, W) or (batch, H, W, 1), H and W >= 7. maxval: None (max
    of each target image), a scalar, or (batch,). Returns (batch,) in gt's float dtype.
    """
    gt, pred = _as_pair(gt, pred)
    _check_window_fits("gt", static_shape(gt))
    data_range = _data_range_tf(gt, maxval)
    c1 = tf.square(SSIM_K1 * data_range)[:, None, None]
    c2 = tf.square(SSIM_K2 * data_range)[:, None, None]
    luminance, contrast_structure = ssim_terms_tf(gt, pred, c1, c2)
    return tf.reduce_mean(luminance * contrast_structure, axis=(1, 2))


def ssim_terms_tf(x: tf.Tensor, y: tf.Tensor, c1, c2) -> tuple[tf.Tensor, tf.Tensor]:
    """Luminance and contrast-structure maps of SSIM over the valid 7x7 windows
    (uniform window, sample covariance); their product is the SSIM map. Multi-scale SSIM
    needs them apart. x, y: float (batch, H, W); c1, c2: (batch, 1, 1) or scalars.
    """
    # Shift both images by the same per-image offset: variances and covariance are
    # unchanged but lose far less precision to cancellation in float32.
    offset = tf.stop_gradient(tf.reduce_mean(x, axis=(1, 2), keepdims=True))
    window = [1, SSIM_WIN_SIZE, SSIM_WIN_SIZE, 1]

    def local_mean(t):
        return tf.nn.avg_pool2d(t[..., None], ksize=window, strides=1, padding="VALID")[..., 0]

    xs, ys = x - offset, y - offset
    mx, my = local_mean(xs), local_mean(ys)
    n = SSIM_WIN_SIZE**2
    cov_norm = tf.constant(n / (n - 1), x.dtype)
    vx = cov_norm * (local_mean(xs * xs) - mx * mx)
    vy = cov_norm * (local_mean(ys * ys) - my * my)
    vxy = cov_norm * (local_mean(xs * ys) - mx * my)
    ux, uy = mx + offset, my + offset
    luminance = (2 * ux * uy + c1) / (ux * ux + uy * uy + c1)
    contrast_structure = (2 * vxy + c2) / (vx + vy + c2)
    return luminance, contrast_structure


_TF_METRICS = {"nmse": nmse_tf, "psnr": psnr_tf, "ssim": ssim_tf}


def _magnitude(x) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if x.dtype.is_complex:
        return tf.abs(x)
    return x if x.dtype.is_floating else tf.cast(x, tf.float32)


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class ReconstructionMetric(keras.metrics.Metric):
    """Keras metric averaging per-image NMSE, PSNR or SSIM over all images seen.

    ``update_state(y_true, y_pred, sample_weight=None)``: y_true, y_pred complex or real
    (batch, H, W) or (batch, H, W, 1); complex inputs are compared as magnitudes. The data
    range of each image is the max of its target. ``sample_weight``: None or (batch,)
    weights for a weighted mean over images.
    """

    def __init__(self, metric: str = "psnr", name: str | None = None, **kwargs):
        if metric not in _TF_METRICS:
            raise ValueError(f"metric: expected one of {sorted(_TF_METRICS)}, got {metric!r}.")
        super().__init__(name=name or metric, **kwargs)
        self.metric = metric
        self._fn = _TF_METRICS[metric]
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self._fn(_magnitude(y_true), _magnitude(y_pred))
        values = tf.cast(values, self.dtype)
        if sample_weight is None:
            weights = tf.ones_like(values)
        else:
            # (batch,), (batch, 1) or a scalar: one weight per image.
            weights = tf.reshape(tf.cast(sample_weight, self.dtype), [-1])
            weights = tf.broadcast_to(weights, tf.shape(values))
        self.total.assign_add(tf.reduce_sum(values * weights))
        self.count.assign_add(tf.reduce_sum(weights))

    def result(self):
        return tf.math.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self) -> dict:
        config = super().get_config()
        config["metric"] = self.metric
        return config
