"""Train and evaluate the shipped Cartesian checkpoints on simulated IXI data.

    python scripts/train_ixi.py train NAME DATA_DIR RUN_DIR [--steps 600 --batch 2 --lr 1e-3 --seed 0]
    python scripts/train_ixi.py evaluate NAME DATA_DIR RUN_DIR [--max-volumes 15]
    python scripts/train_ixi.py export NAME DATA_DIR RUN_DIR WEIGHTS_DIR

DATA_DIR is the output of ``scripts/prepare_ixi.py`` (``singlecoil/`` and ``multicoil/``,
each with ``train/ val/ test/``). ``train`` is resumable: rerunning the same command after
an interruption continues from the last backup (keras BackupAndRestore, every 25 steps).
``evaluate`` scores the held-out subjects (``test/``) volume by volume with fastMRI's
metrics, for the network and for zero-filled, and writes ``RUN_DIR/metrics.json``.
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
    "kikinet-cartesian-singlecoil-af4": ("KIKINet", {}, "singlecoil", "random", 0.08, 4),
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


def _dataset(name, data_dir, part, batch, shuffle, seed):
    from fastmri_zoo.data.pipelines import cartesian_dataset

    _, _, coils, mask_type, center, acceleration = RECIPES[name]
    return cartesian_dataset(os.path.join(data_dir, coils, part), mask_type, center, acceleration,
                             multicoil=coils == "multicoil", seed=seed, batch_size=batch,
                             shuffle=shuffle, drop_remainder=shuffle)


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
    model = MagnitudeOutput(network)
    model.compile(optimizer=keras.optimizers.Adam(args.lr, clipnorm=1.0), loss=magnitude_l1,
                  metrics=[ReconstructionMetric("psnr"), ReconstructionMetric("ssim")], jit_compile=False)
    model(next(iter(val_ds))[0])  # BackupAndRestore needs a built model
    os.makedirs(args.run_dir, exist_ok=True)
    steps_per_epoch = 25
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
}


def export(args):
    """Write the preset folder of a finished run, with its model card."""
    with open(os.path.join(args.run_dir, "run.json")) as handle:
        run = json.load(handle)
    with open(os.path.join(args.run_dir, "metrics.json")) as handle:
        scores = json.load(handle)
    class_name, kwargs, coils, mask_type, center, acceleration = RECIPES[args.name]
    model = _build(args.name)
    inputs, _ = _dataset_for_file(args.name, os.path.join(args.data_dir, coils, "test",
                                                          scores["volumes"][0]))[0]
    model(_strip(inputs))
    model.load_weights(os.path.join(args.run_dir, "final.weights.h5"))
    summary = scores["summary"]
    net, zf = summary["network"], summary["zero-filled"]

    def row(label, values):
        return (f"| {label} | {values['psnr'][0]:.2f} +- {values['psnr'][1]:.2f} | {values['ssim'][0]:.4f} +- "
                f"{values['ssim'][1]:.4f} | {values['nmse'][0]:.4f} +- {values['nmse'][1]:.4f} |")

    table = "\n".join([
        f"Held-out IXI subjects ({len(scores['volumes'])} volumes, 50 sagittal slices each), {mask_type} masks, "
        f"AF {acceleration}, centre fraction {center}, masks seeded per slice (seed 0); fastMRI metrics, "
        "volume-wise, mean +- std over volumes:",
        "",
        "| method | PSNR (dB) | SSIM | NMSE |",
        "| --- | --- | --- | --- |",
        row("zero-filled", zf),
        row(args.name, net),
    ])
    extra_path = os.path.join(args.run_dir, "metrics_equispaced.json")
    if os.path.exists(extra_path):
        with open(extra_path) as handle:
            extra = json.load(handle)["summary"]
        table += "\n".join([
            "", "",
            f"The same subjects with fastMRI's integer-step equispaced masks (AF {acceleration}, same centre fraction), "
            "where GRAPPA (5 x 2 kernel, Tikhonov 1e-3, fastmri_zoo.baselines.grappa) applies:",
            "",
            "| method | PSNR (dB) | SSIM | NMSE |",
            "| --- | --- | --- | --- |",
            row("zero-filled", extra["zero-filled"]),
            row("GRAPPA", extra["GRAPPA"]),
            row(args.name, extra["network"]),
        ])
    coil_text = "single-coil (1 coil, smooth random phase)" if coils == "singlecoil" else \
        "8 simulated birdcage coils, smooth random phase, coil maps estimated from the ACS lines"
    model.save_to_preset(
        os.path.join(args.weights_dir, args.name),
        name=args.name,
        description=(f"{class_name} trained on simulated {coil_text} Cartesian k-space of IXI T1 brain volumes, "
                     f"{mask_type} undersampling at acceleration {acceleration}. Trained on this project's CPU with a "
                     f"small budget ({run['steps']} steps of batch {run['batch']}), so it is a working baseline, not "
                     "the published network's quality. Configuration: "
                     f"{json.dumps(kwargs) if kwargs else 'the thesis benchmark settings (class defaults)'}."),
        architecture=class_name,
        paper=PAPERS[class_name],
        training_data=("IXI T1 volumes (Hammersmith Hospital Philips 3T, brain-development.org/ixi-dataset, CC BY-SA 3.0), "
                       "resampled to 2 mm, 120 x 120 sagittal slices 20-69 of each volume; k-space simulated with "
                       f"`python scripts/prepare_ixi.py IXI_T1_DIR DATA_DIR` ({coil_text}, seed 0, noiseless). Split by "
                       "subject (weights/ixi_split.json, seed 0): 153 train, 15 validation, 15 held out. Inputs are "
                       "normalised by the maximum of the zero-filled magnitude (fastmri_zoo.data.pipelines)."),
        training_command=(f"python scripts/train_ixi.py train {args.name} DATA_DIR RUN_DIR --steps {run['steps']} "
                          f"--batch {run['batch']} --lr {run['lr']} --seed {run['seed']}  (loss {run['loss']}, optimizer {run['optimizer']}, lr {run['lr']}, "
                          f"{run['steps']} steps, batch {run['batch']}, seed {run['seed']}, training masks redrawn each "
                          "epoch)"),
        metrics={"psnr": round(net["psnr"][0], 3), "ssim": round(net["ssim"][0], 4), "nmse": round(net["nmse"][0], 5)},
        evaluation_data="IXI held-out subjects (simulated k-space)",
        intended_use=("Intended use: research on undersampled MRI reconstruction, a starting point for fine-tuning "
                      "(fastmri-zoo finetune) and a baseline in comparisons.\n\n" + table),
        limitations=("Limitations: trained on simulated data from magnitude images of one contrast (T1) and resolution "
                     "(2 mm, 120 x 120); not validated on raw scanner data or for clinical use. Weights derived from IXI "
                     "are shared under CC BY-SA 3.0."),
        license="cc-by-sa-3.0",
        datasets=["IXI"],
        tags=["mri-reconstruction", "cartesian", coils, class_name.lower()],
        trajectory="cartesian",
        coils=coils,
        acceleration=acceleration,
        acquisition={"mask_type": mask_type, "center_fraction": center, "acceleration": acceleration,
                     "normalization": "max of zero-filled magnitude"},
    )
    print(os.path.join(args.weights_dir, args.name))


def evaluate(args):
    import tensorflow as tf

    from fastmri_zoo import metrics
    from fastmri_zoo.data.pipelines import list_h5_files
    from fastmri_zoo.physics import ifftc, rss

    model = _build(args.name)
    _, _, coils, *_ = RECIPES[args.name]
    multicoil = coils == "multicoil"
    files = list_h5_files(os.path.join(args.data_dir, coils, "test"))[: args.max_volumes]
    with_grappa = args.mask_type == "equispaced"
    results = {"network": [], "zero-filled": []} | ({"GRAPPA": []} if with_grappa else {})
    built = False
    for path in files:
        ds = _dataset_for_file(args.name, path, args.mask_type)
        preds, zfs, grappas, targets = [], [], [], []
        for inputs, target in ds:
            if not built:
                model(_strip(inputs))
                model.load_weights(os.path.join(args.run_dir, "final.weights.h5"))
                built = True
            out = tf.abs(model(_strip(inputs))).numpy()
            zf = ifftc(inputs["kspace"], 2)
            zf = (rss(zf, axis=1) if multicoil else tf.abs(zf)).numpy()
            preds.append(out)
            zfs.append(zf)
            targets.append(target.numpy())
            if with_grappa:
                from fastmri_zoo.baselines.grappa import grappa

                grappas.append(grappa(inputs["kspace"].numpy(), inputs["mask"].numpy())[1])
        gt = np.concatenate(targets)
        results["network"].append(metrics.evaluate_volume(gt, np.concatenate(preds)))
        results["zero-filled"].append(metrics.evaluate_volume(gt, np.concatenate(zfs)))
        if with_grappa:
            results["GRAPPA"].append(metrics.evaluate_volume(gt, np.concatenate(grappas)))
        print(os.path.basename(path), {k: round(v[-1]["psnr"], 2) for k, v in results.items()}, flush=True)
    summary = {method: metrics.summarize(rows) for method, rows in results.items()}
    out_name = "metrics.json" if args.mask_type is None else f"metrics_{args.mask_type}.json"
    with open(os.path.join(args.run_dir, out_name), "w") as handle:
        json.dump({"mask_type": args.mask_type or RECIPES[args.name][3], "volumes": [os.path.basename(p) for p in files], "per_volume": results, "summary": summary},
                  handle, indent=1)
    print(json.dumps(summary, indent=1))


def _dataset_for_file(name, path, mask_type=None):
    """The held-out volume ``path`` alone, its masks seeded per slice (seed 0)."""
    import shutil
    import tempfile

    from fastmri_zoo.data.pipelines import cartesian_dataset

    _, _, coils, recipe_mask, center, acceleration = RECIPES[name]
    mask_type = mask_type or recipe_mask
    folder = tempfile.mkdtemp()
    os.symlink(os.path.abspath(path), os.path.join(folder, os.path.basename(path)))
    ds = cartesian_dataset(folder, mask_type, center, acceleration, multicoil=coils == "multicoil",
                           seed=0, batch_size=10)
    items = list(ds)
    shutil.rmtree(folder)
    return items


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
    p.add_argument("--mask-type", default=None, choices=["random", "equispaced", "equispaced_fraction"],
                   help="score with this mask family instead of the training one (equispaced adds GRAPPA)")
    args = parser.parse_args()
    {"train": train, "evaluate": evaluate, "export": export}[args.command](args)


if __name__ == "__main__":
    main()
