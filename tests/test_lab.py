"""`make lab` as a student (or a root user in Docker) runs it, and grading settings that stay in grading.

* `make lab PORT=... TOKEN=... LAB_ARGS=--no-browser` from a copy of the course, as the current user (root
  in CI and Docker: the Makefile adds --allow-root), serves JupyterLab on 127.0.0.1:PORT, opens my-work's
  L00, and a kernel it starts sees neither COURSE_FAST nor COURSE_OFFLINE unless the user set them.
  Starting it writes nothing into the course folder except my-work/ (no nbgrader_work/).
* nbgrader_config.py (also read by JupyterLab's nbgrader extension) changes neither the environment nor
  the disk when read, while the kernels nbgrader's Execute preprocessor starts still grade fast and offline.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
MODE_VARS = ("COURSE_FAST", "COURSE_OFFLINE")
SHOW_MODE = "import os; print(os.environ.get('COURSE_FAST'), os.environ.get('COURSE_OFFLINE'))"
MODE_EXPRESSION = "tuple(__import__('os').environ.get(name) for name in ('COURSE_FAST', 'COURSE_OFFLINE'))"
# What a fresh clone needs for `make lab` (course_utils itself comes from the editable install in .venv).
COURSE_COPY = ("Makefile", "pyproject.toml", ".ci", "nbgrader_config.py", "tools", "lectures", "assignments")
START_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, method: str = "GET", timeout: float = 5) -> tuple[int, dict, bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _copy_course(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in COURSE_COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def _kernel_value(connection_file: Path, expression: str, timeout: float = 60) -> str:
    """Evaluate ``expression`` in a running kernel and return its repr.

    Asked through the execute reply's user_expressions, so only the shell channel is used: no wait for the
    heartbeat or the IOPub subscription, which race with a kernel that starts slowly on a busy machine.
    """
    from jupyter_client import BlockingKernelClient

    client = BlockingKernelClient()
    client.load_connection_file(str(connection_file))
    client.start_channels(shell=True, iopub=False, stdin=False, hb=False)
    try:
        msg_id = client.execute("", silent=True, user_expressions={"value": expression})
        deadline = time.monotonic() + timeout
        while True:
            reply = client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        value = reply["content"]["user_expressions"]["value"]
        assert value["status"] == "ok", value
        return value["data"]["text/plain"]
    finally:
        client.stop_channels()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.skipif(not (VENV / "bin" / "jupyter").exists(), reason="needs the course environment (make setup)")
def test_make_lab_serves_full_mode_as_root_and_leaves_the_course_clean(tmp_path):
    course = _copy_course(tmp_path / "course")
    before = sorted(p.name for p in course.iterdir())
    port, token = _free_port(), "test-token-lab"
    runtime = tmp_path / "runtime"
    env = {k: v for k, v in os.environ.items() if k not in MODE_VARS and k != "MAKEFLAGS"}
    env.update(
        JUPYTER_RUNTIME_DIR=str(runtime),
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        IPYTHONDIR=str(tmp_path / "ipython"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    # The stamps are "old" for this run (-o): the test is about what `make lab` starts, not about installing.
    stamps = [f"-o{VENV}/.course-installed", f"-o{VENV}/.course-lab-installed"]
    lab_args = "--no-browser --LabApp.news_url= --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"
    log_path = tmp_path / "lab.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["make", *stamps, "lab", f"VENV={VENV}", f"PORT={port}", f"TOKEN={token}", f"LAB_ARGS={lab_args}"],
            cwd=course,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"make lab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if _get(f"{base}/api/status?token={token}", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab not up on {base} after {START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)

        status, headers, _ = _get(f"{base}/?token={token}")
        assert status in (301, 302), status
        assert urllib.parse.urlsplit(headers["Location"]).path == "/lab/tree/lectures/L00_learning_recipe.ipynb"
        assert _get(f"{base}/api/contents/lectures/L00_learning_recipe.ipynb?content=0&token={token}")[0] == 200, (
            "the lab does not serve the student's copy in my-work/"
        )
        assert _get(f"{base}/api/status")[0] == 403, "the token is not enforced"

        status, _, body = _get(f"{base}/api/kernels?token={token}", method="POST", timeout=30)
        assert status == 201, body
        kernel_id = json.loads(body)["id"]
        try:
            mode = _kernel_value(runtime / f"kernel-{kernel_id}.json", MODE_EXPRESSION)
        except queue.Empty:
            pytest.fail(f"the kernel did not answer; JupyterLab's log:\n{log_path.read_text()[-3000:]}")
        assert mode == "(None, None)", (
            "the lab's kernels must run in full mode with downloads unless the user set COURSE_FAST/COURSE_OFFLINE"
        )
    finally:
        try:
            _get(f"{base}/api/shutdown?token={token}", method="POST")
            proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)

    assert sorted(p.name for p in course.iterdir()) == sorted(before + ["my-work"]), "stray files in the course"
    assert (course / "my-work" / "lectures" / "L00_learning_recipe.ipynb").is_file()
    assert not (course / "nbgrader_work").exists()
    assert "--allow-root" in log_path.read_text() or os.geteuid() != 0


def _load_config(folder: Path):
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(folder)).load_config()


def test_reading_the_nbgrader_config_changes_neither_the_environment_nor_the_disk(tmp_path, monkeypatch):
    for name in MODE_VARS:
        monkeypatch.delenv(name, raising=False)
    shutil.copy2(ROOT / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    _load_config(tmp_path)
    assert [os.environ.get(name) for name in MODE_VARS] == [None, None]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nbgrader_config.py"]


@pytest.mark.parametrize(
    "exported, expected", [({}, "1 1"), ({"COURSE_FAST": "0"}, "0 1")], ids=["default", "instructor-exports-full-mode"]
)
def test_grading_kernels_run_fast_and_offline(tmp_path, monkeypatch, exported, expected):
    from nbgrader.preprocessors import Execute

    for name in MODE_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    config = _load_config(ROOT)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SHOW_MODE)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    executed, _ = Execute(config=config).preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    assert executed.cells[0].outputs[0]["text"].strip() == expected
