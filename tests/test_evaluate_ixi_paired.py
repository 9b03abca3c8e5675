"""``scripts/evaluate_ixi.py paired``: per-volume differences of two held-out reports; ``curves``: its input checks."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluate_ixi.py"


def _report(path, psnr, ssim, nmse, volumes, acceleration=4.0):
    per_volume = [{"psnr": float(p), "ssim": float(s), "nmse": float(n)} for p, s, n in zip(psnr, ssim, nmse)]
    path.write_text(json.dumps({"mask_type": "random", "acceleration": acceleration, "volumes": volumes,
                                "per_volume": {"network": per_volume, "zero-filled": per_volume}}))
    return path


def _run(*args, command="paired"):
    return subprocess.run([sys.executable, str(SCRIPT), command, *map(str, args)], capture_output=True, text=True)


def test_paired_differences_match_numpy(tmp_path):
    rng = np.random.default_rng(0)
    volumes = [f"v{i}.h5" for i in range(7)]
    a = {k: rng.uniform(0, 1, 7) for k in ("psnr", "ssim", "nmse")}
    b = {k: rng.uniform(0, 1, 7) for k in ("psnr", "ssim", "nmse")}
    first = _report(tmp_path / "a.json", a["psnr"] + 28, a["ssim"], a["nmse"], volumes)
    second = _report(tmp_path / "b.json", b["psnr"] + 28, b["ssim"], b["nmse"], volumes)
    done = _run(first, second)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for metric, better in (("psnr", np.greater), ("ssim", np.greater), ("nmse", np.less)):
        diff = a[metric] - b[metric]
        assert abs(result[metric]["mean"] - diff.mean()) < 1e-9
        assert abs(result[metric]["std"] - diff.std()) < 1e-9
        assert result[metric]["ahead"] == int(better(a[metric], b[metric]).sum())
    assert result["volumes"] == 7


def test_paired_refuses_reports_of_other_settings(tmp_path):
    volumes = ["v0.h5", "v1.h5"]
    first = _report(tmp_path / "a.json", [28, 29], [0.8, 0.8], [0.04, 0.04], volumes)
    second = _report(tmp_path / "b.json", [28, 29], [0.8, 0.8], [0.04, 0.04], volumes, acceleration=8.0)
    done = _run(first, second)
    assert done.returncode != 0
    assert "differ in acceleration (4.0 vs 8.0)" in done.stderr and "Traceback" not in done.stderr


def test_curves_refuses_a_run_without_its_log(tmp_path):
    """``curves`` checks each LABEL=LOG[,NEXT_LOG] before loading data: a missing log (also in a continued
    run's chain) or a missing label is named."""
    for item in (f"RIM={tmp_path / 'missing.csv'}", str(tmp_path / "log.csv"),
                 f"RIM={tmp_path / 'log.csv'},{tmp_path / 'missing.csv'}"):
        (tmp_path / "log.csv").write_text("epoch,val_psnr\n0,25.0\n")
        done = _run("rim-cartesian-singlecoil-af4", tmp_path, tmp_path / "out.png", item, command="curves")
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert "expected LABEL=PATH/log.csv[,NEXT_PATH/log.csv] with existing logs" in done.stderr and repr(item) in done.stderr
    log = f"RIM={tmp_path / 'log.csv'}"
    done = _run("rim-cartesian-singlecoil-af4", tmp_path, tmp_path / "out.png", log, log, command="curves")
    assert done.returncode != 0 and "the label 'RIM' is given twice" in done.stderr
    assert not (tmp_path / "out.png").exists()
