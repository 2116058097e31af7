"""Grading around nbgrader, split along its seams:

* :mod:`tools.grading.settings`: paths, limits, the grading mode (fast, or full on a GPU machine);
* :mod:`tools.grading.plugins`: the nbgrader plug-ins ``nbgrader_config.py`` installs (``HideHiddenTests``,
  ``LimitOutputChars``, ``QuietOverwriteCells``);
* :mod:`tools.grading.submissions`: submitted notebooks against their release (collect, check, repair);
* :mod:`tools.grading.gradebook`: hand-given scores, the report with the reason of each failure, grade export;
* :mod:`tools.grading.cycle`: one command per stage (``grade``, ``feedback``, ``grades``);
* :mod:`tools.grading.cli`: ``python -m tools.grading``.

The names below are re-exported so that ``from tools import grading; grading.check_submissions(...)`` keeps working.
"""

from tools.grading.gradebook import (
    CollectedCsvExport,
    OverrideRefused,
    StudentReport,
    failure_reason,
    format_report,
    manual_cells,
    read_grades_csv,
    report,
    set_manual_grade,
)
from tools.grading.plugins import (
    FEEDBACK_PREPROCESSORS,
    HideHiddenTests,
    LimitOutputChars,
    QuietOverwriteCells,
    assignment_secrets,
    split_hidden,
)
from tools.grading.settings import CELL_TIMEOUT_S, HIDDEN_NOTE, MAX_OUTPUT_CHARS, ROOT
from tools.grading.submissions import (
    Finding,
    Issue,
    Match,
    attempted,
    check_submissions,
    collect,
    diagnose,
    grade_id,
    is_graded_cell,
    is_locked_cell,
    match_cells,
    nbgrader_meta,
    release_notebooks,
    repair_notebook,
    repair_submissions,
)
from tools.markers import BEGIN_HIDDEN, END_HIDDEN, REDACTED_LINE, REDACTED_OUTPUT, SOLUTION_MARKERS

__all__ = [
    "BEGIN_HIDDEN",
    "CELL_TIMEOUT_S",
    "END_HIDDEN",
    "FEEDBACK_PREPROCESSORS",
    "HIDDEN_NOTE",
    "MAX_OUTPUT_CHARS",
    "REDACTED_LINE",
    "REDACTED_OUTPUT",
    "ROOT",
    "SOLUTION_MARKERS",
    "CollectedCsvExport",
    "Finding",
    "HideHiddenTests",
    "Issue",
    "LimitOutputChars",
    "Match",
    "OverrideRefused",
    "QuietOverwriteCells",
    "StudentReport",
    "assignment_secrets",
    "attempted",
    "check_submissions",
    "collect",
    "diagnose",
    "failure_reason",
    "format_report",
    "grade_id",
    "is_graded_cell",
    "is_locked_cell",
    "manual_cells",
    "match_cells",
    "nbgrader_meta",
    "read_grades_csv",
    "release_notebooks",
    "repair_notebook",
    "repair_submissions",
    "report",
    "set_manual_grade",
    "split_hidden",
]
