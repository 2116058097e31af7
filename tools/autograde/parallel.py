"""Grade a whole class: every submission in its own sandbox, N at a time or on a Dask cluster, ONE gradebook writer.

``python -m tools.grading autograde ASSIGNMENT [--workers N | --scheduler tcp://HOST:PORT] [--force]``

Design (issue 14, on top of the sandbox of issue 10):

* **Unit of work** (:func:`grade_submission`, runs on a worker): a private temporary course (the course's
  ``nbgrader_config.py``, a snapshot of ``gradebook.db``, the release, the non-notebook files of the source folder,
  the one student's ``submitted/<student>/<assignment>/``) in which ``nbgrader autograde ASSIGNMENT --student S``
  runs exactly as an instructor would run it (same configuration, same sandbox, same preprocessors). It returns
  the files of ``autograded/<student>/<assignment>/`` as bytes and the student's rows of the private gradebook
  (auto scores, needs-manual flags, auto comments, late penalties, timestamp) as plain data. It never touches the
  real course folder, so it runs the same in a thread of this process or on another machine.
* **One writer** (:class:`Coordinator`): only this process writes ``gradebook.db`` and ``autograded/``. A student's
  rows are written through nbgrader's Gradebook API in ONE transaction (nbgrader's intermediate commits become
  flushes), with Ctrl-C deferred until it is committed; the autograded folder is swapped in by a rename. Workers
  never open the real gradebook: no SQLite lock errors, whatever N.
* **Resilience**: a submission whose worker fails, dies or hangs (past ``--timeout``) is retried once (on another
  Dask worker where there is one), then reported as failed; nothing is lost. A fingerprint (submission files +
  release + the gradebook's source cells + grader code and configuration) is stored per student under
  ``nbgrader_work/autograde/<assignment>/``; a second run skips unchanged submissions (``--force`` regrades all).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the ``tools`` package
# the grading code: a change regrades everything (this scheduling module is left out: it does not change scores)
GRADER_FILES = sorted(p for p in Path(__file__).resolve().parent.glob("*.py") if p.name != "parallel.py")
FINGERPRINT_DIR = Path("nbgrader_work") / "autograde"
IGNORED = ("__pycache__", ".ipynb_checkpoints", "*.pyc")
MAX_ATTEMPTS = 2  # first try + one retry elsewhere
STATUSES = ("graded", "needs a person", "failed", "skipped", "not graded")


# ================================================================================================
# Files as data (what travels to a worker and back)
# ================================================================================================


def read_tree(folder: Path, skip_notebooks: bool = False) -> dict[str, tuple[bytes, int]]:
    """``{relative path: (bytes, mode)}`` of every regular file under ``folder`` (none if it does not exist)."""
    out: dict[str, tuple[bytes, int]] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part in ("__pycache__", ".ipynb_checkpoints") for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_file() and not path.is_symlink() and not (skip_notebooks and path.suffix == ".ipynb"):
            out[rel.as_posix()] = (path.read_bytes(), path.stat().st_mode & 0o777)
    return out


def write_tree(files: dict[str, tuple[bytes, int]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for rel, (data, mode) in files.items():
        dest = (folder / rel).resolve()
        if folder.resolve() not in dest.parents:
            raise ValueError(f"refusing to write {rel!r} outside {folder}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        os.chmod(dest, mode or 0o644)


def snapshot_gradebook(db: Path) -> bytes:
    """A consistent copy of an SQLite gradebook (sqlite3's backup API), as bytes."""
    with tempfile.TemporaryDirectory(prefix="gradebook-snapshot-") as tmp:
        target = Path(tmp) / "gradebook.db"
        src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        return target.read_bytes()


@dataclass
class Bundle:
    """What every worker needs once per run (Dask: scattered to every worker)."""

    assignment: str
    config: bytes  # the course's nbgrader_config.py
    gradebook: bytes  # snapshot of gradebook.db
    release: dict[str, tuple[bytes, int]]  # assignments/<assignment>/
    source_files: dict[str, tuple[bytes, int]]  # solutions/<assignment>/ without notebooks
    threads: int = 1  # OMP/MKL threads of one sandboxed notebook
    timeout: float = 1800.0  # s for one `nbgrader autograde --student` run


@dataclass
class Outcome:
    """What one grading attempt returns (plain data: it travels back from Dask workers)."""

    student: str
    ok: bool
    rows: dict = field(default_factory=dict)
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    seconds: float = 0.0
    worker: str = ""
    error: str = ""
    log_tail: str = ""


# ================================================================================================
# The unit of work: one student in a private temporary course
# ================================================================================================

_RUNNING: dict[int, Any] = {}  # nbgrader processes of this process (killed on Ctrl-C)
_RUNNING_LOCK = threading.Lock()


def _config_text(bundle: Bundle) -> str:
    extra = [f"{name}={bundle.threads}" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")]
    return (
        bundle.config.decode() + "\n\n# --- added by tools.autograde.parallel for this private grading copy ---\n"
        f"c.SandboxedExecute.sandbox_env = list(c.SandboxedExecute.sandbox_env) + {extra!r}\n"
    )


def read_rows(db_url: str, assignment: str, student: str) -> dict:
    """The student's rows that ``nbgrader autograde`` writes, as plain data."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        sub = gb.find_submission(assignment, student)
        notebooks = {}
        for nb in sub.notebooks:
            notebooks[nb.name] = {
                "late_submission_penalty": nb.late_submission_penalty,
                "grades": {
                    g.name: {
                        "auto_score": g.auto_score,
                        "manual_score": g.manual_score,
                        "needs_manual_grade": bool(g.needs_manual_grade),
                    }
                    for g in nb.grades
                },
                "comments": {c.name: {"auto_comment": c.auto_comment} for c in nb.comments},
            }
        return {
            "timestamp": sub.timestamp.isoformat() if sub.timestamp else None,
            "notebooks": notebooks,
            "score": float(sub.score),
            "max_score": float(sub.max_score),
            "needs_manual_grade": bool(sub.needs_manual_grade),
        }


def _kill_group(proc) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=30)


def grade_submission(bundle: Bundle, student: str, files: dict[str, tuple[bytes, int]]) -> Outcome:
    """Grade one student's submission in a private temporary course with ``nbgrader autograde --student``.

    Pure as far as the course is concerned: inputs are data, the result is data, nothing outside a temporary
    folder is written. Runs in a thread of the coordinator or on a Dask worker (which needs this repository's
    ``tools`` package importable, the course's virtual environment and the sandbox's tools; docs/instructors.md).
    """
    t0 = time.monotonic()
    worker = _worker_name()
    a = bundle.assignment
    with tempfile.TemporaryDirectory(prefix=f"autograde-{a}-") as tmp:
        course = Path(tmp)
        (course / "nbgrader_config.py").write_text(_config_text(bundle))
        (course / "gradebook.db").write_bytes(bundle.gradebook)
        write_tree(bundle.release, course / "assignments" / a)
        write_tree(bundle.source_files, course / "solutions" / a)
        write_tree(files, course / "submitted" / student / a)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(PACKAGE_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        env.update({"COURSE_FAST": env.get("COURSE_FAST", "1"), "COURSE_OFFLINE": env.get("COURSE_OFFLINE", "1")})
        argv = ["autograde", a, "--student", student]
        log = course / "nbgrader.log"
        proc = _start_nbgrader(argv, course, env, log)
        with _RUNNING_LOCK:
            _RUNNING[proc.pid] = proc
        try:
            try:
                code = proc.wait(timeout=bundle.timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                return Outcome(
                    student,
                    False,
                    seconds=time.monotonic() - t0,
                    worker=worker,
                    error=f"grading took longer than {bundle.timeout:.0f} s and was stopped",
                    log_tail=_tail(log),
                )
        finally:
            with _RUNNING_LOCK:
                _RUNNING.pop(proc.pid, None)
        out_dir = course / "autograded" / student / a
        if code != 0 or not any(out_dir.glob("*.ipynb")):
            return Outcome(
                student,
                False,
                seconds=time.monotonic() - t0,
                worker=worker,
                log_tail=_tail(log),
                error=f"nbgrader autograde exited with {code}"
                + ("" if any(out_dir.glob("*.ipynb")) else " and wrote no autograded notebook"),
            )
        rows = read_rows(f"sqlite:///{course / 'gradebook.db'}", a, student)
        return Outcome(
            student,
            True,
            rows=rows,
            files=read_tree(out_dir),
            seconds=time.monotonic() - t0,
            worker=worker,
            log_tail=_tail(log, 3000),
        )


# --- starting nbgrader: forked from a server that imported nbgrader once, or a plain subprocess -------------
# ``python -m nbgrader`` spends seconds of CPU importing nbgrader, nbconvert and SQLAlchemy before it grades; a
# multiprocessing fork server with those modules preloaded starts each run in milliseconds. Every submission
# still gets a fresh process (and its own sandbox). Where multiprocessing cannot start children (daemonic Dask
# worker processes) or AUTOGRADE_FORKSERVER=0, a plain subprocess is used.
PRELOAD = [
    "nbgrader.apps.nbgraderapp",
    "nbgrader.converters.autograde",
    "nbgrader.api",
    "nbconvert",
    "nbformat",
    "tools.autograde.nbgrader_plugin",
]
_CTX: list = []


def _nbgrader_child(argv: list[str], course: str, env: dict[str, str], log: str) -> None:
    """Body of a forked grading process: what ``python -m nbgrader ARGV`` in ``course`` does."""
    os.setsid()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.chdir(course)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["nbgrader", *argv]
    from nbgrader.apps.nbgraderapp import main

    main()


class _ForkedRun:
    """A multiprocessing Process with the part of Popen's interface used here."""

    def __init__(self, process):
        self.process = process
        self.pid = process.pid

    def wait(self, timeout: float | None = None) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired("nbgrader", timeout or 0)
        return self.process.exitcode


def _start_nbgrader(argv: list[str], course: Path, env: dict[str, str], log: Path):
    if os.environ.get("AUTOGRADE_FORKSERVER", "1") != "0" and sys.platform.startswith("linux"):
        try:
            import multiprocessing

            if not _CTX:
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(PRELOAD)
                _CTX.append(ctx)
            process = _CTX[0].Process(target=_nbgrader_child, args=(argv, str(course), env, str(log)), daemon=False)
            process.start()
            return _ForkedRun(process)
        except (AssertionError, OSError, ValueError):  # e.g. "daemonic processes are not allowed to have children"
            pass
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "nbgrader", *argv],
            cwd=course,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _worker_name() -> str:
    """The Dask worker's address when running on one, else host:pid."""
    if "distributed" in sys.modules:
        with contextlib.suppress(Exception):
            from distributed import get_worker

            return get_worker().address
    return f"{socket.gethostname()}:{os.getpid()}"


def _tail(path: Path, chars: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def kill_running() -> None:
    """Kill every nbgrader process this process started (Ctrl-C)."""
    with _RUNNING_LOCK:
        procs = list(_RUNNING.values())
    for proc in procs:
        _kill_group(proc)


# ================================================================================================
# The one writer
# ================================================================================================


@contextlib.contextmanager
def deferred_sigint():
    """Ctrl-C during the block is held back and raised right after it (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list = []
    previous = signal.signal(signal.SIGINT, lambda *a: caught.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


def write_rows(
    db_url: str, assignment: str, student: str, rows: dict, _between: Callable[[], None] | None = None
) -> None:
    """Write one student's autograde rows into the real gradebook in ONE transaction (all or nothing).

    The same rows ``nbgrader autograde`` writes: the student and submission (created if missing, timestamp),
    per notebook the late penalty, per grade ``auto_score`` and ``needs_manual_grade``, per comment
    ``auto_comment``. Manual scores and comments already in the gradebook stay. ``_between`` (tests) runs after
    the first rows are staged, before the commit.
    """
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    with Gradebook(db_url) as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's add_submission warns the same way when it runs
        session = gb.db
        session.commit = session.flush  # nbgrader's API commits after every call: stage instead
        try:
            gb.update_or_create_student(student)
            sub = gb.update_or_create_submission(assignment, student)
            sub.timestamp = _dt.datetime.fromisoformat(rows["timestamp"]) if rows.get("timestamp") else None
            if _between is not None:
                _between()
            for nb in sub.notebooks:
                data = rows["notebooks"].get(nb.name)
                if data is None:
                    raise ValueError(f"the worker returned no rows for notebook {nb.name} of {student}")
                nb.late_submission_penalty = data["late_submission_penalty"]
                for grade in nb.grades:
                    g = data["grades"][grade.name]
                    grade.auto_score = g["auto_score"]
                    grade.needs_manual_grade = g["needs_manual_grade"]
                for comment in nb.comments:
                    comment.auto_comment = data["comments"][comment.name]["auto_comment"]
            del session.commit
            session.commit()
        except BaseException:
            with contextlib.suppress(AttributeError):
                del session.commit
            session.rollback()
            raise


def place_autograded(root: Path, assignment: str, student: str, files: dict[str, tuple[bytes, int]]) -> None:
    """Swap ``autograded/<student>/<assignment>/`` for the worker's copy (built aside, then renamed)."""
    parent = root / "autograded" / student
    parent.mkdir(parents=True, exist_ok=True)
    dest = parent / assignment
    fresh = parent / f".{assignment}.partial-{os.getpid()}"
    old = parent / f".{assignment}.old-{os.getpid()}"
    for stale in (fresh, old):
        shutil.rmtree(stale, ignore_errors=True)
    write_tree(files, fresh)
    if dest.exists():
        dest.rename(old)
    fresh.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


# ================================================================================================
# Fingerprints: a second run grades only what changed
# ================================================================================================


def grader_version(root: Path) -> str:
    """Hash of the grading code and configuration (a change regrades everything)."""
    import nbgrader

    h = hashlib.sha256(f"nbgrader {nbgrader.__version__}\n".encode())
    grading = sorted((PACKAGE_ROOT / "tools" / "grading").glob("*.py"))
    for path in GRADER_FILES + [root / "nbgrader_config.py", *grading]:
        if path.exists():
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _hash_tree(h, files: dict[str, tuple[bytes, int]]) -> None:
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + hashlib.sha256(files[rel][0]).digest())


def assignment_fingerprint(root: Path, db_url: str, assignment: str, bundle: Bundle) -> str:
    """Release + source files + the gradebook's source cells and points + grader version."""
    from nbgrader.api import Gradebook

    h = hashlib.sha256(grader_version(root).encode())
    h.update(bundle.config)  # the configuration graded with (e.g. the grading mode a caller put into it)
    _hash_tree(h, bundle.release)
    _hash_tree(h, bundle.source_files)
    with Gradebook(db_url) as gb:
        for nb in sorted(gb.find_assignment(assignment).notebooks, key=lambda n: n.name):
            for cell in sorted(nb.source_cells, key=lambda c: c.name):
                h.update(f"{nb.name}/{cell.name}/{cell.checksum}/{cell.locked}\0".encode() + cell.source.encode())
            for cell in sorted(nb.grade_cells, key=lambda c: c.name):
                h.update(f"{nb.name}/{cell.name}/{cell.max_score}\0".encode())
    return h.hexdigest()


def submission_fingerprint(base: str, files: dict[str, tuple[bytes, int]]) -> str:
    h = hashlib.sha256(base.encode())
    _hash_tree(h, files)
    return h.hexdigest()


def _fingerprint_path(root: Path, assignment: str, student: str) -> Path:
    return root / FINGERPRINT_DIR / assignment / f"{student}.json"


def stored_fingerprint(root: Path, assignment: str, student: str) -> str | None:
    try:
        return json.loads(_fingerprint_path(root, assignment, student).read_text()).get("fingerprint")
    except (OSError, ValueError):
        return None


def store_fingerprint(root: Path, assignment: str, student: str, fingerprint: str, score: float) -> None:
    path = _fingerprint_path(root, assignment, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {"fingerprint": fingerprint, "score": score, "graded_at": _dt.datetime.now(_dt.timezone.utc).isoformat()}
        )
    )
    tmp.replace(path)


def graded_students(db_url: str, assignment: str) -> dict[str, tuple[float, float]]:
    """``{student: (score, max_score)}`` of every submission of ``assignment`` in the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gb:
        try:
            return {
                s.student.id: (float(s.score), float(s.max_score)) for s in gb.find_assignment(assignment).submissions
            }
        except MissingEntry:
            return {}


# ================================================================================================
# Coordinator
# ================================================================================================


@dataclass
class Row:
    student: str
    status: str
    score: float | None = None
    max_score: float | None = None
    seconds: float = 0.0
    attempts: int = 0
    worker: str = ""
    note: str = ""


class LocalBackend:
    """N submissions at a time, each in its own ``nbgrader autograde --student`` process (and sandbox)."""

    def __init__(self, workers: int, grade: Callable = grade_submission):
        self.workers = max(1, workers)
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="autograde")
        self.grade = grade
        self.bundle: Bundle | None = None

    def start(self, bundle: Bundle) -> None:
        self.bundle = bundle

    def submit(self, student: str, files: dict, avoid: str | None = None):
        return self.pool.submit(self.grade, self.bundle, student, files)

    def workers_of(self) -> list[str]:
        return []

    def close(self, cancel: bool = False) -> None:
        if cancel:
            kill_running()
        self.pool.shutdown(wait=not cancel, cancel_futures=True)

    def describe(self) -> str:
        return f"{self.workers} local worker{'s' * (self.workers != 1)}"


class DaskBackend:
    """The same unit of work on a Dask distributed cluster (``--scheduler tcp://HOST:PORT`` or a Client)."""

    def __init__(self, scheduler: Any, grade: Callable = grade_submission):
        from distributed import Client

        self.own_client = not hasattr(scheduler, "submit")
        self.client = Client(scheduler, timeout="60s") if self.own_client else scheduler
        self.grade = grade
        self.bundle: Bundle | None = None
        self.bundle_future = None
        self.counter = 0

    def start(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.bundle_future = self.client.scatter(bundle, broadcast=True, hash=False)

    def _shared_data(self):
        """The scattered bundle, scattered again if the workers that held it died (Dask cannot recompute it)."""
        if self.bundle_future is None or self.bundle_future.status != "finished":
            self.bundle_future = self.client.scatter(self.bundle, broadcast=True, hash=False)
        return self.bundle_future

    def workers_of(self) -> list[str]:
        return list(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def submit(self, student: str, files: dict, avoid: str | None = None):
        self.counter += 1
        workers = [w for w in self.workers_of() if avoid is None or w != avoid] or None
        return self.client.submit(
            self.grade,
            self._shared_data(),
            student,
            files,
            pure=False,
            retries=0,
            key=f"autograde-{student}-{self.counter}-{uuid.uuid4().hex[:12]}",
            workers=workers,
            allow_other_workers=workers is None,
        )

    def close(self, cancel: bool = False) -> None:
        if self.own_client:
            self.client.close()

    def describe(self) -> str:
        return f"Dask cluster at {self.client.scheduler.address} ({len(self.workers_of())} workers)"


MAX_LOST = 3  # resubmissions of a task the cluster itself cancelled (not counted as attempts)


def _lost_by_the_cluster(err: BaseException) -> bool:
    """True for Dask's 'cancelled' errors (a task or its scattered input was forgotten), not for grading errors."""
    import concurrent.futures

    return isinstance(err, (concurrent.futures.CancelledError, asyncio.CancelledError)) or type(err).__name__ in (
        "FutureCancelledError",
        "CancelledError",
    )


def _future_worker(fut) -> str | None:
    """The Dask worker that ran (or is running) a future, if the scheduler still knows."""
    with contextlib.suppress(Exception):
        who = fut.client.who_has(fut).get(fut.key)
        if who:
            return who[0]
    return None


class Coordinator:
    """Plans, dispatches, retries and writes (the only writer of gradebook.db and autograded/)."""

    def __init__(
        self,
        root: Path,
        assignment: str,
        backend,
        *,
        students: list[str] | None = None,
        force: bool = False,
        threads: int = 1,
        timeout: float = 1800.0,
        progress: bool = True,
    ):
        self.root, self.assignment, self.backend = Path(root).resolve(), assignment, backend
        self.only, self.force, self.threads, self.timeout, self.progress = students, force, threads, timeout, progress
        self.db = self.root / "gradebook.db"
        self.db_url = f"sqlite:///{self.db}"
        self.rows: dict[str, Row] = {}
        self.interrupted = False

    # -- planning --------------------------------------------------------------------------------
    def submissions(self) -> dict[str, Path]:
        base = self.root / "submitted"
        found = {
            p.parent.name: p
            for p in sorted(base.glob(f"*/{self.assignment}"))
            if p.is_dir() and not p.parent.name.startswith(".") and any(p.glob("*.ipynb"))
        }
        if self.only:
            missing = sorted(set(self.only) - set(found))
            if missing:
                raise KeyError(f"no submission of {self.assignment} in {base} for: {', '.join(missing)}")
            found = {s: found[s] for s in self.only}
        return found

    def bundle(self) -> Bundle:
        if not self.db.exists():
            raise FileNotFoundError(f"No gradebook at {self.db}: run `python -m tools.release` first.")
        release = read_tree(self.root / "assignments" / self.assignment)
        if not release:
            raise FileNotFoundError(
                f"No release of {self.assignment} in {self.root / 'assignments'}: run `python -m tools.release` first."
            )
        return Bundle(
            self.assignment,
            (self.root / "nbgrader_config.py").read_bytes(),
            snapshot_gradebook(self.db),
            release,
            read_tree(self.root / "solutions" / self.assignment, skip_notebooks=True),
            threads=self.threads,
            timeout=self.timeout,
        )

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> list[Row]:
        found = self.submissions()
        bundle = self.bundle()
        base = assignment_fingerprint(self.root, self.db_url, self.assignment, bundle)
        in_gradebook = graded_students(self.db_url, self.assignment)
        todo: dict[str, tuple[dict, str]] = {}
        for student, folder in found.items():
            files = read_tree(folder)
            fp = submission_fingerprint(base, files)
            unchanged = (
                stored_fingerprint(self.root, self.assignment, student) == fp
                and student in in_gradebook
                and (self.root / "autograded" / student / self.assignment).is_dir()
            )
            if unchanged and not self.force:
                score, max_score = in_gradebook[student]
                self.rows[student] = Row(
                    student, "skipped", score, max_score, note="unchanged since the last run (--force regrades)"
                )
            else:
                todo[student] = (files, fp)
        if todo:
            self.backend.start(bundle)
            self._dispatch(todo)
        return [self.rows[s] for s in sorted(self.rows)]

    def _dispatch(self, todo: dict[str, tuple[dict, str]]) -> None:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(todo),
            desc=f"grading {self.assignment}",
            unit="submission",
            disable=not self.progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        attempts = {s: 1 for s in todo}
        lost = {s: 0 for s in todo}
        running = {s: (self.backend.submit(s, files), time.monotonic()) for s, (files, _) in todo.items()}
        hang_after = self.timeout + 120.0  # a worker that does not answer by then is presumed hung
        try:
            while running:
                progressed = False
                for student, (fut, started) in list(running.items()):
                    outcome = None
                    if fut.done():
                        try:
                            outcome = fut.result()
                        except Exception as err:  # noqa: BLE001 (a dead worker, KilledWorker, a bug: retried)
                            if _lost_by_the_cluster(err) and lost[student] < MAX_LOST:
                                # the cluster lost the task (e.g. the scattered data died with a worker):
                                # not the submission's fault, so it does not use up an attempt
                                lost[student] += 1
                                running[student] = (self.backend.submit(student, todo[student][0]), time.monotonic())
                                continue
                            outcome = Outcome(student, False, error=f"{type(err).__name__}: {err}"[:2000])
                        worker = outcome.worker or _future_worker(fut)
                    elif time.monotonic() - started > hang_after:
                        fut.cancel()
                        worker = _future_worker(fut)
                        outcome = Outcome(student, False, error=f"no answer from the worker after {hang_after:.0f} s")
                    else:
                        continue
                    progressed = True
                    del running[student]
                    if not outcome.ok and attempts[student] < MAX_ATTEMPTS:
                        attempts[student] += 1
                        running[student] = (
                            self.backend.submit(student, todo[student][0], avoid=worker),
                            time.monotonic(),
                        )
                        bar.write(f"{student}: {outcome.error or 'failed'}; retrying")
                        continue
                    self._finish(outcome, todo[student][1], attempts[student], worker or "")
                    bar.update(1)
                    counts = {k: sum(r.status == k for r in self.rows.values()) for k in STATUSES[:3]}
                    bar.set_postfix_str(", ".join(f"{k}: {v}" for k, v in counts.items()))
                if not progressed:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            self.interrupted = True
            for student in running:
                self.rows[student] = Row(
                    student, "not graded", attempts=attempts[student], note="interrupted (Ctrl-C): nothing written"
                )
            self.backend.close(cancel=True)
            raise
        finally:
            bar.close()
        self.backend.close()

    def _finish(self, outcome: Outcome, fingerprint: str, attempts: int, worker: str) -> None:
        student = outcome.student
        if not outcome.ok:
            note = outcome.error + (f"\n{outcome.log_tail[-1500:]}" if outcome.log_tail else "")
            self.rows[student] = Row(
                student, "failed", seconds=outcome.seconds, attempts=attempts, worker=worker, note=note.strip()
            )
            return
        rows = outcome.rows
        with deferred_sigint():
            place_autograded(self.root, self.assignment, student, outcome.files)
            write_rows(self.db_url, self.assignment, student, rows)
            store_fingerprint(self.root, self.assignment, student, fingerprint, rows["score"])
        status = "needs a person" if rows["needs_manual_grade"] else "graded"
        note = ""
        if rows["needs_manual_grade"]:
            cells = sorted(
                name for nb in rows["notebooks"].values() for name, g in nb["grades"].items() if g["needs_manual_grade"]
            )
            note = "to grade by hand: " + ", ".join(cells)
        self.rows[student] = Row(
            student, status, rows["score"], rows["max_score"], outcome.seconds, attempts, outcome.worker, note
        )


# ================================================================================================
# Reporting and the command line
# ================================================================================================


def format_summary(assignment: str, rows: list[Row], seconds: float, backend: str) -> str:
    width = max([len("student")] + [len(r.student) for r in rows])
    lines = [
        f"{assignment}: {len(rows)} submissions, {backend}, {seconds:.1f} s",
        f"{'student':<{width}}  {'status':<14}  {'score':>11}  {'seconds':>7}  tries  notes",
    ]
    for r in rows:
        score = f"{r.score:5.1f}/{r.max_score:<5.1f}" if r.score is not None else f"{'-':>11}"
        note = r.note.splitlines()[0][:200] if r.note else ""
        lines.append(f"{r.student:<{width}}  {r.status:<14}  {score}  {r.seconds:7.1f}  {r.attempts:>5}  {note}")
    counts = ", ".join(f"{k}: {sum(r.status == k for r in rows)}" for k in STATUSES)
    lines.append(counts)
    return "\n".join(lines)


def cpu_count() -> int:
    """Cores this process may use (the affinity mask, e.g. under Slurm or a container), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def add_arguments(p) -> None:
    """The options of ``python -m tools.grading autograde`` (called by tools/grading/cli.py)."""
    p.add_argument("assignment")
    p.add_argument(
        "--workers",
        type=int,
        default=cpu_count(),
        help="submissions graded at once on this machine (default: the number of cores)",
    )
    p.add_argument(
        "--scheduler",
        help="grade on a Dask distributed cluster instead, e.g. tcp://HOST:8786 "
        "(docs/instructors.md, 'Grading a whole class')",
    )
    p.add_argument("--student", action="append", help="grade only this student (repeatable)")
    p.add_argument("--force", action="store_true", help="regrade submissions that did not change since the last run")
    p.add_argument(
        "--threads", type=int, default=0, help="CPU threads of one submission (default: cores / workers, at least 1)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="seconds for one submission before its worker is presumed hung (then retried once)",
    )
    p.add_argument("--json", type=Path, help="also write the summary as JSON to this file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_cli(args, root: Path) -> int:
    """``python -m tools.grading autograde``: returns 0 if every submission was graded, 1 if some failed."""
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1 (got {args.workers})")
    backend = DaskBackend(args.scheduler) if args.scheduler else LocalBackend(args.workers)
    threads = args.threads or max(1, cpu_count() // max(1, args.workers))
    coord = Coordinator(
        root,
        args.assignment,
        backend,
        students=args.student,
        force=args.force,
        threads=threads,
        timeout=args.timeout,
        progress=not args.no_progress,
    )
    t0 = time.monotonic()
    try:
        rows = coord.run()
        backend.close()
    except KeyboardInterrupt:
        rows = [coord.rows[s] for s in sorted(coord.rows)]
        print(format_summary(args.assignment, rows, time.monotonic() - t0, backend.describe()))
        print(
            "interrupted: the gradebook holds every submission graded so far (each written whole); "
            "run the same command again to grade the rest",
            file=sys.stderr,
        )
        return 130
    print(format_summary(args.assignment, rows, time.monotonic() - t0, backend.describe()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    for r in rows:
        if r.status == "failed":
            print(f"\nFAILED {r.student} after {r.attempts} tries: {r.note}", file=sys.stderr)
    return 1 if any(r.status == "failed" for r in rows) else 0


__all__ = [
    "Bundle",
    "Coordinator",
    "DaskBackend",
    "LocalBackend",
    "Outcome",
    "Row",
    "add_arguments",
    "format_summary",
    "grade_submission",
    "run_cli",
    "write_rows",
]
