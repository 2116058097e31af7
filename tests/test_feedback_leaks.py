"""Feedback never shows hidden-test source, whatever a student cell prints; markers never crash it.

* units (a few seconds in all): tools.markers parses any marker soup without raising; the feedback filter
  (tools.grading.HideHiddenTests) removes hidden-test lines from every kind of output: streams, rich
  display data (text, HTML, Markdown, JSON), tracebacks with ANSI colours, repr() of IPython's ``In``,
  ``print(*line)``, one character per line, stored widget state;
* end to end: the 'leaker' hand-in of tests/test_nbgrader_pipeline.py's hostile matrix prints ``In``
  (IPython's input history, which holds the hidden tests an IPython-based grader ran) and the hidden
  tests from an encoded string, holds stray and one-line markers, and goes through ``nbgrader
  autograde`` and ``nbgrader generate_feedback``; its feedback page holds no hidden-test line.
"""

from __future__ import annotations

import html
import json

import nbformat
import pytest
from nbgrader_helpers import ROOT, hidden_lines

from tools import grading, markers, release

A1 = "A1_backprop"
SOURCE = ROOT / "solutions" / A1 / f"{A1}.ipynb"


@pytest.fixture(scope="module")
def secrets() -> set[str]:
    lines = hidden_lines(nbformat.read(SOURCE, as_version=4))
    assert len(lines) > 20, "control: A1 should have many hidden-test lines"
    return lines


def _shown(text: str, secrets: set[str]) -> list[str]:
    return sorted(line for line in secrets if markers.canonical(line) in markers.canonical(text))


# ------------------------------------------------------------------------------------------------
# The one marker parser
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "x = 1\n### BEGIN HIDDEN TESTS ### END HIDDEN TESTS\ny = 2",
        "x = 1\n### END HIDDEN TESTS\ny = 2",
        "x = 1\n### BEGIN HIDDEN TESTS\ny = 2",
        "### BEGIN HIDDEN TESTS\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n### END HIDDEN TESTS",
        "### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n### END SOLUTION\nz = 3",
        "print('### BEGIN HIDDEN TESTS', '### END HIDDEN TESTS', '### BEGIN HIDDEN TESTS')",
    ],
)
def test_marker_parser_never_raises_and_fails_closed(source):
    lines = markers.classify(source)
    assert [ln.text for ln in lines] == source.split("\n")
    kept, hidden = grading.split_hidden(source)
    assert markers.BEGIN_HIDDEN not in kept and markers.END_HIDDEN not in kept
    for ln in lines:  # every line with a marker, and every line after an unclosed BEGIN, is hidden
        if markers.BEGIN_HIDDEN in ln.text or markers.END_HIDDEN in ln.text:
            assert ln.number in hidden
    if source == "x = 1\n### BEGIN HIDDEN TESTS\ny = 2":
        assert "y = 2" not in kept


def test_one_line_region_and_ordinary_region():
    kept, hidden = grading.split_hidden("a = 1\n### BEGIN HIDDEN TESTS\nassert a == 1\n### END HIDDEN TESTS\nb = 2")
    assert kept == f"a = 1\n{grading.HIDDEN_NOTE}\nb = 2" and hidden == {2, 3, 4}
    kept, hidden = grading.split_hidden("a = 1\n### BEGIN HIDDEN TESTS ### END HIDDEN TESTS\nb = 2")
    assert kept == f"a = 1\n{grading.HIDDEN_NOTE}\nb = 2" and hidden == {2}


def test_secret_lines_ignore_short_lines_markers_and_lines_shown_elsewhere():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "shared = compute_something(1)\n### BEGIN HIDDEN TESTS\n"
                "shared = compute_something(1)\nassert _secret_check(x, 42)\nx = 1\n"
                "### END HIDDEN TESTS"
            ),
            nbformat.v4.new_code_cell(
                "def f():\n    ### BEGIN SOLUTION\n    return model_answer_value(3)\n    ### END SOLUTION"
            ),
        ]
    )
    assert markers.hidden_test_lines(nb) == {"assert _secret_check(x, 42)"}
    assert markers.secret_lines(nb) == {"assert _secret_check(x, 42)", "return model_answer_value(3)"}
    # the three copies of the parser are gone: release and tests use tools.markers
    assert release.protected_lines(nb) == markers.secret_lines(nb, comments=False)


# ------------------------------------------------------------------------------------------------
# The feedback filter on every kind of output
# ------------------------------------------------------------------------------------------------


def _leaky_outputs(sources: list[str], first: str) -> list:
    joined = "\n".join(sources)
    new = nbformat.v4.new_output
    return [
        new("stream", name="stdout", text=repr(sources) + "\n"),  # print(In)
        new("stream", name="stdout", text=joined),  # for s in In: print(s)
        new("stream", name="stderr", text="\n".join(" ".join(line) for line in joined.split("\n"))),  # print(*line)
        new("stream", name="stdout", text="\n".join(joined.replace("\n", ""))),  # one character per line
        new(
            "display_data",
            data={
                "text/html": f"<pre>{html.escape(joined)}</pre>",
                "text/markdown": f"```\n{joined}\n```",
                "text/plain": "<HTML>",
            },
        ),
        new("display_data", data={"application/json": {"history": sources}, "text/plain": "{...}"}),
        new("execute_result", data={"text/plain": repr(repr(sources))}, execution_count=3),
        new(
            "error",
            ename="AssertionError",
            evalue=first,
            traceback=[
                "\x1b[0;31mAssertionError\x1b[0m",
                "Cell In[9], line 2\n      1 x = 1\n" + "".join(f"\x1b[1;32m{ch}\x1b[0m" for ch in first),
            ],
        ),
    ]


def test_feedback_filter_removes_hidden_lines_from_every_output(secrets):
    source_nb = nbformat.read(SOURCE, as_version=4)
    history = ["", *(c.source for c in source_nb.cells if c.cell_type == "code")]
    assert _shown(repr(history), secrets) == sorted(secrets), "control: In holds every hidden-test line"
    nb = nbformat.read(ROOT / "assignments" / A1 / f"{A1}.ipynb", as_version=4)
    # the autograded notebook holds the restored test cells (with their hidden tests)
    by_id = {grading.grade_id(c): c for c in source_nb.cells if grading.grade_id(c)}
    for i, cell in enumerate(nb.cells):
        if grading.grade_id(cell) in by_id and not grading.nbgrader_meta(cell).get("solution"):
            nb.cells[i] = nbformat.from_dict(json.loads(json.dumps(by_id[grading.grade_id(cell)])))
    student = nbformat.v4.new_code_cell("print(In)")
    student.outputs = _leaky_outputs(history, max(secrets, key=len))
    honest = nbformat.v4.new_code_cell("print('loss', 0.25)")
    honest.outputs = [nbformat.v4.new_output("stream", name="stdout", text="loss 0.25\nVisible tests passed.\n")]
    nb.cells += [student, honest]
    widget = {"state": {"value": history[5]}}  # a Text widget whose value is a test cell's source
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"m": widget}}}
    resources = {"nbgrader": {"assignment": A1, "notebook": A1, "student": "eve"}}
    out, _ = grading.HideHiddenTests().preprocess(nb, resources)
    everything = json.dumps(out.cells[-2].outputs) + json.dumps(dict(out.metadata))
    assert _shown(everything, secrets) == []
    for output in out.cells[-2].outputs:
        text = json.dumps(output)
        assert grading.REDACTED_LINE in text or grading.REDACTED_OUTPUT in text, output
    assert out.cells[-1].outputs[0]["text"] == "loss 0.25\nVisible tests passed.\n", "honest output must stay"
    assert _shown(json.dumps([c.source for c in out.cells]), secrets) == []


@pytest.mark.parametrize(
    "source",
    [
        "x_stray = 1  ### END HIDDEN TESTS",
        "### BEGIN HIDDEN TESTS\nprint('notes')",
        "y = 2\n# ### BEGIN HIDDEN TESTS ### END HIDDEN TESTS",
    ],
)
def test_student_cell_with_stray_markers(source):
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="### BEGIN HIDDEN TESTS\nnotes\n")]
    resources = {"nbgrader": {"assignment": A1, "notebook": A1, "student": "eve"}}
    nb = nbformat.v4.new_notebook(cells=[cell])
    out, _ = grading.HideHiddenTests().preprocess(nb, resources)
    shown = out.cells[0].source + json.dumps(out.cells[0].outputs)
    assert markers.BEGIN_HIDDEN not in shown and markers.END_HIDDEN not in shown
    assert "notes" in out.cells[0].outputs[0]["text"]


def test_feedback_filter_keeps_partial_output_around_a_leak():
    cell = nbformat.v4.new_code_cell(
        "# Tests: f (1 point)\nassert f(1) == 2\n### BEGIN HIDDEN TESTS\n"
        "assert f(21) == 42, 'f fails on another input'\n### END HIDDEN TESTS"
    )
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "t", "points": 1, "solution": False, "locked": True}
    cell.outputs = [
        nbformat.v4.new_output(
            "stream", name="stdout", text=("epoch 1\n    assert f(21) == 42, 'f fails on another input'\nepoch 2\n")
        )
    ]
    out, _ = grading.HideHiddenTests().preprocess_cell(cell, {}, 0)
    assert out.outputs[0]["text"] == f"epoch 1\n    {grading.REDACTED_LINE}\nepoch 2\n"


# End to end (nbgrader autograde + generate_feedback on a scratch course, with a hand-in that prints the
# hidden tests and holds stray markers): the 'leaker' of the hostile matrix in tests/test_nbgrader_pipeline.py,
# test_feedback_of_a_hand_in_that_prints_hidden_tests_shows_none (it shares that round's nbgrader runs).
