"""Collect downloaded hand-ins into ``submitted/<student>/<assignment>/`` without ever losing one.

Used by ``python -m tools.grading collect ASSIGNMENT DOWNLOADS [--force]``.

``DOWNLOADS`` holds ``<student>.ipynb`` files and/or ``<student>/`` folders with notebooks inside; names
such as ``Copy of A1_backprop (1).ipynb``, as Colab and browsers produce them, are fine. Every file is
a *candidate* for one (student, notebook) pair. When a pair has several candidates (``alice.ipynb``
next to ``alice/``, ``A1_backprop.ipynb`` next to ``A1_backprop (1).ipynb``), the newest is chosen:

1. by modification time (times less than ``MTIME_TOLERANCE_S`` apart count as equal: zip archives
   and FAT file systems store times to 2 s);
2. then by the last execution time recorded inside the notebook (JupyterLab's and nbclient's
   ``execution`` cell metadata, Colab's ``executionInfo``);
3. then by the browser's download number: ``X (2).ipynb`` was downloaded after ``X (1).ipynb`` and ``X.ipynb``.

Every choice is printed, with the candidates left out. If candidates with different contents still
tie, nothing is collected for that pair (the instructor decides: remove the unwanted file and rerun).
A notebook already in ``submitted/`` is never overwritten silently: an identical one is left alone, a
different one is kept unless ``--force``, and with ``--force`` it is first copied to
``nbgrader_work/collect-backups/<time>/``. Everything printed is also appended to
``nbgrader_work/collect.log``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

MTIME_TOLERANCE_S = 2.0
STUDENT_ID = re.compile(r"[A-Za-z0-9_.@+-]+")
_DECORATIONS = re.compile(r"^(copy of )+|( ?\(\d+\))+$|(_|-| )?copy$", re.IGNORECASE)
_DOWNLOAD_NUMBER = re.compile(r"\((\d+)\)\s*$")


def normalise_name(stem: str) -> str:
    """The notebook name without the decorations that copying and downloading add."""
    return _DECORATIONS.sub("", stem.strip()).strip()


def download_number(stem: str) -> int:
    """The browser's ``(N)`` suffix (0 when there is none)."""
    match = _DOWNLOAD_NUMBER.search(stem)
    return int(match.group(1)) if match else 0


def _timestamp(value) -> float | None:
    """Seconds since the epoch from an ISO string or a millisecond number (Colab)."""
    if isinstance(value, (int, float)) and value > 0:
        return value / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def last_execution(notebook: dict) -> float | None:
    """The latest cell execution time recorded in a notebook's metadata (None: none recorded)."""
    times = []
    for cell in notebook.get("cells", []):
        meta = cell.get("metadata", {}) if isinstance(cell, dict) else {}
        execution = meta.get("execution", {})
        if isinstance(execution, dict):
            times += [_timestamp(v) for k, v in execution.items() if k.startswith(("iopub.", "shell."))]
        info = meta.get("executionInfo", {})
        if isinstance(info, dict):
            times.append(_timestamp(info.get("timestamp")))
    times = [t for t in times if t is not None]
    return max(times) if times else None


def _clock(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


@dataclass
class Candidate:
    """One downloaded file that may be a student's hand-in of one notebook."""

    path: Path
    student: str
    notebook: str  # the release notebook it is for
    by_name: bool  # its name says which notebook it is (or it is <student>.ipynb)
    mtime: float = 0.0
    executed: float | None = None  # last execution recorded inside it
    digest: str = ""
    readable: bool = True

    @classmethod
    def read(cls, path: Path, student: str, notebook: str, by_name: bool) -> Candidate:
        data = path.read_bytes()
        cand = cls(path, student, notebook, by_name, path.stat().st_mtime, None, hashlib.sha256(data).hexdigest())
        try:
            cand.executed = last_execution(json.loads(data))
        except (ValueError, UnicodeDecodeError, AttributeError, TypeError):
            cand.readable = False
        return cand

    def describe(self, downloads: Path) -> str:
        when = _clock(self.mtime)
        ran = f", last run {_clock(self.executed)}" if self.executed else ""
        bad = ", NOT A READABLE NOTEBOOK" if not self.readable else ""
        return f"'{self.path.relative_to(downloads)}' (modified {when}{ran}{bad})"


@dataclass
class CollectResult:
    """What ``collect`` did: one line per decision, and how many pairs need the instructor."""

    lines: list[str] = field(default_factory=list)
    problems: int = 0

    def __iter__(self):
        return iter(self.lines)

    def say(self, line: str, problem: bool = False) -> None:
        self.lines.append(line)
        self.problems += problem


def _candidates(assignment: str, releases: list[str], downloads: Path, result: CollectResult) -> dict:
    """(student, notebook) -> candidates; reports what cannot be attributed."""
    found: dict[tuple[str, str], list[Candidate]] = {}
    single = releases[0] if len(releases) == 1 else None
    for entry in sorted(downloads.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            student, files, loose = entry.stem, [entry], True
        elif entry.is_dir():
            student, files, loose = entry.name, sorted(entry.rglob("*.ipynb")), False
            files = [f for f in files if ".ipynb_checkpoints" not in f.parts]
        else:
            continue
        if not STUDENT_ID.fullmatch(student):
            result.say(
                f"SKIPPED    {entry.name}: a student id may hold letters, digits and _.@+- only; rename it", True
            )
            continue
        if not files:
            result.say(f"SKIPPED    {entry.name}/: holds no .ipynb file", True)
            continue
        named, unnamed = [], []
        for f in files:
            stem = normalise_name(f.stem)
            if stem in releases:
                named.append(Candidate.read(f, student, stem, True))
            elif loose and single:  # <student>.ipynb: the documented form for one-notebook assignments
                named.append(Candidate.read(f, student, single, True))
            else:
                unnamed.append(f)
        for f in unnamed:
            if single:  # perhaps renamed by the student: used only if nothing is named after the release
                named.append(Candidate.read(f, student, single, False))
            else:
                result.say(
                    f"IGNORED    '{f.relative_to(downloads)}': its name does not say which notebook of "
                    f"{assignment} it is ({', '.join(r + '.ipynb' for r in releases)}); rename it to use it",
                    True,
                )
        for cand in named:
            found.setdefault((student, cand.notebook), []).append(cand)
    # a renamed notebook loses to any notebook named after the release (from <student>.ipynb or the folder)
    for key, cands in found.items():
        if any(c.by_name for c in cands):
            for c in [c for c in cands if not c.by_name]:
                cands.remove(c)
                result.say(
                    f"IGNORED    '{c.path.relative_to(downloads)}': {key[0]} also handed in a notebook named "
                    f"{key[1]}.ipynb; rename this one to use it",
                    True,
                )
    return found


def choose(cands: list[Candidate]) -> tuple[Candidate | None, str]:
    """The newest candidate and why it was chosen (None: a tie between different contents)."""
    readable = [c for c in cands if c.readable] or cands
    if len({c.digest for c in readable}) == 1:
        best = max(readable, key=lambda c: c.mtime)
        return best, ("identical copies" if len(readable) > 1 else "only candidate")
    newest = max(c.mtime for c in readable)
    recent = [c for c in readable if newest - c.mtime < MTIME_TOLERANCE_S]
    if len(recent) == 1:
        return recent[0], "newest by modification time"
    if len({c.digest for c in recent}) == 1:
        return max(recent, key=lambda c: c.mtime), "newest by modification time (identical copies)"
    runs = [c.executed for c in recent]
    if all(r is not None for r in runs) and runs.count(max(runs)) == 1:
        return max(recent, key=lambda c: c.executed), "same modification time; last executed most recently"
    numbers = [download_number(c.path.stem) for c in recent]
    if numbers.count(max(numbers)) == 1 and len({c.path.parent for c in recent}) == 1:
        return recent[numbers.index(max(numbers))], "same modification time; downloaded last (highest '(N)')"
    return None, "same modification time, different contents, nothing recorded says which is newer"


REPAIRED_FILE = "repaired.json"  # in the work folder: what `repair` rewrote, so that collecting again is no conflict


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record_repair(work: Path, key: str, original: str, repaired: Path) -> None:
    """Remember that ``submitted/<key>`` (student/assignment/notebook.ipynb) is the repair of a notebook whose
    sha256 is ``original``: collecting that same hand-in again is then UNCHANGED, not a conflict."""
    path = work / REPAIRED_FILE
    known = json.loads(path.read_text()) if path.exists() else {}
    known[key] = {"original": known.get(key, {}).get("original", original), "repaired": _digest(repaired)}
    work.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=1, sort_keys=True))


def repaired_from(work: Path, key: str, dest: Path) -> str | None:
    """sha256 of the hand-in that ``dest`` was repaired from, if ``dest`` is still exactly that repair."""
    path = work / REPAIRED_FILE
    entry = (json.loads(path.read_text()) if path.exists() else {}).get(key)
    return entry["original"] if entry and dest.exists() and _digest(dest) == entry["repaired"] else None


def collect(
    assignment: str, releases: list[str], downloads: Path, submitted: Path, work: Path, force: bool = False
) -> CollectResult:
    """Copy the newest hand-in of every (student, notebook) into ``submitted/<student>/<assignment>/``."""
    if not downloads.is_dir():
        raise FileNotFoundError(f"{downloads} is not a folder of downloaded notebooks.")
    result = CollectResult()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for (student, notebook), cands in sorted(_candidates(assignment, releases, downloads, result).items()):
        dest = submitted / student / assignment / f"{notebook}.ipynb"
        label = f"{student}/{assignment}/{notebook}.ipynb"
        best, why = choose(cands)
        if best is not None and not any(c.by_name for c in cands) and len({c.digest for c in cands}) > 1:
            best, why = None, "none is named after the notebook, so their names do not say which is the hand-in"
        if best is None:
            result.say(
                f"AMBIGUOUS  {label}: {len(cands)} candidates, {why}: "
                + "; ".join(c.describe(downloads) for c in cands)
                + ". Nothing collected: remove the files you do not want from the downloads and rerun.",
                True,
            )
            continue
        if len(cands) > 1:
            others = [c for c in cands if c is not best]
            result.say(
                f"CHOSE      {label}: {best.describe(downloads)} out of {len(cands)} candidates ({why}); "
                "not used: " + "; ".join(c.describe(downloads) for c in others)
            )
        if not best.readable:
            result.say(
                f"WARNING    {label}: {best.describe(downloads)} is not a readable notebook; `check` will report it",
                True,
            )
        if dest.exists():
            if _digest(dest) == best.digest:
                result.say(f"UNCHANGED  {label}: already collected from {best.describe(downloads)}")
                continue
            if repaired_from(work, f"{student}/{assignment}/{notebook}.ipynb", dest) == best.digest:
                result.say(f"UNCHANGED  {label}: already collected (and repaired) from {best.describe(downloads)}")
                continue
            older = dest.stat().st_mtime > best.mtime + MTIME_TOLERANCE_S
            if not force:
                result.say(
                    f"REFUSED    {label}: submitted/ already holds a different notebook"
                    + (" that is NEWER than " if older else " than ")
                    + best.describe(downloads)
                    + "; rerun with --force to replace it (the old one is backed up first)",
                    True,
                )
                continue
            backup = work / "collect-backups" / stamp / student / assignment / dest.name
            backup.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(dest, backup)
            result.say(
                f"REPLACED   {label}: previous version backed up to {backup}"
                + ("; WARNING: the replaced notebook was newer" if older else "")
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(best.path, dest)
        result.say(f"COLLECTED  {label} <- {best.describe(downloads)}")
    if not result.lines:
        result.say(f"nothing to collect in {downloads}")
    result.say(
        f"{sum(1 for line in result.lines if line.startswith('COLLECTED'))} notebooks collected, "
        f"{result.problems} problem(s)" + (" to look at (exit code 1)" if result.problems else "")
    )
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "collect.log", "a", encoding="utf-8") as log:
        log.write(
            f"# {time.strftime('%Y-%m-%d %H:%M:%S')} collect {assignment} {downloads}"
            + (" --force" if force else "")
            + "\n"
            + "\n".join(result.lines)
            + "\n"
        )
    return result
