"""Mutation testing of the assignments' tests: every plausible bug must cost points.

``tools/mutation.py`` mutates each reference solution cell (sign flips, off-by-one sizes, dropped terms,
dropped ``.T``, wrong axis, ``mean`` for ``sum``, skipped updates, train/eval swapped, ReLU removed, a
dropped layer, ...) and runs the test cells that depend on it, hidden tests included. A mutant that
passes all of them, and is not on the curated list of equivalent mutants (``mutation.ACCEPTED``), fails
here with its name; so does a score below 95 % killed.

Runtime (fast, offline mode, two mutants at a time): about 20-90 s per assignment, a few minutes in all;
the numbers are printed by ``COURSE_FAST=1 COURSE_OFFLINE=1 python -m tools.mutation``.
"""

from __future__ import annotations

import os

import pytest

from tools import mutation


def test_operators_cover_the_classic_bugs():
    cell = mutation.Cell(
        0,
        "solution",
        "demo",
        "def f(x, w, b, model, opt):\n"
        "    model.train()\n    opt.zero_grad()\n    out = x @ w.T + b\n"
        "    s = out.sum(axis=0)\n    return torch.relu(out) - s\n",
        set(range(1, 7)),
    )
    keys = [m.key for m in mutation.mutants_of("demo", cell)]
    for what in (
        "[.train -> .eval]",
        "[delete Expr statement]",
        "[drop .T]",
        "[Add -> Sub]",
        "[drop right operand]",
        "[0 -> 1]",
        "[.sum -> .mean]",
        "[relu(x) -> x]",
        "[Sub -> Add]",
    ):
        assert any(what in k for k in keys), f"no mutant {what} in {keys}"
    assert len(keys) == len(set(keys)), "mutant keys must be unique"


def test_dependencies_follow_names():
    cells = mutation.read_cells("A3_lenet5")
    deps = mutation.dependencies(cells)
    assert "a3-training" in deps["a3-test_trained"]
    assert "a3-build_lenet5" in mutation.closure({"a3-test_trained"}, deps)
    assert "a3-test_trained" in mutation.dependents("a3-build_lenet5", deps)
    assert "a3-test_train_step" not in mutation.dependents("a3-param_formulas", deps)


def test_accepted_survivors_still_exist():
    """The curated list may only name mutants the tool still generates (no stale excuses)."""
    keys = set()
    for assignment in mutation.ASSIGNMENTS:
        for cell in mutation.read_cells(assignment):
            if cell.kind == "solution" and cell.solution_lines and cell.cell_id not in mutation.SKIP_CELLS:
                keys.update(m.key for m in mutation.mutants_of(assignment, cell))
    stale = sorted(set(mutation.ACCEPTED) - keys)
    assert not stale, f"accepted survivors that no longer exist (remove them): {stale}"
    assert all(len(reason) > 20 for reason in mutation.ACCEPTED.values()), "each accepted survivor needs a reason"


def test_locked_inputs():
    """Every cell a test cell reads from is locked, a solution cell, or another test (issue 10, item 3)."""
    import nbformat

    for assignment in mutation.ASSIGNMENTS:
        nb = nbformat.read(mutation.ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
        meta = {c.metadata.get("nbgrader", {}).get("grade_id"): c.metadata.get("nbgrader", {}) for c in nb.cells}
        plan = mutation.Plan(assignment)
        for test in plan.tests:
            for cid in mutation.closure({test.cell_id}, plan.deps) - {test.cell_id}:
                m = meta.get(cid, {})
                assert m.get("locked") or m.get("solution") or m.get("grade"), (
                    f"{assignment}/{test.cell_id} reads names from {cid}, which a student may edit freely"
                )


@pytest.mark.parametrize("assignment", mutation.ASSIGNMENTS)
def test_every_mutant_is_killed(assignment, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    report = mutation.run_in_subprocess(assignment, jobs=int(os.environ.get("MUTATION_JOBS", "2")))
    print(mutation.format_report([report], verbose=False))
    assert report.baseline_ok, f"the reference solution fails its own tests: {report.baseline_error}"
    assert not report.unexpected, "mutants that earn full marks:\n" + "\n".join(r.key for r in report.unexpected)
    assert report.score() >= mutation.TARGET_SCORE
