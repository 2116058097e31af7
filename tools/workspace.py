"""A student's own copy of the course, so that working in it never dirties the git clone.

    python -m tools.workspace              # what `make lab` runs before it opens JupyterLab in my-work/
    python -m tools.workspace DEST         # another folder

* The first time, copies everything under ``lectures/`` and ``assignments/`` into ``my-work/`` (ignored by
  git): run, edit and save notebooks there, and ``git pull`` never conflicts with your work.
* Later runs copy what you do not have yet (new lectures and assignments after a ``git pull``, or a file
  you deleted or renamed). A file you changed (ran, edited, saved) is never overwritten.
* It remembers which course version of each file it copied (``my-work/.course-versions.json``). When the
  course has since changed a file: a copy you never changed is replaced by the new version; for a copy you
  changed it says so, and you get the new version next to yours by renaming your copy and running it again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COURSE_FOLDERS = ("lectures", "assignments")
DEFAULT_DEST = "my-work"
VERSIONS_FILE = ".course-versions.json"
SKIPPED_PARTS = {".ipynb_checkpoints", "__pycache__"}


@dataclass
class SyncReport:
    """What one run did: files copied or refreshed, and changed files of yours that the course has updated."""

    dest: Path
    copied: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)
    updated_in_course: list[str] = field(default_factory=list)

    def summary(self) -> str:
        def names(files: list[str]) -> str:
            return ", ".join(files) if len(files) <= 5 else f"{len(files)} files under {'/ and '.join(COURSE_FOLDERS)}/"

        lines = [f"Your work is in {self.dest}/ (your own copy of the course: `git pull` never touches it)."]
        if self.copied:
            lines.append(f"Copied from the course: {names(self.copied)}.")
        if self.refreshed:
            lines.append(f"Updated to the course's new version (you had not changed them): {names(self.refreshed)}.")
        if self.updated_in_course:
            lines.append(
                "The course has a newer version of: " + ", ".join(self.updated_in_course) + ". "
                "Your copies are unchanged. To get a new version, rename your copy (e.g. add _mine to "
                "its name) and run `make lab` again."
            )
        return "\n".join(lines)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def course_files(root: Path = ROOT) -> list[str]:
    """Every file under the course folders, relative to ``root`` (posix paths, sorted)."""
    files = []
    for folder in COURSE_FOLDERS:
        base = root / folder
        if base.is_dir():
            files += [
                p.relative_to(root).as_posix()
                for p in base.rglob("*")
                if p.is_file() and not SKIPPED_PARTS & set(p.parts)
            ]
    return sorted(files)


def _load_versions(dest: Path) -> dict[str, str]:
    path = dest / VERSIONS_FILE
    if not path.exists():
        return {}
    try:
        versions = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # damaged bookkeeping only costs the "newer version" hints, never a file
    return versions if isinstance(versions, dict) else {}


def sync(dest: Path, root: Path = ROOT) -> SyncReport:
    """Copy the course files that ``dest`` lacks; report the ones the course has changed since they were copied."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise SystemExit(f"{dest} exists and is not a folder: move it away (your work folder is {dest}/).")
    dest.mkdir(parents=True, exist_ok=True)
    versions = _load_versions(dest)
    report = SyncReport(dest)
    for rel in course_files(root):
        source, target = root / rel, dest / rel
        digest = _digest(source)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            versions[rel] = digest
            report.copied.append(rel)
        elif rel in versions and versions[rel] != digest:
            if _digest(target) == versions[rel]:  # still exactly what was copied: nothing of yours to lose
                shutil.copy2(source, target)
                versions[rel] = digest
                report.refreshed.append(rel)
            else:
                report.updated_in_course.append(rel)
    (dest / VERSIONS_FILE).write_text(json.dumps(versions, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.workspace", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "dest",
        nargs="?",
        default=DEFAULT_DEST,
        help=f"your work folder, relative to the repository (default: {DEFAULT_DEST})",
    )
    args = parser.parse_args(argv)
    dest = Path(args.dest)
    print(sync(dest if dest.is_absolute() else ROOT / dest).summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
