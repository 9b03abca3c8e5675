"""Preset folders: save_to_preset -> from_preset round trip, integrity and fit checks, the model card."""

from __future__ import annotations

import json

import h5py
import huggingface_hub
import keras
import numpy as np
import pytest
import yaml

from fastmri_zoo import presets
from fastmri_zoo.hub import ChecksumError, sha256_file
from fastmri_zoo.models.base import ReconstructionModel
from tests.zoo_helpers import (  # noqa: F401 (hub is a fixture)
    TinyResidual,
    example_inputs,
    hub,
    make_preset,
    preset_files,
    trained_model,
)


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_round_trip_gives_identical_outputs_and_config(tmp_path):
    folder, model = make_preset(tmp_path / "tiny", filters=3)
    files = {p.name for p in folder.iterdir()}
    assert files - {"preprocessor.json"} == {"README.md", "config.json", "metadata.json", "model.weights.h5"}

    loaded = ReconstructionModel.from_preset(str(folder))
    assert type(loaded) is TinyResidual
    assert loaded.get_config() == model.get_config()
    inputs = example_inputs(seed=5)
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())
    for ours, theirs in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    # the subclass entry point checks the class
    assert type(TinyResidual.from_preset(str(folder))) is TinyResidual
    # saving the loaded model again writes the same config and the same signature
    again = presets.save_to_preset(loaded, tmp_path / "again")
    assert (again / "config.json").read_text() == (folder / "config.json").read_text()
    first, second = (json.loads((f / "metadata.json").read_text()) for f in (folder, again))
    assert first["input_signature"] == second["input_signature"]
    assert first["parameter_count"] == second["parameter_count"]


def test_files_hold_config_metadata_and_hash(tmp_path):
    folder, model = make_preset(tmp_path / "tiny", filters=2)
    config = json.loads((folder / "config.json").read_text())
    assert config["registered_name"] == "fastmri_zoo_tests>TinyResidual"
    assert config["config"]["filters"] == 2 and config["config"]["kernel_size"] == 3
    assert "build_config" not in config and "compile_config" not in config

    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["weights_sha256"] == sha256_file(folder / "model.weights.h5")
    expected_count = sum(int(np.prod(w.shape)) for w in model.weights)  # 3*3*2*2+2 + 3*3*2*2+2
    assert metadata["parameter_count"] == expected_count == 76
    assert metadata["keras_version"] == keras.__version__
    assert metadata["input_signature"] == {
        "kspace": {"shape": [2, 8, 8], "dtype": "complex64"},
        "mask": {"shape": [2, 1, 8], "dtype": "float32"},
    }


def test_model_card_front_matter_and_sections(tmp_path):
    folder, _ = make_preset(
        tmp_path / "tiny-cartesian-singlecoil-af4",
        description="A tiny test network.",
        paper="Nobody et al., 2024",
        metrics={"PSNR": 31.5, "SSIM": 0.87},
        evaluation_data="synthetic phantoms, validation split",
        datasets=["fastmri"],
        trajectory="cartesian",
        acceleration=4,
        architecture='TinyResidual with {"filters": 4}',
    )
    text = (folder / "README.md").read_text()
    meta = _front_matter(text)
    assert meta["license"] == "mit" and meta["library_name"] == "keras"
    # tags: the class name, never a slug of the architecture's free text
    assert {"fastmri-zoo", "mri-reconstruction", "tinyresidual", "cartesian", "af4"} <= set(meta["tags"])
    assert not [tag for tag in meta["tags"] if "filters" in tag]
    assert meta["datasets"] == ["fastmri"]
    assert meta["metrics"] == ["psnr", "ssim"]
    parsed = huggingface_hub.ModelCard(text).data  # the Hub's own parser reads the same results
    assert {(r.metric_type, r.metric_value, r.dataset_name) for r in parsed.eval_results} == {
        ("psnr", 31.5, "synthetic phantoms, validation split"), ("ssim", 0.87, "synthetic phantoms, validation split")}
    results = meta["model-index"][0]["results"][0]
    assert meta["model-index"][0]["name"] == "tiny-cartesian-singlecoil-af4"
    assert {(m["type"], m["value"]) for m in results["metrics"]} == {("psnr", 31.5), ("ssim", 0.87)}
    for title in ("Architecture", "Paper", "Training data", "Training command", "Validation metrics",
                  "Intended use and limits"):
        assert f"\n## {title}\n" in text
    assert "Nobody et al., 2024" in text
    # what was not given says so
    training_data = text.split("## Training data\n")[1].split("##")[0]
    assert training_data.strip() == "Not provided."


def test_unknown_card_field_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="papr"):
        trained_model().save_to_preset(tmp_path / "x", papr="typo")
    assert not (tmp_path / "x").exists()


def test_tampered_weights_name_both_hashes(tmp_path):
    folder, _ = make_preset(tmp_path / "tiny")
    recorded = json.loads((folder / "metadata.json").read_text())["weights_sha256"]
    with h5py.File(folder / "model.weights.h5", "r+") as handle:
        name = [k for k in _datasets(handle)][0]
        handle[name][...] = handle[name][...] + 1.0
    actual = sha256_file(folder / "model.weights.h5")
    assert actual != recorded
    with pytest.raises(ValueError, match=f"expected {recorded}, got {actual}") as caught:
        presets.from_preset(str(folder))
    assert isinstance(caught.value, ChecksumError)
    assert caught.value.expected == recorded and caught.value.actual == actual


def _datasets(handle):
    found = []
    handle.visititems(lambda name, item: found.append(name) if isinstance(item, h5py.Dataset) else None)
    return found


def test_weights_that_do_not_fit_raise_naming_the_variable(tmp_path):
    """A preset whose weights come from a wider model: every hash matches, the shapes do not."""
    folder, _ = make_preset(tmp_path / "tiny", filters=4)
    wide, _ = make_preset(tmp_path / "wide", filters=6)
    (folder / "model.weights.h5").write_bytes((wide / "model.weights.h5").read_bytes())
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["weights_sha256"] = sha256_file(folder / "model.weights.h5")
    (folder / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match=r"conv_in/vars/0: shape \(3, 3, 2, 6\) in the file, the model expects "
                                         r"\(3, 3, 2, 4\)"):
        presets.from_preset(str(folder))


def test_pretrained_false_gives_same_architecture_fresh_weights(tmp_path):
    folder, model = make_preset(tmp_path / "tiny")
    fresh = presets.from_preset(str(folder), pretrained=False)
    assert fresh.get_config() == model.get_config()
    assert [w.shape for w in fresh.weights] == [w.shape for w in model.weights]
    assert not np.array_equal(fresh.weights[0].numpy(), model.weights[0].numpy())


def test_unbuilt_model_needs_example_inputs(tmp_path):
    with pytest.raises(ValueError, match="example_inputs"):
        TinyResidual().save_to_preset(tmp_path / "x")
    model = TinyResidual(filters=2)
    folder = tmp_path / "built_on_save"
    presets.save_to_preset(model, folder, example_inputs=example_inputs(batch=1))
    loaded = presets.from_preset(str(folder))
    inputs = example_inputs(seed=3, batch=1)
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())


@keras.saving.register_keras_serializable(package="fastmri_zoo_tests")
class TinyWithExample(TinyResidual):
    """A class that says what it is called on, so an unbuilt instance can be saved."""

    def example_inputs(self):
        return example_inputs(seed=0, batch=1)


def test_class_example_inputs_builds_an_unbuilt_model(tmp_path):
    model = TinyWithExample(filters=2)
    assert not model.built
    folder = presets.save_to_preset(model, tmp_path / "example")
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["input_signature"]["kspace"] == {"shape": [1, 8, 8], "dtype": "complex64"}
    loaded = presets.from_preset(str(folder))
    inputs = example_inputs(seed=6, batch=1)
    assert type(loaded) is TinyWithExample
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())


def test_signature_from_build_config_uses_conventional_dtypes(tmp_path):
    model = trained_model()
    signature = presets.input_signature(model)
    assert signature == {"kspace": {"shape": [2, 8, 8], "dtype": "complex64"},
                         "mask": {"shape": [2, 1, 8], "dtype": "float32"}}


def test_overwrite_replaces_a_preset_but_never_other_folders(tmp_path):
    folder, _ = make_preset(tmp_path / "tiny", filters=2)
    make_preset(folder, filters=3)
    assert json.loads((folder / "config.json").read_text())["config"]["filters"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no staging or backup folder left

    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a preset folder"):
        trained_model().save_to_preset(precious)
    assert (precious / "thesis.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "tiny"]


def test_keras_archives_and_missing_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="safe_mode=True"):
        presets.from_preset(str(tmp_path / "model.keras"))
    with pytest.raises(ValueError, match="no preset folder at"):
        presets.from_preset(str(tmp_path / "missing"))
    folder, _ = make_preset(tmp_path / "tiny")
    (folder / "metadata.json").unlink()
    with pytest.raises(ValueError, match="metadata.json"):
        presets.from_preset(str(folder))


def test_unregistered_class_in_config_is_refused(tmp_path):
    folder, _ = make_preset(tmp_path / "tiny")
    config = json.loads((folder / "config.json").read_text())
    config["registered_name"] = "evil>Payload"
    config["module"] = "os"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unknown model class 'evil>Payload'"):
        presets.from_preset(str(folder))


# ---------------------------------------------------------------------------- presets owned by their class


def test_registered_non_model_classes_are_refused(tmp_path):
    import keras

    folder, _ = make_preset(tmp_path / "tiny")
    config = json.loads((folder / "config.json").read_text())
    from fastmri_zoo.layers import ConvStack

    config["registered_name"] = keras.saving.get_registered_name(ConvStack)  # a registered layer, not a model
    assert config["registered_name"] == "fastmri_zoo>ConvStack"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="not a ReconstructionModel subclass"):
        presets.from_preset(str(folder))
    with pytest.raises(ValueError, match="expected a ReconstructionModel, got Dense"):
        presets.save_to_preset(keras.layers.Dense(2), tmp_path / "dense")


def test_classes_own_their_presets():
    from fastmri_zoo.legacy import LegacyReconstruction
    from fastmri_zoo.models import NCPDNet, UNet

    assert NCPDNet.presets == ["ncpdnet-radial-3d", "ncpdnet-radial-multicoil", "ncpdnet-radial-singlecoil",
                               "ncpdnet-spiral-multicoil", "ncpdnet-spiral-singlecoil"]
    assert UNet.presets == ["unet-cartesian-singlecoil-af4"]
    assert len(LegacyReconstruction.presets) == 18
    assert set(NCPDNet.presets) | set(LegacyReconstruction.presets) <= set(ReconstructionModel.presets)
    assert presets.resolve_class("fastmri_zoo>NCPDNet") is NCPDNet  # the class by its registered Keras name
    with pytest.raises(ValueError, match="holds a UNet, not a NCPDNet"):
        NCPDNet.from_preset("unet-cartesian-singlecoil-af4", pretrained=False)


# --------------------------------------------------------------------------- fastmri_zoo.load takes any handle


def test_load_takes_a_folder_a_path_object_or_an_hf_handle(hub, tmp_path):
    import fastmri_zoo

    folder, model = make_preset(tmp_path / "tiny", filters=3)
    other, other_model = make_preset(tmp_path / "other", filters=3, seed=7)
    commit = hub.add_commit("zoo-tests/load", preset_files(other, "presets/tiny"))
    inputs = example_inputs(seed=6)
    expected, expected_other = model(inputs).numpy(), other_model(inputs).numpy()
    for handle in (str(folder), folder):
        np.testing.assert_array_equal(fastmri_zoo.load(handle)(inputs).numpy(), expected)
    fresh = fastmri_zoo.load(str(folder), pretrained=False)
    assert type(fresh) is TinyResidual and not np.array_equal(fresh(inputs).numpy(), expected)
    from_hub = fastmri_zoo.load(f"hf://zoo-tests/load/presets/tiny@{commit}")
    np.testing.assert_array_equal(from_hub(inputs).numpy(), expected_other)
    with pytest.raises(ValueError, match="a local folder has no revisions"):
        fastmri_zoo.load(str(folder), revision=commit)


def test_load_prefers_a_registered_name_to_a_folder_of_that_name_unless_given_a_path(tmp_path, monkeypatch):
    import fastmri_zoo

    name = "unet-cartesian-singlecoil-af4"  # a shipped name; a folder of the same name in the working directory
    make_preset(tmp_path / name, filters=3)
    monkeypatch.chdir(tmp_path)
    calls = []
    monkeypatch.setitem(presets.LOADERS, "preset", lambda name, **options: calls.append(name) or "registered")
    assert fastmri_zoo.load(name) == "registered" and calls == [name]
    assert type(fastmri_zoo.load(f"./{name}")) is TinyResidual
    assert type(fastmri_zoo.load(__import__("pathlib").Path(name))) is TinyResidual
    assert calls == [name]


@pytest.mark.parametrize(
    "handle, message",
    [
        (3, r"handle: expected a registered checkpoint name .*, got int 3\."),
        (None, r"handle: expected a registered checkpoint name .*, got NoneType None\."),
        ("unet-cartesian-singlecoil-af5", r"unknown checkpoint 'unet-cartesian-singlecoil-af5'; closest names: "
                                          r"unet-cartesian-singlecoil-af4.* A handle is a registered checkpoint name"),
        ("./missing", r"no preset folder at './missing'; expected a registered checkpoint name"),
        ("hf://only-an-owner",
         r"handle: expected 'hf://owner/repo\[/subfolder\]\[@revision\]', got 'hf://only-an-owner'"),
    ],
)
def test_load_refuses_anything_else_naming_what_it_expects(handle, message, tmp_path, monkeypatch):
    import fastmri_zoo

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        fastmri_zoo.load(handle)


def test_load_refuses_a_file_naming_what_it_expects(tmp_path):
    import fastmri_zoo

    folder, _ = make_preset(tmp_path / "tiny")
    with pytest.raises(ValueError, match=r"model.weights.h5' is a file; expected a registered checkpoint name .* "
                       r"a preset folder \(config.json, metadata.json, model.weights.h5\)"):
        fastmri_zoo.load(str(folder / "model.weights.h5"))
