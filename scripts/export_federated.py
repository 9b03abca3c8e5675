"""Score and export federation runs (``fastmri-zoo federate``): the comparison table of issue #19 and a
zoo checkpoint with its model card.

    python scripts/export_federated.py table DATA_DIR LABEL=OUT_DIR [LABEL=OUT_DIR ...] [--png FIGURE.png]
    python scripts/export_federated.py export RECIPE OUT_DIR WEIGHTS_DIR DATA_DIR [--compare LABEL=OUT_DIR ...]

``table`` prints, for every site, the held-out PSNR / SSIM after the last round of each run (the global
network; a ``local`` run: the site's own), the EMA's when the run kept one, and zero-filled (root-sum-of-squares
of the inverse FFT) on the same examples, as markdown (``--png``: a panel per site, every run's held-out PSNR
against the rounds). ``export`` writes WEIGHTS_DIR/NAME (NAME from the recipe's ``card``): the run's final
preset with the card (sites, rounds, wall time, genotype, the table, the curves), the recipe, ``curves.png``,
``metrics.csv``, ``federation.json`` and, after a FedAutoMRI search, ``genotype.json`` and ``cell.png`` (so
``table`` reads a shipped checkpoint's folder as a run's). Nothing here is imported by the package.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np


def _run(out_dir: str) -> dict:
    """The facts and metric rows of a finished federation folder."""
    from fastmri_zoo.federated.outputs import read_metrics

    facts_path = os.path.join(out_dir, "federation.json")
    if not os.path.isfile(facts_path):
        raise SystemExit(f"{out_dir}: no federation.json; the run did not finish.")
    with open(facts_path, encoding="utf-8") as handle:
        facts = json.load(handle)
    return {"facts": facts, "rows": read_metrics(os.path.join(out_dir, "metrics.csv")), "out_dir": out_dir}


def last_phase_evaluations(rows: list[dict]) -> list[dict]:
    """The held-out evaluation rows of the last phase scored (FedAutoMRI: the training phase after the search)."""
    scored = [row for row in rows if row["stage"] == "evaluate" and row["status"] == "ok"]
    if not scored:
        raise ValueError("metrics.csv: no held-out evaluation.")
    return [row for row in scored if row["phase"] == scored[-1]["phase"]]


def last_evaluation(rows: list[dict]) -> dict[str, dict]:
    """``{site: row}``: each site's held-out metrics at the last round of the last phase it was scored in."""
    scored = last_phase_evaluations(rows)
    last_round = max(row["round"] for row in scored)
    return {row["site"]: row for row in scored if row["round"] == last_round}


def zero_filled(recipe, data_dir: str) -> dict[str, dict]:
    """``{site: {"psnr", "ssim"}}``: zero-filled (RSS over coils of the inverse FFT) on the held-out examples each
    site scores the networks on (the same fixed examples: same seed, same count)."""
    from evaluate_ixi import _baseline_magnitude  # the scripts' one zero-filled baseline

    from fastmri_zoo import metrics
    from fastmri_zoo.federated.sites import load_site_data

    options = recipe.options
    scores = {}
    for site in recipe.sites:
        data = load_site_data(recipe, site.name, data_dir)
        examples = options.eval_examples or data.synthesis.val_examples
        psnr, ssim = [], []
        for inputs, target in data.heldout(examples, options.batch_size):
            estimate = _baseline_magnitude(inputs, {"kind": "cartesian", "multicoil": site.coils > 1},
                                           tuple(target.shape[-2:]))
            for truth, image in zip(np.asarray(target), estimate):
                psnr.append(metrics.psnr(truth, image))
                ssim.append(metrics.ssim(truth, image))
        scores[site.name] = {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim))}
    return scores


def table(runs: list[tuple[str, dict]], baseline: dict[str, dict]) -> str:
    """The markdown table: one row per site, PSNR / SSIM of zero-filled and of every run (and its EMA)."""
    sites = list(baseline)
    columns, cells = ["zero-filled"], {site: [baseline[site]] for site in sites}
    for label, run in runs:
        last = last_evaluation(run["rows"])
        parameters = run["facts"].get("parameters", {}).get("train")
        heading = label + (f" ({parameters:,} parameters)" if parameters else "")
        columns.append(heading)
        for site in sites:
            cells[site].append(last.get(site) or {})
        if any(row.get("ema_psnr") is not None for row in last.values()):
            columns.append(f"{label}, EMA")
            for site in sites:
                row = last.get(site) or {}
                cells[site].append({"psnr": row.get("ema_psnr"), "ssim": row.get("ema_ssim")})

    def cell(values):
        if values.get("psnr") is None:
            return "-"
        return f"{values['psnr']:.2f} / {values['ssim']:.3f}"

    lines = ["| site | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    lines += [f"| {site} | " + " | ".join(cell(values) for values in cells[site]) + " |" for site in sites]
    return "\n".join(lines)


def comparison_png(path: str, runs: list[tuple[str, dict]], baseline: dict[str, dict]) -> str:
    """One panel per site: the held-out PSNR of every run's global network (a ``local`` run: the site's own)
    against the rounds of its last phase (FedAutoMRI: the training phase after the search), zero-filled dashed."""
    from fastmri_zoo.viz import _figure, _save_figure

    sites = list(baseline)
    scored = [(label, last_phase_evaluations(run["rows"])) for label, run in runs]
    fig = _figure((3.4 * len(sites), 3.4))
    axes = fig.subplots(1, len(sites), squeeze=False)[0]
    for ax, site in zip(axes, sites):
        for label, rows in scored:
            points = sorted((row["round"], row["psnr"]) for row in rows if row["site"] == site)
            if points:
                ax.plot(*zip(*points), marker=".", label=label)
        ax.axhline(baseline[site]["psnr"], color="grey", linestyle="--", label="zero-filled")
        ax.set_title(site, fontsize=10)
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out PSNR (dB)")
    axes[0].legend(fontsize=7, loc="lower right")
    return _save_figure(fig, path)


def _labelled(pairs: list[str]) -> list[tuple[str, dict]]:
    runs = []
    for pair in pairs:
        label, sep, folder = pair.partition("=")
        if not sep or not label or not folder:
            raise SystemExit(f"{pair!r}: expected LABEL=OUT_DIR.")
        runs.append((label, _run(folder)))
    return runs


def _recipe_of(run: dict):
    from fastmri_zoo.federated.recipe import federation_recipe_from_dict

    return federation_recipe_from_dict(run["facts"]["recipe"])


def _table_command(args) -> int:
    runs = _labelled(args.runs)
    baseline = zero_filled(_recipe_of(runs[0][1]), args.data_dir)
    print(table(runs, baseline))
    if args.png:
        print(comparison_png(args.png, runs, baseline))
    return 0


def _sites_paragraph(recipe, facts) -> str:
    lines = ["| site | data | coils | mask | AF | training slices |", "| --- | --- | --- | --- | --- | --- |"]
    for site in recipe.sites:
        data = f"IXI subjects, share {site.share:g}" if site.source == "volumes" else "bundled cardiac images"
        count = facts["sites"].get(site.name, {}).get("training_examples", "?")
        acquisition = site.acquisition
        lines.append(f"| {site.name} | {data} | {site.coils} | {acquisition['mask_type']} (centre "
                     f"{acquisition['center_fraction']:g}) | {acquisition['acceleration']:g} | {count} |")
    return "\n".join(lines)


def _export_command(args) -> int:
    from fastmri_zoo.federated.outputs import last_metrics
    from fastmri_zoo.federated.recipe import load_federation_recipe
    from fastmri_zoo.presets import from_preset, save_to_preset, verify_preset_folder, zeros_like_signature
    from fastmri_zoo.registry import preset_entry

    recipe = load_federation_recipe(args.recipe)
    card = dict(recipe.raw.get("card") or {})
    if not card:
        raise SystemExit(f"{args.recipe}: no 'card' block; it names the checkpoint.")
    name = preset_entry_name(card)
    if recipe.raw.get("name") != name:
        raise SystemExit(f"{args.recipe}: name {recipe.raw.get('name')!r}; its card spells {name!r} (they must agree).")
    run = _run(args.out_dir)
    def settings(raw):  # the name and the card label the run; everything else must be what ran
        return {key: value for key, value in raw.items() if key not in ("name", "card")}

    if settings(run["facts"]["recipe"]) != settings(recipe.raw):
        raise SystemExit(f"{args.out_dir}: the run's recipe differs from {args.recipe} (other than its name and card).")
    preset = os.path.join(args.out_dir, "preset")
    model = from_preset(preset)
    example = zeros_like_signature(verify_preset_folder(preset)["input_signature"])
    runs = [(recipe.options.strategy, run)] + _labelled(args.compare or [])
    scores = table(runs, zero_filled(recipe, args.data_dir))
    facts = run["facts"]
    options = recipe.options
    hours = facts["wall_time_seconds"] / 3600
    genotype = facts.get("genotype")
    search = recipe.search
    training = (
        f"Trained with `fastmri-zoo federate recipe.json --data DATA_DIR -o OUT_DIR` (the recipe `recipe.json` in this "
        f"folder; Flower {facts['versions']['flwr']}, simulation engine): strategy {options.strategy}, "
        + (f"{search.rounds} search rounds of {search.local_steps} local MiLeNAS steps per site, then " if search else "")
        + f"{options.rounds} rounds of {options.local_steps} local steps of batch {options.batch_size} per site "
        f"(Adam, lr {options.learning_rate:g}, new at every round; loss {options.loss}; seed {options.seed}"
        + (f"; each site trains from its bias-corrected EMA of the global weights, gamma {options.ema:g}" if options.ema
           else "")
        + f"); {hours:.2f} h of wall time on a 2-core CPU. The sites (every slice synthesised afresh from the IXI "
        "T1 volumes of the site's subjects or the bundled cardiac images; FedAvg weights each site by its training "
        "slices):\n\n" + _sites_paragraph(recipe, facts)
        + "\n\nHeld-out PSNR and training loss of every site against the rounds (dashed: the EMA):\n\n"
        "![federation curves](curves.png)")
    if genotype:
        training += ("\n\nThe cell found by the federated search (`genotype.json`): "
                     f"`{json.dumps(genotype)}`\n\n![cell](cell.png)")
    evaluation = (
        f"Each site's fixed held-out examples ({options.eval_examples or 'synthesis.val_examples'} per site, drawn "
        "from the site's held-out IXI subjects or from the 8 held-out cardiac images, under the site's own coils, mask "
        "and acceleration), scored after the last round; PSNR (dB) / SSIM, fastMRI conventions"
        + (", against the runs of the same recipe with the other strategies" if args.compare else "") + ":\n\n"
        + scores)
    card_fields = {key: card[key] for key in ("description", "paper", "license", "datasets", "tags", "trajectory",
                                               "coils", "acceleration", "evaluation_data", "limitations")
                   if card.get(key) is not None}
    card_fields["architecture"] = recipe.raw["model"]["class"] + " with " + json.dumps(
        dict(recipe.raw["model"].get("kwargs") or {}, **({"genotype": genotype} if genotype else {})), sort_keys=True)
    card_fields["training_data"] = training
    card_fields["intended_use"] = (card.get("intended_use") or "") + "\n\n" + evaluation
    card_fields["acquisition"] = card.get("acquisition")
    metrics = {key: round(value, 4) for key, value in last_metrics(run["rows"], "train").items()}
    target = os.path.join(args.weights_dir, name)
    save_to_preset(model, target, example_inputs=example, name=name,
                   training_command="fastmri-zoo federate recipe.json --data DATA_DIR -o OUT_DIR",
                   metrics=metrics, **card_fields)
    shutil.copyfile(args.recipe, os.path.join(target, "recipe.json"))
    for file_name in ("curves.png", "metrics.csv", "federation.json", "genotype.json", "cell.png"):
        source = os.path.join(args.out_dir, file_name)
        if os.path.isfile(source):
            shutil.copyfile(source, os.path.join(target, file_name))
    entry = preset_entry(target)
    if entry is None or entry.name != name:
        raise SystemExit(f"{target}: the registry does not read it as {name!r}.")
    print(scores)
    print(target)
    return 0


def preset_entry_name(card: dict) -> str:
    """The checkpoint name the card spells (the registry's rule)."""
    from fastmri_zoo.registry import CheckpointEntry

    fields = {key: card[key] for key in ("architecture", "variant", "trajectory", "coils", "acceleration", "dataset",
                                          "task") if card.get(key) is not None}
    return CheckpointEntry(**fields).expected_name()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("table", help="the per-site comparison table of finished runs")
    p.add_argument("data_dir")
    p.add_argument("runs", nargs="+", metavar="LABEL=OUT_DIR")
    p.add_argument("--png", metavar="FILE", help="also draw every run's held-out PSNR per site against the rounds")
    p.set_defaults(func=_table_command)
    p = sub.add_parser("export", help="write a finished run as WEIGHTS_DIR/NAME")
    p.add_argument("recipe")
    p.add_argument("out_dir")
    p.add_argument("weights_dir")
    p.add_argument("data_dir")
    p.add_argument("--compare", nargs="*", metavar="LABEL=OUT_DIR")
    p.set_defaults(func=_export_command)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
