"""Classical reconstructions the networks are compared with."""

from .bart import bart_available, bart_pics, read_cfl, write_cfl
from .classical import cg_sense, zero_filled
from .grappa import grappa

__all__ = ["zero_filled", "cg_sense", "grappa", "bart_pics", "bart_available", "read_cfl", "write_cfl"]
