"""Simulate the IXI training data of the shipped checkpoints.

    python scripts/prepare_ixi.py IXI_T1_DIR OUT_DIR [--coils 1 8] [--slices 20:70] [--folder NAME] [--parts val test]

IXI_T1_DIR holds the IXI T1 volumes (NIfTI, 120 x 120 x 90 at 2 mm); the subject split is
``weights/ixi_split.json`` (made once by ``--make-split``: a seeded permutation of the
subjects, 153 train / 15 validation / 15 held out). Writes
OUT_DIR/{singlecoil,multicoil}/{train,val,test}/*.h5 with ``fastmri-zoo simulate``'s code:
sagittal 120 x 120 slices (the volume's last axis), seed 0, noiseless. ``--folder NAME``
writes OUT_DIR/NAME/{train,val,test} instead (one ``--coils`` value): the 3D recipe reads whole
volumes from ``volumes/`` (``--coils 1 --slices 0:90 --folder volumes``). ``--magnitude NAME``
instead links the NIfTI volumes of each part into OUT_DIR/NAME/{train,val,test} (no simulation):
the recipes with a ``data.synthesis`` block synthesise their examples from them on the fly.

OUT_DIR is the data root of ``fastmri-zoo train weights/NAME/recipe.json --data OUT_DIR``: each
recipe names its folder and the command that prepares it (``data.folder``, ``data.prepare``).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

SPLIT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "weights", "ixi_split.json")


def make_split(ixi_dir: str, seed: int = 0) -> dict:
    subjects = sorted(name[: -len("_T1.nii.gz")] for name in os.listdir(ixi_dir) if name.endswith("_T1.nii.gz"))
    order = np.random.default_rng(seed).permutation(len(subjects))
    shuffled = [subjects[i] for i in order]
    split = {"seed": seed, "val": sorted(shuffled[:15]), "test": sorted(shuffled[15:30]),
             "train": sorted(shuffled[30:])}
    return split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("ixi_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--coils", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--slices", default="20:70")
    parser.add_argument("--folder", default=None, help="output sub-folder (default: singlecoil / multicoil)")
    parser.add_argument("--make-split", action="store_true")
    parser.add_argument("--parts", nargs="+", default=["train", "val", "test"], choices=["train", "val", "test"],
                        help="the parts of the split to write (recipes with data.synthesis only read "
                             "val and test as files)")
    parser.add_argument("--magnitude", default=None, metavar="NAME",
                        help="link the volumes of each part into OUT_DIR/NAME/{train,val,test} instead of simulating")
    args = parser.parse_args()
    if args.folder is not None and len(args.coils) != 1:
        parser.error("--folder: give one --coils value")
    if args.make_split:
        split = make_split(args.ixi_dir)
        with open(SPLIT_FILE, "w") as handle:
            json.dump(split, handle, indent=1)
    with open(SPLIT_FILE) as handle:
        split = json.load(handle)
    if args.magnitude is not None:
        for part in args.parts:
            folder = os.path.join(args.out_dir, args.magnitude, part)
            os.makedirs(folder, exist_ok=True)
            for subject in split[part]:
                source = os.path.abspath(os.path.join(args.ixi_dir, f"{subject}_T1.nii.gz"))
                link = os.path.join(folder, f"{subject}_T1.nii.gz")
                if not os.path.lexists(link):
                    os.symlink(source, link)
        return
    from fastmri_zoo.cli import _parse_slices
    from fastmri_zoo.data.simulate import simulate_files

    for coils in args.coils:
        kind = args.folder or ("singlecoil" if coils == 1 else "multicoil")
        for part in args.parts:
            inputs = [os.path.join(args.ixi_dir, f"{subject}_T1.nii.gz") for subject in split[part]]
            simulate_files(inputs, os.path.join(args.out_dir, kind, part), coils=coils, seed=0,
                           slices=_parse_slices(args.slices))


if __name__ == "__main__":
    main()
