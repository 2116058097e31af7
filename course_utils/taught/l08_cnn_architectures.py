"""Code taught in lectures/L08_cnn_architectures.ipynb: its cells marked ``# @save``, exported by ``python -m tools.export``.

GENERATED FILE, do not edit: change the notebook cell and run ``python -m tools.export``
(tests/test_export.py fails while this file and the cells differ).
"""

import torch
from torch import nn


# lectures/L08_cnn_architectures.ipynb, cell 49757d3a
def count_params(model):
    # All the numbers a model learns: weights and biases of every layer.
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_params needs a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters())


def count_macs(model, input_shape, per_layer=False):
    # Multiply-adds of all Conv2d and Linear layers for one forward pass of an input of
    # `input_shape` (batch dimension included, e.g. (1, 3, 224, 224)). Returns the total, or
    # a dict {layer name: MACs} when per_layer=True.
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_macs needs a torch.nn.Module, got {type(model).__name__}")
    if (
        not isinstance(input_shape, (tuple, list, torch.Size))
        or len(input_shape) < 2
        or not all(isinstance(n, int) and n > 0 for n in input_shape)
    ):
        raise ValueError(
            f"input_shape must be a tuple of positive integers that starts with the batch size, "
            f"e.g. (1, 3, 224, 224); got {input_shape!r}"
        )
    names = {m: name for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    if not names:
        raise ValueError("the model has no nn.Conv2d or nn.Linear layer: count_macs only counts those")
    counts = {}

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        else:
            per_output = module.in_features
        counts[names[module]] = counts.get(names[module], 0) + output.numel() * per_output

    handles = [m.register_forward_hook(hook) for m in names]
    first = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_shape, device=first.device, dtype=first.dtype))
    except RuntimeError as err:
        raise ValueError(
            f"the model cannot run on an input of shape {tuple(input_shape)} ({err}). "
            "Check the number of channels and the image size."
        ) from err
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return counts if per_layer else sum(counts.values())
