"""Train and evaluate the shipped Cartesian checkpoints on simulated IXI data.

    python scripts/train_ixi.py train NAME DATA_DIR RUN_DIR [--steps 600 --batch 2 --lr 1e-3 --seed 0]
    python scripts/train_ixi.py evaluate NAME DATA_DIR RUN_DIR [--max-volumes 15]
    python scripts/train_ixi.py export NAME RUN_DIR WEIGHTS_DIR

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


def _load_trained(name, run_dir):
    model = _build(name)
    return model


def evaluate(args):
    import tensorflow as tf

    from fastmri_zoo import metrics
    from fastmri_zoo.data.pipelines import list_h5_files
    from fastmri_zoo.physics import ifftc, rss

    model = _build(args.name)
    _, _, coils, *_ = RECIPES[args.name]
    multicoil = coils == "multicoil"
    files = list_h5_files(os.path.join(args.data_dir, coils, "test"))[: args.max_volumes]
    results = {"network": [], "zero-filled": []}
    built = False
    for path in files:
        ds = _dataset_for_file(args.name, path)
        preds, zfs, targets = [], [], []
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
        gt = np.concatenate(targets)
        results["network"].append(metrics.evaluate_volume(gt, np.concatenate(preds)))
        results["zero-filled"].append(metrics.evaluate_volume(gt, np.concatenate(zfs)))
        print(os.path.basename(path), {k: round(v[-1]["psnr"], 2) for k, v in results.items()}, flush=True)
    summary = {method: metrics.summarize(rows) for method, rows in results.items()}
    with open(os.path.join(args.run_dir, "metrics.json"), "w") as handle:
        json.dump({"volumes": [os.path.basename(p) for p in files], "per_volume": results, "summary": summary},
                  handle, indent=1)
    print(json.dumps(summary, indent=1))


def _dataset_for_file(name, path):
    """The held-out volume ``path`` alone, its masks seeded per slice (seed 0)."""
    import shutil
    import tempfile

    from fastmri_zoo.data.pipelines import cartesian_dataset

    _, _, coils, mask_type, center, acceleration = RECIPES[name]
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
    p = sub.add_parser("evaluate")
    p.add_argument("name", choices=sorted(RECIPES))
    p.add_argument("data_dir")
    p.add_argument("run_dir")
    p.add_argument("--max-volumes", type=int, default=15)
    args = parser.parse_args()
    {"train": train, "evaluate": evaluate}[args.command](args)


if __name__ == "__main__":
    main()
