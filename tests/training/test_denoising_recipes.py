"""The learnlet recipes of issue 16 (tests/training/recipes: the learnlet and the U-net denoisers of IXI
magnitude slices, sigma uniform in [0, 55] / 255 and MSE; the learnlet ISTA network at Cartesian
single-coil AF 4) validate as written, and a few steps of each run through the one trainer on tiny
generated volumes (the recipe's model, data and training sections shrunk), ending in a preset that
loads; the trainer keeps a learnlet's noise normalisation and constraints through training."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

import fastmri_zoo
from fastmri_zoo import models
from fastmri_zoo.data.pipelines import DENOISING_SIGMA
from fastmri_zoo.training.fit import fit, image_training_data
from fastmri_zoo.training.config import load_recipe, run_recipe
from tests.training.conftest import phantoms

RECIPES = Path(__file__).resolve().parent / "recipes"
#: name -> (model class, task)
LEARNLET_RECIPES = {
    "learnlet-denoising-ixi": (models.LearnletDenoiser, "denoising"),
    "unet-denoising-ixi": (models.UNetDenoiser, "denoising"),
    "learnlet-ista-cartesian-singlecoil-af4": (models.LearnletNet, "reconstruction"),
}


@pytest.fixture(scope="module")
def volume_root(tmp_path_factory):
    """magnitude/train (2 volumes) and magnitude/val (1 volume) of 20^3 disc phantoms, as .npy."""
    root = tmp_path_factory.mktemp("volumes")
    rng = np.random.default_rng(3)
    for part, count in (("train", 2), ("val", 1)):
        folder = root / "magnitude" / part
        folder.mkdir(parents=True)
        for i in range(count):
            np.save(folder / f"v{i}.npy", phantoms(rng, 20, size=20).astype(np.float32))
    return root


def shrunk(raw: dict, cls) -> dict:
    """The recipe with a small model, 32 x 32 examples and 2 steps of batch 2."""
    raw = json.loads(json.dumps(raw))
    raw["model"]["kwargs"] = cls.small_config()
    raw["data"]["synthesis"].update(size=[32, 32], val_examples=2, min_signal=0.1)
    raw["training"].update(steps=2, steps_per_epoch=2, batch_size=2, val_steps=1, learning_rate_drops=[])
    return raw


@pytest.mark.parametrize("name", list(LEARNLET_RECIPES))
def test_recipe_validates_and_trains_a_few_steps(name, volume_root, tmp_path):
    cls, task = LEARNLET_RECIPES[name]
    raw = json.loads((RECIPES / f"{name}.json").read_text())
    recipe = load_recipe(RECIPES / f"{name}.json")  # the recipe as written: every key checked, the model built
    assert recipe.name == name and recipe.model_class == cls.__name__ and recipe.task == task
    assert isinstance(recipe.build_model(), cls)
    if task == "denoising":
        assert recipe.acquisition is None and recipe.loss == "mse"
        np.testing.assert_allclose(recipe.data["sigma"], [0.0, 55 / 255])
    else:
        assert recipe.acquisition == {"kind": "cartesian", "ndim": 2, "multicoil": False, "mask_type": "random",
                                      "center_fraction": 0.08, "acceleration": 4}

    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(shrunk(raw, cls)))
    result = run_recipe(load_recipe(path), volume_root, run_dir=tmp_path / "run", output=tmp_path / "preset",
                        verbose=0)
    assert result.steps == 2 and np.isfinite(result.metrics["psnr"])
    metadata = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert metadata["task"] == task
    loaded = fastmri_zoo.load(str(tmp_path / "preset"))
    assert type(loaded) is cls
    if task == "denoising":
        assert metadata["input_signature"]["image"] == {"shape": [1, 32, 32, 1], "dtype": "float32"}
        image = np.random.default_rng(0).uniform(size=(1, 32, 32, 1)).astype(np.float32)
        out = loaded({"image": image, "sigma": np.array([0.1], np.float32)}).numpy()
        assert out.shape == image.shape and np.isfinite(out).all()
    for learnlet in [getattr(loaded, "learnlet", None)] if hasattr(loaded, "learnlet") else []:
        assert ((learnlet.thresholds.numpy() >= 0) & (learnlet.thresholds.numpy() <= 5)).all()
        for analysis in learnlet.analysis:
            norms = np.sqrt((analysis.kernel.numpy() ** 2).sum(axis=(0, 1, 2)))
            np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_fit_keeps_the_learnlet_normalisation_up(volume_root, tmp_path):
    """A learnlet's coefficient_std set far off (7) is re-estimated during ``fit`` (momentum 0.9) after steps 1,
    11 and 21: after 24 steps it is 7 x 0.9^3 + (1 - 0.9^3) x the unit-noise estimate, within the drift of the
    filters."""
    keras.utils.set_random_seed(0)
    model = models.LearnletDenoiser(**models.LearnletDenoiser.small_config())
    model.build()
    estimate = [std.numpy().copy() for std in model.learnlet.coefficient_std]
    for std in model.learnlet.coefficient_std:
        std.assign(np.full(std.shape, 7.0, np.float32))
    train, val = image_training_data(volume_root / "magnitude" / "train", volume_root / "magnitude" / "val",
                                     {"size": [16, 16], "val_examples": 2, "min_signal": 0.1}, batch_size=2,
                                     sigma=DENOISING_SIGMA)
    fit(model, train, val, steps=24, steps_per_epoch=12, loss="mse", learning_rate=1e-3, run_dir=tmp_path / "run",
        verbose=0)
    kept = 0.9**3
    for std, initial in zip(model.learnlet.coefficient_std, estimate):
        np.testing.assert_allclose(std.numpy(), kept * 7.0 + (1 - kept) * initial, rtol=0.05)


def test_denoising_recipe_errors(tmp_path):
    raw = json.loads((RECIPES / "learnlet-denoising-ixi.json").read_text())
    cases = [
        (dict(raw, acquisition={"kind": "cartesian"}), "remove the acquisition section"),
        ({**raw, "data": {k: v for k, v in raw["data"].items() if k != "synthesis"}}, "data.synthesis"),
        ({**raw, "data": {**raw["data"], "sigma": [0.2, 0.1]}}, "data.sigma: expected finite \\[low, high\\]"),
        ({**raw, "card": {**raw["card"], "task": "prior"}}, "card.task: expected 'denoising'"),
    ]
    ista = json.loads((RECIPES / "learnlet-ista-cartesian-singlecoil-af4.json").read_text())
    cases.append(({**ista, "data": {**ista["data"], "sigma": [0, 0.1]}}, "data.sigma: the noise levels of a denoiser"))
    for content, message in cases:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(content))
        with pytest.raises(ValueError, match=message):
            load_recipe(path)
