"""The nine ReconODE variants (FA / FT / LT x Euler / RK2 / RK4) trained with one equal, smaller budget
and scored on the same held-out IXI subjects (issue #15's table).

    python scripts/reconode_table.py train DATA_DIR RUNS_DIR [--only lt_rk4 ft_euler ...] [--base RECIPE]
    python scripts/reconode_table.py score DATA_DIR RUNS_DIR [--max-volumes 15]
    python scripts/reconode_table.py table RUNS_DIR          (table.md and curves.png again from table.json)

Every variant's recipe is the shipped LT-RK4 recipe (``--base``, default
``weights/reconode-lt_rk4-cartesian-singlecoil-af4/recipe.json``) with its mode and solver, on the
smaller budget ``SWEEP``: 64 x 64 crops, 1,000 steps of batch 2, the learning rate x0.1 from step
800. ``train`` writes ``RUNS_DIR/VARIANT/recipe.json`` and runs ``fastmri-zoo train`` on it, one
variant after another (a variant whose ``run/preset`` exists is done; an interrupted one resumes from
its backup). ``score`` scores each trained preset on the held-out subjects as ``evaluate_ixi.py`` does
(volume-wise fastMRI metrics, masks seeded per slice), writes ``RUNS_DIR/table.md`` (the table, the
paper's orderings and whether each holds) and ``RUNS_DIR/curves.png`` (the nine validation curves).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = os.path.join(HERE, "..", "weights", "reconode-lt_rk4-cartesian-singlecoil-af4", "recipe.json")
MODES = ("fa", "ft", "lt")
SOLVERS = ("euler", "rk2", "rk4")
#: the smaller, equal budget of the nine
SWEEP = dict(size=[64, 64], steps=1000, steps_per_epoch=100, drop_at=800, val_examples=32, val_steps=16)
#: the paper's orderings (Table 1) the table is checked against: (better, worse)
ORDERINGS = [("lt_rk4", "lt_rk2"), ("lt_rk2", "lt_euler")] + [
    (f"{better}_{solver}", f"{worse}_{solver}") for solver in SOLVERS for better, worse in (("lt", "ft"), ("ft", "fa"))]
#: the paper's PSNR at AF 4 on fastMRI single-coil knee, where it gives one
PAPER_AF4 = {"fa_euler": 31.21, "ft_rk4": 31.82, "lt_euler": 31.86, "lt_rk2": 32.19, "lt_rk4": 32.39}


def variants() -> list[str]:
    return [f"{mode}_{solver}" for mode in MODES for solver in SOLVERS]


def sweep_recipe(base: dict, variant: str, steps: int = SWEEP["steps"]) -> dict:
    """The base recipe with ``variant``'s mode and solver on the ``SWEEP`` budget (``steps``: fewer, for a
    smoke run: epochs of ``min(steps, 100)`` steps, no drop)."""
    mode, solver = variant.split("_")
    per_epoch = min(int(steps), SWEEP["steps_per_epoch"])
    recipe = copy.deepcopy(base)
    recipe["name"] = f"reconode-{variant}-sweep"
    recipe["model"] = {"class": "ReconODE", "kwargs": dict(recipe["model"].get("kwargs", {}), mode=mode, solver=solver)}
    recipe["data"]["synthesis"].update(size=SWEEP["size"], val_examples=SWEEP["val_examples"])
    recipe["training"].update(steps=int(steps), steps_per_epoch=per_epoch, val_steps=SWEEP["val_steps"],
                              learning_rate_drops=[[SWEEP["drop_at"], 0.1]] if steps == SWEEP["steps"] else [])
    recipe.pop("card", None)  # not a checkpoint of the zoo
    return recipe


def train(args) -> None:
    with open(args.base, encoding="utf-8") as handle:
        base = json.load(handle)
    for variant in args.only or variants():
        folder = os.path.join(args.runs_dir, variant)
        if os.path.isdir(os.path.join(folder, "run", "preset")):
            print(f"{variant}: done", flush=True)
            continue
        os.makedirs(folder, exist_ok=True)
        recipe_path = os.path.join(folder, "recipe.json")
        with open(recipe_path, "w", encoding="utf-8") as handle:
            json.dump(sweep_recipe(base, variant, args.steps), handle, indent=2)
        print(f"{variant}: training", flush=True)
        with open(os.path.join(folder, "train.log"), "a", encoding="utf-8") as log:
            subprocess.run(["fastmri-zoo", "train", recipe_path, "--data", args.data_dir, "--run-dir",
                            os.path.join(folder, "run"), "--verbose", "2"], stdout=log, stderr=subprocess.STDOUT,
                           check=True)


def _curve(run_dir: str) -> tuple[list[int], list[float]]:
    """(steps, validation PSNR) of a run's log.csv."""
    with open(os.path.join(run_dir, "log.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(os.path.join(run_dir, "run.json"), encoding="utf-8") as handle:
        per_epoch = json.load(handle)["steps_per_epoch"]
    return ([(int(row["epoch"]) + 1) * per_epoch for row in rows],
            [float(row["val_psnr"]) for row in rows])


def score(args) -> None:
    sys.path.insert(0, HERE)
    import evaluate_ixi  # the held-out scoring of the shipped checkpoints, beside this script

    from fastmri_zoo import metrics
    from fastmri_zoo.data.pipelines import list_h5_files
    from fastmri_zoo.presets import from_preset
    from fastmri_zoo.training import load_recipe

    rows = {}
    for variant in variants():
        run_dir = os.path.join(args.runs_dir, variant, "run")
        if not os.path.isdir(os.path.join(run_dir, "preset")):
            print(f"{variant}: not trained yet", flush=True)
            continue
        recipe = load_recipe(os.path.join(args.runs_dir, variant, "recipe.json"))
        model = from_preset(os.path.join(run_dir, "preset"))
        files = list_h5_files(evaluate_ixi._test_folder(recipe, args.data_dir, "test"))[: args.max_volumes]
        results = evaluate_ixi._score(model, files, dict(recipe.acquisition), log=False)
        with open(os.path.join(run_dir, "run.json"), encoding="utf-8") as handle:
            run = json.load(handle)
        rows[variant] = {"params": model.count_params(), "hours": run["wall_time_seconds"] / 3600, "steps": run["steps"],
                         **{method: metrics.summarize(values) for method, values in results.items()}}
        print(variant, round(rows[variant]["network"]["psnr"][0], 2), flush=True)
    with open(os.path.join(args.runs_dir, "table.json"), "w", encoding="utf-8") as handle:
        json.dump(rows, handle, indent=1)
    write_table(args.runs_dir, rows, args.max_volumes)


#: a variant this far below zero-filled on the held-out subjects diverged in training
DIVERGED_BELOW_ZERO_FILLED_DB = 3.0


def _diverged(row) -> bool:
    return row["network"]["psnr"][0] < row["zero-filled"]["psnr"][0] - DIVERGED_BELOW_ZERO_FILLED_DB


def _label(variant: str) -> str:
    mode, solver = variant.split("_")
    return f"{mode.upper()}-{'Euler' if solver == 'euler' else solver.upper()}"


def write_table(runs_dir: str, rows: dict, volumes: int) -> None:
    """``RUNS_DIR/table.md`` (the table and the paper's orderings) and ``curves.png`` from the scores ``rows``."""
    lines = [f"Held-out IXI subjects ({volumes} volumes), random masks AF 4, every variant trained "
             f"the same steps of batch 2 (column 'steps') on {SWEEP['size'][0]} x {SWEEP['size'][1]} crops "
             "(`python scripts/reconode_table.py`); fastMRI metrics, volume-wise, mean +- std over volumes:", "",
             "| variant | parameters | PSNR (dB) | SSIM | paper PSNR (knee, AF 4) | steps | training (h) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    first = next(iter(rows.values()), None)
    if first is not None:
        zf = first["zero-filled"]
        lines.append(f"| zero-filled | | {zf['psnr'][0]:.2f} +- {zf['psnr'][1]:.2f} | {zf['ssim'][0]:.4f} | | | |")
    for variant, row in rows.items():
        net = row["network"]
        paper = PAPER_AF4.get(variant)
        psnr = "diverged in training" if _diverged(row) else f"{net['psnr'][0]:.2f} +- {net['psnr'][1]:.2f}"
        lines.append(f"| {_label(variant)} | {row['params']:,} | {psnr} | {net['ssim'][0]:.4f} | "
                     f"{'' if paper is None else paper} | {row['steps']} | {row['hours']:.2f} |")
    lines += ["", "The paper's orderings (PSNR):", ""]
    for better, worse in ORDERINGS:
        if better in rows and worse in rows:
            gap = rows[better]["network"]["psnr"][0] - rows[worse]["network"]["psnr"][0]
            verdict = "holds" if gap > 0 else "fails"
            diverged = [_label(v) for v in (better, worse) if _diverged(rows[v])]
            detail = f"{' and '.join(diverged)} diverged" if diverged else f"{gap:+.2f} dB"
            lines.append(f"- {_label(better)} > {_label(worse)}: {verdict} ({detail})")
    with open(os.path.join(runs_dir, "table.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot_curves(runs_dir, list(rows), [v for v, row in rows.items() if _diverged(row)])


def table(args) -> None:
    """Rewrite table.md and curves.png from the scores ``score`` saved (``table.json``)."""
    with open(os.path.join(args.runs_dir, "table.json"), encoding="utf-8") as handle:
        rows = json.load(handle)
    write_table(args.runs_dir, rows, args.max_volumes)


def _plot_curves(runs_dir: str, trained: list[str], diverged: list[str] = ()) -> None:
    """The nine validation curves, one panel per solver; the axis spans the curves that did not diverge
    (a diverged one is drawn dashed, leaving the axis where it falls out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(SOLVERS), figsize=(4 * len(SOLVERS), 3.2), sharey=True)
    kept = []
    for axis, solver in zip(axes, SOLVERS):
        for mode in MODES:
            variant = f"{mode}_{solver}"
            if variant in trained:
                steps, psnr = _curve(os.path.join(runs_dir, variant, "run"))
                if variant in diverged:
                    axis.plot(steps, psnr, marker=".", ls="--", label=f"{mode.upper()} (diverged)")
                else:
                    axis.plot(steps, psnr, marker=".", label=mode.upper())
                    kept += [value for value in psnr if math.isfinite(value)]
        axis.set_title(solver.upper() if solver != "euler" else "Euler")
        axis.set_xlabel("optimizer steps")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    if kept:
        axes[0].set_ylim(min(kept) - 0.3, max(kept) + 0.3)
    axes[0].set_ylabel("validation PSNR (dB)")
    figure.tight_layout()
    path = os.path.join(runs_dir, "curves.png")
    figure.savefig(path + ".tmp.png", dpi=100)
    os.replace(path + ".tmp.png", path)
    plt.close(figure)
    print(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("data_dir")
    p.add_argument("runs_dir")
    p.add_argument("--only", nargs="+", choices=variants(), default=None)
    p.add_argument("--steps", type=int, default=SWEEP["steps"], help="fewer steps, for a smoke run only")
    p.add_argument("--base", default=BASE, help="the recipe the nine are derived from (default: the shipped LT-RK4)")
    p = sub.add_parser("score")
    p.add_argument("data_dir")
    p.add_argument("runs_dir")
    p.add_argument("--max-volumes", type=int, default=15)
    p = sub.add_parser("table", help="rewrite table.md and curves.png from table.json (no scoring)")
    p.add_argument("runs_dir")
    p.add_argument("--max-volumes", type=int, default=15)
    args = parser.parse_args(argv)
    {"train": train, "score": score, "table": table}[args.command](args)


if __name__ == "__main__":
    main()
