"""Classical reconstructions the networks are compared with."""

from .classical import cg_sense, zero_filled

__all__ = ["zero_filled", "cg_sense"]
