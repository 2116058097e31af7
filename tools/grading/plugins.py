"""The nbgrader plug-ins that ``nbgrader_config.py`` installs.

* :class:`LimitOutputChars` (autograde): a huge print cannot bloat the gradebook;
* :class:`QuietOverwriteCells` (autograde): nbgrader's ``OverwriteCells``, reporting only locked cells the
  student really edited (nbgrader warns "Attribute 'checksum' ... has changed!" for every untouched test cell
  with hidden tests, because the release's checksum is taken after the hidden tests were removed);
* :class:`HideHiddenTests` (feedback): feedback never shows hidden tests.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import GetGrades, NbGraderPreprocessor, OverwriteCells
from traitlets import Integer, List, Unicode

from tools.grading.settings import HIDDEN_NOTE, MAX_OUTPUT_CHARS, ROOT
from tools.markers import ANSI as _ANSI
from tools.markers import BEGIN_HIDDEN, END_HIDDEN, SecretScanner, hidden_test_lines
from tools.markers import split_hidden as _split_hidden

# nbconvert's HTML exporter configures this for every NbConvertBase; declaring it keeps traitlets from warning
# "Config option `display_data_priority` not recognized by `HideHiddenTests`" (GetGrades declares it too).
_DISPLAY_PRIORITY = [
    "text/html",
    "application/pdf",
    "text/latex",
    "image/svg+xml",
    "image/png",
    "image/jpeg",
    "text/plain",
]


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
    display_data_priority = List(_DISPLAY_PRIORITY, help="(set by nbconvert; not used here)").tag(config=True)
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


def _without_hidden(source: str) -> str:
    """``source`` as the release shows it: hidden-test regions (markers included) removed, blank ends ignored."""
    kept, _ = _split_hidden(source, "")
    return "\n".join(line.rstrip() for line in kept.splitlines() if line.strip())


class QuietOverwriteCells(OverwriteCells):
    """nbgrader's OverwriteCells (restores locked cells from the gradebook), without the false alarm.

    nbgrader compares a locked cell's checksum with the gradebook's, which was computed *with* the hidden tests;
    every untouched test cell with hidden tests therefore "has changed". Such a cell is restored silently (it is
    restored all the same); a cell whose visible text differs from the release is still reported, once, as
    "cell X was edited by the student; the original was restored".
    """

    _current = None

    def preprocess_cell(self, cell, resources, cell_index):
        self._current = cell
        try:
            return super().preprocess_cell(cell, resources, cell_index)
        finally:
            self._current = None

    def report_change(self, name, attr, old, new):
        if attr == "checksum" and self._current is not None:
            source = self.gradebook.find_source_cell(name, self.notebook_id, self.assignment_id).source
            if _without_hidden(self._current.source) == _without_hidden(source):
                self.log.debug("cell %s: untouched (its checksum differs only by the hidden tests)", name)
                return
            self.log.warning("cell %s was edited by the student; the original was restored", name)
            return
        super().report_change(name, attr, old, new)
