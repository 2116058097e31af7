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

import html
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
REGIONS = {
    HIDDEN: (BEGIN_HIDDEN, END_HIDDEN),
    SOLUTION: (BEGIN_SOLUTION, END_SOLUTION),
    MARK_SCHEME: (BEGIN_MARK_SCHEME, END_MARK_SCHEME),
}
MARKERS = tuple(marker for pair in REGIONS.values() for marker in pair)
SOLUTION_MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_MARK_SCHEME, END_MARK_SCHEME)
ALL_KINDS = frozenset(REGIONS)
# Secret lines shorter than this (stripped) are ignored: "return out", "else:", "x = 1" legitimately
# occur in student copies, lectures and honest outputs too.
MIN_SECRET_LENGTH = 12
REDACTED_LINE = "[line removed by the grader: it showed hidden-test source]"
REDACTED_OUTPUT = "[output removed by the grader: it showed hidden-test source]"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Line:
    """One source line and where it sits: ``region`` is the kind it belongs to (None: outside every
    region); ``marker`` is True for the marker lines themselves."""

    number: int  # 1-based
    text: str
    region: str | None
    marker: bool
    open_after: str | None = None  # the region still open after this line (None: outside)


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


def secret_lines(notebook, kinds=ALL_KINDS, min_length: int = MIN_SECRET_LENGTH, comments: bool = True) -> set[str]:
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
    # A line that is visible anyway (for example the first line `assert np.allclose(` of a call that ruff
    # format split, which also starts visible lines) is no secret.
    visible = "\x00".join(canonical(line) for line in outside)
    return {
        line
        for line in inside - outside
        if len(line) >= min_length and (comments or not line.startswith("#")) and canonical(line) not in visible
    }


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


# ------------------------------------------------------------------------------------------------
# Finding secret lines in any text (feedback outputs, files of the student distribution)
# ------------------------------------------------------------------------------------------------

_ESCAPES = re.compile(r"\\(?:[nrtfv]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|['\"\\])")
_WHITESPACE = re.compile(r"\s+")
_SKIPPED_MIMES = ("image/", "application/pdf", "video/", "audio/")  # binary payloads (base64)


def _unescape(match: re.Match) -> str:
    code = match.group(0)[1:]
    simple = {"n": "\n", "r": "\r", "t": "\t", "f": "\f", "v": "\v", "'": "'", '"': '"', "\\": "\\"}
    if code in simple:
        return simple[code]
    try:
        return chr(int(code[1:], 16))
    except ValueError:
        return match.group(0)


def canonical(text: str) -> str:
    """What a secret looks like however it was printed: ANSI colours, HTML entities, repr() escapes
    (a printed list of strings such as ``In``) and every whitespace character removed."""
    text = html.unescape(ANSI.sub("", text))
    for _ in range(2):  # repr of a repr doubles the backslashes
        text = _ESCAPES.sub(_unescape, text)
    return _WHITESPACE.sub("", text)


class SecretScanner:
    """Finds and removes lines of hidden-test source in output text (defence in depth: the grader
    should never let student code read hidden tests in the first place).

    Matching is on :func:`canonical` forms, so it survives re-indentation, ``print(*line)``, repr()
    of lists of source strings, syntax-highlighted tracebacks and HTML escaping. It does not survive
    deliberate encodings (base64, reversed text, text drawn into an image): see docs/grading-security.md.
    """

    def __init__(self, lines):
        keys = {canonical(line) for line in lines}
        self.keys = sorted((k for k in keys if len(k) >= 8), key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def found(self, text: str) -> bool:
        if not self.keys or not text:
            return False
        canon = canonical(text)
        return any(key in canon for key in self.keys)

    def redact(self, text: str) -> str:
        """``text`` with every line that shows a secret replaced; the whole text replaced when a
        secret is spread over several lines."""
        if not self.found(text):
            return text
        lines = text.split("\n")
        kept = [line[: len(line) - len(line.lstrip())] + REDACTED_LINE if self.found(line) else line for line in lines]
        result = "\n".join(kept)
        return REDACTED_OUTPUT if self.found(result) else result

    def redact_json(self, value):
        """Every string inside a JSON-like value (dicts, lists) redacted; returns the new value."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            if value and all(isinstance(v, str) for v in value):  # a multi-line string stored as a list
                joined = "".join(value)
                redacted = self.redact(joined)
                return value if redacted == joined else [redacted]
            return [self.redact_json(v) for v in value]
        if isinstance(value, dict):
            return type(value)((k, self.redact_json(v)) for k, v in value.items())
        return value

    def redact_output(self, output) -> None:
        """Redact one nbformat output in place: stream text, every text-like MIME type, error fields."""
        kind = output.get("output_type")
        if kind == "stream":
            output["text"] = self.redact_json(output.get("text", ""))
        elif kind in ("execute_result", "display_data", "update_display_data"):
            data = output.get("data", {})
            for mime in list(data):
                if not mime.startswith(_SKIPPED_MIMES):
                    data[mime] = self.redact_json(data[mime])
            if "metadata" in output:
                output["metadata"] = self.redact_json(output["metadata"])
        elif kind == "error":
            output["ename"] = self.redact(str(output.get("ename", "")))
            output["evalue"] = self.redact(str(output.get("evalue", "")))
            output["traceback"] = [self.redact(str(t)) for t in output.get("traceback", [])]
        else:  # an unknown output type: keep it only if it shows nothing secret
            for key in list(output):
                if key != "output_type":
                    output[key] = self.redact_json(output[key])
