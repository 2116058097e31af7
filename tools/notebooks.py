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
from pathlib import Path

import nbformat
import tomllib

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
    return (
        f'<a href="{colab_url(relative_path, settings)}" target="_parent">'
        '<img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>'
    )


# Notebooks (by file stem) that train networks on the device they are given: only their Colab set-up cell
# says "No GPU found" on a CPU runtime. The others run on a CPU by design (small models, NumPy, widgets).
GPU_NOTEBOOKS = frozenset(
    {
        "L05_optimisers",
        "L07_batch_normalisation",
        "L08_cnn_architectures",
        "L09_fast_training_loops",
        "L10_understanding_and_breaking_cnns",
        "L12_babysitting_mnist_to_svhn",
        "A3_lenet5",
        "A4_alexnet_vgg",
        "A5_nin_googlenet",
        "A6_resnet18",
    }
)
# On Colab, downloaded data sets are cached here when Google Drive is mounted (a new runtime keeps them).
DRIVE_DATA_DIR = "/content/drive/MyDrive/dl-course-data"


def needs_gpu(relative_path: str) -> bool:
    """True for a notebook that trains networks on the GPU when there is one (see :data:`GPU_NOTEBOOKS`)."""
    return Path(relative_path).stem in GPU_NOTEBOOKS


def setup_source(settings: dict[str, str] | None = None, *, needs_gpu: bool = True) -> str:
    """The first code cell: install course_utils on Colab only, never touching torch.

    On Colab it also caches data sets on Google Drive when Drive is mounted (otherwise it prints a one-line
    hint), and, for a notebook that ``needs_gpu``, says how to get a GPU when the runtime has none.
    The environment variable ``COURSE_PIP_TARGET`` replaces what pip installs (a fork, a folder, a wheel);
    tests/test_colab_cell.py uses it to run the cell offline against a local clone.
    """
    s = settings or course_settings()
    repo = student_repository(s)
    # Written as `ruff format` writes it, so that `make lint` leaves the generated cell alone.
    gpu_check = """
    import torch

    if not torch.cuda.is_available():
        print("No GPU found. This notebook trains networks: choose Runtime > Change runtime type > GPU, then rerun.")"""
    return f'''# Colab set-up: on Google Colab, install the course helpers (torch is already there and is left alone).
# Anywhere else (JupyterLab with `make lab`) this cell does nothing.
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    import importlib
    import os
    import subprocess

    # COURSE_PIP_TARGET (optional): install the helpers from a fork, a folder or a wheel instead.
    default_target = "course-utils @ git+{repo}.git@{s["branch"]}"
    target = os.environ.get("COURSE_PIP_TARGET", default_target)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", target], check=True)
    importlib.invalidate_caches()
    if os.path.isdir("{Path(DRIVE_DATA_DIR).parent}"):  # Google Drive is mounted: data sets survive the runtime
        os.environ.setdefault("COURSE_DATA_DIR", "{DRIVE_DATA_DIR}")
    elif "COURSE_DATA_DIR" not in os.environ:
        print(
            "Tip: downloads vanish with this runtime; to keep them, run `from google.colab import drive; "
            "drive.mount('/content/drive')`, then this cell again."
        )''' + (gpu_check if needs_gpu else "")


def _tagged(cell, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def expected_header(relative_path: str, settings: dict[str, str] | None = None) -> list:
    badge = nbformat.v4.new_markdown_cell(badge_source(relative_path, settings))
    badge.metadata["tags"] = [BADGE_TAG]
    setup = nbformat.v4.new_code_cell(setup_source(settings, needs_gpu=needs_gpu(relative_path)))
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
    return sorted(
        p for folder in MAINTAINED for p in (ROOT / folder).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    )


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
