"""No file of the repository names a folder of the machine it was made on.

Run records copied into the repository (``unfinished-runs/``, a federation's ``federation.json``, a
card's training command) once carried the absolute paths of the machine that trained them; a user's
checkout has none of those folders. The check reads every file git tracks (or, outside a git
checkout, every file under the repository but ``.git``) as text and looks for home and work folders.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
#: absolute folders of one machine: a home folder, root's, or a shared work area
MACHINE_PATH = re.compile(r"(?<![\w.])(/root/|/home/[a-z_][\w-]*/|/Users/[A-Za-z][\w-]*/|/work/\w)")
#: this file spells the patterns out; a test of the uncertainty notebook asserts one is absent
EXEMPT = {"tests/test_repository_paths.py", "tests/test_notebook_uncertainty.py"}


def _tracked_files() -> list[str]:
    if shutil.which("git") and (REPOSITORY / ".git").exists():
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPOSITORY, capture_output=True, check=True)
        return [name for name in listing.stdout.decode().split("\0") if name]
    return [str(path.relative_to(REPOSITORY)) for path in REPOSITORY.rglob("*")
            if path.is_file() and ".git" not in path.parts]


def test_the_pattern_finds_machine_paths_and_spares_others():
    found = [bool(MACHINE_PATH.search(text)) for text in (
        "fastmri-zoo train /root/runs/x/recipe.json", "data in /home/alice/ixi", "/Users/Bob/data",
        "see /work/shared/data", "weights/NAME/recipe.json", "DATA_DIR/magnitude", "https://x.org/home/page",
        "/tmp/run", "a/root/b")]
    assert found == [True, True, True, True, False, False, False, False, False]


def test_no_tracked_file_names_a_machine_path():
    offenders = []
    for name in _tracked_files():
        if name in EXEMPT:
            continue
        path = REPOSITORY / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary (weights, PNG, npz)
            continue
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            match = MACHINE_PATH.search(line)
            if match:
                offenders.append(f"{name}:{number}: {match.group(0)}...")
    assert not offenders, "files naming a folder of one machine:\n" + "\n".join(offenders[:40])
