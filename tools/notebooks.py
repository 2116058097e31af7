"""Keep every notebook's Colab badge, Colab setup cell and storage format consistent.

    python -m tools.notebooks sync    # insert/refresh the badge and setup cell, strip outputs
    python -m tools.notebooks check   # exit 1 and list notebooks that are out of date (used by the tests)

The repository URLs come from ``[tool.course]`` in pyproject.toml: badges and the Colab install cell
point to ``student_repository`` (the public student distribution, see tools/distribute.py), never to
the private instructor ``repository``. Change them there, run ``sync``, then ``make release`` (student
copies are regenerated from the refreshed solutions).
"""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BADGE_TAG = "colab-badge"
SETUP_TAG = "colab-setup"
# Folders whose notebooks are maintained here; assignments/ is generated from solutions/.
MAINTAINED = ("lectures", "solutions")


def course_settings() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    settings = data.get("tool", {}).get("course", {})
    if "repository" not in settings:
        raise KeyError("pyproject.toml needs [tool.course] repository = 'https://github.com/OWNER/REPO'.")
    settings.setdefault("branch", "main")
    return settings


def student_repository(settings: dict[str, str] | None = None) -> str:
    """Where students get the course (badges, Colab install cell): ``student_repository``, the public
    repository that ``python -m tools.distribute`` fills; ``repository`` (the instructors') if unset."""
    s = settings or course_settings()
    return (s.get("student_repository") or s["repository"]).rstrip("/")


def colab_url(relative_path: str, settings: dict[str, str] | None = None) -> str:
    """The Colab address that opens ``relative_path`` (e.g. lectures/L00_...ipynb) from GitHub."""
    s = settings or course_settings()
    repo = student_repository(s).removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repo}/blob/{s['branch']}/{relative_path}"


def badge_source(relative_path: str, settings: dict[str, str] | None = None) -> str:
    """Markdown/HTML of the badge. Instructor sources point at their released student copy."""
    if relative_path.startswith("solutions/"):
        relative_path = "assignments/" + relative_path.removeprefix("solutions/")
    return (f'<a href="{colab_url(relative_path, settings)}" target="_parent">'
            '<img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>')


def setup_source(settings: dict[str, str] | None = None) -> str:
    """The first code cell: install course_utils on Colab only, never touching torch."""
    s = settings or course_settings()
    repo = student_repository(s)
    return f'''# Colab set-up: on Google Colab, install the course helpers (torch is already there and is left alone).
# Anywhere else (JupyterLab with `make lab`) this cell does nothing.
import sys
IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "course-utils @ git+{repo}.git@{s['branch']}"], check=True)
    import torch
    if not torch.cuda.is_available():
        print("No GPU found. For training notebooks choose Runtime > Change runtime type > GPU, then rerun.")'''


def _tagged(cell, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def expected_header(relative_path: str, settings: dict[str, str] | None = None) -> list:
    badge = nbformat.v4.new_markdown_cell(badge_source(relative_path, settings))
    badge.metadata["tags"] = [BADGE_TAG]
    setup = nbformat.v4.new_code_cell(setup_source(settings))
    setup.metadata["tags"] = [SETUP_TAG]
    for cell in (badge, setup):  # nbgrader: ordinary read-only cells
        cell.metadata["editable"] = False
        cell.metadata["deletable"] = False
    return [badge, setup]


def _without_ids(cell) -> dict:
    return {k: v for k, v in cell.items() if k not in ("id", "outputs", "execution_count")}


def problems(path: Path, settings: dict[str, str] | None = None) -> list[str]:
    """What is wrong with a maintained notebook (empty list: nothing)."""
    nb = nbformat.read(path, as_version=4)
    rel = path.relative_to(ROOT).as_posix()
    found = []
    header = expected_header(rel, settings)
    if len(nb.cells) < 2 or any(_without_ids(a) != _without_ids(b) for a, b in zip(nb.cells[:2], header)):
        found.append("Colab badge/setup cells missing or out of date")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
            found.append(f"cell {i} has stored outputs or an execution count")
            break
    return found


def sync(path: Path, settings: dict[str, str] | None = None) -> bool:
    """Insert or refresh the header cells and strip outputs; returns True if the file changed."""
    before = path.read_text()
    nb = nbformat.read(path, as_version=4)
    rel = path.relative_to(ROOT).as_posix()
    body = [c for c in nb.cells if not (_tagged(c, BADGE_TAG) or _tagged(c, SETUP_TAG))]
    nb.cells = expected_header(rel, settings) + body
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(nb, path)
    return path.read_text() != before


def maintained_notebooks() -> list[Path]:
    return sorted(p for folder in MAINTAINED for p in (ROOT / folder).rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("sync", "check"):
        print(__doc__)
        return 2
    settings = course_settings()
    bad = 0
    for path in maintained_notebooks():
        rel = path.relative_to(ROOT)
        if argv[0] == "sync":
            if sync(path, settings):
                print(f"updated {rel}")
        else:
            for problem in problems(path, settings):
                print(f"{rel}: {problem}")
                bad += 1
    if argv[0] == "check" and bad:
        print("Run `python -m tools.notebooks sync` (then `make release` for solutions/).")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
