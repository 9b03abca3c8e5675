"""3D Cartesian models on multi-slice files: ``reconstruct_cartesian`` cuts the slices into slabs of the
depth the model was trained on and gives each slab's 3D k-space (the centred FFT of its slices' k-space
along the slice axis) to the network; checked against the network run on numpy's 3D FFT of each slab's
images, assembled by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fastmri_zoo.data.preprocessing import CartesianPreprocessor
from fastmri_zoo.inference import reconstruct_cartesian, slab_starts

AXES2, AXES3 = (-2, -1), (-3, -2, -1)


def fftc(x, axes):
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(x, axes=axes), axes=axes, norm="ortho"), axes=axes)


def ifftc(x, axes):
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(x, axes=axes), axes=axes, norm="ortho"), axes=axes)


def test_slab_starts_cover_the_slices():
    assert slab_starts(10, 4) == [0, 4, 6]
    assert slab_starts(8, 4) == [0, 4]
    assert slab_starts(4, 4) == [0]
    assert slab_starts(3, 4) == [0]
    assert slab_starts(9, 8) == [0, 1]


@pytest.fixture(scope="module")
def model():
    from fastmri_zoo.models import IRIM

    import keras

    keras.utils.set_random_seed(3)
    network = IRIM(n_iter=2, ndim=3, state_channels=6, hidden_channels=4, downsampling=[1, 2])
    network.build(None)
    network.preprocessor = CartesianPreprocessor(ndim=3, depth=4)
    return network


def test_slabs_match_the_network_on_numpy_3d_kspace(model, rng):
    import tensorflow as tf

    slices, height, width, depth = 10, 16, 12, 4
    images = (rng.standard_normal((slices, height, width)) + 1j * rng.standard_normal((slices, height, width)))
    images = images.astype(np.complex64)
    mask = np.zeros((1, width), np.float32)
    mask[0, [0, 3, 5, 6, 7, 10]] = 1
    kspace = (fftc(images, AXES2) * mask).astype(np.complex64)  # a multi-slice file, one column mask

    got, zero_filled = reconstruct_cartesian(model, kspace, mask, None, batch_size=2, progress=False)

    want = np.zeros((slices, height, width), np.float32)
    for start, keep in ((0, slice(0, 4)), (4, slice(0, 4)), (6, slice(2, 4))):  # slices 8, 9 from the slab at 6
        slab = fftc(images[start:start + depth], AXES3) * mask
        scale = np.abs(ifftc(slab, AXES3)).max()
        inputs = {"kspace": tf.constant((slab / scale)[None].astype(np.complex64)),
                  "mask": tf.constant(mask.reshape(1, 1, 1, width))}
        image = np.abs(model(inputs).numpy()[0]) * scale
        want[start + keep.start:start + keep.stop] = image[keep]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * want.max())
    np.testing.assert_allclose(zero_filled, np.abs(ifftc(kspace, AXES2)), rtol=1e-4, atol=1e-5)
    assert np.abs(got - np.abs(ifftc(kspace, AXES2))).max() > 1e-3  # the network did something

    # a file thinner than a slab: zero slices after it
    thin, _ = reconstruct_cartesian(model, kspace[:3], mask, None, progress=False)
    slab = fftc(np.concatenate([images[:3], np.zeros((1, height, width), np.complex64)]), AXES3) * mask
    scale = np.abs(ifftc(slab, AXES3)).max()
    inputs = {"kspace": tf.constant((slab / scale)[None].astype(np.complex64)),
              "mask": tf.constant(mask.reshape(1, 1, 1, width))}
    np.testing.assert_allclose(thin, np.abs(model(inputs).numpy()[0, :3]) * scale, rtol=1e-4, atol=1e-5 * scale)


def test_slab_errors_are_named(model, rng):
    kspace = (rng.standard_normal((8, 16, 12)) + 0j).astype(np.complex64)
    masks = np.zeros((8, 1, 12), np.float32)
    masks[:, :, 4:8] = 1
    masks[3, :, 0] = 1
    with pytest.raises(ValueError, match=r"mask: IRIM reconstructs 3D slabs and takes one column mask shared by every slice .* got 8 different column masks"):
        reconstruct_cartesian(model, kspace, masks, None, progress=False)
    with pytest.raises(ValueError, match=r"got a 2D pattern \(16, 12\)"):
        reconstruct_cartesian(model, kspace, np.ones((16, 12), np.float32), 4, progress=False)
    model.preprocessor = CartesianPreprocessor(ndim=3)
    try:
        with pytest.raises(ValueError, match=r"preprocessor: IRIM is a 3D model whose preprocessor records no slab depth"):
            reconstruct_cartesian(model, kspace, masks[:1], None, progress=False)
    finally:
        model.preprocessor = CartesianPreprocessor(ndim=3, depth=4)


def test_files_are_reconstructed_in_slabs_and_per_slice_masks_refused(model, rng, tmp_path):
    import h5py

    from fastmri_zoo.inference import reconstruct_file

    slices, height, width = 6, 16, 12
    images = np.abs(rng.standard_normal((slices, height, width))).astype(np.complex64)
    mask = np.zeros((1, width), np.float32)
    mask[0, [0, 2, 4, 5, 6, 7, 9]] = 1  # the centre (W // 2 = 6) sampled
    undersampled = (fftc(images, AXES2) * mask).astype(np.complex64)
    path = tmp_path / "volume.h5"
    with h5py.File(path, "w") as handle:
        handle["kspace"] = undersampled
        handle["reconstruction_esc"] = np.abs(images).astype(np.float32)
    result = reconstruct_file(model, path, tmp_path / "out.h5", progress=False)
    want, zero_filled = reconstruct_cartesian(model, undersampled, mask, None, progress=False)
    np.testing.assert_allclose(result.reconstruction, want, rtol=1e-5, atol=1e-6 * want.max())
    np.testing.assert_allclose(result.zero_filled, zero_filled, rtol=1e-5, atol=1e-6)
    assert set(result.metrics) == {"network", "zero-filled"}
    with h5py.File(tmp_path / "out.h5", "r") as handle:
        np.testing.assert_allclose(handle["reconstruction"][()], want, rtol=1e-5, atol=1e-6 * want.max())

    per_slice = undersampled.copy()
    per_slice[2, :, 1] = fftc(images, AXES2)[2, :, 1]  # slice 2 has one more column
    bad = tmp_path / "per_slice.h5"
    with h5py.File(bad, "w") as handle:
        handle["kspace"] = per_slice
    with pytest.raises(ValueError, match=r"per_slice.h5: IRIM reconstructs 3D slabs and takes one column mask shared"):
        reconstruct_file(model, bad, progress=False)
