"""Training slices synthesised on the fly from magnitude volumes, with augmentation.

The shipped 2D checkpoints must work on data the project never saw (other scanners,
orientations, resolutions, real k-space), so their training examples are not a fixed set of
sagittal slices but drawn afresh at every step from a folder of 3D magnitude volumes
(NIfTI, ``.npy``, ``.npz``; see :func:`~fastmri_zoo.data.simulate.load_magnitude`):

1. a volume, an orientation (any of the three axes) and a slice holding signal (mean at least
   ``min_signal`` of the brightest slice of that orientation);
2. (augmented) one of the 8 flips / 90-degree rotations of the slice, and a zoom factor drawn
   from ``zoom`` (linear interpolation), i.e. a different pixel size;
3. cropped (at a random place when augmented, else centred) or zero-padded to ``size``, then
   divided by its maximum: the image m, peak 1;
4. the complex image m exp(i phi) with a smooth random phase, coil sensitivities
   (``coils`` > 1, birdcage-like with a random rotation), and (with probability
   ``noise_probability``) complex white Gaussian noise at an SNR drawn from ``snr_db``
   (:func:`~fastmri_zoo.data.simulate.add_noise`);

the same phase, coil and noise model as ``fastmri-zoo simulate`` (:mod:`~fastmri_zoo.data.simulate`).
The reference the network is trained towards is m itself (``reference="noiseless"``: the network
learns to denoise as well), or (``reference="rss"``) the root-sum-of-squares of the fully sampled
coil images, noise included (single-coil: their magnitude), which is what a scanner's fully
sampled reference is and what fastMRI scores against: the Rician noise floor of the background is
then part of the target (the coil maps are RSS-normalised, so without noise both are m).
Intensity scaling needs no augmentation: every example is normalised by its zero-filled maximum.

:func:`~fastmri_zoo.data.pipelines.synthesized_cartesian_dataset` turns these into the examples
of :func:`~fastmri_zoo.data.pipelines.cartesian_dataset` (masks from the same mask functions, the
same :class:`~fastmri_zoo.data.preprocessing.CartesianPreprocessor`), and
:func:`~fastmri_zoo.data.pipelines.synthesized_noncartesian_dataset` into those of
:func:`~fastmri_zoo.data.pipelines.noncartesian_dataset` (the NUFFT of the coil images on the same
2D radial or spiral trajectory, the same
:class:`~fastmri_zoo.data.preprocessing.NonCartesianPreprocessor`). A recipe asks for them with a
``data.synthesis`` block (:meth:`Synthesis.from_dict`), for a Cartesian or a 2D non-Cartesian
acquisition.
"""

from __future__ import annotations

import glob
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .simulate import add_noise, load_magnitude, simulate_coil_maps, smooth_phase

__all__ = ["Synthesis", "list_volume_files", "load_volumes", "SliceSynthesizer"]

#: What a synthesised example's reference is (``Synthesis.reference``, module docstring).
REFERENCES = ("noiseless", "rss")

#: File names a volume folder may hold.
VOLUME_PATTERNS = ("*.nii", "*.nii.gz", "*.npy", "*.npz")


@dataclass(frozen=True)
class Synthesis:
    """How training slices are drawn from volumes (see the module docstring).

    size: (H, W) of every example; orientations: the volume axes slices are taken across;
    dihedral: random flips / 90-degree rotations; zoom: (low, high) range of the zoom factor
    (1 = the volume's pixel size); snr_db: (low, high) range of the SNR in decibels, or None
    for noiseless data; noise_probability: the share of noisy examples; coils: receive coils
    (1 = single-coil); min_signal: the least mean intensity of a usable slice, relative to
    the brightest slice of its orientation; val_examples: the size of the fixed validation set;
    reference: "noiseless" (the magnitude m) or "rss" (the root-sum-of-squares of the fully
    sampled, noisy coil images), see the module docstring; depth: 1 (slices), or the number of
    consecutive slices of a slab (a stack for 3D networks: the same flip, zoom and crop for every
    slice, a phase smooth in 3D, coil maps spread along the slab).
    """

    size: tuple[int, int] = (128, 128)
    orientations: tuple[int, ...] = (0, 1, 2)
    dihedral: bool = True
    zoom: tuple[float, float] = (1.0, 1.0)
    snr_db: tuple[float, float] | None = None
    noise_probability: float = 0.5
    coils: int = 1
    min_signal: float = 0.3
    val_examples: int = 64
    reference: str = "noiseless"
    depth: int = 1

    def __post_init__(self):
        size = tuple(int(s) for s in self.size)
        if len(size) != 2 or min(size) < 8:
            raise ValueError(f"synthesis.size: expected [H, W] with sizes of at least 8, got {list(self.size)}.")
        orientations = tuple(int(a) for a in self.orientations)
        if not orientations or not set(orientations) <= {0, 1, 2} or len(set(orientations)) != len(orientations):
            raise ValueError(f"synthesis.orientations: expected distinct axes among 0, 1, 2, got {list(self.orientations)}.")
        zoom = tuple(float(z) for z in self.zoom)
        if len(zoom) != 2 or not 0 < zoom[0] <= zoom[1] <= 4:
            raise ValueError(f"synthesis.zoom: expected [low, high] with 0 < low <= high <= 4, got {list(self.zoom)}.")
        snr = None if self.snr_db is None else tuple(float(s) for s in self.snr_db)
        if snr is not None and (len(snr) != 2 or snr[0] > snr[1] or not all(np.isfinite(snr))):
            raise ValueError(f"synthesis.snr_db: expected [low, high] decibels or null, got {self.snr_db!r}.")
        if not 0 <= float(self.noise_probability) <= 1:
            raise ValueError(f"synthesis.noise_probability: expected a value in [0, 1], got {self.noise_probability}.")
        if int(self.coils) != self.coils or self.coils < 1:
            raise ValueError(f"synthesis.coils: expected a positive integer, got {self.coils!r}.")
        if not 0 <= float(self.min_signal) < 1:
            raise ValueError(f"synthesis.min_signal: expected a value in [0, 1), got {self.min_signal}.")
        if int(self.val_examples) != self.val_examples or self.val_examples < 1:
            raise ValueError(f"synthesis.val_examples: expected a positive integer, got {self.val_examples!r}.")
        if int(self.depth) != self.depth or not 1 <= self.depth <= 64:
            raise ValueError(f"synthesis.depth: expected slices per example, an integer in [1, 64], got {self.depth!r}.")
        if self.reference not in REFERENCES:
            raise ValueError(f"synthesis.reference: expected one of {list(REFERENCES)}, got {self.reference!r}.")
        for name, value in (("size", size), ("orientations", orientations), ("zoom", zoom), ("snr_db", snr),
                            ("coils", int(self.coils)), ("val_examples", int(self.val_examples)),
                            ("depth", int(self.depth))):
            object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, options: Mapping[str, Any], where: str = "synthesis") -> "Synthesis":
        """From a recipe's ``data.synthesis`` block; unknown keys are errors."""
        if not isinstance(options, Mapping):
            raise ValueError(f"{where}: expected a JSON object, got {options!r}.")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; accepted: {sorted(known)}.")
        return cls(**options)

    def to_dict(self) -> dict:
        return {key: (list(value) if isinstance(value, tuple) else value) for key, value in asdict(self).items()}


def list_volume_files(folder: str | os.PathLike) -> list[str]:
    """The volume files of ``folder`` (sorted, not recursive); raises when there is none."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"volumes: no such folder: {folder!r}")
    files = sorted({path for pattern in VOLUME_PATTERNS for path in glob.glob(os.path.join(folder, pattern))})
    if not files:
        raise ValueError(f"{folder}: expected magnitude volumes ({', '.join(VOLUME_PATTERNS)}), found none.")
    return files


def load_volumes(folder: str | os.PathLike) -> list[np.ndarray]:
    """Every volume of ``folder`` as float32 (D, H, W) magnitude, divided by its maximum."""
    volumes = []
    for path in list_volume_files(folder):
        volume = np.abs(load_magnitude(path)).astype(np.float32)
        if volume.ndim != 3:
            raise ValueError(f"{path}: expected a 3D volume, got shape {volume.shape}.")
        peak = float(volume.max())
        if not np.isfinite(peak) or peak <= 0:
            raise ValueError(f"{path}: expected finite values with some signal, got maximum {peak}.")
        volumes.append(volume / peak)
    return volumes


def _fit(image: np.ndarray, size: Sequence[int], rng: np.random.Generator | None) -> np.ndarray:
    """Crop (at a random place with ``rng``, else centred) or zero-pad (centred) the last ``len(size)`` axes
    to ``size``."""
    out = image
    for axis, target in enumerate(size, start=image.ndim - len(size)):
        length = out.shape[axis]
        if length > target:
            start = int(rng.integers(0, length - target + 1)) if rng is not None else (length - target) // 2
            out = np.take(out, np.arange(start, start + target), axis=axis)
        elif length < target:
            before = (target - length) // 2
            pad = [(0, 0)] * out.ndim
            pad[axis] = (before, target - length - before)
            out = np.pad(out, pad)
    return out


DRAW_ATTEMPTS = 32  # draws of one example before a synthesizer gives up on volumes without usable signal


@dataclass
class SliceSynthesizer:
    """Draws (coil images, reference) pairs from ``volumes`` following ``synthesis``.

    ``draw(rng, augment)``: coil images complex64 (coils, H, W) (noise included) and the
    reference float32 (H, W) (``synthesis.reference``: the noiseless magnitude, peak 1, or the
    root-sum-of-squares of the noisy coil images), both on ``synthesis.size``; with
    ``synthesis.depth`` D > 1, slabs: (coils, D, H, W) and (D, H, W), D consecutive slices around
    the drawn one (shifted to fit in the volume, zero slices past its ends when it has fewer).
    """

    volumes: list[np.ndarray]
    synthesis: Synthesis
    _slices: list = field(init=False, repr=False)

    def __post_init__(self):
        if not self.volumes:
            raise ValueError("volumes: expected at least one volume.")
        self._slices = []
        for volume in self.volumes:
            per_axis = {}
            for axis in self.synthesis.orientations:
                means = volume.mean(axis=tuple(a for a in range(3) if a != axis))
                # a slice without signal is never usable, whatever min_signal (an all-zero reference has no NMSE)
                per_axis[axis] = np.flatnonzero((means > 0) & (means >= self.synthesis.min_signal * means.max()))
                if per_axis[axis].size == 0:
                    raise ValueError(f"volumes[{len(self._slices)}]: no slice across axis {axis} has signal (a volume of "
                                     f"shape {volume.shape} that is zero or negative everywhere); expected magnitude images.")
            self._slices.append(per_axis)

    def draw(self, rng: np.random.Generator, augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """One example; a slice (or slab) whose zoomed, cropped image holds no signal is drawn again (an all-zero
        reference has no NMSE and would turn a training step's loss infinite), up to ``DRAW_ATTEMPTS`` times."""
        for _ in range(DRAW_ATTEMPTS):
            example = self._draw_once(rng, augment)
            if example is not None:
                return example
        raise RuntimeError(f"synthesis: {DRAW_ATTEMPTS} draws in a row gave crops without signal; the volumes' signal "
                           f"is too sparse for synthesis.size {list(self.synthesis.size)} (raise min_signal or the size).")

    def _draw_once(self, rng: np.random.Generator, augment: bool) -> tuple[np.ndarray, np.ndarray] | None:
        options = self.synthesis
        index = int(rng.integers(len(self.volumes)))
        axis = options.orientations[int(rng.integers(len(options.orientations)))]
        candidates = self._slices[index][axis]
        centre = int(candidates[rng.integers(len(candidates))])
        if options.depth == 1:
            return self._finish(np.take(self.volumes[index], centre, axis=axis), rng, augment)
        volume = self.volumes[index]
        count = volume.shape[axis]
        start = min(max(centre - options.depth // 2, 0), max(count - options.depth, 0))
        slab = np.moveaxis(np.take(volume, np.arange(start, min(start + options.depth, count)), axis=axis), axis, 0)
        if slab.shape[0] < options.depth:  # a volume thinner than the slab: zero slices after it
            slab = np.concatenate([slab, np.zeros((options.depth - slab.shape[0],) + slab.shape[1:], slab.dtype)])
        return self._finish(slab, rng, augment)

    def _finish(self, image: np.ndarray, rng: np.random.Generator, augment: bool) -> tuple[np.ndarray, np.ndarray] | None:
        """Augment, fit, normalise a slice (H', W') or slab (D, H', W') and simulate its coil images; None when
        the fitted image holds no signal."""
        from scipy.ndimage import zoom as zoom_image  # lazy: scipy.ndimage only for the synthesis

        options = self.synthesis
        if augment:
            if options.dihedral:
                flips = int(rng.integers(8))
                image = np.swapaxes(image, -1, -2) if flips & 4 else image
                image = image[..., ::-1, :] if flips & 2 else image
                image = image[..., :, ::-1] if flips & 1 else image
            factor = float(rng.uniform(*options.zoom))
            if abs(factor - 1.0) > 1e-3:
                factors = (1.0,) * (image.ndim - 2) + (factor, factor)  # in-plane only: slices stay slices
                image = zoom_image(np.ascontiguousarray(image), factors, order=1, prefilter=False)
        image = _fit(np.ascontiguousarray(image), options.size, rng if augment else None)
        peak = float(image.max())
        if not peak > 0:
            return None
        image = image / peak
        shape = image.shape
        phase = smooth_phase(shape, rng)
        maps = simulate_coil_maps(shape, options.coils, rng)
        coil_images = (maps * (image * np.exp(1j * phase))[None]).astype(np.complex64)
        if options.snr_db is not None and rng.uniform() < options.noise_probability:
            coil_images = add_noise(coil_images, rng.uniform(*options.snr_db), rng)
        if options.reference == "rss":
            image = np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=0))
        return coil_images, image.astype(np.float32)
