"""Tamper-resistant autograding: a clean-room harness in an OS sandbox, verdicts sealed per test.

See docs/grading-security.md for the threat model. Modules: sandbox (the OS wall), harness (runs inside it),
protocol (authenticated messages), runner (the trusted side, one submission), nbgrader_plugin (what
``nbgrader autograde`` uses through nbgrader_config.py), __main__ (``python -m tools.autograde``).
"""
