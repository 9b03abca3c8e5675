"""Kept for imports: the Cartesian acquisition is now the default of every ReconstructionModel."""

from __future__ import annotations

from .base import ReconstructionModel

__all__ = ["CartesianModel"]


class CartesianModel(ReconstructionModel):
    """A ReconstructionModel on Cartesian k-space (``ACQUISITION = "cartesian"``, the default),
    single-coil or (``multicoil=True``) SENSE. Families derive from ReconstructionModel or
    UnrolledModel directly; this name stays for code that imported it."""

    ACQUISITION = "cartesian"
