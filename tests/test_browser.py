"""What a student sees: JupyterLab in a real (headless) Chromium runs a lecture and a widget reacts.

Starts JupyterLab on loopback with a token, opens a copy of lecture L0, runs all cells through the
JupyterLab UI, checks no cell produced an error, moves a widget slider and checks the widget's
output changed, and saves screenshots under test-artifacts/browser/. Skipped (with the reason) only
when Debian's Chromium is not installed; `.ci/run` installs it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from benchmarks import browser_lab as bl

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LECTURE = ROOT / "lectures" / "L00_learning_recipe.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
TOKEN = bl.TOKEN

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (apt-get install chromium)"),
    pytest.mark.timeout(600),
]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """JupyterLab (benchmarks/browser_lab.py's server) on a folder holding a copy of L00."""
    workdir = tmp_path_factory.mktemp("lab")
    shutil.copy(LECTURE, workdir / LECTURE.name)
    with bl.jupyterlab(workdir, {"COURSE_FAST": "1", "COURSE_OFFLINE": "1"}, start_timeout=90) as base:
        yield base, workdir


CELL_STATE_JS = bl.CELL_STATE_JS


def test_lecture_runs_in_jupyterlab_and_widget_reacts(jupyterlab):
    from playwright.sync_api import sync_playwright

    base, _ = jupyterlab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/lab/tree/{LECTURE.name}?token={TOKEN}&reset")
        page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
            "&& window.jupyterapp.shell.currentWidget.sessionContext "
            "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
            "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel "
            "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
            timeout=120_000,
        )
        news = page.get_by_role("button", name="No")  # the "notify about Jupyter news?" toast
        if news.count():
            news.first.click()
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        deadline = time.time() + 300
        state = None
        while time.time() < deadline:
            time.sleep(2)
            state = page.evaluate(CELL_STATE_JS)
            if state and state["errors"]:
                break
            if state and state["busy"] == 0 and state["status"] == "idle" and state["executed"] == state["code"]:
                break
        page.screenshot(path=str(ARTIFACTS / "L00_after_run_all.png"))
        assert state is not None, "the notebook panel never appeared"
        assert not state["errors"], f"cells raised in the browser: {state['errors']}"
        assert state["executed"] == state["code"], (
            f"only {state['executed']} of {state['code']} code cells ran: {state}"
        )

        slider = page.locator(".widget-hslider .noUi-handle").first
        slider.wait_for(state="visible", timeout=30_000)
        widget_area = page.locator(".jp-OutputArea-output", has=page.locator(".widget-hslider")).first
        widget_area.scroll_into_view_if_needed()
        before = widget_area.locator("img").first.get_attribute("src")
        readout = widget_area.locator(".widget-readout").first.inner_text()
        slider.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "([el, src]) => { const img = el.querySelector('img'); return img && img.getAttribute('src') !== src; }",
            arg=[widget_area.element_handle(), before],
            timeout=30_000,
        )
        after = widget_area.locator("img").first.get_attribute("src")
        assert after != before, "the widget's figure did not change after moving the slider"
        assert widget_area.locator(".widget-readout").first.inner_text() != readout
        widget_area.screenshot(path=str(ARTIFACTS / "L00_widget_after_slider.png"))
        page.screenshot(path=str(ARTIFACTS / "L00_page_after_slider.png"))
        browser.close()
