"""``python -m tools.autograde ASSIGNMENT [--student S]``: autograde through nbgrader with the sandbox.

The same as ``nbgrader autograde ASSIGNMENT [--student S]`` in the course root (nbgrader_config.py plugs the
sandbox in); it first says which sandbox mode this machine gives (see docs/grading-security.md).
``python -m tools.autograde --check`` only runs a probe notebook in the sandbox and prints what it sees.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from tools.autograde.runner import Cell, grade_cells
from tools.autograde.sandbox import Limits, detect_mode

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import os
print("uid", os.getuid(), "| cwd", os.getcwd(), "| / holds", sorted(os.listdir("/")))
print("network interfaces:", sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])
      if os.path.exists("/proc/net/dev") else "unknown")
"""


def check() -> int:
    mode = detect_mode()
    print(f"sandbox mode: {mode}")
    result = grade_cells([Cell(0, "student", PROBE), Cell(1, "test", "assert True")], Limits(cell_timeout=60))
    for out in result.outputs.get(0, []):
        print(out.get("text", out.get("evalue", "")), end="")
    ok = result.verdicts[1].passed
    print(f"probe test: {'passed' if ok else 'FAILED'} in {result.seconds:.1f} s")
    if not ok:
        print("\n".join(result.log), file=sys.stderr)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.autograde", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("assignment", nargs="?", help="assignment folder name, e.g. A1_backprop")
    parser.add_argument("--student", help="grade only this student")
    parser.add_argument("--check", action="store_true", help="only test the sandbox on this machine")
    args = parser.parse_args(argv)
    if args.check:
        return check()
    if not args.assignment:
        parser.error("name an assignment (or use --check)")
    print(f"sandbox mode: {detect_mode()}", file=sys.stderr)
    cmd = [sys.executable, "-m", "nbgrader", "autograde", args.assignment]
    if args.student:
        cmd += ["--student", args.student]
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
