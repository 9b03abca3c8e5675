"""Score the zoo's score prior by posterior sampling of held-out IXI slices and write its model card.

    fastmri-zoo train RECIPE --data DATA_DIR --run-dir RUN_DIR                          (training)
    python scripts/evaluate_prior.py evaluate RECIPE DATA_DIR RUN_DIR [--volumes 5] [--multicoil]
    python scripts/evaluate_prior.py denoise RECIPE DATA_DIR RUN_DIR [--weights FILE] [--part val]
    python scripts/evaluate_prior.py export RECIPE DATA_DIR RUN_DIR WEIGHTS_DIR

RECIPE is a prior's recipe (``card.task`` "prior"; ``weights/NAME/recipe.json`` once shipped); DATA_DIR
the data root of ``scripts/prepare_ixi.py`` (with ``--coils 1 8 --parts val test``). ``evaluate`` loads
``RUN_DIR/preset`` and, for the middle slice of each of the first ``--volumes`` held-out volumes
(single-coil files, or 8-coil files with SENSE under ``--multicoil``), with complex white noise added
to the noiseless simulated k-space at ``--snr-db`` (35 dB; the networks' training examples had 25-45 dB
in half of them), undersamples it retrospectively as the zoo's network of that setting was trained (``COMPARED``: random masks AF 4 single-coil,
equispaced-fraction AF 4 multicoil; centre 8%; seed 0), samples its posterior with annealed HMC
(``posterior.files``: 8 chains, the samples kept) and scores: zero-filled, one sample and the posterior
mean (fastMRI PSNR / SSIM on the slice, against the noiseless reference); the pixel-wise Spearman
correlation of the posterior standard deviation with |posterior mean - truth| and the empirical coverage of the 90%
intervals, each over all pixels and over the head alone (``metrics.foreground_mask``); the data residual
of one sample, RMS of M (F x - y) over the sampled entries against the noise std added (given to the
sampler in the file's k-space units; ``--estimate-noise``: the sampler's own estimate from the outer k-space rows,
``posterior.files.estimate_noise_std``, which on these images reads about 10x the noise: signal remains
there); the
acceptance rate and final temperature; and the zoo's network of the setting on the same slice and
mask. Results go to ``RUN_DIR/posterior[_multicoil].json`` and the first slice's maps to
``RUN_DIR/posterior[_multicoil].png``. ``denoise`` scores the prior by itself: its Tweedie denoiser
x + sigma^2 r(x, sigma) on the complex middle slices (noiseless, peak 1) of ``--volumes`` volumes with complex
white noise of std sigma per real part added (``--sigmas``, seeded), PSNR of the noisy input and of the output
(``RUN_DIR/denoiser[_val].json``; ``--weights``: a weights file instead of the preset, e.g. a running training's
``RUN_DIR/backup/latest.weights.h5``). ``export`` writes ``WEIGHTS_DIR/NAME`` with the tables on its card.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
import json
import os
import shutil
import tempfile

import numpy as np

from cards import add_run_commands, read_run, training_paragraph, write_checkpoint
from fastmri_zoo.utils import write_json

#: the zoo's network each setting is compared with, and the undersampling it was trained with
COMPARED = {
    False: ("pdnet-cartesian-singlecoil-af4", dict(acceleration=4, mask_type="random", center_fraction=0.08)),
    True: ("xpdnet-cartesian-multicoil-af4", dict(acceleration=4, mask_type="equispaced_fraction",
                                                  center_fraction=0.08)),
}
METHODS = ("zero-filled", "one sample", "posterior mean")
#: The uncertainty scores of a slice (``PosteriorFile.uncertainty``): over all pixels and over the head.
UNCERTAINTY = ("spearman", "spearman_foreground", "coverage_90", "coverage_90_foreground")


def _recipe(path):
    from fastmri_zoo.training import load_recipe

    recipe = load_recipe(path)
    if recipe.card.get("task") != "prior":
        raise ValueError(f"{path}: expected a prior's recipe (card.task 'prior'), got task {recipe.card.get('task')!r}.")
    return recipe


def noisy_copy(path, folder, snr_db: float, seed: int) -> tuple[str, float]:
    """A copy of the held-out file ``path`` in ``folder`` with complex white Gaussian noise added to its k-space
    at ``snr_db`` (``data.simulate.add_noise``: mean |y|^2 / E|n|^2 over the volume); (its path, the noise's
    standard deviation per real part in the file's units)."""
    import h5py

    from fastmri_zoo.data.simulate import add_noise

    copy = os.path.join(folder, os.path.basename(path))
    with h5py.File(path, "r") as source, h5py.File(copy, "w") as target:
        kspace = source["kspace"][()]
        power = float(np.mean(np.abs(kspace.astype(np.complex128)) ** 2))
        target["kspace"] = add_noise(kspace, snr_db, np.random.default_rng(seed))
        for key, value in source.items():
            if key != "kspace":
                target[key] = value[()]
        target.attrs.update(source.attrs)
    return copy, float(np.sqrt(power / 10.0 ** (snr_db / 10.0) / 2.0))


def data_residual(plan, result, noise_std: float) -> list[float]:
    """Single-coil, per slice: RMS over the sampled k-space entries (per real degree of freedom) of M (F x - y) for chain
    0's last sample x (file units), divided by the measurement noise std per real part (file units): about 1
    when the sample is consistent with the data at the noise level."""
    from fastmri_zoo.physics import fftc

    ratios = []
    for i, index in enumerate(result.slices):
        kspace = plan.file.kspace[index]  # zero where not sampled
        sampled = np.abs(kspace) > 0
        residual = (fftc(result.one_sample[i].astype(np.complex64), 2).numpy() - kspace)[sampled]
        rms = np.sqrt(np.mean(np.abs(residual) ** 2) / 2)
        ratios.append(float(rms / noise_std))
    return ratios


def evaluate(args):
    from fastmri_zoo import load

    recipe = _recipe(args.recipe)
    prior = _prior(args, recipe)
    network_name, undersampling = COMPARED[args.multicoil]
    network = load(network_name)
    kind = "multicoil" if args.multicoil else "singlecoil"
    folder = os.path.join(args.data_dir, kind, recipe.data.get(args.part, args.part))
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".h5"))[: args.volumes]
    folder = tempfile.mkdtemp()
    try:
        rows, first = _score_files(args, recipe, prior, network, network_name, undersampling, files, folder)
    finally:
        shutil.rmtree(folder)
    _report(args, recipe, network_name, undersampling, rows, first)


#: the noise levels of ``denoise`` (std per real part; images of peak 1)
DENOISE_SIGMAS = (0.2, 0.1, 0.05, 0.02, 0.01, 0.005)


def _prior(args, recipe):
    """The preset (``--preset``, else RUN_DIR/preset), or the recipe's model with ``--weights`` loaded."""
    from fastmri_zoo.presets import from_preset

    if args.weights is None:
        return from_preset(args.preset or os.path.join(args.run_dir, "preset"))
    import tensorflow as tf
    from fastmri_zoo.training.config import model_classes

    if not os.path.isfile(args.weights):
        raise SystemExit(f"--weights: expected a weights file (.weights.h5), {args.weights!r} does not exist.")
    prior = model_classes()[recipe.model_class](**recipe.model_kwargs)
    size = recipe.data["synthesis"]["size"]
    prior({"image": tf.zeros([1, *size], tf.complex64), "sigma": tf.ones([1])})
    prior.load_weights(args.weights)
    return prior


def complex_slices(files) -> np.ndarray:
    """The complex middle slice of each file (centred orthonormal inverse FFT of its noiseless single-coil
    k-space), each divided by its maximum magnitude: complex64 (files, H, W)."""
    import h5py
    from fastmri_zoo.physics import ifftc

    slices = []
    for path in files:
        with h5py.File(path, "r") as handle:
            if handle["kspace"].ndim != 3:
                raise SystemExit(f"{path}: expected single-coil k-space (slices, H, W), got {handle['kspace'].shape}.")
            kspace = handle["kspace"][handle["kspace"].shape[0] // 2]
        image = ifftc(kspace.astype(np.complex64)).numpy()
        slices.append(image / np.abs(image).max())
    return np.asarray(slices, np.complex64)


def tweedie_table(prior, images, sigmas, seed: int = 0) -> list[dict]:
    """For each sigma: PSNR (fastMRI's, on magnitudes, volume-wise over the slices) of the noisy images
    x + sigma (u + i v) and of the prior's Tweedie estimate x + sigma^2 r(x, sigma)."""
    import tensorflow as tf
    from fastmri_zoo import metrics

    rng = np.random.default_rng(seed)
    reference = np.abs(images)
    rows = []
    for sigma in sigmas:
        noise = rng.standard_normal(images.shape) + 1j * rng.standard_normal(images.shape)
        noisy = (images + sigma * noise).astype(np.complex64)
        levels = tf.fill([len(images)], np.float32(sigma))
        denoised = noisy + sigma ** 2 * prior.score(tf.constant(noisy), levels).numpy()
        rows.append({"sigma": float(sigma), "noisy": metrics.psnr(reference, np.abs(noisy)),
                     "denoised": metrics.psnr(reference, np.abs(denoised))})
    return rows


def denoise(args):
    recipe = _recipe(args.recipe)
    prior = _prior(args, recipe)
    folder = os.path.join(args.data_dir, "singlecoil", recipe.data.get(args.part, args.part))
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".h5"))[: args.volumes]
    if not files:
        raise SystemExit(f"denoise: no .h5 files in {folder} (prepare_ixi.py --coils 1 --parts val test).")
    rows = tweedie_table(prior, complex_slices(files), args.sigmas)
    for row in rows:
        print(f"sigma {row['sigma']:g}: noisy {row['noisy']:.2f} dB -> denoised {row['denoised']:.2f} dB", flush=True)
    report = {"part": args.part, "files": [os.path.basename(f) for f in files], "weights": args.weights, "rows": rows}
    path = os.path.join(args.run_dir, "denoiser" + ("_val" if args.part == "val" else "") + ".json")
    write_json(path, report)
    print(path)


def _denoiser_table(report) -> str:
    lines = [f"The prior by itself: its Tweedie denoiser x + sigma^2 r(x, sigma) on the middle slices of "
             f"{len(report['files'])} {'held-out' if report['part'] == 'test' else 'validation'} volumes (complex, "
             "peak 1) with complex white noise of std sigma per real part (`python scripts/evaluate_prior.py "
             "denoise`), PSNR (dB):", "", "| sigma | noisy | denoised |", "| --- | --- | --- |"]
    lines += [f"| {r['sigma']:g} | {r['noisy']:.2f} | {r['denoised']:.2f} |" for r in report["rows"]]
    return "\n".join(lines)


def _sampler_settings(args, prior) -> dict:
    """The sampler settings given on the command line (the others: ``plan_sampling``'s defaults)."""
    given = {"gamma": args.gamma, "n_leapfrog": args.leapfrog, "step_power": args.step_power,
             "target_acceptance": args.target_acceptance,
             "step_size": None if args.step_fraction is None else args.step_fraction * prior.sigma_scale}
    return {key: value for key, value in given.items() if value is not None}


def _score_files(args, recipe, prior, network, network_name, undersampling, files, folder):
    from fastmri_zoo import metrics
    from fastmri_zoo.inference import reconstruct_file
    from fastmri_zoo.posterior.files import plan_sampling, prior_spec, run_sampling

    rows, first = [], None
    for number, original in enumerate(files):
        path, noise = noisy_copy(original, folder, args.snr_db, seed=number)
        plan = plan_sampling(prior_spec(prior, recipe.name), path, slices=None, n_chains=args.chains,
                             n_steps=args.steps, **_sampler_settings(args, prior),
                             keep_samples=True, seed=0,
                             noise_std=None if args.estimate_noise else noise, **undersampling)  # file units
        result = run_sampling(prior, plan, progress=args.progress, model_name=recipe.name)
        index = result.slices[0]
        reconstruction = reconstruct_file(network, path, seed=0, progress=False, **undersampling)
        reference = result.reference
        row = {"file": os.path.basename(path), "slice": int(index), **{m: result.metrics[m] for m in METHODS},
               network_name: metrics.evaluate_volume(reference, reconstruction.reconstruction[[index]]),
               **{key: result.uncertainty[key] for key in UNCERTAINTY},
               "acceptance_rate": float(result.acceptance_rate.mean()), "final_sigma": float(result.sigma.mean()),
               "noise_std_given": float(result.noise_std[0] * result.scale[0]), "noise_std_true": noise,
               "zero_filled_check": metrics.evaluate_volume(reference, reconstruction.zero_filled[[index]])}
        if not args.multicoil:
            row["data_residual"] = data_residual(plan, result, noise)[0]
        rows.append(row)
        print(row["file"], {k: round(row[k]["psnr"], 2) for k in (*METHODS, network_name, "zero_filled_check")},
              f"spearman {row['spearman']:.3f} (foreground {row['spearman_foreground']:.3f}), coverage "
              f"{row['coverage_90']:.3f} (foreground {row['coverage_90_foreground']:.3f}), acceptance "
              f"{row['acceptance_rate']:.2f}", flush=True)
        if first is None:
            first = (result, index, plan.options)
    return rows, first


def _report(args, recipe, network_name, undersampling, rows, first) -> None:
    """``RUN_DIR/posterior[_multicoil].json`` (rows and summary) and the figure of the first slice."""
    from fastmri_zoo import metrics
    from fastmri_zoo.viz import save_uncertainty_png

    methods = (*METHODS, network_name)
    summary = {m: metrics.summarize([r[m] for r in rows]) for m in methods}
    summary |= {key: metrics.summarize([{key: r[key]} for r in rows])[key]
                for key in (*UNCERTAINTY, "acceptance_rate", "final_sigma")
                + (() if args.multicoil else ("data_residual",))}
    result, index, options = first
    suffix = "_multicoil" if args.multicoil else ""
    report = {"setting": {"coils": 8 if args.multicoil else 1, **undersampling, "seed": 0, "snr_db": args.snr_db,
                          "noise": "estimated by the sampler" if args.estimate_noise else "the noise added, given"},
              "network": network_name,
              "chains": args.chains, "steps": args.steps, "part": args.part, "sampler": asdict(options),
              "rows": rows, "summary": summary}
    suffix += "" if args.part == "test" else f"_{args.part}"
    write_json(os.path.join(args.run_dir, f"posterior{suffix}.json"), report)
    save_uncertainty_png(os.path.join(args.run_dir, f"posterior{suffix}.png"), result.zero_filled[0], result.mean[0],
                         result.std[0], reference=result.reference[0],
                         metrics={m: rows[0][m] for m in ("zero-filled", "posterior mean")},
                         title=f"{rows[0]['file']}, slice {index}: {recipe.name}, {args.chains} chains x {args.steps} steps")
    print(json.dumps(summary, indent=1))


def _table(report) -> str:
    from fastmri_zoo.posterior.files import FOREGROUND_FRACTION

    s = report["summary"]
    setting = report["setting"]
    sampler = report.get("sampler", {})
    moves = ""
    if sampler:
        moves = (f"; {sampler['n_leapfrog']} leapfrog steps of {sampler['step_size'] / sampler['sigma_init']:g} sigma_0 "
                 f"x (sigma / sigma_0)^{sampler['step_power']:g}, sigma_0 = {sampler['sigma_init']:g}"
                 + (f", each chain's step adapted towards an acceptance rate of {sampler['target_acceptance']:g}"
                    if sampler.get("target_acceptance") else "")
                 + ("; the statistics over the chains' final states (one sample per chain)"
                    if sampler.get("burn_in") == report["steps"] - 1 else ""))
    rows = report["rows"]
    above = sum(r["one sample"]["psnr"] > r["zero-filled"]["psnr"] for r in rows)
    mean_above = sum(r["posterior mean"]["psnr"] > r["one sample"]["psnr"] for r in rows)
    lines = [f"{setting['coils']} coil(s), {setting['mask_type']} masks AF {setting['acceleration']:g} (centre "
             f"{setting['center_fraction']:g}), noise at {setting['snr_db']:g} dB SNR ({setting['noise']}), the "
             f"middle slice of {len(rows)} held-out volumes, "
             f"{report['chains']} chains x {report['steps']} annealed-HMC steps (temperature "
             f"x{sampler.get('gamma', 0.995):g} after each accepted move{moves}); mean +- std over slices:", "",
             "| method | PSNR (dB) | SSIM |", "| --- | --- | --- |"]
    for method in (*METHODS, report["network"]):
        lines.append(f"| {method} | {s[method]['psnr'][0]:.2f} +- {s[method]['psnr'][1]:.2f} | "
                     f"{s[method]['ssim'][0]:.4f} +- {s[method]['ssim'][1]:.4f} |")
    lines += ["", f"Slice by slice, one sample is above zero-filled on {above} of {len(rows)} and the posterior mean "
              f"above one sample on {mean_above} of {len(rows)}. Spearman correlation of the posterior std with "
              f"|mean - truth|: {s['spearman'][0]:.3f} +- {s['spearman'][1]:.3f}"
              + (f" over all pixels, {s['spearman_foreground'][0]:.3f} +- {s['spearman_foreground'][1]:.3f} over the "
                 f"head (the reference above {FOREGROUND_FRACTION:g} of its maximum)" if "spearman_foreground" in s else "")
              + f"; coverage of the 90% intervals: {s['coverage_90'][0]:.3f}"
              + (f" ({s['coverage_90_foreground'][0]:.3f} over the head)" if "coverage_90_foreground" in s else "")
              + f"; acceptance rate {s['acceptance_rate'][0]:.2f}; final temperature "
              f"{s['final_sigma'][0]:.4f}"
              + (f"; RMS data residual of a sample over the sampled k-space, per real part, / the noise std: "
                 f"{s['data_residual'][0]:.2f} (an exact sample of the posterior tempered at sigma = sigma_n: "
                 "about 1.41)" if "data_residual" in s else "")
              + "."]
    return "\n".join(lines)


def export(args):
    from fastmri_zoo.training.config import model_card
    from fastmri_zoo.viz import save_training_curve_png

    recipe = _recipe(args.recipe)
    run, sessions = read_run(args.run_dir)
    reports = {}
    for suffix in ("", "_multicoil"):
        path = os.path.join(args.run_dir, f"posterior{suffix}.json")
        if os.path.exists(path):
            with open(path) as handle:
                reports[suffix] = json.load(handle)
    if "" not in reports:
        raise SystemExit(f"export: run `evaluate` first ({os.path.join(args.run_dir, 'posterior.json')}).")
    card = model_card(recipe, run["data"])
    card["training_data"] = card.get("training_data", "") + "\n\n" + training_paragraph(
        run, sessions, "the denoising score-matching loss on fixed noise draws of the validation images")
    card["intended_use"] = card.get("intended_use", "") + "\n\nPosterior sampling of held-out IXI slices " \
        "(`python scripts/evaluate_prior.py evaluate`):\n\n" + "\n\n".join(_table(r) for r in reports.values()) + \
        "\n\n![zero-filled, posterior mean, standard deviation and error of a held-out slice](posterior.png)"
    denoiser = os.path.join(args.run_dir, "denoiser.json")
    if os.path.exists(denoiser):
        with open(denoiser) as handle:
            card["intended_use"] += "\n\n" + _denoiser_table(json.load(handle))
    s = reports[""]["summary"]
    metrics = {"psnr": round(s["posterior mean"]["psnr"][0], 3), "ssim": round(s["posterior mean"]["ssim"][0], 4),
               "spearman": round(s["spearman"][0], 3)}
    target = write_checkpoint(recipe, args.run_dir, args.weights_dir, run, card, metrics,
                              pictures=[f"posterior{suffix}.png" for suffix in reports])
    save_training_curve_png(os.path.join(target, "validation_curve.png"), os.path.join(args.run_dir, "log.csv"),
                            run["steps_per_epoch"], metric="loss", title=recipe.name)
    print(target)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_run_commands(sub, "prior")
    p.add_argument("--volumes", type=int, default=5, help="held-out volumes (their middle slice each)")
    p.add_argument("--chains", type=int, default=8)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--gamma", type=float, default=None, help="temperature factor after each accepted move (fewer "
                   "steps: a smaller gamma anneals as far; default: the sampler's)")
    p.add_argument("--leapfrog", type=int, default=None, help="leapfrog steps per HMC move (default: the sampler's)")
    p.add_argument("--step-fraction", type=float, default=None, help="the first leapfrog step, as a fraction of the "
                   "first temperature (the prior's sigma_scale) (default: the sampler's STEP_FRACTION)")
    p.add_argument("--step-power", type=float, default=None, help="the step follows (sigma / sigma_0) ** step_power as "
                   "the temperature falls (default: the sampler's, the thesis' 1.5)")
    p.add_argument("--target-acceptance", type=float, default=None,
                   help="adapt each chain's step towards this acceptance rate (default: the thesis' rule)")
    p.add_argument("--part", default="test", choices=("test", "val"),
                   help="held-out subjects (test), or the validation subjects to choose the sampler's settings on (val: "
                        "posterior[_multicoil]_val.json)")
    p.add_argument("--multicoil", action="store_true", help="8-coil files, SENSE, compared with XPDNet")
    p.add_argument("--estimate-noise", action="store_true",
                   help="let the sampler estimate the noise from the outer k-space rows (default: give it the noise added)")
    p.add_argument("--snr-db", type=float, default=35.0,
                   help="noise added to the noiseless held-out k-space (the training examples had 25-45 dB)")
    p.add_argument("--progress", action="store_true", help="a progress bar over the chains' moves")
    p.add_argument("--weights", default=None, help="a weights file of the recipe's model instead of the preset (e.g. "
                   "RUN_DIR/backup/latest.weights.h5 of a running training)")
    d = sub.add_parser("denoise")
    for name in ("recipe", "data_dir", "run_dir"):
        d.add_argument(name)
    d.add_argument("--preset", default=None, help="the prior to score (default: RUN_DIR/preset)")
    d.add_argument("--weights", default=None, help="a weights file of the recipe's model instead of the preset")
    d.add_argument("--part", default="test", choices=("test", "val"))
    d.add_argument("--volumes", type=int, default=5, help="volumes (their middle slice each)")
    d.add_argument("--sigmas", type=float, nargs="+", default=DENOISE_SIGMAS, help="noise std per real part")
    args = parser.parse_args()
    {"evaluate": evaluate, "export": export, "denoise": denoise}[args.command](args)


if __name__ == "__main__":
    main()
