"""Build hook: bundle the browser viewer (viewer/, npm + esbuild) into tsne_dist/viz/static/.

Runs for wheels, sdists built into wheels, and editable installs (``pip install -e .``),
so ``pip install`` then ``tsne-dist view`` needs no Node at run time. Everything else
about the package is in pyproject.toml.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
VIEWER = os.path.join(HERE, "viewer")
STATIC = os.path.join(HERE, "tsne_dist", "viz", "static")


def _npm(*args: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            "tsne-dist: building the browser viewer needs Node.js and npm (not found on PATH); "
            "install them (Debian: apt-get install nodejs npm) and run pip install again"
        )
    subprocess.run([npm, *args], cwd=VIEWER, check=True)


def build_viewer() -> None:
    """``npm ci`` (or ``npm install`` without a lock file) and the esbuild bundle, into STATIC."""
    if not os.path.isfile(os.path.join(VIEWER, "package.json")):
        if os.path.isfile(os.path.join(STATIC, "viewer.js")):
            return  # an sdist that already carries the built bundle
        raise SystemExit("tsne-dist: viewer/package.json is missing; build from a full clone of the repository")
    lock = os.path.join(VIEWER, "package-lock.json")
    stamp = os.path.join(VIEWER, "node_modules", ".package-lock.json")
    if not (os.path.isfile(stamp) and os.path.getmtime(stamp) >= os.path.getmtime(lock)):
        _npm("ci" if os.path.isfile(lock) else "install", "--no-audit", "--no-fund")
    _npm("run", "build", "--", STATIC)


class BuildPyWithViewer(build_py):
    """build_py that first bundles the viewer, so the bundle is package data."""

    def run(self) -> None:
        build_viewer()
        self.__dict__.pop("data_files", None)  # re-scan package data now that the bundle exists
        super().run()


setup(cmdclass={"build_py": BuildPyWithViewer})
