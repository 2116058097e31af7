"""Regenerate the student copies in assignments/ from the instructor versions in solutions/.

    python -m tools.release                 # every assignment under solutions/ (what `make release` runs)
    python -m tools.release A1_backprop     # only the named ones
    python -m tools.release --check         # regenerate in a scratch copy; exit 1 if assignments/ is stale

Each assignment is a folder ``solutions/<name>/`` holding one or more nbgrader notebooks; the release
is ``nbgrader generate_assignment <name> --force`` run in this folder (nbgrader_config.py maps nbgrader's
source/release folders to solutions/ and assignments/), in fast, offline mode. nbgrader strips the
solutions, the hidden tests and all outputs; afterwards every student copy is scanned for anything
that must not leak (solution code, markers, hidden tests) and the release fails if it finds some.
It also records the assignment in gradebook.db, which autograding needs (``--no-db`` skips that).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from tools import markers

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR, RELEASE_DIR = "solutions", "assignments"
MARKERS = markers.MARKERS
# Cell metadata that editors change without meaning anything (ignored when comparing releases).
VOLATILE_CELL_METADATA = {"collapsed", "scrolled", "execution", "trusted", "colab", "id", "outputId", "jupyter"}
# Files copied into a course folder used for scratch releases and grading runs.
COURSE_FILES = ("nbgrader_config.py", "tools", SOURCE_DIR, RELEASE_DIR)


def discover(root: Path = ROOT) -> list[str]:
    """Every assignment: a folder under solutions/ that holds at least one notebook."""
    folder = root / SOURCE_DIR
    if not folder.is_dir():
        return []
    return sorted(
        p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")) and any(p.glob("*.ipynb"))
    )


def nbgrader_env() -> dict[str, str]:
    env = dict(os.environ)
    env["COURSE_FAST"] = "1"  # nothing should execute, but if a preprocessor does: fast and offline
    env["COURSE_OFFLINE"] = "1"
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def generate(assignments: list[str] | None = None, root: Path = ROOT, db: bool = True) -> None:
    """Run ``nbgrader generate_assignment --force`` (one call for all, or one per named assignment)."""
    known = discover(root)
    names = assignments or known
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SystemExit(
            f"No assignment {', '.join(unknown)} under {root / SOURCE_DIR} (found: {', '.join(known) or 'none'})."
        )
    targets = ["*"] if not assignments else names
    for target in targets:
        cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", target, "--force"]
        if not db:
            cmd.append("--no-db")
        proc = subprocess.run(cmd, cwd=root, env=nbgrader_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "ERROR" in line or "Error" in line]
            raise SystemExit(
                f"nbgrader generate_assignment {target} failed (exit {proc.returncode}):\n"
                + "\n".join(errors[-20:] or (proc.stdout + proc.stderr).splitlines()[-20:])
            )
    for name in names:
        for nb in sorted((root / SOURCE_DIR / name).glob("*.ipynb")):
            if not (root / RELEASE_DIR / name / nb.name).exists():
                raise SystemExit(f"nbgrader did not write {RELEASE_DIR}/{name}/{nb.name}.")


# ------------------------------------------------------------------------------------------------
# What must never reach students
# ------------------------------------------------------------------------------------------------


def protected_lines(source_nb) -> set[str]:
    """Lines that appear only inside solution, hidden-test or mark-scheme regions of the instructor notebook.

    (tools.markers.secret_lines; comment lines are left out: "# YOUR CODE HERE" and the like occur in
    student copies too.)
    """
    return markers.secret_lines(source_nb, markers.ALL_KINDS, comments=False)


def leaks(source_nb, student_nb) -> list[str]:
    """What the student copy reveals: markers, solution code or hidden tests (empty list: nothing)."""
    found = []
    secret = protected_lines(source_nb)
    for index, cell in enumerate(student_nb.cells):
        for marker in MARKERS:
            if marker in cell.source:
                found.append(f"cell {index}: contains the marker '{marker}'")
        for line in cell.source.split("\n"):
            if line.strip() in secret:
                found.append(f"cell {index}: reveals the line {line.strip()!r}")
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
            found.append(f"cell {index}: has stored outputs (they may show solution results)")
    return found


def check_leaks(root: Path = ROOT, assignments: list[str] | None = None) -> list[str]:
    problems = []
    for name in assignments or discover(root):
        for src in sorted((root / SOURCE_DIR / name).glob("*.ipynb")):
            dst = root / RELEASE_DIR / name / src.name
            if not dst.exists():
                problems.append(f"{RELEASE_DIR}/{name}/{src.name}: missing (run python -m tools.release)")
                continue
            problems += [
                f"{RELEASE_DIR}/{name}/{src.name}: {leak}"
                for leak in leaks(nbformat.read(src, as_version=4), nbformat.read(dst, as_version=4))
            ]
    return problems


# ------------------------------------------------------------------------------------------------
# Comparing releases
# ------------------------------------------------------------------------------------------------


def fingerprint(nb) -> list[tuple]:
    """What matters in a student copy: per cell its type, source and non-volatile metadata."""
    cells = []
    for cell in nb.cells:
        meta = {k: v for k, v in cell.metadata.items() if k not in VOLATILE_CELL_METADATA}
        cells.append((cell.cell_type, cell.source, repr(sorted(meta.items()))))
    return cells


def compare_trees(expected: Path, actual: Path) -> list[str]:
    """Differences between two assignments/ folders (notebooks by fingerprint, other files by bytes)."""
    diffs = []
    files = lambda d: {
        p.relative_to(d).as_posix()
        for p in d.rglob("*")  # noqa: E731
        if p.is_file() and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts
    }
    exp, act = files(expected) if expected.exists() else set(), files(actual) if actual.exists() else set()
    diffs += [f"{f}: missing from the committed release" for f in sorted(exp - act)]
    diffs += [f"{f}: in the committed release but not generated from {SOURCE_DIR}/" for f in sorted(act - exp)]
    for f in sorted(exp & act):
        a, b = expected / f, actual / f
        if f.endswith(".ipynb"):
            fa, fb = fingerprint(nbformat.read(a, as_version=4)), fingerprint(nbformat.read(b, as_version=4))
            if len(fa) != len(fb):
                diffs.append(f"{f}: {len(fb)} cells committed, {len(fa)} expected")
            else:
                diffs += [f"{f}: cell {i} differs" for i, (x, y) in enumerate(zip(fa, fb)) if x != y]
        elif a.read_bytes() != b.read_bytes():
            diffs.append(f"{f}: differs")
    return diffs


def copy_course(root: Path, dest: Path, with_release: bool = True) -> Path:
    """A minimal course folder (config, tools, solutions, optionally assignments) for scratch work."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COURSE_FILES:
        if name == RELEASE_DIR and not with_release:
            continue
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def stale(root: Path = ROOT, assignments: list[str] | None = None) -> list[str]:
    """Regenerate the release in a scratch copy and compare it with root/assignments."""
    with tempfile.TemporaryDirectory(prefix="release-check-") as tmp:
        scratch = copy_course(root, Path(tmp) / "course", with_release=False)
        generate(assignments, scratch, db=False)
        names = assignments or discover(root)
        diffs = []
        for name in names:
            diffs += [
                f"{RELEASE_DIR}/{name}/{d}"
                for d in compare_trees(scratch / RELEASE_DIR / name, root / RELEASE_DIR / name)
            ]
        if not assignments:
            extra = (
                sorted(p.name for p in (root / RELEASE_DIR).iterdir() if p.is_dir() and p.name not in names)
                if (root / RELEASE_DIR).is_dir()
                else []
            )
            diffs += [f"{RELEASE_DIR}/{name}: no matching folder in {SOURCE_DIR}/ (delete it?)" for name in extra]
        return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.release", description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", help="assignment folders under solutions/ (default: all)")
    parser.add_argument("--check", action="store_true", help="only report whether assignments/ is up to date")
    parser.add_argument("--no-db", action="store_true", help="do not record the assignments in gradebook.db")
    parser.add_argument("--root", type=Path, default=ROOT, help="course folder (default: this repository)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    names = args.assignments or None
    if args.check:
        diffs = stale(root, names) + check_leaks(root, names)
        for d in diffs:
            print(d)
        print(
            "assignments/ is up to date."
            if not diffs
            else f"{len(diffs)} problem(s): run `python -m tools.release` (make release) and commit assignments/."
        )
        return 1 if diffs else 0
    generate(names, root, db=not args.no_db)
    problems = check_leaks(root, names)
    for p in problems:
        print("LEAK", p)
    if problems:
        return 1
    for name in names or discover(root):
        print(f"released {RELEASE_DIR}/{name}/ from {SOURCE_DIR}/{name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
