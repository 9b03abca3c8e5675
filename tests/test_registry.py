"""The registry of named checkpoints and fastmri_zoo.load / list_models / info."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import time

import numpy as np
import pytest

import fastmri_zoo
from fastmri_zoo import registry
from fastmri_zoo.hub import ChecksumError, HubUnreachableError, sha256_file
from fastmri_zoo.registry import CheckpointEntry
from tests.zoo_helpers import (  # noqa: F401
    TinyResidual,
    example_inputs,
    go_offline,
    hub,
    make_preset,
    preset_files,
)

HUB_REPO = "zoo-tests/registry"


@pytest.fixture
def registered():
    """register(entry) for the test; every entry is removed afterwards."""
    names = []

    def add(entry: CheckpointEntry, **kwargs) -> CheckpointEntry:
        registry.register(entry, **kwargs)
        names.append(entry.name)
        return entry

    yield add
    for name in names:
        registry.unregister(name)


@pytest.fixture
def weights_root(tmp_path, monkeypatch):
    root = tmp_path / "weights"
    root.mkdir()
    monkeypatch.setenv(registry.WEIGHTS_DIR_ENV, str(root))
    return root


def _entry(**fields) -> CheckpointEntry:
    base = dict(architecture="tinynet", trajectory="cartesian", coils="singlecoil", acceleration=4)
    base.update(fields)
    return CheckpointEntry(**base)


def test_names_follow_the_convention():
    assert _entry().name == "tinynet-cartesian-singlecoil-af4"
    assert _entry(acceleration=None, coils="multicoil", trajectory="radial").name == "tinynet-radial-multicoil"
    assert _entry(dataset="knee").name == "tinynet-cartesian-singlecoil-af4-knee"
    assert _entry(variant="adjdcomp", acceleration=None, trajectory="radial").name == "tinynet-adjdcomp-radial-singlecoil"
    with pytest.raises(ValueError, match="variant: expected a lowercase name"):
        _entry(variant="adj-dcomp")
    with pytest.raises(ValueError, match="name: expected 'tinynet-cartesian-singlecoil-af4'"):
        _entry(name="tinynet-cartesian-singlecoil-af8")
    with pytest.raises(ValueError, match="coils: expected one of"):
        _entry(coils="multi")
    with pytest.raises(ValueError, match="architecture"):
        _entry(architecture="tiny-net")
    with pytest.raises(ValueError, match="hub_revision"):
        _entry(hub_repo="owner/repo", hub_revision="main")
    with pytest.raises(ValueError, match="sha256"):
        _entry(pretrained=True, bundled="folder")
    with pytest.raises(ValueError, match="bundled, hub_repo"):
        _entry(pretrained=True, sha256="a" * 64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        _entry().acceleration = 8


def test_register_list_and_filter(registered):
    registered(_entry())
    registered(_entry(acceleration=8))
    registered(_entry(architecture="othernet", trajectory="radial", coils="multicoil", acceleration=None))
    names = fastmri_zoo.list_models()
    assert {"tinynet-cartesian-singlecoil-af4", "tinynet-cartesian-singlecoil-af8",
            "othernet-radial-multicoil"} <= set(names)
    assert names == sorted(names)
    assert fastmri_zoo.list_models(architecture="tinynet") == [
        "tinynet-cartesian-singlecoil-af4", "tinynet-cartesian-singlecoil-af8"]
    assert fastmri_zoo.list_models(architecture="tinynet", acceleration=8) == ["tinynet-cartesian-singlecoil-af8"]
    radial_multicoil = fastmri_zoo.list_models(coils="multicoil", trajectory="radial")
    assert "othernet-radial-multicoil" in radial_multicoil  # with the registered radial multicoil checkpoints
    assert radial_multicoil == sorted(e.name for e in registry.list_entries()
                                      if (e.coils, e.trajectory) == ("multicoil", "radial"))
    assert "tinynet-cartesian-singlecoil-af4" not in fastmri_zoo.list_models(pretrained=True)
    with pytest.raises(ValueError, match="unknown filter"):
        fastmri_zoo.list_models(colis="multicoil")
    with pytest.raises(ValueError, match="coils"):
        fastmri_zoo.list_models(coils="multi")


def test_register_conflicts(registered):
    entry = registered(_entry(description="first"))
    registry.register(dataclasses.replace(entry))  # identical: no-op
    with pytest.raises(ValueError, match="already registered"):
        registry.register(dataclasses.replace(entry, description="second"))
    registered(dataclasses.replace(entry, description="second"), replace=True)
    assert registry.get_entry(entry.name).description == "second"


def test_unknown_name_lists_closest(registered):
    registered(_entry())
    registered(_entry(acceleration=8))
    registered(_entry(architecture="zzz", trajectory="spiral", coils="3d", acceleration=None))
    with pytest.raises(ValueError, match="closest names: ") as caught:
        fastmri_zoo.load("tinynet-cartesian-singlecoil-af5")
    closest = str(caught.value).split("closest names: ")[1].split(".")[0].split(", ")
    # the two near-misses come first (difflib ranks by similarity); shipped names may follow
    assert set(closest[:2]) == {"tinynet-cartesian-singlecoil-af4", "tinynet-cartesian-singlecoil-af8"}
    assert "zzz-spiral-3d" not in closest
    with pytest.raises(ValueError, match="unknown checkpoint 'tinynet-cartesain-singlecoil-af4'"):
        fastmri_zoo.info("tinynet-cartesain-singlecoil-af4")


def _bundled_entry(weights_root, tmp_path, bundle: bool = True, **fields):
    folder, model = make_preset(tmp_path / "source", filters=3, description="A bundled tiny network.")
    if bundle:
        shutil.copytree(folder, weights_root / "tinynet-bundled")
    entry = _entry(bundled="tinynet-bundled", sha256=sha256_file(folder / "model.weights.h5"), pretrained=True,
                   description="tiny", **fields)
    return entry, model, folder


def test_load_bundled_offline_identical_outputs(registered, weights_root, tmp_path, monkeypatch):
    entry, model, _ = _bundled_entry(weights_root, tmp_path)
    registered(entry)
    go_offline(monkeypatch)
    loaded = fastmri_zoo.load(entry.name)
    assert type(loaded) is TinyResidual and loaded.get_config() == model.get_config()
    inputs = example_inputs(seed=9)
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())
    assert entry.name in fastmri_zoo.list_models(pretrained=True)
    assert "A bundled tiny network." in fastmri_zoo.info(entry.name)
    # the same name through the generic entry point
    from fastmri_zoo.models import ReconstructionModel

    assert type(ReconstructionModel.from_preset(entry.name)) is TinyResidual


def test_bundled_weights_differing_from_registry_are_refused(registered, weights_root, tmp_path):
    entry, _, _ = _bundled_entry(weights_root, tmp_path)
    pinned = "b" * 64
    registered(dataclasses.replace(entry, sha256=pinned))
    actual = sha256_file(weights_root / "tinynet-bundled" / "model.weights.h5")
    with pytest.raises(ChecksumError, match=f"registry: expected {pinned}, got {actual}"):
        fastmri_zoo.load(entry.name)


def test_load_from_hub_when_not_bundled_then_cached(registered, weights_root, tmp_path, hub, monkeypatch):
    entry, model, folder = _bundled_entry(weights_root, tmp_path, bundle=False)
    commit = hub.add_commit(HUB_REPO, preset_files(folder, "tinynet"))
    registered(dataclasses.replace(entry, hub_repo=HUB_REPO, hub_filename="tinynet/model.weights.h5",
                                   hub_revision=commit))
    inputs = example_inputs(seed=1)
    loaded = fastmri_zoo.load(entry.name)
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())
    published = [name for name in ("preprocessor.json", "recipe.json") if (folder / name).is_file()]
    assert hub.count("GET") == 4 + len(published)  # config, metadata, README, weights and the optional files
    requests = len(hub.requests)
    fastmri_zoo.load(entry.name)
    assert len(hub.requests) == requests  # pinned commit, warm cache: no request
    go_offline(monkeypatch)
    offline = fastmri_zoo.load(entry.name)
    np.testing.assert_array_equal(offline(inputs).numpy(), model(inputs).numpy())
    assert "A bundled tiny network." in fastmri_zoo.info(entry.name)  # the cached card


def test_hub_weights_differing_from_registry_are_never_loaded(registered, weights_root, tmp_path, hub):
    entry, _, folder = _bundled_entry(weights_root, tmp_path, bundle=False)
    other, _ = make_preset(tmp_path / "other", filters=3, seed=5)  # self-consistent, but not the pinned weights
    commit = hub.add_commit(HUB_REPO, preset_files(other))
    registered(dataclasses.replace(entry, hub_repo=HUB_REPO, hub_revision=commit))
    with pytest.warns(RuntimeWarning):
        with pytest.raises(ChecksumError, match=entry.sha256):
            fastmri_zoo.load(entry.name)
    assert not list(hub.cache.rglob("snapshots/*/model.weights.h5"))


def test_bundled_first_then_hub_for_another_revision(registered, weights_root, tmp_path, hub):
    entry, model, folder = _bundled_entry(weights_root, tmp_path)
    pinned = hub.add_commit(HUB_REPO, preset_files(folder))
    newer_folder, newer = make_preset(tmp_path / "newer", filters=3, seed=11)
    newer_commit = hub.add_commit(HUB_REPO, preset_files(newer_folder))
    registered(dataclasses.replace(entry, hub_repo=HUB_REPO, hub_revision=pinned))
    inputs = example_inputs(seed=2)
    np.testing.assert_array_equal(fastmri_zoo.load(entry.name)(inputs).numpy(), model(inputs).numpy())
    assert hub.requests == []  # bundled: the Hub is not asked
    other = fastmri_zoo.load(entry.name, revision=newer_commit)
    np.testing.assert_array_equal(other(inputs).numpy(), newer(inputs).numpy())


def test_unreachable_hub_without_bundle(registered, weights_root, tmp_path, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        monkeypatch.setenv("FASTMRI_ZOO_HF_ENDPOINT", f"http://127.0.0.1:{probe.getsockname()[1]}")
    entry, _, _ = _bundled_entry(weights_root, tmp_path, bundle=False)
    registered(dataclasses.replace(entry, hub_repo=HUB_REPO, hub_revision="c" * 40))
    with pytest.raises(HubUnreachableError, match=f"'{HUB_REPO}'.*HF_HUB_OFFLINE=1"):
        fastmri_zoo.load(entry.name)


def test_pretrained_false_and_untrained_entries(registered, weights_root, tmp_path):
    entry, model, _ = _bundled_entry(weights_root, tmp_path)
    registered(entry)
    fresh = fastmri_zoo.load(entry.name, pretrained=False)
    assert fresh.get_config() == model.get_config()
    assert not np.array_equal(fresh.weights[0].numpy(), model.weights[0].numpy())

    untrained = registered(_entry(architecture="newnet", builder=lambda: TinyResidual(filters=5)))
    assert untrained.name not in fastmri_zoo.list_models(pretrained=True)
    with pytest.raises(ValueError, match="no trained weights yet.*pretrained=False"):
        fastmri_zoo.load(untrained.name)
    built = fastmri_zoo.load(untrained.name, pretrained=False)
    assert isinstance(built, TinyResidual) and built.filters == 5
    card = fastmri_zoo.info(untrained.name)
    assert "no trained weights yet" in card and "newnet" in card


def test_weights_dirs_order(monkeypatch, tmp_path):
    monkeypatch.setenv(registry.WEIGHTS_DIR_ENV, str(tmp_path))
    folders = registry.weights_dirs()
    package = __import__("pathlib").Path(fastmri_zoo.__file__).resolve().parent
    assert not (package / "_weights").exists()  # this checkout reads weights/ in place (editable install)
    assert folders == [tmp_path, package.parent / "weights"]
    monkeypatch.delenv(registry.WEIGHTS_DIR_ENV)
    assert registry.weights_dirs() == [package.parent / "weights"]


def test_packaged_weights_root_is_the_wheels_copy_else_the_repository_folder(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "fastmri_zoo").mkdir(parents=True)
    assert registry.packaged_weights_root(checkout / "fastmri_zoo") == checkout / "weights"
    site = tmp_path / "site-packages"
    (site / "fastmri_zoo" / "_weights").mkdir(parents=True)
    (site / "weights").mkdir()  # another distribution's top-level folder: never searched
    assert registry.packaged_weights_root(site / "fastmri_zoo") == site / "fastmri_zoo" / "_weights"


def test_an_installed_package_loads_the_presets_its_wheel_carries(registered, tmp_path, monkeypatch):
    """A package installed from a wheel (presets in fastmri_zoo/_weights) lists, finds and loads those presets only."""
    monkeypatch.delenv(registry.WEIGHTS_DIR_ENV, raising=False)
    site = tmp_path / "site-packages"
    packaged = site / "fastmri_zoo" / "_weights"
    packaged.mkdir(parents=True)
    folder, model = _recipe_folder(packaged, tmp_path)
    _recipe_folder(site / "weights", tmp_path / "other", name="tinynet-spiral-multicoil", card={"trajectory": "spiral"})
    monkeypatch.setattr(registry, "__file__", str(site / "fastmri_zoo" / "registry.py"))
    assert registry.weights_dirs() == [packaged]
    assert "tinynet-radial-multicoil" in fastmri_zoo.list_models()
    assert "tinynet-spiral-multicoil" not in fastmri_zoo.list_models()
    # nor does it read the repository's weights/ (whose ncpdnet-radial-multicoil has no Keras-2 namesake)
    assert "ncpdnet-radial-multicoil" not in fastmri_zoo.list_models()
    entry = registry.get_entry("tinynet-radial-multicoil")
    assert registry.bundled_folder(entry) == folder and "A bundled tiny network." in fastmri_zoo.info(entry.name)
    inputs = example_inputs(seed=5)
    np.testing.assert_array_equal(fastmri_zoo.load(entry.name)(inputs).numpy(), model(inputs).numpy())
    shutil.rmtree(folder)
    registered(entry)  # the description stays, the folder is gone: the error says where it was looked for
    with pytest.raises(ValueError, match=r"its bundled folder 'tinynet-radial-multicoil' \(with config.json "
                       r"and model.weights.h5\) is in none of '.*_weights', and it has no Hub repo"):
        fastmri_zoo.load(entry.name)


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, fastmri_zoo; print('tensorflow' in sys.modules, 'huggingface_hub' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------------------- one description per checkpoint


SHIPPED_NAMES = [
    "cascadenet-cartesian-singlecoil-af4", "cascadenet-cartesian-singlecoil-af4-fastmri",
    "cascadenet-cartesian-singlecoil-af4-oasis", "dccnn-cartesian-singlecoil", "dccnn-fedavg-cartesian-multicoil", "irim-3d-cartesian-singlecoil-af4",
    "irim-cartesian-multicoil-af4", "irim-cartesian-singlecoil-af4",
    "kikinet-cartesian-singlecoil-af4",
    "kikinet-cartesian-singlecoil-af4-fastmri", "kikinet-cartesian-singlecoil-af4-oasis", "learnlet-denoising-ixi",
    "learnlet-ista-cartesian-singlecoil-af4",
    "nasnet-cartesian-singlecoil", "nasnet-fedautomri-cartesian-multicoil", "ncpdnet-radial-3d",
    "ncpdnet-radial-3d-oasis", "ncpdnet-radial-multicoil", "ncpdnet-radial-multicoil-fastmri",
    "ncpdnet-radial-singlecoil", "ncpdnet-radial-singlecoil-fastmri", "ncpdnet-spiral-multicoil",
    "ncpdnet-spiral-multicoil-fastmri", "ncpdnet-spiral-singlecoil", "ncpdnet-spiral-singlecoil-fastmri",
    "pdnet-cartesian-singlecoil-af4", "pdnet-cartesian-singlecoil-af4-fastmri", "pdnet-cartesian-singlecoil-af4-oasis",
    "reconode-fa_rk4-cartesian-singlecoil-af4", "reconode-ft_rk4-cartesian-singlecoil-af4",
    "reconode-lt_rk4-cartesian-singlecoil-af4",
    "rim-cartesian-singlecoil-af4", "score-prior-ixi",
    "unet-adjdcomp-radial-multicoil", "unet-cartesian-singlecoil-af4", "unet-cartesian-singlecoil-af4-fastmri",
    "unet-cartesian-singlecoil-af4-oasis", "unet-denoising-ixi", "updnet-cartesian-multicoil-af4-fastmri",
    "updnet-cartesian-multicoil-af8-fastmri", "updnet-cartesian-singlecoil-af4-fastmri",
    "xpdnet-cartesian-multicoil-af4", "xpdnet-cartesian-multicoil-af4-fastmri", "xpdnet-cartesian-multicoil-af8",
    "xpdnet-cartesian-multicoil-af8-fastmri",
]


def test_shipped_names_come_from_the_preset_folders_and_the_keras2_table():
    assert [name for name in fastmri_zoo.list_models() if name in SHIPPED_NAMES] == SHIPPED_NAMES
    repository_weights = __import__("pathlib").Path(fastmri_zoo.__file__).resolve().parent.parent / "weights"
    folders = sorted(path.name for path in repository_weights.iterdir() if (path / "recipe.json").is_file())
    assert len(folders) == 27
    for folder in folders:  # each bundled checkpoint is described once, by its folder
        entry = registry.get_entry(folder)
        metadata = __import__("json").loads((repository_weights / folder / "metadata.json").read_text())
        assert (entry.format, entry.bundled, entry.pretrained) == ("preset", folder, True)
        assert (entry.sha256, entry.class_name) == (metadata["weights_sha256"], metadata["class_name"])
        assert "IXI" in entry.description and registry.bundled_folder(entry) == repository_weights / folder
    keras2 = [entry for entry in registry.list_entries() if entry.format == "keras2"]
    assert len(keras2) == 18 and all(e.class_name == "fastmri_zoo>LegacyReconstruction" for e in keras2)


def test_list_and_info_are_tensorflow_free_and_register_nothing_at_import():
    import subprocess
    import sys

    code = ("import sys, fastmri_zoo; from fastmri_zoo import registry; assert registry._REGISTERED == {}; "
            "names = fastmri_zoo.list_models(); cards = [fastmri_zoo.info(n) for n in names]; "
            "print(len(names), 'tensorflow' in sys.modules, 'keras' in sys.modules, 'huggingface_hub' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == [str(len(fastmri_zoo.list_models())), "False", "False", "False"]


def _recipe_folder(root, tmp_path, name="tinynet-radial-multicoil", card=None, **recipe):
    folder, model = make_preset(tmp_path / "source", filters=3, description="A bundled tiny network.")
    target = root / name
    shutil.copytree(folder, target)
    card = {"architecture": "tinynet", "variant": None, "trajectory": "radial", "coils": "multicoil",
            "acceleration": None, "dataset": None, "description": "Tiny, from its recipe.", **(card or {})}
    (target / "recipe.json").write_text(__import__("json").dumps({"name": name, "card": card, **recipe}))
    return target, model


def test_a_preset_folder_with_a_recipe_card_is_a_named_checkpoint(weights_root, tmp_path):
    folder, model = _recipe_folder(weights_root, tmp_path)
    (weights_root / "no-card").mkdir()
    (weights_root / "no-card" / "recipe.json").write_text('{"name": "no-card", "model": {"class": "UNet"}}')
    entry = registry.get_entry("tinynet-radial-multicoil")
    assert entry == registry.preset_entry(folder)
    assert (entry.architecture, entry.trajectory, entry.coils, entry.acceleration) == ("tinynet", "radial", "multicoil", None)
    assert entry.sha256 == sha256_file(folder / "model.weights.h5") and entry.pretrained
    assert entry.class_name == "fastmri_zoo_tests>TinyResidual" and entry.format == "preset"
    assert "tinynet-radial-multicoil" in fastmri_zoo.list_models(pretrained=True, coils="multicoil")
    assert "no-card" not in fastmri_zoo.list_models()
    assert "A bundled tiny network." in fastmri_zoo.info(entry.name)  # the folder's README.md
    (folder / "README.md").unlink()
    assert "Tiny, from its recipe." in fastmri_zoo.info(entry.name)  # the card built from the recipe
    inputs = example_inputs(seed=4)
    loaded = fastmri_zoo.load(entry.name)
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())
    assert entry.name in TinyResidual.presets


def test_a_recipe_card_that_names_another_checkpoint_is_refused(weights_root, tmp_path):
    _recipe_folder(weights_root, tmp_path, name="tinynet-radial-3d", card={"coils": "multicoil"})
    with pytest.raises(ValueError, match="differs from the name its card spells, 'tinynet-radial-multicoil'"):
        fastmri_zoo.list_models()


def test_a_recipe_card_with_a_bad_field_names_its_file(weights_root, tmp_path):
    folder, _ = _recipe_folder(weights_root, tmp_path, name="tinynet-radial-multi", card={"coils": "multi"})
    with pytest.raises(ValueError, match=f"{folder / 'recipe.json'}: the card does not describe a checkpoint: coils"):
        fastmri_zoo.list_models()


def test_recipe_without_weights_is_listed_untrained(weights_root, tmp_path):
    folder = weights_root / "tinynet-spiral-singlecoil"
    folder.mkdir()
    (folder / "recipe.json").write_text(__import__("json").dumps({
        "name": "tinynet-spiral-singlecoil", "model": {"class": "NCPDNet", "kwargs": {}},
        "card": {"architecture": "tinynet", "trajectory": "spiral", "coils": "singlecoil"}}))
    entry = registry.get_entry("tinynet-spiral-singlecoil")
    assert not entry.pretrained and entry.sha256 is None and entry.class_name == "fastmri_zoo>NCPDNet"
    assert "tinynet-spiral-singlecoil" not in fastmri_zoo.list_models(pretrained=True)
    with pytest.raises(ValueError, match="no trained weights yet"):
        fastmri_zoo.load("tinynet-spiral-singlecoil")


def test_loaders_are_chosen_by_format(registered, monkeypatch):
    from fastmri_zoo import presets

    calls = []
    monkeypatch.setitem(presets.LOADERS, "keras2", lambda name, **options: calls.append((name, options)) or "model")
    assert fastmri_zoo.load("pdnet-cartesian-singlecoil-af4-oasis", pretrained=False) == "model"
    assert calls == [("pdnet-cartesian-singlecoil-af4-oasis", dict(pretrained=False, revision=None, endpoint=None,
                                                                     cache_dir=None, token=None))]
    own = registered(_entry(architecture="ownloader", hub_repo="a/b", hub_filename="weights.bin", pretrained=True,
                            loader=lambda **options: ("own", options["pretrained"])))
    assert fastmri_zoo.load(own.name) == ("own", True)
    with pytest.raises(ValueError, match="format: expected one of"):
        _entry(format="onnx")
