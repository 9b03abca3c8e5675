"""Training throughput of the shipped Cartesian recipes, with the convolution gradients written as
forward convolutions and with TensorFlow's own (a benchmark, not a test).

    python bench/training.py [--repeats 3] [--only NAME ...] [--threads 2]

For every Cartesian checkpoint in ``weights/`` the model of its ``recipe.json`` is built at
its recipe's training size (``data.synthesis.size``, else 128 x 128) and batch size, and fed a
batch drawn by the recipe's own pipeline (``data.synthesized_cartesian_dataset``) from a
generated volume (ellipsoids; only the time matters). Side by side, in one run:

- ``data``: seconds to draw one batch (the pipeline runs in the background during training,
  so it costs nothing while it is shorter than a step);
- ``infer``: one forward pass of the batch;
- ``before``: one training step (forward, L1 on the magnitude, gradient, Adam) with the
  gradients written as forward convolutions (``layers.convolution.forward_convolution_gradients``,
  the zoo's default until they were measured slower);
- ``after``: the same step with TensorFlow's own convolution gradients (oneDNN), the default;
- ``XLA``: the ``after`` step compiled with ``jit_compile=True`` (``--xla``).

Each time is the median of ``--repeats`` runs after one traced warm-up run, the runs of a
checkpoint alternating within every repeat. The last columns are steps per second before / after,
the speed-up, and the step / inference ratio after (3 is what a backward pass costing twice the
forward gives).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fastmri_zoo.data import synthesized_cartesian_dataset  # noqa: E402
from fastmri_zoo.data.synthesis import Synthesis  # noqa: E402
from fastmri_zoo.layers.convolution import forward_convolution_gradients  # noqa: E402
from fastmri_zoo.training.config import load_recipe  # noqa: E402
from fastmri_zoo.training.fit import l1_magnitude_step  # noqa: E402

from cartesian import interleaved_medians, median_seconds  # noqa: E402  (bench/cartesian.py, beside this script)

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def ellipsoid_volume(shape=(96, 112, 96), count: int = 12, seed: int = 0) -> np.ndarray:
    """A head-like magnitude volume: a few random ellipsoids of random intensity."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"), -1)
    volume = np.zeros(shape, np.float32)
    for i in range(count):
        centre = rng.uniform(-0.3, 0.3, 3) * (i > 0)
        radii = rng.uniform(0.15, 0.5, 3) if i else np.array([0.85, 0.9, 0.8])
        inside = (((grid - centre) / radii) ** 2).sum(-1) <= 1
        volume[inside] += rng.uniform(0.2, 1.0)
    return volume


def recipe_batch(recipe, volumes):
    """A batch of the recipe's training pipeline, drawn from ``volumes``."""
    synthesis = dict(recipe.data.get("synthesis") or {"size": [128, 128]})
    acquisition = recipe.acquisition
    multicoil = bool(acquisition.get("multicoil"))
    if multicoil:
        synthesis.setdefault("coils", 8)
    dataset = synthesized_cartesian_dataset(
        "unused", Synthesis.from_dict(synthesis), mask_type=acquisition.get("mask_type", "random"),
        center_fractions=acquisition.get("center_fraction", 0.08),
        accelerations=acquisition.get("acceleration", 4), multicoil=multicoil,
        batch_size=recipe.batch_size, volumes=volumes,
    )
    iterator = iter(dataset)
    batch = next(iterator)
    data = median_seconds(lambda: next(iterator), 3)
    return batch, data


def measure(recipe, batch, repeats: int, xla: bool) -> dict:
    inputs, target = batch
    keras.utils.set_random_seed(0)
    model = recipe.build_model()
    model(inputs)
    times = {"params": model.count_params()}
    infer = tf.function(lambda x: model(x))
    runs = {"infer": lambda: infer(inputs).numpy()}
    with forward_convolution_gradients():
        before = l1_magnitude_step(model, keras.optimizers.Adam(1e-4))
        before(inputs, target)  # traced within the block
    runs["before"] = lambda: before(inputs, target).numpy()
    after = l1_magnitude_step(model, keras.optimizers.Adam(1e-4))
    runs["after"] = lambda: after(inputs, target).numpy()
    if xla:
        compiled = l1_magnitude_step(model, keras.optimizers.Adam(1e-4), jit_compile=True)
        runs["xla"] = lambda: compiled(inputs, target).numpy()
    # The runs alternate within every repeat, so a shared machine's load slows them alike.
    times.update(zip(runs, interleaved_medians(list(runs.values()), repeats)))
    return times


def cartesian_recipes(only) -> list[Path]:
    found = []
    for path in sorted(WEIGHTS.glob("*/recipe.json")):
        if json.loads(path.read_text()).get("acquisition", {}).get("kind") != "cartesian":  # (denoisers: none)
            continue
        if only and not any(part in path.parent.name for part in only):
            continue
        found.append(path)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="substrings of checkpoint names to run")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow intra-op threads (default: TensorFlow's, one per core)")
    parser.add_argument("--xla", action="store_true", help="also time the step compiled with XLA")
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    volumes = [ellipsoid_volume()]
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} cores, "
          f"intra-op threads {args.threads or 'default'}; times in seconds, median of {args.repeats}")
    header = (f"{'checkpoint':34s} {'params':>8s} {'size':>11s} {'data':>6s} {'infer':>6s} {'before':>7s} "
              f"{'after':>7s}" + (f" {'XLA':>7s}" if args.xla else "")
              + f" {'steps/s before':>14s} {'after':>6s} {'speed-up':>8s} {'step/infer':>10s}")
    print(header)
    for path in cartesian_recipes(args.only):
        recipe = load_recipe(path)
        batch, data = recipe_batch(recipe, volumes)
        t = measure(recipe, batch, args.repeats, args.xla)
        shape = batch[1].shape
        size = f"{shape[0]}x{shape[1]}x{shape[2]}"
        print(f"{path.parent.name:34s} {t['params']:8d} {size:>11s} {data:6.3f} {t['infer']:6.3f} "
              f"{t['before']:7.3f} {t['after']:7.3f}" + (f" {t['xla']:7.3f}" if args.xla else "")
              + f" {1 / t['before']:14.3f} {1 / t['after']:6.3f} {t['before'] / t['after']:7.2f}x "
              f"{t['after'] / t['infer']:10.2f}", flush=True)


if __name__ == "__main__":
    main()
