"""The instructor's cycle, one command per stage: ``grade`` (collect, check, repair, autograde, report),
``feedback`` (refused while written answers are still open) and ``grades`` (export of what was handed in).

    make grade A=A1_backprop SUBMISSIONS=~/Downloads/a1   # python -m tools.grading grade A1_backprop ~/Downloads/a1
    make feedback A=A1_backprop [FORCE=1]                 # python -m tools.grading feedback A1_backprop [--force]
    make grades                                           # python -m tools.grading grades

Each stage prints a short summary; nbgrader's own log goes to ``nbgrader_work/logs/`` and the few warnings it prints
on every run that mean nothing (listed in :data:`HARMLESS`) are left out of the terminal, with one line saying so.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tools.grading import gradebook as gb
from tools.grading import submissions as subs
from tools.grading.settings import FULL_WALL_TIMEOUT_S, MODE_VARIABLE, ROOT, ModeError, check_mode, mode_settings

# Warnings nbgrader/Jupyter print on every run that need no action (docs/instructors.md explains each).
HARMLESS = {
    "checksum": re.compile(r"Attribute 'checksum' for cell .* has changed"),
    "tcp": re.compile(r"without encryption|running over TCP|connection is not encrypted", re.I),
    "display_data_priority": re.compile(r"Config option `?display_data_priority`? not recognized"),
    "exchange": re.compile(r"exchange directory .* does not exist|Unable to find the exchange", re.I),
    "alt-text": re.compile(r"Alternative text is missing on \d+ image"),  # nbconvert: figures carry no alt text
}
Say = Callable[[str], None]


def _log_dir(root: Path) -> Path:
    path = root / "nbgrader_work" / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def quiet_lines(text: str) -> tuple[list[str], Counter]:
    """Warnings and errors worth showing from an nbgrader run, and how many harmless ones were dropped."""
    shown, dropped = [], Counter()
    for line in text.splitlines():
        kind = next((k for k, pattern in HARMLESS.items() if pattern.search(line)), None)
        if kind:
            dropped[kind] += 1
        elif re.search(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback|Error:", line):
            shown.append(line.strip())
    return shown, dropped


def run_nbgrader(args: list[str], root: Path, name: str) -> tuple[int, list[str], Path]:
    """``nbgrader ARGS`` in ``root``; returns (exit code, lines worth showing, full log)."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    log = _log_dir(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log.write_text(f"$ nbgrader {' '.join(args)}\n{proc.stdout}\n{proc.stderr}")
    shown, _ = quiet_lines(proc.stdout + "\n" + proc.stderr)
    return proc.returncode, shown, log


# ================================================================================================
# make grade
# ================================================================================================


def _say_collect(result, say: Say) -> int:
    counts = Counter(line.split()[0] for line in result.lines if line.strip())
    bits = [f"{n} {word.lower()}" for word, n in sorted(counts.items()) if word.isupper()]
    say("  " + (", ".join(bits) if bits else "nothing found"))
    for line in result.lines:
        if line.split()[:1] and line.split()[0] in ("REFUSED", "AMBIGUOUS", "SKIPPED", "IGNORED", "CHOSE"):
            say("    " + line)
    return result.problems


GPU_PROBE = "import torch\nassert torch.cuda.is_available(), 'no CUDA device inside the sandbox'\n" + (
    "assert float((torch.ones(4, device='cuda') * 2).sum()) == 8.0"
)


def sandbox_gpu_problem() -> str | None:
    """None if a test cell in the full-mode sandbox can compute on the GPU, else what went wrong."""
    from tools.autograde.runner import Cell, grade_cells
    from tools.autograde.sandbox import Limits

    settings = mode_settings("full")
    limits = Limits(
        memory_bytes=settings["memory_bytes"], devices=tuple(settings["devices"]), cell_timeout=120, wall_timeout=300
    )
    result = grade_cells([Cell(0, "test", GPU_PROBE)], limits, env=settings["env"])
    verdict = result.verdicts.get(0)
    if verdict is not None and verdict.passed:
        return None
    why = verdict.reason if verdict is not None else "; ".join(result.log) or "no verdict"
    return (
        f"Full mode: the grading sandbox cannot use the GPU ({why}; device nodes: "
        f"{', '.join(settings['devices']) or 'none found under /dev'}). Nothing was graded: a full-mode run on the "
        "CPU would only hit the time limits."
    )


def _repairs(log: list[str]) -> dict[str, str]:
    """{notebook label: what was repaired, condensed} from repair_submissions' log."""
    out: dict[str, Counter] = {}
    label = None
    for line in log:
        if not line.startswith(" "):
            label = line.split(": repaired")[0]
            out[label] = Counter()
        elif label is not None:
            change = line.strip()
            what = change.split(": ", 1)[1] if ": " in change and not change.startswith("renamed") else change
            if what.startswith("removed duplicated"):
                what = "duplicated/unknown nbgrader ids removed"
            out[label][what] += 1
    return {
        label: "; ".join(f"{what} ({n} cells)" if n > 1 else what for what, n in changes.items())
        for label, changes in out.items()
    }


def _coordinator(mode: str, *args, **kwargs):
    """tools.autograde.parallel.Coordinator whose shipped configuration sets the grading mode first, so that every
    grading process (local or on a Dask worker) reads the same mode in nbgrader_config.py; the mode is part of the
    configuration's fingerprint, so switching modes regrades everyone."""
    from tools.autograde.parallel import Coordinator

    class ModeCoordinator(Coordinator):
        def bundle(self):
            bundle = super().bundle()
            prefix = f"import os as _os\n_os.environ[{MODE_VARIABLE!r}] = {mode!r}\n"
            return dataclasses.replace(bundle, config=prefix.encode() + bundle.config)

    return ModeCoordinator(*args, **kwargs)


def grade(
    assignment: str,
    submissions: Path | None = None,
    root: Path = ROOT,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    mode: str = "fast",
    force: bool = False,
    say: Say = print,
) -> int:
    """Collect (if ``submissions``), check, repair what is safe, autograde in the sandbox, report.

    Returns 0 when every submission was graded and nothing needs a person except written answers, 1 otherwise,
    2 when nothing was graded (full mode without a GPU, no release).
    """
    from tools.autograde import parallel

    t0 = time.monotonic()
    try:
        described = check_mode(mode)
    except ModeError as err:
        say(f"{assignment}: NOT GRADED. {err}")
        return 2
    if mode == "full":
        problem = sandbox_gpu_problem()
        if problem:
            say(f"{assignment}: NOT GRADED. {problem}")
            return 2
        described += "; the sandbox reaches the GPU (checked)"
    subs.release_notebooks(assignment, root)  # clear error if the assignment was never released
    if not (root / "gradebook.db").exists():
        raise FileNotFoundError(f"No gradebook at {root / 'gradebook.db'}: run `make release` on this machine first.")
    with gb._gradebook(root) as book:
        if assignment not in {a.name for a in book.assignments}:
            raise FileNotFoundError(
                f"The gradebook does not know {assignment} yet: run `make release` (or "
                f"`python -m tools.release {assignment}`) on this machine first."
            )
    say(f"{assignment}: grading in {described}")
    attention: list[str] = []

    say("1. collect")
    if submissions is None:
        say(f"  skipped (no SUBMISSIONS=): grading what is in {root / 'submitted'}")
    else:
        result = subs.collect(assignment, Path(submissions), root / "submitted", root)
        if _say_collect(result, say):
            attention.append(
                f"collect: {result.problems} hand-ins not collected (see above; nbgrader_work/collect.log)"
            )

    say("2. check and repair")
    log, leftover = subs.repair_submissions(root / "submitted", assignment, root)
    findings = subs.check_submissions(root / "submitted", assignment, root)
    repaired = _repairs(log)
    say(
        f"  {len(findings)} notebooks: {len(findings) - len(repaired) - len(leftover)} fine"
        + (f", {len(repaired)} repaired" if repaired else "")
        + (f", {len(leftover)} need a person" if leftover else "")
    )
    for label, what in repaired.items():
        say(f"    {label}: {what}")
    if repaired:
        say(f"    (originals kept in {root / 'nbgrader_work' / 'repair-backups'})")
    for f in leftover:
        attention.append(f"{f.label}: " + "; ".join(str(i) for i in f.issues))

    say("3. autograde (each submission in the sandbox)")
    if not any(f.student for f in findings):
        say("  nothing to grade")
        return 1 if attention else 2
    if workers is None:  # full mode: one submission at a time on the GPU unless the instructor says otherwise
        workers = 1 if mode == "full" else parallel.cpu_count()
    backend = parallel.DaskBackend(scheduler) if scheduler else parallel.LocalBackend(workers)
    n = workers
    coord = _coordinator(
        mode,
        root,
        assignment,
        backend,
        force=force,
        threads=max(1, parallel.cpu_count() // max(1, n)),
        timeout=FULL_WALL_TIMEOUT_S + 600 if mode == "full" else 1800.0,
        progress=sys.stderr.isatty(),
    )
    t1 = time.monotonic()
    rows = coord.run()
    backend.close()
    status = Counter("graded" if r.status == "needs a person" else r.status for r in rows)
    say(
        f"  {len(rows)} submissions, {backend.describe()}, {time.monotonic() - t1:.0f} s: "
        + ", ".join(f"{v} {k}" for k, v in sorted(status.items()))
        + (" (unchanged since the last run; --force regrades)" if status.get("skipped") else "")
    )
    for r in rows:
        if r.status == "failed":
            attention.append(f"{r.student}: could not be graded ({(r.note or '').splitlines()[0][:200]})")

    say("4. report")
    report_rows = gb.report(assignment, root)
    for line in gb.format_report(assignment, report_rows).splitlines()[1:]:
        say("  " + line)
    open_cells = [(r.student, c) for r in report_rows for c in r.needs_manual]
    for r in report_rows:
        if r.not_graded:
            attention.append(f"{r.student}: no score for {', '.join(r.not_graded)} ({'; '.join(r.notes)})")

    say("")
    if attention:
        say("Needs you:")
        for line in attention:
            say(f"  - {line}")
    if open_cells:
        students = sorted({s for s, _ in open_cells})
        say(
            f"To grade by hand: {len(open_cells)} written answers ({', '.join(students)}): Formgrader › Manual Grading, "
            f"or `python -m tools.grading manual-grade {assignment} STUDENT CELL POINTS`. Then `make feedback A={assignment}`."
        )
    else:
        say(f"Nothing left to grade by hand. Next: `make feedback A={assignment}`, then `make grades`.")
    say(f"Done in {time.monotonic() - t0:.0f} s.")
    return 1 if attention else 0


# ================================================================================================
# make feedback
# ================================================================================================


def open_manual_grades(assignment: str, root: Path = ROOT) -> list[tuple[str, str]]:
    """(student, cell) of every written answer of ``assignment`` still waiting for a hand-given score."""
    return [(r.student, cell) for r in gb.report(assignment, root) for cell in r.needs_manual]


def feedback(assignment: str, root: Path = ROOT, *, force: bool = False, say: Say = print) -> int:
    """``nbgrader generate_feedback`` once every written answer has a score (``force``: regardless)."""
    pending = open_manual_grades(assignment, root)
    if pending and not force:
        by_student: dict[str, list[str]] = {}
        for student, cell in pending:
            by_student.setdefault(student, []).append(cell)
        say(f"{assignment}: feedback NOT generated: {len(pending)} written answers have no score yet, and students")
        say("would see 0 points for them:")
        for student, cells in sorted(by_student.items()):
            say(f"  {student}: {', '.join(cells)}")
        say("Grade them (Formgrader › Manual Grading, or `python -m tools.grading manual-grade ...`), or add")
        say("FORCE=1 (--force) to send feedback now anyway.")
        return 1
    if pending:
        say(f"{assignment}: {len(pending)} written answers have no score yet; they show 0 in this feedback (--force).")
    code, shown, log = run_nbgrader(["generate_feedback", assignment, "--force"], root, f"feedback-{assignment}")
    files = sorted((root / "feedback").glob(f"*/{assignment}/*.html"))
    students = sorted({p.parts[-3] for p in files})
    if code != 0:
        say(f"{assignment}: nbgrader generate_feedback failed (exit {code}); log: {log}")
        for line in shown[-10:]:
            say("  " + line)
        return 1
    say(
        f"{assignment}: feedback for {len(students)} students in {root / 'feedback'}/<student>/{assignment}/ "
        "(hidden tests replaced by a note). Send each student their HTML file."
    )
    for line in shown:
        say("  " + line)
    say(f"(nbgrader's log: {log})")
    return 0


# ================================================================================================
# make grades
# ================================================================================================


def grades(root: Path = ROOT, *, say: Say = print) -> int:
    """The CSV ``nbgrader export`` writes (assignments that someone handed in only) and a summary per assignment."""
    path = root / "nbgrader_work" / "grades.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with gb._gradebook(root) as book:  # what `nbgrader export` does with this course's configuration, in-process
        gb.CollectedCsvExport(to=str(path)).export(book)
    scores = gb.read_grades_csv(path)
    by_assignment: dict[str, list[float]] = {}
    for (assignment, _), score in scores.items():
        by_assignment.setdefault(assignment, []).append(score)
    if not by_assignment:
        say(f"No assignment has been collected and graded yet; {path} holds only the header.")
        return 0
    say(f"Grades in {path}:")
    with gb._gradebook(root) as book:
        for assignment, values in sorted(by_assignment.items()):
            max_score = book.find_assignment(assignment).max_score
            handed_in = len(book.find_assignment(assignment).submissions)
            pending = len(open_manual_grades(assignment, root))
            note = f"; {pending} written answers not graded yet (counted as 0)" if pending else ""
            say(
                f"  {assignment}: {handed_in} of {len(values)} students handed in, mean "
                f"{sum(values) / len(values):.1f} / {max_score:g}{note}"
            )
    with gb._gradebook(root) as book:
        skipped = sorted({a.name for a in book.assignments} - set(by_assignment))
    if skipped:
        say(f"  not exported (nobody handed them in yet): {', '.join(skipped)}")
    return 0
