"""A search resumed from its backup (fastmri_zoo.search.backup) continues exactly as the uninterrupted
search: given the same batches, its weights, alpha, optimiser state and history are those of a search
that never stopped. The backup of another search is refused; a search stopped by patience is not run
again."""

import itertools

import keras
import numpy as np
import pytest

from fastmri_zoo.search import search
from fastmri_zoo.search.backup import backup_step, read_backup
from tests.search.test_darts import ShiftProblem, shift_batches

FINGERPRINT = {"problem": "shift", "seed": 0}


def batches_from(seed, skip):
    return itertools.islice(shift_batches(seed), skip, None)


def run(steps, backup=None, skip=0, patience=None, fingerprint=FINGERPRINT):
    keras.utils.set_random_seed(0)
    model = ShiftProblem()
    result = search(model, batches_from(1, skip), batches_from(2, skip), method="darts", steps=steps,
                    steps_per_epoch=20, patience=patience, learning_rate=3e-3, alpha_learning_rate=3e-2,
                    backup=backup, fingerprint=fingerprint)
    return model, result


def test_a_resumed_search_is_the_uninterrupted_one(tmp_path):
    whole_model, whole = run(100)
    folder = tmp_path / "backup"
    run(60, backup=folder)  # interrupted after 3 epochs (the budget stands in for the interruption)
    assert backup_step(folder) == 60 and len(list(folder.glob("arrays-*.npz"))) == 1
    # the second run starts from a fresh model: everything it continues from comes from the backup
    model, resumed = run(100, backup=folder, skip=60)
    for a, b in zip(whole_model.get_weights(), model.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    assert resumed.steps == whole.steps == 100 and len(resumed.history) == len(whole.history) == 6
    for a, b in zip(whole.history, resumed.history):
        assert (a.epoch, a.step, a.genotype) == (b.epoch, b.step, b.genotype)
        np.testing.assert_allclose(b.alpha, a.alpha, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose([b.train_loss, b.val_loss, b.entropy], [a.train_loss, a.val_loss, a.entropy],
                                   rtol=1e-5)
    assert resumed.wall_time > 0 and backup_step(folder) == 100


def test_the_backup_of_another_search_is_refused(tmp_path):
    folder = tmp_path / "backup"
    run(20, backup=folder)
    with pytest.raises(ValueError, match="the backup of another search"):
        run(40, backup=folder, fingerprint={"problem": "shift", "seed": 1})
    with pytest.raises(ValueError, match="the backup of another search"):
        read_backup(folder, {"other": True})


def test_a_search_stopped_by_patience_is_not_run_again(tmp_path):
    folder = tmp_path / "backup"
    model, first = run(600, backup=folder, patience=3)
    assert first.stopped == "patience" and first.steps < 600
    weights = model.get_weights()
    again_model, again = run(600, backup=folder, patience=3)
    assert again.stopped == "patience" and again.steps == first.steps and len(again.history) == len(first.history)
    for a, b in zip(weights, again_model.get_weights()):
        np.testing.assert_array_equal(b, a)
