"""``python -m tools.grading ...`` (see tools/grading/cli.py)."""

from tools.grading.cli import entry

if __name__ == "__main__":
    entry()
