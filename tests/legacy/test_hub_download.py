"""Loading the authors' checkpoints by name through the fake Hugging Face Hub of the zoo's tests.

The first download is checked (structure, finite values) before its sha256 is
recorded in the cache folder; later loads (online or offline) must match the
record; offline without the file, loading fails before anything is built, and
says which Hub repo to pre-download and how.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import fastmri_zoo
from fastmri_zoo import registry
from fastmri_zoo.hub import ChecksumError, HubUnreachableError, sha256_file
from fastmri_zoo.legacy import LegacyStructureError, checkpoints
from fastmri_zoo.legacy.integrity import record_key, record_path, recorded_sha256
from tests.legacy.conftest import DATA, cartesian_inputs, golden, relative_error
from tests.zoo_helpers import go_offline, hub  # noqa: F401

NAME = "pdnet-cartesian-singlecoil-af4-oasis"
REPO = "zaccharieramzi/PDNet-OASIS"
FILE = DATA / "PDNet-OASIS" / "model_weights.h5"


def assert_reproduces_golden(model, folder="PDNet-OASIS"):
    arrays = golden(folder)
    output = np.abs(model(cartesian_inputs(arrays, 1e-2)).numpy()) * 1e-2
    assert relative_error(output, arrays["output"][..., 0]) < 1e-4


def test_first_download_records_sha256_then_cache_and_offline(hub, monkeypatch):
    commit = hub.add_commit(REPO, {"model_weights.h5": FILE.read_bytes()})
    model = fastmri_zoo.load(NAME)
    assert_reproduces_golden(model)
    assert model.keras2_source["hub"] == f"hf://{REPO}/model_weights.h5@main"
    assert hub.count("GET", "model_weights.h5") == 1

    record = json.loads(record_path().read_text())
    key = record_key(REPO, "model_weights.h5", None)
    assert record[key]["sha256"] == sha256_file(FILE) and record[key]["commit"] == commit
    assert str(record_path()).startswith(str(hub.cache))

    fastmri_zoo.load(NAME)  # online again: a metadata request, no second transfer
    assert hub.count("GET", "model_weights.h5") == 1

    before = len(hub.requests)
    go_offline(monkeypatch)
    assert_reproduces_golden(fastmri_zoo.load(NAME))
    assert len(hub.requests) == before


def test_offline_without_cache_fails_fast_naming_repo_and_command(hub, monkeypatch, no_build):
    hub.add_commit("zaccharieramzi/CascadeNet-OASIS", {"model_weights.h5": b"never served"})
    go_offline(monkeypatch)
    with pytest.raises(HubUnreachableError) as error:
        fastmri_zoo.load("cascadenet-cartesian-singlecoil-af4-oasis")
    message = str(error.value)
    assert "Offline mode is on" in message and "'zaccharieramzi/CascadeNet-OASIS'" in message
    assert "hf download zaccharieramzi/CascadeNet-OASIS model_weights.h5" in message
    assert hub.requests == []


def refuse_to_build(*args, **kwargs):
    raise AssertionError("a network was built")


@pytest.fixture
def no_build(monkeypatch):
    """Any attempt to build a network fails: proves a load stopped before building."""
    monkeypatch.setattr(checkpoints, "build", refuse_to_build)


def test_a_changed_file_on_the_hub_is_refused(hub, monkeypatch):
    """After the first load recorded the sha256, a new file on the Hub (same structure, other values) is refused
    before anything is built."""
    hub.add_commit(REPO, {"model_weights.h5": FILE.read_bytes()})
    fastmri_zoo.load(NAME)
    key = record_key(REPO, "model_weights.h5", None)
    recorded = recorded_sha256(key)
    hub.add_commit(REPO, {"model_weights.h5": (DATA / "PDNet-OASIS" / "era_tf24" / "model_weights.h5").read_bytes()})
    monkeypatch.setattr(checkpoints, "build", refuse_to_build)
    with pytest.raises(ChecksumError) as error, pytest.warns(RuntimeWarning, match="sha256 mismatch"):
        fastmri_zoo.load(NAME)
    assert recorded in str(error.value) and str(record_path()) in str(error.value)
    assert recorded_sha256(key) == recorded


def test_a_wrong_file_on_first_download_is_refused_and_not_recorded(hub):
    """The first download of a file with another structure (here a Cascade-net file) is refused, nothing recorded."""
    hub.add_commit(REPO, {"model_weights.h5": (DATA / "CascadeNet-OASIS" / "model_weights.h5").read_bytes()})
    with pytest.raises(LegacyStructureError, match=r"30 layer groups with weights, the zoo expects 60"):
        fastmri_zoo.load(NAME)
    assert recorded_sha256(record_key(REPO, "model_weights.h5", None)) is None


def test_untrained_architecture_needs_no_download(hub):
    model = fastmri_zoo.load(NAME, pretrained=False)
    assert model.count_params() == 318_280
    assert hub.requests == []


def test_entries_listed_with_the_hub_marker_and_cards(capsys):
    from fastmri_zoo import cli

    assert cli.main(["list"]) == 0
    rows = {line.split()[0]: line.split()[-1] for line in capsys.readouterr().out.splitlines()[1:]}
    names = [c.name for c in checkpoints.LEGACY_CHECKPOINTS]
    assert len(names) == 18 and all(rows[name] == "Hub" for name in names)
    for name in ("pdnet-cartesian-singlecoil-af4-oasis", "ncpdnet-radial-3d-oasis",
                 "xpdnet-cartesian-multicoil-af8-fastmri", "updnet-cartesian-multicoil-af4-fastmri"):
        card = fastmri_zoo.info(name)
        assert "Zaccharie Ramzi" in card and "Training data:" in card and "revision not pinned" in card
        assert f"hf://{registry.get_entry(name).hub_repo}" in card
    assert "OASIS" in fastmri_zoo.info("ncpdnet-radial-3d-oasis")
    assert "fastMRI brain" in fastmri_zoo.info("xpdnet-cartesian-multicoil-af8-fastmri")


def test_unpinned_hub_entries_need_a_loader():
    with pytest.raises(ValueError, match="hub_revision"):
        registry.CheckpointEntry(architecture="x", trajectory="cartesian", coils="singlecoil", hub_repo="a/b",
                                 hub_filename="model_weights.h5")
    entry = registry.CheckpointEntry(architecture="x", trajectory="cartesian", coils="singlecoil", hub_repo="a/b",
                                     hub_filename="model_weights.h5", pretrained=True, loader=lambda **kwargs: None)
    assert entry.hub_revision is None and entry.sha256 is None
