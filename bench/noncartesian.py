"""NC-PDNet 2D multicoil: Toeplitz normal operator vs forward + adjoint NUFFTs (a benchmark, not a test).

    python bench/noncartesian.py [--size 256] [--coils 8] [--acceleration 4] [--repeats 5] [--threads 1] [--quick]

One slice (batch 1) of a simulated phantom with ``simulate_coil_maps`` coils,
uniform radial trajectory (``radial_trajectory``, AF = N / spokes), Pipe-Menon
density weights, k-space by ``physics.NUFFT``. Two NC-PDNets
(``multicoil=True, refine_smaps=True``, paper defaults: 10 iterations,
5 primal images, 32 filters) with the same weights, ``toeplitz=True`` and
``toeplitz=False``, measured side by side in one run: every repeat runs both
variants one after the other (a noisy shared machine slows both alike) and the
medians are reported.

- inference, eager: ``model(inputs)``; the Toeplitz kernel is built at the
  first call and then taken from the model's per-trajectory cache (the way
  slices of one acquisition are reconstructed);
- inference, graph: ``tf.function`` with the inputs as arguments, so the
  Toeplitz kernel (a point-spread function NUFFT on the 2x grid) is rebuilt
  in every call, as for a new trajectory;
- training step: ``tf.function``: forward, L1 loss on the magnitude, gradient,
  Adam update (the kernel rebuilt in every step, as in ``model.fit``).

The floor is the forward pass's floating-point operation count (counted
analytically, see :func:`forward_flops`) divided by the rate of a large
float32 matrix product on the same machine and threads (``tf.linalg.matmul``
2048 x 2048, best of several): what the machine could do if every operation
ran as fast as its best kernel. Then each stage is timed alone (``tf.function``
each) beside its own count and floor: where the time goes. Last, the relative
difference ||x_T - x_E|| / ||x_E|| of the two models' outputs (the NUFFT
accuracy, ~1e-3 at most).

``--quick``: a 64 x 64, 2-coil, 2-repeat run (seconds; the smoke test's).
``--threads``: intra-op threads of TensorFlow (default 1: the machine is shared).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fastmri_zoo.data.simulate import simulate_coil_maps, smooth_phase  # noqa: E402
from fastmri_zoo.models import NCPDNet  # noqa: E402
from fastmri_zoo.physics import NUFFT, ToeplitzNormal, pipe_menon_density  # noqa: E402
from fastmri_zoo.sampling import radial_trajectory  # noqa: E402

# --------------------------------------------------------------------------- inputs


def phantom(size: int) -> np.ndarray:
    """complex64 (size, size): a few uniform ellipses (head, ventricles, lesions) with a smooth phase."""
    y, x = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    # (value, centre y, centre x, semi-axis y, semi-axis x, angle)
    ellipses = [
        (1.0, 0.0, 0.0, 0.92, 0.69, 0.0),
        (-0.6, -0.02, 0.0, 0.87, 0.62, 0.0),
        (0.3, 0.0, 0.22, 0.41, 0.11, -0.3),
        (0.3, 0.0, -0.22, 0.31, 0.16, 0.3),
        (0.4, 0.35, 0.0, 0.25, 0.21, 0.0),
        (0.2, -0.6, 0.05, 0.05, 0.08, 0.0),
    ]
    image = np.zeros((size, size))
    for value, cy, cx, ay, ax, angle in ellipses:
        u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
        v = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
        image[(u / ax) ** 2 + (v / ay) ** 2 <= 1] += value
    return (image * np.exp(1j * smooth_phase((size, size), rng=0, amplitude=1.0))).astype(np.complex64)


def make_inputs(size: int, coils: int, acceleration: float):
    """({"kspace", "traj", "dcomp", "smaps"}, target magnitude float32 (1, N, N)) scaled as the data pipelines do."""
    shape = (size, size)
    image = phantom(size)[None]
    smaps = simulate_coil_maps(shape, coils, rng=0)[None]
    traj = radial_trajectory(size, acceleration).reshape(2, -1)
    dcomp = np.asarray(pipe_menon_density(traj, shape), np.float32)
    operator = NUFFT(traj, shape, smaps=smaps, dcomp=dcomp)
    kspace = operator.forward(image)
    scale = float(tf.reduce_max(tf.abs(operator.adjoint_dcomp(kspace))))
    inputs = {
        "kspace": tf.constant(kspace / scale),
        "traj": tf.constant(traj),
        "dcomp": tf.constant(dcomp),
        "smaps": tf.constant(smaps),
    }
    return inputs, tf.constant(np.abs(image) / scale)


# --------------------------------------------------------------------------- FLOP count


def fft_flops(points: int) -> float:
    """5 N log2 N for one complex FFT of N points."""
    return 5.0 * points * math.log2(points)


def conv_flops(kernel_shape, pixels: int) -> float:
    """2 k^2 cin cout H W for a 'same' convolution of kernel (k, k, cin, cout) on H W pixels."""
    return 2.0 * float(np.prod(kernel_shape)) * pixels


def refiner_flops(refiner, pixels: int, coils: int) -> float:
    """Convolutions of the coil-map refiner's U-net on every coil map (scale i has pixels / 4^i pixels)."""
    unet = refiner.unet
    total = 0.0

    def convs(layers, scale_pixels):
        return sum(conv_flops(layer.kernel.shape, scale_pixels) for layer in layers if hasattr(layer, "kernel"))

    for i, block in enumerate(unet.down_blocks):
        total += convs(block, pixels // 4**i)
    total += convs(unet.bottleneck, pixels // 4 ** (unet.n_scales - 1))
    for i, up, block in zip(reversed(range(unet.n_scales - 1)), unet.ups, unet.up_blocks):
        total += convs(up, pixels // 4**i) + convs(block, pixels // 4**i)
    head = [unet.output_conv] + ([unet.head_conv] if unet.head_channels is not None else [])
    total += convs(head, pixels)
    return coils * total


def forward_flops(model: NCPDNet, size: int, coils: int, nsamples: int, numpoints: int = 6) -> dict[str, float]:
    """Floating-point operations of one NC-PDNet forward pass (batch 1), by stage.

    N = size^2 image pixels, G = (2 size)^2 points of the 2x grid (the
    Toeplitz embedding's and the NUFFT's oversampled grid alike), C coils,
    M samples, P = numpoints (Kaiser-Bessel width), FFT(n) = 5 n log2 n per
    complex FFT of n points, a complex product 6 flops, a complex addition 2,
    a real-by-complex product 2, and the gridding of one sample of one coil
    (interpolation or spreading) 2 P^2 8: a complex multiply-add (8) per
    neighbour, doubled for forming the neighbour's kernel weight.

    - refiner: sum over its U-net's convolutions of 2 k^2 cin cout (H W at
      that scale), on each of the C coil maps;
    - adjoint A^H D y (once): C [2 M (dcomp) + 2 P^2 8 M + FFT(G)
      + 6 N (apodisation) + 6 N (conj smaps)] + 2 (C - 1) N (coil sum);
    - Toeplitz kernel (once per trajectory): one coil of the adjoint on the
      2x image grid (4x grid): 2 P^2 8 M + FFT(4 G) + 6 G, then FFT(G) + 2 G;
    - Toeplitz A^H D A x (per iteration): C [6 N (smaps) + 2 FFT(G) + 6 G
      (kernel product on the 2x grid) + 6 N (conj smaps)] + 2 (C - 1) N
      + 2 N (minus A^H D y);
    - explicit A^H D (A x - y) (per iteration): C [6 N (smaps) + 6 N
      (apodisation) + FFT(G) + 2 P^2 8 M (interpolation) + 2 M (minus y)
      + 2 M (dcomp) + 2 P^2 8 M (spreading) + FFT(G) + 6 N + 6 N]
      + 2 (C - 1) N;
    - image net (per iteration): its 3 convolutions, 2 k^2 cin cout N each
      (k = 3; cin, cout = 2 (n_primal + 1) -> 32 -> 32 -> 2 n_primal).

    Biases, activations, padding, copies and the primal update are not counted
    (under 1 % of the total). Forward pass = refiner + adjoint
    + n_iter (normal + image net) [+ kernel when it is rebuilt].
    """
    pixels, grid = size * size, 4 * size * size
    gridding = 2 * numpoints**2 * 8 * nsamples
    coil_sum = 2 * (coils - 1) * pixels
    net = model.image_nets[0]
    image_net = sum(conv_flops(conv.kernel.shape, pixels) for conv in net.convs + [net.output_conv])
    return {
        "refiner": refiner_flops(model.smaps_refiner, pixels, coils) if model.refine_smaps else 0.0,
        "adjoint": coils * (2 * nsamples + gridding + fft_flops(grid) + 12 * pixels) + coil_sum,
        "kernel": gridding + fft_flops(4 * grid) + 6 * grid + fft_flops(grid) + 2 * grid,
        "toeplitz": coils * (12 * pixels + 2 * fft_flops(grid) + 6 * grid) + coil_sum + 2 * pixels,
        "explicit": coils * (24 * pixels + 2 * fft_flops(grid) + 2 * gridding + 4 * nsamples) + coil_sum,
        "image_net": image_net,
    }


def matmul_rate(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 flop/s of tf.linalg.matmul of two (size, size) matrices (2 size^3 flops each)."""
    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((size, size)), tf.float32)
    b = tf.constant(rng.standard_normal((size, size)), tf.float32)
    product = tf.function(tf.linalg.matmul)
    product(a, b).numpy()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


# --------------------------------------------------------------------------- timing


def interleaved_medians(runs: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each callable over ``repeats`` rounds, the callables alternating within a round.

    Each is called twice first (trace, warm up).
    """
    for run in runs.values():
        run()
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def train_step_function(model, target):
    optimizer = keras.optimizers.Adam(1e-4)

    @tf.function
    def train_step(inputs):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(tf.abs(model(inputs, training=True)) - target))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return train_step


def stage_functions(model: NCPDNet, inputs: dict):
    """Callables of the stages of one forward pass, each a tf.function on fixed tensors."""
    smaps = model.smaps_refiner(inputs["smaps"])
    kspace, explicit = model.acquisition(inputs, smaps=smaps, toeplitz=False)
    # Built eagerly, so the Toeplitz kernel is computed once here and captured as a constant.
    _, toeplitz = model.acquisition(inputs, smaps=smaps, toeplitz=True)
    adjoint = explicit.adjoint_dcomp(kspace)
    primal = tf.stack([adjoint] * model.n_primal, axis=-1)
    stacked = tf.concat([primal, adjoint[..., None]], axis=-1)
    channels = tf.concat([tf.math.real(stacked), tf.math.imag(stacked)], axis=-1)
    shape = tuple(int(n) for n in adjoint.shape[1:])
    refiner = tf.function(model.smaps_refiner)
    adjoint_dcomp = tf.function(explicit.adjoint_dcomp)
    kernel = tf.function(lambda traj, dcomp: ToeplitzNormal(traj, shape, dcomp=dcomp).kernel)
    normal = tf.function(lambda x: toeplitz.normal(x) - adjoint)
    forward_adjoint = tf.function(lambda x: explicit.adjoint_dcomp(explicit.forward(x) - kspace))
    image_net = tf.function(model.image_nets[0])
    fft = tf.function(tf.signal.fft2d)
    coil_grid = tf.pad(adjoint[:, None] * smaps, [[0, 0], [0, 0], [0, shape[0]], [0, shape[1]]])
    return {
        "refiner": lambda: refiner(inputs["smaps"]).numpy(),
        "adjoint": lambda: adjoint_dcomp(kspace).numpy(),
        "kernel": lambda: kernel(inputs["traj"], inputs["dcomp"]).numpy(),
        "toeplitz": lambda: normal(adjoint).numpy(),
        "explicit": lambda: forward_adjoint(adjoint).numpy(),
        "fft": lambda: fft(coil_grid).numpy(),
        "image_net": lambda: image_net(channels).numpy(),
    }


#: (key, label, calls per forward pass: once, per iteration)
STAGES = [
    ("refiner", "coil-map refiner (U-net per coil)", 1, 0),
    ("adjoint", "A^H D y", 1, 0),
    ("kernel", "Toeplitz kernel (PSF NUFFT, 2x grid)", 1, 0),
    ("toeplitz", "Toeplitz A^H D A x - A^H D y", 0, 1),
    ("fft", "  in both: FFT of the coils on 2x grid", 0, 2),
    ("explicit", "explicit A^H D (A x - y)", 0, 1),
    ("image_net", "image net (3 convolutions)", 0, 1),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--acceleration", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads (default 1: shared CPU)")
    parser.add_argument("--quick", action="store_true", help="64 x 64, 2 coils, 2 repeats (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.size, args.coils, args.repeats = 64, 2, 2
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(0)

    inputs, target = make_inputs(args.size, args.coils, args.acceleration)
    nsamples = int(inputs["traj"].shape[-1])
    toeplitz_model = NCPDNet(multicoil=True, refine_smaps=True, toeplitz=True)
    explicit_model = NCPDNet(multicoil=True, refine_smaps=True, toeplitz=False)
    toeplitz_out = toeplitz_model(inputs).numpy()
    explicit_model(inputs)
    explicit_model.set_weights(toeplitz_model.get_weights())
    explicit_out = explicit_model(inputs).numpy()
    difference = np.linalg.norm(toeplitz_out - explicit_out) / np.linalg.norm(explicit_out)

    graph = {name: tf.function(model) for name, model in (("toeplitz", toeplitz_model), ("explicit", explicit_model))}
    train = {name: train_step_function(model, target)
             for name, model in (("toeplitz", toeplitz_model), ("explicit", explicit_model))}
    inference = interleaved_medians(
        {
            "eager toeplitz": lambda: toeplitz_model(inputs).numpy(),
            "eager explicit": lambda: explicit_model(inputs).numpy(),
            "graph toeplitz": lambda: graph["toeplitz"](inputs).numpy(),
            "graph explicit": lambda: graph["explicit"](inputs).numpy(),
        },
        args.repeats,
    )
    training = interleaved_medians(
        {name: (lambda step=step: step(inputs).numpy()) for name, step in train.items()}, args.repeats
    )
    stages = interleaved_medians(stage_functions(toeplitz_model, inputs), args.repeats)
    rate = matmul_rate()

    flops = forward_flops(toeplitz_model, args.size, args.coils, nsamples)
    n_iter = toeplitz_model.n_iter
    once = flops["refiner"] + flops["adjoint"]
    toeplitz_flops = once + n_iter * (flops["toeplitz"] + flops["image_net"])
    explicit_flops = once + n_iter * (flops["explicit"] + flops["image_net"])
    floor = toeplitz_flops / rate
    floor_kernel = (toeplitz_flops + flops["kernel"]) / rate

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; tensorflow {tf.__version__}, "
        f"keras {keras.__version__}; {args.threads} intra-op thread(s)"
    )
    print(
        f"# NC-PDNet multicoil + refiner ({toeplitz_model.count_params():,} parameters, {n_iter} iterations), "
        f"{args.size}x{args.size}, {args.coils} coils, radial AF {args.acceleration:g} ({nsamples} samples); "
        f"batch 1, median of {args.repeats} interleaved repeats after a warm-up; seconds"
    )
    header = f"{'':<48} {'Toeplitz':>10} {'explicit':>10} {'expl/Toep':>10}"
    print(header)
    print("-" * len(header))

    def row(label, toeplitz, explicit):
        print(f"{label:<48} {toeplitz:10.4f} {explicit:10.4f} {explicit / toeplitz:9.2f}x")

    row("inference s/slice, eager (kernel cached)", inference["eager toeplitz"], inference["eager explicit"])
    row("inference s/slice, graph (kernel per call)", inference["graph toeplitz"], inference["graph explicit"])
    row("training step s (kernel per step)", training["toeplitz"], training["explicit"])
    print(f"{'forward pass GFLOP (analytic)':<48} {toeplitz_flops / 1e9:10.2f} {explicit_flops / 1e9:10.2f}")
    print(f"{'  + Toeplitz kernel when rebuilt':<48} {(toeplitz_flops + flops['kernel']) / 1e9:10.2f}")
    print(f"{'matmul rate GFLOP/s (2048^2 float32, best of 5)':<48} {rate / 1e9:10.1f}")
    print(f"{'floor s = FLOP / rate':<48} {floor:10.4f} {explicit_flops / rate:10.4f}")
    print(f"{'measured / floor, eager (kernel cached)':<48} {inference['eager toeplitz'] / floor:9.2f}x "
          f"{inference['eager explicit'] / (explicit_flops / rate):9.2f}x")
    print(f"{'measured / floor, graph (kernel per call)':<48} {inference['graph toeplitz'] / floor_kernel:9.2f}x "
          f"{inference['graph explicit'] / (explicit_flops / rate):9.2f}x")
    print(f"{'relative difference |x_T - x_E| / |x_E|':<48} {difference:10.2e}")
    print()
    print("# where the time goes: each stage alone (tf.function), per call; x n = calls per forward pass")
    header = f"{'stage':<40} {'calls':>5} {'GFLOP':>8} {'floor ms':>9} {'ms':>9} {'ms/floor':>9} {'ms x n':>9}"
    print(header)
    print("-" * len(header))
    flops["fft"] = args.coils * fft_flops(4 * args.size**2)
    for key, label, once, per_iteration in STAGES:
        calls = once + per_iteration * n_iter
        seconds = stages[key]
        print(
            f"{label:<40} {calls:>5} {flops[key] / 1e9:8.3f} {1e3 * flops[key] / rate:9.2f} {1e3 * seconds:9.2f} "
            f"{seconds * rate / flops[key]:8.1f}x {1e3 * seconds * calls:9.1f}"
        )


if __name__ == "__main__":
    main()
