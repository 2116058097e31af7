"""Lecture cells read like a lecture: the numbers the tests check leave each section in one recording cell.

A teaching cell holds plain code. ``record(...)``/``record_many(...)`` appear only in code cells tagged
``record``; such a cell is collapsed in JupyterLab (``"jupyter": {"source_hidden": true}``), opens with a
comment that says it hands the section's numbers to the tests, and holds nothing but record calls.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "lectures").glob("*.ipynb"))
RECORD_CALL = re.compile(r"(?<![\w.])record(_many)?\(")


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _is_record_call(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Call)
        and getattr(statement.value.func, "id", None) in ("record", "record_many")
    )


def record_cell_problems(cells: list[dict]) -> list[str]:
    """Every way in which ``cells`` mix test bookkeeping into teaching cells (empty when all is well)."""
    problems = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        text = _source(cell)
        if "record" not in cell.get("metadata", {}).get("tags", []):
            if RECORD_CALL.search(text):
                problems.append(
                    f"cell {index}: a teaching cell calls record(...); move the value into the section's "
                    "recording cell (tagged 'record') at the end of the section"
                )
            continue
        if not cell["metadata"].get("jupyter", {}).get("source_hidden"):
            problems.append(f'cell {index}: a recording cell needs metadata "jupyter": {{"source_hidden": true}}')
        if not text.startswith("# Hands this section's numbers to the tests"):
            problems.append(
                f"cell {index}: a recording cell opens with the comment '# Hands this section's numbers ...'"
            )
        body = ast.parse(text).body
        if not body or not all(_is_record_call(statement) for statement in body):
            problems.append(f"cell {index}: a recording cell holds only record(...)/record_many(...) calls")
    return problems


@pytest.mark.parametrize("notebook", LECTURES, ids=lambda p: p.stem)
def test_teaching_cells_hold_no_record_calls(notebook):
    problems = record_cell_problems(json.loads(notebook.read_text())["cells"])
    assert not problems, f"{notebook.name}:\n" + "\n".join(problems)


def _code(text: str, tags: tuple[str, ...] = (), hidden: bool = True) -> dict:
    meta = {"tags": list(tags), **({"jupyter": {"source_hidden": True}} if hidden else {})}
    return {"cell_type": "code", "metadata": meta, "source": text}


def test_the_scan_accepts_the_convention_and_catches_each_gap():
    good = _code("# Hands this section's numbers to the tests.\nrecord_many(loss=loss)", ("record",))
    assert record_cell_problems([_code("loss = 1.0\nprint(loss)"), good]) == []
    assert "teaching cell" in record_cell_problems([_code("loss = record('loss', 1.0)")])[0]
    assert "source_hidden" in record_cell_problems([{**good, "metadata": {"tags": ["record"]}}])[0]
    assert "opens with" in record_cell_problems([_code("record_many(loss=loss)", ("record",))])[0]
    only_calls = _code("# Hands this section's numbers to the tests.\nloss = 2\nrecord_many(loss=loss)", ("record",))
    assert "only record" in record_cell_problems([only_calls])[0]
    assert record_cell_problems([_code("history.record(3)\nrecorder(2)")]) == []  # other names are fine
