"""Grading helpers around nbgrader (placeholder, being written)."""
from __future__ import annotations

import re

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import GetGrades, NbGraderPreprocessor
from traitlets import Integer, Unicode

CELL_TIMEOUT_S = 120
MAX_OUTPUT_CHARS = 20_000
BEGIN_HIDDEN = "BEGIN HIDDEN TESTS"
END_HIDDEN = "END HIDDEN TESTS"
HIDDEN_NOTE = "# (hidden tests: the grader ran more checks here; they are not shown)"


class HideHiddenTests(NbGraderPreprocessor):
    """Feedback filter: remove hidden test regions and what their failures would reveal."""

    max_output_chars = Integer(MAX_OUTPUT_CHARS, help="truncate each text output to this many characters").tag(config=True)
    note = Unicode(HIDDEN_NOTE).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        return cell, resources


FEEDBACK_PREPROCESSORS = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]
