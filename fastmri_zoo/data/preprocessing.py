"""One preprocessor per acquisition: raw k-space -> the model's input dict and the scale.

The ``tf.data`` pipelines (``data.pipelines``), inference (``fastmri_zoo.inference``) and the
command line all prepare inputs here, and a preset records the preprocessor its model was
trained with (``preprocessor.json`` beside ``config.json``), so training and inference cannot
drift apart.

``CartesianPreprocessor(multicoil, ndim=2, normalize=True)``
    ``(kspace, mask, num_low_frequencies=None) -> Preprocessed(inputs, scale, baseline)``.
    k-space is masked; the scale is the maximum of the zero-filled magnitude (|ifftc|, RSS over
    coils), per example; multicoil coil maps come from the ``num_low_frequencies`` fully sampled
    centre columns (default: the contiguous block of sampled columns around W // 2, as read
    from the mask) of the normalised k-space, each low-resolution coil image divided by the RSS.
    ``ndim=3`` (single-coil): slabs of D slices, their 3D centred FFT masked by columns shared by
    every row and slice, the scale the peak of the 3D zero-filled magnitude; ``depth``: the D a model
    was trained on (recorded so that inference cuts a file into slabs of it; then required of the input).
``NonCartesianPreprocessor(multicoil, ndim=2, image_shape=None, normalize=True, dcomp_iterations=10,
smaps_center_radius=0.1 pi)``
    ``density(traj, dcomp=None)`` (eager): Pipe-Menon weights (``dcomp_iterations`` iterations,
    cached per trajectory) or given weights rescaled by ``physics.normalize_density``;
    ``(kspace, traj, dcomp, image_shape=None) -> Preprocessed(inputs, scale, baseline)``: the
    scale is the maximum of the density-compensated adjoint A^H D y (RSS over coils); multicoil
    coil maps from the samples with |k| < ``smaps_center_radius`` (``estimate_sensitivity_maps_nufft``).
    The grid is ``image_shape`` when given (the file's), else the recorded one: a preprocessor
    never falls back silently to a model's size; ``check_model`` refuses a model built for
    another grid, naming both sizes.

``normalize=False`` gives scale 1 (models taking physical units, e.g. the authors' converted
checkpoints). Every ``__call__`` is TensorFlow ops: it runs eagerly and inside ``tf.data`` map
functions. Inputs carry no batch axis, or a leading one (Cartesian; non-Cartesian takes one
example at a time); the outputs follow. The ``baseline`` is the image a user compares the
network with, in the units of the data: the zero-filled magnitude float32 (Cartesian), the
adjoint + DCp complex64 with the coils combined by the conjugate coil maps (non-Cartesian).

Presets without ``preprocessor.json`` (the checkpoints shipped before it existed) get the
preprocessor derived from ``metadata.json["acquisition"]`` and the model (``derive_preprocessor``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, ClassVar, Mapping, NamedTuple, Sequence

import numpy as np
import tensorflow as tf

from ..physics import (
    NUFFT,
    estimate_sensitivity_maps_nufft,
    ifftc,
    normalize_by_rss,
    normalize_density,
    pipe_menon_density,
    rss,
)
from ..hub import PREPROCESSOR_FILE
from ..utils import LRUCache, array_digest

__all__ = [
    "PREPROCESSOR_FILE",
    "Preprocessed",
    "Preprocessor",
    "CartesianPreprocessor",
    "NonCartesianPreprocessor",
    "normalization_scale",
    "acs_width",
    "preprocessor_from_config",
    "derive_preprocessor",
    "preprocessor_for",
    "takes_trajectory",
    "save_preprocessor",
    "load_preprocessor",
    "DENSITY_CACHE",
]


#: radius (radians per pixel) of the k-space centre the non-Cartesian coil maps come from
SMAPS_CENTER_RADIUS = 0.1 * math.pi

#: Pipe-Menon weights of the last trajectories: a data set or a file read again for the same
#: trajectory (one held-out volume after another; a 3D kooshball takes about a minute) reuses them.
DENSITY_CACHE = LRUCache(maxsize=4)


class Preprocessed(NamedTuple):
    """What a preprocessor returns: the model's input dict, the scale (float32, () or (batch,);
    ``model output * scale`` is in the units of the data) and the baseline image (see the module)."""

    inputs: dict
    scale: tf.Tensor
    baseline: tf.Tensor


def normalization_scale(images, coil_axis: int | None) -> tf.Tensor:
    """The scale of one example: max of the (RSS over ``coil_axis``) magnitude of ``images``; 1 if all zero."""
    magnitude = tf.abs(images)
    if coil_axis is not None:
        magnitude = tf.sqrt(tf.reduce_sum(tf.square(magnitude), axis=coil_axis))
    return _peak(magnitude[None])[0]


def _peak(magnitude: tf.Tensor) -> tf.Tensor:
    """Per-example maximum of float32 (batch, ...) magnitudes; 1 where an example is all zero."""
    peak = tf.reduce_max(magnitude, axis=list(range(1, magnitude.shape.rank)))
    return tf.where(peak > 0, peak, tf.ones_like(peak))


def _per_example(scale: tf.Tensor, rank: int, dtype=tf.complex64) -> tf.Tensor:
    """(batch,) scales shaped to broadcast against (batch, ...) of ``rank``."""
    return tf.cast(tf.reshape(scale, [-1] + [1] * (rank - 1)), dtype)


def acs_width(mask) -> tf.Tensor:
    """int32 width of the contiguous block of sampled columns around the centre column W // 2.

    mask: float32 (..., W), 0/1 columns (leading axes, e.g. (1, W) or (batch, 1, W), are
    combined: a column counts when every example samples it). Raises when the centre column is
    not sampled (eagerly; an assertion in a graph): the coil maps and the Cartesian normalisation
    need a fully sampled centre.
    """
    mask = tf.convert_to_tensor(mask, tf.float32)
    sampled = tf.reshape(mask, [-1, tf.shape(mask)[-1]])
    sampled = tf.cast(tf.reduce_min(sampled, axis=0) > 0, tf.int32)
    centre = tf.shape(sampled)[0] // 2
    message = ("mask: the centre column is not sampled; expected Cartesian k-space with a fully sampled centre "
               "(autocalibration lines) to normalise the input and estimate coil maps.")
    if tf.executing_eagerly():
        if int(sampled[centre]) == 0:
            raise ValueError(message)
        checks = []
    else:
        checks = [tf.debugging.assert_positive(sampled[centre], message=message)]
    with tf.control_dependencies(checks):
        right = tf.reduce_sum(tf.math.cumprod(sampled[centre:]))
        left = tf.reduce_sum(tf.math.cumprod(tf.reverse(sampled[: centre + 1], [0])))
    return right + left - 1


def _as_shape(value, name: str = "image_shape") -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        shape = tuple(int(n) for n in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a sequence of positive integers, got {value!r}.") from None
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"{name}: expected 2 or 3 positive sizes, (H, W) or (D, H, W), got {list(shape)}.")
    return shape


def _model_name(model) -> str:
    return type(model).__name__


class Preprocessor:
    """Base of the preprocessors: a plain object with a JSON config (``get_config`` / ``from_config``)."""

    kind: ClassVar[str] = ""

    def __init__(self, multicoil: bool = False, ndim: int = 2, normalize: bool = True):
        if int(ndim) not in (2, 3):
            raise ValueError(f"ndim: expected 2 or 3 spatial axes, got {ndim!r}.")
        self.multicoil = bool(multicoil)
        self.ndim = int(ndim)
        self.normalize = bool(normalize)

    def get_config(self) -> dict:
        return {"kind": self.kind, "multicoil": self.multicoil, "ndim": self.ndim, "normalize": self.normalize}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Preprocessor":
        config = dict(config)
        kind = config.pop("kind", cls.kind)
        if kind != cls.kind:
            raise ValueError(f"kind: a {cls.__name__} config has kind {cls.kind!r}, got {kind!r}.")
        return cls(**config)

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items() if key != "kind")
        return f"{type(self).__name__}({options})"

    def check_model(self, model) -> None:
        """ValueError, before any computation, when ``model`` cannot take what this preprocessor makes."""
        name = _model_name(model)
        multicoil = _described(model, "multicoil")
        if multicoil is not None and bool(multicoil) != self.multicoil:
            have, want = ("multicoil", "single-coil") if self.multicoil else ("single-coil", "multicoil")
            raise ValueError(
                f"multicoil: the data are prepared {have} but {name} is a {want} model; use a {have} model "
                f"or prepare the data {want}."
            )
        ndim = _described(model, "ndim")
        if ndim is not None and int(ndim) != self.ndim:
            raise ValueError(f"ndim: the data are prepared as {self.ndim}D images but {name} reconstructs {int(ndim)}D ones.")


class CartesianPreprocessor(Preprocessor):
    """Masked Cartesian k-space -> ``{"kspace", "mask"[, "smaps"]}`` normalised (see the module docstring)."""

    kind = "cartesian"

    def __init__(self, multicoil: bool = False, ndim: int = 2, normalize: bool = True, depth: int | None = None):
        if int(ndim) == 3 and multicoil:
            raise ValueError("ndim: 3D Cartesian slabs are prepared single-coil only (the coil maps are "
                             "estimated slice by slice in 2D); got multicoil=True with ndim=3.")
        super().__init__(multicoil, ndim, normalize)
        if depth is not None and (self.ndim != 3 or isinstance(depth, bool) or int(depth) != depth or int(depth) < 1):
            raise ValueError(f"depth: expected the slices per slab of a 3D (ndim=3) preprocessor, a positive "
                             f"integer, got {depth!r} with ndim={self.ndim}.")
        self.depth = None if depth is None else int(depth)

    def get_config(self) -> dict:
        config = super().get_config()
        if self.ndim == 3:
            config["depth"] = self.depth
        return config

    def __call__(self, kspace, mask, num_low_frequencies=None) -> Preprocessed:
        """kspace: complex64 ([batch,] [coils,] H, W) (coils when multicoil), or ([batch,] D, H, W) with
        ``ndim=3`` (a slab: the 3D centred FFT of D slices), masked or not; mask: float32 (1, W) or
        (batch, 1, W) (3D: also (1, 1, W) or (batch, 1, 1, W)), 0/1 columns shared by every row (and
        slice); num_low_frequencies: int or int tensor, the fully sampled centre columns the coil maps
        come from (None: ``acs_width(mask)``).

        Returns inputs {"kspace": complex64 like kspace, masked and divided by the scale,
        "mask": float32 ([batch,] 1, W) (3D: ([batch,] 1, 1, W)), "smaps": complex64 like kspace
        (multicoil)}, the scale float32 ([batch]) and the zero-filled magnitude float32 ([batch,] H, W)
        (3D: ([batch,] D, H, W)) in the units of kspace.
        """
        kspace = tf.convert_to_tensor(kspace, tf.complex64)
        rank = self.ndim + int(self.multicoil)
        if kspace.shape.rank not in (rank, rank + 1):
            layout = "[coils,] H, W" if self.multicoil else ("D, H, W" if self.ndim == 3 else "H, W")
            raise ValueError(
                f"kspace: expected ([batch,] {layout.replace('[coils,] ', 'coils, ')}) "
                f"{'multicoil' if self.multicoil else 'single-coil'} Cartesian k-space, got shape {kspace.shape.as_list()}."
            )
        batched = kspace.shape.rank == rank + 1
        if self.depth is not None and kspace.shape[-3] is not None and kspace.shape[-3] != self.depth:
            raise ValueError(f"kspace: expected slabs of {self.depth} slices (the depth this preprocessor records), "
                             f"got shape {kspace.shape.as_list()}.")
        if not batched:
            kspace = kspace[None]
        mask = tf.convert_to_tensor(mask, tf.float32)
        if mask.shape.rank == 1:
            mask = mask[None]
        if self.ndim == 3 and mask.shape.rank >= 3 and mask.shape[-2] == 1 and mask.shape[-3] == 1:
            mask = mask[..., 0, :, :]  # (1, 1, W) or (batch, 1, 1, W): the columns
        if num_low_frequencies is None:
            num_low_frequencies = acs_width(mask)
        batch_mask = tf.broadcast_to(mask if mask.shape.rank == 3 else mask[None],
                                     tf.concat([tf.shape(kspace)[:1], [1], tf.shape(mask)[-1:]], 0))
        if self.ndim == 3:
            batch_mask = batch_mask[:, None]  # (batch, 1, 1, W): the same columns in every slice
        column_mask = batch_mask[:, None] if self.multicoil else batch_mask  # against (batch, [coils,] [D,] H, W)
        masked = kspace * tf.cast(column_mask, tf.complex64)
        zero_filled = ifftc(masked, self.ndim)
        magnitude = rss(zero_filled, axis=1) if self.multicoil else tf.abs(zero_filled)
        scale = _peak(magnitude) if self.normalize else tf.ones(tf.shape(kspace)[:1], tf.float32)
        normalized = masked / _per_example(scale, rank + 1)
        inputs = {"kspace": normalized, "mask": batch_mask}
        if self.multicoil:
            inputs["smaps"] = self.coil_maps(normalized, num_low_frequencies)
        if not batched:
            inputs = {key: value[0] for key, value in inputs.items()}
            scale, magnitude = scale[0], magnitude[0]
        return Preprocessed(inputs, scale, magnitude)

    @staticmethod
    def coil_maps(kspace: tf.Tensor, num_low_frequencies) -> tf.Tensor:
        """Coil maps of complex64 (batch, coils, H, W) k-space from its ``num_low_frequencies`` centre
        columns (an int or an int tensor, so that it can come from a ``tf.data`` element)."""
        width = tf.shape(kspace)[-1]
        num_low = tf.cast(num_low_frequencies, tf.int32)
        static = tf.get_static_value(num_low)
        if static is not None and kspace.shape[-1] is not None and not 0 < int(static) <= kspace.shape[-1]:
            raise ValueError(
                f"num_low_frequencies: expected an integer in [1, {kspace.shape[-1]}] (the k-space width), got {int(static)}."
            )
        start = (width - num_low + 1) // 2
        columns = tf.range(width)
        keep = tf.logical_and(columns >= start, columns < start + num_low)
        return normalize_by_rss(ifftc(kspace * tf.cast(keep, tf.complex64), 2))


class NonCartesianPreprocessor(Preprocessor):
    """Non-Cartesian samples -> ``{"kspace", "traj", "dcomp"[, "smaps"]}`` normalised (see the module docstring)."""

    kind = "noncartesian"

    def __init__(self, multicoil: bool = False, ndim: int = 2, image_shape: Sequence[int] | None = None,
                 normalize: bool = True, dcomp_iterations: int = 10,
                 smaps_center_radius: float = SMAPS_CENTER_RADIUS):
        super().__init__(multicoil, ndim, normalize)
        self.image_shape = _as_shape(image_shape)
        if self.image_shape is not None and len(self.image_shape) != self.ndim:
            raise ValueError(f"image_shape: expected {self.ndim} sizes (ndim={self.ndim}), got {list(self.image_shape)}.")
        if int(dcomp_iterations) < 1:
            raise ValueError(f"dcomp_iterations: expected a positive integer, got {dcomp_iterations!r}.")
        self.dcomp_iterations = int(dcomp_iterations)
        if not 0 < float(smaps_center_radius) <= math.pi * math.sqrt(self.ndim):
            raise ValueError(
                f"smaps_center_radius: expected a radius in (0, pi * sqrt(ndim)] radians per pixel, got {smaps_center_radius!r}."
            )
        self.smaps_center_radius = float(smaps_center_radius)

    def get_config(self) -> dict:
        return {**super().get_config(), "image_shape": None if self.image_shape is None else list(self.image_shape),
                "dcomp_iterations": self.dcomp_iterations, "smaps_center_radius": self.smaps_center_radius}

    def grid(self, image_shape: Sequence[int] | None = None) -> tuple[int, ...]:
        """The image grid: ``image_shape`` when given (the data's), else the recorded one."""
        shape = _as_shape(image_shape) or self.image_shape
        if shape is None:
            raise ValueError(
                "image_shape: the preprocessor records no image grid; give the data's image_shape "
                f"({'(D, H, W)' if self.ndim == 3 else '(H, W)'})."
            )
        if len(shape) != self.ndim:
            raise ValueError(f"image_shape: expected {self.ndim} sizes (ndim={self.ndim}), got {list(shape)}.")
        return shape

    def with_image_shape(self, image_shape: Sequence[int]) -> "NonCartesianPreprocessor":
        """The same preprocessor on the grid ``image_shape``."""
        return type(self).from_config({**self.get_config(), "image_shape": list(self.grid(image_shape))})

    def check_model(self, model) -> None:
        """Also refuses a model built for a fixed grid other than this preprocessor's, naming both sizes."""
        super().check_model(model)
        built_for = _described(model, "image_shape")
        if built_for is not None and self.image_shape is not None and tuple(int(n) for n in built_for) != self.image_shape:
            raise ValueError(
                f"image_shape: the data are prepared on the grid {list(self.image_shape)} but {_model_name(model)} was "
                f"built for {[int(n) for n in built_for]}; build the model with image_shape={list(self.image_shape)}, "
                f"or prepare the data on {[int(n) for n in built_for]} (pipelines: image_shape=..., a centre crop)."
            )

    def density(self, traj, dcomp=None, image_shape: Sequence[int] | None = None) -> tf.Tensor:
        """Density weights float32 (nsamples,) of one trajectory float32 (ndim, nsamples), eagerly.

        ``dcomp`` None: Pipe-Menon weights (``dcomp_iterations`` iterations, cached per trajectory
        and grid); given weights (any overall scale) are rescaled so that A^H D A maps a constant
        image to itself at the centre (``physics.normalize_density``), as every density of the package.
        """
        shape = self.grid(image_shape)
        traj = tf.convert_to_tensor(traj, tf.float32)
        if dcomp is None:
            key = (array_digest(traj), shape, self.dcomp_iterations)
            return DENSITY_CACHE.get(key, lambda: tf.convert_to_tensor(
                pipe_menon_density(traj, shape, num_iterations=self.dcomp_iterations), tf.float32))
        return tf.convert_to_tensor(normalize_density(dcomp, traj, shape), tf.float32)[0]

    def __call__(self, kspace, traj, dcomp, image_shape: Sequence[int] | None = None) -> Preprocessed:
        """kspace: complex64 (coils, nsamples) multicoil or (nsamples,) single-coil; traj: float32
        (ndim, nsamples), radians per pixel; dcomp: float32 (nsamples,) (see ``density``);
        image_shape: the grid (default: the recorded one).

        Returns inputs {"kspace": complex64 like kspace, divided by the scale, "traj", "dcomp", "smaps": complex64 (coils, *image_shape) (multicoil)}, the scale
        float32 () and the adjoint + DCp complex64 (*image_shape) in the units of kspace.
        """
        shape = self.grid(image_shape)
        kspace = tf.convert_to_tensor(kspace, tf.complex64)
        expected = 2 if self.multicoil else 1
        if kspace.shape.rank != expected:
            layout = "(coils, nsamples)" if self.multicoil else "(nsamples,)"
            raise ValueError(
                f"kspace: expected {layout} {'multicoil' if self.multicoil else 'single-coil'} non-Cartesian "
                f"k-space (one example), got shape {kspace.shape.as_list()}."
            )
        traj = tf.convert_to_tensor(traj, tf.float32)
        dcomp = tf.convert_to_tensor(dcomp, tf.float32)
        coil_kspace = kspace if self.multicoil else kspace[None]
        operator = NUFFT(traj, shape, dcomp=dcomp)
        coil_adjoint = operator.adjoint_dcomp(coil_kspace)  # coils as batch: (coils, *shape)
        coil_adjoint.set_shape(coil_kspace.shape[:1].concatenate(shape))
        magnitude = rss(coil_adjoint, axis=0) if self.multicoil else tf.abs(coil_adjoint[0])
        scale = _peak(magnitude[None])[0] if self.normalize else tf.constant(1.0)
        normalized = coil_kspace / tf.cast(scale, tf.complex64)
        inputs = {"kspace": normalized if self.multicoil else normalized[0], "traj": traj, "dcomp": dcomp}
        if self.multicoil:
            smaps = estimate_sensitivity_maps_nufft(normalized[None], traj, shape, dcomp,
                                                    center_radius=self.smaps_center_radius)[0]
            smaps.set_shape(coil_adjoint.shape)
            inputs["smaps"] = smaps
            baseline = tf.reduce_sum(tf.math.conj(smaps) * coil_adjoint, axis=0)
        else:
            baseline = coil_adjoint[0]
        return Preprocessed(inputs, scale, baseline)


_KINDS = {cls.kind: cls for cls in (CartesianPreprocessor, NonCartesianPreprocessor)}


def preprocessor_from_config(config: Mapping[str, Any]) -> Preprocessor:
    """The preprocessor of a ``get_config()`` dict (``kind`` selects the class)."""
    if not isinstance(config, Mapping):
        raise ValueError(f"preprocessor: expected a JSON object, got {type(config).__name__}.")
    kind = config.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"preprocessor: unknown kind {kind!r}; expected one of {sorted(_KINDS)}.")
    try:
        return _KINDS[kind].from_config(config)
    except TypeError as error:
        raise ValueError(f"preprocessor: invalid {kind} options {dict(config)} ({error}).") from None


def _described(model, name: str):
    """``model.<name>``, else its acquisition's (``model.acquisition``, a ``physics.acquisition.Acquisition``)."""
    value = getattr(model, name, None)
    if value is None:
        value = getattr(getattr(model, "acquisition", None), name, None)
    return value


def takes_trajectory(model) -> bool:
    """Whether ``model`` takes non-Cartesian inputs (``traj`` among its required inputs)."""
    required = _described(model, "required_inputs")
    if required is None:
        required = getattr(model, "REQUIRED_INPUTS", ())
    return "traj" in tuple(required)


def derive_preprocessor(model, acquisition: Mapping[str, Any] | None = None) -> Preprocessor:
    """The preprocessor a model was trained with when its preset does not record one.

    Every checkpoint shipped before ``preprocessor.json`` existed was trained on the pipelines'
    defaults: normalised by the maximum of the zero-filled (adjoint + DCp) magnitude, Pipe-Menon
    weights of 10 iterations, coil maps from the ACS columns (the k-space centre, |k| < 0.1 pi).
    ``acquisition``: ``metadata.json["acquisition"]`` (its ``trajectory`` makes it non-Cartesian;
    else the model's inputs decide); the coil mode, ``ndim`` and ``image_shape`` come from the
    model; a model taking physical units (``input_units == "physical"``) is not normalised.
    """
    acquisition = dict(acquisition or {})
    normalize = getattr(model, "input_units", None) != "physical"
    multicoil = bool(_described(model, "multicoil"))
    ndim = int(_described(model, "ndim") or 2)
    if "trajectory" in acquisition or takes_trajectory(model):
        iterations = 10
        text = str(acquisition.get("dcomp", ""))
        if "iterations" in text:
            digits = [int(word) for word in text.replace(",", " ").split() if word.isdigit()]
            iterations = digits[0] if digits else iterations
        return NonCartesianPreprocessor(multicoil=multicoil, ndim=ndim, image_shape=_described(model, "image_shape"),
                                        normalize=normalize, dcomp_iterations=iterations)
    return CartesianPreprocessor(multicoil=multicoil, ndim=ndim, normalize=normalize)


def preprocessor_for(model) -> Preprocessor:
    """The preprocessor of ``model``: its ``preprocessor`` attribute (set by the preset loader from
    ``preprocessor.json``, or by a trainer), else derived from its preset metadata and config."""
    recorded = getattr(model, "preprocessor", None)
    if isinstance(recorded, Preprocessor):
        return recorded
    metadata = getattr(model, "preset_metadata", None) or {}
    return derive_preprocessor(model, metadata.get("acquisition"))


# --------------------------------------------------------------------------- the preset hook


def save_preprocessor(model, folder: str | os.PathLike, acquisition: Mapping[str, Any] | None = None) -> Path:
    """Write ``preprocessor.json`` of ``model`` into a preset folder (``presets.save_to_preset`` calls it):
    ``model.preprocessor`` if set, else the one derived from ``acquisition`` (the card's) and the model."""
    recorded = getattr(model, "preprocessor", None)
    preprocessor = recorded if isinstance(recorded, Preprocessor) else derive_preprocessor(model, acquisition)
    path = Path(folder) / PREPROCESSOR_FILE
    path.write_text(json.dumps(preprocessor.get_config(), indent=2) + "\n", encoding="utf-8")
    return path


def load_preprocessor(folder: str | os.PathLike, model, metadata: Mapping[str, Any] | None = None) -> Preprocessor:
    """The preprocessor of a preset folder (``presets.load_preset`` calls it and sets ``model.preprocessor``):
    its ``preprocessor.json``, else derived from ``metadata["acquisition"]`` and the model."""
    path = Path(folder) / PREPROCESSOR_FILE
    if not path.is_file():
        return derive_preprocessor(model, (metadata or {}).get("acquisition"))
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error}).") from None
    try:
        return preprocessor_from_config(config)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
