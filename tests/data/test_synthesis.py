"""Training slices synthesised from magnitude volumes (data.synthesis, data.synthesized_cartesian_dataset)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastmri_zoo.data import Synthesis, load_volumes, synthesized_cartesian_dataset
from fastmri_zoo.data.synthesis import SliceSynthesizer
from fastmri_zoo.training import load_recipe
from fastmri_zoo.training.fit import training_data


def _volume(shape=(6, 10, 12), seed=0):
    """A volume whose every slice differs (no symmetry), values in [0.5, 1.5]."""
    return 0.5 + np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


def _dihedral(image):
    out = []
    for transposed in (image, image.T):
        for flipped in (transposed, transposed[::-1], transposed[:, ::-1], transposed[::-1, ::-1]):
            out.append(np.ascontiguousarray(flipped))
    return out


@pytest.fixture
def volumes_folder(tmp_path):
    folder = tmp_path / "volumes"
    folder.mkdir()
    for i in range(2):
        np.save(folder / f"v{i}.npy", _volume((12, 16, 16), seed=i) * (i + 2))
    return folder


def test_options_are_checked():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['zooom'\]"):
        Synthesis.from_dict({"zooom": [1, 2]})
    with pytest.raises(ValueError, match="synthesis.zoom"):
        Synthesis(zoom=(2.0, 1.0))
    with pytest.raises(ValueError, match="synthesis.orientations"):
        Synthesis(orientations=(0, 3))
    with pytest.raises(ValueError, match="synthesis.snr_db"):
        Synthesis(snr_db=(40, 20))
    with pytest.raises(ValueError, match="synthesis.size"):
        Synthesis(size=(4, 128))
    assert Synthesis.from_dict(Synthesis(zoom=(0.8, 1.6)).to_dict()) == Synthesis(zoom=(0.8, 1.6))
    with pytest.raises(ValueError, match="synthesis.depth"):
        Synthesis(depth=0)


def test_slices_of_one_orientation_without_augmentation_are_the_volume_slices():
    volume = _volume((9, 10, 12))
    for axis, size in ((0, (10, 12)), (1, (9, 12)), (2, (9, 10))):
        synthesizer = SliceSynthesizer([volume], Synthesis(size=size, orientations=(axis,), min_signal=0.0))
        rng = np.random.default_rng(axis)
        for _ in range(4):
            coil_images, reference = synthesizer.draw(rng, augment=False)
            slices = [np.take(volume, i, axis=axis) for i in range(volume.shape[axis])]
            matches = [np.allclose(reference, s / s.max(), atol=1e-6) for s in slices]
            assert sum(matches) == 1
            # one coil of map 1: the coil image is the reference times a unit-modulus phase
            np.testing.assert_allclose(np.abs(coil_images[0]), reference, atol=1e-6)


def test_slices_without_signal_are_never_drawn_even_at_min_signal_zero():
    """A volume zero on its outer slices (every orientation): with min_signal 0 those slices were candidates and gave
    all-zero references (an infinite NMSE); every example now has the normalised peak 1 of a slice with signal."""
    volume = np.zeros((8, 12, 12), np.float32)
    volume[2:6, 3:9, 3:9] = _volume((4, 6, 6))
    synthesizer = SliceSynthesizer([volume], Synthesis(size=(12, 12), min_signal=0.0, zoom=(0.8, 1.6)))
    rng = np.random.default_rng(3)
    for augment in (False, True):
        peaks = [synthesizer.draw(rng, augment=augment)[1].max() for _ in range(60)]
        np.testing.assert_allclose(peaks, 1.0, rtol=1e-6)


def test_crops_without_signal_are_drawn_again(monkeypatch):
    """Signal in one 16 x 16 corner of 64 x 64 slices, 32 x 32 random crops: about 3 crops in 4 miss it. Each example
    is drawn again until its crop holds signal, and with a single attempt allowed the synthesizer says so."""
    from fastmri_zoo.data import synthesis

    volume = np.zeros((2, 64, 64), np.float32)
    volume[:, :16, :16] = _volume((2, 16, 16))
    options = Synthesis(size=(32, 32), orientations=(0,), dihedral=False, min_signal=0.0)
    synthesizer = SliceSynthesizer([volume], options)
    rng = np.random.default_rng(4)
    references = [synthesizer.draw(rng)[1] for _ in range(40)]
    np.testing.assert_allclose([r.max() for r in references], 1.0, rtol=1e-6)
    assert all(r[:16, :16].any() for r in references)  # the crop holds part of the corner block
    monkeypatch.setattr(synthesis, "DRAW_ATTEMPTS", 1)
    with pytest.raises(RuntimeError, match=r"1 draws in a row gave crops without signal.*synthesis.size \[32, 32\]"):
        for _ in range(40):
            synthesizer.draw(rng)


def test_a_volume_without_signal_is_refused():
    with pytest.raises(ValueError, match=r"volumes\[1\]: no slice across axis 0 has signal"):
        SliceSynthesizer([_volume((4, 8, 8)), np.zeros((4, 8, 8), np.float32)], Synthesis(size=(8, 8), min_signal=0.0))


def _ramp_volume(shape, axis, rng):
    """Slice k (along ``axis``) is (k + 1) times one positive image: which slices a slab holds, and whether
    they were transformed alike, shows in the ratios of its slices."""
    base = rng.uniform(0.2, 1.0, [n for a, n in enumerate(shape) if a != axis]).astype(np.float32)
    ramp = np.arange(1, shape[axis] + 1, dtype=np.float32)
    return np.moveaxis(ramp[:, None, None] * base[None], 0, axis), base


@pytest.mark.parametrize("augment", [False, True])
def test_slabs_are_consecutive_slices_transformed_alike(augment):
    """depth 5: (coils, 5, H, W) and (5, H, W); slice j of the slab is slice k0 + j of the volume (ratio
    (k0 + j + 1) / (k0 + 1) to the first at every pixel), with one flip, zoom and crop for all slices."""
    rng = np.random.default_rng(4)
    for axis in (0, 1, 2):
        shape = [12, 14, 16]
        volume, _ = _ramp_volume(shape, axis, rng)
        size = (10, 10)
        synthesis = Synthesis(size=size, orientations=(axis,), min_signal=0.0, depth=5, coils=3, zoom=(0.8, 1.4))
        synthesizer = SliceSynthesizer([volume], synthesis)
        for _ in range(3):
            coil_images, reference = synthesizer.draw(rng, augment=augment)
            assert coil_images.shape == (3, 5) + size and reference.shape == (5,) + size
            support = reference[0] > 1e-3 * reference[0].max()
            ratios = reference[:, support] / reference[0][support]
            k0 = round(1 / (ratios[1].mean() - 1)) - 1  # (k0 + 2) / (k0 + 1) = 1 + 1 / (k0 + 1)
            assert 0 <= k0 <= shape[axis] - 5
            expected = (k0 + 1 + np.arange(5)) / (k0 + 1)
            np.testing.assert_allclose(ratios, np.broadcast_to(expected[:, None], ratios.shape), rtol=1e-4)
            assert reference.max() == pytest.approx(1.0)
            # noiseless coil images of maps normalised to a unit sum of squares: their RSS is the reference
            np.testing.assert_allclose(np.sqrt((np.abs(coil_images) ** 2).sum(0)), reference, atol=1e-5)


def test_slabs_fit_in_the_volume_and_pad_past_a_thin_one():
    rng = np.random.default_rng(6)
    volume, base = _ramp_volume([5, 8, 8], 0, rng)
    synthesizer = SliceSynthesizer([volume], Synthesis(size=(8, 8), orientations=(0,), min_signal=0.0, depth=5))
    for _ in range(4):  # whatever slice is drawn, the slab is shifted to the volume's 5 slices
        _, reference = synthesizer.draw(rng, augment=False)
        np.testing.assert_allclose(reference, volume / volume.max(), atol=1e-6)
    thick = SliceSynthesizer([volume], Synthesis(size=(8, 8), orientations=(0,), min_signal=0.0, depth=7))
    _, reference = thick.draw(rng, augment=False)
    np.testing.assert_allclose(reference[:5], volume / volume.max(), atol=1e-6)
    assert not reference[5:].any()


def test_slab_examples_are_3d_fourier_data_of_the_drawn_slab(volumes_folder):
    """depth 4, single-coil: example i is the slab the synthesiser draws from (seed, i), its 3D centred FFT
    (numpy's fftn) masked by one column mask drawn next from the same generator, divided by the peak of
    its zero-filled magnitude; the target is the slab's reference over the same scale."""
    from fastmri_zoo.data.synthesis import load_volumes
    from fastmri_zoo.sampling import create_mask_func

    options = Synthesis(size=(16, 16), min_signal=0.0, val_examples=3, depth=4)
    dataset = synthesized_cartesian_dataset(volumes_folder, options, seed=5, batch_size=1, mask_type="random",
                                            center_fractions=0.25, accelerations=2)
    synthesizer = SliceSynthesizer(load_volumes(volumes_folder), options)
    axes = (-3, -2, -1)
    for index, (x, y) in enumerate(dataset):
        assert x["kspace"].shape == (1, 4, 16, 16) and x["mask"].shape == (1, 1, 1, 16) and y.shape == (1, 4, 16, 16)
        rng = np.random.default_rng((5, index))
        coil_images, reference = synthesizer.draw(rng, augment=False)
        mask, _ = create_mask_func("random", 0.25, 2)((16, 16), seed=int(rng.integers(2**31)))
        mask = np.asarray(mask, np.float32).reshape(16)
        kspace = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(coil_images[0], axes=axes), axes=axes, norm="ortho"),
                                 axes=axes) * mask
        zero_filled = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(kspace, axes=axes), axes=axes, norm="ortho"),
                                      axes=axes)
        scale = np.abs(zero_filled).max()
        np.testing.assert_array_equal(x["mask"].numpy()[0, 0, 0], mask)
        np.testing.assert_allclose(x["kspace"].numpy()[0], kspace / scale, atol=1e-5 * np.abs(kspace).max() / scale)
        np.testing.assert_allclose(y.numpy()[0], reference / scale, rtol=1e-4, atol=1e-6)


def test_multicoil_pipelines_refuse_slabs(volumes_folder):
    with pytest.raises(ValueError, match="synthesis.depth: this pipeline makes 2D examples"):
        synthesized_cartesian_dataset(volumes_folder, Synthesis(size=(16, 16), depth=3, coils=4), multicoil=True,
                                      seed=0)


def test_augmented_slices_are_flips_and_rotations_of_volume_slices():
    volume = _volume((8, 8, 8))
    synthesizer = SliceSynthesizer([volume], Synthesis(size=(8, 8), min_signal=0.0))
    candidates = [t / t.max() for axis in range(3) for i in range(8) for t in _dihedral(np.take(volume, i, axis))]
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(40):
        _, reference = synthesizer.draw(rng, augment=True)
        found = [j for j, c in enumerate(candidates) if np.allclose(reference, c, atol=1e-6)]
        assert len(found) == 1
        seen.add(found[0] % 8)  # which of the 8 transforms
    assert len(seen) >= 6


def test_zoom_scales_the_object_and_padding_centres_it():
    volume = np.zeros((3, 16, 16), np.float32)
    volume[:, 6:10, 6:10] = 1.0  # a 4 x 4 square
    options = Synthesis(size=(32, 32), orientations=(0,), dihedral=False, zoom=(2.0, 2.0), min_signal=0.0)
    _, reference = SliceSynthesizer([volume], options).draw(np.random.default_rng(0), augment=True)
    rows = np.flatnonzero(reference.max(axis=1) > 0.5)
    assert 7 <= len(rows) <= 9  # about twice 4 pixels
    _, plain = SliceSynthesizer([volume], options).draw(np.random.default_rng(0), augment=False)
    assert np.flatnonzero(plain.max(axis=1) > 0.5).tolist() == list(range(14, 18))  # 16 -> 32: padded by 8


def test_noise_has_the_requested_snr_and_the_reference_stays_noiseless():
    volume = _volume((4, 64, 64))
    noisy = SliceSynthesizer([volume], Synthesis(size=(64, 64), coils=4, snr_db=(30, 30), noise_probability=1.0))
    clean = SliceSynthesizer([volume], Synthesis(size=(64, 64), coils=4, snr_db=(30, 30), noise_probability=0.0))
    a, ref_a = noisy.draw(np.random.default_rng(5))
    b, ref_b = clean.draw(np.random.default_rng(5))
    np.testing.assert_array_equal(ref_a, ref_b)
    noise = a.astype(np.complex128) - b
    snr = 10 * np.log10(np.mean(np.abs(b) ** 2) / np.mean(np.abs(noise) ** 2))
    assert abs(snr - 30.0) < 0.3
    # normalised coil maps: the RSS of the noiseless coil images is the reference
    np.testing.assert_allclose(np.sqrt(np.sum(np.abs(b) ** 2, axis=0)), ref_b, atol=1e-5)


def test_rss_reference_keeps_the_noise_floor_of_a_scanner_reference():
    from scipy.special import gammaln

    volume = np.zeros((3, 64, 64), np.float32)
    volume[:, 16:48, 16:48] = 1.0  # background outside the square: the reference there is noise only
    options = dict(size=(64, 64), orientations=(0,), dihedral=False, coils=4, snr_db=(20, 20), min_signal=0.0)
    noisy = SliceSynthesizer([volume], Synthesis(noise_probability=1.0, reference="rss", **options))
    clean = SliceSynthesizer([volume], Synthesis(noise_probability=0.0, reference="rss", **options))
    a, ref_a = noisy.draw(np.random.default_rng(2), augment=False)
    b, ref_b = clean.draw(np.random.default_rng(2), augment=False)
    np.testing.assert_allclose(ref_a, np.sqrt(np.sum(np.abs(a.astype(np.complex128)) ** 2, axis=0)), rtol=1e-5)
    np.testing.assert_allclose(ref_b, volume[0], atol=1e-5)  # noiseless: the RSS is the magnitude
    # outside the object, RSS of 4 coils of complex noise with E|n|^2 = sigma^2: sigma Gamma(4.5) / Gamma(4)
    sigma = np.sqrt(np.mean(np.abs(b.astype(np.complex128)) ** 2) / 10 ** 2.0)
    background = volume[0] == 0
    expected = sigma * np.exp(gammaln(4.5) - gammaln(4.0))
    assert abs(ref_a[background].mean() / expected - 1) < 0.02
    with pytest.raises(ValueError, match="synthesis.reference"):
        Synthesis(reference="clean")


def test_dataset_examples_are_masked_normalised_and_reproducible(volumes_folder):
    options = Synthesis(size=(16, 16), zoom=(0.8, 1.2), min_signal=0.0, val_examples=6)
    masks = dict(mask_type="random", center_fractions=0.25, accelerations=2)
    val = synthesized_cartesian_dataset(volumes_folder, options, seed=3, batch_size=4, **masks)
    first = [(x, y) for x, y in val]
    again = [(x, y) for x, y in synthesized_cartesian_dataset(volumes_folder, options, seed=3, batch_size=4, **masks)]
    assert [y.shape[0] for _, y in first] == [4, 2]
    for (x, y), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(y.numpy(), y2.numpy())
        np.testing.assert_array_equal(x["mask"].numpy(), x2["mask"].numpy())
    x, y = first[0]
    kspace, mask = x["kspace"].numpy(), x["mask"].numpy()
    assert kspace.shape == (4, 16, 16) and mask.shape == (4, 1, 16) and y.shape == (4, 16, 16)
    assert np.all(kspace[np.broadcast_to(mask == 0, kspace.shape)] == 0)
    zero_filled = np.abs(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"),
                                         axes=(-2, -1)))
    np.testing.assert_allclose(zero_filled.max(axis=(1, 2)), 1.0, rtol=1e-5)  # normalised by the zero-filled max
    train = synthesized_cartesian_dataset(volumes_folder, options, seed=None, batch_size=2, **masks)
    batches = [y.numpy() for _, y in train.take(3)]
    assert all(b.shape == (2, 16, 16) for b in batches)
    assert not np.array_equal(batches[0], batches[1])


def test_multicoil_examples_carry_coil_maps(volumes_folder):
    options = Synthesis(size=(16, 16), coils=3, min_signal=0.0, val_examples=2)
    x, y = next(iter(synthesized_cartesian_dataset(volumes_folder, options, seed=0, multicoil=True, batch_size=2,
                                                   center_fractions=0.25, accelerations=2)))
    assert x["kspace"].shape == (2, 3, 16, 16) and x["smaps"].shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="at least 2 coils"):
        synthesized_cartesian_dataset(volumes_folder, Synthesis(size=(16, 16)), seed=0, multicoil=True)


def test_load_volumes_refuses_empty_and_flat_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="found none"):
        load_volumes(tmp_path / "empty")
    (tmp_path / "flat").mkdir()
    np.save(tmp_path / "flat" / "zeros.npy", np.zeros((4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="zeros.npy: expected finite values with some signal"):
        load_volumes(tmp_path / "flat")


def test_recipe_synthesis_block_reaches_the_trainer(tmp_path, volumes_folder):
    recipe = {
        "model": {"class": "UNet", "kwargs": {"layers_n_channels": [4, 8]}},
        "data": {"folder": "", "train": "volumes", "val": "volumes",
                 "synthesis": {"size": [16, 16], "min_signal": 0.0, "val_examples": 3}},
        "acquisition": {"kind": "cartesian", "multicoil": False, "mask_type": "random",
                        "center_fraction": 0.25, "acceleration": 2},
        "training": {"steps": 2, "batch_size": 2},
    }
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    loaded = load_recipe(path)
    train, val = training_data(volumes_folder, volumes_folder, loaded.acquisition, batch_size=2,
                               synthesis=loaded.data["synthesis"])
    assert next(iter(train))[1].shape == (2, 16, 16)
    assert sum(y.shape[0] for _, y in val) == 3
    recipe["acquisition"] = {"kind": "noncartesian", "ndim": 3, "trajectory": "kooshball", "acceleration": 4}
    recipe["model"] = {"class": "NCPDNet", "kwargs": {"ndim": 3}}
    path.write_text(json.dumps(recipe))
    with pytest.raises(ValueError, match="data.synthesis: synthesis from volumes makes 2D slices"):
        load_recipe(path)
