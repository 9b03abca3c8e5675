"""Score the shipped checkpoints on the held-out IXI subjects and write their model cards.

    fastmri-zoo train weights/NAME/recipe.json --data DATA_DIR --run-dir RUN_DIR      (training)
    python scripts/evaluate_ixi.py evaluate NAME DATA_DIR RUN_DIR [--max-volumes 15]
    python scripts/evaluate_ixi.py export NAME DATA_DIR RUN_DIR WEIGHTS_DIR

Training is the packaged trainer's (``fastmri_zoo.training``); this script only reads
``weights/NAME/recipe.json`` (model, data folder, acquisition). DATA_DIR is the data root written
by ``scripts/prepare_ixi.py`` (each recipe's ``data.prepare``). ``evaluate`` loads the trained
preset ``RUN_DIR/preset`` and scores the held-out subjects (the recipe's ``data.test`` folder)
volume by volume with fastMRI's metrics, for the network and for zero-filled (non-Cartesian:
adjoint + density compensation), and writes ``RUN_DIR/metrics.json``; ``--mask-type``,
``--trajectory`` and ``--acceleration`` score out of the training distribution
(``metrics_<setting>.json``). Non-Cartesian 2D scoring uses every 5th of the 50 slices of each
held-out volume. ``export`` writes ``WEIGHTS_DIR/NAME`` with the model card: the recipe's card,
the run's command and the held-out tables and metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile

import numpy as np

WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "weights")
#: held-out slices scored per volume in 2D non-Cartesian evaluation
NONCARTESIAN_EVAL_SLICES = slice(0, None, 5)


def _recipe(name):
    from fastmri_zoo.training import load_recipe

    return load_recipe(os.path.join(WEIGHTS, name, "recipe.json"))


def _setting(recipe, mask_type=None, acceleration=None):
    """(file suffix, acquisition): the recipe's acquisition with a mask family / trajectory and an
    acceleration in place of its own ('' suffix for the training setting)."""
    acquisition = dict(recipe.acquisition)
    key = "mask_type" if acquisition["kind"] == "cartesian" else "trajectory"
    own = (acquisition[key], acquisition["acceleration"])
    wanted = (mask_type or own[0], acceleration or own[1])
    if wanted == own:
        return "", acquisition
    acquisition[key], acquisition["acceleration"] = wanted
    suffix = f"_{wanted[0]}" if wanted[1] == own[1] else f"_{wanted[0]}_af{wanted[1]:g}"
    return suffix, acquisition


def _volume_batches(path, acquisition):
    """The held-out volume ``path`` alone (non-Cartesian 2D: its slices ``NONCARTESIAN_EVAL_SLICES``),
    masks seeded per slice (seed 0)."""
    import h5py

    from fastmri_zoo.training import acquisition_dataset

    folder = tempfile.mkdtemp()
    try:
        copy = os.path.join(folder, os.path.basename(path))
        if acquisition["kind"] == "noncartesian" and acquisition["ndim"] == 2:
            with h5py.File(path, "r") as source, h5py.File(copy, "w") as subset:
                for key, value in source.items():
                    subset[key] = value[NONCARTESIAN_EVAL_SLICES]
                subset.attrs.update(source.attrs)
        else:
            os.symlink(os.path.abspath(path), copy)
        batch = 1 if acquisition["ndim"] == 3 else 10
        return list(acquisition_dataset(folder, acquisition, seed=0, batch_size=batch))
    finally:
        shutil.rmtree(folder)


def _baseline_magnitude(inputs, acquisition, image_shape):
    """Zero-filled (Cartesian) or adjoint + density compensation (non-Cartesian) magnitude,
    root-sum-of-squares over coils: float32 (batch, *image_shape)."""
    import tensorflow as tf

    from fastmri_zoo.physics import NUFFT, ifftc, rss

    kspace = inputs["kspace"]
    if not acquisition["multicoil"]:
        kspace = kspace[:, None]
    if acquisition["kind"] == "noncartesian":
        operator = NUFFT(inputs["traj"], image_shape)
        coil_images = operator.coil_images(kspace * tf.cast(inputs["dcomp"], tf.complex64)[:, None])
    else:
        coil_images = ifftc(kspace, 2)
    return rss(coil_images, axis=1).numpy()


def evaluate(args):
    from fastmri_zoo import metrics
    from fastmri_zoo.data.pipelines import list_h5_files
    from fastmri_zoo.presets import from_preset

    recipe = _recipe(args.name)
    suffix, acquisition = _setting(recipe, args.mask_type, args.acceleration)
    model = from_preset(args.preset or os.path.join(args.run_dir, "preset"))
    files = list_h5_files(recipe.data_folders(args.data_dir)["test"])[: args.max_volumes]
    noncartesian = acquisition["kind"] == "noncartesian"
    with_grappa = acquisition.get("mask_type") == "equispaced"
    baseline = "adjoint + DCp" if noncartesian else "zero-filled"
    results = {"network": [], baseline: []} | ({"GRAPPA": []} if with_grappa else {})
    for path in files:
        preds, baselines, grappas, targets = [], [], [], []
        for inputs, target in _volume_batches(path, acquisition):
            inputs = {key: value for key, value in inputs.items() if key != "scale"}
            preds.append(np.abs(model(inputs).numpy()))
            baselines.append(_baseline_magnitude(inputs, acquisition, tuple(target.shape[1:])))
            targets.append(target.numpy())
            if with_grappa:
                from fastmri_zoo.baselines.grappa import grappa

                grappas.append(grappa(inputs["kspace"].numpy(), inputs["mask"].numpy())[1])
        gt = np.concatenate(targets)
        if acquisition["ndim"] == 3:  # one volume: (1, D, H, W) -> (D, H, W), scored slice-wise
            gt, preds, baselines = gt[0], [preds[0][0]], [baselines[0][0]]
        results["network"].append(metrics.evaluate_volume(gt, np.concatenate(preds)))
        results[baseline].append(metrics.evaluate_volume(gt, np.concatenate(baselines)))
        if with_grappa:
            results["GRAPPA"].append(metrics.evaluate_volume(gt, np.concatenate(grappas)))
        print(os.path.basename(path), {k: round(v[-1]["psnr"], 2) for k, v in results.items()}, flush=True)
    summary = {method: metrics.summarize(rows) for method, rows in results.items()}
    key = "trajectory" if noncartesian else "mask_type"
    with open(os.path.join(args.run_dir, f"metrics{suffix}.json"), "w") as handle:
        json.dump({"mask_type": acquisition[key], "acceleration": acquisition["acceleration"],
                   "volumes": [os.path.basename(p) for p in files], "per_volume": results, "summary": summary},
                  handle, indent=1)
    print(json.dumps(summary, indent=1))


def _row(label, values):
    return (f"| {label} | {values['psnr'][0]:.2f} +- {values['psnr'][1]:.2f} | {values['ssim'][0]:.4f} +- "
            f"{values['ssim'][1]:.4f} | {values['nmse'][0]:.4f} +- {values['nmse'][1]:.4f} |")


_HEADER = ["", "| method | PSNR (dB) | SSIM | NMSE |", "| --- | --- | --- | --- |"]


def _card_tables(recipe, run_dir, scores):
    """The held-out tables of the model card: the training setting, then every other setting scored."""
    acquisition = recipe.acquisition
    summary = scores["summary"]
    if acquisition["kind"] == "cartesian":
        mask_type, acceleration = acquisition["mask_type"], acquisition["acceleration"]
        lines = [
            f"Held-out IXI subjects ({len(scores['volumes'])} volumes, 50 sagittal slices each), {mask_type} masks, "
            f"AF {acceleration}, centre fraction {acquisition['center_fraction']}, masks seeded per slice (seed 0); "
            "fastMRI metrics, volume-wise, mean +- std over volumes:", *_HEADER,
            _row("zero-filled", summary["zero-filled"]), _row(recipe.name, summary["network"])]
        extra_path = os.path.join(run_dir, "metrics_equispaced.json")
        if os.path.exists(extra_path):
            with open(extra_path) as handle:
                extra = json.load(handle)["summary"]
            lines += [
                "",
                f"The same subjects with fastMRI's integer-step equispaced masks (AF {acceleration}, same centre "
                "fraction), where GRAPPA (5 x 2 kernel, Tikhonov at the calibration noise floor, fastmri_zoo.baselines.grappa) applies:",
                *_HEADER, _row("zero-filled", extra["zero-filled"]), _row("GRAPPA", extra["GRAPPA"]),
                _row(recipe.name, extra["network"])]
        return "\n".join(lines)
    slices = ("whole 90 x 120 x 120 volumes" if acquisition["ndim"] == 3
              else "every 5th of the 50 sagittal slices of each")
    lines = [f"Held-out IXI subjects ({len(scores['volumes'])} volumes, {slices}); fastMRI metrics, volume-wise, "
             "mean +- std over volumes. Baseline: adjoint NUFFT with Pipe-Menon density compensation (RSS over coils)."]
    settings = [("", acquisition["trajectory"], acquisition["acceleration"])]
    for file_name in sorted(os.listdir(run_dir)):
        if file_name.startswith("metrics_") and file_name.endswith(".json"):
            with open(os.path.join(run_dir, file_name)) as handle:
                extra = json.load(handle)
            settings.append((file_name, extra["mask_type"], extra["acceleration"]))
    for file_name, trajectory, af in settings:
        if file_name:
            with open(os.path.join(run_dir, file_name)) as handle:
                summary = json.load(handle)["summary"]
        note = " (training setting)" if not file_name else " (out of the training distribution)"
        lines += ["", f"{trajectory} trajectory, AF {af:g}{note}:", *_HEADER,
                  _row("adjoint + DCp", summary["adjoint + DCp"]), _row(recipe.name, summary["network"])]
    return "\n".join(lines)


def export(args):
    """Write WEIGHTS_DIR/NAME: the trained preset with the held-out tables on its model card."""
    from fastmri_zoo.presets import from_preset, save_to_preset
    from fastmri_zoo.training.config import RECIPE_FILE, model_card

    recipe = _recipe(args.name)
    with open(os.path.join(args.run_dir, "run.json")) as handle:
        run = json.load(handle)
    with open(os.path.join(args.run_dir, "metrics.json")) as handle:
        scores = json.load(handle)
    model = from_preset(os.path.join(args.run_dir, "preset"))
    net = scores["summary"]["network"]
    card = model_card(recipe, run["data"])
    card["intended_use"] = card.get("intended_use", "") + "\n\n" + _card_tables(recipe, args.run_dir, scores)
    target = os.path.join(args.weights_dir, args.name)
    recipe_text = open(recipe.source, encoding="utf-8").read()
    save_to_preset(
        model, target, training_command=run["command"],
        metrics={"psnr": round(net["psnr"][0], 3), "ssim": round(net["ssim"][0], 4), "nmse": round(net["nmse"][0], 5)},
        **card)
    with open(os.path.join(target, RECIPE_FILE), "w", encoding="utf-8") as handle:
        handle.write(recipe_text)  # the preset folder keeps the recipe that made it
    print(target)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    names = sorted(name for name in os.listdir(WEIGHTS) if os.path.isfile(os.path.join(WEIGHTS, name, "recipe.json")))
    p = sub.add_parser("evaluate")
    p.add_argument("name", choices=names)
    p.add_argument("data_dir")
    p.add_argument("run_dir")
    p.add_argument("--preset", default=None, help="the preset to score (default: RUN_DIR/preset)")
    p.add_argument("--max-volumes", type=int, default=15)
    p.add_argument("--mask-type", default=None,
                   choices=["random", "equispaced", "equispaced_fraction", "radial", "spiral"],
                   help="score with this mask family or trajectory instead of the training one "
                        "(equispaced adds GRAPPA)")
    p.add_argument("--acceleration", type=float, default=None, help="score at this acceleration")
    p = sub.add_parser("export")
    p.add_argument("name", choices=names)
    p.add_argument("data_dir")
    p.add_argument("run_dir")
    p.add_argument("weights_dir")
    args = parser.parse_args()
    {"evaluate": evaluate, "export": export}[args.command](args)


if __name__ == "__main__":
    main()
