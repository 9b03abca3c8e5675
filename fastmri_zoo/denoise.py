"""Denoise image files with a zoo denoiser (``fastmri-zoo denoise``): the checks made before the model
loads, the run, and the output in the input's format.

:func:`plan_denoising` checks everything that can be checked without TensorFlow (the noise level, the
checkpoint's task, the output paths, the image file: its format, shape and values) and reads the
image (``data.images``); :func:`run_denoising` denoises it slice by slice (:func:`denoise_images`)
and writes the result atomically, never onto the input.

Units: ``sigma`` is the noise standard deviation in the units of the image. Each slice is divided by
its largest magnitude before the network (the denoisers were trained on slices of peak 1, with sigma
relative to that peak), sigma by the same number, and the output multiplied back. H and W are
zero-padded to what the network needs (multiples of 2^n_scales for a learnlet) and cropped back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .checks import check_output_path, check_scalar
from .data.images import ImageFile, check_image_output, read_image_file, write_image_file
from .inference import ModelSpec, check_task

__all__ = ["DenoisingPlan", "DenoisingResult", "plan_denoising", "run_denoising", "denoise_images"]


@dataclass
class DenoisingPlan:
    """What :func:`plan_denoising` checked: the checkpoint's spec, the image read, the noise level and the
    paths to write (None: not written)."""

    spec: ModelSpec
    image: ImageFile
    sigma: float
    output: str | None
    png: str | None
    batch_size: int


@dataclass
class DenoisingResult:
    """The denoised slices (the shape and dtype of ``plan.image.images``) and the paths written."""

    denoised: np.ndarray
    output: str | None
    png: str | None
    plan: DenoisingPlan


def _option(name: str, cli: bool) -> str:
    return {"sigma": "--sigma", "output": "-o/--output", "png": "--png", "batch_size": "--batch-size",
            "slice_axis": "--axis"}[name] if cli else name


def plan_denoising(spec: ModelSpec, input_path, output_path=None, png=None, *, sigma, slice_axis: int | None = None,
                   batch_size: int = 8, cli: bool = False) -> DenoisingPlan:
    """Check a denoising of ``input_path`` by the checkpoint of ``spec`` (``inference.checkpoint_spec``)
    before the model loads, and read the image.

    Refused with a ValueError naming the option or the file: a negative or non-finite ``sigma``, a
    ``batch_size`` below 1, a checkpoint that is not a denoiser (a reconstruction network or a prior), an
    unknown image format (``data.images.IMAGE_FORMATS``), an output of another format than the input or
    that is the input, a figure path that is the input or the output, an image that is not 2D or 3D or
    holds NaN / Inf. ``cli``: name the options as the command does (``--sigma``).
    """
    sigma = check_scalar(_option("sigma", cli), sigma, at_least=0)
    batch_size = check_scalar(_option("batch_size", cli), batch_size, integer=True, at_least=1)
    check_task(spec, "denoising")
    image = read_image_file(input_path, slice_axis=slice_axis)
    if output_path is not None:
        output_path = check_image_output(_option("output", cli), output_path, image)
    if png is not None:
        png = check_output_path(_option("png", cli), png, {"input": image.path, "output": output_path})
    return DenoisingPlan(spec, image, float(sigma), output_path, png, int(batch_size))


def denoise_images(model, images: np.ndarray, sigma, batch_size: int = 8) -> np.ndarray:
    """``images`` float32 (slices, H, W) (or complex64) denoised by ``model`` (a ``models.Denoiser``) at the
    noise level ``sigma`` (a number, or one per slice) in the images' units; same shape and dtype.

    Each slice goes in divided by its largest magnitude (sigma too), zero-padded to H and W multiples of
    2^``model.n_scales``; the output is cropped and multiplied back.
    """
    import tensorflow as tf  # lazy: TensorFlow only once a model runs

    from .layers.learnlets import crop_padding, pad_to_multiple  # lazy: imports TensorFlow
    from .models.denoising import Denoiser  # lazy: imports TensorFlow

    if not isinstance(model, Denoiser):
        raise ValueError(f"model: expected a denoiser (models.Denoiser, task 'denoising'), got {type(model).__name__} "
                         f"(task {getattr(model, 'TASK', 'unknown')!r}).")
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images: expected (slices, H, W), got shape {images.shape}.")
    sigma = np.broadcast_to(np.asarray(sigma, np.float32), images.shape[:1])
    peaks = np.abs(images).reshape(len(images), -1).max(axis=1)
    scales = np.where(peaks > 0, peaks, 1.0).astype(np.float32)
    factor = 2 ** int(model.n_scales)
    dtype = np.complex64 if np.iscomplexobj(images) else np.float32
    outputs = []
    for start in range(0, len(images), int(batch_size)):
        stop = start + int(batch_size)
        scale = scales[start:stop]
        batch = tf.constant((images[start:stop] / scale[:, None, None]).astype(dtype)[..., None])
        padded, padding = pad_to_multiple(batch, factor)
        noise = tf.constant(sigma[start:stop] / scale)
        if np.iscomplexobj(images):
            out = model({"image": padded[..., 0], "sigma": noise})[..., None]
        else:
            out = model({"image": padded, "sigma": noise})
        outputs.append(crop_padding(out, padding).numpy()[..., 0] * scale[:, None, None])
    return np.concatenate(outputs).astype(dtype)


def run_denoising(model, plan: DenoisingPlan, *, model_name: str | None = None) -> DenoisingResult:
    """Denoise the image of ``plan`` with ``model`` and write the output (and figure) the plan names."""
    name = model_name or plan.spec.name
    denoised = denoise_images(model, plan.image.images, plan.sigma, plan.batch_size)
    description = f"denoised by {name} at sigma {plan.sigma:g}"
    output = None
    if plan.output is not None:
        attrs: dict[str, Any] = {"description": description, "denoiser": name, "sigma": plan.sigma}
        output = write_image_file(plan.image, denoised, plan.output, attrs)
    png = None
    if plan.png is not None:
        from .viz import save_comparison_png  # lazy: matplotlib only when a figure is asked for

        middle = len(denoised) // 2
        png = save_comparison_png(plan.png, {"input": np.abs(plan.image.images[middle]),
                                             "denoised": np.abs(denoised[middle])},
                                  title=f"{os.path.basename(plan.image.path)}: {description}")
    return DenoisingResult(denoised, output, png, plan)
