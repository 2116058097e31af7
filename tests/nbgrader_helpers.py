"""Helpers for tests/test_nbgrader_pipeline.py: scratch course folders, simulated hand-ins, nbgrader runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from tools import grading, markers, release

ROOT = Path(__file__).resolve().parents[1]
TOTAL_RE = re.compile(r"\*\*Total:\s*(\d+(?:\.\d+)?)\s*points?\*\*")
POINTS_RE = re.compile(r"\((\d+(?:\.\d+)?) points?\b")


def env(cell_timeout: int | None = None, threads: int | None = None) -> dict[str, str]:
    """Environment for nbgrader runs: fast, offline, no record files, a chosen per-cell time limit."""
    e = release.nbgrader_env()
    e.pop("COURSE_RECORD_DIR", None)  # grading runs must not overwrite the records nbval wrote
    e["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    if cell_timeout is not None:
        e["NBGRADER_CELL_TIMEOUT"] = str(cell_timeout)
    if threads is not None:  # several grading runs side by side: one thread each instead of fighting
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            e[name] = str(threads)
    return e


@dataclass
class Run:
    cmd: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(
    args: list[str], cwd: Path, cell_timeout: int | None = None, timeout: float = 600, threads: int | None = None
) -> Run:
    """Run ``python -m <args>`` in ``cwd``; never raises on a non-zero exit (callers assert)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env=env(cell_timeout, threads),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(" ".join(args), proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------------
# Reading assignments
# ------------------------------------------------------------------------------------------------


def source_notebooks(assignment: str, root: Path = ROOT) -> dict[str, Path]:
    return {p.stem: p for p in sorted((root / "solutions" / assignment).glob("*.ipynb"))}


def points(nb) -> dict[str, dict]:
    """grade_id -> {"points", "manual"} for every graded cell."""
    out = {}
    for cell in nb.cells:
        m = grading.nbgrader_meta(cell)
        if m.get("grade"):
            out[m["grade_id"]] = {"points": float(m.get("points", 0)), "manual": bool(m.get("solution"))}
    return out


def stated_total(nb) -> float | None:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = TOTAL_RE.search(cell.source)
            if match:
                return float(match.group(1))
    return None


def solution_text(source: str) -> str:
    """The instructor's source with the solution markers removed: what a perfect student writes."""
    drop = (markers.SOLUTION, markers.MARK_SCHEME)  # marker lines only; hidden-test markers stay
    return "\n".join(ln.text for ln in markers.classify(source) if not (ln.marker and ln.region in drop))


# ------------------------------------------------------------------------------------------------
# Simulated hand-ins
# ------------------------------------------------------------------------------------------------


def release_nb(course: Path, assignment: str, notebook: str):
    return nbformat.read(course / "assignments" / assignment / f"{notebook}.ipynb", as_version=4)


def solved(course: Path, assignment: str, notebook: str):
    """The student copy with every solution cell filled in from the instructor version."""
    nb = release_nb(course, assignment, notebook)
    src = nbformat.read(course / "solutions" / assignment / f"{notebook}.ipynb", as_version=4)
    answers = {grading.grade_id(c): c.source for c in src.cells if grading.nbgrader_meta(c).get("solution")}
    for cell in nb.cells:
        if grading.nbgrader_meta(cell).get("solution"):
            cell.source = solution_text(answers[grading.grade_id(cell)])
    return nb


def cell_index(nb, gid: str) -> int:
    for i, cell in enumerate(nb.cells):
        if grading.grade_id(cell) == gid:
            return i
    raise KeyError(f"no cell {gid!r}")


def edit(nb, gid: str, old: str, new: str):
    cell = nb.cells[cell_index(nb, gid)]
    if old not in cell.source:
        raise AssertionError(f"{old!r} not in cell {gid}")
    cell.source = cell.source.replace(old, new, 1)
    return nb


def strip_like_colab(nb):
    """What a student gets by pasting the cells into a fresh Colab notebook and downloading it."""
    fresh = nbformat.v4.new_notebook()
    fresh.metadata = {
        "colab": {"provenance": []},
        "kernelspec": {"name": "python3", "display_name": "Python 3"},
        "language_info": {"name": "python"},
    }
    for cell in nb.cells:
        new = (nbformat.v4.new_code_cell if cell.cell_type == "code" else nbformat.v4.new_markdown_cell)(cell.source)
        new.metadata = {"id": new["id"]}
        fresh.cells.append(new)
    return fresh


def write_submission(course: Path, student: str, assignment: str, notebook: str, nb) -> Path:
    path = course / "submitted" / student / assignment / f"{notebook}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# ------------------------------------------------------------------------------------------------
# A full grading round
# ------------------------------------------------------------------------------------------------


@dataclass
class Round:
    """Everything a grading round produced, for the tests to assert on."""

    assignment: str
    course: Path
    runs: dict[str, Run] = field(default_factory=dict)
    findings: list = field(default_factory=list)  # tools.grading.check_submissions before grading
    scores: dict[str, dict] = field(default_factory=dict)  # student -> report row (tools.grading.report)

    def log(self) -> str:
        return "\n".join(
            f"$ {name}: exit {r.returncode} in {r.seconds:.0f} s\n{r.output[-3000:]}" for name, r in self.runs.items()
        )


def grade_round(
    course: Path,
    assignment: str,
    cell_timeout: int | None = None,
    manual: dict | None = None,
    cli: bool = False,
    threads: int | None = None,
) -> Round:
    """check -> repair -> autograde -> manual grades -> feedback -> report (-> export).

    nbgrader always runs as a command. With ``cli`` the course tools do too (every command of
    docs/instructors.md); without, they are called in-process (a Python start-up costs seconds on CI).
    """
    rnd = Round(assignment, course)
    if cli:
        rnd.runs["check"] = run(["tools.grading", "check", "--assignment", assignment], course)
        rnd.runs["repair"] = run(["tools.grading", "repair", "--assignment", assignment], course)
    rnd.findings = grading.check_submissions(course / "submitted", assignment, course)
    rnd.runs["autograde"] = run(
        ["nbgrader", "autograde", assignment], course, cell_timeout=cell_timeout, threads=threads
    )
    for (student, cell_id), value in (manual or {}).items():
        rnd.runs[f"manual-grade {student}"] = run(
            ["tools.grading", "manual-grade", assignment, student, cell_id, str(value), "--comment", "well argued"],
            course,
        )
    rnd.runs["feedback"] = run(["nbgrader", "generate_feedback", assignment], course)
    if cli:
        rnd.runs["report"] = run(["tools.grading", "report", assignment, "--json"], course)
        rnd.runs["export"] = run(["nbgrader", "export"], course)
        if rnd.runs["report"].returncode == 0:
            rnd.scores = {row["student"]: row for row in json.loads(rnd.runs["report"].stdout)}
    else:
        rnd.scores = {row.student: row.__dict__ for row in grading.report(assignment, course)}
    return rnd


def scores_table(rounds: list[Round], expected: dict[tuple[str, str], float] | None = None) -> str:
    lines = [f"{'assignment':<16} {'submission':<12} {'score':>11}  notes"]
    for rnd in rounds:
        for student, row in sorted(rnd.scores.items()):
            notes = []
            if row["failed"]:
                notes.append("failed: " + ", ".join(row["failed"]))
            notes += row["notes"]
            if row["needs_manual"]:
                notes.append("to grade by hand: " + ", ".join(row["needs_manual"]))
            lines.append(
                f"{rnd.assignment:<16} {student:<12} {row['score']:5.1f}/{row['max_score']:<5.1f}  {'; '.join(notes)}"
            )
    return "\n".join(lines)


def course_copy(tmp: Path, name: str, template: Path) -> Path:
    """Copy a prepared scratch course (released, gradebook created) for one grading round."""
    dest = tmp / name
    import shutil

    shutil.copytree(template, dest, ignore=shutil.ignore_patterns("__pycache__", "submitted", "autograded", "feedback"))
    return dest


def os_cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def hidden_lines(source_nb, min_length: int = markers.MIN_SECRET_LENGTH) -> set[str]:
    """Lines that occur only inside hidden test regions of an instructor notebook (tools.markers)."""
    return markers.hidden_test_lines(source_nb, min_length=min_length)


PRINT_HISTORY = (
    "try:\n    print(In)\n    for _entry in _ih:\n        print(_entry)\n"
    "    from IPython.display import HTML, display\n"
    "    display(HTML('<pre>' + '\\n'.join(In) + '</pre>'))\n"
    "except NameError:\n    print('no IPython input history in this grader')"
)


def leaking(nb, source_nb):
    """A hand-in that tries to carry hidden tests into its feedback, with markers in its own cells.

    Its last cells print IPython's input history ``In`` (which holds every test cell an IPython-based
    grader ran before them) and print the hidden tests from a base64 string (as if learned elsewhere:
    the feedback filter must work on outputs whatever their origin, and the cell's source shows none of
    them). Its own cells hold both hidden-test markers on one line, an END alone and a BEGIN never closed.
    """
    import base64

    code = [i for i, c in enumerate(nb.cells) if grading.nbgrader_meta(c).get("solution") and c.cell_type == "code"]
    nb.cells[code[0]].source += "\n# ### BEGIN HIDDEN TESTS ### END HIDDEN TESTS (pasted by mistake)"
    nb.cells.insert(code[1], nbformat.v4.new_code_cell("x_stray = 1  ### END HIDDEN TESTS"))
    nb.cells.append(nbformat.v4.new_code_cell("### BEGIN HIDDEN TESTS\nprint('my own notes')"))
    nb.cells.append(nbformat.v4.new_code_cell(PRINT_HISTORY))
    hidden = "\n".join(c.source for c in source_nb.cells if markers.BEGIN_HIDDEN in c.source)
    encoded = base64.b64encode(hidden.encode()).decode()
    nb.cells.append(nbformat.v4.new_code_cell(f"import base64\nprint(base64.b64decode('{encoded}').decode())"))
    return nb


def html_text(path: Path) -> str:
    """The visible text of an HTML file (tags removed, entities decoded)."""
    import html

    raw = path.read_text(encoding="utf-8", errors="replace")
    raw = re.sub(r"<(script|style)\b.*?</\1>", "", raw, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def solution_namespace(assignment: str, cell_ids: list[str], root: Path = ROOT) -> dict:
    """Execute the named cells of the instructor notebook (markers removed) and return their globals.

    Lets tests call the reference implementations directly, e.g. to compare them with PyTorch.
    """
    import numpy as np

    namespace: dict = {"np": np, "__name__": f"solution_{assignment}"}
    cells = {}
    for path in source_notebooks(assignment, root).values():
        for cell in nbformat.read(path, as_version=4).cells:
            if grading.grade_id(cell):
                cells[grading.grade_id(cell)] = cell
    for cell_id in cell_ids:
        exec(compile(solution_text(cells[cell_id].source), f"<{assignment}:{cell_id}>", "exec"), namespace)
    return namespace
