"""Grading a whole class (issue 14): ``python -m tools.grading autograde A --workers N`` and ``--scheduler`` (Dask).

One scratch A1 course with three hand-ins (the solution, the untouched release, a wrong answer) is graded by
sequential ``nbgrader autograde`` (the reference), by ``--workers 2`` (the CLI) and by a 2-worker Dask
LocalCluster on 127.0.0.1 (two of them): the gradebook rows must be identical. Retries, dead workers, the
second-run skip and Ctrl-C consistency are tested with stand-in grading functions (no sandbox: fast).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
from pathlib import Path

import pytest
from nbgrader_helpers import ROOT, edit, release_nb, run, solved, write_submission

from tools import release
from tools.autograde import parallel

A1 = "A1_backprop"
STUDENTS = ("solution", "untouched", "wrong")
pytestmark = [
    pytest.mark.skipif(not (ROOT / "solutions" / A1).is_dir(), reason=f"{A1} is not in solutions/"),
    pytest.mark.timeout(1800),
]


def _wrong(nb):  # sigmoid_backward forgets (1 - s), ReLU uses >= 0 (tests/test_nbgrader_pipeline.py)
    edit(nb, "sigmoid", "dx = dout * s * (1.0 - s)", "dx = dout * s")
    return edit(nb, "relu", "dx = dout * (x > 0)", "dx = dout * (x >= 0)")


def _copy(template: Path, dest: Path, students=STUDENTS) -> Path:
    shutil.copytree(template, dest, ignore=shutil.ignore_patterns("__pycache__", "submitted"))
    for student in students:
        shutil.copytree(template / "submitted" / student, dest / "submitted" / student)
    return dest


def _all_rows(course: Path) -> dict[str, dict]:
    url = f"sqlite:///{course / 'gradebook.db'}"
    return {s: parallel.read_rows(url, A1, s) for s in sorted(parallel.graded_students(url, A1))}


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A released scratch course with the three hand-ins, not graded yet."""
    course = release.copy_course(ROOT, tmp_path_factory.mktemp("parallel") / "template", with_release=False)
    release.generate([A1], course)
    write_submission(course, "solution", A1, A1, solved(course, A1, A1))
    write_submission(course, "untouched", A1, A1, release_nb(course, A1, A1))
    write_submission(course, "wrong", A1, A1, _wrong(solved(course, A1, A1)))
    return course


@pytest.fixture(scope="module")
def sequential(template, tmp_path_factory) -> Path:
    """The reference: plain sequential ``nbgrader autograde`` in a copy of the course."""
    course = _copy(template, tmp_path_factory.mktemp("sequential") / "course")
    result = run(["nbgrader", "autograde", A1], course, threads=1, timeout=1500)
    assert result.returncode == 0, result.output[-4000:]
    return course


@pytest.fixture(scope="module")
def with_workers(template, tmp_path_factory):
    course = _copy(template, tmp_path_factory.mktemp("workers") / "course")
    result = run(
        ["tools.grading", "--root", str(course), "autograde", A1, "--workers", "2", "--no-progress"], ROOT, timeout=1500
    )
    return course, result


def test_workers_give_the_same_rows_as_sequential_nbgrader(sequential, with_workers):
    course, result = with_workers
    assert result.returncode == 0, result.output[-4000:]
    expected = _all_rows(sequential)
    assert set(expected) == set(STUDENTS)
    assert expected["solution"]["score"] > expected["wrong"]["score"] > expected["untouched"]["score"] == 0
    assert _all_rows(course) == expected  # every auto score, flag, comment, penalty and timestamp
    for student in STUDENTS:
        assert (course / "autograded" / student / A1 / f"{A1}.ipynb").stat().st_size > 10_000
    # the summary table: one line per student and the counts
    assert "graded: 1, needs a person: 2, failed: 0, skipped: 0" in result.stdout, result.stdout
    for student in STUDENTS:
        assert any(line.startswith(student) for line in result.stdout.splitlines())


def test_second_run_grades_nothing_and_force_regrades(with_workers, monkeypatch):
    course, _ = with_workers
    rows_before = _all_rows(course)
    asked: list[str] = []

    def fake(bundle, student, files):  # never runs nbgrader: returns what the first run wrote
        asked.append(student)
        return parallel.Outcome(
            student,
            True,
            rows=rows_before[student],
            files=parallel.read_tree(course / "autograded" / student / A1),
            worker="fake",
        )

    def grade(**kw):
        coord = parallel.Coordinator(course, A1, parallel.LocalBackend(2, grade=fake), progress=False, **kw)
        return {r.student: r.status for r in coord.run()}

    assert set(grade().values()) == {"skipped"} and asked == []
    nb_path = course / "submitted" / "untouched" / A1 / f"{A1}.ipynb"
    nb_path.write_text(nb_path.read_text().replace("YOUR CODE HERE", "YOUR CODE HERE (looked at it)", 1))
    assert grade()["untouched"] == "graded" and asked == ["untouched"]
    asked.clear()
    assert set(grade(force=True)) == set(STUDENTS) and sorted(asked) == sorted(STUDENTS)
    assert _all_rows(course) == rows_before


def test_failed_worker_is_retried_once_then_reported(with_workers, tmp_path):
    course = _copy(with_workers[0], tmp_path / "course", students=("solution", "wrong"))
    good = _all_rows(with_workers[0])
    shutil.rmtree(course / "nbgrader_work", ignore_errors=True)
    tries: dict[str, int] = {}

    def flaky(bundle, student, files):
        tries[student] = tries.get(student, 0) + 1
        if student == "wrong":
            raise RuntimeError("worker lost")  # always: reported as failed after 2 tries
        if tries[student] == 1:
            return parallel.Outcome(student, False, error="nbgrader autograde exited with -9")
        return parallel.Outcome(student, True, rows=good[student], files={f"{A1}.ipynb": (b"{}", 0o444)})

    with sqlite3.connect(course / "gradebook.db") as db:  # already graded once: a failure changes nothing
        before = db.execute("select count(*) from grade").fetchone()[0]
    rows = {
        r.student: r
        for r in parallel.Coordinator(
            course, A1, parallel.LocalBackend(2, grade=flaky), force=True, progress=False
        ).run()
    }
    assert tries == {"solution": 2, "wrong": 2}
    assert rows["solution"].status == "needs a person" and rows["solution"].attempts == 2
    assert rows["wrong"].status == "failed" and "worker lost" in rows["wrong"].note
    assert _all_rows(course)["solution"] == good["solution"]
    with sqlite3.connect(course / "gradebook.db") as db:
        assert db.execute("select count(*) from grade").fetchone()[0] == before


def test_interrupted_write_leaves_nothing_half_written(sequential, tmp_path):
    course = _copy(sequential, tmp_path / "course", students=())
    url = f"sqlite:///{course / 'gradebook.db'}"
    good = parallel.read_rows(url, A1, "wrong")
    changed = {
        **good,
        "notebooks": {
            nb: {**data, "grades": {g: {**v, "auto_score": 0.0} for g, v in data["grades"].items()}}
            for nb, data in good["notebooks"].items()
        },
    }

    def ctrl_c():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # an existing student: old scores stay
        parallel.write_rows(url, A1, "wrong", changed, _between=ctrl_c)
    assert parallel.read_rows(url, A1, "wrong") == good
    with pytest.raises(KeyboardInterrupt):  # a new student: not even the student row
        parallel.write_rows(url, A1, "newcomer", good, _between=ctrl_c)
    with sqlite3.connect(course / "gradebook.db") as db:
        assert db.execute("select count(*) from student where id = 'newcomer'").fetchone()[0] == 0
    with pytest.raises(KeyboardInterrupt), parallel.deferred_sigint():  # Ctrl-C during a write waits for it
        os.kill(os.getpid(), signal.SIGINT)
        parallel.write_rows(url, A1, "newcomer", good)
    assert parallel.read_rows(url, A1, "newcomer") == good


# ------------------------------------------------------------------------------------------------
# Dask: a LocalCluster with 2 worker processes on 127.0.0.1
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as lc,
        distributed.Client(lc) as client,
    ):
        yield client


def test_dask_cluster_gives_the_same_rows(cluster, sequential, template, tmp_path):
    course = _copy(template, tmp_path / "course", students=("solution", "wrong"))
    rows = parallel.Coordinator(course, A1, parallel.DaskBackend(cluster), progress=False).run()
    assert {r.student: r.status for r in rows} == {"solution": "needs a person", "wrong": "needs a person"}
    expected = _all_rows(sequential)
    assert _all_rows(course) == {s: expected[s] for s in ("solution", "wrong")}
    assert len({r.worker for r in rows}) >= 1 and all(r.worker.startswith("tcp://127.0.0.1") for r in rows)


def die_once(bundle, student, files):
    """Kills its Dask worker process the first time it runs (a marker file in the course copy says so)."""
    marker = Path(bundle.source_files["marker"][0].decode())
    if not marker.exists():
        marker.write_text("died")
        os._exit(1)
    return parallel.Outcome(student, True, rows={"marker": True}, worker=parallel._worker_name())


def test_dask_worker_that_dies_loses_no_submission(cluster, tmp_path, monkeypatch):
    marker = tmp_path / "died-once"
    bundle = parallel.Bundle(A1, b"", b"", {}, {"marker": (str(marker).encode(), 0o644)})
    backend = parallel.DaskBackend(cluster, grade=die_once)
    backend.start(bundle)
    try:
        outcome = backend.submit("solution", {}).result(timeout=300)
    except Exception as err:  # noqa: BLE001
        # Dask re-runs a lost task itself unless its scattered input died with the worker; then the coordinator
        # resubmits (without using up an attempt) and the backend scatters the shared data again.
        assert parallel._lost_by_the_cluster(err), err
        outcome = backend.submit("solution", {}).result(timeout=300)
    assert marker.exists() and outcome.ok and outcome.rows == {"marker": True}
