"""What a federation leaves in OUT_DIR, written by the ServerApp (every file atomically):

- ``metrics.csv``: one row per site, phase, round and stage (``train`` / ``evaluate``), rewritten after
  every stage: ``status`` (``ok``; ``missing``: the site was asked and did not answer; ``absent``: the
  site was no longer connected and not asked), ``num_examples`` (the site's sample count in training,
  its held-out examples in evaluation), ``train_loss`` and ``alpha_loss`` (the mean losses of its local
  steps), ``loss``, ``psnr``, ``ssim``, ``nmse`` on its held-out examples, and ``ema_*`` the same for the
  bias-corrected EMA of the global weights;
- ``curves.png``: every site's held-out PSNR and training loss against the rounds, one column per phase
  (dashed: the EMA), redrawn after every evaluation;
- ``federation.json``: the facts of the run: recipe, strategy, sites (SuperNode id, sample count, rounds
  answered), ``dropped`` (every site that stopped answering: its name, the phase, round and stage, and
  Flower's reason), events, the genotype, parameter count, last metrics per site, ``preset`` (the folder's name in OUT_DIR, null
  without one), wall time, versions;
- ``genotype.json`` and ``cell.png`` (FedAutoMRI): the cell derived from the averaged alpha;
- ``preset/``: the final global network as a zoo checkpoint (not for ``local``: there is none);
- ``updates/PHASE-roundNNN.npz`` (``save_updates``): what each site sent and the aggregate, an audit of
  the averaging: ``sites``, ``counts``, ``keys`` and arrays ``update_I_J`` (site I, weight J) and ``global_J``;
- ``checkpoint/`` (after every round): ``state.json`` (the recipe, the phase and round reached, the genotype,
  the log's events, drops and parameter counts, the wall time so far) and ``global-PHASE-roundNNN.npz`` (the
  global weights then), from which the same command resumes the federation (:func:`read_checkpoint`); and
  ``sites/`` in a simulation (the sites' own state: EMA, optimizer, local weights; a deployment's sites keep
  theirs in their node config's ``state-dir``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from ..presets import save_to_preset
from ..search.outputs import save_cell_png, write_genotype
from ..utils import write_json, write_npz, write_text
from ..version import __version__
from ..viz import _figure, _save_figure
from .recipe import FederationRecipe

__all__ = ["FederationLog", "METRIC_COLUMNS", "CHECKPOINT_DIR", "last_metrics", "read_checkpoint", "read_metrics",
           "save_curves_png"]

#: The columns of ``metrics.csv``.
METRIC_COLUMNS = ("phase", "round", "site", "stage", "status", "num_examples", "train_loss", "alpha_loss", "loss",
                  "psnr", "ssim", "nmse", "ema_loss", "ema_psnr", "ema_ssim", "ema_nmse")
_LOGGER = logging.getLogger("fastmri_zoo.federated")
#: The folder of OUT_DIR a federation resumes from.
CHECKPOINT_DIR = "checkpoint"


def _comparable(raw: dict) -> dict:
    """A recipe without what a resumed federation may change: the number of rounds of the training phase."""
    raw = json.loads(json.dumps(raw))
    raw.get("federation", {}).pop("rounds", None)
    return raw


def read_checkpoint(out_dir: str | os.PathLike, recipe: FederationRecipe) -> dict | None:
    """The checkpoint a federation left in ``out_dir`` (``state.json``'s content, with ``arrays``: the global
    weights, a dict of numpy arrays, or None), or None when there is none. A checkpoint of another recipe
    (anything but ``federation.rounds`` changed) is refused: its weights would not fit."""
    folder = Path(out_dir) / CHECKPOINT_DIR
    if not (folder / "state.json").is_file():
        return None
    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    if _comparable(state["recipe"]) != _comparable(recipe.raw):
        raise ValueError(f"OUT_DIR {str(out_dir)!r} holds a federation of another recipe (its "
                         f"{CHECKPOINT_DIR}/state.json); choose a new OUT_DIR, or run that recipe to resume it.")
    state["arrays"] = None
    if state.get("arrays_file"):
        with np.load(folder / state["arrays_file"], allow_pickle=False) as stored:
            state["arrays"] = {key: stored[f"global_{j}"] for j, key in enumerate(state["array_keys"])}
    return state


class FederationLog:
    """The server's record of a federation (module docstring); the strategies of
    :func:`~fastmri_zoo.federated.flower.make_strategy` report every message to it."""

    def __init__(self, recipe: FederationRecipe, out_dir: str | os.PathLike):
        self.recipe = recipe
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ValueError(f"OUT_DIR: {str(self.out_dir)!r} is a file; expected a folder.")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.site_of: dict[int, str] = {}
        self.counts: dict[str, int] = {}
        self.rows: list[dict] = []
        self.dropped: list[dict] = []
        self.events: list[str] = []
        self.genotype = None
        self.parameters: dict[str, int] = {}
        self._sent: dict[tuple, list[int]] = {}
        self._start = time.time()

    def restore(self, state: dict) -> None:
        """Continue the record of a federation from its checkpoint (:func:`read_checkpoint`): the rows of
        ``metrics.csv`` up to the round it reached, its events, drops, genotype, parameter counts, wall time."""
        phases = state["phases"]
        reached = (phases.index(state["phase"]), int(state["round"]))
        path = self.out_dir / "metrics.csv"
        rows = read_metrics(path) if path.is_file() else []
        self.rows = [row for row in rows if (phases.index(row["phase"]), int(row["round"])) <= reached]
        self.events, self.dropped = list(state["events"]), list(state["dropped"])
        self.genotype, self.parameters = state["genotype"], dict(state["parameters"])
        self._start = time.time() - float(state["wall_time_seconds"])
        self.event(f"resumed after {state['phase']} round {state['round']} (from {CHECKPOINT_DIR}/state.json)")

    def checkpoint(self, phases: list[str], phase: str, server_round: int, arrays: dict | None) -> None:
        """Write ``checkpoint/`` (module docstring): the global weights first, then ``state.json`` naming them,
        then the older weights files are removed; an interruption at any point leaves a consistent pair."""
        folder = self.out_dir / CHECKPOINT_DIR
        folder.mkdir(exist_ok=True)
        name = None
        if arrays is not None:
            name = f"global-{phase}-round{server_round:03d}.npz"
            write_npz(folder / name, **{f"global_{j}": value for j, value in enumerate(arrays.values())})
        write_json(folder / "state.json", {
            "recipe": self.recipe.raw, "phases": list(phases), "phase": phase, "round": int(server_round),
            "arrays_file": name, "array_keys": [] if arrays is None else list(arrays),
            "genotype": self.genotype, "events": self.events, "dropped": self.dropped,
            "parameters": self.parameters, "wall_time_seconds": time.time() - self._start})
        for old in folder.glob("global-*.npz"):
            if old.name != name:
                old.unlink()

    def add_site(self, node_id: int, name: str, count: int) -> None:
        if name in self.site_of.values():
            raise ValueError(f"two SuperNodes say they are site {name!r}; give each its own --node-config site.")
        self.site_of[int(node_id)] = name
        self.counts[name] = int(count)
        self.event(f"site {name} is SuperNode {node_id} ({count} training slices)")

    def event(self, text: str) -> None:
        self.events.append(text)
        _LOGGER.warning(text)
        print(f"[federation] {text}", flush=True)

    def _site(self, node_id: int) -> str:
        return self.site_of.get(int(node_id), f"node-{node_id}")

    def sent(self, phase: str, stage: str, server_round: int, node_ids: list[int]) -> None:
        self._sent[(phase, stage, server_round)] = [int(n) for n in node_ids]

    def received(self, phase: str, stage: str, server_round: int, replies: list) -> None:
        """Record the replies of a stage; a site asked and not answering is reported as dropped, and fewer
        answers than ``min_clients`` stop the federation."""
        valid = [reply for reply in replies if not reply.has_error()]
        # the SuperLink sends the error replies of a node it lost (its own node id as sender): a site is named by
        # which node was asked and gave no valid reply, and the errors' reasons go with it
        reasons = sorted({str(reply.error.reason) for reply in replies if reply.has_error()})
        answered = {}
        for reply in valid:
            name = self._site(reply.metadata.src_node_id)
            metrics = dict(reply.content["metrics"])
            row = {"phase": phase, "round": server_round, "site": name, "stage": stage, "status": "ok",
                   "num_examples": metrics.pop("num-examples", None)}
            row.update({key.replace("-", "_"): value for key, value in metrics.items()})
            answered[name] = row
        asked = {self._site(node) for node in self._sent.get((phase, stage, server_round), [])}
        for name in sorted(set(self.site_of.values()) | asked):
            if name in answered:
                self.rows.append(answered[name])
                continue
            status = "missing" if name in asked else "absent"
            self.rows.append({"phase": phase, "round": server_round, "site": name, "stage": stage, "status": status})
            # every connected node is asked (fraction 1), so a known site not asked has disconnected: dropped too
            if name not in {entry["site"] for entry in self.dropped}:
                reason = ("; ".join(reasons) or "no reply") if status == "missing" else "no longer connected"
                self.dropped.append({"site": name, "phase": phase, "round": server_round, "stage": stage,
                                     "reason": reason})
                self.event(f"site {name} dropped in {phase} round {server_round} ({stage}): {reason}; the "
                           f"federation goes on with {sorted(answered)}")
        self.write_metrics()
        if stage == "evaluate":
            try:
                save_curves_png(self.out_dir / "curves.png", self.rows, title=f"{self.recipe.name} "
                                f"({self.recipe.options.strategy})")
            except (OSError, ValueError) as error:  # a picture must never stop a federation
                _LOGGER.warning("curves not drawn: %s", error)
        if len(valid) < self.recipe.min_clients:
            raise RuntimeError(f"{phase} round {server_round} ({stage}): {len(valid)} site(s) answered "
                               f"({sorted(answered)}), fewer than min_clients={self.recipe.min_clients}: "
                               f"{'; '.join(reasons) or 'no reply'}")

    def aggregated(self, phase: str, server_round: int, replies: list, arrays) -> None:
        """Keep what each site sent and the aggregate (``save_updates``)."""
        if not self.recipe.options.save_updates or arrays is None:
            return
        valid = [reply for reply in replies if not reply.has_error()]
        keys = list(arrays.keys())
        payload = {"sites": np.array([self._site(r.metadata.src_node_id) for r in valid]),
                   "counts": np.array([float(r.content["metrics"]["num-examples"]) for r in valid]),
                   "keys": np.array(keys)}
        for i, reply in enumerate(valid):
            sent = reply.content["arrays"]
            payload.update({f"update_{i}_{j}": sent[key].numpy() for j, key in enumerate(keys)})
        payload.update({f"global_{j}": arrays[key].numpy() for j, key in enumerate(keys)})
        folder = self.out_dir / "updates"
        folder.mkdir(exist_ok=True)
        write_npz(folder / f"{phase}-round{server_round:03d}.npz", **payload)

    def phase_done(self, phase: str, model) -> None:
        self.parameters[phase] = int(model.count_params())
        if phase == "search":
            genotype = model.derived_genotype()
            self.genotype = genotype.to_config()
            write_genotype(self.out_dir / "genotype.json", genotype)
            save_cell_png(self.out_dir / "cell.png", genotype, title=f"{self.recipe.name}: federated MiLeNAS cell")
            self.event(f"search done: genotype {genotype.to_json()}")

    def write_metrics(self) -> str:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({key: (f"{value:.7g}" if isinstance(value, float) else value)
                             for key, value in row.items()})
        return write_text(self.out_dir / "metrics.csv", text.getvalue())

    def finish(self, model, example_inputs, flower_version: str) -> dict:
        """Write the final preset (when there is a global network) and ``federation.json``; returns its content."""
        preset = None
        if model is not None:
            options = self.recipe.options
            preset = save_to_preset(
                model, self.out_dir / "preset", example_inputs=example_inputs, name=self.recipe.name,
                description=(f"{type(model).__name__} trained by federated learning ({options.strategy}, Flower "
                             f"{flower_version}) over {len(self.counts)} sites ({', '.join(self.counts)}): "
                             f"{options.rounds} rounds of {options.local_steps} local steps"
                             + (f", genotype {json.dumps(self.genotype)}" if self.genotype else "") + "."),
                training_command=f"fastmri-zoo federate {self.recipe.source.name if self.recipe.source else 'RECIPE'}",
                metrics=self.last_metrics("train", weighted=True))
        last = {name: self.last_site_metrics(name) for name in self.counts}
        facts = {
            "recipe": self.recipe.raw,
            "strategy": self.recipe.options.strategy,
            "sites": {name: {"node": node, "training_examples": self.counts[name],
                             "rounds_answered": sum(1 for row in self.rows if row["site"] == name
                                                    and row["stage"] == "train" and row["status"] == "ok")}
                      for node, name in self.site_of.items()},
            "dropped": self.dropped,
            "events": self.events,
            "genotype": self.genotype,
            "parameters": self.parameters,
            "last_metrics": last,
            "preset": None if preset is None else "preset",  # relative to OUT_DIR: the folder may move
            "wall_time_seconds": time.time() - self._start,
            "versions": {"fastmri_zoo": __version__, "flwr": flower_version},
        }
        write_json(self.out_dir / "federation.json", facts)
        return facts

    def last_site_metrics(self, name: str) -> dict:
        rows = [row for row in self.rows if row["site"] == name and row["stage"] == "evaluate" and row["status"] == "ok"]
        return {key: value for key, value in rows[-1].items() if key in METRIC_COLUMNS[6:]} if rows else {}

    def last_metrics(self, phase: str, weighted: bool = True) -> dict:
        """:func:`last_metrics` of this federation's rows."""
        return last_metrics(self.rows, phase, weighted)


def last_metrics(rows: list[dict], phase: str, weighted: bool = True) -> dict:
    """The held-out metrics of the last evaluation of ``phase``, averaged over the sites (weighted by
    their held-out examples); ``rows``: :class:`FederationLog` rows or :func:`read_metrics`'s."""
    rows = [row for row in rows if row["phase"] == phase and row["stage"] == "evaluate" and row["status"] == "ok"]
    if not rows:
        return {}
    last = [row for row in rows if row["round"] == rows[-1]["round"]]
    weights = np.array([float(row["num_examples"]) if weighted else 1.0 for row in last])
    return {key: float(np.sum(weights * [row[key] for row in last]) / weights.sum())
            for key in ("psnr", "ssim", "nmse")}


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """``metrics.csv`` as a list of rows, numbers as numbers (empty cells: None)."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        for key, value in row.items():
            if key in ("phase", "site", "stage", "status"):
                continue
            row[key] = None if value in ("", None) else (int(value) if key == "round" else float(value))
    return rows


def save_curves_png(path: str | os.PathLike, rows: list[dict], title: str | None = None) -> str:
    """Draw every site's held-out PSNR (top) and mean local training loss (bottom) against the rounds, one
    column per phase; dashed: the bias-corrected EMA. ``rows``: :class:`FederationLog` rows or
    :func:`read_metrics`'s. Returns the path."""
    phases = list(dict.fromkeys(row["phase"] for row in rows))
    if not phases:
        raise ValueError("rows: nothing to draw.")
    sites = list(dict.fromkeys(row["site"] for row in rows))
    fig = _figure((4.6 * len(phases), 6.0))
    axes = fig.subplots(2, len(phases), squeeze=False)
    for column, phase in enumerate(phases):
        for index, site in enumerate(sites):
            colour = f"C{index % 10}"
            for row_index, (stage, key) in enumerate((("evaluate", "psnr"), ("train", "train_loss"))):
                points = [(row["round"], row.get(key)) for row in rows if row["phase"] == phase and row["site"] == site
                          and row["stage"] == stage and row.get(key) is not None]
                if points:
                    axes[row_index, column].plot(*zip(*points), "o-", ms=3, color=colour, label=site)
                ema = [(row["round"], row.get("ema_psnr")) for row in rows if row["phase"] == phase
                       and row["site"] == site and row["stage"] == "evaluate" and row.get("ema_psnr") is not None]
                if row_index == 0 and ema:
                    axes[0, column].plot(*zip(*ema), "--", color=colour, lw=1, label=f"{site} (EMA)")
        axes[0, column].set_title(f"{phase}: held-out PSNR" + (f" - {title}" if title and column == 0 else ""),
                                  fontsize=9)
        axes[0, column].set_ylabel("PSNR (dB)")
        axes[1, column].set_ylabel("mean local training loss")
        axes[1, column].set_xlabel("round")
        for ax in axes[:, column]:
            ax.grid(alpha=0.3)
        axes[0, column].legend(fontsize=7)
    return _save_figure(fig, path)
