"""Data: fastMRI-layout HDF5 files, simulation from magnitude images, tf.data pipelines."""

from .h5 import FastMRIVolume, read_fastmri_h5, validate_fastmri_h5, write_fastmri_h5

__all__ = [
    "FastMRIVolume",
    "read_fastmri_h5",
    "write_fastmri_h5",
    "validate_fastmri_h5",
]
