"""A fresh Python environment that looks like Google Colab to course_utils, built in a second or two.

Colab comes with torch, numpy, matplotlib, ... preinstalled and *without* course_utils; the course then
installs course_utils without ``-e``. To test that situation offline we create a new virtual environment
(no pip, no packages of its own) whose ``site-packages`` gets a ``.pth`` line pointing at a folder of
symlinks to everything in the course's ``.venv`` **except** course_utils (neither the editable install
nor its metadata). torch & co. are therefore "preinstalled" and nothing is copied or reinstalled; the
repository is not on ``sys.path``; pip (also preinstalled, as on Colab) installs into the new environment.
The symlinked packages live outside the new environment's prefix, so pip would never uninstall them (it
refuses to touch distributions outside its environment): the course's .venv cannot be damaged.

Used by tests/test_wheel_install.py and tests/test_colab_cell.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a wheel of course_utils is built from (the rest of the repository is not needed).
_SOURCES = ("pyproject.toml", "README.md", "course_utils")


def _course_site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _left_out(name: str) -> bool:
    """course_utils itself (package, metadata, editable hooks) and .pth files (not processed there anyway)."""
    return (
        name.lower().replace("-", "_").startswith(("course_utils", "__editable__"))
        or name.endswith(".pth")
        or name == "__pycache__"
    )


def make_env(root: Path) -> Path:
    """Create the environment under ``root``; returns its python executable."""
    preinstalled = root / "preinstalled"
    preinstalled.mkdir(parents=True)
    for entry in _course_site_packages().iterdir():
        if not _left_out(entry.name):
            (preinstalled / entry.name).symlink_to(entry)
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    (env_site_packages(python) / "preinstalled.pth").write_text(str(preinstalled) + "\n")
    return python


def env_site_packages(python: Path) -> Path:
    """The new environment's own site-packages (where pip installs)."""
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        env=clean_environ(),
    )
    return Path(out.stdout.strip())


def clean_environ(**extra: str) -> dict[str, str]:
    """The current environment minus anything that would put the repository or .venv on sys.path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PYTHONNOUSERSITE="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def copy_package_sources(dest: Path) -> Path:
    """Copy what the package is built from (pyproject.toml, README.md, course_utils/) into ``dest``."""
    dest.mkdir(parents=True)
    for name in _SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, dest / name)
    return dest


def build_wheel(dest: Path) -> Path:
    """Build course_utils' wheel offline (setuptools from .venv, no build isolation) from a copy of the sources.

    Building from a copy keeps ``build/`` and ``*.egg-info`` out of the working tree.
    """
    src = copy_package_sources(dest / "src")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(dest / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"building the wheel failed:\n{result.stdout}\n{result.stderr}"
    (wheel,) = (dest / "dist").glob("course_utils-*.whl")
    return wheel
