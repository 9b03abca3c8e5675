"""Searched networks (Yan et al. 2020, NAS for CS-MRI) and their DCCNN-3res baseline on one backbone.

The backbone (sec. 3.1): a DCCNN unrolling of ``n_iter`` unshared cascades; each cascade is a
:class:`~fastmri_zoo.layers.CellNetwork` (3x3 convolution 2 -> ``n_filters``, ``n_cells``
stacked cells, ReLU and 3x3 convolution -> 2) used as a residual prior, then k-space
replacement data consistency (:class:`~fastmri_zoo.layers.KSpaceReplacement`).

- :class:`NasNet`: the cells of a genotype (:class:`~fastmri_zoo.layers.GenotypeCell`), or, with
  ``genotype=None``, the search network: every cell a
  :class:`~fastmri_zoo.layers.SearchCell` sharing one matrix of architecture logits ``alpha``
  (``architecture_weights``), kept apart from the network weights (``network_weights``).
- :class:`ResidualDCCNN`: DCCNN-3res, the cells replaced by residual blocks
  (170,022 parameters with the defaults, the paper's 170.0K).
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np

from ..layers import CellNetwork, Genotype, KSpaceReplacement, complex_denoise, derive_genotype, edge_count
from ..layers.nas import search_space_config, search_space_operations
from .unrolled import UnrolledModel

__all__ = ["NasNet", "ResidualDCCNN"]


class _CellCascade(UnrolledModel):
    """``n_iter`` x (residual :class:`CellNetwork` prior, k-space replacement); subclasses say the cell."""

    STEP_ORDER = ("prior", "data")

    def __init__(self, n_iter: int = 3, n_cells: int = 3, n_filters: int = 32, noiseless: bool = True,
                 multicoil: bool = False, **kwargs):
        super().__init__(n_iter=n_iter, multicoil=multicoil, **kwargs)
        self.n_cells = int(n_cells)
        self.n_filters = int(n_filters)
        self.noiseless = noiseless
        self.data_consistency = [
            KSpaceReplacement(noiseless=noiseless, name=f"data_consistency_{i}") for i in range(self.n_iter)
        ]

    def make_image_nets(self, **cell_network) -> None:
        self.image_nets = [
            CellNetwork(channels=self.n_filters, n_cells=self.n_cells, n_outputs=2, name=f"image_net_{i}",
                        **cell_network)
            for i in range(self.n_iter)
        ]

    def build_layers(self) -> None:
        for image_net in self.image_nets:
            if not image_net.built:
                image_net.build((None, None, None, 2))

    def data_step(self, i, state, measurements, operator, training=None):
        return self.data_consistency[i](state, measurements, operator=operator)

    def get_config(self):
        config = super().get_config()
        config.update(n_cells=self.n_cells, n_filters=self.n_filters, noiseless=self.noiseless,
                      multicoil=self.multicoil)
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class NasNet(_CellCascade):
    """NasN (Yan et al. 2020): DCCNN cascades whose denoisers stack searched cells.

    ``genotype``: a :class:`~fastmri_zoo.layers.Genotype`, its JSON form or nested lists
    (``[[["sep_conv_3x3", 0], ["skip_connect", 1]], ...]``): every cell of every cascade is that
    discrete cell, of ``len(genotype)`` nodes. ``genotype=None``: the search network, cells of
    ``n_nodes`` (default 3) nodes over ``search_space`` (``"A"``, ``"B"``, ``"fedautomri"`` or a
    list of operation names) sharing the logits ``alpha`` (``edge_count(n_nodes)``,
    n_operations); :meth:`derived_genotype` reads the genotype off them.

    inputs: ``kspace`` complex64 (batch, H, W) [or (batch, coils, H, W) with ``smaps`` when
    ``multicoil``], ``mask``; output: complex64 (batch, H, W).
    """

    def __init__(
        self,
        n_iter: int = 3,
        n_cells: int = 3,
        n_filters: int = 32,
        genotype=None,
        n_nodes: int | None = None,
        search_space: str | Sequence[str] = "A",
        noiseless: bool = True,
        multicoil: bool = False,
        **kwargs,
    ):
        super().__init__(n_iter=n_iter, n_cells=n_cells, n_filters=n_filters, noiseless=noiseless,
                         multicoil=multicoil, **kwargs)
        self.search_space = search_space_config(search_space)
        operations = search_space_operations(search_space)
        if genotype is None:
            self.genotype = None
            self.n_nodes = int(n_nodes or 3)
        else:
            parsed = Genotype.parse(genotype)
            if n_nodes is not None and int(n_nodes) != parsed.n_nodes:
                raise ValueError(f"n_nodes: the genotype has {parsed.n_nodes} nodes, got n_nodes={n_nodes}.")
            self.genotype = parsed.to_config()
            self.n_nodes = parsed.n_nodes
        self.make_image_nets(cell="search" if self.genotype is None else self.genotype,
                             n_nodes=self.n_nodes, search_space=self.search_space)
        if self.genotype is None:
            # DARTS' initialisation: small random logits, so the search starts near uniform weights.
            self.alpha = self.add_weight(
                shape=(edge_count(self.n_nodes), len(operations)),
                initializer=keras.initializers.RandomNormal(stddev=1e-3),
                name="alpha",
            )

    @classmethod
    def small_config(cls) -> dict:
        return dict(n_iter=2, n_cells=2, n_filters=4,
                    genotype=[[["sep_conv_3x3", 0], ["skip_connect", 1]],
                              [["dil2_sep_conv_3x3", 1], ["sep_conv_3x3", 2]]])

    @property
    def architecture_weights(self) -> list:
        """The architecture logits (``[alpha]`` while searching, else ``[]``)."""
        return [self.alpha] if self.genotype is None else []

    @property
    def network_weights(self) -> list:
        """The trainable weights other than the architecture logits."""
        architecture = {id(v) for v in self.architecture_weights}
        return [v for v in self.trainable_weights if id(v) not in architecture]

    def derived_genotype(self) -> Genotype:
        """The genotype of the current ``alpha`` (DARTS' rule, :func:`~fastmri_zoo.layers.derive_genotype`)."""
        if self.genotype is not None:
            return Genotype.parse(self.genotype)
        return derive_genotype(np.asarray(self.alpha.numpy()), self.search_space, self.n_nodes)

    def prior_step(self, i: int, state, training=None):
        if self.genotype is not None:
            return super().prior_step(i, state, training=training)
        image_net = self.image_nets[i]

        def searched_denoiser(x, training=None):
            return image_net(x, alpha=self.alpha, training=training)

        return complex_denoise(searched_denoiser, state, residual=True, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(genotype=self.genotype, n_nodes=self.n_nodes, search_space=self.search_space)
        return config


@keras.saving.register_keras_serializable(package="fastmri_zoo")
class ResidualDCCNN(_CellCascade):
    """DCCNN-3res, the baseline of Yan et al. 2020 (Table 1) on :class:`NasNet`'s backbone.

    Each of the ``n_iter`` cascades: 3x3 convolution 2 -> ``n_filters``, ``n_cells`` residual
    blocks ReLU(x + conv(ReLU(conv(x)))), 3x3 convolution -> 2, all with biases, then k-space
    replacement. Parameters: n_iter (18 C + C + 2 n_cells (9 C^2 + C) + 18 C + 2); 170,022 with
    the defaults (3 cascades, 3 blocks, 32 channels), the authors' ResidualBlock.

    inputs: ``kspace`` complex64 (batch, H, W) [or (batch, coils, H, W) with ``smaps`` when
    ``multicoil``], ``mask``; output: complex64 (batch, H, W).
    """

    def __init__(self, n_iter: int = 3, n_cells: int = 3, n_filters: int = 32, noiseless: bool = True,
                 multicoil: bool = False, **kwargs):
        super().__init__(n_iter=n_iter, n_cells=n_cells, n_filters=n_filters, noiseless=noiseless,
                         multicoil=multicoil, **kwargs)
        self.make_image_nets(cell="residual")

    @classmethod
    def small_config(cls) -> dict:
        return dict(n_iter=2, n_cells=2, n_filters=4)
