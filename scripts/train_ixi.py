"""Train and evaluate the shipped Cartesian checkpoints on simulated IXI data.

    python scripts/train_ixi.py train NAME DATA_DIR RUN_DIR [--steps 600 --batch 2 --lr 1e-3 --seed 0]
    python scripts/train_ixi.py evaluate NAME DATA_DIR RUN_DIR [--max-volumes 15]
    python scripts/train_ixi.py export NAME DATA_DIR RUN_DIR WEIGHTS_DIR

DATA_DIR is the output of ``scripts/prepare_ixi.py`` (``singlecoil/`` and ``multicoil/``,
each with ``train/ val/ test/``; the 3D recipe wants whole volumes: ``--slices 0:90``).
Cartesian recipes simulate masks on the fly; non-Cartesian ones (radial, spiral, 3D
kooshball) the NUFFT of each slice or volume (``fastmri_zoo.data.pipelines``). ``train`` is resumable: rerunning the same command after
an interruption continues from the last backup (keras BackupAndRestore, every 25 steps).
``evaluate`` scores the held-out subjects (``test/``) volume by volume with fastMRI's
metrics, for the network and for zero-filled (non-Cartesian: adjoint + density
compensation), and writes ``RUN_DIR/metrics.json``; ``--mask-type``, ``--trajectory`` and
``--acceleration`` score out of the training distribution (``metrics_<setting>.json``).
Non-Cartesian 2D scoring uses every 5th of the 50 slices of each held-out volume.
``export`` writes the preset folder with its model card.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

RECIPES = {
    # name: (class name, constructor kwargs, coils, mask type, center fraction, acceleration)
    "unet-cartesian-singlecoil-af4": ("UNet", {}, "singlecoil", "random", 0.08, 4),
    "cascadenet-cartesian-singlecoil-af4": ("CascadeNet", {}, "singlecoil", "random", 0.08, 4),
    "kikinet-cartesian-singlecoil-af4": ("KIKINet", {"kspace_residual": True}, "singlecoil", "random", 0.08, 4),
    "pdnet-cartesian-singlecoil-af4": ("PDNet", {}, "singlecoil", "random", 0.08, 4),
    "xpdnet-cartesian-multicoil-af4": (
        "XPDNet",
        {"denoiser": "unet", "denoiser_kwargs": {"layers_n_channels": [16, 32, 64]}, "n_iter": 5,
         "multicoil": True, "refine_smaps": True},
        "multicoil", "equispaced_fraction", 0.08, 4),
    "xpdnet-cartesian-multicoil-af8": (
        "XPDNet",
        {"denoiser": "unet", "denoiser_kwargs": {"layers_n_channels": [16, 32, 64]}, "n_iter": 5,
         "multicoil": True, "refine_smaps": True},
        "multicoil", "equispaced_fraction", 0.04, 8),
}
# Non-Cartesian: (class name, kwargs, coils, trajectory, None, acceleration N / shots).
_NCPDNET_MULTICOIL = {"multicoil": True, "refine_smaps": True}
_UNET_ADJDCOMP = {}
for _trajectory in ("radial", "spiral"):
    RECIPES[f"ncpdnet-{_trajectory}-singlecoil"] = ("NCPDNet", {"image_shape": [120, 120]}, "singlecoil",
                                                    _trajectory, None, 4)
    RECIPES[f"ncpdnet-{_trajectory}-multicoil"] = ("NCPDNet", _NCPDNET_MULTICOIL, "multicoil", _trajectory, None, 4)
    for _coils in ("singlecoil", "multicoil"):
        RECIPES[f"unet-adjdcomp-{_trajectory}-{_coils}"] = (
            "UNetAdjDcomp", dict(_UNET_ADJDCOMP, multicoil=_coils == "multicoil",
                                 **({} if _coils == "multicoil" else {"image_shape": [120, 120]})),
            _coils, _trajectory, None, 4)
RECIPES["ncpdnet-radial-3d"] = ("NCPDNet", {"ndim": 3, "n_iter": 6, "n_primal": 2, "n_filters": 16,
                                            "image_shape": [90, 120, 120]}, "3d", "kooshball", None, 4)
NONCARTESIAN = ("radial", "spiral", "kooshball")
#: what a model card must say beyond the recipe
NOTES = {
    "ncpdnet-radial-3d": (
        " Whole volumes, batch 1, about 14 s per step on 2 CPU cores (streamed gridding of the 648,000 samples); "
        "training-time validation on 2 volumes, slice-wise: 28.56 dB / SSIM 0.830 at step 400 (adjoint + DCp on "
        "the same volumes: 23.58 dB / 0.499). No 3D U-net on adjoint + DCp was trained for comparison."),
    "ncpdnet-radial-multicoil": (
        " Its run was interrupted after 125 steps (started with --steps 500 --val-batches 20) and resumed from "
        "its BackupAndRestore backup with the command below: the same optimizer steps, only the validation "
        "subset and the step target changed."),
    "kikinet-cartesian-singlecoil-af4": (
        " Its k-space CNNs are residual (kspace_residual=True, the same 1,251,080 parameters): the authors' "
        "non-residual ones, trained with the same budget, reached 21.46 dB on the held-out subjects, below "
        "zero-filled (26.04 dB), because they must first learn the identity in k-space."),
}
#: held-out slices scored per volume in 2D non-Cartesian evaluation
NONCARTESIAN_EVAL_SLICES = slice(0, None, 5)


def _magnitude_output_class():
    import keras
    import tensorflow as tf

    class MagnitudeOutput(keras.Model):
        """|network(inputs)|: Keras' compiled losses cast predictions to float32, which would
        silently keep only the real part of a complex image."""

        def __init__(self, network, **kwargs):
            super().__init__(**kwargs)
            self.network = network

        def call(self, inputs):
            return tf.abs(self.network(inputs))

    return MagnitudeOutput


def MagnitudeOutput(network):
    return _magnitude_output_class()(network)


def _build(name):
    import fastmri_zoo.models as models

    class_name, kwargs, *_ = RECIPES[name]
    return getattr(models, class_name)(**kwargs)


def _folder(coils):
    return "multicoil" if coils == "multicoil" else "singlecoil"


def _dataset(name, data_dir, part, batch, shuffle, seed, folder=None, mask_type=None, acceleration=None):
    """The (inputs, target) pipeline of recipe ``name`` on DATA_DIR/<coils>/<part> (or ``folder``);
    ``mask_type`` (a mask family or a trajectory) and ``acceleration`` override the recipe's."""
    from fastmri_zoo.data import pipelines

    _, _, coils, recipe_mask, center, recipe_acceleration = RECIPES[name]
    mask_type = mask_type or recipe_mask
    acceleration = acceleration or recipe_acceleration
    folder = folder or os.path.join(data_dir, _folder(coils), part)
    common = dict(seed=seed, batch_size=batch, shuffle=shuffle, drop_remainder=shuffle)
    if mask_type == "kooshball":
        return pipelines.noncartesian_3d_dataset(folder, acceleration, **common)
    if mask_type in NONCARTESIAN:
        return pipelines.noncartesian_dataset(folder, mask_type, acceleration, multicoil=coils == "multicoil",
                                              **common)
    return pipelines.cartesian_dataset(folder, mask_type, center, acceleration, multicoil=coils == "multicoil",
                                       **common)


def _strip(inputs):
    return {key: value for key, value in inputs.items() if key != "scale"}


def train(args):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    model = _build(args.name)
    # Training masks are redrawn every epoch (seed None) so the network sees many patterns;
    # validation masks are fixed per slice.
    train_ds = _dataset(args.name, args.data_dir, "train", args.batch, True, None).repeat()
    train_ds = train_ds.map(lambda x, y: (_strip(x), y))
    val_ds = _dataset(args.name, args.data_dir, "val", args.batch, False, 0).take(args.val_batches)
    val_ds = val_ds.map(lambda x, y: (_strip(x), y)).cache()

    def magnitude_l1(y_true, y_pred):
        return tf.reduce_mean(tf.abs(y_pred - y_true))

    from fastmri_zoo.metrics import ReconstructionMetric

    network = model
    class SliceMetric(ReconstructionMetric):
        """The metric of every slice of (batch, D, H, W) volumes (3D recipes)."""

        def update_state(self, y_true, y_pred, sample_weight=None):
            def slices(x):
                return tf.reshape(x, tf.concat([[-1], tf.shape(x)[-2:]], 0))

            return super().update_state(slices(y_true), slices(y_pred), sample_weight)

    metric = SliceMetric if RECIPES[args.name][2] == "3d" else ReconstructionMetric
    model = MagnitudeOutput(network)
    model.compile(optimizer=keras.optimizers.Adam(args.lr, clipnorm=1.0), loss=magnitude_l1,
                  metrics=[metric("psnr"), metric("ssim")], jit_compile=False,
                  run_eagerly=args.eager)
    model(next(iter(val_ds))[0])  # BackupAndRestore needs a built model
    os.makedirs(args.run_dir, exist_ok=True)
    steps_per_epoch = args.steps_per_epoch
    callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(args.run_dir, "backup")),
        keras.callbacks.CSVLogger(os.path.join(args.run_dir, "log.csv"), append=True),
    ]
    start = time.time()
    model.fit(train_ds, validation_data=val_ds, epochs=args.steps // steps_per_epoch,
              steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=2)
    network.save_weights(os.path.join(args.run_dir, "final.weights.h5"))
    with open(os.path.join(args.run_dir, "run.json"), "w") as handle:
        json.dump({"name": args.name, "steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed,
                   "steps_per_epoch": steps_per_epoch, "eager": args.eager,
                   "val_batches": args.val_batches,
                   "optimizer": "Adam(clipnorm=1.0)", "loss": "L1 on magnitude",
                   "seconds_last_session": time.time() - start,
                   "command": "python scripts/train_ixi.py train " + " ".join(sys.argv[2:])}, handle, indent=1)


PAPERS = {
    "UNet": "Ronneberger et al., U-Net (MICCAI 2015); benchmark configuration of Ramzi et al., "
            "'Benchmarking MRI reconstruction neural networks on large public datasets' (Applied Sciences 2020).",
    "CascadeNet": "Schlemper et al., 'A deep cascade of convolutional neural networks for dynamic MR image "
                  "reconstruction' (IEEE TMI 2018), D5C5; as benchmarked by Ramzi et al. (2020).",
    "KIKINet": "Eo et al., 'KIKI-net: cross-domain convolutional neural networks for reconstructing undersampled "
               "magnetic resonance images' (MRM 2018); as benchmarked by Ramzi et al. (2020).",
    "PDNet": "Adler and Oktem, 'Learned primal-dual reconstruction' (IEEE TMI 2018); the MRI benchmark of "
             "Ramzi et al. (2020).",
    "XPDNet": "Ramzi et al., 'XPDNet for MRI reconstruction: an application to the 2020 fastMRI challenge' (2021).",
    "NCPDNet": "Ramzi et al., 'NC-PDNet: a density-compensated unrolled network for 2D and 3D non-Cartesian MRI "
               "reconstruction' (IEEE TMI 2022).",
    "UNetAdjDcomp": "U-net on the adjoint + density compensation, the baseline of Ramzi et al., NC-PDNet (IEEE TMI 2022).",
}


def _row(label, values):
    return (f"| {label} | {values['psnr'][0]:.2f} +- {values['psnr'][1]:.2f} | {values['ssim'][0]:.4f} +- "
            f"{values['ssim'][1]:.4f} | {values['nmse'][0]:.4f} +- {values['nmse'][1]:.4f} |")


_HEADER = ["", "| method | PSNR (dB) | SSIM | NMSE |", "| --- | --- | --- | --- |"]


def _card_tables(name, run_dir, scores):
    """The held-out tables of the model card: the training setting, then every other setting scored."""
    _, _, coils, mask_type, center, acceleration = RECIPES[name]
    summary = scores["summary"]
    if mask_type not in NONCARTESIAN:
        lines = [
            f"Held-out IXI subjects ({len(scores['volumes'])} volumes, 50 sagittal slices each), {mask_type} masks, "
            f"AF {acceleration}, centre fraction {center}, masks seeded per slice (seed 0); fastMRI metrics, "
            "volume-wise, mean +- std over volumes:", *_HEADER,
            _row("zero-filled", summary["zero-filled"]), _row(name, summary["network"])]
        extra_path = os.path.join(run_dir, "metrics_equispaced.json")
        if os.path.exists(extra_path):
            with open(extra_path) as handle:
                extra = json.load(handle)["summary"]
            lines += [
                "",
                f"The same subjects with fastMRI's integer-step equispaced masks (AF {acceleration}, same centre "
                "fraction), where GRAPPA (5 x 2 kernel, Tikhonov 1e-3, fastmri_zoo.baselines.grappa) applies:",
                *_HEADER, _row("zero-filled", extra["zero-filled"]), _row("GRAPPA", extra["GRAPPA"]),
                _row(name, extra["network"])]
        return "\n".join(lines)
    slices = "whole 90 x 120 x 120 volumes" if coils == "3d" else "every 5th of the 50 sagittal slices of each"
    lines = [f"Held-out IXI subjects ({len(scores['volumes'])} volumes, {slices}); fastMRI metrics, volume-wise, "
             "mean +- std over volumes. Baseline: adjoint NUFFT with Pipe-Menon density compensation (RSS over coils)."]
    settings = [("", mask_type, acceleration)]
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
                  _row("adjoint + DCp", summary["adjoint + DCp"]), _row(name, summary["network"])]
    return "\n".join(lines)


def export(args):
    """Write the preset folder of a finished run, with its model card."""
    with open(os.path.join(args.run_dir, "run.json")) as handle:
        run = json.load(handle)
    with open(os.path.join(args.run_dir, "metrics.json")) as handle:
        scores = json.load(handle)
    class_name, kwargs, coils, mask_type, center, acceleration = RECIPES[args.name]
    noncartesian = mask_type in NONCARTESIAN
    model = _build(args.name)
    inputs, _ = _dataset_for_file(args.name, os.path.join(args.data_dir, _folder(coils), "test",
                                                          scores["volumes"][0]))[0]
    model(_strip(inputs))
    model.load_weights(os.path.join(args.run_dir, "final.weights.h5"))
    net = scores["summary"]["network"]
    table = _card_tables(args.name, args.run_dir, scores)
    if noncartesian:
        coil_text = {"singlecoil": "single-coil (1 coil, smooth random phase)",
                     "multicoil": "8-coil (birdcage coils, smooth random phase; coil maps estimated from the "
                                  "centre of k-space, a low-resolution adjoint NUFFT)",
                     "3d": "single-coil 3D (whole volumes, smooth random phase)"}[coils]
        shots = "D x W / spokes: 2,700 spokes of 240 samples" if coils == "3d" else "N / shots"
        acquisition_text = (f"{mask_type} trajectory (fastmri_zoo.sampling, readout oversampling 2) at acceleration "
                            f"{acceleration} ({shots}), Pipe-Menon density compensation (10 iterations)")
        slices_text = ("whole 90 x 120 x 120 volumes (sagittal slices 0-89)" if coils == "3d"
                       else "120 x 120 sagittal slices 20-69 of each volume")
        normalization = "max of the adjoint + DCp magnitude (RSS over coils)"
        prepare = "--slices 0:90 --coils 1" if coils == "3d" else ""
    else:
        coil_text = "single-coil (1 coil, smooth random phase)" if coils == "singlecoil" else \
            "8 simulated birdcage coils, smooth random phase, coil maps estimated from the ACS lines"
        acquisition_text = f"{mask_type} undersampling at acceleration {acceleration}"
        slices_text = "120 x 120 sagittal slices 20-69 of each volume"
        normalization = "max of zero-filled magnitude"
        prepare = ""
    normalization_text = "maximum of the zero-filled magnitude" if not noncartesian else normalization.replace("max", "maximum")
    budget = f"{run['steps']} steps of batch {run['batch']}"
    model.save_to_preset(
        os.path.join(args.weights_dir, args.name),
        name=args.name,
        description=(f"{class_name} trained on simulated {coil_text} {'' if noncartesian else 'Cartesian '}"
                     "k-space of IXI T1 brain volumes, "
                     f"{acquisition_text}. Trained on this project's CPU with a "
                     f"small budget ({budget}), so it is a working baseline, not "
                     "the published network's quality. Configuration: "
                     f"{json.dumps(kwargs) if kwargs else 'the thesis benchmark settings (class defaults)'}."
                     + NOTES.get(args.name, "")),
        architecture=class_name,
        paper=PAPERS[class_name],
        training_data=("IXI T1 volumes (Hammersmith Hospital Philips 3T, brain-development.org/ixi-dataset, CC BY-SA 3.0), "
                       f"resampled to 2 mm, {slices_text}; k-space simulated with "
                       f"`{' '.join(['python scripts/prepare_ixi.py IXI_T1_DIR DATA_DIR'] + ([prepare] if prepare else []))}`"
                       f" ({coil_text}, seed 0, noiseless). Split by "
                       "subject (weights/ixi_split.json, seed 0): 153 train, 15 validation, 15 held out. Inputs are "
                       f"normalised by the {normalization_text} (fastmri_zoo.data.pipelines)."),
        training_command=(f"python scripts/train_ixi.py train {args.name} DATA_DIR RUN_DIR --steps {run['steps']} "
                          f"--batch {run['batch']} --lr {run['lr']} --seed {run['seed']}"
                          + (f" --steps-per-epoch {run['steps_per_epoch']}" if run.get("steps_per_epoch", 25) != 25 else "")
                          + (f" --val-batches {run['val_batches']}" if run.get("val_batches", 20) != 20 else "")
                          + (" --eager" if run.get("eager") else "")
                          + f"  (loss {run['loss']}, optimizer {run['optimizer']}, lr {run['lr']}, "
                          f"{run['steps']} steps, batch {run['batch']}, seed {run['seed']}"
                          + (", training masks redrawn each epoch)" if not noncartesian else ", one fixed trajectory)")),
        metrics={"psnr": round(net["psnr"][0], 3), "ssim": round(net["ssim"][0], 4), "nmse": round(net["nmse"][0], 5)},
        evaluation_data="IXI held-out subjects (simulated k-space)",
        intended_use=("Intended use: research on undersampled MRI reconstruction, a starting point for fine-tuning "
                      "(fastmri-zoo finetune) and a baseline in comparisons.\n\n" + table),
        limitations=("Limitations: trained on simulated data from magnitude images of one contrast (T1) and resolution "
                     "(2 mm, 120 x 120); not validated on raw scanner data or for clinical use. Weights derived from IXI "
                     "are shared under CC BY-SA 3.0."),
        license="cc-by-sa-3.0",
        datasets=["IXI"],
        tags=["mri-reconstruction", "non-cartesian" if noncartesian else "cartesian", coils, class_name.lower()],
        trajectory=("radial" if mask_type == "kooshball" else mask_type) if noncartesian else "cartesian",
        coils=coils,
        acceleration=acceleration,
        acquisition=({"trajectory": mask_type, "acceleration": acceleration, "readout_oversampling": 2.0,
                      "dcomp": "pipe-menon, 10 iterations", "normalization": normalization} if noncartesian else
                     {"mask_type": mask_type, "center_fraction": center, "acceleration": acceleration,
                      "normalization": normalization}),
    )
    print(os.path.join(args.weights_dir, args.name))


def _baseline_magnitude(inputs, coils, mask_type, image_shape):
    """Zero-filled (Cartesian) or adjoint + density compensation (non-Cartesian) magnitude,
    root-sum-of-squares over coils: float32 (batch, *image_shape)."""
    import tensorflow as tf

    from fastmri_zoo.physics import NUFFT, ifftc, rss

    kspace = inputs["kspace"]
    if coils != "multicoil":
        kspace = kspace[:, None]
    if mask_type in NONCARTESIAN:
        operator = NUFFT(inputs["traj"], image_shape)
        coil_images = operator.coil_images(kspace * tf.cast(inputs["dcomp"], tf.complex64)[:, None])
    else:
        coil_images = ifftc(kspace, 2)
    return rss(coil_images, axis=1).numpy()


def _setting(args):
    """The evaluation setting's suffix ('' for the training setting) and its mask/trajectory and AF."""
    _, _, _, recipe_mask, _, recipe_acceleration = RECIPES[args.name]
    mask_type = getattr(args, "mask_type", None) or recipe_mask
    acceleration = getattr(args, "acceleration", None) or recipe_acceleration
    if (mask_type, acceleration) == (recipe_mask, recipe_acceleration):
        return "", mask_type, acceleration
    suffix = f"_{mask_type}" if acceleration == recipe_acceleration else f"_{mask_type}_af{acceleration:g}"
    return suffix, mask_type, acceleration


def evaluate(args):
    from fastmri_zoo import metrics
    from fastmri_zoo.data.pipelines import list_h5_files

    model = _build(args.name)
    _, _, coils, *_ = RECIPES[args.name]
    suffix, mask_type, acceleration = _setting(args)
    files = list_h5_files(os.path.join(args.data_dir, _folder(coils), "test"))[: args.max_volumes]
    with_grappa = mask_type == "equispaced"
    baseline = "adjoint + DCp" if mask_type in NONCARTESIAN else "zero-filled"
    results = {"network": [], baseline: []} | ({"GRAPPA": []} if with_grappa else {})
    built = False
    for path in files:
        preds, baselines, grappas, targets = [], [], [], []
        for inputs, target in _dataset_for_file(args.name, path, mask_type, acceleration):
            inputs = _strip(inputs)
            if not built:
                model(inputs)
                model.load_weights(os.path.join(args.run_dir, "final.weights.h5"))
                built = True
            preds.append(np.abs(model(inputs).numpy()))
            baselines.append(_baseline_magnitude(inputs, coils, mask_type, tuple(target.shape[1:])))
            targets.append(target.numpy())
            if with_grappa:
                from fastmri_zoo.baselines.grappa import grappa

                grappas.append(grappa(inputs["kspace"].numpy(), inputs["mask"].numpy())[1])
        gt = np.concatenate(targets)
        if coils == "3d":  # one volume: (1, D, H, W) -> (D, H, W), scored slice-wise
            gt, preds, baselines = gt[0], [preds[0][0]], [baselines[0][0]]
        results["network"].append(metrics.evaluate_volume(gt, np.concatenate(preds)))
        results[baseline].append(metrics.evaluate_volume(gt, np.concatenate(baselines)))
        if with_grappa:
            results["GRAPPA"].append(metrics.evaluate_volume(gt, np.concatenate(grappas)))
        print(os.path.basename(path), {k: round(v[-1]["psnr"], 2) for k, v in results.items()}, flush=True)
    summary = {method: metrics.summarize(rows) for method, rows in results.items()}
    with open(os.path.join(args.run_dir, f"metrics{suffix}.json"), "w") as handle:
        json.dump({"mask_type": mask_type, "acceleration": acceleration,
                   "volumes": [os.path.basename(p) for p in files], "per_volume": results, "summary": summary},
                  handle, indent=1)
    print(json.dumps(summary, indent=1))


def _dataset_for_file(name, path, mask_type=None, acceleration=None):
    """The held-out volume ``path`` alone (non-Cartesian 2D: its slices
    ``NONCARTESIAN_EVAL_SLICES``), its masks seeded per slice (seed 0)."""
    import shutil
    import tempfile

    import h5py

    _, _, coils, recipe_mask, _, _ = RECIPES[name]
    mask_type = mask_type or recipe_mask
    folder = tempfile.mkdtemp()
    try:
        copy = os.path.join(folder, os.path.basename(path))
        if mask_type in ("radial", "spiral"):
            with h5py.File(path, "r") as source, h5py.File(copy, "w") as subset:
                for key, value in source.items():
                    subset[key] = value[NONCARTESIAN_EVAL_SLICES]
                subset.attrs.update(source.attrs)
        else:
            os.symlink(os.path.abspath(path), copy)
        batch = 1 if mask_type == "kooshball" else 10
        return list(_dataset(name, None, None, batch, False, 0, folder=folder, mask_type=mask_type,
                             acceleration=acceleration))
    finally:
        shutil.rmtree(folder)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("name", choices=sorted(RECIPES))
    p.add_argument("data_dir")
    p.add_argument("run_dir")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-batches", type=int, default=20)
    p.add_argument("--steps-per-epoch", type=int, default=25)
    p.add_argument("--eager", action="store_true",
                   help="run the training steps eagerly: a fixed trajectory's Toeplitz kernel is then computed once")
    p = sub.add_parser("export")
    p.add_argument("name", choices=sorted(RECIPES))
    p.add_argument("data_dir")
    p.add_argument("run_dir")
    p.add_argument("weights_dir")
    p = sub.add_parser("evaluate")
    p.add_argument("name", choices=sorted(RECIPES))
    p.add_argument("data_dir")
    p.add_argument("run_dir")
    p.add_argument("--max-volumes", type=int, default=15)
    p.add_argument("--mask-type", default=None,
                   choices=["random", "equispaced", "equispaced_fraction", "radial", "spiral"],
                   help="score with this mask family or trajectory instead of the training one "
                        "(equispaced adds GRAPPA)")
    p.add_argument("--acceleration", type=float, default=None, help="score at this acceleration")
    args = parser.parse_args()
    {"train": train, "evaluate": evaluate, "export": export}[args.command](args)


if __name__ == "__main__":
    main()
