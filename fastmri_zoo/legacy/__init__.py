"""The authors' published Keras-2 checkpoints (fastmri-reproducible-benchmark), loadable by name.

Zaccharie Ramzi published 18 trained networks of his thesis on the Hugging
Face Hub (``zaccharieramzi/<name>``, one ``model_weights.h5`` each, written by
Keras 2 / TF 2.x). The registry lists them (format "keras2") under names such as
``pdnet-cartesian-singlecoil-af4-oasis``; ``fastmri_zoo.load(name)`` downloads
the file (or finds it in the Hugging Face cache), checks it and converts it
into the zoo network that reproduces the original, wrapped with the original's
pre/post-processing so that k-space in physical units gives an image in
physical units.

- :mod:`.keras2_h5`: reading both Keras-2 layouts (weights only, full model)
  and both attribute encodings (bytes, str);
- :mod:`.order`: the original weight order, expressed on the zoo's layers;
- :mod:`.converter`: structure check against that order, finite values, assignment;
- :mod:`.integrity`: the sha256 recorded at the first download;
- :mod:`.wrapper`: :class:`LegacyReconstruction` (scale factor, crop);
- :mod:`.checkpoints`: the 18 checkpoints and their loader (:func:`load`).

Nothing heavy is imported here; TensorFlow comes with the first model built.
"""

from .checkpoints import LEGACY_CHECKPOINTS, LegacyCheckpoint, build, from_keras2_h5, get_checkpoint, load, plan

__all__ = ["LEGACY_CHECKPOINTS", "LegacyCheckpoint", "build", "plan", "from_keras2_h5", "get_checkpoint", "load",
           "LegacyReconstruction", "LegacyStructureError"]


def __getattr__(name):
    # The Keras classes import TensorFlow; import them only when asked for.
    if name == "LegacyReconstruction":
        from .wrapper import LegacyReconstruction  # lazy: imports TensorFlow, which list/info never need

        return LegacyReconstruction
    if name == "LegacyStructureError":
        from .converter import LegacyStructureError  # lazy: numpy and h5py, which list/info never need

        return LegacyStructureError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
