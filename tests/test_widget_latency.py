"""How responsive every lecture widget feels in a real browser (JupyterLab in headless Chromium, 2 CPU cores).

One JupyterLab server; for each lecture a small notebook holding the lecture's set-up cells and its widget
cell (taken from the lecture file, so the test follows the lecture), run through JupyterLab's UI. Then every
slider and dropdown of the widget is moved a few times and each button clicked once, and the time from the
input event to the new image in the DOM is measured in the page (``benchmarks/browser_lab.py``).

Writes ``test-artifacts/browser/latency.json`` and prints a table. Budget per interaction: median <= 250 ms,
p95 <= 600 ms; a training animation: first frame <= 500 ms after the click, >= 5 frames/s, and never two
images for one interaction (a double redraw). The test fails only when a budget is missed by more than
:data:`SLACK` times (machines are noisy); the JSON has the exact numbers. About 2 minutes on 2 busy cores.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from benchmarks import browser_lab as bl

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
BUDGET = {"median_ms": 250.0, "p95_ms": 600.0, "first_frame_ms": 500.0, "frames_per_s": 5.0}
SLACK = 2.0
MIN_INTERACTIONS = 8  # per widget: each slider or dropdown is moved 2 times or more (back and forth)
WIDGET_CALL = re.compile(r"\.widget\(\)|\binteract\(|^\s*import ipywidgets", re.MULTILINE)

pytestmark = [
    pytest.mark.skipif(not Path(bl.CHROMIUM).exists(), reason="Chromium is not installed (apt-get install chromium)"),
    pytest.mark.timeout(600),
]


@dataclass(frozen=True)
class LectureWidget:
    """A lecture's widget cell (found by ``widget``, a piece of its source) and the cells it needs before it."""

    lecture: str
    widget: str
    setup: tuple[str, ...]


SETUP = "setup_notebook("  # the mode/device cell every lecture starts with (after the Colab cell)
WIDGETS = (
    LectureWidget("L00_learning_recipe", "Playground(", (SETUP,)),
    LectureWidget("L02_convolution_arithmetic", "ConvArithmetic(n=5", (SETUP,)),
    LectureWidget("L03_initialisation_variance", "InitExplorer(", (SETUP, "import InitExplorer")),
    LectureWidget("L04_double_descent", "RandomFeaturesExplorer(", (SETUP, "threadpool_limits(1)", "N_RF, D_RF =")),
    LectureWidget(
        "L05_optimisers",
        "LandscapeExplorer(",
        (
            SETUP,
            "optimiser_landscapes as ol",
            "class Optimiser",
            "class Momentum",
            "class AdaGrad",
            "class Adam(",
            "ours_by_name = {",
        ),
    ),
    LectureWidget(
        "L10_understanding_and_breaking_cnns",
        "def draw_attack(",
        (
            SETUP,
            "import copy",
            'train_data = load_dataset("mnist"',
            "class Standardise",
            "history = fit(",
            "def probabilities(",
            "def fgsm(",
            "def first_flip_level(",
        ),
    ),
    LectureWidget(
        "L11_support_vector_machines",
        "def rbf_svm_widget(",
        (SETUP, "def histogram_intersection(", "def draw_decision(", "def fit_rbf("),
    ),
)


def _code_cells(lecture: str) -> list:
    nb = nbformat.read(ROOT / "lectures" / f"{lecture}.ipynb", as_version=4)
    return [c for c in nb.cells if c.cell_type == "code"]


def widget_cells(spec: LectureWidget) -> list[str]:
    """The sources of the lecture's set-up cells, in lecture order, followed by its widget cell."""
    cells = _code_cells(spec.lecture)
    widget = [c for c in cells if spec.widget in c.source and WIDGET_CALL.search(c.source)]
    assert len(widget) == 1, f"{spec.lecture}: expected one widget cell containing {spec.widget!r}, found {len(widget)}"
    index = cells.index(widget[0])
    picked = set()
    for marker in spec.setup:
        found = [i for i, c in enumerate(cells[:index]) if marker in c.source]
        assert found, f"{spec.lecture}: no set-up cell containing {marker!r} before the widget cell"
        picked.add(found[0])
    return [cells[i].source for i in sorted(picked)] + [widget[0].source]


def widgets_notebook(specs) -> tuple[nbformat.NotebookNode, dict[str, int]]:
    """One notebook with every lecture's set-up and widget cells (one kernel start and one import of torch for
    all), and the index among code cells of each lecture's widget cell."""
    sources, where = [], {}
    for spec in specs:
        cells = widget_cells(spec)
        sources += cells
        where[spec.lecture] = len(sources) - 1
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb, where


def test_every_lecture_widget_is_measured():
    """A new widget in a lecture must be added to WIDGETS (else its latency goes unmeasured)."""
    measured = {(w.lecture, w.widget) for w in WIDGETS}
    for path in sorted((ROOT / "lectures").glob("L*.ipynb")):
        for cell in _code_cells(path.stem):
            if WIDGET_CALL.search(cell.source) and not cell.metadata.get("tags"):
                assert any(lecture == path.stem and marker in cell.source for lecture, marker in measured), (
                    f"{path.name} has a widget cell that tests/test_widget_latency.py does not measure:\n"
                    f"{cell.source[:200]}\nAdd it to WIDGETS."
                )


def format_table(results: dict) -> str:
    """The latency table printed by the test (one row per widget)."""
    lines = [
        f"{'widget':38s} {'n':>3s} {'median ms':>9s} {'p95 ms':>7s} {'imgs':>4s} {'1st frame':>9s} {'fps':>5s}",
    ]
    for name, r in results.items():
        first = "" if r["first_frame_ms"] is None else f"{r['first_frame_ms']:.0f}"
        fps = "" if r["frames_per_s"] is None else f"{r['frames_per_s']:.1f}"
        lines.append(
            f"{name:38s} {r['interactions']:3d} {r['median_ms']:9.0f} {r['p95_ms']:7.0f} "
            f"{r['max_images_per_interaction']:4d} {first:>9s} {fps:>5s}"
        )
    lines.append(
        f"budget: median <= {BUDGET['median_ms']:.0f} ms, p95 <= {BUDGET['p95_ms']:.0f} ms, first frame <= "
        f"{BUDGET['first_frame_ms']:.0f} ms, >= {BUDGET['frames_per_s']:.0f} frames/s (fails beyond {SLACK:g}x)"
    )
    return "\n".join(lines)


def budget_misses(results: dict, slack: float = SLACK) -> list[str]:
    """Every budget missed by more than ``slack`` times, as readable sentences."""
    misses = []
    for name, r in results.items():
        for key in ("median_ms", "p95_ms", "first_frame_ms"):
            if r[key] is not None and r[key] > slack * BUDGET[key]:
                misses.append(f"{name}: {key} {r[key]:.0f} > {slack:g} x {BUDGET[key]:.0f}")
        if r["frames_per_s"] is not None and r["frames_per_s"] < BUDGET["frames_per_s"] / slack:
            misses.append(f"{name}: {r['frames_per_s']:.1f} frames/s < {BUDGET['frames_per_s']:g} / {slack:g}")
        if r["max_images_per_interaction"] > 1:
            misses.append(f"{name}: one interaction drew {r['max_images_per_interaction']} images (a double redraw)")
    return misses


def test_widget_latency_in_jupyterlab(tmp_path, capsys):
    only = os.environ.get("COURSE_LATENCY_ONLY")  # e.g. "L02,L05" while working on those widgets
    specs = [w for w in WIDGETS if not only or any(w.lecture.startswith(p) for p in only.split(","))]
    results: dict[str, dict] = {}
    phases: dict[str, dict] = {}
    nb, where = widgets_notebook(specs)
    nbformat.write(nb, tmp_path / "widgets.ipynb")
    records = tmp_path / "records"
    records.mkdir()
    env = {"COURSE_FAST": "1", "COURSE_OFFLINE": "1", "COURSE_RECORD_DIR": str(records)}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    load_at_start = os.getloadavg()[0]

    def save() -> None:
        report = {
            "budget": BUDGET,
            "slack": SLACK,
            "min_interactions": MIN_INTERACTIONS,
            "seconds": phases,
            "total_s": time.perf_counter() - start,
            "widgets": results,
        }
        (ARTIFACTS / "latency.json").write_text(json.dumps(report, indent=1))

    with bl.jupyterlab(tmp_path, env) as base, bl.chromium_page() as page:
        phases["lab_and_browser"] = time.perf_counter() - start
        bl.open_notebook(page, base, "widgets.ipynb")
        phases["open_notebook"] = time.perf_counter() - start - phases["lab_and_browser"]
        state = bl.run_all(page, timeout_s=300)
        phases["run_all_cells"] = state["seconds"]
        assert not state.get("errors"), f"cells raised in the browser: {state.get('errors')}"
        assert state.get("executed") == state.get("code"), f"not every cell ran: {state}"
        for spec in specs:
            t0 = time.perf_counter()
            area = bl.code_cell_output(page, where[spec.lecture])
            area.scroll_into_view_if_needed()
            page.wait_for_function("a => a.querySelector('img') !== null", arg=area, timeout=60_000)
            controls = bl.measure_widget(page, area, min_interactions=MIN_INTERACTIONS)
            assert controls, f"{spec.lecture}: found no controls in the widget"
            results[spec.lecture] = bl.summarise(controls)
            area.screenshot(path=str(ARTIFACTS / f"widget_{spec.lecture}.png"))
            phases[spec.lecture] = time.perf_counter() - t0
            save()
    # On a machine busier than its cores (other jobs), everything waits for a CPU: widen the slack by the load.
    load = max(load_at_start, os.getloadavg()[0]) / (os.cpu_count() or 1)
    slack = SLACK * max(1.0, load)
    phases["load_per_core"] = round(load, 2)
    save()
    with capsys.disabled():
        print("\n" + format_table(results) + f"\nload per core {load:.1f}: failing beyond {slack:.1f}x the budget")
    assert set(results) == {w.lecture for w in specs}
    misses = budget_misses(results, slack)
    assert not misses, "widget latency over budget (see test-artifacts/browser/latency.json):\n" + "\n".join(misses)


def test_budget_check_catches_slow_widgets_and_double_redraws():
    fast = {"median_ms": 100, "p95_ms": 300, "first_frame_ms": None, "frames_per_s": None}
    assert budget_misses({"w": {**fast, "max_images_per_interaction": 1}}) == []
    assert budget_misses({"w": {**fast, "median_ms": 600, "max_images_per_interaction": 1}})
    assert budget_misses({"w": {**fast, "max_images_per_interaction": 2}})
    trainer = {**fast, "first_frame_ms": 1200, "frames_per_s": 9, "max_images_per_interaction": 1}
    assert budget_misses({"w": trainer}) == ["w: first_frame_ms 1200 > 2 x 500"]
    assert budget_misses({"w": {**trainer, "first_frame_ms": 300, "frames_per_s": 2}})


def _parts(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _parts(child)


def _demo_widgets():
    from course_utils.demos import conv_arithmetic, double_descent, init_explorer, optimiser_landscapes, playground

    yield "L02", conv_arithmetic.ConvArithmetic(n=5, f=3, p=1, s=2).widget()
    yield "L03", init_explorer.InitExplorer(depth=4, width=32).widget()
    yield "L04", double_descent.RandomFeaturesExplorer(n=40, d=10, seeds=1).widget()
    yield "L05", optimiser_landscapes.LandscapeExplorer().widget()
    yield "L00", playground.Playground("xor", resolution=30).widget()


def test_one_picture_per_control_change():
    """Every control of every lecture widget sends exactly one new image to the browser when it moves, also
    where a change resets another control (L2's position: on_params used to draw twice)."""
    w = pytest.importorskip("ipywidgets")
    for name, box in _demo_widgets():
        parts = list(_parts(box))
        (image,) = [p for p in parts if isinstance(p, w.Image)]
        sent = []
        image.observe(lambda change, sent=sent: sent.append(len(change["new"])), names="value")
        controls = [p for p in parts if isinstance(p, (w.IntSlider, w.FloatSlider, w.FloatLogSlider, w.Dropdown))]
        assert controls, name
        for control in sorted(controls, key=lambda c: c.description != "position"):  # position first: not 0
            if control.disabled:
                continue
            if isinstance(control, w.Dropdown):
                options = [o[1] if isinstance(o, tuple) else o for o in control.options]
                new = options[(options.index(control.value) + 1) % len(options)]
            else:
                new = control.value + control.step if control.value + control.step <= control.max else control.min
            before = len(sent)
            control.value = new
            assert len(sent) - before == 1, f"{name}: moving {control.description!r} sent {len(sent) - before} images"
