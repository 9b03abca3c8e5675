"""One preprocessor per acquisition: numbers against numpy / finufft references, the same inputs
from the pipelines, the preprocessor by hand and inference, the preset record, and the grid check."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.data.h5 import read_fastmri_h5, write_fastmri_h5
from fastmri_zoo.data.pipelines import cartesian_dataset, noncartesian_dataset
from fastmri_zoo.data.preprocessing import (
    PREPROCESSOR_FILE,
    CartesianPreprocessor,
    NonCartesianPreprocessor,
    acs_width,
    derive_preprocessor,
    preprocessor_from_config,
)
from fastmri_zoo.inference import noncartesian_inputs, reconstruct_cartesian, reconstruct_file
from fastmri_zoo.sampling import radial_trajectory
from tests.conftest import crandn
from tests.data.test_pipelines import np_ifftc
from tests.test_inference_noncartesian import np_adjoint as np_nufft_adjoint
from tests.test_inference_noncartesian import np_forward as np_nufft_forward
from tests.test_inference_noncartesian import phantom, relative_error

H, W, COILS = 16, 12, 3


# ---------------------------------------------------------------------------- numpy references


def np_rss_normalize(images, eps=1e-6):
    """Each coil divided by the RSS over coils, zero where the RSS is below eps times its peak."""
    combined = np.sqrt((np.abs(images) ** 2).sum(0))
    inside = combined > eps * combined.max()
    return np.where(inside, images / np.where(inside, combined, 1), 0)


def np_cartesian(kspace, mask, num_low, multicoil):
    """(normalised masked k-space, scale, coil maps or None, zero-filled magnitude) of one slice."""
    masked = kspace * mask
    images = np_ifftc(masked)
    magnitude = np.sqrt((np.abs(images) ** 2).sum(0)) if multicoil else np.abs(images)
    scale = magnitude.max()
    smaps = None
    if multicoil:
        start = (kspace.shape[-1] - num_low + 1) // 2
        centre = np.zeros_like(masked)
        centre[..., start : start + num_low] = masked[..., start : start + num_low]
        smaps = np_rss_normalize(np_ifftc(centre / scale))
    return masked / scale, scale, smaps, magnitude


def column_mask(width, rng, num_low):
    mask = (rng.uniform(size=width) < 0.4).astype(np.float32)
    start = (width - num_low + 1) // 2
    mask[start : start + num_low] = 1
    return mask.reshape(1, width)


# ---------------------------------------------------------------------------- Cartesian


@pytest.mark.parametrize("multicoil", [True, False])
def test_cartesian_matches_numpy(rng, multicoil):
    shape = (2, COILS, H, W) if multicoil else (2, H, W)
    kspace = crandn(rng, shape).astype(np.complex64)
    mask = column_mask(W, rng, 4)
    preprocessor = CartesianPreprocessor(multicoil=multicoil)
    batched = preprocessor(kspace, mask, 4)
    for index in range(2):
        want_kspace, want_scale, want_smaps, want_zero_filled = np_cartesian(kspace[index], mask, 4, multicoil)
        one = preprocessor(kspace[index], mask, 4)  # no batch axis
        for got in (one, tuple(x[index] if not isinstance(x, dict) else {k: v[index] for k, v in x.items()}
                               for x in batched)):
            inputs, scale, zero_filled = got
            assert float(scale) == pytest.approx(want_scale, rel=1e-5)
            np.testing.assert_allclose(inputs["kspace"], want_kspace, atol=1e-5 * np.abs(want_kspace).max())
            np.testing.assert_array_equal(inputs["mask"], mask)
            np.testing.assert_allclose(zero_filled, want_zero_filled, rtol=1e-4, atol=1e-6 * want_scale)
            if multicoil:
                np.testing.assert_allclose(inputs["smaps"], want_smaps, atol=1e-5)
            else:
                assert "smaps" not in inputs


def test_cartesian_slabs_match_numpy_and_feed_the_3d_irim(rng):
    """ndim=3: a slab's 3D centred FFT, masked by columns shared by every row and slice, scaled by the peak
    of its 3D zero-filled magnitude (numpy's ifftn); the inputs fit the 3D i-RIM, whose zero-filled start
    is that image."""
    from fastmri_zoo.models import IRIM

    depth = 4
    axes = (-3, -2, -1)
    volume = crandn(rng, (2, depth, H, W)).astype(np.complex64)
    kspace = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(volume, axes=axes), axes=axes, norm="ortho"), axes=axes)
    mask = column_mask(W, rng, 4)
    preprocessor = CartesianPreprocessor(ndim=3)
    for given in (mask, mask[None]):  # (1, W) or (1, 1, W)
        inputs, scale, zero_filled = preprocessor(kspace, given)
        masked = kspace * mask[None, None]
        want = np.abs(np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(masked, axes=axes), axes=axes, norm="ortho"),
                                      axes=axes))
        want_scale = want.reshape(2, -1).max(1)
        np.testing.assert_allclose(scale, want_scale, rtol=1e-5)
        np.testing.assert_allclose(zero_filled, want, rtol=1e-4, atol=1e-6 * want_scale.max())
        np.testing.assert_allclose(inputs["kspace"], masked / want_scale[:, None, None, None],
                                   atol=1e-5 * np.abs(masked).max() / want_scale.min())
        assert inputs["mask"].shape == (2, 1, 1, W)
    one = preprocessor(kspace[0], mask)  # no batch axis
    assert one.inputs["kspace"].shape == (depth, H, W) and one.inputs["mask"].shape == (1, 1, W)
    model = IRIM(n_iter=1, ndim=3, state_channels=6, hidden_channels=4, downsampling=[1, 2])
    preprocessor.check_model(model)
    assert derive_preprocessor(model) == preprocessor
    model.build(None)
    for layer in model.image_nets[0].invertible_layers:  # zero residuals: the output is the zero-filled start
        layer.coupling.residual.up.gain.assign(np.zeros(layer.coupling.residual.up.gain.shape, np.float32))
    np.testing.assert_allclose(np.abs(model(inputs).numpy()), want / want_scale[:, None, None, None], atol=1e-5)
    with pytest.raises(ValueError, match="ndim: 3D Cartesian slabs are prepared single-coil only"):
        CartesianPreprocessor(multicoil=True, ndim=3)
    with pytest.raises(ValueError, match=r"kspace: expected \(\[batch,\] D, H, W\)"):
        preprocessor(kspace[0, 0], mask)
    with pytest.raises(ValueError, match="ndim: the data are prepared as 3D images"):
        preprocessor.check_model(IRIM(n_iter=1, state_channels=6, hidden_channels=4, downsampling=[1, 2]))
    # the slab depth a model was trained on: recorded, required of the input, only in 3D
    recorded = CartesianPreprocessor(ndim=3, depth=depth)
    assert preprocessor_from_config(json.loads(json.dumps(recorded.get_config()))) == recorded != preprocessor
    np.testing.assert_array_equal(recorded(kspace, mask).inputs["kspace"], preprocessor(kspace, mask).inputs["kspace"])
    with pytest.raises(ValueError, match=r"kspace: expected slabs of 4 slices .* got shape \[2, 3, 16, 12\]"):
        recorded(kspace[:, :3], mask)
    for bad, ndim in ((0, 3), (2.5, 3), (True, 3), (4, 2)):
        with pytest.raises(ValueError, match="depth: expected the slices per slab of a 3D"):
            CartesianPreprocessor(ndim=ndim, depth=bad)
    assert "depth" not in CartesianPreprocessor().get_config()  # 2D configs as before


def test_cartesian_acs_width_graph_and_physical_units(rng):
    mask = np.zeros((1, 20), np.float32)
    mask[0, 8:13] = 1  # centre column 10: the block 8..12
    mask[0, [2, 15]] = 1
    assert int(acs_width(mask)) == 5
    mask[0, [13, 14]] = 1  # joins column 15: the block 8..15
    assert int(acs_width(mask)) == 8
    with pytest.raises(ValueError, match="centre column is not sampled"):
        acs_width(np.eye(1, 20, 0, dtype=np.float32))
    # Without num_low_frequencies the coil maps come from acs_width(mask); inside a graph
    # (a tf.data map function) num_low_frequencies may be a tensor.
    kspace = crandn(rng, (COILS, H, 20)).astype(np.complex64)
    preprocessor = CartesianPreprocessor(multicoil=True)
    eager = preprocessor(kspace, mask, 7)
    inferred = preprocessor(kspace, mask)
    graph = tf.function(lambda k, m, n: preprocessor(k, m, n))(kspace, mask, tf.constant(7))
    for other in (inferred, graph):
        np.testing.assert_allclose(other.inputs["smaps"], eager.inputs["smaps"], atol=1e-6)
        np.testing.assert_allclose(other.inputs["kspace"], eager.inputs["kspace"], atol=1e-7)
    raw = CartesianPreprocessor(multicoil=True, normalize=False)(kspace, mask, 7)
    assert float(raw.scale) == 1.0
    np.testing.assert_array_equal(raw.inputs["kspace"], kspace * mask)


def test_cartesian_pipeline_by_hand_and_inference_agree(tmp_path, rng):
    """One slice: the pipeline's example == the preprocessor applied by hand == what inference feeds
    the model, and all three == the numpy reference."""
    kspace = crandn(rng, (2, COILS, H, W)).astype(np.complex64)
    write_fastmri_h5(tmp_path / "a.h5", kspace)
    mask = column_mask(W, rng, 4)

    def mask_func(shape, seed=None):
        return mask, 4

    (pipeline_inputs, _), _ = [(inputs, t) for inputs, t in cartesian_dataset(tmp_path, mask_func, multicoil=True)]
    by_hand = CartesianPreprocessor(multicoil=True)(read_fastmri_h5(tmp_path / "a.h5").kspace[0], mask, 4)

    class Recorder:
        """Stands for a multicoil Cartesian model: records its inputs, returns ones."""

        multicoil = True
        REQUIRED_INPUTS = ("kspace", "mask", "smaps")
        seen: list = []

        def __call__(self, inputs):
            self.seen.append({key: np.asarray(value) for key, value in inputs.items()})
            return tf.ones(inputs["kspace"].shape[:1].concatenate(inputs["kspace"].shape[-2:]), tf.complex64)

    model = Recorder()
    images, zero_filled = reconstruct_cartesian(model, kspace * mask, mask, 4, progress=False)
    inferred = {key: value[0] for key, value in model.seen[0].items()}
    want_kspace, want_scale, want_smaps, want_zero_filled = np_cartesian(kspace[0], mask, 4, True)
    np.testing.assert_allclose(images[0], want_scale, rtol=1e-5)  # ones times the scale
    np.testing.assert_allclose(zero_filled[0], want_zero_filled, rtol=1e-4, atol=1e-6 * want_scale)
    assert float(pipeline_inputs["scale"][0]) == pytest.approx(want_scale, rel=1e-5)
    for inputs in ({k: v[0] for k, v in pipeline_inputs.items()}, by_hand.inputs, inferred):
        np.testing.assert_allclose(inputs["kspace"], want_kspace, atol=1e-5 * np.abs(want_kspace).max())
        np.testing.assert_allclose(inputs["smaps"], want_smaps, atol=1e-5)
        np.testing.assert_array_equal(np.reshape(inputs["mask"], (1, W)), mask)


# ---------------------------------------------------------------------------- non-Cartesian


@pytest.mark.parametrize("multicoil", [True, False])
def test_noncartesian_matches_finufft(rng, multicoil):
    size = 24
    traj = radial_trajectory(size, 2).reshape(2, -1).astype(np.float32)
    coil_images = phantom(size, COILS if multicoil else 1, rng)
    kspace = np_nufft_forward(traj, coil_images).astype(np.complex64) * 1e-3
    preprocessor = NonCartesianPreprocessor(multicoil=multicoil, image_shape=(size, size))
    dcomp = preprocessor.density(traj).numpy()
    inputs, scale, baseline = preprocessor(kspace if multicoil else kspace[0], traj, dcomp)

    coil_adjoint = np_nufft_adjoint(traj, kspace * dcomp, (size, size))
    want_scale = np.sqrt((np.abs(coil_adjoint) ** 2).sum(0)).max()
    assert float(scale) == pytest.approx(want_scale, rel=1e-3)
    want_kspace = kspace / want_scale if multicoil else kspace[0] / want_scale
    assert relative_error(inputs["kspace"], want_kspace) < 1e-3
    np.testing.assert_array_equal(inputs["traj"], traj)
    np.testing.assert_array_equal(inputs["dcomp"], dcomp)
    if multicoil:
        centre = np.hypot(traj[0], traj[1]) < 0.1 * np.pi
        smaps = np_rss_normalize(np_nufft_adjoint(traj, kspace * dcomp * centre, (size, size)))
        signal = np.sqrt((np.abs(coil_adjoint) ** 2).sum(0)) > 0.1 * want_scale
        assert relative_error(inputs["smaps"].numpy()[:, signal], smaps[:, signal]) < 2e-3
        want_baseline = (np.conj(smaps) * coil_adjoint).sum(0)
    else:
        assert set(inputs) == {"kspace", "traj", "dcomp"} and inputs["kspace"].shape == (traj.shape[-1],)
        want_baseline = coil_adjoint[0]
    signal = np.abs(want_baseline) > 0.1 * np.abs(want_baseline).max()
    assert relative_error(baseline.numpy()[signal], want_baseline[signal]) < 2e-3
    # Given weights of any scale are rescaled: A^H D A 1 = 1 at the centre of the grid.
    rescaled = preprocessor.density(traj, 7 * dcomp).numpy()
    np.testing.assert_allclose(rescaled, dcomp, rtol=1e-4)


def test_noncartesian_pipeline_by_hand_and_inference_agree(tmp_path, rng):
    """One slice: the pipeline's example == the preprocessor applied by hand (on the NUFFT of the
    same coil images) == ``inference.noncartesian_inputs``."""
    from fastmri_zoo.physics import NUFFT

    coil_images = np.stack([phantom(H, COILS, rng) for _ in range(2)])
    kspace = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(coil_images, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    write_fastmri_h5(tmp_path / "a.h5", kspace.astype(np.complex64))
    dataset = noncartesian_dataset(tmp_path, "radial", 2, multicoil=True)
    (inputs, _), = [(i, t) for i, t in dataset.unbatch().take(1)]
    assert dataset.preprocessor == NonCartesianPreprocessor(multicoil=True, image_shape=(H, H))

    traj, dcomp = inputs["traj"].numpy(), inputs["dcomp"].numpy()
    images = np_ifftc(read_fastmri_h5(tmp_path / "a.h5").kspace[0]).astype(np.complex64)
    samples = NUFFT(traj, (H, H)).forward(tf.constant(images)).numpy()
    by_hand, scale, _ = dataset.preprocessor(samples, traj, dcomp)
    inferred, inferred_scale, _ = noncartesian_inputs(samples, traj, (H, H), dcomp)
    reference = np_nufft_forward(traj, images)
    assert relative_error(samples, reference) < 1e-3
    assert float(inputs["scale"]) == pytest.approx(float(scale), rel=1e-6)
    assert inferred_scale == pytest.approx(float(scale), rel=1e-6)
    for key in ("kspace", "smaps", "traj", "dcomp"):
        np.testing.assert_allclose(by_hand[key], inputs[key], rtol=1e-5, atol=1e-6 * np.abs(inputs[key]).max())
        np.testing.assert_allclose(inferred[key][0], inputs[key], rtol=1e-5, atol=1e-6 * np.abs(inputs[key]).max())
    assert relative_error(inputs["kspace"].numpy() * float(inputs["scale"]), reference) < 1e-3


def test_a_model_built_for_another_grid_is_refused_or_told_the_grid(tmp_path, rng):
    """The pipeline on 16x16 files with a single-coil model built for 12x12: refused with both sizes;
    inference reconstructs on the file's grid and says so."""
    from fastmri_zoo.models import NCPDNet

    coil_images = phantom(H, 1, rng)
    kspace = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(coil_images, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    write_fastmri_h5(tmp_path / "a.h5", np.repeat(kspace, 2, axis=0).astype(np.complex64))
    dataset = noncartesian_dataset(tmp_path, "radial", 2, multicoil=False)
    model = NCPDNet(n_iter=1, n_filters=4, multicoil=False, image_shape=(12, 12))
    with pytest.raises(ValueError, match=r"prepared on the grid \[16, 16\] but NCPDNet was built for \[12, 12\]"):
        dataset.preprocessor.check_model(model)
    NonCartesianPreprocessor(image_shape=(12, 12)).check_model(model)  # the same grid: accepted
    with pytest.raises(ValueError, match="prepared single-coil but NCPDNet is a multicoil model"):
        dataset.preprocessor.check_model(NCPDNet(n_iter=1, n_filters=4, multicoil=True))

    traj = radial_trajectory(H, 2).reshape(2, -1).astype(np.float32)
    write_fastmri_h5(tmp_path / "nc.h5", np_nufft_forward(traj, coil_images).astype(np.complex64),
                     trajectory=traj, image_shape=(H, H))
    result = reconstruct_file(model, tmp_path / "nc.h5", progress=False)
    assert result.reconstruction.shape == (1, H, H)
    assert result.attrs["note"] == "NCPDNet was trained on the grid [12, 12]; reconstructed on the file's grid [16, 16]"
    assert list(result.attrs["model_image_shape"]) == [12, 12]


# ---------------------------------------------------------------------------- configs and presets


def test_configs_round_trip_and_bad_configs_are_named():
    for preprocessor in (CartesianPreprocessor(multicoil=True),
                         NonCartesianPreprocessor(multicoil=False, ndim=3, image_shape=(4, 8, 8), dcomp_iterations=3)):
        config = json.loads(json.dumps(preprocessor.get_config()))
        assert preprocessor_from_config(config) == preprocessor
    with pytest.raises(ValueError, match="unknown kind 'spiral'"):
        preprocessor_from_config({"kind": "spiral"})
    with pytest.raises(ValueError, match="invalid noncartesian options"):
        preprocessor_from_config({"kind": "noncartesian", "trajectory": "radial"})
    with pytest.raises(ValueError, match=r"image_shape: expected 3 sizes \(ndim=3\)"):
        NonCartesianPreprocessor(ndim=3, image_shape=(8, 8))
    with pytest.raises(ValueError, match="image_shape: the preprocessor records no image grid"):
        NonCartesianPreprocessor().grid()


def test_preset_records_the_preprocessor_and_old_presets_derive_it(tmp_path):
    from fastmri_zoo.models import NCPDNet, UNet
    from fastmri_zoo.presets import from_preset

    model = NCPDNet(n_iter=1, n_filters=4, multicoil=False, image_shape=(8, 8))
    model.preprocessor = NonCartesianPreprocessor(image_shape=(8, 8), dcomp_iterations=4)
    folder = model.save_to_preset(tmp_path / "nc", example_inputs={
        "kspace": np.zeros((1, 16), np.complex64), "traj": np.zeros((1, 2, 16), np.float32),
        "dcomp": np.ones((1, 16), np.float32)})
    assert json.loads((folder / PREPROCESSOR_FILE).read_text())["dcomp_iterations"] == 4
    assert from_preset(str(folder)).preprocessor == model.preprocessor
    # Without the file (every preset written before it existed): derived from the model and metadata.
    os.remove(folder / PREPROCESSOR_FILE)
    assert from_preset(str(folder)).preprocessor == NonCartesianPreprocessor(image_shape=(8, 8))

    unet = UNet(layers_n_channels=[4, 8])
    folder = unet.save_to_preset(tmp_path / "cart", example_inputs={
        "kspace": np.zeros((1, 16, 16), np.complex64), "mask": np.ones((1, 1, 16), np.float32)},
        acquisition={"mask_type": "random", "center_fraction": 0.08, "acceleration": 4})
    assert json.loads((folder / PREPROCESSOR_FILE).read_text()) == CartesianPreprocessor().get_config()


@pytest.mark.slow  # builds four paper-size shipped checkpoints (load_preset runs them on their input signature)
def test_shipped_checkpoints_derive_the_preprocessor_they_were_trained_with():
    from fastmri_zoo.presets import load_preset

    weights = os.path.join(os.path.dirname(__file__), "..", "..", "weights")
    expected = {
        "xpdnet-cartesian-multicoil-af4": CartesianPreprocessor(multicoil=True),
        "unet-cartesian-singlecoil-af4": CartesianPreprocessor(multicoil=False),
        "ncpdnet-radial-singlecoil": NonCartesianPreprocessor(image_shape=(120, 120)),
        "ncpdnet-spiral-multicoil": NonCartesianPreprocessor(multicoil=True),
    }
    derived_only = 0
    for name, preprocessor in expected.items():
        folder = os.path.join(weights, name)
        saved = os.path.join(folder, PREPROCESSOR_FILE)
        if os.path.exists(saved):  # retrained checkpoints write theirs: it must be the one the model implies
            assert json.load(open(saved)) == preprocessor.get_config(), name
        else:
            derived_only += 1
        model = load_preset(folder, pretrained=False)
        assert model.preprocessor == preprocessor, name
        metadata = json.load(open(os.path.join(folder, "metadata.json")))
        assert derive_preprocessor(model, metadata["acquisition"]) == preprocessor
    assert derived_only >= 2  # the two NC-PDNet checkpoints predate preprocessor.json: derivation is what loads them
