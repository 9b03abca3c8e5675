"""Shared inputs of the model tests, for every acquisition (Cartesian, non-Cartesian, gridded)."""

import numpy as np

from fastmri_zoo.physics import NUFFT, radial_density
from fastmri_zoo.sampling import radial_trajectory
from tests.conftest import crandn

SIZE = 32
COILS = 3
#: image size of the non-Cartesian inputs
NC_SIZE = 16


def np_fftc(x):
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def np_ifftc(x):
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def make_inputs(rng, multicoil, batch=2, full=False):
    """(image complex64 (batch, SIZE, SIZE), Cartesian inputs dict) of a random image."""
    image = crandn(rng, (batch, SIZE, SIZE))
    mask = np.ones((batch, 1, SIZE), np.float32) if full else (rng.uniform(size=(batch, 1, SIZE)) < 0.4).astype(np.float32)
    mask[..., SIZE // 2 - 2 : SIZE // 2 + 2] = 1.0
    if not multicoil:
        return image, {"kspace": (np_fftc(image) * mask).astype(np.complex64), "mask": mask}
    smaps = crandn(rng, (batch, COILS, SIZE, SIZE))
    smaps = (smaps / np.sqrt((np.abs(smaps) ** 2).sum(1, keepdims=True))).astype(np.complex64)
    kspace = (np_fftc(image[:, None] * smaps) * mask[:, None]).astype(np.complex64)
    return image, {"kspace": kspace, "mask": mask, "smaps": smaps}


def make_noncartesian_inputs(rng, multicoil=False, batch=1, shape=(NC_SIZE, NC_SIZE)):
    """(target magnitude, inputs) of random smooth-ish images on a radial AF-2 trajectory."""
    traj = radial_trajectory(shape[-1], 2).reshape(2, -1)
    dcomp = radial_density(traj, shape).numpy()
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    images = np.stack([
        np.exp(-((y - rng.uniform(-0.3, 0.3)) ** 2 + (x - rng.uniform(-0.3, 0.3)) ** 2) / 0.2) * np.exp(1j * x)
        for _ in range(batch)
    ]).astype(np.complex64)
    inputs = {"traj": traj, "dcomp": dcomp}
    if multicoil:
        smaps = crandn(rng, (batch, COILS, *shape))
        smaps = (smaps / np.sqrt((np.abs(smaps) ** 2).sum(1, keepdims=True))).astype(np.complex64)
        inputs["smaps"] = smaps
    inputs["kspace"] = NUFFT(traj, shape, smaps=inputs.get("smaps")).forward(images).numpy()
    return np.abs(images), inputs


def inputs_for(model, rng, batch=2):
    """(target magnitude, inputs) fitting ``model``'s acquisition (kind, multicoil)."""
    if model.acquisition.kind == "cartesian":
        image, inputs = make_inputs(rng, model.multicoil, batch=batch)
        return np.abs(image), inputs
    return make_noncartesian_inputs(rng, model.multicoil, batch=batch)


def zero_weights(model):
    for variable in model.trainable_variables:
        variable.assign(np.zeros(variable.shape, np.float32))


def perturb_all_weights(model, rng):
    """Move every variable (kernels, scalar step sizes, batch-norm statistics) away from its
    initial value, so a loader that silently kept fresh or default weights would be caught."""
    for variable in model.weights:
        value = variable.numpy()
        noise = rng.uniform(0.05, 0.15, size=value.shape).astype(value.dtype)
        variable.assign(np.abs(value) + noise if "variance" in variable.path else value + noise)


def adam_losses(model, inputs, target, steps: int = 20, learning_rate: float = 3e-3) -> list[float]:
    """L1 losses on the magnitude over ``steps`` Adam steps of ``model`` on one fixed batch."""
    import keras
    import tensorflow as tf

    inputs = {key: tf.convert_to_tensor(value) for key, value in inputs.items()}
    target = tf.convert_to_tensor(target, tf.float32)
    optimizer = keras.optimizers.Adam(learning_rate)
    model.build(None)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=False)
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(tf.abs(model(inputs, training=True)) - target))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        return loss

    return [float(step()) for _ in range(steps)]
