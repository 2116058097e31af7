"""The Colab set-up cell that heads every notebook (tools/notebooks.py, ``setup_source``), run for real.

A fresh Colab-like environment (torch, numpy, ... preinstalled, no course_utils; tests/colab_like_env.py)
runs the cell with a fake ``google.colab`` module, as Colab does. The cell's pip is pointed at a local git
clone of the package through ``COURSE_PIP_TARGET`` (``course-utils @ git+file://...``, the same kind of
requirement as the real ``git+https://`` one), offline (``PIP_NO_INDEX=1``; ``PIP_NO_BUILD_ISOLATION=0``,
which, pip's naming notwithstanding, *disables* build isolation so setuptools comes from the environment).
The test asserts that pip adds course_utils and nothing else: torch and numpy are neither reinstalled nor
upgraded. Cheaper in-process tests cover the cell's messages (GPU, Google Drive).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import types
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import torch
from colab_like_env import clean_environ, copy_package_sources, env_site_packages, make_env

from tools import notebooks as nbtool

DRIVER = textwrap.dedent('''
    """Runs in the fresh environment: state of torch/numpy, the cell (as on Colab), the same state again."""
    import importlib.metadata as md, importlib.util, io, json, sys, types
    from contextlib import redirect_stdout
    from pathlib import Path

    def state(name):
        dist = md.distribution(name)
        record = next(Path(f.locate()) for f in dist.files if f.name == "RECORD" and f.parent.suffix == ".dist-info")
        origin = importlib.util.find_spec(name).origin
        return {"version": dist.version, "origin": origin, "mtime": Path(origin).stat().st_mtime_ns,
                "record": str(record), "record_mtime": record.stat().st_mtime_ns}

    site = Path(sys.argv[1])
    before = {name: state(name) for name in ("torch", "numpy")}
    entries_before = sorted(p.name for p in site.iterdir())
    assert importlib.util.find_spec("course_utils") is None, "course_utils is importable before the cell ran"
    sys.modules["google.colab"] = types.ModuleType("google.colab")  # what makes the cell think it is on Colab
    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(sys.stdin.read(), "colab-setup-cell", "exec"), {})
    import course_utils, course_utils.demos.playground  # noqa: E401
    import torch
    print(json.dumps({"before": before, "after": {name: state(name) for name in ("torch", "numpy")},
                      "new_entries": sorted(set(p.name for p in site.iterdir()) - set(entries_before)),
                      "course_utils": course_utils.__file__, "torch_file": torch.__file__,
                      "cuda": torch.cuda.is_available(), "printed": out.getvalue()}))
''')


def _local_clone(dest: Path) -> Path:
    """A git repository holding the package sources of the working tree (what ``git+https://`` would fetch)."""
    copy_package_sources(dest)
    git = ["git", "-C", str(dest), "-c", "user.name=test", "-c", "user.email=test@example.org"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "course_utils sources"]):
        subprocess.run(git + args, check=True, capture_output=True)
    return dest


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to make a local clone")
@pytest.mark.timeout(300)
def test_colab_cell_installs_course_utils_and_leaves_torch_and_numpy_alone(tmp_path):
    python = make_env(tmp_path / "env")
    clone = _local_clone(tmp_path / "clone")
    site = env_site_packages(python)
    work = tmp_path / "content"  # Colab's working folder; not the repository
    work.mkdir()
    env = clean_environ(COURSE_PIP_TARGET=f"course-utils @ git+file://{clone}", PIP_NO_BUILD_ISOLATION="0")
    env.pop("COURSE_DATA_DIR", None)  # unset, as on a fresh Colab runtime
    cell = nbtool.setup_source(needs_gpu=True)
    run = subprocess.run(
        [str(python), "-c", DRIVER, str(site)],
        input=cell,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=work,
        env=env,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-5000:]}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["before"] == result["after"], "torch or numpy was reinstalled or upgraded by the cell"
    assert not Path(result["torch_file"]).resolve().is_relative_to(site.resolve())
    assert sorted(n.split("-")[0] for n in result["new_entries"]) == ["course_utils", "course_utils"], (
        f"pip installed more than course_utils: {result['new_entries']}"
    )
    assert Path(result["course_utils"]).resolve().is_relative_to(site.resolve())
    printed = result["printed"]
    if not Path(nbtool.DRIVE_DATA_DIR).parent.is_dir():  # no Drive on this machine, so the one-line hint
        assert "drive.mount('/content/drive')" in printed
    assert ("No GPU found" in printed) is (not result["cuda"])


def _run_cell(
    monkeypatch,
    *,
    needs_gpu: bool,
    cuda: bool = False,
    drive: bool = False,
    data_dir: str | None = None,
    colab: bool = True,
) -> tuple[str, list, dict]:
    """Execute the cell in this process with pip replaced by a recorder; returns (printed, pip calls, env)."""
    calls: list = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    real_isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda p: drive if str(p).startswith("/content/drive") else real_isdir(p))
    monkeypatch.delenv("COURSE_PIP_TARGET", raising=False)
    # setenv first, so that pytest restores the variable (or its absence) after the test: the cell itself sets
    # COURSE_DATA_DIR, which must not leak into later tests (they would create the Drive folder on this machine).
    monkeypatch.setenv("COURSE_DATA_DIR", "")
    if data_dir is None:
        monkeypatch.delenv("COURSE_DATA_DIR")
    else:
        monkeypatch.setenv("COURSE_DATA_DIR", data_dir)
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(nbtool.setup_source(needs_gpu=needs_gpu), "colab-setup-cell", "exec"), {})
    return out.getvalue(), calls, dict(os.environ)


def test_no_gpu_message_only_where_the_notebook_trains(monkeypatch):
    assert "No GPU found" in _run_cell(monkeypatch, needs_gpu=True)[0]
    assert "No GPU found" not in _run_cell(monkeypatch, needs_gpu=False)[0]
    assert "No GPU found" not in _run_cell(monkeypatch, needs_gpu=True, cuda=True)[0]


def test_mounted_drive_becomes_the_data_cache_and_otherwise_a_hint(monkeypatch):
    printed, _, env = _run_cell(monkeypatch, needs_gpu=False, drive=True)
    assert env["COURSE_DATA_DIR"] == nbtool.DRIVE_DATA_DIR and printed == ""
    printed, _, env = _run_cell(monkeypatch, needs_gpu=False)
    assert "COURSE_DATA_DIR" not in env
    assert len(printed.splitlines()) == 1 and "drive.mount('/content/drive')" in printed
    printed, _, env = _run_cell(monkeypatch, needs_gpu=False, drive=True, data_dir="/somewhere/else")
    assert env["COURSE_DATA_DIR"] == "/somewhere/else" and printed == ""  # the student's own choice wins


def test_pip_target_is_the_student_repository_unless_overridden(monkeypatch):
    _, calls, _ = _run_cell(monkeypatch, needs_gpu=False)
    assert calls[0][-1] == f"course-utils @ git+{nbtool.student_repository()}.git@{nbtool.course_settings()['branch']}"
    monkeypatch.setenv("COURSE_PIP_TARGET", "/tmp/course_utils-0.1.0-py3-none-any.whl")
    exec(compile(nbtool.setup_source(needs_gpu=False), "cell", "exec"), {})
    assert calls[-1][-1] == "/tmp/course_utils-0.1.0-py3-none-any.whl"


def test_outside_colab_the_cell_does_nothing(monkeypatch):
    printed, calls, env = _run_cell(monkeypatch, needs_gpu=True, colab=False)
    assert printed == "" and calls == [] and "COURSE_DATA_DIR" not in env


def test_gpu_notebook_list_names_existing_notebooks():
    stems = {p.stem for p in nbtool.maintained_notebooks()}
    assert nbtool.GPU_NOTEBOOKS <= stems, f"not a notebook: {sorted(nbtool.GPU_NOTEBOOKS - stems)}"
    assert nbtool.needs_gpu("assignments/A6_resnet18/A6_resnet18.ipynb")
    assert not nbtool.needs_gpu("lectures/L02_convolution_arithmetic.ipynb")


def test_the_cell_leaves_the_environment_as_it_found_it(monkeypatch):
    """Regression: the in-process runs once leaked COURSE_DATA_DIR=/content/drive/... into later tests."""
    before = os.environ.get("COURSE_DATA_DIR")
    with monkeypatch.context() as inner:
        _run_cell(inner, needs_gpu=False, drive=True)
        assert os.environ["COURSE_DATA_DIR"] == nbtool.DRIVE_DATA_DIR
    assert os.environ.get("COURSE_DATA_DIR") == before
