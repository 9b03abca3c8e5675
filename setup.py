"""Build hook: every wheel carries the bundled checkpoints.

The repository's top-level ``weights/`` (one preset folder per named checkpoint) is the
single source of the bundled presets. ``build_py`` copies it into the built package as
``fastmri_zoo/_weights``, where ``fastmri_zoo.registry.packaged_weights_root`` finds it in
an installed wheel; editable installs read ``weights/`` in place, so nothing is copied for
them. Everything else about the package is declared in setup.cfg.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

#: ``weights/`` of the source tree -> ``fastmri_zoo/_weights`` of the build
#: (registry.REPOSITORY_WEIGHTS and registry.PACKAGED_WEIGHTS; setup.py cannot import the package).
SOURCE = Path("weights")
TARGET = ("fastmri_zoo", "_weights")
#: never packaged: caches and hidden files (editor, OS)
IGNORED = shutil.ignore_patterns("__pycache__", "*.py[cod]", ".*")


class BuildPyWithWeights(build_py):
    """``build_py`` that also copies ``weights/`` into the built package (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        if not SOURCE.is_dir():
            raise FileNotFoundError(
                f"{SOURCE}/: missing from the source tree being built; a wheel must carry the bundled "
                "presets (an sdist holds them through MANIFEST.in's 'graft weights')."
            )
        target = Path(self.build_lib, *TARGET)
        if target.exists():  # a preset removed from weights/ must not survive in a reused build folder
            shutil.rmtree(target)
        shutil.copytree(SOURCE, target, ignore=IGNORED)


setup(cmdclass={"build_py": BuildPyWithWeights})
