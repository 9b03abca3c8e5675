"""fit / finetune on tiny simulated data: the loss goes down, metrics and files are right."""

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from fastmri_zoo import metrics
from fastmri_zoo.data.pipelines import cartesian_dataset
from fastmri_zoo.models import RIM, UNet, XPDNet
from fastmri_zoo.presets import from_preset, save_to_preset
from fastmri_zoo.training import L1Loss, cartesian_training_data, finetune, fit, freeze_layers
from fastmri_zoo.training.fit import check_learning_rate_drops, kept_sentence, learning_rate_at
from tests.conftest import crandn
from tests.models.conftest import np_fftc


def tiny_unet(**kwargs):
    return UNet(layers_n_channels=(8, 16), residual=True, **kwargs)


def strip(inputs):
    return {key: value for key, value in inputs.items() if key != "scale"}


def undersampled_examples(image, mask, target, batch_size: int = 2):
    """The k-space of ``image`` (count, H, W) under ``mask`` (count, 1, W) as fit's inputs, and the dataset of
    (inputs, ``target``) batches."""
    inputs = {"kspace": (np_fftc(image) * mask).astype(np.complex64), "mask": mask}
    return inputs, tf.data.Dataset.from_tensor_slices((inputs, target)).batch(batch_size)


def predictions(model, dataset):
    preds, targets = [], []
    for inputs, target in dataset:
        preds.append(np.abs(model(strip(inputs)).numpy()))
        targets.append(target.numpy())
    return np.concatenate(targets), np.concatenate(preds)


@pytest.mark.slow  # 20-40 s on two busy cores
def test_fit_reduces_the_loss_and_reports_true_metrics(singlecoil_data, tmp_path):
    train, val = cartesian_training_data(singlecoil_data / "train", singlecoil_data / "val", batch_size=2,
                                         fixed_train_masks=True)
    keras.utils.set_random_seed(0)
    model = tiny_unet()
    model(strip(next(iter(val))[0]))
    gt, before = predictions(model, val)
    loss_before = np.abs(before - gt).mean()

    # 120 steps: the mean absolute error falls to 0.58-0.67 of its initial value over seeds 0-5; after 60
    # steps it was 0.71-0.98 with (4, 8) channels, too close to the bound for numerics that differ by machine.
    result = fit(model, train, val, steps=120, steps_per_epoch=20, learning_rate=3e-3, run_dir=tmp_path / "run",
                 preset_dir=tmp_path / "preset", verbose=0, data_description="two phantoms")
    gt, after = predictions(result.model, val)
    loss_after = np.abs(after - gt).mean()
    assert loss_after < 0.8 * loss_before
    assert result.steps == 120 and result.epochs == 6 and result.batch_size == 2

    # Validation metrics are per-image means of the fastMRI metrics (data range: each target's max).
    psnr = np.mean([metrics.psnr(g, p) for g, p in zip(gt, after)])
    ssim = np.mean([metrics.ssim(g, p) for g, p in zip(gt, after)])
    nmse = np.mean([metrics.nmse(g, p) for g, p in zip(gt, after)])
    assert result.metrics["psnr"] == pytest.approx(psnr, abs=1e-3)
    assert result.metrics["ssim"] == pytest.approx(ssim, abs=1e-4)
    assert result.metrics["nmse"] == pytest.approx(nmse, rel=1e-3)
    assert result.metrics["loss"] == pytest.approx(loss_after, rel=1e-4)

    run = tmp_path / "run"
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(6))
    assert {"loss", "val_loss", "val_psnr", "val_ssim", "val_nmse"} <= set(rows[0])
    assert (run / "validation_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = list((run / "logs").rglob("events.out.tfevents.*"))
    assert {p.parent.name for p in events} >= {"train", "validation"}
    record = json.loads((run / "run.json").read_text())
    assert record["optimizer_iterations"] == 120 and record["batch_size"] == 2 and record["seed"] == 0
    assert record["validation_metrics"]["psnr"] == pytest.approx(result.metrics["psnr"])

    # The preset holds the trained network and a card filled from the run.
    loaded = from_preset(str(tmp_path / "preset"))
    inputs = strip(next(iter(val))[0])
    np.testing.assert_allclose(loaded(inputs).numpy(), result.model(inputs).numpy(), atol=1e-6)
    card = (tmp_path / "preset" / "README.md").read_text()
    for fact in ("120 steps of batch 2", "Adam", "L1Loss", "seed 0", "two phantoms", f"{result.metrics['psnr']:g}"):
        assert fact in card, fact


def test_fit_trains_complex_outputs_with_a_complex_loss(tmp_path, rng):
    """A complex target and loss: the network's imaginary part is trained, not cast away.
    The task: k-space at half amplitude, fully sampled; the network must double the image."""
    size, count = 16, 8
    image = crandn(rng, (count, size, size)) * 0.5
    mask = np.ones((count, 1, size), np.float32)
    kspace = (0.5 * np_fftc(image)).astype(np.complex64)
    dataset = tf.data.Dataset.from_tensor_slices(({"kspace": kspace, "mask": mask}, image)).batch(4)
    loss = L1Loss(on="complex")
    keras.utils.set_random_seed(0)
    model = UNet(layers_n_channels=(4, 8), input_mode="complex", residual=True)
    model({"kspace": kspace[:4], "mask": mask[:4]})
    before = float(loss(image, model({"kspace": kspace, "mask": mask})))
    result = fit(model, dataset, dataset, steps=40, steps_per_epoch=20, loss={"name": "l1", "on": "complex"},
                 learning_rate=1e-2, run_dir=tmp_path / "run", verbose=0)
    output = result.model({"kspace": kspace, "mask": mask}).numpy()
    after = float(loss(image, output))
    assert after < 0.8 * before
    assert result.metrics["loss"] == pytest.approx(np.abs(output - image).mean(), rel=1e-4)
    # The imaginary part of the output carries signal (it was trained against imag(image)).
    assert np.abs(output.imag - image.imag).mean() < np.abs(image.imag).mean()


def test_fit_trains_a_rim_on_the_loss_averaged_over_its_iterates(tmp_path, rng):
    """The RIM's objective (Putzky & Welling 2019): the loss of every iterate, averaged; the metrics
    score the last iterate only. Checked against numpy on the trained model's iterates."""
    size, count = 16, 4
    image = np.abs(crandn(rng, (count, size, size))).astype(np.float32)
    mask = (rng.random((count, 1, size)) < 0.5).astype(np.float32)
    inputs, dataset = undersampled_examples(image, mask, image)
    keras.utils.set_random_seed(0)
    model = RIM(n_iter=3, hidden_channels=4)
    result = fit(model, dataset, dataset, steps=4, steps_per_epoch=2, loss="l1", learning_rate=1e-3,
                 run_dir=tmp_path / "run", verbose=0)
    iterates = [x.numpy() for x in result.model(inputs, all_steps=True)]
    per_iterate = [np.abs(np.abs(x) - image).mean() for x in iterates]
    assert len(set(np.round(per_iterate, 6))) == 3  # the iterates differ: the average is not the last
    assert result.metrics["loss"] == pytest.approx(np.mean(per_iterate), rel=1e-4)
    last_psnr = np.mean([metrics.psnr(t, np.abs(x)) for t, x in zip(image, iterates[-1])])
    assert result.metrics["psnr"] == pytest.approx(last_psnr, abs=1e-3)


def test_finetune_with_a_frozen_subnetwork(singlecoil_data, tmp_path):
    keras.utils.set_random_seed(0)
    model = XPDNet(denoiser="cnn", denoiser_kwargs={"n_convs": 1, "n_filters": 4}, n_iter=2)
    val = cartesian_dataset(singlecoil_data / "val", batch_size=1, multicoil=False)
    model(strip(next(iter(val))[0]))
    save_to_preset(model, tmp_path / "pretrained", example_inputs={k: v.numpy() for k, v in strip(next(iter(val))[0]).items()})
    before = {v.path: v.numpy().copy() for v in model.weights}

    result = finetune(str(tmp_path / "pretrained"), singlecoil_data, steps=8, steps_per_epoch=4,
                      freeze=["image_net_0"], run_dir=tmp_path / "run", preset_dir=tmp_path / "tuned", verbose=0)
    after = {v.path: v.numpy() for v in result.model.weights}
    frozen = [path for path in before if "image_net_0/" in path]
    free = [path for path in before if "image_net_1/" in path]
    assert frozen and free
    for path in frozen:
        np.testing.assert_array_equal(after[path], before[path])
    assert any(not np.array_equal(after[path], before[path]) for path in free)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert "learning rate 0.0001" in record["optimizer"]  # 10x lower than fit's default 1e-3
    assert record["frozen_layers"] == ["image_net_0"]
    tuned = from_preset(str(tmp_path / "tuned"))
    np.testing.assert_array_equal(tuned.get_layer("image_net_0").get_weights()[0],
                                  model.get_layer("image_net_0").get_weights()[0])


class _RecordRates(keras.callbacks.Callback):
    """The optimizer's learning rate at each epoch's first batch; optionally stops after an epoch."""

    def __init__(self, rates, stop_after_epoch=None):
        super().__init__()
        self.rates, self.stop_after_epoch = rates, stop_after_epoch

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.stop_after_epoch:
            raise KeyboardInterrupt  # after the epoch's backup (BackupAndRestore runs first)


def test_learning_rate_drops_follow_the_steps_and_survive_a_resume(tmp_path, rng):
    size, count = 16, 4
    image = crandn(rng, (count, size, size))
    _, dataset = undersampled_examples(image, np.ones((count, 1, size), np.float32), np.abs(image))
    drops = [(30, 0.5), (10, 0.1)]  # given unsorted
    expected = [learning_rate_at(epoch * 5, 2e-3, sorted(drops)) for epoch in range(8)]
    assert expected == pytest.approx([2e-3, 2e-3, 2e-4, 2e-4, 2e-4, 2e-4, 1e-4, 1e-4])

    def run(callback):
        keras.utils.set_random_seed(0)
        return fit(tiny_unet(), dataset, steps=40, steps_per_epoch=5, learning_rate=2e-3,
                   learning_rate_drops=drops, run_dir=tmp_path / "run", verbose=0, callbacks=[callback])

    first, resumed = [], []
    with pytest.raises(KeyboardInterrupt):
        run(_RecordRates(first, stop_after_epoch=2))
    run(_RecordRates(resumed))
    assert first == pytest.approx(expected[:3], rel=1e-6)
    assert resumed == pytest.approx(expected[3:], rel=1e-6)  # the resumed run starts at epoch 3
    # the record states the schedule from its starting rate, not the rate the run ended at (1e-4)
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["optimizer"]
    assert recorded == "Adam, learning rate 0.002, x0.1 from step 10, x0.5 from step 30, clipnorm 1", recorded


@pytest.mark.parametrize("optimizer", ["adam", "lookahead_radam"])
def test_a_fresh_run_traces_its_training_step_once(optimizer, tmp_path, rng, monkeypatch):
    """The optimizer's variables exist before the first traced step: a tf.function whose first trace creates
    variables is traced a second time (what Keras' fit did without a distribution strategy)."""
    import importlib

    fit_module = importlib.import_module("fastmri_zoo.training.fit")
    traces = []
    train_step = fit_module._TrainingModel.train_step
    monkeypatch.setattr(fit_module._TrainingModel, "train_step",
                        lambda self, data: traces.append(1) or train_step(self, data))
    size, count = 16, 4
    image = crandn(rng, (count, size, size))
    _, dataset = undersampled_examples(image, np.ones((count, 1, size), np.float32), np.abs(image))
    result = fit(tiny_unet(), dataset.repeat(), steps=3, steps_per_epoch=1, optimizer=optimizer, run_dir=tmp_path / "run",
                 verbose=0)
    assert len(traces) == 1 and result.steps == 3  # (fit checks the optimizer took the 3 steps)


def test_a_warm_restart_returns_to_the_starting_rate():
    # an extended run: dropped at step 10, back to the starting rate at 20, dropped again at 30
    drops = check_learning_rate_drops([[20, 10.0], [10, 0.1], [30, 0.1]], steps=40, steps_per_epoch=10)
    assert drops == [(10, 0.1), (20, 10.0), (30, 0.1)]
    rates = [learning_rate_at(step, 1e-3, drops) for step in (0, 9, 10, 19, 20, 29, 30, 39)]
    assert rates == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-3, 1e-3, 1e-4, 1e-4], rel=1e-12)


@pytest.mark.parametrize("drops,message", [
    ([(25, 0.1)], "step 25 must be below steps=40 and a multiple of steps_per_epoch=10"),
    ([(40, 0.1)], "step 40 must be below steps=40"),
    ([(10, 2.0)], r"from step 10 the rate would be 2 times the starting rate; expected at most 1"),
    ([(10, 0.1), (20, 20.0)], r"from step 20 the rate would be 2 times the starting rate"),
    ([(10, 0.1), (20, 0.0)], r"learning_rate_drops factor"),
    ([(10, 0.1), (10, 0.5)], "expected distinct steps"),
    ([10], r"expected \[step, factor\] pairs, got 10"),
])
def test_bad_learning_rate_drops(drops, message):
    with pytest.raises(ValueError, match=message):
        check_learning_rate_drops(drops, steps=40, steps_per_epoch=10)


def test_bad_arguments(singlecoil_data, tmp_path):
    train, val = cartesian_training_data(singlecoil_data / "train", singlecoil_data / "val")
    with pytest.raises(ValueError, match="steps: expected a multiple of steps_per_epoch=4"):
        fit(tiny_unet(), train, val, steps=10, steps_per_epoch=4, run_dir=tmp_path)
    with pytest.raises(ValueError, match="train_dataset"):
        fit(tiny_unet(), [1, 2], steps=4, run_dir=tmp_path)
    model = XPDNet(denoiser="unet", denoiser_kwargs={"layers_n_channels": [4, 8]}, n_iter=2)
    model(strip(next(iter(val))[0]))
    with pytest.raises(ValueError, match="freeze: no sub-layer of XPDNet is named 'kspace_net'.*image_net_0"):
        freeze_layers(model, ["kspace_net"])
    assert freeze_layers(model, ["image_net"]) == ["image_net_0", "image_net_1"]
    with pytest.raises(FileNotFoundError, match="val_dir"):
        cartesian_training_data(singlecoil_data / "train", tmp_path / "absent")


class _RecordWeights(keras.callbacks.Callback):
    """The network's weights and the validation PSNR at every epoch end; stops after an epoch when asked.
    Before epoch 3 it spoils the weights (noise of their own scale), so the later epochs score below the early ones."""

    def __init__(self, network, record, stop_after_epoch=None):
        super().__init__()
        self.network, self.record, self.stop_after_epoch = network, record, stop_after_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 3:
            rng = np.random.default_rng(0)
            for weight in self.network.trainable_weights:
                value = weight.numpy()
                weight.assign(value + rng.normal(0, 4 * (value.std() + 1e-3), value.shape).astype(value.dtype))

    def on_epoch_end(self, epoch, logs=None):
        self.record.append((epoch, float(logs["val_psnr"]), [w.numpy().copy() for w in self.network.weights]))
        if epoch == self.stop_after_epoch:
            raise KeyboardInterrupt


def test_keep_best_ends_with_the_best_validation_epoch_across_a_resume(tmp_path, rng):
    """keep="best": the final weights (and the preset's) are those of the epoch with the highest validation PSNR,
    also when that epoch was reached before an interruption; the card and run.json say which step."""
    size, count = 16, 4
    image = crandn(rng, (count, size, size))
    mask = (rng.uniform(size=(count, 1, size)) < 0.5).astype(np.float32)
    inputs, dataset = undersampled_examples(image, mask, np.abs(image))
    record = []

    def run(stop_after_epoch=None):
        keras.utils.set_random_seed(0)
        network = tiny_unet()
        network({key: value[:1] for key, value in inputs.items()})
        return fit(network, dataset, dataset, steps=40, steps_per_epoch=5, learning_rate=3e-3, run_dir=tmp_path / "run",
                   verbose=0, keep="best", preset_dir=tmp_path / "preset",
                   callbacks=[_RecordWeights(network, record, stop_after_epoch)])

    with pytest.raises(KeyboardInterrupt):
        run(stop_after_epoch=4)
    # A kill between the weights and their mirror leaves best.json stale: the state inside the weights file decides.
    (tmp_path / "run" / "best.json").write_text(json.dumps({"epoch": 4, "step": 25, "monitor": "val_psnr", "value": 1e9}))
    result = run()
    epochs = [epoch for epoch, _, _ in record]
    assert epochs == list(range(8))  # five before the interruption, three after the resume
    best = int(np.argmax([value for _, value, _ in record]))
    assert best < 3  # before the spoiled weights, and before the interruption: the kept file's state carried it over
    for kept, recorded in zip(result.model.weights, record[best][2]):
        np.testing.assert_array_equal(kept.numpy(), recorded)
    assert result.metrics["psnr"] == pytest.approx(record[best][1], abs=1e-4)  # re-scored with the kept weights
    state = json.loads((tmp_path / "run" / "best.json").read_text())
    assert state == {"epoch": best, "step": (best + 1) * 5, "monitor": "val_psnr", "value": pytest.approx(record[best][1])}
    assert json.loads((tmp_path / "run" / "run.json").read_text())["kept"]["step"] == (best + 1) * 5
    assert f"those of step {(best + 1) * 5}, the best validation psnr" in (tmp_path / "preset" / "README.md").read_text()
    loaded = from_preset(str(tmp_path / "preset"))
    for kept, recorded in zip(loaded.weights, record[best][2]):
        np.testing.assert_array_equal(kept.numpy(), recorded)


def test_kept_sentence_says_whether_the_best_step_was_the_last():
    kept = {"epoch": 89, "step": 18000, "monitor": "val_psnr", "value": 26.4515}
    assert kept_sentence(kept, 18000) == ("The weights are those of the last step, 18,000, also the best validation "
                                          "psnr (26.45).")
    assert kept_sentence(kept, 20000) == ("The weights are those of step 18,000, the best validation psnr (26.45), "
                                          "not the last step's.")
    assert kept_sentence(kept) == kept_sentence(kept, 20000)  # steps unknown: as before


def test_keep_is_checked(tmp_path, rng):
    dataset = tf.data.Dataset.from_tensor_slices(
        ({"kspace": np.zeros((2, 8, 8), np.complex64), "mask": np.ones((2, 1, 8), np.float32)},
         np.zeros((2, 8, 8), np.float32))).batch(2)
    with pytest.raises(ValueError, match=r"keep: expected one of \['last', 'best'\], got 'first'"):
        fit(tiny_unet(), dataset, dataset, steps=2, run_dir=tmp_path, keep="first")
    with pytest.raises(ValueError, match="keep: 'best' picks the weights by their validation metric; give a val_dataset"):
        fit(tiny_unet(), dataset, steps=2, run_dir=tmp_path, keep="best")


def test_3d_networks_are_scored_on_the_slices_with_signal(rng):
    """A slab's all-zero slices (the padding of a volume thinner than the slab) have no NMSE: the loss of a 3D
    network is the mean NMSE of the other slices (numpy), finite, and the same over a stack of iterates."""
    from fastmri_zoo.training import NMSELoss
    from fastmri_zoo.training.fit import _TrainingModel

    target = rng.uniform(0.1, 1.0, (6, 8, 8)).astype(np.float32)  # two slabs of 3 slices, as (batch * D, H, W)
    target[[2, 5]] = 0.0
    prediction = (target + 0.1 * rng.standard_normal(target.shape)).astype(np.float32)
    signal = [0, 1, 3, 4]
    expected = np.mean([np.sum((prediction[i] - target[i]) ** 2) / np.sum(target[i] ** 2) for i in signal])
    model = _TrainingModel(UNet(layers_n_channels=(4, 8)), NMSELoss(), volumes=True)
    loss = float(model.compute_loss(y=tf.constant(target), y_pred=tf.constant(prediction)))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    model.loss_over_steps = True  # a stack of iterates (the RIM's loss): their mean, each on the same slices
    iterates = np.stack([prediction, target + 0.2])
    second = np.mean([np.sum(0.2**2 * np.ones((8, 8))) / np.sum(target[i] ** 2) for i in signal])
    loss = float(model.compute_loss(y=tf.constant(target), y_pred=tf.constant(iterates)))
    np.testing.assert_allclose(loss, (expected + second) / 2, rtol=1e-5)


def test_a_2d_target_without_signal_stops_training_with_a_clear_error(tmp_path, rng):
    """A user's data with an all-zero reference slice: its NMSE (and PSNR) is undefined. Inside fit's graph the
    metrics assert instead of returning inf, which would leave NaN weights behind."""
    size, count = 16, 4
    image = np.abs(crandn(rng, (count, size, size))).astype(np.float32)
    image[2] = 0.0
    mask = (rng.random((count, 1, size)) < 0.5).astype(np.float32)
    _, dataset = undersampled_examples(image, mask, image)
    keras.utils.set_random_seed(0)
    model = tiny_unet()
    with pytest.raises(tf.errors.InvalidArgumentError, match="gt: expected every target image to be non-zero"):
        fit(model, dataset, steps=2, steps_per_epoch=2, loss="nmse", run_dir=tmp_path / "run", verbose=0)
