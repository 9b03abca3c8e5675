"""Bundle a few of Deep-ADMM-Net's cardiac images as ``fastmri_zoo/samples/cardiac_sax.npz``.

    python scripts/prepare_cardiac_samples.py CARDIAC_DIR fastmri_zoo/samples/cardiac_sax.npz

CARDIAC_DIR holds the 100 training images of the Deep-ADMM-Net project (Y. Yang, J. Sun,
H. Li, Z. Xu, "Deep ADMM-Net for Compressive Sensing MRI", NIPS 2016;
https://github.com/yangyan92/Deep-ADMM-Net, folder ``data/ChestTrain``, MIT licence):
``im-01.mat`` ... ``im-99.mat``, ``im-100.mat``, MATLAB v7.3 (HDF5) files
whose dataset ``im_ori`` is one cardiac short-axis / chest magnitude image, 256 x 256, in [0, 1].

What is kept, chosen by file number alone (no randomness):

- fine-tuning set: images 1, 6, 11, ..., 76 (every 5th of the first 80, 16 images);
- held-out set: images 93 to 100 (the last 8). The source does not record which images come
  from the same subject, and neighbouring numbers often show the same heart (other slices or
  rotations of it), so the held-out images are a block at the end, 16 numbers after the last
  fine-tuning image, rather than interleaved with it.

Each image is transposed to MATLAB's orientation (h5py reads a v7.3 array with its axes
reversed) and downsampled to 128 x 128 by averaging 2 x 2 blocks: the scale of the 120 x 120
images the shipped single-coil checkpoints were trained on, a size a CPU fine-tunes on in
minutes, and a quarter of the storage (the 24 images at 256 x 256 take 1.8 MB). Stored as uint16 (value x 65535, rounded: at most 7.6e-6 from the float image) in a
compressed ``.npz`` (about 0.6 MB) holding ``train`` (16, 128, 128), ``heldout`` (8, 128, 128),
``train_files`` and ``heldout_files`` (the source file names), ``scale`` (65535) and the
strings ``attribution`` and ``licence``. ``fastmri_zoo.samples.cardiac_images()`` reads it.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

TRAIN_NUMBERS = tuple(range(1, 81, 5))
HELDOUT_NUMBERS = tuple(range(93, 101))
#: averaging blocks of DOWNSAMPLE x DOWNSAMPLE pixels: 256 x 256 -> 128 x 128
DOWNSAMPLE = 2
SCALE = 65535
ATTRIBUTION = (
    "Cardiac short-axis / chest MR magnitude images from the Deep-ADMM-Net project (Y. Yang, J. Sun, H. Li, "
    "Z. Xu, 'Deep ADMM-Net for Compressive Sensing MRI', NIPS 2016; https://github.com/yangyan92/Deep-ADMM-Net, "
    "data/ChestTrain, MIT licence, copyright (c) 2017 Yan Yang), downsampled 2 x 2 to 128 x 128 by "
    "scripts/prepare_cardiac_samples.py of fastmri-zoo."
)


def file_name(number: int) -> str:
    """The source's name of image ``number``: im-01.mat ... im-99.mat, im-100.mat."""
    return f"im-{number:02d}.mat"


def read_image(path: str | os.PathLike) -> np.ndarray:
    """float64 (256, 256) in MATLAB's orientation, from a v7.3 file's ``im_ori``."""
    import h5py

    with h5py.File(path, "r") as handle:
        image = np.asarray(handle["im_ori"], dtype=np.float64).T
    if image.ndim != 2 or image.shape[0] % DOWNSAMPLE or image.shape[1] % DOWNSAMPLE:
        raise ValueError(f"{path}: im_ori: expected a 2D image of even sizes, got shape {image.shape}.")
    if not (np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1):
        raise ValueError(f"{path}: im_ori: expected finite values in [0, 1].")
    return image


def downsample(image: np.ndarray) -> np.ndarray:
    """(H, W) -> (H / DOWNSAMPLE, W / DOWNSAMPLE), the mean of each block."""
    h, w = image.shape
    return image.reshape(h // DOWNSAMPLE, DOWNSAMPLE, w // DOWNSAMPLE, DOWNSAMPLE).mean(axis=(1, 3))


def encode(images: list[np.ndarray]) -> np.ndarray:
    """uint16 (n, h, w): values in [0, 1] times SCALE, rounded."""
    return np.round(np.stack(images) * SCALE).astype(np.uint16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cardiac_dir", help="folder of Deep-ADMM-Net's im-01.mat ... im-100.mat")
    parser.add_argument("output", help="the .npz file to write (fastmri_zoo/samples/cardiac_sax.npz)")
    args = parser.parse_args()

    sets = {}
    for name, numbers in (("train", TRAIN_NUMBERS), ("heldout", HELDOUT_NUMBERS)):
        files = [file_name(n) for n in numbers]
        sets[name] = encode([downsample(read_image(os.path.join(args.cardiac_dir, f))) for f in files])
        sets[f"{name}_files"] = np.array(files)
    np.savez_compressed(args.output, **sets, scale=np.float32(SCALE), attribution=np.array(ATTRIBUTION),
                        licence=np.array("MIT"))
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 1e6:.2f} MB): train {sets['train'].shape}, "
          f"heldout {sets['heldout'].shape}")


if __name__ == "__main__":
    main()
