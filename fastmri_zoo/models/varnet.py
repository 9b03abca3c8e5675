"""End-to-end variational network (Sriram et al. 2020, "End-to-End Variational
Networks for Accelerated MRI Reconstruction").

Coil sensitivities are learned from the autocalibration (ACS) lines by a small
U-net; each cascade updates the multicoil k-space with a soft data-consistency
term and a U-net regulariser acting on the coil-combined image.
"""

from __future__ import annotations


import keras
import tensorflow as tf

from ..checks import real_to_complex64
from ..layers import UNetBlock, complex_denoise
from ..physics import SENSE, ifftc, normalize_by_rss, rss
from .unet import fastmri_unet_settings
from .unrolled import UnrolledModel

__all__ = ["VarNet", "acs_mask"]


def acs_mask(mask, width: int | None = None) -> tf.Tensor:
    """The autocalibration columns of a Cartesian mask: float32 (batch or 1, W).

    The ACS region is the run of fully sampled columns containing the centre
    column W // 2 (a column counts as sampled when every row of it is); the
    result is 1 on that run and 0 elsewhere (all 0 if the centre is not sampled).
    mask: real, broadcastable to (batch, H, W).
    """
    mask = tf.cast(tf.convert_to_tensor(mask), tf.float32)
    if mask.shape.rank == 1:
        mask = mask[None, None]
    elif mask.shape.rank == 2:
        mask = mask[:, None]
    sampled = tf.cast(tf.reduce_min(mask, axis=1) > 0, tf.float32)  # (batch or 1, W)
    width = width if width is not None else tf.shape(sampled)[-1]
    centre = width // 2
    right = tf.math.cumprod(sampled[:, centre:], axis=-1)
    left = tf.reverse(tf.math.cumprod(tf.reverse(sampled[:, :centre], [-1]), axis=-1), [-1])
    # The left run only counts if the centre column itself is sampled.
    left = left * sampled[:, centre : centre + 1]
    return tf.concat([left, right], axis=-1)


def _fastmri_unet(n_outputs: int, chans: int, pools: int, drop_prob: float, name: str) -> UNetBlock:
    """The fastMRI U-net (instance norm, leaky ReLU 0.2, transposed convolutions, no biases
    but the output 1x1 convolution), as in ``UNet.fastmri``."""
    return UNetBlock(n_outputs=n_outputs, name=name, **fastmri_unet_settings(chans, pools, drop_prob))


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class VarNet(UnrolledModel):
    """E2E VarNet. With k^0 = y (the measured, zero-filled coil k-spaces) and
    E(x) = F(S x), R(k) = sum_c conj(S_c) F^-1 k_c, each of ``n_iter``
    cascades t computes (data step and prior from the same k^t)::

        k^{t+1} = k^t - eta_t M (k^t - y) - E(U-net_t(R(k^t)))

    (``eta_t`` learned, initialised to 1; ``U-net_t`` a fastMRI U-net with
    ``chans`` channels and ``pools`` poolings on the real and imaginary parts of
    the combined image, normalised by their mean and std as fastMRI's NormUnet).

    Coil maps S (multicoil):

    - ``sensitivity_source="acs"`` (the paper): from the ACS columns of the
      mask (see :func:`acs_mask`), each coil's low-resolution image goes
      through a NormUnet (``sens_chans``, ``sens_pools``) and the result is
      divided by the root-sum-of-squares over coils. The ``smaps`` input is
      required by the calling convention but not used.
    - ``"smaps"``: the same U-net refines the given ``smaps`` instead (the maps
      are its input, then renormalised by RSS).

    Single-coil (``multicoil=False``): S = 1, no sensitivity network.

    Output: ``output_mode="rss"`` (the paper) the root-sum-of-squares of
    F^-1 k^T as a complex64 image with zero imaginary part; ``"sense"`` the
    complex SENSE combination R(k^T).

    inputs: ``kspace`` complex64 (batch, coils, H, W) with ``smaps`` complex64
    (batch, coils, H, W), or (batch, H, W) single-coil; ``mask`` real
    broadcastable to (batch, H, W). Output: complex64 (batch, H, W).

    Defaults are the paper's (12 cascades, 18 channels, 4 poolings; sensitivity
    U-net 8 channels, 4 poolings). Stable names: ``sensitivity_net``,
    ``image_net_{t}``, weights ``dc_weight_{t}``. ``n_cascades`` (the old name of
    ``n_iter``) still loads from configs.
    """

    RENAMED_ARGUMENTS = {"n_cascades": "n_iter"}

    def __init__(
        self,
        n_iter: int = 12,
        chans: int = 18,
        pools: int = 4,
        sens_chans: int = 8,
        sens_pools: int = 4,
        drop_prob: float = 0.0,
        sensitivity_source: str = "acs",
        output_mode: str = "rss",
        multicoil: bool = True,
        **kwargs,
    ):
        super().__init__(n_iter=n_iter, multicoil=multicoil, **kwargs)
        if sensitivity_source not in ("acs", "smaps"):
            raise ValueError(f"sensitivity_source: expected 'acs' or 'smaps', got {sensitivity_source!r}.")
        if output_mode not in ("rss", "sense"):
            raise ValueError(f"output_mode: expected 'rss' or 'sense', got {output_mode!r}.")
        self.chans = int(chans)
        self.pools = int(pools)
        self.sens_chans = int(sens_chans)
        self.sens_pools = int(sens_pools)
        self.drop_prob = float(drop_prob)
        self.sensitivity_source = sensitivity_source
        self.output_mode = output_mode
        if self.multicoil:
            self.sensitivity_net = _fastmri_unet(2, self.sens_chans, self.sens_pools, self.drop_prob, "sensitivity_net")
        self.image_nets = [
            _fastmri_unet(2, self.chans, self.pools, self.drop_prob, f"image_net_{t}") for t in range(self.n_iter)
        ]
        self.dc_weights = [
            self.add_weight(shape=(), initializer="ones", name=f"dc_weight_{t}") for t in range(self.n_iter)
        ]

    def sensitivity_maps(self, kspace, mask, smaps=None, training=None) -> tf.Tensor:
        """Learned coil maps: complex64 (batch, coils, H, W) with RSS 1 over coils (0 in the background).

        kspace: complex64 (batch, coils, H, W); mask: broadcastable to (batch, H, W);
        smaps: the maps refined when ``sensitivity_source="smaps"``.
        """
        if self.sensitivity_source == "smaps":
            coil_images = tf.cast(smaps, tf.complex64)
        else:
            acs = tf.cast(acs_mask(mask, kspace.shape[-1]), tf.complex64)
            coil_images = ifftc(kspace * acs[:, None, None, :])
        shape = tf.shape(coil_images)
        per_coil = tf.reshape(coil_images, tf.concat([[-1], shape[2:]], axis=0))
        refined = complex_denoise(self.sensitivity_net, per_coil, normalization="mean_std", training=training)
        return normalize_by_rss(tf.reshape(refined, shape))

    @classmethod
    def small_config(cls) -> dict:
        return dict(n_iter=2, chans=4, pools=1, sens_chans=4, sens_pools=1)

    def build_layers(self) -> None:
        if self.multicoil:
            self.sensitivity_net.build((None, None, None, 2))
        for image_net in self.image_nets:
            image_net.build((None, None, None, 2))

    def measurements_and_operator(self, inputs, image_shape=None, training=None):
        """(coil k-space y, SENSE(mask, S) with the learned maps S); single-coil: one coil, S = 1."""
        kspace = tf.cast(tf.convert_to_tensor(inputs["kspace"]), tf.complex64)
        mask = tf.cast(tf.convert_to_tensor(inputs["mask"]), tf.float32)
        if self.multicoil:
            smaps = self.sensitivity_maps(kspace, mask, inputs.get("smaps"), training=training)
        else:
            kspace = kspace[:, None]
            smaps = tf.ones_like(kspace)
        return kspace, SENSE(mask, smaps)

    def initial_state(self, measurements, operator, training=None):
        return measurements

    def data_step(self, t, state, measurements, operator, training=None):
        """The soft data consistency eta_t M (k - y) (the term the cascade subtracts)."""
        eta = real_to_complex64(self.dc_weights[t])
        return eta * operator.mask * (state - measurements)

    def prior_step(self, t, state, training=None, operator=None):
        """E(U-net_t(R(k))) with the unmasked E = F S, R = S^H F^-1 (the term the cascade subtracts)."""
        coils = SENSE(1.0, operator.smaps)
        image = complex_denoise(self.image_nets[t], coils.adjoint(state), normalization="mean_std", training=training)
        return coils.forward(image)

    def iteration(self, t, state, measurements, operator, training=None):
        soft_dc = self.data_step(t, state, measurements, operator, training=training)
        regularizer = self.prior_step(t, state, training=training, operator=operator)
        return state - soft_dc - regularizer

    def output(self, state, measurements, operator):
        if self.output_mode == "sense":
            return SENSE(1.0, operator.smaps).adjoint(state)
        magnitude = rss(ifftc(state), axis=1)
        return tf.complex(magnitude, tf.zeros_like(magnitude))

    def get_config(self):
        config = super().get_config()
        config.update(
            chans=self.chans,
            pools=self.pools,
            sens_chans=self.sens_chans,
            sens_pools=self.sens_pools,
            drop_prob=self.drop_prob,
            sensitivity_source=self.sensitivity_source,
            output_mode=self.output_mode,
            multicoil=self.multicoil,
        )
        return config
