"""The base classes of the zoo's models: ``ZooModel`` (every model: its task, reconstruction, denoising or
prior, and its presets) and ``ReconstructionModel``, which every reconstruction network derives from.

Calling convention of the reconstruction networks (shared by Cartesian, non-Cartesian, single- and multicoil
models): ``model(inputs)`` where ``inputs`` is a dict

- ``kspace``: complex64, (batch, H, W) / (batch, coils, H, W) Cartesian,
  (batch, nsamples) / (batch, coils, nsamples) non-Cartesian
- ``mask``: float32 broadcastable to (batch, H, W) (Cartesian only)
- ``smaps``: complex64 (batch, coils, *spatial) (multicoil only)
- ``traj``: float32 (batch, ndim, nsamples), ``dcomp``: float32 (batch, nsamples)
  (non-Cartesian only); optional ``image_shape`` (Python ints, single-coil
  non-Cartesian)

and the output is the complex64 image (batch, *spatial). ``magnitude`` gives
the (cropped) magnitude that fastMRI evaluates.

A model owns its acquisition (``self.acquisition``, from
``physics.acquisition.make_acquisition``): the acquisition validates the
inputs (in ``__call__``, before Keras builds or traces anything), builds the
measurement operator of each call and the dummy inputs of
``build_from_config``. Weights are created directly in ``build`` (by
``build_layers``), without a forward pass.
"""

from __future__ import annotations

from typing import ClassVar

import keras
import tensorflow as tf

from .. import presets as preset_io  # (registry helper) presets owned by the class: .presets, .from_preset
from .. import registry
from ..layers.learnlets import NormalisationUpdate, learnlets_of
from ..physics.acquisition import as_image_shape, make_acquisition, split_image_shape
from ..utils import center_crop

__all__ = ["TASKS", "ZooModel", "ReconstructionModel", "crop_center", "magnitude"]


#: fastMRI's centre crop of the last axes (one implementation, in ``fastmri_zoo.utils``).
crop_center = center_crop


def magnitude(image: tf.Tensor, crop: tuple[int, int] | None = None) -> tf.Tensor:
    """|image| as float32, optionally centre-cropped to ``crop`` = (h, w)."""
    mag = tf.abs(image) if image.dtype.is_complex else image
    return crop_center(mag, crop) if crop is not None else mag


#: What a zoo model is for (the registry's ``task`` of its checkpoints): a reconstruction network
#: (k-space in, image out), a denoiser ((image, sigma) in, image out) or a prior (a score network,
#: (image, sigma) in, the score out; ``posterior.sample_posterior`` samples with it).
TASKS = registry.TASKS


class ZooModel(keras.Model):
    """A Keras 3 model of the zoo: its task and its presets, owned by the class (keras-hub style).

    ``TASK`` is one of :data:`TASKS`; ``presets`` lists the registered names that load as the class
    or a subclass, ``from_preset`` loads one and ``save_to_preset`` writes a checkpoint folder
    (``presets.save_to_preset``). Reconstruction networks derive from :class:`ReconstructionModel`;
    denoisers and priors (``models.LearnletDenoiser``, ``models.ScoreNetwork``) from this class.
    """

    TASK: ClassVar[str] = "reconstruction"
    #: (registry helper) the registered checkpoint names that load as this class or a subclass
    #: (``NCPDNet.presets``); load one with ``from_preset(name)``.
    presets = preset_io.PresetNames()

    def save_to_preset(self, preset_dir, **card):
        """Write a checkpoint folder (config.json, model.weights.h5, metadata.json, README.md);
        returns its path. ``card``: model-card fields (``presets.CARD_FIELDS``), and
        ``example_inputs`` (the dict the model is called on) when the model cannot tell its inputs."""
        return preset_io.save_to_preset(self, preset_dir, **card)

    @classmethod
    def from_preset(cls, handle: str, **kwargs) -> "ZooModel":
        """Load a checkpoint from a registry name, a local folder or ``hf://owner/repo[@revision]``."""
        model = preset_io.from_preset(handle, **kwargs)
        if cls is not ZooModel and not isinstance(model, cls):
            raise ValueError(
                f"handle {handle!r} holds a {type(model).__name__}, not a {cls.__name__}; "
                f"use {type(model).__name__}.from_preset or fastmri_zoo.load."
            )
        return model

    def training_callbacks(self) -> list[keras.callbacks.Callback]:
        """Callbacks every training of this model needs (``training.fit`` adds them): the noise
        normalisation of its learnlets, if it holds any, re-estimated every 10 optimizer steps
        (``layers.learnlets.NormalisationUpdate``; the filters move little in 10 steps)."""
        return [NormalisationUpdate(model=self, every=10)] if learnlets_of(self) else []


class ReconstructionModel(ZooModel):
    """Keras 3 subclassed model with the zoo's calling convention, its acquisition and preset I/O.

    Subclasses set ``ACQUISITION`` (the kind given to ``make_acquisition``:
    ``"cartesian"``, ``"noncartesian"`` or ``"gridded"``; the constructor's
    ``acquisition`` overrides it), pass their acquisition options
    (``acquisition_options``: e.g. ``dcomp``, ``image_shape``, ``gridding``)
    to this constructor, create their sub-layers' weights in ``build_layers``
    and store every constructor argument under the same name (returned by
    ``get_config``), so ``cls.from_config(model.get_config())`` rebuilds them.
    ``RENAMED_ARGUMENTS`` maps old argument names to current ones, so configs
    saved before a rename still load.
    """

    ACQUISITION: ClassVar[str] = "cartesian"
    RENAMED_ARGUMENTS: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        multicoil: bool = False,
        ndim: int = 2,
        acquisition: str | None = None,
        acquisition_options: dict | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.multicoil = bool(multicoil)
        self.ndim = int(ndim)
        self.acquisition_kind = acquisition
        self.acquisition = make_acquisition(
            acquisition or self.ACQUISITION, multicoil=self.multicoil, ndim=self.ndim, **(acquisition_options or {})
        )

    @property
    def REQUIRED_INPUTS(self) -> tuple[str, ...]:  # noqa: N802 (the historical name)
        """The input keys this model needs (its acquisition's)."""
        return tuple(self.acquisition.required_inputs)

    def check_inputs(self, inputs, image_shape=None) -> None:
        """Raise a ValueError on missing keys, wrong shapes or dtypes, or non-finite values (eager)."""
        self.acquisition.check(inputs, type(self).__name__, image_shape)

    def __call__(self, inputs, *args, image_shape=None, **kwargs):
        # Keras only takes tensors in the input dict: the image size travels as a keyword.
        inputs, given = split_image_shape(inputs)
        image_shape = given if given is not None else image_shape
        if image_shape is not None:
            image_shape = kwargs["image_shape"] = as_image_shape(image_shape, self.ndim)
        # Validate before Keras traces or builds anything, so bad input fails first and cleanly.
        self.check_inputs(inputs, image_shape)
        return super().__call__(inputs, *args, **kwargs)

    def operator(self, inputs, image_shape=None, smaps=None):
        """(measurements complex64, the acquisition's LinearOperator) for inputs checked in ``__call__``.

        ``smaps`` overrides ``inputs["smaps"]`` (e.g. refined coil maps).
        """
        return self.acquisition.operator(inputs, image_shape=image_shape, smaps=smaps)

    def build(self, input_shape=None):
        # Create the weights directly: otherwise Keras' first call would also run the whole
        # network symbolically (FFTs, NUFFTs, conjugate gradients) just to build it.
        self.build_layers()

    def build_layers(self) -> None:
        """Create every sub-layer's weights (they do not depend on the image size)."""

    @classmethod
    def builds_its_layers(cls) -> bool:
        """Whether ``build`` creates every weight (the class defines :meth:`build_layers`), so a
        preset loads without a forward pass; a subclass whose layers build at the first call does not."""
        return cls.build_layers is not ReconstructionModel.build_layers

    def build_from_config(self, config) -> None:
        """Create the weights (e.g. in ``keras.saving.load_model``): directly when the class
        :meth:`builds_its_layers`, else by one call on the acquisition's dummy inputs of the
        recorded input shapes."""
        if self.builds_its_layers():
            self.build(None)
            return
        shapes = (config or {}).get("input_shape")
        if not isinstance(shapes, dict):
            shapes = None
        self(self.acquisition.dummy_inputs(shapes))

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for old, new in cls.RENAMED_ARGUMENTS.items():
            if old in config:
                value = config.pop(old)
                config.setdefault(new, value)
        return cls(**config)

    def get_config(self):
        config = super().get_config()
        if self.ndim != 2:  # (2D configs as they always were)
            config["ndim"] = self.ndim
        if self.acquisition_kind is not None:
            config["acquisition"] = self.acquisition_kind
        return config
