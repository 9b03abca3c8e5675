"""Reconstruction losses against numpy closed forms and the numpy metrics."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.ndimage import uniform_filter

from fastmri_zoo import metrics
from fastmri_zoo.training.losses import (
    LOSSES,
    MS_SSIM_WEIGHTS,
    L1Loss,
    L1MSSSIMLoss,
    L1SSIMLoss,
    MSELoss,
    MSSSIMLoss,
    NMSELoss,
    SSIMLoss,
    get_loss,
    ms_ssim_tf,
)
from tests.conftest import crandn

SIZE = 32


def pair(rng, batch=3, size=SIZE, noise=0.3):
    gt = crandn(rng, (batch, size, size))
    pred = (gt + noise * crandn(rng, (batch, size, size))).astype(np.complex64)
    return gt, pred


def np_ssim_terms(x, y, data_range):
    """Luminance and contrast-structure maps of scikit-image's SSIM (uniform 7x7, sample
    covariance), restricted to the windows inside the image. x, y: float64 (H, W)."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mean = lambda t: uniform_filter(t, 7)  # noqa: E731
    ux, uy = mean(x), mean(y)
    cov = 49 / 48
    vx, vy, vxy = cov * (mean(x * x) - ux * ux), cov * (mean(y * y) - uy * uy), cov * (mean(x * y) - ux * uy)
    luminance = (2 * ux * uy + c1) / (ux**2 + uy**2 + c1)
    cs = (2 * vxy + c2) / (vx + vy + c2)
    return luminance[3:-3, 3:-3], cs[3:-3, 3:-3]


def np_ms_ssim(x, y, weights, data_range):
    """Wang et al. 2003 on the metrics' window, 2x2 mean downsampling, clipped terms."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    value = 1.0
    for scale, weight in enumerate(weights):
        luminance, cs = np_ssim_terms(x, y, data_range)
        if scale == len(weights) - 1:
            term = (luminance * cs).mean()
        else:
            term = cs.mean()
            h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
            x = x[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
            y = y[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        value *= max(term, 0.0) ** weight
    return value


def per_image(values, fn):
    return np.array([fn(i) for i in range(len(values))])


# ------------------------------------------------------------------ closed forms, magnitude mode


def test_pixel_losses_on_magnitude_match_numpy(rng):
    gt, pred = pair(rng)
    mag_gt, mag_pred = np.abs(gt).astype(np.float64), np.abs(pred).astype(np.float64)
    diff = mag_pred - mag_gt
    expected = {
        "l1": np.abs(diff).mean(axis=(1, 2)).mean(),
        "mse": (diff**2).mean(axis=(1, 2)).mean(),
        "nmse": ((diff**2).sum(axis=(1, 2)) / (mag_gt**2).sum(axis=(1, 2))).mean(),
    }
    for name, value in expected.items():
        # A magnitude target and a complex prediction: the loss takes |pred|.
        assert float(get_loss(name)(mag_gt, pred)) == pytest.approx(value, rel=1e-5), name
    # Per image, NMSE is the numpy metric of each slice.
    nmse = NMSELoss(reduction=None)(mag_gt, mag_pred).numpy()
    np.testing.assert_allclose(nmse, per_image(gt, lambda i: metrics.nmse(mag_gt[i], mag_pred[i])), rtol=1e-5)


def test_ssim_losses_match_the_numpy_metric(rng):
    gt, pred = pair(rng)
    mag_gt, mag_pred = np.abs(gt), np.abs(pred)
    ssim = per_image(gt, lambda i: metrics.ssim(mag_gt[i], mag_pred[i]))
    np.testing.assert_allclose(SSIMLoss(reduction=None)(mag_gt, mag_pred).numpy(), 1 - ssim, atol=1e-5)
    l1 = np.abs(mag_pred - mag_gt).mean(axis=(1, 2))
    np.testing.assert_allclose(L1SSIMLoss(reduction=None)(mag_gt, mag_pred).numpy(), l1 + 0.5 * (1 - ssim), atol=1e-5)
    np.testing.assert_allclose(
        L1SSIMLoss(beta=2.0, reduction=None)(mag_gt, mag_pred).numpy(), l1 + 2.0 * (1 - ssim), atol=1e-5
    )


@pytest.mark.parametrize("scales", [1, 2, 3])
def test_ms_ssim_matches_numpy_transcription(rng, scales):
    gt, pred = pair(rng, size=SIZE if scales < 3 else 28, noise=0.2)
    mag_gt, mag_pred = np.abs(gt), np.abs(pred)
    weights = np.array(MS_SSIM_WEIGHTS[:scales]) / sum(MS_SSIM_WEIGHTS[:scales])
    expected = per_image(gt, lambda i: np_ms_ssim(mag_gt[i], mag_pred[i], weights, mag_gt[i].max()))
    np.testing.assert_allclose(ms_ssim_tf(mag_gt, mag_pred, scales=scales).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(MSSSIMLoss(scales=scales, reduction=None)(mag_gt, mag_pred).numpy(), 1 - expected,
                               atol=1e-5)
    if scales == 1:  # one scale is plain SSIM: the numpy metric
        np.testing.assert_allclose(expected, per_image(gt, lambda i: metrics.ssim(mag_gt[i], mag_pred[i])), atol=1e-10)


def test_ms_ssim_five_scales_and_custom_weights(rng):
    size = 7 * 16
    gt = np.abs(crandn(rng, (1, size, size))) + 1.0
    pred = gt + 0.2 * rng.standard_normal(gt.shape)
    expected = np_ms_ssim(gt[0], pred[0], MS_SSIM_WEIGHTS, gt.max())
    assert float(ms_ssim_tf(gt, pred)[0]) == pytest.approx(expected, abs=1e-5)
    custom = (0.5, 0.5)
    assert float(ms_ssim_tf(gt, pred, weights=custom)[0]) == pytest.approx(
        np_ms_ssim(gt[0], pred[0], custom, gt.max()), abs=1e-5
    )
    assert float(ms_ssim_tf(gt, gt)[0]) == pytest.approx(1.0, abs=1e-6)


def test_compound_l1_ms_ssim_is_alpha_weighted(rng):
    gt, pred = pair(rng, noise=0.2)
    mag_gt, mag_pred = np.abs(gt), np.abs(pred)
    weights = np.array(MS_SSIM_WEIGHTS[:2]) / sum(MS_SSIM_WEIGHTS[:2])
    ms = per_image(gt, lambda i: np_ms_ssim(mag_gt[i], mag_pred[i], weights, mag_gt[i].max()))
    l1 = np.abs(mag_pred - mag_gt).mean(axis=(1, 2))
    for alpha in (0.98, 0.84, 0.0, 1.0):
        loss = L1MSSSIMLoss(alpha=alpha, scales=2, reduction=None)(mag_gt, mag_pred).numpy()
        np.testing.assert_allclose(loss, alpha * (1 - ms) + (1 - alpha) * l1, atol=1e-5)
    assert L1MSSSIMLoss().alpha == 0.98  # the XPDNet authors' weight, documented in the module


# ------------------------------------------------------------------ complex mode


def test_complex_losses_match_numpy(rng):
    gt, pred = pair(rng)
    diff = pred.astype(np.complex128) - gt
    l1 = np.abs(diff).mean(axis=(1, 2))
    mse = (np.abs(diff) ** 2).mean(axis=(1, 2))
    nmse = (np.abs(diff) ** 2).sum(axis=(1, 2)) / (np.abs(gt) ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(L1Loss(on="complex", reduction=None)(gt, pred).numpy(), l1, rtol=1e-5)
    np.testing.assert_allclose(MSELoss(on="complex", reduction=None)(gt, pred).numpy(), mse, rtol=1e-5)
    np.testing.assert_allclose(NMSELoss(on="complex", reduction=None)(gt, pred).numpy(), nmse, rtol=1e-5)
    data_range = np.abs(gt).max(axis=(1, 2))
    ssim = per_image(gt, lambda i: 0.5 * (
        metrics.ssim(gt[i].real, pred[i].real, maxval=data_range[i])
        + metrics.ssim(gt[i].imag, pred[i].imag, maxval=data_range[i])))
    np.testing.assert_allclose(SSIMLoss(on="complex", reduction=None)(gt, pred).numpy(), 1 - ssim, atol=1e-5)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_imaginary_part_of_a_complex_prediction_matters(rng, name):
    """Keras' Loss.__call__ casts to float32 (dropping imaginary parts): ours must not."""
    gt, pred = pair(rng, noise=0.2)
    kwargs = {"scales": 2} if "ms_ssim" in name else {}
    loss = get_loss(name, on="complex", **kwargs)
    real_only = pred.real.astype(np.complex64)
    assert float(loss(gt, pred)) < float(loss(gt, real_only)) - 1e-3
    # Complex input and its 2-channel (real, imaginary) layout give the same value.
    channels = np.stack([pred.real, pred.imag], axis=-1).astype(np.float32)
    gt_channels = np.stack([gt.real, gt.imag], axis=-1).astype(np.float32)
    assert float(loss(gt_channels, channels)) == pytest.approx(float(loss(gt, pred)), rel=1e-6)
    # In magnitude mode too, the imaginary part enters through |pred|.
    magnitude_loss = get_loss(name, **kwargs)
    assert float(magnitude_loss(np.abs(gt), pred)) != pytest.approx(float(magnitude_loss(np.abs(gt), real_only)))


def test_complex_prediction_through_keras_compile_and_fit(rng):
    """A model with a complex output trained with compile/fit: the loss sees the imaginary part."""
    gt, _ = pair(rng, batch=4, size=16)
    inputs = keras.Input((16, 16, 2))
    outputs = keras.layers.Lambda(lambda t: tf.complex(t[..., 0], t[..., 1]))(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(loss=L1Loss(on="complex"))
    x = np.stack([gt.real, np.zeros_like(gt.real)], axis=-1).astype(np.float32)
    evaluated = model.evaluate(x, gt, verbose=0)
    expected = np.abs(gt.imag).mean()  # prediction = real part only: the error is |imag(gt)|
    assert evaluated == pytest.approx(expected, rel=1e-5)


def test_prediction_is_cropped_to_the_target(rng):
    gt, pred = pair(rng, size=24)
    big = np.pad(pred, ((0, 0), (4, 4), (5, 3)))  # centre crop (24, 24) of (32, 32) starts at (4, 4)
    big = np.roll(big, -1, axis=2)
    assert float(L1Loss()(np.abs(gt), big)) == pytest.approx(float(L1Loss()(np.abs(gt), pred)), rel=1e-6)


def test_gradients_are_finite_and_nonzero(rng):
    gt, pred = pair(rng, noise=0.2)
    for name in LOSSES:
        kwargs = {"scales": 2} if "ms_ssim" in name else {}
        for on in ("magnitude", "complex"):
            variable = tf.Variable(pred)
            with tf.GradientTape() as tape:
                value = get_loss(name, on=on, **kwargs)(gt if on == "complex" else np.abs(gt), variable)
            grad = tape.gradient(value, variable).numpy()
            assert np.isfinite(grad).all() and np.abs(grad).max() > 0, (name, on)


# ------------------------------------------------------------------ config and errors


@pytest.mark.parametrize("loss", [
    L1Loss(on="complex"), MSELoss(), NMSELoss(), SSIMLoss(on="complex"), MSSSIMLoss(scales=3),
    L1MSSSIMLoss(alpha=0.84, scales=2), L1SSIMLoss(beta=0.25),
], ids=lambda loss: loss.name)
def test_losses_serialise(loss, rng):
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(loss)))
    rebuilt = keras.saving.deserialize_keras_object(config)
    assert type(rebuilt) is type(loss) and rebuilt.get_config() == loss.get_config()
    gt, pred = pair(rng)
    target = gt if loss.on == "complex" else np.abs(gt)
    assert float(rebuilt(target, pred)) == pytest.approx(float(loss(target, pred)))


def test_bad_input_raises_clear_errors(rng):
    gt, pred = pair(rng)
    with pytest.raises(ValueError, match="y_true.*complex target"):
        L1Loss(on="complex")(np.abs(gt), pred)
    with pytest.raises(ValueError, match="on: expected"):
        L1Loss(on="phase")
    with pytest.raises(ValueError, match="loss: expected one of"):
        get_loss("l3")
    with pytest.raises(ValueError, match="needs H >= 112"):
        MSSSIMLoss()(np.abs(gt), pred)
    with pytest.raises(ValueError, match="alpha"):
        L1MSSSIMLoss(alpha=1.5)
    with pytest.raises(ValueError, match="y_pred"):
        L1Loss()(np.abs(gt), pred[:, :20, :20])
    with pytest.raises(ValueError, match="y_true"):
        L1Loss()(np.abs(gt)[:, None], pred)
