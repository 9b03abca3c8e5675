"""The one test helper every model family goes through (generated, not hand-kept).

``family_cases()`` lists every concrete model class exported by
``fastmri_zoo.models`` with its ``small_config()``, single-coil and (when the
family takes ``multicoil``) multicoil; ``run_family_checks`` runs, for one case:

1. the config JSON round trip (same config, same output with the same weights);
2. an eager call equal to a ``tf.function`` call;
3. ``save_to_preset`` / ``from_preset`` (same class, config and output);

and ``check_adam_steps``:

4. a few Adam steps decreasing an L1 loss.

Both start from ``keras.utils.set_random_seed(0)``, so a case's initial weights do
not depend on which tests ran before it in the session.

A new family adds ``small_config()`` and is covered; its own test file holds
only the checks that are its own (references, parameter counts).
"""

from __future__ import annotations

import inspect
import json

import keras
import numpy as np
import tensorflow as tf

from fastmri_zoo import models
from tests.models.conftest import adam_losses, inputs_for, perturb_all_weights

#: bases, not families
BASES = (models.ReconstructionModel, models.UnrolledModel, models.CartesianModel, models.NonCartesianModel)


def family_classes() -> list[type]:
    """Every concrete model class exported by ``fastmri_zoo.models``."""
    return [
        obj
        for name in models.__all__
        for obj in [getattr(models, name)]
        if inspect.isclass(obj) and issubclass(obj, models.ReconstructionModel) and obj not in BASES
    ]


def family_cases() -> list[tuple[str, type, dict]]:
    """(id, class, small constructor kwargs): every family, single-coil and multicoil where it has both."""
    cases = []
    for cls in family_classes():
        small = cls.small_config()
        if "multicoil" in inspect.signature(cls.__init__).parameters:
            cases += [(f"{cls.__name__}-single", cls, dict(small, multicoil=False)),
                      (f"{cls.__name__}-multicoil", cls, dict(small, multicoil=True))]
        else:
            cases.append((cls.__name__, cls, dict(small)))
    return cases


def run_family_checks(cls, kwargs: dict, rng, tmp_path) -> None:
    """The generic checks 1-3 of one family configuration (see the module docstring)."""
    keras.utils.set_random_seed(0)
    model = cls(**kwargs)
    target, inputs = inputs_for(model, rng)
    model.build(None)  # weights built directly, without a forward pass
    assert model.built and model.weights, f"{cls.__name__}: build() created no weights"
    perturb_all_weights(model, rng)
    out = model(inputs).numpy()
    assert out.dtype == np.complex64 and out.shape == target.shape and np.isfinite(out).all()

    # 1. config JSON round trip
    config = model.get_config()
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(keras.saving.serialize_keras_object(model))))
    assert type(restored) is cls and restored.get_config() == config
    restored.build(None)
    restored.set_weights(model.get_weights())
    np.testing.assert_array_equal(restored(inputs).numpy(), out)

    # 2. eager == graph
    graph = tf.function(lambda x: model(x), jit_compile=False)({k: tf.convert_to_tensor(v) for k, v in inputs.items()})
    # (conjugate-gradient steps amplify the different summation orders of the two modes a little)
    np.testing.assert_allclose(graph.numpy(), out, atol=1e-4 * np.abs(out).max(), rtol=1e-4)

    # 3. preset round trip
    folder = model.save_to_preset(tmp_path / cls.__name__, example_inputs=inputs, description=f"test of {cls.__name__}")
    loaded = cls.from_preset(str(folder))
    assert type(loaded) is cls
    assert json.loads(json.dumps(loaded.get_config())) == json.loads(json.dumps(config))
    assert loaded.count_params() == model.count_params()
    np.testing.assert_array_equal(loaded(inputs).numpy(), out)


def check_adam_steps(cls, kwargs: dict, rng, steps: int = 8) -> None:
    """Check 4: ``steps`` Adam steps (one traced training step) decrease the L1 loss of a fresh model."""
    keras.utils.set_random_seed(0)
    model = cls(**kwargs)
    target, inputs = inputs_for(model, rng)
    losses = adam_losses(model, inputs, target, steps=steps)
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
