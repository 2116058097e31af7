"""Lecture cells a student reads: no test bookkeeping echoed into the output.

``record(key, value)`` returns its value, so a cell that ends with a bare ``record(...)`` prints the raw
value (a dict or a list) under the nicely formatted table the cell has just printed.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "lectures").glob("*.ipynb"))


def echoed_records(notebook: Path) -> list[int]:
    """Indices of code cells whose last statement is a bare ``record(...)`` call that Jupyter would echo."""
    found = []
    for index, cell in enumerate(json.loads(notebook.read_text())["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]).rstrip()
        try:
            body = ast.parse(source).body
        except SyntaxError:
            continue
        last = body[-1] if body else None
        if (
            isinstance(last, ast.Expr)
            and isinstance(last.value, ast.Call)
            and getattr(last.value.func, "id", None) == "record"
            and not source.endswith(";")
        ):
            found.append(index)
    return found


@pytest.mark.parametrize("notebook", LECTURES, ids=lambda p: p.stem)
def test_no_cell_echoes_a_raw_record(notebook):
    cells = echoed_records(notebook)
    assert not cells, f"{notebook.name}: cells {cells} end with a bare record(...): end the line with ';'"


def test_the_scan_finds_an_echo(tmp_path):
    nb = {
        "cells": [
            {"cell_type": "code", "source": ["x = 1\n", "record('x', x)"]},
            {"cell_type": "code", "source": ["record('x', x);"]},
        ]
    }
    path = tmp_path / "demo.ipynb"
    path.write_text(json.dumps(nb))
    assert echoed_records(path) == [0]
