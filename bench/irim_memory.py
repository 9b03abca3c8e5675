"""Training memory and step time of the i-RIM and the RIM against the number of steps T (a benchmark, not a test).

    python bench/irim_memory.py [--size 120] [--batch 2] [--steps 1 2 4 8] [--repeats 2] [--threads 1] [--quick]

Three networks, each at T = 1, 2, 4, 8 steps, on single-coil Cartesian k-space (``--size``
squared images, ``--batch`` of them, random columns at acceleration 4):

- **i-RIM, invert to learn**: ``models.IRIM(invert_to_learn=True)``, ``--state-channels`` C (32;
  the paper's 64) and the authors' fanned layers (d = 1, 1, 2, 2, 4, 8, 8, 4, 2, 2, 1, 1) with
  their G widths times ``--width-scale`` (1/4: 16, 16, 32, 32, 64, 256, 256, 64, 32, 32, 16, 16);
- **i-RIM, backpropagation**: the same network with ``invert_to_learn=False``;
- **RIM**: ``models.RIM`` with ``--rim-channels`` (64, the paper's) hidden channels.

Each configuration runs in a fresh Python process (so no measurement inherits another's
allocations). The model is built and the training step (``training.fit.l1_magnitude_step``:
forward, L1 on the magnitude, gradient, Adam, as one ``tf.function``) traced and run once (warm-up:
graph optimisation, kernels, the optimizer's slots). Then ``base`` is the memory held in tensors
(weights, optimizer slots, inputs), ``train`` the peak of the tensors one more step allocates above
``base`` (activations kept for the backward pass, gradients; TensorFlow's allocator statistics,
``bench/memory.py``), then the step is timed ``--repeats`` times (median); ``peak`` is the
process's peak resident memory over its whole life (``resource.getrusage``; it includes tracing,
the first run's graph optimisation and the runtime itself). Printed per row with the ratios to
the same network's T = 1 row, then the step-time ratio invert to learn / backpropagation per T
(the issue's bound: 2.5).

``--quick``: 64 x 64 images, T = 1 and 2, four layers (d = 1, 2, 2, 1; the authors' widths of those
layers / 16), C = 8, an 8-channel RIM, one timed repeat: the smoke test's (about a quarter of the full
network's tracing time, which is most of a process's minute).
``--threads``: intra-op threads of TensorFlow (default 1: the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from memory import ENVIRONMENT  # bench/memory.py, beside this script

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.update(ENVIRONMENT)  # before TensorFlow starts, here and in the measuring processes

NETWORKS = ("i-RIM invert to learn", "i-RIM backpropagation", "RIM")
#: the authors' G widths of the single-coil fastMRI i-RIM, scaled by --width-scale, and their layers' strides d
AUTHORS_WIDTHS = (64, 64, 128, 128, 256, 1024, 1024, 256, 128, 128, 64, 64)
AUTHORS_DOWNSAMPLING = (1, 1, 2, 2, 4, 8, 8, 4, 2, 2, 1, 1)
#: --quick: four of those layers (the first, the first two of stride 2, the last)
QUICK_LAYERS = (0, 2, 3, 11)


def build_model(network: str, steps: int, options: dict):
    from fastmri_zoo.models import IRIM, RIM

    if network == "RIM":
        return RIM(n_iter=steps, hidden_channels=options["rim_channels"])
    layers = options["layers"]
    widths = [max(1, round(AUTHORS_WIDTHS[i] * options["width_scale"])) for i in layers]
    return IRIM(n_iter=steps, state_channels=options["state_channels"], hidden_channels=widths,
                downsampling=[AUTHORS_DOWNSAMPLING[i] for i in layers], invert_to_learn=network == "i-RIM invert to learn")


def measure(network: str, steps: int, options: dict) -> dict:
    """One configuration, in this process: parameters, base and peak memory (MB), median step seconds."""
    import keras
    import numpy as np
    import tensorflow as tf

    from cartesian import median_seconds  # bench/cartesian.py, beside this script
    from fastmri_zoo.training.fit import l1_magnitude_step
    from memory import peak_rss_mb, start_counting, step_peak_mb, tensor_mb  # bench/memory.py, beside this script

    tf.config.threading.set_intra_op_parallelism_threads(options["threads"])
    start_counting()
    rng = np.random.default_rng(0)
    size, batch = options["size"], options["batch"]
    image = (rng.standard_normal((batch, size, size)) + 1j * rng.standard_normal((batch, size, size))) / 2
    mask = (rng.uniform(size=(1, 1, size)) < 0.25).astype(np.float32)
    mask[..., size // 2 - size // 25 : size // 2 + size // 25 + 1] = 1.0
    kspace = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    inputs = {"kspace": tf.constant((kspace * mask).astype(np.complex64)), "mask": tf.constant(mask)}
    target = tf.constant(np.abs(image).astype(np.float32))

    keras.utils.set_random_seed(0)
    model = build_model(network, steps, options)
    model.build(None)
    step = l1_magnitude_step(model, keras.optimizers.Adam(1e-4))
    step(inputs, target).numpy()  # traced and run once
    base = tensor_mb()
    train = step_peak_mb(lambda: step(inputs, target).numpy())
    seconds = median_seconds(lambda: step(inputs, target).numpy(), options["repeats"])
    return {"params": model.count_params(), "base": base, "peak": peak_rss_mb(), "train": train, "seconds": seconds}


def run_child(network: str, steps: int, options: dict) -> dict:
    """``measure`` in a fresh Python process."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps([network, steps, options])]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{network}, T = {steps} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=120)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--state-channels", type=int, default=32)
    parser.add_argument("--width-scale", type=float, default=0.25)
    parser.add_argument("--rim-channels", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="64 x 64, T = 1 and 2, 4 small layers, one repeat")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        network, steps, options = json.loads(args.child)
        print(json.dumps(measure(network, steps, options)))
        return
    if args.quick:
        args.size, args.steps, args.repeats = 64, [1, 2], 1
        args.state_channels, args.width_scale, args.rim_channels = 8, 1 / 16, 8
    layers = QUICK_LAYERS if args.quick else range(len(AUTHORS_WIDTHS))
    options = {"layers": list(layers), "size": args.size, "batch": args.batch, "repeats": args.repeats, "threads": args.threads,
               "state_channels": args.state_channels, "width_scale": args.width_scale,
               "rim_channels": args.rim_channels}
    print(f"{args.batch} x {args.size} x {args.size} single-coil, i-RIM C = {args.state_channels}, d = "
          f"{', '.join(str(AUTHORS_DOWNSAMPLING[i]) for i in layers)} at the authors' widths x {args.width_scale:g}, RIM {args.rim_channels} channels; {args.threads} thread(s); memory in MB: base = "
          f"tensors held after a first step, train = the peak a step adds, peak = the process's resident; step: median of "
          f"{args.repeats}, s")
    print(f"{'network':24s} {'T':>2s} {'params':>9s} {'base':>8s} {'peak':>8s} {'train':>8s} {'step s':>8s} "
          f"{'peak/T1':>8s} {'train/T1':>9s} {'step/T1':>8s}")
    results = {}
    for network in NETWORKS:
        first = None
        for steps in args.steps:
            r = run_child(network, steps, options)
            results[network, steps] = r
            first = first or r
            print(f"{network:24s} {steps:2d} {r['params']:9d} {r['base']:8.1f} {r['peak']:8.1f} {r['train']:8.1f} "
                  f"{r['seconds']:8.3f} {r['peak'] / first['peak']:7.2f}x {r['train'] / first['train']:8.2f}x "
                  f"{r['seconds'] / first['seconds']:7.2f}x", flush=True)
    ratios = ", ".join(
        f"T = {steps}: {results[NETWORKS[0], steps]['seconds'] / results[NETWORKS[1], steps]['seconds']:.2f}x"
        for steps in args.steps
    )
    print(f"step time, invert to learn / backpropagation: {ratios}")


if __name__ == "__main__":
    main()
