"""Shared inputs and model configurations of the model tests."""

import numpy as np

from fastmri_zoo.models import CascadeNet, KIKINet, PDNet, UNet, XPDNet
from tests.conftest import crandn

SIZE = 32
COILS = 3


def np_fftc(x):
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def np_ifftc(x):
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def make_inputs(rng, multicoil, batch=2, full=False):
    image = crandn(rng, (batch, SIZE, SIZE))
    mask = np.ones((batch, 1, SIZE), np.float32) if full else (rng.uniform(size=(batch, 1, SIZE)) < 0.4).astype(np.float32)
    mask[..., SIZE // 2 - 2 : SIZE // 2 + 2] = 1.0
    if not multicoil:
        return image, {"kspace": (np_fftc(image) * mask).astype(np.complex64), "mask": mask}
    smaps = crandn(rng, (batch, COILS, SIZE, SIZE))
    smaps = (smaps / np.sqrt((np.abs(smaps) ** 2).sum(1, keepdims=True))).astype(np.complex64)
    kspace = (np_fftc(image[:, None] * smaps) * mask[:, None]).astype(np.complex64)
    return image, {"kspace": kspace, "mask": mask, "smaps": smaps}


def zero_weights(model):
    for variable in model.trainable_variables:
        variable.assign(np.zeros(variable.shape, np.float32))


def small_models():
    """Reduced configurations (fast) of every family, single- and multicoil."""
    unet_small = dict(layers_n_channels=[4, 8, 16])
    return [
        ("unet", UNet, dict(unet_small), False),
        ("unet_complex_mc", UNet, dict(unet_small, input_mode="complex", multicoil=True), True),
        ("unet_fastmri", UNet, dict(layers_n_channels=[4, 8], activation="leaky_relu:0.2", pool="avg",
                                    upsampling="transpose", skip_first=False, head_channels=None,
                                    normalization="instance", use_bias=False), False),
        ("cascadenet", CascadeNet, dict(n_cascade=2, n_convs=2, n_filters=8), False),
        ("cascadenet_noisy_mc", CascadeNet, dict(n_cascade=2, n_convs=2, n_filters=8, noiseless=False,
                                                 multicoil=True), True),
        ("kikinet", KIKINet, dict(n_iter=2, n_convs=2, n_filters=8), False),
        ("pdnet", PDNet, dict(n_iter=2, n_filters=8), False),
        ("pdnet_mc", PDNet, dict(n_iter=2, n_filters=8, multicoil=True), True),
        ("updnet", XPDNet, dict(denoiser="unet", denoiser_kwargs=dict(layers_n_channels=[4, 8]), n_iter=2), False),
        ("updnet_mc_refined", XPDNet, dict(denoiser="unet", denoiser_kwargs=dict(layers_n_channels=[4, 8]), n_iter=2,
                                           multicoil=True, refine_smaps=True), True),
        ("xpdnet_dncnn_dual", XPDNet, dict(denoiser="dncnn", denoiser_kwargs=dict(n_convs=3, n_filters=8), n_iter=2,
                                           primal_only=False, n_dual=2, kspace_net_kwargs=dict(n_filters=8)), False),
    ]


SMALL = small_models()


def exported_model_classes(kind: str = "cartesian") -> set:
    """Every concrete model class exported by ``fastmri_zoo.models`` (the bases excluded)
    taking Cartesian (``kind="cartesian"``) or non-Cartesian (``"noncartesian"``) k-space."""
    import inspect

    from fastmri_zoo import models

    def noncartesian(cls):
        return issubclass(cls, (models.NonCartesianModel, models.GriddedPDNet))

    return {
        obj
        for name in models.__all__
        for obj in [getattr(models, name)]
        if inspect.isclass(obj) and issubclass(obj, models.ReconstructionModel)
        and obj not in (models.ReconstructionModel, models.CartesianModel, models.NonCartesianModel)
        and noncartesian(obj) == (kind == "noncartesian")
    }


def adam_losses(model, inputs, target, steps: int = 20, learning_rate: float = 3e-3) -> list[float]:
    """L1 losses on the magnitude over ``steps`` Adam steps of ``model`` on one fixed batch."""
    import keras
    import tensorflow as tf

    from fastmri_zoo.training.fit import l1_magnitude_step

    inputs = {key: tf.convert_to_tensor(value) for key, value in inputs.items()}
    target = tf.convert_to_tensor(target)
    model(inputs)
    step = l1_magnitude_step(model, keras.optimizers.Adam(learning_rate))
    return [float(step(inputs, target)) for _ in range(steps)]
