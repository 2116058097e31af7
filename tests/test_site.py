"""The course website (`make site`, book/): built from the notebooks this test run executed, then browsed.

* The build uses the executed copies that conftest.py wrote while nbval ran the lectures (notebooks run
  first in `make test`); with none it skips locally and fails in CI (``CI`` set), never executing them again.
* Every page: Colab and download links, no widget placeholders; assignment pages: the student copy, with
  no hidden-test, solution or mark-scheme line of the instructor notebook (tools.markers' secret lines).
* In headless Chromium (Playwright, the system's chromium) over http://127.0.0.1: every navigation link
  answers (no 404), every lecture page shows its figures and typeset equations (no raw ``$$``), search
  finds "Xavier"; screenshots go to test-artifacts/site/.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import os
import shutil
import threading
import time
import urllib.parse
from pathlib import Path

import nbformat
import pytest

from book import build as site
from book.executed import fresh_artefact
from tools import markers

# Sphinx 9 deprecations inside myst-parser and sphinx-book-theme (their releases will follow): not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*Check CHANGES for Sphinx API modifications")
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "test-artifacts" / "site"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class _Text(html.parser.HTMLParser):
    """The visible text of an HTML page (scripts and styles left out), line breaks kept."""

    def __init__(self):
        super().__init__()
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


class _Links(html.parser.HTMLParser):
    """Every ``href`` of the ``<a>`` elements of a page."""

    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href")
        if tag == "a" and href and not href.startswith(("javascript:", "mailto:")):
            self.hrefs.append(href)


def _text(page: Path) -> str:
    parser = _Text()
    parser.feed(page.read_text())
    return "".join(parser.parts)


def _page(out: Path, rel: str) -> Path:
    return out / rel.replace(".ipynb", ".html")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    missing = {rel: why for rel in site.lectures() for path, why in [fresh_artefact(rel)] if path is None}
    if missing:
        message = "no fresh executed copy of " + ", ".join(f"{rel} ({why})" for rel, why in missing.items())
        message += "; run the lecture notebooks in the same pytest run (pytest lectures tests/test_site.py)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("site") / "html"
    summary = site.build(out, missing="fail")
    print(f"\nsite: {summary}")
    return out, summary


def test_site_has_a_page_per_notebook_with_links_and_no_widget_placeholders(built):
    out, summary = built
    pages = site.lectures() + site.assignments()
    if os.environ.get("COURSE_FAST") == "1":
        assert summary["fast_pages"] == len(site.lectures()), summary
    assert (out / "index.html").exists() and (out / "search.html").exists()
    home = (out / "index.html").read_text()
    for rel in pages:
        page = _page(out, rel)
        assert page.exists(), f"no page for {rel}"
        body = page.read_text()
        assert site.nbtool.colab_url(rel) in body, f"{rel}: no Open in Colab link"
        assert f'href="{Path(rel).name}" download' in body, f"{rel}: no Download notebook link"
        assert (out / rel).read_bytes() == (ROOT / rel).read_bytes(), f"{rel}: the download is not the clean notebook"
        assert "widget-view+json" not in body and "jupyter-widgets" not in body, f"{rel}: a broken widget"
        fast = rel.startswith("lectures/") and os.environ.get("COURSE_FAST") == "1"
        assert (site.FAST_NOTE in body) == fast, f"{rel}: the fast-mode note should {'' if fast else 'not '}be there"
        assert rel.replace(".ipynb", ".html") in home, f"the home page does not link {rel}"


def test_assignment_pages_reveal_no_solution_and_no_hidden_test(built):
    out, _ = built
    for rel in site.assignments():
        instructor = nbformat.read(ROOT / rel.replace("assignments/", "solutions/", 1), as_version=4)
        hidden = markers.hidden_test_lines(instructor)
        secrets = hidden | markers.secret_lines(instructor, markers.ALL_KINDS, comments=False)
        assert hidden, f"{rel}: its instructor notebook has no hidden tests to look for"
        text = _text(_page(out, rel))
        shown = {markers.canonical(line) for line in text.split("\n")}
        leaks = sorted(line for line in secrets if markers.canonical(line) in shown)
        assert not leaks, f"{rel} shows instructor-only lines: {leaks[:5]}"
        for marker in markers.MARKERS:
            assert marker not in text, f"{rel} shows the nbgrader marker {marker!r}"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a browser that moves on before a file is sent breaks the pipe: not a site problem


@pytest.fixture(scope="module")
def served(built):
    out, _ = built
    server = _Server(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield out, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _typeset(page) -> bool:
    """Wait until MathJax (3) has typeset the page; False for a page without equations (Sphinx loads MathJax
    only where there is math)."""
    if page.locator("script[src*='mathjax']").count() == 0:
        return False
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
    page.evaluate("() => MathJax.startup.promise")
    return True


def test_site_in_a_browser_links_figures_equations_and_search(served, browser):
    out, base = served
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    missing_files = []  # scripts, styles, images, fonts of the site itself that do not load
    page.on("response", lambda r: r.status >= 400 and r.url.startswith(base) and missing_files.append(r.url))
    start = time.monotonic()

    # Every link of every page (sidebar, previous/next, header buttons, the home page's course map, the
    # downloads) answers: followed from the home page over HTTP, as the browser would request them.
    seen, queue, broken = set(), ["/index.html"], []
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        response = page.request.get(base + path)
        if response.status != 200:
            broken.append(f"{path}: {response.status}")
            continue
        if not path.endswith(".html"):
            continue
        links = _Links()
        links.feed(response.text())
        for href in links.hrefs:
            parts = urllib.parse.urlsplit(urllib.parse.urljoin(base + path, href))
            if f"{parts.scheme}://{parts.netloc}" == base and parts.path not in seen:
                queue.append(parts.path)
    assert not broken, f"broken links: {broken}"
    crawl_s = time.monotonic() - start
    for rel in site.lectures() + site.assignments():
        assert "/" + rel.replace(".ipynb", ".html") in seen, f"navigation never reaches {rel}"
    assert any(p.endswith(".ipynb") for p in seen), "no Download notebook link was followed"

    # Every lecture page: its figures load, its equations are typeset by MathJax (none left as source).
    for rel in site.lectures():
        lecture_start = time.monotonic()
        page.goto(f"{base}/{rel.replace('.ipynb', '.html')}")
        has_math = _typeset(page)
        figures = page.eval_on_selector_all(
            "article img", "els => els.map(i => i.complete && i.naturalWidth > 0 ? 1 : 0)"
        )
        nb = nbformat.read(ROOT / "test-artifacts" / "executed" / rel, as_version=4)
        expected = sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
        assert sum(figures) >= expected and all(figures), f"{rel}: {sum(figures)}/{len(figures)} figures loaded"
        typeset = page.locator("article mjx-container").count()
        text = page.inner_text("article")
        assert typeset > 0 or not has_math, f"{rel}: no typeset equation"
        assert page.locator("article .math").count() == (typeset if has_math else 0), f"{rel}: untypeset math"
        assert "$$" not in text and "\\(" not in text and "\\[" not in text, f"{rel}: raw TeX left on the page"
        errors = page.locator("article mjx-merror").all_inner_texts()
        assert not errors, f"{rel}: MathJax could not typeset {errors[:3]}"
        print(f"{rel}: {sum(figures)} figures, {typeset} equations, {time.monotonic() - lecture_start:.1f} s")

    # Search (Sphinx's own index, in the browser) finds the Xavier initialisation lecture.
    page.goto(f"{base}/search.html?q=Xavier")
    page.wait_for_selector("#search-results ul.search li", timeout=30_000)
    results = page.inner_text("#search-results")
    assert "Initialisation" in results or "L03" in results, results[:500]
    page.screenshot(path=str(SCREENSHOTS / "search-xavier.png"))

    # Screenshots to look at: home, a lecture with equations and figures, a widget still, an assignment.
    page.goto(f"{base}/index.html")
    page.screenshot(path=str(SCREENSHOTS / "home.png"))
    page.locator("#course-map").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "home-course-map.png"))
    l03 = next(rel for rel in site.lectures() if "L03" in rel)
    page.goto(f"{base}/{l03.replace('.ipynb', '.html')}")
    _typeset(page)
    page.screenshot(path=str(SCREENSHOTS / "lecture-top.png"))
    page.locator('article mjx-container[display="true"]').nth(4).evaluate("el => el.scrollIntoView({block: 'center'})")
    page.screenshot(path=str(SCREENSHOTS / "lecture-equations.png"))
    l00 = next(rel for rel in site.lectures() if "L00" in rel)
    page.goto(f"{base}/{l00.replace('.ipynb', '.html')}")
    page.get_by_text("Interactive widget").first.evaluate(
        "el => { el.closest('.cell_output').scrollIntoView({block: 'end'}); window.scrollBy(0, 60); }"
    )
    page.screenshot(path=str(SCREENSHOTS / "widget-still.png"))
    page.goto(f"{base}/{site.assignments()[0].replace('.ipynb', '.html')}")
    page.screenshot(path=str(SCREENSHOTS / "assignment.png"))
    assert not missing_files, f"files the pages load but the site lacks: {sorted(set(missing_files))[:10]}"
    print(
        f"followed {len(seen)} links in {crawl_s:.0f} s, all checks {time.monotonic() - start:.0f} s; see {SCREENSHOTS}"
    )
