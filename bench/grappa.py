"""GRAPPA on the bundled multicoil slices: regularisation sweep, border, time (a benchmark, not a test).

    python bench/grappa.py [--acceleration 4] [--center-fraction 0.08] [--repeats 3]

For fastMRI's equispaced and equispaced_fraction masks (every offset), on the
3 IXI slices (8 simulated coils, noiseless) and the real 4-coil brain slice
bundled in ``fastmri_zoo/samples``: the PSNR (fastMRI's, over the volume,
against the RSS of the fully sampled k-space; mean over the offsets) of
zero-filled and of GRAPPA for a sweep of ``regularization``; then, at the
default, the PSNR when the border (the first and last readout rows of the
kernel's half-width and the missing columns beyond the outermost acquired ones)
is replaced by the true k-space, which bounds what a better border could gain;
then the median time of one call per sample and on a random fastMRI-sized
slice (15 coils, 640 x 368).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from fastmri_zoo import metrics  # noqa: E402
from fastmri_zoo.baselines.grappa import border_points, grappa  # noqa: E402
from fastmri_zoo.data.h5 import read_fastmri_h5  # noqa: E402
from fastmri_zoo.sampling.cartesian import EquispacedMaskFractionFunc, EquispacedMaskFunc  # noqa: E402

SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fastmri_zoo", "samples")
REGULARIZATIONS = (0, 0.25, 0.5, 1, 2, 4, 10)


def rss_image(kspace):
    images = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    return np.sqrt((np.abs(images) ** 2).sum(axis=-3))




def offsets(mask_name, width, acceleration, center_fraction):
    """How many distinct offsets a mask function draws from: R, or round(step) for the fractional step."""
    if mask_name == "equispaced":
        return acceleration
    num_low = round(width * center_fraction)
    return round(acceleration * (num_low - width) / (num_low * acceleration - width))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acceleration", type=int, default=4)
    parser.add_argument("--center-fraction", type=float, default=0.08)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    samples = {
        "IXI 8 coils x 3 slices": read_fastmri_h5(os.path.join(SAMPLES, "ixi_heldout_multicoil.h5")).kspace,
        "brain 4 coils": read_fastmri_h5(os.path.join(SAMPLES, "brain_4coil.h5")).kspace,
    }
    mask_funcs = {
        "equispaced": EquispacedMaskFunc(args.center_fraction, args.acceleration),
        "equispaced_fraction": EquispacedMaskFractionFunc(args.center_fraction, args.acceleration),
    }
    print(f"AF {args.acceleration}, centre fraction {args.center_fraction}; PSNR (dB), mean over mask offsets")
    print("| mask | sample | zero-filled | " + " | ".join(f"reg {r:g}" for r in REGULARIZATIONS)
          + " | default, exact border |")
    print("| --- " * (4 + len(REGULARIZATIONS)) + "|")
    for mask_name, mask_func in mask_funcs.items():
        for name, kspace in samples.items():
            width = kspace.shape[-1]
            masks = [mask_func(kspace.shape, offset=offset)[0].reshape(width)
                     for offset in range(offsets(mask_name, width, args.acceleration, args.center_fraction))]
            reference = rss_image(kspace)
            zero_filled = statistics.mean(metrics.psnr(reference, rss_image(kspace * m)) for m in masks)
            row = []
            for regularization in REGULARIZATIONS:
                row.append(statistics.mean(
                    metrics.psnr(reference, grappa(kspace * m, m, regularization=regularization)[1]) for m in masks))
            exact = []
            for m in masks:
                filled = grappa(kspace * m, m)[0]
                filled = np.where(border_points(m > 0, kspace.shape[-2], 2), kspace, filled)
                exact.append(metrics.psnr(reference, rss_image(filled)))
            print(f"| {mask_name} | {name} | {zero_filled:.2f} | " + " | ".join(f"{p:.2f}" for p in row)
                  + f" | {statistics.mean(exact):.2f} |", flush=True)
    rng = np.random.default_rng(0)
    samples["random 15 coils 640 x 368"] = (
        rng.standard_normal((15, 640, 368)) + 1j * rng.standard_normal((15, 640, 368))).astype(np.complex64)
    print("\ntime of one grappa call (equispaced offset 1, default settings), median of", args.repeats)
    for name, kspace in samples.items():
        mask = mask_funcs["equispaced"](kspace.shape, offset=1)[0].reshape(kspace.shape[-1])
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            grappa(kspace * mask, mask)
            times.append(time.perf_counter() - start)
        print(f"{name}: {statistics.median(times):.3f} s")


if __name__ == "__main__":
    main()
