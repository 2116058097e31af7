"""``python -m tools.grading``: the instructor's commands (docs/instructors.md).

python -m tools.grading grade ASSIGNMENT [SUBMISSIONS] [--mode full]  # collect, check, repair, autograde, report
python -m tools.grading feedback ASSIGNMENT [--force]  # refused while written answers have no score
python -m tools.grading grades                         # export (assignments someone handed in) + summary
python -m tools.grading collect ASSIGNMENT DOWNLOADS   # put downloaded .ipynb files where nbgrader looks
python -m tools.grading check [--assignment A]         # report every submission nbgrader would mis-grade
python -m tools.grading repair [--assignment A]        # fix what can be fixed safely (backups kept)
python -m tools.grading autograde ASSIGNMENT [--workers N | --scheduler tcp://HOST:PORT]
python -m tools.grading manual-grade ASSIGNMENT STUDENT GRADE_ID POINTS [--comment TEXT] [--override]
python -m tools.grading report ASSIGNMENT              # scores, failures and why, cells still to grade
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tools.grading import cycle
from tools.grading.gradebook import OverrideRefused, format_report, report, set_manual_grade
from tools.grading.settings import MODE_VARIABLE, MODES, ROOT, grading_mode
from tools.grading.submissions import Finding, check_submissions, collect, repair_submissions


def _print_findings(findings: list[Finding]) -> int:
    bad = [f for f in findings if f.issues]
    for f in findings:
        done = f" ({f.attempted[0]}/{f.attempted[1]} solution cells changed)" if f.attempted else ""
        if not f.issues:
            print(f"ok       {f.label}{done}")
        for issue in f.issues:
            print(f"PROBLEM  {f.label}: {issue}")
    print(
        f"\n{len(findings)} notebooks checked, {len(bad)} with problems"
        + (
            f" ({sum(1 for f in bad if all(i.repairable for i in f.issues))} repairable: "
            "run `python -m tools.grading repair`)"
            if bad
            else "."
        )
    )
    return len(bad)


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.grading",
        description="Grading around nbgrader: the instructor's cycle in a few commands (docs/instructors.md).",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="course folder (default: this repository)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("grade", help="collect, check, repair what is safe, autograde in the sandbox, report")
    p.add_argument("assignment")
    p.add_argument("submissions", type=Path, nargs="?", help="folder of downloaded hand-ins (default: only submitted/)")
    p.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help=f"fast (default; or ${MODE_VARIABLE}) or full: full data and training, longer limits, a CUDA GPU needed",
    )
    p.add_argument("--workers", type=int, default=None, help="submissions graded at once (default: the cores)")
    p.add_argument("--scheduler", help="grade on a Dask cluster, e.g. tcp://HOST:8786")
    p.add_argument("--force", action="store_true", help="regrade submissions that did not change since the last run")
    p = sub.add_parser("feedback", help="feedback HTML for every student (refused while written answers are open)")
    p.add_argument("assignment")
    p.add_argument("--force", action="store_true", help="generate even though written answers have no score yet")
    sub.add_parser("grades", help="export grades (assignments someone handed in) to nbgrader_work/grades.csv")
    p = sub.add_parser(
        "collect",
        help="copy downloaded notebooks into submitted/<student>/<assignment>/ "
        "(newest of several candidates; never overwrites silently)",
    )
    p.add_argument("assignment")
    p.add_argument("downloads", type=Path)
    p.add_argument(
        "--force",
        action="store_true",
        help="replace notebooks already in submitted/ that differ (the old ones are backed up first)",
    )
    for name in ("check", "repair"):
        p = sub.add_parser(name, help=f"{name} submitted notebooks against the release")
        p.add_argument("submitted", type=Path, nargs="?", help="default: <root>/submitted")
        p.add_argument("--assignment", help="only this assignment")
    p = sub.add_parser("manual-grade", help="record a score given by hand")
    p.add_argument("assignment")
    p.add_argument("student")
    p.add_argument("cell_id")
    p.add_argument("points", type=float)
    p.add_argument("--comment")
    p.add_argument("--override", action="store_true", help="replace the score of an autograded test cell")
    p = sub.add_parser("report", help="scores and grading problems of one assignment")
    p.add_argument("assignment")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser(
        "autograde",
        help="autograde every submission of one assignment, N at a time or on a Dask "
        "cluster, one gradebook writer (tools/autograde/parallel.py)",
    )
    from tools.autograde import parallel

    parallel.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = args.root.resolve()

    if args.command == "grade":
        mode = args.mode or grading_mode()
        return cycle.grade(
            args.assignment,
            args.submissions,
            root,
            workers=args.workers,
            scheduler=args.scheduler,
            mode=mode,
            force=args.force,
        )
    if args.command == "feedback":
        return cycle.feedback(args.assignment, root, force=args.force)
    if args.command == "grades":
        return cycle.grades(root)
    if args.command == "collect":
        result = collect(args.assignment, args.downloads, root / "submitted", root, force=args.force)
        for line in result:
            print(line)
        return 1 if result.problems else 0
    if args.command in ("check", "repair"):
        submitted = (args.submitted or root / "submitted").resolve()
        if args.command == "check":
            return 1 if _print_findings(check_submissions(submitted, args.assignment, root)) else 0
        log, leftover = repair_submissions(submitted, args.assignment, root)
        print("\n".join(log) if log else "nothing to repair")
        for f in leftover:
            print(f"NOT REPAIRED  {f.label}: " + "; ".join(str(i) for i in f.issues))
        return 1 if leftover else 0
    if args.command == "autograde":
        from tools.autograde import parallel

        return parallel.run_cli(args, root)
    if args.command == "manual-grade":
        grade = (args.assignment, args.student, args.cell_id, args.points, args.comment, root)
        try:
            print(set_manual_grade(*grade, override=args.override))
        except OverrideRefused as err:
            if not _ask(f"{err.args[0]}\nReplace it?"):
                print(f"not changed: {err.args[0]}", file=sys.stderr)
                return 1
            print(set_manual_grade(*grade, override=True))
        return 0
    rows = report(args.assignment, root)
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=1))
    else:
        print(format_report(args.assignment, rows))
    return 0


def entry() -> None:
    """``python -m tools.grading``: expected errors as one line (what was wrong, what to do), exit 2."""
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    try:
        sys.exit(main())
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        sys.exit(2)
