"""Federation recipes: the JSON file of ``fastmri-zoo federate RECIPE.json``.

A federation recipe names the network, the sites and how they federate::

    {
      "name": "fedavg-ixi-cardiac",
      "model": {"class": "NasNet", "kwargs": {"n_iter": 3, "n_cells": 1, "n_filters": 16, "noiseless": false,
                                              "multicoil": true, "genotype": [[["conv_3x3", 0], ["sep_conv_3x3", 1]]]}},
      "data": {"folder": "magnitude", "train": "train", "val": "val", "test": "test",
               "synthesis": {"size": [128, 128], "zoom": [0.8, 1.6], "val_examples": 32}},
      "sites": [
        {"name": "ixi-large", "share": 6, "coils": 8, "mask_type": "equispaced_fraction", "acceleration": 4},
        {"name": "ixi-medium", "share": 3, "coils": 4, "mask_type": "random", "acceleration": 6},
        {"name": "ixi-small", "share": 1, "coils": 2, "mask_type": "equispaced", "acceleration": 8,
         "center_fraction": 0.04},
        {"name": "cardiac", "source": "cardiac", "coils": 4, "mask_type": "random", "acceleration": 4,
         "synthesis": {"zoom": [1.0, 1.0]}}
      ],
      "federation": {"strategy": "fedavg", "rounds": 30, "local_steps": 50, "batch_size": 2, "learning_rate": 0.001}
    }

- ``model``: a reconstruction model class of ``fastmri_zoo.models`` and its kwargs, as in a training
  recipe (:mod:`fastmri_zoo.training.config`). One model for every site: single-coil when every site
  has one coil, multicoil (``multicoil: true``) when every site has at least two (the networks work on
  the coil-combined image, so sites of different coil counts share one set of weights). Strategy
  ``fedautomri``: ``NasNet`` without ``genotype``, ``n_nodes`` or ``search_space`` (the ``search``
  block gives them; the genotype comes out of the federated search).
- ``data``: the magnitude volumes (NIfTI, ``.npy``, ``.npz``) of the ``"volumes"`` sites under the data
  root (``--data``, default the recipe's folder): ``folder/train`` (required), ``folder/val`` (the
  alpha split of the search; required by ``fedautomri`` when a volume site takes part) and
  ``folder/test`` (the held-out subjects; required when a volume site takes part). ``synthesis``: how
  the examples of every site are drawn from volumes (:class:`~fastmri_zoo.data.Synthesis`; ``coils``
  comes from each site).
- ``sites`` (at least two, names unique): ``name``; ``source`` ``"volumes"`` (default: the subjects of
  ``data``, sorted by file name and split into consecutive groups in proportion to ``share``, default 1,
  the train, val and test folders alike, every site at least one subject of each) or ``"cardiac"``
  (the bundled cardiac images, ``fastmri_zoo.samples.cardiac_images()``, brought to the synthesis grid:
  the first three quarters of the 16 training images for w, the last quarter for alpha, the 8 held-out
  images for evaluation; slices across the stack only); ``coils`` (default 1); the Cartesian acquisition: ``mask_type``
  (``"random"``, ``"equispaced"``, ``"equispaced_fraction"``), ``acceleration`` and ``center_fraction``
  (default 0.08); ``synthesis``: keys replacing those of ``data.synthesis`` for this site (not ``size``:
  one grid for all).
- ``federation``: ``strategy`` (required): ``"local"`` (each site trains alone: the baseline without
  federation; nothing leaves a site but its metrics), ``"fedavg"``, ``"fedprox"`` (the clients add
  ``proximal_mu`` / 2 ||w - w_global||^2 to their loss) or ``"fedautomri"`` (a federated MiLeNAS search
  of the cell for ``search.rounds`` rounds, w and alpha averaged by the server weighted by the sites'
  sample counts, then the derived network trained as FedAvg with the clients' EMA); ``rounds``
  (required) and ``local_steps`` (required): optimizer steps per client and round (E local epochs of
  an endless synthesised stream); ``batch_size`` (2), ``learning_rate`` (1e-3), ``optimizer``
  (``"adam"``), ``optimizer_state`` (``"fresh"``: each site starts a new optimizer at every round, the
  default; ``"kept"``: each site's optimizer state - moments, step count - carries over from one round to
  the next in the site's node state, as the FedAutoMRI authors' code keeps its clients' optimizers; it
  restarts when the network changes), ``clipnorm`` (1.0), ``loss`` (``"l1"``), ``proximal_mu``
  (``fedprox`` only, default 0.01), ``ema`` (gamma of the client-side moving average of the global
  weights, m_t = gamma m_{t-1} + (1 - gamma) w_t, m_0 = 0, trained from m_t / (1 - gamma^t); null for
  none; default 0.9 for ``fedautomri``, null otherwise; not with ``local``), ``min_clients`` (the
  fewest sites a round goes on with; default: all of them; a site that stops answering is reported
  and the federation continues while at least this many answer), ``eval_examples`` (the held-out
  examples of every site, fixed and scored after every round; default ``synthesis.val_examples``),
  ``seed`` (0: the initial weights and every example), ``timeout`` (seconds a round, and the
  first question to the sites, waits for their answers, 3600), ``connect_timeout`` (seconds the server
  waits for every site to connect, 600) and
  ``save_updates`` (false; true: the server keeps what each site sent and the aggregate of every
  round in ``OUT_DIR/updates/``, an audit of the averaging).
- ``search`` (strategy ``fedautomri`` only): ``rounds`` and ``local_steps`` (required), ``space``
  (``"fedautomri"``: standard, dilated and separable convolutions), ``nodes`` (3), ``alpha_learning_rate``
  (3e-4), ``beta`` (MiLeNAS' weight of the validation gradient, 1.0), ``learning_rate`` (that of the
  federation).
- ``card`` (optional): the model card of the checkpoint the run becomes, as in a training recipe (the
  registry reads the name's parts from it: ``architecture``, ``variant``, ``trajectory``, ``coils``, ...);
  the federation does not read it.

Unknown keys are errors, so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checks import check_scalar
from ..data.synthesis import Synthesis
from ..sampling.cartesian import MASK_TYPES
from ..search.recipe import check_block, check_search_space
from ..training.config import _check_keys, model_classes, read_recipe_file, recipe_from_dict
from ..training.fit import check_acquisition, check_synthesis

__all__ = ["STRATEGIES", "SOURCES", "Site", "FederationOptions", "SearchPhase", "FederationRecipe",
           "load_federation_recipe", "federation_recipe_from_dict"]

#: The federation strategies, in the recipe's spelling.
STRATEGIES = ("local", "fedavg", "fedprox", "fedautomri")
#: Where a site's volumes come from.
SOURCES = ("volumes", "cardiac")
#: gamma of the clients' EMA when a ``fedautomri`` recipe gives none.
DEFAULT_EMA = 0.9
_TOP_KEYS = {"name", "model", "data", "sites", "federation", "search", "card"}
_SITE_KEYS = {"name", "source", "share", "coils", "mask_type", "acceleration", "center_fraction", "synthesis"}
_SEARCHED = ("genotype", "n_nodes", "search_space")


@dataclass(frozen=True)
class Site:
    """A checked site: its name, where its volumes come from, its share of the subjects, its acquisition
    (a checked Cartesian ``acquisition`` description) and its synthesis options (a dict of
    :class:`~fastmri_zoo.data.Synthesis` keys)."""

    name: str
    source: str
    share: float
    coils: int
    acquisition: dict
    synthesis: dict


@dataclass(frozen=True)
class FederationOptions:
    """A checked ``federation`` block (see the module docstring)."""

    strategy: str
    rounds: int
    local_steps: int
    batch_size: int = 2
    learning_rate: float = 1e-3
    optimizer: Any = "adam"
    clipnorm: float | None = 1.0
    loss: Any = "l1"
    proximal_mu: float | None = None
    ema: float | None = None
    min_clients: int | None = None
    eval_examples: int | None = None
    seed: int = 0
    timeout: float = 3600.0
    connect_timeout: float = 600.0
    save_updates: bool = False
    optimizer_state: str = "fresh"


#: What ``federation.optimizer_state`` may say.
OPTIMIZER_STATES = ("fresh", "kept")


@dataclass(frozen=True)
class SearchPhase:
    """A checked ``search`` block of a ``fedautomri`` recipe."""

    rounds: int
    local_steps: int
    space: Any = "fedautomri"
    nodes: int = 3
    alpha_learning_rate: float = 3e-4
    beta: float = 1.0
    learning_rate: float | None = None


@dataclass
class FederationRecipe:
    """A validated federation recipe; ``raw`` is the file as read (it travels to the sites as is)."""

    name: str
    model_class: str
    model_kwargs: dict
    data: dict
    sites: list[Site]
    options: FederationOptions
    search: SearchPhase | None
    raw: dict
    source: Path | None = None
    multicoil: bool = False

    @property
    def volume_sites(self) -> list[Site]:
        return [site for site in self.sites if site.source == "volumes"]

    @property
    def min_clients(self) -> int:
        return len(self.sites) if self.options.min_clients is None else self.options.min_clients

    @property
    def ema(self) -> float | None:
        return self.options.ema

    def site(self, name: str) -> Site:
        for site in self.sites:
            if site.name == name:
                return site
        raise ValueError(f"site: {name!r} is not a site of the recipe; its sites are {[s.name for s in self.sites]}.")

    def model_arguments(self, phase: str = "train", genotype=None) -> dict:
        """The model's constructor arguments in ``phase``: ``"search"`` (the search network over the search
        block's space and nodes) or ``"train"`` (with ``genotype``, the searched network)."""
        kwargs = dict(self.model_kwargs)
        if phase == "search":
            kwargs.update(genotype=None, n_nodes=self.search.nodes, search_space=self.search.space)
        elif genotype is not None:
            kwargs.update(genotype=genotype)
            kwargs.pop("n_nodes", None)
            if self.search is not None:
                kwargs["search_space"] = self.search.space
        return kwargs

    def build_model(self, phase: str = "train", genotype=None):
        """The (unbuilt) network of ``phase``."""
        return model_classes()[self.model_class](**self.model_arguments(phase, genotype))

    def to_json(self) -> str:
        """The recipe as one JSON line (what the sites of a deployment receive)."""
        return json.dumps(self.raw, separators=(",", ":"))

    def data_root(self, data_dir: str | os.PathLike | None) -> Path:
        """The data root: ``data_dir``, else the recipe's folder, else the working folder."""
        if data_dir is not None:
            return Path(data_dir).expanduser().absolute()
        return self.source.parent if self.source is not None else Path.cwd()


def _check_site(index: int, block, base_synthesis: dict) -> Site:
    where = f"sites[{index}]"
    _check_keys(where, block, _SITE_KEYS, ("name", "mask_type", "acceleration"))
    name = block["name"]
    if not isinstance(name, str) or not name or any(c.isspace() for c in name) or "/" in name:
        raise ValueError(f"{where}.name: expected a non-empty name without spaces or '/', got {name!r}.")
    source = block.get("source", "volumes")
    if source not in SOURCES:
        raise ValueError(f"{where}.source: expected one of {list(SOURCES)}, got {source!r}.")
    if source != "volumes" and "share" in block:
        raise ValueError(f"{where}.share: the share of the subjects of data; a {source!r} site has its own images.")
    if block["mask_type"] not in MASK_TYPES:
        raise ValueError(f"{where}.mask_type: expected one of {sorted(MASK_TYPES)}, got {block['mask_type']!r}.")
    share = check_scalar(f"{where}.share", block.get("share", 1), above=0)
    coils = check_scalar(f"{where}.coils", block.get("coils", 1), integer=True, at_least=1)
    acquisition = check_acquisition({"kind": "cartesian", "multicoil": coils > 1, "mask_type": block["mask_type"],
                                     "acceleration": block["acceleration"],
                                     "center_fraction": block.get("center_fraction", 0.08)}, f"{where}")
    overrides = block.get("synthesis") or {}
    _check_keys(f"{where}.synthesis", overrides, {f.name for f in dataclasses.fields(Synthesis)} - {"size", "coils"})
    synthesis = {**base_synthesis, **overrides, "coils": coils}
    if source == "cardiac":  # a stack of 2D images: slices across the stack only
        if "orientations" in overrides:
            raise ValueError(f"{where}.synthesis.orientations: the cardiac images are 2D; their slices are fixed.")
        synthesis["orientations"] = [0]
    check_synthesis(synthesis, acquisition, f"{where}.synthesis")
    return Site(name=name, source=source, share=float(share), coils=int(coils), acquisition=acquisition,
                synthesis=synthesis)


def load_federation_recipe(path: str | os.PathLike) -> FederationRecipe:
    """Read and validate a federation recipe (see the module docstring) before any data is read or any
    model built; raises ValueError / FileNotFoundError naming the offending key."""
    return federation_recipe_from_dict(read_recipe_file(path), source=Path(path))


def federation_recipe_from_dict(raw: Any, source: str | os.PathLike | None = None) -> FederationRecipe:
    """Validate the federation recipe ``raw`` (the content of a recipe file) read from ``source``."""
    _check_keys("recipe", raw, _TOP_KEYS, ("model", "data", "sites", "federation"))
    if not isinstance(raw.get("card", {}), dict):
        raise ValueError(f"card: expected an object (the model card's fields), got {type(raw['card']).__name__}.")
    raw = copy.deepcopy(raw)
    federation = check_block("federation", FederationOptions, raw["federation"], ("strategy", "rounds", "local_steps"), {
        "rounds": dict(integer=True, at_least=1), "local_steps": dict(integer=True, at_least=1),
        "batch_size": dict(integer=True, at_least=1), "learning_rate": dict(above=0),
        "clipnorm": dict(above=0, allow_none=True), "proximal_mu": dict(at_least=0, allow_none=True),
        "ema": dict(at_least=0, below=1, allow_none=True), "min_clients": dict(integer=True, at_least=1, allow_none=True),
        "eval_examples": dict(integer=True, at_least=1, allow_none=True), "seed": dict(integer=True, at_least=0),
        "timeout": dict(above=0), "connect_timeout": dict(above=0)})
    strategy = federation["strategy"]
    if strategy not in STRATEGIES:
        raise ValueError(f"federation.strategy: expected one of {list(STRATEGIES)}, got {strategy!r}.")
    if strategy != "fedprox" and federation.get("proximal_mu") is not None:
        raise ValueError(f"federation.proximal_mu: the weight of FedProx's proximal term; strategy is {strategy!r}.")
    if strategy == "fedprox" and federation.get("proximal_mu") is None:
        federation["proximal_mu"] = 0.01
    if strategy == "local" and federation.get("ema") is not None:
        raise ValueError("federation.ema: a moving average of the global weights; strategy 'local' has none.")
    if strategy == "fedautomri" and "ema" not in federation:
        federation["ema"] = DEFAULT_EMA
    if federation.get("optimizer_state", "fresh") not in OPTIMIZER_STATES:
        raise ValueError(f"federation.optimizer_state: expected one of {list(OPTIMIZER_STATES)}, got "
                         f"{federation['optimizer_state']!r}.")
    if not isinstance(federation.get("save_updates", False), bool):
        raise ValueError(f"federation.save_updates: expected true or false, got {federation['save_updates']!r}.")
    options = FederationOptions(**federation)

    search = None
    if strategy == "fedautomri":
        if "search" not in raw:
            raise ValueError("search: strategy 'fedautomri' searches the cell first; expected a 'search' block with "
                             "rounds and local_steps.")
        block = check_block("search", SearchPhase, raw["search"], ("rounds", "local_steps"), {
            "rounds": dict(integer=True, at_least=1), "local_steps": dict(integer=True, at_least=1),
            "nodes": dict(integer=True, at_least=1), "alpha_learning_rate": dict(above=0), "beta": dict(at_least=0),
            "learning_rate": dict(above=0, allow_none=True)})
        block["space"] = check_search_space(block.get("space", "fedautomri"), "search.space")
        search = SearchPhase(**block)
    elif "search" in raw:
        raise ValueError(f"search: a search block belongs to strategy 'fedautomri'; strategy is {strategy!r}.")

    sites_block = raw["sites"]
    if not isinstance(sites_block, list) or len(sites_block) < 2:
        raise ValueError(f"sites: expected a list of at least two sites, got {sites_block!r}.")
    data = raw["data"]
    if not isinstance(data, dict):
        raise ValueError(f"data: expected a JSON object, got {data!r}.")
    base_synthesis = data.get("synthesis") or {}
    if not isinstance(base_synthesis, dict):
        raise ValueError(f"data.synthesis: expected a JSON object, got {base_synthesis!r}.")
    if "coils" in base_synthesis:
        raise ValueError("data.synthesis.coils: every site gives its own coils (sites[i].coils).")
    sites = [_check_site(index, block, base_synthesis) for index, block in enumerate(sites_block)]
    names = [site.name for site in sites]
    if len(set(names)) != len(names):
        raise ValueError(f"sites: expected distinct names, got {names}.")
    multicoil = {site.coils > 1 for site in sites}
    if len(multicoil) > 1:
        raise ValueError(f"sites.coils: one network serves every site, single-coil or multicoil; expected every site "
                         f"with 1 coil or every site with at least 2, got {[site.coils for site in sites]}.")
    multicoil = multicoil.pop()
    if options.min_clients is not None and options.min_clients > len(sites):
        raise ValueError(f"federation.min_clients: {options.min_clients} but the recipe has {len(sites)} sites.")
    volume_sites = [site for site in sites if site.source == "volumes"]
    if volume_sites:
        for part in ("test",) + (("val",) if strategy == "fedautomri" else ()):
            if data.get(part) is None:
                raise ValueError(f"data.{part}: the {'held-out' if part == 'test' else 'alpha-split'} subjects of the "
                                 "volume sites; expected a folder name.")

    model = raw["model"]
    _check_keys("model", model, {"class", "kwargs"}, ("class",))
    kwargs = model.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"model.kwargs: expected a JSON object of constructor arguments, got {kwargs!r}.")
    if strategy == "fedautomri":
        for key in _SEARCHED:
            if key in kwargs:
                raise ValueError(f"model.kwargs.{key}: not in a 'fedautomri' recipe (the search block and the search "
                                 "give it).")
    # The model, data and acquisition go through the trainer's own checks, with the first site's acquisition
    # (the sites differ in masks and coils only) and, for fedautomri, the search network's arguments.
    check_kwargs = dict(kwargs)
    if search is not None:
        check_kwargs.update(n_nodes=search.nodes, search_space=search.space)
    training = {"steps": options.local_steps, "batch_size": options.batch_size, "learning_rate": options.learning_rate,
                "clipnorm": options.clipnorm, "loss": options.loss, "optimizer": options.optimizer,
                "seed": options.seed}
    part = {"name": raw.get("name"), "model": {"class": model["class"], "kwargs": check_kwargs},
            "data": {**{k: v for k, v in data.items() if k != "synthesis"},
                     "synthesis": {**base_synthesis, "coils": sites[0].coils}},
            "acquisition": sites[0].acquisition, "training": training}
    checked = recipe_from_dict(part, source=source)
    if checked.task != "reconstruction":
        raise ValueError(f"model.class: {model['class']} is a {checked.task} model; a federation trains a "
                         "reconstruction network.")
    if strategy == "fedautomri" and model["class"] != "NasNet":
        raise ValueError(f"model.class: strategy 'fedautomri' searches the cells of NasNet, got {model['class']!r}.")
    name = raw.get("name") or (Path(source).stem if source is not None else "federation")
    return FederationRecipe(name=name, model_class=model["class"], model_kwargs=kwargs, data=dict(data), sites=sites,
                            options=options, search=search, raw=raw,
                            source=None if source is None else Path(source).absolute(), multicoil=multicoil)
