"""Timings of the measurement operators (a benchmark, not a test).

    python bench/physics.py [--repeats 7]

Cases, all measured in one run, each op wrapped in ``tf.function`` (as in
training), warmed up, then the median of ``--repeats`` calls:

- a 320 x 320, 15-coil slice: centred FFT of the coil images, Cartesian SENSE
  forward (equispaced AF 4 mask), and radial AF 4 (80 spokes x 640 samples)
  NUFFT forward, adjoint, forward + adjoint, Toeplitz normal;
- a 256 x 256 single-coil radial case with 20,480 samples (40 spokes x 512).

The last column is (forward + adjoint) / Toeplitz normal, the speed-up of the
Toeplitz embedding for A^H A, with forward and adjoint timed separately; in
brackets the same against the forward + adjoint traced as one graph.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fastmri_zoo.physics import NUFFT, SENSE, ToeplitzNormal, fftc  # noqa: E402
from fastmri_zoo.sampling import radial_trajectory  # noqa: E402


def median_seconds(function, argument, repeats: int) -> float:
    function(argument).numpy()  # trace and warm up
    function(argument).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(argument).numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def complex_normal(rng, shape) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def nufft_rows(label, traj, shape, smaps, rng, repeats):
    op = NUFFT(traj, shape, smaps=smaps)
    toeplitz_op = ToeplitzNormal(traj, shape, smaps=smaps)  # A^H A as one self-adjoint operator
    x = complex_normal(rng, (1, *shape))
    y = op.forward(x).numpy()
    forward = median_seconds(tf.function(op.forward), x, repeats)
    adjoint = median_seconds(tf.function(op.adjoint), y, repeats)
    normal = median_seconds(tf.function(op.normal), x, repeats)
    toeplitz = median_seconds(tf.function(toeplitz_op.forward), x, repeats)
    return [
        (label, "NUFFT forward", forward, ""),
        (label, "NUFFT adjoint", adjoint, ""),
        (label, "NUFFT forward+adjoint (normal)", normal, ""),
        (label, "Toeplitz normal", toeplitz, f"{(forward + adjoint) / toeplitz:.1f}x ({normal / toeplitz:.1f}x vs normal)"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []

    shape, coils = (320, 320), 15
    smaps = complex_normal(rng, (1, coils, *shape))
    smaps /= np.sqrt((np.abs(smaps) ** 2).sum(1, keepdims=True))
    x = complex_normal(rng, (1, *shape))
    label = "320x320, 15 coils"
    coil_images = tf.constant(x[:, None] * smaps)
    rows.append((label, "FFT (15 coil images)", median_seconds(tf.function(lambda v: fftc(v, 2)), coil_images, args.repeats), ""))
    mask = np.zeros((1, shape[1]), np.float32)
    mask[:, ::4] = 1
    mask[:, shape[1] // 2 - 12 : shape[1] // 2 + 12] = 1
    sense = SENSE(mask, smaps)
    rows.append((label, "SENSE forward (Cartesian AF 4)", median_seconds(tf.function(sense.forward), x, args.repeats), ""))
    traj = radial_trajectory(320, acceleration=4).reshape(2, -1)
    rows += nufft_rows(f"{label}, radial AF 4 ({traj.shape[1]} samples)", traj, shape, smaps, rng, args.repeats)

    traj = radial_trajectory(256, acceleration=6.4).reshape(2, -1)
    rows += nufft_rows(f"256x256, 1 coil, radial ({traj.shape[1]} samples)", traj, (256, 256), None, rng, args.repeats)

    print(f"tensorflow {tf.__version__}, {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}; "
          f"median of {args.repeats} calls after warm-up, tf.function, batch 1")
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'operation':<31} {'ms':>9}  (fwd+adj)/Toeplitz")
    for case, operation, seconds, ratio in rows:
        print(f"{case:<{width}}  {operation:<31} {1000 * seconds:9.1f}  {ratio}")


if __name__ == "__main__":
    main()
