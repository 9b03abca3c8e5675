"""NC-PDNet 2D multicoil: Toeplitz normal operator vs forward + adjoint NUFFTs (a benchmark, not a test).

    python bench/noncartesian.py [--size 256] [--coils 8] [--acceleration 4] [--repeats 5] [--threads 1] [--quick]

One slice (batch 1) of a simulated phantom with ``simulate_coil_maps`` coils,
uniform radial trajectory (``radial_trajectory``, AF = N / spokes), Pipe-Menon
density weights, k-space by ``physics.NUFFT``. Three NC-PDNets
(``multicoil=True, refine_smaps=True``, paper defaults: 10 iterations,
5 primal images, 32 filters) with the same weights, measured side by side in
one run:

- **Toeplitz**: ``toeplitz=True``, ``gridding="sparse"`` (the default model):
  A^H D A by the Toeplitz embedding, gridding only in A^H D y and the kernel;
- **tfkbnufft explicit**: ``toeplitz=False, gridding="tfkbnufft"``: forward +
  adjoint NUFFTs by tfkbnufft's ops in every iteration (the original
  NC-PDNet's operator, issue #5's reference);
- **sparse explicit**: ``toeplitz=False, gridding="sparse"``: forward +
  adjoint with the cached sparse gridding matrices.

Every repeat runs all variants one after the other (a noisy shared machine
slows them alike) and the medians are reported, with the ratios
"tfkbnufft explicit / Toeplitz" and "sparse explicit / Toeplitz".

- inference, eager: ``model(inputs)``; the Toeplitz kernel and the sparse
  gridding matrices are built at the first call and then taken from their
  per-trajectory caches (the way slices of one acquisition are reconstructed);
- inference, graph: ``tf.function`` with the inputs as arguments, so the
  Toeplitz kernel (a point-spread function NUFFT on the 2x grid) and the
  sparse matrices are rebuilt in every call, as for a new trajectory;
- training step: ``tf.function``: forward, L1 loss on the magnitude, gradient,
  Adam update (kernel and matrices rebuilt in every step, as in ``model.fit``).

The floor is the forward pass's floating-point operation count (counted
analytically, see :func:`forward_flops`; both explicit variants do the same
operations) divided by the rate of a large float32 matrix product on the same
machine and threads (``tf.linalg.matmul`` 2048 x 2048): what the machine could
do if every operation ran as fast as its best kernel. The product is timed
within the interleaved inference rounds (its median, under the same load as the
models: on a shared machine a rate measured apart, at its best, makes every
ratio to the floor a ratio of two loads); the best of 5 timed alone is printed
too, with the ratios it gives. Then
each stage is timed alone (``tf.function`` each) beside its own count and
floor: where the time goes, including the interpolation (grid -> samples) and
spreading (samples -> grid) of all coils by either gridding (tfkbnufft's
``kbinterp`` / ``adjkbinterp``, the sparse matrices' products). Last, the
relative differences of the outputs to the tfkbnufft explicit model's: the
Toeplitz one (the NUFFT accuracy, ~1e-3 at most) and the sparse explicit one
(the two griddings, ~1e-5).

``--quick``: a 64 x 64, 2-coil, 2-repeat run (seconds; the smoke test's).
``--threads``: intra-op threads of TensorFlow (default 1: the machine is shared).

``--prepare-3d``: instead, the preparation of one 3D kooshball volume beside the
3D network's inference on it, measured in the same run: the ``ncpdnet-radial-3d``
checkpoint (NC-PDNet 3D, single-coil, 90 x 120 x 120) and its recorded
preprocessor and acquisition (kooshball AF 4, readout oversampling 2, Pipe-Menon
weights of 10 iterations), on the bundled held-out IXI volume with a smooth
phase. Each repeat (default 3) times, in order:

- trajectory: ``sampling.kooshball_trajectory``;
- density weights: ``NonCartesianPreprocessor.density`` (Pipe-Menon), its cache and the gridding
  matrices' (``nufft.GRIDDING_CACHE``) emptied first;
- acquisition: the forward NUFFT of the volume (the simulated k-space of the pipelines);
- preprocessing: the preprocessor's A^H D y and scale (and coil maps when multicoil);
- the network on the prepared inputs (eager), its Toeplitz kernel built (the first volume of
  a trajectory), then again with the kernel cached (every further volume).

The medians (wall and CPU seconds) are printed with the ratios preparation / network,
for the first volume of a trajectory (everything built) and for every further volume
(trajectory and density weights cached, as in the pipelines; the network's kernel cached).
``--prepare-3d --quick``: a 12 x 16 x 16 centre crop, the same architecture with random weights, 1 repeat.
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
from tfkbnufft.nufft import interp_functions as tfkbnufft_interp  # noqa: E402

import fastmri_zoo  # noqa: E402
from fastmri_zoo.data import preprocessing  # noqa: E402
from fastmri_zoo.data.simulate import simulate_coil_maps, smooth_phase  # noqa: E402
from fastmri_zoo.demo import bundled_sample  # noqa: E402
from fastmri_zoo.models import NCPDNet  # noqa: E402
from fastmri_zoo.physics import NUFFT, ToeplitzNormal, pipe_menon_density  # noqa: E402
from fastmri_zoo.physics.nufft import GRIDDING_CACHE, SparseGridding, grid_shape_for, kb_operators  # noqa: E402
from fastmri_zoo.physics.toeplitz import TOEPLITZ_KERNELS  # noqa: E402
from fastmri_zoo.sampling import kooshball_trajectory, radial_trajectory  # noqa: E402
from fastmri_zoo.training.fit import l1_magnitude_step  # noqa: E402
from fastmri_zoo.utils import center_crop  # noqa: E402

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
    + n_iter (normal + image net) [+ kernel when it is rebuilt]. Also
    "gridding": the interpolation (or the spreading) of all C coils alone,
    C 2 P^2 8 M.
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
        "gridding": coils * gridding,
    }


#: Size of the matrices of the reference product (2 MATMUL_SIZE^3 flops).
MATMUL_SIZE = 2048


def matmul_run(size: int = MATMUL_SIZE):
    """A callable running tf.linalg.matmul of two float32 (size, size) matrices (2 size^3 flops)."""
    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((size, size)), tf.float32)
    b = tf.constant(rng.standard_normal((size, size)), tf.float32)
    product = tf.function(tf.linalg.matmul)
    return lambda: product(a, b).numpy()


def matmul_rate(size: int = MATMUL_SIZE, repeats: int = 5) -> float:
    """Best float32 flop/s of tf.linalg.matmul of two (size, size) matrices (2 size^3 flops each)."""
    run = matmul_run(size)
    run()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
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
    step = l1_magnitude_step(model, keras.optimizers.Adam(1e-4))
    return lambda inputs: step(inputs, target)


def stage_functions(models: dict, inputs: dict):
    """Callables of the stages of one forward pass, each a tf.function on fixed tensors.

    models: {"toeplitz", "tfkbnufft", "sparse"} NC-PDNets with the same weights.
    """
    model = models["toeplitz"]
    smaps = model.smaps_refiner(inputs["smaps"])
    explicit = {
        key: models[key].acquisition.operator(inputs, smaps=smaps, toeplitz=False)[1] for key in ("tfkbnufft", "sparse")
    }
    # The measurements sqrt(dcomp) y of the density-weighted NUFFT B: B^H b = A^H D y.
    kspace, _ = model.acquisition.operator(inputs, smaps=smaps, toeplitz=False)
    # Built eagerly, so the Toeplitz kernel is computed once here and captured as a constant.
    _, toeplitz = model.acquisition.operator(inputs, smaps=smaps, toeplitz=True)
    adjoint = explicit["sparse"].adjoint(kspace)
    primal = tf.stack([adjoint] * model.n_primal, axis=-1)
    stacked = tf.concat([primal, adjoint[..., None]], axis=-1)
    channels = tf.concat([tf.math.real(stacked), tf.math.imag(stacked)], axis=-1)
    shape = tuple(int(n) for n in adjoint.shape[1:])
    grid_shape = grid_shape_for(shape, 2.0)
    refiner = tf.function(model.smaps_refiner)
    adjoint_dcomp = tf.function(explicit["sparse"].adjoint)
    kernel = tf.function(lambda traj, dcomp: ToeplitzNormal(traj, shape, dcomp=dcomp).kernel)
    normal = tf.function(lambda x: toeplitz.normal(x) - adjoint)
    image_net = tf.function(model.image_nets[0])
    fft = tf.function(tf.signal.fft2d)
    coil_grid = tf.pad(adjoint[:, None] * smaps, [[0, 0], [0, 0], [0, shape[0]], [0, shape[1]]])
    stages = {
        "refiner": lambda: refiner(inputs["smaps"]).numpy(),
        "adjoint": lambda: adjoint_dcomp(kspace).numpy(),
        "kernel": lambda: kernel(inputs["traj"], inputs["dcomp"]).numpy(),
        "toeplitz": lambda: normal(adjoint).numpy(),
        "fft": lambda: fft(coil_grid).numpy(),
        "image_net": lambda: image_net(channels).numpy(),
    }
    for key, operator in explicit.items():
        forward_adjoint = tf.function(lambda x, operator=operator: operator.adjoint(operator.forward(x) - kspace))
        stages[f"explicit {key}"] = lambda run=forward_adjoint: run(adjoint).numpy()
    # Gridding alone, all coils at once: tfkbnufft's table interpolation and its adjoint, and the sparse matrices.
    traj = tf.reshape(inputs["traj"], [1, 2, -1])
    geometry = (shape, grid_shape, 6, model.table_oversampling)
    _, _, interpob = kb_operators(*geometry)
    sparse = SparseGridding(traj, *geometry)
    samples = kspace
    kbinterp = tf.function(lambda grid: tfkbnufft_interp.kbinterp(grid, traj, interpob))
    adjkbinterp = tf.function(lambda y: tfkbnufft_interp.adjkbinterp(y, traj, interpob))
    interpolate = tf.function(sparse.interpolate)
    spread = tf.function(sparse.spread)
    flat_grid = tf.reshape(coil_grid, [1, coil_grid.shape[1], -1])
    stages["interpolation tfkbnufft"] = lambda: kbinterp(coil_grid).numpy()
    stages["interpolation sparse"] = lambda: interpolate(flat_grid).numpy()
    stages["spreading tfkbnufft"] = lambda: adjkbinterp(samples).numpy()
    stages["spreading sparse"] = lambda: spread(samples).numpy()
    return stages


#: (key, label, FLOP key, calls per forward pass of the Toeplitz model: once, per iteration)
STAGES = [
    ("refiner", "coil-map refiner (U-net per coil)", "refiner", 1, 0),
    ("adjoint", "A^H D y (sparse gridding)", "adjoint", 1, 0),
    ("kernel", "Toeplitz kernel (PSF NUFFT, 2x grid)", "kernel", 1, 0),
    ("toeplitz", "Toeplitz A^H D A x - A^H D y", "toeplitz", 0, 1),
    ("fft", "  in all: FFT of the coils on 2x grid", "fft", 0, 2),
    ("explicit tfkbnufft", "explicit A^H D (A x - y), tfkbnufft", "explicit", 0, 1),
    ("explicit sparse", "explicit A^H D (A x - y), sparse", "explicit", 0, 1),
    ("interpolation tfkbnufft", "  in it: interpolation, tfkbnufft", "gridding", 0, 1),
    ("interpolation sparse", "  in it: interpolation, sparse", "gridding", 0, 1),
    ("spreading tfkbnufft", "  in it: spreading, tfkbnufft", "gridding", 0, 1),
    ("spreading sparse", "  in it: spreading, sparse", "gridding", 0, 1),
    ("image_net", "image net (3 convolutions)", "image_net", 0, 1),
]

#: (key, column heading, toeplitz, gridding) of the measured NC-PDNets; the first is the reference of the ratios.
VARIANTS = [
    ("toeplitz", "Toeplitz", True, "sparse"),
    ("tfkbnufft", "tfkbnufft", False, "tfkbnufft"),
    ("sparse", "sparse", False, "sparse"),
]


# --------------------------------------------------------------------------- 3D preparation

#: The checkpoint whose volume preparation and inference --prepare-3d times.
KOOSHBALL_CHECKPOINT = "ncpdnet-radial-3d"
#: (key, label) of the timed steps of --prepare-3d, in the order they run.
PREPARATION = [
    ("trajectory", "trajectory (kooshball)"),
    ("density", "density weights (Pipe-Menon)"),
    ("acquisition", "acquisition (forward NUFFT of the volume)"),
    ("preprocessing", "preprocessing (A^H D y, scale[, coil maps])"),
]
NETWORK = [("network first", "network, Toeplitz kernel built"), ("network next", "network, kernel cached")]


def clocked(function):
    """(result, wall seconds, CPU seconds of this process) of function()."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def prepare_3d(quick: bool, repeats: int) -> None:
    """Print the preparation of one kooshball volume beside the 3D network's inference on it (module docstring)."""
    model = fastmri_zoo.load(KOOSHBALL_CHECKPOINT)
    recorded = model.preset_metadata.get("acquisition", {})
    acceleration = float(recorded.get("acceleration", 4))
    oversampling = float(recorded.get("readout_oversampling", 2.0))
    with np.load(bundled_sample("ixi_heldout_volume")) as sample:
        magnitude = sample["magnitude"].astype(np.float32)
    if quick:
        magnitude = center_crop(magnitude, (12, 16, 16))
        model = type(model).from_config({**model.get_config(), "image_shape": list(magnitude.shape)})
    shape = magnitude.shape
    volume = (magnitude * np.exp(1j * smooth_phase(shape, rng=0, amplitude=1.0))).astype(np.complex64)
    preprocessor = preprocessing.preprocessor_for(model).with_image_shape(shape)
    coils = volume[None]  # single-coil: the volume is the one coil image

    def one_volume():
        preprocessing.DENSITY_CACHE.clear()
        TOEPLITZ_KERNELS.clear()
        GRIDDING_CACHE.clear()
        times = {}
        traj, *times["trajectory"] = clocked(
            lambda: tf.constant(kooshball_trajectory(shape, acceleration, oversampling=oversampling).reshape(3, -1)))
        dcomp, *times["density"] = clocked(lambda: preprocessor.density(traj))
        kspace, *times["acquisition"] = clocked(lambda: NUFFT(traj, shape).forward(coils).numpy())
        kspace = kspace if preprocessor.multicoil else kspace[0]
        prepared, *times["preprocessing"] = clocked(lambda: preprocessor(kspace, traj, dcomp))
        inputs = {key: value[None] for key, value in prepared.inputs.items()}
        _, *times["network first"] = clocked(lambda: model(inputs).numpy())
        _, *times["network next"] = clocked(lambda: model(inputs).numpy())
        return times

    rounds = [one_volume() for _ in range(repeats)]
    medians = {key: [statistics.median(r[key][i] for r in rounds) for i in (0, 1)] for key in rounds[0]}
    first = [sum(medians[key][i] for key, _ in PREPARATION) for i in (0, 1)]
    further = [sum(medians[key][i] for key in ("acquisition", "preprocessing")) for i in (0, 1)]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; tensorflow {tf.__version__}, "
          f"keras {keras.__version__}; {tf.config.threading.get_intra_op_parallelism_threads()} intra-op thread(s)")
    print(f"# one kooshball volume {'x'.join(map(str, shape))}, AF {acceleration:g}, "
          f"{round(shape[0] * shape[-1] / acceleration)} spokes "
          f"(preprocessor: {preprocessor.get_config()['dcomp_iterations']} Pipe-Menon iterations); "
          f"{KOOSHBALL_CHECKPOINT}{' architecture, random weights' if quick else ''} "
          f"({model.count_params():,} parameters); median of {repeats} repeat(s); seconds")
    header = f"{'':<48} {'wall':>9} {'CPU':>9}"
    print(header)
    print("-" * len(header))
    for key, label in PREPARATION + NETWORK:
        print(f"{label:<48} {medians[key][0]:9.3f} {medians[key][1]:9.3f}")
    print(f"{'preparation, first volume of a trajectory':<48} {first[0]:9.3f} {first[1]:9.3f}")
    print(f"{'preparation, further volumes (density cached)':<48} {further[0]:9.3f} {further[1]:9.3f}")
    network_first, network_next = medians["network first"], medians["network next"]
    print(f"{'preparation / network, first volume':<48} {first[0] / network_first[0]:8.2f}x "
          f"{first[1] / network_first[1]:8.2f}x")
    print(f"{'preparation / network, further volumes':<48} {further[0] / network_next[0]:8.2f}x "
          f"{further[1] / network_next[1]:8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--acceleration", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=None, help="default 5 (2D), 3 (--prepare-3d)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads (default 1: shared CPU)")
    parser.add_argument("--quick", action="store_true", help="64 x 64, 2 coils, 2 repeats (smoke test)")
    parser.add_argument("--prepare-3d", action="store_true",
                        help="preparation of one 3D kooshball volume beside the 3D network's inference on it")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(0)
    if args.prepare_3d:
        prepare_3d(args.quick, args.repeats or (1 if args.quick else 3))
        return
    args.repeats = args.repeats or 5
    if args.quick:
        args.size, args.coils, args.repeats = 64, 2, 2

    inputs, target = make_inputs(args.size, args.coils, args.acceleration)
    nsamples = int(inputs["traj"].shape[-1])
    models = {
        key: NCPDNet(multicoil=True, refine_smaps=True, toeplitz=toeplitz, gridding=gridding)
        for key, _, toeplitz, gridding in VARIANTS
    }
    reference = models["toeplitz"]
    outputs = {"toeplitz": reference(inputs).numpy()}
    for key, model in models.items():
        if key != "toeplitz":
            model(inputs)
            model.set_weights(reference.get_weights())
            outputs[key] = model(inputs).numpy()

    def difference(key):
        return np.linalg.norm(outputs[key] - outputs["tfkbnufft"]) / np.linalg.norm(outputs["tfkbnufft"])

    graph = {key: tf.function(model) for key, model in models.items()}
    train = {key: train_step_function(model, target) for key, model in models.items()}
    runs = {}
    for key, model in models.items():
        runs[f"eager {key}"] = lambda model=model: model(inputs).numpy()
    for key, function in graph.items():
        runs[f"graph {key}"] = lambda function=function: function(inputs).numpy()
    runs["matmul"] = matmul_run()
    inference = interleaved_medians(runs, args.repeats)
    training = interleaved_medians(
        {key: (lambda step=step: step(inputs).numpy()) for key, step in train.items()}, args.repeats
    )
    stages = interleaved_medians(stage_functions(models, inputs), args.repeats)
    rate = 2.0 * MATMUL_SIZE**3 / inference["matmul"]
    best_rate = matmul_rate()

    flops = forward_flops(reference, args.size, args.coils, nsamples)
    n_iter = reference.n_iter
    once = flops["refiner"] + flops["adjoint"]
    toeplitz_flops = once + n_iter * (flops["toeplitz"] + flops["image_net"])
    explicit_flops = once + n_iter * (flops["explicit"] + flops["image_net"])
    forward = {"toeplitz": toeplitz_flops, "tfkbnufft": explicit_flops, "sparse": explicit_flops}
    floor = {key: value / rate for key, value in forward.items()}
    floor_graph = dict(floor, toeplitz=(toeplitz_flops + flops["kernel"]) / rate)
    at_best = best_rate / rate  # floors at the best rate are this much lower

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; tensorflow {tf.__version__}, "
        f"keras {keras.__version__}; {args.threads} intra-op thread(s)"
    )
    print(
        f"# NC-PDNet multicoil + refiner ({reference.count_params():,} parameters, {n_iter} iterations), "
        f"{args.size}x{args.size}, {args.coils} coils, radial AF {args.acceleration:g} ({nsamples} samples); "
        f"batch 1, median of {args.repeats} interleaved repeats after a warm-up; seconds"
    )
    print("# Toeplitz: toeplitz=True, sparse gridding (default); tfkbnufft / sparse: explicit forward + adjoint "
          "NUFFTs with that gridding; ratios: explicit / Toeplitz")
    header = f"{'':<48} {'Toeplitz':>10} {'tfkbnufft':>10} {'sparse':>10} {'tfk/Toep':>9} {'sparse/Toep':>11}"
    print(header)
    print("-" * len(header))

    def row(label, values):
        toeplitz, tfk, sparse = (values[key] for key, *_ in VARIANTS)
        print(f"{label:<48} {toeplitz:10.4f} {tfk:10.4f} {sparse:10.4f} {tfk / toeplitz:8.2f}x "
              f"{sparse / toeplitz:10.2f}x")

    def by_variant(results, prefix=""):
        return {key: results[prefix + key] for key, *_ in VARIANTS}

    row("inference s/slice, eager (kernel cached)", by_variant(inference, "eager "))
    row("inference s/slice, graph (kernel per call)", by_variant(inference, "graph "))
    row("training step s (kernel per step)", by_variant(training))
    print(f"{'forward pass GFLOP (analytic)':<48} " + " ".join(f"{forward[key] / 1e9:10.2f}" for key, *_ in VARIANTS))
    print(f"{'  + Toeplitz kernel when rebuilt':<48} {(toeplitz_flops + flops['kernel']) / 1e9:10.2f}")
    print(f"{'matmul rate GFLOP/s (2048^2 float32, interleaved)':<48} {rate / 1e9:10.1f}")
    print(f"{'  alone, best of 5':<48} {best_rate / 1e9:10.1f}")
    print(f"{'floor s = FLOP / rate':<48} " + " ".join(f"{floor[key]:10.4f}" for key, *_ in VARIANTS))
    print(f"{'measured / floor, eager (kernel cached)':<48} "
          + " ".join(f"{inference['eager ' + key] / floor[key]:9.2f}x" for key, *_ in VARIANTS))
    print(f"{'measured / floor, graph (kernel per call)':<48} "
          + " ".join(f"{inference['graph ' + key] / floor_graph[key]:9.2f}x" for key, *_ in VARIANTS))
    print(f"{'  at the best rate alone, eager':<48} "
          + " ".join(f"{at_best * inference['eager ' + key] / floor[key]:9.2f}x" for key, *_ in VARIANTS))
    print(f"{'  at the best rate alone, graph':<48} "
          + " ".join(f"{at_best * inference['graph ' + key] / floor_graph[key]:9.2f}x" for key, *_ in VARIANTS))
    print(f"{'relative difference |x_T - x_tfk| / |x_tfk|':<48} {difference('toeplitz'):10.2e}")
    print(f"{'relative difference |x_sparse - x_tfk| / |x_tfk|':<48} {difference('sparse'):10.2e}")
    print()
    print("# where the time goes: each stage alone (tf.function), per call; x n = calls per forward pass "
          "(of the model using it)")
    header = f"{'stage':<40} {'calls':>5} {'GFLOP':>8} {'floor ms':>9} {'ms':>9} {'ms/floor':>9} {'ms x n':>9}"
    print(header)
    print("-" * len(header))
    flops["fft"] = args.coils * fft_flops(4 * args.size**2)
    for key, label, flop_key, once, per_iteration in STAGES:
        calls = once + per_iteration * n_iter
        seconds = stages[key]
        print(
            f"{label:<40} {calls:>5} {flops[flop_key] / 1e9:8.3f} {1e3 * flops[flop_key] / rate:9.2f} "
            f"{1e3 * seconds:9.2f} {seconds * rate / flops[flop_key]:8.1f}x {1e3 * seconds * calls:9.1f}"
        )

if __name__ == "__main__":
    main()
