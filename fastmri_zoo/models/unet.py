"""U-nets (Ronneberger et al. 2015): on the zero-filled image (thesis and fastMRI configurations), and as
a denoiser of (image, sigma), the baseline of the learnlets (thesis Appendix A)."""

from __future__ import annotations

import inspect
from typing import Sequence

import keras

from ..layers import UNetBlock, complex_denoise
from ..layers.learnlets import fold_channels, noise_per_image, unfold_channels
from .base import ReconstructionModel, crop_center
from .denoising import Denoiser

__all__ = ["UNet", "UNetDenoiser", "UNET_ARGUMENTS"]

#: The constructor arguments of :class:`UNetDenoiser` that configure its :class:`~fastmri_zoo.layers.UNetBlock`.
UNET_ARGUMENTS = tuple(name for name in inspect.signature(UNetBlock.__init__).parameters
                       if name not in ("self", "kwargs", "n_outputs", "ndim"))


def fastmri_unet_settings(chans: int = 32, num_pool_layers: int = 4, drop_prob: float = 0.0) -> dict:
    """``UNetBlock`` / ``UNet`` arguments of the fastMRI U-net (Zbontar et al. 2018): ``chans``
    channels at the top, ``num_pool_layers`` average poolings, instance norm, leaky ReLU 0.2,
    transposed convolutions, no biases but the last 1x1 convolution."""
    return dict(
        layers_n_channels=[chans * 2**i for i in range(num_pool_layers + 1)],
        layers_n_non_lins=2,
        activation="leaky_relu:0.2",
        pool="avg",
        upsampling="transpose",
        skip_first=False,
        head_channels=None,
        normalization="instance",
        use_bias=False,
        dropout=drop_prob,
    )


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class UNet(ReconstructionModel):
    """Image-domain U-net applied to the zero-filled reconstruction A^H y.

    inputs: ``kspace`` complex64 (batch, H, W) [or (batch, coils, H, W) with
    ``smaps`` when ``multicoil``], ``mask``; output: complex64 (batch, H, W).

    ``input_mode="magnitude"``: the network sees |A^H y| (1 channel) and its
    real output is returned as a complex image with zero imaginary part (the
    thesis benchmark, 481,801 parameters with the defaults);
    ``"complex"``: real and imaginary parts as 2 channels in and out.
    ``residual`` adds the network input to its output. The remaining arguments
    are those of :class:`fastmri_zoo.layers.UNetBlock`; :meth:`fastmri` gives
    the fastMRI baseline configuration.

    Two options reproduce the authors' fastMRI U-net checkpoint: ``input_crop``
    = (h, w) centre-crops the zero-filled image before the network (fastMRI's
    convention, start (N - n) // 2; the output is then (batch, h, w)), and
    ``input_normalization="mean_std"`` (magnitude mode) feeds the network
    (|x| - mean) / (std + 1e-11) with the mean and standard deviation of each
    slice, and maps its output back with ``* std + mean`` (as the authors'
    evaluation did). Both default to off.
    """

    def __init__(
        self,
        layers_n_channels: Sequence[int] = (16, 32, 64, 128),
        layers_n_non_lins: int = 2,
        input_mode: str = "magnitude",
        activation: str = "relu",
        pool: str = "max",
        upsampling: str = "upsample_conv",
        skip_first: bool = True,
        head_channels: int | None = 4,
        head_activation: bool = False,
        normalization: str | None = None,
        use_bias: bool = True,
        dropout: float = 0.0,
        residual: bool = False,
        multicoil: bool = False,
        input_crop: Sequence[int] | None = None,
        input_normalization: str | None = None,
        **kwargs,
    ):
        super().__init__(multicoil=multicoil, **kwargs)
        if input_mode not in ("magnitude", "complex"):
            raise ValueError(f"input_mode: expected 'magnitude' or 'complex', got {input_mode!r}.")
        if input_normalization not in (None, "mean_std"):
            raise ValueError(f"input_normalization: expected None or 'mean_std', got {input_normalization!r}.")
        if input_normalization is not None and input_mode != "magnitude":
            raise ValueError(
                f"input_normalization: {input_normalization!r} applies to input_mode='magnitude' only, "
                f"got input_mode={input_mode!r}."
            )
        if input_crop is not None and (len(input_crop) != 2 or min(int(c) for c in input_crop) < 1):
            raise ValueError(f"input_crop: expected None or (h, w) with positive sizes, got {input_crop!r}.")
        self.input_crop = None if input_crop is None else [int(c) for c in input_crop]
        self.input_normalization = input_normalization
        self.layers_n_channels = [int(c) for c in layers_n_channels]
        self.layers_n_non_lins = layers_n_non_lins
        self.input_mode = input_mode
        self.activation = activation
        self.pool = pool
        self.upsampling = upsampling
        self.skip_first = skip_first
        self.head_channels = head_channels
        self.head_activation = head_activation
        self.normalization = normalization
        self.use_bias = use_bias
        self.dropout = dropout
        self.residual = residual
        self.image_net = UNetBlock(
            n_outputs=1 if input_mode == "magnitude" else 2,
            layers_n_channels=self.layers_n_channels,
            layers_n_non_lins=layers_n_non_lins,
            activation=activation,
            pool=pool,
            upsampling=upsampling,
            skip_first=skip_first,
            head_channels=head_channels,
            head_activation=head_activation,
            normalization=normalization,
            use_bias=use_bias,
            dropout=dropout,
            name="image_net",
        )

    @classmethod
    def fastmri(cls, chans: int = 32, num_pool_layers: int = 4, drop_prob: float = 0.0, **kwargs) -> "UNet":
        """The fastMRI baseline U-net (Zbontar et al. 2018): ``chans`` channels at the top,
        ``num_pool_layers`` average poolings, instance norm, leaky ReLU 0.2, transposed
        convolutions, [up, skip] concatenation, no biases but the last 1x1 convolution."""
        config = fastmri_unet_settings(chans, num_pool_layers, drop_prob)
        config.update(kwargs)
        return cls(**config)

    @classmethod
    def small_config(cls) -> dict:
        return dict(layers_n_channels=[4, 8, 16])

    def build_layers(self) -> None:
        self.image_net.build((None, None, None, 1 if self.input_mode == "magnitude" else 2))

    def call(self, inputs, training=None, image_shape=None):
        kspace, operator = self.operator(inputs)
        zero_filled = operator.adjoint(kspace)
        if self.input_crop is not None:
            zero_filled = crop_center(zero_filled, self.input_crop)
        return complex_denoise(
            self.image_net, zero_filled, mode=self.input_mode, residual=self.residual,
            normalization=self.input_normalization, training=training,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            layers_n_channels=list(self.layers_n_channels),
            layers_n_non_lins=self.layers_n_non_lins,
            input_mode=self.input_mode,
            activation=self.activation,
            pool=self.pool,
            upsampling=self.upsampling,
            skip_first=self.skip_first,
            head_channels=self.head_channels,
            head_activation=self.head_activation,
            normalization=self.normalization,
            use_bias=self.use_bias,
            dropout=self.dropout,
            residual=self.residual,
            multicoil=self.multicoil,
            input_crop=None if self.input_crop is None else list(self.input_crop),
            input_normalization=self.input_normalization,
        )
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class UNetDenoiser(Denoiser):
    """A U-net denoiser of (image, sigma) (:mod:`~fastmri_zoo.models.denoising`): the baseline a learnlet is
    compared with.

    Each real channel of the image goes through the same 1-in, 1-out :class:`~fastmri_zoo.layers.UNetBlock`
    f (``image_net``; its arguments, :data:`UNET_ARGUMENTS`, are this model's, with the defaults of
    :class:`UNet`: 4 scales of 16 to 128 channels), which pads H and W itself (any size):

    - ``exact_reconstruction=False``: f(x), sigma unused (a "U-net without sigma");
    - ``exact_reconstruction=True``: x - sigma f(x) (thesis sec. 6.1.4: the residual that makes any
      network return its input at sigma = 0, at the cost of degrading at high noise).
    """

    def __init__(self, exact_reconstruction: bool = False, **kwargs):
        block_kwargs = {key: kwargs.pop(key) for key in UNET_ARGUMENTS if key in kwargs}
        super().__init__(**kwargs)
        self.exact_reconstruction = bool(exact_reconstruction)
        self.image_net = UNetBlock(n_outputs=1, **block_kwargs, name="image_net")

    @classmethod
    def small_config(cls) -> dict:
        return dict(layers_n_channels=[4, 8])

    def build(self, input_shape=None):
        self.image_net.build((None, None, None, 1))
        self.built = True

    def denoise(self, x, sigma):
        folded, shape = fold_channels(x)
        out = self.image_net(folded)
        if self.exact_reconstruction:
            out = folded - noise_per_image(sigma, shape[0], shape[3]) * out
        return unfold_channels(out, shape)

    def get_config(self):
        block = self.image_net.get_config()
        config = super().get_config()
        config.update({key: block[key] for key in UNET_ARGUMENTS}, exact_reconstruction=self.exact_reconstruction)
        return config

