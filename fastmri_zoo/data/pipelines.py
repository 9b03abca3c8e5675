"""``tf.data`` pipelines: a folder of fastMRI-layout files -> model-ready ``(inputs, target)``.

Every pipeline reads the ``*.h5`` files of ``folder`` (sorted by name, not recursive),
Cartesian layout (see ``h5``): real fastMRI files and ``fastmri-zoo simulate`` output alike;
except ``synthesized_cartesian_dataset`` and ``synthesized_noncartesian_dataset``, which
synthesise their slices from the magnitude volumes of ``folder`` (``data.synthesis``) and give
the elements of ``cartesian_dataset`` and ``noncartesian_dataset`` on the grid ``synthesis.size``,
and ``synthesized_image_dataset``, the synthesised complex images themselves (the training
images of a prior, ``models.ScoreNetwork``), and ``synthesized_denoising_dataset``, noisy magnitude
slices with their noise level and clean versions (the training examples of a denoiser).
Elements are ``(inputs, target)`` with ``inputs`` a dict; batching adds a leading batch
axis to every entry. Shapes below are per example (before batching):

``cartesian_dataset`` (one example per slice)
    - ``kspace``: complex64 (coils, H, W) multicoil / (H, W) single-coil, masked, divided by ``scale``
    - ``mask``: float32 (1, W), 0/1 columns (broadcasts against kspace)
    - ``smaps``: complex64 (coils, H, W), multicoil only, estimated from the ACS lines
    - ``scale``: float32 (), see below
    - target: float32 (h, w), the reference magnitude divided by ``scale``

``noncartesian_dataset`` (2D, one example per slice)
    - ``kspace``: complex64 (coils, nsamples) / (nsamples,), divided by ``scale``
    - ``traj``: float32 (2, nsamples), radians per pixel in [-pi, pi] (axes k_H, k_W)
    - ``dcomp``: float32 (nsamples,), Pipe-Menon density compensation
    - ``smaps``: complex64 (coils, h, w), multicoil only
    - ``scale``: float32 ()
    - target: float32 (h, w)

``noncartesian_3d_dataset`` (one example per file: the whole volume)
    - ``kspace``: complex64 (coils, nsamples) / (nsamples,); ``traj``: float32 (3, nsamples)
      (axes k_D, k_H, k_W); ``dcomp``: float32 (nsamples,); ``smaps``: complex64
      (coils, D, h, w) multicoil only; ``scale``: float32 ()
    - target: float32 (D, h, w), D the number of slices of the file

Preprocessing (normalisation, coil maps, density compensation, the image grid) is the one of
``data.preprocessing``, which inference and the command line use too: every dataset carries its
preprocessor as ``dataset.preprocessor`` (check a model against it with
``dataset.preprocessor.check_model(model)``; a preset records it as ``preprocessor.json``).
Normalisation (``normalize=True``): ``scale`` is the maximum of the zero-filled magnitude
(Cartesian: |ifftc| of the masked k-space, root-sum-of-squares over coils) or of the
density-compensated adjoint (non-Cartesian, RSS over coils), per slice (per volume in 3D).
k-space and target are divided by it, so ``model_output * scale`` is back in the units of
the file. With ``normalize=False`` the scale is 1.

Target size: the reference images of fastMRI files are centre crops (h, w) (e.g. 320 x 320)
of the k-space grid (H, W). The Cartesian pipeline keeps the acquired k-space and returns
the target at the reference size: crop model outputs with ``center_crop(output, target
shape)``. The non-Cartesian pipelines crop the coil images to the reference size before the
NUFFT, so images and target share one grid. A file without a reference gets the RSS of its
fully sampled coil images (full size) as target.

Single-coil pipelines accept multicoil files: the image is then the RSS of the coil images
(real-valued), and for the Cartesian pipeline its centred FFT is the k-space (an emulated
single-coil acquisition, as fastMRI's single-coil data).

Reading the files and drawing the masks happen in ``tf.py_function``; masking, NUFFTs, coil
maps and scaling are TensorFlow ops. Masks and examples depend only on ``seed``, the file names and the slice
indices, not on the order of reading, so pipelines are reproducible with or without
shuffling (which is itself seeded).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from ..physics import NUFFT, fftc, ifftc
from ..sampling import create_mask_func, kooshball_trajectory, radial_trajectory, slice_seed, spiral_trajectory
from ..utils import center_crop  # the one implementation; still importable from here
from .h5 import list_h5_files, read_fastmri_h5, validate_fastmri_h5  # list_h5_files: still importable from here
from .preprocessing import CartesianPreprocessor, NonCartesianPreprocessor, normalization_scale
from .synthesis import SliceSynthesizer, Synthesis, load_volumes

__all__ = [
    "list_h5_files",
    "center_crop",
    "cartesian_dataset",
    "synthesized_cartesian_dataset",
    "noncartesian_dataset",
    "synthesized_noncartesian_dataset",
    "synthesized_image_dataset",
    "synthesized_denoising_dataset",
    "check_noise_range",
    "DENOISING_SIGMA",
    "noncartesian_3d_dataset",
    "normalization_scale",
]

_AUTOTUNE = tf.data.AUTOTUNE


# ---------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _FileInfo:
    path: str
    num_slices: int
    kspace_shape: tuple  # per slice: ([coils,] H, W)
    target_shape: tuple  # per slice: (h, w)
    multicoil: bool


def _scan(folder, multicoil: bool) -> list[_FileInfo]:
    """Shapes of every file (no data read); checks the layout and the coil mode."""
    infos = []
    for path in list_h5_files(folder):
        summary = validate_fastmri_h5(path, check_values=False)
        if summary["layout"] != "cartesian":
            raise ValueError(
                f"{path}: the pipelines simulate acquisitions from Cartesian files, "
                "got a non-Cartesian file (it has a 'trajectory')."
            )
        if multicoil and not summary["multicoil"]:
            raise ValueError(
                f"{path}: multicoil=True needs multicoil k-space (slices, coils, H, W), "
                f"got shape {summary['kspace_shape']}."
            )
        kspace_shape = summary["kspace_shape"][1:]
        target_shape = summary["reference_shape"][1:] if summary["reference"] else kspace_shape[-2:]
        infos.append(_FileInfo(path, summary["kspace_shape"][0], kspace_shape, target_shape, summary["multicoil"]))
    return infos


def _common(values) -> tuple | None:
    values = set(values)
    return next(iter(values)) if len(values) == 1 else None


def _read_slices(path: str, slices, multicoil: bool):
    """k-space, coil images and target of some slices of a file.

    Returns kspace complex64 (slices, coils, H, W) or (slices, H, W) following
    ``multicoil`` (a multicoil file read single-coil gives the FFT of the RSS image),
    coil images complex64 (slices, coils, H, W) (one coil when single-coil) and target
    float32 (slices, h, w): the reference, else the RSS of the coil images.
    """
    volume = read_fastmri_h5(path, slices=slices)
    coil_kspace = volume.kspace if volume.multicoil else volume.kspace[:, None]
    coil_images = ifftc(coil_kspace, 2).numpy()
    if volume.reference is not None:
        target = volume.reference.astype(np.float32)
    else:
        target = np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=1)).astype(np.float32)
    kspace = volume.kspace
    if not multicoil and volume.multicoil:
        coil_images = np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=1, keepdims=True)).astype(np.complex64)
        kspace = fftc(coil_images[:, 0], 2).numpy()
    return kspace, coil_images, target


def _index_dataset(num_examples: int, shuffle: bool, seed) -> tf.data.Dataset:
    dataset = tf.data.Dataset.range(num_examples)
    if shuffle:
        dataset = dataset.shuffle(max(num_examples, 1), seed=seed, reshuffle_each_iteration=True)
    return dataset


def _check_batch_size(batch_size) -> None:
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size}.")


def _finish(dataset: tf.data.Dataset, batch_size: int, drop_remainder: bool, preprocessor) -> tf.data.Dataset:
    _check_batch_size(batch_size)
    dataset = dataset.batch(int(batch_size), drop_remainder=drop_remainder).prefetch(_AUTOTUNE)
    # The preprocessor the examples were made with: a trainer checks the model against it
    # (``preprocessor.check_model(model)``) and records it in the preset (``model.preprocessor``).
    dataset.preprocessor = preprocessor
    return dataset


# ---------------------------------------------------------------------------- Cartesian


def _mask_function(mask_type, center_fractions, accelerations) -> Callable:
    if callable(mask_type):
        return mask_type
    return create_mask_func(mask_type, center_fractions, accelerations)


def cartesian_dataset(
    folder: str | os.PathLike,
    mask_type: str | Callable = "random",
    center_fractions: float | Sequence[float] = 0.08,
    accelerations: float | Sequence[float] = 4,
    multicoil: bool = True,
    seed: int | None = 0,
    batch_size: int = 1,
    shuffle: bool = False,
    normalize: bool = True,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Undersampled Cartesian slices and their reference images (see the module docstring).

    mask_type: "random", "equispaced" or "equispaced_fraction" with ``center_fractions``
    and ``accelerations`` (``sampling.create_mask_func``), or a callable
    ``mask_func(shape, seed=...) -> (mask float32 (1, W), num_low_frequencies)`` used as is
    (then the two lists are ignored). seed: base of the per-slice mask seeds
    ``sampling.slice_seed(file name, slice index, seed)`` (the same mask for a slice at
    every epoch) and of the shuffling; None draws new masks every time.
    multicoil: True for (coils, H, W) k-space with ``smaps`` estimated from the
    ``num_low_frequencies`` fully sampled centre columns (``preprocessing.CartesianPreprocessor``);
    False for single-coil (multicoil files are emulated, see the module docstring).
    Batches need every slice to have the same shape (else use ``batch_size=1``).
    """
    _check_batch_size(batch_size)
    infos = _scan(folder, multicoil)
    mask_func = _mask_function(mask_type, center_fractions, accelerations)
    preprocessor = CartesianPreprocessor(multicoil=multicoil, normalize=normalize)
    examples = [(info, s) for info in infos for s in range(info.num_slices)]
    width = _common(info.kspace_shape[-1] for info in infos)

    def kspace_shape(info):
        return info.kspace_shape if multicoil else info.kspace_shape[-2:]

    def load(index):
        info, slice_index = examples[int(index)]
        kspace, _, target = _read_slices(info.path, [slice_index], multicoil)
        kspace = kspace[0]
        mask_seed = None if seed is None else slice_seed(os.path.basename(info.path), slice_index, seed)
        mask, num_low = mask_func(kspace.shape, seed=mask_seed)
        mask = np.asarray(mask, np.float32).reshape(1, kspace.shape[-1])
        return kspace.astype(np.complex64), mask, np.int32(num_low), target[0]

    def to_example(index):
        kspace, mask, num_low, target = tf.py_function(
            load, [index], [tf.complex64, tf.float32, tf.int32, tf.float32]
        )
        rank = 3 if multicoil else 2
        kspace.set_shape(_common(kspace_shape(i) for i in infos) or (None,) * rank)
        mask.set_shape((1, width))
        num_low.set_shape(())
        target.set_shape(_common(i.target_shape for i in infos) or (None, None))
        return _cartesian_example(preprocessor, kspace, mask, num_low, target)

    dataset = _index_dataset(len(examples), shuffle, seed)
    dataset = dataset.map(to_example, num_parallel_calls=_AUTOTUNE, deterministic=True)
    return _finish(dataset, batch_size, drop_remainder, preprocessor)


def _cartesian_example(preprocessor, kspace, mask, num_low, target):
    """(inputs with ``scale``, target / scale): the one Cartesian example of every pipeline."""
    inputs, scale, _ = preprocessor(kspace, mask, num_low)
    return {**inputs, "scale": scale}, target / scale


def _synthesis_options(synthesis: Synthesis | dict | None, multicoil: bool, slabs: bool = False) -> Synthesis:
    """The checked synthesis options of a pipeline: ``synthesis.coils`` 1 single-coil, at least 2 multicoil;
    slices (``depth`` 1) unless the pipeline takes single-coil ``slabs``."""
    synthesis = synthesis if isinstance(synthesis, Synthesis) else Synthesis.from_dict(synthesis or {})
    if synthesis.depth != 1 and not (slabs and not multicoil):
        raise ValueError(f"synthesis.depth: this pipeline makes 2D examples from slices (depth 1), got depth "
                         f"{synthesis.depth}; slabs (3D networks) are synthesised for single-coil Cartesian "
                         f"acquisitions only.")
    if multicoil and synthesis.coils < 2:
        raise ValueError(f"synthesis.coils: a multicoil acquisition needs at least 2 coils, got {synthesis.coils}.")
    if not multicoil and synthesis.coils != 1:
        raise ValueError(f"synthesis.coils: a single-coil acquisition has 1 coil, got {synthesis.coils}.")
    return synthesis


def _synthesized_draws(folder, synthesis: Synthesis, seed, num_examples, augment, volumes):
    """``(draw, indices)`` of the synthesised pipelines (the seed semantics of their docstrings).

    ``draw(index) -> (coil images complex64 (coils, H, W), reference float32 (H, W), rng)``, with
    ``rng`` the generator of the example, to draw the rest of it (a mask) from; ``indices``: the
    endless ``tf.data`` counter when ``seed`` is None, else the ``num_examples`` (default
    ``synthesis.val_examples``) indices of the fixed examples.
    """
    augment = seed is None if augment is None else bool(augment)
    synthesizer = SliceSynthesizer(load_volumes(folder) if volumes is None else volumes, synthesis)

    def draw(index):
        rng = np.random.default_rng() if seed is None else np.random.default_rng((int(seed), int(index)))
        coil_images, target = synthesizer.draw(rng, augment=augment)
        return coil_images, target, rng

    if seed is None:
        return draw, tf.data.Dataset.counter()
    return draw, tf.data.Dataset.range(synthesis.val_examples if num_examples is None else int(num_examples))


def synthesized_cartesian_dataset(
    folder: str | os.PathLike,
    synthesis: Synthesis | dict | None = None,
    mask_type: str | Callable = "random",
    center_fractions: float | Sequence[float] = 0.08,
    accelerations: float | Sequence[float] = 4,
    multicoil: bool = False,
    seed: int | None = None,
    batch_size: int = 1,
    normalize: bool = True,
    num_examples: int | None = None,
    augment: bool | None = None,
    volumes: list | None = None,
) -> tf.data.Dataset:
    """Cartesian examples synthesised from the magnitude volumes of ``folder`` (``data.synthesis``).

    The elements are those of :func:`cartesian_dataset` (same masks, same preprocessor), at
    ``synthesis.size``, with ``synthesis.coils`` coils when ``multicoil`` (else one). With
    ``synthesis.depth`` D > 1 (single-coil): slabs for 3D networks, k-space the 3D centred FFT of
    D slices, one column mask for every row and slice (``CartesianPreprocessor(ndim=3)``); inputs
    ``kspace`` (D, H, W) and ``mask`` (1, 1, W), target (D, H, W).
    seed None: endless, every example and mask drawn afresh (training; ``num_examples`` is
    then ignored); an int: ``num_examples`` (default ``synthesis.val_examples``) fixed examples,
    example i drawn from ``(seed, i)``, the same at every epoch and run (validation).
    augment: flips, rotations and zoom (default: when ``seed`` is None). ``volumes``: the
    already loaded volumes of ``folder`` (``synthesis.load_volumes``), to read them once.
    """
    _check_batch_size(batch_size)
    synthesis = _synthesis_options(synthesis, multicoil, slabs=True)
    draw, indices = _synthesized_draws(folder, synthesis, seed, num_examples, augment, volumes)
    mask_func = _mask_function(mask_type, center_fractions, accelerations)
    slab = (synthesis.depth,) if synthesis.depth > 1 else ()
    preprocessor = CartesianPreprocessor(multicoil=multicoil, ndim=2 + len(slab), normalize=normalize,
                                         depth=synthesis.depth if slab else None)
    height, width = synthesis.size

    def load(index):
        coil_images, target, rng = draw(index)
        mask, num_low = mask_func((height, width), seed=int(rng.integers(2**31)))
        mask = np.asarray(mask, np.float32).reshape(1, width)
        return coil_images, mask, np.int32(num_low), target

    def to_example(index):
        coil_images, mask, num_low, target = tf.py_function(
            load, [index], [tf.complex64, tf.float32, tf.int32, tf.float32]
        )
        coil_images.set_shape((synthesis.coils, *slab, height, width))
        mask.set_shape((1, width))
        num_low.set_shape(())
        target.set_shape((*slab, height, width))
        kspace = fftc(coil_images, 2 + len(slab))
        return _cartesian_example(preprocessor, kspace if multicoil else kspace[0], mask, num_low, target)

    dataset = indices.map(to_example, num_parallel_calls=_AUTOTUNE, deterministic=seed is not None)
    return _finish(dataset, batch_size, seed is None, preprocessor)


# ---------------------------------------------------------------------------- non-Cartesian


def _image_shape(infos: list[_FileInfo], image_shape, what: str) -> tuple:
    if image_shape is None:
        image_shape = _common(info.target_shape for info in infos)
        if image_shape is None:
            shapes = sorted({info.target_shape for info in infos})
            raise ValueError(
                f"image_shape: the files have different {what} sizes {shapes}; give image_shape to "
                "crop them all to one grid."
            )
    image_shape = tuple(int(s) for s in image_shape)
    for info in infos:
        if any(c > s for c, s in zip(image_shape, info.kspace_shape[-2:])):
            raise ValueError(
                f"image_shape: {image_shape} is larger than the k-space grid {info.kspace_shape[-2:]} "
                f"of {info.path}; expected a crop."
            )
    return image_shape


def _noncartesian_examples(load, indices: tf.data.Dataset, coils, preprocessor, traj, dcomp,
                           deterministic: bool = True) -> tf.data.Dataset:
    """Unbatched examples, one per element of ``indices``: ``load(index) -> (coil images (coils,
    *image_shape), target)`` in a ``tf.py_function``, then the NUFFT of the coil images (the
    simulated acquisition) and the preprocessor as TensorFlow ops."""
    image_shape = preprocessor.image_shape

    def to_example(index):
        coil_images, target = tf.py_function(load, [index], [tf.complex64, tf.float32])
        coil_images.set_shape((coils,) + image_shape)
        target.set_shape(image_shape)
        kspace = NUFFT(traj, image_shape).forward(coil_images)  # coils as batch: (coils, nsamples)
        kspace.set_shape(coil_images.shape[:1].concatenate(traj.shape[-1:]))
        inputs, scale, _ = preprocessor(kspace if preprocessor.multicoil else kspace[0], traj, dcomp)
        return {**inputs, "scale": scale}, target / scale

    return indices.map(to_example, num_parallel_calls=_AUTOTUNE, deterministic=deterministic)


def _noncartesian_2d_acquisition(image_shape, trajectory, acceleration, multicoil, normalize, golden_angle,
                                 oversampling, dcomp_iterations):
    """``(traj float32 (2, nsamples), preprocessor, dcomp float32 (nsamples,))`` of a 2D acquisition on
    ``image_shape``: the one trajectory of a data set (see :func:`noncartesian_dataset`)."""
    if trajectory == "radial":
        traj = radial_trajectory(image_shape[-1], acceleration, golden_angle=golden_angle, oversampling=oversampling)
    elif trajectory == "spiral":
        traj = spiral_trajectory(image_shape[-1], acceleration, oversampling=oversampling)
    else:
        raise ValueError(f"trajectory: expected 'radial' or 'spiral', got {trajectory!r}.")
    traj = tf.constant(traj.reshape(2, -1), tf.float32)
    preprocessor = NonCartesianPreprocessor(multicoil=multicoil, ndim=2, image_shape=image_shape,
                                            normalize=normalize, dcomp_iterations=dcomp_iterations)
    return traj, preprocessor, preprocessor.density(traj)


def noncartesian_dataset(
    folder: str | os.PathLike,
    trajectory: str = "radial",
    acceleration: float = 4,
    multicoil: bool = False,
    seed: int | None = 0,
    batch_size: int = 1,
    shuffle: bool = False,
    normalize: bool = True,
    image_shape: Sequence[int] | None = None,
    golden_angle: bool = False,
    oversampling: float = 2.0,
    dcomp_iterations: int = 10,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Non-Cartesian 2D slices simulated from Cartesian files (see the module docstring).

    trajectory: "radial" (``sampling.radial_trajectory``, ``golden_angle`` optional) or
    "spiral" (``sampling.spiral_trajectory``), at acceleration N / num_shots with N the
    image width; one trajectory for the whole data set. The coil images
    (ifftc of the file's k-space) are centre-cropped to ``image_shape`` (default: the
    reference size, common to every file) and k-space is their NUFFT
    (multicoil: of each coil image; single-coil: of the RSS image when the file is
    multicoil). ``dcomp``: Pipe-Menon weights (``dcomp_iterations`` iterations), computed
    once. multicoil: ``smaps`` from the centre of k-space (``estimate_sensitivity_maps_nufft``).
    seed: seeds the shuffling only (the trajectory is deterministic). The grid is recorded in
    ``dataset.preprocessor``: ``dataset.preprocessor.check_model(model)`` refuses a model built
    for another image size (a single-coil model would otherwise reconstruct at its own size).
    """
    infos = _scan(folder, multicoil)
    image_shape = _image_shape(infos, image_shape, "reference")
    traj, preprocessor, dcomp = _noncartesian_2d_acquisition(image_shape, trajectory, acceleration, multicoil,
                                                             normalize, golden_angle, oversampling, dcomp_iterations)
    examples = [(info, s) for info in infos for s in range(info.num_slices)]
    coils = _common(info.kspace_shape[0] if multicoil else 1 for info in infos)

    def load(index):
        info, slice_index = examples[int(index)]
        _, coil_images, target = _read_slices(info.path, [slice_index], multicoil)
        return center_crop(coil_images[0], image_shape), center_crop(target[0], image_shape)

    indices = _index_dataset(len(examples), shuffle, seed)
    dataset = _noncartesian_examples(load, indices, coils, preprocessor, traj, dcomp)
    return _finish(dataset, batch_size, drop_remainder, preprocessor)


def synthesized_noncartesian_dataset(
    folder: str | os.PathLike,
    synthesis: Synthesis | dict | None = None,
    trajectory: str = "radial",
    acceleration: float = 4,
    multicoil: bool = False,
    seed: int | None = None,
    batch_size: int = 1,
    normalize: bool = True,
    golden_angle: bool = False,
    oversampling: float = 2.0,
    dcomp_iterations: int = 10,
    num_examples: int | None = None,
    augment: bool | None = None,
    volumes: list | None = None,
) -> tf.data.Dataset:
    """Non-Cartesian 2D examples synthesised from the magnitude volumes of ``folder`` (``data.synthesis``).

    The elements are those of :func:`noncartesian_dataset` (the same trajectory, density and
    preprocessor; multicoil ``smaps`` from the centre of k-space) on the grid ``synthesis.size``:
    k-space is the NUFFT of the synthesised coil images (noise included), ``synthesis.coils``
    of them when ``multicoil`` (at least 2), else one. seed None: endless, every example drawn
    afresh and augmented (training; ``num_examples`` is then ignored); an int: ``num_examples``
    (default ``synthesis.val_examples``) fixed examples, example i drawn from ``(seed, i)``, the
    same at every epoch and run, not augmented (validation). augment: flips, rotations and zoom
    (default: when ``seed`` is None). ``volumes``: the already loaded volumes of ``folder``.
    """
    _check_batch_size(batch_size)
    synthesis = _synthesis_options(synthesis, multicoil)
    traj, preprocessor, dcomp = _noncartesian_2d_acquisition(synthesis.size, trajectory, acceleration, multicoil,
                                                             normalize, golden_angle, oversampling, dcomp_iterations)
    draw, indices = _synthesized_draws(folder, synthesis, seed, num_examples, augment, volumes)

    def load(index):
        coil_images, target, _ = draw(index)
        return coil_images, target

    dataset = _noncartesian_examples(load, indices, synthesis.coils, preprocessor, traj, dcomp,
                                     deterministic=seed is not None)
    return _finish(dataset, batch_size, seed is None, preprocessor)


def synthesized_image_dataset(
    folder: str | os.PathLike | None,
    synthesis: Synthesis | dict | None = None,
    seed: int | None = None,
    batch_size: int = 1,
    num_examples: int | None = None,
    augment: bool | None = None,
    volumes: list | None = None,
) -> tf.data.Dataset:
    """Complex images synthesised from the magnitude volumes of ``folder`` (``data.synthesis``): the
    training images of a prior (``models.ScoreNetwork``).

    Elements ``({"image": x}, x)``: x complex64 (H, W) on ``synthesis.size``, the slice (peak
    magnitude 1) times its smooth random phase, with noise when ``synthesis.snr_db`` asks for it (a
    prior of clean images gives none); one coil (``synthesis.coils`` must be 1). seed None: endless,
    every image drawn afresh and augmented (training; ``num_examples`` is then ignored); an int:
    ``num_examples`` (default ``synthesis.val_examples``) fixed images, image i drawn from
    ``(seed, i)``, not augmented (validation). ``volumes``: the already loaded volumes of ``folder``
    (``folder`` is then not read, and may be None). The dataset's ``preprocessor`` is None: there is no
    acquisition to prepare.
    """
    _check_batch_size(batch_size)
    synthesis = _synthesis_options(synthesis, multicoil=False)
    draw, indices = _synthesized_draws(folder, synthesis, seed, num_examples, augment, volumes)

    def to_example(index):
        image = tf.py_function(lambda i: draw(i)[0][0], [index], tf.complex64)
        image.set_shape(synthesis.size)
        return {"image": image}, image

    dataset = indices.map(to_example, num_parallel_calls=_AUTOTUNE, deterministic=seed is not None)
    return _finish(dataset, batch_size, seed is None, None)


#: The noise levels the learnlets and their baselines are trained on (thesis Appendix A): sigma uniform in
#: [0, 55] / 255 on images of peak 1.
DENOISING_SIGMA = (0.0, 55.0 / 255.0)


def check_noise_range(sigma, where: str = "sigma") -> tuple[float, float]:
    """``(low, high)`` of a noise-level range: two finite numbers with 0 <= low <= high, else a ValueError."""
    try:
        low, high = (float(value) for value in sigma)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected [low, high] noise standard deviations, got {sigma!r}.") from None
    if not (np.isfinite(low) and np.isfinite(high) and 0.0 <= low <= high):
        raise ValueError(f"{where}: expected finite [low, high] with 0 <= low <= high, got {list(sigma)!r}.")
    return low, high


def synthesized_denoising_dataset(
    folder: str | os.PathLike,
    synthesis: Synthesis | dict | None = None,
    sigma: Sequence[float] = DENOISING_SIGMA,
    seed: int | None = None,
    batch_size: int = 1,
    num_examples: int | None = None,
    augment: bool | None = None,
    volumes: list | None = None,
) -> tf.data.Dataset:
    """Noisy magnitude slices and their clean versions, synthesised from the magnitude volumes of ``folder``
    (``data.synthesis``): the training examples of a denoiser (``models.denoising``).

    Elements ``({"image": x + s n, "sigma": s}, x)``: x float32 (H, W, 1) on ``synthesis.size``, the
    slice's magnitude (peak 1; no phase, one coil); s float32 (), drawn for each example uniformly in
    ``sigma`` = [low, high] (default :data:`DENOISING_SIGMA`); n white Gaussian noise of unit standard
    deviation. ``synthesis.snr_db`` must be null: the noise is this one. seed None: endless, every
    example drawn afresh and augmented (training; ``num_examples`` is then ignored); an int:
    ``num_examples`` (default ``synthesis.val_examples``) fixed examples, example i (slice, noise level
    and noise) drawn from ``(seed, i)``, not augmented (validation). ``volumes``: the already loaded
    volumes of ``folder``. The dataset's ``preprocessor`` is None: there is no acquisition to prepare.
    """
    _check_batch_size(batch_size)
    synthesis = _synthesis_options(synthesis, multicoil=False)
    if synthesis.snr_db is not None:
        raise ValueError(f"synthesis.snr_db: a denoising data set adds its own noise (sigma {list(sigma)}); "
                         f"expected null, got {list(synthesis.snr_db)}.")
    low, high = check_noise_range(sigma)
    draw, indices = _synthesized_draws(folder, synthesis, seed, num_examples, augment, volumes)

    def load(index):
        _, clean, rng = draw(index)
        level = np.float32(rng.uniform(low, high))
        noisy = clean + level * rng.standard_normal(clean.shape).astype(np.float32)
        return noisy[..., None], level, clean[..., None]

    def to_example(index):
        noisy, level, clean = tf.py_function(load, [index], [tf.float32, tf.float32, tf.float32])
        for tensor in (noisy, clean):
            tensor.set_shape(synthesis.size + (1,))
        level.set_shape(())
        return {"image": noisy, "sigma": level}, clean

    dataset = indices.map(to_example, num_parallel_calls=_AUTOTUNE, deterministic=seed is not None)
    return _finish(dataset, batch_size, seed is None, None)


def noncartesian_3d_dataset(
    folder: str | os.PathLike,
    acceleration: float = 4,
    multicoil: bool = False,
    seed: int | None = 0,
    batch_size: int = 1,
    shuffle: bool = False,
    normalize: bool = True,
    volume_shape: Sequence[int] | None = None,
    oversampling: float = 2.0,
    dcomp_iterations: int = 10,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Whole volumes acquired with a 3D kooshball trajectory (see the module docstring).

    Each file is one volume (D, h, w): its slices stacked along D, the coil images of
    every slice centre-cropped to the reference size (h, w). ``volume_shape`` (D, h, w)
    crops every volume to a common grid (default: the common shape of the files).
    The trajectory is ``sampling.kooshball_trajectory(volume_shape, acceleration)``
    (acceleration = D * w / num_shots); ``dcomp`` Pipe-Menon weights; multicoil
    ``smaps`` from the centre of k-space. seed: seeds the shuffling only.
    """
    infos = _scan(folder, multicoil)
    if volume_shape is None:
        volume_shape = _common((info.num_slices,) + tuple(info.target_shape) for info in infos)
        if volume_shape is None:
            shapes = sorted({(info.num_slices,) + tuple(info.target_shape) for info in infos})
            raise ValueError(
                f"volume_shape: the files hold volumes of different sizes {shapes}; give volume_shape "
                "to crop them all to one grid."
            )
    volume_shape = tuple(int(s) for s in volume_shape)
    if len(volume_shape) != 3:
        raise ValueError(f"volume_shape: expected (D, h, w), got {volume_shape}.")
    for info in infos:
        if volume_shape[0] > info.num_slices:
            raise ValueError(
                f"volume_shape: {volume_shape[0]} slices asked but {info.path} has {info.num_slices}."
            )
    _image_shape(infos, volume_shape[1:], "reference")
    traj = tf.constant(kooshball_trajectory(volume_shape, acceleration, oversampling=oversampling).reshape(3, -1))
    preprocessor = NonCartesianPreprocessor(multicoil=multicoil, ndim=3, image_shape=volume_shape,
                                            normalize=normalize, dcomp_iterations=dcomp_iterations)
    dcomp = preprocessor.density(traj)
    coils = _common(info.kspace_shape[0] if multicoil else 1 for info in infos)

    def load(index):
        info = infos[int(index)]
        _, coil_images, target = _read_slices(info.path, None, multicoil)
        volume = np.moveaxis(coil_images, 0, 1)  # (coils, slices, H, W)
        return center_crop(volume, volume_shape), center_crop(target, volume_shape)

    dataset = _noncartesian_examples(load, _index_dataset(len(infos), shuffle, seed), coils, preprocessor, traj, dcomp)
    return _finish(dataset, batch_size, drop_remainder, preprocessor)
