"""fastmri-zoo: deep-learning MRI reconstruction networks, loadable by name.

The three calls most users need::

    import fastmri_zoo
    fastmri_zoo.list_models(coils="multicoil")      # names of the registered checkpoints
    print(fastmri_zoo.info("ncpdnet-radial-multicoil"))  # the model card
    model = fastmri_zoo.load("ncpdnet-radial-multicoil")  # bundled weights first, then the Hub

TensorFlow and huggingface_hub are imported on the first call, not here.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load", "list_models", "info"]


def load(name: str, pretrained: bool = True, revision: str | None = None, **kwargs):
    """The model registered as ``name`` with its trained weights (or fresh ones if ``pretrained=False``).

    Bundled weights (the repository's ``weights/``) are used first and work
    offline; otherwise the pinned Hugging Face Hub revision is downloaded (or
    ``revision``). The weights' sha256 is checked before loading. Keyword
    arguments ``endpoint``, ``cache_dir`` and ``token`` go to the Hub download.
    Unknown names raise a ValueError listing the closest names.
    """
    from .presets import load as _load

    return _load(name, pretrained=pretrained, revision=revision, **kwargs)


def list_models(**filters) -> list[str]:
    """Sorted names of the registered checkpoints; filter by ``architecture``, ``trajectory``,
    ``coils`` ("singlecoil", "multicoil", "3d"), ``acceleration``, ``dataset`` or ``pretrained``."""
    from .registry import list_models as _list_models

    return _list_models(**filters)


def info(name: str) -> str:
    """The model card (markdown) of checkpoint ``name``; never downloads."""
    from .registry import info as _info

    return _info(name)
