"""The ``fastmri-zoo`` command.

Each subcommand is a pair (``configure(parser)``, ``run(args) -> int``)
listed in ``COMMANDS``; the heavy imports happen inside ``run`` so that
``fastmri-zoo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys


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
    from .data.simulate import simulate_files

    paths = simulate_files(args.inputs, args.output_dir, coils=args.coils, seed=args.seed,
                           snr_db=args.snr, slice_axis=args.axis,
                           slices=_parse_slices(args.slices))
    for path in paths:
        print(path)
    return 0


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--png", default="fastmri_zoo_demo.png", help="where to write the comparison figure")
    parser.add_argument("--acceleration", type=int, default=4, help="acceleration of the equispaced mask")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mask offset")


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(output_png=args.png, acceleration=args.acceleration, seed=args.seed)
    return 0


COMMANDS = {
    "demo": ("undersample a bundled real acquisition, reconstruct it, print metrics and write a PNG",
             _configure_demo, _run_demo),
    "simulate": ("simulate fastMRI-layout k-space from magnitude images",
                 _configure_simulate, _run_simulate),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastmri-zoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, configure, _) in COMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _, _, run = COMMANDS[args.command]
    try:
        return run(args)
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"fastmri-zoo {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
