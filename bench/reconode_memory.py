"""Training memory and step time of ReconODE: LT-RK4 with and without checkpointing, FT vs FA
(a benchmark, not a test).

    python bench/reconode_memory.py [--quick] [--size 128] [--batch 1] [--repeats 3]

Each configuration runs in a fresh process (so one run's allocations do not hide another's): the
model on random single-coil Cartesian data (size x size, 4x mask), one training step (L1 on the
magnitude, RAdam + Lookahead, a traced ``tf.function``) run once to warm up, then the peak of the
bytes in TensorFlow tensors during one step above those held before it (the allocator's own
statistics: ``bench/memory.py``), the median of nine such steps (their smallest and largest
printed beside it), and the median time of ``--repeats`` steps. LT-RK4's two step times, whose
ratio the issue bounds, come from one more process that holds both models and takes their steps in
turn (8 each), so that the machine's drift falls on both alike. Beside a training job on the other
core, at 128 x 128, separate processes one after the other read 1.52 where steps in turn read 1.23
and 1.32 (two runs); with every cascade recomputed, 1.49 against 1.43.
The measuring processes run with
one inter-op thread (``TF_NUM_INTEROP_THREADS=1``, whatever the caller set) and with the allocator
and kernels of ``bench/memory.py``'s ``ENVIRONMENT`` (BFC, oneDNN), so that every CPU measures the
same thing. A step's count still varies from step to step: the executor's order varies, and the
pooled allocator may hand a request a free block of up to twice its size without splitting it, and
counts the whole block. At 64 x 64, FA-RK4's steps spread over 7.4-8.6 MB at N = 5 and 8.4-9.5 MB at
N = 20 (one feature map of 32 channels is 0.5 MB). With medians of three steps, a CI machine once
printed 7.3 and 8.8 MB (1.21); medians of twelve steps gave 1.09-1.12 here (three processes each).
FA grows by one image per step: each step's x(t1) is kept for its backward solve, because the
data-consistency step between solver steps cannot be run backwards. That is 0.48 MB from N = 5 to
20 at 64 x 64 (65.46 -> 65.97 MB with Eigen's kernels, whose scratch buffers set the peak).
``--quick`` here (an AMD EPYC, 2026-12-07):
- FA-RK4: 7.7 / 8.1 / 8.6 MB at N = 5 / 10 / 20 (1.11);
- FT-RK4: 87 / 170 / 335 MB (3.87);
- LT-RK4: checkpointed / plain 0.34 in memory, 1.16 in time (the last cascade not recomputed:
  ``models.reconode``; 1.19 in another run); it was 0.31 and 1.36 with every cascade recomputed.
  At 128 x 128: 0.46 in memory, 1.23-1.32 in time (every cascade: 0.33 and 1.43). The forward pass
  is about 0.3 of a plain step here, so recomputing 4 of the 5 cascades should cost about 1.24.
(Before the adjoint's backward evaluations of f waited for their adjoint as a whole, FA-RK4 grew by
about 0.25 MB per step at 64 x 64, 8.6 -> 12.1 MB from N = 5 to 20. The time channels of every
backward evaluation, built from static shapes, were computed at the start of the step and held.)

Rows: LT-RK4 (N = 5) without and with per-cascade checkpointing; FT-RK4 and FA-RK4 at N = 5, 10,
20 steps. Ratios: checkpointed / plain LT-RK4 (the issue asks <= 0.5 in memory, <= 1.3 in time),
FA and FT at N = 20 against N = 5 (FA <= 1.2 in memory, FT grows), FA / FT at each N.
``--quick``: 64 x 64 images, N = 5 and 20 only, 2 repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

STEPS = (5, 10, 20)
QUICK_STEPS = (5, 20)  # the acceptance's two
PEAK_STEPS = 9  # steps whose peaks give a configuration's median (module docstring)
PAIR_REPEATS = 8  # LT-RK4 plain and checkpointed steps taken in turn for their time ratio (module docstring)


def configurations(steps=STEPS) -> list[dict]:
    rows = [dict(label="LT-RK4 N=5", mode="lt", solver="rk4", n_iter=5, checkpointing=False),
            dict(label="LT-RK4 N=5 checkpointed", mode="lt", solver="rk4", n_iter=5, checkpointing=True)]
    for mode in ("ft", "fa"):
        rows += [dict(label=f"{mode.upper()}-RK4 N={n}", mode=mode, solver="rk4", n_iter=n, checkpointing=False)
                 for n in steps]
    return rows


def training_step(config: dict, size: int, batch: int):
    """(model, run): the configuration's model and a traced training step on fixed random data, run once."""
    import keras
    import numpy as np
    import tensorflow as tf

    from fastmri_zoo.models import ReconODE
    from fastmri_zoo.sampling import RandomMaskFunc
    from fastmri_zoo.training import get_optimizer
    from fastmri_zoo.training.fit import l1_magnitude_step

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    arguments = {key: config[key] for key in ("mode", "solver", "n_iter", "checkpointing")}
    model = ReconODE(**arguments)
    model.build(None)
    image = (rng.standard_normal((batch, size, size)) + 1j * rng.standard_normal((batch, size, size))).astype(np.complex64)
    mask = np.asarray(RandomMaskFunc([0.08], [4])((size, size), seed=0)[0], np.float32).reshape(1, 1, size)
    kspace = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)) * mask
    inputs = {"kspace": tf.constant(kspace.astype(np.complex64)), "mask": tf.constant(np.repeat(mask, batch, 0))}
    target = tf.constant(np.abs(image))
    step = l1_magnitude_step(model, get_optimizer("lookahead_radam", learning_rate=1e-4))

    def run():
        return float(step(inputs, target))

    run()  # trace and optimise the graph (l1_magnitude_step built the optimizer)
    return model, run


def measure(config: dict, size: int, batch: int, repeats: int) -> dict:
    """Peak training-step memory (MB of tensors above those held before the step) and median step time."""
    import statistics

    from memory import start_counting, step_peak_mb  # bench/memory.py, beside this script

    start_counting()
    model, run = training_step(config, size, batch)
    peaks = [step_peak_mb(run) for _ in range(PEAK_STEPS)]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return dict(config, peak_mb=statistics.median(peaks), peak_min_mb=min(peaks), peak_max_mb=max(peaks),
                step_s=statistics.median(times), params=model.count_params())


def measure_side_by_side(configs: list[dict], size: int, batch: int, repeats: int) -> dict:
    """{label: median step seconds}: the configurations' steps in one process, taken in turn ``repeats``
    times, so that the machine's drift (another job, the clock) falls on all of them alike."""
    from noncartesian import interleaved_medians  # bench/noncartesian.py, beside this script

    runs = {config["label"]: training_step(config, size, batch)[1] for config in configs}
    return interleaved_medians(runs, repeats)


def run_fresh(config, size: int, batch: int, repeats: int):
    """``measure`` of one configuration (a dict), or ``measure_side_by_side`` of several (a list), in a new
    Python process."""
    from memory import ENVIRONMENT  # bench/memory.py, beside this script

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTEROP_THREADS="1", **ENVIRONMENT)  # (module docstring)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, str(Path(__file__).resolve()), "--run", json.dumps(config),
               "--size", str(size), "--batch", str(batch), "--repeats", str(repeats)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode:
        labels = config["label"] if isinstance(config, dict) else ", ".join(c["label"] for c in config)
        raise RuntimeError(f"{labels} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(rows: dict, steps=STEPS) -> None:
    print(f"{'configuration':<26}{'params':>9}{'peak MB':>10}{'min':>7}{'max':>7}{'step s':>9}")
    for label, row in rows.items():
        print(f"{label:<26}{row['params']:>9}{row['peak_mb']:>10.1f}{row['peak_min_mb']:>7.1f}{row['peak_max_mb']:>7.1f}"
              f"{row['step_s']:>9.3f}")
    plain, checkpointed = rows["LT-RK4 N=5"], rows["LT-RK4 N=5 checkpointed"]
    print(f"LT-RK4 checkpointed / plain: memory {checkpointed['peak_mb'] / plain['peak_mb']:.2f} (<= 0.5), "
          f"time {checkpointed['step_s'] / plain['step_s']:.2f} (<= 1.3)")
    for mode in ("FA", "FT"):
        first, last = rows[f"{mode}-RK4 N={steps[0]}"], rows[f"{mode}-RK4 N={steps[-1]}"]
        print(f"{mode}-RK4 N={steps[-1]} / N={steps[0]}: memory {last['peak_mb'] / first['peak_mb']:.2f}, "
              f"time {last['step_s'] / first['step_s']:.2f}")
    for n in steps:
        fa, ft = rows[f"FA-RK4 N={n}"], rows[f"FT-RK4 N={n}"]
        print(f"FA / FT at N={n}: memory {fa['peak_mb'] / ft['peak_mb']:.2f}, time {fa['step_s'] / ft['step_s']:.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 x 64 images, N = 5 and 20, 2 repeats")
    parser.add_argument("--size", type=int, default=None, help="image size (default 128, 64 with --quick)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=None, help="timed steps (default 3, 2 with --quick)")
    parser.add_argument("--run", default=None, help=argparse.SUPPRESS)  # one configuration, in this process
    args = parser.parse_args(argv)
    size = args.size or (64 if args.quick else 128)
    repeats = args.repeats or (2 if args.quick else 3)
    if args.run:
        config = json.loads(args.run)
        measured = (measure(config, size, args.batch, repeats) if isinstance(config, dict)
                    else measure_side_by_side(config, size, args.batch, repeats))
        print(json.dumps(measured))
        return
    print(f"ReconODE training step, {size} x {size}, batch {args.batch}, single-coil Cartesian 4x, "
          f"time: median of {repeats} steps; peak MB of tensors above those held before the step: median (min, max) "
          f"of {PEAK_STEPS} steps")
    steps = QUICK_STEPS if args.quick else STEPS
    rows = {}
    for config in configurations(steps):
        rows[config["label"]] = run_fresh(config, size, args.batch, repeats)
    # LT-RK4's two step times, for the time ratio the issue bounds: side by side in one process
    pair = [config for config in configurations(steps) if config["mode"] == "lt"]
    for label, seconds in run_fresh(pair, size, args.batch, PAIR_REPEATS).items():
        rows[label]["step_s"] = seconds
    report(rows, steps)


if __name__ == "__main__":
    main()
