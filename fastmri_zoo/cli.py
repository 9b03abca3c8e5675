"""The ``fastmri-zoo`` command.

Each subcommand is a pair (``configure(parser)``, ``run(args) -> int``)
listed in ``COMMANDS``; the heavy imports happen inside ``run`` so that
``fastmri-zoo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from .presets import export_hub, from_preset, push
from .registry import bundled_folder, info, list_entries


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
    parser.add_argument("--architecture")
    parser.add_argument("--trajectory")
    parser.add_argument("--coils", choices=["singlecoil", "multicoil", "3d"])
    parser.add_argument("--acceleration", type=int)
    parser.add_argument("--dataset")


def _run_list(args: argparse.Namespace) -> int:
    filters = {key: getattr(args, key) for key in ("architecture", "trajectory", "coils", "acceleration", "dataset")
               if getattr(args, key) is not None}
    entries = list_entries(**filters)
    if not entries:
        print("no registered checkpoint matches" + (f" {filters}" if filters else ""))
        return 0
    rows = [("name", "trajectory", "coils", "AF", "weights")]
    for entry in entries:
        where = "bundled" if bundled_folder(entry) is not None else ("Hub" if entry.hub_repo else "none")
        if not entry.pretrained:
            where = "untrained"
        rows.append((entry.name, entry.trajectory, entry.coils, str(entry.acceleration or "-"), where))
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
    parser.add_argument("--private", action="store_true")


def _run_push(args: argparse.Namespace) -> int:
    commit = push(args.name, args.repo_id, token=args.token, endpoint=args.endpoint, private=args.private or None)
    print(f"pushed {args.name} to {args.repo_id} at commit {commit}; pin this revision as hub_revision "
          "in the card block of the preset's recipe.json")
    return 0


def _add_undersampling_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--acceleration", type=float, default=None,
                        help="undersample fully sampled files retrospectively at this AF (default: the model's)")
    parser.add_argument("--mask-type", default=None, choices=["random", "equispaced", "equispaced_fraction"])
    parser.add_argument("--center-fraction", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0, help="seed of the retrospective mask")


def _configure_reconstruct(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a registered checkpoint name, a preset folder or hf://owner/repo")
    parser.add_argument("input", help="fastMRI-layout .h5 file: Cartesian, or non-Cartesian (kspace, trajectory, "
                        "optional dcomp, attribute image_shape) for a non-Cartesian model")
    parser.add_argument("-o", "--output", default=None, help="output .h5 (dataset 'reconstruction')")
    parser.add_argument("--png", default=None, help="also draw the middle slice (and error maps) to this PNG")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--image-shape", type=int, nargs="+", default=None, metavar="N",
                        help="non-Cartesian files: the image grid (e.g. 256 256), replacing the file's image_shape")
    _add_undersampling_options(parser)


def _load_for_cli(name: str):
    return from_preset(name)


def _run_reconstruct(args: argparse.Namespace) -> int:
    # lazy: TensorFlow is loaded only by the commands that run a model (fast --help, list, info)
    from .inference import reconstruct_file

    model = _load_for_cli(args.name)
    result = reconstruct_file(model, args.input, args.output, png=args.png, acceleration=args.acceleration,
                              mask_type=args.mask_type, center_fraction=args.center_fraction, seed=args.seed,
                              batch_size=args.batch_size, model_name=args.name, image_shape=args.image_shape)
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
    for method, values in result.metrics.items():
        print(f"  {method:<13} PSNR {values['psnr']:.2f} dB  SSIM {values['ssim']:.4f}  NMSE {values['nmse']:.4f}")
    if args.output:
        print(f"wrote {args.output}")
    if args.png:
        print(f"wrote {args.png}")
    if not args.output and not args.png:
        print("nothing written: give -o/--output and/or --png to keep the reconstruction")
    return 0


def _configure_evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a registered checkpoint name, a preset folder or hf://owner/repo")
    parser.add_argument("data_dir", help="folder of fastMRI-layout .h5 files with references")
    parser.add_argument("--batch-size", type=int, default=4)
    _add_undersampling_options(parser)


def _run_evaluate(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .data.pipelines import list_h5_files  # lazy: TensorFlow only for the commands that run a model
    from .inference import reconstruct_file  # lazy: TensorFlow only for the commands that run a model
    from .metrics import summarize  # lazy: TensorFlow only for the commands that run a model

    files = list_h5_files(args.data_dir)
    model = _load_for_cli(args.name)
    rows: dict[str, list] = {"network": []}
    for path in tqdm(files, desc="evaluate", unit="volume"):
        result = reconstruct_file(model, path, acceleration=args.acceleration, mask_type=args.mask_type,
                                  center_fraction=args.center_fraction, seed=args.seed,
                                  batch_size=args.batch_size, progress=False)
        if not result.metrics:
            raise ValueError(f"{path}: has no reference image (reconstruction_rss or reconstruction_esc) to score against.")
        # the baseline is the zero-filled image (Cartesian) or the adjoint + DCp (non-Cartesian)
        for method in ("network", result.baseline):
            rows.setdefault(method, []).append(result.metrics[method])
    print(f"{args.name} on {len(files)} volumes of {args.data_dir} (mean +- std over volumes)")
    print(f"{'method':<14}{'PSNR (dB)':>18}{'SSIM':>20}{'NMSE':>20}")
    baselines = [method for method in rows if method != "network"]
    for method, label in [(method, method) for method in baselines] + [("network", args.name)]:
        summary = summarize(rows[method])
        cells = "".join(f"{summary[k][0]:>11.4f} +- {summary[k][1]:<6.4f}" for k in ("psnr", "ssim", "nmse"))
        print(f"{label[:14]:<14}{cells}")
    return 0


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
    parser.add_argument("--accelerations", type=float, nargs="+", default=None)
    parser.add_argument("--center-fractions", type=float, nargs="+", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default=None, help="backups and logs (default: PRESET_DIR.run or finetune-NAME)")
    parser.add_argument("-o", "--output", default=None, metavar="PRESET_DIR", help="write the fine-tuned preset here")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None)


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
    "export-hub": ("write a checkpoint as a folder ready for huggingface_hub.upload_folder",
                   _configure_export_hub, _run_export_hub),
    "push": ("upload a checkpoint to the Hugging Face Hub", _configure_push, _run_push),
    "demo": ("undersample a bundled real acquisition, reconstruct it, print metrics and write a PNG",
             _configure_demo, _run_demo),
    "simulate": ("simulate fastMRI-layout k-space from magnitude images",
                 _configure_simulate, _run_simulate),
    "train": ("train a network from a JSON recipe, e.g. weights/NAME/recipe.json (resumable: rerun the same "
              "command after an interruption)",
              _configure_train, _run_train),
    "finetune": ("fine-tune a checkpoint on a folder of fastMRI-layout files",
                 _configure_finetune, _run_finetune),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastmri-zoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, configure, _) in COMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    # TensorFlow's C++ start-up chatter hides the command's own output; users can override.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    _, _, run = COMMANDS[args.command]
    try:
        return run(args)
    except (ValueError, OSError, KeyError) as error:
        print(f"fastmri-zoo {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
