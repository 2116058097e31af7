"""Grading helpers around nbgrader: collect, pre-grading check and repair, manual grades, score report.

    python -m tools.grading collect ASSIGNMENT DOWNLOADS   # put downloaded .ipynb files where nbgrader looks
                                                           # (newest of several; --force to replace collected ones)
    python -m tools.grading check [--assignment A]         # report every submission nbgrader would mis-grade
    python -m tools.grading repair [--assignment A]        # fix what can be fixed safely (backups kept)
    nbgrader autograde ASSIGNMENT                          # (nbgrader itself)
    python -m tools.grading manual-grade ASSIGNMENT STUDENT GRADE_ID POINTS [--comment TEXT]
    python -m tools.grading report ASSIGNMENT              # scores, timeouts, crashes, cells still to grade

Why a pre-grading check: nbgrader 0.9 identifies graded cells only by the metadata attached to them.
A notebook whose metadata was stripped (cells pasted into a fresh Colab notebook) scores 0 with no
warning or makes autograde crash; a pasted duplicate of a graded cell makes autograde fail for that
student with a misleading KeyError; a deleted test cell loses its points silently; an edited test cell
is quietly restored. ``check`` names every such submission, and ``repair`` re-attaches the metadata by
matching the submitted cells to the released notebook (by id, then identical source, then position and
similarity), restores locked cells, drops duplicated ids and re-inserts deleted cells.

This module also holds the nbgrader plug-ins that ``nbgrader_config.py`` installs: ``HideHiddenTests``
(feedback never shows hidden tests) and ``LimitOutputChars`` (a huge print cannot bloat the gradebook).
"""

from __future__ import annotations

import argparse
import copy
import csv
import difflib
import json
import re
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import GetGrades, NbGraderPreprocessor
from traitlets import Integer, Unicode

from tools import collect as _collect
from tools.markers import ANSI as _ANSI
from tools.markers import (  # noqa: F401 (re-exported)
    BEGIN_HIDDEN,
    END_HIDDEN,
    REDACTED_LINE,
    REDACTED_OUTPUT,
    SOLUTION_MARKERS,
    SecretScanner,
    canonical,
    hidden_test_lines,
)
from tools.markers import split_hidden as _split_hidden

ROOT = Path(__file__).resolve().parents[1]
CELL_TIMEOUT_S = 120  # per cell, while autograding (fast mode needs a few seconds per cell)
MAX_OUTPUT_CHARS = 20_000  # per output, in the autograded notebook and in the feedback
HIDDEN_NOTE = "# (hidden tests: the grader ran further checks here; they are not shown)"


# ================================================================================================
# nbgrader plug-ins (referenced from nbgrader_config.py)
# ================================================================================================


def _truncate(text: str, limit: int) -> str:
    if limit < 0 or len(text) <= limit:
        return text
    head, tail = text[: limit // 2], text[-limit // 4 :]
    return f"{head}\n... [{len(text) - len(head) - len(tail):,} characters cut by the grader] ...\n{tail}"


def _limit_outputs(cell, limit: int) -> None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            output["text"] = _truncate(
                "".join(output["text"]) if isinstance(output["text"], list) else output["text"], limit
            )
        elif output.get("output_type") in ("execute_result", "display_data"):
            for mime, value in list(output.get("data", {}).items()):
                if isinstance(value, str) and (mime.startswith("text/") or mime.endswith("json")):
                    output["data"][mime] = _truncate(value, limit)
        elif output.get("output_type") == "error":
            output["evalue"] = _truncate(str(output.get("evalue", "")), limit)


class LimitOutputChars(NbGraderPreprocessor):
    """Autograde step: cut every text output to ``max_chars`` (nbgrader's LimitOutput only counts lines)."""

    max_chars = Integer(MAX_OUTPUT_CHARS, help="longest text output kept, in characters (-1: no limit)").tag(
        config=True
    )

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            _limit_outputs(cell, self.max_chars)
        return cell, resources


def split_hidden(source: str, note: str = HIDDEN_NOTE) -> tuple[str, set[int]]:
    """Return (source without hidden test regions, 1-based line numbers that were hidden).

    Each region, markers included, is replaced by one comment line (indented like the marker).
    Never raises: markers anywhere in a student cell are read as tools.markers.classify explains.
    """
    return _split_hidden(source, note)


# ------------------------------------------------------------------------------------------------
# Hidden-test source in outputs (a cell that prints IPython's `In`, `_ih`, a traceback, ...)
# ------------------------------------------------------------------------------------------------


def _instructor_cells(nb) -> dict:
    """The cells of an autograded notebook that come from the instructor (locked test and read-only
    cells, restored by nbgrader); student cells must not decide what counts as a secret."""
    cells = []
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader")
        if isinstance(meta, dict) and meta.get("grade_id") and not meta.get("solution"):
            cells.append(cell)
    return {"cells": cells}


def assignment_secrets(nb, resources: dict | None = None, root: Path = ROOT) -> set[str]:
    """Hidden-test lines that must never reach feedback for ``nb``: those of its own (restored) test
    cells, plus those of the instructor notebook solutions/<assignment>/<notebook>.ipynb if there, plus
    the hidden-test markers themselves."""
    secrets = hidden_test_lines(_instructor_cells(nb)) | {BEGIN_HIDDEN, END_HIDDEN}
    info = (resources or {}).get("nbgrader", {})
    assignment, notebook = info.get("assignment"), info.get("notebook")
    if assignment and notebook:
        source = root / "solutions" / assignment / f"{notebook}.ipynb"
        if source.exists():
            secrets |= hidden_test_lines(nbformat.read(source, as_version=4))
    return secrets


def _error_line(traceback: list[str]) -> int | None:
    """Line number of the executing cell in an IPython traceback ('Cell In[7], line 12')."""
    for entry in traceback:
        match = re.search(r"(?:Cell In\s*\[\s*\d*\s*\]|<ipython-input-[^>]*>),\s*line\s+(\d+)", _ANSI.sub("", entry))
        if match:
            return int(match.group(1))
    return None


class HideHiddenTests(NbGraderPreprocessor):
    """Feedback step: students see that hidden tests ran, and whether they passed, never their code.

    In every cell with a hidden test region the region is replaced by one comment line. Errors in such
    a cell keep only their type and message: a traceback would print the failing line and the lines
    around it. (Messages of hidden asserts must therefore not reveal the test; see docs/instructors.md.)
    In every output of every cell (and in stored widget state), any line that shows a hidden-test line
    of the assignment is removed (SecretScanner): a student cell printing IPython's ``In`` cannot carry
    the hidden tests into the feedback. Markers anywhere in a student cell never make it fail.
    """

    max_output_chars = Integer(MAX_OUTPUT_CHARS, help="longest text output kept, in characters").tag(config=True)
    note = Unicode(HIDDEN_NOTE, help="comment that replaces each hidden test region").tag(config=True)
    course_root = Unicode(str(ROOT), help="course folder whose solutions/ holds the hidden tests").tag(config=True)

    _scanner: SecretScanner | None = None

    def preprocess(self, nb, resources):
        self._scanner = SecretScanner(assignment_secrets(nb, resources, Path(self.course_root)))
        try:
            widgets = nb.metadata.get("widgets")
            if widgets:
                nb.metadata["widgets"] = self._scanner.redact_json(widgets)
            return super().preprocess(nb, resources)
        finally:
            self._scanner = None

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        _limit_outputs(cell, self.max_output_chars)
        scanner = self._scanner
        if scanner is None:  # called on a single cell (tests): its own hidden tests are the secrets
            scanner = SecretScanner(hidden_test_lines({"cells": [cell]}) | {BEGIN_HIDDEN, END_HIDDEN})
        if BEGIN_HIDDEN in cell.source or END_HIDDEN in cell.source:
            cell.source, hidden_lines = split_hidden(cell.source, self.note)
            outputs = []
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    line = _error_line(output.get("traceback", []))
                    where = (
                        "raised while the hidden tests ran"
                        if line is None or line in hidden_lines
                        else "raised by the visible part of this cell"
                    )
                    message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".rstrip(": ")
                    output["traceback"] = [
                        message,
                        f"({where}; the traceback is not shown because this cell has hidden tests)",
                    ]
                elif output.get("output_type") == "execute_result":
                    continue  # could display a value computed by a hidden test
                outputs.append(output)
            cell.outputs = outputs
        for output in cell.get("outputs", []):
            scanner.redact_output(output)
        return cell, resources


FEEDBACK_PREPROCESSORS = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]


# ================================================================================================
# Reading notebooks
# ================================================================================================


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def grade_id(cell) -> str | None:
    return nbgrader_meta(cell).get("grade_id")


def is_graded_cell(cell) -> bool:
    """Any cell nbgrader tracks: solution, autograded test, manually graded answer, task or read-only."""
    m = nbgrader_meta(cell)
    return bool(m.get("grade_id")) and any(m.get(k) for k in ("solution", "grade", "locked", "task"))


def is_locked_cell(cell) -> bool:
    m = nbgrader_meta(cell)
    return bool(m) and not m.get("solution") and bool(m.get("grade") or m.get("locked"))


def release_notebooks(assignment: str, root: Path = ROOT) -> dict[str, Path]:
    folder = root / "assignments" / assignment
    if not folder.is_dir():
        raise FileNotFoundError(
            f"No released assignment {assignment!r} in {folder.parent}. Run `python -m tools.release` first."
        )
    notebooks = {p.stem: p for p in sorted(folder.glob("*.ipynb"))}
    if not notebooks:
        raise FileNotFoundError(f"{folder} holds no notebook; run `python -m tools.release`.")
    return notebooks


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.splitlines(), b.splitlines(), autojunk=False).ratio()


# ================================================================================================
# Matching a submission to its release
# ================================================================================================


@dataclass
class Issue:
    code: str
    message: str
    repairable: bool

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}" + ("" if self.repairable else "  (needs a person)")


@dataclass
class Match:
    """Where each graded release cell is in the submission (None: missing)."""

    pairs: dict[int, int | None] = field(default_factory=dict)  # release index -> submission index
    duplicates: dict[str, list[int]] = field(default_factory=dict)  # grade_id -> unused submission indices
    unknown_ids: list[int] = field(default_factory=list)  # submission cells with foreign ids
    relabelled: list[int] = field(default_factory=list)  # release indices matched without metadata
    ambiguous: list[int] = field(default_factory=list)  # release indices we dared not match


def match_cells(release_cells: list, submitted_cells: list) -> Match:
    """Match every graded release cell to at most one submitted cell, keeping the order."""
    result = Match()
    graded = [i for i, c in enumerate(release_cells) if is_graded_cell(c)]
    release_ids = {grade_id(release_cells[i]) for i in graded}
    by_id: dict[str, list[int]] = {}
    for j, cell in enumerate(submitted_cells):
        gid = grade_id(cell)
        if gid is None:
            continue
        if gid in release_ids:
            by_id.setdefault(gid, []).append(j)
        else:
            result.unknown_ids.append(j)
    used: set[int] = set()

    # pass 1: ids that occur once
    for i in graded:
        js = by_id.get(grade_id(release_cells[i]), [])
        if len(js) == 1:
            result.pairs[i] = js[0]
            used.add(js[0])

    def window(i: int) -> tuple[int, int]:
        """Submission indices strictly between the matches of the neighbouring release cells."""
        lo = max((result.pairs[k] for k in graded if k < i and result.pairs.get(k) is not None), default=-1)
        hi = min(
            (result.pairs[k] for k in graded if k > i and result.pairs.get(k) is not None), default=len(submitted_cells)
        )
        return lo, hi

    # pass 2: ids that occur several times (a pasted copy): keep the copy that sits in order and, for
    # locked cells, is unchanged; the others become ordinary cells
    for i in graded:
        gid = grade_id(release_cells[i])
        js = by_id.get(gid, [])
        if len(js) > 1:
            lo, hi = window(i)
            inside = [j for j in js if lo < j < hi] or js
            same = [j for j in inside if submitted_cells[j].source == release_cells[i].source]
            keep = (same or inside)[0]
            result.pairs[i] = keep
            used.add(keep)
            result.duplicates[gid] = [j for j in js if j != keep]

    free = lambda j: j not in used and (grade_id(submitted_cells[j]) is None or j in result.unknown_ids)  # noqa: E731

    # pass 3: cells without metadata whose source is identical to a locked release cell
    for i in graded:
        if i in result.pairs or not is_locked_cell(release_cells[i]):
            continue
        lo, hi = window(i)
        same = [
            j
            for j in range(lo + 1, hi)
            if free(j)
            and submitted_cells[j].source == release_cells[i].source
            and submitted_cells[j].cell_type == release_cells[i].cell_type
        ]
        if same:
            result.pairs[i] = same[0]
            used.add(same[0])
            result.relabelled.append(i)

    # pass 4: the rest by position and similarity (edited solution cells, edited locked cells)
    for i in graded:
        if i in result.pairs:
            continue
        rel = release_cells[i]
        lo, hi = window(i)
        candidates = [j for j in range(lo + 1, hi) if free(j) and submitted_cells[j].cell_type == rel.cell_type]
        scored = []
        for j in candidates:
            sub = submitted_cells[j].source
            score = _similarity(rel.source, sub)
            if _first_line(rel.source) and _first_line(rel.source) == _first_line(sub):
                score += 1.0
            scored.append((score, j))
        scored.sort(reverse=True)
        choice = None
        if scored and scored[0][0] >= 0.5 and (len(scored) == 1 or scored[0][0] - scored[1][0] >= 0.2):
            choice = scored[0][1]
        elif rel.cell_type == "markdown" and nbgrader_meta(rel).get("solution"):
            # a written answer: its release text is only a stub, so similarity says nothing; accept the
            # single unlabelled markdown cell between its neighbours
            if len(candidates) == 1:
                choice = candidates[0]
            elif len(candidates) > 1:
                result.ambiguous.append(i)
        if choice is not None:
            result.pairs[i] = choice
            used.add(choice)
            result.relabelled.append(i)
        else:
            result.pairs[i] = None
    return result


# ================================================================================================
# Check and repair one notebook
# ================================================================================================


def _describe(cell) -> str:
    m = nbgrader_meta(cell)
    kind = (
        "written answer"
        if m.get("solution") and m.get("grade")
        else "solution cell"
        if m.get("solution")
        else f"test cell ({m.get('points', 0):g} points)"
        if m.get("grade")
        else "read-only cell"
    )
    return f"{kind} '{m.get('grade_id')}'"


def diagnose(release_nb, submitted_nb) -> tuple[list[Issue], Match]:
    """Every problem nbgrader would handle badly, plus the cell matching used to repair them."""
    issues: list[Issue] = []
    rcells, scells = release_nb.cells, submitted_nb.cells
    match = match_cells(rcells, scells)
    graded = [i for i, c in enumerate(rcells) if is_graded_cell(c)]
    n_with_meta = sum(1 for c in scells if grade_id(c))
    if n_with_meta == 0:
        issues.append(
            Issue(
                "metadata-stripped",
                "no cell carries nbgrader metadata (cells copied into a new "
                "notebook, e.g. a fresh Colab notebook); nbgrader would score it 0 or crash",
                repairable=all(match.pairs.get(i) is not None for i in graded),
            )
        )
    elif match.relabelled:
        names = ", ".join(grade_id(rcells[i]) for i in match.relabelled)
        issues.append(
            Issue("metadata-lost", f"cells lost their nbgrader metadata (copied or recreated): {names}", True)
        )
    for gid, extra in match.duplicates.items():
        issues.append(
            Issue(
                "duplicate-id",
                f"grade_id '{gid}' appears {len(extra) + 1} times (a pasted copy of a "
                "graded cell); nbgrader would fail this submission with a KeyError",
                True,
            )
        )
    if match.unknown_ids:
        ids = sorted({grade_id(scells[j]) for j in match.unknown_ids})
        issues.append(Issue("unknown-id", f"cells with ids the release does not have: {', '.join(ids)}", True))
    for i in match.ambiguous:
        issues.append(Issue("ambiguous", f"cannot tell which cell is the {_describe(rcells[i])}", False))
    for i in graded:
        j = match.pairs.get(i)
        rel = rcells[i]
        if j is None:
            if i in match.ambiguous:
                continue
            consequence = (
                "its points would be lost silently"
                if nbgrader_meta(rel).get("grade")
                else "the student's work for it is missing"
            )
            issues.append(Issue("missing-cell", f"{_describe(rel)} was deleted; {consequence}", True))
            continue
        sub = scells[j]
        if sub.cell_type != rel.cell_type:
            issues.append(
                Issue("cell-type", f"{_describe(rel)} was changed from {rel.cell_type} to {sub.cell_type}", True)
            )
        if is_locked_cell(rel) and sub.source != rel.source:
            issues.append(
                Issue("edited-locked", f"{_describe(rel)} was edited (the grader restores the original)", True)
            )
        rm, sm = nbgrader_meta(rel), nbgrader_meta(sub)
        changed = [k for k in ("grade", "solution", "locked", "points", "task") if sm and rm.get(k) != sm.get(k)]
        if changed:
            issues.append(
                Issue("metadata-edited", f"{_describe(rel)} has edited nbgrader fields: {', '.join(changed)}", True)
            )
    return issues, match


def attempted(release_nb, submitted_nb, match: Match) -> tuple[int, int]:
    """(solution cells changed from the release stub, solution cells in the release)."""
    total = done = 0
    for i, cell in enumerate(release_nb.cells):
        if is_graded_cell(cell) and nbgrader_meta(cell).get("solution"):
            total += 1
            j = match.pairs.get(i)
            if j is not None and submitted_nb.cells[j].source != cell.source:
                done += 1
    return done, total


def repair_notebook(release_nb, submitted_nb) -> tuple[object, list[str]]:
    """A repaired copy of ``submitted_nb`` and the list of changes made."""
    nb = copy.deepcopy(submitted_nb)
    issues, match = diagnose(release_nb, nb)
    if any(not issue.repairable for issue in issues):
        raise ValueError("not safely repairable: " + "; ".join(str(i) for i in issues if not i.repairable))
    rcells, changes = release_nb.cells, []
    dropped = {j for js in match.duplicates.values() for j in js} | set(match.unknown_ids)
    for j in sorted(dropped):
        changes.append(
            f"cell {j}: removed duplicated/unknown nbgrader id '{grade_id(nb.cells[j])}' (kept as an ordinary cell)"
        )
        nb.cells[j].metadata.pop("nbgrader", None)
    for i, j in match.pairs.items():
        if j is None:
            continue
        rel, sub = rcells[i], nb.cells[j]
        if sub.cell_type != rel.cell_type:
            sub.cell_type = rel.cell_type
            if rel.cell_type == "code":
                sub.outputs, sub.execution_count = [], None
            else:
                sub.pop("outputs", None)
                sub.pop("execution_count", None)
            changes.append(f"{grade_id(rel)}: cell type restored")
        if is_locked_cell(rel) and sub.source != rel.source:
            sub.source = rel.source
            changes.append(f"{grade_id(rel)}: original source restored")
        if nbgrader_meta(sub) != nbgrader_meta(rel):
            changes.append(f"{grade_id(rel)}: nbgrader metadata restored")
        sub.metadata["nbgrader"] = copy.deepcopy(nbgrader_meta(rel))
        for key in ("editable", "deletable"):
            if key in rel.metadata:
                sub.metadata[key] = rel.metadata[key]
    # re-insert deleted cells after the cell that precedes them in the release (walk backwards so
    # that earlier insertions do not shift later positions)
    position = {i: j for i, j in match.pairs.items() if j is not None}
    missing = [i for i, j in match.pairs.items() if j is None]
    for i in sorted(missing, reverse=True):
        before = [position[k] for k in position if k < i]
        at = (max(before) + 1) if before else 0
        cell = copy.deepcopy(rcells[i])
        cell["id"] = uuid.uuid4().hex[:8]
        nb.cells.insert(at, cell)
        changes.append(f"{grade_id(rcells[i])}: deleted cell re-inserted from the release")
    ids = set()
    for cell in nb.cells:  # nbformat 4.5 wants unique cell ids; pasted cells often share one
        if cell.get("id") in ids or "id" not in cell:
            cell["id"] = uuid.uuid4().hex[:8]
        ids.add(cell["id"])
    if nb.nbformat_minor < 5:
        nb.nbformat_minor = 5
    if "kernelspec" not in nb.metadata and "kernelspec" in release_nb.metadata:
        nb.metadata["kernelspec"] = copy.deepcopy(release_nb.metadata["kernelspec"])
        changes.append("kernelspec restored")
    nbformat.validate(nb)
    return nb, changes


# ================================================================================================
# Whole submission folders
# ================================================================================================


@dataclass
class Finding:
    student: str
    assignment: str
    notebook: str
    issues: list[Issue]
    attempted: tuple[int, int] | None = None

    @property
    def label(self) -> str:
        return f"{self.student}/{self.assignment}/{self.notebook}"


_normalise_name = _collect.normalise_name


def _read(path: Path):
    try:
        return nbformat.read(path, as_version=4), None
    except Exception as err:  # noqa: BLE001  (any unreadable file is reported, not raised)
        return None, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def _assignments_in(submitted: Path, only: str | None) -> list[tuple[str, str, Path]]:
    found = []
    if not submitted.is_dir():
        raise FileNotFoundError(
            f"No submissions folder {submitted}. Collect the notebooks first "
            "(python -m tools.grading collect ASSIGNMENT DOWNLOADS)."
        )
    for student_dir in sorted(p for p in submitted.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for assignment_dir in sorted(p for p in student_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if only is None or assignment_dir.name == only:
                found.append((student_dir.name, assignment_dir.name, assignment_dir))
    return found


def check_submissions(submitted: Path, assignment: str | None = None, root: Path = ROOT) -> list[Finding]:
    """Diagnose every submitted notebook under ``submitted/<student>/<assignment>/``."""
    findings = []
    for student, name, folder in _assignments_in(submitted, assignment):
        try:
            releases = release_notebooks(name, root)
        except FileNotFoundError as err:
            findings.append(Finding(student, name, "*", [Issue("unknown-assignment", str(err), False)]))
            continue
        present = {p.stem: p for p in folder.glob("*.ipynb")}
        for stem, release_path in releases.items():
            path = present.pop(stem, None)
            issues: list[Issue] = []
            if path is None:
                renamed = [s for s in present if _normalise_name(s) == stem]
                if len(renamed) == 1 or (len(releases) == 1 and len(present) == 1):
                    other = renamed[0] if renamed else next(iter(present))
                    issues.append(Issue("misnamed", f"found '{other}.ipynb' instead of '{stem}.ipynb'", True))
                    path = present.pop(other)
                else:
                    findings.append(
                        Finding(
                            student,
                            name,
                            stem,
                            [Issue("missing-notebook", f"no {stem}.ipynb (nbgrader gives 0 for it)", False)],
                        )
                    )
                    continue
            nb, error = _read(path)
            if nb is None:
                findings.append(
                    Finding(student, name, stem, issues + [Issue("unreadable", f"{path.name}: {error}", False)])
                )
                continue
            release_nb = nbformat.read(release_path, as_version=4)
            more, match = diagnose(release_nb, nb)
            findings.append(Finding(student, name, stem, issues + more, attempted(release_nb, nb, match)))
        for other in present:
            findings.append(
                Finding(
                    student,
                    name,
                    other,
                    [
                        Issue(
                            "extra-notebook", f"{other}.ipynb is not part of the assignment; nbgrader ignores it", False
                        )
                    ],
                )
            )
    return findings


def repair_submissions(
    submitted: Path, assignment: str | None = None, root: Path = ROOT, backup_dir: Path | None = None
) -> tuple[list[str], list[Finding]]:
    """Repair what is safe; returns (log lines, findings that still need a person)."""
    backup_dir = backup_dir or root / "nbgrader_work" / "repair-backups" / time.strftime("%Y%m%d-%H%M%S")
    log, leftover = [], []
    for finding in check_submissions(submitted, assignment, root):
        if not finding.issues:
            continue
        if any(not issue.repairable for issue in finding.issues):
            leftover.append(finding)
            continue
        folder = submitted / finding.student / finding.assignment
        target = folder / f"{finding.notebook}.ipynb"
        source = target
        if any(i.code == "misnamed" for i in finding.issues):
            source = next(
                p
                for p in folder.glob("*.ipynb")
                if p.stem != finding.notebook and p.stem not in release_notebooks(finding.assignment, root)
            )
        backup = backup_dir / finding.student / finding.assignment / source.name
        backup.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, backup)
        release_nb = nbformat.read(release_notebooks(finding.assignment, root)[finding.notebook], as_version=4)
        repaired, changes = repair_notebook(release_nb, nbformat.read(source, as_version=4))
        if source != target:
            source.unlink()
            changes.insert(0, f"renamed {source.name} -> {target.name}")
        nbformat.write(repaired, target)
        log.append(f"{finding.label}: repaired (backup: {backup})")
        log.extend(f"    {change}" for change in changes)
    return log, leftover


def collect(
    assignment: str, downloads: Path, submitted: Path, root: Path = ROOT, force: bool = False
) -> _collect.CollectResult:
    """Copy hand-ins into ``submitted/<student>/<assignment>/``, never losing one (see tools.collect).

    ``downloads`` holds ``<student>.ipynb`` files, or ``<student>/`` folders with the notebooks inside
    (names such as 'Copy of X.ipynb' or 'X (1).ipynb', as Colab and browsers produce, are fine).
    Several candidates for one notebook: the newest is chosen and the choice printed; a different
    notebook already in submitted/ is replaced only with ``force`` (after a backup).
    """
    releases = list(release_notebooks(assignment, root))
    return _collect.collect(assignment, releases, downloads, submitted, root / "nbgrader_work", force=force)


# ================================================================================================
# Gradebook: manual grades and the score report
# ================================================================================================


def _gradebook(root: Path = ROOT):
    from nbgrader.api import Gradebook

    db = root / "gradebook.db"
    if not db.exists():
        raise FileNotFoundError(f"No gradebook at {db}: run `python -m tools.release` and `nbgrader autograde` first.")
    return Gradebook(f"sqlite:///{db}")


def set_manual_grade(
    assignment: str, student: str, cell_id: str, points: float, comment: str | None = None, root: Path = ROOT
) -> str:
    """Record a hand-given score (and comment) for one graded cell of one student."""
    from nbgrader.api import MissingEntry

    with _gradebook(root) as gb:
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            raise KeyError(
                f"No autograded submission of {assignment} by {student}; run nbgrader autograde first."
            ) from None
        for notebook in submission.notebooks:
            grade = next((g for g in notebook.grades if g.name == cell_id), None)
            if grade is None:
                continue
            if not 0 <= points <= grade.max_score:
                raise ValueError(f"{cell_id} is worth at most {grade.max_score:g} points; got {points}.")
            grade.manual_score = float(points)
            grade.needs_manual_grade = False
            if comment is not None:
                entry = next((c for c in notebook.comments if c.name == cell_id), None)
                if entry is not None:
                    entry.manual_comment = comment
            gb.db.commit()
            return f"{student}/{assignment}/{notebook.name}: {cell_id} = {points:g} / {grade.max_score:g}"
        names = sorted(g.name for n in submission.notebooks for g in n.grades)
        raise KeyError(f"{assignment} has no graded cell {cell_id!r}; graded cells: {', '.join(names)}")


@dataclass
class StudentReport:
    student: str
    score: float
    max_score: float
    needs_manual: list[str]
    failed: list[str]
    notes: list[str]


def report(assignment: str, root: Path = ROOT) -> list[StudentReport]:
    """Per student: score, cells still to grade by hand, failed test cells, timeouts and crashes."""
    rows = []
    tests = {
        grade_id(c)
        for path in release_notebooks(assignment, root).values()
        for c in nbformat.read(path, as_version=4).cells
        if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")
    }
    with _gradebook(root) as gb:
        for submission in sorted(gb.find_assignment(assignment).submissions, key=lambda s: s.student.id):
            student = submission.student.id
            needs, failed, notes = [], [], []
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    if grade.needs_manual_grade:
                        needs.append(grade.name)
                    elif (
                        grade.name in tests
                        and grade.auto_score is not None
                        and grade.manual_score is None
                        and grade.auto_score < grade.max_score
                    ):
                        failed.append(grade.name)
                path = root / "autograded" / student / assignment / f"{notebook.name}.ipynb"
                if not path.exists():
                    notes.append(f"{notebook.name}: not autograded (nbgrader failed on it; run `check`)")
                    continue
                errors = [
                    o
                    for c in nbformat.read(path, as_version=4).cells
                    if c.cell_type == "code"
                    for o in c.get("outputs", [])
                    if o.get("output_type") == "error"
                ]
                names = {o.get("ename") for o in errors}
                if names & {"CellTimeoutError", "KeyboardInterrupt"}:
                    notes.append("a cell hit the time limit (endless loop or far too slow)")
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
                    notes.append("imports a missing module: " + ", ".join(missing_modules))
                if "DeadKernelError" in names:
                    notes.append("the kernel died")
            rows.append(
                StudentReport(student, float(submission.score), float(submission.max_score), needs, failed, notes)
            )
    return rows


def format_report(assignment: str, rows: list[StudentReport]) -> str:
    width = max([len("student")] + [len(r.student) for r in rows])
    lines = [f"{assignment}: {len(rows)} submissions", f"{'student':<{width}}  {'score':>11}  notes"]
    for r in rows:
        bits = []
        if r.failed:
            bits.append("failed: " + ", ".join(r.failed))
        if r.needs_manual:
            bits.append("to grade by hand: " + ", ".join(r.needs_manual))
        bits.extend(r.notes)
        lines.append(f"{r.student:<{width}}  {r.score:5.1f}/{r.max_score:<5.1f}  {'; '.join(bits)}")
    return "\n".join(lines)


def read_grades_csv(path: Path) -> dict[tuple[str, str], float]:
    """{(assignment, student): score} from ``nbgrader export``'s CSV."""
    with open(path, newline="") as fh:
        return {(row["assignment"], row["student_id"]): float(row["score"]) for row in csv.DictReader(fh)}


# ================================================================================================
# Command line
# ================================================================================================


def _print_findings(findings: list[Finding]) -> int:
    bad = [f for f in findings if f.issues]
    for f in findings:
        done = f" ({f.attempted[0]}/{f.attempted[1]} solution cells changed)" if f.attempted else ""
        if not f.issues:
            print(f"ok       {f.label}{done}")
        for issue in f.issues:
            print(f"PROBLEM  {f.label}: {issue}")
    print(
        f"\n{len(findings)} notebooks checked, {len(bad)} with problems"
        + (
            f" ({sum(1 for f in bad if all(i.repairable for i in f.issues))} repairable: "
            "run `python -m tools.grading repair`)"
            if bad
            else "."
        )
    )
    return len(bad)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.grading",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="course folder (default: this repository)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "collect",
        help="copy downloaded notebooks into submitted/<student>/<assignment>/ "
        "(newest of several candidates; never overwrites silently)",
    )
    p.add_argument("assignment")
    p.add_argument("downloads", type=Path)
    p.add_argument(
        "--force",
        action="store_true",
        help="replace notebooks already in submitted/ that differ (the old ones are backed up first)",
    )
    for name in ("check", "repair"):
        p = sub.add_parser(name, help=f"{name} submitted notebooks against the release")
        p.add_argument("submitted", type=Path, nargs="?", help="default: <root>/submitted")
        p.add_argument("--assignment", help="only this assignment")
    p = sub.add_parser("manual-grade", help="record a score given by hand")
    p.add_argument("assignment")
    p.add_argument("student")
    p.add_argument("cell_id")
    p.add_argument("points", type=float)
    p.add_argument("--comment")
    p = sub.add_parser("report", help="scores and grading problems of one assignment")
    p.add_argument("assignment")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser(
        "autograde",
        help="autograde every submission of one assignment, N at a time or on a Dask "
        "cluster, one gradebook writer (tools/autograde/parallel.py)",
    )
    from tools.autograde import parallel

    parallel.add_arguments(p)
    args = parser.parse_args(argv)
    root = args.root.resolve()

    if args.command == "collect":
        result = collect(args.assignment, args.downloads, root / "submitted", root, force=args.force)
        for line in result:
            print(line)
        return 1 if result.problems else 0
    if args.command in ("check", "repair"):
        submitted = (args.submitted or root / "submitted").resolve()
        if args.command == "check":
            return 1 if _print_findings(check_submissions(submitted, args.assignment, root)) else 0
        log, leftover = repair_submissions(submitted, args.assignment, root)
        print("\n".join(log) if log else "nothing to repair")
        for f in leftover:
            print(f"NOT REPAIRED  {f.label}: " + "; ".join(str(i) for i in f.issues))
        return 1 if leftover else 0
    if args.command == "autograde":
        return parallel.run_cli(args, root)
    if args.command == "manual-grade":
        print(set_manual_grade(args.assignment, args.student, args.cell_id, args.points, args.comment, root))
        return 0
    rows = report(args.assignment, root)
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=1))
    else:
        print(format_report(args.assignment, rows))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        sys.exit(2)
