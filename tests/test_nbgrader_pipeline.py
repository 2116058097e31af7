"""The nbgrader cycle end to end: release, hand-in, pre-grading check, autograde, feedback, grades.

Everything runs in scratch copies of the course folder (no JupyterHub, no network):

* for EVERY assignment under solutions/ (parametrised): the committed release equals a fresh one,
  student copies leak nothing, the points add up to the stated total, the notebook follows the
  authoring conventions, the instructor solution earns full marks, the untouched release earns zero
  without crashing the grader, and the feedback shows no hidden test;
* for A1 (the smallest) a matrix of hostile hand-ins, graded in one ``nbgrader autograde`` call:
  wrong answers, a cell that raises, an endless loop, an edited test cell, a deleted cell, a huge
  print, a missing module, a pasted duplicate of a graded cell and a notebook whose metadata was
  stripped (cells pasted into a fresh Colab notebook). ``tools.grading check`` must name each problem
  submission and ``repair`` must fix it before grading.

nbgrader 0.9 behaviours designed around: ``nbgrader validate`` exits 0 even when tests fail (so these
tests assert scores, never exit codes of validation); the default feedback shows hidden tests (our
config adds tools.grading.HideHiddenTests); stripped metadata, duplicated ids and deleted test cells
go unnoticed by nbgrader (tools.grading check/repair).
"""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import nbformat
import pytest
from nbgrader_helpers import (
    POINTS_RE,
    ROOT,
    cell_index,
    course_copy,
    edit,
    grade_round,
    hidden_lines,
    html_text,
    leaking,
    points,
    release_nb,
    run,
    scores_table,
    solved,
    source_notebooks,
    stated_total,
    strip_like_colab,
    write_submission,
)

from tools import grading, markers, release

ASSIGNMENTS = release.discover(ROOT)
if os.environ.get("NBGRADER_TEST_ASSIGNMENTS"):  # e.g. =A1_backprop,A2_convolution while working on those
    ASSIGNMENTS = [a for a in ASSIGNMENTS if a in os.environ["NBGRADER_TEST_ASSIGNMENTS"].split(",")]
MATRIX = "A1_backprop"  # the hostile hand-ins run on the smallest assignment only
MATRIX_CELL_TIMEOUT = 20  # s per cell for A1's round: the endless loop costs this much
WORKERS = int(os.environ.get("NBGRADER_TEST_WORKERS", "2"))


def _single_notebook(assignment: str) -> str:
    stems = list(source_notebooks(assignment))
    assert stems, f"solutions/{assignment} holds no notebook"
    return stems[0]


# ------------------------------------------------------------------------------------------------
# The hostile hand-ins for A1: (how to build it from the solved notebook, test cells expected to fail,
# problem codes `tools.grading check` must report before repair)
# ------------------------------------------------------------------------------------------------


def _wrong(nb):  # sigmoid_backward forgets (1 - s): fails a visible test; ReLU uses >= 0: only hidden tests see it
    edit(nb, "sigmoid", "dx = dout * s * (1.0 - s)", "dx = dout * s")
    return edit(nb, "relu", "dx = dout * (x > 0)", "dx = dout * (x >= 0)")


def _raises(nb):
    return edit(
        nb, "sigmoid", "def sigmoid_forward", "raise RuntimeError('left-over debugging stop')\n\n\ndef sigmoid_forward"
    )


def _loop(nb):
    return edit(
        nb,
        "hyperparameters",
        "hidden_dim = ",
        "import time\nwhile True:   # waits for something that never happens\n    time.sleep(0.05)\nhidden_dim = ",
    )


def _edited_test(nb):  # a broken sigmoid_backward, and the test cell replaced by a fake success message
    edit(nb, "sigmoid", "dx = dout * s * (1.0 - s)", "dx = dout * s")
    nb.cells[cell_index(nb, "test_sigmoid")].source = 'print("Visible tests passed.")'
    return nb


def _deleted_cell(nb):
    del nb.cells[cell_index(nb, "test_softmax_loss")]
    return nb


def _huge_print(nb):
    return edit(
        nb,
        "relu",
        "def relu_backward",
        "print('x' * 3_000_000)\nfor i in range(3000):\n    print('debug line', i)\n\n\ndef relu_backward",
    )


def _bad_import(nb):
    return edit(
        nb, "softmax_loss", "def softmax_loss", "import torch_magic_helpers   # not a real module\n\n\ndef softmax_loss"
    )


def _duplicate(nb):  # "Duplicate cell" in Jupyter copies the nbgrader metadata too
    i = cell_index(nb, "affine_forward")
    copy = nbformat.from_dict(nb.cells[i])
    copy["id"] = "pasted01"
    nb.cells.insert(cell_index(nb, "test_affine_forward") + 1, copy)
    return nb


HOSTILE = {
    "solution": (None, set(), set()),
    "wrong": (_wrong, {"test_sigmoid", "test_relu"}, set()),
    "raises": (_raises, {"test_sigmoid"}, set()),
    "loop": (_loop, {"test_training"}, set()),
    "edited": (_edited_test, {"test_sigmoid"}, {"edited-locked"}),
    "deleted": (_deleted_cell, set(), {"missing-cell"}),
    "hugeprint": (_huge_print, set(), set()),
    "badimport": (_bad_import, {"test_softmax_loss", "test_two_layer_loss", "test_training"}, set()),
    "duplicate": (_duplicate, set(), {"duplicate-id"}),
    "stripped": (strip_like_colab, set(), {"metadata-stripped"}),
    "leaker": (
        lambda nb: leaking(nb, nbformat.read(next(iter(source_notebooks(MATRIX).values())), as_version=4)),
        set(),
        set(),
    ),  # prints hidden tests into its outputs; markers in its own cells
}
MANUAL_CELL = "written_backprop_cost"


# ------------------------------------------------------------------------------------------------
# Fixtures: one fresh release, then one grading round per assignment (run side by side)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def released(tmp_path_factory) -> Path:
    """A scratch course whose assignments/ and gradebook.db were regenerated by `python -m tools.release`."""
    course = release.copy_course(ROOT, tmp_path_factory.mktemp("nbgrader") / "released", with_release=False)
    result = run(["tools.release"], course)
    assert result.returncode == 0, f"python -m tools.release failed:\n{result.output[-4000:]}"
    return course


def _matrix_round(template: Path, tmp: Path):
    course = course_copy(tmp, f"grade-{MATRIX}", template)
    stem = _single_notebook(MATRIX)
    for student, (mutate, _, _) in HOSTILE.items():
        nb = solved(course, MATRIX, stem)
        write_submission(course, student, MATRIX, stem, mutate(nb) if mutate else nb)
    write_submission(course, "untouched", MATRIX, stem, release_nb(course, MATRIX, stem))
    return grade_round(
        course,
        MATRIX,
        cell_timeout=MATRIX_CELL_TIMEOUT,
        manual={("solution", MANUAL_CELL): 4},
        cli=True,
        threads=1 if WORKERS > 1 else None,
    )


def _generic_round(template: Path, tmp: Path, assignment: str):
    course = course_copy(tmp, f"grade-{assignment}", template)
    for stem in source_notebooks(assignment):
        write_submission(course, "solution", assignment, stem, solved(course, assignment, stem))
        write_submission(course, "untouched", assignment, stem, release_nb(course, assignment, stem))
    return grade_round(course, assignment, threads=1 if WORKERS > 1 else None)


@pytest.fixture(scope="session")
def rounds(released, tmp_path_factory):
    """assignment -> Future of its grading round (tests wait only for the rounds they need)."""
    tmp = tmp_path_factory.mktemp("rounds")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, WORKERS))
    futures = {MATRIX: pool.submit(_matrix_round, released, tmp)} if MATRIX in ASSIGNMENTS else {}
    for assignment in ASSIGNMENTS:
        if assignment != MATRIX:
            futures[assignment] = pool.submit(_generic_round, released, tmp, assignment)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def _round(rounds, assignment):
    rnd = rounds[assignment].result()
    assert rnd.scores, f"no scores for {assignment}:\n{rnd.log()}"
    return rnd


# ------------------------------------------------------------------------------------------------
# Release
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_committed_release_matches_a_fresh_one(released, rounds, assignment):
    # (asking for `rounds` starts the grading rounds in the background while the next tests run)
    diffs = release.compare_trees(released / "assignments" / assignment, ROOT / "assignments" / assignment)
    assert diffs == [], (
        "assignments/ is stale: run `make release` (python -m tools.release) and commit it\n" + "\n".join(diffs)
    )


def test_no_release_without_a_source():
    folders = sorted(p.name for p in (ROOT / "assignments").iterdir() if p.is_dir())
    assert folders == release.discover(ROOT), "assignments/ must hold exactly one folder per solutions/ assignment"


# ------------------------------------------------------------------------------------------------
# Static checks of every assignment (no nbgrader run)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_points_add_up_to_the_stated_total(assignment):
    for stem, path in source_notebooks(assignment).items():
        nb = nbformat.read(path, as_version=4)
        total = stated_total(nb)
        assert total is not None, f"{stem}: state the total in the introduction as **Total: N points**"
        pts = points(nb)
        assert sum(p["points"] for p in pts.values()) == pytest.approx(total), (
            f"{stem}: cells carry {sum(p['points'] for p in pts.values())} points, the introduction says {total}"
        )
        assert any(p["manual"] for p in pts.values()), f"{stem}: needs at least one answer graded by hand"
        assert any(not p["manual"] for p in pts.values()), f"{stem}: needs autograded test cells"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_assignment_follows_the_authoring_conventions(assignment):
    for stem, path in source_notebooks(assignment).items():
        nb = nbformat.read(path, as_version=4)
        ids = [grading.grade_id(c) for c in nb.cells if grading.grade_id(c)]
        assert len(ids) == len(set(ids)), f"{stem}: duplicated grade_id"
        code = [c for c in nb.cells if c.cell_type == "code" and "colab-setup" not in c.metadata.get("tags", [])]
        assert f'setup_notebook("{stem}")' in code[0].source, f"{stem}: first code cell must call setup_notebook"
        assert grading.is_locked_cell(code[0]), f"{stem}: the setup cell must be a locked read-only cell"
        first_md = next(c for c in nb.cells if c.cell_type == "markdown" and c.source.lstrip().startswith("#"))
        assert grading.is_locked_cell(first_md), f"{stem}: the introduction must be locked"
        assert any(
            "graded" in c.source.lower() for c in nb.cells if c.cell_type == "markdown" and grading.is_locked_cell(c)
        )
        for cell in nb.cells:
            m = grading.nbgrader_meta(cell)
            if m.get("grade") and not m.get("solution"):  # autograded test cell
                first = cell.source.split("\n", 1)[0]
                stated = POINTS_RE.search(first)
                assert first.startswith("# Tests") and stated, (
                    f"{stem}/{m['grade_id']}: first line must be '# Tests: <what> (N points...'"
                )
                assert float(stated.group(1)) == pytest.approx(float(m["points"])), (
                    f"{stem}/{m['grade_id']}: points in the first line differ from the metadata"
                )
                visible = cell.source.split(grading.BEGIN_HIDDEN)[0]
                assert grading.BEGIN_HIDDEN in cell.source, f"{stem}/{m['grade_id']}: needs hidden tests"
                assert "assert" in visible, f"{stem}/{m['grade_id']}: needs visible tests"
            elif m.get("grade") and m.get("solution"):  # written answer: its question states the points
                index = nb.cells.index(cell)
                question = next(c for c in reversed(nb.cells[:index]) if c.cell_type == "markdown")
                stated = POINTS_RE.search(question.source)
                assert stated and float(stated.group(1)) == pytest.approx(float(m["points"])), (
                    f"{stem}/{m['grade_id']}: the question before it must say '(N points, graded by hand)'"
                )
            elif m.get("solution") and cell.cell_type == "code":
                assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source, (
                    f"{stem}/{m['grade_id']}: wrap the solution in ### BEGIN SOLUTION / ### END SOLUTION"
                )


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_committed_student_copy_leaks_nothing_and_has_stubs(assignment):
    assert release.check_leaks(ROOT, [assignment]) == []
    for stem in source_notebooks(assignment):
        nb = nbformat.read(ROOT / "assignments" / assignment / f"{stem}.ipynb", as_version=4)
        for cell in nb.cells:
            m = grading.nbgrader_meta(cell)
            if m.get("solution") and cell.cell_type == "code":
                assert "raise NotImplementedError()" in cell.source, f"{m['grade_id']}: stub missing"
            if m.get("solution") and cell.cell_type == "markdown":
                assert cell.source.strip() == "YOUR ANSWER HERE"


def test_leak_scanner_catches_a_leak():
    src_path = next(iter(source_notebooks(MATRIX).values()))
    source = nbformat.read(src_path, as_version=4)
    student = nbformat.read(ROOT / "assignments" / MATRIX / src_path.name, as_version=4)
    i = cell_index(student, "test_affine_forward")
    student.cells[i].source = source.cells[cell_index(source, "test_affine_forward")].source
    found = release.leaks(source, student)
    assert any("BEGIN HIDDEN TESTS" in f for f in found) and any("reveals the line" in f for f in found)


def test_nbgrader_config_sets_a_cell_timeout_and_the_folders():
    from traitlets.config.loader import PyFileConfigLoader

    saved = os.environ.pop("NBGRADER_CELL_TIMEOUT", None)
    try:
        cfg = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    finally:
        if saved is not None:
            os.environ["NBGRADER_CELL_TIMEOUT"] = saved
    assert cfg.CourseDirectory.source_directory == "solutions"
    assert cfg.CourseDirectory.release_directory == "assignments"
    assert 0 < cfg.Execute.timeout <= 600 and cfg.Execute.interrupt_on_timeout
    assert grading.HideHiddenTests in cfg.GenerateFeedback.preprocessors
    assert grading.LimitOutputChars in cfg.Autograde.autograde_preprocessors
    gitignored = (ROOT / ".gitignore").read_text().split()
    for folder in ("/submitted/", "/autograded/", "/feedback/", "/gradebook.db", "/nbgrader_work/"):
        assert folder in gitignored


# ------------------------------------------------------------------------------------------------
# tools.grading units (no nbgrader run)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate",
    [strip_like_colab, _duplicate, _deleted_cell, _edited_test],
    ids=["stripped", "duplicate", "deleted", "edited"],
)
def test_repair_restores_the_graded_cells(tmp_path, mutate):
    course = release.copy_course(ROOT, tmp_path / "course")
    stem = _single_notebook(MATRIX)
    reference = solved(course, MATRIX, stem)
    repaired, changes = grading.repair_notebook(release_nb(course, MATRIX, stem), mutate(solved(course, MATRIX, stem)))
    assert changes
    want = [(grading.grade_id(c), grading.nbgrader_meta(c)) for c in reference.cells if grading.grade_id(c)]
    got = [(grading.grade_id(c), grading.nbgrader_meta(c)) for c in repaired.cells if grading.grade_id(c)]
    assert got == want
    release_cells = {
        grading.grade_id(c): c.source for c in release_nb(course, MATRIX, stem).cells if grading.grade_id(c)
    }
    for cell in repaired.cells:
        gid = grading.grade_id(cell)
        if gid and grading.is_locked_cell(cell):
            assert cell.source == release_cells[gid]
    issues, _ = grading.diagnose(release_nb(course, MATRIX, stem), repaired)
    assert issues == []


def test_repair_refuses_to_guess(tmp_path):
    course = release.copy_course(ROOT, tmp_path / "course")
    stem = _single_notebook(MATRIX)
    nb = strip_like_colab(solved(course, MATRIX, stem))
    i = next(i for i, c in enumerate(nb.cells) if c.source.startswith("A model answer"))
    nb.cells.insert(i, nbformat.v4.new_markdown_cell("Some notes to myself."))  # two candidates for the answer
    issues, _ = grading.diagnose(release_nb(course, MATRIX, stem), nb)
    assert any(i.code == "ambiguous" and not i.repairable for i in issues), issues
    with pytest.raises(ValueError, match="not safely repairable"):
        grading.repair_notebook(release_nb(course, MATRIX, stem), nb)


def test_collect_accepts_colab_downloads(tmp_path):
    course = release.copy_course(ROOT, tmp_path / "course")
    stem = _single_notebook(MATRIX)
    downloads = tmp_path / "downloads"
    (downloads / "carol").mkdir(parents=True)
    nbformat.write(release_nb(course, MATRIX, stem), downloads / "alice.ipynb")
    nbformat.write(release_nb(course, MATRIX, stem), downloads / "carol" / f"Copy of {stem} (1).ipynb")
    result = run(["tools.grading", "collect", MATRIX, str(downloads)], course)
    assert result.returncode == 0, result.output
    for student in ("alice", "carol"):
        assert (course / "submitted" / student / MATRIX / f"{stem}.ipynb").exists()
    findings = grading.check_submissions(course / "submitted", MATRIX, course)
    assert [f.label for f in findings] == [f"alice/{MATRIX}/{stem}", f"carol/{MATRIX}/{stem}"]
    assert all(not f.issues for f in findings), [str(i) for f in findings for i in f.issues]


def test_misnamed_notebook_is_reported_and_renamed(tmp_path):
    course = release.copy_course(ROOT, tmp_path / "course")
    stem = _single_notebook(MATRIX)
    write_submission(course, "bob", MATRIX, f"{stem} (1)", solved(course, MATRIX, stem))
    [finding] = grading.check_submissions(course / "submitted", MATRIX, course)
    assert [i.code for i in finding.issues] == ["misnamed"]
    log, leftover = grading.repair_submissions(course / "submitted", MATRIX, course, backup_dir=tmp_path / "backup")
    assert not leftover and any("renamed" in line for line in log)
    assert [p.name for p in (course / "submitted" / "bob" / MATRIX).iterdir()] == [f"{stem}.ipynb"]
    assert all(not f.issues for f in grading.check_submissions(course / "submitted", MATRIX, course))


def test_hidden_test_filter_hides_code_and_tracebacks():
    cell = nbformat.v4.new_code_cell(
        "# Tests: f (1 point)\nassert f(1) == 2\n### BEGIN HIDDEN TESTS\n"
        "assert f(21) == 42, 'f fails on another input'\n### END HIDDEN TESTS"
    )
    cell.outputs = [
        nbformat.v4.new_output(
            "error",
            ename="AssertionError",
            evalue="f fails on another input",
            traceback=[
                "\x1b[31mAssertionError\x1b[39m Traceback",
                "Cell In[4], line 4\n----> 4 assert f(21) == 42, 'f fails'",
            ],
        ),
        nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1),
    ]
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "t", "points": 1, "solution": False, "locked": True}
    out, _ = grading.HideHiddenTests().preprocess_cell(cell, {}, 0)
    assert "f(21)" not in out.source and grading.HIDDEN_NOTE in out.source
    assert out.outputs[0]["traceback"][0] == "AssertionError: f fails on another input"
    assert "hidden tests ran" in out.outputs[0]["traceback"][1]
    assert all("f(21)" not in line for line in out.outputs[0]["traceback"])
    assert len(out.outputs) == 1


# ------------------------------------------------------------------------------------------------
# Grading: every assignment
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_gets_full_marks_and_untouched_release_gets_zero(rounds, assignment):
    rnd = _round(rounds, assignment)
    pts = {}
    for path in source_notebooks(assignment).values():
        pts.update(points(nbformat.read(path, as_version=4)))
    auto = sum(p["points"] for p in pts.values() if not p["manual"])
    total = sum(p["points"] for p in pts.values())
    solution, untouched = rnd.scores["solution"], rnd.scores["untouched"]
    expected = total if assignment == MATRIX else auto  # A1's solution also receives its manual grade
    assert solution["score"] == pytest.approx(expected), f"solution: {solution}\n{rnd.log()}"
    assert solution["max_score"] == pytest.approx(total)
    assert not solution["failed"] and not solution["notes"], solution
    assert untouched["score"] == 0 and not untouched["needs_manual"], untouched
    assert not any("not autograded" in n for n in untouched["notes"]), untouched
    assert all(not f.issues for f in rnd.findings), "tools.grading check flags a clean hand-in"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_does_not_reveal_hidden_tests(rounds, assignment):
    rnd = _round(rounds, assignment)
    assert rnd.runs["feedback"].returncode == 0, rnd.runs["feedback"].output[-3000:]
    for stem, path in source_notebooks(assignment).items():
        secret = hidden_lines(nbformat.read(path, as_version=4))
        assert secret, f"{stem} has no hidden tests"
        autograded = (rnd.course / "autograded" / "solution" / assignment / f"{stem}.ipynb").read_text()
        assert any(line in autograded for line in secret), "control: the autograded copy should hold the hidden tests"
        for student in rnd.scores:
            page = rnd.course / "feedback" / student / assignment / f"{stem}.html"
            assert page.exists(), f"no feedback for {student}"
            text = {line.strip() for line in html_text(page).splitlines()}
            shown = sorted(secret & text)
            assert not shown, f"feedback for {student} reveals hidden test lines: {shown[:3]}"
            assert not any("BEGIN HIDDEN TESTS" in line for line in text)
        solution_text = html_text(rnd.course / "feedback" / "solution" / assignment / f"{stem}.html")
        assert grading.HIDDEN_NOTE.lstrip("# ") in solution_text, "the feedback should say that hidden tests ran"


# ------------------------------------------------------------------------------------------------
# Grading: the hostile matrix on A1
# ------------------------------------------------------------------------------------------------


def _matrix(rounds):
    if MATRIX not in ASSIGNMENTS:
        pytest.skip(f"{MATRIX} is not in solutions/")
    return _round(rounds, MATRIX)


def test_precheck_names_every_problem_submission_and_repair_fixes_them(rounds):
    rnd = _matrix(rounds)
    check, repair = rnd.runs["check"], rnd.runs["repair"]
    assert check.returncode == 1, check.output
    stem = _single_notebook(MATRIX)
    for student, (_, _, codes) in HOSTILE.items():
        lines = [line for line in check.output.splitlines() if f"{student}/{MATRIX}/{stem}" in line]
        reported = {
            code
            for code in (
                "edited-locked",
                "missing-cell",
                "duplicate-id",
                "metadata-stripped",
                "metadata-lost",
                "misnamed",
            )
            if any(f"[{code}]" in line for line in lines)
        }
        assert codes <= reported, f"{student}: expected {codes}, check said:\n" + "\n".join(lines)
        if not codes:
            assert lines and all(line.startswith("ok") for line in lines), f"{student}: false alarm:\n" + "\n".join(
                lines
            )
    assert repair.returncode == 0, repair.output
    assert all(not f.issues for f in rnd.findings), [str(i) for f in rnd.findings for i in f.issues]
    backups = list((rnd.course / "nbgrader_work" / "repair-backups").rglob("*.ipynb"))
    assert len(backups) == sum(1 for _, _, codes in HOSTILE.values() if codes)


def test_hostile_submissions_get_the_right_scores(rounds):
    rnd = _matrix(rounds)
    pts = points(nbformat.read(next(iter(source_notebooks(MATRIX).values())), as_version=4))
    auto = {k: v["points"] for k, v in pts.items() if not v["manual"]}
    assert set(rnd.scores) == set(HOSTILE) | {"untouched"}, rnd.log()
    for student, (_, failing, _) in HOSTILE.items():
        row = rnd.scores[student]
        expected = (
            sum(auto.values())
            - sum(auto[g] for g in failing)
            + (pts[MANUAL_CELL]["points"] if student == "solution" else 0)
        )
        assert row["score"] == pytest.approx(expected), f"{student}: {row}"
        assert set(row["failed"]) == failing, f"{student}: {row}"
        if student != "solution":  # their written answer (the model answer text) still waits for a grader
            assert row["needs_manual"] == [MANUAL_CELL], row


def test_feedback_of_a_hand_in_that_prints_hidden_tests_shows_none(rounds):
    """Defence in depth (tools.grading.HideHiddenTests): outputs are filtered, markers never crash feedback."""
    rnd = _matrix(rounds)
    stem = _single_notebook(MATRIX)
    scanner = markers.SecretScanner(hidden_lines(nbformat.read(source_notebooks(MATRIX)[stem], as_version=4)))
    autograded = (rnd.course / "autograded" / "leaker" / MATRIX / f"{stem}.ipynb").read_text()
    assert scanner.found(autograded), "control: the hand-in should print hidden tests into its outputs"
    page = rnd.course / "feedback" / "leaker" / MATRIX / f"{stem}.html"
    assert page.exists(), rnd.runs["feedback"].output[-3000:]
    text = html_text(page)
    assert not scanner.found(text), "the feedback shows hidden-test source"
    assert markers.REDACTED_LINE in text or markers.REDACTED_OUTPUT in text


def test_endless_loop_hits_the_time_limit_and_grading_goes_on(rounds):
    rnd = _matrix(rounds)
    assert any("time limit" in note for note in rnd.scores["loop"]["notes"]), rnd.scores["loop"]
    graded = nbformat.read(
        rnd.course / "autograded" / "loop" / MATRIX / f"{_single_notebook(MATRIX)}.ipynb", as_version=4
    )
    enames = {
        o.get("ename") for c in graded.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    }
    assert enames & {"CellTimeoutError", "KeyboardInterrupt"}, enames


def test_missing_module_and_huge_print_are_handled(rounds):
    rnd = _matrix(rounds)
    assert any("torch_magic_helpers" in note for note in rnd.scores["badimport"]["notes"])
    stem = _single_notebook(MATRIX)
    graded = rnd.course / "autograded" / "hugeprint" / MATRIX / f"{stem}.ipynb"
    assert graded.stat().st_size < 1_000_000, "the huge print was not truncated in the autograded notebook"
    assert "characters cut by the grader" in graded.read_text()
    assert (rnd.course / "feedback" / "hugeprint" / MATRIX / f"{stem}.html").stat().st_size < 2_000_000


def test_grades_export_to_csv(rounds):
    rnd = _matrix(rounds)
    assert rnd.runs["export"].returncode == 0, rnd.runs["export"].output[-2000:]
    grades = grading.read_grades_csv(rnd.course / "nbgrader_work" / "grades.csv")
    for student, row in rnd.scores.items():
        assert grades[(MATRIX, student)] == pytest.approx(row["score"]), student


def test_scores_table_lists_every_graded_submission(rounds, capsys):
    """The report printed at the end of the run has one row per graded submission, with its score."""
    done = [rounds[a].result() for a in ASSIGNMENTS if a in rounds]
    rows = scores_table(done).splitlines()[1:]
    expected = [(rnd.assignment, student, row) for rnd in done for student, row in rnd.scores.items()]
    assert len(rows) == len(expected) > 0
    for assignment, student, row in expected:
        score = f"{row['score']:5.1f}/{row['max_score']:<5.1f}".strip()
        assert any(line.split()[:3] == [assignment, student, score] for line in rows), (assignment, student, rows)
    with capsys.disabled():
        print("\n\nscores of the simulated submissions (tools.grading report)\n" + scores_table(done))
        for rnd in done:
            print(f"{rnd.assignment}: " + ", ".join(f"{name} {r.seconds:.0f} s" for name, r in rnd.runs.items()))
