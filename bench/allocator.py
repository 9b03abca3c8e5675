"""Training step time with TensorFlow's two CPU allocators, the default and BFC (a benchmark, not a test).

    python bench/allocator.py [--only NAME ...] [--repeats 5] [--rounds 2] [--quick]

TensorFlow allocates CPU tensors with plain ``malloc`` unless ``TF_CPU_ALLOCATOR_USE_BFC=true``
or it turned oneDNN on by itself (recent Intel CPUs), in which case it pools them (BFC). Without
the pool, a training step's large tensors are mapped and unmapped again at every step, and the
kernel's page faults show up as system time. ``fastmri-zoo train``, ``search`` and ``federate``
set the variable unless the caller did (``runtime.prefer_pooled_cpu_allocator``); this script
measures what that buys.

For each checkpoint (``--only``: substrings of names in ``weights/``, the Cartesian recipes of
``bench/training.py``), a fresh process per allocator builds the recipe's model at its training size
and batch, feeds it a batch of its own pipeline, traces a training step (L1 on the magnitude,
Adam: ``training.fit.l1_magnitude_step``) and times ``--repeats`` more (median), and reports the
process's user and system CPU seconds over the timed steps. The two processes alternate
``--rounds`` times (default first, then BFC first), so a shared machine's load slows them alike;
each cell is the median over rounds. The last column is default / BFC step time. A row says
"(BFC already)" where the default process already had the pool (there the two rows are the same
allocator). ``--quick``: the PDNet recipe, 2 repeats, one round (the smoke test's).
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
from fastmri_zoo.runtime import POOLED_ALLOCATOR_VARIABLE as VARIABLE  # noqa: E402  (no TensorFlow)


def measure(name: str, repeats: int) -> dict:
    """In this process: median step seconds, CPU seconds per step, and whether TensorFlow pools."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
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


def run_fresh(name: str, repeats: int, bfc: bool) -> dict:
    """``measure`` in a new process, with the variable set to true, or removed (TensorFlow's default)."""
    env = {key: value for key, value in os.environ.items() if key != VARIABLE}
    if bfc:
        env[VARIABLE] = "true"
    root = str(BENCH.parent)
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH), root, env.get("PYTHONPATH", "")])
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--repeats", str(repeats)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode:
        raise RuntimeError(f"{name} ({'BFC' if bfc else 'default'}) failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help=f"substrings of checkpoint names (default: {DEFAULT_ONLY})")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per process (default 5, 2 with --quick)")
    parser.add_argument("--rounds", type=int, default=None, help="processes per allocator, alternating (default 2)")
    parser.add_argument("--quick", action="store_true", help="the PDNet recipe, 2 repeats, one round")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    if args.child:
        print(json.dumps(measure(args.child, repeats)))
        return
    from training import cartesian_recipes  # bench/training.py (imports TensorFlow here; each measurement has its own process)

    only = args.only or (["pdnet-cartesian-singlecoil-af4"] if args.quick else DEFAULT_ONLY)
    names = [path.parent.name for path in cartesian_recipes(only)]
    if not names:
        raise SystemExit(f"--only: no Cartesian recipe in weights/ matches {only}")
    rounds = args.rounds or (1 if args.quick else 2)
    print(f"training step, TensorFlow's default CPU allocator against BFC ({VARIABLE}=true); fresh process "
          f"each, median of {repeats} steps, median of {rounds} alternating rounds; CPU s per step")
    print(f"{'checkpoint':36s}{'default s':>10s}{'user':>7s}{'system':>8s}{'BFC s':>8s}{'user':>7s}{'system':>8s}"
          f"{'default / BFC':>15s}")
    for name in names:
        runs = {False: [], True: []}
        for round_ in range(rounds):
            for bfc in ((False, True) if round_ % 2 == 0 else (True, False)):
                runs[bfc].append(run_fresh(name, repeats, bfc))
        cells = {bfc: {key: statistics.median(run[key] for run in found) for key in ("step_s", "user_s", "system_s")}
                 for bfc, found in runs.items()}
        default, pooled = cells[False], cells[True]
        note = "  (BFC already)" if runs[False][0]["pooled"] else ""
        print(f"{name:36s}{default['step_s']:10.3f}{default['user_s']:7.2f}{default['system_s']:8.2f}"
              f"{pooled['step_s']:8.3f}{pooled['user_s']:7.2f}{pooled['system_s']:8.2f}"
              f"{default['step_s'] / pooled['step_s']:14.2f}x{note}", flush=True)


if __name__ == "__main__":
    main()
