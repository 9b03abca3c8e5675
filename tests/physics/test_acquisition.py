"""The acquisition factory (check / dummy_inputs / operator of each kind) and the density-weighted NUFFT.

The density-weighted NUFFT replaces the NC-PDNet operator that lived in
``models/ncpdnet.py`` (``NetworkAcquisition``): ``legacy_reference`` below is
that operator's computation (c P^H F^H D F P by forward + weighted adjoint or
the Toeplitz embedding, c P^H F^H D y), and the new operator must agree with
it to float32 round-off (the shipped NC-PDNet checkpoints must not move).
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo import physics
from fastmri_zoo.physics.acquisition import (
    ACQUISITIONS,
    CartesianAcquisition,
    GriddedAcquisition,
    InputSpec,
    NonCartesianAcquisition,
    make_acquisition,
)
from fastmri_zoo.physics.noncartesian import centred_pads
from fastmri_zoo.physics.nufft import grid_shape_for
from fastmri_zoo.physics.toeplitz import TOEPLITZ_KERNELS
from tests.conftest import crandn

SHAPE = (16, 12)
COILS = 3


def relative_error(got, expected):
    return np.abs(np.asarray(got) - expected).max() / np.abs(expected).max()


def radial(rng, spokes=10, samples=24):
    angles = rng.uniform(0, np.pi, spokes)
    radii = (np.arange(samples) - samples // 2) * 2 * np.pi / samples
    return np.stack([np.outer(np.sin(angles), radii), np.outer(np.cos(angles), radii)]).reshape(2, -1).astype(
        np.float32)


def unit_smaps(rng, shape=SHAPE, coils=COILS):
    maps = crandn(rng, (1, coils, *shape))
    return (maps / np.sqrt((np.abs(maps) ** 2).sum(1, keepdims=True))).astype(np.complex64)


def noncartesian_inputs(rng, multicoil=False):
    traj = radial(rng)
    inputs = {"traj": traj, "dcomp": rng.uniform(0.2, 1.5, traj.shape[-1]).astype(np.float32)}
    if multicoil:
        inputs["smaps"] = unit_smaps(rng)
        inputs["kspace"] = crandn(rng, (1, COILS, traj.shape[-1]))
    else:
        inputs["kspace"] = crandn(rng, (1, traj.shape[-1]))
    return inputs


def cartesian_inputs(rng, multicoil=False):
    mask = (rng.uniform(size=(1, 1, SHAPE[1])) < 0.5).astype(np.float32)
    if multicoil:
        return {"kspace": crandn(rng, (1, COILS, *SHAPE)) * mask, "mask": mask, "smaps": unit_smaps(rng)}
    return {"kspace": crandn(rng, (1, *SHAPE)) * mask, "mask": mask}


# --------------------------------------------------------------------------- the factory

KINDS = [
    ("cartesian", {}, cartesian_inputs),
    ("cartesian", {"multicoil": True}, cartesian_inputs),
    ("noncartesian", {"image_shape": SHAPE}, noncartesian_inputs),
    ("noncartesian", {"multicoil": True, "toeplitz": True}, noncartesian_inputs),
    ("noncartesian", {"image_shape": SHAPE, "dcomp": False, "legacy_im_size": (20, 16)}, noncartesian_inputs),
    ("gridded", {"image_shape": SHAPE}, noncartesian_inputs),
    ("gridded", {"multicoil": True}, noncartesian_inputs),
]
IDS = [f"{kind}-{'-'.join(sorted(options)) or 'default'}" for kind, options, _ in KINDS]


@pytest.mark.parametrize("kind,options,make_inputs", KINDS, ids=IDS)
def test_check_operator_and_config_of_each_kind(kind, options, make_inputs, rng):
    acquisition = make_acquisition(kind, **options)
    assert acquisition.kind == kind and isinstance(acquisition, ACQUISITIONS[kind])
    inputs = make_inputs(rng, multicoil=options.get("multicoil", False))
    if not options.get("dcomp", True):
        inputs.pop("dcomp")
    assert set(acquisition.required_inputs) == set(inputs)
    specs = acquisition.input_specs()
    assert all(isinstance(spec, InputSpec) and spec.name == key for key, spec in specs.items())
    for key, spec in specs.items():
        assert np.ndim(inputs[key]) in spec.ranks
        assert np.iscomplexobj(inputs[key]) == (spec.dtype == "complex64")
    acquisition.check(inputs, "Model")
    measurements, operator = acquisition.operator(inputs)
    assert isinstance(operator, physics.LinearOperator)
    image = operator.adjoint(measurements)
    assert image.shape == (1, *SHAPE) and image.dtype == tf.complex64
    assert operator.forward(image).shape == measurements.shape
    config = json.loads(json.dumps(acquisition.get_config()))
    restored = physics.Acquisition.from_config(config)
    assert restored == acquisition and restored.get_config() == config


@pytest.mark.parametrize("kind,options,make_inputs", KINDS, ids=IDS)
def test_dummy_inputs_pass_the_checks_and_build_an_operator(kind, options, make_inputs, rng):
    acquisition = make_acquisition(kind, **options)
    for shapes in (None, {key: [None] * len(spec.dummy(None).shape)
                          for key, spec in acquisition.input_specs().items()}):
        dummy = acquisition.dummy_inputs(shapes)
        acquisition.check(dummy, "Model")
        measurements, operator = acquisition.operator(dummy)
        assert np.all(np.isfinite(operator.adjoint(measurements).numpy()))
    if kind != "cartesian" and not options.get("multicoil") and "image_shape" not in options:
        assert "image_shape" in acquisition.dummy_inputs()


def test_dummy_inputs_follow_recorded_shapes():
    acquisition = make_acquisition("noncartesian", multicoil=True)
    dummy = acquisition.dummy_inputs(
        {"kspace": [None, 4, None], "traj": [2, None], "dcomp": [None], "smaps": [None, 4, 10, 12]}
    )
    assert dummy["kspace"].shape == (8, 4, 16) and dummy["kspace"].dtype == np.complex64
    assert dummy["traj"].shape == (2, 16) and not dummy["traj"].any()
    assert dummy["dcomp"].shape == (16,) and dummy["dcomp"].dtype == np.float32
    assert dummy["smaps"].shape == (8, 4, 10, 12)
    cartesian = make_acquisition("cartesian").dummy_inputs({"kspace": [None, 10, 12], "mask": [1, 12]})
    assert cartesian["kspace"].shape == (8, 10, 12) and cartesian["mask"].shape == (1, 12)


BAD = [
    ("cartesian", {}, cartesian_inputs, lambda i: i.pop("mask"), r"inputs: Model needs keys \['kspace', 'mask'\]; missing \['mask'\]"),
    ("cartesian", {}, cartesian_inputs, lambda i: i.update(mask=i["mask"][..., :5]), "mask has 5 columns"),
    ("cartesian", {"multicoil": True}, cartesian_inputs, lambda i: i.update(kspace=i["kspace"][:, 0]),
     "Model is a multicoil model"),
    ("noncartesian", {}, noncartesian_inputs, lambda i: None, r"image_shape: Model is single-coil"),
    ("noncartesian", {"image_shape": SHAPE}, noncartesian_inputs, lambda i: i.pop("dcomp"),
     r"missing \['dcomp'\].*dcomp=False"),
    ("noncartesian", {"image_shape": SHAPE}, noncartesian_inputs, lambda i: i.update(traj=i["traj"] * 2),
     r"traj: expected values in \[-3\.1416, 3\.1416\]"),
    ("gridded", {"multicoil": True}, noncartesian_inputs, lambda i: i.update(smaps=i["smaps"][:, :2]),
     "kspace has 3 coils but smaps has 2"),
    # a trajectory split into shots (ndim, shots, samples) or transposed (nsamples, ndim): the message names the fix
    ("noncartesian", {"image_shape": SHAPE}, noncartesian_inputs,
     lambda i: i.update(traj=np.asarray(i["traj"]).reshape(2, 4, -1)), r"traj\.reshape\(ndim, -1\)"),
    ("noncartesian", {"image_shape": SHAPE}, noncartesian_inputs,
     lambda i: i.update(traj=np.asarray(i["traj"]).reshape(2, -1).T), r"\(nsamples, ndim\) is transposed with traj\.T"),
]


@pytest.mark.parametrize("kind,options,make_inputs,spoil,message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_inputs_fail_with_the_models_messages(kind, options, make_inputs, spoil, message, rng):
    inputs = make_inputs(rng, multicoil=options.get("multicoil", False))
    spoil(inputs)
    with pytest.raises(ValueError, match=message):
        make_acquisition(kind, **options).check(inputs, "Model")


def test_image_shape_in_the_inputs_dict_is_accepted(rng):
    inputs = noncartesian_inputs(rng)
    acquisition = make_acquisition("noncartesian")
    acquisition.check(dict(inputs, image_shape=SHAPE), "Model")
    _, operator = acquisition.operator(inputs, image_shape=SHAPE)
    assert operator.image_shape == SHAPE


@pytest.mark.parametrize("kind,options,message", [
    ("spiral", {}, r"kind: expected one of \['cartesian', 'noncartesian', 'gridded'\], got 'spiral'"),
    ("noncartesian", {"gridding": "finufft"}, r"gridding: expected one of \['sparse', 'tfkbnufft'\]"),
    ("noncartesian", {"ndim": 4}, r"ndim: expected 2 \(images\) or 3 \(volumes\), got 4"),
    ("noncartesian", {"legacy_im_size": (10,)}, r"legacy_im_size: expected 2 positive ints"),
    ("gridded", {"toeplitz": True}, r"toeplitz: the gridded acquisition has no toeplitz"),
    ("cartesian", {"dcomp": True}, r"options: .*dcomp.*'cartesian'"),
])
def test_bad_options_are_refused(kind, options, message):
    with pytest.raises(ValueError, match=message):
        make_acquisition(kind, **options)


def test_classes_and_kinds():
    assert ACQUISITIONS == {"cartesian": CartesianAcquisition, "noncartesian": NonCartesianAcquisition,
                            "gridded": GriddedAcquisition}


# --------------------------------------------------------------------------- the density-weighted NUFFT


def legacy_reference(traj, shape, smaps, dcomp, legacy_im_size, toeplitz):
    """The former NC-PDNet operator: (forward c A x, adjoint_dcomp c A^H D y, normal c^2 A^H D A x)."""
    nufft_shape = shape if legacy_im_size is None else tuple(legacy_im_size)
    scale = 1.0 if legacy_im_size is None else np.sqrt(np.prod(nufft_shape) / np.prod(grid_shape_for(nufft_shape, 2.0)))
    pads = centred_pads(shape, nufft_shape)

    def pad(x, leading=1):
        return tf.pad(x, [[0, 0]] * leading + [list(p) for p in pads])

    def crop(x):
        return x[(Ellipsis,) + tuple(slice(p, p + n) for (p, _), n in zip(pads, shape))]

    padded_smaps = None if smaps is None else pad(tf.constant(smaps), leading=2)
    nufft = physics.NUFFT(traj, nufft_shape, smaps=padded_smaps, dcomp=dcomp)
    if toeplitz:
        normal = physics.ToeplitzNormal(traj, nufft_shape, dcomp=dcomp, smaps=padded_smaps)
    else:
        normal = nufft.normal_dcomp
    c = tf.constant(scale, tf.complex64)
    return (
        lambda x: c * nufft.forward(pad(x)),
        lambda y: c * crop(nufft.adjoint_dcomp(y)),
        lambda x: c * c * crop(normal(pad(x))),
    )


@pytest.mark.parametrize("toeplitz", [False, True], ids=["explicit", "toeplitz"])
@pytest.mark.parametrize("legacy_im_size", [None, (20, 16)], ids=["plain", "legacy"])
@pytest.mark.parametrize("coils", [None, COILS], ids=["single", "multicoil"])
def test_weighted_nufft_equals_the_former_ncpdnet_operator(coils, legacy_im_size, toeplitz, rng):
    inputs = noncartesian_inputs(rng, multicoil=coils is not None)
    traj, dcomp, smaps, y = inputs["traj"], inputs["dcomp"], inputs.get("smaps"), inputs["kspace"]
    x = crandn(rng, (1, *SHAPE))
    operator = physics.DensityWeightedNUFFT(traj, SHAPE, smaps=smaps, dcomp=dcomp, toeplitz=toeplitz,
                                            legacy_im_size=legacy_im_size)
    forward, adjoint_dcomp, normal = legacy_reference(traj, SHAPE, smaps, dcomp, legacy_im_size, toeplitz)
    weights = np.sqrt(dcomp)[None] if coils is None else np.sqrt(dcomp)[None, None]
    b = operator.measurements(y)
    np.testing.assert_allclose(b.numpy(), weights * y, rtol=1e-6)
    assert relative_error(operator.forward(x).numpy(), weights * forward(x).numpy()) < 1e-6
    assert relative_error(operator.adjoint(b).numpy(), adjoint_dcomp(y).numpy()) < 1e-5
    assert relative_error(operator.normal(x).numpy(), normal(x).numpy()) < 1e-6
    # NC-PDNet's data step A^H D (A x - y) is the plain gradient step B^H (B x - b).
    dual = adjoint_dcomp(forward(x) - y).numpy()
    assert relative_error(operator.adjoint(operator.forward(x) - b).numpy(), dual) < 1e-5


def test_adjoint_of_the_measurements_is_the_density_compensated_adjoint(rng):
    inputs = noncartesian_inputs(rng, multicoil=True)
    measurements, operator = make_acquisition("noncartesian", multicoil=True).operator(inputs)
    expected = physics.NUFFT(inputs["traj"], SHAPE, smaps=inputs["smaps"], dcomp=inputs["dcomp"]).adjoint_dcomp(
        inputs["kspace"]).numpy()
    assert relative_error(operator.adjoint(measurements).numpy(), expected) < 1e-5
    assert relative_error(operator.adjoint_dcomp(inputs["kspace"]).numpy(), expected) < 1e-6


def test_without_dcomp_it_is_the_plain_nufft(rng):
    inputs = noncartesian_inputs(rng)
    x = crandn(rng, (1, *SHAPE))
    operator = physics.DensityWeightedNUFFT(inputs["traj"], SHAPE)
    plain = physics.NUFFT(inputs["traj"], SHAPE)
    np.testing.assert_array_equal(operator.forward(x).numpy(), plain.forward(x).numpy())
    np.testing.assert_array_equal(operator.measurements(inputs["kspace"]).numpy(), inputs["kspace"])
    np.testing.assert_array_equal(operator.normal(x).numpy(), plain.normal(x).numpy())


def test_toeplitz_kernel_is_cached_per_trajectory_and_reusable(rng, monkeypatch):
    from fastmri_zoo.physics import toeplitz as toeplitz_module

    calls = []
    original = toeplitz_module.point_spread_function

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(toeplitz_module, "point_spread_function", counting)
    TOEPLITZ_KERNELS.clear()
    inputs = noncartesian_inputs(rng, multicoil=True)
    first = physics.DensityWeightedNUFFT(inputs["traj"], SHAPE, smaps=inputs["smaps"], dcomp=inputs["dcomp"],
                                         toeplitz=True)
    other_maps = physics.DensityWeightedNUFFT(inputs["traj"], SHAPE, smaps=unit_smaps(rng), dcomp=inputs["dcomp"],
                                              toeplitz=True)
    assert len(calls) == 1 and other_maps.toeplitz.kernel is first.toeplitz.kernel
    physics.DensityWeightedNUFFT(inputs["traj"], SHAPE, dcomp=inputs["dcomp"] * 2, toeplitz=True)
    assert len(calls) == 2
    given = physics.DensityWeightedNUFFT(inputs["traj"], SHAPE, smaps=inputs["smaps"], dcomp=inputs["dcomp"],
                                         toeplitz=True, toeplitz_kernel=first.toeplitz.kernel)
    x = crandn(rng, (1, *SHAPE))
    np.testing.assert_array_equal(given.normal(x).numpy(), first.normal(x).numpy())
    assert len(calls) == 2
    TOEPLITZ_KERNELS.clear()


def test_gridded_acquisition_keeps_the_gridded_kspace_on_the_sampled_cells(rng):
    inputs = noncartesian_inputs(rng)
    measurements, operator = make_acquisition("gridded", image_shape=SHAPE).operator(inputs)
    assert isinstance(operator, physics.CartesianSingleCoil)
    mask = physics.sampled_cells(np.asarray(inputs["traj"])[None], SHAPE).numpy()
    np.testing.assert_array_equal(np.real(operator.mask.numpy()), mask)
    coil_image = physics.NUFFT(inputs["traj"], SHAPE, dcomp=inputs["dcomp"]).adjoint_dcomp(inputs["kspace"])
    expected = physics.fftc(coil_image).numpy() * mask
    assert relative_error(measurements.numpy(), expected) < 1e-6
    # The data are kept exactly by the projection.
    projected = operator.prox_l2(crandn(rng, (1, *SHAPE)), measurements)
    np.testing.assert_allclose(operator.forward(projected).numpy(), measurements.numpy(), atol=1e-4)
