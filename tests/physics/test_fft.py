"""The pruned FFTs of zero-padded images (``padded_fft``, ``cropped_ifft``) against numpy's full transforms."""

import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.physics.fft import IMAGE_LAYOUT, SPECTRUM_LAYOUT, cropped_ifft, padded_fft, to_layout
from tests.conftest import crandn

CASES = {
    "2d_double": ((6, 5), (12, 10)),
    "2d_one_axis_unpadded": ((4, 6), (4, 12)),
    "3d_double": ((3, 4, 5), (6, 8, 10)),
    "3d_odd_grid": ((2, 3, 4), (5, 7, 9)),
}


def relative_error(got, expected):
    return np.linalg.norm(np.asarray(got) - expected) / np.linalg.norm(expected)


def zero_padded(x, grid):
    padded = np.zeros(x.shape[: x.ndim - len(grid)] + tuple(grid), x.dtype)
    padded[(Ellipsis,) + tuple(slice(0, n) for n in x.shape[-len(grid):])] = x
    return padded


@pytest.mark.parametrize("layout", [IMAGE_LAYOUT, SPECTRUM_LAYOUT])
@pytest.mark.parametrize("name", list(CASES))
def test_padded_fft_is_the_fft_of_the_zero_padded_image(name, layout, rng):
    shape, grid = CASES[name]
    x = crandn(rng, (2, 3) + shape)  # batch and coil axes in front
    axes = tuple(range(-len(shape), 0))
    expected = np.fft.fftn(zero_padded(x, grid).astype(np.complex128), axes=axes)
    got = padded_fft(x, grid, layout)
    # The spectrum layout rolls the spatial axes left by one: (H, W) -> (W, H), (D, H, W) -> (H, W, D).
    rolled = grid if layout == IMAGE_LAYOUT else grid[1:] + grid[:1]
    assert tuple(got.shape) == (2, 3) + rolled
    assert relative_error(to_layout(got, len(shape), IMAGE_LAYOUT, current=layout), expected) < 1e-6
    if layout == SPECTRUM_LAYOUT:
        assert relative_error(got, np.moveaxis(expected, -len(shape), -1)) < 1e-6


@pytest.mark.parametrize("layout", [IMAGE_LAYOUT, SPECTRUM_LAYOUT])
@pytest.mark.parametrize("name", list(CASES))
def test_cropped_ifft_is_the_crop_of_the_inverse_fft(name, layout, rng):
    shape, grid = CASES[name]
    spectrum = crandn(rng, (2,) + grid)
    axes = tuple(range(-len(shape), 0))
    expected = np.fft.ifftn(spectrum.astype(np.complex128), axes=axes)[(Ellipsis,) + tuple(slice(0, n) for n in shape)]
    stored = to_layout(spectrum, len(shape), layout)
    got = cropped_ifft(stored, shape, layout)
    assert tuple(got.shape) == (2,) + shape
    assert relative_error(got, expected) < 1e-6


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_and_graph_with_unknown_sizes(name, rng):
    shape, grid = CASES[name]
    x = crandn(rng, (2,) + shape)
    np.testing.assert_allclose(cropped_ifft(padded_fft(x, grid, SPECTRUM_LAYOUT), shape, SPECTRUM_LAYOUT), x,
                               rtol=0, atol=1e-5)
    # Spatial sizes unknown when traced: the padding is computed at run time.
    spec = tf.TensorSpec((None,) * (1 + len(shape)), tf.complex64)
    traced = tf.function(lambda image: padded_fft(image, grid), input_signature=[spec])
    expected = np.fft.fftn(zero_padded(x, grid).astype(np.complex128), axes=tuple(range(-len(shape), 0)))
    assert relative_error(traced(x), expected) < 1e-6


def test_to_layout_and_bad_layout(rng):
    x = crandn(rng, (2, 3, 4, 5))
    spectrum = to_layout(x, 3, SPECTRUM_LAYOUT)
    np.testing.assert_array_equal(spectrum, np.moveaxis(x, 1, -1))
    np.testing.assert_array_equal(to_layout(spectrum, 3, IMAGE_LAYOUT, current=SPECTRUM_LAYOUT), x)
    with pytest.raises(ValueError, match="layout"):
        padded_fft(x, (6, 8, 10), "transposed")


@pytest.mark.parametrize("dtype", [np.complex64, np.float32])
@pytest.mark.parametrize("perm", [[0, 2, 3, 1], [3, 0, 1, 2], [2, 1, 0, 3]])
def test_transpose_of_complex_pairs_is_numpys_in_values_and_gradient(perm, dtype):
    from fastmri_zoo.physics.base import transpose

    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    weights = rng.standard_normal(np.transpose(x, perm).shape)
    if dtype == np.complex64:
        x = x + 1j * rng.standard_normal(x.shape).astype(np.float32)
        weights = weights + 1j * rng.standard_normal(weights.shape)
    x = tf.constant(x)
    weights = tf.constant(weights.astype(dtype))
    np.testing.assert_array_equal(transpose(x, perm).numpy(), np.transpose(x.numpy(), perm))
    traced = tf.function(lambda v: transpose(v, perm), input_signature=[tf.TensorSpec(None, x.dtype)])
    np.testing.assert_array_equal(traced(x).numpy(), np.transpose(x.numpy(), perm))
    # The gradient of Re<w, P x> is the inverse permutation of conj(w) (TensorFlow: of w itself, its convention
    # for complex gradients being d/d(conj x)), i.e. numpy's transpose back.
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.math.real(tf.reduce_sum(tf.cast(weights, x.dtype) * transpose(x, perm)))
    expected = np.transpose(np.conj(weights.numpy()) if dtype == np.complex64 else weights.numpy(), np.argsort(perm))
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), expected, rtol=1e-6)
