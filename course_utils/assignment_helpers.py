"""Helpers the CNN assignments (A3-A6) give their students, written once here instead of pasted into each.

The assignments import them in a locked cell (``from course_utils.assignment_helpers import ...``); students
read them here or with ``layer_table??`` in the notebook. What a student writes as an answer in one assignment
and receives as a helper in a later one (A3's ``train_step`` and ``count_parameters``) stays in the later
assignments' locked cells: this package is public from the first week, so it must not hold an answer.
``count_macs`` is lecture L08's own function (exported to :mod:`course_utils.taught.l08_cnn_architectures`).
"""

from __future__ import annotations

import torch
from torch import nn

from .taught.l08_cnn_architectures import count_macs as _count_macs_batched

__all__ = ["layer_table", "scaled", "count_macs"]


def layer_table(model: nn.Module, input_shape, show: bool = True) -> list[tuple[str, str, tuple, int]]:
    """One forward pass of a single random input; returns (and prints) one row per leaf layer:
    (name, layer type, output shape, number of parameters of that layer)."""
    rows, hooks = [], []
    for name, module in model.named_modules():
        if len(list(module.children())) == 0:  # leaf layers only

            def hook(mod, inputs, output, name=name):
                rows.append(
                    (
                        name,
                        type(mod).__name__,
                        tuple(output.shape[1:]),
                        sum(p.numel() for p in mod.parameters(recurse=False)),
                    )
                )

            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if show:
        print(f"{'layer':<22}{'type':<18}{'output shape':<20}{'parameters':>12}")
        for name, kind, shape, n in rows:
            print(f"{name:<22}{kind:<18}{str(shape):<20}{n:>12,}")
        print(f"{'total':<60}{sum(r[3] for r in rows):>12,}")
    return rows


def scaled(channels: int, width: float) -> int:
    """Channel count of a network `width` times as wide as the original (at least 1)."""
    return max(1, round(channels * width))


def count_macs(model: nn.Module, input_shape) -> int:
    """Multiply-accumulates of all Conv2d and Linear layers for one input of shape input_shape (C, H, W).

    Lecture L08's ``count_macs`` for a batch of one (the lecture's takes the batch dimension too)."""
    return int(_count_macs_batched(model, (1, *input_shape)))
