"""fit under tf.distribute.MirroredStrategy with two CPU replicas (in a subprocess: the logical
devices must be configured before TensorFlow initialises them)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras
    from fastmri_zoo.data.pipelines import cartesian_dataset
    from fastmri_zoo.models import UNet
    from fastmri_zoo.training import fit

    data, out = sys.argv[1], sys.argv[2]
    # In order, masks fixed per slice: both runs see the same batches.
    train = cartesian_dataset(data + "/train", seed=0, batch_size=2, multicoil=False, drop_remainder=True)
    val = cartesian_dataset(data + "/val", seed=0, batch_size=2, multicoil=False)
    build = lambda: UNet(layers_n_channels=(4, 8), residual=True)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    mirrored = fit(build, train, val, steps=8, steps_per_epoch=4, learning_rate=3e-3, clipnorm=None, run_dir=out + "/mirrored",
                   seed=0, strategy=strategy, preset_dir=out + "/preset", verbose=0)
    single = fit(build, train, val, steps=8, steps_per_epoch=4, learning_rate=3e-3, clipnorm=None, run_dir=out + "/single",
                 seed=0, verbose=0)
    difference = max(float(np.abs(v.numpy() - w.numpy()).max())
                     for v, w in zip(mirrored.model.weights, single.model.weights))
    keras.utils.set_random_seed(0)  # fit seeds before building: this is the initial network
    initial = build()
    initial({k: v for k, v in next(iter(train))[0].items() if k != "scale"})
    change = max(float(np.abs(v.numpy() - w.numpy()).max()) for v, w in zip(single.model.weights, initial.weights))
    json.dump({
        "replicas": strategy.num_replicas_in_sync,
        "max_weight_difference": difference,
        "max_weight_change": change,
        "mirrored_metrics": mirrored.metrics,
        "single_metrics": single.metrics,
        "mirrored_steps": mirrored.steps,
        "variable_type": type(mirrored.model.weights[0].value).__name__,
    }, open(out + "/result.json", "w"))
    """
)


@pytest.mark.slow
def test_fit_under_mirrored_strategy_matches_single_device(tmp_path, singlecoil_data):
    script = tmp_path / "mirrored.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    done = subprocess.run([sys.executable, str(script), str(singlecoil_data), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["replicas"] == 2
    assert "Mirrored" in result["variable_type"]
    assert result["mirrored_steps"] == 8
    # Two replicas of one example each = one device with a batch of two: same weights after 8 steps
    # (without clipping: Keras clips each replica's gradient before the all-reduce).
    assert result["max_weight_change"] > 1e-3  # training moved the weights
    assert result["max_weight_difference"] < 1e-4
    for key in ("psnr", "ssim", "nmse", "loss"):
        assert result["mirrored_metrics"][key] == pytest.approx(result["single_metrics"][key], rel=1e-3)
    record = json.loads((tmp_path / "mirrored" / "run.json").read_text())
    assert record["replicas"] == 2 and record["optimizer_iterations"] == 8
    assert (tmp_path / "preset" / "model.weights.h5").is_file()
