"""The demo: retrospective undersampling of a real bundled acquisition, reconstruction, metrics, picture.

Runs offline on ``samples/brain_4coil.h5`` (a real 4-coil brain slice, see
``samples/README.md``): an equispaced Cartesian mask is applied to the fully
sampled k-space, coil maps are estimated from the autocalibration lines, and
zero-filled and CG-SENSE reconstructions (plus a zoo network when one is
named) are compared with the fully sampled root-sum-of-squares reference.
"""

from __future__ import annotations

import os
from importlib import resources

import numpy as np

from . import baselines, metrics
from .checks import check_output_path
from .data.h5 import read_fastmri_h5
from .inference import check_options, checkpoint_spec, plan_reconstruction, run_plan, undersample
from .physics import estimate_sensitivity_maps
from .presets import load
from .registry import list_models
from .viz import save_comparison_png

__all__ = ["bundled_sample", "run_demo"]

SAMPLES = {
    "brain_4coil": "brain_4coil.h5",
    "ixi_heldout_singlecoil": "ixi_heldout_singlecoil.h5",
    "ixi_heldout_multicoil": "ixi_heldout_multicoil.h5",
    "radial_cardiac_12coil": "radial_cardiac_12coil.h5",
    "ixi_heldout_volume": "ixi_heldout_volume.npz",
    "cardiac_sax": "cardiac_sax.npz",
}


def bundled_sample(name: str = "brain_4coil") -> str:
    """Path of a sample shipped with the package."""
    if name not in SAMPLES:
        raise ValueError(f"name: expected one of the bundled samples {sorted(SAMPLES)}, got {name!r}.")
    path = resources.files("fastmri_zoo") / "samples" / SAMPLES[name]
    return os.fspath(path)


#: the network the demo runs when none is named (if it is registered with weights)
DEFAULT_MODEL = "xpdnet-cartesian-multicoil-af4"


def run_demo(
    name: str | None = None,
    output_png: str = "fastmri_zoo_demo.png",
    acceleration: int = 4,
    center_fraction: float = 0.08,
    seed: int = 0,
    cg_iterations: int = 15,
    cg_regularization: float = 0.01,
    verbose: bool = True,
) -> dict[str, dict[str, float]]:
    """Undersample the bundled brain slice, reconstruct, print metrics, write a PNG.

    name: a zoo checkpoint to run as well (multicoil Cartesian); by default
    ``DEFAULT_MODEL`` when it is registered with weights, else baselines only.
    Returns name -> {"psnr", "ssim", "nmse"} for each reconstruction. The options, the figure path and
    the checkpoint's acquisition (a multicoil Cartesian model) are checked before anything is loaded.
    """
    sample = bundled_sample("brain_4coil")
    check_options(acceleration=acceleration, center_fraction=center_fraction, mask_type="equispaced_fraction",
                  seed=seed)
    check_output_path("output_png", output_png, {"bundled sample": sample}, create_folder=True)
    if name is None:
        name = DEFAULT_MODEL if DEFAULT_MODEL in list_models(pretrained=True) else None
    plan = None
    if name is not None:
        plan = plan_reconstruction(checkpoint_spec(name), sample, acceleration=acceleration,
                                   mask_type="equispaced_fraction", center_fraction=center_fraction, seed=seed)
    volume = read_fastmri_h5(sample)
    kspace = volume.kspace  # (1, coils, H, W)
    reference = volume.reference  # (1, H, W)
    masked, mask, num_low = undersample(kspace, "equispaced_fraction", center_fraction, acceleration, seed)
    smaps = estimate_sensitivity_maps(masked, num_low_freqs=num_low)
    # The maps are RSS-normalised, so A^H A has eigenvalues in [0, 1] and the
    # Tikhonov weight is scale-free; 0.01 tames the g-factor noise of AF 4 with 4 coils.
    recons = {
        "zero-filled": np.abs(baselines.zero_filled(masked).numpy()),
        "CG-SENSE": np.abs(baselines.cg_sense(masked, mask, smaps, num_iterations=cg_iterations,
                                                  regularization=cg_regularization).numpy()),
    }
    if name is not None:
        recons[name] = run_plan(load(name), plan, progress=False, model_name=name).reconstruction
    scores = {method: metrics.evaluate_volume(reference, image) for method, image in recons.items()}
    if verbose:
        sampled = float(mask.mean())
        print(f"sample: {os.path.basename(volume.path)}, k-space {kspace.shape}, "
              f"equispaced mask AF {1 / sampled:.2f} ({num_low} centre lines), seed {seed}")
        width = max(len(method) for method in scores) + 2
        print(f"{'method':<{width}}{'PSNR (dB)':>11}{'SSIM':>9}{'NMSE':>10}")
        for method, values in scores.items():
            print(f"{method:<{width}}{values['psnr']:>11.2f}{values['ssim']:>9.4f}{values['nmse']:>10.4f}")
    save_comparison_png(output_png, {method: image[0] for method, image in recons.items()},
                        reference=reference[0], metrics=scores,
                        title=f"4-coil brain slice, equispaced AF {acceleration}")
    if verbose:
        print(f"wrote {output_png}")
    return scores
