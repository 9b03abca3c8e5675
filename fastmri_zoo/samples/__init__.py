"""Real data bundled with the package, for the demo, the notebooks and the tests (origin and licence
of each file in ``README.md`` here; ``fastmri_zoo.demo.bundled_sample(name)`` gives a file's path).

No TensorFlow here: the loaders read the files with numpy.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["cardiac_images"]


def cardiac_images() -> tuple[np.ndarray, np.ndarray]:
    """The bundled cardiac magnitude images: ``(train, heldout)``, float32 in [0, 1].

    train: (16, 128, 128), the images ``notebooks/finetune.ipynb`` fine-tunes on; heldout:
    (8, 128, 128), other images of the same collection, to score on. Cardiac short-axis /
    chest MR images of the Deep-ADMM-Net project (MIT licence), downsampled 2 x 2 from
    256 x 256; which images and why in ``scripts/prepare_cardiac_samples.py``, the attribution
    in ``README.md`` here and in the file's ``attribution`` entry.
    """
    with resources.files(__package__).joinpath("cardiac_sax.npz").open("rb") as file, np.load(file) as sample:
        scale = np.float32(sample["scale"])  # stored as uint16: value x scale, rounded
        train, heldout = (sample[part].astype(np.float32) / scale for part in ("train", "heldout"))
    return train, heldout
