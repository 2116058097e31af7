"""Every lecture "Try it" is followed by a hint and a worked answer, hidden until the student opens them.

The convention (CONTRIBUTING.md, "Try it"): right after a Try-it markdown cell comes a markdown cell with one
``<details><summary>Hint</summary>`` block per question, then the answer: a markdown
``<details><summary>Answer</summary>`` block and/or a code cell tagged ``try-it-answer`` whose metadata has
``"jupyter": {"source_hidden": true, "outputs_hidden": true}`` (collapsed in JupyterLab; nbval still executes it,
so the answers are run by the lecture's notebook test). The scan is generic: it applies to every notebook in ``lectures/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "lectures").glob("*.ipynb"))
ANSWER_TAG = "try-it-answer"

# A Try-it exercise starts a line: "### Try it", "## Try it live", "> **Try it 2: ...**", "**Try it.** ...".
# A mere reference in running text ("see **Try it** below", "Try it 3 asks ...") is not an exercise.
TRY_IT = re.compile(r"^\s*(?:#+\s*|>?\s*\*\*)Try it\b", re.MULTILINE)
HEADING = re.compile(r"^#{1,6}\s", re.MULTILINE)
HINT = re.compile(r"<details>\s*<summary>\s*Hint\b", re.IGNORECASE)
ANSWER = re.compile(r"<details>\s*<summary>\s*Answer\b", re.IGNORECASE)


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _is_answer_code(cell: dict) -> bool:
    return cell["cell_type"] == "code" and ANSWER_TAG in cell.get("metadata", {}).get("tags", [])


def try_it_problems(cells: list[dict]) -> list[str]:
    """Every way in which a Try-it of ``cells`` lacks its hint or answer (empty when all is well)."""
    problems = []
    for index, cell in enumerate(cells):
        text = _source(cell)
        if cell["cell_type"] != "markdown" or not (match := TRY_IT.search(text)):
            continue
        if HEADING.search(text, match.end()):
            problems.append(
                f"cell {index}: a heading follows the Try it in the same cell; split the cell so that"
                " the hint and the answer can come between the Try it and the next section"
            )
            continue
        hint = answer = False
        for follower in cells[index + 1 :]:
            body = _source(follower)
            if follower["cell_type"] == "markdown" and (HEADING.search(body) or TRY_IT.search(body)):
                break
            hint = hint or (follower["cell_type"] == "markdown" and bool(HINT.search(body)))
            answer = (
                answer
                or _is_answer_code(follower)
                or (follower["cell_type"] == "markdown" and bool(ANSWER.search(body)))
            )
        if not (hint and answer):
            missing = " and ".join(name for name, ok in (("Hint", hint), ("Answer", answer)) if not ok)
            line = text[match.start() :].strip().splitlines()[0][:60]
            problems.append(
                f"cell {index} ({line!r}): missing {missing} before the next "
                "heading or Try it; add <details><summary>Hint</summary>/<summary>Answer</summary> "
                f"blocks or a code cell tagged {ANSWER_TAG!r}"
            )
    for index, cell in enumerate(cells):
        text = _source(cell)
        if _is_answer_code(cell):
            hidden = cell.get("metadata", {}).get("jupyter", {})
            if not (hidden.get("source_hidden") and hidden.get("outputs_hidden")):
                problems.append(
                    f"cell {index}: a {ANSWER_TAG} cell needs metadata "
                    '"jupyter": {"source_hidden": true, "outputs_hidden": true} so that it stays '
                    "collapsed until opened"
                )
            if re.search(r"\brecord\(", text):
                problems.append(
                    f"cell {index}: a {ANSWER_TAG} cell must not call record(...); "
                    "recorded numbers belong to the lecture, not to the answers"
                )
        if cell["cell_type"] == "markdown" and text.count("<details>") != text.count("</details>"):
            problems.append(f"cell {index}: unbalanced <details> ... </details>")
    return problems


@pytest.mark.parametrize("notebook", LECTURES, ids=lambda p: p.stem)
def test_every_try_it_has_a_hint_and_an_answer(notebook):
    problems = try_it_problems(json.loads(notebook.read_text())["cells"])
    assert not problems, f"{notebook.name}:\n" + "\n".join(problems)


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _answer_code(hidden: bool = True) -> dict:
    meta = {"tags": [ANSWER_TAG], **({"jupyter": {"source_hidden": True, "outputs_hidden": True}} if hidden else {})}
    return {"cell_type": "code", "metadata": meta, "source": "print(1 + 1)"}


def test_the_scan_accepts_the_convention_and_catches_each_gap():
    hint = _md("<details><summary>Hint</summary>\n\nThink.\n\n</details>")
    answer_md = _md("<details><summary>Answer</summary>\n\nTwo.\n\n</details>")
    try_it = _md("### Try it\n\nWhat is 1 + 1?")
    section = _md("## Summary")
    assert try_it_problems([try_it, hint, answer_md, section]) == []
    assert try_it_problems([try_it, hint, _answer_code(), section]) == []
    assert try_it_problems([_md("see **Try it** below"), section]) == []  # a reference, not an exercise
    assert "missing Answer" in try_it_problems([try_it, hint, section, answer_md])[0]
    assert "missing Hint and Answer" in try_it_problems([try_it, section])[0]
    assert "source_hidden" in try_it_problems([try_it, hint, _answer_code(hidden=False)])[0]
    assert "split the cell" in try_it_problems([_md("> **Try it.** Why?\n\n## Summary"), hint, answer_md])[0]
    two = _md("> **Try it 2.** Why not?")
    assert len(try_it_problems([try_it, two, hint, answer_md])) == 1  # the first one lost its answer
