"""Honest students who write correct code their own way get full marks.

Each file in tests/fixtures/alternative_solutions/ replaces the solution cells of one instructor notebook
with correct code written another way (CS231n-style NumPy, torchvision / pytorch-cifar style models,
``padding="same"``, named ``OrderedDict`` containers, upper-case error messages, PyTorch's floor rule
for pooling, ``zero_grad`` after the step, ...). The notebook then runs, without nbgrader, with every
test cell, hidden tests included (``python -m tools.mutation A3 --replace FILE``), and every test cell
must pass. Runtime: about 10-40 s per assignment on one busy core (the notebook's training cells run
in fast mode).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools import mutation

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "alternative_solutions"


def _env() -> dict[str, str]:
    return {**os.environ, "COURSE_FAST": "1", "COURSE_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize("assignment", mutation.ASSIGNMENTS)
def test_fixture_covers_the_solution_cells(assignment):
    """Every code solution cell has an alternative that differs from the reference and parses."""
    replacements = mutation.read_replacements(FIXTURES / f"{assignment}.py")
    cells = {c.cell_id: c for c in mutation.read_cells(assignment) if c.kind == "solution" and c.solution_lines}
    assert set(replacements) == set(cells), f"{assignment}: alternatives for {sorted(cells)} expected"
    for cell_id, source in replacements.items():
        ast.parse(source)
        assert ast.unparse(ast.parse(source)) != ast.unparse(ast.parse(cells[cell_id].source)), (
            f"{assignment}/{cell_id}: the alternative is the reference solution"
        )


@pytest.mark.parametrize("assignment", mutation.ASSIGNMENTS)
def test_alternative_solutions_get_full_marks(assignment):
    proc = subprocess.run(
        [sys.executable, "-m", "tools.mutation", assignment, "--replace", str(FIXTURES / f"{assignment}.py")],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from the runner:\n{proc.stderr[-3000:]}"
    results = json.loads(lines[-1])
    failed = {cell: error for cell, error in results.items() if error}
    assert not failed, f"{assignment}: correct alternative code loses points in {failed}"
    tests = [c.cell_id for c in mutation.read_cells(assignment) if c.kind == "test"]
    assert set(tests) <= set(results), "every test cell must have run"
