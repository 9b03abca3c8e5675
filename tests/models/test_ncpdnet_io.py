"""Non-Cartesian models: bad input, the .keras round trip, 3D graph mode (the generic checks: tests/models/families.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.models import GriddedPDNet, NCPDNet, UNetAdjDcomp
from fastmri_zoo.sampling import kooshball_trajectory
from tests.conftest import crandn
from tests.models.conftest import NC_SIZE, make_noncartesian_inputs, perturb_all_weights

N = NC_SIZE
COILS = 3


def make_inputs(rng, multicoil=False, batch=1, shape=(N, N)):
    return make_noncartesian_inputs(rng, multicoil, batch, shape)


# --------------------------------------------------------------------------- bad input


def single():
    return make_inputs(np.random.default_rng(1))[1]


def multi():
    return make_inputs(np.random.default_rng(1), multicoil=True)[1]


def small(**kwargs):
    return NCPDNet(n_iter=1, n_filters=2, **kwargs)


CASES = [
    ("missing_kspace", lambda: small(image_shape=(N, N)), lambda i: i.pop("kspace"), False,
     r"missing \['kspace'\]"),
    ("missing_traj", lambda: small(image_shape=(N, N)), lambda i: i.pop("traj"), False, r"missing \['traj'\]"),
    ("missing_dcomp", lambda: small(image_shape=(N, N)), lambda i: i.pop("dcomp"), False,
     r"missing \['dcomp'\].*dcomp=False"),
    ("missing_smaps", lambda: small(multicoil=True), lambda i: i.pop("smaps"), True,
     r"missing \['smaps'\].*coil maps"),
    ("traj_in_cycles_times_4pi", lambda: small(image_shape=(N, N)), lambda i: i.update(traj=i["traj"] * 2), False,
     r"traj: expected values in \[-3\.1416, 3\.1416\] \(radians per pixel.*multiplied by 2 pi\), got values in"),
    ("dcomp_length", lambda: small(image_shape=(N, N)), lambda i: i.update(dcomp=i["dcomp"][:-3]), False,
     r"dcomp has 253 samples but traj has 256; they must match"),
    ("coils_mismatch", lambda: small(multicoil=True), lambda i: i.update(smaps=i["smaps"][:, :2]), True,
     r"kspace has 3 coils but smaps has 2; they must match"),
    ("single_coil_kspace_to_multicoil", lambda: small(multicoil=True), lambda i: i.update(kspace=i["kspace"][:, 0]),
     True, r"kspace: NCPDNet is a multicoil model and expects \(batch, coils, nsamples\).*looks like single-coil"),
    ("multicoil_kspace_to_single_coil", lambda: small(image_shape=(N, N)),
     lambda i: i.update(kspace=multi()["kspace"]), False,
     r"kspace: NCPDNet is a single-coil model and expects \(batch, nsamples\).*looks like multicoil"),
    ("2d_traj_to_3d_model", lambda: small(ndim=3, image_shape=(8, N, N)), lambda i: None, False,
     r"traj: NCPDNet \(ndim=3\) expects 3 coordinates \(k_D, k_H, k_W\) along axis -2, got 2.*ndim=2"),
    ("3d_traj_to_2d_model", lambda: small(image_shape=(N, N)),
     lambda i: i.update(traj=np.concatenate([i["traj"], i["traj"][:1]])), False,
     r"traj: NCPDNet \(ndim=2\) expects 2 coordinates \(k_H, k_W\) along axis -2, got 3.*ndim=3"),
    ("nan_kspace", lambda: small(image_shape=(N, N)), lambda i: i["kspace"].__setitem__((0, 5), np.nan), False,
     r"kspace: expected finite values, got 1 NaN"),
    ("inf_traj", lambda: small(image_shape=(N, N)), lambda i: i["traj"].__setitem__((0, 5), np.inf), False,
     r"traj: expected finite values, got 0 NaN and 1 Inf"),
    ("nan_dcomp", lambda: small(image_shape=(N, N)), lambda i: i["dcomp"].__setitem__(5, np.nan), False,
     r"dcomp: expected finite values"),
    ("nan_smaps", lambda: small(multicoil=True), lambda i: i["smaps"].__setitem__((0, 0, 1, 1), np.nan), True,
     r"smaps: expected finite values"),
    ("no_image_shape", lambda: small(), lambda i: None, False, r"image_shape: NCPDNet is single-coil.*image_shape="),
    ("bad_image_shape", lambda: small(), lambda i: i.update(image_shape=(N, 0)), False,
     r"image_shape: expected 2 positive ints"),
    ("real_kspace", lambda: small(image_shape=(N, N)), lambda i: i.update(kspace=np.abs(i["kspace"])), False,
     r"kspace: expected complex values"),
    ("gridded_missing_dcomp", lambda: GriddedPDNet(n_iter=1, n_filters=2, image_shape=(N, N)),
     lambda i: i.pop("dcomp"), False, r"GriddedPDNet needs keys \['kspace', 'traj', 'dcomp'\]"),
    ("unet_traj_range", lambda: UNetAdjDcomp(layers_n_channels=[2, 4], image_shape=(N, N)),
     lambda i: i.update(traj=i["traj"] * 4), False, r"traj: expected values in .*radians per pixel"),
]


@pytest.mark.parametrize("name,build,corrupt,multicoil,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_before_any_computation(name, build, corrupt, multicoil, message, monkeypatch):
    inputs = multi() if multicoil else single()
    inputs = {key: value.copy() for key, value in inputs.items()}
    corrupt(inputs)
    model = build()

    def no_nufft(*args, **kwargs):
        raise AssertionError("a NUFFT was built before the inputs were checked")

    monkeypatch.setattr("fastmri_zoo.physics.noncartesian.NUFFT", no_nufft)
    with pytest.raises(ValueError, match=message):
        model(inputs)
    assert not model.built


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="refine_smaps: coil-map refinement needs multicoil=True"):
        NCPDNet(refine_smaps=True)
    with pytest.raises(ValueError, match="refine_smaps: the coil-map refiner is 2D only"):
        NCPDNet(refine_smaps=True, multicoil=True, ndim=3)
    with pytest.raises(ValueError, match="ndim: expected 2"):
        NCPDNet(ndim=4)
    with pytest.raises(ValueError, match="image_shape: expected 3 positive ints"):
        NCPDNet(ndim=3, image_shape=(N, N))
    with pytest.raises(ValueError, match="input_mode"):
        UNetAdjDcomp(input_mode="phase")
    with pytest.raises(ValueError, match="refine_smaps: GriddedPDNet has no coil-map refiner"):
        GriddedPDNet(multicoil=True, refine_smaps=True)


def test_legacy_im_size_must_hold_the_image(rng):
    _, inputs = make_inputs(rng)
    with pytest.raises(ValueError, match="legacy_im_size: the image"):
        small(image_shape=(N, N), legacy_im_size=(N, N + 1))(inputs)


# --------------------------------------------------------------------------- round trips

def test_keras_file_round_trip_rebuilds_with_build_from_config(tmp_path, rng):
    _, inputs = make_inputs(rng, multicoil=True)
    model = NCPDNet(n_iter=2, n_filters=4, multicoil=True, refine_smaps=True)
    model(inputs)
    perturb_all_weights(model, rng)
    out = model(inputs).numpy()
    model.save(tmp_path / "ncpdnet.keras")
    loaded = keras.saving.load_model(tmp_path / "ncpdnet.keras")
    np.testing.assert_array_equal(loaded(inputs).numpy(), out)


# --------------------------------------------------------------------------- graph mode and training


def test_graph_mode_matches_eager_3d(rng):
    volume = (8, 8, 8)
    traj = kooshball_trajectory(volume, 4).reshape(3, -1)
    inputs3d = {"kspace": crandn(rng, (1, traj.shape[-1])), "traj": traj}
    model = NCPDNet(ndim=3, n_iter=1, n_primal=2, n_filters=2, dcomp=False, image_shape=volume)
    eager = model(inputs3d).numpy()
    graph = tf.function(lambda x: model(x), jit_compile=False)({k: tf.constant(v) for k, v in inputs3d.items()})
    np.testing.assert_allclose(graph.numpy(), eager, atol=1e-5, rtol=1e-5)
