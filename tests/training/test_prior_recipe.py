"""Priors through the one trainer (issue #17): the example recipe (tests/training/recipes/score-prior-tiny.json)
trains a few steps of denoising score matching on complex slices synthesised from tiny generated volumes,
with the spectral-norm projection, and its preset is a registered, loadable, usable prior."""

import csv
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import fastmri_zoo
from fastmri_zoo import cli, registry
from fastmri_zoo.data import Synthesis, synthesized_image_dataset
from fastmri_zoo.data.h5 import write_fastmri_h5
from fastmri_zoo.models import ScoreNetwork
from fastmri_zoo.training import load_recipe
from tests.models.conftest import np_fftc

RECIPE = Path(__file__).resolve().parent / "recipes" / "score-prior-tiny.json"
SIZE = 16


def ellipsoids(rng, shape=(12, 20, 20)):
    """A magnitude volume: a sum of three random ellipsoids."""
    zz, yy, xx = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    volume = np.zeros(shape)
    for _ in range(3):
        centre, radii = rng.uniform(-0.3, 0.3, 3), rng.uniform(0.3, 0.7, 3)
        inside = ((zz - centre[0]) / radii[0]) ** 2 + ((yy - centre[1]) / radii[1]) ** 2 + ((xx - centre[2]) / radii[2]) ** 2
        volume += rng.uniform(0.3, 1.0) * (inside < 1)
    return volume.astype(np.float32)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """The recipe's data root: volumes/train (2 volumes) and volumes/val (1), .npy magnitude volumes."""
    root = tmp_path_factory.mktemp("prior_data")
    rng = np.random.default_rng(0)
    for part, count in (("train", 2), ("val", 1)):
        (root / "volumes" / part).mkdir(parents=True)
        for index in range(count):
            np.save(root / "volumes" / part / f"v{index}.npy", ellipsoids(rng))
    return root


def kernel_norms(model):
    return [np.linalg.svd(v.numpy().reshape(-1, v.shape[-1]), compute_uv=False)[0]
            for v in model.trainable_variables if v.name == "kernel"]


def test_the_example_recipe_is_a_prior_recipe():
    recipe = load_recipe(RECIPE)
    assert (recipe.task, recipe.model_class, recipe.loss, recipe.spectral_norm) == ("prior", "ScoreNetwork", "dsm", 2.0)
    assert recipe.acquisition is None and recipe.clipnorm is None
    assert isinstance(recipe.build_model(), ScoreNetwork)


def test_synthesised_images_are_complex_slices_of_peak_one(data_root):
    synthesis = Synthesis.from_dict(json.loads(RECIPE.read_text())["data"]["synthesis"])
    folder = data_root / "volumes" / "val"
    validation = synthesized_image_dataset(folder, synthesis, seed=0, batch_size=2)
    assert validation.preprocessor is None
    batches = [(inputs["image"].numpy(), target.numpy()) for inputs, target in validation]
    assert [images.shape for images, _ in batches] == [(2, SIZE, SIZE)] * 2  # val_examples 4
    for images, target in batches:
        assert images.dtype == np.complex64
        np.testing.assert_array_equal(images, target)
        np.testing.assert_allclose(np.abs(images).max(axis=(1, 2)), 1.0, rtol=1e-5)  # noiseless, peak 1
        assert np.abs(np.angle(images[np.abs(images) > 0.1])).max() > 0.1  # a phase, not a magnitude
    again = [inputs["image"].numpy() for inputs, _ in synthesized_image_dataset(folder, synthesis, seed=0,
                                                                                 batch_size=2)]
    np.testing.assert_array_equal(np.concatenate(again), np.concatenate([b for b, _ in batches]))  # fixed


def test_the_recipe_trains_through_the_cli_and_gives_a_usable_prior(data_root, tmp_path, monkeypatch, capsys, rng):
    run, preset = tmp_path / "run", tmp_path / "preset"
    assert cli.main(["train", str(RECIPE), "--data", str(data_root), "--run-dir", str(run), "-o", str(preset),
                     "--verbose", "0"]) == 0
    assert "trained 4 steps (batch 2)" in capsys.readouterr().out
    record = json.loads((run / "run.json").read_text())
    assert record["optimizer_iterations"] == 4 and record["task"] == "prior" and record["spectral_norm"] == 2.0
    assert record["validation_batches"] == 2 and np.isfinite(record["validation_metrics"]["loss"])
    assert "denoising score matching" in record["loss"]
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert len(rows) == 2 and all(float(row["val_loss"]) > 0 for row in rows)
    assert (run / "validation_curve.png").read_bytes()[:4] == b"\x89PNG"

    model = fastmri_zoo.load(preset)
    assert type(model) is ScoreNetwork and model.get_config()["layers_n_channels"] == [4, 8, 8]
    norms = kernel_norms(model)
    assert len(norms) == 16 and all(abs(norm - 2.0) < 0.04 for norm in norms), norms  # projected after the steps
    metadata = json.loads((preset / "metadata.json").read_text())
    assert metadata["task"] == "prior" and metadata["input_signature"]["image"]["shape"] == [1, SIZE, SIZE]
    with h5py.File(preset / "model.weights.h5") as handle:
        assert "optimizer" not in handle
    card = (preset / "README.md").read_text()
    assert "spectral norm 2" in card and "Ramzi" in card and "mri-prior" in card

    # Bundled with its recipe, it is a registered prior: listed, loaded by name, sampled with.
    root = tmp_path / "weights"
    shutil.copytree(preset, root / "score-prior-tiny")
    shutil.copy(RECIPE, root / "score-prior-tiny" / "recipe.json")
    monkeypatch.setenv(registry.WEIGHTS_DIR_ENV, str(root))
    assert fastmri_zoo.list_models(task="prior") == ["score-prior-ixi", "score-prior-tiny"]  # the shipped one and this
    assert registry.get_entry("score-prior-tiny").pretrained
    x, sigma = (rng.standard_normal((2, SIZE, SIZE)) + 0j).astype(np.complex64), np.array([0.1, 0.2], np.float32)
    np.testing.assert_array_equal(fastmri_zoo.load("score-prior-tiny").score(x, sigma).numpy(),
                                  model.score(x, sigma).numpy())
    image = ellipsoids(np.random.default_rng(9), (3, SIZE, SIZE))[1] * np.exp(0.3j)
    mask = np.zeros(SIZE, np.float32)
    mask[::2] = 1
    mask[SIZE // 2 - 2 : SIZE // 2 + 2] = 1
    write_fastmri_h5(tmp_path / "slice.h5", (np_fftc(image[None]) * mask).astype(np.complex64),
                     np.abs(image[None]).astype(np.float32))
    assert cli.main(["sample", "score-prior-tiny", str(tmp_path / "slice.h5"), "--chains", "2", "--steps", "5",
                     "-o", str(tmp_path / "posterior.h5")]) == 0
    assert "acceptance rate" in capsys.readouterr().out
    with h5py.File(tmp_path / "posterior.h5") as handle:
        assert handle["posterior_std"].shape == (1, SIZE, SIZE) and handle.attrs["prior"] == "score-prior-tiny"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r.update(acquisition={"kind": "cartesian"}), "acquisition: ScoreNetwork is a prior, trained on images"),
        (lambda r: r["data"].pop("synthesis"), "data.synthesis: a prior's training images are synthesised"),
        (lambda r: r["data"]["synthesis"].update(coils=4),
         "data.synthesis.coils: a prior learns coil-combined images, one coil"),
        (lambda r: r["training"].update(loss="l1"),
         "training.loss: 'dsm' is the loss of priors, and the only one; ScoreNetwork is a prior model, got 'l1'"),
        (lambda r: r["training"].update(spectral_norm=0), "training.spectral_norm: expected a value > 0"),
        (lambda r: r["card"].update(task="reconstruction"), "card.task: expected 'prior' (ScoreNetwork is a prior model)"),
        (lambda r: r["card"].pop("task"), "card.task: expected 'prior'"),
    ],
)
def test_bad_prior_recipes_give_clear_errors(tmp_path, capsys, edit, message):
    recipe = json.loads(RECIPE.read_text())
    edit(recipe)
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    assert cli.main(["train", str(tmp_path / "recipe.json"), "--data", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert message in error, error


def test_a_reconstruction_recipe_cannot_take_the_dsm_loss(tmp_path, capsys):
    recipe = json.loads((Path(__file__).resolve().parents[2] / "weights" / "unet-cartesian-singlecoil-af4" /
                         "recipe.json").read_text())
    recipe["training"]["loss"] = "dsm"
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    assert cli.main(["train", str(tmp_path / "recipe.json"), "--data", str(tmp_path)]) == 2
    assert "training.loss: 'dsm' is the loss of priors, and the only one; UNet is a reconstruction model" in \
        capsys.readouterr().err
