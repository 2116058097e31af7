"""The notebooks that the test run executed, kept for the website (``test-artifacts/executed/<path>.ipynb``).

conftest.py calls :func:`record_cell` after every notebook cell that nbval ran. The outputs are the ones
the tests checked (fast mode in CI). When a notebook's last cell has run, the notebook is written with its
outputs and a ``course_executed`` metadata entry: the mode it ran in and a digest of its cells' sources, so
that :func:`fresh_artefact` can refuse an artefact whose notebook changed since it was executed.

A displayed ipywidget cannot run on a static page: for each one the kernel is asked (while it still runs)
for a still of the widget's default state (:mod:`book.widget_still`), kept in the output's metadata under
``course_widget_still`` for the site build.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import os
from collections import defaultdict
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
EXECUTED_DIR = ROOT / "test-artifacts" / "executed"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
STILL_KEY = "course_widget_still"
META_KEY = "course_executed"
_STILL_SOURCE = (Path(__file__).parent / "widget_still.py").read_text()
# nodeid of the notebook -> {code cell number: outputs}
_outputs: dict[str, dict[int, list]] = defaultdict(dict)


def source_digest(nb) -> str:
    """SHA-256 of the code cells' sources: changes whenever what runs does (text edits leave it alone: the
    site takes the text from the current notebook and only the outputs from the executed copy)."""
    text = json.dumps([c["source"] for c in nb["cells"] if c["cell_type"] == "code"], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def artefact_path(relative: str, executed_dir: Path = EXECUTED_DIR) -> Path:
    """Where the executed copy of ``relative`` (e.g. ``lectures/L00_learning_recipe.ipynb``) is kept."""
    return executed_dir / relative


def fresh_artefact(relative: str, executed_dir: Path = EXECUTED_DIR) -> tuple[Path | None, str]:
    """(path of a usable executed copy, or None; the reason when None)."""
    path = artefact_path(relative, executed_dir)
    if not path.exists():
        return None, "not executed by a test run yet"
    nb = nbformat.read(path, as_version=4)
    meta = nb.metadata.get(META_KEY, {})
    current = nbformat.read(ROOT / relative, as_version=4)
    if meta.get("source_digest") != source_digest(current):
        return None, "its code changed after it was executed"
    if meta.get("cells_run", 0) < meta.get("code_cells", 1):
        return None, f"only {meta.get('cells_run')} of {meta.get('code_cells')} code cells ran"
    return path, ""


def snapshot_widget(kernel, model_id: str, timeout: float = 30) -> dict | None:
    """Ask nbval's running kernel for a still of widget ``model_id`` (None if it cannot say).

    Sent silently with ``user_expressions``, so the notebook's outputs and execution counts are untouched;
    nbval ignores the messages of a request it did not send.
    """
    code = f"_course_site_still = {{}}\nexec({_STILL_SOURCE!r}, _course_site_still)"
    expression = f"_course_site_still['still']({model_id!r})"
    try:
        msg_id = kernel.kc.execute(code, silent=True, store_history=False, user_expressions={"still": expression})
        while True:
            reply = kernel.get_message(stream="shell", timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        value = reply["content"].get("user_expressions", {}).get("still", {})
        if value.get("status") != "ok":
            return None
        return json.loads(ast.literal_eval(value["data"]["text/plain"]))
    except Exception:  # a still is a nicety: never fail a notebook test over it
        return None


def _add_stills(item, outputs: list) -> None:
    kernel = getattr(item.parent, "kernel", None)
    for out in outputs:
        view = (out.get("data") or {}).get(WIDGET_MIME)
        if view and kernel is not None and kernel.is_alive():
            still = snapshot_widget(kernel, view.get("model_id", ""))
            if still:
                out.setdefault("metadata", {})[STILL_KEY] = still


def record_cell(item, nextitem, executed_dir: Path = EXECUTED_DIR) -> Path | None:
    """Keep one nbval cell's outputs; after a notebook's last cell, write the executed notebook.

    Returns the path written, or None while the notebook is still running.
    """
    notebook = item.nodeid.split("::")[0]
    outputs = copy.deepcopy(list(item.test_outputs)) if getattr(item, "test_outputs", None) is not None else None
    if outputs is not None:
        _add_stills(item, outputs)
        _outputs[notebook][item.cell_num] = outputs
    if nextitem is not None and nextitem.nodeid.split("::")[0] == notebook:
        return None
    return write_notebook(item.parent.nb, _outputs.pop(notebook, {}), notebook, executed_dir)


def write_notebook(source_nb, outputs: dict[int, list], relative: str, executed_dir: Path = EXECUTED_DIR) -> Path:
    """Write ``source_nb`` with ``outputs`` (code cell number -> outputs) to the artefact folder."""
    nb = copy.deepcopy(source_nb)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    for number, cell in enumerate(code_cells):
        cell.outputs = [nbformat.from_dict(o) for o in outputs.get(number, [])]
        cell.execution_count = number + 1 if number in outputs else None
        for out in cell.outputs:
            if out.get("output_type") == "execute_result":
                out["execution_count"] = cell.execution_count
    nb.metadata[META_KEY] = {
        "fast": os.environ.get("COURSE_FAST") == "1",
        "offline": os.environ.get("COURSE_OFFLINE") == "1",
        "source_digest": source_digest(source_nb),
        "code_cells": len(code_cells),
        "cells_run": len(outputs),
        "errors": sum(1 for outs in outputs.values() for o in outs if o.get("output_type") == "error"),
    }
    path = artefact_path(relative, executed_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return path


def with_outputs(relative: str, artefact: Path, root: Path = ROOT):
    """The current notebook ``relative`` with the outputs of its executed copy (same code cells, in order)."""
    nb = nbformat.read(root / relative, as_version=4)
    executed = nbformat.read(artefact, as_version=4)
    ran = [c for c in executed.cells if c.cell_type == "code"]
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell, done in zip(code, ran):
        if cell.source == done.source:
            cell.outputs, cell.execution_count = done.outputs, done.execution_count
    nb.metadata[META_KEY] = executed.metadata.get(META_KEY, {})
    return nb
