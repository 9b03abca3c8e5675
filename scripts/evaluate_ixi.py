"""Score the shipped checkpoints on the held-out IXI subjects and write their model cards.

    fastmri-zoo train weights/NAME/recipe.json --data DATA_DIR --run-dir RUN_DIR      (training)
    python scripts/evaluate_ixi.py evaluate NAME DATA_DIR RUN_DIR [--max-volumes 15]
    python scripts/evaluate_ixi.py outside NAME DATA_DIR RUN_DIR [--seeds 0 1 2]
    python scripts/evaluate_ixi.py export NAME DATA_DIR RUN_DIR WEIGHTS_DIR [--comparison TABLE.md] [--search OUT]
    python scripts/evaluate_ixi.py paired METRICS_A.json METRICS_B.json
    python scripts/evaluate_ixi.py curves NAME DATA_DIR OUT.png LABEL=RUN_DIR/log.csv[,NEXT_RUN_DIR/log.csv] ...

Training is the packaged trainer's (``fastmri_zoo.training``); this script only reads
``weights/NAME/recipe.json`` (model, data folder, acquisition). DATA_DIR is the data root written
by ``scripts/prepare_ixi.py`` (each recipe's ``data.prepare``). ``evaluate`` loads the trained
preset ``RUN_DIR/preset`` and scores the held-out subjects (the recipe's ``data.test`` folder)
volume by volume with fastMRI's metrics, for the network and for zero-filled (non-Cartesian:
adjoint + density compensation), and writes ``RUN_DIR/metrics.json``; ``--mask-type``,
``--trajectory`` and ``--acceleration`` score out of the training distribution
(``metrics_<setting>.json``). Non-Cartesian 2D scoring uses every 5th of the 50 slices of each
held-out volume. ``outside`` scores it on data outside its training domain (``OUTSIDE_SETS``: another
resolution, real scanner k-space, another anatomy) with three mask seeds and writes
``RUN_DIR/metrics_outside.json``. ``export`` writes ``WEIGHTS_DIR/NAME`` with the model card: the recipe's card,
the run's command and the held-out tables and metrics (and ``--comparison``'s markdown after them, a
family's comparison table; ``--search``: the output folder of the ``fastmri-zoo search`` that found a searched
network's cell, whose recipe, genotype, alpha history and drawings go into the folder and onto the card).
WEIGHTS_DIR/NAME must not exist yet or be a preset folder: export to a new folder and move it over
``weights/NAME`` (which holds only the recipe while the run trains). ``paired`` compares two networks
scored by ``evaluate`` on the same volumes and setting: the per-volume differences A - B (mean +- std,
how many volumes A is ahead on). ``curves`` draws the validation curves of several runs on the same
validation examples (NAME's recipe: its zero-filled PSNR on them is the dashed line) on one axis, for a card
that compares networks trained on the same data; a label given comma-separated logs is a run and its
continuations (``"initial_weights"``), drawn end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile

import numpy as np

from cards import read_run, training_paragraph, write_checkpoint

WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "weights")
#: held-out slices scored per volume in 2D non-Cartesian evaluation
NONCARTESIAN_EVAL_SLICES = slice(0, None, 5)


def _recipe(name):
    from fastmri_zoo.training import load_recipe

    return load_recipe(os.path.join(WEIGHTS, name, "recipe.json"))


def _setting(recipe, mask_type=None, acceleration=None):
    """(file suffix, acquisition): the recipe's acquisition with a mask family / trajectory and an
    acceleration in place of its own ('' suffix for the training setting). A recipe trained on mixed
    accelerations (a list, with a centre fraction each) is scored at one at a time: its first
    acceleration is the training setting (``metrics.json``), each other one of the list a setting of
    its own with its centre fraction."""
    from fastmri_zoo.inference import one_acceleration

    acquisition = dict(recipe.acquisition)
    key = "mask_type" if acquisition["kind"] == "cartesian" else "trajectory"
    if isinstance(acquisition["acceleration"], (list, tuple)):
        listed = [float(af) for af in acquisition["acceleration"]]
        chosen = listed[0] if acceleration is None else float(acceleration)
        fractions = acquisition.get("center_fraction")
        if isinstance(fractions, (list, tuple)) and chosen not in listed:
            raise SystemExit(f"--acceleration: {recipe.name} trained at {listed} with a centre fraction each "
                             f"({list(fractions)}); pick one of those, got {chosen:g}.")
        acquisition = one_acceleration(acquisition, chosen)  # the chosen one's centre fraction
        acquisition["acceleration"] = listed[0]
        acceleration = chosen
    own = (acquisition[key], acquisition["acceleration"])
    wanted = (mask_type or own[0], acceleration or own[1])
    if wanted == own:
        return "", acquisition
    acquisition[key], acquisition["acceleration"] = wanted
    suffix = f"_{wanted[0]}" if wanted[1] == own[1] else f"_{wanted[0]}_af{wanted[1]:g}"
    return suffix, acquisition


def _volume_batches(path, acquisition, seed=0, all_slices=False):
    """The held-out volume ``path`` alone (non-Cartesian 2D: its slices ``NONCARTESIAN_EVAL_SLICES``
    unless ``all_slices``), masks seeded per slice by ``seed``."""
    import h5py

    from fastmri_zoo.training import acquisition_dataset

    folder = tempfile.mkdtemp()
    try:
        copy = os.path.join(folder, os.path.basename(path))
        if acquisition["kind"] == "noncartesian" and acquisition["ndim"] == 2 and not all_slices:
            with h5py.File(path, "r") as source, h5py.File(copy, "w") as subset:
                for key, value in source.items():
                    subset[key] = value[NONCARTESIAN_EVAL_SLICES]
                subset.attrs.update(source.attrs)
        else:
            os.symlink(os.path.abspath(path), copy)
        batch = 1 if acquisition["ndim"] == 3 else 10
        return list(acquisition_dataset(folder, acquisition, seed=seed, batch_size=batch))
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


def _cg_sense_magnitude(inputs, cg) -> np.ndarray:
    """CG-SENSE (``baselines.cg_sense``) with the coil maps the network gets, settings ``cg``."""
    from fastmri_zoo.baselines import cg_sense

    return np.abs(cg_sense(inputs["kspace"], inputs["mask"], inputs["smaps"], **cg).numpy())


#: CG-SENSE settings searched on the validation subjects (``tune_cg_sense``): Tikhonov weight
#: (inputs normalised as the networks get them) and number of iterations (early stopping regularises too).
CG_SENSE_GRID = [dict(regularization=lam, num_iterations=n) for lam in (0.0, 0.003, 0.01, 0.03, 0.1)
                 for n in (5, 10, 20, 40)]


def tune_cg_sense(files, acquisition) -> tuple[dict, list]:
    """The CG-SENSE settings of ``CG_SENSE_GRID`` with the best mean PSNR on ``files`` (every slice
    batch of each, mask seed 0); returns them and the grid's scores."""
    from fastmri_zoo import metrics

    batches = [batch for path in files for batch in _volume_batches(path, acquisition, 0)]
    scores = []
    for cg in CG_SENSE_GRID:
        values = [metrics.psnr(target.numpy(), _cg_sense_magnitude(inputs, cg)) for inputs, target in batches]
        scores.append({**cg, "psnr": float(np.mean(values))})
        print("CG-SENSE", scores[-1], flush=True)
    best = max(scores, key=lambda row: row["psnr"])
    return {key: best[key] for key in ("regularization", "num_iterations")}, scores


def _score(model, files, acquisition, seeds=(0,), log=True, cg=None, all_slices=False) -> dict:
    """{method: [per-volume metrics]} of ``model`` and the baselines on ``files``, one row per
    (file, mask seed); ``cg``: CG-SENSE settings, to score it too (Cartesian multicoil);
    ``all_slices``: every slice of each file (``_volume_batches``)."""
    from fastmri_zoo import metrics

    with_grappa = acquisition.get("mask_type") == "equispaced"
    baseline = _baseline_label(acquisition)
    results = {"network": [], baseline: []} | ({"GRAPPA": []} if with_grappa else {})
    if cg is not None:
        results["CG-SENSE"] = []
    for path in files:
        for seed in seeds:
            preds, baselines, grappas, cgs, targets = [], [], [], [], []
            for inputs, target in _volume_batches(path, acquisition, seed, all_slices):
                inputs = {key: value for key, value in inputs.items() if key != "scale"}
                preds.append(np.abs(model(inputs).numpy()))
                if cg is not None:
                    cgs.append(_cg_sense_magnitude(inputs, cg))
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
            if cg is not None:
                results["CG-SENSE"].append(metrics.evaluate_volume(gt, np.concatenate(cgs)))
            if log:
                print(os.path.basename(path), f"seed {seed}", {k: round(v[-1]["psnr"], 2) for k, v in results.items()},
                      flush=True)
    return results


#: 2D checkpoints scored beside a 3D (slab) one, on the same volumes and masks
SLAB_COMPARISONS = ("irim-cartesian-singlecoil-af4",)


def _is_slab_model(recipe) -> bool:
    return recipe.acquisition["kind"] == "cartesian" and int(recipe.model_kwargs.get("ndim", 2)) == 3


def _score_slabs(model, files, acquisition, seeds=(0,), compare=None, log=True) -> dict:
    """{method: [per-volume metrics]} of a 3D Cartesian model (slabs, ``inference.reconstruct_cartesian``),
    zero-filled and the 2D models of ``compare`` ({label: model}) on the same k-space: each held-out volume
    undersampled retrospectively with one column mask of the recipe's acquisition for all its slices (what a
    3D acquisition's phase encodes are), drawn from ``seed``."""
    from fastmri_zoo import metrics
    from fastmri_zoo.data.h5 import read_fastmri_h5
    from fastmri_zoo.inference import reconstruct_cartesian, undersample

    compare = dict(compare or {})
    results = {"network": [], "zero-filled": []} | {label: [] for label in compare}
    for path in files:
        volume = read_fastmri_h5(path)
        for seed in seeds:
            kspace, mask, _ = undersample(volume.kspace, acquisition["mask_type"], acquisition["center_fraction"],
                                          acquisition["acceleration"], seed=seed)
            image, zero_filled = reconstruct_cartesian(model, kspace, mask, None, progress=False)
            results["network"].append(metrics.evaluate_volume(volume.reference, image))
            results["zero-filled"].append(metrics.evaluate_volume(volume.reference, zero_filled))
            for label, other in compare.items():
                results[label].append(metrics.evaluate_volume(
                    volume.reference, reconstruct_cartesian(other, kspace, mask, None, progress=False)[0]))
            if log:
                print(os.path.basename(path), f"seed {seed}", {k: round(v[-1]["psnr"], 2) for k, v in results.items()},
                      flush=True)
    return results


def _slab_comparisons() -> dict:
    """{label: model} of the shipped 2D checkpoints ``SLAB_COMPARISONS`` (from this checkout's weights)."""
    from fastmri_zoo.presets import from_preset

    return {f"{name} (2D, same masks)": from_preset(os.path.join(WEIGHTS, name)) for name in SLAB_COMPARISONS}


def _test_folder(recipe, data_dir, part: str = "test") -> str:
    """The held-out (``part="test"``) or validation files: the recipe's folder, or for recipes that
    synthesise their training examples from magnitude volumes (``data.synthesis``), the simulated
    k-space of the same subjects (``prepare_ixi.py --parts val test``: DATA_DIR/singlecoil/PART,
    DATA_DIR/multicoil/PART)."""
    if not recipe.data.get("synthesis"):
        return recipe.data_folders(data_dir)[part]
    kind = "multicoil" if recipe.acquisition["multicoil"] else "singlecoil"
    return os.path.join(data_dir, kind, recipe.data.get(part, part))


def evaluate(args):
    from fastmri_zoo import metrics
    from fastmri_zoo.data.pipelines import list_h5_files
    from fastmri_zoo.presets import from_preset

    recipe = _recipe(args.name)
    suffix, acquisition = _setting(recipe, args.mask_type, args.acceleration)
    model = from_preset(args.preset or os.path.join(args.run_dir, "preset"))
    files = list_h5_files(_test_folder(recipe, args.data_dir, "test"))[: args.max_volumes]
    cg, grid = None, None
    if acquisition["kind"] == "cartesian" and acquisition["multicoil"]:
        val_files = list_h5_files(_test_folder(recipe, args.data_dir, "val"))[: args.tune_volumes]
        cg, grid = tune_cg_sense(val_files, acquisition)
    if _is_slab_model(recipe):
        results = _score_slabs(model, files, acquisition, compare=_slab_comparisons())
    else:
        results = _score(model, files, acquisition, cg=cg)
    summary = {method: metrics.summarize(rows) for method, rows in results.items()}
    key = "trajectory" if acquisition["kind"] == "noncartesian" else "mask_type"
    with open(os.path.join(args.run_dir, f"metrics{suffix}.json"), "w") as handle:
        json.dump({"mask_type": acquisition[key], "acceleration": acquisition["acceleration"],
                   "volumes": [os.path.basename(p) for p in files], "per_volume": results, "summary": summary,
                   "cg_sense": None if cg is None else {"settings": cg, "validation_grid": grid}},
                  handle, indent=1)
    print(json.dumps(summary, indent=1))


# --------------------------------------------------------------------------- outside the training domain

#: Sets scored by ``outside``: (key, description). Each is written as fastMRI-layout files in a
#: temporary folder and scored like the held-out subjects, with three mask seeds.
OUTSIDE_SETS = (
    ("ixi-1mm-axial-coronal", "held-out IXI subjects, axial and coronal slices (every 6th with signal) "
                              "upsampled 2x to 1 mm (240 x 180 and 240 x 240): a resolution never trained on"),
    ("real-brain-t2", "the bundled real 4-coil axial T2 brain slice (256 x 256, fully sampled k-space acquired on a "
                      "scanner; single-coil networks get its coil combination)"),
    ("cardiac", "the bundled held-out cardiac short-axis images (128 x 128, another anatomy and contrast), "
                "k-space simulated as for training"),
)


def _outside_files(name, folder, acquisition, magnitude_dir, coils):
    """Write the set ``name`` in ``folder``; returns its files."""
    from scipy.ndimage import zoom

    from fastmri_zoo.data.h5 import read_fastmri_h5, write_fastmri_h5
    from fastmri_zoo.data.simulate import simulate_volume

    multicoil = acquisition["multicoil"]
    files = []

    def write(stem, magnitude, seed):
        kspace, reference = simulate_volume(magnitude, coils=coils if multicoil else 1, seed=seed)
        path = os.path.join(folder, f"{stem}.h5")
        write_fastmri_h5(path, kspace, reference, acquisition="AXT1" if multicoil else "single-coil")
        files.append(path)

    if name == "ixi-1mm-axial-coronal":
        from fastmri_zoo.data.synthesis import load_volumes

        for index, volume in enumerate(load_volumes(magnitude_dir)[:5]):
            for axis in (0, 1):
                means = volume.mean(axis=tuple(a for a in range(3) if a != axis))
                chosen = np.flatnonzero(means >= 0.3 * means.max())[::6]
                slices = np.stack([zoom(np.take(volume, int(i), axis=axis), 2.0, order=3) for i in chosen])
                write(f"ixi{index}_axis{axis}", np.clip(slices, 0, None), seed=index)
    elif name == "real-brain-t2":
        import tensorflow as tf

        from fastmri_zoo.demo import bundled_sample
        from fastmri_zoo.physics import estimate_sensitivity_maps, fftc, ifftc

        data = read_fastmri_h5(bundled_sample("brain_4coil"))
        kspace = np.asarray(data.kspace, np.complex64)
        if not multicoil:  # one complex image: the coils combined with maps from the k-space centre
            maps = estimate_sensitivity_maps(kspace, num_low_freqs=24)
            image = tf.reduce_sum(tf.math.conj(maps) * ifftc(kspace, 2), axis=1)
            kspace = fftc(image, 2).numpy()
            reference = np.abs(image.numpy()).astype(np.float32)
        else:
            reference = np.asarray(data.reference, np.float32)
        path = os.path.join(folder, "brain_t2.h5")
        write_fastmri_h5(path, kspace, reference, acquisition="AXT2")
        files.append(path)
    elif name == "cardiac":
        from fastmri_zoo.samples import cardiac_images

        _, heldout = cardiac_images()
        write("cardiac", heldout, seed=0)
    else:
        raise ValueError(f"unknown set {name!r}")
    return files


#: The set ``outside`` scores a 3D (slab) checkpoint on: contiguous slices, as slabs need.
OUTSIDE_SLAB_SET = ("ixi-1mm-axial-coronal-slabs",
                    "held-out IXI subjects, 24 contiguous axial and coronal slices through the middle of each volume, "
                    "the volume upsampled 2x to 1 mm in every direction (240 x 180 and 240 x 240 slices, 1 mm apart): "
                    "orientations, a resolution and a slice spacing never trained on")


def _outside_slab_files(folder, magnitude_dir, count=5, slices=24):
    """Write ``OUTSIDE_SLAB_SET``'s single-coil files in ``folder``; returns them."""
    from scipy.ndimage import zoom

    from fastmri_zoo.data.h5 import write_fastmri_h5
    from fastmri_zoo.data.simulate import simulate_volume
    from fastmri_zoo.data.synthesis import load_volumes

    files = []
    for index, volume in enumerate(load_volumes(magnitude_dir)[:count]):
        for axis in (0, 1):
            middle = volume.shape[axis] // 2
            block = np.take(volume, np.arange(middle - slices // 4 - 1, middle + slices // 4 + 1), axis=axis)
            block = np.moveaxis(np.clip(zoom(block, 2.0, order=3), 0, None), axis, 0)
            start = (block.shape[0] - slices) // 2
            kspace, reference = simulate_volume(block[start:start + slices], coils=1, seed=index)
            path = os.path.join(folder, f"ixi{index}_axis{axis}.h5")
            write_fastmri_h5(path, kspace, reference, acquisition="single-coil")
            files.append(path)
    return files


def outside(args):
    """Score the trained preset on data outside its training domain (``OUTSIDE_SETS``)."""
    from fastmri_zoo import metrics
    from fastmri_zoo.presets import from_preset

    recipe = _recipe(args.name)
    acquisition = _setting(recipe)[1]  # mixed accelerations: the first listed
    if acquisition.get("ndim", 2) != 2:
        raise SystemExit("outside: only 2D checkpoints are scored outside their domain so far.")
    model = from_preset(args.preset or os.path.join(args.run_dir, "preset"))
    magnitude_dir = os.path.join(args.data_dir, "magnitude", "test")
    seeds = tuple(args.seeds)
    if _is_slab_model(recipe):  # contiguous slices, scored in slabs beside the 2D i-RIM
        compare = _slab_comparisons()
        sets = [(*OUTSIDE_SLAB_SET, lambda folder: _outside_slab_files(folder, magnitude_dir),
                 lambda files: _score_slabs(model, files, acquisition, seeds=seeds, compare=compare, log=False))]
    else:
        coils = (recipe.data.get("synthesis") or {}).get("coils", 8)
        cg = None  # Cartesian multicoil: CG-SENSE too, with the settings tuned on the validation subjects by ``evaluate``
        held_out = os.path.join(args.run_dir, "metrics.json")
        if acquisition["kind"] == "cartesian" and acquisition["multicoil"]:
            if not os.path.exists(held_out):
                raise SystemExit(f"outside: run `evaluate` first; {held_out} holds the tuned CG-SENSE settings.")
            cg = json.load(open(held_out))["cg_sense"]["settings"]
        sets = [(name, description,
                 lambda folder, name=name: _outside_files(name, folder, acquisition, magnitude_dir, coils),
                 lambda files: _score(model, files, acquisition, seeds=seeds, log=False, cg=cg, all_slices=True))
                for name, description in OUTSIDE_SETS]
    report = {}
    for name, description, write_files, score in sets:
        if args.only and name not in args.only:
            continue
        folder = tempfile.mkdtemp()
        try:
            results = score(write_files(folder))
        finally:
            shutil.rmtree(folder)
        summary = {method: metrics.summarize(rows) for method, rows in results.items()}
        report[name] = {"description": description, "seeds": args.seeds, "per_volume": results, "summary": summary}
        print(name, {method: round(values["psnr"][0], 2) for method, values in summary.items()}, flush=True)
    path = os.path.join(args.run_dir, "metrics_outside.json")
    with open(path, "w") as handle:
        json.dump(report, handle, indent=1)
    print(path)


def _row(label, values):
    return (f"| {label} | {values['psnr'][0]:.2f} +- {values['psnr'][1]:.2f} | {values['ssim'][0]:.4f} +- "
            f"{values['ssim'][1]:.4f} | {values['nmse'][0]:.4f} +- {values['nmse'][1]:.4f} |")


_HEADER = ["", "| method | PSNR (dB) | SSIM | NMSE |", "| --- | --- | --- | --- |"]


def _cartesian_table(recipe, scores, acquisition) -> list[str]:
    """The lines of one Cartesian held-out table: its setting, then zero-filled, the other baselines and the network."""
    summary = scores["summary"]
    masks = ("one mask per volume for all its slices (seed 0), the 3D model reconstructing slabs of "
             f"{recipe.data['synthesis']['depth']} slices" if _is_slab_model(recipe) else
             "masks seeded per slice (seed 0)")
    lines = [
        f"Held-out IXI subjects ({len(scores['volumes'])} volumes, 50 sagittal slices each), {acquisition['mask_type']} "
        f"masks, AF {acquisition['acceleration']:g}, centre fraction {acquisition['center_fraction']}, {masks}; "
        "fastMRI metrics, volume-wise, mean +- std over volumes:", *_HEADER,
        _row("zero-filled", summary["zero-filled"])]
    lines += [_row(method, values) for method, values in summary.items()
              if method not in ("zero-filled", "CG-SENSE", "network", "GRAPPA")]
    if "CG-SENSE" in summary:
        cg = scores["cg_sense"]["settings"]
        lines.append(_row(f"CG-SENSE ({cg['num_iterations']} iterations, Tikhonov {cg['regularization']:g}, "
                          "tuned on the validation subjects)", summary["CG-SENSE"]))
    lines.append(_row(recipe.name, summary["network"]))
    return lines


def _card_tables(recipe, run_dir, scores):
    """The held-out tables of the model card: the training setting, then every other setting scored."""
    acquisition = recipe.acquisition
    summary = scores["summary"]
    if acquisition["kind"] == "cartesian":
        acquisition = _setting(recipe)[1]
        mask_type, acceleration = acquisition["mask_type"], acquisition["acceleration"]
        lines = _cartesian_table(recipe, scores, acquisition)
        for file_name in sorted(os.listdir(run_dir)):  # the other accelerations scored (``--acceleration``)
            if file_name.startswith(f"metrics_{mask_type}_af") and file_name.endswith(".json"):
                with open(os.path.join(run_dir, file_name)) as handle:
                    extra = json.load(handle)
                listed = recipe.acquisition["acceleration"]
                trained = isinstance(listed, (list, tuple)) and extra["acceleration"] in [float(a) for a in listed]
                note = "also a training setting" if trained else "out of the training distribution"
                lines += ["", f"The same subjects at AF {extra['acceleration']:g} ({note}):",
                          *_cartesian_table(recipe, extra, _setting(recipe, mask_type, extra["acceleration"])[1])]
        extra_path = os.path.join(run_dir, "metrics_equispaced.json")
        if os.path.exists(extra_path):
            with open(extra_path) as handle:
                extra = json.load(handle)["summary"]
            lines += [
                "",
                f"The same subjects with fastMRI's integer-step equispaced masks (AF {acceleration:g}, same centre "
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
        if file_name.startswith("metrics_") and file_name.endswith(".json") and file_name != "metrics_outside.json":
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


def _baseline_label(acquisition) -> str:
    """The name of the classical baseline a network is scored and drawn against: adjoint + density
    compensation for non-Cartesian acquisitions, zero-filled otherwise."""
    return "adjoint + DCp" if acquisition["kind"] == "noncartesian" else "zero-filled"


def _validation_baseline(recipe, data_dir) -> float:
    """Mean PSNR of zero-filled (adjoint + DCp) on the run's validation examples, per image as
    ``fit``'s validation metric (fastMRI PSNR, data range the target's maximum)."""
    from fastmri_zoo import metrics
    from fastmri_zoo.training import training_data

    folders = recipe.data_folders(data_dir)
    _, val = training_data(folders["train"], folders["val"], recipe.acquisition, batch_size=recipe.batch_size,
                           seed=recipe.seed, synthesis=recipe.data.get("synthesis"))
    values = []
    for step, (inputs, target) in enumerate(val):
        if recipe.val_steps is not None and step >= recipe.val_steps:
            break
        target = target.numpy()
        baseline = _baseline_magnitude(inputs, recipe.acquisition, tuple(target.shape[-2:]))
        values += [metrics.psnr(g, b) for g, b in zip(target, baseline)]
    return float(np.mean(values))


def _outside_table(run_dir) -> str:
    path = os.path.join(run_dir, "metrics_outside.json")
    if not os.path.exists(path):
        return ""
    with open(path) as handle:
        report = json.load(handle)
    lines = ["", "", "Outside the training domain (`python scripts/evaluate_ixi.py outside`), random masks of the training "
             "acceleration, three mask seeds, mean +- std over (image set, seed):"]
    for name, entry in report.items():
        summary = entry["summary"]
        baseline = next(b for b in ("CG-SENSE", "adjoint + DCp", "zero-filled") if b in summary)
        gain = summary["network"]["psnr"][0] - summary[baseline]["psnr"][0]
        others = [method for method in summary if method != "network"]
        lines += ["", f"{entry['description']}: {gain:+.2f} dB over {baseline}", *_HEADER,
                  *(_row(method, summary[method]) for method in others), _row("network", summary["network"])]
    return "\n".join(lines)


#: what a searched network's folder keeps of its search (``--search``), besides the search recipe
SEARCH_FILES = ("genotype.json", "alpha_history.csv", "cell.png", "history.png")


def _search_record(out_dir) -> tuple[str, dict]:
    """(the card's paragraph on the search, {file name in the weights folder: source path}) for the
    output folder of ``fastmri-zoo search`` (``search.json``, the record; the recipe beside the folder)."""
    from fastmri_zoo.layers import Genotype
    from fastmri_zoo.search import genotype_summary

    record_path = os.path.join(out_dir, "search.json")
    if not os.path.isfile(record_path):
        raise SystemExit(f"--search: expected the output folder of `fastmri-zoo search` (with search.json), "
                         f"got {out_dir!r}.")
    with open(record_path) as handle:
        record = json.load(handle)
    recipe_path = os.path.join(os.path.dirname(os.path.abspath(out_dir)), record["recipe"] or "")
    if not os.path.isfile(recipe_path):
        raise SystemExit(f"--search: the search recipe {record['recipe']!r} is not beside {out_dir!r}.")
    files = {name: os.path.join(out_dir, name) for name in SEARCH_FILES} | {"search.json": recipe_path}
    missing = [name for name, path in files.items() if not os.path.isfile(path)]
    if missing:
        raise SystemExit(f"--search: {out_dir!r} lacks {missing} (the files `fastmri-zoo search` writes).")
    with open(recipe_path) as handle:
        size = json.load(handle)["data"].get("synthesis", {}).get("size")
    search = record["search"]
    why = (f"the genotype unchanged for {search['patience']} epochs" if record["stopped"] == "patience"
           else "its step budget")
    text = (f"The cell was searched on the same training data by `fastmri-zoo search search.json --data DATA_DIR -o "
            f"out` (`search.json` here): {'first-order DARTS' if search['method'] == 'darts' else search['method']}, "
            f"search space {search['space']} ({', '.join(record['search_space'])}), {record['n_nodes']} nodes, "
            f"{' x '.join(str(n) for n in size) + ' crops, ' if size else ''}batch {search['batch_size']}, the network's "
            f"weights on the training subjects (Adam {search['learning_rate']:g}) and the architecture logits on the "
            f"validation subjects (Adam {search['alpha_learning_rate']:g}), alternating; it stopped after "
            f"{record['steps']:,} steps ({why}), {record['wall_time_seconds'] / 3600:.1f} h; the entropy of "
            f"softmax(alpha) went from {record['entropy']['first']:.3f} to {record['entropy']['last']:.3f} nats "
            f"(`alpha_history.csv`, below). The genotype (`genotype.json`), each node's two strongest incoming edges "
            "with their strongest operation other than none:\n\n"
            + "\n".join(f"- {line}" for line in genotype_summary(Genotype.parse(record["genotype"])).splitlines())
            + "\n\n![the searched cell](cell.png)\n\n![the search: entropy and each edge's softmax weights](history.png)")
    return text, files


def export(args):
    """Write WEIGHTS_DIR/NAME: the trained preset, its recipe and validation curve, with the
    training facts and the held-out tables on its model card."""
    from fastmri_zoo.training.config import model_card
    from fastmri_zoo.viz import save_training_curve_png

    recipe = _recipe(args.name)
    run, sessions = read_run(args.run_dir)
    with open(os.path.join(args.run_dir, "metrics.json")) as handle:
        scores = json.load(handle)
    net = scores["summary"]["network"]
    card = model_card(recipe, run["data"])
    card["training_data"] = card.get("training_data", "") + "\n\n" + training_paragraph(
        run, sessions, "PSNR on the fixed validation examples of the validation subjects, against optimizer steps; "
        "dashed: zero-filled on the same examples")
    card["intended_use"] = (card.get("intended_use", "") + "\n\n" + _card_tables(recipe, args.run_dir, scores)
                            + _outside_table(args.run_dir))
    if args.comparison:
        with open(args.comparison, encoding="utf-8") as handle:
            card["intended_use"] += "\n\n" + handle.read().strip()
    searched = _search_record(args.search) if args.search else None
    if searched:
        card["training_data"] += "\n\n" + searched[0]
    metrics = {"psnr": round(net["psnr"][0], 3), "ssim": round(net["ssim"][0], 4), "nmse": round(net["nmse"][0], 5)}
    target = write_checkpoint(recipe, args.run_dir, args.weights_dir, run, card, metrics)
    for name, source in (searched[1] if searched else {}).items():
        shutil.copyfile(source, os.path.join(target, name))
    baseline = _baseline_label(recipe.acquisition)
    save_training_curve_png(os.path.join(target, "validation_curve.png"), os.path.join(args.run_dir, "log.csv"),
                            run["steps_per_epoch"], baselines={baseline: _validation_baseline(recipe, args.data_dir)},
                            title=args.name, kept_step=run["kept"]["step"] if isinstance(run.get("kept"), dict) else None)
    print(target)


#: the metrics ``paired`` compares, with the sign that makes a positive difference better
PAIRED_METRICS = {"psnr": 1, "ssim": 1, "nmse": -1}


def paired_differences(first: dict, second: dict) -> dict:
    """Per-volume differences of two ``evaluate`` reports (network A minus network B) on the same
    volumes and setting: for PSNR, SSIM and NMSE the mean, the standard deviation over volumes and
    the number of volumes where A is better (higher PSNR and SSIM, lower NMSE)."""
    for key in ("volumes", "mask_type", "acceleration"):
        if first.get(key) != second.get(key):
            raise ValueError(f"paired: the two reports differ in {key} ({first.get(key)!r} vs {second.get(key)!r}); "
                             "expected the same held-out volumes and setting.")
    out = {"volumes": len(first["volumes"])}
    for metric, sign in PAIRED_METRICS.items():
        diff = np.array([a[metric] - b[metric] for a, b in zip(first["per_volume"]["network"],
                                                                second["per_volume"]["network"])])
        out[metric] = {"mean": float(diff.mean()), "std": float(diff.std()), "ahead": int((sign * diff > 0).sum())}
    return out


def paired(args):
    reports = []
    for path in (args.first, args.second):
        with open(path) as handle:
            reports.append(json.load(handle))
    try:
        result = paired_differences(*reports)
    except ValueError as error:
        raise SystemExit(f"evaluate_ixi.py {error}") from None
    print(f"A - B on {result['volumes']} volumes ({reports[0]['mask_type']}, AF {reports[0]['acceleration']:g}):")
    for metric in PAIRED_METRICS:
        row = result[metric]
        print(f"  {metric}: {row['mean']:+.4f} +- {row['std']:.4f} (A better on {row['ahead']} of {result['volumes']})")
    print(json.dumps(result))


def curves(args):
    """OUT.png: the validation curves of runs on NAME's validation examples, with zero-filled's level."""
    from fastmri_zoo.viz import save_validation_curves_png

    logs = {}
    for item in args.runs:
        label, sep, chain = item.rpartition("=")
        paths = chain.split(",")
        if not sep or not label or not all(os.path.isfile(log) for log in paths):
            raise SystemExit(f"evaluate_ixi.py curves: expected LABEL=PATH/log.csv[,NEXT_PATH/log.csv] with existing "
                             f"logs, got {item!r}.")
        if label in logs:
            raise SystemExit(f"evaluate_ixi.py curves: the label {label!r} is given twice; expected one label per run "
                             "(a continued run: its logs comma-separated after one label).")
        if any(os.path.abspath(log) == os.path.abspath(args.out) for log in paths):
            raise SystemExit(f"evaluate_ixi.py curves: OUT.png {args.out!r} is one of the logs; expected a new file.")
        logs[label] = paths
    recipe = _recipe(args.name)
    if recipe.steps_per_epoch is None:
        raise SystemExit(f"evaluate_ixi.py curves: {args.name}'s recipe sets no training.steps_per_epoch; expected the "
                         "epoch length of the logged runs.")
    baseline = _baseline_label(recipe.acquisition)
    print(save_validation_curves_png(args.out, logs, recipe.steps_per_epoch,
                                     baselines={baseline: _validation_baseline(recipe, args.data_dir)}, title=args.title))


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
    p.add_argument("--tune-volumes", type=int, default=5,
                   help="validation volumes the CG-SENSE settings are tuned on (Cartesian multicoil)")
    p.add_argument("--mask-type", default=None,
                   choices=["random", "equispaced", "equispaced_fraction", "radial", "spiral"],
                   help="score with this mask family or trajectory instead of the training one "
                        "(equispaced adds GRAPPA)")
    p.add_argument("--acceleration", type=float, default=None, help="score at this acceleration")
    p = sub.add_parser("outside")
    p.add_argument("name", choices=names)
    p.add_argument("data_dir")
    p.add_argument("run_dir")
    p.add_argument("--preset", default=None, help="the preset to score (default: RUN_DIR/preset)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="mask seeds")
    p.add_argument("--only", nargs="*", default=None, choices=[name for name, _ in OUTSIDE_SETS])
    p = sub.add_parser("export")
    p.add_argument("name", choices=names)
    p.add_argument("data_dir")
    p.add_argument("run_dir")
    p.add_argument("weights_dir")
    p.add_argument("--comparison", metavar="MARKDOWN_FILE",
                   help="markdown appended to the card after the held-out tables (e.g. a family's comparison table)")
    p.add_argument("--search", metavar="OUT_DIR", default=None,
                   help="the output folder of the `fastmri-zoo search` that found the network's cell (its recipe beside it)")
    p = sub.add_parser("paired", help="per-volume differences of two evaluate reports (metrics*.json)")
    p.add_argument("first", metavar="METRICS_A")
    p.add_argument("second", metavar="METRICS_B")
    p = sub.add_parser("curves", help="validation curves of several runs on NAME's validation examples, one axis")
    p.add_argument("name", choices=names)
    p.add_argument("data_dir")
    p.add_argument("out", metavar="OUT.png")
    p.add_argument("runs", nargs="+", metavar="LABEL=LOG_CSV[,NEXT_LOG_CSV]")
    p.add_argument("--title", default=None)
    args = parser.parse_args()
    {"evaluate": evaluate, "outside": outside, "export": export, "paired": paired, "curves": curves}[args.command](args)


if __name__ == "__main__":
    main()
