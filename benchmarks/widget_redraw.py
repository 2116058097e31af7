"""Time one redraw of every lecture widget after a control changes (target: < 50 ms on a CPU).

    python benchmarks/widget_redraw.py [--json out.json]

Each module in course_utils/demos exposes ``benchmark_redraw() -> float`` (median milliseconds,
Agg backend, no browser): the Python side of a slider move. The browser adds its own few ms.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil

import matplotlib

matplotlib.use("Agg")

import course_utils.demos as demos  # noqa: E402

TARGET_MS = 50.0


def measure() -> dict[str, float]:
    results = {}
    for info in sorted(pkgutil.iter_modules(demos.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"course_utils.demos.{info.name}")
        if hasattr(module, "benchmark_redraw"):
            results[info.name] = float(module.benchmark_redraw())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    results = measure()
    print(f"{'widget':28s} {'redraw (ms)':>12s}  target < {TARGET_MS:.0f} ms")
    for name, ms in results.items():
        print(f"{name:28s} {ms:12.1f}  {'ok' if ms < TARGET_MS else 'SLOW'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"target_ms": TARGET_MS, "redraw_ms": results}, fh, indent=1)


if __name__ == "__main__":
    main()
