"""fastmri-zoo: deep-learning MRI reconstruction networks, loadable by name.

The three calls most users need::

    import fastmri_zoo
    fastmri_zoo.list_models(coils="multicoil")      # names of the registered checkpoints
    print(fastmri_zoo.info("ncpdnet-radial-multicoil"))  # the model card
    model = fastmri_zoo.load("ncpdnet-radial-multicoil")  # bundled weights first, then the Hub

``load`` takes any handle: a registered name, a preset folder (``load("path/to/folder")``)
or ``load("hf://owner/repo[@revision]")``. The bundled checkpoints ship inside every
install: the repository's ``weights/`` folder, which a built wheel carries as
``fastmri_zoo/_weights``.

Presets belong to the model classes too: ``fastmri_zoo.models.NCPDNet.presets`` lists
the names that load as an NCPDNet and ``NCPDNet.from_preset(name)`` loads one.
TensorFlow and huggingface_hub are imported on the first load, not here (``list_models``
and ``info`` read JSON files only).
"""

from __future__ import annotations

from .presets import load
from .registry import info, list_models
from .version import __version__

__all__ = ["__version__", "load", "list_models", "info"]
