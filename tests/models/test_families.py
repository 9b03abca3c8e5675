"""Every model family through the generic checks (tests/models/families.py).

The multicoil cases are marked ``slow`` (CI runs them): tracing them is most of the cost of these
checks, the code under test is the family's single-coil one plus the acquisition's, and the
multicoil forward passes are checked in the default suite by the families' own tests
(zero-network references, the reconstruct command, .keras round trips).
"""

import pytest

from tests.models.families import check_adam_steps, family_cases, family_classes, run_family_checks

#: multicoil cases whose forward pass no other default test runs stay in the default suite
DEFAULT_MULTICOIL = {"GriddedPDNet-multicoil"}
CASES = [pytest.param(*case, marks=pytest.mark.slow)
         if case[0].endswith("-multicoil") and case[0] not in DEFAULT_MULTICOIL else case
         for case in family_cases()]
IDS = [case[0] for case in family_cases()]


def test_every_family_offers_a_small_config():
    for cls in family_classes():
        small = cls.small_config()
        assert isinstance(small, dict) and small, cls.__name__


@pytest.mark.parametrize("name,cls,kwargs", CASES, ids=IDS)
def test_family(name, cls, kwargs, rng, tmp_path):
    run_family_checks(cls, kwargs, rng, tmp_path)


@pytest.mark.parametrize("name,cls,kwargs", CASES, ids=IDS)
def test_family_trains(name, cls, kwargs, rng):
    check_adam_steps(cls, kwargs, rng)


def test_3d_families_keep_ndim_in_their_config_and_presets(tmp_path):
    """A family built with ndim=3 comes back 3D from its config (the 3D i-RIM's preset once loaded as 2D
    and refused its own weights: the base did not record ndim)."""
    import json

    import keras
    import numpy as np
    import tensorflow as tf

    from fastmri_zoo.data.preprocessing import CartesianPreprocessor
    from fastmri_zoo.presets import from_preset, save_to_preset

    three_d = []
    for cls in family_classes():
        try:
            model = cls(**dict(cls.small_config(), ndim=3))
        except (TypeError, ValueError):  # a 2D-only family
            continue
        three_d.append(cls.__name__)
        restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(keras.saving.serialize_keras_object(model))))
        assert restored.ndim == 3 and restored.get_config() == model.get_config(), cls.__name__
    assert {"IRIM", "RIM", "ReconODE"} <= set(three_d)
    keras.utils.set_random_seed(0)
    from fastmri_zoo.models import IRIM

    model = IRIM(n_iter=1, ndim=3, state_channels=6, hidden_channels=4, downsampling=[1, 2])
    model.preprocessor = CartesianPreprocessor(ndim=3, depth=4)
    inputs = {"kspace": tf.complex(tf.random.normal((1, 4, 8, 8)), tf.random.normal((1, 4, 8, 8))),
              "mask": tf.ones((1, 1, 1, 8))}
    want = model(inputs).numpy()
    save_to_preset(model, tmp_path / "irim3d", example_inputs=inputs)
    loaded = from_preset(tmp_path / "irim3d")
    assert loaded.ndim == 3 and loaded.preprocessor == model.preprocessor
    np.testing.assert_array_equal(loaded(inputs).numpy(), want)
