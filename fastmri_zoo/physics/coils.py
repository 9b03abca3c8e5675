"""Coil combination and sensitivity-map estimation."""

from __future__ import annotations

import tensorflow as tf

from ..checks import check_finite, check_rank, real_to_complex64
from .base import as_complex64
from .fft import ifftc

__all__ = ["rss", "normalize_by_rss", "estimate_sensitivity_maps"]


def rss(coil_images, axis: int = 1) -> tf.Tensor:
    """Root-sum-of-squares combination: sqrt(sum_c |x_c|^2) over ``axis``.

    coil_images: complex or real (batch, coils, *spatial); returns float32.
    """
    x = tf.convert_to_tensor(coil_images)
    power = tf.math.real(x * tf.math.conj(x)) if x.dtype.is_complex else tf.square(x)
    return tf.sqrt(tf.reduce_sum(tf.cast(power, tf.float32), axis=axis))


def normalize_by_rss(coil_images, eps: float = 1e-6) -> tf.Tensor:
    """Sensitivity maps from coil images: each coil divided by the RSS over coils.

    coil_images: complex64 (batch, coils, *spatial). Where the RSS is below
    ``eps`` times its maximum (background), the maps are set to zero.
    """
    x = as_complex64("coil_images", coil_images)
    combined = rss(x, axis=1)[:, None]
    peak = tf.reduce_max(combined, axis=list(range(1, combined.shape.rank)), keepdims=True)
    safe = tf.where(combined > eps * peak, combined, tf.ones_like(combined))
    maps = x / real_to_complex64(safe)
    return tf.where(combined > eps * peak, maps, tf.zeros_like(maps))


def estimate_sensitivity_maps(kspace, num_low_freqs: int, ndim: int = 2, eps: float = 1e-6) -> tf.Tensor:
    """Coil maps from the fully sampled centre of Cartesian k-space.

    The central ``num_low_freqs`` phase-encoding lines (last axis) are kept,
    the rest is zeroed, and the low-resolution coil images are normalised by
    their root-sum-of-squares (the E2E-VarNet / ESPIRiT-free recipe).

    kspace: complex64 (batch, coils, *spatial); returns complex64 of the same shape.
    """
    kspace = as_complex64("kspace", kspace)
    check_rank("kspace", kspace, ndim + 2, f"(batch, coils, {ndim} spatial axes)")
    check_finite("kspace", kspace)
    width = kspace.shape[-1]
    if width is not None and not 0 < num_low_freqs <= width:
        raise ValueError(
            f"num_low_freqs: expected an integer in [1, {width}] (the k-space width), got {num_low_freqs}."
        )
    width = tf.shape(kspace)[-1]
    start = (width - num_low_freqs + 1) // 2
    columns = tf.range(width)
    keep = tf.logical_and(columns >= start, columns < start + num_low_freqs)
    centre = kspace * tf.cast(keep, tf.complex64)
    return normalize_by_rss(ifftc(centre, ndim), eps=eps)
