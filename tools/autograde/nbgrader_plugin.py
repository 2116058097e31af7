"""What ``nbgrader autograde`` uses (configured in nbgrader_config.py).

* :class:`SandboxedExecute` replaces nbgrader's ``Execute``: it builds the plan of the notebook (student cells as
  submitted; locked and test cells from the pristine source in the gradebook, locked cells a student deleted or
  stripped of metadata put back at their place in the release), runs it with :func:`tools.autograde.runner.grade_cells`
  in a sandbox, copies the outputs into the notebook (for the feedback) and hands the sealed verdicts on in
  ``resources["autograde"]``.
* :class:`SealedSaveAutoGrades` replaces ``SaveAutoGrades``: a test cell earns its points iff its verdict says
  passed; outputs (which the submission shaped) are never read for test cells.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.preprocessors import Execute, SaveAutoGrades
from traitlets import Float, Integer, List, Unicode

from tools.autograde.runner import Cell, Result, grade_cells
from tools.autograde.sandbox import Limits

RESOURCE_KEY = "autograde"


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _locked_cell(source_cell, is_test: bool, points: float | None):
    cell = nbformat.v4.new_code_cell(source_cell.source)
    cell.metadata = {
        "deletable": False,
        "editable": False,
        "nbgrader": {
            "grade": is_test,
            "grade_id": source_cell.name,
            "locked": True,
            "solution": False,
            "schema_version": 3,
            "checksum": source_cell.checksum,
        },
    }
    if is_test:
        cell.metadata["nbgrader"]["points"] = points
    return cell


def build_plan(nb, gradebook_nb, release_nb=None) -> tuple[list[Cell], dict[int, str]]:
    """Cells to run and, for test cells, their grade ids. Mutates ``nb``: puts back missing locked cells.

    A cell counts as locked only if the gradebook knows its id as a locked source cell; its source is then
    the gradebook's, whatever the submission holds. A second cell with the same id runs as student code.
    """
    sources = {c.name: c for c in gradebook_nb.source_cells if c.locked and c.cell_type == "code"}
    grade_points = {c.name: c.max_score for c in gradebook_nb.grade_cells}
    solutions = {c.name for c in gradebook_nb.solution_cells}
    tests = {name for name in grade_points if name in sources and name not in solutions}
    present = {_meta(c).get("grade_id") for c in nb.cells if c.cell_type == "code"}
    missing = [name for name in sources if name not in present]
    if missing:
        order = [_meta(c).get("grade_id") for c in (release_nb.cells if release_nb is not None else [])]
        for name in sorted(missing, key=lambda n: order.index(n) if n in order else len(order)):
            at = 0
            if name in order:
                before = [g for g in order[: order.index(name)] if g]
                ids = [_meta(c).get("grade_id") for c in nb.cells]
                for gid in reversed(before):
                    if gid in ids:
                        at = ids.index(gid) + 1
                        break
            nb.cells.insert(at, _locked_cell(sources[name], name in tests, grade_points.get(name)))
    cells, test_ids, used = [], {}, set()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        gid = _meta(cell).get("grade_id")
        if gid in sources and gid not in used:
            used.add(gid)
            kind = "test" if gid in tests else "locked"
            cells.append(Cell(index, kind, sources[gid].source))
            if kind == "test":
                test_ids[index] = gid
        else:
            cells.append(Cell(index, "student", cell.source))
    return cells, test_ids


class SandboxedExecute(Execute):
    """Runs the notebook in the clean-room harness inside the sandbox (replaces nbgrader's Execute)."""

    memory_bytes = Integer(Limits.memory_bytes, help="memory of one submission (RLIMIT_DATA), bytes").tag(config=True)
    max_processes = Integer(Limits.max_processes, help="processes/threads of one submission").tag(config=True)
    max_file_bytes = Integer(Limits.max_file_bytes, help="largest file a submission may write").tag(config=True)
    max_output_chars = Integer(Limits.max_output_chars, help="all text outputs of one notebook").tag(config=True)
    max_image_bytes = Integer(Limits.max_image_bytes, help="largest figure (PNG bytes) kept").tag(config=True)
    wall_timeout = Float(Limits.wall_timeout, help="seconds for one notebook, restarts included").tag(config=True)
    sandbox_mode = Unicode("", help="namespaces | userns | plain; empty: the strongest available").tag(config=True)
    extra_read_only = List(Unicode(), help="more folders the sandbox sees read-only (e.g. a dataset cache)").tag(
        config=True
    )
    release_notebook = Unicode(
        "", help="path of the released notebook, with {assignment} and {notebook}: where missing locked cells go back"
    ).tag(config=True)
    sandbox_env = List(
        Unicode(),
        help="NAME=VALUE pairs for the sandboxed process (COURSE_FAST=1 and COURSE_OFFLINE=1 unless given here)",
    ).tag(config=True)
    devices = List(Unicode(), help="device nodes the sandbox may use, e.g. /dev/nvidia0 (full-mode grading)").tag(
        config=True
    )
    refuse = Unicode(
        "", help="when set, grade nothing and fail each notebook with this message (full mode without a GPU)"
    ).tag(config=True)

    def limits(self) -> Limits:
        return Limits(
            memory_bytes=self.memory_bytes,
            max_processes=self.max_processes,
            max_file_bytes=self.max_file_bytes,
            max_output_chars=self.max_output_chars,
            max_image_bytes=self.max_image_bytes,
            cell_timeout=float(self.timeout or 120),
            wall_timeout=self.wall_timeout,
            devices=tuple(self.devices),
        )

    def preprocess(self, nb, resources):
        if self.refuse:
            raise RuntimeError(self.refuse)
        info = resources["nbgrader"]
        notebook_id, assignment_id, student = info["notebook"], info["assignment"], info["student"]
        with Gradebook(info["db_url"]) as gb:
            gradebook_nb = gb.find_notebook(notebook_id, assignment_id)
            release = None
            if self.release_notebook:
                path = Path(self.release_notebook.format(assignment=assignment_id, notebook=notebook_id))
                if path.exists():
                    release = nbformat.read(path, as_version=4)
            cells, test_ids = build_plan(nb, gradebook_nb, release)
        # fast and offline unless the configuration says otherwise (nbgrader_config.py: full mode, on a GPU only)
        env = {"COURSE_FAST": "1", "COURSE_OFFLINE": "1"}
        env.update(dict(item.split("=", 1) for item in self.sandbox_env if "=" in item))
        result = grade_cells(
            cells,
            self.limits(),
            files=Path(resources.get("metadata", {}).get("path") or "."),
            slot=os.getpid() % 4000,
            mode=self.sandbox_mode or None,
            extra_read_only=list(self.extra_read_only),
            env=env,
        )
        self._fill(nb, cells, test_ids, result)
        verdicts = {test_ids[i]: v for i, v in result.verdicts.items() if i in test_ids}
        resources[RESOURCE_KEY] = {"verdicts": verdicts, "log": result.log, "seconds": result.seconds}
        passed = sum(v.passed for v in verdicts.values())
        self.log.info(
            "%s/%s/%s: %d of %d test cells passed in %.1f s (sandbox: %s, restarts: %d)",
            student,
            assignment_id,
            notebook_id,
            passed,
            len(verdicts),
            result.seconds,
            result.mode,
            result.restarts,
        )
        for line in result.log:
            self.log.warning("%s/%s: %s", student, notebook_id, line[:1000])
        return nb, resources

    @staticmethod
    def _fill(nb, cells: list[Cell], test_ids: dict[int, str], result: Result) -> None:
        for cell in cells:
            nb_cell = nb.cells[cell.index]
            nb_cell.source = cell.source if cell.kind != "student" else nb_cell.source
            outputs = []
            for out in result.outputs.get(cell.index, []):
                try:
                    outputs.append(nbformat.from_dict(out))
                except Exception:  # noqa: BLE001 (a malformed output is dropped, never fatal)
                    continue
            verdict = result.verdicts.get(cell.index)
            if verdict is not None and not verdict.passed and not any(o.get("output_type") == "error" for o in outputs):
                outputs.append(
                    nbformat.from_dict(
                        {
                            "output_type": "error",
                            "ename": "GradingFailure",
                            "evalue": verdict.reason,
                            "traceback": [verdict.reason],
                        }
                    )
                )
            nb_cell.outputs = outputs
            nb_cell.execution_count = cell.index + 1 if cell.index in result.outputs else None


class SealedSaveAutoGrades(SaveAutoGrades):
    """Scores test cells from the sealed verdicts (points if passed, else 0), never from their outputs."""

    def _add_score(self, cell, resources) -> None:
        meta = cell.metadata["nbgrader"]
        grade = self.gradebook.find_grade(meta["grade_id"], self.notebook_id, self.assignment_id, self.student_id)
        if utils.is_grade(cell) and not utils.is_solution(cell):
            verdicts = (resources.get(RESOURCE_KEY) or {}).get("verdicts", {})
            verdict = verdicts.get(meta["grade_id"])
            grade.auto_score = float(grade.max_score) if verdict is not None and verdict.passed else 0.0
            if verdict is None:
                self.log.warning("%s: no verdict for %s: 0 points", self.student_id, meta["grade_id"])
        else:
            grade.auto_score, _ = utils.determine_grade(cell, self.log)
        grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
        self.gradebook.db.commit()
