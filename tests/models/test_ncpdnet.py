"""NC-PDNet against independent references.

References: a dense NDFT and a numpy re-implementation of the unrolled network
(scipy correlations for the convolutions), finufft's type-1 transform for the
density-compensated adjoint, closed-form parameter counts of the paper's networks.
"""

import json

import finufft
import numpy as np
import pytest
import tensorflow as tf
from scipy.signal import correlate

from fastmri_zoo.models import GriddedPDNet, NCPDNet, UNetAdjDcomp
from fastmri_zoo.physics import pipe_menon_density
from fastmri_zoo.physics.toeplitz import TOEPLITZ_KERNELS
from fastmri_zoo.sampling import kooshball_trajectory, radial_trajectory
from tests.conftest import crandn

N = 16


def relative_error(got, expected):
    return np.linalg.norm(np.asarray(got) - expected) / np.linalg.norm(expected)


def ndft_matrix(traj, shape):
    """(nsamples, prod(shape)) matrix of y_j = N^-1/2 sum_n x_n exp(-i k_j . (n - shape // 2))."""
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    phase = sum(np.asarray(traj, np.float64)[axis, :, None] * grids[axis].ravel() for axis in range(len(shape)))
    return np.exp(-1j * phase) / np.sqrt(np.prod(shape))


def unit_smaps(rng, coils, shape):
    maps = crandn(rng, (1, coils, *shape))
    return (maps / np.sqrt((np.abs(maps) ** 2).sum(1, keepdims=True))).astype(np.complex64)


def acquisition(rng, shape=(N, N), coils=None, acceleration=2):
    """A radial acquisition of a random complex image: (image, inputs dict), batch 1."""
    traj = radial_trajectory(shape[-1], acceleration).reshape(2, -1)
    dcomp = pipe_menon_density(traj, shape).numpy()
    image = crandn(rng, (1, *shape))
    matrix = ndft_matrix(traj, shape)
    inputs = {"traj": traj, "dcomp": dcomp}
    if coils is None:
        inputs["kspace"] = (image.reshape(1, -1) @ matrix.T).astype(np.complex64)
    else:
        smaps = unit_smaps(rng, coils, shape)
        inputs["kspace"] = ((image[:, None] * smaps).reshape(1, coils, -1) @ matrix.T).astype(np.complex64)
        inputs["smaps"] = smaps
    return image, inputs


def finufft_adjoint_dcomp(inputs, shape, dcomp=True):
    """A^H D y with finufft type 1 (modes -N//2 .. (N-1)//2 are the image indices n - N//2)."""
    traj = np.asarray(inputs["traj"], np.float64)
    weights = inputs["dcomp"][None] if dcomp else 1.0
    kspace = np.asarray(inputs["kspace"], np.complex128)
    coil_data = kspace[0] if kspace.ndim == 3 else kspace
    coil_data = (coil_data * weights).astype(np.complex128)
    images = np.stack([finufft.nufft2d1(traj[0], traj[1], c, shape, isign=1, eps=1e-12) for c in coil_data])
    images = images / np.sqrt(np.prod(shape))
    if "smaps" in inputs:
        return np.sum(np.conj(inputs["smaps"][0]) * images, axis=0)[None]
    return images


def zero_weights(model):
    for variable in model.trainable_variables:
        variable.assign(np.zeros(variable.shape, np.float32))


def random_weights(model, rng, scale=0.1):
    for variable in model.trainable_variables:
        variable.assign(rng.standard_normal(variable.shape).astype(np.float32) * scale)


# --------------------------------------------------------------------------- parameter counts


def ncpdnet_count(n_iter, n_primal, n_filters, taps):
    """3-conv CNN per iteration: 2 (n_primal + 1) -> n_filters -> n_filters -> 2 n_primal, with biases."""
    cin, cout = 2 * (n_primal + 1), 2 * n_primal
    per_iteration = (taps * cin * n_filters + n_filters) + (taps * n_filters**2 + n_filters) + (taps * n_filters * cout + cout)
    return n_iter * per_iteration


@pytest.mark.slow
def test_parameter_counts_of_the_papers_networks(rng):
    _, single = acquisition(rng)
    model = NCPDNet(image_shape=(N, N))
    model(single)
    assert model.count_params() == ncpdnet_count(10, 5, 32, 9) == 156_260

    _, multi = acquisition(rng, coils=2)
    model = NCPDNet(multicoil=True, refine_smaps=True)
    model(multi)
    assert model.smaps_refiner.count_params() == 7_458
    assert model.count_params() == 156_260 + 7_458 == 163_718

    volume = (8, 8, 8)
    traj = kooshball_trajectory(volume, 4).reshape(3, -1)
    model = NCPDNet(ndim=3, n_iter=6, n_primal=2, n_filters=16, dcomp=False, image_shape=volume)
    out = model({"kspace": np.zeros((1, traj.shape[-1]), np.complex64), "traj": traj})
    assert out.shape == (1, *volume) and out.dtype == tf.complex64
    assert model.count_params() == ncpdnet_count(6, 2, 16, 27) == 67_608

    # The gridded ablation runs the same network on another operator.
    gridded = GriddedPDNet(image_shape=(N, N))
    gridded(single)
    assert gridded.count_params() == 156_260


# (The operators themselves, weighted NUFFT, legacy padding and Toeplitz kernel cache included, are
# tested in tests/physics/test_operators.py and tests/physics/test_acquisition.py.)


# --------------------------------------------------------------------------- the network


def numpy_ncpdnet(model, inputs, shape):
    """The unrolled network in numpy: dense NDFT operator, scipy correlations for the convolutions."""
    matrix = ndft_matrix(inputs["traj"], shape)
    dcomp = inputs["dcomp"]
    smaps = inputs.get("smaps")
    kspace = inputs["kspace"][0].reshape(-1, matrix.shape[0])

    def forward(x):
        coil_images = x[None] if smaps is None else x[None] * smaps[0]
        return coil_images.reshape(len(coil_images), -1) @ matrix.T

    def adjoint_dcomp(y):
        images = ((np.conj(matrix).T @ (dcomp * y).T).T).reshape(-1, *shape)
        return images[0] if smaps is None else np.sum(np.conj(smaps[0]) * images, axis=0)

    def conv(x, layer, relu):
        kernel, bias = (w.numpy() for w in layer.weights)
        out = np.stack(
            [sum(correlate(x[..., c], kernel[..., c, o], mode="same") for c in range(x.shape[-1])) + bias[o]
             for o in range(kernel.shape[-1])], axis=-1)
        return np.maximum(out, 0) if relu else out

    adjoint = adjoint_dcomp(kspace)
    primal = np.stack([adjoint] * model.n_primal, axis=-1)
    for net in model.image_nets:
        dual = adjoint_dcomp(forward(primal[..., 0]) - kspace)
        stacked = np.concatenate([primal, dual[..., None]], axis=-1)
        h = np.concatenate([stacked.real, stacked.imag], axis=-1)
        h = conv(conv(conv(h, net.convs[0], True), net.convs[1], True), net.output_conv, False)
        primal = primal + h[..., : model.n_primal] + 1j * h[..., model.n_primal :]
    return primal[..., 0]


@pytest.mark.parametrize("coils", [None, 2], ids=["single", "multicoil"])
def test_network_equals_numpy_reimplementation_both_normal_operators(coils, rng):
    image, inputs = acquisition(rng, coils=coils)
    kwargs = dict(n_iter=2, n_primal=3, n_filters=4, multicoil=coils is not None)
    if coils is None:
        kwargs["image_shape"] = (N, N)
    models = {toeplitz: NCPDNet(toeplitz=toeplitz, **kwargs) for toeplitz in (True, False)}
    models[True](inputs)
    random_weights(models[True], rng)
    models[False](inputs)
    models[False].set_weights(models[True].get_weights())
    outputs = {toeplitz: model(inputs).numpy()[0] for toeplitz, model in models.items()}
    expected = numpy_ncpdnet(models[True], inputs, (N, N))
    assert np.abs(expected - adjoint_of(inputs)).max() > 0.1 * np.abs(expected).max()  # the CNNs act
    for toeplitz in (True, False):
        assert relative_error(outputs[toeplitz], expected) < 1e-3, toeplitz
    assert relative_error(outputs[True], outputs[False]) < 1e-3


def adjoint_of(inputs):
    return finufft_adjoint_dcomp(inputs, (N, N))[0]


@pytest.mark.parametrize(
    "kwargs,coils",
    [(dict(), None), (dict(dcomp=False), None), (dict(multicoil=True, refine_smaps=False), 3)],
    ids=["dcomp", "no_dcomp_normalised", "multicoil"],
)
def test_zero_networks_return_the_density_compensated_adjoint(kwargs, coils, rng):
    _, inputs = acquisition(rng, coils=coils)
    if coils is None:
        inputs["image_shape"] = (N, N)
    model = NCPDNet(n_iter=2, n_filters=4, **kwargs)
    model(inputs)
    zero_weights(model)
    expected = finufft_adjoint_dcomp(inputs, (N, N), dcomp=model.dcomp)
    assert relative_error(model(inputs).numpy(), expected) < 1e-3


def test_no_dcomp_normalisation_makes_the_network_scale_equivariant(rng):
    """normalize_image (the original's no-dcomp ablation): A^H y, y and each dual divided by their
    maximum, the output multiplied back, so f(a y) = a f(y) despite the biases; without it, not."""
    _, inputs = acquisition(rng)
    del inputs["dcomp"]
    scaled = dict(inputs, kspace=inputs["kspace"] * 7.0)
    for normalize, equivariant in ((None, True), (False, False)):
        model = NCPDNet(n_iter=2, n_filters=4, dcomp=False, normalize_image=normalize, image_shape=(N, N))
        model(inputs)
        random_weights(model, rng)
        ratio_error = relative_error(model(scaled).numpy(), 7.0 * model(inputs).numpy())
        assert (ratio_error < 1e-4) == equivariant, (normalize, ratio_error)


def test_image_shape_from_the_call_or_the_constructor(rng):
    _, inputs = acquisition(rng, shape=(N, N + 4))
    model = NCPDNet(n_iter=1, n_filters=4)
    from_call = model(dict(inputs, image_shape=(N, N + 4))).numpy()
    again = NCPDNet(n_iter=1, n_filters=4, image_shape=(N, N + 4))
    again(inputs)
    again.set_weights(model.get_weights())
    np.testing.assert_allclose(again(inputs).numpy(), from_call, atol=1e-6)
    assert from_call.shape == (1, N, N + 4)


# --------------------------------------------------------------------------- baselines


def test_gridded_pdnet_zero_networks_give_the_masked_gridded_adjoint(rng):
    _, inputs = acquisition(rng)
    model = GriddedPDNet(n_iter=2, n_filters=4, image_shape=(N, N))
    model(inputs)
    zero_weights(model)
    traj = inputs["traj"]
    # Sampled cells, by numpy nearest-neighbour binning.
    cells = (np.round(traj * N / (2 * np.pi)).astype(int) + N // 2) % N
    mask = np.zeros((N, N), bool)
    mask[cells[0], cells[1]] = True
    np_fftc = lambda x: np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x), norm="ortho"))  # noqa: E731
    np_ifftc = lambda x: np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(x), norm="ortho"))  # noqa: E731
    gridded = np_fftc(adjoint_of(inputs)) * mask
    assert 0.2 < mask.mean() < 0.9
    assert relative_error(model(inputs).numpy()[0], np_ifftc(gridded)) < 1e-3


@pytest.mark.parametrize("input_mode", ["complex", "magnitude"])
def test_unet_adjoint_dcomp_with_zero_network_is_the_adjoint(input_mode, rng):
    _, inputs = acquisition(rng, coils=2)
    model = UNetAdjDcomp(layers_n_channels=[4, 8], input_mode=input_mode, multicoil=True)
    model(inputs)
    zero_weights(model)
    expected = adjoint_of(inputs)
    if input_mode == "magnitude":
        expected = np.abs(expected)
    assert relative_error(model(inputs).numpy()[0], expected) < 1e-3


def test_3d_baselines_run_on_volumes(rng):
    volume = (8, 8, 8)
    traj = kooshball_trajectory(volume, 4).reshape(3, -1)
    inputs = {"kspace": crandn(rng, (1, traj.shape[-1])), "traj": traj, "image_shape": volume}
    for model in (UNetAdjDcomp(layers_n_channels=[2, 4], ndim=3, dcomp=False),
                  GriddedPDNet(n_iter=1, n_filters=2, ndim=3, dcomp=False)):
        out = model(inputs)
        assert out.shape == (1, *volume) and out.dtype == tf.complex64
        assert np.isfinite(out.numpy()).all()


def test_models_refuse_xla_so_fit_runs_with_jit_compile_auto(rng):
    """tfkbnufft is not XLA-compilable: compile(jit_compile="auto") must resolve to no XLA."""
    _, inputs = acquisition(rng)
    for model in (NCPDNet(n_iter=1, n_filters=2, image_shape=(N, N)),
                  UNetAdjDcomp(layers_n_channels=[2, 4], image_shape=(N, N)),
                  GriddedPDNet(n_iter=1, n_filters=2, image_shape=(N, N))):
        assert model.supports_jit is False
        model.compile(optimizer="adam", loss="mae", jit_compile="auto")
        assert model.jit_compile is False
    # Examples as a pipeline makes them: every key with a batch axis.
    batched = dict(inputs, traj=inputs["traj"][None], dcomp=inputs["dcomp"][None])
    target = np.abs(adjoint_of(inputs))[None].astype(np.float32)
    dataset = tf.data.Dataset.from_tensors((batched, target)).repeat(2)
    history = model.fit(dataset, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


# --------------------------------------------------------------------------- gridding choice


GRIDDING_CASES = [
    ("ncpdnet_toeplitz", NCPDNet, dict(n_iter=2, n_primal=3, n_filters=4, multicoil=True, refine_smaps=True), 2),
    ("ncpdnet_explicit", NCPDNet, dict(n_iter=2, n_primal=3, n_filters=4, toeplitz=False, image_shape=(N, N)), None),
    ("unet", UNetAdjDcomp, dict(layers_n_channels=[4, 8], multicoil=True), 2),
    ("gridded", GriddedPDNet, dict(n_iter=2, n_filters=4, image_shape=(N, N)), None),
]


@pytest.mark.parametrize("name,cls,kwargs,coils", GRIDDING_CASES, ids=[c[0] for c in GRIDDING_CASES])
def test_both_griddings_give_the_same_output_and_survive_the_config(name, cls, kwargs, coils, rng):
    _, inputs = acquisition(rng, coils=coils)
    TOEPLITZ_KERNELS.clear()
    models = {gridding: cls(gridding=gridding, **kwargs) for gridding in ("sparse", "tfkbnufft")}
    models["sparse"](inputs)
    random_weights(models["sparse"], rng)
    models["tfkbnufft"](inputs)
    models["tfkbnufft"].set_weights(models["sparse"].get_weights())
    outputs = {gridding: model(inputs).numpy() for gridding, model in models.items()}
    assert np.abs(outputs["sparse"]).max() > 0
    assert relative_error(outputs["sparse"], outputs["tfkbnufft"]) < 1e-4
    # Both griddings compute the same NUFFT: an independent check of the tfkbnufft model's
    # first operator, its density-compensated adjoint, against finufft.
    if cls is not GriddedPDNet:
        measurements, operator = models["tfkbnufft"].operator(inputs)
        assert operator.nufft.gridding == "tfkbnufft"
        assert relative_error(operator.adjoint(measurements).numpy()[0], adjoint_of(inputs)) < 1e-3
    for gridding, model in models.items():
        config = model.get_config()
        assert config["gridding"] == gridding
        restored = cls.from_config(json.loads(json.dumps(config)))
        assert restored.gridding == gridding and restored.get_config() == config
        # A config written before the argument existed loads with the default.
        legacy = {key: value for key, value in config.items() if key != "gridding"}
        assert cls.from_config(legacy).gridding == "sparse"


def test_toeplitz_kernel_cache_keeps_the_griddings_apart(rng, monkeypatch):
    from fastmri_zoo.physics import toeplitz as toeplitz_module

    griddings = []
    original = toeplitz_module.point_spread_function

    def recording(*args, **kwargs):
        griddings.append(kwargs.get("gridding", args[6] if len(args) > 6 else "sparse"))
        return original(*args, **kwargs)

    monkeypatch.setattr(toeplitz_module, "point_spread_function", recording)
    TOEPLITZ_KERNELS.clear()
    _, inputs = acquisition(rng)
    for gridding in ("sparse", "tfkbnufft", "sparse", "tfkbnufft"):
        NCPDNet(n_iter=1, n_filters=2, image_shape=(N, N), gridding=gridding)(inputs)
    assert griddings == ["sparse", "tfkbnufft"]


@pytest.mark.parametrize("cls", [NCPDNet, UNetAdjDcomp, GriddedPDNet])
@pytest.mark.parametrize("bad", ["finufft", "Sparse", None, 1])
def test_unknown_gridding_is_refused(cls, bad):
    with pytest.raises(ValueError, match=r"gridding: expected one of \['sparse', 'tfkbnufft'\].*got"):
        cls(gridding=bad)


@pytest.mark.parametrize("coils", [None, 2], ids=["single", "multicoil"])
def test_eager_inference_runs_one_traced_graph_with_the_cached_kernel(coils, rng, monkeypatch):
    """Eagerly (inference, Toeplitz on), the kernel is computed once per trajectory and fed to a traced graph:
    the same output as the op-by-op loop, and a graph given the kernel computes no point-spread function."""
    from fastmri_zoo.models.unrolled import UnrolledModel
    from fastmri_zoo.physics import toeplitz as toeplitz_module
    from fastmri_zoo.physics.acquisition import TOEPLITZ_KERNEL

    calls = []
    original = toeplitz_module.point_spread_function

    def recording(*args, **kwargs):
        calls.append(tf.executing_eagerly())
        return original(*args, **kwargs)

    monkeypatch.setattr(toeplitz_module, "point_spread_function", recording)
    TOEPLITZ_KERNELS.clear()
    _, inputs = acquisition(rng, coils=coils)
    kwargs = dict(n_iter=2, n_primal=2, n_filters=4, multicoil=coils is not None)
    if coils is None:
        kwargs["image_shape"] = (N, N)
    model = NCPDNet(**kwargs)
    model(inputs)
    random_weights(model, rng)
    first, second = model(inputs).numpy(), model(inputs).numpy()
    assert calls == [True]  # one eager kernel for the trajectory, none in the traced graph
    op_by_op = UnrolledModel.call(model, {key: tf.constant(value) for key, value in inputs.items()}).numpy()
    np.testing.assert_allclose(first, op_by_op, rtol=1e-5, atol=1e-5 * np.abs(op_by_op).max())
    np.testing.assert_array_equal(first, second)
    (kernel,) = TOEPLITZ_KERNELS.entries.values()
    graph = tf.function(lambda given: model(given))
    calls.clear()
    given = graph({**inputs, TOEPLITZ_KERNEL: kernel}).numpy()
    np.testing.assert_allclose(given, first, rtol=1e-5, atol=1e-5 * np.abs(first).max())
    assert calls == []
