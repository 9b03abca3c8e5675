"""fastmri-zoo search: the files it writes and their round trips (the genotype JSON rebuilds the
network, the alpha history's entropy and genotype columns agree with numpy and DARTS' rule on its
logits, the cell drawing shows every edge), bad recipes refused with the offending key before any
data is read, and the searched network retrained by the one trainer from a training recipe whose
NasNet takes the genotype file."""

import contextlib
import copy
import io
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from fastmri_zoo import cli
from fastmri_zoo.layers import Genotype, derive_genotype, edge_count
from fastmri_zoo.models import NasNet
from fastmri_zoo.presets import from_preset
from fastmri_zoo.search import (EpochRecord, draw_cell, draw_search_history, genotype_changes, read_alpha_history,
                                write_alpha_history)
from fastmri_zoo.search.recipe import load_search_recipe
from fastmri_zoo.training.config import load_recipe, run_recipe
from tests.models.conftest import make_inputs
from tests.search.test_darts import np_entropy
from tests.training.conftest import singlecoil_data  # noqa: F401 (the fixture: train/ 2 x 4 slices, val/ 1 x 2)

SPACE_A = ["sep_conv_3x3", "dil2_sep_conv_3x3", "dil3_sep_conv_3x3", "skip_connect", "none"]

RECIPE = {
    "name": "tiny-search",
    "model": {"class": "NasNet", "kwargs": {"n_iter": 1, "n_cells": 1, "n_filters": 4}},
    "data": {"train": "train", "val": "val"},
    "acquisition": {"kind": "cartesian", "multicoil": False, "mask_type": "random", "center_fraction": 0.08,
                    "acceleration": 4},
    "search": {"method": "milenas", "space": "A", "nodes": 2, "steps": 12, "steps_per_epoch": 4, "batch_size": 2,
               "alpha_learning_rate": 0.01, "beta": 0.5, "seed": 0},
    "training": {"steps": 2, "steps_per_epoch": 1, "batch_size": 2, "seed": 0},
}


def write_recipe(folder: Path, recipe: dict) -> Path:
    path = folder / "search.json"
    path.write_text(json.dumps(recipe))
    return path


@pytest.fixture(scope="module")
def searched(tmp_path_factory, singlecoil_data):
    """(output folder, stdout) of one tiny CLI search."""
    folder = tmp_path_factory.mktemp("searched")
    recipe = write_recipe(folder, RECIPE)
    out = folder / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert cli.main(["search", str(recipe), "--data", str(singlecoil_data), "-o", str(out)]) == 0
    return out, stdout.getvalue()


def test_search_writes_its_outputs_and_they_agree(searched):
    out, stdout = searched
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["genotype.json", "alpha_history.csv", "cell.png", "history.png", "search.json", "recipe.json", "backup"])
    assert sorted(p.name for p in (out / "backup").iterdir()) == ["arrays-epoch0003.npz", "state.json"]
    assert not [p for p in [*out.iterdir(), *(out / "backup").iterdir()] if p.name.startswith(".")]  # no temporary file
    genotype = Genotype.parse(out / "genotype.json")
    history = read_alpha_history(out / "alpha_history.csv")
    facts = json.loads((out / "search.json").read_text())
    # 12 steps in epochs of 4: epoch 0 (before the first step) and 3 epoch ends
    assert list(history["epoch"]) == [0, 1, 2, 3] and list(history["step"]) == [0, 4, 8, 12]
    assert history["operations"] == SPACE_A and history["n_nodes"] == 2
    assert history["alpha"].shape == (4, edge_count(2), 5)
    assert np.isnan(history["train_loss"][0]) and np.all(history["val_loss"][1:] > 0)
    # the columns agree with independent computations on the recorded logits
    np.testing.assert_allclose(history["entropy"], [np_entropy(alpha) for alpha in history["alpha"]], rtol=1e-5)
    assert history["genotype"] == [derive_genotype(alpha, "A", 2) for alpha in history["alpha"]]
    assert history["genotype"][-1] == genotype
    assert abs(history["entropy"][0] - np.log(5)) < 1e-4  # DARTS' near-zero initial logits
    assert np.abs(history["alpha"][-1] - history["alpha"][0]).max() > 1e-3  # alpha moved
    assert facts["steps"] == 12 and facts["stopped"] == "steps" and facts["genotype"] == genotype.to_config()
    assert facts["search"]["method"] == "milenas" and facts["search"]["beta"] == 0.5
    # the record names the data under the root the command names, not this machine's folders
    assert facts["data"] == {"train": "DATA_DIR/train", "val": "DATA_DIR/val"} and facts["recipe"] == "search.json"
    assert facts["entropy"]["last"] == pytest.approx(history["entropy"][-1], rel=1e-5)
    for picture in ("cell.png", "history.png"):
        with open(out / picture, "rb") as png:
            header = png.read(24)
        assert header[:8] == b"\x89PNG\r\n\x1a\n" and min(struct.unpack(">II", header[16:24])) > 100
    assert "searched 12 steps (milenas" in stdout and "genotype:" in stdout
    for name in ("genotype.json", "alpha_history.csv", "cell.png", "history.png", "search.json", "recipe.json"):
        assert f"wrote {out / name}" in stdout


def test_the_same_command_resumes_a_search_and_extends_its_budget(tmp_path, singlecoil_data):
    """A search that ran 8 steps, given 12 by its recipe, continues from its backup: its first three
    epoch ends are those the first run recorded, then one more epoch."""
    out = tmp_path / "out"
    short = json.loads(json.dumps(RECIPE))
    short["search"]["steps"] = 8
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["search", str(write_recipe(tmp_path, short)), "--data", str(singlecoil_data), "-o",
                         str(out)]) == 0
    first = read_alpha_history(out / "alpha_history.csv")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert cli.main(["search", str(write_recipe(tmp_path, RECIPE)), "--data", str(singlecoil_data), "-o",
                         str(out)]) == 0
    resumed = read_alpha_history(out / "alpha_history.csv")
    assert list(first["step"]) == [0, 4, 8] and list(resumed["step"]) == [0, 4, 8, 12]
    np.testing.assert_array_equal(resumed["alpha"][:3], first["alpha"])
    assert np.abs(resumed["alpha"][3] - first["alpha"][2]).max() > 0  # the fourth epoch moved alpha on
    assert "searched 12 steps" in stdout.getvalue()
    other = json.loads(json.dumps(RECIPE))
    other["search"]["beta"] = 0.25  # another search: its backup does not fit
    assert cli.main(["search", str(write_recipe(tmp_path, other)), "--data", str(singlecoil_data), "-o",
                     str(out)]) != 0


def test_the_genotype_file_rebuilds_the_network(searched, rng):
    out, _ = searched
    text = (out / "genotype.json").read_text()
    from_file = NasNet(n_iter=1, n_cells=1, n_filters=4, genotype=out / "genotype.json", name="nasnet")
    from_list = NasNet(n_iter=1, n_cells=1, n_filters=4, genotype=json.loads(text), name="nasnet")
    assert from_file.get_config() == from_list.get_config()
    assert from_file.get_config()["genotype"] == json.loads(text)
    for model in (from_file, from_list):
        model.build(None)
    from_list.set_weights(from_file.get_weights())
    _, inputs = make_inputs(rng, multicoil=False)
    np.testing.assert_array_equal(from_file(inputs).numpy(), from_list(inputs).numpy())
    with pytest.raises(ValueError, match="genotype"):
        NasNet(genotype=out / "no_such_genotype.json")


def test_the_retraining_recipe_trains_the_searched_network(searched, singlecoil_data, tmp_path, monkeypatch, rng):
    out, _ = searched
    genotype = Genotype.parse(out / "genotype.json").to_config()
    retraining = json.loads((out / "recipe.json").read_text())
    assert "search" not in retraining and retraining["model"]["kwargs"]["genotype"] == genotype
    assert {key: value for key, value in retraining.items() if key != "model"} == {
        key: value for key, value in RECIPE.items() if key not in ("model", "search")}
    # the same recipe with the genotype as a path (relative to the working folder)
    monkeypatch.chdir(out)
    retraining["model"]["kwargs"]["genotype"] = "genotype.json"
    path = tmp_path / "retrain.json"
    path.write_text(json.dumps(retraining))
    recipe = load_recipe(path)
    result = run_recipe(recipe, singlecoil_data, run_dir=tmp_path / "run", verbose=0)
    assert result.steps == 2 and result.model.genotype == genotype
    loaded = from_preset(str(result.preset_dir))
    assert isinstance(loaded, NasNet) and loaded.genotype == genotype and loaded.architecture_weights == []
    _, inputs = make_inputs(rng, multicoil=False)
    np.testing.assert_allclose(loaded(inputs).numpy(), result.model(inputs).numpy(), rtol=1e-6, atol=1e-6)


def test_alpha_history_round_trip(tmp_path, rng):
    space = ["sep_conv_3x3", "skip_connect", "none"]
    alphas = [rng.standard_normal((edge_count(3), 3)).astype(np.float32) for _ in range(3)]
    records = [EpochRecord(epoch, 5 * epoch, float("nan") if epoch == 0 else 0.1 / (epoch + 1), 0.2, np_entropy(a),
                           a, derive_genotype(a, space, 3)) for epoch, a in enumerate(alphas)]
    path = write_alpha_history(tmp_path / "alpha_history.csv", records, space, 3)
    table = read_alpha_history(path)
    np.testing.assert_allclose(table["alpha"], np.stack(alphas), rtol=1e-6)
    np.testing.assert_allclose(table["train_loss"][1:], [0.05, 0.1 / 3], rtol=1e-6)
    assert list(table["step"]) == [0, 5, 10] and table["operations"] == space and table["n_nodes"] == 3
    assert table["genotype"] == [record.genotype for record in records]
    header = Path(path).read_text().splitlines()[0].split(",")
    assert header[6:9] == ["node0_from0_sep_conv_3x3", "node0_from0_skip_connect", "node0_from0_none"]
    assert header[-1] == "node2_from3_none" and len(header) == 6 + edge_count(3) * 3


def test_the_drawing_shows_every_node_and_labelled_edge():
    genotype = Genotype.parse([[["sep_conv_3x3", 0], ["skip_connect", 1]], [["dil2_sep_conv_3x3", 0],
                               ["sep_conv_3x3", 2]], [["dil3_sep_conv_3x3", 1], ["skip_connect", 3]]])
    ax = draw_cell(genotype)
    texts = [text.get_text() for text in ax.texts]
    assert sorted(t for t in texts if t in SPACE_A) == sorted(op for node in genotype.nodes for op, _ in node)
    assert {"node 0", "node 1", "node 2", "$C_{l-2}$", "$C_{l-1}$"} <= set(texts)
    # one arrow per edge and one from each node into the concatenated output
    assert len(ax.patches) == 6 + 3


def test_the_history_drawing_plots_the_entropy_the_changes_and_each_edges_softmax(tmp_path, rng):
    space = ["sep_conv_3x3", "skip_connect", "none"]
    alphas = [rng.standard_normal((edge_count(2), 3)) for _ in range(4)]
    alphas[2] = alphas[1]  # the genotype can only change at steps 5 and 15
    records = [EpochRecord(epoch, 5 * epoch, 0.1, 0.2, np_entropy(a), a, derive_genotype(a, space, 2))
               for epoch, a in enumerate(alphas)]
    table = read_alpha_history(write_alpha_history(tmp_path / "alpha_history.csv", records, space, 2))
    expected = [5 * e for e in (1, 3) if records[e].genotype != records[e - 1].genotype]
    assert genotype_changes(table) == expected
    fig = draw_search_history(tmp_path / "alpha_history.csv")
    top, *edges = fig.axes
    assert len(edges) == edge_count(2)
    np.testing.assert_allclose(top.lines[0].get_ydata(), [np_entropy(a) for a in alphas], rtol=1e-5)
    assert np.log(3) == pytest.approx(top.lines[1].get_ydata()[0])  # the uniform level
    assert len(top.lines) == 2 + len(expected)  # one band per change
    # the third edge (node 1 from C_{l-2}): the softmax of its logits, per operation, against the steps
    softmax = np.exp(np.stack(alphas)[:, 2]) / np.exp(np.stack(alphas)[:, 2]).sum(axis=1, keepdims=True)
    for k, line in enumerate(edges[2].lines):
        np.testing.assert_allclose(line.get_xdata(), [0, 5, 10, 15])
        np.testing.assert_allclose(line.get_ydata(), softmax[:, k], rtol=1e-5)
    assert [ax.get_title() for ax in edges] == ["$C_{l-2}$ -> node 0", "$C_{l-1}$ -> node 0", "$C_{l-2}$ -> node 1",
                                                "$C_{l-1}$ -> node 1", "node 0 -> node 1"]


# ------------------------------------------------------------------ bad input


def mutated(change):
    recipe = copy.deepcopy(RECIPE)
    change(recipe)
    return recipe


BAD_RECIPES = {
    "unknown method": (lambda r: r["search"].update(method="enas"), "search.method"),
    "unknown space": (lambda r: r["search"].update(space="C"), "search.space: expected one of .*got 'C'"),
    "unknown operation": (lambda r: r["search"].update(space=["sep_conv_3x3", "max_pool"]),
                          "search.space: expected one of .*got 'max_pool'"),
    "zero steps": (lambda r: r["search"].update(steps=0), "search.steps"),
    "negative learning rate": (lambda r: r["search"].update(alpha_learning_rate=-1e-3), "search.alpha_learning_rate"),
    "zero patience": (lambda r: r["search"].update(patience=0), "search.patience"),
    "fixed masks not a flag": (lambda r: r["search"].update(fixed_masks="yes"), "search.fixed_masks"),
    "missing method": (lambda r: r["search"].pop("method"), r"missing required key\(s\) \['method'\]"),
    "missing steps": (lambda r: r["search"].pop("steps"), r"missing required key\(s\) \['steps'\]"),
    "unknown search key": (lambda r: r["search"].update(lr=1e-3), r"search: unknown key\(s\) \['lr'\]"),
    "no search block": (lambda r: r.pop("search"), "'search'"),
    "a genotype": (lambda r: r["model"]["kwargs"].update(genotype=[[["skip_connect", 0]]]), "model.kwargs.genotype"),
    "nodes in the model": (lambda r: r["model"]["kwargs"].update(n_nodes=2), "model.kwargs.n_nodes"),
    "no validation split": (lambda r: r["data"].pop("val"), "data.val"),
    "a model without search cells": (lambda r: r["model"].update({"class": "ResidualDCCNN"}), "no search cells"),
    "no acquisition": (lambda r: r.pop("acquisition"), "acquisition"),
    "missing data folder": (lambda r: r["data"].update(train="nowhere"), "data.train: no such folder"),
}


@pytest.mark.parametrize("name", sorted(BAD_RECIPES))
def test_bad_recipes_fail_with_the_offending_key_before_any_data_is_read(name, tmp_path, singlecoil_data, capsys):
    change, message = BAD_RECIPES[name]
    recipe = write_recipe(tmp_path, mutated(change))
    out = tmp_path / "out"
    assert cli.main(["search", str(recipe), "--data", str(singlecoil_data), "-o", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("fastmri-zoo search: error:")
    assert re.search(message, error), error
    assert not out.exists()  # refused before anything was written


def test_bad_files_and_options(tmp_path, singlecoil_data, capsys):
    assert cli.main(["search", str(tmp_path / "missing.json"), "-o", str(tmp_path / "out")]) == 2
    assert "RECIPE: no such file" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert cli.main(["search", str(broken), "-o", str(tmp_path / "out")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    recipe = write_recipe(tmp_path, RECIPE)
    assert cli.main(["search", str(recipe), "--data", str(singlecoil_data), "-o", str(tmp_path / "out"), "--steps", "0"]) == 2
    assert "steps: expected a value >= 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):  # -o is required
        cli.main(["search", str(recipe)])
    assert load_search_recipe(recipe).options.space == "A"
