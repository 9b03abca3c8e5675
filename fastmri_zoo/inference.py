"""Running a zoo model on a fastMRI-layout file, slice by slice.

The inputs are prepared exactly as the training pipelines prepare them
(``data.pipelines``): k-space masked, coil maps estimated from the fully
sampled centre, everything divided by the maximum of the zero-filled
magnitude; the output is multiplied back, so reconstructions are in the
units of the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["infer_mask", "undersample", "reconstruct_cartesian", "reconstruct_file", "FileReconstruction"]


def infer_mask(kspace: np.ndarray) -> tuple[np.ndarray, int]:
    """The sampled columns of Cartesian k-space (those not identically zero) and the
    width of the contiguous sampled block around the centre column W // 2.

    kspace: complex (slices, [coils,] H, W). Returns mask float32 (1, W), num_low_frequencies.
    """
    kspace = np.asarray(kspace)
    sampled = np.any(kspace != 0, axis=tuple(range(kspace.ndim - 1)))
    width = sampled.shape[0]
    centre = width // 2
    if not sampled[centre]:
        raise ValueError(
            "kspace: the centre column is not sampled; expected Cartesian k-space with a fully sampled "
            "centre (autocalibration lines) to normalise the input and estimate coil maps."
        )
    left = centre
    while left > 0 and sampled[left - 1]:
        left -= 1
    right = centre
    while right < width - 1 and sampled[right + 1]:
        right += 1
    return sampled.astype(np.float32).reshape(1, width), int(right - left + 1)


def undersample(kspace: np.ndarray, mask_type: str, center_fraction: float, acceleration: float,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Retrospective undersampling with one fastMRI mask for the whole volume.

    Returns the masked k-space (complex64), the mask float32 (1, W) and the number of centre columns.
    """
    from .sampling import create_mask_func

    mask, num_low = create_mask_func(mask_type, center_fraction, acceleration)(kspace.shape, seed=seed)
    return (np.asarray(kspace) * mask).astype(np.complex64), mask.astype(np.float32), int(num_low)


def _zero_filled_magnitude(kspace, multicoil: bool):
    import tensorflow as tf

    from .physics import ifftc, rss

    images = ifftc(tf.convert_to_tensor(kspace, tf.complex64), 2)
    return rss(images, axis=1) if multicoil else tf.abs(images)


def reconstruct_cartesian(model, kspace: np.ndarray, mask: np.ndarray, num_low_frequencies: int,
                          batch_size: int = 4, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude reconstructions (slices, H, W) of masked Cartesian k-space, in the file's units,
    and the zero-filled magnitudes (RSS over coils) computed on the way.

    kspace: complex64 (slices, H, W) or (slices, coils, H, W), already masked; mask (1, W).
    """
    import tensorflow as tf
    from tqdm.auto import tqdm

    from .data.pipelines import normalization_scale
    from .physics import estimate_sensitivity_maps

    multicoil = bool(model.multicoil)
    if kspace.ndim == 4 and not multicoil:
        raise ValueError(
            f"kspace: {type(model).__name__} is a single-coil model but the file holds {kspace.shape[1]} coils; "
            "use a multicoil model (fastmri-zoo list --coils multicoil) or combine the coils first."
        )
    if kspace.ndim == 3 and multicoil:
        raise ValueError(
            f"kspace: {type(model).__name__} is a multicoil model but the file holds single-coil k-space "
            "(slices, H, W); use a single-coil model."
        )
    outputs, zero_filled_images = [], []
    starts = range(0, kspace.shape[0], batch_size)
    for start in tqdm(starts, desc="reconstruct", unit="batch", disable=not progress):
        batch = tf.constant(kspace[start : start + batch_size], tf.complex64)
        zero_filled = _zero_filled_magnitude(batch, multicoil)
        scales = tf.stack([normalization_scale(z, None) for z in tf.unstack(zero_filled)])
        inputs = {
            "kspace": batch / tf.cast(tf.reshape(scales, [-1] + [1] * (batch.shape.rank - 1)), tf.complex64),
            "mask": tf.constant(np.broadcast_to(mask, (batch.shape[0], 1, mask.shape[-1])), tf.float32),
        }
        if multicoil:
            inputs["smaps"] = estimate_sensitivity_maps(inputs["kspace"], num_low_frequencies)
        image = tf.abs(model(inputs)) * scales[:, None, None]
        outputs.append(image.numpy())
        zero_filled_images.append(zero_filled.numpy())
    return np.concatenate(outputs).astype(np.float32), np.concatenate(zero_filled_images).astype(np.float32)


@dataclass
class FileReconstruction:
    """What ``reconstruct_file`` produced: images in the file's units, cropped to the reference size."""

    reconstruction: np.ndarray
    zero_filled: np.ndarray
    reference: np.ndarray | None
    acceleration: float
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


def reconstruct_file(model, input_path, output_path=None, png=None, *, acceleration=None, mask_type=None,
                     center_fraction=None, seed: int = 0, batch_size: int = 4, progress: bool = True,
                     model_name: str | None = None) -> FileReconstruction:
    """Reconstruct every slice of a fastMRI-layout file and write ``reconstruction`` (fastMRI layout).

    A file whose k-space is already undersampled (zero columns, or a stored ``mask``) is used
    as is. A fully sampled file is undersampled retrospectively: by ``acceleration`` /
    ``mask_type`` / ``center_fraction`` when given, else by the acquisition recorded in the
    model's preset. ``png``: a figure of the middle slice (reconstruction, zero-filled and,
    when the file holds a reference, the reference and error maps).
    """
    from . import metrics as zoo_metrics
    from .data.h5 import read_fastmri_h5, write_reconstruction_h5
    from .data.pipelines import center_crop

    volume = read_fastmri_h5(input_path)
    if volume.noncartesian:
        raise ValueError(
            f"{input_path}: holds non-Cartesian k-space (a 'trajectory' dataset); "
            f"{type(model).__name__} is a Cartesian model."
        )
    kspace = volume.kspace
    if volume.mask is not None:
        mask = np.asarray(volume.mask, np.float32).reshape(1, -1)
        _, num_low = infer_mask(kspace * mask)
        kspace = (kspace * mask).astype(np.complex64)
    else:
        mask, num_low = infer_mask(kspace)
    fully_sampled = bool(mask.min() == 1)
    recorded = dict((getattr(model, "preset_metadata", None) or {}).get("acquisition") or {})
    if fully_sampled:
        acceleration = acceleration or recorded.get("acceleration")
        if acceleration is None:
            raise ValueError(
                f"{input_path}: the k-space is fully sampled and the model records no acquisition; "
                "pass --acceleration (and --mask-type, --center-fraction) to undersample it retrospectively."
            )
        mask_type = mask_type or recorded.get("mask_type", "equispaced_fraction")
        center_fraction = center_fraction or recorded.get("center_fraction", 0.08)
        kspace, mask, num_low = undersample(kspace, mask_type, center_fraction, acceleration, seed)
    elif acceleration is not None:
        raise ValueError(
            f"acceleration: {input_path} is already undersampled (AF {1 / mask.mean():.2f}); "
            "retrospective undersampling applies only to fully sampled files."
        )
    image, zero_filled = reconstruct_cartesian(model, kspace, mask, num_low, batch_size=batch_size, progress=progress)
    reference = volume.reference
    if reference is not None:
        image = np.asarray(center_crop(image, reference.shape[-2:]))
        zero_filled = np.asarray(center_crop(zero_filled, reference.shape[-2:]))
    result = FileReconstruction(image, zero_filled, reference, float(1 / mask.mean()))
    if reference is not None:
        result.metrics = {"network": zoo_metrics.evaluate_volume(reference, image),
                          "zero-filled": zoo_metrics.evaluate_volume(reference, zero_filled)}
    result.attrs = {
        "model": model_name or type(model).__name__,
        "acceleration": result.acceleration,
        "mask_type": mask_type or "from file",
        "source": os.path.basename(os.fspath(input_path)),
        "retrospective": fully_sampled,
    }
    if output_path is not None:
        write_reconstruction_h5(output_path, image, attrs=result.attrs)
    if png is not None:
        from .viz import save_comparison_png

        middle = image.shape[0] // 2
        label = model_name or type(model).__name__
        save_comparison_png(
            png,
            {label: image[middle], "zero-filled": zero_filled[middle]},
            reference=None if reference is None else reference[middle],
            metrics={label: result.metrics["network"], "zero-filled": result.metrics["zero-filled"]} if result.metrics else None,
            title=f"{os.path.basename(os.fspath(input_path))}, slice {middle}, AF {result.acceleration:.1f}",
        )
    return result
