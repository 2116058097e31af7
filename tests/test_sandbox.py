"""tools/autograde without nbgrader: the sandbox's view and limits, crash recovery, time limits, the protocol.

Each test grades a few small cells with :func:`tools.autograde.runner.grade_cells` (one or two sandboxes, a
few seconds each: most of it is importing torch). The full attack matrix through `nbgrader autograde` is in
tests/test_grading_attacks.py.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import pytest

from tools.autograde import protocol
from tools.autograde.runner import Cell, grade_cells
from tools.autograde.sandbox import PLAIN_WARNING, Limits, detect_mode

ROOT = Path(__file__).resolve().parents[1]
FAST = {"cell_timeout": 4.0, "grace_s": 3.0}


def _text(result, index: int) -> str:
    return "\n".join(
        str(o.get("text", "")) + str(o.get("evalue", "")) + str(o.get("data", {}).get("text/plain", ""))
        for o in result.outputs.get(index, [])
    )


@pytest.fixture(scope="module")
def mode() -> str:
    return detect_mode()


def test_the_sandbox_sees_only_what_grading_needs(mode):
    if mode != "namespaces":
        pytest.skip(f"full sandbox needs Linux namespaces as root (mode here: {mode})")
    probe = f'''
import os
print("UID", os.getuid(), "CWD", os.getcwd())
print("ROOT", sorted(os.listdir("/")))
for path in ["{ROOT}/solutions", "{ROOT}/.git", "{ROOT}/tools/grading/__init__.py", "/root/.bash_history", "/work/notes"]:
    print("SEES" if os.path.exists(path) else "hidden", path)
print("NET", sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]))
print("PIDS", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
'''
    result = grade_cells([Cell(0, "student", probe), Cell(1, "test", "assert True")], Limits(**FAST))
    text = _text(result, 0)
    assert result.verdicts[1].passed, result.log
    assert "SEES" not in text, text
    assert "UID 6" in text and "CWD /submission" in text, text
    assert "NET ['lo']" in text, text
    assert "PIDS [1]" in text, text  # its own pid namespace: only the harness
    venv_top = Path(os.path.realpath(sys.prefix)).parts[1]  # the venv is bound at its own path, wherever it is
    assert f"'{venv_top}'" in text, text
    if venv_top != "home":
        assert "'home'" not in text, text


def test_a_crash_costs_only_its_cell_and_earlier_verdicts_stand(mode):
    cells = [
        Cell(0, "student", "def f(x):\n    return 2 * x"),
        Cell(1, "test", "assert f(2) == 4"),
        Cell(2, "student", "import os\nos._exit(3)"),
        Cell(3, "test", "assert f(3) == 6"),
        Cell(
            4,
            "student",
            "import time\nwhile True:\n    try:\n        time.sleep(1)\n    except BaseException:\n        pass",
        ),
        Cell(5, "test", "assert f(4) == 8"),
        Cell(6, "student", "while True:\n    pass"),
        Cell(7, "test", "assert f(5) == 10"),
        Cell(8, "test", "assert f(5) == 11"),
    ]
    result = grade_cells(cells, Limits(**FAST), mode=mode)
    assert {i: v.passed for i, v in result.verdicts.items()} == {1: True, 3: True, 5: True, 7: True, 8: False}, result
    assert set(result.failed_cells) == {2, 4}, result.failed_cells  # os._exit; an interrupt swallowed
    assert result.outputs[2][0]["ename"] == "DeadKernelError"
    assert result.outputs[4][0]["ename"] == "CellTimeoutError"
    assert any(o.get("ename") == "CellTimeoutError" for o in result.outputs[6])  # interrupted, process lived on
    assert result.restarts == 2


def test_warnings_and_stderr_never_fail_a_test(mode):
    cells = [
        Cell(
            0,
            "student",
            "import sys, warnings\ndef f():\n    warnings.warn('old', FutureWarning)\n"
            "    print('noise', file=sys.stderr)\n    return 1",
        ),
        Cell(1, "test", "assert f() == 1"),
    ]
    result = grade_cells(cells, Limits(**FAST), mode=mode)
    assert result.verdicts[1].passed
    assert "FutureWarning" in _text(result, 1) and "noise" in _text(result, 1)


def test_locked_names_and_libraries_are_restored_before_each_test(mode):
    cells = [
        Cell(0, "locked", "import numpy as np\ndef helper(x):\n    return x + 1"),
        Cell(
            1,
            "student",
            "import numpy\nnumpy.allclose = lambda *a, **k: True\nhelper = lambda x: 42\nnp = None\nlen = lambda x: 3",
        ),
        Cell(2, "test", "assert helper(1) == 2 and not np.allclose(1, 2) and len([1]) == 1"),
    ]
    result = grade_cells(cells, Limits(**FAST), mode=mode)
    assert result.verdicts[2].passed, result.outputs


def test_the_wall_time_limit_ends_grading_and_unjudged_tests_score_zero(mode):
    cells = [
        Cell(0, "student", "import time\ntime.sleep(3)"),
        Cell(1, "test", "assert True"),
        Cell(2, "student", "time.sleep(3)"),
        Cell(3, "test", "assert True"),
    ]
    result = grade_cells(cells, Limits(cell_timeout=10, grace_s=1, wall_timeout=4, startup_s=60), mode=mode)
    assert not result.verdicts[3].passed and "no verdict" in result.verdicts[3].reason, result


def test_unauthenticated_messages_and_unsealed_verdicts_are_rejected():
    key, secret = os.urandom(32), os.urandom(32)
    frame = protocol.encode(key, 0, {"type": "verdict", "cell": 1, "passed": True})
    assert protocol.decode(key, 0, frame)["passed"] is True
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(os.urandom(32), 0, frame)  # another key
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(key, 1, frame)  # replayed out of order
    forged = frame[: 4 + 10] + b"X" + frame[4 + 11 :]
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(key, 0, forged)
    assert protocol.verdict_seal(secret, 3, 1, True) != protocol.verdict_seal(secret, 3, 1, False)
    assert len(struct.pack(">I", 1)) == 4


def test_plain_mode_says_what_it_does_not_defend():
    for words in ("solutions/", "network", "process group", "docs/grading-security.md"):
        assert words in PLAIN_WARNING
    result = grade_cells([Cell(0, "student", "x = 1"), Cell(1, "test", "assert x == 1")], Limits(**FAST), mode="plain")
    assert result.verdicts[1].passed, result.log


def test_library_self_patching_is_not_tampering_but_a_patch_inside_a_test_is(mode):
    cells = [
        Cell(0, "locked", "import numpy as np\nimport torch"),
        Cell(
            1,
            "student",
            "def make():\n    p = torch.zeros(1, requires_grad=True)\n"
            "    return p, torch.optim.SGD([p], lr=0.1)\n"
            "def cheat(x):\n    np.allclose = lambda *a, **k: True\n    return x",
        ),
        # torch wraps SGD.step on first use (a library changing its own class): must pass
        Cell(
            2,
            "test",
            "p, opt = make()\np.sum().backward()\nopt.step()\nassert p.item() == -0.1 or abs(p.item() + 0.1) < 1e-6",
        ),
        # the tested function rebinds np.allclose, which then says the wrong answer is right: must fail
        Cell(3, "test", "x = cheat(1)\nassert np.allclose(x, 2)"),
    ]
    result = grade_cells(cells, Limits(cell_timeout=120, grace_s=5), mode=mode)  # torch.optim imports torch._dynamo
    assert result.verdicts[2].passed, result.outputs.get(2)
    assert not result.verdicts[3].passed and "numpy.allclose" in result.verdicts[3].reason, result.verdicts[3]
