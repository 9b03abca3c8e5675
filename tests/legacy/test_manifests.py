"""Every published checkpoint's manifest (its full h5 structure, in file order) matches the structure the zoo
expects for its entry: so the two families whose files are too large to ship (UPDNet knee, 50 MB; XPDNet brain,
624 MB) are covered too. The manifests were written by the original code; the expected structure is derived from
the zoo networks through the documented order (fastmri_zoo.legacy.order)."""

from __future__ import annotations

import json

import pytest

import fastmri_zoo
from fastmri_zoo.legacy import LEGACY_CHECKPOINTS, build, plan
from fastmri_zoo.legacy.converter import structure_problems
from tests.legacy.conftest import DATA, REDUCED_UPDNET_KNEE, REDUCED_XPDNET_BRAIN, manifest

INDEX = json.loads((DATA / "index.json").read_text())["checkpoints"]
BY_REPO = {checkpoint.hub_repo: checkpoint for checkpoint in LEGACY_CHECKPOINTS}
FOLDERS = [item["name"] for item in INDEX]
ERA_TF24 = ["PDNet-OASIS", "NCPDNet-singlecoil-radial", "NCPDNet-multicoil-radial", "UPDNet-knee-af4"]
REDUCED = {"UPDNet-knee-af4": REDUCED_UPDNET_KNEE, "UPDNet-knee-af8": REDUCED_UPDNET_KNEE,
           "XPDNet-brain-af4": REDUCED_XPDNET_BRAIN, "XPDNet-brain-af8": REDUCED_XPDNET_BRAIN}
# XPDNet brain: 155,569,040 parameters to build; UPDNet knee: 25 U-nets built by a symbolic call (~30 s here).
HEAVY = {"XPDNet-brain-af4", "XPDNet-brain-af8", "UPDNet-knee-af4", "UPDNet-knee-af8"}
_BUILT: dict = {}


def weighted_groups(h5_manifest: dict) -> list:
    """[(group name, [(weight name, shape), ...]), ...] of a manifest's layer groups with weights, in file order."""
    return [(layer["name"], [(w["name"], tuple(w["shape"])) for w in layer["weights"]])
            for layer in h5_manifest["layers"] if layer["n_weights"]]


def expected_for(checkpoint):
    """(group plan, parameter count) of the built network of ``checkpoint``; af4 / af8 twins share one build."""
    key = json.dumps([checkpoint.family, checkpoint.network_kwargs, checkpoint.input_signature], sort_keys=True)
    if key not in _BUILT:
        model = build(checkpoint)
        _BUILT[key] = plan(checkpoint, model.network), model.network.count_params()
    return _BUILT[key]


def test_the_18_entries_are_the_published_repositories():
    assert len(INDEX) == 18 and len(LEGACY_CHECKPOINTS) == 18
    assert set(BY_REPO) == {item["hf_repo"] for item in INDEX}
    registered = set(fastmri_zoo.list_models())
    assert {checkpoint.name for checkpoint in LEGACY_CHECKPOINTS} <= registered


@pytest.mark.parametrize(
    "folder",
    [pytest.param(f, marks=pytest.mark.slow) if f in HEAVY else f for f in FOLDERS]
    + [pytest.param(f"{f}/era_tf24", marks=pytest.mark.slow) if f in HEAVY else f"{f}/era_tf24" for f in ERA_TF24],
)
def test_manifest_matches_the_zoo_structure(folder):
    content = manifest(folder)
    repo = next(item["hf_repo"] for item in INDEX if item["name"] == folder.split("/")[0])
    checkpoint = BY_REPO[repo]
    h5 = content["full_model"]["h5"]
    groups, parameter_count = expected_for(checkpoint)
    assert structure_problems(weighted_groups(h5), groups, folder) == []
    assert h5["n_params_in_file"] == parameter_count == checkpoint.parameter_count
    assert h5["file_layout"].startswith("full_model" if checkpoint.layout == "full_model" else "weights_only")


@pytest.mark.parametrize("folder", sorted(REDUCED))
def test_reduced_manifest_matches_the_reduced_zoo_structure(folder):
    content = manifest(folder)
    checkpoint = BY_REPO[f"zaccharieramzi/{folder}"].with_network(**REDUCED[folder])
    groups, parameter_count = expected_for(checkpoint)
    h5 = content["reduced_model"]["h5"]
    assert structure_problems(weighted_groups(h5), groups, folder) == []
    assert h5["n_params_in_file"] == parameter_count == content["reduced_model"]["model_count_params"]["total"]


def test_a_different_structure_is_reported_by_group_and_shape():
    """The comparison itself: a manifest with one shape changed and one with a group missing are reported."""
    content = manifest("PDNet-OASIS")
    checkpoint = BY_REPO["zaccharieramzi/PDNet-OASIS"]
    groups, _ = expected_for(checkpoint)
    found = weighted_groups(content["full_model"]["h5"])
    name, weights = found[3]
    found_shape = [(name, [(weights[0][0], (3, 3, 32, 33))] + weights[1:])] + found[4:]
    problems = structure_problems(found[:3] + found_shape, groups, "changed")
    assert len(problems) == 1
    assert "group #3 'conv2d_3'" in problems[0] and "(3, 3, 32, 33)" in problems[0] and "(3, 3, 12, 32)" in problems[0]
    problems = structure_problems(found[1:], groups, "shorter")
    assert "59 layer groups with weights, the zoo expects 60" in problems[0]
