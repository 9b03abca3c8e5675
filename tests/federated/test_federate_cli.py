"""``fastmri-zoo federate``: bad input refused before anything runs, the Flower app written for a deployment,
and the zoo without Flower."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pytest

from fastmri_zoo.cli import main
from tests.federated.conftest import tiny_recipe


def _write(tmp_path, raw) -> str:
    path = tmp_path / "federation.json"
    path.write_text(json.dumps(raw))
    return str(path)


def test_a_bad_recipe_is_refused_before_anything_runs(tmp_path, capsys):
    pytest.importorskip("flwr")
    raw = tiny_recipe(rounds=0)
    assert main(["federate", _write(tmp_path, raw), "-o", str(tmp_path / "out")]) == 2
    assert "federation.rounds: expected a value >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_missing_data_is_refused_before_the_simulation(tmp_path, capsys):
    pytest.importorskip("flwr")
    assert main(["federate", _write(tmp_path, tiny_recipe()), "--data", str(tmp_path), "-o", str(tmp_path / "o")]) == 2
    assert "data.train: no such folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_checkpoint_of_another_recipe_is_refused_before_the_simulation(tmp_path, capsys, data_root):
    pytest.importorskip("flwr")
    from fastmri_zoo.federated.outputs import FederationLog
    from fastmri_zoo.federated.recipe import federation_recipe_from_dict

    out = tmp_path / "out"
    FederationLog(federation_recipe_from_dict(tiny_recipe()), out).checkpoint(["train"], "train", 1, None)
    before = sorted(path.name for path in out.rglob("*"))
    other = tiny_recipe(learning_rate=0.01)
    assert main(["federate", _write(tmp_path, other), "--data", str(data_root), "-o", str(out)]) == 2
    assert "holds a federation of another recipe" in capsys.readouterr().err
    assert sorted(path.name for path in out.rglob("*")) == before  # nothing written, nothing removed


def test_the_app_of_a_deployment_carries_the_recipe(tmp_path, capsys):
    pytest.importorskip("flwr")
    raw = tiny_recipe()
    assert main(["federate", _write(tmp_path, raw), "-o", "/srv/federated", "--app-dir", str(tmp_path / "app"),
                 "--rounds", "5"]) == 0
    printed = capsys.readouterr().out
    assert "flwr run" in printed and "ixi-large" in printed
    app = tomllib.loads((tmp_path / "app" / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    assert app["components"] == {"serverapp": "fastmri_zoo.federated.app:server_app",
                                 "clientapp": "fastmri_zoo.federated.app:client_app"}
    raw["federation"]["rounds"] = 5
    assert json.loads(app["config"]["recipe"]) == raw and app["config"]["out-dir"] == "/srv/federated"


def test_without_flower_the_zoo_imports_and_federate_says_how_to_install(tmp_path, capsys, monkeypatch):
    code = ("import sys; sys.modules['flwr'] = None\n"
            "import fastmri_zoo, fastmri_zoo.cli, fastmri_zoo.federated, fastmri_zoo.federated.recipe\n"
            "try:\n    fastmri_zoo.federated.require_flower()\nexcept ImportError as error:\n    print(error)\n"
            "try:\n    import fastmri_zoo.federated.flower\nexcept ImportError as error:\n    print('flower:', error)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert 'pip install "fastmri-zoo[federated]"' in result.stdout
    assert "flower: federated training needs Flower (flwr), which is not installed" in result.stdout
    monkeypatch.setitem(sys.modules, "flwr", None)
    assert main(["federate", _write(tmp_path, tiny_recipe()), "-o", str(tmp_path / "out")]) == 2
    assert 'federated training needs Flower (flwr), which is not installed; install it with: pip install ' \
           '"fastmri-zoo[federated]"' in capsys.readouterr().err
