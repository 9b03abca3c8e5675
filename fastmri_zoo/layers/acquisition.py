"""From a model's input dict to a validated Cartesian measurement operator.

Every Cartesian network of the zoo calls :func:`check_cartesian_inputs` first
(so bad input fails with a clear ``ValueError`` before any computation) and
:func:`cartesian_operator` to get the ``physics`` operator it unrolls.
"""

from __future__ import annotations

import tensorflow as tf

from ..checks import check_complex, check_finite, check_rank, check_same_dim, static_shape
from ..physics import SENSE, CartesianSingleCoil

__all__ = ["check_cartesian_inputs", "cartesian_operator", "required_inputs"]


def required_inputs(multicoil: bool) -> tuple[str, ...]:
    """Input keys of a Cartesian model: kspace and mask, plus smaps when multicoil."""
    return ("kspace", "mask", "smaps") if multicoil else ("kspace", "mask")


def check_cartesian_inputs(inputs: dict, multicoil: bool, model_name: str) -> None:
    """Validate a Cartesian input dict (shapes always; values when eager).

    kspace: complex64 (batch, H, W) single-coil or (batch, coils, H, W) multicoil;
    mask: real, broadcastable to (batch, H, W), with W columns; smaps: complex64
    (batch, coils, H, W), multicoil only.
    """
    kspace = inputs["kspace"]
    check_complex("kspace", kspace)
    if multicoil:
        if len(static_shape(kspace)) == 3:
            raise ValueError(
                f"kspace: {model_name} is a multicoil model and expects (batch, coils, H, W), got "
                f"shape {static_shape(kspace)}, which looks like single-coil k-space; build the model "
                "with multicoil=False for single-coil data."
            )
        check_rank("kspace", kspace, 4, "(batch, coils, H, W)")
    else:
        if len(static_shape(kspace)) == 4:
            raise ValueError(
                f"kspace: {model_name} is a single-coil model and expects (batch, H, W), got "
                f"shape {static_shape(kspace)}, which looks like multicoil k-space; build the model "
                "with multicoil=True and pass smaps."
            )
        check_rank("kspace", kspace, 3, "(batch, H, W)")
    kshape = static_shape(kspace)

    mask = inputs["mask"]
    mask_dtype = getattr(mask, "dtype", None)
    if mask_dtype is not None and tf.as_dtype(mask_dtype).is_complex:
        raise ValueError(f"mask: expected real values (0/1 or sampling weights), got dtype {tf.as_dtype(mask_dtype).name}.")
    check_rank("mask", mask, (1, 2, 3), "broadcastable to (batch, H, W), e.g. (1, W) or (batch, 1, W)")
    mshape = static_shape(mask)
    check_same_dim("mask", mshape[-1], "kspace", kshape[-1], "columns (phase-encoding width W)")
    if len(mshape) >= 2 and mshape[-2] not in (None, 1):
        check_same_dim("mask", mshape[-2], "kspace", kshape[-2], "rows (readout height H)")
    if len(mshape) == 3 and mshape[0] not in (None, 1):
        check_same_dim("mask", mshape[0], "kspace", kshape[0], "batch items")

    if multicoil:
        smaps = inputs["smaps"]
        check_complex("smaps", smaps)
        check_rank("smaps", smaps, 4, "(batch, coils, H, W)")
        sshape = static_shape(smaps)
        for axis, what in ((1, "coils"), (2, "rows (H)"), (3, "columns (W)")):
            check_same_dim("smaps", sshape[axis], "kspace", kshape[axis], what)
        check_finite("smaps", smaps)
    check_finite("kspace", kspace)
    check_finite("mask", mask)


def cartesian_operator(inputs: dict, multicoil: bool):
    """(kspace complex64, operator): CartesianSingleCoil(mask) or SENSE(mask, smaps)."""
    kspace = tf.cast(tf.convert_to_tensor(inputs["kspace"]), tf.complex64)
    mask = tf.cast(tf.convert_to_tensor(inputs["mask"]), tf.float32)
    if multicoil:
        return kspace, SENSE(mask, inputs["smaps"])
    return kspace, CartesianSingleCoil(mask)
