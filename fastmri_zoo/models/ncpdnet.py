"""Non-Cartesian networks: NC-PDNet (Ramzi et al. 2022) and the baselines of its ablation.

All take the non-Cartesian calling convention (see :class:`NonCartesianModel`):
``inputs = {"kspace", "traj", "dcomp", "smaps" (multicoil)}`` and return the
complex64 image (batch, *image_shape).

- :class:`NCPDNet`: the unrolled primal-only network of the paper, in 2D and 3D.
- :class:`UNetAdjDcomp`: a U-net on the density-compensated adjoint.
- :class:`GriddedPDNet`: the same unrolled network on k-space gridded onto the
  Cartesian grid, with FFTs instead of NUFFTs.

Every model takes ``gridding="sparse"`` (default) or ``"tfkbnufft"``: how the
NUFFT's interpolation / spreading runs (``physics.NUFFT``; the same Kaiser-Bessel
coefficients, outputs equal to ~1e-5). Neither is XLA-compilable: the models set
``supports_jit = False`` and must not be ``jit_compile`` d.
"""

from __future__ import annotations

import collections
import math
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from ..checks import check_complex, check_finite, check_in_range, check_rank, check_same_dim, static_shape
from ..layers import (
    ConvStack,
    SensitivityMapRefiner,
    UNetBlock,
    channels_to_complex,
    complex_to_channels,
)
from ..physics import NUFFT, SENSE, CartesianSingleCoil, fftc
from ..physics.nufft import (
    GRIDDING_METHODS, TABLE_OVERSAMPLING, TRAJ_TOLERANCE, array_digest, check_batch, grid_shape_for,
)
from .base import ReconstructionModel
from .pdnet import XPDNet, _plain
from .unet import complex_unet

__all__ = [
    "NonCartesianModel",
    "NCPDNet",
    "UNetAdjDcomp",
    "GriddedPDNet",
    "check_noncartesian_inputs",
    "noncartesian_required_inputs",
    "sampled_cells",
]

_AXES = {2: "(k_H, k_W)", 3: "(k_D, k_H, k_W)"}


# --------------------------------------------------------------------------- input handling


def noncartesian_required_inputs(multicoil: bool, dcomp: bool) -> tuple[str, ...]:
    """Input keys of a non-Cartesian model: kspace and traj, dcomp if it compensates density, smaps if multicoil."""
    return ("kspace", "traj") + (("dcomp",) if dcomp else ()) + (("smaps",) if multicoil else ())


def _is_real(x) -> bool:
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return not np.iscomplexobj(x)
    return not (dtype.is_complex if isinstance(dtype, tf.DType) else np.issubdtype(np.dtype(dtype), np.complexfloating))


def _as_image_shape(value, ndim: int, name: str = "image_shape") -> tuple[int, ...]:
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
    return _as_image_shape(shape, ndim)


def check_noncartesian_inputs(
    inputs: dict, multicoil: bool, ndim: int, dcomp: bool, model_name: str
) -> None:
    """Validate a non-Cartesian input dict (shapes always; values only when eager).

    kspace: complex64 (batch, nsamples) single-coil or (batch, coils, nsamples)
    multicoil; traj: float32 (batch, ndim, nsamples) or (ndim, nsamples), radians
    per pixel in [-pi, pi]; dcomp (when used): float32 (batch, nsamples) or
    (nsamples,); smaps (multicoil): complex64 (batch, coils, *image_shape).
    """
    if not isinstance(inputs, dict):
        raise ValueError(
            f"inputs: expected a dict with keys {list(noncartesian_required_inputs(multicoil, dcomp))}, "
            f"got {type(inputs).__name__}."
        )
    required = noncartesian_required_inputs(multicoil, dcomp)
    missing = [key for key in required if key not in inputs]
    if missing:
        hint = ""
        if "smaps" in missing:
            hint = " A multicoil model needs coil maps (e.g. physics.estimate_sensitivity_maps_nufft)."
        elif "dcomp" in missing:
            hint = " Density weights come from physics.pipe_menon_density, or build the model with dcomp=False."
        raise ValueError(
            f"inputs: {model_name} needs keys {list(required)}; missing {missing}, got {sorted(inputs)}.{hint}"
        )

    kspace = inputs["kspace"]
    check_complex("kspace", kspace)
    kshape = static_shape(kspace)
    if multicoil:
        if len(kshape) == 2:
            raise ValueError(
                f"kspace: {model_name} is a multicoil model and expects (batch, coils, nsamples), got shape {kshape}, "
                "which looks like single-coil k-space; build the model with multicoil=False for single-coil data."
            )
        check_rank("kspace", kspace, 3, "(batch, coils, nsamples)")
    else:
        if len(kshape) == 3:
            raise ValueError(
                f"kspace: {model_name} is a single-coil model and expects (batch, nsamples), got shape {kshape}, "
                "which looks like multicoil k-space; build the model with multicoil=True and pass smaps."
            )
        check_rank("kspace", kspace, 2, "(batch, nsamples)")

    traj = inputs["traj"]
    if not _is_real(traj):
        raise ValueError("traj: expected real float32 coordinates in radians per pixel, got complex values.")
    check_rank("traj", traj, (2, 3), f"(batch, ndim, nsamples) or (ndim, nsamples), ndim={ndim}")
    tshape = static_shape(traj)
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


def check_gridding(gridding) -> str:
    """``gridding`` if it is one of ``physics.nufft.GRIDDING_METHODS``, else a ValueError."""
    if not isinstance(gridding, str) or gridding not in GRIDDING_METHODS:
        raise ValueError(
            f"gridding: expected one of {list(GRIDDING_METHODS)} (how the NUFFT interpolates and spreads), "
            f"got {gridding!r}."
        )
    return gridding


def _split_image_shape(inputs):
    """(inputs without 'image_shape', that entry or None): Keras only takes tensors in the input dict."""
    if isinstance(inputs, dict) and "image_shape" in inputs:
        inputs = dict(inputs)
        return inputs, inputs.pop("image_shape")
    return inputs, None


# --------------------------------------------------------------------------- operators


class _KernelCache:
    """Least-recently-used Toeplitz kernels, keyed by the bytes of traj and dcomp and the geometry.

    Only used eagerly (inference over many slices of one trajectory builds the
    kernel once); inside ``tf.function`` the kernel is computed in the graph.
    """

    def __init__(self, maxsize: int = 4):
        self.maxsize = maxsize
        self.entries: collections.OrderedDict = collections.OrderedDict()

    @staticmethod
    def key(traj: tf.Tensor, dcomp, settings: tuple):
        if not tf.executing_eagerly():
            return None
        return array_digest(traj, dcomp), settings

    def get(self, key):
        if key is None or key not in self.entries:
            return None
        self.entries.move_to_end(key)
        return self.entries[key]

    def put(self, key, kernel) -> None:
        if key is None:
            return
        self.entries[key] = kernel
        self.entries.move_to_end(key)
        while len(self.entries) > self.maxsize:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()


#: Shared by every model (keys hold everything the kernel depends on).
TOEPLITZ_KERNELS = _KernelCache()


def _centred_pads(image_shape: tuple, grid: tuple) -> list[tuple[int, int]]:
    return [((m - n) // 2, (m - n) // 2) for n, m in zip(image_shape, grid)]


class NetworkAcquisition:
    """The acquisition A = c F_traj P as a non-Cartesian network uses it.

    P zero-pads the image (batch, *image_shape) to ``nufft_shape`` (centred,
    equal on both sides; the identity without ``legacy_im_size``), F_traj is
    :class:`~fastmri_zoo.physics.NUFFT` on that grid with coil maps and
    density weights, and c = 1, or, with ``legacy_im_size``, the scale of the
    original NC-PDNet's tfkbnufft ``norm='ortho'`` on a 2x grid:
    c = sqrt(prod(im_size) / prod(grid)) (= 2^{-ndim/2}).

    ``adjoint_dcomp(y)`` = A^H D y; ``forward(x)`` = A x; ``normal(x)`` =
    A^H D A x, by the Toeplitz embedding when ``toeplitz`` (its kernel taken
    from / stored in ``TOEPLITZ_KERNELS`` when eager) else forward + adjoint.
    ``gridding``: the NUFFT's (``"sparse"`` or ``"tfkbnufft"``), also used to
    build the Toeplitz kernel.
    """

    def __init__(
        self,
        traj,
        image_shape: tuple,
        smaps=None,
        dcomp=None,
        toeplitz: bool = True,
        legacy_im_size: tuple | None = None,
        table_oversampling: int = TABLE_OVERSAMPLING,
        gridding: str = "sparse",
    ):
        self.gridding = check_gridding(gridding)
        self.image_shape = tuple(image_shape)
        self.ndim = len(self.image_shape)
        self.scale = 1.0
        nufft_shape = self.image_shape
        if legacy_im_size is not None:
            nufft_shape = tuple(int(n) for n in legacy_im_size)
            differences = [m - n for n, m in zip(self.image_shape, nufft_shape)]
            if min(differences) < 0 or any(d % 2 for d in differences):
                raise ValueError(
                    f"legacy_im_size: the image {self.image_shape} must fit in {nufft_shape} with an even margin on "
                    "every axis (the original zero-pads equally on both sides)."
                )
            self.scale = math.sqrt(np.prod(nufft_shape) / np.prod(grid_shape_for(nufft_shape, 2.0)))
        self.nufft_shape = nufft_shape
        self.pads = _centred_pads(self.image_shape, nufft_shape)
        if smaps is not None:
            smaps = self._pad(tf.cast(smaps, tf.complex64), leading=2)
        traj = tf.cast(tf.convert_to_tensor(traj), tf.float32)
        dcomp = None if dcomp is None else tf.cast(tf.convert_to_tensor(dcomp), tf.float32)
        key = None
        kernel = None
        if toeplitz:
            key = TOEPLITZ_KERNELS.key(traj, dcomp, (nufft_shape, int(table_oversampling), self.gridding))
            kernel = TOEPLITZ_KERNELS.get(key)
        self.nufft = NUFFT(
            traj, nufft_shape, smaps=smaps, dcomp=dcomp, toeplitz=toeplitz, toeplitz_kernel=kernel,
            table_oversampling=table_oversampling, gridding=self.gridding,
        )
        if toeplitz and kernel is None:
            TOEPLITZ_KERNELS.put(key, self.nufft.toeplitz.kernel)

    def _pad(self, x: tf.Tensor, leading: int = 1) -> tf.Tensor:
        if not any(p for pair in self.pads for p in pair):
            return x
        return tf.pad(x, [[0, 0]] * leading + [list(pair) for pair in self.pads])

    def _crop(self, x: tf.Tensor) -> tf.Tensor:
        if not any(p for pair in self.pads for p in pair):
            return x
        return x[(Ellipsis,) + tuple(slice(p, p + n) for (p, _), n in zip(self.pads, self.image_shape))]

    def _scaled(self, x: tf.Tensor, power: int = 1) -> tf.Tensor:
        return x if self.scale == 1.0 else x * tf.cast(self.scale**power, x.dtype)

    def forward(self, x: tf.Tensor) -> tf.Tensor:
        """x complex64 (batch, *image_shape) -> k-space (batch[, coils], nsamples)."""
        return self._scaled(self.nufft.forward(self._pad(x)))

    def adjoint_dcomp(self, y: tf.Tensor) -> tf.Tensor:
        """A^H D y: k-space (batch[, coils], nsamples) -> complex64 (batch, *image_shape)."""
        return self._scaled(self._crop(self.nufft.adjoint_dcomp(y)))

    def normal(self, x: tf.Tensor) -> tf.Tensor:
        """A^H D A x (Toeplitz embedding or forward + adjoint, as built)."""
        return self._scaled(self._crop(self.nufft.normal(self._pad(x))), power=2)

    def coil_images_dcomp(self, y: tf.Tensor) -> tf.Tensor:
        """Per-coil adjoint without coil maps, F^H D y_c: (batch, coils, nsamples) -> (batch, coils, *image_shape)."""
        if self.nufft.dcomp is not None:
            y = y * tf.cast(self.nufft.dcomp, tf.complex64)[:, None]
        return self._scaled(self._crop(self.nufft.coil_images(y)))


# --------------------------------------------------------------------------- base class


class NonCartesianModel(ReconstructionModel):
    """A ReconstructionModel on non-Cartesian k-space (NUFFT acquisitions), 2D or 3D.

    inputs: ``kspace`` complex64 (batch, nsamples) or (batch, coils, nsamples);
    ``traj`` float32 (batch, ndim, nsamples) or (ndim, nsamples), radians per
    pixel in [-pi, pi]; ``dcomp`` float32 (batch, nsamples) or (nsamples,)
    (required when ``dcomp=True``, ignored otherwise); ``smaps`` complex64
    (batch, coils, *image_shape) when ``multicoil``; optional ``image_shape``
    (Python ints, single-coil). Output: complex64 (batch, *image_shape).

    The image size is the coil maps' when multicoil, else ``inputs["image_shape"]``,
    else the constructor's ``image_shape``. ``check_inputs`` (run in ``__call__``,
    before anything is built or computed) raises a ValueError on missing keys,
    trajectories outside [-pi, pi] or of the wrong dimension, dcomp / smaps / kspace
    sizes that disagree, single-coil k-space for a multicoil model and vice versa,
    and NaN/Inf values (the last only in eager mode).

    ``table_oversampling``: the NUFFT kernel table resolution (``physics.NUFFT``);
    ``legacy_im_size``: reproduce the original NC-PDNet's operator exactly, i.e.
    the image zero-padded to this grid and tfkbnufft's 'ortho' scaling (see
    :class:`NetworkAcquisition`); with 1024 table points it is the original's
    ``KbNufftModule(im_size=legacy_im_size, norm='ortho')``.

    ``gridding``: ``"sparse"`` (default, cached sparse matrices) or
    ``"tfkbnufft"`` (tfkbnufft's ops), how every NUFFT and Toeplitz kernel of
    the model grids (``physics.NUFFT``); the outputs agree to ~1e-5, only the
    speed differs. Configs saved without it load with the default.
    """

    def __init__(
        self,
        multicoil: bool = False,
        ndim: int = 2,
        dcomp: bool = True,
        image_shape: Sequence[int] | None = None,
        table_oversampling: int = TABLE_OVERSAMPLING,
        legacy_im_size: Sequence[int] | None = None,
        gridding: str = "sparse",
        **kwargs,
    ):
        super().__init__(**kwargs)
        # tfkbnufft ops cannot be XLA-compiled, so compile(jit_compile="auto") must not try.
        self.supports_jit = False
        if ndim not in (2, 3):
            raise ValueError(f"ndim: expected 2 (images) or 3 (volumes), got {ndim!r}.")
        self.multicoil = bool(multicoil)
        self.ndim = int(ndim)
        self.dcomp = bool(dcomp)
        self.image_shape = None if image_shape is None else list(_as_image_shape(image_shape, ndim))
        self.table_oversampling = int(table_oversampling)
        self.gridding = check_gridding(gridding)
        self.legacy_im_size = None if legacy_im_size is None else list(
            _as_image_shape(legacy_im_size, ndim, "legacy_im_size")
        )
        self.REQUIRED_INPUTS = noncartesian_required_inputs(self.multicoil, self.dcomp)

    def check_inputs(self, inputs, image_shape=None) -> None:
        check_noncartesian_inputs(inputs, self.multicoil, self.ndim, self.dcomp, type(self).__name__)
        resolve_image_shape(inputs, self.multicoil, self.ndim, image_shape, self.image_shape, type(self).__name__)

    def __call__(self, inputs, *args, **kwargs):
        inputs, image_shape = _split_image_shape(inputs)
        if image_shape is not None:
            image_shape = _as_image_shape(image_shape, self.ndim)
        # Validate before Keras traces or builds anything, so bad input fails first and cleanly.
        self.check_inputs(inputs, image_shape)
        return super().__call__(inputs, *args, image_shape=image_shape, **kwargs)

    def build(self, input_shape=None):
        # Create the weights directly: otherwise Keras' first call would also run the whole
        # network symbolically (NUFFTs included) just to build it.
        self.build_layers()

    def build_layers(self) -> None:
        """Create every sub-layer's weights (they do not depend on the image size)."""

    def acquisition(self, inputs, image_shape=None, smaps=None, toeplitz: bool = False):
        """(kspace complex64, NetworkAcquisition) for inputs checked in ``__call__``.

        ``smaps`` overrides ``inputs["smaps"]`` (e.g. refined maps).
        """
        shape = resolve_image_shape(inputs, self.multicoil, self.ndim, image_shape, self.image_shape,
                                    type(self).__name__)
        kspace = tf.cast(tf.convert_to_tensor(inputs["kspace"]), tf.complex64)
        if self.multicoil and smaps is None:
            smaps = inputs["smaps"]
        operator = NetworkAcquisition(
            inputs["traj"],
            shape,
            smaps=smaps if self.multicoil else None,
            dcomp=inputs["dcomp"] if self.dcomp else None,
            toeplitz=toeplitz,
            legacy_im_size=self.legacy_im_size,
            table_oversampling=self.table_oversampling,
            gridding=self.gridding,
        )
        return kspace, operator

    def build_from_config(self, config) -> None:
        """Create the weights (e.g. in ``keras.saving.load_model``) by one call on zero k-space
        of the recorded input shapes; unknown sizes become 8 (16 samples)."""
        shapes = (config or {}).get("input_shape")
        if not isinstance(shapes, dict) or not all(key in shapes for key in self.REQUIRED_INPUTS):
            return
        dummy = {}
        for key in self.REQUIRED_INPUTS:
            shape = [8 if size is None else int(size) for size in shapes[key]]
            if key in ("kspace", "traj", "dcomp") and shapes[key][-1] is None:
                shape[-1] = 16
            if key == "traj":
                dummy[key] = np.zeros(shape, np.float32)
            elif key == "dcomp":
                dummy[key] = np.ones(shape, np.float32)
            elif key == "smaps":
                dummy[key] = np.ones(shape, np.complex64)
            else:
                dummy[key] = np.zeros(shape, np.complex64)
        if not self.multicoil and self.image_shape is None:
            dummy["image_shape"] = (8,) * self.ndim
        self(dummy)

    def get_config(self):
        config = super().get_config()
        config.update(
            multicoil=self.multicoil,
            ndim=self.ndim,
            dcomp=self.dcomp,
            image_shape=self.image_shape,
            table_oversampling=self.table_oversampling,
            legacy_im_size=self.legacy_im_size,
            gridding=self.gridding,
        )
        return config


def _per_example_max(x: tf.Tensor) -> tf.Tensor:
    """max |x| over every axis but the batch, shaped to broadcast against x (a zero max becomes 1)."""
    peak = tf.reduce_max(tf.abs(x), axis=list(range(1, x.shape.rank)), keepdims=True)
    return tf.cast(tf.where(peak > 0, peak, tf.ones_like(peak)), x.dtype)


# --------------------------------------------------------------------------- NC-PDNet


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class NCPDNet(NonCartesianModel):
    """NC-PDNet (Ramzi, Chaithya, Starck, Ciuciu 2022): unrolled primal-only network for non-Cartesian MRI.

    With A the NUFFT (SENSE when multicoil) and D = diag(dcomp)::

        primal = [A^H D y] * n_primal                        (n_primal copies; the original's init)
        for i in range(n_iter):
            dual   = A^H D (A primal[0] - y)                 (= A^H D A primal[0] - A^H D y)
            primal = primal + image_net_i([primal, dual])
        output = primal[0]

    ``image_net_i`` is a 3-layer CNN (:class:`~fastmri_zoo.layers.ConvStack`):
    3x3 (3x3x3 when ``ndim=3``) convolutions with ``n_filters`` channels and
    ``activation``, twice, then a linear one to 2 n_primal channels; the complex
    buffer [primal_0..primal_{n-1}, dual] enters as all real parts then all
    imaginary parts. There is no k-space network. Parameters: 156,260 with the
    defaults (2D single-coil), 163,718 with ``multicoil=True, refine_smaps=True``
    (+ a :class:`~fastmri_zoo.layers.SensitivityMapRefiner`, 7,458, applied to
    the coil maps first; 2D only), 67,608 for the paper's 3D network
    (``ndim=3, n_iter=6, n_primal=2, n_filters=16``). Layer names
    (``smaps_refiner``, ``image_net_<i>`` with ``conv_0``, ``conv_1``,
    ``output_conv``) follow the original's weight order.

    ``toeplitz=True`` (default) computes A^H D A by the Toeplitz embedding
    (one FFT pair on a 2x grid per iteration; its kernel is cached per
    trajectory in eager mode), ``False`` by forward + adjoint NUFFTs, as the
    original did; both agree to the NUFFT accuracy (~1e-3 relative).

    ``dcomp=False`` is the paper's "no density compensation" ablation: D is the
    identity and ``inputs["dcomp"]`` is not needed. The original trained that
    variant with its ``normalize_image`` option, which ``normalize_image=None``
    (default) follows: True without dcomp, False with it. When True, A^H y is
    divided by its maximum magnitude m (per example), y by m as well, every dual
    image by its own maximum magnitude, and the output is multiplied back by m.

    ``gridding``: ``"sparse"`` (default) or ``"tfkbnufft"``, for the NUFFTs
    and the Toeplitz kernel alike (see :class:`NonCartesianModel`).

    ``legacy_im_size``, ``table_oversampling``: see :class:`NonCartesianModel`;
    the authors' checkpoints ran with ``legacy_im_size=(640, 400)`` (2D) or
    ``(176, 256, 256)`` (3D), ``table_oversampling=1024`` and forward + adjoint
    (``toeplitz=False``); with those settings this class computes what their
    code computes, up to float32 round-off. Their coil-map refiner has a leaky
    ReLU after its 4-channel 1x1 head convolution:
    ``refiner_kwargs={"head_activation": True}``.
    """

    def __init__(
        self,
        n_iter: int = 10,
        n_primal: int = 5,
        n_filters: int = 32,
        activation: str = "relu",
        multicoil: bool = False,
        refine_smaps: bool = False,
        refiner_kwargs: dict | None = None,
        ndim: int = 2,
        dcomp: bool = True,
        normalize_image: bool | None = None,
        toeplitz: bool = True,
        image_shape: Sequence[int] | None = None,
        table_oversampling: int = TABLE_OVERSAMPLING,
        legacy_im_size: Sequence[int] | None = None,
        gridding: str = "sparse",
        **kwargs,
    ):
        super().__init__(
            multicoil=multicoil, ndim=ndim, dcomp=dcomp, image_shape=image_shape,
            table_oversampling=table_oversampling, legacy_im_size=legacy_im_size, gridding=gridding, **kwargs,
        )
        if n_iter < 1 or n_primal < 1 or n_filters < 1:
            raise ValueError(
                f"n_iter, n_primal, n_filters: expected positive integers, got {n_iter}, {n_primal}, {n_filters}."
            )
        if refine_smaps and not multicoil:
            raise ValueError("refine_smaps: coil-map refinement needs multicoil=True, got multicoil=False.")
        if refine_smaps and ndim != 2:
            raise ValueError(f"refine_smaps: the coil-map refiner is 2D only, got ndim={ndim}.")
        self.n_iter = n_iter
        self.n_primal = n_primal
        self.n_filters = n_filters
        self.activation = activation
        self.refine_smaps = refine_smaps
        self.refiner_kwargs = refiner_kwargs
        self.normalize_image = normalize_image
        self.toeplitz = bool(toeplitz)
        if refine_smaps:
            self.smaps_refiner = SensitivityMapRefiner(**(refiner_kwargs or {}), name="smaps_refiner")
        self.image_nets = [
            ConvStack(
                n_outputs=2 * n_primal, n_convs=2, n_filters=n_filters, activation=activation, ndim=ndim,
                name=f"image_net_{i}",
            )
            for i in range(n_iter)
        ]

    def build_layers(self) -> None:
        for image_net in self.image_nets:
            image_net.build((None,) * (self.ndim + 1) + (2 * (self.n_primal + 1),))
        if self.refine_smaps:
            self.smaps_refiner(tf.zeros((1, 1, 8, 8), tf.complex64))

    @property
    def normalizes_image(self) -> bool:
        """Whether the adjoint is normalised by its maximum (see the class docstring)."""
        return (not self.dcomp) if self.normalize_image is None else bool(self.normalize_image)

    def call(self, inputs, training=None, image_shape=None):
        smaps = self.smaps_refiner(inputs["smaps"]) if self.refine_smaps else None
        kspace, operator = self.acquisition(inputs, image_shape, smaps=smaps, toeplitz=self.toeplitz)
        adjoint = operator.adjoint_dcomp(kspace)
        if self.normalizes_image:
            peak = _per_example_max(adjoint)
            adjoint = adjoint / peak
            kspace = kspace / tf.reshape(peak, [-1] + [1] * (kspace.shape.rank - 1))
        primal = tf.stack([adjoint] * self.n_primal, axis=-1)
        for image_net in self.image_nets:
            if self.toeplitz:
                dual = operator.normal(primal[..., 0]) - adjoint
            else:
                dual = operator.adjoint_dcomp(operator.forward(primal[..., 0]) - kspace)
            if self.normalizes_image:
                dual = dual / _per_example_max(dual)
            stacked = tf.concat([primal, dual[..., None]], axis=-1)
            primal = primal + channels_to_complex(image_net(complex_to_channels(stacked), training=training))
        output = primal[..., 0]
        if self.normalizes_image:
            output = output * peak
        return output

    def get_config(self):
        config = super().get_config()
        config.update(
            n_iter=self.n_iter,
            n_primal=self.n_primal,
            n_filters=self.n_filters,
            activation=self.activation,
            refine_smaps=self.refine_smaps,
            refiner_kwargs=_plain(self.refiner_kwargs),
            normalize_image=self.normalize_image,
            toeplitz=self.toeplitz,
        )
        return config


# --------------------------------------------------------------------------- baselines


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class UNetAdjDcomp(NonCartesianModel):
    """U-net on the density-compensated adjoint A^H D y (the NC-PDNet paper's U-net baseline).

    ``input_mode="complex"`` (default, as the authors' non-Cartesian U-net):
    real and imaginary parts of A^H D y as 2 channels in and out;
    ``"magnitude"``: |A^H D y| in, a real image out (returned with zero
    imaginary part). ``residual=True`` (default, as the authors') adds the
    network input to its output. ``ndim=3`` uses the 3D U-net
    (:class:`~fastmri_zoo.layers.UNetBlock` with ``ndim=3``; the authors used
    a V-net there). No normalisation inside: the data pipelines already divide
    k-space by the maximum of |A^H D y| (``scale``). Multicoil: A^H D y
    combines the coils with the (unrefined) coil maps. The remaining arguments
    are :class:`~fastmri_zoo.layers.UNetBlock`'s; inputs as for
    :class:`NonCartesianModel`.
    """

    def __init__(
        self,
        layers_n_channels: Sequence[int] = (16, 32, 64, 128),
        layers_n_non_lins: int = 2,
        input_mode: str = "complex",
        activation: str = "relu",
        residual: bool = True,
        head_channels: int | None = 4,
        multicoil: bool = False,
        ndim: int = 2,
        dcomp: bool = True,
        image_shape: Sequence[int] | None = None,
        table_oversampling: int = TABLE_OVERSAMPLING,
        legacy_im_size: Sequence[int] | None = None,
        gridding: str = "sparse",
        **kwargs,
    ):
        super().__init__(
            multicoil=multicoil, ndim=ndim, dcomp=dcomp, image_shape=image_shape,
            table_oversampling=table_oversampling, legacy_im_size=legacy_im_size, gridding=gridding, **kwargs,
        )
        if input_mode not in ("magnitude", "complex"):
            raise ValueError(f"input_mode: expected 'magnitude' or 'complex', got {input_mode!r}.")
        self.layers_n_channels = [int(c) for c in layers_n_channels]
        self.layers_n_non_lins = layers_n_non_lins
        self.input_mode = input_mode
        self.activation = activation
        self.residual = residual
        self.head_channels = head_channels
        self.image_net = UNetBlock(
            n_outputs=1 if input_mode == "magnitude" else 2,
            layers_n_channels=self.layers_n_channels,
            layers_n_non_lins=layers_n_non_lins,
            activation=activation,
            head_channels=head_channels,
            ndim=ndim,
            name="image_net",
        )

    def build_layers(self) -> None:
        self.image_net.build((None,) * (self.ndim + 1) + (1 if self.input_mode == "magnitude" else 2,))

    def call(self, inputs, training=None, image_shape=None):
        kspace, operator = self.acquisition(inputs, image_shape)
        adjoint = operator.adjoint_dcomp(kspace)
        if self.input_mode == "magnitude":
            x = tf.abs(adjoint)[..., None]
            out = self.image_net(x, training=training)
            out = (out + x if self.residual else out)[..., 0]
            return tf.complex(out, tf.zeros_like(out))
        return complex_unet(self.image_net, adjoint, self.residual, training)

    def get_config(self):
        config = super().get_config()
        config.update(
            layers_n_channels=list(self.layers_n_channels),
            layers_n_non_lins=self.layers_n_non_lins,
            input_mode=self.input_mode,
            activation=self.activation,
            residual=self.residual,
            head_channels=self.head_channels,
        )
        return config


def sampled_cells(traj: tf.Tensor, image_shape: Sequence[int]) -> tf.Tensor:
    """float32 (batch, *image_shape) mask of the Cartesian cells holding at least one sample.

    Nearest-neighbour gridding of ones: k (radians per pixel) falls in cell
    round(k N / (2 pi)) + N // 2 (modulo N, as k = pi and -pi are the same
    frequency) along each axis. traj: float32 (batch, ndim, nsamples).
    """
    sizes = tf.constant([int(n) for n in image_shape], tf.float32)
    cells = tf.cast(tf.round(traj * sizes[None, :, None] / (2 * math.pi)), tf.int32)
    cells = tf.math.floormod(cells + tf.cast(sizes // 2, tf.int32)[None, :, None], tf.cast(sizes, tf.int32)[None, :, None])
    batch = tf.shape(traj)[0]
    nsamples = tf.shape(traj)[2]
    batch_index = tf.broadcast_to(tf.range(batch)[:, None], [batch, nsamples])
    indices = tf.concat([batch_index[..., None], tf.transpose(cells, [0, 2, 1])], axis=-1)
    counts = tf.scatter_nd(
        tf.reshape(indices, [-1, len(image_shape) + 1]),
        tf.ones([batch * nsamples], tf.float32),
        tf.concat([[batch], [int(n) for n in image_shape]], axis=0),
    )
    return tf.cast(counts > 0, tf.float32)


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class GriddedPDNet(XPDNet):
    """The NC-PDNet ablation "PDNet with gridded k-space and FFT".

    The non-Cartesian k-space is gridded onto the Cartesian grid: each coil's
    density-compensated adjoint NUFFT F^H D y_c, then ``fftc``; the cells that
    hold at least one trajectory sample (nearest-neighbour gridding of ones,
    :func:`sampled_cells`) form the Cartesian ``mask``, and the gridded k-space
    is kept on them only. The Cartesian machinery of :class:`XPDNet` then runs
    on (gridded k-space, mask) with the same unrolled network as
    :class:`NCPDNet` (primal only, ``n_primal`` copies of the zero-filled image
    to start, 3-layer CNNs of ``n_filters``), A being the masked FFT (SENSE
    when multicoil), so only the operator differs: 156,260 parameters with the
    defaults. ``ndim=3`` for volumes. No coil-map refiner.

    inputs and image size: as for :class:`NonCartesianModel` (``dcomp`` needed
    when ``dcomp=True``); output complex64 (batch, *image_shape).
    ``gridding``, ``table_oversampling``: the NUFFT's (:class:`NonCartesianModel`).
    """

    def __init__(
        self,
        n_iter: int = 10,
        n_primal: int = 5,
        n_filters: int = 32,
        activation: str = "relu",
        multicoil: bool = False,
        ndim: int = 2,
        dcomp: bool = True,
        image_shape: Sequence[int] | None = None,
        table_oversampling: int = TABLE_OVERSAMPLING,
        gridding: str = "sparse",
        **kwargs,
    ):
        if ndim not in (2, 3):
            raise ValueError(f"ndim: expected 2 (images) or 3 (volumes), got {ndim!r}.")
        if kwargs.get("refine_smaps"):
            raise ValueError("refine_smaps: GriddedPDNet has no coil-map refiner, got refine_smaps=True.")
        cnn = dict(n_convs=2, n_filters=n_filters, activation=activation, ndim=ndim)
        super().__init__(
            denoiser="cnn",
            denoiser_kwargs=cnn,
            n_primal=n_primal,
            n_dual=1,
            n_iter=n_iter,
            primal_only=True,
            multicoil=multicoil,
            primal_init="adjoint",
            evaluated_primal=0,
            **kwargs,
        )
        self.supports_jit = False  # NUFFT gridding (either method) is not XLA-compilable
        self.n_filters = n_filters
        self.activation = activation
        self.ndim = int(ndim)
        self.dcomp = bool(dcomp)
        self.image_shape = None if image_shape is None else list(_as_image_shape(image_shape, ndim))
        self.table_oversampling = int(table_oversampling)
        self.gridding = check_gridding(gridding)
        self.REQUIRED_INPUTS = noncartesian_required_inputs(self.multicoil, self.dcomp)

    # The non-Cartesian calling convention, on top of XPDNet's Cartesian loop.
    check_inputs = NonCartesianModel.check_inputs
    build_from_config = NonCartesianModel.build_from_config
    build = NonCartesianModel.build

    def build_layers(self) -> None:
        for image_net in self.image_nets:
            image_net.build((None,) * (self.ndim + 1) + (2 * (self.n_primal + 1),))

    def __call__(self, inputs, *args, **kwargs):
        inputs, image_shape = _split_image_shape(inputs)
        if image_shape is not None:
            image_shape = _as_image_shape(image_shape, self.ndim)
        self.check_inputs(inputs, image_shape)
        # Skip CartesianModel.__call__ (its Cartesian checks); Keras' own __call__ runs the model.
        return keras.Model.__call__(self, inputs, *args, image_shape=image_shape, **kwargs)

    def call(self, inputs, training=None, image_shape=None):
        return super().call(dict(inputs, image_shape=image_shape), training=training)

    def operator(self, inputs):
        """(gridded k-space complex64, CartesianSingleCoil or SENSE on the sampled cells)."""
        shape = resolve_image_shape(inputs, self.multicoil, self.ndim, inputs.get("image_shape"), self.image_shape,
                                    type(self).__name__)
        kspace = tf.cast(tf.convert_to_tensor(inputs["kspace"]), tf.complex64)
        operator = NetworkAcquisition(
            inputs["traj"], shape, dcomp=inputs["dcomp"] if self.dcomp else None, toeplitz=False,
            table_oversampling=self.table_oversampling, gridding=self.gridding,
        )
        coil_kspace = kspace if self.multicoil else kspace[:, None]
        coil_images = operator.coil_images_dcomp(coil_kspace)
        mask = sampled_cells(operator.nufft.traj, shape)
        gridded = fftc(coil_images, self.ndim) * tf.cast(mask[:, None], tf.complex64)
        if self.multicoil:
            return gridded, SENSE(mask, inputs["smaps"], ndim=self.ndim)
        return gridded[:, 0], CartesianSingleCoil(mask, ndim=self.ndim)

    def get_config(self):
        config = keras.Model.get_config(self)
        config.update(
            n_iter=self.n_iter,
            n_primal=self.n_primal,
            n_filters=self.n_filters,
            activation=self.activation,
            multicoil=self.multicoil,
            ndim=self.ndim,
            dcomp=self.dcomp,
            image_shape=self.image_shape,
            table_oversampling=self.table_oversampling,
            gridding=self.gridding,
        )
        return config
