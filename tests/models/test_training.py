"""Cartesian networks in graph mode and under 20 Adam steps."""

import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo.models import MoDL, VarNet
from tests.models.conftest import SMALL, adam_losses, make_inputs


@pytest.mark.parametrize("name,cls,kwargs,multicoil", SMALL, ids=[m[0] for m in SMALL])
def test_graph_mode_matches_eager(name, cls, kwargs, multicoil, rng):
    _, inputs = make_inputs(rng, multicoil)
    model = cls(**kwargs)
    eager = model(inputs).numpy()
    graph = tf.function(lambda x: model(x), jit_compile=False)(
        {k: tf.convert_to_tensor(v) for k, v in inputs.items()}
    )
    np.testing.assert_allclose(graph.numpy(), eager, atol=1e-5, rtol=1e-5)


TRAINED = [m for m in SMALL if m[0] in ("unet", "cascadenet", "kikinet", "pdnet", "updnet_mc_refined")] + [
    ("modl", MoDL, dict(n_iter=2, n_layers=3, n_filters=8, cg_iterations=3), False),
    ("varnet_mc", VarNet, dict(n_cascades=1, chans=4, pools=1, sens_chans=2, sens_pools=1), True),
]


@pytest.mark.parametrize("name,cls,kwargs,multicoil", TRAINED, ids=[m[0] for m in TRAINED])
def test_loss_decreases_over_20_adam_steps(name, cls, kwargs, multicoil, rng):
    image, inputs = make_inputs(rng, multicoil)
    losses = adam_losses(cls(**kwargs), inputs, np.abs(image))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.9 * losses[0]
