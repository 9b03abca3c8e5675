"""Data: fastMRI-layout HDF5 files, simulation from magnitude images, preprocessing, tf.data pipelines."""

from .h5 import FastMRIVolume, read_fastmri_h5, validate_fastmri_h5, write_fastmri_h5
from .pipelines import (
    cartesian_dataset,
    center_crop,
    list_h5_files,
    noncartesian_3d_dataset,
    noncartesian_dataset,
)
from .preprocessing import (
    CartesianPreprocessor,
    NonCartesianPreprocessor,
    Preprocessor,
    preprocessor_for,
    preprocessor_from_config,
)
from .simulate import (
    add_noise,
    load_magnitude,
    simulate_coil_maps,
    simulate_files,
    simulate_volume,
    smooth_phase,
)

__all__ = [
    "FastMRIVolume",
    "read_fastmri_h5",
    "write_fastmri_h5",
    "validate_fastmri_h5",
    "load_magnitude",
    "smooth_phase",
    "simulate_coil_maps",
    "add_noise",
    "simulate_volume",
    "simulate_files",
    "list_h5_files",
    "center_crop",
    "cartesian_dataset",
    "noncartesian_dataset",
    "noncartesian_3d_dataset",
    "Preprocessor",
    "CartesianPreprocessor",
    "NonCartesianPreprocessor",
    "preprocessor_for",
    "preprocessor_from_config",
]
