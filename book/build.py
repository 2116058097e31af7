"""``make site``: the course website, built by Sphinx + MyST-NB + sphinx-book-theme.

    python -m book.build [--out build/site] [--missing execute|fail]

1. Every lecture (``lectures/*.ipynb``) comes from its executed copy in ``test-artifacts/executed/``, which
   conftest.py writes while the tests run the notebooks (the outputs the tests checked). A lecture without
   a fresh copy is executed first, through the same notebook tests (``--missing execute``, the default), or
   the build stops and says so (``--missing fail``).
2. Every assignment page is the *student* copy from ``assignments/`` (no solutions, no hidden tests), not
   executed: its outputs appear when a student runs it.
3. Each page gets a banner (Open in Colab, Download notebook, and for fast-mode pages a note that full mode
   gives the real numbers); each ipywidget becomes a still of its default state and a line saying where to
   run it; the home page is README.md with links made to work on the site.
4. Sphinx writes the HTML; MathJax 3 is served from the site itself (no CDN), so the site works offline.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python book/build.py` as well as `python -m book.build`
    sys.path.insert(0, str(ROOT))

from book.executed import EXECUTED_DIR, META_KEY, STILL_KEY, WIDGET_MIME, fresh_artefact, with_outputs  # noqa: E402
from tools import notebooks as nbtool  # noqa: E402

BOOK = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "build" / "site"
DOWNLOADS = "_notebooks"  # staged clean copies behind the "Download notebook" links, copied next to the pages
FAST_NOTE = "This page was built in"  # opens the note on pages executed in fast mode


def lectures(root: Path = ROOT) -> list[str]:
    """Every lecture notebook, in course order (new lectures are picked up without a list to edit)."""
    return [p.relative_to(root).as_posix() for p in sorted((root / "lectures").glob("*.ipynb"))]


def assignments(root: Path = ROOT) -> list[str]:
    """Every released student copy ``assignments/<name>/<name>.ipynb``, in course order."""
    return [p.relative_to(root).as_posix() for p in sorted((root / "assignments").glob("*/*.ipynb"))]


# ------------------------------------------------------------------------------------------------
# Executed notebooks
# ------------------------------------------------------------------------------------------------


def ensure_executed(relatives: list[str], missing: str, executed_dir: Path = EXECUTED_DIR) -> dict[str, Path]:
    """relative path -> fresh executed copy; runs the notebook tests for those without one (or fails)."""
    found, stale = {}, {}
    for rel in relatives:
        path, why = fresh_artefact(rel, executed_dir)
        if path:
            found[rel] = path
        else:
            stale[rel] = why
    if stale and missing == "fail":
        lines = "\n".join(f"  {rel}: {why}" for rel, why in stale.items())
        raise SystemExit(
            f"No fresh executed copy in {executed_dir} of:\n{lines}\n"
            "Run the notebook tests first (make test, or: .venv/bin/python -m pytest lectures), "
            "or build with --missing execute."
        )
    if stale:
        print(f"Executing {len(stale)} notebook(s) through their tests (fast mode unless COURSE_FAST is set):")
        for rel, why in stale.items():
            print(f"  {rel} ({why})")
        env = dict(os.environ)
        env.setdefault("COURSE_FAST", "1")
        env.setdefault("COURSE_OFFLINE", "1")
        cmd = [sys.executable, "-m", "pytest", "-q", "--no-header", "-p", "no:cacheprovider", *stale]
        result = subprocess.run(cmd, cwd=ROOT, env=env)
        if result.returncode != 0:
            print(f"WARNING: notebook tests failed (exit {result.returncode}); their pages show the errors.")
        for rel in stale:
            path, why = fresh_artefact(rel, executed_dir)
            if not path:
                raise SystemExit(f"{rel} still has no executed copy ({why}); see the test output above.")
            found[rel] = path
    return found


# ------------------------------------------------------------------------------------------------
# Page preparation
# ------------------------------------------------------------------------------------------------


def _markdown_output(text: str):
    return nbformat.v4.new_output("display_data", data={"text/markdown": text, "text/plain": text})


def widget_note(colab: str) -> str:
    return (
        "*Interactive widget: above is a still of its default state. The controls need a running Python "
        f"kernel: [open this notebook in Colab]({colab}) or in JupyterLab (`make lab`).*"
    )


def replace_widgets(nb, colab: str) -> int:
    """Swap every ipywidget output for a still of its default state and a line saying where to run it.

    The still is the widget's own picture (kept by conftest.py as ``course_widget_still``) or, for widgets
    that draw into an Output area, the figure the cell already shows. Returns the number of widgets.
    """
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        has_figure = any(any(k.startswith("image/") for k in o.get("data", {})) for o in cell.outputs)
        new_outputs = []
        for out in cell.outputs:
            if WIDGET_MIME not in out.get("data", {}):
                new_outputs.append(out)
                continue
            count += 1
            still = out.get("metadata", {}).get(STILL_KEY) or {}
            for png in still.get("images", []):
                new_outputs.append(nbformat.v4.new_output("display_data", data={"image/png": png}))
            controls = ", ".join(f"{name} = {value}" for name, value in still.get("controls", []))
            if not still.get("images") and not has_figure:
                new_outputs.append(_markdown_output("*(No still of this widget could be taken.)*"))
            note = widget_note(colab)
            if controls:
                note = note.replace("default state.", f"default state ({controls}).")
            new_outputs.append(_markdown_output(note))
        cell.outputs = new_outputs
    return count


def banner(rel: str, fast: bool | None) -> str:
    """The links and notes put under each page's title (MyST Markdown)."""
    colab = nbtool.colab_url(rel)
    lines = [  # the clean notebook sits next to its page (html_extra_path), e.g. lectures/L00_....ipynb
        f'<p class="course-links"><a class="course-colab" href="{colab}">Open in Colab</a> · '
        f'<a class="course-download" href="{Path(rel).name}" download>Download notebook</a></p>',
        "",
    ]
    if fast:
        lines += [
            ":::{note}",
            f"{FAST_NOTE} **fast mode** (small data subsets, a few training steps, stand-in data "
            "sets where downloads are needed), as the tests run it. Numbers and curves are rough: run the "
            "notebook in **full mode** (`make lab`, or on Colab) for the real numbers.",
            ":::",
        ]
    elif fast is None and rel.startswith("assignments/"):
        lines += [
            ":::{tip}",
            "This is the **student copy** of the assignment: the exercises are yours to complete, and its "
            "outputs appear when you run it (on Colab, or in JupyterLab with `make lab`).",
            ":::",
        ]
    return "\n".join(lines)


def prepare_page(nb, rel: str, fast: bool | None) -> tuple[object, int]:
    """The notebook as a site page: badge cell replaced by the banner, Colab set-up cell collapsed."""
    cells, setup = [], []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if nbtool.BADGE_TAG in tags:
            continue  # its link is in the banner (the badge image itself needs the network)
        if nbtool.SETUP_TAG in tags:
            cell.metadata["tags"] = [*tags, "hide-cell"]
            setup.append(cell)  # collapsed, under the banner rather than above the title
            continue
        hidden = cell.get("metadata", {}).get("jupyter", {})
        collapse = {(True, True): "hide-cell", (True, False): "hide-input", (False, True): "hide-output"}.get(
            (bool(hidden.get("source_hidden")), bool(hidden.get("outputs_hidden")))
        )
        if collapse and cell.cell_type == "code":  # collapsed on the page as in JupyterLab (try-it answers, ...)
            cell.metadata["tags"] = [*tags, collapse]
        cells.append(cell)
    first_heading = next(
        (i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.lstrip().startswith("# ")), None
    )
    if first_heading is None:
        raise SystemExit(f"{rel}: no '# Title' heading in a markdown cell; every page needs one.")
    top = [nbformat.v4.new_markdown_cell(banner(rel, fast)), *setup]
    nb.cells = cells[: first_heading + 1] + top + cells[first_heading + 1 :]
    widgets = replace_widgets(nb, nbtool.colab_url(rel))
    for cell in nb.cells:  # nbgrader's lock icons and ids mean nothing on the site
        cell.metadata.pop("nbgrader", None)
    return nb, widgets


_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")


def home_page(readme: str, pages: set[str]) -> str:
    """README.md as the home page: links to notebooks go to their pages; links to other repository files
    (not on the site) keep their words and lose the link."""

    def fix(match: re.Match) -> str:
        words, target = match.groups()
        if target.startswith(("http://", "https://", "#", "mailto:")) or target.split("#")[0] in pages:
            return match.group(0)
        return words

    return _LINK.sub(fix, readme)


def toc(caption: str, relatives: list[str]) -> str:
    entries = "\n".join(rel.removesuffix(".ipynb") for rel in relatives)
    return f"\n```{{toctree}}\n:caption: {caption}\n:hidden:\n:maxdepth: 1\n\n{entries}\n```\n"


def stage(stage_dir: Path, executed: dict[str, Path], lecture_list: list[str], assignment_list: list[str]) -> dict:
    """Write the Sphinx source tree; returns counts for the summary."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
    stats = {"widgets": 0, "fast_pages": 0, "errors": 0}
    for rel in lecture_list + assignment_list:
        src = ROOT / rel
        download = stage_dir / DOWNLOADS / rel
        download.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, download)  # the clean notebook, as students get it
        if rel in executed:
            nb = with_outputs(rel, executed[rel])
            meta = nb.metadata.get(META_KEY, {})
            fast = bool(meta.get("fast"))
            stats["fast_pages"] += fast
            stats["errors"] += meta.get("errors", 0)
        else:
            nb, fast = nbformat.read(src, as_version=4), None
        nb, widgets = prepare_page(nb, rel, fast)
        stats["widgets"] += widgets
        out = stage_dir / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out)
    pages = set(lecture_list + assignment_list)
    index = home_page((ROOT / "README.md").read_text(), pages)
    index += toc("Lectures", lecture_list) + toc("Assignments", assignment_list)
    (stage_dir / "index.md").write_text(index)
    return stats


# ------------------------------------------------------------------------------------------------
# Build
# ------------------------------------------------------------------------------------------------


def mathjax_folder() -> Path:
    """MathJax 3 as shipped in the django-static-mathjax wheel (so equations render offline)."""
    try:
        import mathjax
    except ImportError as err:
        raise SystemExit(
            "MathJax is missing (django-static-mathjax): install the site tools with `make setup`."
        ) from err
    folder = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (folder / "tex-chtml.js").exists():
        raise SystemExit(f"{folder} has no tex-chtml.js: reinstall django-static-mathjax (`make setup`).")
    return folder


# What the site needs of MathJax: tex-chtml.js, its TeX extensions (input/) and CommonHTML fonts (output/chtml/).
MATHJAX_UNUSED = ("sre", "svg", "*svg*.js", "*-full*.js", "mml-*.js", "tex-mml-*.js", "node-main*", "__pycache__")


def sphinx_build(stage_dir: Path, out: Path, doctrees: Path) -> None:
    try:
        from sphinx.cmd.build import build_main
    except ImportError as err:
        raise SystemExit("Sphinx is missing: install the site tools with `make setup` (the `site` extra).") from err
    served = stage_dir / "_mathjax"  # html_static_path entry: its "mathjax" folder lands in _static/
    if not served.exists():
        shutil.copytree(mathjax_folder(), served / "mathjax", ignore=shutil.ignore_patterns(*MATHJAX_UNUSED))
    os.environ["COURSE_SITE_MATHJAX"] = str(served)
    os.environ["COURSE_SITE_DOWNLOADS"] = str(stage_dir / DOWNLOADS)
    args = ["-b", "html", "-q", "-c", str(BOOK), "-d", str(doctrees), str(stage_dir), str(out)]
    code = build_main(args)
    if code != 0:
        raise SystemExit(f"Sphinx failed (exit {code}); its messages are above.")


def site_size(out: Path) -> tuple[int, int]:
    """(bytes, number of HTML pages) of a built site."""
    files = [p for p in out.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), sum(1 for p in files if p.suffix == ".html")


def build(out: Path = DEFAULT_OUT, missing: str = "execute", executed_dir: Path = EXECUTED_DIR) -> dict:
    """Build the whole site into ``out``; returns a summary (pages, size, seconds, ...)."""
    start = time.perf_counter()
    lecture_list, assignment_list = lectures(), assignments()
    executed = ensure_executed(lecture_list, missing, executed_dir)
    t_exec = time.perf_counter() - start
    stage_dir = out.parent / f"{out.name}-src"
    stats = stage(stage_dir, executed, lecture_list, assignment_list)
    if out.exists():
        shutil.rmtree(out)
    sphinx_build(stage_dir, out, out.parent / f"{out.name}-doctrees")
    (out / ".nojekyll").write_text("")  # GitHub Pages: serve _static/ and friends as they are
    size, html_pages = site_size(out)
    return {
        "out": str(out),
        "lectures": len(lecture_list),
        "assignments": len(assignment_list),
        "html_pages": html_pages,
        "size_mb": round(size / 2**20, 1),
        "execute_s": round(t_exec, 1),
        "total_s": round(time.perf_counter() - start, 1),
        **stats,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m book.build")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the HTML goes (default build/site)")
    parser.add_argument(
        "--missing",
        choices=("execute", "fail"),
        default="execute",
        help="a lecture with no fresh executed copy from the tests: run its tests now, or stop (default execute)",
    )
    args = parser.parse_args(argv)
    summary = build(args.out.resolve(), args.missing)
    print(json.dumps(summary, indent=1))
    print(f"Site: {summary['out']}/index.html  (serve: python -m http.server -d {summary['out']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
