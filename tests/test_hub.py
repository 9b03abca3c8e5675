"""Downloads from a fake Hugging Face Hub on 127.0.0.1: cache, offline mode, errors, integrity, push."""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest

from fastmri_zoo import hub as zoo_hub
from fastmri_zoo import presets
from fastmri_zoo.hub import (
    ChecksumError,
    HubDownloadError,
    HubNotFoundError,
    HubUnreachableError,
    download_file,
    sha256_file,
)
from tests.zoo_helpers import example_inputs, go_offline, hub, make_preset, preset_files, sha256_bytes  # noqa: F401

REPO = "zoo-tests/tiny"
PAYLOAD = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def no_sleep(monkeypatch):
    """huggingface_hub waits between retries (1 s, then backoff up to 8 s); the fake Hub needs no waiting."""
    monkeypatch.setattr(time, "sleep", lambda seconds: None)


def _cached_blobs(cache):
    return sorted(p for p in cache.rglob("blobs/*") if p.is_file())


def test_first_download_then_cache_hit_without_request(hub):
    commit = hub.add_commit(REPO, {"weights.bin": PAYLOAD})
    path = download_file(REPO, "weights.bin", revision=commit, expected_sha256=sha256_bytes(PAYLOAD))
    assert path.read_bytes() == PAYLOAD
    assert hub.count("HEAD") == 1 and hub.count("GET") == 1
    assert str(path).startswith(str(hub.cache))

    again = download_file(REPO, "weights.bin", revision=commit, expected_sha256=sha256_bytes(PAYLOAD))
    assert again == path
    assert len(hub.requests) == 2  # a pinned commit in the cache costs no request at all


def test_branch_revision_in_cache_checks_metadata_only(hub):
    hub.add_commit(REPO, {"weights.bin": PAYLOAD})
    download_file(REPO, "weights.bin")
    download_file(REPO, "weights.bin")
    assert hub.count("GET") == 1 and hub.count("HEAD") == 2


def test_offline_mode_uses_cache_and_explains_a_miss(hub, monkeypatch):
    commit = hub.add_commit(REPO, {"weights.bin": PAYLOAD, "other.bin": b"x" * 10})
    cached = download_file(REPO, "weights.bin")  # via "main": the cache records main -> commit
    assert download_file(REPO, "weights.bin", revision=commit) == cached
    before = len(hub.requests)
    go_offline(monkeypatch)
    assert download_file(REPO, "weights.bin", revision=commit, expected_sha256=sha256_bytes(PAYLOAD)) == cached
    assert download_file(REPO, "weights.bin") == cached  # "main" resolved through the cached ref
    with pytest.raises(HubUnreachableError, match=r"Offline mode is on.*'other.bin'.*hf download zoo-tests/tiny"):
        download_file(REPO, "other.bin", revision=commit)
    assert len(hub.requests) == before


def test_offline_env_set_after_import_is_honoured(hub, monkeypatch):
    """HF_HUB_OFFLINE set after huggingface_hub was imported still keeps the zoo off the network."""
    hub.add_commit(REPO, {"weights.bin": PAYLOAD})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnreachableError, match="Offline mode is on"):
        download_file(REPO, "weights.bin")
    assert hub.requests == []


def test_missing_file_revision_and_repo(hub):
    commit = hub.add_commit(REPO, {"weights.bin": PAYLOAD})
    with pytest.raises(HubNotFoundError, match=r"File 'nope.bin' was not found in Hub repository 'zoo-tests/tiny'"):
        download_file(REPO, "nope.bin", revision=commit)
    with pytest.raises(HubNotFoundError, match=r"Revision 'v9' was not found in Hub repository 'zoo-tests/tiny'"):
        download_file(REPO, "weights.bin", revision="v9")
    with pytest.raises(HubNotFoundError, match=r"repository 'zoo-tests/absent' was not found"):
        download_file("zoo-tests/absent", "weights.bin")
    assert _cached_blobs(hub.cache) == []


def test_unreachable_hub_names_repo_and_offline_options(hub, monkeypatch, no_sleep):
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("FASTMRI_ZOO_HF_ENDPOINT", dead)
    with pytest.raises(HubUnreachableError) as caught:
        download_file(REPO, "weights.bin", revision="main")
    message = str(caught.value)
    assert "Could not reach the Hub" in message and "'zoo-tests/tiny'" in message and dead in message
    assert "HF_HUB_OFFLINE=1" in message and "hf download zoo-tests/tiny weights.bin" in message
    assert "bundled in the package" in message


def test_corrupted_download_is_deleted_retried_once_then_refused(hub):
    commit = hub.add_commit(REPO, {"weights.bin": PAYLOAD})
    hub.corrupt[(REPO, "weights.bin")] = 2
    expected = sha256_bytes(PAYLOAD)
    corrupted = sha256_bytes(bytes(b ^ 0xFF for b in PAYLOAD))
    with pytest.warns(RuntimeWarning, match="downloading it once more"):
        with pytest.raises(ChecksumError, match=f"'weights.bin'.*expected {expected}, got {corrupted}"):
            download_file(REPO, "weights.bin", revision=commit, expected_sha256=expected)
    assert hub.count("GET") == 2  # the first download and exactly one retry
    assert _cached_blobs(hub.cache) == []  # the corrupted copy is not left to be loaded later
    assert not list(hub.cache.rglob("snapshots/*/weights.bin"))


def test_corrupted_download_recovered_by_the_retry(hub):
    commit = hub.add_commit(REPO, {"weights.bin": PAYLOAD})
    hub.corrupt[(REPO, "weights.bin")] = 1
    with pytest.warns(RuntimeWarning, match="sha256 mismatch"):
        path = download_file(REPO, "weights.bin", revision=commit, expected_sha256=sha256_bytes(PAYLOAD))
    assert path.read_bytes() == PAYLOAD and hub.count("GET") == 2


def test_corrupted_cache_offline_is_deleted_not_loaded(hub, monkeypatch):
    commit = hub.add_commit(REPO, {"weights.bin": PAYLOAD})
    path = download_file(REPO, "weights.bin", revision=commit)
    blob = path.resolve()
    blob.chmod(0o644)
    blob.write_bytes(b"bit rot" + PAYLOAD[7:])
    go_offline(monkeypatch)
    with pytest.raises(ChecksumError, match="cached copy"):
        download_file(REPO, "weights.bin", revision=commit, expected_sha256=sha256_bytes(PAYLOAD))
    assert not blob.exists()


def test_pinned_revisions_serve_their_own_content(hub):
    old = hub.add_commit(REPO, {"weights.bin": b"version one"})
    new = hub.add_commit(REPO, {"weights.bin": b"version two, longer"})
    assert download_file(REPO, "weights.bin", revision=old).read_bytes() == b"version one"
    assert download_file(REPO, "weights.bin", revision=new).read_bytes() == b"version two, longer"
    assert download_file(REPO, "weights.bin").read_bytes() == b"version two, longer"
    assert download_file(REPO, "weights.bin", revision=old,
                         expected_sha256=sha256_bytes(b"version one")).read_bytes() == b"version one"


def test_interrupted_transfer_resumes(hub, no_sleep):
    commit = hub.add_commit(REPO, {"weights.bin": PAYLOAD})
    hub.truncate[(REPO, "weights.bin")] = 1
    path = download_file(REPO, "weights.bin", revision=commit, expected_sha256=sha256_bytes(PAYLOAD))
    assert path.read_bytes() == PAYLOAD
    ranges = [p for m, p in hub.requests if m == "GET"]
    assert len(ranges) == 2  # the cut transfer, then a resumed one (Range request) completing it


def test_interrupted_transfer_that_never_completes(hub, no_sleep):
    commit = hub.add_commit(REPO, {"weights.bin": PAYLOAD})
    hub.truncate[(REPO, "weights.bin")] = 100
    with pytest.raises(HubDownloadError, match=r"'weights.bin'.*interrupted.*nothing was loaded"):
        download_file(REPO, "weights.bin", revision=commit, expected_sha256=sha256_bytes(PAYLOAD))
    assert _cached_blobs(hub.cache) == []
    assert not [p for p in hub.cache.rglob("*") if p.name.endswith(".incomplete")]
    hub.truncate.clear()
    path = download_file(REPO, "weights.bin", revision=commit, expected_sha256=sha256_bytes(PAYLOAD))
    assert path.read_bytes() == PAYLOAD


# ------------------------------------------------------------------ whole presets from the Hub


def test_from_preset_hf_handle_with_subfolder_and_revision(hub, tmp_path):
    folder, model = make_preset(tmp_path / "tiny", filters=3)
    first = hub.add_commit(REPO, preset_files(folder, "presets/tiny"))
    other, _ = make_preset(tmp_path / "other", filters=3, seed=7)
    hub.add_commit(REPO, preset_files(other, "presets/tiny"))
    inputs = example_inputs(seed=4)

    loaded = presets.from_preset(f"hf://{REPO}/presets/tiny@{first}")
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())
    newest = presets.from_preset(f"hf://{REPO}/presets/tiny")
    assert not np.array_equal(newest(inputs).numpy(), model(inputs).numpy())

    requests = len(hub.requests)
    presets.from_preset(f"hf://{REPO}/presets/tiny", revision=first)
    assert len(hub.requests) == requests  # pinned and cached: no request


def test_corrupted_weights_on_hub_never_loaded(hub, tmp_path, monkeypatch):
    folder, _ = make_preset(tmp_path / "tiny")
    commit = hub.add_commit(REPO, preset_files(folder))
    hub.corrupt[(REPO, "model.weights.h5")] = 5
    built = []
    monkeypatch.setattr(presets, "load_preset", lambda *a, **k: built.append(1))
    with pytest.warns(RuntimeWarning):
        with pytest.raises(ChecksumError, match="model.weights.h5"):
            presets.from_preset(f"hf://{REPO}@{commit}")
    assert built == []


def _optional_files(folder):
    """The optional files of a preset folder that are published with it (how inputs are prepared, the recipe)."""
    return {name for name in ("preprocessor.json", "recipe.json") if (folder / name).is_file()}


def test_push_then_load_round_trip(hub, tmp_path):
    folder, model = make_preset(tmp_path / "tiny", filters=2)
    commit = presets.push(str(folder), "zoo-tests/pushed", token="hf_test_token")
    assert hub.count("POST", "/api/repos/create") == 1
    assert hub.count("POST", "/api/models/zoo-tests/pushed/preupload/main") == 1
    assert hub.count("POST", "/api/models/zoo-tests/pushed/commit/main") == 1
    stored = hub.repos["zoo-tests/pushed"][commit]
    assert set(stored) == {"config.json", "metadata.json", "model.weights.h5", "README.md"} | _optional_files(folder)
    assert sha256_bytes(stored["model.weights.h5"]) == sha256_file(folder / "model.weights.h5")
    loaded = presets.from_preset(f"hf://zoo-tests/pushed@{commit}")
    inputs = example_inputs(seed=2)
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())
    # a second push reuses the repository (409 on create is accepted)
    presets.push(str(folder), "zoo-tests/pushed", token="hf_test_token")
    assert hub.count("POST", "/commit/") == 2


def test_export_hub_refuses_tampered_presets(tmp_path):
    folder, _ = make_preset(tmp_path / "tiny")
    out = presets.export_hub(str(folder), tmp_path / "export")
    assert {p.name for p in out.iterdir()} == {"README.md", "config.json", "metadata.json", "model.weights.h5"} | (
        _optional_files(folder))
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["weights_sha256"] = "0" * 64
    (folder / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ChecksumError):
        presets.export_hub(str(folder), tmp_path / "export2")
    assert not (tmp_path / "export2").exists()


def test_parse_hf_handle():
    location = zoo_hub.parse_hf_handle("hf://owner/repo/sub/dir@v1")
    assert (location.repo_id, location.subfolder, location.revision) == ("owner/repo", "sub/dir", "v1")
    assert zoo_hub.parse_hf_handle("hf://owner/repo", revision="abc").revision == "abc"
    with pytest.raises(ValueError, match="contradicts"):
        zoo_hub.parse_hf_handle("hf://owner/repo@v1", revision="v2")
    with pytest.raises(ValueError, match="hf://owner/repo"):
        zoo_hub.parse_hf_handle("hf://just-a-name")


def test_download_brings_the_preprocessor_and_recipe_with_the_preset(hub, tmp_path):
    folder, _ = make_preset(tmp_path / "tiny")
    extra = {
        "preprocessor.json": json.dumps({"class_name": "CartesianPreprocessor", "config": {"normalization": 1.0}}),
        "recipe.json": json.dumps({"card": {"family": "tiny"}, "steps": 3}),
    }
    for filename, text in extra.items():
        (folder / filename).write_text(text)
    commit = hub.add_commit(REPO, preset_files(folder))
    local = zoo_hub.download_preset(zoo_hub.parse_hf_handle(f"hf://{REPO}@{commit}"))
    for filename, text in extra.items():
        assert (local / filename).read_text() == text
    # a repository without them still downloads (they are optional)
    for filename in extra:
        (folder / filename).unlink()
    bare = hub.add_commit(REPO, preset_files(folder), branch=None)  # not based on the first commit
    local = zoo_hub.download_preset(zoo_hub.parse_hf_handle(f"hf://{REPO}@{bare}"))
    assert not any((local / filename).exists() for filename in extra)
    # their absence is cached with the pinned commit: loading again makes no request
    requests = len(hub.requests)
    zoo_hub.download_preset(zoo_hub.parse_hf_handle(f"hf://{REPO}@{bare}"))
    assert len(hub.requests) == requests
