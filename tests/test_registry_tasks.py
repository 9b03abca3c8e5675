"""The registry's tasks (issues #16, #17): reconstruction networks, denoisers and priors are named, listed,
filtered and loaded alike."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import fastmri_zoo
from fastmri_zoo import cli, registry
from fastmri_zoo.models import ReconstructionModel, ScoreNetwork
from fastmri_zoo.registry import TASKS, CheckpointEntry
from tests.conftest import crandn

PRIOR = "tinyscore-prior-test"
IMAGE = {"image": np.zeros((1, 8, 8), np.complex64), "sigma": np.zeros((1,), np.float32)}


def test_names_of_denoisers_and_priors_leave_out_the_acquisition():
    assert TASKS == ("reconstruction", "denoising", "prior")
    assert CheckpointEntry(architecture="score", task="prior", dataset="ixi").name == "score-prior-ixi"
    assert CheckpointEntry(architecture="learnlet", task="denoising").name == "learnlet-denoising"
    assert CheckpointEntry(architecture="unet", variant="exact", task="denoising", dataset="ixi").name == \
        "unet-exact-denoising-ixi"
    # reconstruction stays the default, with its acquisition in the name
    assert CheckpointEntry("pdnet", "cartesian", "singlecoil", 4).name == "pdnet-cartesian-singlecoil-af4"
    assert CheckpointEntry("pdnet", "cartesian", "singlecoil", 4).task == "reconstruction"
    with pytest.raises(ValueError, match="trajectory, coils: a prior checkpoint is tied to no acquisition"):
        CheckpointEntry(architecture="score", task="prior", trajectory="cartesian", coils="singlecoil")
    with pytest.raises(ValueError, match="acceleration: a denoising checkpoint is tied to no acquisition"):
        CheckpointEntry(architecture="learnlet", task="denoising", acceleration=4)
    with pytest.raises(ValueError, match="task: expected one of"):
        CheckpointEntry(architecture="score", task="priors")
    with pytest.raises(ValueError, match=r"name: expected 'score-prior' \(architecture\[-variant\]-task\[-dataset\]\)"):
        CheckpointEntry(architecture="score", task="prior", name="score-cartesian-singlecoil")
    with pytest.raises(ValueError, match="coils: expected one of"):  # a reconstruction entry still needs them
        CheckpointEntry(architecture="pdnet", trajectory="cartesian")


@pytest.fixture
def prior_in_weights(tmp_path, monkeypatch):
    """A tiny prior preset with its recipe.json (card: task prior) in a weights folder the registry searches."""
    root = tmp_path / "weights"
    root.mkdir()
    monkeypatch.setenv(registry.WEIGHTS_DIR_ENV, str(root))
    model = ScoreNetwork(**ScoreNetwork.small_config())
    folder = model.save_to_preset(root / PRIOR, example_inputs=IMAGE, description="A tiny prior.")
    recipe = {"name": PRIOR, "model": {"class": "ScoreNetwork", "kwargs": ScoreNetwork.small_config()},
              "card": {"task": "prior", "architecture": "tinyscore", "dataset": "test",
                       "description": "A tiny prior of the registry tests."}}
    (folder / "recipe.json").write_text(json.dumps(recipe))
    return folder, model


def test_a_prior_preset_folder_is_listed_filtered_and_loaded(prior_in_weights, rng, capsys):
    folder, model = prior_in_weights
    entry = registry.get_entry(PRIOR)
    assert (entry.task, entry.trajectory, entry.coils, entry.pretrained) == ("prior", None, None, True)
    assert entry.class_name == "fastmri_zoo>ScoreNetwork"
    priors = sorted([PRIOR, "score-prior-ixi"])  # the test's and the shipped one
    assert fastmri_zoo.list_models(task="prior") == priors
    assert PRIOR not in fastmri_zoo.list_models(task="reconstruction")
    assert "pdnet-cartesian-singlecoil-af4" in fastmri_zoo.list_models(task="reconstruction")
    assert ScoreNetwork.presets == priors
    with pytest.raises(ValueError, match="task: expected one of"):
        fastmri_zoo.list_models(task="priors")

    loaded = fastmri_zoo.load(PRIOR)
    assert type(loaded) is ScoreNetwork and loaded.get_config() == model.get_config()
    x, sigma = crandn(rng, (2, 8, 8)), np.array([0.05, -0.2], np.float32)
    np.testing.assert_array_equal(loaded.score(x, sigma).numpy(), model.score(x, sigma).numpy())
    assert type(ScoreNetwork.from_preset(PRIOR)) is ScoreNetwork
    with pytest.raises(ValueError, match="holds a ScoreNetwork, not a ReconstructionModel"):
        ReconstructionModel.from_preset(PRIOR)

    assert cli.main(["list", "--task", "prior"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["name", "task", "trajectory", "coils", "AF", "weights"]
    assert rows[1:] == [[name, "prior", "-", "-", "-", "bundled"] for name in priors]
    assert cli.main(["list"]) == 0
    table = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert table["pdnet-cartesian-singlecoil-af4"][1:4] == ["reconstruction", "cartesian", "singlecoil"]
    assert table[PRIOR][1] == "prior"
    assert cli.main(["info", PRIOR]) == 0
    card = capsys.readouterr().out
    assert "A tiny prior." in card and "mri-prior" in card


def test_the_card_and_the_weights_must_agree_on_the_task(prior_in_weights):
    folder, _ = prior_in_weights
    recipe = json.loads((folder / "recipe.json").read_text())
    recipe["card"]["task"] = "denoising"
    (folder / "recipe.json").write_text(json.dumps(recipe))
    with pytest.raises(ValueError, match="the card's task 'denoising' differs from the task of the weights"):
        registry.builtin_entries()
    del recipe["card"]["task"]  # a card without a task describes a reconstruction network: it needs coils
    (folder / "recipe.json").write_text(json.dumps(recipe))
    with pytest.raises(ValueError, match="the card's task 'reconstruction' differs"):
        registry.builtin_entries()


def test_generated_card_of_a_prior_without_preset():
    entry = CheckpointEntry(architecture="score", task="prior", dataset="nowhere", description="Not trained yet.")
    registry.register(entry)
    try:
        card = registry.info(entry.name)
    finally:
        registry.unregister(entry.name)
    assert "- task: prior" in card and "- acquisition: any" in card and "trajectory" not in card


def test_list_by_task_never_imports_tensorflow():
    code = ("import sys; from fastmri_zoo import cli; assert cli.main(['list', '--task', 'reconstruction']) == 0; "
            "print('TENSORFLOW', 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "TENSORFLOW False"
    rows = [line.split() for line in result.stdout.splitlines()[1:-1]]
    assert rows and all(row[1] == "reconstruction" for row in rows)


def test_the_shipped_checkpoints_read_as_their_tasks():
    """The checkpoints shipped before tasks existed (no task in their metadata) read as reconstruction networks
    and keep their names; those of another task (the denoisers) are listed under it."""
    import json

    root = registry.packaged_weights_root()
    shipped = {path.parent.name: json.loads((path.parent / "metadata.json").read_text()).get("task", "reconstruction")
               for path in root.glob("*/model.weights.h5")}
    assert "reconstruction" in shipped.values() and "denoising" in shipped.values()
    for task in registry.TASKS:
        assert {name for name, t in shipped.items() if t == task} <= set(fastmri_zoo.list_models(task=task))
    for entry in registry.list_entries(task="reconstruction"):
        assert entry.trajectory and entry.coils in registry.COILS
