"""Record the numbers a notebook teaches so that the test-suite can check them.

A notebook computes a number (a loss, an output size, a parameter count) and passes it
through :func:`record`, which returns it unchanged. When the environment variable
``COURSE_RECORD_DIR`` is set (the test-suite sets it), the value is also appended to
``<COURSE_RECORD_DIR>/<notebook-key>.json``; tests under ``tests/`` then assert the values.
Outside the tests :func:`record` does nothing but return its argument.

The notebook key is this module's own state: :func:`set_notebook` (called by ``setup_notebook`` in a
notebook's first cell) sets it, :func:`current_notebook` reads it, and :func:`recording_as` sets it for a
block only. Nothing is handed over through environment variables (only the folder is: the test-suite
that sets it runs the notebooks in other processes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

_DEFAULT_NOTEBOOK = "default"
_notebook = _DEFAULT_NOTEBOOK  # the key later record() calls write under; set_notebook() sets it


def _to_jsonable(value: Any) -> Any:
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    raise TypeError(
        f"record() can store numbers, strings, lists, dicts and arrays, not {type(value).__name__}. "
        "Convert the value first (e.g. float(x) or x.tolist())."
    )


def record(key: str, value: Any, notebook: str | None = None) -> Any:
    """Return ``value``; if ``COURSE_RECORD_DIR`` is set, also store it under ``key``.

    ``notebook`` defaults to :func:`current_notebook` (``"default"`` until :func:`set_notebook`, which
    notebooks call through ``setup_notebook`` in their first cell).
    """
    if not key or not isinstance(key, str):
        raise ValueError("record() needs a non-empty string key, e.g. record('hinge_mean', loss).")
    folder = os.environ.get("COURSE_RECORD_DIR")
    if folder:
        name = notebook or _notebook
        path = Path(folder) / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.loads(path.read_text()) if path.exists() else {}
        data[key] = _to_jsonable(value)
        path.write_text(json.dumps(data, indent=1, sort_keys=True))
    return value


def record_many(**values: Any) -> None:
    """Record several values at once: ``record_many(hinge_mean=m, hinge_losses=losses)``.

    Same as one :func:`record` per keyword, in the order given. Lectures call it from one
    compact cell per section (tagged ``record``), so that teaching cells hold plain code.
    Returns ``None`` so that a cell ending with it echoes nothing.
    """
    if not values:
        raise ValueError("record_many() needs at least one keyword, e.g. record_many(hinge_mean=loss).")
    for key, value in values.items():
        record(key, value)


def set_notebook(name: str) -> None:
    """Name the file that later :func:`record` calls write to (one per notebook)."""
    global _notebook
    _notebook = _check_key(name)


def current_notebook() -> str:
    """The key later :func:`record` calls write under (``"default"`` before any :func:`set_notebook`)."""
    return _notebook


@contextmanager
def recording_as(name: str) -> Iterator[None]:
    """Record under notebook key ``name`` inside the block, then restore the previous key."""
    global _notebook
    previous, _notebook = _notebook, _check_key(name)
    try:
        yield
    finally:
        _notebook = previous


def _check_key(name: str) -> str:
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"Notebook key {name!r} may contain only letters, digits, '-' and '_'.")
    return name


def load_records(name: str, folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read back the values that notebook ``name`` recorded (used by the tests)."""
    folder = folder or os.environ.get("COURSE_RECORD_DIR")
    if not folder:
        raise RuntimeError("COURSE_RECORD_DIR is not set; there is nowhere to read records from.")
    path = Path(folder) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"No records for notebook {name!r} in {folder}; was the notebook executed?")
    return json.loads(path.read_text())
