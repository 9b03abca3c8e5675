"""Learnlets (Ramzi, Starck, Moreau, Ciuciu): a learned wavelet-like transform with noise-scaled thresholds.

The transform sits on a fixed starlet-like pyramid (:func:`pyramid_analysis`,
:func:`pyramid_synthesis`): with h the separable B3-spline low-pass
[1, 4, 6, 4, 1] / 16 (symmetric padding), h~ = h followed by decimation by 2 and u the
bicubic upsampling by 2, scale j keeps the detail g(y_j) = y_j - u(h~(y_j)) and passes
y_{j+1} = h~(y_j) on; after ``n_scales`` scales the coarse band is kept as is. The
synthesis y_j = g_j + u(y_{j+1}) inverts it exactly, whatever u is. u is TensorFlow's
legacy bicubic resize (Keys' kernel with a = -0.75, no half-pixel offset, edges
replicated; the authors' code), written as a fixed filter so its gradient is a
convolution too.

A :class:`Learnlet` layer, at each scale (thesis eqs. 6.1-6.7):

- analysis: ``n_filters`` bias-free, unit-norm ``analysis_kernel_size``^2 filters F_A^j on
  the detail, plus (``identity``) the detail itself as one more channel;
- thresholding: t(c, sigma) = s * ST(c / s, theta * sigma), ST the soft threshold, s the
  standard deviation of that channel when the input is unit white Gaussian noise
  (``coefficient_std``, estimated, not learned: :meth:`Learnlet.estimate_normalisation`,
  re-estimated during training by :class:`NormalisationUpdate`), theta in
  [0, ``max_threshold``] one per scale (and one for the identity channel);
- synthesis: ``synthesis_kernel_size``^2 filters F_S^j summed over the channels; with
  ``exact_reconstruction`` the identity channel's synthesis filter is tied to
  I - sum_k F_S^{j,k} * F_A^{j,k}, so that at sigma = 0 the output is the input whatever
  the weights.

Images are float32 (batch, H, W, C); each of the C channels (e.g. the real and imaginary
parts of a complex image, :func:`~fastmri_zoo.layers.complex_to_channels`) goes through the
same transform on its own. H and W must be multiples of 2^n_scales (:func:`pad_to_multiple` pads
an image of another size, :func:`crop_padding` takes the padding off again).

:class:`LearnletStep` is a learnlet as the image network of an unrolled primal-dual network
(``XPDNet(denoiser="learnlet")``): an ISTA step of its primal buffers; :func:`learnlets_of`
finds the learnlets of any model, whose normalisation :class:`NormalisationUpdate` re-estimates.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
import tensorflow as tf

from .convolution import Conv2D

__all__ = [
    "B3_SPLINE",
    "BICUBIC_A",
    "starlet_lowpass",
    "upsample_bicubic",
    "pyramid_analysis",
    "pyramid_synthesis",
    "check_pyramid_size",
    "pad_to_multiple",
    "crop_padding",
    "fold_channels",
    "unfold_channels",
    "noise_per_image",
    "soft_threshold",
    "hard_threshold",
    "Clip",
    "Learnlet",
    "LEARNLET_ARGUMENTS",
    "learnlet_any_size",
    "pop_learnlet_arguments",
    "learnlet_arguments",
    "learnlets_of",
    "LearnletStep",
    "NormalisationUpdate",
]

#: The starlet's B3-spline low-pass filter (one axis).
B3_SPLINE = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)
#: Keys' cubic-convolution parameter of TensorFlow's legacy bicubic resize.
BICUBIC_A = -0.75


def _keys_cubic(t: float, a: float = BICUBIC_A) -> float:
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a


#: Weights of x[k-1], x[k], x[k+1], x[k+2] giving the upsampled value at k + 1/2.
_HALF_STEP = tuple(_keys_cubic(offset) for offset in (1.5, 0.5, 0.5, 1.5))


def _shape_at(x: tf.Tensor, axis: int):
    static = x.shape[axis]
    return static if static is not None else tf.shape(x)[axis]


def _weighted_shifts(padded: tf.Tensor, weights, axis: int, size) -> tf.Tensor:
    """sum_k weights[k] padded[..., k : k + size, ...] along ``axis`` (a filter on a padded signal)."""
    out = 0.0
    for k, weight in enumerate(weights):
        begin = [0] * 4
        begin[axis] = k
        extent = [-1] * 4
        extent[axis] = size
        out = out + weight * tf.slice(padded, begin, extent)
    return out


def _lowpass_axis(x: tf.Tensor, axis: int) -> tf.Tensor:
    """h along ``axis`` (1 or 2) of (batch, H, W, C), symmetric padding."""
    pads = [[0, 0]] * 4
    pads[axis] = [2, 2]
    return _weighted_shifts(tf.pad(x, pads, mode="SYMMETRIC"), B3_SPLINE, axis, _shape_at(x, axis))


def starlet_lowpass(x: tf.Tensor) -> tf.Tensor:
    """h * x: the separable B3-spline low-pass of x float32 (batch, H, W, C), symmetric padding."""
    return _lowpass_axis(_lowpass_axis(x, 1), 2)


def _upsample_axis(x: tf.Tensor, axis: int) -> tf.Tensor:
    """Bicubic upsampling by 2 along ``axis``: even samples kept, odd ones at k + 1/2, edges replicated."""
    size = _shape_at(x, axis)
    first = tf.gather(x, [0], axis=axis)
    last = tf.gather(x, tf.reshape(size - 1, [1]), axis=axis)
    extended = tf.concat([first, x, last, last], axis=axis)  # x[-1], x[0..n-1], x[n-1], x[n-1]
    odd = _weighted_shifts(extended, _HALF_STEP, axis, size)
    interleaved = tf.stack([x, odd], axis=axis + 1)
    shape = tf.unstack(tf.shape(x))
    shape[axis] = 2 * shape[axis]
    return tf.reshape(interleaved, tf.stack(shape))


def upsample_bicubic(x: tf.Tensor) -> tf.Tensor:
    """u(x): bicubic upsampling by 2 of x float32 (batch, H, W, C) -> (batch, 2H, 2W, C).

    Equal to ``tf.compat.v1.image.resize_bicubic(x, (2H, 2W))`` (legacy corners, a = -0.75).
    """
    return _upsample_axis(_upsample_axis(x, 1), 2)


def check_pyramid_size(height, width, n_scales: int, name: str = "image") -> None:
    """ValueError unless the (static) H and W are multiples of 2^n_scales."""
    factor = 2**n_scales
    for size in (height, width):
        if size is not None and int(size) % factor:
            raise ValueError(
                f"{name}: expected H and W multiples of 2^n_scales = {factor} (n_scales={n_scales}), "
                f"got {height} x {width}."
            )


def pad_to_multiple(x: tf.Tensor, factor: int) -> tuple[tf.Tensor, tuple]:
    """x float32 (batch, H, W, C) zero-padded to H and W multiples of ``factor`` (centred: p // 2 before,
    the rest after, as the U-nets pad), and the padding, for :func:`crop_padding`."""
    sizes = [_shape_at(x, axis) for axis in (1, 2)]
    pads = [(-size) % factor for size in sizes]
    padded = tf.pad(x, [[0, 0]] + [[pad // 2, pad - pad // 2] for pad in pads] + [[0, 0]])
    return padded, (sizes, pads)


def crop_padding(x: tf.Tensor, padding: tuple) -> tf.Tensor:
    """The inverse of :func:`pad_to_multiple`: x (batch, H', W', C) cropped back to the original H, W."""
    (height, width), (pad_h, pad_w) = padding
    return x[:, pad_h // 2 : pad_h // 2 + height, pad_w // 2 : pad_w // 2 + width]


def pyramid_analysis(x: tf.Tensor, n_scales: int) -> tuple[list[tf.Tensor], tf.Tensor]:
    """(details, coarse) of x float32 (batch, H, W, C): details[j] = y_j - u(h~(y_j)) at H / 2^j,
    y_0 = x, y_{j+1} = h~(y_j); coarse = y_{n_scales} at H / 2^n_scales."""
    details = []
    for _ in range(n_scales):
        low = starlet_lowpass(x)[:, ::2, ::2, :]
        details.append(x - upsample_bicubic(low))
        x = low
    return details, x


def pyramid_synthesis(details: list[tf.Tensor], coarse: tf.Tensor) -> tf.Tensor:
    """The inverse of :func:`pyramid_analysis`: y_j = details[j] + u(y_{j+1}), from the coarse band up."""
    x = coarse
    for detail in reversed(details):
        x = detail + upsample_bicubic(x)
    return x


def soft_threshold(x: tf.Tensor, threshold: tf.Tensor) -> tf.Tensor:
    """ST(x, t) = sign(x) max(|x| - t, 0)."""
    return tf.sign(x) * tf.nn.relu(tf.abs(x) - threshold)


def hard_threshold(x: tf.Tensor, threshold: tf.Tensor) -> tf.Tensor:
    """HT(x, t) = x where |x| > t, else 0."""
    return tf.where(tf.abs(x) > threshold, x, tf.zeros_like(x))


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class Clip(keras.constraints.Constraint):
    """Keeps a weight in [min_value, max_value] after each optimiser step (the learnlet thresholds)."""

    def __init__(self, min_value: float = 0.0, max_value: float = 5.0):
        if not float(min_value) <= float(max_value):
            raise ValueError(f"min_value, max_value: expected min_value <= max_value, got {min_value}, {max_value}.")
        self.min_value = float(min_value)
        self.max_value = float(max_value)

    def __call__(self, w):
        return tf.clip_by_value(w, self.min_value, self.max_value)

    def get_config(self):
        return dict(min_value=self.min_value, max_value=self.max_value)


def fold_channels(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(batch, H, W, C) -> (batch * C, H, W, 1) (each channel an image of its own) and the original shape."""
    shape = tf.shape(x)
    folded = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), tf.stack([shape[0] * shape[3], shape[1], shape[2], 1]))
    return folded, shape


def unfold_channels(x: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
    """The inverse of :func:`fold_channels`, given the original ``shape``."""
    return tf.transpose(tf.reshape(x, tf.stack([shape[0], shape[3], shape[1], shape[2]])), [0, 2, 3, 1])


def noise_per_image(sigma: tf.Tensor, batch: tf.Tensor, channels) -> tf.Tensor:
    """sigma (batch,) or (batch, 1) -> (batch * channels, 1, 1, 1), one value per folded image."""
    sigma = tf.reshape(tf.cast(sigma, tf.float32), [-1])
    sigma = tf.broadcast_to(sigma, tf.reshape(batch, [1]))
    return tf.reshape(tf.repeat(sigma, channels), [-1, 1, 1, 1])


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class Learnlet(keras.layers.Layer):
    """The learnlet transform with its scale-wise soft thresholds (see the module docstring).

    ``call(x, sigma)``: x float32 (batch, H, W, C), H and W multiples of 2^n_scales; sigma
    float32 (batch,) or (batch, 1), the noise standard deviation of each item (0: no
    thresholding). Returns the denoised x, same shape.

    Weights per scale j: ``analysis_j`` (k_A, k_A, 1, n_filters) unit-norm kernels,
    ``synthesis_j`` (k_S, k_S, n_in, 1) kernels (n_in = n_filters, + 1 for the identity channel
    unless ``exact_reconstruction`` ties its filter), ``thresholds`` (n_scales, 1 or 2: the
    learned channels' theta, then the identity channel's) in [0, ``max_threshold``], and the
    non-trainable ``coefficient_std_j`` (n_filters [+ 1]) estimated from ``noise_images`` unit
    white noise images of ``noise_size``^2 when the layer is built.
    """

    def __init__(
        self,
        n_scales: int = 5,
        n_filters: int = 256,
        analysis_kernel_size: int = 11,
        synthesis_kernel_size: int = 13,
        identity: bool = True,
        exact_reconstruction: bool = True,
        initial_threshold: float = 2.0,
        initial_identity_threshold: float = 3.0,
        max_threshold: float = 5.0,
        noise_size: int = 128,
        noise_images: int = 4,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for label, value in (("n_scales", n_scales), ("n_filters", n_filters), ("noise_images", noise_images)):
            if int(value) < 1:
                raise ValueError(f"{label}: expected a positive integer, got {value!r}.")
        for label, value in (("analysis_kernel_size", analysis_kernel_size), ("synthesis_kernel_size", synthesis_kernel_size)):
            if int(value) < 1 or int(value) % 2 == 0:
                raise ValueError(f"{label}: expected a positive odd integer, got {value!r}.")
        if exact_reconstruction and not identity:
            raise ValueError("exact_reconstruction: needs the identity analysis filter (identity=True), got identity=False.")
        if not 0.0 <= float(initial_threshold) <= float(max_threshold) or not (
            0.0 <= float(initial_identity_threshold) <= float(max_threshold)
        ):
            raise ValueError(
                f"initial_threshold, initial_identity_threshold: expected values in [0, max_threshold={max_threshold}], "
                f"got {initial_threshold}, {initial_identity_threshold}."
            )
        check_pyramid_size(noise_size, noise_size, int(n_scales), name="noise_size")
        self.n_scales = int(n_scales)
        self.n_filters = int(n_filters)
        self.analysis_kernel_size = int(analysis_kernel_size)
        self.synthesis_kernel_size = int(synthesis_kernel_size)
        self.identity = bool(identity)
        self.exact_reconstruction = bool(exact_reconstruction)
        self.initial_threshold = float(initial_threshold)
        self.initial_identity_threshold = float(initial_identity_threshold)
        self.max_threshold = float(max_threshold)
        self.noise_size = int(noise_size)
        self.noise_images = int(noise_images)
        self.analysis = [
            Conv2D(
                self.n_filters,
                self.analysis_kernel_size,
                padding="same",
                use_bias=False,
                kernel_constraint=keras.constraints.UnitNorm(axis=[0, 1, 2]),
                name=f"analysis_{j}",
            )
            for j in range(self.n_scales)
        ]
        self.synthesis = [
            Conv2D(1, self.synthesis_kernel_size, padding="same", use_bias=False, name=f"synthesis_{j}")
            for j in range(self.n_scales)
        ]

    @property
    def n_channels(self) -> int:
        """Coefficient channels per scale: the learned filters and the identity."""
        return self.n_filters + int(self.identity)

    def build(self, input_shape=None):
        if self.built:
            return
        synthesis_inputs = self.n_filters + int(self.identity and not self.exact_reconstruction)
        for analysis, synthesis in zip(self.analysis, self.synthesis):
            analysis.build((None, None, None, 1))
            synthesis.build((None, None, None, synthesis_inputs))
        initial = [self.initial_threshold] + ([self.initial_identity_threshold] if self.identity else [])
        self.thresholds = self.add_weight(
            shape=(self.n_scales, len(initial)),
            initializer=keras.initializers.Constant(np.tile(initial, (self.n_scales, 1))),
            constraint=Clip(0.0, self.max_threshold),
            name="thresholds",
        )
        self.coefficient_std = [
            self.add_weight(shape=(self.n_channels,), initializer="ones", trainable=False, name=f"coefficient_std_{j}")
            for j in range(self.n_scales)
        ]
        self.built = True
        with tf.init_scope():  # eager, even when Keras builds the layer while tracing a call
            for analysis in self.analysis:
                analysis.kernel.assign(analysis.kernel_constraint(analysis.kernel))  # unit norm from the start
            self.estimate_normalisation(momentum=0.0, seed=0)

    def coefficients(self, x: tf.Tensor) -> list[tf.Tensor]:
        """The unnormalised coefficients of x float32 (batch, H, W, 1): per scale (batch, H / 2^j, W / 2^j,
        n_channels), the analysis filters' outputs then (``identity``) the detail itself."""
        details, _ = pyramid_analysis(x, self.n_scales)
        return [self._analyse(j, detail) for j, detail in enumerate(details)]

    def _analyse(self, j: int, detail: tf.Tensor) -> tf.Tensor:
        coefficients = self.analysis[j](detail)
        return tf.concat([coefficients, detail], axis=-1) if self.identity else coefficients

    def estimate_normalisation(self, momentum: float = 0.0, seed: int | None = None) -> list[np.ndarray]:
        """Re-estimate ``coefficient_std``: s <- momentum s + (1 - momentum) std(coefficients of unit white
        noise), per channel over ``noise_images`` images of ``noise_size``^2 (eager). Returns the new values."""
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"momentum: expected a value in [0, 1), got {momentum!r}.")
        if not self.built:
            self.build()
        noise = np.random.default_rng(seed).standard_normal((self.noise_images, self.noise_size, self.noise_size, 1))
        values = []
        for std, coefficients in zip(self.coefficient_std, self.coefficients(tf.constant(noise, tf.float32))):
            estimate = tf.maximum(tf.math.reduce_std(coefficients, axis=[0, 1, 2]), 1e-12)
            new = estimate if momentum == 0.0 else momentum * std + (1.0 - momentum) * estimate
            std.assign(new)
            values.append(np.asarray(new))
        return values

    def channel_thresholds(self, j: int) -> tf.Tensor:
        """theta of every channel of scale j, (n_channels,)."""
        thresholds = self.thresholds[j]
        learned = tf.fill([self.n_filters], thresholds[0])
        return tf.concat([learned, thresholds[1:]], axis=0) if self.identity else learned

    def call(self, x, sigma):
        x = tf.convert_to_tensor(x, tf.float32)
        if x.shape.rank != 4:
            raise ValueError(f"x: expected float32 (batch, H, W, C), got shape {x.shape}.")
        check_pyramid_size(x.shape[1], x.shape[2], self.n_scales, name="x")
        folded, shape = fold_channels(x)
        noise_std = noise_per_image(sigma, shape[0], shape[3])
        details, coarse = pyramid_analysis(folded, self.n_scales)
        outputs = []
        for j, detail in enumerate(details):
            std = tf.convert_to_tensor(self.coefficient_std[j])
            coefficients = self._analyse(j, detail)
            threshold = self.channel_thresholds(j) * noise_std
            thresholded = std * soft_threshold(coefficients / std, threshold)
            if self.exact_reconstruction:
                # F_S (t(F_A d)) + (I - F_S F_A) t(d): the identity channel's tied synthesis filter.
                learned, kept = thresholded[..., :-1], thresholded[..., -1:]
                outputs.append(self.synthesis[j](learned - self.analysis[j](kept)) + kept)
            else:
                outputs.append(self.synthesis[j](thresholded))
        return unfold_channels(pyramid_synthesis(outputs, coarse), shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            n_scales=self.n_scales,
            n_filters=self.n_filters,
            analysis_kernel_size=self.analysis_kernel_size,
            synthesis_kernel_size=self.synthesis_kernel_size,
            identity=self.identity,
            exact_reconstruction=self.exact_reconstruction,
            initial_threshold=self.initial_threshold,
            initial_identity_threshold=self.initial_identity_threshold,
            max_threshold=self.max_threshold,
            noise_size=self.noise_size,
            noise_images=self.noise_images,
        )
        return config


#: The constructor arguments of a :class:`Learnlet` (those a model holding one takes as its own).
LEARNLET_ARGUMENTS = tuple(name for name in inspect.signature(Learnlet.__init__).parameters if name not in ("self", "kwargs"))


def learnlet_any_size(learnlet: Learnlet, x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """``learnlet(x, sigma)`` for x float32 (batch, H, W, C) of any H, W: zero-padded to multiples of
    2^n_scales (:func:`pad_to_multiple`) and cropped back."""
    padded, padding = pad_to_multiple(x, 2**learnlet.n_scales)
    return crop_padding(learnlet(padded, sigma), padding)


def pop_learnlet_arguments(kwargs: dict) -> dict:
    """The learnlet's arguments (:data:`LEARNLET_ARGUMENTS`) taken out of a constructor's ``kwargs``."""
    return {key: kwargs.pop(key) for key in LEARNLET_ARGUMENTS if key in kwargs}


def learnlet_arguments(learnlet: Learnlet) -> dict:
    """The constructor arguments of ``learnlet`` (its config without the Keras layer's own keys)."""
    config = learnlet.get_config()
    return {key: config[key] for key in LEARNLET_ARGUMENTS}


def learnlets_of(model) -> list[Learnlet]:
    """Every :class:`Learnlet` layer inside ``model`` (a Keras layer or model), in tracking order."""
    if isinstance(model, Learnlet):
        return [model]
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is None:
        return []
    return [layer for layer in flatten(include_self=False, recursive=True) if isinstance(layer, Learnlet)]


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class LearnletStep(keras.layers.Layer):
    """A learnlet as the image network of an unrolled primal-dual network: an ISTA step of each primal buffer.

    x: float32 (batch, H, W, 2 (m + 1)), the input of XPDNet's image networks: the real parts of
    the primal buffers p_0..p_{m-1} and of the data gradient g, then their imaginary parts.
    Returns float32 (batch, H, W, 2 m) = L(M x, sigma) - p, so that XPDNet's residual connection
    sets the buffers to L(M x, sigma), with

    - M a learned 1 x 1 mixing of the channels (``mixing``, no bias), initialised to p_j - eta g
      with eta = ``initial_step_size``: a gradient step on each buffer;
    - L a :class:`Learnlet` (``learnlet``, built from :data:`LEARNLET_ARGUMENTS` given here) on each
      real channel, H and W zero-padded to multiples of 2^n_scales and cropped back;
    - sigma the learned noise level of its thresholds (weight ``noise_level`` >= 0, initialised to
      ``initial_noise_level``): the soft thresholds of an ISTA step.

    ``n_outputs`` = 2 m (XPDNet passes 2 ``n_primal``); the input has ``n_outputs`` + 2 channels.
    """

    def __init__(self, n_outputs: int = 2, initial_step_size: float = 1.0, initial_noise_level: float = 0.02,
                 **kwargs):
        learnlet_kwargs = pop_learnlet_arguments(kwargs)
        super().__init__(**kwargs)
        if int(n_outputs) < 2 or int(n_outputs) % 2:
            raise ValueError(f"n_outputs: expected a positive even number (real and imaginary parts), got {n_outputs!r}.")
        if not float(initial_noise_level) >= 0.0:
            raise ValueError(f"initial_noise_level: expected a non-negative value, got {initial_noise_level!r}.")
        self.n_outputs = int(n_outputs)
        self.initial_step_size = float(initial_step_size)
        self.initial_noise_level = float(initial_noise_level)
        self.learnlet = Learnlet(**learnlet_kwargs, name="learnlet")
        self.mixing = Conv2D(self.n_outputs, 1, use_bias=False, kernel_initializer=self._initial_mixing,
                             name="mixing")
        self.noise_level = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.initial_noise_level),
            constraint=keras.constraints.NonNeg(), name="noise_level",
        )

    def _initial_mixing(self, shape, dtype=None):
        """(1, 1, 2 (m + 1), 2 m): output j = p_j - eta g, on the real parts and on the imaginary parts."""
        buffers = self.n_outputs // 2
        kernel = np.zeros((2 * buffers + 2, 2 * buffers), np.float32)
        for part in (0, 1):  # real parts, then imaginary parts
            for j in range(buffers):
                kernel[part * (buffers + 1) + j, part * buffers + j] = 1.0
                kernel[part * (buffers + 1) + buffers, part * buffers + j] = -self.initial_step_size
        return tf.constant(kernel.reshape(shape), dtype=dtype or tf.float32)

    def build(self, input_shape):
        if self.built:
            return
        channels = int(input_shape[-1])
        if channels != self.n_outputs + 2:
            raise ValueError(
                f"{self.name}: expected n_outputs + 2 = {self.n_outputs + 2} input channels (the real and imaginary "
                f"parts of {self.n_outputs // 2} primal buffer(s) and of the data gradient), got {channels}."
            )
        self.mixing.build((None, None, None, channels))
        self.learnlet.build()
        self.built = True

    def call(self, x, training=None):
        buffers = self.n_outputs // 2
        sigma = tf.ones(tf.shape(x)[:1]) * tf.convert_to_tensor(self.noise_level)
        denoised = learnlet_any_size(self.learnlet, self.mixing(x), sigma)
        primal = tf.concat([x[..., :buffers], x[..., buffers + 1 : 2 * buffers + 1]], axis=-1)
        return denoised - primal

    def get_config(self):
        config = super().get_config()
        config.update(learnlet_arguments(self.learnlet), n_outputs=self.n_outputs,
                      initial_step_size=self.initial_step_size, initial_noise_level=self.initial_noise_level)
        return config


class NormalisationUpdate(keras.callbacks.Callback):
    """Re-estimates the learnlets' noise normalisation as training moves their filters.

    After the first training batch and then every ``every`` batches (counted across epochs), with
    fresh noise each time (s <- momentum s + (1 - momentum) s_new), it updates ``model`` (default:
    the model Keras trains): through its ``update_normalisation(momentum, seed)`` method when it has one
    (:class:`~fastmri_zoo.models.LearnletDenoiser`, the learnlet MRI network), else every
    :class:`Learnlet` inside it (:func:`learnlets_of`; e.g. ``XPDNet(denoiser="learnlet")``).
    ``model`` names the network when Keras trains a wrapper around it (``training.fit``).
    """

    def __init__(self, momentum: float = 0.9, every: int = 1, seed: int = 0, model=None):
        super().__init__()
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"momentum: expected a value in [0, 1), got {momentum!r}.")
        if int(every) < 1:
            raise ValueError(f"every: expected a positive number of batches, got {every!r}.")
        self.momentum = float(momentum)
        self.every = int(every)
        self.seed = int(seed)
        self.updates = 0
        self.batches = 0
        self.network = None
        if model is not None:
            self.network = self._checked(model)

    @staticmethod
    def _checked(model):
        if not callable(getattr(model, "update_normalisation", None)) and not learnlets_of(model):
            raise ValueError(
                f"model: expected a model with learnlets (Learnlet layers or an update_normalisation method), "
                f"got {type(model).__name__}."
            )
        return model

    def set_model(self, model):
        if self.network is None:
            self._checked(model)
        super().set_model(model)

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if (self.batches - 1) % self.every:
            return
        network = self.network if self.network is not None else self.model
        seed = self.seed + self.updates + 1
        update = getattr(network, "update_normalisation", None)
        if callable(update):
            update(momentum=self.momentum, seed=seed)
        else:
            for learnlet in learnlets_of(network):
                learnlet.estimate_normalisation(momentum=self.momentum, seed=seed)
        self.updates += 1
