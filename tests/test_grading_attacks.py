"""Hostile submissions against `nbgrader autograde` as the course configures it (tools/autograde, issue 10).

All submissions are graded in ONE ``nbgrader autograde A1_backprop`` run (module-scoped fixture) in a scratch
course: the honest ones must keep their scores, every cheat must earn nothing it did not earn honestly, other
students' grades must stay untouched, no process of a submission may survive, and the limits must hold.
Threat model: docs/grading-security.md.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbgrader_helpers import (
    ROOT,
    cell_index,
    edit,
    hidden_lines,
    points,
    release_nb,
    run,
    solved,
    source_notebooks,
    write_submission,
)

from tools import grading, release

A1 = "A1_backprop"
STEM = "A1_backprop"
CELL_TIMEOUT = 20
MEMORY_LIMIT = 3 * 1024**3  # the 4 GB allocation must fail
MAX_PROCESSES = 48  # the 60 forks must not all succeed

pytestmark = [
    pytest.mark.skipif(not (ROOT / "solutions" / A1).is_dir(), reason=f"{A1} is not in solutions/"),
    pytest.mark.timeout(2400),
]  # the first test waits for the whole grading run


def _insert_after(nb, gid: str, source: str):
    nb.cells.insert(cell_index(nb, gid) + 1, nbformat.v4.new_code_cell(source))
    return nb


def _stubs():
    return lambda course: release_nb(course, A1, STEM)


def _solved():
    return lambda course: solved(course, A1, STEM)


# ------------------------------------------------------------------------------------------------
# The attacks. Each is (base notebook, how to change it); `expected` below says what it must score.
# ------------------------------------------------------------------------------------------------

PROBES = r"""
import sys, os
def attempt(name, fn):
    try:
        fn()
        print(f"ATTEMPT {name} OPEN")
    except BaseException as e:
        print(f"ATTEMPT {name} BLOCKED {type(e).__name__}")

def _tb_frame():
    try:
        1 / 0
    except ZeroDivisionError as e:
        return e.__traceback__.tb_frame.f_back.f_locals

def _gen_frame():
    g = (i for i in [1])
    return g.gi_frame.f_back

attempt("pre_run_cell", lambda: get_ipython().events.register("pre_run_cell", lambda *a: get_ipython().displayhook("ok")))
attempt("input_transformer", lambda: get_ipython().input_transformers_post.append(lambda lines: ["print('ok')\n"]))
attempt("set_custom_exc", lambda: get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None))
attempt("In", lambda: print(In))
attempt("_ih", lambda: print(_ih))
attempt("Out", lambda: print(Out))
attempt("settrace", lambda: sys.settrace(lambda *a: None))
attempt("setprofile", lambda: sys.setprofile(lambda *a: None))
attempt("getframe", lambda: sys._getframe(0).f_back.f_locals)
attempt("inspect", lambda: __import__("inspect").currentframe().f_back.f_locals)
attempt("logging_frame", lambda: __import__("logging").currentframe().f_back)
attempt("tb_frame", _tb_frame)
attempt("gi_frame", _gen_frame)
attempt("current_frames", lambda: sys._current_frames())
attempt("gc_objects", lambda: __import__("gc").get_objects())
attempt("gc_referrers", lambda: __import__("gc").get_referrers(sys.modules))
attempt("ctypes", lambda: __import__("ctypes").CDLL(None))
def _add_hook():
    seen = []
    sys.addaudithook(lambda event, args: seen.append(event))   # refused silently (Exception) or loudly
    compile("1", "<probe>", "eval")
    if not seen:
        raise RuntimeError("the audit hook was not added")

attempt("audithook", _add_hook)
attempt("subprocess", lambda: __import__("subprocess").run(["true"]))
attempt("os_system", lambda: os.system("true"))
attempt("socket", lambda: __import__("socket").socket())
import course_utils.gradcheck as _gc
attempt("set_code", lambda: setattr(_gc.relative_error, "__code__", (lambda a, b, eps=0: 0.0).__code__))
attempt("set_defaults", lambda: setattr(_gc.relative_error, "__defaults__", (1e300,)))
attempt("set_code_locked", lambda: setattr(relative_error, "__code__", (lambda a, b, eps=0: 0.0).__code__))
attempt("new_function", lambda: __import__("types").FunctionType((lambda: 0).__code__, {}))
attempt("spoof_compile", lambda: compile("x = 1", __import__("traceback").__file__, "exec"))
attempt("marshal", lambda: __import__("marshal").loads(__import__("marshal").dumps(1)))
attempt("proc_mem", lambda: open("/proc/1/mem", "rb"))
attempt("write_outside", lambda: open("/etc/cheat.txt", "w"))
"""

PATCHES = r"""
import builtins, sys, types
import numpy, torch, course_utils, course_utils.gradcheck
numpy.allclose = lambda *a, **k: True
numpy.array_equal = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
torch.allclose = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: torch.tensor(True)
course_utils.relative_error = lambda *a, **k: 0.0
course_utils.gradcheck.relative_error = lambda *a, **k: 0.0
relative_error = lambda *a, **k: 0.0
builtins.isinstance = lambda *a: True
builtins.abs = lambda x: 0
def all(*a):
    return True
fake = types.ModuleType("numpy")
fake.__dict__.update(numpy.__dict__)
fake.allclose = lambda *a, **k: True
np = fake
sys.modules["numpy"] = fake
"""

PATCH_DURING_TEST = r"""
def affine_forward(x, w, b):
    import numpy
    numpy.max = lambda *a, **k: 0.0               # relative_error (course_utils) now says 0: the visible check passes
    numpy.allclose = lambda *a, **k: True          # and the hidden checks too
    numpy.array_equal = lambda *a, **k: True
    out = x.reshape(x.shape[0], -1) @ w            # no bias: wrong
    return out, (x, w, b)
"""


def _steal(course: Path) -> str:
    paths = [
        f"../../../solutions/{A1}/{STEM}.ipynb",
        f"{course}/solutions/{A1}/{STEM}.ipynb",
        f"{ROOT}/solutions/{A1}/{STEM}.ipynb",
        f"{course}/gradebook.db",
        f"{ROOT}/.git/config",
        f"{course}/submitted/solution/{A1}/{STEM}.ipynb",
        f"{course}/autograded",
        "/root/.bash_history",
        f"{course}/nbgrader_config.py",
    ]
    return f"""
import os, sys, json
for path in {paths!r}:
    print(("FOUND " if os.path.exists(path) else "absent ") + path)
    try:
        if path.endswith(".ipynb"):
            nb = json.load(open(path))
            for cell in nb["cells"]:
                exec("".join(cell["source"]).replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""))
            print("READ", path)
    except Exception as e:
        print("no", type(e).__name__)
hits = []
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if not (top == "/" and d in ("proc", "sys", "dev", "usr"))
               and os.path.join(top, d) not in (sys.prefix, sys.base_prefix)]   # libraries' own test files
    hits += [os.path.join(top, f) for f in files if f.startswith("A1_backprop") or f == "gradebook.db"]
print("FOUND-NOTEBOOKS" if hits else "no notebooks anywhere", hits[:5])
print("ENV", sorted(os.environ))
print("CWD", os.getcwd(), "UID", os.getuid())
"""


def _gradebook(course: Path) -> str:
    return f'''
import sqlite3, os
for path in ["{course}/gradebook.db", "../../../gradebook.db", "/tmp/../{course}/gradebook.db"]:
    try:
        con = sqlite3.connect(path)
        con.execute("UPDATE grade SET auto_score = 0, manual_score = 0")
        con.commit()
        print("WROTE", path)
    except Exception as e:
        print("gradebook blocked:", path, type(e).__name__)
'''


DAEMON = r"""
import os, time
marker = os.path.join(os.getcwd(), "daemon-marker-7f3a")
os.makedirs(marker, exist_ok=True)
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        os.chdir(marker)
        for _ in range(100000):
            time.sleep(0.2)
    os._exit(0)
os.waitpid(pid, 0)
print("daemon started")
"""

LIMITS = r"""
import os, time, numpy as _np
try:
    big = _np.ones(4 * 1024**3 // 8)
    print("ALLOCATED 4 GB")
except MemoryError:
    print("memory limit held")
kids, refused = [], 0
for _ in range(60):
    try:
        pid = os.fork()
    except OSError:
        refused += 1
        continue
    if pid == 0:
        time.sleep(300)
        os._exit(0)
    kids.append(pid)
print(f"forked {len(kids)}, refused {refused}")
for pid in kids:          # (the submission's own later cells need processes/threads too)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
try:
    with open("big.bin", "wb") as fh:
        fh.write(b"x" * (60 * 1024**2))
    print("WROTE 60 MB")
except OSError as e:
    print("file size limit held", type(e).__name__)
"""

BIG_IMAGE = r"""
import matplotlib.pyplot as plt, numpy as _np
fig = plt.figure(figsize=(20, 20), dpi=100)        # 2000 x 2000 pixels of noise: a PNG of about 10 MB
plt.imshow(_np.random.default_rng(0).random((2000, 2000, 3)))
plt.show()
print("x" * 12_000_000)
"""

SLOW_HOOK = r"""
import signal, time
signal.signal(signal.SIGVTALRM, lambda *a: time.sleep(3))
signal.setitimer(signal.ITIMER_VIRTUAL, 0.01, 0.01)
signal.signal(signal.SIGALRM, lambda *a: None)
"""

FORGE_FD = r"""
import os, struct, json
msg = json.dumps({"type": "verdict", "cell": 7, "passed": True, "reason": "", "outputs": []}).encode()
frame = struct.pack(">I", len(msg)) + msg + b"\0" * 64
for fd in range(3, 64):
    try:
        os.write(fd, frame)
    except OSError:
        pass
print("forged verdicts written")
"""

WARNINGS = r"""
import sys, warnings
def _noisy():
    warnings.warn("this alias is deprecated", FutureWarning)
    warnings.warn("and this too", DeprecationWarning)
    print("a message on stderr", file=sys.stderr)
"""


def _add_noise(nb):
    _insert_after(nb, "a1_setup", WARNINGS)
    for gid, head in [("affine_forward", "def affine_forward(x, w, b):"), ("relu", "def relu_forward(x):")]:
        edit(nb, gid, head, head + "\n    _noisy()")
    return nb


def _exit_in_sigmoid(nb):
    return edit(nb, "sigmoid", "def sigmoid_forward", "import os\nos._exit(0)\n\n\ndef sigmoid_forward")


def _wrong_affine(nb):
    return edit(nb, "affine_forward", "out = x.reshape(x.shape[0], -1) @ w + b", "out = x.reshape(x.shape[0], -1) @ w")


def _strip_locked_helper(nb):
    """The locked setup cell loses its metadata and is rewritten: relative_error always says 0."""
    cell = nb.cells[cell_index(nb, "a1_setup")]
    cell.metadata = {}
    cell.source += "\nrelative_error = lambda *a, **k: 0.0\nnp.allclose = lambda *a, **k: True\n"
    return nb


def _stub_with(source):
    return lambda nb: _insert_after(nb, "a1_setup", source)


@dataclass
class Attack:
    base: str  # "stubs" or "solved"
    change: object  # nb -> nb, or (course -> source) for attacks that need paths
    expected: str  # "zero", "full", "wrong_affine" (scores exactly like the honest wrong answer)
    failing: frozenset = frozenset()  # for "full": test cells that may fail (the attacked cell)


ATTACKS = {
    "solution": Attack("solved", None, "full"),
    "untouched": Attack("stubs", None, "zero"),
    "wrong_affine": Attack("solved", _wrong_affine, "honest"),
    "probes": Attack("stubs", _stub_with(PROBES), "zero"),
    "patched": Attack("solved", lambda nb: _insert_after(_wrong_affine(nb), "affine_forward", PATCHES), "wrong_affine"),
    "patch_in_test": Attack(
        "solved",
        lambda nb: _insert_after(_wrong_affine(nb), "affine_forward", PATCH_DURING_TEST),
        "at_most_wrong_affine",
    ),
    "stripped_lock": Attack("solved", lambda nb: _strip_locked_helper(_wrong_affine(nb)), "wrong_affine"),
    "steal": Attack("stubs", "steal", "zero"),
    # honest work plus hostile side effects: the gradebook, a daemon, a sleeping signal handler, warnings
    "zz_mixed": Attack("solved", "mixed", "full"),
    "limits": Attack("solved", lambda nb: _insert_after(_stub_with(LIMITS)(nb), "a1_setup", BIG_IMAGE), "full"),
    "exit": Attack("solved", _exit_in_sigmoid, "full", frozenset({"test_sigmoid"})),
    "forge_fd": Attack("stubs", _stub_with(FORGE_FD), "zero"),
}


@dataclass
class Graded:
    course: Path
    rows: dict
    seconds: float
    per_student: dict
    output: str

    def text(self, student: str) -> str:
        """All outputs of the student's autograded notebook as text (what the feedback is made from)."""
        nb = nbformat.read(self.course / "autograded" / student / A1 / f"{STEM}.ipynb", as_version=4)
        parts = []
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                parts += [
                    str(out.get("text", "")),
                    str(out.get("evalue", "")),
                    str(out.get("data", {}).get("text/plain", "")),
                ]
        return "\n".join(parts)


def _stray_processes() -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = str((proc / "cwd").readlink())
        except OSError:
            continue
        if "daemon-marker-7f3a" in cwd:
            found.append(f"pid {proc.name}: {cwd}")
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Graded:
    course = release.copy_course(ROOT, tmp_path_factory.mktemp("attacks") / "course", with_release=False)
    release.generate([A1], course)
    with open(course / "nbgrader_config.py", "a") as fh:
        fh.write(
            f"\nc.SandboxedExecute.memory_bytes = {MEMORY_LIMIT}\nc.SandboxedExecute.max_processes = {MAX_PROCESSES}\n"
        )
    for student, attack in ATTACKS.items():
        nb = (solved if attack.base == "solved" else lambda c, a, s: release_nb(c, a, s))(course, A1, STEM)
        if attack.change == "steal":
            nb = _insert_after(nb, "a1_setup", _steal(course))
        elif attack.change == "mixed":
            for source in (_gradebook(course), DAEMON, SLOW_HOOK):
                nb = _insert_after(nb, "a1_setup", source)
            nb = _add_noise(nb)
        elif attack.change is not None:
            nb = attack.change(nb)
        write_submission(course, student, A1, STEM, nb)
    t0 = time.perf_counter()
    result = run(["nbgrader", "autograde", A1], course, cell_timeout=CELL_TIMEOUT, timeout=1800)
    seconds = time.perf_counter() - t0
    assert result.returncode == 0, result.output[-5000:]
    per_student = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"INFO\] (\S+)/" + A1 + r"/\S+: \d+ of \d+ test cells passed in ([\d.]+) s", result.output)
    }
    rows = {row.student: row for row in grading.report(A1, course)}
    graded = Graded(course, rows, seconds, per_student, result.output)
    print(
        f"\n[attacks] nbgrader autograde of {len(ATTACKS)} submissions: {seconds:.0f} s; per submission: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in sorted(per_student.items()))
    )
    return graded


def _auto_points() -> dict[str, float]:
    pts = points(nbformat.read(source_notebooks(A1)[STEM], as_version=4))
    return {k: v["points"] for k, v in pts.items() if not v["manual"]}


@pytest.mark.parametrize("student", sorted(ATTACKS))
def test_each_submission_earns_exactly_what_it_earned_honestly(graded, student):
    attack, auto, row = ATTACKS[student], _auto_points(), graded.rows[student]
    honest_wrong = graded.rows["wrong_affine"]
    if attack.expected == "zero":
        assert row.score == 0, f"{student}: {row}"
    elif attack.expected == "full":
        assert set(row.failed) == set(attack.failing), f"{student}: {row}\n{graded.text(student)[-3000:]}"
        assert row.score == pytest.approx(sum(auto.values()) - sum(auto[g] for g in attack.failing)), row
    elif attack.expected == "honest":  # the honest wrong answer: affine_forward and what builds on it fail
        assert {"test_affine_forward"} <= set(row.failed) and row.score < sum(auto.values()), row
    elif attack.expected == "at_most_wrong_affine":  # tampering inside tests is failed closed: maybe less
        assert row.score <= honest_wrong.score and set(honest_wrong.failed) <= set(row.failed), row
    else:
        assert row.score == pytest.approx(honest_wrong.score), f"{student}: {row} vs honest {honest_wrong}"
        assert set(row.failed) == set(honest_wrong.failed), f"{student}: {row}"


def test_probes_are_all_blocked(graded):
    text = graded.text("probes")
    attempts = dict(re.findall(r"ATTEMPT (\S+) (OPEN|BLOCKED)", text))
    assert len(attempts) >= 25, text[-3000:]
    assert [k for k, v in attempts.items() if v == "OPEN"] == [], text[-3000:]


def test_hidden_tests_solutions_and_gradebook_are_out_of_reach(graded):
    text = graded.text("steal")
    assert "FOUND" not in text and "READ" not in text, text[-3000:]
    env = re.search(r"ENV (\[.*\])", text)
    assert env and not any(name.startswith(("NBGRADER", "JPY", "JUPYTER")) for name in eval(env.group(1))), text[-2000:]
    assert re.search(r"CWD /submission UID 6\d{4}", text), text[-2000:]
    secret = hidden_lines(nbformat.read(source_notebooks(A1)[STEM], as_version=4))
    assert secret
    for student in ("probes", "steal"):
        shown = [line for line in secret if line in graded.text(student)]
        assert not shown, f"{student} printed hidden test lines: {shown[:3]}"


def test_other_students_grades_are_untouched(graded):
    assert "gradebook blocked" in graded.text("zz_mixed") and "WROTE" not in graded.text("zz_mixed")
    with sqlite3.connect(graded.course / "gradebook.db") as con:
        scores = dict(
            con.execute(
                "SELECT student.id, SUM(grade.auto_score) FROM grade JOIN submitted_notebook ON "
                "grade.notebook_id = submitted_notebook.id JOIN submitted_assignment ON "
                "submitted_notebook.assignment_id = submitted_assignment.id JOIN student ON "
                "submitted_assignment.student_id = student.id GROUP BY student.id"
            ).fetchall()
        )
    assert scores["solution"] == pytest.approx(sum(_auto_points().values()))


def test_no_process_of_a_submission_survives(graded):
    assert "daemon started" in graded.text("zz_mixed")
    time.sleep(1)
    assert _stray_processes() == []


def test_limits_hold(graded):
    text = graded.text("limits")
    assert "memory limit held" in text and "ALLOCATED" not in text, text[-2000:]
    forked = re.search(r"forked (\d+), refused (\d+)", text)
    assert forked and int(forked.group(2)) > 0, text[-2000:]
    assert "file size limit held" in text and "WROTE 60 MB" not in text, text[-2000:]
    big = graded.course / "autograded" / "limits" / A1 / f"{STEM}.ipynb"
    assert big.stat().st_size < 3_000_000, f"{big.stat().st_size} bytes"
    assert "dropped by the grader" in text


def test_a_slow_signal_hook_does_not_hold_the_grader(graded):
    assert graded.per_student["zz_mixed"] < graded.per_student["solution"] + 30, graded.per_student


def test_exit_costs_only_its_cell(graded):
    nb = nbformat.read(graded.course / "autograded" / "exit" / A1 / f"{STEM}.ipynb", as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert any(o["ename"] == "DeadKernelError" for o in errors), errors


def test_warnings_and_stderr_are_shown_not_penalised(graded):
    text = graded.text("zz_mixed")
    assert "FutureWarning" in text and "a message on stderr" in text


def test_forged_verdicts_are_rejected(graded):
    assert "forged verdicts written" not in graded.text("forge_fd") or graded.rows["forge_fd"].score == 0
    nb = nbformat.read(graded.course / "autograded" / "forge_fd" / A1 / f"{STEM}.ipynb", as_version=4)
    enames = {o.get("ename") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"}
    assert "GradingProtocolError" in enames, enames


def test_tampering_inside_a_test_is_reported(graded):
    assert "replaced library code while the test ran" in graded.text("patch_in_test")


def test_runtime_report(graded, capsys):
    with capsys.disabled():
        print(
            json.dumps(
                {
                    "submissions": len(ATTACKS),
                    "autograde_seconds": round(graded.seconds, 1),
                    "per_submission_seconds": graded.per_student,
                },
                indent=1,
            )
        )
    assert graded.seconds < 60 * len(ATTACKS)
