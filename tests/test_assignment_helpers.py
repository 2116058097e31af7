"""course_utils.assignment_helpers: the helpers A3-A6 hand out, written once and imported by locked cells."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from course_utils.assignment_helpers import count_macs, layer_table, scaled

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("layer_table", "scaled", "count_macs")
# where writing one of them is the exercise itself (the student's answer, not a pasted helper)
EXERCISES = {("A5_nin_googlenet", "count_macs")}


def test_layer_table_rows_print_and_mode(capsys):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    model.train()
    rows = layer_table(model, (3, 8, 8))
    assert rows == [
        ("0", "Conv2d", (4, 8, 8), 3 * 4 * 9 + 4),
        ("1", "ReLU", (4, 8, 8), 0),
        ("2", "Flatten", (256,), 0),
        ("3", "Linear", (10,), 256 * 10 + 10),
    ]
    out = capsys.readouterr().out
    assert "Conv2d" in out and f"{3 * 4 * 9 + 4 + 2570:,}" in out.splitlines()[-1]
    assert model.training, "layer_table must restore the training mode"
    assert layer_table(model.eval(), (3, 8, 8), show=False) == rows and not model.training
    assert capsys.readouterr().out == ""
    assert not model[0]._forward_hooks, "layer_table must remove its hooks"


def test_count_macs_takes_one_input_without_batch_dimension():
    # the values A5's visible tests check (the A6 helper must agree with A5's exercise)
    assert count_macs(nn.Conv2d(3, 10, 5, padding=2), (3, 32, 32)) == 32 * 32 * 10 * 3 * 5 * 5
    assert count_macs(nn.Linear(400, 120), (400,)) == 400 * 120
    assert count_macs(nn.Conv2d(8, 16, 3, groups=4), (8, 6, 6)) == 4 * 4 * 16 * 2 * 9
    got = count_macs(nn.Conv2d(4, 4, (1, 3)), (4, 5, 5))
    assert got == 5 * 3 * 4 * 4 * 3 and isinstance(got, int)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    count_macs(model, (1, 5, 5))
    assert model.training and not model[1]._forward_hooks


def test_scaled():
    assert [scaled(64, w) for w in (1, 0.5, 0.125, 0.001)] == [64, 32, 8, 1]


@pytest.mark.parametrize("assignment", ["A3_lenet5", "A4_alexnet_vgg", "A5_nin_googlenet", "A6_resnet18"])
def test_assignments_import_the_helpers_instead_of_pasting_them(assignment):
    nb = json.loads((ROOT / "solutions" / assignment / f"{assignment}.ipynb").read_text(encoding="utf-8"))
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    for name in SHARED:
        if (assignment, name) not in EXERCISES:
            assert not any(f"def {name}(" in src for src in code), f"{assignment} defines {name} again"
    imports = [src for src in code if "from course_utils.assignment_helpers import" in src]
    assert len(imports) == 1, f"{assignment} should import the shared helpers in one locked cell"
    cell = next(c for c in nb["cells"] if "from course_utils.assignment_helpers import" in "".join(c["source"]))
    assert cell["metadata"]["nbgrader"]["locked"], "the helpers cell must stay locked"
    assert "layer_table" in imports[0]


def test_helpers_match_torch_flop_counter_on_a_resnet_block():
    torchvision = pytest.importorskip("torchvision")
    block = torchvision.models.resnet.BasicBlock(8, 8)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        block.eval()(torch.zeros(1, 8, 6, 6))
    assert count_macs(block, (8, 6, 6)) * 2 == counter.get_total_flops()
