"""tools.workspace: the student's own copy of the course (my-work/) that `make lab` opens."""

import subprocess
from pathlib import Path

import pytest

from tools import workspace

ROOT = Path(__file__).resolve().parents[1]


def _course(root: Path) -> Path:
    (root / "lectures").mkdir(parents=True)
    (root / "assignments" / "A1").mkdir(parents=True)
    (root / "lectures" / "L00.ipynb").write_text("L00 v1")
    (root / "lectures" / "L01.ipynb").write_text("L01 v1")
    (root / "assignments" / "A1" / "A1.ipynb").write_text("A1 v1")
    (root / "lectures" / ".ipynb_checkpoints").mkdir()
    (root / "lectures" / ".ipynb_checkpoints" / "L00-checkpoint.ipynb").write_text("noise")
    return root


def test_first_run_copies_the_course_and_later_runs_copy_only_what_is_new(tmp_path):
    course, work = _course(tmp_path / "course"), tmp_path / "my-work"
    first = workspace.sync(work, course)
    assert first.copied == ["assignments/A1/A1.ipynb", "lectures/L00.ipynb", "lectures/L01.ipynb"]
    assert (work / "lectures" / "L00.ipynb").read_text() == "L00 v1"
    assert not (work / "lectures" / ".ipynb_checkpoints").exists()
    assert workspace.sync(work, course).copied == []
    (course / "lectures" / "L02.ipynb").write_text("L02 v1")  # a new lecture arrives with `git pull`
    assert workspace.sync(work, course).copied == ["lectures/L02.ipynb"]


def test_work_is_never_overwritten_and_unchanged_copies_follow_the_course(tmp_path):
    course, work = _course(tmp_path / "course"), tmp_path / "my-work"
    workspace.sync(work, course)
    (work / "lectures" / "L00.ipynb").write_text("L00 v1 + my answers")  # the student's work
    (course / "lectures" / "L00.ipynb").write_text("L00 v2")  # both change in the course
    (course / "lectures" / "L01.ipynb").write_text("L01 v2")
    report = workspace.sync(work, course)
    assert (work / "lectures" / "L00.ipynb").read_text() == "L00 v1 + my answers"
    assert report.updated_in_course == ["lectures/L00.ipynb"]
    assert "lectures/L00.ipynb" in report.summary() and "rename your copy" in report.summary()
    assert (work / "lectures" / "L01.ipynb").read_text() == "L01 v2"  # never touched by the student
    assert report.refreshed == ["lectures/L01.ipynb"]
    # the documented way to get the new version next to your own: rename yours, run again
    (work / "lectures" / "L00.ipynb").rename(work / "lectures" / "L00_mine.ipynb")
    assert workspace.sync(work, course).copied == ["lectures/L00.ipynb"]
    assert (work / "lectures" / "L00.ipynb").read_text() == "L00 v2"
    assert (work / "lectures" / "L00_mine.ipynb").read_text() == "L00 v1 + my answers"
    assert workspace.sync(work, course).updated_in_course == []


def test_damaged_bookkeeping_costs_no_work(tmp_path):
    course, work = _course(tmp_path / "course"), tmp_path / "my-work"
    workspace.sync(work, course)
    (work / "lectures" / "L00.ipynb").write_text("mine")
    (work / workspace.VERSIONS_FILE).write_text("{not json")
    (course / "lectures" / "L00.ipynb").write_text("L00 v2")
    workspace.sync(work, course)
    assert (work / "lectures" / "L00.ipynb").read_text() == "mine"


def test_a_file_in_the_way_is_named(tmp_path):
    course, work = _course(tmp_path / "course"), tmp_path / "my-work"
    work.write_text("not a folder")
    with pytest.raises(SystemExit, match="my-work exists and is not a folder"):
        workspace.sync(work, course)


def test_git_ignores_the_work_folder():
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", f"{workspace.DEFAULT_DEST}/lectures/L00.ipynb"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{workspace.DEFAULT_DEST}/ is not in .gitignore"


def test_the_repository_course_folders_are_copied():
    files = workspace.course_files(ROOT)
    assert "lectures/L00_learning_recipe.ipynb" in files
    assert any(f.startswith("assignments/A1_backprop/") for f in files)
    assert not any(f.startswith(("solutions/", "tests/")) for f in files)
