"""The one parser of nbgrader's region markers, and the secret lines of an instructor notebook.

nbgrader marks what students must not see with comment lines::

    ### BEGIN SOLUTION        ... model solution ...        ### END SOLUTION
    ### BEGIN HIDDEN TESTS    ... hidden tests ...          ### END HIDDEN TESTS
    ### BEGIN MARK SCHEME     ... notes for graders ...     ### END MARK SCHEME

Everything that reads markers (the release leak scan in tools.release, the feedback filter in
tools.grading, the student distribution in tools.distribute, the tests) uses :func:`classify` and
:func:`secret_lines` from here, with the constants below.

The parser never raises: student cells may hold markers anywhere (both on one line, an END without
a BEGIN, a BEGIN that is never closed). It fails closed: a BEGIN without an END hides the rest of the
cell, a line holding a marker is itself a marker line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

BEGIN_HIDDEN = "BEGIN HIDDEN TESTS"
END_HIDDEN = "END HIDDEN TESTS"
BEGIN_SOLUTION = "BEGIN SOLUTION"
END_SOLUTION = "END SOLUTION"
BEGIN_MARK_SCHEME = "BEGIN MARK SCHEME"
END_MARK_SCHEME = "END MARK SCHEME"
HIDDEN, SOLUTION, MARK_SCHEME = "hidden", "solution", "mark scheme"
# kind -> (begin marker, end marker)
REGIONS = {HIDDEN: (BEGIN_HIDDEN, END_HIDDEN), SOLUTION: (BEGIN_SOLUTION, END_SOLUTION),
           MARK_SCHEME: (BEGIN_MARK_SCHEME, END_MARK_SCHEME)}
MARKERS = tuple(marker for pair in REGIONS.values() for marker in pair)
SOLUTION_MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_MARK_SCHEME, END_MARK_SCHEME)
ALL_KINDS = frozenset(REGIONS)
# Secret lines shorter than this (stripped) are ignored: "return out", "else:", "x = 1" legitimately
# occur in student copies, lectures and honest outputs too.
MIN_SECRET_LENGTH = 12


@dataclass(frozen=True)
class Line:
    """One source line and where it sits: ``region`` is the kind it belongs to (None: outside every
    region); ``marker`` is True for the marker lines themselves."""

    number: int      # 1-based
    text: str
    region: str | None
    marker: bool
    open_after: str | None = None   # the region still open after this line (None: outside)


def _markers_in(line: str) -> list[tuple[int, str, bool]]:
    """(position, kind, is_begin) of every marker in a line, left to right."""
    found = []
    for kind, (begin, end) in REGIONS.items():
        for marker, is_begin in ((begin, True), (end, False)):
            for m in re.finditer(re.escape(marker), line):
                found.append((m.start(), kind, is_begin))
    return sorted(found)


def classify(source: str) -> list[Line]:
    """Every line of a cell's source with the region it belongs to. Never raises.

    A marker line belongs to the region it opens or closes. Several markers on one line are read
    left to right (``### BEGIN HIDDEN TESTS ... ### END HIDDEN TESTS`` on one line is a one-line
    hidden region). An END that closes nothing is a marker line and nothing else; a BEGIN inside
    another region keeps the outer region open; a region never closed runs to the end of the cell.
    """
    lines, region = [], None
    for number, text in enumerate(source.split("\n"), start=1):
        markers = _markers_in(text)
        if not markers:
            lines.append(Line(number, text, region, False, region))
            continue
        kinds = [region] if region else []
        for _, kind, is_begin in markers:
            if is_begin and region is None:
                region = kind
            elif not is_begin and region == kind:
                region = None
            kinds.append(kind)
        # the line belongs to the most secret region it touched (hidden tests first)
        belongs = next((k for k in (HIDDEN, SOLUTION, MARK_SCHEME) if k in kinds), None)
        lines.append(Line(number, text, belongs, True, region))
    return lines


def has_markers(source: str) -> bool:
    return any(marker in source for marker in MARKERS)


def _cell_lines(cell) -> list[Line]:
    """classify(), plus nbgrader's rule that a solution cell without markers is all solution."""
    lines = classify(cell.get("source", ""))
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if isinstance(meta, dict) and meta.get("solution") and BEGIN_SOLUTION not in cell.get("source", ""):
        lines = [Line(ln.number, ln.text, ln.region or SOLUTION, ln.marker, ln.open_after) for ln in lines]
    return lines


def secret_lines(notebook, kinds=ALL_KINDS, min_length: int = MIN_SECRET_LENGTH,
                 comments: bool = True) -> set[str]:
    """Stripped lines that occur only inside regions of the given ``kinds`` of an instructor notebook.

    Lines that also occur outside every region (anywhere in the notebook), marker lines and lines
    shorter than ``min_length`` are left out; so are comment lines when ``comments`` is False.
    """
    kinds = {kinds} if isinstance(kinds, str) else set(kinds)
    inside, outside = set(), set()
    for cell in notebook.get("cells", []):
        for line in _cell_lines(cell):
            text = line.text.strip()
            if line.marker:
                continue
            if line.region is None:
                outside.add(text)
            elif line.region in kinds:
                inside.add(text)
    return {line for line in inside - outside
            if len(line) >= min_length and (comments or not line.startswith("#"))}


def hidden_test_lines(notebook, min_length: int = MIN_SECRET_LENGTH) -> set[str]:
    """The hidden-test lines of an instructor (or autograded) notebook."""
    return secret_lines(notebook, {HIDDEN}, min_length=min_length)


def split_hidden(source: str, note: str) -> tuple[str, set[int]]:
    """(source with every hidden region replaced by ``note``, 1-based numbers of the hidden lines).

    Each region, markers included, becomes one line ``note`` indented like its first line. Never
    raises, whatever markers a (student) cell holds.
    """
    kept, hidden, open_before = [], set(), None
    for line in classify(source):
        if line.region == HIDDEN:
            hidden.add(line.number)
            if open_before != HIDDEN:
                kept.append(line.text[: len(line.text) - len(line.text.lstrip())] + note)
        else:
            kept.append(line.text)
        open_before = line.open_after
    return "\n".join(kept), hidden
