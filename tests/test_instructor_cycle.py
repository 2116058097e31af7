"""The instructor's whole cycle through the commands of issue 18, on simulated hand-ins of A1.

``make grade`` (collect, check, repair, autograde in the sandbox, report) -> ``manual-grade`` (refuses to replace an
autograded score without --override) -> ``make feedback`` (refused while written answers are open, then generated)
-> ``make grades`` (only assignments someone handed in). Three students: alice (honest, handed in as a Colab
'Copy of ...' inside a folder), bob (partial: a wrong gradient, a part not done, a weak written answer) and carol
(broken: pasted into a fresh Colab notebook, so no metadata, and a `raise KeyboardInterrupt` left in her code).
The commands run as the instructor runs them (``python -m tools.grading``, which the make targets call); a dry
run checks what ``make`` runs. Full mode on a machine without a GPU is refused before anything is touched.

About 1-2 minutes on 2 busy cores (grading three A1 submissions in the sandbox is most of it).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbgrader_helpers import cell_index, edit, hidden_lines, html_text, release_nb, run, solved, strip_like_colab

from tools import grading, release
from tools.grading import cycle, settings

ROOT = Path(__file__).resolve().parents[1]
A1 = "A1_backprop"
NOT_HANDED_IN = "A2_convolution"  # released (in the gradebook, 34 points) but nobody handed it in
ANSWER = "written_backprop_cost"
MANUAL = {"alice": 4.0, "bob": 1.0, "carol": 2.0}
# autograded points each should get: A1 has 26 autograded points (3+4+3+3+5+5+3)
AUTO = {"alice": 26.0, "bob": 10.0, "carol": 15.0}
NOISE = ("Attribute 'checksum'", "without encryption", "display_data_priority", "Traceback")


def _answer(nb, text: str):
    nb.cells[cell_index(nb, ANSWER)].source = text
    return nb


def _hand_ins(course: Path, downloads: Path) -> None:
    alice = _answer(solved(course, A1, A1), "Roughly twice the forward cost: each layer does two matmuls backward.")
    bob = _answer(solved(course, A1, A1), "The same as the forward pass.")
    edit(bob, "sigmoid", "dx = dout * s * (1.0 - s)", "dx = dout * s")  # a wrong gradient: an assertion fails
    stub = release_nb(course, A1, A1)
    bob.cells[cell_index(bob, "softmax_loss")].source = stub.cells[cell_index(stub, "softmax_loss")].source
    carol = solved(course, A1, A1)
    edit(
        carol,
        "relu",
        "def relu_backward(dout, cache):\n",
        "def relu_backward(dout, cache):\n    raise KeyboardInterrupt  # stop here while debugging\n",
    )
    (downloads / "alice").mkdir(parents=True)
    nbformat.write(alice, downloads / "alice" / f"Copy of {A1}.ipynb")
    nbformat.write(bob, downloads / "bob.ipynb")
    nbformat.write(strip_like_colab(carol), downloads / "carol.ipynb")


def _add_released_assignment(course: Path, name: str, points: float) -> None:
    """What `make release` leaves in the gradebook for an assignment: its notebook and graded cells."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment(name)
        gb.update_or_create_notebook(name, name)
        gb.update_or_create_grade_cell("test_all", name, name, max_score=points, cell_type="code")


@dataclass
class Ran:
    """What an in-process call of a command returned and said."""

    returncode: int
    output: str


class Session:
    """The transcript of the instructor's session, command by command."""

    def __init__(self, course: Path):
        self.course, self.steps = course, []

    def __call__(self, *args: str):
        result = run(["tools.grading", *args], self.course)
        self.steps.append((f"$ python -m tools.grading {' '.join(args)}", result))
        return result

    def text(self) -> str:
        return "\n".join(f"{cmd}   # exit {r.returncode}, {r.seconds:.0f} s\n{r.output}" for cmd, r in self.steps)

    def all_outputs(self) -> list[tuple[str, str]]:
        return [(cmd, r.output) for cmd, r in self.steps] + [
            ("feedback (refused)", self.feedback_refused.output),
            ("grade (again)", self.regrade.output),
        ]


@pytest.fixture(scope="module")
def cycle_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cycle")
    course = release.copy_course(ROOT, tmp / "course")
    made = run(["tools.release", A1], course)  # the gradebook of the grading machine must know the assignment
    assert made.returncode == 0, made.output[-3000:]
    _add_released_assignment(course, NOT_HANDED_IN, 34.0)
    downloads = tmp / "downloads"
    _hand_ins(course, downloads)
    s = Session(course)
    t0 = time.perf_counter()
    s.grade = s("grade", A1, str(downloads), "--workers", "2")
    said: list[str] = []  # (in-process where the command line adds nothing: each command costs a Python start-up)
    s.feedback_refused = Ran(cycle.feedback(A1, course, say=said.append), "\n".join(said))
    s.override_refused = s("manual-grade", A1, "bob", "test_sigmoid", "3")
    s("manual-grade", A1, "alice", ANSWER, str(MANUAL["alice"]), "--comment", "graded by hand")
    for student in ("bob", "carol"):
        grading.set_manual_grade(A1, student, ANSWER, MANUAL[student], "graded by hand", course)
    s.feedback = s("feedback", A1)
    s.grades = s("grades")
    said = []  # the same downloads again: nothing to collect, nothing to regrade
    s.regrade = Ran(cycle.grade(A1, downloads, course, say=said.append), "\n".join(said))
    s.seconds = time.perf_counter() - t0
    print(f"\n--- the instructor's session ({s.seconds:.0f} s) ---\n{s.text()}")
    print(f"(in-process) feedback -> {s.feedback_refused.returncode}\n{s.feedback_refused.output}")
    print(f"(in-process) grade again -> {s.regrade.returncode}\n{s.regrade.output}")
    return s


def _report_blocks(out: str) -> dict[str, str]:
    """student -> their lines of the report that `grade` prints (a score line, then indented lines)."""
    blocks, current = {}, None
    for line in out.splitlines():
        match = re.match(r"  (\w+) +\d+\.\d/\d", line)
        if match:
            current = match.group(1)
            blocks[current] = line
        elif current and line.startswith("    ") and line.strip():
            blocks[current] += "\n" + line
        else:
            current = None
    return blocks


def test_grade_collects_repairs_grades_and_names_the_reasons(cycle_run):
    out = cycle_run.grade.output
    assert cycle_run.grade.returncode == 0, cycle_run.text()
    assert "3 collected" in out and "carol/A1_backprop/A1_backprop: nbgrader metadata restored" in out, out
    rows = _report_blocks(out)
    for student, auto in AUTO.items():
        assert f"{auto:.1f}/30.0" in rows[student], out
    assert "failed" not in rows["alice"], out
    assert "failed test_sigmoid: assertion: sigmoid_backward" in rows["bob"], out
    assert "failed test_softmax_loss: not done (the NotImplementedError stub" in rows["bob"], out
    assert "failed test_relu: raised KeyboardInterrupt itself" in rows["carol"], out
    assert "hit the time limit" not in rows["carol"], "a student's own KeyboardInterrupt is no time limit"
    assert "not a time limit" in rows["carol"], out
    assert "To grade by hand: 3 written answers (alice, bob, carol)" in out, out
    assert "Needs you" not in out, out


def test_no_alarming_noise_in_any_step(cycle_run):
    for cmd, output in cycle_run.all_outputs():
        for noise in NOISE:
            assert noise not in output, f"{cmd}: {noise!r}\n{output}"


def test_feedback_waits_for_the_written_answers_and_manual_grade_asks_before_overriding(cycle_run):
    refused = cycle_run.feedback_refused
    assert refused.returncode == 1 and "feedback NOT generated: 3 written answers" in refused.output, refused.output
    assert "FORCE=1" in refused.output
    assert cycle_run.override_refused.returncode == 1, cycle_run.override_refused.output
    assert "--override" in cycle_run.override_refused.output
    bob = next(r for r in grading.report(A1, cycle_run.course) if r.student == "bob")
    assert "test_sigmoid" in bob.failed, "the refused override changed the score"


def test_feedback_shows_scores_and_comments_never_hidden_tests(cycle_run):
    assert cycle_run.feedback.returncode == 0, cycle_run.feedback.output
    secrets = hidden_lines(nbformat.read(ROOT / "solutions" / A1 / f"{A1}.ipynb", as_version=4))
    for student in MANUAL:
        path = cycle_run.course / "feedback" / student / A1 / f"{A1}.html"
        text = html_text(path)
        assert "graded by hand" in text and grading.HIDDEN_NOTE.lstrip("# ") in text, student
        squashed = "".join(text.split())
        leaked = [s for s in secrets if "".join(s.split()) in squashed]
        assert not leaked, f"{student}: {leaked[:3]}"
    bob = html_text(cycle_run.course / "feedback" / "bob" / A1 / f"{A1}.html")
    assert "sigmoid_backward disagrees with the numerical gradient" in bob


def test_grades_csv_holds_only_what_was_handed_in(cycle_run):
    assert cycle_run.grades.returncode == 0, cycle_run.grades.output
    with open(cycle_run.course / "nbgrader_work" / "grades.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["assignment"] for r in rows} == {A1}, rows  # no 0/34 rows for the assignment nobody handed in
    assert {r["student_id"]: float(r["score"]) for r in rows} == {s: AUTO[s] + MANUAL[s] for s in MANUAL}
    assert f"not exported (nobody handed them in yet): {NOT_HANDED_IN}" in cycle_run.grades.output


def test_grading_again_changes_nothing(cycle_run):
    out = cycle_run.regrade.output
    assert cycle_run.regrade.returncode == 0, out
    assert "3 unchanged" in out and "refused" not in out.lower(), out  # carol's repaired copy is no conflict
    assert "3 skipped" in out, out
    assert "Nothing left to grade by hand" in out, out


# ------------------------------------------------------------------------------------------------
# Full mode: refused without a GPU, before anything is collected or graded; its limits and settings
# ------------------------------------------------------------------------------------------------


def test_full_mode_without_a_gpu_is_refused_before_anything_happens(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_GRADING_ASSUME_NO_GPU", "1")  # also on a GPU machine
    said: list[str] = []
    code = cycle.grade(A1, tmp_path / "downloads", tmp_path, mode="full", say=said.append)
    assert code == 2 and "NOT GRADED" in said[0] and "needs a CUDA GPU" in said[0], said
    assert "fast mode" in said[0] and list(tmp_path.iterdir()) == [], "nothing may be touched"


def test_full_mode_settings_and_the_config_refusal(monkeypatch):
    from traitlets.config.loader import PyFileConfigLoader

    full, fast = settings.mode_settings("full"), settings.mode_settings("fast")
    assert full["env"]["COURSE_FAST"] == "0" and fast["env"]["COURSE_FAST"] == "1"
    assert full["cell_timeout"] > fast["cell_timeout"] and full["wall_timeout"] > fast["wall_timeout"]
    monkeypatch.setenv("COURSE_GRADING_ASSUME_NO_GPU", "1")
    monkeypatch.setenv(settings.MODE_VARIABLE, "full")
    monkeypatch.delenv("NBGRADER_CELL_TIMEOUT", raising=False)
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert "needs a CUDA GPU" in config.SandboxedExecute.refuse  # a plain `nbgrader autograde` grades nothing
    assert config.Execute.timeout == settings.FULL_CELL_TIMEOUT_S
    assert "COURSE_FAST=0" in config.SandboxedExecute.sandbox_env
    monkeypatch.setenv(settings.MODE_VARIABLE, "fast")
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert config.SandboxedExecute.refuse == "" and "COURSE_FAST=1" in config.SandboxedExecute.sandbox_env
    monkeypatch.setenv(settings.MODE_VARIABLE, "fullish")
    with pytest.raises(ValueError, match="fast, full"):
        settings.grading_mode()


def test_refusing_sandbox_grades_nothing():
    from tools.autograde.nbgrader_plugin import SandboxedExecute

    with pytest.raises(RuntimeError, match="no GPU here"):
        SandboxedExecute(refuse="no GPU here").preprocess(nbformat.v4.new_notebook(), {"nbgrader": {}})


# ------------------------------------------------------------------------------------------------
# Small pieces
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "outputs, reason",
    [
        ([{"output_type": "error", "ename": "CellTimeoutError", "evalue": "cell ran past 120 s"}], "time limit"),
        ([{"output_type": "error", "ename": "KeyboardInterrupt", "evalue": ""}], "raised KeyboardInterrupt itself"),
        ([{"output_type": "error", "ename": "DeadKernelError", "evalue": "died"}], "the process died"),
        ([{"output_type": "error", "ename": "AssertionError", "evalue": "shape is wrong"}], "assertion: shape"),
        (
            [
                {
                    "output_type": "error",
                    "ename": "GradingFailure",
                    "evalue": "no verdict: the process died in this cell",
                }
            ],
            "the process died in this cell",
        ),
        ([{"output_type": "error", "ename": "NameError", "evalue": "name 'w' is not defined"}], "earlier cell failed"),
        ([{"output_type": "stream", "name": "stderr", "text": "warning"}], "never fails a test"),
    ],
    ids=["timeout", "keyboardinterrupt", "died", "assertion", "no-verdict", "nameerror", "stderr"],
)
def test_failure_reasons(outputs, reason):
    assert reason in grading.failure_reason(outputs)


def test_harmless_warnings_are_dropped_and_real_ones_kept():
    log = "\n".join(
        [
            "[AutogradeApp | WARNING] Attribute 'checksum' for cell test_relu has changed! (should be: a, got: b)",
            "[GenerateFeedbackApp | WARNING] Config option `display_data_priority` not recognized by `HideHiddenTests`.",
            "[GenerateFeedbackApp | WARNING] Alternative text is missing on 3 image(s).",
            "[AutogradeApp | ERROR] There was an error processing assignment: bob",
        ]
    )
    shown, dropped = cycle.quiet_lines(log)
    assert shown == ["[AutogradeApp | ERROR] There was an error processing assignment: bob"]
    assert sum(dropped.values()) == 3


def test_make_targets_run_the_commands(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    stamp = ["-o", ".venv/.course-installed", "-o", "setup"]  # a dry run must not plan a reinstall
    lines = {}
    for target, extra in [
        ("grade", ["SUBMISSIONS=dl/", "MODE=full", "WORKERS=4"]),
        ("feedback", ["FORCE=1"]),
        ("grades", []),
    ]:
        proc = subprocess.run(
            ["make", "-n", *stamp, target, f"A={A1}", *extra], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        lines[target] = proc.stdout
    assert f"-m tools.grading grade {A1} dl/ --mode full --workers 4" in lines["grade"]
    assert f"-m tools.grading feedback {A1} --force" in lines["feedback"]
    assert "-m tools.grading grades" in lines["grades"]
    proc = subprocess.run(["make", "-s", *stamp, "grade"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "Say which assignment" in proc.stdout


def test_full_mode_sandbox_without_a_gpu_is_named_not_run_on_the_cpu():
    problem = cycle.sandbox_gpu_problem()  # this machine's sandbox has no CUDA device (CI, or a GPU not bound)
    if problem is None:
        pytest.skip("the sandbox reaches a GPU here")
    assert "cannot use the GPU" in problem and "Nothing was graded" in problem, problem


def test_sandbox_binds_only_the_named_device_nodes():
    from tools.autograde.sandbox import Limits, _init_script

    limits = Limits(devices=("/dev/zero", "/dev/../etc/passwd", "/dev/no-such-device", "/dev/shm"))
    script = _init_script("/tmp/r", "/tmp/s", 61000, limits, [], False, {}, ["python"])
    binds = [line for line in script.splitlines() if line.startswith("mount --bind /dev/")]
    assert binds.count('mount --bind /dev/zero "$R"/dev/zero') == 1, binds
    assert not any("passwd" in b or "no-such" in b or b.startswith("mount --bind /dev/shm") for b in binds), binds
    assert "nvidia" not in _init_script("/tmp/r", "/tmp/s", 61000, Limits(), [], False, {}, ["python"])


# ------------------------------------------------------------------------------------------------
# The Formgrader on the graded course, in headless Chromium (the screenshots of docs/instructors.md)
# ------------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (apt-get install chromium)")
def test_formgrader_shows_the_graded_submissions(cycle_run):
    """Log in through JupyterLab, open the Nbgrader menu, Manage Assignments and Manual Grading; save screenshots
    (test-artifacts/browser/; docs/img/ holds copies)."""
    from playwright.sync_api import sync_playwright

    course, token = cycle_run.course, "cycle-test"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    artifacts = ROOT / "test-artifacts" / "browser"
    artifacts.mkdir(parents=True, exist_ok=True)
    log = open(course / "lab.log", "w")
    lab = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1"]
        + [f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={course}"]
        + ["--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=course,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "JUPYTER_CONFIG_DIR": str(course / ".jupyter")},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                assert lab.poll() is None and time.time() < deadline, (course / "lab.log").read_text()[-3000:]
                time.sleep(0.5)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(f"{base}/lab?token={token}")  # the token in the Formgrader's own address is not enough
            page.get_by_text("Nbgrader", exact=True).first.click(timeout=90_000)
            menu = page.locator(".lm-Menu").first
            menu.wait_for(timeout=30_000)
            assert "Formgrader" in menu.inner_text()
            page.screenshot(path=str(artifacts / "lab_nbgrader_menu.png"))
            texts = {}
            for name, path in [
                ("manage_assignments", "/formgrader"),
                ("manual_grading", f"/formgrader/gradebook/{A1}/{A1}"),
            ]:
                page.goto(base + path)
                page.wait_for_function(
                    "() => !document.body.innerText.includes('Loading, please wait')", timeout=60_000
                )
                page.wait_for_timeout(1500)
                page.screenshot(path=str(artifacts / f"formgrader_{name}.png"))
                texts[name] = page.inner_text("body")
            browser.close()
    finally:
        lab.terminate()
        try:
            lab.wait(timeout=20)
        except subprocess.TimeoutExpired:
            lab.kill()
        log.close()
    assert "exchange directory" in texts["manage_assignments"] and A1 in texts["manage_assignments"]
    grading_page = texts["manual_grading"]
    assert "Manual Grading" in grading_page
    for student in MANUAL:
        assert f"{AUTO[student] + MANUAL[student]:g} / 30" in grading_page, grading_page


def test_untouched_test_cell_is_not_reported_as_changed():
    from tools.grading.plugins import _without_hidden

    source = "# Tests\nassert f(1) == 2\nprint('ok')\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS"
    released = "# Tests\nassert f(1) == 2\nprint('ok')\n"
    assert _without_hidden(source) == _without_hidden(released)
    assert _without_hidden(source) != _without_hidden("# Tests\nprint('Visible tests passed.')")


def test_collecting_a_repaired_hand_in_again_is_no_conflict(tmp_path):
    from tools import collect

    dest = tmp_path / "A1_backprop.ipynb"
    dest.write_text("the repaired notebook")
    collect.record_repair(tmp_path / "work", "carol/A1/A1.ipynb", "sha-of-the-download", dest)
    assert collect.repaired_from(tmp_path / "work", "carol/A1/A1.ipynb", dest) == "sha-of-the-download"
    dest.write_text("changed since")  # e.g. a regrade after a new hand-in: a real conflict again
    assert collect.repaired_from(tmp_path / "work", "carol/A1/A1.ipynb", dest) is None
