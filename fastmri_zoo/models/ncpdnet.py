"""Non-Cartesian networks: NC-PDNet (Ramzi et al. 2022) and the baselines of its ablation.

All take the non-Cartesian calling convention (see :class:`NonCartesianModel`):
``inputs = {"kspace", "traj", "dcomp", "smaps" (multicoil)}`` and return the
complex64 image (batch, *image_shape).

- :class:`NCPDNet`: XPDNet (primal only) on the non-Cartesian acquisition
  (``physics.DensityWeightedNUFFT``), in 2D and 3D.
- :class:`UNetAdjDcomp`: a U-net on the density-compensated adjoint.
- :class:`GriddedPDNet`: the same unrolled network on k-space gridded onto the
  Cartesian grid (the ``"gridded"`` acquisition), with FFTs instead of NUFFTs.

Every model takes ``gridding="sparse"`` (default) or ``"tfkbnufft"``: how the
NUFFT's interpolation / spreading runs (``physics.NUFFT``; the same Kaiser-Bessel
coefficients, outputs equal to ~1e-5). Neither is XLA-compilable: the models set
``supports_jit = False`` and must not be ``jit_compile`` d.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from ..layers import UNetBlock, complex_denoise
from ..physics.acquisition import TOEPLITZ_KERNEL
from ..physics.nufft import TABLE_OVERSAMPLING
from ..utils import plain
from .base import ReconstructionModel
from .pdnet import XPDNet
from .unrolled import UnrolledModel

__all__ = ["NonCartesianModel", "NCPDNet", "UNetAdjDcomp", "GriddedPDNet"]


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
    :class:`~fastmri_zoo.physics.DensityWeightedNUFFT`); with 1024 table points it is the original's
    ``KbNufftModule(im_size=legacy_im_size, norm='ortho')``.

    ``gridding``: ``"sparse"`` (default, cached sparse matrices) or
    ``"tfkbnufft"`` (tfkbnufft's ops), how every NUFFT and Toeplitz kernel of
    the model grids (``physics.NUFFT``); the outputs agree to ~1e-5, only the
    speed differs. Configs saved without it load with the default.

    These options make the model's acquisition (``ACQUISITION``: ``"noncartesian"``,
    the density-weighted NUFFT B = D^{1/2} A whose measurements are sqrt(dcomp) y, or
    ``"gridded"``), which validates the inputs and builds the operator of each call.
    """

    ACQUISITION = "noncartesian"
    ACQUISITION_OPTIONS = ("dcomp", "image_shape", "table_oversampling", "legacy_im_size", "gridding", "toeplitz")

    def __init__(self, multicoil: bool = False, ndim: int = 2, **kwargs):
        # The acquisition's options go to make_acquisition; one the kind does not take is a ValueError there.
        options = {key: kwargs.pop(key) for key in self.ACQUISITION_OPTIONS if key in kwargs}
        super().__init__(multicoil=multicoil, ndim=ndim, acquisition_options=options, **kwargs)
        # The NUFFT's gridding (either method) cannot be XLA-compiled, so compile(jit_compile="auto") must not try.
        self.supports_jit = False

    # The acquisition's options, read where the models and their users expect them.
    dcomp = property(lambda self: self.acquisition.dcomp)
    table_oversampling = property(lambda self: self.acquisition.table_oversampling)
    gridding = property(lambda self: self.acquisition.gridding)
    toeplitz = property(lambda self: getattr(self.acquisition, "toeplitz", False))
    image_shape = property(lambda self: plain(self.acquisition.options()["image_shape"]))
    legacy_im_size = property(lambda self: self.acquisition.options().get("legacy_im_size"))

    def get_config(self):
        config = super().get_config()
        options = self.acquisition.options()
        config.update(multicoil=self.multicoil, ndim=self.ndim)
        config.update({key: options[key] for key in ("dcomp", "image_shape", "table_oversampling", "legacy_im_size",
                                                     "gridding") if key in options})
        return config


def _per_example_max(x: tf.Tensor) -> tf.Tensor:
    """max |x| over every axis but the batch, shaped to broadcast against x (a zero max becomes 1)."""
    peak = tf.reduce_max(tf.abs(x), axis=list(range(1, x.shape.rank)), keepdims=True)
    return tf.cast(tf.where(peak > 0, peak, tf.ones_like(peak)), x.dtype)


# --------------------------------------------------------------------------- NC-PDNet


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class NCPDNet(XPDNet, NonCartesianModel):
    """NC-PDNet (Ramzi, Chaithya, Starck, Ciuciu 2022): unrolled primal-only network for non-Cartesian MRI.

    :class:`~fastmri_zoo.models.pdnet.XPDNet` (primal only, a 3-layer CNN
    denoiser) on the non-Cartesian acquisition. With A the NUFFT (SENSE when
    multicoil), D = diag(dcomp) and B = D^{1/2} A the acquisition's operator
    (measurements b = D^{1/2} y)::

        primal = [A^H D y] * n_primal                        (= B^H b; n_primal copies, the original's init)
        for i in range(n_iter):
            dual   = A^H D (A primal[0] - y)                 (= B^H (B primal[0] - b), the data step)
            primal = primal + image_net_i([primal, dual])    (the prior)
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


    ACQUISITION = "noncartesian"

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
        if n_iter < 1 or n_primal < 1 or n_filters < 1:
            raise ValueError(
                f"n_iter, n_primal, n_filters: expected positive integers, got {n_iter}, {n_primal}, {n_filters}."
            )
        super().__init__(
            denoiser="cnn",
            denoiser_kwargs=dict(n_convs=2, n_filters=n_filters, activation=activation, ndim=ndim),
            n_primal=n_primal,
            n_iter=n_iter,
            multicoil=multicoil,
            refine_smaps=refine_smaps,
            refiner_kwargs=refiner_kwargs,
            ndim=ndim,
            dcomp=dcomp,
            image_shape=image_shape,
            table_oversampling=table_oversampling,
            legacy_im_size=legacy_im_size,
            gridding=gridding,
            toeplitz=toeplitz,
            **kwargs,
        )
        self.n_filters = n_filters
        self.activation = activation
        self.normalize_image = normalize_image

    @classmethod
    def small_config(cls) -> dict:
        return dict(n_iter=2, n_primal=2, n_filters=4, image_shape=(16, 16))

    @property
    def normalizes_image(self) -> bool:
        """Whether the adjoint is normalised by its maximum (see the class docstring)."""
        return (not self.dcomp) if self.normalize_image is None else bool(self.normalize_image)

    @property
    def normal_gradient(self) -> bool:
        return self.toeplitz

    def call(self, inputs, training=None, image_shape=None):
        """The unrolled network (``UnrolledModel.call``). Called eagerly for inference with the Toeplitz
        embedding, the kernel is taken from its per-trajectory cache (``TOEPLITZ_KERNELS``, built at the
        first slice of a trajectory) and the network runs as one traced graph fed with it (the sparse
        gridding of A^H D y is then built in that graph, ~20 ms in 2D): op by op, the eager loop took 1.38x
        its time (256 x 256, 8 coils, refiner, one thread: 1.33 s against 0.96 s; a dispatch per operation)."""
        if not (tf.executing_eagerly() and self.toeplitz and not training):
            return super().call(inputs, training=training, image_shape=image_shape)
        _, operator = self.operator(inputs, image_shape)
        if self.__dict__.get("_traced_inference") is None:
            unrolled = super().call

            def inference(inputs, image_shape):
                return unrolled(inputs, training=False, image_shape=image_shape)

            # A cache of this Python object only: set past Keras' attribute tracking, and in a tuple so that
            # tf.saved_model's search of attributes for tf.functions does not export it with the model.
            traced = tf.function(inference, reduce_retracing=True, autograph=False)
            object.__setattr__(self, "_traced_inference", (traced,))
        (traced,) = self._traced_inference
        return traced(dict(inputs, **{TOEPLITZ_KERNEL: operator.toeplitz.kernel}), image_shape)

    def initial_state(self, measurements, operator, training=None) -> dict:
        state = super().initial_state(measurements, operator, training=training)
        if not self.normalizes_image:
            return state
        peak = _per_example_max(state["adjoint"])
        adjoint = state["adjoint"] / peak
        measurements = measurements / tf.reshape(peak, [-1] + [1] * (measurements.shape.rank - 1))
        primal = tf.stack([adjoint] * self.n_primal, axis=-1)
        return dict(state, primal=primal, adjoint=adjoint, measurements=measurements, peak=peak)

    def data_step(self, i, state, measurements, operator, training=None) -> dict:
        state = super().data_step(i, state, measurements, operator, training=training)
        if self.normalizes_image:
            state["gradient"] = state["gradient"] / _per_example_max(state["gradient"])
        return state

    def output(self, state, measurements, operator):
        output = super().output(state, measurements, operator)
        return output * state["peak"] if self.normalizes_image else output

    def get_config(self):
        config = UnrolledModel.get_config(self)
        config.update(
            n_primal=self.n_primal,
            n_filters=self.n_filters,
            activation=self.activation,
            refine_smaps=self.refine_smaps,
            refiner_kwargs=plain(self.refiner_kwargs),
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

    @classmethod
    def small_config(cls) -> dict:
        return dict(layers_n_channels=[4, 8], image_shape=(16, 16))

    def build_layers(self) -> None:
        self.image_net.build((None,) * (self.ndim + 1) + (1 if self.input_mode == "magnitude" else 2,))

    def call(self, inputs, training=None, image_shape=None):
        measurements, operator = self.operator(inputs, image_shape)
        return complex_denoise(
            self.image_net, operator.adjoint(measurements), mode=self.input_mode, residual=self.residual,
            training=training,
        )

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


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class GriddedPDNet(XPDNet, NonCartesianModel):
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


    ACQUISITION = "gridded"

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
        if kwargs.get("refine_smaps"):
            raise ValueError("refine_smaps: GriddedPDNet has no coil-map refiner, got refine_smaps=True.")
        super().__init__(
            denoiser="cnn",
            denoiser_kwargs=dict(n_convs=2, n_filters=n_filters, activation=activation, ndim=ndim),
            n_primal=n_primal,
            n_iter=n_iter,
            multicoil=multicoil,
            ndim=ndim,
            dcomp=dcomp,
            image_shape=image_shape,
            table_oversampling=table_oversampling,
            gridding=gridding,
            **kwargs,
        )
        self.n_filters = n_filters
        self.activation = activation

    @classmethod
    def small_config(cls) -> dict:
        return dict(n_iter=2, n_primal=2, n_filters=4, image_shape=(16, 16))

    def get_config(self):
        config = UnrolledModel.get_config(self)
        config.pop("legacy_im_size", None)
        config.update(n_primal=self.n_primal, n_filters=self.n_filters, activation=self.activation)
        return config
