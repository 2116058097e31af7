"""Grade one notebook in the sandbox: the trusted side of the protocol (it never runs student code).

:func:`grade_cells` is pure in the sense a worker pool needs: inputs (cells with their kinds and pristine
sources, limits, a folder of extra files) -> :class:`Result` (outputs per cell, verdicts per test cell, a log).
It starts a sandboxed harness, answers its requests for test sources (each with a fresh secret), accepts only
authenticated messages in the expected order and verdicts sealed with that test's secret. If the harness dies,
hangs past the time limit or breaks the protocol during a cell, that cell is recorded as failed and a fresh
sandbox replays the notebook without it; verdicts already given stand. Whatever has no verdict scores 0.
"""

from __future__ import annotations

import ast
import hmac
import os
import secrets
import select
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.autograde import protocol
from tools.autograde.sandbox import Limits, Sandbox, course_utils_dir

ALWAYS_PRELOAD = ["numpy", "matplotlib", "matplotlib.pyplot", "course_utils"]
LOG_CAP = 200_000


@dataclass
class Cell:
    """One cell of the plan: ``kind`` is ``student`` (as submitted), ``locked`` or ``test`` (pristine source)."""

    index: int
    kind: str
    source: str


@dataclass
class Verdict:
    passed: bool
    reason: str = ""


@dataclass
class Result:
    outputs: dict[int, list] = field(default_factory=dict)
    verdicts: dict[int, Verdict] = field(default_factory=dict)
    failed_cells: dict[int, str] = field(default_factory=dict)  # cell -> why it was skipped on replay
    log: list[str] = field(default_factory=list)
    seconds: float = 0.0
    restarts: int = 0
    mode: str = ""


class _Stop(Exception):
    """The current session ended abnormally during ``cell`` (``None``: before the first cell)."""

    def __init__(self, reason: str, kind: str = "crash"):
        super().__init__(reason)
        self.reason, self.kind = reason, kind


def trusted_prefixes() -> list[str]:
    """Folders of library code (read-only in the sandbox): code from there may look at frames."""
    import sysconfig

    paths = sysconfig.get_paths()
    out = {paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"], course_utils_dir()}
    return sorted(p.rstrip("/") + "/" for p in out if p)


def preload_modules(cells: list[Cell]) -> list[str]:
    """Libraries imported by locked and test cells (and the usual ones): loaded before any student code."""
    names = list(ALWAYS_PRELOAD)
    for cell in cells:
        if cell.kind == "student":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
    seen, out = set(), []
    for name in names:
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


class _Channel:
    def __init__(self, read_fd: int, write_fd: int, key: bytes):
        self.read_fd, self.write_fd, self.key = read_fd, write_fd, key
        self.buf = b""
        self.recv_seq = 0
        self.send_seq = 0

    def send(self, obj: dict) -> None:
        data = protocol.encode(self.key, self.send_seq, obj)
        self.send_seq += 1
        try:
            while data:
                data = data[os.write(self.write_fd, data) :]
        except (BrokenPipeError, OSError) as err:
            raise _Stop(f"the sandbox closed its input ({err})") from None

    def _fill(self, n: int, deadline: float, what: str) -> None:
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Stop(f"no answer within the time limit while {what}", "timeout")
            ready, _, _ = select.select([self.read_fd], [], [], min(left, 5.0))
            if ready:
                chunk = os.read(self.read_fd, 1 << 20)
                if not chunk:
                    raise _Stop(f"the process died while {what}", "crash")
                self.buf += chunk

    def receive(self, deadline: float, what: str) -> tuple[int, dict, bytes | None]:
        self._fill(4, deadline, what)
        (length,) = struct.unpack(">I", self.buf[:4])
        if length > protocol.MAX_MESSAGE:
            raise _Stop(f"protocol violation while {what}: a message of {length} bytes", "violation")
        self._fill(4 + length + protocol.MAC_LEN, deadline, what)
        frame, self.buf = self.buf[: 4 + length + protocol.MAC_LEN], self.buf[4 + length + protocol.MAC_LEN :]
        seq = self.recv_seq
        try:
            obj = protocol.decode(self.key, seq, frame)
        except protocol.ProtocolError as err:
            raise _Stop(f"protocol violation while {what}: {err}", "violation") from None
        self.recv_seq += 1
        seal = None
        if obj.get("type") == "verdict":
            self._fill(protocol.MAC_LEN, deadline, what)
            seal, self.buf = self.buf[: protocol.MAC_LEN], self.buf[protocol.MAC_LEN :]
        return seq, obj, seal


def _drain(fd: int, sink: list[bytes]) -> None:
    size = 0
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        if size < LOG_CAP:
            sink.append(chunk[: LOG_CAP - size])
        size += len(chunk)
    os.close(fd)


def _error(ename: str, evalue: str) -> dict:
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}


def _session(
    cells: list[Cell],
    skip: set[int],
    result: Result,
    limits: Limits,
    sandbox: Sandbox,
    deadline_total: float,
    preload: list[str],
) -> tuple[bool, int | None, _Stop | None]:
    """One sandbox from start to end. Returns (finished, cell it stopped at, why)."""
    p2c_r, p2c_w = os.pipe()
    c2p_r, c2p_w = os.pipe()
    log_r, log_w = os.pipe()
    for fd in (p2c_r, c2p_w):
        os.set_inheritable(fd, True)
    key = secrets.token_bytes(32)
    sink: list[bytes] = []
    current: int | None = None
    try:
        sandbox.start(p2c_r, c2p_w, log_w)
    finally:
        for fd in (p2c_r, c2p_w, log_w):
            os.close(fd)
    drainer = threading.Thread(target=_drain, args=(log_r, sink), daemon=True)
    drainer.start()
    chan = _Channel(c2p_r, p2c_w, key)
    try:
        os.write(p2c_w, key)
        plan = [
            {"index": c.index, "kind": c.kind, "skip": c.index in skip, "source": c.source if c.kind != "test" else ""}
            for c in cells
        ]
        chan.send(
            {
                "type": "hello",
                "limits": limits.for_harness(),
                "cells": plan,
                "scratch": sandbox.scratch_inside,
                "preload": preload,
                "trusted_prefixes": trusted_prefixes(),
            }
        )
        first = True

        def wait(what: str):
            nonlocal first
            budget = limits.cell_timeout + limits.grace_s + (limits.startup_s if first else 0.0)
            first = False
            while True:
                seq, obj, seal = chan.receive(min(time.monotonic() + budget, deadline_total), what)
                if obj["type"] == "note":
                    result.log.append("harness: " + str(obj.get("text"))[:2000])
                    continue
                return seq, obj, seal

        for cell in cells:
            if cell.index in skip:
                continue
            current = cell.index
            what = f"cell {cell.index + 1} ran"
            if cell.kind == "test":
                _, obj, _ = wait(what)
                if obj.get("type") != "need" or obj.get("cell") != cell.index:
                    raise _Stop(
                        f"protocol violation: expected a request for test cell {cell.index + 1}, got "
                        f"{obj.get('type')!r}",
                        "violation",
                    )
                secret = protocol.new_secret()
                chan.send({"type": "test", "source": cell.source, "secret": secret.hex()})
                seq, obj, seal = wait(what)
                if (
                    obj.get("type") != "verdict"
                    or obj.get("cell") != cell.index
                    or not isinstance(obj.get("passed"), bool)
                ):
                    raise _Stop(f"protocol violation: expected the verdict of cell {cell.index + 1}", "violation")
                expected = protocol.verdict_seal(secret, seq, cell.index, obj["passed"])
                if seal is None or not hmac.compare_digest(seal, expected):
                    raise _Stop(
                        f"the verdict of cell {cell.index + 1} is not sealed with its secret (forged?)", "violation"
                    )
                if cell.index not in result.verdicts:
                    result.verdicts[cell.index] = Verdict(obj["passed"], str(obj.get("reason", ""))[:500])
                result.outputs[cell.index] = list(obj.get("outputs") or [])
            else:
                _, obj, _ = wait(what)
                if obj.get("type") != "done" or obj.get("cell") != cell.index:
                    raise _Stop(f"protocol violation: expected the end of cell {cell.index + 1}", "violation")
                result.outputs[cell.index] = list(obj.get("outputs") or [])
        current = None
        _, obj, _ = wait("the notebook ended")
        if obj.get("type") != "end":
            raise _Stop("protocol violation at the end of the notebook", "violation")
        return True, None, None
    except _Stop as stop:
        return False, current, stop
    finally:
        sandbox.kill()
        os.close(p2c_w)
        os.close(c2p_r)
        drainer.join(timeout=10)
        text = b"".join(sink).decode("utf-8", "replace").strip()
        if text:
            result.log.append("sandbox output:\n" + text[-4000:])


def grade_cells(
    cells: list[Cell],
    limits: Limits | None = None,
    files: Path | None = None,
    *,
    slot: int = 0,
    mode: str | None = None,
    extra_read_only: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """Run the notebook (``cells`` in order) in a sandbox and judge its test cells (see the module docstring)."""
    limits = limits or Limits()
    t0 = time.monotonic()
    deadline = t0 + limits.wall_timeout
    result = Result()
    skip: set[int] = set()
    preload = preload_modules(cells)
    finished = False
    for attempt in range(limits.max_restarts + 1):
        sandbox = Sandbox(
            limits, slot=slot, mode=mode, extra_read_only=list(extra_read_only or []), env=dict(env or {})
        )
        result.mode = sandbox.mode
        try:
            if files is not None and Path(files).is_dir():
                sandbox.copy_files(Path(files))
            finished, stopped_at, stop = _session(cells, skip, result, limits, sandbox, deadline, preload)
        finally:
            sandbox.close()
        if finished:
            break
        result.restarts = attempt + 1
        why = stop.reason if stop else "unknown"
        result.log.append(f"attempt {attempt + 1}: {why}")
        if stopped_at is None or time.monotonic() >= deadline:
            break
        skip.add(stopped_at)
        result.failed_cells[stopped_at] = why
        ename = {"timeout": "CellTimeoutError", "violation": "GradingProtocolError"}.get(stop.kind, "DeadKernelError")
        note = (
            "the cell ran past the time limit and did not stop"
            if stop.kind == "timeout"
            else "the cell broke the grading protocol"
            if stop.kind == "violation"
            else "the process died in this cell (os._exit, a crash or a resource limit)"
        )
        result.outputs[stopped_at] = [_error(ename, f"{note}; it was skipped when the notebook was run again ({why})")]
        kind = next(c.kind for c in cells if c.index == stopped_at)
        if kind == "test" and stopped_at not in result.verdicts:
            result.verdicts[stopped_at] = Verdict(False, f"no verdict: {note}")
    for cell in cells:
        if cell.kind == "test" and cell.index not in result.verdicts:
            why = "the submission's time limit ran out" if time.monotonic() >= deadline else "grading stopped early"
            result.verdicts[cell.index] = Verdict(False, f"no verdict: {why}")
    result.seconds = time.monotonic() - t0
    return result
