"""Test-suite set-up shared by unit tests and notebook runs (nbval).

* Forces fast, offline mode (unless the caller already chose) so that CI needs no network.
* Points ``COURSE_RECORD_DIR`` at a fresh folder: notebooks executed by nbval write the
  numbers they teach there, and ``tests/test_LNN_*.py`` / ``tests/test_ANN_*.py`` assert them
  (through the ``notebook_records`` fixture). In fast mode it also tells ``fit`` that nobody watches
  (``course_utils.plotting.live_display``): plain epoch lines instead of tqdm bars and live curves.
* Runs notebooks before ordinary tests (so their records exist) and prints a table of
  notebook execution times at the end.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).parent
os.environ.setdefault("COURSE_FAST", "1")
os.environ.setdefault("COURSE_OFFLINE", "1")
os.environ["COURSE_RECORD_DIR"] = tempfile.mkdtemp(prefix="course-records-")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

_notebook_seconds: dict[str, float] = defaultdict(float)
_notebook_figures: dict[str, int] = defaultdict(int)
_notebook_failed: set[str] = set()
NOTEBOOK_BUDGET_S = float(os.environ.get("COURSE_NOTEBOOK_BUDGET_S", "60"))


def _is_notebook_item(item: pytest.Item) -> bool:
    return str(getattr(item, "path", "")).endswith(".ipynb")


def pytest_collection_modifyitems(session, config, items):
    """Notebooks first (their records feed later tests); order is otherwise kept."""
    items.sort(key=lambda item: 0 if _is_notebook_item(item) else 1)


def count_figures(outputs: list) -> int:
    """Number of images among a cell's outputs (what a student sees as figures)."""
    return sum(1 for out in outputs or [] if any(k.startswith("image/") for k in (out.get("data") or {})))


def figures_file(notebook_path: str) -> Path:
    """Where the figure count of a notebook run in this session is kept (next to its records)."""
    return Path(os.environ["COURSE_RECORD_DIR"]) / f"{Path(notebook_path).stem}.figures.json"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Count the images each notebook cell really produced under nbval (tests/test_figures.py asserts them)."""
    yield
    if _is_notebook_item(item) and getattr(item, "test_outputs", None) is not None:
        path = item.nodeid.split("::")[0]
        _notebook_figures[path] += count_figures(item.test_outputs)
        figures_file(path).write_text(json.dumps({"figures": _notebook_figures[path]}))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """Keep each notebook cell's outputs; after its last cell, write the executed notebook to
    test-artifacts/executed/<path>.ipynb (the website, `make site`, is built from these; book/executed.py)."""
    if _is_notebook_item(item):
        from book.executed import record_cell

        record_cell(item, nextitem)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration
        if report.failed:
            _notebook_failed.add(path)


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    tr = terminalreporter
    tr.section(f"notebook execution times ({'fast' if os.environ.get('COURSE_FAST') == '1' else 'full'} mode)")
    for path, seconds in sorted(_notebook_seconds.items()):
        flag = "FAILED" if path in _notebook_failed else ("over budget" if seconds > NOTEBOOK_BUDGET_S else "ok")
        tr.write_line(f"{seconds:7.1f} s  {flag:11s}  {_notebook_figures.get(path, 0):3d} figures  {path}")
    tr.write_line(
        f"{sum(_notebook_seconds.values()):7.1f} s  total ({len(_notebook_seconds)} notebooks, "
        f"budget {NOTEBOOK_BUDGET_S:.0f} s each)"
    )


def execute_notebook(path: Path, timeout: int = 600) -> None:
    """Run a notebook top to bottom in a fresh kernel (used when a test needs its records)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()


@pytest.fixture(scope="session")
def notebook_records():
    """``notebook_records("lectures/L00_learning_recipe.ipynb")`` -> the dict of values it recorded.

    Reuses the records written when nbval ran the notebook earlier in this session; executes
    the notebook itself when it has not run (e.g. when only tests/ was selected).
    """
    from course_utils.records import load_records

    def get(relative_path: str) -> dict:
        path = ROOT / relative_path
        if not path.exists():
            raise FileNotFoundError(f"{relative_path} does not exist")
        key = path.stem
        try:
            return load_records(key)
        except FileNotFoundError:
            execute_notebook(path)
            return load_records(key)

    return get


def load_scratch_cells(relative_path: str, required: tuple[str, ...] = (), preload: dict | None = None) -> dict:
    """Execute a notebook's cells tagged ``scratch`` (its from-scratch code) and return their namespace.

    Tests use it to check the exact code a student reads against PyTorch, without running the whole
    notebook. ``preload`` holds the imports those cells expect; ``required`` names that must be defined.
    """
    import nbformat

    path = ROOT / relative_path
    nb = nbformat.read(path, as_version=4)
    namespace: dict = dict(preload or {})
    tagged = [c for c in nb.cells if "scratch" in c.metadata.get("tags", [])]
    assert tagged, f"no cells tagged 'scratch' in {relative_path}"
    for cell in tagged:
        exec(compile(cell.source, f"<{relative_path} scratch cell>", "exec"), namespace)
    missing = [name for name in required if name not in namespace]
    assert not missing, f"{relative_path} no longer defines {missing}"
    return namespace
