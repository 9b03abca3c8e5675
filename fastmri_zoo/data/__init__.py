"""Data: fastMRI-layout HDF5 files, image files (NIfTI, DICOM, numpy), simulation from magnitude images,
preprocessing, tf.data pipelines.

The names below are imported on first use (PEP 562): ``fastmri_zoo.data.h5`` reads and checks
files without TensorFlow, so ``fastmri-zoo reconstruct`` reports a bad input at once instead of
after TensorFlow's start-up; ``from fastmri_zoo.data import cartesian_dataset`` works as before.
"""

import importlib

#: public name -> the submodule defining it
_EXPORTS = {
    **dict.fromkeys(("FastMRIVolume", "list_h5_files", "read_fastmri_h5", "validate_fastmri_h5", "write_fastmri_h5"),
                    "h5"),
    **dict.fromkeys(("cartesian_dataset", "center_crop", "noncartesian_3d_dataset",
                     "noncartesian_dataset", "synthesized_cartesian_dataset", "synthesized_noncartesian_dataset",
                     "synthesized_image_dataset", "synthesized_denoising_dataset"),
                    "pipelines"),
    **dict.fromkeys(("CartesianPreprocessor", "NonCartesianPreprocessor", "Preprocessor", "preprocessor_for",
                     "preprocessor_from_config"), "preprocessing"),
    **dict.fromkeys(("add_noise", "load_magnitude", "simulate_coil_maps", "simulate_files", "simulate_volume",
                     "smooth_phase"), "simulate"),
    **dict.fromkeys(("Synthesis", "load_volumes"), "synthesis"),
    **dict.fromkeys(("ImageFile", "read_image_file", "write_image_file"), "images"),
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


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
    "synthesized_cartesian_dataset",
    "synthesized_noncartesian_dataset",
    "synthesized_image_dataset",
    "synthesized_denoising_dataset",
    "Synthesis",
    "load_volumes",
    "ImageFile",
    "read_image_file",
    "write_image_file",
    "Preprocessor",
    "CartesianPreprocessor",
    "NonCartesianPreprocessor",
    "preprocessor_for",
    "preprocessor_from_config",
]
