"""Every install carries the shipped checkpoints.

The repository's ``weights/`` is the one source of the bundled presets; setup.py copies it into
the built package as ``fastmri_zoo/_weights``, where the registry looks in an installed wheel.
The slow test builds a wheel, installs it into a fresh virtual environment and, away from the
repository and offline, loads every bundled checkpoint and runs the demo there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from fastmri_zoo import registry

REPOSITORY = Path(__file__).resolve().parent.parent
#: What a wheel is built from: the packaging files, what they read (README.md is the long
#: description) and what they package. Copied, so the build leaves no build/ in the checkout.
BUILD_INPUTS = ("setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md", "fastmri_zoo", "weights")
CACHES = shutil.ignore_patterns("__pycache__", "*.py[cod]", ".*")


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ``command``; on failure the assertion shows its output."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} exited with {result.returncode}\n"
        f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    )
    return result


def _files(root: Path) -> dict[str, str]:
    """``{path relative to root: sha256}`` of every file under ``root`` (caches and hidden files left out)."""
    found = {}
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if name != "__pycache__" and not name.startswith(".")]
        for name in names:
            if not name.startswith(".") and not name.endswith((".pyc", ".pyo")):
                path = Path(folder, name)
                found[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# ---------------------------------------------------------------------------- the build hook (fast)


def test_build_py_copies_weights_where_an_installed_package_looks(tmp_path):
    """setup.py's build_py on a small source tree: weights/ lands in fastmri_zoo/_weights, caches stay out,
    a preset removed from weights/ does not survive a rebuild, and a tree without weights/ does not build."""
    source = tmp_path / "source"
    (source / "fastmri_zoo").mkdir(parents=True)
    (source / "fastmri_zoo" / "__init__.py").write_text("")
    shutil.copyfile(REPOSITORY / "setup.py", source / "setup.py")
    (source / "setup.cfg").write_text("[metadata]\nname = fastmri-zoo-hook-check\nversion = 0\n\n"
                                      "[options]\npackages = fastmri_zoo\n")
    files = {"one/config.json": "{}", "one/model.weights.h5": "w1", "two/recipe.json": "{}", "split.json": "[]",
             "one/__pycache__/x.cpython-311.pyc": "cache", ".DS_Store": ""}
    for relative, content in files.items():
        (source / "weights" / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / "weights" / relative).write_text(content)
    build_lib = tmp_path / "build_lib"

    def build() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build_lib)],
                              cwd=source, capture_output=True, text=True)

    package = build_lib / "fastmri_zoo"
    packaged = package / registry.PACKAGED_WEIGHTS

    def built_files() -> list[str]:
        return sorted(path.relative_to(packaged).as_posix() for path in packaged.rglob("*") if path.is_file())

    assert build().returncode == 0
    assert registry.packaged_weights_root(package) == packaged
    assert built_files() == ["one/config.json", "one/model.weights.h5", "split.json", "two/recipe.json"]
    assert (packaged / "one" / "model.weights.h5").read_text() == "w1"
    shutil.rmtree(source / "weights" / "two")
    assert build().returncode == 0
    assert built_files() == ["one/config.json", "one/model.weights.h5", "split.json"]
    shutil.rmtree(source / "weights")
    failed = build()
    assert failed.returncode != 0 and "weights/: missing from the source tree being built" in failed.stderr


# ---------------------------------------------------------------------------- wheel -> fresh environment (slow)


def _build_isolation_needed() -> bool:
    """True when this environment lacks a build requirement of pyproject.toml (pip then fetches them)."""
    import importlib.metadata
    import tomllib

    from packaging.requirements import Requirement

    requires = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["build-system"]["requires"]
    for text in requires:
        requirement = Requirement(text)
        try:
            version = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            return True
        if not requirement.specifier.contains(version, prereleases=True):
            return True
    return False


def _site_packages(python: Path) -> Path:
    return Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())


def _fresh_environment(root: Path) -> tuple[Path, Path]:
    """A new virtual environment that sees this one's packages (TensorFlow etc.) but has its own site-packages
    first; returns (its python, its site-packages)."""
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root)])
    python = root / ("Scripts" if os.name == "nt" else "bin") / ("python.exe" if os.name == "nt" else "python")
    site_packages = _site_packages(python)
    if sys.prefix != sys.base_prefix:
        # Run from inside a virtual environment: --system-site-packages reaches the base interpreter's
        # packages only, so this environment's site-packages are added after the new one's own.
        import site

        (site_packages / "_test_install_outer_environment.pth").write_text(
            "\n".join(site.getsitepackages()) + "\n", encoding="utf-8")
    return python, site_packages


def _inside(path: str | Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


@pytest.mark.slow
def test_a_built_wheel_installed_elsewhere_loads_every_bundled_checkpoint_and_runs_the_demo(tmp_path):
    phases, started = {}, time.perf_counter()

    def phase(name: str) -> None:
        phases[name] = time.perf_counter() - started - sum(phases.values())

    source, dist = tmp_path / "source", tmp_path / "dist"
    for name in BUILD_INPUTS:
        origin = REPOSITORY / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=CACHES)
        else:
            source.mkdir(exist_ok=True)
            shutil.copyfile(origin, source / name)
    isolation = ["--no-build-isolation"] if not _build_isolation_needed() else []
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "--wheel-dir", str(dist), str(source)])
    wheels = sorted(dist.glob("fastmri_zoo-*.whl"))
    assert len(wheels) == 1, f"expected one fastmri_zoo wheel in {dist}, got {[w.name for w in wheels]}"

    # the wheel carries weights/ byte for byte as fastmri_zoo/_weights
    repository_weights = REPOSITORY / registry.REPOSITORY_WEIGHTS
    shipped = _files(repository_weights)
    entries = [registry.preset_entry(folder) for folder in sorted(repository_weights.iterdir()) if folder.is_dir()]
    bundled = {entry.name: repository_weights / entry.bundled for entry in entries if entry is not None}
    bundled_names = sorted(bundled)
    assert len(bundled_names) >= 12 and "xpdnet-cartesian-multicoil-af4" in bundled_names
    prefix = f"fastmri_zoo/{registry.PACKAGED_WEIGHTS}/"
    with zipfile.ZipFile(wheels[0]) as wheel:
        carried = {name[len(prefix):]: hashlib.sha256(wheel.read(name)).hexdigest()
                   for name in wheel.namelist() if name.startswith(prefix) and not name.endswith("/")}
        assert "fastmri_zoo/samples/brain_4coil.h5" in wheel.namelist()
    assert carried == shipped
    phase("wheel")

    environment, work = tmp_path / "venv", tmp_path / "elsewhere"
    work.mkdir()
    python, site_packages = _fresh_environment(environment)
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "--quiet",
          str(wheels[0])])
    phase("environment")
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", registry.WEIGHTS_DIR_ENV)}
    env.update(PYTHONNOUSERSITE="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty_hf_home"),
               TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg", PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}")

    # the library: the installed package (not the checkout's editable one) loads every bundled name offline
    code = (
        "import json, fastmri_zoo\n"
        "from fastmri_zoo import registry\n"
        "names = [e.name for e in registry.list_entries() if e.bundled is not None]\n"
        "print(json.dumps({'file': fastmri_zoo.__file__, 'roots': [str(r) for r in registry.weights_dirs()],\n"
        "                  'names': names}), flush=True)\n"
        "for name in names:\n"
        "    model = fastmri_zoo.load(name)\n"
        "    folder = registry.bundled_folder(registry.get_entry(name))\n"
        "    print(json.dumps({'name': name, 'class': type(model).__name__, 'folder': str(folder)}), flush=True)\n"
    )
    lines = [json.loads(line) for line in _run([str(python), "-c", code], cwd=work, env=env).stdout.splitlines()
             if line.startswith("{")]
    header, loaded = lines[0], lines[1:]
    assert _inside(header["file"], site_packages), f"fastmri_zoo came from {header['file']}, not {site_packages}"
    assert [Path(root) for root in header["roots"]] == [Path(header["file"]).parent / registry.PACKAGED_WEIGHTS]
    assert sorted(header["names"]) == bundled_names
    assert [row["name"] for row in loaded] == header["names"]
    for row in loaded:
        metadata = json.loads((bundled[row["name"]] / "metadata.json").read_text())
        assert metadata["class_name"].split(">")[-1] == row["class"]
        assert _inside(row["folder"], site_packages)
    phase("load")

    # the command: list answers from the installed package without importing TensorFlow
    listed = _run([str(python.parent / "fastmri-zoo"), "list"], cwd=work, env={**env, "PYTHONVERBOSE": "1"})
    imported = re.findall(r"^import '([\w.]+)'", listed.stderr, flags=re.MULTILINE)
    assert "fastmri_zoo.cli" in imported and not {"tensorflow", "keras"} & set(imported)
    sources = re.findall(r"[^\s']*fastmri_zoo[/\\]__init__\.py\b", listed.stderr)
    assert sources and all(_inside(path, site_packages) for path in sources), sources
    rows = {line.split()[0]: line.split()[-1] for line in listed.stdout.splitlines()[1:]}
    assert {name: rows[name] for name in bundled_names} == dict.fromkeys(bundled_names, "bundled")
    phase("list")

    # the demo, from the console script, with the default network and its bundled weights
    demo = _run([str(python.parent / "fastmri-zoo"), "demo", "--png", "demo.png"], cwd=work, env=env)
    network_row = r"^xpdnet-cartesian-multicoil-af4\s+\d+\.\d+\s+0\.\d+"  # name, PSNR, SSIM, ...
    assert re.search(network_row, demo.stdout, flags=re.MULTILINE), demo.stdout
    assert "wrote demo.png" in demo.stdout
    assert (work / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    phase("demo")
    print(f"wheel build, fresh environment, {len(loaded)} checkpoints, list and the demo in "
          f"{sum(phases.values()):.0f} s ({', '.join(f'{key} {value:.0f} s' for key, value in phases.items())})")
