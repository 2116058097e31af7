"""Build the student distribution: the course without solutions, hidden tests or grading tools.

    python -m tools.distribute DEST            # write the student tree into DEST (new folder or a git clone)
    python -m tools.distribute DEST --list     # only print what would be written
    python -m tools.distribute DEST --assignments A1_backprop A2_convolution   # only the assignments out so far

This repository is the instructors' one and must stay private: ``solutions/`` holds the model answers
and the hidden tests. Students get DEST, pushed to the public ``student_repository`` of ``[tool.course]``
in pyproject.toml (Colab badges and install cells point there; docs/instructors.md, "Publishing").

What DEST receives is an allow-list (``STUDENT_PATHS``): lectures/, the released assignments/, the
course_utils package, the students' tools (``tools/workspace.py``, which ``make lab`` runs), pyproject.toml,
environment.yml, .ci/constraints.txt, .gitignore, conftest.py, LICENSE if any, and student versions of
README.md and the Makefile (instructor-only sections, targets and links removed). Never: solutions/,
tests/, docs/, nbgrader_config.py, the grading tools, gradebook.db, submitted/, autograded/, feedback/.

Then every file of DEST is scanned for every hidden-test line and every solution / mark-scheme line of
every instructor notebook under solutions/ (tools.markers, the same parser as the release and the
feedback filter), and for nbgrader's region markers. Any hit: the tree is removed again (``--keep``
keeps it for a look) and the command exits 1. DEST may be an existing clone of the student repository:
everything in it except ``.git/`` is replaced, so ``git status`` there shows exactly what changed.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import tomllib

from tools import markers

ROOT = Path(__file__).resolve().parents[1]
# (path relative to the course root, required?) -- folders are copied whole, minus SKIPPED_NAMES
STUDENT_PATHS = (
    ("lectures", True),
    ("assignments", True),
    ("course_utils", True),
    ("tools/__init__.py", False),
    ("tools/workspace.py", False),  # `make lab` copies the course into the student's my-work/
    ("pyproject.toml", True),
    ("environment.yml", False),
    (".ci/constraints.txt", False),  # the Makefile installs with these pins
    (".gitignore", False),
    ("conftest.py", False),  # `make test`: the notebooks in fast, offline mode
    ("LICENSE", False),
    ("LICENSE.md", False),
    ("LICENSE.txt", False),
    ("README.md", True),
    ("Makefile", False),
)
SKIPPED_NAMES = ("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info", ".DS_Store")
# What must never be in the student tree, whatever STUDENT_PATHS says (checked after copying).
FORBIDDEN = (
    "solutions",
    "tests",
    "docs",
    "nbgrader_config.py",
    "gradebook.db",
    "submitted",
    "autograded",
    "feedback",
    "nbgrader_work",
    "tools/grading",
    "tools/release.py",
    "tools/markers.py",
    "tools/autograde",
    "tools/mutation.py",
    "tools/collect.py",
    "tools/distribute.py",
)
# Makefile targets that need the instructor repository (solutions/, nbgrader, the test suite's tools).
INSTRUCTOR_TARGETS = ("release", "lock", "test-latest", "lab-instructor", "student-dist", "grade", "feedback", "grades")
INSTRUCTOR_HEADINGS = re.compile(r"instructor|contributor|grading", re.IGNORECASE)
INSTRUCTOR_TEXT = re.compile(
    r"solutions/|docs/instructors|tools\.(release|notebooks|grading|distribute)|"
    r"make (release|lock|lab-instructor|test-latest)|nbgrader|CONTRIBUTING",
    re.IGNORECASE,
)


# ------------------------------------------------------------------------------------------------
# Student versions of README.md, the Makefile and pyproject.toml
# ------------------------------------------------------------------------------------------------


def _sentences(paragraph: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+(?=[A-Z`*(\[])", paragraph)


def student_readme(text: str, removed: set[str]) -> str:
    """README.md without instructor sections, sentences about instructor tools, or links to what the
    distribution leaves out (``removed``: top-level names of the instructor repository it does not
    hold). ``<!-- instructors -->`` ... ``<!-- /instructors -->`` blocks go too."""
    text = re.sub(r"<!--\s*instructors\s*-->.*?<!--\s*/instructors\s*-->\n?", "", text, flags=re.S)
    blocks, skipping = [], False
    for block in re.split(r"(?m)^(?=#{1,6} )", text):
        heading = block.split("\n", 1)[0]
        if heading.startswith("#"):
            skipping = bool(INSTRUCTOR_HEADINGS.search(heading))
        if not skipping:
            blocks.append(block)
    out = []
    for paragraph in "".join(blocks).split("\n\n"):
        if paragraph.lstrip().startswith("```"):
            # layout listings: drop the lines that name a folder or file the students do not get
            out.append(
                "\n".join(
                    ln
                    for ln in paragraph.split("\n")
                    if not re.match(r"^([\w.-]+/?)\s{2,}", ln) or ln.split()[0].rstrip("/") not in removed
                )
            )
        elif not INSTRUCTOR_TEXT.search(paragraph):
            out.append(paragraph)
        elif paragraph.lstrip().startswith(("|", "-", "*")):  # a table or list: drop the instructor rows
            out.append("\n".join(ln for ln in paragraph.split("\n") if not INSTRUCTOR_TEXT.search(ln)))
        else:  # prose: drop the sentences about instructor tools
            kept = " ".join(s for s in _sentences(paragraph.replace("\n", " ")) if not INSTRUCTOR_TEXT.search(s))
            if kept.strip():
                out.append(_wrap(kept))
    result = "\n\n".join(p for p in out if p.strip())

    def unlink(match: re.Match) -> str:  # [text](left-out/path) -> text
        target = match.group(2).split("#")[0]
        return match.group(1) if target and target.split("/")[0] in removed else match.group(0)

    result = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", unlink, result)
    return result.rstrip("\n") + "\n"


def _wrap(text: str, width: int = 105) -> str:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join(lines + [line])


_INSTRUCTOR_COMMENT = re.compile(r"\b(" + "|".join(map(re.escape, INSTRUCTOR_TARGETS)) + r")\b|Instructor")


def student_makefile(text: str) -> str:
    """The Makefile without the instructor targets (their rules, .PHONY entries and header comments)."""
    out, skipping = [], False
    for line in text.split("\n"):
        rule = re.match(r"^([A-Za-z][\w-]*)\s*:(?!=)", line)
        if rule:
            skipping = rule.group(1) in INSTRUCTOR_TARGETS
        elif skipping and line and not line.startswith(("\t", "#")):
            skipping = False
        if skipping:
            continue
        if line.startswith(".PHONY:"):
            line = " ".join(w for w in line.split() if w not in INSTRUCTOR_TARGETS)
        elif line.startswith("#") and _INSTRUCTOR_COMMENT.search(line):
            continue
        out.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out))


def student_pyproject(text: str, removed: set[str]) -> str:
    """pyproject.toml with [tool.course] pointing at the student repository only and the pytest
    ``testpaths`` reduced to folders the distribution has."""
    settings = tomllib.loads(text).get("tool", {}).get("course", {})
    public = settings.get("student_repository") or settings.get("repository", "")

    def course(match: re.Match) -> str:
        return (
            "[tool.course]\n# The public student repository (generated from the instructors' repository by\n"
            f'# tools.distribute; edit there, not here).\nrepository = "{public}"\n'
            f'branch = "{settings.get("branch", "main")}"\n'
        )

    text = re.sub(r"(?ms)^\[tool\.course\]\n.*?(?=^\[|\Z)", lambda m: course(m) + "\n", text)

    def testpaths(match: re.Match) -> str:
        paths = [p for p in re.findall(r'"([^"]+)"', match.group(1)) if p.split("/")[0] not in removed]
        return "testpaths = [" + ", ".join(f'"{p}"' for p in paths) + "]"

    return re.sub(r"(?m)^testpaths\s*=\s*\[([^\]]*)\]", testpaths, text)


TRANSFORMS = {
    "README.md": student_readme,
    "Makefile": lambda text, removed: student_makefile(text),
    "pyproject.toml": student_pyproject,
}


# ------------------------------------------------------------------------------------------------
# Building and scanning the tree
# ------------------------------------------------------------------------------------------------


def _skipped(path: Path) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in path.parts for pattern in SKIPPED_NAMES)


def plan(root: Path = ROOT, assignments: list[str] | None = None) -> list[Path]:
    """Relative paths of every file the distribution holds, in order (``assignments``: only these
    released assignments; default all)."""
    if assignments is not None:
        known = sorted(p.name for p in (root / "assignments").iterdir() if p.is_dir())
        unknown = sorted(set(assignments) - set(known))
        if unknown:
            raise ValueError(f"no released assignment {', '.join(unknown)} (released: {', '.join(known)})")
    files = []
    for rel, required in STUDENT_PATHS:
        src = root / rel
        if not src.exists():
            if required:
                raise FileNotFoundError(f"{src} is missing; the student distribution needs it.")
            continue
        if src.is_dir():
            files += sorted(
                p.relative_to(root)
                for p in src.rglob("*")
                if p.is_file()
                and not _skipped(p.relative_to(root))
                and not (
                    rel == "assignments" and assignments is not None and p.relative_to(src).parts[0] not in assignments
                )
            )
        else:
            files.append(Path(rel))
    return files


LONG_SECRET = 30  # canonical characters: secrets at least this long are also found inside longer lines


def _source_lines(path: Path) -> list[str]:
    """The lines a file shows: cell sources of a notebook (outputs are stripped in this repository),
    the text of anything else."""
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        return [line for cell in nb.cells for line in cell.source.split("\n")]
    return path.read_text(encoding="utf-8", errors="replace").split("\n")


_PRIVATE_NAME = re.compile(r"(?<![\w.])_[A-Za-z]\w*")  # hidden tests use _underscore names


def public_text(root: Path = ROOT, assignments: list[str] | None = None) -> tuple[set[str], str]:
    """(canonical lines, all canonical text) of what the course publishes on purpose: lecture cells,
    course_utils, and the released assignments that are distributed (each checked by tools.release
    against its own source)."""
    lines = set()
    for rel in plan(root, assignments):
        if rel.parts[0] in ("lectures", "course_utils", "assignments") and rel.suffix in (".ipynb", ".py"):
            lines.update(markers.canonical(line) for line in _source_lines(root / rel))
    return lines, "\n".join(sorted(lines))


def secrets(root: Path = ROOT, assignments: list[str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """(secrets, taught): canonical line -> where it comes from.

    Secrets: every hidden-test line (comments included) and every solution / mark-scheme line (comments
    excluded, as in the release check) of every instructor notebook. A line that the course publishes on
    purpose (:func:`public_text`: ``loss.backward()``, ``torch.manual_seed(1)``, a conv-BN block a lecture
    teaches) is taught material, returned in ``taught`` (``--overlap`` lists them) -- except hidden-test
    lines that use the hidden tests' ``_underscore`` names: those are secret wherever they appear."""
    found, distinctive = {}, set()
    for path in sorted((root / "solutions").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        nb = nbformat.read(path, as_version=4)
        where = path.relative_to(root).as_posix()
        hidden = markers.hidden_test_lines(nb)
        for line in markers.secret_lines(nb, markers.ALL_KINDS, comments=False) | hidden:
            key = markers.canonical(line)
            found.setdefault(key, f"{where}: {line}")
            if line in hidden and _PRIVATE_NAME.search(line):
                distinctive.add(key)
    lines, text = public_text(root, assignments)
    found = {k: v for k, v in found.items() if len(k) >= 8}
    taught = {k: v for k, v in found.items() if k not in distinctive and (k in lines or k in text)}
    return {k: v for k, v in found.items() if k not in taught}, taught


def scan(dest: Path, root: Path = ROOT, assignments: list[str] | None = None) -> list[str]:
    """Every leak in the tree at ``dest``: forbidden paths, region markers, secret lines (whole lines;
    secrets of LONG_SECRET characters or more also inside longer lines)."""
    problems = [f"{name}: must not be in the student distribution" for name in FORBIDDEN if (dest / name).exists()]
    table, _ = secrets(root, assignments)
    long_keys = [k for k in table if len(k) >= LONG_SECRET]
    for path in sorted(p for p in dest.rglob("*") if p.is_file() and ".git" not in p.relative_to(dest).parts):
        rel = path.relative_to(dest).as_posix()
        text = path.read_bytes().decode("utf-8", errors="replace")
        lines = text.split("\n")
        if path.suffix == ".ipynb":  # what students see: sources and outputs, JSON escapes undone
            try:
                nb = nbformat.reads(text, as_version=4)
                lines = [ln for c in nb.cells for ln in c.source.split("\n")] + nbformat.writes(nb).split("\n")
            except Exception as err:  # noqa: BLE001 (an unreadable notebook is a problem of its own)
                problems.append(f"{rel}: not a readable notebook ({type(err).__name__})")
        for marker in markers.MARKERS:
            if re.search(r"#+\s*" + marker, text):
                problems.append(f"{rel}: holds the nbgrader marker '{marker}'")
        canon_lines = {markers.canonical(line) for line in lines}
        canon = markers.canonical(text)
        hits = sorted({table[k] for k in canon_lines if k in table} | {table[k] for k in long_keys if k in canon})
        problems += [f"{rel}: reveals {hit}" for hit in hits[:20]]
        if len(hits) > 20:
            problems.append(f"{rel}: ... and {len(hits) - 20} more secret lines")
    return problems


@dataclass
class Distribution:
    dest: Path
    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _clear(dest: Path) -> None:
    """Empty ``dest`` except its .git folder (a clone of the student repository keeps its history)."""
    for entry in dest.iterdir():
        if entry.name == ".git":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def build(dest: Path, root: Path = ROOT, keep: bool = False, assignments: list[str] | None = None) -> Distribution:
    """Write the student tree into ``dest`` and scan it; on any leak remove it again unless ``keep``.

    ``assignments``: publish only these released assignments (default: all). Later assignments give
    earlier answers away (A4-A6 provide A3's ``count_parameters`` and ``train_step`` as helpers), so
    publish them one at a time as the term goes on."""
    dest, root = dest.resolve(), root.resolve()
    if dest == root or root in dest.parents:
        raise ValueError(
            f"{dest} is inside the instructor repository {root}; choose a folder outside it "
            "(for example a clone of the student repository next to this one)."
        )
    if dest.exists() and any(dest.iterdir()) and not (dest / ".git").exists():
        raise ValueError(
            f"{dest} exists and is not empty (and not a git clone); give a new folder or a clone "
            "of the student repository."
        )
    from tools import release  # imports nbgrader-free helpers only

    stale = release.check_leaks(root)
    if stale:
        raise ValueError(
            "assignments/ is not a clean release of solutions/ (run `make release` first):\n" + "\n".join(stale[:20])
        )
    files = plan(root, assignments)
    dest.mkdir(parents=True, exist_ok=True)
    _clear(dest)
    present = {f.parts[0] for f in files}
    removed = {p.name for p in root.iterdir() if p.name not in present and p.name != ".git"}
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        transform = TRANSFORMS.get(rel.as_posix())
        if transform:
            target.write_text(transform((root / rel).read_text(encoding="utf-8"), removed), encoding="utf-8")
        else:
            shutil.copy2(root / rel, target)
    result = Distribution(dest, files, scan(dest, root, assignments))
    if result.problems and not keep:
        _clear(dest)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.distribute", description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="new folder, or a clone of the student repository")
    parser.add_argument("--root", type=Path, default=ROOT, help="instructor course folder (default: this one)")
    parser.add_argument(
        "--assignments",
        nargs="+",
        metavar="NAME",
        help="publish only these released assignments (default: all; see docs/instructors.md)",
    )
    parser.add_argument("--list", action="store_true", help="only list the files the distribution would hold")
    parser.add_argument("--keep", action="store_true", help="keep the tree even if the leak scan finds something")
    parser.add_argument(
        "--overlap",
        action="store_true",
        help="list the solution/hidden-test lines that lectures, course_utils or releases also show",
    )
    args = parser.parse_args(argv)
    if args.list:
        for rel in plan(args.root.resolve(), args.assignments):
            print(rel.as_posix())
        return 0
    if args.overlap:
        for where in sorted(secrets(args.root.resolve(), args.assignments)[1].values()):
            print("taught", where)
        return 0
    try:
        result = build(args.dest, args.root, keep=args.keep, assignments=args.assignments)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for problem in result.problems:
        print("LEAK", problem)
    if result.problems:
        print(
            f"\nNOT SAFE TO PUBLISH: {len(result.problems)} problem(s); "
            + ("the tree was kept for inspection." if args.keep else f"{result.dest} was emptied again.")
        )
        return 1
    print(
        f"wrote {len(result.files)} files to {result.dest}; leak scan clean (no solution, hidden test or marker).\n"
        "Publish it: cd there, git add -A, git commit, git push to the student repository (docs/instructors.md)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
