"""Record, then compare, what ``fastmri-zoo reconstruct`` gives for every shipped checkpoint.

    python scripts/reconstruction_snapshot.py record FOLDER     # before a change
    python scripts/reconstruction_snapshot.py compare FOLDER    # after it: max relative difference per checkpoint

Inputs are the bundled samples: the IXI held-out slices (Cartesian single-coil and 8-coil), the
real 4-coil brain slice, the real radial 12-coil cardiac acquisition, and non-Cartesian files
simulated from the IXI held-out slices (radial and spiral, single-coil and 8-coil) and volume
(3D kooshball), written once into FOLDER/inputs. Each checkpoint is run through the command
line, exactly as a user would, into FOLDER/<tag>/<name>__<input>.h5; ``compare`` runs it again
into FOLDER/after and prints max |after - before| / max |before| for each output.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

#: checkpoint -> input files (stems in FOLDER/inputs or bundled samples)
RUNS = {
    "unet-cartesian-singlecoil-af4": ["ixi_heldout_singlecoil"],
    "cascadenet-cartesian-singlecoil-af4": ["ixi_heldout_singlecoil"],
    "kikinet-cartesian-singlecoil-af4": ["ixi_heldout_singlecoil"],
    "pdnet-cartesian-singlecoil-af4": ["ixi_heldout_singlecoil"],
    "irim-cartesian-singlecoil-af4": ["ixi_heldout_singlecoil"],
    "rim-cartesian-singlecoil-af4": ["ixi_heldout_singlecoil"],
    "irim-3d-cartesian-singlecoil-af4": ["ixi_heldout_singlecoil"],
    "reconode-lt_rk4-cartesian-singlecoil-af4": ["ixi_heldout_singlecoil"],
    "reconode-ft_rk4-cartesian-singlecoil-af4": ["ixi_heldout_singlecoil"],
    "reconode-fa_rk4-cartesian-singlecoil-af4": ["ixi_heldout_singlecoil"],
    "nasnet-cartesian-singlecoil": ["ixi_heldout_singlecoil"],
    "dccnn-cartesian-singlecoil": ["ixi_heldout_singlecoil"],
    "learnlet-ista-cartesian-singlecoil-af4": ["ixi_heldout_singlecoil"],
    "irim-cartesian-multicoil-af4": ["ixi_heldout_multicoil", "brain_4coil"],
    "xpdnet-cartesian-multicoil-af4": ["ixi_heldout_multicoil", "brain_4coil"],
    "xpdnet-cartesian-multicoil-af8": ["ixi_heldout_multicoil"],
    "nasnet-fedautomri-cartesian-multicoil": ["ixi_heldout_multicoil"],
    "dccnn-fedavg-cartesian-multicoil": ["ixi_heldout_multicoil"],
    "ncpdnet-radial-singlecoil": ["nc_radial_singlecoil"],
    "ncpdnet-spiral-singlecoil": ["nc_spiral_singlecoil"],
    "ncpdnet-radial-multicoil": ["radial_cardiac_12coil", "nc_radial_multicoil"],
    "ncpdnet-spiral-multicoil": ["nc_spiral_multicoil"],
    "unet-adjdcomp-radial-multicoil": ["radial_cardiac_12coil"],
    "ncpdnet-radial-3d": ["nc_kooshball_3d"],
}


def _sample(stem: str) -> str:
    from fastmri_zoo.demo import bundled_sample

    return str(bundled_sample(stem))


def make_inputs(folder: Path) -> None:
    """Non-Cartesian files simulated from the bundled IXI held-out slices and volume."""
    import tensorflow as tf

    from fastmri_zoo.data.h5 import read_fastmri_h5, write_fastmri_h5
    from fastmri_zoo.data.simulate import simulate_volume
    from fastmri_zoo.physics import NUFFT, ifftc
    from fastmri_zoo.sampling import kooshball_trajectory, radial_trajectory, spiral_trajectory

    folder.mkdir(parents=True, exist_ok=True)
    for coils in ("singlecoil", "multicoil"):
        volume = read_fastmri_h5(_sample(f"ixi_heldout_{coils}"))
        coil_kspace = volume.kspace if volume.multicoil else volume.kspace[:, None]
        images = ifftc(tf.constant(coil_kspace, tf.complex64), 2).numpy()
        shape = images.shape[-2:]
        for name, maker in (("radial", radial_trajectory), ("spiral", spiral_trajectory)):
            path = folder / f"nc_{name}_{coils}.h5"
            if path.exists():
                continue
            traj = maker(shape[-1], 4, oversampling=2.0).reshape(2, -1).astype(np.float32)
            kspace = np.stack([NUFFT(traj, shape).forward(tf.constant(s)).numpy() for s in images])
            if coils == "singlecoil":
                kspace = kspace[:, 0]
            write_fastmri_h5(path, kspace, volume.reference, trajectory=traj, image_shape=shape,
                             acquisition="simulated")
    path = folder / "nc_kooshball_3d.h5"
    if not path.exists():
        with np.load(_sample("ixi_heldout_volume")) as sample:
            magnitude = sample["magnitude"].astype(np.float32)
        kspace, reference = simulate_volume(magnitude, coils=1, seed=0)
        volume_image = ifftc(tf.constant(kspace, tf.complex64), 2).numpy()  # (D, H, W)
        shape = volume_image.shape
        traj = kooshball_trajectory(shape, 4, oversampling=2.0).reshape(3, -1).astype(np.float32)
        samples = NUFFT(traj, shape).forward(tf.constant(volume_image[None])).numpy()
        write_fastmri_h5(path, samples, reference[None], trajectory=traj, image_shape=shape,
                         acquisition="simulated")


def _input_path(folder: Path, stem: str) -> str:
    local = folder / "inputs" / f"{stem}.h5"
    return str(local) if local.exists() else _sample(stem)


def run_all(folder: Path, tag: str) -> None:
    out = folder / tag
    out.mkdir(parents=True, exist_ok=True)
    for name, stems in RUNS.items():
        for stem in stems:
            target = out / f"{name}__{stem}.h5"
            if target.exists():
                continue
            command = ["fastmri-zoo", "reconstruct", name, _input_path(folder, stem), "-o", str(target)]
            print(" ".join(command), flush=True)
            subprocess.run(command, check=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))


def compare(folder: Path) -> float:
    worst = 0.0
    for before in sorted((folder / "before").glob("*.h5")):
        after = folder / "after" / before.name
        with h5py.File(before, "r") as a, h5py.File(after, "r") as b:
            x, y = a["reconstruction"][()], b["reconstruction"][()]
        diff = float(np.max(np.abs(x - y)) / np.max(np.abs(x)))
        worst = max(worst, diff)
        print(f"{before.stem:<60} max relative difference {diff:.2e}")
    print(f"worst: {worst:.2e}")
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["record", "compare"])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    make_inputs(args.folder / "inputs")
    if args.action == "record":
        run_all(args.folder, "before")
        return 0
    run_all(args.folder, "after")
    return 0 if compare(args.folder) <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
