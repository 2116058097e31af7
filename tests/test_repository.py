"""Repository hygiene: packaging, conda file, Colab readiness, clean notebooks, the two README commands."""

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import tomllib
import yaml

from tools import notebooks as nbtool

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONDA_TO_PIP = {"pytorch": "torch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def _extra(name: str) -> list[str]:
    """An extra's requirements, with the extras it names from this package (course-utils[lab,...]) expanded."""
    project = PYPROJECT["project"]
    requirements = []
    for req in project["optional-dependencies"][name]:
        if _name(req) == project["name"]:
            for inner in re.search(r"\[(.*)\]", req).group(1).split(","):
                requirements += _extra(inner.strip())
        else:
            requirements.append(req)
    return requirements


def _pyproject_requirements() -> list[str]:
    return PYPROJECT["project"]["dependencies"] + _extra("dev")


def test_students_get_jupyterlab_without_the_grading_tools():
    student = {_name(r) for r in PYPROJECT["project"]["dependencies"] + _extra("lab")}
    assert "jupyterlab" in student and "ipykernel" in student
    assert not student & {"nbgrader", "nbval", "pytest", "playwright"}, student
    assert "nbgrader" in {_name(r) for r in _extra("instructor")}
    assert {_name(r) for r in _extra("lab") + _extra("instructor")} <= {_name(r) for r in _extra("dev")}


def test_dependencies_are_lower_bounds_only():
    for req in _pyproject_requirements():
        assert ">=" in req and not re.search(r"==|<|~=", req), (
            f"{req!r}: use a lower bound only (exact pins belong in .ci/constraints.txt)"
        )


def test_environment_yml_names_the_same_packages_as_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {CONDA_TO_PIP.get(_name(d), _name(d)) for d in env["dependencies"] if isinstance(d, str)}
    conda -= {"python", "pip"}
    pip_part = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda |= {_name(p) for p in pip_part if not p.startswith("-e")}  # pip-only: not on conda-forge
    assert conda == {_name(r) for r in _pyproject_requirements()}
    assert "-e ." in pip_part


def test_constraints_pin_everything_pyproject_needs():
    pinned = {
        _name(line)
        for line in (ROOT / ".ci/constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    missing = {_name(r) for r in _pyproject_requirements()} - pinned
    assert not missing, f"not pinned in .ci/constraints.txt: {missing} (run `make lock`)"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(make \w+)", quick, flags=re.M)
    assert commands == ["make lab", "make test"], commands
    assert "make test" in (ROOT / ".ci/run").read_text()


@pytest.mark.parametrize("path", nbtool.maintained_notebooks(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_notebook_has_colab_cells_and_is_stored_clean(path):
    assert nbtool.problems(path) == [], "run `python -m tools.notebooks sync`"


def _released_notebooks():
    return sorted((ROOT / "assignments").rglob("*.ipynb"))


@pytest.mark.parametrize("path", _released_notebooks(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_released_notebook_opens_its_own_copy_in_colab(path):
    nb = nbformat.read(path, as_version=4)
    rel = path.relative_to(ROOT).as_posix()
    assert nbtool.colab_url(rel) in nb.cells[0].source
    assert nb.cells[1].source == nbtool.setup_source(needs_gpu=nbtool.needs_gpu(rel))


def test_colab_setup_cell_installs_only_course_utils_and_only_on_colab(monkeypatch):
    source = nbtool.setup_source()
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    exec(compile(source, "setup-cell", "exec"), {})  # not on Colab: nothing happens
    assert calls == []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    namespace: dict = {}
    exec(compile(source, "setup-cell", "exec"), namespace)
    assert namespace["IN_COLAB"] and len(calls) == 1
    command = calls[0]
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert not any(flag in command for flag in ("-U", "--upgrade", "--force-reinstall"))
    targets = [a for a in command[4:] if not a.startswith("-")]
    # students install from the public student repository, never from the private instructor one
    assert targets == [f"course-utils @ git+{PYPROJECT['tool']['course']['student_repository']}.git@main"]


def test_installing_course_utils_leaves_an_existing_torch_alone(tmp_path):
    """With torch already present (as on Colab), pip resolves course-utils without touching torch."""
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-index",
            "--no-build-isolation",
            "--quiet",
            "--report",
            str(report),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    installs = [item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]]
    assert installs == ["course-utils"]


def test_badge_url_is_built_from_the_configured_repository():
    settings = {"repository": "https://github.com/someone/fork", "branch": "dev"}
    assert (
        nbtool.colab_url("lectures/L00.ipynb", settings)
        == "https://colab.research.google.com/github/someone/fork/blob/dev/lectures/L00.ipynb"
    )
    assert "assignments/A1/A1.ipynb" in nbtool.badge_source("solutions/A1/A1.ipynb", settings)
    assert "git+https://github.com/someone/fork.git@dev" in nbtool.setup_source(settings)
    settings["student_repository"] = "https://github.com/someone/fork-students"
    assert "github/someone/fork-students/blob/dev/lectures/L00.ipynb" in nbtool.colab_url(
        "lectures/L00.ipynb", settings
    )
    assert "git+https://github.com/someone/fork-students.git@dev" in nbtool.setup_source(settings)
