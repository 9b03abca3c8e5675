"""The folder ``flwr run`` takes to a deployment: ``fastmri-zoo federate RECIPE --app-dir DIR`` writes
``DIR/pyproject.toml``, a Flower app whose components are :mod:`fastmri_zoo.federated.app` and whose run
config carries the recipe (one JSON line) and the folder the ServerApp writes into. Every machine of the
federation (SuperLink and SuperNodes) has ``fastmri-zoo[federated]`` installed; the app lists no
dependencies, so nothing is installed at run time. ``docs/federated.md`` runs it step by step."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

from ..utils import write_text
from ..version import __version__
from .recipe import FederationRecipe

__all__ = ["write_flower_app", "APP_COMPONENTS"]

#: The ServerApp and ClientApp of the app, as Flower names them.
APP_COMPONENTS = {"serverapp": "fastmri_zoo.federated.app:server_app",
                  "clientapp": "fastmri_zoo.federated.app:client_app"}


def write_flower_app(recipe: FederationRecipe, app_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write the Flower app of ``recipe`` in ``app_dir`` (created); ``out_dir``: where the ServerApp writes
    on the SuperLink's machine (kept as given: an absolute path is safest). Returns the pyproject path."""
    app_dir = Path(app_dir)
    if app_dir.exists() and not app_dir.is_dir():
        raise ValueError(f"--app-dir: {str(app_dir)!r} is a file; expected a folder.")
    app_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", recipe.name.lower()).strip("-") or "federation"
    text = "\n".join([
        "# A Flower app written by `fastmri-zoo federate`: run it with `flwr run . CONNECTION --stream`",
        "# (docs/federated.md of fastmri-zoo). Every machine needs fastmri-zoo[federated] installed.",
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        f'name = "fastmri-zoo-{slug}"',
        'version = "1.0.0"',
        f'description = "fastmri-zoo {__version__} federation {recipe.name} ({recipe.options.strategy})"',
        'license = "MIT"',
        "dependencies = []",
        "",
        "[tool.flwr.app]",
        'publisher = "fastmri-zoo"',
        "",
        "[tool.flwr.app.components]",
        *(f'{key} = "{value}"' for key, value in APP_COMPONENTS.items()),
        "",
        "[tool.flwr.app.config]",
        f"recipe = {json.dumps(recipe.to_json())}",
        f"out-dir = {json.dumps(os.fspath(out_dir))}",
        "",
    ])
    parsed = tomllib.loads(text)  # the recipe must come back intact
    if json.loads(parsed["tool"]["flwr"]["app"]["config"]["recipe"]) != recipe.raw:
        raise RuntimeError("the recipe did not survive its TOML encoding")
    path = app_dir / "pyproject.toml"
    write_text(path, text)
    return path
