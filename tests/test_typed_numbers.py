"""No lecture types a number that its code does not produce.

Course rule: every number a notebook teaches is computed by code and printed, never typed into markdown.
This scan finds numbers in markdown cells (outside LaTeX, code spans, headings, list markers and section
references) that appear nowhere in the notebook's code. Small integers (counts such as "three layers" written as
digits) and years are ignored. What remains must be a quotation with a source (the slides, a paper, a published
benchmark) or a parameter a "Try it" asks the student to set, and is listed in ``QUOTED`` with the reason.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "lectures").glob("L*.ipynb"))

NUMBER = re.compile(r"(?<![\w.$\\^_{-])(\d{1,3}(?:,\d{3})+|\d+\.\d+|\d+)")

# notebook stem -> {number as typed: why it may stay typed}
QUOTED: dict[str, dict[str, str]] = {
    "L02_convolution_arithmetic": {
        "854": "quoted from the slides ('about 854M'), next to the count the code prints",
        "358": "quoted from the slides ('about 358M'), which the notebook then corrects with a computed count",
    },
    "L04_double_descent": {
        "31": "a Try it: the number of coefficients of that degree-30 polynomial",
    },
    "L09_fast_training_loops": {
        "55": "published anchor: d2l.ai's LeNet loop, about 55 thousand examples per second",
        "94": "published anchor: airbench's 94% CIFAR-10 accuracy",
    },
}


def prose(markdown: str) -> str:
    """The running text of a markdown cell: maths, code, links, HTML tags, headings and list markers removed."""
    text = re.sub(r"\$\$.*?\$\$", " ", markdown, flags=re.S)
    text = re.sub(r"\$[^$]*\$", " ", text)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"^#+ .*$", " ", text, flags=re.M)
    text = re.sub(r"^\s*>?\s*(\d+\.|[-*])\s", " ", text, flags=re.M)
    return re.sub(r"(section|Section|§)\s*\d+(\.\d+)*", " ", text)


def typed_numbers(notebook: Path) -> list[tuple[int, str]]:
    """(cell index, number) for every number in the prose that no code cell of the notebook contains."""
    cells = json.loads(notebook.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    found = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        for match in NUMBER.finditer(prose("".join(cell["source"]))):
            number = match.group(1)
            small_count = "." not in number and float(number.replace(",", "")) <= 12
            year = re.fullmatch(r"(19|20)\d\d", number) is not None
            if not (small_count or year or number in code):
                found.append((index, number))
    return found


@pytest.mark.parametrize("notebook", LECTURES, ids=lambda p: p.stem)
def test_no_typed_numbers(notebook):
    allowed = QUOTED.get(notebook.stem, {})
    unexplained = [(i, n) for i, n in typed_numbers(notebook) if n not in allowed]
    assert not unexplained, (
        f"{notebook.name}: numbers typed in markdown that no code produces (cell, number): {unexplained}. "
        "Print them from code, or, for a quotation with a source, add them to QUOTED with the reason."
    )


def test_scan_finds_a_typed_result(tmp_path):
    nb = {
        "cells": [
            {"cell_type": "code", "source": ["acc = 0.5\n", "print(acc)"]},
            {
                "cell_type": "markdown",
                "source": [
                    "The model reaches 97.3% ($x = 12.5$) after `lr = 0.25`, ",
                    "see section 4.3; in 2012 three layers.",
                ],
            },
        ]
    }
    path = tmp_path / "L99.ipynb"
    path.write_text(json.dumps(nb))
    assert typed_numbers(path) == [(1, "97.3")]


def test_every_quoted_entry_is_still_needed():
    for stem, entries in QUOTED.items():
        still_typed = {n for _, n in typed_numbers(ROOT / "lectures" / f"{stem}.ipynb")}
        assert set(entries) <= still_typed, f"{stem}: remove {sorted(set(entries) - still_typed)} from QUOTED"
