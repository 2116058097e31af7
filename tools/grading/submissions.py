"""Submitted notebooks against their release: cell matching, the pre-grading check, safe repairs, collection.

Why a pre-grading check: nbgrader 0.9 identifies graded cells only by the metadata attached to them.
A notebook whose metadata was stripped (cells pasted into a fresh Colab notebook) scores 0 with no
warning or makes autograde crash; a pasted duplicate of a graded cell makes autograde fail for that
student with a misleading KeyError; a deleted test cell loses its points silently; an edited test cell
is quietly restored. :func:`check_submissions` names every such submission, and :func:`repair_submissions`
re-attaches the metadata by matching the submitted cells to the released notebook (by id, then identical
source, then position and similarity), restores locked cells, drops duplicated ids and re-inserts deleted cells.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from tools import collect as _collect
from tools.grading.settings import ROOT

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
        _collect.record_repair(
            root / "nbgrader_work",
            f"{finding.student}/{finding.assignment}/{target.name}",
            hashlib.sha256(backup.read_bytes()).hexdigest(),
            target,
        )
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
