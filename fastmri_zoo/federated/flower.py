"""The Flower app: a ClientApp (one per site) and a ServerApp around the zoo's trainer, with Flower's own
strategies, simulation engine and deployment engine (nothing here moves a message itself).

Messages (``flwr.app.Message``; every record named):

- query (once, at the start): the server asks every connected SuperNode which site it is; the reply holds
  the site's name (``ConfigRecord`` ``"site"``) and its sample count (``MetricRecord`` ``"metrics"``:
  ``num-examples``).
- train: the server sends the global weights (``ArrayRecord`` ``"arrays"``, :func:`~.training.model_arrays`
  names) and ``ConfigRecord`` ``"config"`` (``phase`` ``"search"`` or ``"train"``, ``genotype`` (JSON,
  empty before the search has given one), ``server-round``, and FedProx's ``proximal-mu``); the site trains
  ``local_steps`` steps and replies with its weights (``"arrays"``; with alpha during the search) and
  ``"metrics"`` (``num-examples``: its sample count, the weight of its update; ``train-loss``; during the
  search ``alpha-loss``). A ``"local"`` site keeps its weights (``Context.state``) and sends metrics only.
- evaluate: the global weights (a ``"local"`` site: its own); the reply holds ``"metrics"`` only:
  ``num-examples`` (held-out examples), ``loss``, ``psnr``, ``ssim``, ``nmse``, and with the EMA the same
  of the bias-corrected average (``ema-psnr``, ...).

Nothing else leaves a site: no image, no k-space, no mask, no file name.

The server (:func:`serve`) identifies the sites, runs Flower's FedAvg / FedProx (``Strategy.start``) for
each phase (FedAutoMRI: the search, then the derived network's training), records every site's metrics
in every round, notices a site that stops answering (the round goes on with the others while at least
``min_clients`` answer; the site is named in the log and in ``federation.json``), and writes
:mod:`.outputs`.

Two ways to run it: :func:`flower_apps` with the settings in hand (the simulation engine,
``flwr.simulation.run_simulation``: site i is SuperNode ``partition-id`` i and every site reads one data
root), or :mod:`fastmri_zoo.federated.app` (``flwr run`` on a deployment: the recipe travels in the run
config, each SuperNode names its site and data root in its node config, see ``docs/federated.md``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ..data.synthesis import Synthesis
from ..training.fit import _model_inputs
from ..utils import write_npz
from . import require_flower
from .outputs import CHECKPOINT_DIR, FederationLog, read_checkpoint
from .recipe import FederationRecipe, federation_recipe_from_dict
from .sites import load_site_data
from .training import BiasCorrectedEMA, LocalSearch, LocalTraining, evaluate, model_arrays, set_model_arrays

flwr = require_flower()  # without Flower: an ImportError saying how to install it, not "No module named 'flwr'"

from flwr.app import (Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord,  # noqa: E402
                      RecordDict)
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg, FedProx  # noqa: E402

__all__ = ["flower_apps", "serve", "make_strategy", "example_inputs", "run_in_simulation", "RUN_CONFIG_KEYS",
           "NODE_CONFIG_KEYS"]

#: What the run config of a deployment holds (``flwr run``: ``[tool.flwr.app.config]`` of the app).
RUN_CONFIG_KEYS = {"recipe": "the federation recipe, one JSON line", "out-dir": "where the ServerApp writes"}
#: What each SuperNode of a deployment gives in ``--node-config``.
NODE_CONFIG_KEYS = {"site": "its site's name in the recipe", "data-dir": "its data root (not for the cardiac site)",
                    "state-dir": "optional: where it keeps its own state after every round (EMA, optimizer, local "
                                 "weights), so that a resumed federation continues it"}


# ------------------------------------------------------------------------------------------------ settings


@dataclass
class _Settings:
    recipe: FederationRecipe
    out_dir: Path | None = None
    data_dir: str | None = None
    shared_data: bool = True
    state_dir: Path | None = None


_RECIPES: dict[str, FederationRecipe] = {}


def _recipe(raw: dict | str, source: str | None = None) -> FederationRecipe:
    text = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True)
    key = f"{source}\n{text}"
    if key not in _RECIPES:
        _RECIPES[key] = federation_recipe_from_dict(json.loads(text), source=source)
    return _RECIPES[key]


def _server_settings(settings: dict | None, context) -> _Settings:
    if settings is not None:
        return _Settings(_recipe(settings["recipe"], settings.get("source")), Path(settings["out-dir"]))
    config = context.run_config
    if "recipe" not in config:
        raise ValueError("run config: no 'recipe'; run an app written by `fastmri-zoo federate RECIPE --app-dir DIR`.")
    return _Settings(_recipe(str(config["recipe"])), Path(str(config.get("out-dir", "federation"))).expanduser())


def _client_settings(settings: dict | None, context) -> tuple[_Settings, str]:
    """The settings of a site and its name: in a simulation, site ``partition-id`` of the recipe; in a
    deployment, the node config's ``site`` and ``data-dir``."""
    node = context.node_config
    if settings is not None:
        recipe = _recipe(settings["recipe"], settings.get("source"))
        # a simulation's sites share the server's disk: they keep their state beside its checkpoint
        state_dir = Path(settings["out-dir"]) / CHECKPOINT_DIR / "sites"
        return (_Settings(recipe, None, settings.get("data-dir"), True, state_dir),
                recipe.sites[int(node["partition-id"])].name)
    recipe = _recipe(str(context.run_config["recipe"]))
    if "site" not in node:
        raise ValueError(f"node config: no 'site'; start the SuperNode with --node-config 'site=\"NAME\" "
                         f"data-dir=\"DATA_DIR\"', NAME one of {[s.name for s in recipe.sites]}.")
    data_dir, state_dir = node.get("data-dir"), node.get("state-dir")
    return (_Settings(recipe, None, None if data_dir is None else str(data_dir), False,
                      None if state_dir is None else Path(str(state_dir)).expanduser()), str(node["site"]))


# ------------------------------------------------------------------------------------------------ the client


def example_inputs(recipe: FederationRecipe, coils: int | None = None) -> dict:
    """Zero inputs of the recipe's network, batch 1, on the synthesis grid (what the server builds it on)."""
    height, width = Synthesis.from_dict({k: v for k, v in (recipe.data.get("synthesis") or {}).items()}).size
    coils = coils or recipe.sites[0].coils
    inputs = {"mask": tf.ones((1, 1, width), tf.float32)}
    if recipe.multicoil:
        inputs["kspace"] = tf.zeros((1, coils, height, width), tf.complex64)
        inputs["smaps"] = tf.ones((1, coils, height, width), tf.complex64) / np.sqrt(coils)
    else:
        inputs["kspace"] = tf.zeros((1, height, width), tf.complex64)
    return inputs


class _Site:
    """A site's data, networks and local workers, kept for the life of the process (a simulation's
    actor serves many messages; a deployment's ClientApp process serves one)."""

    def __init__(self, settings: _Settings, name: str):
        self.recipe = settings.recipe
        self.data = load_site_data(self.recipe, name, settings.data_dir, shared=settings.shared_data)
        self.count = self.data.training_examples
        options = self.recipe.options
        self.eval_examples = options.eval_examples or self.data.synthesis.val_examples
        self.heldout = self.data.heldout(self.eval_examples, options.batch_size).cache()
        self._models: dict = {}
        self._workers: dict = {}

    def model(self, phase: str, genotype: str):
        key = (phase, genotype)
        if key not in self._models:
            model = self.recipe.build_model(phase, json.loads(genotype) if genotype else None)
            for inputs, _ in self.heldout.take(1):
                model(_model_inputs(inputs))
            self._models[key] = model
        return self._models[key]

    def worker(self, phase: str, genotype: str, proximal: bool):
        key = (phase, genotype, proximal)
        if key not in self._workers:
            options, model = self.recipe.options, self.model(phase, genotype)
            common = dict(loss=options.loss, optimizer=options.optimizer, clipnorm=options.clipnorm)
            if phase == "search":
                search = self.recipe.search
                self._workers[key] = LocalSearch(model, beta=search.beta, alpha_learning_rate=search.alpha_learning_rate,
                                                 learning_rate=search.learning_rate or options.learning_rate, **common)
            else:
                self._workers[key] = LocalTraining(model, learning_rate=options.learning_rate, proximal=proximal,
                                                   **common)
        return self._workers[key]


_SITES: dict = {}


def _site(settings: _Settings, name: str) -> _Site:
    key = (id(settings.recipe), name, settings.data_dir, settings.shared_data)
    if key not in _SITES:
        _SITES[key] = _Site(settings, name)
    return _SITES[key]


def _received(message) -> dict[str, np.ndarray]:
    return {key: array.numpy() for key, array in message.content["arrays"].items()}


def _state_arrays(context, key: str) -> dict[str, np.ndarray] | None:
    record = context.state.array_records.get(key)
    return None if record is None else {name: array.numpy() for name, array in record.items()}


def _array_record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({name: Array(np.ascontiguousarray(value)) for name, value in arrays.items()})


def _kept(context, key: str, **network) -> tuple[dict[str, np.ndarray], dict] | None:
    """``(arrays, meta)`` a site kept under ``key`` in its node state between rounds, or None when it kept
    none or kept them for another network (``network``: the phase and / or genotype they belong to)."""
    meta = context.state.config_records.get(f"{key}-meta")
    if meta is None or any(meta[name] != value for name, value in network.items()):
        return None
    return _state_arrays(context, key), dict(meta)


def _keep(context, key: str, arrays: dict[str, np.ndarray], **meta) -> None:
    """Keep ``arrays`` (and ``meta``: the network they belong to, counters) in the node state for the next round."""
    context.state[key] = _array_record(arrays)
    context.state[f"{key}-meta"] = ConfigRecord(meta)


def _ema(context, recipe: FederationRecipe, genotype: str):
    """The site's EMA of the global weights of this network (a new one when the network changed)."""
    kept = _kept(context, "ema", genotype=genotype)
    return BiasCorrectedEMA(recipe.ema) if kept is None else BiasCorrectedEMA(recipe.ema, kept[0], int(kept[1]["steps"]))


def _keep_ema(context, ema, genotype: str) -> None:
    # float64: the average keeps its precision between rounds
    _keep(context, "ema", ema.average, genotype=genotype, steps=ema.steps)


def _optimizer_state(context, phase: str, genotype: str) -> list[np.ndarray] | None:
    """The site's optimizer state kept from its last round of this network (``optimizer_state: "kept"``)."""
    kept = _kept(context, "optimizer", phase=phase, genotype=genotype)
    return None if kept is None else [kept[0][key] for key in sorted(kept[0])]


def _keep_optimizer_state(context, state: list[np.ndarray], phase: str, genotype: str) -> None:
    _keep(context, "optimizer", {f"{index:05d}": value for index, value in enumerate(state)}, phase=phase,
          genotype=genotype)


def _uses_ema(recipe: FederationRecipe, phase: str) -> bool:
    return recipe.ema is not None and phase == "train"


#: The node-state records a site keeps between rounds (with their ``-meta`` config records).
_KEPT = ("ema", "optimizer", "local")


def _state_file(state_dir: Path, name: str, phase: str, server_round: int) -> Path:
    return state_dir / f"{name}-{phase}-round{server_round:03d}.npz"


def _save_site_state(settings: _Settings, name: str, context, phase: str, server_round: int) -> None:
    """Write what the site keeps in its node state to ``state_dir`` after its training of a round (atomically;
    the last two rounds' files are kept: the server's checkpoint may be a round behind the site's)."""
    if settings.state_dir is None:
        return
    arrays, meta = {}, {}
    for key in _KEPT:
        kept = _state_arrays(context, key)
        if kept is None:
            continue
        meta[key] = {"names": list(kept), "meta": dict(context.state.config_records.get(f"{key}-meta") or {})}
        arrays.update({f"{key}_{j}": value for j, value in enumerate(kept.values())})
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    write_npz(_state_file(settings.state_dir, name, phase, server_round), meta=np.array(json.dumps(meta)), **arrays)
    keep = {_state_file(settings.state_dir, name, phase, r).name for r in (server_round, server_round - 1)}
    for old in settings.state_dir.glob(f"{name}-*.npz"):
        if old.name not in keep:
            old.unlink()


def _restore_site_state(settings: _Settings, name: str, context, phase: str, server_round: int) -> None:
    """Once per node state (a new process or a new run): a resumed federation's round r finds the state the
    site kept after round r - 1 of the same phase in ``state_dir``, and continues from it."""
    if "restored" in context.state.config_records:
        return
    context.state["restored"] = ConfigRecord({"round": server_round})
    path = None if settings.state_dir is None else _state_file(settings.state_dir, name, phase, server_round - 1)
    if path is None or not path.is_file():
        return
    with np.load(path, allow_pickle=False) as stored:
        meta = json.loads(str(stored["meta"]))
        for key, kept in meta.items():
            _keep(context, key, {n: stored[f"{key}_{j}"] for j, n in enumerate(kept["names"])}, **kept["meta"])


@dataclass
class _Request:
    """What a train or evaluate message asks of a site: its network (phase and genotype), the weights
    received (the global ones) and the weights it starts from (a ``"local"`` site: its own, once it has
    trained)."""

    site: _Site
    settings: _Settings
    name: str
    phase: str
    genotype: str
    server_round: int
    received: dict[str, np.ndarray]
    start: dict[str, np.ndarray]
    local: bool


def _request(settings: dict | None, message, context) -> _Request:
    site_settings, name = _client_settings(settings, context)
    site = _site(site_settings, name)
    config = message.content["config"]
    _restore_site_state(site_settings, name, context, str(config["phase"]), int(config["server-round"]))
    received = _received(message)
    local = site.recipe.options.strategy == "local"
    return _Request(site, site_settings, name, str(config["phase"]), str(config["genotype"]),
                    int(config["server-round"]), received,
                    (_state_arrays(context, "local") or received) if local else received, local)


def _train(settings: dict | None, message, context) -> Message:
    request = _request(settings, message, context)
    site, phase, genotype, start = request.site, request.phase, request.genotype, request.start
    recipe, options = site.recipe, site.recipe.options
    if not request.local and _uses_ema(recipe, phase):
        ema = _ema(context, recipe, genotype)
        start = ema.update(request.received)
        _keep_ema(context, ema, genotype)
    model = site.model(phase, genotype)
    set_model_arrays(model, start)
    mu = message.content["config"].get("proximal-mu")
    worker = site.worker(phase, genotype, proximal=mu is not None)
    kept = options.optimizer_state == "kept"
    state = _optimizer_state(context, phase, genotype) if kept else None
    if phase == "search":
        steps = recipe.search.local_steps
        losses = worker.run(site.data.training_batches(phase, request.server_round, steps, options.batch_size),
                            site.data.training_batches(phase, request.server_round, steps, options.batch_size,
                                                       split="val"), steps, optimizer_state=state)
        metrics = {"train-loss": losses["train_loss"], "alpha-loss": losses["val_loss"]}
    else:
        batches = site.data.training_batches(phase, request.server_round, options.local_steps, options.batch_size)
        # FedProx pulls towards the global weights received, also when the site trains from its EMA of them
        metrics = {"train-loss": worker.run(batches, None if mu is None else float(mu),
                                            anchor=None if mu is None else request.received, optimizer_state=state)}
    if kept:
        _keep_optimizer_state(context, worker.optimizer_state(), phase, genotype)
    metrics["num-examples"] = site.count
    trained = model_arrays(model)
    content = RecordDict({"metrics": MetricRecord(metrics)})
    if request.local:
        context.state["local"] = _array_record(trained)
    else:
        content["arrays"] = _array_record(trained)
    _save_site_state(request.settings, request.name, context, phase, request.server_round)
    return Message(content, reply_to=message)


def _evaluate(settings: dict | None, message, context) -> Message:
    request = _request(settings, message, context)
    site, phase, genotype = request.site, request.phase, request.genotype
    recipe = site.recipe
    model = site.model(phase, genotype)
    set_model_arrays(model, request.start)
    metrics = evaluate(model, site.heldout, recipe.options.loss)
    if not request.local and _uses_ema(recipe, phase):
        set_model_arrays(model, _ema(context, recipe, genotype).peek(request.received))
        metrics.update({f"ema-{key}": value for key, value in evaluate(model, site.heldout, recipe.options.loss).items()})
    metrics["num-examples"] = site.eval_examples
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=message)


def _identify(settings: dict | None, message, context) -> Message:
    site_settings, name = _client_settings(settings, context)
    site = _site(site_settings, name)
    return Message(RecordDict({"site": ConfigRecord({"site": name}),
                               "metrics": MetricRecord({"num-examples": site.count})}), reply_to=message)


# ------------------------------------------------------------------------------------------------ the server


def _tracking(base):
    """``base`` (a Flower strategy) whose rounds are recorded in a :class:`~.outputs.FederationLog`."""

    class Tracked(base):
        """Rounds numbered from ``first_round`` + 1 (a resumed phase), each recorded, and the global weights
        checkpointed after each round's evaluation (``checkpoint``: ``(phases, initial arrays)`` or None)."""

        def __init__(self, *args, log, phase: str, first_round: int = 0, checkpoint=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.log, self.phase, self.first_round = log, phase, int(first_round)
            self.phases, self._latest = checkpoint if checkpoint is not None else (None, None)

        def _sent(self, stage: str, server_round: int, messages) -> list:
            messages = list(messages)
            self.log.sent(self.phase, stage, server_round, [m.metadata.dst_node_id for m in messages])
            return messages

        def _received(self, stage: str, server_round: int, replies) -> list:
            replies = list(replies)
            self.log.received(self.phase, stage, server_round, replies)
            return replies

        def configure_train(self, server_round, arrays, config, grid):
            server_round += self.first_round
            return self._sent("train", server_round, super().configure_train(server_round, arrays, config, grid))

        def configure_evaluate(self, server_round, arrays, config, grid):
            server_round += self.first_round
            return self._sent("evaluate", server_round, super().configure_evaluate(server_round, arrays, config, grid))

        def aggregate_train(self, server_round, replies):
            server_round += self.first_round
            replies = self._received("train", server_round, replies)
            arrays, metrics = self._aggregate_train(server_round, replies)
            self.log.aggregated(self.phase, server_round, replies, arrays)
            if arrays is not None:
                self._latest = {key: array.numpy() for key, array in arrays.items()}
            return arrays, metrics

        def _aggregate_train(self, server_round, replies):
            return super().aggregate_train(server_round, replies)

        def aggregate_evaluate(self, server_round, replies):
            server_round += self.first_round
            result = super().aggregate_evaluate(server_round, self._received("evaluate", server_round, replies))
            if self.phases is not None:
                self.log.checkpoint(self.phases, self.phase, server_round, self._latest)
            return result

    Tracked.__name__ = Tracked.__qualname__ = base.__name__
    return Tracked


def make_strategy(recipe: FederationRecipe, log, phase: str = "train", first_round: int = 0, checkpoint=None):
    """Flower's strategy of the recipe, recording into ``log``: ``FedAvg`` (``fedavg``, and ``fedautomri``:
    its search averages w and alpha alike), ``FedProx`` with ``proximal_mu`` (``fedprox``), and for
    ``local`` a FedAvg that averages nothing (each site keeps its weights). Its rounds are numbered from
    ``first_round`` + 1; ``checkpoint`` ``(phases, initial arrays)``: the log checkpoints every round."""
    minimum = recipe.min_clients
    common = dict(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=minimum, min_evaluate_nodes=minimum,
                  min_available_nodes=minimum, log=log, phase=phase, first_round=first_round, checkpoint=checkpoint)
    strategy = recipe.options.strategy
    if strategy == "fedprox":
        return _tracking(FedProx)(proximal_mu=recipe.options.proximal_mu, **common)
    if strategy == "local":
        return _local_strategy()(**common)
    return _tracking(FedAvg)(**common)


def _local_strategy():
    class LocalOnly(_tracking(FedAvg)):
        """Sites train alone: nothing is averaged, the global weights stay the initial ones."""

        def _aggregate_train(self, server_round, replies):
            valid = [reply.content for reply in replies if not reply.has_error()]
            return None, (self.train_metrics_aggr_fn(valid, self.weighted_by_key) if valid else None)

    return LocalOnly


def _identify_sites(grid, recipe: FederationRecipe, log) -> None:
    """Ask every SuperNode which site it is, once all of them are connected or ``connect_timeout`` seconds
    have passed; the answers may take up to a round's ``timeout`` (a site loads its data to count it, and a
    simulation starts its ClientApp actors first)."""
    options = recipe.options
    expected = {site.name for site in recipe.sites}
    deadline = time.time() + options.connect_timeout
    while len(list(grid.get_node_ids())) < len(expected) and time.time() < deadline:
        time.sleep(1.0)
    nodes = list(grid.get_node_ids())
    messages = [Message(RecordDict({"config": ConfigRecord({"question": "site"})}), message_type=MessageType.QUERY,
                        dst_node_id=node) for node in nodes]
    for reply in grid.send_and_receive(messages, timeout=options.timeout):
        if reply.has_error():
            log.event(f"a SuperNode (id {reply.metadata.src_node_id}) did not say which site it is: "
                      f"{reply.error.reason}")
            continue
        name = str(reply.content["site"]["site"])
        if name not in expected:
            raise ValueError(f"a SuperNode says it is site {name!r}, not a site of the recipe "
                             f"({sorted(expected)}); check its --node-config site.")
        log.add_site(reply.metadata.src_node_id, name, int(reply.content["metrics"]["num-examples"]))
    missing = sorted(expected - set(log.site_of.values()))
    if len(log.site_of) < recipe.min_clients:
        raise RuntimeError(f"{len(log.site_of)} site(s) joined ({sorted(log.site_of.values())}) within "
                           f"connect_timeout={options.connect_timeout:g} s and timeout={options.timeout:g} s, fewer "
                           f"than min_clients={recipe.min_clients}; missing: {missing}.")
    for name in missing:
        log.event(f"site {name} never joined; the federation goes on without it")
        log.dropped.append({"site": name, "phase": "start", "round": 0, "stage": "query", "reason": "never joined"})


def _build(recipe: FederationRecipe, phase: str, genotype=None):
    keras.utils.set_random_seed(recipe.options.seed)
    model = recipe.build_model(phase, genotype)
    model(example_inputs(recipe))
    return model


def serve(grid, settings: _Settings) -> dict:
    """The ServerApp's work: identify the sites, run the recipe's phases with Flower's strategies, write the
    outputs (:mod:`.outputs`, a checkpoint after every round); returns the facts of the run
    (``federation.json``). A checkpoint of the same recipe in the output folder is resumed: the phases and
    rounds it reached are not run again, the sites restore their own state (``state-dir``)."""
    recipe, options = settings.recipe, settings.recipe.options
    log = FederationLog(recipe, settings.out_dir)
    resume = read_checkpoint(settings.out_dir, recipe)
    phases = ([("search", recipe.search.rounds)] if recipe.search is not None else []) + [("train", options.rounds)]
    names = [phase for phase, _ in phases]
    if resume is not None:
        log.restore(resume)
    _identify_sites(grid, recipe, log)
    genotype = None if resume is None or resume["phase"] == "search" else resume["genotype"]
    model = None
    for index, (phase, rounds) in enumerate(phases):
        first = 0
        if resume is not None and index < names.index(resume["phase"]):
            continue  # finished before the checkpoint (its genotype is the checkpoint's)
        model = _build(recipe, phase, genotype)
        if resume is not None and phase == resume["phase"]:
            first = min(int(resume["round"]), rounds)
            if resume["arrays"] is not None:
                set_model_arrays(model, resume["arrays"])
        if first < rounds:
            initial = model_arrays(model)
            strategy = make_strategy(recipe, log, phase, first_round=first, checkpoint=(names, initial))
            config = {"phase": phase, "genotype": "" if genotype is None else json.dumps(genotype)}
            result = strategy.start(grid=grid, initial_arrays=_array_record(initial), num_rounds=rounds - first,
                                    timeout=options.timeout, train_config=ConfigRecord(dict(config)),
                                    evaluate_config=ConfigRecord(dict(config)))
            if options.strategy != "local" and result.arrays is not None:
                set_model_arrays(model, {key: array.numpy() for key, array in result.arrays.items()})
        log.phase_done(phase, model)
        if phase == "search":
            genotype = model.derived_genotype().to_config()
    return log.finish(model if options.strategy != "local" else None, example_inputs(recipe), flwr.__version__)


def flower_apps(settings: dict | None = None):
    """``(client_app, server_app)``: Flower's ``ClientApp`` and ``ServerApp`` of the federation.

    settings: ``{"recipe": dict, "source": recipe path or None, "data-dir": the data root, "out-dir": where
    the server writes}`` (a simulation: site i is the SuperNode of ``partition-id`` i); None: read them
    from the run config and the node config (a deployment, see the module docstring)."""
    client_app, server_app = ClientApp(), ServerApp()

    @client_app.query()
    def identify(message, context):
        return _identify(settings, message, context)

    @client_app.train()
    def train(message, context):
        return _train(settings, message, context)

    @client_app.evaluate()
    def evaluate(message, context):
        return _evaluate(settings, message, context)

    @server_app.main()
    def main(grid, context):
        serve(grid, _server_settings(settings, context))

    return client_app, server_app


def run_in_simulation(recipe: FederationRecipe, data_dir: str | os.PathLike | None, out_dir: str | os.PathLike, *,
                      cpus_per_client: float = 1.0, verbose: bool = False) -> dict:
    """Run the federation of ``recipe`` on this machine with Flower's simulation engine
    (``flwr.simulation.run_simulation``, one virtual SuperNode per site, every site reading the data root
    ``data_dir``); the ServerApp writes into ``out_dir``. Returns ``federation.json``'s content."""
    from flwr.simulation import run_simulation  # not at the top: it imports Ray (seconds), which no SuperNode needs

    out_dir = Path(out_dir).expanduser().absolute()
    settings = {"recipe": recipe.raw, "source": None if recipe.source is None else str(recipe.source),
                "data-dir": None if data_dir is None else str(Path(data_dir).expanduser().absolute()),
                "out-dir": str(out_dir)}
    client_app, server_app = flower_apps(settings)
    # Ray starts its workers (the sites' ClientApps, which do all the work here) at niceness 15, so any other
    # process on the machine starves them; run them at the caller's priority unless the user chose otherwise.
    os.environ.setdefault("RAY_worker_niceness", "0")
    backend = {"client_resources": {"num_cpus": float(cpus_per_client), "num_gpus": 0.0},
               "init_args": {"num_cpus": max(1, os.cpu_count() or 1), "num_gpus": 0}}
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=len(recipe.sites),
                   backend_config=backend, verbose_logging=verbose)
    facts = out_dir / "federation.json"
    if not facts.is_file():
        raise RuntimeError(f"the simulation ended without writing {facts}; see Flower's log above.")
    return json.loads(facts.read_text(encoding="utf-8"))
