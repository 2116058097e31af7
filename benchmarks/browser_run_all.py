"""Run All of each lecture in JupyterLab + headless Chromium, timed, next to the same notebook under nbval.

    python benchmarks/browser_run_all.py                      # every lecture, fast mode, browser only
    python benchmarks/browser_run_all.py L00 L02 --nbval      # also time nbval on the same lectures
    python benchmarks/browser_run_all.py --json out.json

Per lecture it reports the wall time of JupyterLab's "Run All" as a student sees it (command to last cell
done), the kernel's own time (the sum over cells of execute_input -> execute_reply, which JupyterLab records
with ``recordTiming``), and the difference: the time spent outside the kernel (browser rendering, message
transport, the queue between cells). With ``--nbval`` it also runs ``pytest --nbval-lax`` on the notebook
(what CI does) and takes the time conftest.py reports. Not part of ``make test`` (minutes per lecture).
The lab runs in fast offline mode like the tests but, unlike them, as a watched notebook: bars and live
curves are shown (``COURSE_RECORD_DIR`` unset).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import browser_lab as bl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"recordTiming": True}}

KERNEL_TIME_JS = """() => {
  const cells = window.jupyterapp.shell.currentWidget.content.widgets;
  let total = 0, count = 0, index = -1;
  const slowest = [];
  for (const c of cells) {
    if (c.model.type !== 'code') continue;
    index += 1;
    const e = c.model.getMetadata('execution');
    if (!e || !e['iopub.execute_input'] || !e['shell.execute_reply']) continue;
    const s = (Date.parse(e['shell.execute_reply']) - Date.parse(e['iopub.execute_input'])) / 1000;
    total += s;
    count += 1;
    slowest.push([index, Math.round(s * 10) / 10, c.model.sharedModel.getSource().split('\\n')[0].slice(0, 60)]);
  }
  slowest.sort((a, b) => b[1] - a[1]);
  return {kernel_s: total, timed_cells: count, slowest: slowest.slice(0, 5)};
}"""


def lectures(selected: list[str]) -> list[Path]:
    """The lecture notebooks whose names start with one of ``selected`` (all when empty)."""
    every = sorted((ROOT / "lectures").glob("L*.ipynb"))
    chosen = [p for p in every if not selected or any(p.name.startswith(s) for s in selected)]
    if not chosen:
        raise SystemExit(f"No lecture matches {selected}; choose from {', '.join(p.stem for p in every)}.")
    return chosen


def nbval_seconds(notebook: Path) -> float | None:
    """Seconds conftest.py reports for ``notebook`` under ``pytest --nbval-lax`` (None when it failed)."""
    env = {**os.environ, "COURSE_FAST": "1", "COURSE_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", str(notebook.relative_to(ROOT))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    match = re.search(rf"^\s*([\d.]+) s\s+(\S+)\s.*{re.escape(notebook.name)}$", run.stdout, re.MULTILINE)
    return float(match.group(1)) if match and match.group(2) != "FAILED" else None


def measure(notebooks: list[Path], with_nbval: bool) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="run-all-") as tmp:
        root = Path(tmp)
        for nb in notebooks:
            shutil.copy(nb, root / nb.name)
        settings = root / ".jupyter" / "lab" / "user-settings"
        for name, value in SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        env = {"COURSE_FAST": "1", "COURSE_OFFLINE": "1", "COURSE_RECORD_DIR": ""}
        with bl.jupyterlab(root, env) as base, bl.chromium_page() as page:
            for nb in notebooks:
                opened = bl.open_notebook(page, base, nb.name)
                state = bl.run_all(page, timeout_s=900)
                timing = page.evaluate(KERNEL_TIME_JS)
                page.evaluate("() => window.jupyterapp.commands.execute('kernelmenu:shutdown')")
                results[nb.stem] = {
                    "open_s": round(opened, 1),
                    "run_all_s": round(state["seconds"], 1),
                    "kernel_s": round(timing["kernel_s"], 1),
                    "outside_kernel_s": round(state["seconds"] - timing["kernel_s"], 1),
                    "errors": state.get("errors", []),
                    "cells_run": f"{state.get('executed')}/{state.get('code')}",
                    "slowest_cells": timing["slowest"],  # [code cell index, kernel seconds, first line]
                }
                print(nb.stem, results[nb.stem], flush=True)
    if with_nbval:
        for nb in notebooks:
            results[nb.stem]["nbval_s"] = nbval_seconds(nb)
            print(nb.stem, "nbval", results[nb.stem]["nbval_s"], flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lectures", nargs="*", help="lecture name prefixes, e.g. L00 L02 (default: all)")
    parser.add_argument("--nbval", action="store_true", help="also time each notebook under pytest --nbval-lax")
    parser.add_argument("--json", help="write the results to this JSON file")
    args = parser.parse_args(argv)
    start, load = time.perf_counter(), os.getloadavg()[0]
    results = measure(lectures(args.lectures), args.nbval)
    print(f"\n{'lecture':40s} {'Run All':>8s} {'kernel':>7s} {'outside':>8s} {'nbval':>6s}  (seconds)")
    for name, r in results.items():
        nbval = r.get("nbval_s")
        print(
            f"{name:40s} {r['run_all_s']:8.1f} {r['kernel_s']:7.1f} {r['outside_kernel_s']:8.1f} "
            f"{'' if nbval is None else f'{nbval:6.1f}'}{'  ERRORS' if r['errors'] else ''}"
        )
    load = max(load, os.getloadavg()[0]) / (os.cpu_count() or 1)
    print(f"load per core up to {load:.1f}; {time.perf_counter() - start:.0f} s in all")
    if args.json:
        report = {"when": datetime.now().isoformat(timespec="seconds"), "load_per_core": load, "lectures": results}
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
