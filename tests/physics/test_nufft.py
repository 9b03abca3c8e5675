"""NUFFT, Toeplitz normal operator and non-Cartesian coil maps against exact references.

References: a dense NDFT written here in numpy (the convention of the module
docstring), finufft's type-2 / type-1 transforms, and ``fftc`` on a full grid.
"""

import finufft
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.physics import (
    NUFFT,
    ToeplitzNormal,
    estimate_sensitivity_maps_nufft,
    fftc,
    point_spread_function,
    radial_density,
)
from tests.conftest import crandn


def relative_error(got, expected):
    return np.linalg.norm(np.asarray(got) - expected) / np.linalg.norm(expected)


def ndft_matrix(traj, shape):
    """Dense (batch, nsamples, N) matrix of y_j = N^-1/2 sum_n x_n exp(-i k_j . (n - shape // 2))."""
    traj = np.asarray(traj, np.float64)
    if traj.ndim == 2:
        traj = traj[None]
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    phase = sum(traj[:, axis, :, None] * grids[axis].ravel() for axis in range(len(shape)))
    return np.exp(-1j * phase) / np.sqrt(np.prod(shape))


def apply_dense(matrix, x):
    """(batch, M, N) matrix times images (batch, *shape) -> (batch, M)."""
    return np.einsum("bjn,bn->bj", matrix, x.reshape(x.shape[0], -1))


def random_traj(rng, shape, batch, nsamples):
    return rng.uniform(-np.pi, np.pi, (batch, len(shape), nsamples)).astype(np.float32)


def radial_traj(num_spokes, samples_per_spoke):
    """(2, num_spokes * samples) diametric spokes, r_j = (j - S // 2) 2 pi / S."""
    angles = np.pi * np.arange(num_spokes) / num_spokes
    radii = (np.arange(samples_per_spoke) - samples_per_spoke // 2) * 2 * np.pi / samples_per_spoke
    traj = np.stack([np.outer(np.sin(angles), radii), np.outer(np.cos(angles), radii)])
    return traj.reshape(2, -1).astype(np.float32)


def unit_smaps(rng, batch, coils, shape):
    maps = crandn(rng, (batch, coils, *shape))
    return maps / np.sqrt((np.abs(maps) ** 2).sum(1, keepdims=True))


CASES = {
    "2d_single": ((16, 20), None),
    "2d_multicoil": ((16, 20), 3),
    "3d_single": ((8, 10, 12), None),
    "3d_multicoil": ((8, 10, 12), 2),
}


@pytest.fixture(params=list(CASES), ids=list(CASES))
def case(request, rng):
    shape, coils = CASES[request.param]
    traj = random_traj(rng, shape, 2, 300)
    smaps = None if coils is None else unit_smaps(rng, 2, coils, shape)
    return shape, traj, smaps


def dense_forward(traj, shape, smaps, x):
    matrix = ndft_matrix(traj, shape)
    if smaps is None:
        return apply_dense(matrix, x)
    coil_images = x[:, None] * smaps
    return np.stack([apply_dense(matrix, coil_images[:, c]) for c in range(smaps.shape[1])], 1)


def test_forward_matches_exact_ndft(case, rng):
    shape, traj, smaps = case
    x = crandn(rng, (2, *shape))
    got = NUFFT(traj, shape, smaps=smaps).forward(x).numpy()
    assert relative_error(got, dense_forward(traj, shape, smaps, x)) < 1e-3


def test_adjoint_matches_exact_ndft(case, rng):
    shape, traj, smaps = case
    yshape = (2, 300) if smaps is None else (2, smaps.shape[1], 300)
    y = crandn(rng, yshape)
    matrix = ndft_matrix(traj, shape)
    coil_y = y if smaps is not None else y[:, None]
    coil_images = np.einsum("bjn,bcj->bcn", matrix.conj(), coil_y).reshape(2, -1, *shape)
    expected = coil_images[:, 0] if smaps is None else (smaps.conj() * coil_images).sum(1)
    got = NUFFT(traj, shape, smaps=smaps).adjoint(y).numpy()
    assert relative_error(got, expected) < 1e-3


def test_adjointness(case, rng):
    shape, traj, smaps = case
    op = NUFFT(traj, shape, smaps=smaps)
    x = crandn(rng, (2, *shape))
    y = crandn(rng, op.forward(x).shape)
    lhs = np.vdot(y, op.forward(x).numpy())
    rhs = np.vdot(op.adjoint(y).numpy(), x)
    assert abs(lhs - rhs) / abs(lhs) < 1e-3


@pytest.mark.parametrize("shape", [(16, 20), (8, 10, 12)])
def test_forward_and_adjoint_match_finufft(shape, rng):
    # finufft: coordinates one array per image axis in image-axis order, modes
    # -N/2 .. N/2 - 1 along each axis (CMCL ordering), i.e. mode n - N // 2 at index n.
    traj = random_traj(rng, shape, 1, 400)
    coords = [traj[0, axis].astype(np.float64) for axis in range(len(shape))]
    x = crandn(rng, (1, *shape))
    y = crandn(rng, (1, 400))
    scale = 1 / np.sqrt(np.prod(shape))
    type2 = finufft.nufft2d2 if len(shape) == 2 else finufft.nufft3d2
    type1 = finufft.nufft2d1 if len(shape) == 2 else finufft.nufft3d1
    expected_y = type2(*coords, x[0].astype(np.complex128), isign=-1, eps=1e-9) * scale
    expected_x = type1(*coords, y[0].astype(np.complex128), shape, isign=1, eps=1e-9) * scale
    op = NUFFT(traj, shape)
    assert relative_error(op.forward(x).numpy()[0], expected_y) < 1e-3
    assert relative_error(op.adjoint(y).numpy()[0], expected_x) < 1e-3


@pytest.mark.parametrize("shape", [(16, 12), (15, 12), (6, 8, 5)])
def test_full_cartesian_grid_reproduces_fftc(shape, rng):
    axes = np.meshgrid(*[(np.arange(n) - n // 2) * 2 * np.pi / n for n in shape], indexing="ij")
    traj = np.stack([a.ravel() for a in axes]).astype(np.float32)
    x = crandn(rng, (2, *shape))
    op = NUFFT(traj, shape)
    expected = fftc(x, len(shape)).numpy().reshape(2, -1)
    assert relative_error(op.forward(x).numpy(), expected) < 1e-3
    assert relative_error(op.adjoint(expected).numpy(), x) < 1e-3


def test_linearity(rng):
    shape = (16, 16)
    op = NUFFT(random_traj(rng, shape, 1, 200)[0], shape, smaps=unit_smaps(rng, 1, 3, shape))
    x1, x2 = crandn(rng, (1, *shape)), crandn(rng, (1, *shape))
    a, b = np.complex64(0.7 - 1.3j), np.complex64(-2.1 + 0.4j)
    combined = op.forward(a * x1 + b * x2).numpy()
    separate = a * op.forward(x1).numpy() + b * op.forward(x2).numpy()
    assert relative_error(combined, separate) < 1e-5


def test_shared_trajectory_equals_per_example(rng):
    shape = (16, 16)
    traj = random_traj(rng, shape, 1, 200)
    x = crandn(rng, (3, *shape))
    shared = NUFFT(traj[0], shape).forward(x).numpy()
    tiled = NUFFT(np.repeat(traj, 3, axis=0), shape).forward(x).numpy()
    assert shared.shape == (3, 200)
    np.testing.assert_allclose(shared, tiled, rtol=0, atol=1e-5)


def test_gradient_is_adjoint_of_residual_and_matches_finite_difference(rng):
    shape = (12, 16)
    smaps = unit_smaps(rng, 2, 3, shape)
    traj = random_traj(rng, shape, 2, 250)
    op = NUFFT(traj, shape, smaps=smaps)
    x0, y = crandn(rng, (2, *shape)), crandn(rng, (2, 3, 250))

    def loss(x):
        residual = op.forward(x) - y
        return 0.5 * tf.reduce_sum(tf.math.real(residual * tf.math.conj(residual)))

    x = tf.Variable(x0)
    with tf.GradientTape() as tape:
        value = loss(x)
    grad = tape.gradient(value, x).numpy()
    # Analytic: A^H (A x - y), with A the dense NDFT.
    dense_residual = dense_forward(traj, shape, smaps, x0) - y
    coil_images = np.einsum("bjn,bcj->bcn", ndft_matrix(traj, shape).conj(), dense_residual).reshape(2, 3, *shape)
    assert relative_error(grad, (smaps.conj() * coil_images).sum(1)) < 1e-3
    # Finite difference of the real loss along a random complex direction: dL = Re<grad, v> t.
    direction = crandn(rng, (2, *shape))
    step = 1e-2
    plus = loss(tf.constant(x0 + step * direction)).numpy()
    minus = loss(tf.constant(x0 - step * direction)).numpy()
    numeric = (plus - minus) / (2 * step)
    assert abs(numeric - np.real(np.vdot(grad, direction))) / abs(numeric) < 1e-3


def test_normal_ignores_dcomp_and_the_dcomp_helpers_apply_it(rng):
    shape = (16, 12)
    traj = random_traj(rng, shape, 2, 300)
    dcomp = rng.uniform(0.1, 2.0, (2, 300)).astype(np.float32)
    smaps = unit_smaps(rng, 2, 2, shape)
    op = NUFFT(traj, shape, smaps=smaps, dcomp=dcomp)
    x, y = crandn(rng, (2, *shape)), crandn(rng, (2, 2, 300))
    matrix = ndft_matrix(traj, shape)

    def dense_adjoint(coil_kspace):
        images = np.einsum("bjn,bcj->bcn", matrix.conj(), coil_kspace).reshape(2, 2, *shape)
        return (smaps.conj() * images).sum(1)

    assert relative_error(op.adjoint_dcomp(y).numpy(), dense_adjoint(dcomp[:, None] * y)) < 1e-3
    expected_normal = dense_adjoint(dcomp[:, None] * dense_forward(traj, shape, smaps, x))
    assert relative_error(op.normal_dcomp(x).numpy(), expected_normal) < 1e-3
    # normal is A^H A whatever dcomp: the density-weighted normal belongs to DensityWeightedNUFFT.
    np.testing.assert_array_equal(op.normal(x).numpy(), op.adjoint(op.forward(x)).numpy())


TOEPLITZ_CASES = {
    "2d_single": ((16, 20), None),
    "2d_multicoil": ((16, 20), 3),
    "3d_single": ((8, 10, 12), None),
}


@pytest.mark.parametrize(
    "name",
    # 3D: the slowest case; the operator suite checks a 3D Toeplitz weighted NUFFT in the default suite
    [pytest.param(name, marks=pytest.mark.slow) if name.startswith("3d") else name for name in TOEPLITZ_CASES],
)
def test_toeplitz_normal_matches_explicit_and_exact(name, rng):
    shape, coils = TOEPLITZ_CASES[name]
    traj = random_traj(rng, shape, 2, 400)
    dcomp = rng.uniform(0.2, 1.5, (2, 400)).astype(np.float32)
    smaps = None if coils is None else unit_smaps(rng, 2, coils, shape)
    x = crandn(rng, (2, *shape))
    explicit = NUFFT(traj, shape, smaps=smaps, dcomp=dcomp).normal_dcomp(x).numpy()
    toeplitz = ToeplitzNormal(traj, shape, dcomp=dcomp, smaps=smaps)(x).numpy()
    assert relative_error(toeplitz, explicit) < 1e-3
    matrix = ndft_matrix(traj, shape)
    coil_images = x[:, None] if smaps is None else x[:, None] * smaps
    flat = coil_images.reshape(2, coil_images.shape[1], -1)
    exact = np.einsum("bjn,bj,bjm,bcm->bcn", matrix.conj(), dcomp, matrix, flat).reshape(coil_images.shape)
    exact = exact[:, 0] if smaps is None else (smaps.conj() * exact).sum(1)
    assert relative_error(toeplitz, exact) < 1e-3


@pytest.mark.parametrize("shape, coils", [((6, 5), 2), ((3, 4, 5), None)], ids=["2d_multicoil", "3d_single"])
def test_toeplitz_is_the_padded_circular_convolution_with_its_kernel(shape, coils, rng):
    """T x = sum_c conj(S_c) crop(ifftn(fftn(pad(S_c x)) * kernel)) in numpy, to float32 rounding: the pruned
    FFT pair and the kernel's own axis order change nothing; ``from_kernel`` gives the same operator."""
    traj = random_traj(rng, shape, 2, 60)
    dcomp = rng.uniform(0.2, 1.5, (2, 60)).astype(np.float32)
    smaps = unit_smaps(rng, 2, coils or 1, shape)
    x = crandn(rng, (2, *shape))
    operator = ToeplitzNormal(traj, shape, dcomp=dcomp, smaps=smaps)
    kernel = operator.kernel.numpy().astype(np.complex128)
    double = tuple(2 * n for n in shape)
    padded = np.zeros((2, smaps.shape[1]) + double, np.complex128)
    padded[(Ellipsis,) + tuple(slice(0, n) for n in shape)] = x[:, None] * smaps
    axes = tuple(range(-len(shape), 0))
    filtered = np.fft.ifftn(np.fft.fftn(padded, axes=axes) * kernel[:, None], axes=axes)
    expected = (smaps.conj() * filtered[(Ellipsis,) + tuple(slice(0, n) for n in shape)]).sum(1)
    assert relative_error(operator(x), expected) < 1e-5
    again = ToeplitzNormal.from_kernel(operator.kernel, shape, smaps=smaps)
    np.testing.assert_array_equal(again(x).numpy(), operator(x).numpy())


def test_point_spread_function_is_the_weighted_sum_of_exponentials(rng):
    shape = (6, 8)
    traj = random_traj(rng, shape, 1, 50)[0]
    dcomp = rng.uniform(0.5, 1.0, 50).astype(np.float32)
    psf = point_spread_function(traj, shape, dcomp).numpy()[0]
    m = np.meshgrid(*[np.arange(-n, n) for n in shape], indexing="ij")
    expected = np.einsum("j,jab->ab", dcomp, np.exp(1j * (traj[0][:, None, None] * m[0] + traj[1][:, None, None] * m[1])))
    assert relative_error(psf, expected) < 1e-3


def test_toeplitz_standalone_single_coil_shared_trajectory(rng):
    shape = (12, 12)
    traj = random_traj(rng, shape, 1, 200)[0]
    x = crandn(rng, (3, *shape))
    expected = NUFFT(traj, shape).normal(x).numpy()
    assert relative_error(ToeplitzNormal(traj, shape)(x).numpy(), expected) < 1e-3


def test_works_in_tf_function(rng):
    shape = (12, 16)
    smaps = unit_smaps(rng, 2, 2, shape)
    traj = random_traj(rng, shape, 2, 200)
    x = crandn(rng, (2, *shape))
    eager = NUFFT(traj, shape, smaps=smaps).normal(x).numpy()

    @tf.function
    def traced(image, trajectory, maps):
        return NUFFT(trajectory, shape, smaps=maps).normal(image)

    assert relative_error(traced(x, traj, smaps).numpy(), eager) < 1e-4
    toeplitz = tf.function(lambda image: ToeplitzNormal(traj, shape, smaps=smaps)(image))
    assert relative_error(toeplitz(x).numpy(), eager) < 1e-3


def test_works_in_tf_data_map(rng):
    shape = (12, 16)
    traj = random_traj(rng, shape, 3, 150)
    images = crandn(rng, (3, *shape))

    def simulate(image, trajectory):
        return NUFFT(trajectory, shape).forward(image[None])[0]

    dataset = tf.data.Dataset.from_tensor_slices((images, traj)).map(simulate).batch(3)
    got = next(iter(dataset)).numpy()
    assert relative_error(got, apply_dense(ndft_matrix(traj, shape), images)) < 1e-3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"traj": np.full((2, 10), 3.3, np.float32)}, r"traj: expected values in \[-3.14"),
        ({"traj": np.zeros((2, 10), np.float32), "image_shape": (4, 8, 8)}, r"traj: expected .*ndim = 3 coordinates"),
        ({"traj": np.zeros((2, 2, 2, 10), np.float32)}, "traj: expected a 2 or 3-dimensional"),
        ({"traj": np.zeros((2, 10), np.complex64)}, "traj: expected real"),
        ({"dcomp": np.ones(11, np.float32)}, "dcomp has 11 samples but traj has 10"),
        ({"smaps": np.ones((1, 2, 8, 9), np.complex64)}, "smaps: expected spatial shape"),
        ({"image_shape": (8,)}, "image_shape: expected 2 or 3"),
    ],
)
def test_bad_construction_raises(kwargs, message):
    arguments = {"traj": np.zeros((2, 10), np.float32), "image_shape": (8, 8)} | kwargs
    with pytest.raises(ValueError, match=message):
        NUFFT(**arguments)


def test_bad_call_inputs_raise(rng):
    shape = (8, 8)
    traj = random_traj(rng, shape, 1, 10)[0]
    multicoil = NUFFT(traj, shape, smaps=unit_smaps(rng, 1, 3, shape))
    with pytest.raises(ValueError, match="kspace has 4 coils but smaps has 3"):
        multicoil.adjoint(crandn(rng, (1, 4, 10)))
    with pytest.raises(ValueError, match="kspace has 12 samples but traj has 10"):
        multicoil.adjoint(crandn(rng, (1, 3, 12)))
    with pytest.raises(ValueError, match=r"x: expected spatial shape \(8, 8\)"):
        multicoil.forward(crandn(rng, (1, 8, 9)))
    with pytest.raises(ValueError, match="x: expected complex"):
        multicoil.forward(np.ones((1, 8, 8), np.float32))
    batched = NUFFT(random_traj(rng, shape, 2, 10), shape)
    with pytest.raises(ValueError, match="x has batch size 3 but traj has 2"):
        batched.forward(crandn(rng, (3, *shape)))


def smooth_object(shape):
    """A smooth complex image supported in the central disc, complex64 (1, *shape)."""
    y, x = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    n = shape[0]
    blob = np.exp(-((x - 2) ** 2 + (y + 1) ** 2) / (2 * (n / 6) ** 2))
    return (blob * np.exp(1j * 0.05 * x)).astype(np.complex64)[None]


def test_nufft_sensitivity_maps_recover_smooth_maps(rng):
    shape = (32, 32)
    y, x = np.meshgrid(*[(np.arange(n) - n // 2) / n for n in shape], indexing="ij")
    centres = [(-0.5, -0.5), (-0.5, 0.5), (0.5, 0.0), (0.0, 0.6)]
    maps = np.stack([np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 0.5) * np.exp(1j * (cx * x - cy * y) * 2) for cy, cx in centres])
    maps = (maps / np.sqrt((np.abs(maps) ** 2).sum(0)))[None].astype(np.complex64)
    image = smooth_object(shape)
    traj = radial_traj(64, 64)
    dcomp = radial_density(traj, shape)
    kspace = NUFFT(traj, shape, smaps=maps).forward(image)
    estimate = estimate_sensitivity_maps_nufft(kspace, traj, shape, dcomp=dcomp, center_radius=0.4 * np.pi).numpy()
    # RSS normalisation leaves one phase common to all coils: remove it before comparing.
    common = np.sum(estimate * maps.conj(), axis=1, keepdims=True)
    aligned = estimate * np.exp(-1j * np.angle(common))
    inside = (np.abs(image[0]) > 0.3 * np.abs(image).max())[None, None]
    error = np.linalg.norm((aligned - maps) * inside) / np.linalg.norm(maps * inside)
    assert error < 0.05
    assert np.allclose((np.abs(estimate) ** 2).sum(1)[inside[:, 0]], 1, atol=1e-4)


def test_nufft_sensitivity_maps_bad_radius(rng):
    traj = radial_traj(8, 8)
    with pytest.raises(ValueError, match="center_radius"):
        estimate_sensitivity_maps_nufft(crandn(rng, (1, 2, 64)), traj, (8, 8), center_radius=0.0)
