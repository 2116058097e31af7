"""What the Makefile's targets would run (`make -n`, nothing is installed or started).

* `make lab` installs the student extra (no nbgrader) into a new environment, keeps an instructor's
  environment as it is, never sets COURSE_FAST / COURSE_OFFLINE, forwards PORT, TOKEN and LAB_ARGS,
  adds --allow-root for root, and opens L00 of the student's own copy (my-work/).
* The instructor's targets (setup, test, release, lock, lab-instructor) install the dev extra (nbgrader,
  nbval, playwright, ...) pinned by .ci/constraints.txt.
* `make test-latest` builds a fresh .venv-latest without the lock and runs the fast-mode suite; CI does not run it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(*args: str) -> list[str]:
    """The commands `make -n ARGS` prints, one per line."""
    # As a user types it: no mode variables, and not inside another make (`make test` sets MAKELEVEL, which
    # makes the inner make print "Entering directory" lines).
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COURSE_FAST", "COURSE_OFFLINE", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")
    }
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line.strip()]


def _pip_installs(lines: list[str]) -> list[str]:
    return [line for line in lines if "pip install" in line and "--upgrade pip" not in line]


def _jupyter(lines: list[str]) -> list[str]:
    found = [shlex.split(line) for line in lines if "jupyter lab" in line]
    assert len(found) == 1, lines
    return found[0]


def test_student_lab_installs_no_grading_tools_and_sets_no_mode(tmp_path):
    lines = dry_run("lab", f"VENV={tmp_path / 'new-venv'}", "PORT=8899", "TOKEN=s3cret", "LAB_ARGS=--no-browser")
    installs = _pip_installs(lines)
    assert len(installs) == 1 and '-e ".[lab]"' in installs[0] and "-c .ci/constraints.txt" in installs[0], installs
    assert not any("COURSE_FAST" in line or "COURSE_OFFLINE" in line for line in lines), lines
    assert any("tools.workspace my-work" in line for line in lines), "the student's copy is not prepared"
    argv = _jupyter(lines)
    assert {
        "--ServerApp.port=8899",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=s3cret",
        "--no-browser",
        "--ServerApp.root_dir=my-work",
        "--LabApp.default_url=/lab/tree/lectures/L00_learning_recipe.ipynb",
    } <= set(argv), argv
    assert ("--allow-root" in argv) == (os.geteuid() == 0)
    assert not [a for a in argv[2:] if not a.startswith("-")], f"JupyterLab opens only one path argument: {argv}"


def test_lab_without_options_lets_jupyter_choose(tmp_path):
    argv = _jupyter(dry_run("lab", f"VENV={tmp_path / 'new-venv'}"))
    assert not any(a.startswith(("--ServerApp.port", "--IdentityProvider.token")) for a in argv), argv


def test_lab_keeps_an_instructor_environment(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".course-installed").touch()  # newer than pyproject.toml and the lock: up to date
    lines = dry_run("lab", f"VENV={venv}")
    assert _pip_installs(lines) == [], "an up-to-date instructor environment was reinstalled"
    assert _jupyter(lines)[0] == f"{venv}/bin/jupyter"


@pytest.mark.parametrize("target", ["setup", "test", "release", "lock", "lab-instructor"])
def test_instructor_targets_install_the_dev_extra_from_the_lock(tmp_path, target):
    installs = _pip_installs(dry_run(target, f"VENV={tmp_path / 'new-venv'}"))
    assert len(installs) == 1 and '-e ".[dev]"' in installs[0] and "-c .ci/constraints.txt" in installs[0], installs


def test_lab_instructor_opens_the_repository_itself(tmp_path):
    argv = _jupyter(dry_run("lab-instructor", f"VENV={tmp_path / 'new-venv'}", "LAB_ARGS=--no-browser"))
    assert "--LabApp.default_url=/lab/tree/lectures/L00_learning_recipe.ipynb" in argv and "--no-browser" in argv
    assert not any(a.startswith("--ServerApp.root_dir") for a in argv), argv


def test_test_latest_uses_a_fresh_environment_and_no_lock():
    lines = dry_run("test-latest")
    assert lines[:2] == ["rm -rf .venv-latest", "python3 -m venv .venv-latest"], lines
    installs = _pip_installs(lines)
    assert len(installs) == 1 and installs[0].startswith(".venv-latest/bin/python -m pip install"), installs
    assert '".[dev]"' in installs[0]
    commands = [line for line in lines if not line.startswith("echo ")]
    assert not any("constraints" in line or " -c " in line for line in commands), "test-latest must not use the lock"
    assert lines[-1].startswith("COURSE_FAST=1 COURSE_OFFLINE=1 .venv-latest/bin/python -m pytest"), lines
    assert not any(line.startswith(".venv/") for line in lines), "test-latest must leave .venv alone"


def test_ci_does_not_run_test_latest():
    assert "test-latest" not in (ROOT / ".ci" / "run").read_text()
    assert "/.venv-latest/" in (ROOT / ".gitignore").read_text().split()
