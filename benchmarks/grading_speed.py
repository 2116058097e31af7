"""Seconds per submission: sequential ``nbgrader autograde`` vs ``--workers N`` vs a Dask LocalCluster.

    python benchmarks/grading_speed.py                                  # A1, 8 submissions, all three ways
    python benchmarks/grading_speed.py --assignments A1_backprop A2_convolution --n 8 --workers 2
    python benchmarks/grading_speed.py --modes sequential workers --json benchmarks/results/grading.json

For each assignment a scratch course is released (``python -m tools.release``' nbgrader step) and N synthetic
submissions are written, cycling through: the reference solution, the alternative-but-correct solutions of
tests/fixtures/alternative_solutions/, the untouched release, and mutants of the reference (tools/mutation.py).
Each mode grades a fresh copy of the same N submissions; the table gives seconds per submission, the speed-up
over sequential nbgrader in the same run, the 1-minute load average before and after (``os.getloadavg``: other
work on the machine skews every number) and whether the gradebook rows are identical to sequential nbgrader's.
The JSON (default benchmarks/results/grading_speed.json, git-ignored) holds the same and a projection for
500 students.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import grading, mutation, release  # noqa: E402  (after the sys.path line: run as a script)
from tools.autograde import parallel  # noqa: E402

MODES = ("sequential", "workers", "dask")
FIXTURES = ROOT / "tests" / "fixtures" / "alternative_solutions"


def _solution_text(source: str) -> str:
    return "\n".join(
        line for line in source.split("\n") if not line.strip().startswith(("### BEGIN SOLUTION", "### END SOLUTION"))
    )


def _fill(release_nb, answers: dict[str, str]):
    nb = nbformat.from_dict(json.loads(json.dumps(release_nb)))
    for cell in nb.cells:
        gid = grading.grade_id(cell)
        if gid in answers and grading.nbgrader_meta(cell).get("solution"):
            cell.source = answers[gid]
    return nb


def synthetic_submissions(course: Path, assignment: str, n: int) -> dict[str, dict]:
    """``{student: {notebook: nb}}``: solution, alternative, untouched, mutants, cycling until n."""
    notebooks = sorted(p.stem for p in (course / "assignments" / assignment).glob("*.ipynb"))
    kinds: list[tuple[str, dict]] = []
    reference: dict[str, dict[str, str]] = {}
    releases = {s: nbformat.read(course / "assignments" / assignment / f"{s}.ipynb", as_version=4) for s in notebooks}
    for stem in notebooks:
        src = nbformat.read(course / "solutions" / assignment / f"{stem}.ipynb", as_version=4)
        reference[stem] = {
            grading.grade_id(c): _solution_text(c.source) for c in src.cells if grading.nbgrader_meta(c).get("solution")
        }
    kinds.append(("solution", reference))
    alt_file = FIXTURES / f"{assignment}.py"
    if alt_file.exists():
        alt = mutation.read_replacements(alt_file)
        kinds.append(
            (
                "alternative",
                {s: {**reference[s], **{k: v for k, v in alt.items() if k in reference[s]}} for s in notebooks},
            )
        )
    kinds.append(("untouched", {s: {} for s in notebooks}))
    mutants = []
    for cell in mutation.read_cells(assignment, course):
        if cell.kind == "solution" and cell.solution_lines:
            mutants += mutation.mutants_of(assignment, cell)[:1]
    for m in mutants:
        kinds.append(
            (
                f"mutant-{m.cell_id}",
                {
                    s: {**reference[s], **({m.cell_id: m.source} if m.cell_id in reference[s] else {})}
                    for s in notebooks
                },
            )
        )
    out = {}
    for i in range(n):
        name, answers = kinds[i % len(kinds)]
        student = f"s{i:03d}-{name}"[:40]
        out[student] = {s: (_fill(releases[s], answers[s]) if answers[s] else releases[s]) for s in notebooks}
    return out


def prepare(assignment: str, n: int, work: Path) -> Path:
    template = release.copy_course(ROOT, work / f"{assignment}-template", with_release=False)
    release.generate([assignment], template)
    for student, nbs in synthetic_submissions(template, assignment, n).items():
        for stem, nb in nbs.items():
            path = template / "submitted" / student / assignment / f"{stem}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, path)
    return template


def _rows(course: Path, assignment: str) -> dict:
    url = f"sqlite:///{course / 'gradebook.db'}"
    return {s: parallel.read_rows(url, assignment, s) for s in sorted(parallel.graded_students(url, assignment))}


def _env(threads: int | None = None) -> dict[str, str]:
    env = release.nbgrader_env()
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    return env


def run_mode(mode: str, template: Path, assignment: str, workers: int, work: Path) -> dict:
    course = work / f"{assignment}-{mode}"
    shutil.rmtree(course, ignore_errors=True)
    shutil.copytree(template, course)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    if mode == "sequential":
        proc = subprocess.run(
            [sys.executable, "-m", "nbgrader", "autograde", assignment],
            cwd=course,
            env=_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        ok, log = proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    elif mode == "workers":
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "tools.grading",
                "--root",
                str(course),
                "autograde",
                assignment,
                "--workers",
                str(workers),
                "--no-progress",
            ],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        ok, log = proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    else:
        import dask
        from distributed import Client, LocalCluster

        # non-daemonic worker processes may fork nbgrader from a preloaded server (tools/autograde/parallel.py)
        with (
            dask.config.set({"distributed.worker.daemon": False}),
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            rows = parallel.Coordinator(
                course,
                assignment,
                parallel.DaskBackend(client),
                progress=False,
                threads=max(1, (os.cpu_count() or 1) // workers),
            ).run()
        ok = all(r.status != "failed" for r in rows)
        log = parallel.format_summary(assignment, rows, time.perf_counter() - t0, f"Dask LocalCluster x{workers}")
    seconds = time.perf_counter() - t0
    return {
        "mode": mode,
        "seconds": round(seconds, 1),
        "ok": ok,
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "rows": _rows(course, assignment),
        "log": log,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assignments", nargs="+", default=["A1_backprop"])
    parser.add_argument("--n", type=int, default=8, help="submissions per assignment")
    parser.add_argument("--workers", type=int, default=2, help="--workers N and the Dask LocalCluster's size")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "grading_speed.json")
    parser.add_argument("--keep", action="store_true", help="keep the scratch courses (printed)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="grading-speed-"))
    results = []
    try:
        for assignment in args.assignments:
            template = prepare(assignment, args.n, work)
            runs = {}
            for mode in args.modes:
                print(f"{assignment}: {mode} ...", file=sys.stderr, flush=True)
                runs[mode] = run_mode(mode, template, assignment, args.workers, work)
                print(
                    f"  {runs[mode]['seconds']:.1f} s, load {runs[mode]['load_before']} -> {runs[mode]['load_after']}",
                    file=sys.stderr,
                    flush=True,
                )
            base = runs.get("sequential")
            for r in runs.values():
                r["per_submission"] = round(r["seconds"] / args.n, 2)
                r["speedup"] = round(base["seconds"] / r["seconds"], 2) if base else None
                r["same_scores_as_sequential"] = (r["rows"] == base["rows"]) if base else None
                r["scores"] = {s: row["score"] for s, row in r["rows"].items()}
            for r in runs.values():
                del r["rows"]
                results.append(
                    {"assignment": assignment, "n": args.n, "workers": args.workers, "cpus": os.cpu_count(), **r}
                )
    finally:
        if args.keep:
            print(f"scratch courses kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"{'assignment':<16} {'mode':<11} {'n':>3} {'seconds':>8} {'s/subm.':>8} {'speed-up':>8} "
        f"{'same scores':>11} {'load 1m before/after':>21}"
    )
    for r in results:
        same = "-" if r["same_scores_as_sequential"] is None else ("yes" if r["same_scores_as_sequential"] else "NO")
        speed = f"{r['speedup']:.2f}x" if r["speedup"] else "-"
        print(
            f"{r['assignment']:<16} {r['mode']:<11} {r['n']:>3} {r['seconds']:>8.1f} {r['per_submission']:>8.2f} "
            f"{speed:>8} {same:>11} {r['load_before']:>10.2f}/{r['load_after']:<10.2f}"
            + ("" if r["ok"] else "  (some submissions failed)")
        )
    for r in results:
        if r["mode"] != "sequential":
            cores_h = 500 * r["per_submission"] * r["workers"] / 3600  # core-hours for 500 at this rate
            r["projected_hours_500_on_16_cores"] = round(cores_h / 16, 2)
            r["projected_hours_500_on_4x16_cores"] = round(cores_h / 64, 2)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"JSON: {args.json}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
