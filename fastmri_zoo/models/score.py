"""A noise-conditional score network for complex MR images (thesis Appendix B), its training loss
(residual denoising score matching, eq. 6.10) and the spectral-norm projection of its weights.

After Ramzi, Remy, Lanusse, Starck & Ciuciu, "Denoising score-matching for uncertainty
quantification in inverse problems" (NeurIPS 2020 workshop). The network is a prior for
``posterior.sample_posterior``: ``model.score(x, sigma)`` is r(x, sigma), the score of the
image distribution smoothed by white noise of std sigma in each of the real and imaginary
parts, and x + sigma^2 r(x, sigma) is the denoised image (Tweedie).

The network is a zoo model of task ``"prior"`` (``models.base.ZooModel``): ``save_to_preset``
(with ``example_inputs={"image": ..., "sigma": ...}`` at the size it was trained on, which the
preset records) and ``from_preset`` / ``fastmri_zoo.load`` as for the reconstruction networks;
the one trainer (``training.fit``, recipes with ``"loss": "dsm"``) trains it on images.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from ..checks import check_scalar
from ..layers.complex import channels_to_complex, complex_to_channels
from ..layers.convolution import Conv2D
from .base import ZooModel

__all__ = ["ScoreNetwork", "clean_images", "denoising_score_matching_loss", "project_spectral_norm",
           "SpectralNormProjection"]


def _sigma_map(sigma: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """sigma (batch,) as a constant channel (batch, H, W, 1) of ``like``'s size."""
    return tf.ones_like(like[..., :1]) * tf.reshape(sigma, [-1, 1, 1, 1])


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class ScoreResidualBlock(keras.layers.Layer):
    """relu(conv_1(relu(conv_0(x))) + shortcut(x)): 3x3 convolutions to ``channels``; the shortcut
    is x, or a 1x1 convolution of it when its channels differ. float32 (batch, H, W, C) in and out."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = check_scalar("channels", channels, integer=True, at_least=1)
        self.conv_0 = Conv2D(self.channels, 3, padding="same", name="conv_0")
        self.conv_1 = Conv2D(self.channels, 3, padding="same", name="conv_1")
        self.shortcut = None

    def build(self, input_shape):
        inputs = int(input_shape[-1])
        if inputs != self.channels:
            self.shortcut = Conv2D(self.channels, 1, name="shortcut")
            self.shortcut.build(input_shape)
        self.conv_0.build(input_shape)
        self.conv_1.build(tuple(input_shape[:-1]) + (self.channels,))

    def call(self, x):
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return tf.nn.relu(self.conv_1(tf.nn.relu(self.conv_0(x))) + shortcut)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def clean_images(data) -> tf.Tensor:
    """The clean images of a training batch: complex64 (batch, H, W) from images, ``(images, ...)``,
    ``{"image": images}`` or ``({"image": images}, target)`` (the elements of ``data.synthesized_image_dataset``)."""
    inputs = data[0] if isinstance(data, tuple) else data
    return tf.cast(inputs["image"] if isinstance(inputs, dict) else inputs, tf.complex64)


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class ScoreNetwork(ZooModel):
    """Residual U-net score r(x, sigma) of complex images, conditioned on a signed sigma.

    inputs: {"image": complex64 (batch, H, W), "sigma": float32 (batch,)}; output: complex64
    (batch, H, W), the network's output divided by |sigma| + ``sigma_floor`` (the floor keeps
    sigma = 0, which training draws near, finite). The image enters as two channels (real,
    imaginary) with a map of sigma; a map of sigma is concatenated again at the lowest scale.

    layers_n_channels: channels per scale, top to bottom (the thesis: [32, 64, 128]); H and W
    are zero-padded to a multiple of 2^(scales - 1) and cropped back. Each scale has
    ``n_blocks`` residual blocks (3x3 conv, ReLU, 3x3 conv, plus the input through a 1x1 conv
    when the channels change, ReLU) on the way down and again on the way up; average pooling
    down, nearest up-sampling up, skip connections concatenated. ``sigma_scale``: s, the std of
    the signed sigma ~ N(0, s^2) drawn by ``fit`` (``train_step``: the DSM loss); ``evaluate``
    (``test_step``) draws sigma and the noise from a fixed seed, so that a validation loss is
    comparable from one epoch to the next.
    """

    TASK = "prior"
    #: the seed of the noise levels and noise of ``test_step`` (the same draws at every evaluation)
    VALIDATION_SEED = (17, 0)

    def __init__(
        self,
        layers_n_channels: Sequence[int] = (32, 64, 128),
        n_blocks: int = 2,
        sigma_floor: float = 1e-3,
        sigma_scale: float = 0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.layers_n_channels = [check_scalar("layers_n_channels", c, integer=True, at_least=1) for c in layers_n_channels]
        if not self.layers_n_channels:
            raise ValueError("layers_n_channels: expected at least one scale, got [].")
        self.n_blocks = check_scalar("n_blocks", n_blocks, integer=True, at_least=1)
        self.sigma_floor = check_scalar("sigma_floor", sigma_floor, above=0)
        self.sigma_scale = check_scalar("sigma_scale", sigma_scale, above=0)
        channels = self.layers_n_channels
        self.n_scales = len(channels)
        self.input_conv = Conv2D(channels[0], 3, padding="same", name="input_conv")
        self.down_blocks = [self._blocks(c, f"down_{i}") for i, c in enumerate(channels[:-1])]
        self.bottom_blocks = self._blocks(channels[-1], "bottom")
        self.up_blocks = [self._blocks(channels[i], f"up_{i}") for i in reversed(range(self.n_scales - 1))]
        self.output_conv = Conv2D(2, 3, padding="same", name="output_conv")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def _blocks(self, channels: int, prefix: str) -> list:
        return [ScoreResidualBlock(channels, name=f"{prefix}_block_{j}") for j in range(self.n_blocks)]

    @staticmethod
    def _run(blocks, x):
        for block in blocks:
            x = block(x)
        return x

    def build(self, input_shape=None):
        # The weights do not depend on the image size: one call on the smallest image builds them.
        size = 2 ** (self.n_scales - 1)
        self.call({"image": tf.zeros((1, size, size), tf.complex64), "sigma": tf.ones((1,))})

    def call(self, inputs, training=None):
        image = tf.cast(inputs["image"], tf.complex64)
        sigma = tf.reshape(tf.cast(inputs["sigma"], tf.float32), [-1])
        factor = 2 ** (self.n_scales - 1)
        sizes = [tf.shape(image)[axis] for axis in (1, 2)]
        pads = [(-size) % factor for size in sizes]
        x = complex_to_channels(image[..., None])
        x = tf.pad(x, [[0, 0]] + [[pad // 2, pad - pad // 2] for pad in pads] + [[0, 0]])
        x = self.input_conv(tf.concat([x, _sigma_map(sigma, x)], axis=-1))
        skips = []
        for blocks in self.down_blocks:
            x = self._run(blocks, x)
            skips.append(x)
            x = tf.nn.avg_pool2d(x, 2, 2, "VALID")
        x = self._run(self.bottom_blocks, tf.concat([x, _sigma_map(sigma, x)], axis=-1))
        for blocks, skip in zip(self.up_blocks, reversed(skips)):
            x = tf.image.resize(x, tf.shape(skip)[1:3], method="nearest")
            x = self._run(blocks, tf.concat([x, skip], axis=-1))
        x = self.output_conv(x)
        x = x[:, pads[0] // 2 : pads[0] // 2 + sizes[0], pads[1] // 2 : pads[1] // 2 + sizes[1]]
        scale = tf.complex(tf.abs(sigma) + self.sigma_floor, 0.0)
        return channels_to_complex(x)[..., 0] / tf.reshape(scale, [-1, 1, 1])

    def score(self, x, sigma) -> tf.Tensor:
        """r(x, sigma): x complex64 (batch, H, W), sigma float32 (batch,) -> complex64 (batch, H, W)."""
        return self({"image": x, "sigma": sigma})

    def train_step(self, data):
        """One Adam (or any optimizer) step on the DSM loss of a batch of clean images (:func:`clean_images`)."""
        images = clean_images(data)
        sigma = self.sigma_scale * tf.random.normal(tf.shape(images)[:1])
        noise = tf.complex(tf.random.normal(tf.shape(images)), tf.random.normal(tf.shape(images)))
        with tf.GradientTape() as tape:
            loss = denoising_score_matching_loss(self.score, images, noise, sigma)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        """The DSM loss of a batch of clean images, sigma and noise drawn from :attr:`VALIDATION_SEED`."""
        images = clean_images(data)
        shape = tf.shape(images)
        sigma = self.sigma_scale * tf.random.stateless_normal(shape[:1], self.VALIDATION_SEED)
        seeds = tf.random.experimental.stateless_split(self.VALIDATION_SEED, 2)
        noise = tf.complex(tf.random.stateless_normal(shape, seeds[0]), tf.random.stateless_normal(shape, seeds[1]))
        self.loss_tracker.update_state(denoising_score_matching_loss(self.score, images, noise, sigma))
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker]

    def get_config(self):
        config = super().get_config()
        config.update(
            layers_n_channels=list(self.layers_n_channels),
            n_blocks=self.n_blocks,
            sigma_floor=self.sigma_floor,
            sigma_scale=self.sigma_scale,
        )
        return config

    @classmethod
    def small_config(cls) -> dict:
        return {"layers_n_channels": [4, 8, 8], "n_blocks": 1}


def denoising_score_matching_loss(score, images, noise, sigma) -> tf.Tensor:
    """Residual noise-conditional DSM (eq. 6.10): mean over the batch of || u + sigma r(x + sigma u, sigma) ||^2.

    score: (x, sigma) -> r; images: x, complex64 (batch, H, W); noise: u, complex64 (batch, H, W)
    with N(0, 1) real and imaginary parts; sigma: float32 (batch,), signed (drawn from N(0, s^2)).
    The squared norm sums over pixels and both parts. Returns a float32 scalar.
    """
    images = tf.cast(images, tf.complex64)
    noise = tf.cast(noise, tf.complex64)
    sigma = tf.reshape(tf.cast(sigma, tf.float32), [-1])
    scale = tf.complex(tf.reshape(sigma, [-1, 1, 1]), 0.0)
    residual = noise + scale * score(images + scale * noise, sigma)
    return tf.reduce_mean(tf.reduce_sum(tf.square(tf.abs(residual)), axis=[1, 2]))


def project_spectral_norm(model: keras.Model, norm: float = 2.0) -> None:
    """Rescale every convolution kernel of ``model`` to the spectral norm ``norm``.

    The norm is the largest singular value of the kernel reshaped as a matrix
    (k_h k_w C_in, C_out) (as haiku's and Miyato et al.'s spectral normalisation), computed
    exactly by an SVD; it bounds, but is not, the operator norm of the convolution.
    """
    norm = check_scalar("norm", norm, above=0)
    for variable in model.trainable_variables:
        if variable.name != "kernel" or len(variable.shape) < 2:
            continue
        matrix = tf.reshape(variable, [-1, variable.shape[-1]])
        largest = tf.linalg.svd(matrix, compute_uv=False)[0]
        variable.assign(variable * (norm / largest))


class SpectralNormProjection(keras.callbacks.Callback):
    """Keras callback: :func:`project_spectral_norm` before training and after every optimiser step
    (the thesis rescales each weight tensor to a spectral norm of about 2)."""

    def __init__(self, norm: float = 2.0):
        super().__init__()
        self.norm = check_scalar("norm", norm, above=0)

    def on_train_begin(self, logs=None):
        project_spectral_norm(self.model, self.norm)

    def on_train_batch_end(self, batch, logs=None):
        project_spectral_norm(self.model, self.norm)
