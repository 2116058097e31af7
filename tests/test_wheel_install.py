"""course_utils installed from its wheel, without ``-e``, works where students run it (issue 11, point 1).

``make setup`` installs the package in editable mode, which hides a package list that forgets a
subpackage (course_utils.demos was missing from every wheel). Here the wheel is built offline, installed
with pip's normal dependency resolution into a fresh, Colab-like environment in which torch, numpy, ...
are already installed (tests/colab_like_env.py), and then, from a folder outside the repository:

* every module of course_utils is imported (found with ``pkgutil.walk_packages``, so a new module is
  covered without touching this test) and must come from the installed wheel, never from the repository;
* one lecture per demo module is executed in fast offline mode with nbclient, in a kernel of that
  environment. To keep the test short, each notebook runs only up to and including the first cell
  that *uses* the demo (the setup cell, the import and everything the demo's first use needs); the
  full notebooks run under nbval in ``make test``.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from colab_like_env import ROOT, build_wheel, clean_environ, env_site_packages, make_env

# One lecture per module of course_utils/demos (a test below checks that none is forgotten).
DEMO_LECTURES = {
    "playground": "lectures/L00_learning_recipe.ipynb",
    "conv_arithmetic": "lectures/L02_convolution_arithmetic.ipynb",
    "init_explorer": "lectures/L03_initialisation_variance.ipynb",
    "double_descent": "lectures/L04_double_descent.ipynb",
    "optimiser_landscapes": "lectures/L05_optimisers.ipynb",
}

DRIVER = textwrap.dedent('''
    """Runs in the fresh environment, from a folder outside the repository."""
    import importlib, json, pkgutil, sys, time
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    repo, site, jobs = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    assert not any(Path(p or ".").resolve() == repo for p in sys.path), f"repository on sys.path: {sys.path}"
    import course_utils
    modules = ["course_utils"] + [m.name for m in pkgutil.walk_packages(course_utils.__path__, "course_utils.")]
    for name in modules:
        module = importlib.import_module(name)
        origin = Path(module.__file__).resolve()
        assert origin.is_relative_to(site), f"{name} imported from {origin}, not from the installed wheel in {site}"
    print("MODULES", json.dumps(modules))

    CHECK = ("import sys, course_utils\\n"
             "from pathlib import Path\\n"
             f"assert Path(course_utils.__file__).resolve().is_relative_to({str(site)!r}), course_utils.__file__\\n"
             f"assert Path(sys.executable).parent == Path({sys.executable!r}).parent, sys.executable")
    for job in jobs:
        nb = nbformat.read(job["path"], as_version=4)
        nb.cells = [nbformat.v4.new_code_cell(CHECK)] + nb.cells[:job["last_cell"] + 1]
        start = time.perf_counter()
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(Path.cwd())}}).execute()
        print("RAN", Path(job["path"]).name, job["last_cell"] + 1, "cells", f"{time.perf_counter() - start:.1f} s")
''')


def _first_use(cells: list, module: str) -> int:
    """Index of the first code cell that uses a name imported from course_utils.demos.<module>."""
    import ast

    names: set[str] = set()
    for i, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics: not an import of the demo
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == f"course_utils.demos.{module}":
                names |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module == "course_utils.demos":
                names |= {a.asname or a.name for a in node.names if a.name == module}
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        if names & used:
            return i
    raise AssertionError(f"no cell uses course_utils.demos.{module}")


def test_every_demo_module_has_a_lecture_here():
    demos = {p.stem for p in (ROOT / "course_utils" / "demos").glob("*.py") if p.stem != "__init__"}
    assert demos == set(DEMO_LECTURES), "add the lecture of a new demo module to DEMO_LECTURES"


@pytest.mark.timeout(600)
def test_wheel_installs_without_editable_mode_and_runs_the_demo_lectures(tmp_path):
    import nbformat

    wheel = build_wheel(tmp_path / "wheel")
    python = make_env(tmp_path / "env")
    report = tmp_path / "pip-report.json"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--report", str(report), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=clean_environ(),
    )
    assert install.returncode == 0, install.stdout + install.stderr
    installed = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert installed == ["course-utils"], f"pip installed more than course-utils: {installed}"

    work = tmp_path / "work"  # outside the repository, like a Colab runtime's /content
    work.mkdir()
    jobs = []
    for module, lecture in DEMO_LECTURES.items():
        target = work / Path(lecture).name
        target.write_text((ROOT / lecture).read_text())
        jobs.append({"path": str(target), "last_cell": _first_use(nbformat.read(target, as_version=4).cells, module)})
    site = env_site_packages(python)
    env = clean_environ(
        COURSE_FAST="1",
        COURSE_OFFLINE="1",
        COURSE_RECORD_DIR=str(tmp_path / "records"),
        MPLBACKEND="Agg",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    run = subprocess.run(
        [str(python), "-c", DRIVER, str(ROOT), str(site), json.dumps(jobs)],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=work,
        env=env,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-6000:]}"
    modules = json.loads(run.stdout.split("MODULES ", 1)[1].splitlines()[0])
    assert {f"course_utils.demos.{m}" for m in DEMO_LECTURES} <= set(modules)
    assert {"course_utils.timing", "course_utils.toy_data", "course_utils.notebook_setup"} <= set(modules)
    assert "course_utils.widgets" not in modules  # renamed to timing: a stale copy must not travel
    assert run.stdout.count("RAN ") == len(DEMO_LECTURES), run.stdout
    print(run.stdout)
