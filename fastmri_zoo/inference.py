"""Running a zoo model on a fastMRI-layout file, slice by slice.

The inputs are prepared by the model's preprocessor (``data.preprocessing``: the one the
training pipelines use, recorded in the preset as ``preprocessor.json`` or derived from its
``metadata.json``), and the output is multiplied back by the scale, so reconstructions are
in the units of the file.

- Cartesian files: k-space masked, coil maps estimated from the fully sampled
  centre, everything divided by the maximum of the zero-filled magnitude.
- Non-Cartesian files (a ``trajectory`` dataset, see ``data.h5``): raw samples,
  trajectory and density compensation (the file's ``dcomp`` or Pipe-Menon
  weights), everything divided by the maximum of the density-compensated
  adjoint (RSS over coils); coil maps from the data itself, the low-resolution
  adjoint of the centre of k-space (``estimate_sensitivity_maps_nufft``). Such
  files usually have no reference: the baseline beside the network is the
  adjoint + density compensation, and no metric is computed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from . import metrics as zoo_metrics
from .data.h5 import read_fastmri_h5, write_reconstruction_h5
from .data.preprocessing import (
    CartesianPreprocessor,
    NonCartesianPreprocessor,
    acs_width,
    preprocessor_for,
    takes_trajectory,
)
from .sampling import create_mask_func
from .utils import center_crop

__all__ = [
    "infer_mask",
    "undersample",
    "reconstruct_cartesian",
    "is_noncartesian",
    "noncartesian_inputs",
    "reconstruct_noncartesian",
    "reconstruct_file",
    "FileReconstruction",
]


def infer_mask(kspace: np.ndarray) -> tuple[np.ndarray, int]:
    """The sampled columns of Cartesian k-space (those not identically zero) and the
    width of the contiguous sampled block around the centre column W // 2
    (``data.preprocessing.acs_width``, what the preprocessor uses when no width is given).

    kspace: complex (slices, [coils,] H, W). Returns mask float32 (1, W), num_low_frequencies.
    """
    kspace = np.asarray(kspace)
    sampled = np.any(kspace != 0, axis=tuple(range(kspace.ndim - 1)))
    mask = sampled.astype(np.float32).reshape(1, -1)
    try:
        width = acs_width(mask)
    except ValueError as error:
        raise ValueError(f"kspace: {str(error).removeprefix('mask: ')}") from None
    return mask, int(width)


def undersample(kspace: np.ndarray, mask_type: str, center_fraction: float, acceleration: float,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Retrospective undersampling with one fastMRI mask for the whole volume.

    Returns the masked k-space (complex64), the mask float32 (1, W) and the number of centre columns.
    """
    mask, num_low = create_mask_func(mask_type, center_fraction, acceleration)(kspace.shape, seed=seed)
    return (np.asarray(kspace) * mask).astype(np.complex64), mask.astype(np.float32), int(num_low)


def _preprocessor(model, kind):
    """The model's preprocessor (``data.preprocessing.preprocessor_for``), which must be of ``kind``."""
    preprocessor = preprocessor_for(model)
    if not isinstance(preprocessor, kind):
        raise ValueError(
            f"preprocessor: {type(model).__name__} records a {preprocessor.kind} preprocessor, "
            f"expected a {kind.kind} one for these inputs."
        )
    return preprocessor


def reconstruct_cartesian(model, kspace: np.ndarray, mask: np.ndarray, num_low_frequencies: int | None,
                          batch_size: int = 4, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude reconstructions (slices, H, W) of masked Cartesian k-space, in the file's units,
    and the zero-filled magnitudes (RSS over coils) computed on the way.

    kspace: complex64 (slices, H, W) or (slices, coils, H, W), already masked; mask (1, W);
    num_low_frequencies: the fully sampled centre columns (None: read from the mask). The inputs
    are the model's ``CartesianPreprocessor``'s.
    """
    preprocessor = _preprocessor(model, CartesianPreprocessor)
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
    preprocessor.check_model(model)
    outputs, zero_filled_images = [], []
    starts = range(0, kspace.shape[0], batch_size)
    for start in tqdm(starts, desc="reconstruct", unit="batch", disable=not progress):
        batch = tf.constant(kspace[start : start + batch_size], tf.complex64)
        inputs, scales, zero_filled = preprocessor(batch, mask, num_low_frequencies)
        image = tf.abs(model(inputs)) * scales[:, None, None]
        outputs.append(image.numpy())
        zero_filled_images.append(zero_filled.numpy())
    return np.concatenate(outputs).astype(np.float32), np.concatenate(zero_filled_images).astype(np.float32)


def takes_physical_units(model) -> bool:
    """Whether ``model`` takes k-space as acquired (its preprocessor does not normalise: e.g. the
    authors' converted checkpoints, ``input_units == "physical"``, which apply their own scale)
    rather than normalised by the maximum of the zero-filled / adjoint + DCp magnitude like the
    zoo's checkpoints."""
    return not preprocessor_for(model).normalize


def is_noncartesian(model) -> bool:
    """Whether ``model`` takes non-Cartesian inputs (its required inputs include ``traj``)."""
    return takes_trajectory(model)


def noncartesian_inputs(kspace, traj, image_shape, dcomp, normalize: bool = True, preprocessor=None
                        ) -> tuple[dict[str, Any], float, np.ndarray]:
    """Model inputs for one slice (volume in 3D), prepared as ``data.pipelines.noncartesian_dataset`` does
    (by ``preprocessor``, a ``data.preprocessing.NonCartesianPreprocessor``; default: the pipelines' one
    with ``normalize``), with a batch axis of 1.

    kspace: complex64 (coils, nsamples) multicoil or (nsamples,) single-coil, in the units of the
    file; traj: float32 (ndim, nsamples), radians per pixel; image_shape: (H, W) or (D, H, W);
    dcomp: float32 (nsamples,). The scale is the maximum of the density-compensated adjoint
    (RSS over coils); k-space is divided by it (``normalize=False``: the scale is 1, for models
    taking physical units, see ``takes_physical_units``). Multicoil coil maps: the low-resolution
    density-compensated adjoint of the samples with |k| < ``smaps_center_radius`` (0.1 pi, as in
    training), each coil divided by the RSS.

    Returns (inputs, scale, adjoint): inputs {"kspace": complex64 (1, [coils,] nsamples),
    "traj": float32 (1, ndim, nsamples), "dcomp": float32 (1, nsamples), "smaps": complex64
    (1, coils, *image_shape) (multicoil)}, the scale (float) and the adjoint + density
    compensation image complex64 (*image_shape) in the units of the file (coils combined with
    the conjugate coil maps).
    """
    image_shape = tuple(int(n) for n in image_shape)
    if preprocessor is None:
        preprocessor = NonCartesianPreprocessor(multicoil=np.ndim(kspace) == 2, ndim=len(image_shape),
                                                image_shape=image_shape, normalize=normalize)
    inputs, scale, adjoint = preprocessor(kspace, traj, dcomp, image_shape)
    return {key: value[None] for key, value in inputs.items()}, float(scale), adjoint.numpy()


def _per_slice(array, num_slices: int, per_slice_rank: int):
    """Index function for a dataset stored once (rank ``per_slice_rank``) or per slice."""
    if array is None:
        return lambda index: None
    array = np.asarray(array)
    if array.ndim == per_slice_rank:
        return lambda index: array
    return lambda index: array[index]


def reconstruct_noncartesian(model, kspace: np.ndarray, traj: np.ndarray, image_shape, dcomp=None,
                             progress: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Network and adjoint + density compensation magnitudes of non-Cartesian k-space, in the file's units.

    kspace: complex64 (slices, coils, nsamples) or (slices, nsamples) (in 3D one "slice" is a
    volume); traj: float32 (ndim, nsamples) shared or (slices, ndim, nsamples), radians per pixel;
    image_shape: (H, W) or (D, H, W); dcomp: float32 (nsamples,), (slices, nsamples) or None
    (Pipe-Menon weights, ``physics.pipe_menon_density`` with its defaults, computed once per
    distinct trajectory). Given weights are rescaled as every density of the package is
    (``physics.normalize_density``: A^H D A maps a constant image to itself at the centre), so
    their overall scale does not matter. model: a non-Cartesian zoo model, or None for the
    adjoint only. The inputs, scale and weights are the model's ``NonCartesianPreprocessor``'s
    (the pipelines' defaults when ``model`` is None) on the grid ``image_shape``: a single-coil
    model is told that grid (``inputs["image_shape"]``), whatever size it was trained on.

    Returns (network float32 (slices, *image_shape) or None, adjoint + DCp float32
    (slices, *image_shape), dcomp float32 (nsamples,) or (slices, nsamples) as used).
    """
    kspace = np.asarray(kspace)
    if kspace.ndim not in (2, 3):
        raise ValueError(
            f"kspace: expected (slices, nsamples) or (slices, coils, nsamples) non-Cartesian k-space, "
            f"got shape {kspace.shape}."
        )
    image_shape = tuple(int(n) for n in image_shape)
    num_slices = kspace.shape[0]
    traj = np.asarray(traj, np.float32)
    if traj.ndim not in (2, 3) or traj.shape[-2] != len(image_shape) or traj.shape[-1] != kspace.shape[-1] or (
            traj.ndim == 3 and traj.shape[0] != num_slices):
        raise ValueError(
            f"traj: expected ({len(image_shape)}, {kspace.shape[-1]}) or ({num_slices}, {len(image_shape)}, "
            f"{kspace.shape[-1]}) (ndim of image_shape {image_shape}, samples of kspace), got shape {traj.shape}."
        )
    multicoil = kspace.ndim == 3
    if model is None:
        preprocessor = NonCartesianPreprocessor(multicoil=multicoil, ndim=len(image_shape))
    else:
        preprocessor = _preprocessor(model, NonCartesianPreprocessor)
    if dcomp is not None:
        dcomp = np.asarray(dcomp, np.float32)
        if dcomp.shape not in ((kspace.shape[-1],), (num_slices, kspace.shape[-1])):
            raise ValueError(
                f"dcomp: expected shape ({kspace.shape[-1]},) or ({num_slices}, {kspace.shape[-1]}), got {dcomp.shape}."
            )
    # Pipe-Menon weights, or given weights of any scale brought to the one the networks were trained
    # with: once for a shared trajectory and weights, else slice by slice.
    traj_of, dcomp_of = _per_slice(traj, num_slices, 2), _per_slice(dcomp, num_slices, 1)
    if traj.ndim == 2 and (dcomp is None or dcomp.ndim == 1):
        dcomp = preprocessor.density(traj, dcomp, image_shape).numpy()
    else:
        dcomp = np.stack([preprocessor.density(traj_of(i), dcomp_of(i), image_shape).numpy()
                          for i in range(num_slices)])
    dcomp_of = _per_slice(dcomp, num_slices, 1)
    network, adjoint = [], []
    for index in tqdm(range(num_slices), desc="reconstruct", unit="slice", disable=not progress):
        inputs, scale, image = noncartesian_inputs(kspace[index], traj_of(index), image_shape, dcomp_of(index),
                                                   preprocessor=preprocessor)
        adjoint.append(np.abs(image))
        if model is not None:
            if not multicoil:
                inputs["image_shape"] = image_shape
            output = model(inputs)
            network.append(np.abs(tf.convert_to_tensor(output).numpy()[0]) * scale)
    network_images = np.stack(network).astype(np.float32) if model is not None else None
    return network_images, np.stack(adjoint).astype(np.float32), dcomp


def _check_noncartesian_model(model, volume, image_shape, input_path) -> None:
    """Clear errors when a non-Cartesian model cannot take the file's k-space."""
    name = type(model).__name__
    multicoil = bool(getattr(model, "multicoil", False))
    if volume.multicoil and not multicoil:
        raise ValueError(
            f"kspace: {name} is a single-coil model but {input_path} holds {volume.kspace.shape[1]} coils "
            f"(kspace {volume.kspace.shape}); use a multicoil model (fastmri-zoo list --coils multicoil)."
        )
    if not volume.multicoil and multicoil:
        raise ValueError(
            f"kspace: {name} is a multicoil model but {input_path} holds single-coil k-space "
            f"{volume.kspace.shape} (slices, nsamples); use a single-coil model."
        )
    model_ndim = getattr(model, "ndim", None)
    if model_ndim is not None and int(model_ndim) != len(image_shape):
        raise ValueError(
            f"image_shape: {name} reconstructs {int(model_ndim)}D images but {input_path} has the "
            f"{len(image_shape)}D grid {list(image_shape)}."
        )


@dataclass
class FileReconstruction:
    """What ``reconstruct_file`` produced: images in the file's units, cropped to the reference size.

    ``zero_filled`` holds the baseline named by ``baseline``: the zero-filled inverse FFT for
    Cartesian files, the adjoint + density compensation for non-Cartesian ones. ``acceleration``
    is NaN when a non-Cartesian file does not record it.
    """

    reconstruction: np.ndarray
    zero_filled: np.ndarray
    reference: np.ndarray | None
    acceleration: float
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    baseline: str = "zero-filled"
    noncartesian: bool = False


def _middle_image(images: np.ndarray) -> np.ndarray:
    """The middle slice of (slices, H, W), or the middle partition of the middle volume of (slices, D, H, W)."""
    image = images[images.shape[0] // 2]
    return image[image.shape[0] // 2] if image.ndim == 3 else image


def _reconstruct_noncartesian_file(model, volume, input_path, output_path, png, progress, model_name):
    image_shape = volume.image_shape
    _check_noncartesian_model(model, volume, image_shape, input_path)
    trained_on = _preprocessor(model, NonCartesianPreprocessor).image_shape
    network, adjoint, _ = reconstruct_noncartesian(model, volume.kspace, volume.trajectory, image_shape,
                                                   dcomp=volume.dcomp, progress=progress)
    reference = volume.reference
    if reference is not None:
        if any(r > n for r, n in zip(reference.shape[1:], image_shape)):
            raise ValueError(
                f"{volume.reference_key}: the reference {reference.shape[1:]} is larger than the image grid "
                f"{list(image_shape)}; reconstruct on a grid at least as large (--image-shape)."
            )
        network = np.asarray(center_crop(network, reference.shape[1:]))
        adjoint = np.asarray(center_crop(adjoint, reference.shape[1:]))
    acceleration = float(volume.attrs.get("acceleration", float("nan")))
    baseline = "adjoint + DCp"
    result = FileReconstruction(network, adjoint, reference, acceleration, baseline=baseline, noncartesian=True)
    label = model_name or type(model).__name__
    source = os.path.basename(os.fspath(input_path))
    if reference is not None:
        flat = (-1,) + reference.shape[-2:]  # 3D volumes are scored slice by slice, as one volume
        result.metrics = {
            "network": zoo_metrics.evaluate_volume(reference.reshape(flat), network.reshape(flat)),
            baseline: zoo_metrics.evaluate_volume(reference.reshape(flat), adjoint.reshape(flat)),
        }
    result.attrs = {
        "model": label,
        "source": source,
        "trajectory": "non-Cartesian",
        "image_shape": np.asarray(image_shape, np.int64),
        "density_compensation": "from file" if volume.dcomp is not None else "Pipe-Menon",
    }
    if trained_on is not None and tuple(trained_on) != tuple(image_shape):
        # Explicit, never a silent fall-back to the size the model was built for.
        result.attrs["model_image_shape"] = np.asarray(trained_on, np.int64)
        result.attrs["note"] = (f"{label} was trained on the grid {list(trained_on)}; reconstructed on the "
                                f"file's grid {list(image_shape)}")
    if reference is None:
        result.attrs["metrics"] = "none (the input has no fully sampled reference)"
    if np.isfinite(acceleration):
        result.attrs["acceleration"] = acceleration
    if output_path is not None:
        write_reconstruction_h5(output_path, network, attrs=result.attrs)
    if png is not None:
        from .viz import save_comparison_png  # lazy: matplotlib is loaded only when a figure is asked for

        middle = network.shape[0] // 2
        af = f", AF {acceleration:.2f}" if np.isfinite(acceleration) else ""
        note = "" if reference is not None else "; no reference, no metrics"
        save_comparison_png(
            png,
            {baseline: _middle_image(adjoint), label: _middle_image(network)},
            reference=None if reference is None else _middle_image(reference),
            metrics={label: result.metrics["network"], baseline: result.metrics[baseline]} if result.metrics else None,
            title=f"{source}, slice {middle}{af}{note}",
        )
    return result


def reconstruct_file(model, input_path, output_path=None, png=None, *, acceleration=None, mask_type=None,
                     center_fraction=None, seed: int = 0, batch_size: int = 4, progress: bool = True,
                     model_name: str | None = None, image_shape=None) -> FileReconstruction:
    """Reconstruct every slice of a fastMRI-layout file and write ``reconstruction`` (fastMRI layout).

    Cartesian files: a file whose k-space is already undersampled (zero columns, or a stored
    ``mask``) is used as is. A fully sampled file is undersampled retrospectively: by
    ``acceleration`` / ``mask_type`` / ``center_fraction`` when given, else by the acquisition
    recorded in the model's preset. ``png``: a figure of the middle slice (reconstruction,
    zero-filled and, when the file holds a reference, the reference and error maps).

    Non-Cartesian files (``trajectory`` dataset; the model must be non-Cartesian): the raw
    samples are reconstructed as acquired (see ``reconstruct_noncartesian``) on the file's
    ``image_shape`` grid, or on ``image_shape`` when given; ``png`` shows adjoint + density
    compensation beside the network. No metric is computed (such files have no reference).
    ``batch_size`` applies to Cartesian files only (non-Cartesian slices go one at a time).
    """
    name = type(model).__name__
    if is_noncartesian(model):
        volume = read_fastmri_h5(input_path, image_shape=image_shape)
        if not volume.noncartesian:
            raise ValueError(
                f"{input_path}: has no 'trajectory' dataset, so it holds Cartesian k-space {volume.kspace.shape}; "
                f"{name} is a non-Cartesian model. A non-Cartesian file needs kspace (slices, [coils,] nsamples), "
                "trajectory float32 (ndim, nsamples) in radians per pixel and the attribute image_shape "
                "(see fastmri_zoo.data.h5)."
            )
        given = {"acceleration": acceleration, "mask_type": mask_type, "center_fraction": center_fraction}
        given = [key for key, value in given.items() if value is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)}: retrospective Cartesian undersampling does not apply to the non-Cartesian "
                f"file {input_path}; its samples are reconstructed as acquired."
            )
        return _reconstruct_noncartesian_file(model, volume, input_path, output_path, png, progress, model_name)
    if image_shape is not None:
        raise ValueError(
            f"image_shape: only for non-Cartesian models; {name} is Cartesian and reconstructs on the k-space grid."
        )
    volume = read_fastmri_h5(input_path)
    if volume.noncartesian:
        raise ValueError(
            f"{input_path}: holds non-Cartesian k-space (a 'trajectory' dataset); "
            f"{name} is a Cartesian model. Use a non-Cartesian one (fastmri-zoo list --trajectory radial)."
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
        from .viz import save_comparison_png  # lazy: matplotlib is loaded only when a figure is asked for

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
