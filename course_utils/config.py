"""Course-wide switches read from environment variables.

Every notebook and test reads the same three switches, so one ``export`` changes the
behaviour of the whole course:

``COURSE_FAST``
    ``1`` shrinks data sets and epochs so that a notebook runs top to bottom on a laptop
    CPU in well under a minute (CI sets it). Unset or ``0``: full mode.
``COURSE_OFFLINE``
    ``1`` never touches the network: data loaders use the offline sources
    (real MNIST subset, real 8x8 digits, procedural stand-ins). CI sets it.
``COURSE_DATA_DIR``
    Where downloaded data sets and checkpoints are cached
    (default: ``~/.cache/dl-course``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def _flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(
        f"Environment variable {name}={os.environ[name]!r} is not a yes/no value. "
        f"Use {name}=1 to switch it on or {name}=0 (or unset it) to switch it off."
    )


def is_fast_mode() -> bool:
    """True when ``COURSE_FAST`` asks for the small, quick version of every notebook."""
    return _flag("COURSE_FAST")


def is_offline() -> bool:
    """True when ``COURSE_OFFLINE`` forbids network access (data comes from offline sources)."""
    return _flag("COURSE_OFFLINE")


def fast_or_full(fast: T, full: T) -> T:
    """Return ``fast`` in fast mode and ``full`` otherwise.

    >>> epochs = fast_or_full(1, 20)  # doctest: +SKIP
    """
    return fast if is_fast_mode() else full


def data_dir() -> Path:
    """Folder that caches data sets and checkpoints (created if missing)."""
    path = Path(os.environ.get("COURSE_DATA_DIR", Path.home() / ".cache" / "dl-course")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def mode_summary() -> str:
    """One line telling the reader which mode this notebook runs in."""
    mode = "FAST (small data, few epochs)" if is_fast_mode() else "FULL"
    net = "offline (no downloads)" if is_offline() else "online allowed"
    return f"mode: {mode} | data: {net} | cache: {data_dir()}"
