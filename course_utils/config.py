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
    (default: ``~/.cache/dl-course``). A folder that cannot be used (a file, not creatable, read-only) is
    reported when data is first loaded or saved, with what to do; it never breaks a notebook's first cell.
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


class DataDirError(RuntimeError):
    """The data folder (``COURSE_DATA_DIR`` or the default cache) cannot be used; the message says what to do."""


_FIX = (
    "Set COURSE_DATA_DIR to a folder you can write to (for example `export COURSE_DATA_DIR=$HOME/dl-course-data`"
    ", or os.environ['COURSE_DATA_DIR'] = ... in the notebook's first cell) or unset it to use {default}."
)


def _default_data_dir() -> Path:
    return Path.home() / ".cache" / "dl-course"


def _configured_data_dir() -> tuple[Path, str]:
    """The data folder and where that choice came from (for messages)."""
    raw = os.environ.get("COURSE_DATA_DIR", "").strip()
    if raw:
        return Path(raw).expanduser(), f"COURSE_DATA_DIR={raw!r}"
    return _default_data_dir(), "the default cache folder"


def _problem(path: Path, origin: str, writable: bool) -> str | None:
    """Why ``path`` cannot serve as the data folder, or None. Creates nothing."""
    if path.exists() and not path.is_dir():
        return f"{origin} names {path}, which is a file, not a folder"
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        return f"{origin}: {path} cannot be created ({existing} is not a folder)"
    if (writable or existing != path) and not os.access(existing, os.W_OK | os.X_OK):
        what = "is read-only" if existing == path else f"cannot be created: {existing} is read-only"
        return f"{origin}: {path} {what}"
    return None


def data_dir_problem(writable: bool = True) -> str | None:
    """What is wrong with the data folder (None: nothing). ``writable=False`` accepts a read-only folder."""
    path, origin = _configured_data_dir()
    return _problem(path, origin, writable)


def data_dir(create: bool = True) -> Path:
    """Folder that caches data sets and checkpoints (``COURSE_DATA_DIR``; created if missing).

    An existing read-only folder is returned as it is (cached data can still be read from it); a folder
    that is a file or cannot be created raises :class:`DataDirError`, which names the variable and says
    what to do.
    """
    path, origin = _configured_data_dir()
    problem = _problem(path, origin, writable=False)
    if problem:
        raise DataDirError(f"The data folder cannot be used: {problem}. {_FIX.format(default=_default_data_dir())}")
    if create and not path.exists():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DataDirError(
                f"The data folder {path} ({origin}) cannot be created: {err.strerror or err}. "
                f"{_FIX.format(default=_default_data_dir())}"
            ) from err
    return path


def writable_data_subdir(name: str) -> Path:
    """``data_dir()/name``, created if missing; :class:`DataDirError` with what to do when it cannot be written."""
    path = data_dir() / name
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "read-only folder")
    except OSError as err:
        _, origin = _configured_data_dir()
        raise DataDirError(
            f"Cannot write to {path} ({origin}): {err.strerror or err}. {_FIX.format(default=_default_data_dir())}"
        ) from err
    return path


def mode_summary() -> str:
    """One line telling the reader which mode this notebook runs in (never fails: a bad data folder is
    reported here and explained when data is loaded)."""
    mode = "FAST (small data, few epochs)" if is_fast_mode() else "FULL"
    net = "offline (no downloads)" if is_offline() else "online allowed"
    path, _ = _configured_data_dir()
    problem = data_dir_problem()
    cache = f"{path}" + (f" (WARNING: {problem}; set COURSE_DATA_DIR to a writable folder)" if problem else "")
    return f"mode: {mode} | data: {net} | cache: {cache}"
