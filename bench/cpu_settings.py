"""Training step time under TensorFlow's CPU settings: its default, the pooled allocator, and the
pooled allocator with oneDNN's kernels (a benchmark, not a test).

    python bench/cpu_settings.py [--only NAME ...] [--repeats 5] [--rounds 2] [--quick]

TensorFlow allocates CPU tensors with plain ``malloc`` and runs Eigen's convolutions unless
``TF_CPU_ALLOCATOR_USE_BFC=true`` / ``TF_ENABLE_ONEDNN_OPTS=1``, or it turned oneDNN on by itself
(recent Intel CPUs), in which case it does both: pools tensors (BFC) and runs oneDNN's kernels.
Without the pool, a training step's large tensors are mapped and unmapped again at every step,
and the kernel's page faults show up as system time; Eigen's convolutions and their gradients
are slower than oneDNN's. ``fastmri-zoo train``, ``search`` and ``federate`` ask for both unless
the caller chose (``runtime.prefer_training_cpu_settings``); this script measures what that buys.

For each checkpoint (``--only``: substrings of names in ``weights/``, the Cartesian recipes of
``bench/training.py``), a fresh process per setting builds the recipe's model at its training size
and batch, feeds it a batch of its own pipeline, traces a training step (L1 on the magnitude,
Adam: ``training.fit.l1_magnitude_step``) and times ``--repeats`` more (median), and reports the
process's user and system CPU seconds per timed step. The settings take turns ``--rounds`` times,
in a rotated order each round, so a shared machine's load slows them alike; each cell is the
median over rounds. The last two columns are the default's step time over each other setting's.
A row says "(TensorFlow chose both already)" where the default process already pooled and ran
oneDNN (there the three settings are the same). ``--quick``: the U-net recipe, 2 repeats, one round
(the smoke test's; a U-net process takes about half a PDNet one, most of either being the trace).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
DEFAULT_ONLY = ["irim-cartesian-singlecoil-af4", "reconode-lt_rk4", "pdnet-cartesian-singlecoil-af4",
                "unet-cartesian-singlecoil-af4"]
from fastmri_zoo.runtime import (  # noqa: E402
    ONEDNN_NOTICE, ONEDNN_VARIABLE, POOLED_ALLOCATOR_VARIABLE, TRAINING_CPU_ENVIRONMENT)

#: The settings compared, by label: the variables each sets (the others removed from the environment).
SETTINGS = {
    "default": {},
    "BFC": {POOLED_ALLOCATOR_VARIABLE: "true"},
    "BFC+oneDNN": TRAINING_CPU_ENVIRONMENT,  # what the training commands ask for
}


def measure(name: str, repeats: int) -> dict:
    """In this process: median step seconds, CPU seconds per step, and whether TensorFlow pools."""
    import keras
    import tensorflow as tf

    from fastmri_zoo.training.config import load_recipe
    from fastmri_zoo.training.fit import l1_magnitude_step
    from training import WEIGHTS, ellipsoid_volume, recipe_batch  # bench/training.py

    try:  # only the pooled (BFC) allocator keeps statistics
        tf.config.experimental.reset_memory_stats("CPU:0")
        pooled = True
    except ValueError:
        pooled = False
    recipe = load_recipe(WEIGHTS / name / "recipe.json")
    (inputs, target), _ = recipe_batch(recipe, [ellipsoid_volume()])
    keras.utils.set_random_seed(0)
    model = recipe.build_model()
    model(inputs)
    step = l1_magnitude_step(model, keras.optimizers.Adam(1e-4))
    float(step(inputs, target))  # trace, warm up
    before = resource.getrusage(resource.RUSAGE_SELF)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        float(step(inputs, target))
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"step_s": statistics.median(times), "pooled": pooled,
            "user_s": (after.ru_utime - before.ru_utime) / repeats,
            "system_s": (after.ru_stime - before.ru_stime) / repeats}


def run_fresh(name: str, repeats: int, setting: str) -> dict:
    """``measure`` in a new process whose environment has ``SETTINGS[setting]`` and neither variable otherwise;
    ``onednn``: whether TensorFlow said, as it started, that it runs oneDNN's kernels."""
    env = {key: value for key, value in os.environ.items() if key not in (POOLED_ALLOCATOR_VARIABLE, ONEDNN_VARIABLE)}
    env.update(SETTINGS[setting], TF_CPP_MIN_LOG_LEVEL="0")
    root = str(BENCH.parent)
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH), root, env.get("PYTHONPATH", "")])
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--repeats", str(repeats)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode:
        raise RuntimeError(f"{name} ({setting}) failed:\n{result.stderr[-3000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]), onednn=ONEDNN_NOTICE in result.stderr)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help=f"substrings of checkpoint names (default: {DEFAULT_ONLY})")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per process (default 5, 2 with --quick)")
    parser.add_argument("--rounds", type=int, default=None, help="processes per setting, in rotated order (default 2)")
    parser.add_argument("--quick", action="store_true", help="the U-net recipe, 2 repeats, one round")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    if args.child:
        print(json.dumps(measure(args.child, repeats)))
        return
    from training import cartesian_recipes  # bench/training.py (imports TensorFlow here; each measurement has its own process)

    only = args.only or (["unet-cartesian-singlecoil-af4"] if args.quick else DEFAULT_ONLY)
    names = [path.parent.name for path in cartesian_recipes(only)]
    if not names:
        raise SystemExit(f"--only: no Cartesian recipe in weights/ matches {only}")
    rounds = args.rounds or (1 if args.quick else 2)
    labels = list(SETTINGS)
    print(f"training step under TensorFlow's CPU settings: its default, the pooled allocator ({POOLED_ALLOCATOR_VARIABLE}"
          f"=true), and that with oneDNN's kernels ({ONEDNN_VARIABLE}=1); fresh process each, median of {repeats} steps, "
          f"median of {rounds} rounds in rotated order; s per step, CPU s per step (user, system)")
    print(f"{'checkpoint':36s}" + "".join(f"{label + ' s':>15s}{'user':>7s}{'system':>7s}" for label in labels)
          + "".join(f"{'default / ' + label:>22s}" for label in labels[1:]))
    for name in names:
        runs = {label: [] for label in labels}
        for round_ in range(rounds):
            for label in labels[round_ % len(labels):] + labels[:round_ % len(labels)]:
                runs[label].append(run_fresh(name, repeats, label))
        cells = {label: {key: statistics.median(run[key] for run in found) for key in ("step_s", "user_s", "system_s")}
                 for label, found in runs.items()}
        default = runs["default"][0]
        note = "  (TensorFlow chose both already)" if default["pooled"] and default["onednn"] else ""
        print(f"{name:36s}" + "".join(f"{cells[label]['step_s']:15.3f}{cells[label]['user_s']:7.2f}"
                                      f"{cells[label]['system_s']:7.2f}" for label in labels)
              + "".join(f"{cells['default']['step_s'] / cells[label]['step_s']:21.2f}x" for label in labels[1:])
              + note, flush=True)


if __name__ == "__main__":
    main()
