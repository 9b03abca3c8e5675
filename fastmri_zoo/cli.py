"""fastmri-zoo: load published MRI reconstruction networks by name, run them on your k-space,
evaluate, fine-tune and train them.

Each subcommand is a pair (``configure(parser)``, ``run(args) -> int``)
listed in ``COMMANDS``; the heavy imports happen inside ``run`` so that
``fastmri-zoo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from .federated import require_flower  # Flower itself only once `federate` runs
from .presets import export_hub, from_preset, push
from .registry import TASKS, bundled_folder, info, list_entries
from .runtime import prefer_training_cpu_settings, quiet_native_output
from .sampling.cartesian import MASK_TYPES
from .version import __version__


def _configure_simulate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="magnitude images: NIfTI (.nii, .nii.gz), "
                        "a folder of DICOM files (one series), or numpy (.npy, .npz)")
    parser.add_argument("output_dir", help="folder for the fastMRI-layout .h5 files")
    parser.add_argument("--coils", type=int, default=8, help="number of simulated coils (1 = single-coil)")
    parser.add_argument("--seed", type=int, default=0, help="seed of phase, coil maps and noise")
    parser.add_argument("--snr", type=float, default=None, help="add complex Gaussian noise at this SNR (dB)")
    parser.add_argument("--axis", type=int, default=-1, help="slice axis of 3D inputs")
    parser.add_argument("--slices", default=None, metavar="START:STOP",
                        help="keep only these slices of each volume (Python slice, e.g. 20:70)")


def _parse_slices(text: str | None) -> slice | None:
    if text is None:
        return None
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, stop = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise ValueError(f"--slices: expected START:STOP with integers (e.g. 20:70), got {text!r}.") from None
    return slice(start, stop)


def _run_simulate(args: argparse.Namespace) -> int:
    from .data.simulate import simulate_files  # lazy: TensorFlow only for the commands that run it

    paths = simulate_files(args.inputs, args.output_dir, coils=args.coils, seed=args.seed,
                           snr_db=args.snr, slice_axis=args.axis,
                           slices=_parse_slices(args.slices))
    for path in paths:
        print(path)
    return 0


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", default=None,
                        help="a multicoil Cartesian checkpoint (default: xpdnet-cartesian-multicoil-af4 if available)")
    parser.add_argument("--png", default="fastmri_zoo_demo.png", help="where to write the comparison figure")
    parser.add_argument("--acceleration", type=int, default=4, help="acceleration of the equispaced mask")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mask offset")


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # lazy: TensorFlow only for the commands that run it

    run_demo(args.name, output_png=args.png, acceleration=args.acceleration, seed=args.seed)
    return 0


def _configure_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--architecture", help="only this family, e.g. ncpdnet, xpdnet, unet")
    parser.add_argument("--trajectory", help="only this acquisition: cartesian, radial, spiral or kooshball")
    parser.add_argument("--coils", choices=["singlecoil", "multicoil", "3d"], help="only this coil setting")
    parser.add_argument("--acceleration", type=int, help="only checkpoints trained at this acceleration factor")
    parser.add_argument("--dataset", help="only checkpoints trained on this dataset, e.g. fastmri, oasis")
    parser.add_argument("--task", choices=TASKS, help="only reconstruction networks, denoisers or priors")


def _run_list(args: argparse.Namespace) -> int:
    filters = {key: getattr(args, key) for key in ("task", "architecture", "trajectory", "coils", "acceleration",
                                                   "dataset") if getattr(args, key) is not None}
    entries = list_entries(**filters)
    if not entries:
        print("no registered checkpoint matches" + (f" {filters}" if filters else ""))
        return 0
    rows = [("name", "task", "trajectory", "coils", "AF", "weights")]
    for entry in entries:
        where = "bundled" if bundled_folder(entry) is not None else ("Hub" if entry.hub_repo else "none")
        if not entry.pretrained:
            where = "untrained"
        rows.append((entry.name, entry.task, entry.trajectory or "-", entry.coils or "-",
                     str(entry.acceleration or "-"), where))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _configure_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a registered checkpoint name (see fastmri-zoo list)")


def _run_info(args: argparse.Namespace) -> int:
    print(info(args.name))
    return 0


def _configure_export_hub(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a registered checkpoint name or a preset folder")
    parser.add_argument("out_dir", help="folder to write, ready for huggingface_hub.upload_folder")


def _run_export_hub(args: argparse.Namespace) -> int:
    print(export_hub(args.name, args.out_dir))
    return 0


def _configure_push(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a registered checkpoint name or a preset folder")
    parser.add_argument("repo_id", help="owner/name on the Hub")
    parser.add_argument("--token", default=None, help="Hub token (default: the one huggingface_hub finds)")
    parser.add_argument("--endpoint", default=None, help="Hub endpoint (default: FASTMRI_ZOO_HF_ENDPOINT or huggingface.co)")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")


def _run_push(args: argparse.Namespace) -> int:
    commit = push(args.name, args.repo_id, token=args.token, endpoint=args.endpoint, private=args.private or None)
    print(f"pushed {args.name} to {args.repo_id} at commit {commit}; pin this revision as hub_revision "
          "in the card block of the preset's recipe.json")
    return 0


def _add_undersampling_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--acceleration", type=float, default=None,
                        help="undersample fully sampled files retrospectively at this AF (default: the model's)")
    parser.add_argument("--mask-type", default=None, choices=list(MASK_TYPES),
                        help="mask of the retrospective undersampling (default: the model's)")
    parser.add_argument("--center-fraction", type=float, default=None,
                        help="fraction of fully sampled centre columns, in (0, 1) (default: the model's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the retrospective mask")


def _configure_reconstruct(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a registered checkpoint name, a preset folder or hf://owner/repo")
    parser.add_argument("input", help="fastMRI-layout .h5 file: Cartesian, or non-Cartesian (kspace, trajectory, "
                        "optional dcomp, attribute image_shape) for a non-Cartesian model")
    parser.add_argument("-o", "--output", default=None, help="output .h5 (dataset 'reconstruction')")
    parser.add_argument("--png", default=None, help="also draw the middle slice (and error maps) to this PNG")
    parser.add_argument("--batch-size", type=int, default=4, help="slices per network call")
    parser.add_argument("--image-shape", type=int, nargs="+", default=None, metavar="N",
                        help="non-Cartesian files: the image grid (e.g. 256 256), replacing the file's image_shape")
    _add_undersampling_options(parser)


def _load_for_cli(name: str, folder: str | None = None):
    """The checkpoint's model; raw h5py / Keras errors become one line naming the file (``folder``: its preset
    folder, when known)."""
    from .checks import library_error_kind, library_error_message  # lazy: numpy only for the commands that need it

    try:
        return from_preset(name)
    except Exception as error:
        kind = library_error_kind(error)
        if kind is None:
            raise
        files = {"hdf5": "model.weights.h5", "keras": "config.json"}
        source = f"{folder}/{files[kind]}" if folder and kind in files else f"checkpoint {name}"
        raise ValueError(library_error_message(error, source)) from None


def _run_reconstruct(args: argparse.Namespace) -> int:
    # lazy: h5py and numpy only for the commands that read files; TensorFlow only once the model loads
    from .inference import checkpoint_spec, plan_reconstruction, run_plan

    # Everything about the file and the options is checked before the model is loaded (seconds).
    spec = checkpoint_spec(args.name)
    plan = plan_reconstruction(spec, args.input, args.output, png=args.png, acceleration=args.acceleration,
                               mask_type=args.mask_type, center_fraction=args.center_fraction, seed=args.seed,
                               batch_size=args.batch_size, image_shape=args.image_shape, cli=True)
    model = _load_for_cli(args.name, spec.folder)
    result = run_plan(model, plan, model_name=args.name)
    if result.noncartesian:
        af = f", AF {result.acceleration:.2f}" if result.acceleration == result.acceleration else ""
        print(f"reconstructed {args.input}: {result.reconstruction.shape[0]} slice(s) of "
              f"{tuple(int(n) for n in result.attrs['image_shape'])} (non-Cartesian{af}), network and "
              f"adjoint + DCp; density compensation: {result.attrs['density_compensation']}")
        if "note" in result.attrs:
            print(f"  {result.attrs['note']}")
        if not result.metrics:
            print("  no reference in the file: no metrics")
    else:
        print(f"reconstructed {args.input}: reconstruction {result.reconstruction.shape}, AF {result.acceleration:.2f}")
        print(f"  {result.sampling}")
    for method, values in result.metrics.items():
        print(f"  {method:<13} PSNR {values['psnr']:.2f} dB  SSIM {values['ssim']:.4f}  NMSE {values['nmse']:.4f}")
    if args.output:
        print(f"wrote {args.output}")
    if args.png:
        print(f"wrote {args.png}")
    if not args.output and not args.png:
        print("nothing written: give -o/--output and/or --png to keep the reconstruction")
    return 0


def _configure_sample(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prior", help="a registered prior (fastmri-zoo list --task prior), a preset folder or "
                        "hf://owner/repo")
    parser.add_argument("input", help="fastMRI-layout .h5 file of Cartesian k-space, single-coil or multicoil (SENSE, "
                        "coil maps from the fully sampled centre), of the prior's image size")
    parser.add_argument("-o", "--output", default=None, help="output .h5: reconstruction (|posterior mean|), "
                        "posterior_mean, posterior_std (and samples with --keep-samples), in the file's units")
    parser.add_argument("--png", default=None, help="also draw zero-filled, posterior mean, standard deviation (and "
                        "|error| when the file has a reference) of the middle sampled slice")
    parser.add_argument("--chains", type=int, default=8, help="independent chains, run side by side")
    parser.add_argument("--steps", type=int, default=1000, help="moves of each chain")
    parser.add_argument("--kernel", default="hmc", help="hmc (annealed Hamiltonian Monte Carlo, Metropolis-Hastings "
                        "test) or langevin (annealed unadjusted Langevin)")
    parser.add_argument("--leapfrog", type=int, default=4, help="leapfrog steps of an HMC move")
    parser.add_argument("--sigma-init", type=float, default=None, help="first temperature sigma_0, in the units of "
                        "the normalised image (peak about 1) (default: the prior's sigma_scale)")
    parser.add_argument("--step-size", type=float, default=None,
                        help="step size at sigma_0, then x (sigma / sigma_0)^STEP_POWER (default: 0.05 x sigma_0)")
    parser.add_argument("--step-power", type=float, default=1.5, help="how the step size follows the temperature")
    parser.add_argument("--gamma", type=float, default=0.995, help="a chain's sigma is multiplied by gamma after each "
                        "accepted move")
    parser.add_argument("--sigma-min", type=float, default=0.0, help="the lowest temperature")
    parser.add_argument("--target-acceptance", type=float, default=None, help="adapt each chain's step towards this "
                        "acceptance rate (e.g. 0.65; default: the thesis' rule, the step follows the temperature alone, "
                        "and a chain that rejects every move never anneals)")
    parser.add_argument("--burn-in", type=int, default=None, help="record every chain's states from this step on "
                        "(default: its last state only, one sample per chain)")
    parser.add_argument("--thin", type=int, default=1, help="record every THIN-th state from --burn-in on")
    parser.add_argument("--noise-std", type=float, default=None, help="std of the measurement noise per real part, "
                        "in the file's k-space units, e.g. from a noise scan (one level for every slice; default: "
                        "estimated from each slice's outermost k-space rows)")
    parser.add_argument("--keep-samples", action="store_true",
                        help="also write the samples and report the coverage of their 90%% intervals")
    parser.add_argument("--slices", default=None, metavar="START:STOP",
                        help="the slices to sample (Python slice, e.g. 2:4; default: the middle slice)")
    _add_undersampling_options(parser)


def _run_sample(args: argparse.Namespace) -> int:
    from .inference import checkpoint_spec  # lazy: h5py and numpy only for the commands that read files
    # lazy: TensorFlow only for the commands that run a model
    from .posterior.files import FOREGROUND_FRACTION, plan_sampling, run_sampling

    spec = checkpoint_spec(args.prior)
    plan = plan_sampling(
        spec, args.input, args.output, args.png, slices=_parse_slices(args.slices), n_chains=args.chains,
        n_steps=args.steps, kernel=args.kernel, n_leapfrog=args.leapfrog, step_size=args.step_size,
        sigma_init=args.sigma_init, step_power=args.step_power, gamma=args.gamma, sigma_min=args.sigma_min,
        burn_in=args.burn_in, thin=args.thin, target_acceptance=args.target_acceptance, noise_std=args.noise_std,
        keep_samples=args.keep_samples,
        acceleration=args.acceleration, mask_type=args.mask_type, center_fraction=args.center_fraction,
        seed=args.seed, cli=True,
    )
    result = run_sampling(_load_for_cli(args.prior, spec.folder), plan, model_name=args.prior)
    options = plan.options
    print(f"sampled {args.input}: slice(s) {result.slices}, AF {result.acceleration:.2f}; {options.n_chains} chains "
          f"x {options.n_steps} steps ({options.kernel}, step {options.step_size:.3g} at sigma_0 "
          f"{options.sigma_init:.3g}, gamma {options.gamma:g}), {result.samples_per_pixel} sample(s) per pixel")
    print(f"  {result.sampling}")
    for index, slice_index in enumerate(result.slices):
        acceptance, sigma = result.acceptance_rate[index], result.sigma[index]
        origin = "estimated" if result.noise_estimated else "given"
        print(f"  slice {slice_index}: acceptance rate {acceptance.mean():.3f} (chains {acceptance.min():.3f}-"
              f"{acceptance.max():.3f}), final temperature {sigma.mean():.3g} (chains {sigma.min():.3g}-"
              f"{sigma.max():.3g}), noise std {result.noise_std[index] * result.scale[index]:.3g} in the file's units "
              f"({origin})")
    for method, values in result.metrics.items():
        print(f"  {method:<15} PSNR {values['psnr']:.2f} dB  SSIM {values['ssim']:.4f}  NMSE {values['nmse']:.4f}")
    if result.uncertainty:
        scores = result.uncertainty
        coverage = scores.get("coverage_90")
        print(f"  uncertainty: Spearman correlation of the std and |error| {scores['spearman']:.3f} over all pixels, "
              f"{scores['spearman_foreground']:.3f} over the foreground; "
              + (f"90% intervals cover {coverage:.3f} of the pixels, {scores['coverage_90_foreground']:.3f} of "
                 "the foreground's" if coverage is not None else "90% interval coverage: give --keep-samples")
              + f" (foreground: the reference above {FOREGROUND_FRACTION:g} of its maximum)")
    elif not result.metrics:
        print("  no reference in the file: no metrics")
    _print_written((args.output, args.png), "the posterior mean and standard deviation")
    return 0


def _configure_evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a registered checkpoint name, a preset folder or hf://owner/repo")
    parser.add_argument("data_dir", help="folder of fastMRI-layout .h5 files with references")
    parser.add_argument("--batch-size", type=int, default=4, help="slices per network call")
    _add_undersampling_options(parser)


def _run_evaluate(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .data.h5 import list_h5_files  # lazy: h5py only for the commands that read files
    # lazy: h5py and numpy only for the commands that read files; TensorFlow only once the model loads
    from .inference import check_file, check_options, checkpoint_spec, plan_reconstruction, run_plan

    check_options(acceleration=args.acceleration, center_fraction=args.center_fraction, mask_type=args.mask_type,
                  seed=args.seed, batch_size=args.batch_size, cli=True)
    files = list_h5_files(args.data_dir)
    spec = checkpoint_spec(args.name)
    for path in files:  # layouts, coils and references of every file before the model is loaded
        check_file(spec, path, need_reference=True, cli=True)
    model = _load_for_cli(args.name, spec.folder)
    rows: dict[str, list] = {"network": []}
    for path in tqdm(files, desc="evaluate", unit="volume"):
        plan = plan_reconstruction(spec, path, acceleration=args.acceleration, mask_type=args.mask_type,
                                   center_fraction=args.center_fraction, seed=args.seed,
                                   batch_size=args.batch_size, need_reference=True, cli=True)
        result = run_plan(model, plan, progress=False, model_name=args.name)
        # the baseline is the zero-filled image (Cartesian) or the adjoint + DCp (non-Cartesian)
        for method in ("network", result.baseline):
            rows.setdefault(method, []).append(result.metrics[method])
    _print_evaluation(args.name, args.data_dir, rows)
    return 0


def _print_evaluation(name: str, data_dir: str, rows: dict[str, list]) -> None:
    """The table of ``evaluate``: mean +- std over volumes, or the single values of one volume (no spread)."""
    from .metrics import summarize  # lazy: TensorFlow only for the commands that run a model

    count = len(rows["network"])
    spread = count > 1
    print(f"{name} on {count} volume{'s' if spread else ''} of {data_dir} "
          f"({'mean +- std over volumes' if spread else 'one volume: no spread'})")
    labels = [(method, method) for method in rows if method != "network"] + [("network", name)]
    width = max(len("method"), *(len(label) for _, label in labels)) + 2
    cell = 20 if spread else 11
    print(f"{'method':<{width}}" + "".join(f"{title:>{cell}}" for title in ("PSNR (dB)", "SSIM", "NMSE")))
    for method, label in labels:
        summary = summarize(rows[method])
        if spread:
            cells = "".join(f"{summary[k][0]:>11.4f} +- {summary[k][1]:<6.4f}" for k in ("psnr", "ssim", "nmse"))
        else:
            cells = "".join(f"{summary[k][0]:>11.4f}" for k in ("psnr", "ssim", "nmse"))
        print(f"{label:<{width}}{cells}")


def _configure_denoise(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a registered denoiser (fastmri-zoo list --task denoising), a preset folder or "
                        "hf://owner/repo")
    parser.add_argument("image", help="NIfTI (.nii, .nii.gz), DICOM (a .dcm file or a folder holding one series), "
                        "h5 (.h5: 'reconstruction' or a fastMRI reference) or numpy (.npy, .npz): 2D or 3D")
    parser.add_argument("--sigma", type=float, required=True,
                        help="noise standard deviation, in the units of the image's values")
    parser.add_argument("-o", "--output", default=None,
                        help="the denoised image, in the input's format (a folder for a DICOM folder)")
    parser.add_argument("--png", default=None, help="also draw the middle slice, before and after")
    parser.add_argument("--axis", type=int, default=None, help="slice axis of a 3D NIfTI or numpy image "
                        "(default: the last axis of NIfTI, the first of numpy)")
    parser.add_argument("--batch-size", type=int, default=8, help="slices per network call")


def _run_denoise(args: argparse.Namespace) -> int:
    from .denoise import plan_denoising, run_denoising  # lazy: image readers for the checks, TensorFlow at the run
    from .inference import checkpoint_spec  # lazy: h5py and numpy only for the commands that read files

    spec = checkpoint_spec(args.name)
    plan = plan_denoising(spec, args.image, args.output, args.png, sigma=args.sigma, slice_axis=args.axis,
                          batch_size=args.batch_size, cli=True)
    result = run_denoising(_load_for_cli(args.name, spec.folder), plan, model_name=args.name)
    images = plan.image.images
    print(f"denoised {args.image}: {images.shape[0]} slice(s) of {images.shape[1]} x {images.shape[2]} "
          f"({plan.image.format}), sigma {plan.sigma:g}, with {args.name}")
    _print_written((result.output, result.png), "the denoised image")
    return 0


def _print_written(paths, what: str) -> None:
    """One "wrote PATH" line per path written (None: not asked for), or how to keep ``what`` when none was."""
    written = [path for path in paths if path]
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"nothing written: give -o/--output and/or --png to keep {what}")


def _configure_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="JSON recipe (model class + kwargs, data folders, acquisition, training "
                        "settings, card), e.g. weights/NAME/recipe.json; see fastmri_zoo.training.config")
    parser.add_argument("--data", default=None, metavar="DATA_DIR",
                        help="data root holding the recipe's data folder (default: the recipe's folder)")
    parser.add_argument("--run-dir", default=None, help="backups and logs (default: runs/NAME)")
    parser.add_argument("-o", "--output", default=None, metavar="PRESET_DIR",
                        help="write the trained preset here (default: RUN_DIR/preset)")
    parser.add_argument("--steps", type=int, default=None, help="train this many steps instead (a short check)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                        help="Keras progress: 0 silent, 1 progress bar, 2 one line per epoch (default: bar)")


def _run_train(args: argparse.Namespace) -> int:
    from .training.config import load_recipe, run_recipe  # lazy: TensorFlow only for the commands that run a model

    recipe = load_recipe(args.recipe)
    command = f"fastmri-zoo train {args.recipe} --data {'DATA_DIR' if args.data else '.'}"
    result = run_recipe(recipe, args.data, run_dir=args.run_dir, output=args.output, steps=args.steps,
                        verbose="auto" if args.verbose is None else args.verbose, command=command)
    _print_fit_result(result)
    return 0


def _add_recipe_arguments(parser: argparse.ArgumentParser, recipe: str, output: str) -> None:
    """The arguments of the commands that run a recipe into a folder (``search``, ``federate``): the recipe
    (help ``recipe``), ``--data`` and ``-o OUT_DIR`` (help ``output``)."""
    parser.add_argument("recipe", help=recipe)
    parser.add_argument("--data", default=None, metavar="DATA_DIR",
                        help="data root holding the recipe's data folder (default: the recipe's folder)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help=output)


def _configure_search(parser: argparse.ArgumentParser) -> None:
    _add_recipe_arguments(
        parser, "JSON search recipe: a training recipe (model NasNet, data, acquisition) with a 'search' block "
        "(method darts|milenas, space, nodes, steps, ...); see fastmri_zoo.search.recipe",
        "folder for genotype.json, alpha_history.csv, cell.png, search.json (and recipe.json, the retraining "
        "recipe, when the recipe has a training block) and backup/, written after every epoch: the same command "
        "resumes an interrupted search")
    parser.add_argument("--steps", type=int, default=None, help="search this many steps instead (a short check)")


def _run_search(args: argparse.Namespace) -> int:
    # lazy: TensorFlow only for the commands that run a model
    from .search.recipe import describe_result, load_search_recipe, run_search_recipe

    search_recipe = load_search_recipe(args.recipe)  # every key checked before any data is read
    command = f"fastmri-zoo search {args.recipe} --data {'DATA_DIR' if args.data else '.'} -o {args.output}"
    result, written = run_search_recipe(search_recipe, args.data, args.output, steps=args.steps, command=command)
    for line in describe_result(result, written):
        print(line)
    return 0


def _configure_federate(parser: argparse.ArgumentParser) -> None:
    _add_recipe_arguments(
        parser, "JSON federation recipe: model, data, sites (subjects, coils, masks, accelerations) and a "
        "'federation' block (strategy local|fedavg|fedprox|fedautomri, rounds, local_steps, ...); see "
        "fastmri_zoo.federated.recipe",
        "folder for metrics.csv, curves.png, federation.json, preset/ (and genotype.json, cell.png after a "
        "FedAutoMRI search) and checkpoint/, written after every round: the same command resumes an interrupted "
        "federation (or runs more rounds); with --app-dir, the folder the ServerApp will write into on the "
        "SuperLink's machine")
    parser.add_argument("--rounds", type=int, default=None, help="federate this many rounds instead (a short check)")
    parser.add_argument("--app-dir", default=None, metavar="APP_DIR",
                        help="do not run: write the Flower app of the recipe here, for `flwr run APP_DIR CONNECTION` "
                             "on a deployment (a SuperLink and one SuperNode per site; docs/federated.md)")
    parser.add_argument("--cpus-per-client", type=float, default=1.0,
                        help="simulation: CPU cores Flower's simulation engine gives each site's ClientApp")


def _run_federate(args: argparse.Namespace) -> int:
    try:
        require_flower()  # before anything else: a missing extra is said at once
    except ImportError as error:
        raise ValueError(str(error)) from None
    # lazy: TensorFlow and Flower only for the commands that run a model
    from .federated import deployment, flower, outputs, sites
    # lazy: TensorFlow only for the commands that run a model
    from .federated.recipe import federation_recipe_from_dict, load_federation_recipe

    recipe = load_federation_recipe(args.recipe)  # every key checked before any data is read
    if args.rounds is not None:
        raw = dict(recipe.raw, federation={**recipe.raw["federation"], "rounds": args.rounds})
        recipe = federation_recipe_from_dict(raw, source=recipe.source)
    if args.cpus_per_client <= 0:
        raise ValueError(f"--cpus-per-client: expected a positive number, got {args.cpus_per_client}.")
    if args.app_dir is not None:
        path = deployment.write_flower_app(recipe, args.app_dir, args.output)
        print(f"wrote {path}")
        print(f"run it on a deployment: flwr run {args.app_dir} CONNECTION --stream   (docs/federated.md: start the "
              f"SuperLink, then one SuperNode per site with --node-config 'site=\"NAME\" data-dir=\"DATA_DIR\"', "
              f"NAME among {[site.name for site in recipe.sites]})")
        return 0
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output: {str(output)!r} is a file; expected a folder.")
    sites.check_site_folders(recipe, args.data)  # before Flower's simulation engine starts
    checkpoint = outputs.read_checkpoint(output, recipe)  # another recipe's checkpoint: refused here, before it
    if checkpoint is not None:
        print(f"resuming {recipe.name} after {checkpoint['phase']} round {checkpoint['round']} "
              f"({output / outputs.CHECKPOINT_DIR})")
    facts = flower.run_in_simulation(recipe, args.data, output, cpus_per_client=args.cpus_per_client)
    for line in _describe_federation(facts, output):
        print(line)
    return 0


def _describe_federation(facts: dict, output) -> list[str]:
    lines = [f"federated {facts['strategy']} over {len(facts['sites'])} sites in {facts['wall_time_seconds']:.0f} s"]
    for name, metrics in facts["last_metrics"].items():
        if metrics:
            ema = f" (EMA {metrics['ema_psnr']:.2f} dB)" if metrics.get("ema_psnr") is not None else ""
            lines.append(f"  {name}: held-out PSNR {metrics['psnr']:.2f} dB{ema}, SSIM {metrics['ssim']:.3f}")
    lines += [f"  site {entry['site']} dropped in {entry['phase']} round {entry['round']}: {entry['reason']}"
              for entry in facts["dropped"]]
    if facts.get("genotype"):
        lines.append(f"  searched genotype: {facts['genotype']}")
    lines += [f"wrote {output / name}" for name in ("metrics.csv", "curves.png", "federation.json")]
    if facts.get("preset"):
        lines.append(f"wrote {output / facts['preset']}")
    return lines


def _configure_finetune(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="registry name, preset folder or hf://owner/repo of the checkpoint")
    parser.add_argument("data_dir", help="folder of fastMRI-layout .h5 files, or with train/ (and val/) sub-folders")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps (a multiple of --steps-per-epoch)")
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="steps between backups / validations")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-4, 10x below training)")
    parser.add_argument("--freeze", nargs="*", default=[], metavar="LAYER",
                        help="sub-layer names or prefixes kept fixed (e.g. smaps_refiner image_net_0)")
    parser.add_argument("--batch", type=int, default=1, help="batch size")
    parser.add_argument("--loss", default="l1", help="loss name (l1, mse, nmse, ssim, ms_ssim, l1_ms_ssim, l1_ssim)")
    parser.add_argument("--optimizer", default="adam", help="optimizer name (adam, radam, lookahead_radam, ...)")
    parser.add_argument("--acquisition", default=None, metavar="JSON",
                        help="acquisition of the data as a recipe's 'acquisition' section, e.g. "
                             "'{\"kind\": \"noncartesian\", \"trajectory\": \"spiral\", \"acceleration\": 4}' "
                             "(default: the checkpoint's own, or the Cartesian options below)")
    parser.add_argument("--mask-type", default=None, help="Cartesian: random, equispaced or equispaced_fraction")
    parser.add_argument("--accelerations", type=float, nargs="+", default=None,
                        help="Cartesian: acceleration factors of the training masks (default: the checkpoint's)")
    parser.add_argument("--center-fractions", type=float, nargs="+", default=None,
                        help="Cartesian: centre fractions paired with --accelerations (default: the checkpoint's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the validation masks and the initialisation")
    parser.add_argument("--run-dir", default=None, help="backups and logs (default: PRESET_DIR.run or finetune-NAME)")
    parser.add_argument("-o", "--output", default=None, metavar="PRESET_DIR", help="write the fine-tuned preset here")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                        help="Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch (default: auto)")


def _finetune_acquisition(args: argparse.Namespace, multicoil: bool) -> dict | None:
    """--acquisition JSON, or a Cartesian acquisition from --mask-type / --accelerations /
    --center-fractions, or None (the checkpoint's own)."""
    import json

    cartesian = (args.mask_type, args.accelerations, args.center_fractions)
    if args.acquisition is not None:
        if any(value is not None for value in cartesian):
            raise ValueError("--acquisition: give either --acquisition or the Cartesian mask options, not both.")
        try:
            acquisition = json.loads(args.acquisition)
        except ValueError as error:
            raise ValueError(f"--acquisition: not valid JSON ({error}).") from None
        if not isinstance(acquisition, dict):
            raise ValueError(f"--acquisition: expected a JSON object, got {args.acquisition!r}.")
        return {"multicoil": multicoil, **acquisition}
    if all(value is None for value in cartesian):
        return None
    return {"kind": "cartesian", "multicoil": multicoil, "mask_type": args.mask_type or "random",
            "acceleration": args.accelerations or [4.0], "center_fraction": args.center_fractions or [0.08]}


def _run_finetune(args: argparse.Namespace) -> int:
    import os

    from .training.fit import finetune  # lazy: TensorFlow only for the commands that run a model

    if not os.path.isdir(args.data_dir):
        raise FileNotFoundError(f"data_dir: no such folder: {args.data_dir!r}")  # before loading anything
    run_dir = args.run_dir
    if run_dir is None:
        stem = os.path.basename(os.path.normpath(args.name.replace("hf://", ""))) or "model"
        run_dir = f"{os.path.normpath(args.output)}.run" if args.output else f"finetune-{stem}"
    model = from_preset(args.name)
    result = finetune(
        model, args.data_dir, steps=args.steps, steps_per_epoch=args.steps_per_epoch, learning_rate=args.lr,
        freeze=args.freeze, run_dir=run_dir, preset_dir=args.output, loss=args.loss, optimizer=args.optimizer,
        batch_size=args.batch, acquisition=_finetune_acquisition(args, bool(getattr(model, "multicoil", False))),
        seed=args.seed, verbose="auto" if args.verbose is None else args.verbose,
        command=_finetune_command(args, run_dir),
    )
    _print_fit_result(result)
    return 0


def _finetune_command(args: argparse.Namespace, run_dir: str) -> str:
    parts = ["fastmri-zoo finetune", args.name, args.data_dir, f"--steps {args.steps}"]
    if args.steps_per_epoch is not None:
        parts.append(f"--steps-per-epoch {args.steps_per_epoch}")
    if args.lr is not None:
        parts.append(f"--lr {args.lr:g}")
    if args.freeze:
        parts.append("--freeze " + " ".join(args.freeze))
    parts += [f"--batch {args.batch}", f"--loss {args.loss}", f"--optimizer {args.optimizer}"]
    if args.acquisition is not None:
        parts.append(f"--acquisition '{args.acquisition}'")
    if args.mask_type is not None:
        parts.append(f"--mask-type {args.mask_type}")
    if args.accelerations is not None:
        parts.append("--accelerations " + " ".join(f"{a:g}" for a in args.accelerations))
    if args.center_fractions is not None:
        parts.append("--center-fractions " + " ".join(f"{c:g}" for c in args.center_fractions))
    parts += [f"--seed {args.seed}", f"--run-dir {run_dir}"]
    if args.output:
        parts.append(f"-o {args.output}")
    return " ".join(parts)


def _print_fit_result(result) -> None:
    metrics = ", ".join(f"{key} {value:.4g}" for key, value in result.metrics.items())
    print(f"trained {result.steps} steps (batch {result.batch_size}) in {result.wall_time:.0f} s; "
          f"validation: {metrics or 'none'}")
    print(f"run folder: {result.run_dir}")
    if result.preset_dir is not None:
        print(f"preset: {result.preset_dir}")


COMMANDS = {
    "list": ("list the registered checkpoints", _configure_list, _run_list),
    "info": ("print the model card of a checkpoint", _configure_info, _run_info),
    "reconstruct": ("reconstruct a fastMRI-layout file (Cartesian or non-Cartesian) with a zoo model",
                    _configure_reconstruct, _run_reconstruct),
    "evaluate": ("NMSE / PSNR / SSIM of a model on a folder of files, with zero-filled as baseline",
                 _configure_evaluate, _run_evaluate),
    "sample": ("sample the posterior of a Cartesian file with a prior (annealed HMC): posterior mean, standard "
               "deviation and samples, the acceptance rate and final temperature",
               _configure_sample, _run_sample),
    "export-hub": ("write a checkpoint as a folder ready for huggingface_hub.upload_folder",
                   _configure_export_hub, _run_export_hub),
    "push": ("upload a checkpoint to the Hugging Face Hub", _configure_push, _run_push),
    "demo": ("undersample a bundled real acquisition, reconstruct it, print metrics and write a PNG",
             _configure_demo, _run_demo),
    "simulate": ("simulate fastMRI-layout k-space from magnitude images",
                 _configure_simulate, _run_simulate),
    "denoise": ("denoise an image file (NIfTI, DICOM, h5, numpy) with a zoo denoiser; the output keeps its format",
                _configure_denoise, _run_denoise),
    "train": ("train a network from a JSON recipe, e.g. weights/NAME/recipe.json (resumable: rerun the same "
              "command after an interruption)",
              _configure_train, _run_train),
    "search": ("search the cells of a network's denoiser (DARTS or MiLeNAS) from a JSON recipe; writes the genotype, "
               "the alpha history and a drawing of the cell",
               _configure_search, _run_search),
    "federate": ("train (or search and train) one network over sites that keep their data, with Flower: FedAvg, "
                 "FedProx, FedAutoMRI or local-only, in Flower's simulation engine, or write the app for a deployment",
                 _configure_federate, _run_federate),
    "finetune": ("fine-tune a checkpoint on a folder of fastMRI-layout files",
                 _configure_finetune, _run_finetune),
}


#: Examples shown by ``fastmri-zoo COMMAND --help``.
EXAMPLES = {
    "list": ["fastmri-zoo list", "fastmri-zoo list --trajectory radial --coils multicoil",
             "fastmri-zoo list --task prior"],
    "info": ["fastmri-zoo info ncpdnet-radial-multicoil"],
    "reconstruct": [
        "fastmri-zoo reconstruct xpdnet-cartesian-multicoil-af4 file_brain.h5 -o recon.h5 --png recon.png",
        "fastmri-zoo reconstruct pdnet-cartesian-singlecoil-af4 full.h5 -o recon.h5 --acceleration 8 "
        "--mask-type equispaced",
        "fastmri-zoo reconstruct ncpdnet-radial-multicoil radial.h5 -o recon.h5 --image-shape 256 256",
    ],
    "evaluate": ["fastmri-zoo evaluate unet-cartesian-singlecoil-af4 val_folder/ --acceleration 4"],
    "sample": ["fastmri-zoo sample PRIOR file_brain.h5 --chains 8 -o posterior.h5 --png posterior.png",
               "fastmri-zoo sample ./my_prior full.h5 --acceleration 4 --steps 200 --keep-samples -o posterior.h5"],
    "export-hub": ["fastmri-zoo export-hub ncpdnet-radial-multicoil hub_upload/"],
    "push": ["fastmri-zoo push ./my_preset me/my-ncpdnet --private"],
    "demo": ["fastmri-zoo demo", "fastmri-zoo demo --acceleration 8 --png af8.png"],
    "simulate": ["fastmri-zoo simulate T1.nii.gz out/ --coils 8 --snr 30 --slices 20:70"],
    "denoise": ["fastmri-zoo denoise learnlet-denoising-ixi T1.nii.gz --sigma 20 -o T1_denoised.nii.gz --png t1.png",
                "fastmri-zoo denoise ./my_denoiser recon.h5 --sigma 0.01 -o recon_denoised.h5"],
    "train": ["fastmri-zoo train weights/ncpdnet-radial-multicoil/recipe.json --data DATA_DIR --run-dir runs/nc",
              "fastmri-zoo train recipe.json --data DATA_DIR --steps 10   # a quick check"],
    "search": ["fastmri-zoo search search_recipe.json --data DATA_DIR -o searched/",
               "fastmri-zoo search search_recipe.json --data DATA_DIR -o searched/ --steps 20   # a quick check"],
    "federate": ["fastmri-zoo federate federation.json --data DATA_DIR -o federated/",
                 "fastmri-zoo federate federation.json --data DATA_DIR -o federated/ --rounds 2   # a quick check",
                 "fastmri-zoo federate federation.json -o /srv/federated --app-dir fed_app/   # for flwr run"],
    "finetune": ["fastmri-zoo finetune xpdnet-cartesian-multicoil-af4 my_data/ --steps 200 -o my_xpdnet",
                 "fastmri-zoo finetune unet-cartesian-singlecoil-af4 knees/ --steps 400 --lr 1e-4 --batch 2"],
}

_EPILOG = """examples:
  fastmri-zoo list
  fastmri-zoo demo --png demo.png
  fastmri-zoo reconstruct ncpdnet-radial-multicoil radial.h5 -o recon.h5 --png recon.png
  fastmri-zoo COMMAND --help      (options and examples of one command)

TensorFlow's start-up messages are hidden; --verbose shows them."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option's help; descriptions and examples kept as written."""

    def _get_help_string(self, action):
        # "(default: None)" says nothing: optional values without a default explain it in their help
        if action.default is None or action.default is argparse.SUPPRESS or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastmri-zoo", description=__doc__.split("\n\n")[0].replace("\n", " "),
                                     epilog=_EPILOG, formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"fastmri-zoo {__version__}")
    parser.add_argument("--verbose", dest="show_startup", action="store_true",
                        help="show TensorFlow's start-up messages and library warnings (hidden by default)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, configure, _) in COMMANDS.items():
        examples = "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES.get(name, []))
        configure(sub.add_parser(name, help=help_text, description=help_text, epilog=examples,
                                 formatter_class=_HelpFormatter))
    return parser


#: The commands that train, for which TensorFlow's pooled CPU allocator and oneDNN's kernels are asked for.
TRAINING_COMMANDS = ("train", "search", "federate")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _, _, run = COMMANDS[args.command]
    if args.command in TRAINING_COMMANDS:
        prefer_training_cpu_settings()  # (runtime: no effect once TensorFlow has started)
    prefix = f"fastmri-zoo {args.command}"
    with _termination_as_exception(), quiet_native_output(not args.show_startup) as native_output:
        try:
            return run(args)
        except KeyboardInterrupt:
            print(f"{prefix}: interrupted (SIGINT)", file=sys.stderr)  # a file being written is discarded
            return 130
        except Terminated:
            print(f"{prefix}: terminated (SIGTERM)", file=sys.stderr)
            return 143
        except MemoryError:
            print(f"{prefix}: error: out of memory; try fewer slices at once (--batch-size) or a smaller grid",
                  file=sys.stderr)
            return 2
        except Exception as error:
            # raw h5py / Keras / TensorFlow errors are translated at this boundary into one line
            from .checks import library_error_message  # lazy: numpy only once a command has failed

            message = library_error_message(error)
            if message is None and not isinstance(error, (ValueError, OSError, KeyError)):
                # a bug, not a bad input: the traceback is what a report needs, with what the libraries printed
                sys.stderr.write(native_output())
                raise
            print(f"{prefix}: error: {message or _one_line(error)}", file=sys.stderr)
            return 2


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like KeyboardInterrupt so that clean-ups (temporary files) run."""


@contextlib.contextmanager
def _termination_as_exception():
    """While a command runs, SIGTERM raises ``Terminated`` (its default action ends the process without
    running any clean-up, leaving temporary files behind); SIGINT already raises KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _one_line(error: BaseException) -> str:
    """The message of an error on one line: a file's list of problems ("path: ...:\\n  - a\\n  - b") joined
    by "; " (a KeyError's message is its key)."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join([lines[0], "; ".join(line.removeprefix("- ") for line in lines[1:])]).strip() if lines else repr(error)


if __name__ == "__main__":
    sys.exit(main())
