"""Models taking physical units (the authors' converted checkpoints) get the k-space as acquired.

The zoo's own checkpoints are fed k-space divided by the maximum of the zero-filled (or adjoint +
DCp) magnitude and their output is multiplied back; a model with ``input_units == "physical"``
applies its own scale, so the reconstruction loops must pass the data through untouched. The
reference here is the model called directly on the raw data.
"""

import numpy as np
import tensorflow as tf

from fastmri_zoo.inference import reconstruct_cartesian, reconstruct_noncartesian, takes_physical_units
from fastmri_zoo.legacy import LegacyReconstruction
from fastmri_zoo.models import NCPDNet, PDNet
from fastmri_zoo.physics import NUFFT, pipe_menon_density
from fastmri_zoo.sampling import radial_trajectory
from tests.conftest import crandn


def test_cartesian_loop_passes_physical_kspace_untouched(rng):
    size = 16
    kspace = (crandn(rng, (2, size, size)) * 3e-5).astype(np.complex64)
    mask = np.zeros((1, size), np.float32)
    mask[:, ::2] = 1
    mask[:, size // 2 - 2 : size // 2 + 2] = 1
    kspace = kspace * mask
    network = PDNet(n_iter=2, n_filters=4)
    network({"kspace": kspace, "mask": np.broadcast_to(mask, (2, 1, size))})
    model = LegacyReconstruction(network, kspace_scale=1e6)
    assert takes_physical_units(model) and not takes_physical_units(PDNet(n_iter=1, n_filters=2))
    images, _ = reconstruct_cartesian(model, kspace, mask, 4, progress=False)
    direct = np.abs(model({"kspace": kspace, "mask": np.broadcast_to(mask, (2, 1, size))}).numpy())
    np.testing.assert_allclose(images, direct, rtol=1e-5, atol=1e-6 * direct.max())


def test_noncartesian_loop_passes_physical_kspace_untouched(rng):
    size = 16
    traj = radial_trajectory(size, 2).reshape(2, -1)
    dcomp = np.asarray(pipe_menon_density(traj, (size, size)), np.float32).reshape(-1)
    image = crandn(rng, (1, size, size)).astype(np.complex64) * 1e-4
    kspace = NUFFT(traj, (size, size)).forward(image).numpy()[0]
    model = LegacyReconstruction(NCPDNet(n_iter=2, n_filters=4, image_shape=(size, size)), kspace_scale=1e4)
    network, _, used_dcomp = reconstruct_noncartesian(model, kspace[None], traj, (size, size), dcomp=dcomp,
                                                      progress=False)
    direct = model({"kspace": kspace[None], "traj": traj[None], "dcomp": tf.constant(used_dcomp)[None]
                    if np.ndim(used_dcomp) == 1 else used_dcomp, "image_shape": (size, size)})
    direct = np.abs(direct.numpy())
    np.testing.assert_allclose(network, direct, rtol=1e-4, atol=1e-5 * direct.max())
