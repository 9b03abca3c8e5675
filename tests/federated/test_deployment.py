"""Flower's deployment engine on 127.0.0.1 (slow): one SuperLink and three SuperNodes as separate processes run
the app ``fastmri-zoo federate RECIPE --app-dir`` writes (``flwr run``). Rounds of FedAvg give global weights
equal to the sample-weighted mean of what the sites sent; a SuperNode killed during a round leaves the
federation going on with the other two, and the run names the site that dropped. Every process started here
(and every process they start) is stopped at the end, also on failure."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.federated.conftest import tiny_recipe, write_data_root

pytest.importorskip("flwr")

MARKER = "FASTMRI_ZOO_FEDERATION_TEST"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _marked(marker: str) -> list[int]:
    """The processes whose environment carries ``marker``: those started here and their descendants."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if f"{MARKER}={marker}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Deployment:
    """A SuperLink and one SuperNode per site on 127.0.0.1, each its own process, insecure (loopback only)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.marker = uuid.uuid4().hex
        self.port = _free_port()
        bin_dir = str(Path(sys.executable).parent)  # flower-superlink & co. sit beside the interpreter
        self.env = {**os.environ, MARKER: self.marker, "FLWR_HOME": str(folder / "flwr_home"),
                    "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "TF_CPP_MIN_LOG_LEVEL": "2",
                    "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
        (folder / "flwr_home").mkdir(parents=True)
        (folder / "flwr_home" / "config.toml").write_text(
            f'[superlink]\ndefault = "test"\n\n[superlink.test]\naddress = "127.0.0.1:{self.port}"\ninsecure = true\n')
        self.processes: dict[str, subprocess.Popen] = {}
        self.node_ports: dict[str, int] = {}

    def _start(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "wb")
        process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
                                   start_new_session=True)
        log.close()
        self.processes[name] = process
        return process

    def start(self, sites: dict[str, str | None]) -> None:
        """The SuperLink, then a SuperNode per site (``{site: its data root or None}``)."""
        self._start("superlink", ["flower-superlink", "--insecure", "--disable-runtime-dependency-installation",
                                  "--port", str(self.port)])
        deadline = time.time() + 120
        while time.time() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the SuperLink did not listen within 120 s: {self.log('superlink')}")
        for site, data_dir in sites.items():
            self.node_ports[site] = _free_port()
            config = f'site="{site}"' + (f' data-dir="{data_dir}"' if data_dir else "")
            self._start(f"supernode-{site}", ["flower-supernode", "--insecure", "--superlink",
                                              f"127.0.0.1:{self.port}", "--port", str(self.node_ports[site]),
                                              "--node-config", config])

    def run(self, app_dir: Path) -> subprocess.Popen:
        return self._start("flwr-run", ["flwr", "run", str(app_dir), "test", "--stream"])

    def kill_site(self, site: str) -> None:
        self.processes[f"supernode-{site}"].kill()

    def client_app_running(self, site: str) -> bool:
        """Whether the SuperNode of ``site`` is running a ClientApp now."""
        address = f"127.0.0.1:{self.node_ports[site]}"
        return any("flwr-clientapp" in line and address in line for line in map(_command_line, _marked(self.marker)))

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)
        deadline = time.time() + 30  # what they started (SuperExec, ServerApp, ClientApps) ends with them
        while _marked(self.marker) and time.time() < deadline:
            time.sleep(1)
        for pid in _marked(self.marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def deployment(tmp_path):
    started = Deployment(tmp_path / "deployment")
    try:
        yield started
    finally:
        started.stop()
        assert not _marked(started.marker), "processes of the deployment outlived it"


def _site_roots(tmp_path: Path) -> dict[str, str | None]:
    """Each volume site's own data root (a deployment: a site holds only its subjects); the cardiac site none."""
    roots = {}
    for index, site in enumerate(("ixi-large", "ixi-small")):
        roots[site] = str(write_data_root(tmp_path / f"data-{site}", seed=10 + index))
    roots["cardiac"] = None
    return roots


def _app(tmp_path: Path, **federation) -> tuple[Path, Path]:
    from fastmri_zoo.cli import main

    recipe = tmp_path / "federation.json"
    recipe.write_text(json.dumps(tiny_recipe(**federation)))
    out_dir = tmp_path / "out"
    assert main(["federate", str(recipe), "-o", str(out_dir), "--app-dir", str(tmp_path / "app")]) == 0
    return tmp_path / "app", out_dir


def _finish(deployment: Deployment, run: subprocess.Popen, out_dir: Path, timeout: float = 1800) -> dict:
    try:
        run.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the federation did not end in {timeout:.0f} s:\n{deployment.log('flwr-run')}")
    facts = out_dir / "federation.json"
    assert facts.is_file(), f"no federation.json; flwr run said:\n{deployment.log('flwr-run')}"
    return json.loads(facts.read_text())


def _check_weighted_means(out_dir: Path, server_round: int, facts: dict, sites: list[str]) -> list[np.ndarray]:
    """The saved aggregate of ``server_round`` is the example-weighted mean of what ``sites`` sent; returns it."""
    with np.load(out_dir / "updates" / f"train-round{server_round:03d}.npz") as saved:
        assert sorted(saved["sites"]) == sites
        counts = saved["counts"]
        assert counts.tolist() == [facts["sites"][s]["training_examples"] for s in saved["sites"]]
        weights = counts / counts.sum()
        for j in range(len(saved["keys"])):
            updates = np.stack([saved[f"update_{i}_{j}"].astype(np.float64) for i in range(len(counts))])
            np.testing.assert_allclose(saved[f"global_{j}"], np.tensordot(weights, updates, axes=1), rtol=0, atol=1e-6)
        return [saved[f"global_{j}"] for j in range(len(saved["keys"]))]


@pytest.mark.slow
def test_fedavg_on_the_deployment_engine_goes_on_when_a_supernode_is_killed_during_a_round(tmp_path, deployment):
    # One deployment for both behaviours (each SuperNode starts a ClientApp process per message, the costly part):
    # round 1 with the three sites, then the small site's SuperNode killed while it trains in round 2, which the
    # other two finish (trained, aggregated, scored) and the federation ends normally.
    app_dir, out_dir = _app(tmp_path, rounds=2, min_clients=2, timeout=600)
    deployment.start(_site_roots(tmp_path))
    run = deployment.run(app_dir)
    metrics = out_dir / "metrics.csv"
    deadline = time.time() + 1200
    # once round 1 is scored, wait for the small site's ClientApp of round 2 to be running, and kill its SuperNode
    while time.time() < deadline and run.poll() is None:
        if metrics.is_file() and metrics.read_text().count("train,1,") >= 6:
            break
        time.sleep(1)
    while time.time() < deadline and run.poll() is None and not deployment.client_app_running("ixi-small"):
        time.sleep(0.2)
    assert run.poll() is None, f"the federation ended before the kill:\n{deployment.log('flwr-run')}"
    deployment.kill_site("ixi-small")
    facts = _finish(deployment, run, out_dir)
    assert sorted(facts["sites"]) == ["cardiac", "ixi-large", "ixi-small"]
    assert [(entry["site"], entry["round"]) for entry in facts["dropped"]] == [("ixi-small", 2)]
    assert "ixi-small dropped in train round 2" in deployment.log("flwr-run")
    assert facts["sites"]["ixi-small"]["rounds_answered"] == 1
    assert all(facts["sites"][site]["rounds_answered"] == 2 for site in ("cardiac", "ixi-large"))
    # FedAvg: each round's global weights are the example-weighted mean of what the answering sites sent
    first = _check_weighted_means(out_dir, 1, facts, ["cardiac", "ixi-large", "ixi-small"])
    second = _check_weighted_means(out_dir, 2, facts, ["cardiac", "ixi-large"])
    assert any(np.abs(a - b).max() > 0 for a, b in zip(first, second))  # round 2 moved on
    rows = [row.split(",") for row in metrics.read_text().splitlines()[1:]]
    # the three sites scored on their held-out examples in round 1
    assert sorted(row[2] for row in rows if row[:2] == ["train", "1"] and row[3:5] == ["evaluate", "ok"]) == [
        "cardiac", "ixi-large", "ixi-small"]
    last = [row for row in rows if row[:2] == ["train", "2"]]
    assert {(row[2], row[3], row[4]) for row in last if row[2] != "ixi-small"} == {
        ("ixi-large", "train", "ok"), ("cardiac", "train", "ok"), ("ixi-large", "evaluate", "ok"),
        ("cardiac", "evaluate", "ok")}
    small = [row[4] for row in last if row[2] == "ixi-small"]
    assert small and "ok" not in small, small  # the killed site's round 2 is marked missing or absent, not scored
