"""Drive JupyterLab in headless Chromium: start a lab, open a notebook, Run All, time widget interactions.

Shared by ``tests/test_widget_latency.py``, ``tests/test_browser.py`` and ``benchmarks/browser_run_all.py``.
Needs Debian's Chromium (``/usr/bin/chromium``) and the ``playwright`` Python package (no Playwright browser
download). Everything is measured inside the page with ``performance.now()``: an interaction's latency runs from
the input event (key press, option chosen, click) to the last new image the kernel's answer put into the DOM.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "course-browser-test"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: an interaction is over when the kernel is idle and no new image arrived for this long
QUIET_MS = 250


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyterlab(root_dir: Path, env: dict[str, str] | None = None, start_timeout: float = 120) -> Iterator[str]:
    """Serve JupyterLab on ``root_dir`` (loopback, token :data:`TOKEN`); yields its base URL.

    ``env`` is added to this process's environment (e.g. ``COURSE_FAST``); the lab's log goes to
    ``root_dir/lab.log`` and is quoted when the server does not come up.
    """
    root_dir = Path(root_dir)
    port = free_port()
    full_env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root_dir / ".jupyter"), **(env or {})}
    log_path = root_dir / "lab.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--no-browser",
                "--allow-root",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                f"--IdentityProvider.token={TOKEN}",
                f"--ServerApp.root_dir={root_dir}",
                "--LabApp.expose_app_in_browser=True",
                "--ServerApp.disable_check_xsrf=True",
                "--LabApp.news_url=",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start; its log:\n{log_path.read_text()[-3000:]}") from None
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextmanager
def chromium_page(viewport: tuple[int, int] = (1400, 1000)):
    """A page of a headless Chromium (Debian's binary) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        finally:
            browser.close()


KERNEL_IDLE_JS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle';
}"""

CELL_STATE_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.content.model) return null;
  const cells = panel.content.widgets;
  const busy = cells.filter(c => c.model.type === 'code' && c.promptNode && c.promptNode.textContent.includes('*')).length;
  const errors = [];
  for (const c of cells) {
    if (c.model.type !== 'code') continue;
    for (let i = 0; i < c.model.outputs.length; i++) {
      const o = c.model.outputs.get(i).toJSON();
      if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
    }
  }
  const executed = cells.filter(c => c.model.type === 'code' && c.model.executionCount !== null).length;
  const code = cells.filter(c => c.model.type === 'code').length;
  const status = panel.sessionContext.session ? panel.sessionContext.session.kernel.status : 'none';
  return {busy, errors, executed, code, status};
}"""


def open_notebook(page, base: str, name: str, timeout_s: float = 120) -> float:
    """Open ``name`` (relative to the lab's root) and wait for its kernel to be idle; returns the seconds taken."""
    start = time.perf_counter()
    page.goto(f"{base}/lab/tree/{name}?token={TOKEN}&reset")
    page.wait_for_function(KERNEL_IDLE_JS, timeout=timeout_s * 1000)
    news = page.get_by_role("button", name="No")  # the "notify about Jupyter news?" toast
    if news.count():
        news.first.click()
    return time.perf_counter() - start


def run_all(page, timeout_s: float = 300, poll_s: float = 0.25) -> dict:
    """Run every cell through JupyterLab's own command and wait until all ran (or one raised).

    Returns the final cell state (``errors``, ``executed``, ``code``...) and ``seconds``, the wall time from
    the command to the last cell finished, as a student sees it.
    """
    start = time.perf_counter()
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = start + timeout_s
    state = None
    while time.perf_counter() < deadline:
        time.sleep(poll_s)
        state = page.evaluate(CELL_STATE_JS)
        if state and state["errors"]:
            break
        if state and state["busy"] == 0 and state["status"] == "idle" and state["executed"] == state["code"]:
            break
    return {**(state or {}), "seconds": time.perf_counter() - start}


# ---------------------------------------------------------------------------------------------- latency
INSTALL_PROBE_JS = """(area) => {
  const lat = window.__lat = {t0: null, frames: [], armed: false};
  const arm = () => { if (lat.armed) { lat.t0 = performance.now(); lat.armed = false; } };
  for (const ev of ['keydown', 'input', 'change', 'mousedown', 'click'])
    document.addEventListener(ev, arm, true);
  const isImg = n => n.nodeType === 1 && (n.tagName === 'IMG' || (n.querySelector && n.querySelector('img')));
  new MutationObserver(muts => {
    const now = performance.now();  // one entry per new image, even when several arrive in one batch
    for (const m of muts) {
      if (m.type === 'attributes' && m.target.tagName === 'IMG') lat.frames.push(now);
      if (m.type === 'childList') for (const n of m.addedNodes) if (isImg(n)) lat.frames.push(now);
    }
  }).observe(area, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}"""

ARM_JS = "() => { window.__lat.frames = []; window.__lat.t0 = null; window.__lat.armed = true; }"

SETTLED_JS = """([quiet, button]) => {
  const lat = window.__lat, w = window.jupyterapp.shell.currentWidget;
  const k = w.sessionContext.session.kernel;
  if (lat.t0 === null || !lat.frames.length || k.status !== 'idle') return false;
  if (button && button.disabled) return false;
  return performance.now() - lat.frames[lat.frames.length - 1] > quiet;
}"""

CONTROLS_JS = """(area) => {
  const label = el => { const c = el.closest('.jupyter-widgets'); const l = c && c.querySelector('.widget-label');
                        return (l && l.textContent.trim()) || ''; };
  const out = [];
  area.querySelectorAll('.noUi-handle').forEach((h, i) => out.push({kind: 'slider', index: i, label: label(h)}));
  area.querySelectorAll('select').forEach((s, i) => out.push({kind: 'dropdown', index: i, label: label(s),
                                                               options: s.options.length}));
  area.querySelectorAll('button.jupyter-button').forEach((b, i) => {
    if (!b.closest('.widget-play')) out.push({kind: 'button', index: i, label: b.textContent.trim()});
  });
  return out;
}"""


@dataclass
class ControlTiming:
    """What one control's interactions took, in milliseconds from the input event to the last new image."""

    label: str
    kind: str
    latencies_ms: list[float] = field(default_factory=list)
    images: list[int] = field(default_factory=list)  # new images per interaction (2 = a double redraw)
    first_frame_ms: float | None = None  # buttons that animate: click to first image
    frames_per_s: float | None = None  # and the animation's frame rate


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) with linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def summarise(controls: list[ControlTiming]) -> dict:
    """Median and p95 over every interaction of a widget, plus its animation numbers and per-control detail."""
    all_ms = [ms for c in controls if c.kind != "button" for ms in c.latencies_ms]
    animated = [c for c in controls if c.first_frame_ms is not None]
    return {
        "interactions": len(all_ms),
        "median_ms": statistics.median(all_ms) if all_ms else float("nan"),
        "p95_ms": percentile(all_ms, 0.95),
        "max_images_per_interaction": max((n for c in controls if c.kind != "button" for n in c.images), default=0),
        "first_frame_ms": max((c.first_frame_ms for c in animated), default=None),
        "frames_per_s": min((c.frames_per_s for c in animated), default=None),
        "controls": [asdict(c) for c in controls],
    }


def _settle(page, button=None, timeout_s: float = 60) -> dict:
    page.wait_for_function(SETTLED_JS, arg=[QUIET_MS, button], timeout=timeout_s * 1000, polling=20)
    return page.evaluate("() => ({t0: window.__lat.t0, frames: window.__lat.frames})")


def measure_widget(page, area, min_interactions: int = 8, train_buttons: bool = True) -> list[ControlTiming]:
    """Move every slider and dropdown under ``area`` (an element handle) an even number of times, at least twice
    and at least ``min_interactions`` times in all, and click each button once (except a Play widget's);
    returns the timings per control.

    Sliders step one notch with the arrow keys, away from the nearer bound and back; dropdowns pick the next
    option and back: after an even number of interactions every control is where it started.
    """
    page.evaluate(INSTALL_PROBE_JS, area)
    results = []
    found = page.evaluate(CONTROLS_JS, area)
    movable = sum(c["kind"] != "button" for c in found)
    repeats = 2 * max(1, -(-min_interactions // max(movable, 1) // 2))
    for control in found:
        timing = ControlTiming(label=control["label"], kind=control["kind"])
        if control["kind"] == "button":
            if not train_buttons:
                continue
            button = area.query_selector_all("button.jupyter-button")[control["index"]]
            page.evaluate(ARM_JS)
            button.click()
            got = _settle(page, button=button, timeout_s=120)
            frames = got["frames"]
            timing.first_frame_ms = frames[0] - got["t0"]
            timing.latencies_ms.append(frames[-1] - got["t0"])
            timing.images.append(len(frames))
            if len(frames) > 1:
                timing.frames_per_s = (len(frames) - 1) / ((frames[-1] - frames[0]) / 1000)
            results.append(timing)
            continue
        for i in range(repeats):
            if control["kind"] == "slider":
                handle = area.query_selector_all(".noUi-handle")[control["index"]]
                if handle.evaluate(
                    "h => h.closest('[disabled]') !== null || h.closest('.noUi-target').hasAttribute('disabled')"
                ):
                    break  # e.g. L2's position slider while the parameters do not fit
                now, top = (float(handle.get_attribute(a) or 0) for a in ("aria-valuenow", "aria-valuemax"))
                forward = (i % 2 == 0) != (now >= top)
                handle.focus()
                page.evaluate(ARM_JS)
                page.keyboard.press("ArrowRight" if forward else "ArrowLeft")
            else:
                select = area.query_selector_all("select")[control["index"]]
                current = select.evaluate("s => s.selectedIndex")
                n = control["options"]
                target = (current + 1) % n if i % 2 == 0 else (current - 1) % n
                page.evaluate(ARM_JS)
                select.select_option(index=target)
            got = _settle(page)
            timing.latencies_ms.append(got["frames"][-1] - got["t0"])
            timing.images.append(len(got["frames"]))
        results.append(timing)
    return results


CELL_OUTPUT_JS = """async (i) => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  const cells = nb.widgets.filter(c => c.model.type === 'code');
  const cell = cells[i < 0 ? cells.length + i : i];
  // A long notebook may be windowed (only cells near the viewport in the DOM): bring the cell in first.
  if (nb.scrollToCell) await nb.scrollToCell(cell, 'start');
  else cell.node.scrollIntoView();
  return cell.node.querySelector('.jp-OutputArea');
}"""


def code_cell_output(page, index: int):
    """The output area (element handle) of the notebook's ``index``-th code cell (-1: the last), scrolled into view.

    Found through JupyterLab's own cell list, not by counting DOM nodes (which a windowed notebook leaves out).
    """
    handle = page.evaluate_handle(CELL_OUTPUT_JS, index).as_element()
    if handle is None:
        raise RuntimeError(f"code cell {index} has no output area")
    return handle
