"""The gradebook: hand-given scores, the per-student report with the real reason of each failure, grade export."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.plugins import CsvExportPlugin

from tools.grading.settings import ROOT
from tools.grading.submissions import grade_id, nbgrader_meta, release_notebooks


def _gradebook(root: Path = ROOT):
    from nbgrader.api import Gradebook

    db = root / "gradebook.db"
    if not db.exists():
        raise FileNotFoundError(f"No gradebook at {db}: run `python -m tools.release` and `nbgrader autograde` first.")
    return Gradebook(f"sqlite:///{db}")


# ------------------------------------------------------------------------------------------------
# Hand-given scores
# ------------------------------------------------------------------------------------------------


class OverrideRefused(ValueError):
    """A hand-given score would replace an autograded test score and ``override`` was not given."""


def manual_cells(assignment: str, root: Path = ROOT) -> set[str]:
    """grade_ids of the cells graded by hand (written answers: ``grade`` and ``solution`` both set)."""
    return {
        grade_id(c)
        for path in release_notebooks(assignment, root).values()
        for c in nbformat.read(path, as_version=4).cells
        if nbgrader_meta(c).get("grade") and nbgrader_meta(c).get("solution")
    }


def set_manual_grade(
    assignment: str,
    student: str,
    cell_id: str,
    points: float,
    comment: str | None = None,
    root: Path = ROOT,
    override: bool = False,
) -> str:
    """Record a hand-given score (and comment) for one graded cell of one student.

    A score for an autograded test cell replaces the sealed verdict's score: that needs ``override=True``
    (else :class:`OverrideRefused` says what would be replaced).
    """
    from nbgrader.api import MissingEntry

    with _gradebook(root) as gb:
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            raise KeyError(f"No autograded submission of {assignment} by {student}; run `make grade` first.") from None
        for notebook in submission.notebooks:
            grade = next((g for g in notebook.grades if g.name == cell_id), None)
            if grade is None:
                continue
            if not 0 <= points <= grade.max_score:
                raise ValueError(f"{cell_id} is worth at most {grade.max_score:g} points; got {points}.")
            autograded = grade.auto_score is not None and grade.cell.cell_type == "code"
            if autograded and not override and float(points) != float(grade.score):
                raise OverrideRefused(
                    f"{cell_id} is an autograded test cell: {student} has {grade.score:g} / {grade.max_score:g} from "
                    f"the sealed test verdict. Setting {points:g} replaces that score; add --override if you mean it."
                )
            grade.manual_score = float(points)
            grade.needs_manual_grade = False
            if comment is not None:
                entry = next((c for c in notebook.comments if c.name == cell_id), None)
                if entry is not None:
                    entry.manual_comment = comment
            gb.db.commit()
            what = " (overrides the autograded score)" if autograded else ""
            return f"{student}/{assignment}/{notebook.name}: {cell_id} = {points:g} / {grade.max_score:g}{what}"
        names = sorted(g.name for n in submission.notebooks for g in n.grades)
        raise KeyError(f"{assignment} has no graded cell {cell_id!r}; graded cells: {', '.join(names)}")


# ------------------------------------------------------------------------------------------------
# The report: scores, what needs a person, and the real reason of each failure
# ------------------------------------------------------------------------------------------------

# ename of an error output -> what it means (tools/autograde writes these; see runner.py and harness.py)
_REASONS = {
    "CellTimeoutError": "time limit",
    "KeyboardInterrupt": "raised KeyboardInterrupt itself",
    "DeadKernelError": "the process died (os._exit, a crash or a resource limit)",
    "GradingProtocolError": "broke the grading protocol",
    "GradingTampering": "tampered with grading",
    "NotImplementedError": "not done (the NotImplementedError stub is still there)",
}


@dataclass
class StudentReport:
    student: str
    score: float
    max_score: float
    needs_manual: list[str]
    failed: list[str]
    notes: list[str]
    reasons: dict[str, str] = field(default_factory=dict)  # failed test cell -> why
    not_graded: list[str] = field(default_factory=list)  # cells without a score, and why not a person's job


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failure_reason(outputs: list) -> str:
    """Why a cell failed, from its error output: time limit, KeyboardInterrupt, dead process, assertion, ..."""
    errors = [o for o in outputs if o.get("output_type") == "error"]
    stderr = any(o.get("output_type") == "stream" and o.get("name") == "stderr" for o in outputs)
    if not errors:
        return "no error shown" + (" (it wrote to stderr, which never fails a test)" if stderr else "")
    ename, evalue = str(errors[-1].get("ename", "")), str(errors[-1].get("evalue", ""))
    if ename == "GradingFailure":  # no verdict: the reason is in the message
        return _short(evalue.removeprefix("no verdict: "))
    if ename == "CellTimeoutError":
        return "time limit: " + _short(evalue, 70) if evalue else "time limit"
    if ename in _REASONS:
        return _REASONS[ename]
    if ename == "AssertionError":
        return "assertion: " + (_short(evalue) if evalue else "(no message)")
    if ename == "NameError":  # the cell that should have defined it failed or was not run
        return f"NameError: {_short(evalue, 60)} (an earlier cell failed)"
    return f"{ename}: {_short(evalue)}" if evalue else ename


def _cells_by_id(nb) -> dict[str, object]:
    return {grade_id(c): c for c in nb.cells if grade_id(c)}


def report(assignment: str, root: Path = ROOT) -> list[StudentReport]:
    """Per student: score, written answers still to grade by hand, failed test cells with the reason, notes."""
    rows = []
    release = {stem: nbformat.read(path, as_version=4) for stem, path in release_notebooks(assignment, root).items()}
    tests = {
        grade_id(c)
        for nb in release.values()
        for c in nb.cells
        if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")
    }
    with _gradebook(root) as gb:
        for submission in sorted(gb.find_assignment(assignment).submissions, key=lambda s: s.student.id):
            student = submission.student.id
            row = StudentReport(student, float(submission.score), float(submission.max_score), [], [], [])
            for notebook in submission.notebooks:
                path = root / "autograded" / student / assignment / f"{notebook.name}.ipynb"
                graded_nb = nbformat.read(path, as_version=4) if path.exists() else None
                if graded_nb is None:
                    row.notes.append(f"{notebook.name}: not autograded (nbgrader failed on it; run `check`)")
                    row.not_graded.extend(g.name for g in notebook.grades)
                    continue
                cells = _cells_by_id(graded_nb)
                errors = [
                    o
                    for c in graded_nb.cells
                    if c.cell_type == "code"
                    for o in c.get("outputs", [])
                    if o.get("output_type") == "error"
                ]
                names = {o.get("ename") for o in errors}
                died = "DeadKernelError" in names
                for grade in notebook.grades:
                    if grade.name in tests:
                        if grade.manual_score is None and grade.auto_score is None:
                            row.not_graded.append(grade.name)  # no verdict recorded: not a person's job
                        elif grade.manual_score is None and grade.auto_score < grade.max_score:
                            row.failed.append(grade.name)
                            cell = cells.get(grade.name)
                            row.reasons[grade.name] = failure_reason(cell.get("outputs", []) if cell else [])
                    elif grade.needs_manual_grade:
                        row.needs_manual.append(grade.name)
                if "CellTimeoutError" in names:
                    row.notes.append("a cell hit the time limit (endless loop or far too slow)")
                if "KeyboardInterrupt" in names:
                    row.notes.append("the student's code raised KeyboardInterrupt itself (not a time limit)")
                missing_modules = sorted(
                    {
                        m.group(1)
                        for o in errors
                        if o.get("ename") == "ModuleNotFoundError"
                        for m in [re.search(r"'([^']+)'", str(o.get("evalue")))]
                        if m
                    }
                )
                if missing_modules:
                    row.notes.append("imports a missing module: " + ", ".join(missing_modules))
                if died:
                    row.notes.append("the process died in a cell (os._exit, a crash or a resource limit)")
            rows.append(row)
    return rows


def format_report(assignment: str, rows: list[StudentReport]) -> str:
    """One block per student: the score, then one line per thing to know (failed test and why, hand grading, notes)."""
    width = max([len("student")] + [len(r.student) for r in rows])
    lines = [f"{assignment}: {len(rows)} submissions", f"{'student':<{width}}  {'score':>9}"]
    for r in rows:
        bits = [f"to grade by hand: {', '.join(r.needs_manual)}"] if r.needs_manual else []
        bits += [f"failed {g}: {r.reasons.get(g, 'failed')}" for g in r.failed]
        if r.not_graded:
            bits.append("no score (not for a person): " + ", ".join(r.not_graded))
        bits += [f"note: {n}" for n in r.notes]
        head = f"{r.student:<{width}}  {r.score:4.1f}/{r.max_score:<4.1f}"
        lines.append(f"{head}  {bits[0]}" if bits else head)
        lines.extend(f"{'':<{len(head)}}  {bit}" for bit in bits[1:])
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Grade export
# ------------------------------------------------------------------------------------------------


def collected_assignments(gradebook) -> list[str]:
    """Assignments with at least one submission in the gradebook (released and collected)."""
    return [a.name for a in gradebook.assignments if a.submissions]


class CollectedCsvExport(CsvExportPlugin):
    """nbgrader's CSV export, limited to assignments someone handed in (no 0/34 rows for one nobody did).

    Students who handed in nothing for an assignment that others handed in still get a 0 row. An explicit
    ``--assignment`` list is respected as given.
    """

    def export(self, gradebook) -> None:
        if not self.assignment:
            self.assignment = collected_assignments(gradebook) or ["(none collected yet)"]
        return super().export(gradebook)


def read_grades_csv(path: Path) -> dict[tuple[str, str], float]:
    """{(assignment, student): score} from ``nbgrader export``'s CSV."""
    with open(path, newline="") as fh:
        return {(row["assignment"], row["student_id"]): float(row["score"]) for row in csv.DictReader(fh)}
