"""Learned primal-dual networks: PDNet (Adler & Oktem 2018) and XPDNet (Ramzi et al. 2020).

One unrolled loop, written once (:class:`XPDNet`); :class:`PDNet` is its
configuration with small CNNs in both the image (primal) and k-space (dual)
domains.
"""

from __future__ import annotations

import copy

import keras
import tensorflow as tf

from ..layers import (
    MWCNN,
    ConvStack,
    DnCNN,
    LearnletStep,
    SensitivityMapRefiner,
    UNetBlock,
    channels_to_complex,
    complex_denoise,
    complex_to_channels,
    data_gradient,
)
from ..utils import plain
from .unrolled import UnrolledModel

__all__ = ["XPDNet", "PDNet", "DENOISERS"]

#: Image denoisers XPDNet builds by name; each gets ``n_outputs = 2 * n_primal``.
DENOISERS = {
    "cnn": (ConvStack, dict(n_convs=2, n_filters=32)),
    "unet": (UNetBlock, dict(layers_n_channels=[16, 32, 64, 128], head_channels=None, head_activation=True)),
    "dncnn": (DnCNN, dict(n_convs=16, n_filters=64)),
    # The authors' XPDNet "medium" MWCNN (their XPDNet-brain checkpoints); see MWCNN.
    "mwcnn": (MWCNN, dict()),
    # An ISTA step of each primal buffer with a learnlet (soft thresholds at a learned noise level); see LearnletStep.
    "learnlet": (LearnletStep, dict()),
}


def _denoiser_config(denoiser, denoiser_kwargs, n_outputs):
    """A serialised Keras layer config (JSON-friendly) for the image denoiser."""
    if isinstance(denoiser, keras.layers.Layer):
        return keras.saving.serialize_keras_object(denoiser)
    if isinstance(denoiser, dict):
        if "class_name" not in denoiser or "config" not in denoiser:
            raise ValueError(
                "denoiser: a dict must be a serialised Keras layer with keys 'class_name' and 'config' "
                f"(keras.saving.serialize_keras_object(layer)), got keys {sorted(denoiser)}."
            )
        return plain(denoiser)
    if denoiser not in DENOISERS:
        raise ValueError(
            f"denoiser: expected one of {sorted(DENOISERS)}, a Keras layer or its serialised config, got {denoiser!r}."
        )
    cls, defaults = DENOISERS[denoiser]
    kwargs = dict(defaults)
    if denoiser == "unet":
        kwargs["head_channels"] = n_outputs
    kwargs.update(denoiser_kwargs or {})
    kwargs["n_outputs"] = n_outputs
    return keras.saving.serialize_keras_object(cls(**kwargs))


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class XPDNet(UnrolledModel):
    """Unrolled primal-dual network with any image denoiser, on any acquisition.

    Buffers: ``n_primal`` complex images (primal) and ``n_dual`` complex
    measurement buffers (dual, initialised to 0). The primal buffer starts as
    ``n_primal`` copies of A^H y (``primal_init="adjoint"``, the authors' XPDNet)
    or as zeros (``"zeros"``, their PDNet). With e = ``evaluated_primal`` (0 in
    XPDNet, 1 in PDNet), each of ``n_iter`` iterations is a data step and a prior::

        data:   g = A^H (A primal[e] - y)                        (primal_only: no weights)
                or dual = dual + kspace_net_i([dual, A primal[e], y]), g = A^H dual[0]
        prior:  primal = primal + image_net_i([primal, g])

    and the output is primal[0]. ``image_net_i`` is a fresh copy of
    ``denoiser``: a name from :data:`DENOISERS` (``"unet"`` gives the UPDNet,
    ``"dncnn"``, ``"mwcnn"``, ``"cnn"``, ``"learnlet"``: a learned ISTA step with a
    learnlet, :class:`~fastmri_zoo.layers.LearnletStep`) with ``denoiser_kwargs``, or a Keras layer / its
    serialised config taking 2 (n_primal + 1) channels and returning 2 n_primal.
    ``kspace_net_i`` (not with ``primal_only``) is a :class:`ConvStack` with
    ``kspace_net_kwargs``. Multicoil: A = SENSE; with ``refine_smaps`` the coil
    maps first go through a :class:`SensitivityMapRefiner` (``refiner_kwargs``).

    A is the model's acquisition (``ACQUISITION``, Cartesian here;
    :class:`~fastmri_zoo.models.ncpdnet.NCPDNet` and
    :class:`~fastmri_zoo.models.ncpdnet.GriddedPDNet` are this network on the
    non-Cartesian and the gridded acquisitions).

    inputs: ``kspace`` complex64 (batch, H, W) or (batch, coils, H, W), ``mask``,
    ``smaps`` when multicoil; output: complex64 (batch, H, W).
    """

    def __init__(
        self,
        denoiser="unet",
        denoiser_kwargs: dict | None = None,
        n_primal: int = 5,
        n_dual: int = 1,
        n_iter: int = 10,
        primal_only: bool = True,
        kspace_net_kwargs: dict | None = None,
        multicoil: bool = False,
        refine_smaps: bool = False,
        refiner_kwargs: dict | None = None,
        primal_init: str = "adjoint",
        evaluated_primal: int = 0,
        **kwargs,
    ):
        if n_primal < 1 or n_dual < 1 or n_iter < 1:
            raise ValueError(
                f"n_primal, n_dual, n_iter: expected positive integers, got {n_primal}, {n_dual}, {n_iter}."
            )
        super().__init__(n_iter=n_iter, multicoil=multicoil, **kwargs)
        if primal_init not in ("adjoint", "zeros"):
            raise ValueError(f"primal_init: expected 'adjoint' or 'zeros', got {primal_init!r}.")
        if not 0 <= evaluated_primal < n_primal:
            raise ValueError(
                f"evaluated_primal: expected an index in [0, {n_primal - 1}] (n_primal={n_primal}), got {evaluated_primal}."
            )
        if refine_smaps and not multicoil:
            raise ValueError("refine_smaps: coil-map refinement needs multicoil=True, got multicoil=False.")
        if refine_smaps and self.ndim != 2:
            raise ValueError(f"refine_smaps: the coil-map refiner is 2D only, got ndim={self.ndim}.")
        denoiser_config = _denoiser_config(denoiser, denoiser_kwargs, 2 * n_primal)
        # A name stays a name in the config; a layer is stored serialised.
        self.denoiser = denoiser if isinstance(denoiser, str) else denoiser_config
        self.denoiser_kwargs = denoiser_kwargs
        self.n_primal = n_primal
        self.n_dual = n_dual
        self.primal_only = primal_only
        self.kspace_net_kwargs = kspace_net_kwargs
        self.refine_smaps = refine_smaps
        self.refiner_kwargs = refiner_kwargs
        self.primal_init = primal_init
        self.evaluated_primal = evaluated_primal
        if refine_smaps:
            self.smaps_refiner = SensitivityMapRefiner(**(refiner_kwargs or {}), name="smaps_refiner")
        self.image_nets = []
        for i in range(n_iter):
            config = copy.deepcopy(denoiser_config)
            config["config"]["name"] = f"image_net_{i}"
            self.image_nets.append(keras.saving.deserialize_keras_object(config))
        self.kspace_nets = []
        if not primal_only:
            cnn_kwargs = dict(n_convs=2, n_filters=32, activation="relu")
            cnn_kwargs.update(kspace_net_kwargs or {})
            self.kspace_nets = [
                ConvStack(n_outputs=2 * n_dual, name=f"kspace_net_{i}", **cnn_kwargs) for i in range(n_iter)
            ]

    @classmethod
    def small_config(cls) -> dict:
        return dict(denoiser="unet", denoiser_kwargs=dict(layers_n_channels=[4, 8]), n_iter=2)

    def build_layers(self) -> None:
        spatial = (None,) * (self.ndim + 1)
        for image_net in self.image_nets:
            image_net.build(spatial + (2 * (self.n_primal + 1),))
        for kspace_net in self.kspace_nets:
            kspace_net.build(spatial + (2 * (self.n_dual + 2),))
        if self.refine_smaps:
            self.smaps_refiner.build(None)

    @property
    def normal_gradient(self) -> bool:
        """Whether the primal-only data step computes A^H A x - A^H y with the operator's ``normal``."""
        return False

    def measurements_and_operator(self, inputs, image_shape=None, training=None):
        smaps = self.smaps_refiner(inputs["smaps"]) if self.refine_smaps else None
        return self.operator(inputs, image_shape, smaps=smaps)

    def initial_state(self, measurements, operator, training=None) -> dict:
        """Buffers: ``primal`` (batch, *spatial, n_primal), ``dual`` (measurement shape + (n_dual,)),
        and the ``measurements`` and their ``adjoint`` A^H y the data steps use."""
        adjoint = operator.adjoint(measurements)
        primal = tf.stack([adjoint] * self.n_primal, axis=-1)
        if self.primal_init == "zeros":
            primal = tf.zeros_like(primal)
        dual = tf.zeros(tf.concat([tf.shape(measurements), [self.n_dual]], axis=0), tf.complex64)
        return dict(primal=primal, dual=dual, measurements=measurements, adjoint=adjoint)

    def _kspace_update(self, i, dual, evaluation, kspace, training):
        """dual (..., n_dual), evaluation and kspace (...): k-space network on each coil."""
        stacked = tf.concat([dual, evaluation[..., None], kspace[..., None]], axis=-1)
        shape = tf.shape(stacked)
        if self.multicoil:
            stacked = tf.reshape(stacked, tf.concat([[-1], shape[2:]], axis=0))
        update = channels_to_complex(self.kspace_nets[i](complex_to_channels(stacked), training=training))
        if self.multicoil:
            update = tf.reshape(update, tf.concat([shape[:-1], [self.n_dual]], axis=0))
        return dual + update

    def data_step(self, i, state, measurements, operator, training=None) -> dict:
        measurements = state["measurements"]
        evaluated = state["primal"][..., self.evaluated_primal]
        dual = state["dual"]
        if self.primal_only:
            adjoint = state["adjoint"] if self.normal_gradient else None
            gradient = data_gradient(operator, evaluated, measurements, adjoint)
        else:
            dual = self._kspace_update(i, dual, operator.forward(evaluated), measurements, training)
            gradient = operator.adjoint(dual[..., 0])
        return dict(state, dual=dual, gradient=gradient)

    def prior_step(self, i, state, training=None) -> dict:
        stacked = tf.concat([state["primal"], state["gradient"][..., None]], axis=-1)
        primal = complex_denoise(self.image_nets[i], stacked, channels=True, residual=True, training=training)
        return dict(state, primal=primal)

    def output(self, state, measurements, operator):
        return state["primal"][..., 0]

    def get_config(self):
        config = super().get_config()
        config.update(
            denoiser=plain(self.denoiser),
            denoiser_kwargs=plain(self.denoiser_kwargs),
            n_primal=self.n_primal,
            n_dual=self.n_dual,
            primal_only=self.primal_only,
            kspace_net_kwargs=plain(self.kspace_net_kwargs),
            multicoil=self.multicoil,
            refine_smaps=self.refine_smaps,
            refiner_kwargs=plain(self.refiner_kwargs),
            primal_init=self.primal_init,
            evaluated_primal=self.evaluated_primal,
        )
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class PDNet(XPDNet):
    """Learned primal-dual (Adler & Oktem 2018) as benchmarked in the thesis.

    Image and k-space networks are both 3-layer CNNs (``n_convs=2`` hidden
    convolutions of ``n_filters`` channels with ``activation``, then a linear
    one); buffers of ``n_primal`` and ``n_dual``. Defaults (5, 5, 10 iterations,
    32 filters) give 318,280 parameters. See :class:`XPDNet` for the loop and inputs.
    """

    def __init__(
        self,
        n_primal: int = 5,
        n_dual: int = 5,
        n_iter: int = 10,
        n_filters: int = 32,
        n_convs: int = 2,
        activation: str = "relu",
        primal_only: bool = False,
        multicoil: bool = False,
        **kwargs,
    ):
        cnn = dict(n_convs=n_convs, n_filters=n_filters, activation=activation)
        super().__init__(
            denoiser="cnn",
            denoiser_kwargs=cnn,
            n_primal=n_primal,
            n_dual=n_dual,
            n_iter=n_iter,
            primal_only=primal_only,
            kspace_net_kwargs=cnn,
            multicoil=multicoil,
            primal_init="zeros",
            evaluated_primal=min(1, n_primal - 1),
            **kwargs,
        )
        self.n_filters = n_filters
        self.n_convs = n_convs
        self.activation = activation

    @classmethod
    def small_config(cls) -> dict:
        return dict(n_iter=2, n_filters=8)

    def get_config(self):
        config = UnrolledModel.get_config(self)
        config.update(
            n_primal=self.n_primal,
            n_dual=self.n_dual,
            n_filters=self.n_filters,
            n_convs=self.n_convs,
            activation=self.activation,
            primal_only=self.primal_only,
            multicoil=self.multicoil,
        )
        return config
