"""`python -m tools.grading collect` never loses work (tools/collect.py).

Several candidate files for one student and notebook: the newest wins (modification time, then the
last execution recorded in the notebook, then the browser's '(N)' download number), every choice is
printed, a tie between different contents collects nothing, and a notebook already in submitted/ is
never overwritten silently. All in-process on a scratch copy of the course (about 2 s in all).
"""

from __future__ import annotations

import os
import time

import nbformat
import pytest
from nbgrader_helpers import ROOT, release_nb, run

from tools import grading, release
from tools.collect import download_number, last_execution, normalise_name

A1 = "A1_backprop"
NOW = time.time() - 3600


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return release.copy_course(ROOT, tmp_path_factory.mktemp("collect") / "course")


@pytest.fixture
def downloads(tmp_path):
    return tmp_path / "downloads"


def _hand_in(course, path, version: str, mtime: float, executed: str | None = None):
    """A copy of the release whose first solution cell says which version it is."""
    nb = release_nb(course, A1, A1)
    cell = next(c for c in nb.cells if grading.nbgrader_meta(c).get("solution") and c.cell_type == "code")
    cell.source += f"\n# {version}"
    if executed:
        cell.metadata["execution"] = {"iopub.status.busy": executed, "iopub.status.idle": executed}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    os.utime(path, (mtime, mtime))
    return path


def _collected(course, student: str) -> str | None:
    path = course / "submitted" / student / A1 / f"{A1}.ipynb"
    if not path.exists():
        return None
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if grading.nbgrader_meta(c).get("solution") and c.cell_type == "code")
    return cell.source.rsplit("# ", 1)[-1]


def _collect(course, downloads, force=False):
    return grading.collect(A1, downloads, course / "submitted", course, force=force)


@pytest.fixture(autouse=True)
def _clean(course):
    yield
    import shutil

    for name in ("submitted", "nbgrader_work"):
        shutil.rmtree(course / name, ignore_errors=True)


@pytest.mark.parametrize("newer", ["numbered", "plain"])
def test_newest_of_two_downloads_wins_whatever_the_names(course, downloads, newer):
    # the issue: an older A1_backprop.ipynb silently overwrote a newer 'A1_backprop (1).ipynb'
    _hand_in(course, downloads / "alice" / f"{A1} (1).ipynb", "numbered", NOW + (60 if newer == "numbered" else 0))
    _hand_in(course, downloads / "alice" / f"{A1}.ipynb", "plain", NOW + (60 if newer == "plain" else 0))
    result = _collect(course, downloads)
    assert _collected(course, "alice") == newer
    chose = [line for line in result if line.startswith("CHOSE")]
    assert len(chose) == 1 and "2 candidates" in chose[0] and "not used" in chose[0], result.lines
    assert result.problems == 0
    assert all(not f.issues for f in grading.check_submissions(course / "submitted", A1, course))


@pytest.mark.parametrize("newer", ["file", "folder"])
def test_loose_file_and_folder_of_one_student_are_compared(course, downloads, newer):
    # the issue: a stray alice.ipynb overwrote what alice/ held
    _hand_in(course, downloads / "alice.ipynb", "file", NOW + (60 if newer == "file" else 0))
    _hand_in(course, downloads / "alice" / f"Copy of {A1}.ipynb", "folder", NOW + (60 if newer == "folder" else 0))
    result = _collect(course, downloads)
    assert _collected(course, "alice") == newer
    assert any(line.startswith("CHOSE") and "alice.ipynb" in line for line in result), result.lines


def test_same_mtime_last_execution_decides(course, downloads):
    _hand_in(course, downloads / "bob" / f"{A1}.ipynb", "ran-later", NOW, executed="2026-11-20T10:05:00.000Z")
    _hand_in(course, downloads / "bob" / f"{A1} (1).ipynb", "ran-earlier", NOW, executed="2026-11-20T09:00:00.000Z")
    result = _collect(course, downloads)
    assert _collected(course, "bob") == "ran-later"
    assert any("last executed most recently" in line for line in result), result.lines


def test_same_mtime_download_number_decides(course, downloads):
    _hand_in(course, downloads / "bob" / f"{A1} (1).ipynb", "first", NOW)
    _hand_in(course, downloads / "bob" / f"{A1} (2).ipynb", "second", NOW)
    result = _collect(course, downloads)
    assert _collected(course, "bob") == "second"
    assert any("downloaded last" in line for line in result), result.lines


def test_a_real_tie_collects_nothing_and_asks_the_instructor(course, downloads):
    _hand_in(course, downloads / "carol.ipynb", "one", NOW)
    _hand_in(course, downloads / "carol" / f"{A1}.ipynb", "two", NOW)
    _hand_in(course, downloads / "dave.ipynb", "fine", NOW)
    result = _collect(course, downloads)
    assert _collected(course, "carol") is None and _collected(course, "dave") == "fine"
    assert result.problems == 1
    assert any(line.startswith("AMBIGUOUS") and "carol" in line for line in result), result.lines
    cli = run(["tools.grading", "collect", A1, str(downloads)], course)
    assert cli.returncode == 1 and "AMBIGUOUS" in cli.stdout, cli.output


def test_identical_copies_are_not_a_conflict(course, downloads):
    first = _hand_in(course, downloads / "erin" / f"{A1}.ipynb", "same", NOW)
    (downloads / "erin" / f"{A1} (1).ipynb").write_bytes(first.read_bytes())
    result = _collect(course, downloads)
    assert _collected(course, "erin") == "same" and result.problems == 0


def test_renamed_notebook_loses_to_one_named_after_the_release(course, downloads):
    _hand_in(course, downloads / "frank" / "scratch.ipynb", "scratch", NOW + 600)
    _hand_in(course, downloads / "frank" / f"{A1}.ipynb", "real", NOW)
    result = _collect(course, downloads)
    assert _collected(course, "frank") == "real"
    assert any(line.startswith("IGNORED") and "scratch.ipynb" in line for line in result), result.lines
    # two renamed notebooks and nothing named after the release: the names say nothing, ask
    _hand_in(course, downloads / "gina" / "mine.ipynb", "mine", NOW + 60)
    _hand_in(course, downloads / "gina" / "notes.ipynb", "notes", NOW)
    result = _collect(course, downloads)
    assert _collected(course, "gina") is None and any("AMBIGUOUS" in line for line in result)


def test_collected_notebook_is_never_overwritten_silently(course, downloads):
    _hand_in(course, downloads / "hal.ipynb", "first", NOW)
    assert _collect(course, downloads).problems == 0
    again = _collect(course, downloads)
    assert any(line.startswith("UNCHANGED") for line in again) and again.problems == 0
    _hand_in(course, downloads / "hal.ipynb", "resubmitted", NOW + 60)
    refused = _collect(course, downloads)
    assert _collected(course, "hal") == "first" and refused.problems == 1
    assert any(line.startswith("REFUSED") and "--force" in line for line in refused), refused.lines
    forced = _collect(course, downloads, force=True)
    assert _collected(course, "hal") == "resubmitted" and forced.problems == 0
    backups = list((course / "nbgrader_work" / "collect-backups").rglob(f"{A1}.ipynb"))
    assert len(backups) == 1 and "# first" in backups[0].read_text()
    assert any(line.startswith("REPLACED") for line in forced)
    log = (course / "nbgrader_work" / "collect.log").read_text()
    assert log.count("collect A1_backprop") == 4 and "REFUSED" in log and "REPLACED" in log


def test_helpers():
    assert normalise_name("Copy of A1_backprop (1)") == "A1_backprop"
    assert download_number("A1_backprop (12)") == 12 and download_number("A1_backprop") == 0
    colab = {"cells": [{"metadata": {"executionInfo": {"timestamp": 1_700_000_000_000}}}]}
    lab = {"cells": [{"metadata": {"execution": {"iopub.status.idle": "2023-11-14T22:13:21Z"}}}]}
    assert last_execution(colab) == pytest.approx(1_700_000_000)
    assert last_execution(lab) == pytest.approx(1_700_000_001)
    assert last_execution({"cells": [{"metadata": {}}]}) is None
