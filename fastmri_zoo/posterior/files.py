"""Posterior sampling of a fastMRI-layout file with a prior: what ``fastmri-zoo sample PRIOR FILE.h5`` runs.

A file is read and prepared as ``fastmri-zoo reconstruct`` prepares it for a Cartesian network
(``inference.plan_reconstruction``: where k-space was sampled is read from the data, a fully sampled
file is undersampled retrospectively; ``inference.cartesian_batch``: the k-space divided by the
maximum of the zero-filled magnitude, multicoil coil maps from the fully sampled centre), so the
prior sees images of peak magnitude about 1, as it was trained on. Each chosen slice is then
sampled by :func:`~fastmri_zoo.posterior.sampler.sample_posterior` on its acquisition operator
(``CartesianSingleCoil``, or ``SENSE`` for multicoil files: the prior is a prior of the
coil-combined image), and the posterior mean, standard deviation and (optionally) samples go back
to the file's units.

:func:`plan_sampling` checks everything before a prior is loaded: the checkpoint is a prior, the
sampler's settings (:class:`~fastmri_zoo.posterior.sampler.SamplerOptions`, named as the command's
options with ``cli``), the paths (an output is never an input file), the file (Cartesian, the
prior's image size, the prior's coil mode when its preset records one), the slices and the memory
the kept samples need. :func:`run_sampling` samples and writes the outputs atomically
(``data.h5.write_posterior_h5``, ``viz.save_uncertainty_png``); :func:`sample_file` is the two in
one for a prior in hand.

The measurement noise: ``noise_std`` in the file's k-space units (the std per real part of the noise of
the acquired samples, one level for every slice; each slice's sampler gets it divided by that slice's
normalisation, its zero-filled maximum), or estimated from each slice (:func:`estimate_noise_std`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import metrics as zoo_metrics
from ..checks import check_memory, check_scalar
from ..data.h5 import write_posterior_h5
from ..data.preprocessing import CartesianPreprocessor
from ..inference import ModelSpec, ReconstructionPlan, cartesian_batch, check_file, plan_reconstruction
from ..physics.acquisition import cartesian_operator
from ..utils import center_crop
from .sampler import SamplerOptions, sample_posterior

__all__ = [
    "STEP_FRACTION",
    "estimate_noise_std",
    "prior_spec",
    "SamplingPlan",
    "plan_sampling",
    "PosteriorFile",
    "run_sampling",
    "sample_file",
]

#: The default leapfrog step size, as a fraction of the first temperature sigma_init: small enough for
#: HMC on images of 10^4 - 10^5 pixels, whose energy error grows as the number of pixels times step^4.
STEP_FRACTION = 0.05
#: The command's option of each sampler setting (messages name what the user typed).
CLI_OPTIONS = {
    "n_chains": "--chains", "n_steps": "--steps", "kernel": "--kernel", "n_leapfrog": "--leapfrog",
    "step_size": "--step-size", "sigma_init": "--sigma-init", "step_power": "--step-power", "gamma": "--gamma",
    "sigma_min": "--sigma-min", "burn_in": "--burn-in", "thin": "--thin", "noise_std": "--noise-std",
    "target_acceptance": "--target-acceptance",
}
#: The outermost readout rows (this fraction of H on each side) hold the noise :func:`estimate_noise_std` measures.
NOISE_BAND = 0.125
#: The uncertainty scores are also given over the foreground: pixels above this fraction of their slice's
#: reference maximum (the head), where the background's near-zero errors and deviations do not count.
FOREGROUND_FRACTION = 0.1


def _renamed(error: ValueError, cli: bool) -> ValueError:
    """``error`` with its leading argument name replaced by the command's option (``n_chains:`` -> ``--chains:``)."""
    name, separator, rest = str(error).partition(": ")
    if not cli or not separator or name not in CLI_OPTIONS:
        return error
    return ValueError(f"{CLI_OPTIONS[name]}: {rest}")


def estimate_noise_std(kspace, mask) -> float:
    """The standard deviation per real part of the measurement noise of Cartesian k-space.

    kspace: complex ([coils,] H, W), masked; mask: float32 0 / 1 broadcastable to (H, W). The noise is
    read in the outermost readout rows (``NOISE_BAND`` of H on each side) of the sampled locations,
    where an image has little signal: 1.4826 x the median of the absolute real and imaginary parts (the
    median absolute deviation of a zero-mean Gaussian). Where those rows hold signal (noiseless
    simulated k-space) the estimate is an upper bound of the noise.
    """
    kspace = np.asarray(kspace)
    height = kspace.shape[-2]
    band = max(1, int(round(NOISE_BAND * height)))
    rows = np.r_[0:band, height - band:height]
    sampled = np.broadcast_to(np.asarray(mask) > 0, kspace.shape[-2:])[rows]
    values = kspace[..., rows, :][..., sampled]
    if values.size == 0:
        raise ValueError("kspace: no sampled location in the outermost readout rows to estimate the noise from; "
                         "give the noise level (noise_std).")
    parts = np.abs(np.concatenate([values.real.ravel(), values.imag.ravel()]))
    return float(1.4826 * np.median(parts))


def prior_spec(model, name: str | None = None) -> ModelSpec:
    """The spec of a prior in hand (``inference.ModelSpec``): its task, the image size its preset records
    (None: any size), its coil mode when its preset's acquisition records one, its constructor arguments."""
    metadata = getattr(model, "preset_metadata", None) or {}
    shape = ((metadata.get("input_signature") or {}).get("image") or {}).get("shape") or ()
    acquisition = dict(metadata.get("acquisition") or {})
    multicoil = acquisition.get("multicoil") if isinstance(acquisition.get("multicoil"), bool) else None
    return ModelSpec(name or type(model).__name__, multicoil=multicoil,
                     image_shape=tuple(int(n) for n in shape[1:3]) if len(shape) >= 3 else None,
                     acquisition=acquisition, task=getattr(model, "TASK", "reconstruction"),
                     arguments=model.get_config())


@dataclass
class SamplingPlan:
    """A file read and checked against a prior, before the prior is loaded: what :func:`run_sampling` samples.

    file: the file's ``inference.ReconstructionPlan`` (masked k-space, mask, sampling, paths, reference);
    slices: the slice indices sampled; options: the chains' settings; noise_std: in the file's k-space
    units, None: estimated per slice; keep_samples: return and write the samples; seed: of
    slice i's chains, seed + i.
    """

    file: ReconstructionPlan
    slices: list[int]
    options: SamplerOptions
    noise_std: float | None
    keep_samples: bool = False
    seed: int = 0

    @property
    def spec(self) -> ModelSpec:
        return self.file.spec


def _slices(selection, num_slices: int, cli: bool) -> list[int]:
    """The slice indices of ``selection`` (None: the middle slice; an int; a slice) in a file of ``num_slices``."""
    option = "--slices" if cli else "slices"
    if selection is None:
        return [num_slices // 2]
    if isinstance(selection, slice):
        indices = list(range(num_slices))[selection]
    else:
        index = check_scalar(option, selection, integer=True)
        indices = [index] if -num_slices <= index < num_slices else []
        indices = [i % num_slices for i in indices]
    if not indices:
        raise ValueError(f"{option}: selects no slice of the file's {num_slices} (indices 0 to {num_slices - 1}).")
    return indices


def plan_sampling(
    spec: ModelSpec,
    input_path,
    output_path=None,
    png=None,
    *,
    slices=None,
    n_chains: int = 8,
    n_steps: int = 1000,
    kernel: str = "hmc",
    n_leapfrog: int = 4,
    step_size: float | None = None,
    sigma_init: float | None = None,
    step_power: float = 1.5,
    gamma: float = 0.995,
    sigma_min: float = 0.0,
    burn_in: int | None = None,
    thin: int = 1,
    target_acceptance: float | None = None,
    noise_std: float | None = None,
    keep_samples: bool = False,
    acceleration=None,
    mask_type=None,
    center_fraction=None,
    seed: int = 0,
    cli: bool = False,
) -> SamplingPlan:
    """Check everything about sampling ``input_path`` with the prior of ``spec`` (``inference.checkpoint_spec``
    or :func:`prior_spec`) before the prior is loaded; read and prepare the file.

    The chains' settings are :func:`~fastmri_zoo.posterior.sampler.sample_posterior`'s; sigma_init
    default: the prior's ``sigma_scale`` (the std of the noise levels it was trained on); step_size
    default: ``STEP_FRACTION`` x sigma_init. slices: None (the middle slice), an index or a ``slice``.
    noise_std: the std per real part of the measurement noise in the file's k-space units (a noise scan's;
    the same for every slice); None estimates it per slice (:func:`estimate_noise_std`). acceleration, mask_type,
    center_fraction, seed: the retrospective undersampling of a fully sampled file
    (``inference.plan_reconstruction``; a prior records no acquisition, so a fully sampled file needs
    ``acceleration``); seed is also the chains'. ``cli``: name the settings as the command's options.

    Refused with a ValueError (before anything is sampled): a checkpoint that is not a prior, a
    setting out of range (zero chains, a non-finite or non-positive temperature or step, an unknown
    kernel, ...), an output or figure path that is an input, a non-Cartesian file, a file of another
    image size than the prior's or of another coil mode than its preset records, slices outside the
    file, kept samples that would not fit in memory, and what ``plan_reconstruction`` refuses.
    """
    path = os.fspath(input_path)
    if sigma_init is None:
        sigma_init = spec.arguments.get("sigma_scale")
        if sigma_init is None:
            raise ValueError(f"{'--sigma-init' if cli else 'sigma_init'}: {spec.name} records no sigma_scale (the "
                             "noise levels it was trained on); give the first temperature.")
    try:
        options = SamplerOptions(
            step_size=STEP_FRACTION * sigma_init if step_size is None and isinstance(sigma_init, (int, float))
            else step_size,
            sigma_init=sigma_init, n_chains=n_chains, n_steps=n_steps, kernel=kernel, n_leapfrog=n_leapfrog,
            step_power=step_power, gamma=gamma, sigma_min=sigma_min, anneal=True, denoise=True, burn_in=burn_in,
            thin=thin, target_acceptance=target_acceptance,
        )
        if noise_std is not None:
            noise_std = check_scalar("noise_std", noise_std, at_least=0)
            options.check_schedule(noise_std)
    except ValueError as error:
        raise _renamed(error, cli) from None
    summary = check_file(spec, path, cli=cli, task="prior")
    if summary["layout"] == "noncartesian":
        raise ValueError(f"{path}: holds non-Cartesian k-space (a 'trajectory' dataset); posterior sampling takes "
                         "Cartesian files (single-coil, or multicoil with SENSE) so far.")
    grid = tuple(int(n) for n in summary["kspace_shape"][-2:])
    if spec.image_shape is not None and grid != tuple(spec.image_shape):
        raise ValueError(
            f"{path}: k-space of {grid[0]} x {grid[1]} (kspace {tuple(summary['kspace_shape'])}), but the prior "
            f"{spec.name} was trained on images of {spec.image_shape[0]} x {spec.image_shape[1]}; sample files of "
            "its size, or a prior trained on yours."
        )
    chosen = _slices(slices, int(summary["kspace_shape"][0]), cli)
    if keep_samples:
        count = options.n_chains * options.recorded_per_chain
        check_memory("--keep-samples" if cli else "keep_samples", 8.0 * count * len(chosen) * grid[0] * grid[1] * 2,
                     f"keeping {count} samples of {len(chosen)} slice(s) of {grid[0]} x {grid[1]}")
    file = plan_reconstruction(spec, path, output_path, png, acceleration=acceleration, mask_type=mask_type,
                               center_fraction=center_fraction, seed=seed, cli=cli, task="prior")
    return SamplingPlan(file, chosen, options, noise_std, bool(keep_samples), int(seed))


@dataclass
class PosteriorFile:
    """What :func:`run_sampling` produced, in the units of the file, cropped to the reference size (if any).

    mean: complex64 (slices, h, w), the posterior mean; std: float32 (slices, h, w), sqrt(E|x - mean|^2);
    one_sample: complex64 (slices, h, w), chain 0's last sample; zero_filled: float32 (slices, h, w), the
    zero-filled magnitude (RSS over coils); reference: float32 (slices, h, w) or None; samples: complex64
    (slices, n, h, w) when kept; samples_per_pixel: the number of samples the mean and std are over
    (chains x states recorded per chain); slices: the file's slice indices; acceptance_rate, sigma: float32
    (slices, chains), each chain's fraction of accepted moves and final temperature (normalised units);
    noise_std: float32 (slices,), the noise level used (normalised units; x scale: the file's); scale: float32 (slices,), the
    normalisation; metrics: {"zero-filled" | "one sample" | "posterior mean": {"psnr", "ssim", "nmse"}}
    and uncertainty: {"spearman": rank correlation of std and | |mean| - reference | over all pixels,
    "coverage_90": the 90% intervals' coverage of the reference (kept samples only), and both over the
    foreground ("spearman_foreground", "coverage_90_foreground": pixels above FOREGROUND_FRACTION of their
    slice's reference maximum, ``metrics.foreground_mask``)} with a reference.
    """

    mean: np.ndarray
    std: np.ndarray
    one_sample: np.ndarray
    zero_filled: np.ndarray
    reference: np.ndarray | None
    samples: np.ndarray | None
    samples_per_pixel: int
    slices: list[int]
    acceptance_rate: np.ndarray
    sigma: np.ndarray
    noise_std: np.ndarray
    scale: np.ndarray
    noise_estimated: bool
    acceleration: float
    sampling: str
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    uncertainty: dict[str, float] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


def _uncertainty(result: PosteriorFile) -> dict[str, float]:
    error = np.abs(np.abs(result.mean) - result.reference)
    foreground = zoo_metrics.foreground_mask(result.reference, FOREGROUND_FRACTION)
    scores = {"spearman": zoo_metrics.spearman_correlation(result.std, error),
              "spearman_foreground": zoo_metrics.spearman_correlation(result.std, error, foreground)}
    if result.samples is not None and result.samples.shape[1] >= 2:
        magnitudes = np.abs(np.moveaxis(result.samples, 1, 0))  # (n, slices, h, w)
        scores["coverage_90"] = zoo_metrics.interval_coverage(magnitudes, result.reference, 0.9)
        scores["coverage_90_foreground"] = zoo_metrics.interval_coverage(magnitudes, result.reference, 0.9, foreground)
    return scores


def run_sampling(prior, plan: SamplingPlan, *, progress: bool = True, model_name: str | None = None
                 ) -> PosteriorFile:
    """Sample the slices of a planned file (:func:`plan_sampling`) with ``prior`` (its ``score(x, sigma)``)
    and write the outputs the plan names: the h5 file (``data.h5.write_posterior_h5``) and the figure of
    the middle sampled slice (``viz.save_uncertainty_png``), each atomically, after every slice is sampled.

    progress: a progress bar over the chains' moves (chains x steps x slices).
    """
    spec = prior_spec(prior, model_name or plan.spec.name)
    if spec.task != "prior":
        raise ValueError(f"prior: {spec.name} is a {spec.task} model, not a prior (a score network).")
    file, options = plan.file, plan.options
    volume = file.volume
    preprocessor = CartesianPreprocessor(multicoil=volume.multicoil)
    label = model_name or plan.spec.name
    moves = options.n_chains * options.n_steps
    outputs: dict[str, list] = {key: [] for key in ("mean", "std", "one", "zero", "samples", "acceptance", "sigma",
                                                   "noise", "scale")}
    with tqdm(total=moves * len(plan.slices), desc=f"sample ({options.n_chains} chains)", unit="move",
              disable=not progress) as bar:
        for index in plan.slices:
            inputs, scale, zero_filled = cartesian_batch(preprocessor, file.kspace, file.mask,
                                                         file.num_low_frequencies, index, index + 1)
            measurements, operator = cartesian_operator(inputs, volume.multicoil)
            factor = float(scale.numpy()[0])
            if plan.noise_std is None:  # normalised units, as the measurements
                noise_std = estimate_noise_std(measurements.numpy()[0], inputs["mask"].numpy()[0])
            else:
                noise_std = plan.noise_std / factor
            result = sample_posterior(
                prior.score, operator, measurements, noise_std, **asdict(options), keep_samples=plan.keep_samples,
                seed=plan.seed + index, progress=lambda step, total: bar.update(options.n_chains),
            )
            outputs["mean"].append(result.mean * factor)
            outputs["std"].append(result.std * factor)
            outputs["one"].append(result.final[0] * factor)
            outputs["zero"].append(zero_filled.numpy()[0])
            outputs["samples"].append(None if result.samples is None else result.samples * factor)
            outputs["acceptance"].append(result.acceptance_rate)
            outputs["sigma"].append(result.sigma)
            outputs["noise"].append(noise_std)
            outputs["scale"].append(factor)
    reference = None if volume.reference is None else volume.reference[plan.slices].astype(np.float32)
    size = reference.shape[-2:] if reference is not None else file.kspace.shape[-2:]

    def stack(key, dtype):
        return np.asarray(center_crop(np.stack(outputs[key]), size)).astype(dtype)

    result = PosteriorFile(
        mean=stack("mean", np.complex64), std=stack("std", np.float32), one_sample=stack("one", np.complex64),
        zero_filled=stack("zero", np.float32), reference=reference,
        samples=stack("samples", np.complex64) if plan.keep_samples else None,
        samples_per_pixel=options.n_chains * options.recorded_per_chain, slices=list(plan.slices),
        acceptance_rate=np.stack(outputs["acceptance"]).astype(np.float32),
        sigma=np.stack(outputs["sigma"]).astype(np.float32), noise_std=np.asarray(outputs["noise"], np.float32),
        scale=np.asarray(outputs["scale"], np.float32), noise_estimated=plan.noise_std is None,
        acceleration=file.acceleration, sampling=file.sampling,
    )
    if reference is not None:
        result.metrics = {
            "zero-filled": zoo_metrics.evaluate_volume(reference, result.zero_filled),
            "one sample": zoo_metrics.evaluate_volume(reference, np.abs(result.one_sample)),
            "posterior mean": zoo_metrics.evaluate_volume(reference, np.abs(result.mean)),
        }
        result.uncertainty = _uncertainty(result)
    result.attrs = {
        "prior": label, "source": os.path.basename(file.path), "slices": np.asarray(plan.slices, np.int64),
        "acceleration": file.acceleration, "sampling": file.sampling.removeprefix("sampling: "),
        "retrospective": file.retrospective, "kernel": options.kernel, "chains": options.n_chains,
        "steps": options.n_steps, "leapfrog_steps": options.n_leapfrog, "step_size": options.step_size,
        "step_power": options.step_power, "sigma_init": options.sigma_init, "gamma": options.gamma,
        "sigma_min": options.sigma_min, "burn_in": options.burn_in, "thin": options.thin,
        "samples_per_chain": options.recorded_per_chain, "seed": plan.seed,
        "noise_std": result.noise_std, "noise_std_estimated": result.noise_estimated, "scale": result.scale,
        "acceptance_rate": result.acceptance_rate.mean(axis=1), "final_sigma": result.sigma.mean(axis=1),
        "units": "noise_std, step_size, sigma_*: k-space divided by scale (the zero-filled maximum); images: the file's",
    }
    if file.output is not None:
        write_posterior_h5(file.output, result.mean, result.std, result.samples, attrs=result.attrs)
    if file.png is not None:
        from ..viz import save_uncertainty_png  # lazy: matplotlib is loaded only when a figure is asked for

        middle = len(plan.slices) // 2
        save_uncertainty_png(
            file.png, result.zero_filled[middle], result.mean[middle], result.std[middle],
            reference=None if reference is None else reference[middle],
            metrics={key: result.metrics[key] for key in ("zero-filled", "posterior mean")} if result.metrics else None,
            title=f"{os.path.basename(file.path)}, slice {plan.slices[middle]}, AF {file.acceleration:.1f}, "
                  f"{label}: {options.n_chains} chains x {options.n_steps} steps",
        )
    return result


def sample_file(prior, input_path, output_path=None, png=None, *, progress: bool = True,
                model_name: str | None = None, **settings) -> PosteriorFile:
    """Sample a fastMRI-layout file with a prior in hand: :func:`plan_sampling` (``settings``: its keyword
    arguments) on the prior's spec (:func:`prior_spec`), then :func:`run_sampling`."""
    plan = plan_sampling(prior_spec(prior, model_name), input_path, output_path, png, **settings)
    return run_sampling(prior, plan, progress=progress, model_name=model_name)
