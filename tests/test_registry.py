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
    assert hub.count("GET") == 4  # config, metadata, README, weights
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
    assert folders == [tmp_path, package / "weights", package.parent / "weights"]


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, fastmri_zoo; print('tensorflow' in sys.modules, 'huggingface_hub' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
