"""Paths and limits shared by the grading modules (and by nbgrader_config.py).

Two grading modes (``COURSE_GRADING_MODE``, or ``MODE=`` on the make targets):

* ``fast`` (default): every notebook runs with ``COURSE_FAST=1 COURSE_OFFLINE=1`` on a CPU, each cell within
  ``CELL_TIMEOUT_S`` seconds. The hidden tests' thresholds are tuned for this mode.
* ``full``: on a machine with a CUDA GPU only, ``COURSE_FAST=0`` (full data and training), each cell within
  ``FULL_CELL_TIMEOUT_S`` and each notebook within ``FULL_WALL_TIMEOUT_S``. Tests written with
  ``fast_or_full(...)`` then also check what only full training reaches (see docs/instructors.md).
  On a machine without a GPU full mode is refused (:func:`check_mode`), never run half-way.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CELL_TIMEOUT_S = 120  # per cell, while autograding in fast mode (fast mode needs a few seconds per cell)
WALL_TIMEOUT_S = 20 * 60  # per notebook, fast mode, restarts included
FULL_CELL_TIMEOUT_S = 45 * 60  # per cell in full mode (a whole training run on one GPU)
FULL_WALL_TIMEOUT_S = 3 * 60 * 60  # per notebook in full mode
MEMORY_BYTES = 6 * 1024**3  # per submission (RLIMIT_DATA), fast mode
FULL_MEMORY_BYTES = 48 * 1024**3  # full mode: full data sets in memory, CUDA's host allocations
MAX_OUTPUT_CHARS = 20_000  # per output, in the autograded notebook and in the feedback
HIDDEN_NOTE = "# (hidden tests: the grader ran further checks here; they are not shown)"
MODES = ("fast", "full")
MODE_VARIABLE = "COURSE_GRADING_MODE"
DATA_VARIABLE = "COURSE_GRADING_DATA_DIR"  # full mode: data sets the sandbox may read (COURSE_DATA_DIR inside)


class ModeError(RuntimeError):
    """Full-mode grading was asked for where it cannot run (no GPU)."""


def grading_mode(environ: dict | None = None) -> str:
    """The grading mode asked for: ``COURSE_GRADING_MODE`` (``fast`` when unset)."""
    mode = (environ if environ is not None else os.environ).get(MODE_VARIABLE, "fast").strip().lower() or "fast"
    if mode not in MODES:
        raise ValueError(f"{MODE_VARIABLE}={mode!r}: use one of {', '.join(MODES)}.")
    return mode


def gpu_name() -> str | None:
    """Name of the first CUDA GPU, or None (torch is imported only here, and only when asked)."""
    if os.environ.get("COURSE_GRADING_ASSUME_NO_GPU") == "1":  # tests of the refusal on a GPU machine
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def gpu_devices() -> list[str]:
    """The NVIDIA device nodes of this machine (bound into the sandbox in full mode)."""
    return sorted(str(p) for p in Path("/dev").glob("nvidia*") if not p.is_dir())


def check_mode(mode: str) -> str:
    """Return a one-line description of ``mode``, or raise ModeError when full mode has no GPU to run on."""
    if mode == "fast":
        return f"fast mode (COURSE_FAST=1, CPU, {CELL_TIMEOUT_S} s per cell, {WALL_TIMEOUT_S // 60} min per notebook)"
    data = os.environ.get(DATA_VARIABLE)
    if data and not Path(data).is_dir():
        raise ModeError(
            f"{DATA_VARIABLE}={data} is not a folder: point it at the downloaded data sets (no checkpoints)."
        )
    gpu = gpu_name()
    if gpu is None:
        raise ModeError(
            "Full-mode grading needs a CUDA GPU and this machine has none (torch.cuda.is_available() is False). "
            "Nothing was graded. Grade on a GPU machine, or grade in fast mode (leave out MODE=full / "
            f"unset {MODE_VARIABLE}): fast mode is what the hidden tests are tuned for."
        )
    return (
        f"full mode on {gpu} (COURSE_FAST=0, {FULL_CELL_TIMEOUT_S // 60} min per cell, "
        f"{FULL_WALL_TIMEOUT_S // 3600} h per notebook)"
    )


def mode_settings(mode: str, environ: dict | None = None) -> dict:
    """Environment, limits and read-only folders nbgrader_config.py applies for ``mode``.

    Full mode stays offline (the sandbox has no network): the real data sets must already be in a folder named by
    ``COURSE_GRADING_DATA_DIR``, which the sandbox then sees read-only as ``COURSE_DATA_DIR``. Keep checkpoints out
    of that folder, or ``fit_or_load`` could load a run instead of training the student's code.
    """
    environ = environ if environ is not None else os.environ
    if mode == "full":
        data = environ.get(DATA_VARIABLE, "")
        return {
            "env": {"COURSE_FAST": "0", "COURSE_OFFLINE": "1", **({"COURSE_DATA_DIR": data} if data else {})},
            "cell_timeout": FULL_CELL_TIMEOUT_S,
            "wall_timeout": FULL_WALL_TIMEOUT_S,
            "read_only": [data] if data else [],
            "devices": gpu_devices(),
            "memory_bytes": FULL_MEMORY_BYTES,
        }
    return {
        "read_only": [],
        "devices": [],
        "memory_bytes": MEMORY_BYTES,
        "env": {"COURSE_FAST": "1", "COURSE_OFFLINE": "1"},
        "cell_timeout": CELL_TIMEOUT_S,
        "wall_timeout": WALL_TIMEOUT_S,
    }
