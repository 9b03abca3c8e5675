"""Score the zoo's denoisers on held-out IXI slices across noise levels and write their model cards.

    fastmri-zoo train RECIPE --data DATA_DIR --run-dir RUN_DIR                          (training)
    python scripts/evaluate_denoisers.py evaluate RECIPE DATA_DIR RUN_DIR [--compare LABEL=PRESET ...]
    python scripts/evaluate_denoisers.py export RECIPE DATA_DIR RUN_DIR WEIGHTS_DIR

RECIPE is a denoiser's recipe (``card.task`` "denoising"; ``weights/NAME/recipe.json`` once shipped).
DATA_DIR is the data root of ``scripts/prepare_ixi.py --magnitude magnitude``. ``evaluate`` loads the
trained preset ``RUN_DIR/preset`` and scores it on the held-out subjects (the recipe's ``data.test``
magnitude volumes): from each volume ``SLICES_PER_AXIS`` slices along each of its three axes (evenly
spaced among those with signal), each divided by its peak as in training; white Gaussian noise of each
standard deviation of ``SIGMAS_255`` / 255 (one draw per slice and level, shared by every method), then
the noisy input, wavelet hard thresholding on the learnlets' fixed pyramid (3 sigma, 4 on the finest
scale), the network and each ``--compare`` preset denoise it at the true noise level. fastMRI's PSNR and
SSIM (data range the clean slice's peak, 1), volume-wise, mean +- std over volumes, go to
``RUN_DIR/denoising.json`` and the curves to ``RUN_DIR/denoising.png``. The acceptance orderings
(``ORDERINGS``) are checked there and printed. ``export`` writes ``WEIGHTS_DIR/NAME``: the preset, its
recipe, validation curve and the two pictures, the tables on its model card.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from cards import add_run_commands, read_run, training_paragraph, write_checkpoint

#: noise standard deviations (in 1/255 of the slice peak) of the held-out table (issue: learnlets)
SIGMAS_255 = (0.0001, 5, 15, 25, 30, 50, 75, 100)
#: slices per axis and held-out volume
SLICES_PER_AXIS = 4
WAVELET = "wavelet hard thresholding"
NOISY = "noisy input"


def _recipe(path):
    from fastmri_zoo.training import load_recipe

    recipe = load_recipe(path)
    if recipe.card.get("task") != "denoising" or "sigma" not in recipe.data:
        raise ValueError(f"{path}: expected a denoiser's recipe (card.task 'denoising', data.sigma), "
                         f"got task {recipe.card.get('task')!r}.")
    return recipe


def heldout_slices(folder, max_volumes: int, per_axis: int = SLICES_PER_AXIS) -> tuple[list[str], list[np.ndarray]]:
    """(volume names, per volume float32 (3 * per_axis, H, W) slices of peak 1): ``per_axis`` slices along
    each axis, evenly spaced among those whose mean is at least 0.3 of the axis' largest slice mean,
    each cropped or zero-padded to the volume's largest in-plane square so that the three axes stack."""
    from fastmri_zoo.data.synthesis import list_volume_files, load_volumes

    names = [os.path.basename(p) for p in list_volume_files(folder)][:max_volumes]
    stacks = []
    for volume in load_volumes(folder)[:max_volumes]:
        side = max(volume.shape)
        side += (-side) % 32  # the pyramids' factor: every method sees the same padded slice
        slices = []
        for axis in range(3):
            means = volume.mean(axis=tuple(a for a in range(3) if a != axis))
            chosen = np.flatnonzero(means >= 0.3 * means.max())
            for index in chosen[np.linspace(0, len(chosen) - 1, per_axis + 2).round().astype(int)[1:-1]]:
                image = np.take(volume, int(index), axis=axis)
                padded = np.zeros((side, side), np.float32)
                top, left = (side - image.shape[0]) // 2, (side - image.shape[1]) // 2
                padded[top:top + image.shape[0], left:left + image.shape[1]] = image
                slices.append(padded / padded.max())
        stacks.append(np.stack(slices))
    return names, stacks


def _denoise(model, noisy: np.ndarray, sigma: float, batch_size: int = 4) -> np.ndarray:
    """``model`` on slices of peak about 1 at the true noise level (no renormalisation by the noisy peak:
    the table tests noise levels outside the training range as they are)."""
    import tensorflow as tf

    out = []
    for start in range(0, len(noisy), batch_size):
        batch = tf.constant(noisy[start:start + batch_size, ..., None])
        noise = tf.fill([batch.shape[0]], tf.constant(sigma, tf.float32))
        out.append(model({"image": batch, "sigma": noise}).numpy()[..., 0])
    return np.concatenate(out)


def score(models: dict, stacks: list[np.ndarray], seed: int = 0, log=True) -> dict:
    """{method: {sigma_255: [per-volume {psnr, ssim}]}} of the noisy input and each denoiser of ``models``."""
    from fastmri_zoo import metrics

    results = {NOISY: {}} | {label: {} for label in models}
    for v, clean in enumerate(stacks):
        for s, sigma_255 in enumerate(SIGMAS_255):
            sigma = sigma_255 / 255
            rng = np.random.default_rng([seed, v, s])
            noisy = (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32)
            outputs = {NOISY: noisy} | {label: _denoise(model, noisy, sigma) for label, model in models.items()}
            for label, output in outputs.items():
                row = {"psnr": metrics.psnr(clean, output, maxval=1.0), "ssim": metrics.ssim(clean, output, maxval=1.0)}
                results[label].setdefault(str(sigma_255), []).append(row)
        if log:
            print(f"volume {v + 1}/{len(stacks)}", {label: round(rows[str(SIGMAS_255[3])][-1]["psnr"], 2)
                                                   for label, rows in results.items()}, flush=True)
    return results


def orderings(summary: dict, name: str, compare: list[str]) -> list[dict]:
    """The issue's acceptance orderings on the summary: the network beats wavelet thresholding at every
    sigma in [5, 55]; at sigma >= 75 (never trained on) it is at least as good as each compared denoiser;
    at sigma = 0.0001 it is within 5 dB of the noisy input."""
    psnr = {label: {float(s): v["psnr"][0] for s, v in rows.items()} for label, rows in summary.items()}
    checks = []
    for sigma in SIGMAS_255:
        if 5 <= sigma <= 55:
            gap = psnr[name][sigma] - psnr[WAVELET][sigma]
            checks.append({"claim": f"{name} > {WAVELET} at sigma {sigma:g}", "gap_db": gap, "holds": gap > 0})
        if sigma >= 75:
            for other in compare:
                gap = psnr[name][sigma] - psnr[other][sigma]
                checks.append({"claim": f"{name} >= {other} at sigma {sigma:g}", "gap_db": gap, "holds": gap >= 0})
    gap = psnr[name][SIGMAS_255[0]] - psnr[NOISY][SIGMAS_255[0]]
    checks.append({"claim": f"{name} within 5 dB of the noisy input at sigma {SIGMAS_255[0]:g}", "gap_db": gap,
                   "holds": gap >= -5})
    return checks


def plot(path, summary: dict, train_range_255, title: str) -> None:
    """PSNR and SSIM against sigma, one line per method, the training range shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sigmas = [s for s in SIGMAS_255 if s >= 1]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("psnr", "ssim")):
        for label, rows in summary.items():
            ax.plot(sigmas, [rows[str(s)][metric][0] for s in sigmas], marker="o", label=label)
        ax.axvspan(*train_range_255, color="0.9", zorder=0, label="training noise range")
        ax.set_xlabel("noise standard deviation (1/255 of the slice peak)")
        ax.set_ylabel({"psnr": "PSNR (dB)", "ssim": "SSIM"}[metric])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _compare_presets(values) -> dict:
    presets = {}
    for value in values or []:
        label, sep, path = value.partition("=")
        if not sep or not label or not os.path.isdir(path):
            raise ValueError(f"--compare: expected LABEL=PRESET_FOLDER with an existing folder, got {value!r}.")
        presets[label] = path
    return presets


def evaluate(args):
    from fastmri_zoo import metrics
    from fastmri_zoo.models.learnlets import WaveletHardThresholding
    from fastmri_zoo.presets import from_preset

    recipe = _recipe(args.recipe)
    compare = _compare_presets(args.compare)
    models = {WAVELET: WaveletHardThresholding(n_scales=5),
              recipe.name: from_preset(args.preset or os.path.join(args.run_dir, "preset"))}
    models |= {label: from_preset(path) for label, path in compare.items()}
    folder = os.path.join(args.data_dir, recipe.data["folder"], recipe.data.get("test", "test"))
    names, stacks = heldout_slices(folder, args.max_volumes)
    results = score(models, stacks)
    summary = {label: {s: metrics.summarize(rows) for s, rows in per_sigma.items()} for label, per_sigma in results.items()}
    checks = orderings(summary, recipe.name, list(compare))
    report = {"sigmas_255": list(SIGMAS_255), "volumes": names, "slices_per_volume": int(len(stacks[0])),
              "compare": compare, "per_volume": results, "summary": summary, "orderings": checks}
    with open(os.path.join(args.run_dir, "denoising.json"), "w") as handle:
        json.dump(report, handle, indent=1)
    train_range = [255 * s for s in recipe.data["sigma"]]
    plot(os.path.join(args.run_dir, "denoising.png"), summary, train_range, f"{recipe.name}: held-out IXI slices")
    print(table(summary, "psnr"))
    for check in checks:
        print(f"{'holds' if check['holds'] else 'FAILS'}: {check['claim']} ({check['gap_db']:+.2f} dB)")


def table(summary: dict, metric: str) -> str:
    head = "| method | " + " | ".join(f"{s:g}" for s in SIGMAS_255) + " |"
    lines = [head, "| --- |" + " --- |" * len(SIGMAS_255)]
    digits = 2 if metric == "psnr" else 4
    for label, rows in summary.items():
        lines.append(f"| {label} | " + " | ".join(f"{rows[str(s)][metric][0]:.{digits}f}" for s in SIGMAS_255) + " |")
    return "\n".join(lines)


def _card_text(recipe, report) -> str:
    summary = report["summary"]
    low, high = (255 * s for s in recipe.data["sigma"])
    lines = [f"Held-out IXI subjects ({len(report['volumes'])} volumes; {report['slices_per_volume']} slices each, "
             f"{SLICES_PER_AXIS} along each axis, peak 1), white Gaussian noise of standard deviation sigma / 255, "
             f"trained for sigma in [{low:g}, {high:g}] / 255; every method is told the true sigma. "
             "fastMRI PSNR (dB), volume-wise, mean over volumes (`python scripts/evaluate_denoisers.py evaluate`):",
             "", table(summary, "psnr"), "", "SSIM:", "", table(summary, "ssim"), "",
             "![PSNR and SSIM against the noise level](denoising.png)", "", "The issue's orderings at this budget:", ""]
    lines += [f"- {'holds' if c['holds'] else 'fails'}: {c['claim']} ({c['gap_db']:+.2f} dB)" for c in report["orderings"]]
    return "\n".join(lines)


def export(args):
    """Write WEIGHTS_DIR/NAME: the trained preset, its recipe, validation curve and held-out pictures."""
    from fastmri_zoo.training.config import model_card
    from fastmri_zoo.viz import save_training_curve_png

    recipe = _recipe(args.recipe)
    run, sessions = read_run(args.run_dir)
    with open(os.path.join(args.run_dir, "denoising.json")) as handle:
        report = json.load(handle)
    card = model_card(recipe, run["data"])
    card["training_data"] = card.get("training_data", "") + "\n\n" + training_paragraph(
        run, sessions, "PSNR on the fixed noisy validation examples of the validation subjects, against optimizer "
        "steps; dashed: the noisy input")
    card["intended_use"] = card.get("intended_use", "") + "\n\n" + _card_text(recipe, report)
    at = report["summary"][recipe.name]["25"]
    metrics = {"psnr_sigma25": round(at["psnr"][0], 3), "ssim_sigma25": round(at["ssim"][0], 4)}
    target = write_checkpoint(recipe, args.run_dir, args.weights_dir, run, card, metrics, pictures=["denoising.png"])
    save_training_curve_png(os.path.join(target, "validation_curve.png"), os.path.join(args.run_dir, "log.csv"),
                            run["steps_per_epoch"], baselines={NOISY: _validation_noisy_psnr(recipe, args.data_dir)},
                            title=recipe.name)
    print(target)


def _validation_noisy_psnr(recipe, data_dir) -> float:
    """Mean PSNR of the noisy input on the run's fixed validation examples (``fit``'s validation metric)."""
    from fastmri_zoo import metrics
    from fastmri_zoo.training.fit import image_training_data

    folders = recipe.data_folders(data_dir)
    _, val = image_training_data(folders["train"], folders["val"], recipe.data["synthesis"],
                                 batch_size=recipe.batch_size, seed=recipe.seed, sigma=recipe.data["sigma"])
    values = []
    for step, (inputs, target) in enumerate(val):
        if recipe.val_steps is not None and step >= recipe.val_steps:
            break
        values += [metrics.psnr(t, n) for t, n in zip(target.numpy()[..., 0], inputs["image"].numpy()[..., 0])]
    return float(np.mean(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p = add_run_commands(parser.add_subparsers(dest="command", required=True), "denoiser")
    p.add_argument("--compare", nargs="*", default=[], metavar="LABEL=PRESET",
                   help="other denoisers scored on the same noisy slices (e.g. the U-net denoiser)")
    p.add_argument("--max-volumes", type=int, default=15)
    args = parser.parse_args()
    {"evaluate": evaluate, "export": export}[args.command](args)


if __name__ == "__main__":
    main()
