"""Recipes: every shipped checkpoint's weights/NAME/recipe.json is valid, records the run of its
model card, and trains (a few steps) through `fastmri-zoo train`, the one trainer."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from fastmri_zoo import cli
from fastmri_zoo.viz import read_training_log
from fastmri_zoo.training import acquisition_from_metadata, check_acquisition, load_recipe
from tests.training.conftest import SIZE, VOLUME_SLICES

REPO = Path(__file__).resolve().parents[2]
ALL_RECIPES = sorted(REPO.glob("weights/*/recipe.json"))
#: the one trainer's recipes (``fastmri-zoo train``) and the federation recipes (``fastmri-zoo federate``)
RECIPES = [path for path in ALL_RECIPES if "sites" not in json.loads(path.read_text())]
NAMES = [path.parent.name for path in RECIPES]
FEDERATED = [path.parent.name for path in ALL_RECIPES if path.parent.name not in NAMES]
#: the reconstruction networks among them (denoisers and priors have no acquisition)
RECONSTRUCTION = [name for name in NAMES if json.loads((REPO / "weights" / name / "metadata.json").read_text()).get(
    "task", "reconstruction") == "reconstruction"]
#: (loss, optimizer, clipnorm) of each task's recipes: L1 for the networks of the thesis, the NMSE of the
#: paper for the (i-)RIM, L1 + 0.5 SSIM with RAdam + Lookahead for ReconODE; MSE for the denoisers (the
#: thesis'), denoising score matching for the priors
TRAINING = {"reconstruction": {("l1", "adam", 1.0), ("nmse", "adam", 1.0), ("l1_ssim", "lookahead_radam", 1.0)},
            "denoising": {("mse", "adam", None)}, "prior": {("dsm", "adam", None)}}


def test_every_shipped_checkpoint_has_a_recipe():
    shipped = sorted(path.parent.name for path in REPO.glob("weights/*/model.weights.h5"))
    assert sorted(NAMES + FEDERATED) == shipped and len(NAMES) == 25 and len(FEDERATED) == 2


def _recorded_run(name: str) -> dict:
    """The settings of the command recorded in the model card (the run that made the weights)."""
    card = (REPO / "weights" / name / "README.md").read_text()
    trained = re.search(r"fastmri-zoo train recipe\.json --data DATA_DIR +\(loss (\S+), optimizer (\S+), learning rate "
                        r"([0-9.e-]+)(?:, x[0-9.e-]+ from step \d+)*, clipnorm [^,]+, (\d+) steps of batch (\d+), "
                        r"seed (\d+)\)", card)
    if trained:  # a run of the one trainer (``fastmri-zoo train``): its summary of the recipe
        return {"loss": trained.group(1), "optimizer": trained.group(2), "learning_rate": float(trained.group(3)),
                "steps": int(trained.group(4)), "batch_size": int(trained.group(5)), "seed": int(trained.group(6))}
    command = re.search(rf"scripts/train_ixi\.py train {re.escape(name)} DATA_DIR RUN_DIR ([^(]*)", card).group(1)
    options = dict(re.findall(r"--([a-z-]+)(?: ([0-9.e-]+))?", command))
    return {"steps": int(options["steps"]), "batch_size": int(options["batch"]),
            "learning_rate": float(options["lr"]), "seed": int(options["seed"]),
            "steps_per_epoch": int(options.get("steps-per-epoch") or 25),
            "val_steps": int(options.get("val-batches") or 20), "run_eagerly": "eager" in options}


@pytest.mark.parametrize("name", NAMES)
def test_recipe_reproduces_the_recorded_run(name):
    recipe = load_recipe(REPO / "weights" / name / "recipe.json")
    assert recipe.name == name
    recorded = _recorded_run(name)
    assert {key: getattr(recipe, key) for key in recorded} == recorded
    task = json.loads((REPO / "weights" / name / "metadata.json").read_text()).get("task", "reconstruction")
    assert (recipe.loss, recipe.optimizer, recipe.clipnorm) in TRAINING[task]
    assert not recipe.fixed_train_masks  # Cartesian training masks redrawn at every epoch
    config = json.loads((REPO / "weights" / name / "config.json").read_text())["config"]
    for key, value in recipe.model_kwargs.items():  # the shipped network's own settings
        if key in config:
            assert config[key] == value, key
    if task != "reconstruction":  # a denoiser or a prior: no acquisition
        assert recipe.acquisition is None and recipe.card["task"] == task
        return
    metadata = json.loads((REPO / "weights" / name / "metadata.json").read_text())["acquisition"]
    acquisition = recipe.acquisition
    if acquisition["kind"] == "cartesian":
        assert (acquisition["mask_type"], acquisition["center_fraction"], acquisition["acceleration"]) == (
            metadata["mask_type"], metadata["center_fraction"], metadata["acceleration"])
    else:
        assert (acquisition["trajectory"], acquisition["acceleration"], acquisition["oversampling"]) == (
            metadata["trajectory"], metadata["acceleration"],
            metadata.get("oversampling", metadata.get("readout_oversampling")))
        assert acquisition["ndim"] == config["ndim"]
    assert acquisition["multicoil"] == bool(config.get("multicoil", False))


@pytest.mark.parametrize("name", RECONSTRUCTION)
def test_finetune_defaults_to_the_checkpoints_own_acquisition(name):
    """finetune without an acquisition reads the preset's metadata: the recipe's acquisition."""
    recipe = load_recipe(REPO / "weights" / name / "recipe.json")
    metadata = json.loads((REPO / "weights" / name / "metadata.json").read_text())["acquisition"]
    derived = check_acquisition(acquisition_from_metadata(metadata, recipe.build_model()))
    # the earlier presets did not record the density-compensation iterations (the default is used)
    expected = {key: value for key, value in recipe.acquisition.items()
                if key != "dcomp_iterations" or key in metadata}
    assert check_acquisition(derived) == check_acquisition(expected)


def _write_recipe(folder: Path, **changes) -> Path:
    recipe = json.loads(RECIPES[NAMES.index("unet-cartesian-singlecoil-af4")].read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        target = recipe
        for parent in parents:
            target = target[parent]
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    path = folder / "recipe.json"
    path.write_text(json.dumps(recipe))
    return path


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"stepz": 10}, r"recipe: unknown key\(s\) \['stepz'\]"),
        ({"training.steps": None}, r"training: missing required key\(s\) \['steps'\]"),
        ({"training.lr": 0.1}, r"training: unknown key\(s\) \['lr'\]"),
        ({"training.learning_rate": -1}, r"training.learning_rate: expected a value > 0"),
        ({"training.steps_per_epoch": 7}, r"training.steps: expected a multiple of steps_per_epoch=7"),
        ({"model": {"class": "UNett"}}, r"model.class: unknown model class 'UNett'; expected one of \[.*'UNet'"),
        ({"model": {"class": "UNet", "args": {}}}, r"model: unknown key\(s\) \['args'\]"),
        ({"acquisition.kind": "radial"}, r"acquisition: expected kind 'cartesian' .* got kind 'radial'"),
        ({"acquisition.trajectory": "radial"}, r"acquisition: unknown key\(s\) \['trajectory'\] for a 2D cartesian"),
        ({"acquisition": {"kind": "noncartesian", "ndim": 3, "trajectory": "radial"}},
         r"acquisition.trajectory: expected one of \['kooshball'\] for ndim 3"),
        ({"acquisition.multicoil": True, "model.kwargs": {"multicoil": False}, "data.synthesis": None},
         r"acquisition.multicoil: True but model.kwargs.multicoil is False"),
        ({"card.author": "me"}, r"card: unknown key\(s\) \['author'\]"),
        ({"training.learning_rate_drops": [[3, 0.1]]},
         r"learning_rate_drops: step 3 must be below steps=.* and a multiple of steps_per_epoch="),
        ({"steps": 10, "training": None}, r"former training-config format"),
        ({"training.keep": "first"}, r"training.keep: expected one of \['last', 'best'\], got 'first'"),
        ({"training.initial_weights": "nowhere"},
         r"training.initial_weights: 'nowhere' is neither a folder next to the recipe nor a registered checkpoint"),
        ({"training.initial_weights": ""}, r"training.initial_weights: expected a preset folder relative to the recipe"),
        ({"training.initial_weights": "pdnet-cartesian-singlecoil-af4"},
         r"training.initial_weights: 'pdnet-cartesian-singlecoil-af4' is a PDNet; expected a UNet \(model.class\)"),
        ({"training.initial_weights": "unet-cartesian-singlecoil-af4", "model.kwargs": {"residual": True}},
         r"'unet-cartesian-singlecoil-af4' is another configuration of UNet than model.kwargs "
         r"\(residual: False there, True here\)"),
    ],
)
def test_bad_recipe_gives_a_clear_error(tmp_path, capsys, changes, message):
    path = _write_recipe(tmp_path, **changes)
    assert cli.main(["train", str(path), "--data", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("fastmri-zoo train: error:")
    assert re.search(message, error), error


def test_missing_recipe_data_and_bad_model_kwargs(tmp_path, capsys):
    assert cli.main(["train", str(tmp_path / "absent.json")]) == 2
    assert "RECIPE: no such file" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{not json")
    assert cli.main(["train", str(tmp_path / "broken.json")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    path = _write_recipe(tmp_path)
    assert cli.main(["train", str(path), "--data", str(tmp_path / "absent")]) == 2
    error = capsys.readouterr().err
    assert "data.train: no such folder" in error and "scripts/prepare_ixi.py" in error  # how to make it
    path = _write_recipe(tmp_path, model={"class": "UNet", "kwargs": {"layers": 3}})
    (tmp_path / "singlecoil" / "train").mkdir(parents=True)
    (tmp_path / "singlecoil" / "val").mkdir(parents=True)
    assert cli.main(["train", str(path), "--data", str(tmp_path)]) == 2
    assert "model.kwargs: UNet does not accept them" in capsys.readouterr().err


def _small(recipe: dict) -> dict:
    """The recipe on the tiny data root: 2 steps of 1-step epochs, one validation batch, image
    sizes of the fake data (and of the synthesised examples), the first learning-rate drop (if any) at step 1."""
    recipe["training"].update(steps=2, steps_per_epoch=1, val_steps=1)
    synthesis = recipe["data"].get("synthesis")
    if synthesis:  # examples of the fake volumes' size, two of them for validation
        synthesis.update(size=[SIZE, SIZE], val_examples=2, min_signal=0.0)
    if recipe["training"].get("learning_rate_drops"):  # the first drop, moved to the second step
        recipe["training"]["learning_rate_drops"] = [[1, recipe["training"]["learning_rate_drops"][0][1]]]
    kwargs = recipe["model"]["kwargs"]
    if "image_shape" in kwargs:
        kwargs["image_shape"] = [VOLUME_SLICES, SIZE, SIZE] if len(kwargs["image_shape"]) == 3 else [SIZE, SIZE]
    return recipe


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_every_recipe_trains_through_the_cli(name, recipe_data_root, tmp_path):
    recipe = _small(json.loads((REPO / "weights" / name / "recipe.json").read_text()))
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    starting = recipe["training"].get("initial_weights")
    if starting is not None and (REPO / "weights" / name / starting).is_dir():  # a preset folder beside the recipe
        shutil.copytree(REPO / "weights" / name / starting, tmp_path / starting)
    code = cli.main(["train", str(path), "--data", str(recipe_data_root), "--run-dir", str(tmp_path / "run"),
                     "-o", str(tmp_path / "preset"), "--verbose", "0"])
    assert code == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["optimizer_iterations"] == 2 and record["epochs"] == 2
    assert record["model"]["class_name"] == recipe["model"]["class"]
    assert record["run_eagerly"] == recipe["training"].get("run_eagerly", False)
    assert record["validation_batches"] == 1
    log = read_training_log(tmp_path / "run" / "log.csv")  # no step met a degenerate example (an all-zero reference)
    assert len(log["epoch"]) == 2 and all(np.isfinite(values).all() for values in log.values()), log
    preset = tmp_path / "preset"
    assert (preset / "model.weights.h5").is_file()
    card = (preset / "README.md").read_text()
    assert "fastmri-zoo train" in card and recipe["card"]["paper"] in card
    metadata = json.loads((preset / "metadata.json").read_text())
    if recipe.get("acquisition") is not None:  # a reconstruction network (denoisers and priors have none)
        assert metadata["acquisition"] == check_acquisition(recipe["acquisition"])
    else:
        assert metadata["task"] == recipe["card"]["task"]


@pytest.mark.parametrize("name", FEDERATED)
def test_federation_recipe_made_its_checkpoint(name):
    """A federated checkpoint's recipe validates, names it, and holds the shipped network's settings."""
    from fastmri_zoo.federated.recipe import load_federation_recipe

    folder = REPO / "weights" / name
    recipe = load_federation_recipe(folder / "recipe.json")
    assert recipe.raw["name"] == name
    config = json.loads((folder / "config.json").read_text())["config"]
    assert config["multicoil"] == all(site.coils > 1 for site in recipe.sites)
    for key, value in recipe.raw["model"]["kwargs"].items():
        assert config[key] == value, key
    if recipe.search is not None:  # the cell the federated search found
        assert config["genotype"] == json.loads((folder / "genotype.json").read_text())
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["acquisition"] == recipe.raw["card"]["acquisition"]
    card = (folder / "README.md").read_text()
    assert "fastmri-zoo federate recipe.json" in card and "![federation curves](curves.png)" in card
    assert (folder / "curves.png").is_file() and (folder / "metrics.csv").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", FEDERATED)
def test_every_federation_recipe_federates_through_the_cli(name, tmp_path):
    """The recipe, shrunk to one round of one step on a tiny data root, runs in Flower's simulation engine."""
    from tests.federated.conftest import write_data_root

    raw = json.loads((REPO / "weights" / name / "recipe.json").read_text())
    raw["federation"].update(rounds=1, local_steps=1, batch_size=1, eval_examples=2)
    raw["data"]["synthesis"].update(size=[32, 32], val_examples=2, min_signal=0.0)
    if "search" in raw:
        raw["search"].update(rounds=1, local_steps=1)
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(raw))
    volume_sites = sum(site.get("source", "volumes") == "volumes" for site in raw["sites"])
    data = write_data_root(tmp_path / "data", subjects={part: volume_sites for part in ("train", "val", "test")})
    assert cli.main(["federate", str(path), "--data", str(data), "-o", str(tmp_path / "out")]) == 0
    facts = json.loads((tmp_path / "out" / "federation.json").read_text())
    assert facts["strategy"] == raw["federation"]["strategy"]
    assert sorted(facts["sites"]) == sorted(site["name"] for site in raw["sites"])
    assert (tmp_path / "out" / "preset" / "model.weights.h5").is_file()


@pytest.mark.slow
def test_a_recipe_starts_from_the_weights_it_names(recipe_data_root, tmp_path):
    """training.initial_weights: the run starts from that preset's weights (a step at a learning rate of
    1e-12 leaves them as they were; a fresh start could not match them: they are fresh weights scaled
    by 1.5 plus 0.01) and the card names the preset and its sha256."""
    import hashlib

    from fastmri_zoo.models import UNet

    recipe = _small(json.loads(RECIPES[NAMES.index("unet-cartesian-singlecoil-af4")].read_text()))
    started = UNet(**recipe["model"]["kwargs"])
    example = {"kspace": np.zeros((1, SIZE, SIZE), np.complex64), "mask": np.ones((1, 1, SIZE), np.float32)}
    started(example)
    started.set_weights([1.5 * w + 0.01 for w in started.get_weights()])
    started.save_to_preset(tmp_path / "start", example_inputs=example)
    recipe["training"].update(learning_rate=1e-12, initial_weights="start")
    recipe["training"].pop("learning_rate_drops", None)
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    code = cli.main(["train", str(path), "--data", str(recipe_data_root), "--run-dir", str(tmp_path / "run"),
                     "-o", str(tmp_path / "preset"), "--verbose", "0"])
    assert code == 0
    from fastmri_zoo.presets import load_preset

    trained = load_preset(tmp_path / "preset")
    for before, after in zip(started.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_allclose(after, before, atol=1e-8)
    digest = hashlib.sha256((tmp_path / "start" / "model.weights.h5").read_bytes()).hexdigest()
    assert f"starting from the weights of start (sha256 {digest[:12]})" in (tmp_path / "preset" / "README.md").read_text()
