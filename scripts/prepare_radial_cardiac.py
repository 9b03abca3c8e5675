"""Convert gpuNUFFT's real radial cardiac acquisition to the package's non-Cartesian h5 layout.

    python scripts/prepare_radial_cardiac.py radial_cardiac_25_projections.mat OUT.h5

The source (gpuNUFFT project, F. Knoll, A. Schwarzl et al., MIT licence) holds

- ``rawdata``: complex (256, 25, 12) = (readout samples, spokes, coils), raw k-space;
- ``k``: complex (256, 25), the trajectory kx + i ky in cycles per pixel, in [-0.5, 0.5].

Each spoke is diametric: 256 samples from +0.5 to -0.5 cycles per pixel, both ends included,
so the step along a spoke is 1 / 255 cycles per pixel; there is no sample at k = 0 (the two
central samples sit at +-1 / 510). The 25 spokes are 7.2 degrees apart (180 / 25).

Image size. In cycles per pixel the pixel size is fixed by the trajectory (0.5 is the
Nyquist edge of the grid), and a readout step dk samples a field of view of 1 / dk pixels
without aliasing along the spoke. Here 1 / dk = 255 pixels, so the matrix with
Nyquist-sampled spokes is 256 x 256 (dk = 1 / 255 is within 0.4 % of 1 / 256). A 128 x 128
matrix would treat the readout as 2x oversampled: it keeps only the central half of the
acquired field of view, and the reconstruction at 256 shows that the anatomy (chest wall
around the heart) extends beyond that half, so 128 would crop it. It is also the size
gpuNUFFT's own demo reconstructs (``imwidth = nFE``). Acceleration as the NC-PDNet paper
defines it: AF = N / spokes = 256 / 25 = 10.24.

Trajectory convention of this package: float32 (2, nsamples), radians per pixel
(2 pi times cycles per pixel, so every value lies in [-pi, pi]), axis order of the image
(k_H, k_W). ``Re(k)`` goes to k_H and ``Im(k)`` to k_W: MATLAB's first array axis (rows)
is the first coordinate of gpuNUFFT's trajectory, so the image comes out in the
orientation gpuNUFFT's demo displays. Samples are spoke-major (spoke 0's 256 samples, then
spoke 1's, ...), as the package's trajectory generators flatten them.

Written with ``write_fastmri_h5``: ``kspace`` complex64 (1, 12, 6400), ``trajectory``
float32 (2, 6400), attribute ``image_shape`` (256, 256), no ``dcomp`` (readers compute
Pipe-Menon weights, as the training pipelines do) and no reference (there is no fully
sampled acquisition); attribution in the attributes ``source``, ``licence``, ``attribution``.
"""

from __future__ import annotations

import argparse

import numpy as np

IMAGE_SHAPE = (256, 256)
ATTRIBUTION = ("gpuNUFFT project (F. Knoll, A. Schwarzl et al.), "
               "https://github.com/andyschwarzl/gpuNUFFT, file radial_cardiac_25_projections.mat")


def convert(rawdata: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """rawdata: complex (readout, spokes, coils); k: complex (readout, spokes) in cycles per pixel.

    Returns kspace complex64 (1, coils, spokes * readout) and traj float32 (2, spokes * readout)
    in radians per pixel, axes (k_H, k_W) = (Re k, Im k), spoke-major.
    """
    readout, spokes, coils = rawdata.shape
    if k.shape != (readout, spokes):
        raise ValueError(f"k: expected shape {(readout, spokes)} (readout, spokes), got {k.shape}.")
    if np.abs(k.real).max() > 0.5 + 1e-9 or np.abs(k.imag).max() > 0.5 + 1e-9:
        raise ValueError("k: expected coordinates in [-0.5, 0.5] cycles per pixel.")
    samples = k.T.reshape(-1)  # (spokes, readout) -> spoke-major
    traj = 2 * np.pi * np.stack([samples.real, samples.imag])
    traj = np.clip(traj, -np.pi, np.pi).astype(np.float32)  # float32 rounding must not overshoot pi
    kspace = np.transpose(rawdata, (2, 1, 0)).reshape(1, coils, spokes * readout)
    return kspace.astype(np.complex64), traj


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="radial_cardiac_25_projections.mat (gpuNUFFT)")
    parser.add_argument("output", help="the .h5 file to write")
    args = parser.parse_args()

    from scipy.io import loadmat

    from fastmri_zoo.data.h5 import write_fastmri_h5

    mat = loadmat(args.source)
    rawdata, k = np.asarray(mat["rawdata"]), np.asarray(mat["k"])
    kspace, traj = convert(rawdata, k)
    readout, spokes, coils = rawdata.shape
    step = float(np.median(np.abs(np.diff(k, axis=0))))
    print(f"rawdata {rawdata.shape} (readout, spokes, coils); readout step {step:.6f} cycles/pixel "
          f"(1/{1 / step:.1f}); image {IMAGE_SHAPE}")
    write_fastmri_h5(
        args.output, kspace, trajectory=traj, image_shape=IMAGE_SHAPE, acquisition="radial_cardiac",
        extra={
            "source": ATTRIBUTION,
            "licence": "MIT",
            "attribution": ("Data from the gpuNUFFT project (MIT licence), "
                            "converted by scripts/prepare_radial_cardiac.py"),
            "spokes": int(spokes),
            "readout_samples": int(readout),
            "acceleration": float(IMAGE_SHAPE[-1] / spokes),
        },
    )
    print(f"wrote {args.output}: kspace {kspace.shape}, trajectory {traj.shape}")


if __name__ == "__main__":
    main()
