"""The student distribution (`python -m tools.distribute DEST`): everything students need, no solution.

One build into a scratch folder (about 7 s), then: the allow-list is respected, nothing of solutions/,
tests/, docs/ or the grading tools is there, no model answer or hidden test appears in any file
(the tool's own scan, and an independent check of every region of every instructor notebook), the
Colab badges and install cells point to the student repository, the student Makefile, README and
pyproject work without the instructor files, and a planted leak is caught and not published.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import tomllib
from nbgrader_helpers import ROOT

from tools import distribute, markers, release

SETTINGS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["course"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("dist") / "student"
    result = distribute.build(dest)
    assert result.problems == [], "\n".join(result.problems)
    return dest


def _files(dest: Path) -> list[str]:
    return sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())


def test_student_tree_holds_the_course_and_nothing_else(dist):
    files = _files(dist)
    for needed in (
        "README.md",
        "pyproject.toml",
        "course_utils/__init__.py",
        "lectures/L00_learning_recipe.ipynb",
        "assignments/A1_backprop/A1_backprop.ipynb",
    ):
        assert needed in files
    assert len([f for f in files if f.startswith("assignments/")]) == len(list((ROOT / "assignments").rglob("*.ipynb")))
    allowed = tuple(rel for rel, _ in distribute.STUDENT_PATHS)
    assert [f for f in files if not any(f == a or f.startswith(a + "/") for a in allowed)] == []
    top = {f.split("/")[0] for f in files}
    for forbidden in (
        "solutions",
        "tests",
        "docs",
        "nbgrader_config.py",
        "gradebook.db",
        "submitted",
        "autograded",
        "feedback",
        "benchmarks",
        "CONTRIBUTING.md",
    ):
        assert forbidden not in top
    assert sorted(p.name for p in (dist / "tools").iterdir()) == ["__init__.py", "workspace.py"]


def _canonical_texts(dest: Path) -> dict[str, tuple[str, set[str]]]:
    """file -> (its canonical text, its canonical lines); notebooks also as their cell sources."""
    texts = {}
    for f in _files(dest):
        lines = (dest / f).read_text(encoding="utf-8", errors="replace").split("\n")
        if f.endswith(".ipynb"):
            lines += [ln for c in nbformat.read(dest / f, as_version=4).cells for ln in c.source.split("\n")]
        texts[f] = (markers.canonical("\n".join(lines)), {markers.canonical(ln) for ln in lines})
    return texts


def _region_leaks(texts: dict[str, str]) -> list[tuple[str, str, str]]:
    """(instructor notebook, region kind, file) for every whole region (40+ characters) of every
    instructor notebook found in a file, and every hidden-test line with the hidden tests' _underscore
    names; independent of the tool's own scan and its allowances."""
    found, checked = [], 0
    for path in sorted((ROOT / "solutions").rglob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            body = []
            for line in markers.classify(cell.source):
                if line.region and not line.marker:
                    body.append(line.text)
                if body and line.open_after is None:
                    block = markers.canonical("\n".join(body))
                    if len(block) >= 40:
                        checked += 1
                        found += [(path.stem, line.region, f) for f, (text, _) in texts.items() if block in text]
                    body = []
        for line in markers.hidden_test_lines(nb):
            key = markers.canonical(line)
            if re.search(r"(?<![\w.])_[A-Za-z]", line) and len(key) >= 12:  # whole lines; long ones anywhere
                found += [
                    (path.stem, "hidden line", f)
                    for f, (text, lines) in texts.items()
                    if key in lines or (len(key) >= distribute.LONG_SECRET and key in text)
                ]
    assert checked > 50, "control: the instructor notebooks should have many solution and hidden-test regions"
    return found


def test_no_model_answer_or_hidden_test_in_any_file(dist):
    assert distribute.scan(dist) == []
    leaks = _region_leaks(_canonical_texts(dist))
    # the one known exception, by design: later assignments provide earlier answers as helpers (A4-A6 give
    # A3's count_parameters and train_step); docs/instructors.md says to publish assignments one at a time
    later = [(nb, kind, f) for nb, kind, f in leaks if f.startswith("assignments/") and f.split("/")[1] > nb]
    assert [leak for leak in leaks if leak not in later] == []
    assert all(kind == "solution" for _, kind, _ in later), later


def test_publishing_assignments_one_at_a_time_gives_no_answer_away(tmp_path):
    out_so_far = ["A1_backprop", "A2_convolution", "A3_lenet5"]
    result = distribute.build(tmp_path / "student", assignments=out_so_far)
    assert result.problems == [], result.problems
    assert sorted(p.name for p in (tmp_path / "student" / "assignments").iterdir()) == out_so_far
    assert _region_leaks(_canonical_texts(tmp_path / "student")) == []


def test_badges_and_install_cells_point_to_the_student_repository(dist):
    public = SETTINGS["student_repository"].rstrip("/")
    private = SETTINGS["repository"].rstrip("/")
    assert public != private, "the instructor repository must not be the one students are sent to"
    owner_repo = public.removeprefix("https://github.com/")
    for f in _files(dist):
        if f.endswith(".ipynb"):
            nb = nbformat.read(dist / f, as_version=4)
            assert f"colab.research.google.com/github/{owner_repo}/blob/" in nb.cells[0].source, f
            assert f"git+{public}.git@" in nb.cells[1].source, f
        text = (dist / f).read_text(encoding="utf-8", errors="replace")
        assert private not in text, f"{f} names the private repository"
    assert tomllib.loads((dist / "pyproject.toml").read_text())["tool"]["course"]["repository"] == public


def test_student_makefile_readme_and_package_work_without_instructor_files(dist):
    for target in ("lab", "test"):
        dry = subprocess.run(["make", "-n", target], cwd=dist, capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr
        assert "tools.release" not in dry.stdout and "solutions" not in dry.stdout
    makefile = (dist / "Makefile").read_text()
    assert not re.search(r"(?m)^(release|lock|lab-instructor|test-latest)\s*:", makefile)
    readme = (dist / "README.md").read_text()
    for link in re.findall(r"\]\(([^)#\s]+)", readme):
        if not re.match(r"[a-z]+:", link):
            assert (dist / link).exists(), f"README links to {link}, which students do not get"
    assert "solutions/" not in readme and "docs/instructors" not in readme
    pytest_options = tomllib.loads((dist / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert pytest_options["testpaths"] == ["lectures"]
    # what the Colab install cell does with the student repository
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-index",
            "--no-build-isolation",
            "--no-deps",
            "--quiet",
            "--report",
            "-",
            str(dist),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    assert [i["metadata"]["name"] for i in json.loads(pip.stdout)["install"]] == ["course-utils"]


def test_a_planted_leak_is_caught_and_not_published(tmp_path):
    course = release.copy_course(ROOT, tmp_path / "course")
    for name in ("lectures", "course_utils", "README.md", "pyproject.toml", "Makefile", ".ci", "environment.yml"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, course / name)
    source = nbformat.read(ROOT / "solutions" / "A1_backprop" / "A1_backprop.ipynb", as_version=4)
    hidden = next(c.source for c in source.cells if markers.BEGIN_HIDDEN in c.source)
    body = hidden.split(markers.BEGIN_HIDDEN, 1)[1].split("\n", 1)[1].split("###")[0]
    (course / "course_utils" / "answers.py").write_text(body)  # a hidden test pasted into a helper
    lecture = nbformat.read(course / "lectures" / "L00_learning_recipe.ipynb", as_version=4)
    lecture.cells.append(nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION"))
    nbformat.write(lecture, course / "lectures" / "L00_learning_recipe.ipynb")
    dest = tmp_path / "student"
    result = distribute.build(dest, root=course)
    assert any("course_utils/answers.py: reveals" in p for p in result.problems), result.problems
    assert any("L00_learning_recipe.ipynb: holds the nbgrader marker" in p for p in result.problems)
    assert list(dest.iterdir()) == [], "a leaking tree must not be left behind"


def test_destination_rules(tmp_path):
    with pytest.raises(ValueError, match="inside the instructor repository"):
        distribute.build(ROOT / "student-dist")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        distribute.build(tmp_path / "busy")
    clone = tmp_path / "clone"
    (clone / ".git").mkdir(parents=True)
    (clone / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (clone / "solutions").mkdir()  # left over from an old, leaky publication: removed
    result = distribute.build(clone)
    assert result.problems == [] and (clone / ".git" / "HEAD").exists() and not (clone / "solutions").exists()
