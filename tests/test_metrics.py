"""Metrics pinned to scikit-image (SSIM, PSNR) and to closed forms (NMSE).

Tolerances: the numpy metrics must agree with scikit-image to 1e-6 ABSOLUTE (they are
dimensionless values of order 1, or dB values of order 10-40). scikit-image computes in
the input's float precision, so the references are always fed float64 copies.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fastmri_zoo.metrics import (
    ReconstructionMetric,
    evaluate_volume,
    nmse,
    nmse_tf,
    psnr,
    psnr_tf,
    ssim,
    ssim_tf,
    summarize,
)

ATOL = 1e-6


def phantom_volume(rng, slices=3, shape=(48, 40)):
    """Image-like magnitude volume: a few smooth ellipses of varying intensity, with zero
    background, plus a weak Rician-like noise floor."""
    h, w = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    volume = np.zeros((slices, h, w))
    for s in range(slices):
        for _ in range(4):
            cy, cx = rng.uniform(-0.4, 0.4, size=2)
            ay, ax = rng.uniform(0.2, 0.7, size=2)
            volume[s] += rng.uniform(0.2, 1.0) * (((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 < 1)
    noise = 0.01 * (rng.standard_normal(volume.shape) + 1j * rng.standard_normal(volume.shape))
    return np.abs(volume + noise) * 3e-4  # fastMRI-like scale, far from 1


def degrade(rng, gt, level=0.1):
    """A plausible reconstruction: blurred and noisy, non-negative magnitude."""
    blurred = (gt + np.roll(gt, 1, axis=-1) + np.roll(gt, -1, axis=-2)) / 3
    return np.abs(blurred + level * gt.max() * rng.standard_normal(gt.shape))


def skimage_ssim(gt, pred, maxval=None):
    """fastMRI's evaluate.ssim, written on top of scikit-image."""
    gt, pred = np.asarray(gt, np.float64), np.asarray(pred, np.float64)
    maxval = gt.max() if maxval is None else maxval
    return np.mean([structural_similarity(gt[i], pred[i], data_range=maxval) for i in range(gt.shape[0])])


def volume_pairs(rng):
    gt_random = rng.random((4, 33, 29))
    gt_image = phantom_volume(rng)
    return {
        "random": (gt_random, gt_random + 0.2 * rng.standard_normal(gt_random.shape)),
        "image": (gt_image, degrade(rng, gt_image)),
        "image_good": (gt_image, degrade(rng, gt_image, level=0.01)),
    }


# ------------------------------------------------------------------------ numpy


@pytest.mark.parametrize("kind", ["random", "image", "image_good"])
def test_ssim_matches_skimage(rng, kind):
    gt, pred = volume_pairs(rng)[kind]
    reference = skimage_ssim(gt, pred)
    assert 0.05 < reference < 0.999  # a non-trivial score, so agreement means something
    assert abs(ssim(gt, pred) - reference) < ATOL


@pytest.mark.parametrize("kind", ["random", "image"])
def test_ssim_with_explicit_maxval_matches_skimage(rng, kind):
    gt, pred = volume_pairs(rng)[kind]
    maxval = 1.7 * gt.max()
    assert abs(ssim(gt, pred, maxval=maxval) - skimage_ssim(gt, pred, maxval)) < ATOL
    assert abs(ssim(gt, pred, maxval) - ssim(gt, pred)) > 1e-3  # maxval really changes the score


def test_ssim_data_range_is_the_volume_max_not_the_slice_max(rng):
    gt, pred = volume_pairs(rng)["image"]
    gt = gt * np.array([1.0, 0.3, 0.6])[:, None, None]
    pred = pred * np.array([1.0, 0.3, 0.6])[:, None, None]
    per_slice_range = np.mean(
        [structural_similarity(gt[i], pred[i], data_range=gt[i].max()) for i in range(3)]
    )
    assert abs(ssim(gt, pred) - skimage_ssim(gt, pred)) < ATOL
    assert abs(ssim(gt, pred) - per_slice_range) > 1e-3


def test_ssim_float32_input_matches_float64_reference(rng):
    gt, pred = volume_pairs(rng)["image"]
    gt32, pred32 = gt.astype(np.float32), pred.astype(np.float32)
    assert abs(ssim(gt32, pred32) - skimage_ssim(gt32, pred32)) < ATOL


def test_ssim_single_image_is_one_slice(rng):
    gt, pred = volume_pairs(rng)["image"]
    reference = structural_similarity(gt[1], pred[1], data_range=gt[1].max())
    assert abs(ssim(gt[1], pred[1]) - reference) < ATOL


def test_ssim_of_identical_volumes_is_one(rng):
    gt, _ = volume_pairs(rng)["image"]
    assert ssim(gt, gt) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("kind", ["random", "image"])
def test_psnr_matches_skimage(rng, kind):
    gt, pred = volume_pairs(rng)[kind]
    reference = peak_signal_noise_ratio(gt, pred, data_range=gt.max())
    assert abs(psnr(gt, pred) - reference) < ATOL
    reference = peak_signal_noise_ratio(gt, pred, data_range=2.5 * gt.max())
    assert abs(psnr(gt, pred, maxval=2.5 * gt.max()) - reference) < ATOL
    assert abs(psnr(gt[0], pred[0]) - peak_signal_noise_ratio(gt[0], pred[0], data_range=gt[0].max())) < ATOL


def test_psnr_of_identical_volumes_is_infinite(rng):
    gt, _ = volume_pairs(rng)["image"]
    assert psnr(gt, gt) == np.inf


def test_nmse_closed_forms(rng):
    gt, pred = volume_pairs(rng)["image"]
    # A scaled copy: ||gt - (1 + a) gt||^2 / ||gt||^2 = a^2.
    assert nmse(gt, 1.1 * gt) == pytest.approx(0.01, rel=1e-12)
    assert nmse(gt, np.zeros_like(gt)) == pytest.approx(1.0, rel=1e-12)
    assert nmse(gt, gt) == 0.0
    expected = np.linalg.norm((gt - pred).ravel()) ** 2 / np.linalg.norm(gt.ravel()) ** 2
    assert nmse(gt, pred) == pytest.approx(expected, rel=1e-10)
    # Volume-wise, not an average of per-slice values.
    per_slice = np.mean([nmse(gt[i], pred[i]) for i in range(gt.shape[0])])
    assert abs(nmse(gt, pred) - per_slice) > 1e-6 * per_slice


def test_evaluate_volume_and_summarize(rng):
    results = []
    pairs = []
    for level in (0.02, 0.05, 0.1):
        gt = phantom_volume(rng, slices=2)
        pred = degrade(rng, gt, level)
        pairs.append((gt, pred))
        results.append(evaluate_volume(gt, pred))
    for (gt, pred), result in zip(pairs, results):
        assert set(result) == {"nmse", "psnr", "ssim"}
        assert abs(result["ssim"] - skimage_ssim(gt, pred)) < ATOL
        assert abs(result["psnr"] - peak_signal_noise_ratio(gt, pred, data_range=gt.max())) < ATOL
    summary = summarize(results)
    for key in ("nmse", "psnr", "ssim"):
        values = [r[key] for r in results]
        mean, std = summary[key]
        assert mean == pytest.approx(sum(values) / 3, rel=1e-12)
        # Sample standard deviation (n - 1), as fastMRI's runstats-based report.
        expected_std = (sum((v - mean) ** 2 for v in values) / 2) ** 0.5
        assert std == pytest.approx(expected_std, rel=1e-9)
    # Lower noise means a better score on every metric.
    assert results[0]["psnr"] > results[2]["psnr"] and results[0]["ssim"] > results[2]["ssim"]
    assert results[0]["nmse"] < results[2]["nmse"]
    single_mean, single_std = summarize(results[:1])["psnr"]
    assert single_mean == results[0]["psnr"] and np.isnan(single_std)


# ------------------------------------------------------------------- bad input


def _raises(match, fn, *args, **kwargs):
    with pytest.raises(ValueError, match=match):
        fn(*args, **kwargs)


@pytest.mark.parametrize("fn", [nmse, psnr, ssim, evaluate_volume])
def test_numpy_metrics_reject_bad_input(rng, fn):
    gt = rng.random((2, 16, 16))
    _raises(r"gt has 16 columns \(W\) but pred has 15", fn, gt, gt[..., :15])
    _raises(r"gt has 2 slices but pred has 1", fn, gt, gt[:1])
    _raises(r"pred: expected the shape of gt \(2, 16, 16\), got shape \(16, 16\)", fn, gt, gt[0])
    _raises(r"gt: expected a 2 or 3-dimensional array .*got shape \(1, 2, 16, 16\)", fn, gt[None], gt[None])
    _raises(r"pred: expected a 2 or 3-dimensional array .*got shape \(16,\)", fn, gt[0], gt[0, 0])
    bad = gt.copy()
    bad[0, 3, 4] = np.nan
    _raises(r"pred: expected finite values, got 1 NaN and 0 Inf", fn, gt, bad)
    bad[0, 3, 4] = np.inf
    _raises(r"gt: expected finite values, got 0 NaN and 1 Inf", fn, bad, gt)
    _raises(r"gt: expected real magnitude values, got dtype complex128; pass magnitudes", fn, gt + 0j, gt)
    _raises(r"pred: expected real magnitude values, got dtype complex64", fn, gt, gt.astype(np.complex64))
    zeros = np.zeros_like(gt)
    _raises(r"gt: expected .*(positive maximum|non-zero target).*got", fn, zeros, gt)


def test_bad_maxval_and_small_images(rng):
    gt = rng.random((2, 16, 16))
    for fn in (psnr, ssim):
        _raises(r"maxval: expected a finite positive data range, got 0", fn, gt, gt, maxval=0)
        _raises(r"maxval: expected a finite positive data range, got -1", fn, gt, gt, maxval=-1.0)
    _raises(r"gt: expected H and W of at least 7 .*got shape \(2, 6, 16\)", ssim, gt[:, :6], gt[:, :6])


def test_summarize_rejects_bad_input():
    _raises(r"results: expected at least one dict", summarize, [])
    _raises(r"results\[1\]: expected the keys \['a', 'b'\].*got \['a'\]", summarize, [{"a": 1, "b": 2}, {"a": 1}])


# ------------------------------------------------------------------ TensorFlow


def batch_pairs(rng):
    """(batch, H, W) float64 targets and predictions with per-image intensity scales."""
    gt = phantom_volume(rng, slices=4, shape=(32, 36)) * np.array([1.0, 0.5, 2.0, 0.1])[:, None, None]
    pred = np.stack([degrade(rng, image, level) for image, level in zip(gt, (0.05, 0.02, 0.1, 0.03))])
    return gt, pred


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_tf_metrics_match_numpy_per_image(rng, dtype, tol):
    gt, pred = batch_pairs(rng)
    got_ssim = ssim_tf(gt.astype(dtype), pred.astype(dtype)).numpy()
    got_psnr = psnr_tf(gt.astype(dtype), pred.astype(dtype)).numpy()
    got_nmse = nmse_tf(gt.astype(dtype), pred.astype(dtype)).numpy()
    assert got_ssim.shape == got_psnr.shape == got_nmse.shape == (4,)
    assert got_ssim.dtype == dtype
    for i in range(4):
        assert abs(got_ssim[i] - ssim(gt[i], pred[i])) < tol
        # PSNR is in dB (~30): 1e-5 relative.
        assert abs(got_psnr[i] - psnr(gt[i], pred[i])) < tol * abs(psnr(gt[i], pred[i]))
        assert abs(got_nmse[i] - nmse(gt[i], pred[i])) < tol * nmse(gt[i], pred[i]) * 10
    # Independent check of SSIM on the TF side too.
    for i in range(4):
        reference = structural_similarity(gt[i], pred[i], data_range=gt[i].max())
        assert abs(got_ssim[i] - reference) < tol


def test_tf_metrics_channel_axis_and_maxval(rng):
    gt, pred = batch_pairs(rng)
    gt32, pred32 = gt.astype(np.float32), pred.astype(np.float32)
    np.testing.assert_allclose(ssim_tf(gt32[..., None], pred32[..., None]), ssim_tf(gt32, pred32), rtol=0, atol=0)
    maxval = float(gt.max())
    got = ssim_tf(gt32, pred32, maxval=maxval).numpy()
    expected = [structural_similarity(gt[i], pred[i], data_range=maxval) for i in range(4)]
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    per_image = np.array([3.0, 1.0, 5.0, 0.5]) * 1e-3
    got = psnr_tf(gt32, pred32, maxval=per_image).numpy()
    expected = [peak_signal_noise_ratio(gt[i], pred[i], data_range=per_image[i]) for i in range(4)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_tf_metrics_in_a_traced_graph_with_unknown_shapes(rng):
    gt, pred = batch_pairs(rng)
    spec = tf.TensorSpec([None, None, None], tf.float32)

    @tf.function(input_signature=[spec, spec])
    def all_metrics(a, b):
        return ssim_tf(a, b), psnr_tf(a, b), nmse_tf(a, b)

    got = all_metrics(gt.astype(np.float32), pred.astype(np.float32))
    expected = (ssim_tf(gt, pred), psnr_tf(gt, pred), nmse_tf(gt, pred))
    np.testing.assert_allclose(got[0].numpy(), expected[0].numpy(), rtol=0, atol=1e-5)
    for g, e in zip(got[1:], expected[1:]):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5)


@pytest.mark.parametrize("fn", [ssim_tf, psnr_tf, nmse_tf])
def test_tf_metrics_gradients_are_finite_and_correct(rng, fn):
    gt, pred = batch_pairs(rng)
    gt, pred = gt[:2, :12, :14], pred[:2, :12, :14]
    pred_var = tf.Variable(pred)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(fn(tf.constant(gt), pred_var))
    grad = tape.gradient(loss, pred_var).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
    # Central finite differences on a few entries, in float64.
    step = 1e-7 * gt.max()
    for idx in [(0, 5, 6), (1, 0, 0), (1, 11, 13), (0, 3, 9)]:
        plus, minus = pred.copy(), pred.copy()
        plus[idx] += step
        minus[idx] -= step
        numeric = (tf.reduce_sum(fn(gt, plus)) - tf.reduce_sum(fn(gt, minus))).numpy() / (2 * step)
        assert grad[idx] == pytest.approx(numeric, rel=1e-4, abs=1e-6 * np.abs(grad).max())


def test_ssim_tf_as_a_loss_improves_a_reconstruction(rng):
    gt, pred = batch_pairs(rng)
    # Images 0 and 1 share an intensity scale within 2x, so one Adam step size suits both.
    gt, pred = gt[:2].astype(np.float32), pred[:2].astype(np.float32)
    pred_var = tf.Variable(pred)
    optimizer = keras.optimizers.Adam(learning_rate=float(gt.max()) * 0.005)
    before = ssim_tf(gt, pred_var).numpy()
    for _ in range(20):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(1.0 - ssim_tf(gt, pred_var))
        optimizer.apply_gradients([(tape.gradient(loss, pred_var), pred_var)])
    after = ssim_tf(gt, pred_var).numpy()
    assert np.all(after > before + 0.01)


def test_tf_metrics_reject_bad_input(rng):
    gt = rng.random((2, 16, 16)).astype(np.float32)
    _raises(r"gt: expected real magnitude values, got dtype complex64; pass magnitudes \(tf.abs", ssim_tf,
            gt.astype(np.complex64), gt)
    _raises(r"pred: expected a 3 or 4-dimensional array \(batch, H, W\).*got shape \(16, 16\)", psnr_tf, gt, gt[0])
    _raises(r"gt: expected a single channel .*got shape \(2, 16, 16, 2\)", nmse_tf,
            np.stack([gt, gt], -1), np.stack([gt, gt], -1))
    _raises(r"gt has 16 rows \(H\) but pred has 15", ssim_tf, gt, gt[:, :15])
    _raises(r"gt has 2 images \(batch\) but pred has 1", psnr_tf, gt, gt[:1])
    bad = gt.copy()
    bad[1, 2, 3] = np.nan
    _raises(r"pred: expected finite values, got 1 NaN", ssim_tf, gt, bad)
    zero_image = gt.copy()
    zero_image[1] = 0
    _raises(r"gt: expected a positive maximum in every image .*got max 0 for image 1", ssim_tf, zero_image, gt)
    _raises(r"gt: expected a positive maximum in every image", psnr_tf, zero_image, gt)
    _raises(r"gt: expected every target image to be non-zero", nmse_tf, zero_image, gt)
    _raises(r"maxval: expected a positive data range, got 0", ssim_tf, gt, gt, maxval=0.0)
    _raises(r"gt: expected H and W of at least 7 .*got shape \(2, 16, 5\)", ssim_tf, gt[..., :5], gt[..., :5])


@pytest.mark.parametrize("fn, message", [
    (nmse_tf, r"gt: expected every target image to be non-zero"),
    (psnr_tf, r"gt: expected a positive maximum in every image"),
    (ssim_tf, r"gt: expected a positive maximum in every image"),
])
def test_tf_metrics_reject_an_all_zero_target_inside_a_graph(rng, fn, message):
    # Inside tf.function (as in fit) the eager check cannot run: the graph asserts instead of
    # returning inf / NaN, which would turn into NaN weights.
    gt = rng.random((2, 16, 16)).astype(np.float32)
    zero_image = gt.copy()
    zero_image[1] = 0
    graph = tf.function(fn)
    assert np.all(np.isfinite(graph(gt, gt * 0.9).numpy()))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        graph(zero_image, gt)


# ---------------------------------------------------------------- Keras metric


def tiny_model(shape):
    """A fixed 3x3 smoothing convolution on (H, W, 1) images."""
    model = keras.Sequential([keras.Input(shape), keras.layers.Conv2D(1, 3, padding="same", use_bias=False)])
    kernel = np.full((3, 3, 1, 1), 1 / 9, np.float32)
    kernel[1, 1] += 0.2
    model.layers[0].set_weights([kernel])
    return model


def test_metric_in_compile_and_evaluate_matches_numpy_mean(rng):
    gt = np.stack([phantom_volume(rng, slices=1, shape=(24, 20))[0] * s for s in np.linspace(0.5, 2.0, 10)])
    x = degrade(rng, gt, level=0.05).astype(np.float32)[..., None]
    y = gt.astype(np.float32)[..., None]
    model = tiny_model((24, 20, 1))
    model.compile(
        loss="mse",
        metrics=[ReconstructionMetric("psnr"), ReconstructionMetric("ssim"), ReconstructionMetric("nmse", name="my_nmse")],
    )
    # batch_size 4 over 10 images: the last batch is smaller, so a mean of batch means would differ.
    scores = model.evaluate(x, y, batch_size=4, return_dict=True, verbose=0)
    pred = model.predict(x, batch_size=4, verbose=0)[..., 0].astype(np.float64)
    expected = {
        "psnr": np.mean([psnr(gt[i], pred[i]) for i in range(10)]),
        "ssim": np.mean([ssim(gt[i], pred[i]) for i in range(10)]),
        "my_nmse": np.mean([nmse(gt[i], pred[i]) for i in range(10)]),
    }
    assert scores["psnr"] == pytest.approx(expected["psnr"], rel=1e-5)
    assert scores["ssim"] == pytest.approx(expected["ssim"], abs=1e-5)
    assert scores["my_nmse"] == pytest.approx(expected["my_nmse"], rel=1e-4)
    batch_means = np.mean([np.mean([ssim(gt[i], pred[i]) for i in range(b, min(b + 4, 10))]) for b in (0, 4, 8)])
    assert abs(batch_means - expected["ssim"]) > 1e-4  # the test can tell the two averages apart


def test_metric_complex_inputs_sample_weight_and_reset(rng):
    gt, pred = batch_pairs(rng)
    phase_gt = np.exp(1j * rng.uniform(-np.pi, np.pi, gt.shape))
    phase_pred = np.exp(1j * rng.uniform(-np.pi, np.pi, gt.shape))
    y_true = (gt * phase_gt).astype(np.complex64)
    y_pred = (pred * phase_pred).astype(np.complex64)
    per_image = np.array([ssim(gt[i], pred[i]) for i in range(4)])

    metric = ReconstructionMetric("ssim")
    metric.update_state(y_true[:3], y_pred[:3])
    metric.update_state(y_true[3:], y_pred[3:])
    assert float(metric.result()) == pytest.approx(per_image.mean(), abs=1e-5)

    metric.reset_state()
    assert float(metric.result()) == 0.0
    weights = np.array([1.0, 0.0, 2.0, 3.0])
    metric.update_state(y_true, y_pred, sample_weight=weights)
    assert float(metric.result()) == pytest.approx(np.sum(weights * per_image) / weights.sum(), abs=1e-5)

    real_metric = ReconstructionMetric("psnr")
    real_metric.update_state(gt.astype(np.float32), pred.astype(np.float32))
    assert float(real_metric.result()) == pytest.approx(np.mean([psnr(gt[i], pred[i]) for i in range(4)]), rel=1e-5)


def test_metric_config_round_trip(rng):
    metric = ReconstructionMetric("nmse", name="val_nmse")
    config = metric.get_config()
    assert config["metric"] == "nmse" and config["name"] == "val_nmse"
    clone = ReconstructionMetric.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(metric)))
    )
    assert isinstance(restored, ReconstructionMetric) and restored.get_config() == config
    gt, pred = batch_pairs(rng)
    for m in (metric, restored):
        m.update_state(gt.astype(np.float32), pred.astype(np.float32))
    assert float(restored.result()) == pytest.approx(float(metric.result()), rel=1e-7)
    assert ReconstructionMetric("ssim").name == "ssim"
    _raises(r"metric: expected one of \['nmse', 'psnr', 'ssim'\], got 'mae'", ReconstructionMetric, "mae")
