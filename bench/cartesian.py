"""Inference and training-step times of the Cartesian networks (a benchmark, not a test).

    python bench/cartesian.py [--repeats 3] [--size 320] [--coils 15] [--only NAME ...] [--threads 1]

Every zoo model at its paper configuration on one slice (batch 1): 320 x 320
single-coil and 320 x 320 x 15 coils multicoil (equispaced AF 4 mask with 8 %
ACS columns, random data: only the time matters). Inference is the model call,
a training step is forward + L1 loss on the magnitude + gradient + Adam update;
each is traced once (``tf.function``), warmed up, then the median of
``--repeats`` runs is reported.

Side by side, in the same run, the same U-net (fastMRI baseline: 32 channels,
4 poolings, on the zero-filled / RSS magnitude) and E2E VarNet (12 cascades of
18-channel U-nets, sensitivity U-net 8 channels) of the ``fastmri`` package
(PyTorch, CPU, eager; inference under ``torch.no_grad``). Both frameworks
get the same number of intra-op threads (``--threads``, default 1), and the
runs of the two alternate within every repeat (zoo inference, fastmri
inference, zoo step, fastmri step), so a shared machine's load slows both alike.
What each column includes, on both sides alike:

- U-net, inference: the zero-filled image of the k-space (inverse FFT of every
  coil and its combination: the SENSE adjoint in the zoo, the root-sum-of-squares
  in fastmri), its magnitude and the U-net; training step: the same, the L1 loss
  against the target magnitude, its gradient and one Adam update;
- E2E VarNet: the whole network from the masked k-space (coil maps from the ACS
  lines, 12 cascades, RSS output); training step as above.

They are a bench-only dependency, not one of fastmri-zoo; install them in the
environment with::

    pip install torch==2.13.0        # the CPU wheel
    pip install --no-deps fastmri

Without them the script still runs and prints "not installed" in their columns.
The last two columns are the ratios zoo / fastmri (below 1: the zoo is faster).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fastmri_zoo.models import MoDL, CascadeNet, KIKINet, PDNet, UNet, VarNet, XPDNet  # noqa: E402
from fastmri_zoo.sampling.cartesian import EquispacedMaskFunc  # noqa: E402
from fastmri_zoo.training.fit import l1_magnitude_step  # noqa: E402


def median_seconds(run, repeats: int) -> float:
    """Median seconds of run() over ``repeats`` runs after a first (trace, warm-up) run."""
    run()  # trace / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def complex_normal(rng, shape) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def make_inputs(rng, size: int, coils: int | None):
    mask = np.asarray(
        EquispacedMaskFunc(center_fractions=[0.08], accelerations=[4], seed=0)((size, size))[0], np.float32
    ).reshape(1, 1, size)
    target = np.abs(complex_normal(rng, (1, size, size)))
    if coils is None:
        kspace = complex_normal(rng, (1, size, size)) * mask
        return {"kspace": kspace, "mask": mask}, target
    smaps = complex_normal(rng, (1, coils, size, size))
    smaps /= np.sqrt((np.abs(smaps) ** 2).sum(1, keepdims=True))
    kspace = complex_normal(rng, (1, coils, size, size)) * mask[:, None]
    return {"kspace": kspace, "mask": mask, "smaps": smaps}, target


def zoo_runs(model, inputs, target):
    """(parameters, inference callable, training-step callable) of a zoo model on one slice."""
    inputs = {key: tf.constant(value) for key, value in inputs.items()}
    target = tf.constant(target)
    model(inputs)
    optimizer = keras.optimizers.Adam(1e-4)

    @tf.function
    def infer():
        return model(inputs)

    train_step = l1_magnitude_step(model, optimizer)
    return model.count_params(), lambda: infer().numpy(), lambda: train_step(inputs, target).numpy()


def interleaved_medians(runs: list, repeats: int) -> list[float]:
    """Median seconds of each callable over ``repeats`` rounds, the callables alternating within a round.

    Each is run once first (trace, warm-up).
    """
    for run in runs:
        run()
    times = [[] for _ in runs]
    for _ in range(repeats):
        for run, measured in zip(runs, times):
            start = time.perf_counter()
            run()
            measured.append(time.perf_counter() - start)
    return [statistics.median(measured) for measured in times]


# --------------------------------------------------------------------------- fastmri (PyTorch)


def fastmri_available() -> bool:
    """Import torch and fastmri.models; False if either is missing.

    ``fastmri/data/__init__.py`` imports its dataset classes and with them
    pandas, requests and yaml, which ``--no-deps`` leaves out; the models only
    need ``fastmri.data.transforms``, so ``fastmri.data`` is registered as a
    bare package (its folder, without running its ``__init__``) before importing them.
    """
    import importlib.util
    import sys
    import types

    try:
        import torch  # noqa: F401

        spec = importlib.util.find_spec("fastmri")
        if spec is None:
            return False
        import fastmri

        if "fastmri.data" not in sys.modules:
            data = types.ModuleType("fastmri.data")
            data.__path__ = [os.path.join(os.path.dirname(fastmri.__file__), "data")]
            sys.modules["fastmri.data"] = data
            fastmri.data = data
        import fastmri.models  # noqa: F401
    except ImportError:
        return False
    return True


def torch_runs(kind, inputs, target):
    """(parameters, inference callable, training-step callable) of fastmri's U-net or VarNet."""
    import fastmri
    import torch
    from fastmri.models import Unet, VarNet as TorchVarNet

    torch.manual_seed(0)
    kspace = torch.view_as_real(torch.from_numpy(inputs["kspace"]))
    multicoil = kspace.ndim == 5
    if not multicoil:
        kspace = kspace[:, None]  # (batch, 1 coil, H, W, 2)
    mask = torch.from_numpy(inputs["mask"]).bool().reshape(1, 1, 1, -1, 1)
    target = torch.from_numpy(target)
    if kind == "unet":
        model = Unet(in_chans=1, out_chans=1, chans=32, num_pool_layers=4, drop_prob=0.0)

        def forward():
            # Zero-filled magnitude (RSS over coils) then the U-net, as the zoo's UNet.fastmri.
            image = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(kspace)), dim=1)
            return model(image[:, None])[:, 0]
    else:
        model = TorchVarNet(num_cascades=12, chans=18, pools=4, sens_chans=8, sens_pools=4)

        def forward():
            return model(kspace, mask)

    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def infer():
        model.eval()
        with torch.no_grad():
            forward()

    def train_step():
        model.train()
        optimizer.zero_grad()
        loss = (forward() - target).abs().mean()
        loss.backward()
        optimizer.step()

    return params, infer, train_step


# --------------------------------------------------------------------------- cases

SINGLE = [
    ("U-net (thesis, magnitude)", lambda: UNet(), None),
    ("U-net (fastMRI 32 ch)", lambda: UNet.fastmri(), "unet"),
    ("Cascade-net D5C5", lambda: CascadeNet(), None),
    ("KIKI-net", lambda: KIKINet(), None),
    ("PDNet", lambda: PDNet(), None),
    ("XPDNet / UPDNet", lambda: XPDNet(), None),
    ("MoDL (K=10, 10 CG)", lambda: MoDL(), None),
    ("E2E VarNet (12 casc.)", lambda: VarNet(multicoil=False), "varnet"),
]
MULTI = [
    ("U-net (fastMRI 32 ch)", lambda: UNet.fastmri(multicoil=True), "unet"),
    ("Cascade-net D5C5", lambda: CascadeNet(multicoil=True), None),
    ("PDNet", lambda: PDNet(multicoil=True), None),
    ("XPDNet + smaps refiner", lambda: XPDNet(multicoil=True, refine_smaps=True), None),
    ("MoDL (K=10, 10 CG)", lambda: MoDL(multicoil=True), None),
    ("E2E VarNet (12 casc.)", lambda: VarNet(), "varnet"),
]


def fmt(seconds) -> str:
    return f"{seconds:8.3f}" if isinstance(seconds, float) else f"{seconds:>8}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--coils", type=int, default=15)
    parser.add_argument("--only", nargs="*", default=None, help="substrings of model names to run")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads of both TensorFlow and PyTorch (1 on a shared CPU, where "
                             "oversubscribed OpenMP threads slow PyTorch down by orders of magnitude)")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    rng = np.random.default_rng(0)
    have_torch = fastmri_available()
    versions = f"tensorflow {tf.__version__}, keras {keras.__version__}"
    if have_torch:
        import fastmri
        import torch

        torch.set_num_threads(args.threads)
        versions += f", torch {torch.__version__}, fastmri {fastmri.__version__}"
    versions += f"; {args.threads} intra-op thread(s) each"
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {versions}")
    print(f"# batch 1, median of {args.repeats} interleaved repeats after a warm-up; seconds; ratios zoo / fastmri")
    header = (
        f"{'case':<20} {'model':<26} {'params':>11} {'infer':>8} {'train':>8} | "
        f"{'fastmri params':>14} {'infer':>8} {'train':>8} | {'infer x':>7} {'train x':>7}"
    )
    print(header)
    print("-" * len(header))
    for label, cases, coils in (
        (f"{args.size}x{args.size} 1 coil", SINGLE, None),
        (f"{args.size}x{args.size}x{args.coils}", MULTI, args.coils),
    ):
        inputs, target = make_inputs(rng, args.size, coils)
        for name, build, reference in cases:
            if args.only and not any(word.lower() in name.lower() for word in args.only):
                continue
            params, *zoo = zoo_runs(build(), inputs, target)
            theirs = None
            ref = ("", "", "")
            ratios = ("", "")
            if reference is not None and have_torch:
                ref_params, *theirs = torch_runs(reference, inputs, target)
                inference, ref_inference, training, ref_training = interleaved_medians(
                    [zoo[0], theirs[0], zoo[1], theirs[1]], args.repeats)
                ref = (ref_params, ref_inference, ref_training)
                ratios = (f"{inference / ref_inference:7.2f}", f"{training / ref_training:7.2f}")
            else:
                inference, training = interleaved_medians(zoo, args.repeats)
                if reference is not None:
                    ref = ("not installed", "", "")
            print(
                f"{label:<20} {name:<26} {params:>11,} {fmt(inference)} {fmt(training)} | "
                f"{ref[0] if isinstance(ref[0], str) else f'{ref[0]:,}':>14} {fmt(ref[1])} {fmt(ref[2])} | "
                f"{ratios[0]:>7} {ratios[1]:>7}",
                flush=True,
            )
            # Free the model, its traced functions and optimizer before the next (16 GB otherwise by the end).
            del zoo, theirs
            keras.backend.clear_session()
            gc.collect()


if __name__ == "__main__":
    main()
