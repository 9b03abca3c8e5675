"""From a model's input dict to validated measurements and their operator: the one factory.

An :class:`Acquisition` describes what a model is given (its input spec) and
turns an input dict into ``(measurements, LinearOperator)``:

======================  =====================================  ==============================================
kind                    inputs                                 operator (measurements)
======================  =====================================  ==============================================
``"cartesian"``         kspace, mask (+ smaps)                 CartesianSingleCoil / SENSE (kspace)
``"noncartesian"``      kspace, traj (+ dcomp) (+ smaps)       DensityWeightedNUFFT (sqrt(dcomp) * kspace)
``"gridded"``           kspace, traj (+ dcomp) (+ smaps)       CartesianSingleCoil / SENSE on the sampled
                                                               cells (the gridded k-space)
======================  =====================================  ==============================================

``check`` validates an input dict before any computation (clear ValueErrors
naming the input; values are only checked eagerly), ``dummy_inputs`` builds
inputs of given shapes (``build_from_config``), ``get_config`` /
``from_config`` round-trip through JSON. :func:`make_acquisition` is the factory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar, Sequence

import numpy as np
import tensorflow as tf

from ..checks import check_batch, check_complex, check_finite, check_in_range, check_rank, check_same_dim, static_shape
from .base import LinearOperator
from .cartesian import SENSE, CartesianSingleCoil
from .noncartesian import DensityWeightedNUFFT, gridded_operator
from .nufft import TABLE_OVERSAMPLING, TRAJ_TOLERANCE, check_gridding

__all__ = [
    "TOEPLITZ_KERNEL",
    "InputSpec",
    "Acquisition",
    "CartesianAcquisition",
    "NonCartesianAcquisition",
    "GriddedAcquisition",
    "make_acquisition",
    "ACQUISITIONS",
    "split_image_shape",
    "check_cartesian_inputs",
    "check_noncartesian_inputs",
    "resolve_image_shape",
    "as_image_shape",
]

_AXES = {2: "(k_H, k_W)", 3: "(k_D, k_H, k_W)"}
_SPATIAL = {2: "H, W", 3: "D, H, W"}
# Unknown sizes of dummy inputs: 8 pixels / coils / batch items, 16 samples.
_DUMMY_SIZE, _DUMMY_SAMPLES = 8, 16


@dataclass(frozen=True)
class InputSpec:
    """One entry of a model's input dict.

    name: the key; dtype: "complex64" or "float32"; ranks: the accepted numbers
    of axes; layout: the axes, for messages, e.g. "(batch, coils, H, W)";
    dummy_shape: the shape of a dummy input (``None`` sizes become 8, or 16 for a
    sample axis), or a callable ``shape -> shape`` mapping a recorded shape to one.
    """

    name: str
    dtype: str
    ranks: tuple
    layout: str
    dummy_shape: tuple | Callable = ()

    def dummy(self, shape: Sequence | None = None) -> np.ndarray:
        """A dummy array: zeros for k-space and trajectories, ones for masks, weights and coil maps."""
        if shape is None:
            shape = self.dummy_shape() if callable(self.dummy_shape) else self.dummy_shape
        elif callable(self.dummy_shape):
            shape = self.dummy_shape(tuple(shape))
        shape = tuple(_DUMMY_SIZE if size is None else int(size) for size in shape)
        fill = np.zeros if self.name in ("kspace", "traj") else np.ones
        return fill(shape, np.dtype(self.dtype))


# --------------------------------------------------------------------------- shared validation


def _is_real(x) -> bool:
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return not np.iscomplexobj(x)
    return not (dtype.is_complex if isinstance(dtype, tf.DType) else np.issubdtype(np.dtype(dtype), np.complexfloating))


#: Optional key of a non-Cartesian input dict: the Toeplitz kernel of its trajectory and density
#: weights (see ``NonCartesianAcquisition.operator``); not a model input, no check, no spec.
TOEPLITZ_KERNEL = "toeplitz_kernel"


def _check_keys(inputs, required: Sequence[str], model_name: str, hints: dict | None = None) -> None:
    """A dict holding every required key, else a ValueError listing the missing ones (with a hint)."""
    if not isinstance(inputs, dict):
        raise ValueError(f"inputs: expected a dict with keys {list(required)}, got {type(inputs).__name__}.")
    missing = [key for key in required if key not in inputs]
    if missing:
        hint = next((hints[key] for key in (hints or {}) if key in missing), "")
        raise ValueError(
            f"inputs: {model_name} needs keys {list(required)}; missing {missing}, got {sorted(inputs)}.{hint}"
        )


def as_image_shape(value, ndim: int, name: str = "image_shape") -> tuple[int, ...]:
    """A tuple of ``ndim`` positive Python ints (from a tuple, list, numpy array or eager tensor)."""
    if isinstance(value, (tf.Tensor, tf.Variable)):
        if not tf.executing_eagerly():
            raise ValueError(
                f"{name}: expected Python ints (a static image size), got a symbolic tensor; pass a tuple such as "
                f"{(320,) * ndim}."
            )
        value = value.numpy()
    try:
        sizes = tuple(int(n) for n in np.asarray(value).reshape(-1))
        exact = all(float(n) == float(v) for n, v in zip(sizes, np.asarray(value).reshape(-1)))
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {ndim} positive ints, got {value!r}.") from None
    if len(sizes) != ndim or not exact or min(sizes) < 1:
        raise ValueError(f"{name}: expected {ndim} positive ints (one per image axis), got {value!r}.")
    return sizes


def split_image_shape(inputs):
    """(inputs without 'image_shape', that entry or None): Keras only takes tensors in the input dict."""
    if isinstance(inputs, dict) and "image_shape" in inputs:
        inputs = dict(inputs)
        return inputs, inputs.pop("image_shape")
    return inputs, None


def _check_ndim(ndim) -> int:
    if ndim not in (2, 3):
        raise ValueError(f"ndim: expected 2 (images) or 3 (volumes), got {ndim!r}.")
    return int(ndim)


# --------------------------------------------------------------------------- Cartesian


def cartesian_required_inputs(multicoil: bool) -> tuple[str, ...]:
    """Input keys of a Cartesian model: kspace and mask, plus smaps when multicoil."""
    return ("kspace", "mask", "smaps") if multicoil else ("kspace", "mask")


def _check_coil_layout(kspace, multicoil: bool, axes: str, model_name: str) -> None:
    """kspace is complex with the rank of the model's coil mode: (batch, coils, AXES) multicoil,
    (batch, AXES) single-coil; the other mode's rank gets a message saying how to build the model."""
    check_complex("kspace", kspace)
    n_axes = len(axes.split(", "))
    rank = len(static_shape(kspace))
    if multicoil and rank == n_axes + 1:
        raise ValueError(
            f"kspace: {model_name} is a multicoil model and expects (batch, coils, {axes}), got shape "
            f"{static_shape(kspace)}, which looks like single-coil k-space; build the model with multicoil=False "
            "for single-coil data."
        )
    if not multicoil and rank == n_axes + 2:
        raise ValueError(
            f"kspace: {model_name} is a single-coil model and expects (batch, {axes}), got shape "
            f"{static_shape(kspace)}, which looks like multicoil k-space; build the model with multicoil=True "
            "and pass smaps."
        )
    layout = f"(batch, coils, {axes})" if multicoil else f"(batch, {axes})"
    check_rank("kspace", kspace, n_axes + 1 + multicoil, layout)


def check_cartesian_inputs(inputs: dict, multicoil: bool, model_name: str, ndim: int = 2) -> None:
    """Validate a Cartesian input dict's arrays (shapes always; values when eager).

    kspace: complex64 (batch, H, W) single-coil or (batch, coils, H, W) multicoil;
    mask: real, broadcastable to (batch, H, W), with W columns; smaps: complex64
    (batch, coils, H, W), multicoil only. 3D (``ndim=3``) adds D before H.
    """
    spatial = _SPATIAL[ndim]
    kspace = inputs["kspace"]
    _check_coil_layout(kspace, multicoil, spatial, model_name)
    kshape = static_shape(kspace)

    mask = inputs["mask"]
    mask_dtype = getattr(mask, "dtype", None)
    if mask_dtype is not None and tf.as_dtype(mask_dtype).is_complex:
        raise ValueError(f"mask: expected real values (0/1 or sampling weights), got dtype {tf.as_dtype(mask_dtype).name}.")
    example = "e.g. (1, W) or (batch, 1, W)" if ndim == 2 else "e.g. (1, 1, W) or (batch, D, 1, W)"
    check_rank("mask", mask, tuple(range(1, ndim + 2)), f"broadcastable to (batch, {spatial}), {example}")
    mshape = static_shape(mask)
    check_same_dim("mask", mshape[-1], "kspace", kshape[-1], "columns (phase-encoding width W)")
    if len(mshape) >= 2 and mshape[-2] not in (None, 1):
        check_same_dim("mask", mshape[-2], "kspace", kshape[-2], "rows (readout height H)")
    if ndim == 3 and len(mshape) >= 3 and mshape[-3] not in (None, 1):
        check_same_dim("mask", mshape[-3], "kspace", kshape[-3], "slices (depth D)")
    if len(mshape) == ndim + 1 and mshape[0] not in (None, 1):
        check_same_dim("mask", mshape[0], "kspace", kshape[0], "batch items")

    if multicoil:
        smaps = inputs["smaps"]
        check_complex("smaps", smaps)
        check_rank("smaps", smaps, ndim + 2, f"(batch, coils, {spatial})")
        sshape = static_shape(smaps)
        names = ["coils"] + [f"rows ({axis})" if axis != "W" else "columns (W)" for axis in spatial.split(", ")]
        if ndim == 3:
            names[1] = "slices (D)"
        check_batch("smaps", sshape[0], "kspace", kshape[0])
        for axis, what in enumerate(names, start=1):
            check_same_dim("smaps", sshape[axis], "kspace", kshape[axis], what)
        check_finite("smaps", smaps)
    check_finite("kspace", kspace)
    check_finite("mask", mask)


def cartesian_operator(inputs: dict, multicoil: bool, ndim: int = 2, smaps=None):
    """(kspace complex64, CartesianSingleCoil(mask) or SENSE(mask, smaps)); ``smaps`` overrides inputs["smaps"]."""
    kspace = tf.cast(tf.convert_to_tensor(inputs["kspace"]), tf.complex64)
    mask = tf.cast(tf.convert_to_tensor(inputs["mask"]), tf.float32)
    if multicoil:
        return kspace, SENSE(mask, inputs["smaps"] if smaps is None else smaps, ndim=ndim)
    return kspace, CartesianSingleCoil(mask, ndim=ndim)


# --------------------------------------------------------------------------- non-Cartesian


def noncartesian_required_inputs(multicoil: bool, dcomp: bool) -> tuple[str, ...]:
    """Input keys of a non-Cartesian model: kspace and traj, dcomp if it compensates density, smaps if multicoil."""
    return ("kspace", "traj") + (("dcomp",) if dcomp else ()) + (("smaps",) if multicoil else ())


_NONCARTESIAN_HINTS = {
    "smaps": " A multicoil model needs coil maps (e.g. physics.estimate_sensitivity_maps_nufft).",
    "dcomp": " Density weights come from physics.pipe_menon_density, or build the model with dcomp=False.",
}


def check_noncartesian_inputs(
    inputs: dict, multicoil: bool, ndim: int, dcomp: bool, model_name: str
) -> None:
    """Validate a non-Cartesian input dict (shapes always; values only when eager).

    kspace: complex64 (batch, nsamples) single-coil or (batch, coils, nsamples)
    multicoil; traj: float32 (batch, ndim, nsamples) or (ndim, nsamples), radians
    per pixel in [-pi, pi]; dcomp (when used): float32 (batch, nsamples) or
    (nsamples,); smaps (multicoil): complex64 (batch, coils, *image_shape).
    """
    _check_keys(inputs, noncartesian_required_inputs(multicoil, dcomp), model_name, _NONCARTESIAN_HINTS)

    kspace = inputs["kspace"]
    _check_coil_layout(kspace, multicoil, "nsamples", model_name)
    kshape = static_shape(kspace)

    traj = inputs["traj"]
    if not _is_real(traj):
        raise ValueError("traj: expected real float32 coordinates in radians per pixel, got complex values.")
    check_rank("traj", traj, (2, 3), f"(batch, ndim, nsamples) or (ndim, nsamples), ndim={ndim}")
    tshape = static_shape(traj)
    if tshape[-2] is not None and tshape[-2] not in (2, 3):
        raise ValueError(
            f"traj: expected (batch, ndim, nsamples) or (ndim, nsamples) with ndim={ndim}, got shape {tshape}; "
            f"a trajectory split into shots, (ndim, num_shots, samples_per_shot), is flattened with "
            "traj.reshape(ndim, -1), and (nsamples, ndim) is transposed with traj.T."
        )
    if tshape[-2] is not None and tshape[-2] != ndim:
        raise ValueError(
            f"traj: {model_name} (ndim={ndim}) expects {ndim} coordinates {_AXES[ndim]} along axis -2, got "
            f"{tshape[-2]} (shape {tshape}); a {tshape[-2]}D trajectory needs a model built with ndim={tshape[-2]}."
        )
    check_same_dim("traj", tshape[-1], "kspace", kshape[-1], "samples")
    if len(tshape) == 3:
        check_batch("kspace", kshape[0], "traj", tshape[0])
    check_finite("traj", traj)
    check_in_range(
        "traj", traj, -math.pi - TRAJ_TOLERANCE, math.pi + TRAJ_TOLERANCE,
        " (radians per pixel, i.e. [-pi, pi]; a trajectory in cycles per pixel, within [-0.5, 0.5], "
        "must be multiplied by 2 pi)",
    )

    if dcomp:
        weights = inputs["dcomp"]
        if not _is_real(weights):
            raise ValueError("dcomp: expected real float32 density weights, got complex values.")
        check_rank("dcomp", weights, (1, 2), "(batch, nsamples) or (nsamples,)")
        dshape = static_shape(weights)
        check_same_dim("dcomp", dshape[-1], "traj", tshape[-1], "samples")
        if len(dshape) == 2:
            check_batch("dcomp", dshape[0], "kspace", kshape[0])
        check_finite("dcomp", weights)

    if multicoil:
        smaps = inputs["smaps"]
        check_complex("smaps", smaps)
        check_rank("smaps", smaps, ndim + 2, f"(batch, coils, {ndim} spatial axes)")
        sshape = static_shape(smaps)
        check_same_dim("kspace", kshape[1], "smaps", sshape[1], "coils")
        check_batch("smaps", sshape[0], "kspace", kshape[0])
        check_finite("smaps", smaps)
    check_finite("kspace", kspace)


def resolve_image_shape(
    inputs: dict, multicoil: bool, ndim: int, call_shape, default_shape, model_name: str
) -> tuple[int, ...]:
    """The image size a model reconstructs: the coil maps' when multicoil, else the call's
    ``image_shape``, else the constructor's; a ValueError when there is none."""
    if multicoil:
        spatial = static_shape(inputs["smaps"])[2:]
        if len(spatial) != ndim or any(n is None for n in spatial):
            raise ValueError(
                f"smaps: {model_name} takes the image size from the coil maps, so their {ndim} spatial sizes must be "
                f"known; got shape {static_shape(inputs['smaps'])}."
            )
        if call_shape is not None and tuple(call_shape) != tuple(spatial):
            raise ValueError(
                f"image_shape: got {tuple(call_shape)} but smaps have spatial shape {tuple(spatial)}; they must match "
                "(or leave image_shape out for multicoil data)."
            )
        return tuple(int(n) for n in spatial)
    shape = call_shape if call_shape is not None else default_shape
    if shape is None:
        raise ValueError(
            f"image_shape: {model_name} is single-coil, so it cannot read the image size from coil maps; pass "
            f"image_shape={(320,) * ndim}-like Python ints to the constructor or as inputs['image_shape']."
        )
    return as_image_shape(shape, ndim)


# --------------------------------------------------------------------------- acquisitions


class Acquisition:
    """What a model is given and how it becomes (measurements, operator). A plain object with a JSON config.

    multicoil: coil maps given (``smaps``) and multicoil k-space; ndim: 2
    (images) or 3 (volumes); options: those of the kind (subclasses).
    """

    kind: ClassVar[str] = ""

    def __init__(self, multicoil: bool = False, ndim: int = 2):
        self.multicoil = bool(multicoil)
        self.ndim = _check_ndim(ndim)

    def input_specs(self) -> dict[str, InputSpec]:
        """The required inputs, by key, in order."""
        raise NotImplementedError

    @property
    def required_inputs(self) -> tuple[str, ...]:
        return tuple(self.input_specs())

    def check(self, inputs, model_name: str, image_shape=None) -> None:
        """Raise a ValueError naming the input if ``inputs`` does not fit (before any computation)."""
        raise NotImplementedError

    def dummy_inputs(self, shapes: dict | None = None) -> dict:
        """Inputs of the recorded ``shapes`` (e.g. Keras' ``build_config["input_shape"]``; unknown sizes
        become 8, unknown sample counts 16), or of small default shapes; zeros for k-space."""
        specs = self.input_specs()
        shapes = shapes or {}
        return {key: spec.dummy(shapes.get(key)) for key, spec in specs.items()}

    def operator(self, inputs, image_shape=None, smaps=None) -> tuple[tf.Tensor, LinearOperator]:
        """(measurements, LinearOperator) of inputs already checked; ``smaps`` overrides inputs["smaps"]."""
        raise NotImplementedError

    def options(self) -> dict:
        """The kind's options (constructor arguments other than multicoil and ndim)."""
        return {}

    def get_config(self) -> dict:
        return {"kind": self.kind, "multicoil": self.multicoil, "ndim": self.ndim, **self.options()}

    @classmethod
    def from_config(cls, config: dict) -> "Acquisition":
        config = dict(config)
        kind = config.pop("kind", cls.kind)
        return make_acquisition(kind, **config)

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items() if key != "kind")
        return f"{type(self).__name__}({arguments})"


class CartesianAcquisition(Acquisition):
    """Cartesian k-space on a mask: ``CartesianSingleCoil`` or (multicoil) ``SENSE``; measurements = kspace.

    inputs: kspace complex64 (batch, H, W) or (batch, coils, H, W); mask real,
    broadcastable to (batch, H, W); smaps complex64 (batch, coils, H, W) when
    multicoil (3D: D before H).
    """

    kind = "cartesian"

    def input_specs(self) -> dict[str, InputSpec]:
        spatial, n = _SPATIAL[self.ndim], self.ndim
        grid = (_DUMMY_SIZE,) * n
        coils = (1, 2) if self.multicoil else (1,)
        specs = {
            "kspace": InputSpec("kspace", "complex64", (n + 1 + self.multicoil,),
                                f"(batch, coils, {spatial})" if self.multicoil else f"(batch, {spatial})",
                                coils + grid),
            "mask": InputSpec("mask", "float32", tuple(range(1, n + 2)), f"broadcastable to (batch, {spatial})",
                              (1,) * n + (_DUMMY_SIZE,)),
        }
        if self.multicoil:
            specs["smaps"] = InputSpec("smaps", "complex64", (n + 2,), f"(batch, coils, {spatial})", coils + grid)
        return specs

    def check(self, inputs, model_name: str, image_shape=None) -> None:
        _check_keys(inputs, self.required_inputs, model_name)
        check_cartesian_inputs(inputs, self.multicoil, model_name, self.ndim)

    def operator(self, inputs, image_shape=None, smaps=None):
        return cartesian_operator(inputs, self.multicoil, self.ndim, smaps=smaps)


class NonCartesianAcquisition(Acquisition):
    """Non-Cartesian k-space: the density-weighted NUFFT B = D^{1/2} A (``DensityWeightedNUFFT``).

    inputs: kspace complex64 (batch, nsamples) or (batch, coils, nsamples);
    traj float32 (batch, ndim, nsamples) or (ndim, nsamples), radians per pixel
    in [-pi, pi]; dcomp float32 (batch, nsamples) or (nsamples,) when
    ``dcomp``; smaps complex64 (batch, coils, *image_shape) when multicoil;
    measurements sqrt(dcomp) * kspace. The image size is the coil maps' when
    multicoil, else the call's ``image_shape``, else this ``image_shape``.

    dcomp: whether density weights are given (D = identity otherwise);
    image_shape: default image size (single-coil); table_oversampling,
    gridding: the NUFFT's; legacy_im_size: the original NC-PDNet's padding
    and scale (``DensityWeightedNUFFT``); toeplitz: the normal operator by
    the Toeplitz embedding.
    """

    kind = "noncartesian"

    def __init__(
        self,
        multicoil: bool = False,
        ndim: int = 2,
        dcomp: bool = True,
        image_shape: Sequence[int] | None = None,
        table_oversampling: int = TABLE_OVERSAMPLING,
        legacy_im_size: Sequence[int] | None = None,
        gridding: str = "sparse",
        toeplitz: bool = False,
    ):
        super().__init__(multicoil=multicoil, ndim=ndim)
        self.dcomp = bool(dcomp)
        self.image_shape = None if image_shape is None else as_image_shape(image_shape, self.ndim)
        self.table_oversampling = int(table_oversampling)
        self.legacy_im_size = None if legacy_im_size is None else as_image_shape(
            legacy_im_size, self.ndim, "legacy_im_size"
        )
        self.gridding = check_gridding(gridding)
        self.toeplitz = bool(toeplitz)

    def options(self) -> dict:
        return {
            "dcomp": self.dcomp,
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            "table_oversampling": self.table_oversampling,
            "legacy_im_size": None if self.legacy_im_size is None else list(self.legacy_im_size),
            "gridding": self.gridding,
            "toeplitz": self.toeplitz,
        }

    def input_specs(self) -> dict[str, InputSpec]:
        n = self.ndim

        def samples(shape):  # an unknown sample count becomes 16, an unknown traj ndim axis ndim, others 8
            shape = list(shape)
            if shape[-1] is None:
                shape[-1] = _DUMMY_SAMPLES
            return tuple(shape)

        def default(shape, coordinates=False):
            def dummy_shape(recorded=None):
                if recorded is None:
                    return shape
                recorded = samples(recorded)
                if coordinates and len(recorded) >= 2 and recorded[-2] is None:
                    recorded = recorded[:-2] + (n,) + recorded[-1:]
                return recorded

            return dummy_shape

        specs = {
            "kspace": InputSpec("kspace", "complex64", (3,) if self.multicoil else (2,),
                                "(batch, coils, nsamples)" if self.multicoil else "(batch, nsamples)",
                                default((1, 2, _DUMMY_SAMPLES) if self.multicoil else (1, _DUMMY_SAMPLES))),
            "traj": InputSpec("traj", "float32", (2, 3), "(batch, ndim, nsamples) or (ndim, nsamples)",
                              default((n, _DUMMY_SAMPLES), coordinates=True)),
        }
        if self.dcomp:
            specs["dcomp"] = InputSpec("dcomp", "float32", (1, 2), "(batch, nsamples) or (nsamples,)",
                                       default((_DUMMY_SAMPLES,)))
        if self.multicoil:
            grid = tuple(self.image_shape or (_DUMMY_SIZE,) * n)
            specs["smaps"] = InputSpec("smaps", "complex64", (n + 2,), f"(batch, coils, {n} spatial axes)",
                                       (1, 2) + grid)
        return specs

    def dummy_inputs(self, shapes: dict | None = None) -> dict:
        """As ``Acquisition.dummy_inputs``, plus ``image_shape`` (8 per axis) for a single-coil
        acquisition without a default image size."""
        dummy = super().dummy_inputs(shapes)
        if not self.multicoil and self.image_shape is None:
            dummy["image_shape"] = (_DUMMY_SIZE,) * self.ndim
        return dummy

    def check(self, inputs, model_name: str, image_shape=None) -> None:
        """Also takes ``image_shape`` from ``inputs["image_shape"]`` (Python ints) when given there."""
        inputs, given = split_image_shape(inputs)
        if image_shape is None and given is not None:
            image_shape = as_image_shape(given, self.ndim)
        check_noncartesian_inputs(inputs, self.multicoil, self.ndim, self.dcomp, model_name)
        self.image_shape_of(inputs, image_shape, model_name)

    def image_shape_of(self, inputs, image_shape=None, model_name: str = "the model") -> tuple[int, ...]:
        """The image size of these inputs (``resolve_image_shape``)."""
        inputs, given = split_image_shape(inputs)
        call_shape = image_shape if image_shape is not None else given
        return resolve_image_shape(inputs, self.multicoil, self.ndim, call_shape, self.image_shape, model_name)

    def _dcomp(self, inputs):
        return inputs["dcomp"] if self.dcomp else None

    def operator(self, inputs, image_shape=None, smaps=None, toeplitz: bool | None = None):
        """(sqrt(dcomp) * kspace, DensityWeightedNUFFT); ``toeplitz`` overrides this acquisition's.

        ``inputs[TOEPLITZ_KERNEL]``, if present, is the Toeplitz kernel of this trajectory and
        density (``DensityWeightedNUFFT.toeplitz.kernel`` of an operator built before, e.g. eagerly
        from its cache), used instead of computing it (with ``toeplitz`` on; ignored otherwise).
        """
        shape = self.image_shape_of(inputs, image_shape)
        if self.multicoil and smaps is None:
            smaps = inputs["smaps"]
        toeplitz = self.toeplitz if toeplitz is None else bool(toeplitz)
        operator = DensityWeightedNUFFT(
            inputs["traj"], shape,
            smaps=smaps if self.multicoil else None,
            dcomp=self._dcomp(inputs),
            toeplitz=toeplitz,
            toeplitz_kernel=inputs.get(TOEPLITZ_KERNEL) if toeplitz else None,
            legacy_im_size=self.legacy_im_size,
            table_oversampling=self.table_oversampling,
            gridding=self.gridding,
        )
        return operator.measurements(tf.cast(tf.convert_to_tensor(inputs["kspace"]), tf.complex64)), operator


class GriddedAcquisition(NonCartesianAcquisition):
    """Non-Cartesian k-space gridded onto the Cartesian grid (the NC-PDNet ablation "gridded k-space + FFT").

    Inputs and options as :class:`NonCartesianAcquisition` (no ``legacy_im_size``
    nor ``toeplitz``); measurements: each coil's F^H D y_c, FFT-ed and kept on the
    cells holding a sample; operator: ``CartesianSingleCoil`` / ``SENSE`` with that
    mask (``physics.noncartesian.gridded_operator``).
    """

    kind = "gridded"

    def __init__(self, multicoil: bool = False, ndim: int = 2, **options):
        for name in ("legacy_im_size", "toeplitz"):
            value = options.pop(name, None)
            if value not in (None, False):
                raise ValueError(
                    f"{name}: the gridded acquisition has no {name} (it runs FFTs on the Cartesian grid), "
                    f"got {value!r}."
                )
        super().__init__(multicoil=multicoil, ndim=ndim, **options)

    def options(self) -> dict:
        options = super().options()
        del options["legacy_im_size"], options["toeplitz"]
        return options

    def operator(self, inputs, image_shape=None, smaps=None):
        shape = self.image_shape_of(inputs, image_shape)
        if self.multicoil and smaps is None:
            smaps = inputs["smaps"]
        return gridded_operator(
            inputs["kspace"], inputs["traj"], shape, dcomp=self._dcomp(inputs),
            smaps=smaps if self.multicoil else None,
            table_oversampling=self.table_oversampling, gridding=self.gridding,
        )


#: The acquisition classes by kind.
ACQUISITIONS: dict[str, type[Acquisition]] = {
    cls.kind: cls for cls in (CartesianAcquisition, NonCartesianAcquisition, GriddedAcquisition)
}


def make_acquisition(kind: str, **options) -> Acquisition:
    """The acquisition of ``kind`` ("cartesian", "noncartesian" or "gridded") with its options
    (``multicoil``, ``ndim`` and those of the kind)."""
    if kind not in ACQUISITIONS:
        raise ValueError(f"kind: expected one of {list(ACQUISITIONS)}, got {kind!r}.")
    cls = ACQUISITIONS[kind]
    try:
        return cls(**options)
    except TypeError as error:
        raise ValueError(f"options: {error} (acquisition kind {kind!r}).") from None
