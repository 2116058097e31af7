"""Data augmentation done on the device, for a whole batch at once.

torchvision's transforms work one image at a time inside a DataLoader worker; on a GPU that
per-image work on the CPU becomes the bottleneck. :func:`random_crop_flip` does the classic
CIFAR augmentation (pad, random crop back to size, random horizontal flip) for a batch in a
few tensor operations, wherever the batch already lives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(
    x: torch.Tensor,
    padding: int = 4,
    flip: bool = True,
    generator: torch.Generator | None = None,
    memory_format: torch.memory_format | None = None,
) -> torch.Tensor:
    """Randomly crop (after zero padding) and horizontally flip each image of ``x`` ``[N, C, H, W]``.

    Equivalent to torchvision's ``RandomCrop(H, padding)`` + ``RandomHorizontalFlip()`` applied
    independently to every image.

    The result has the same memory layout as ``x``: an ordinary (NCHW-contiguous) batch gives an
    ordinary batch, a channels-last batch (what GPU training with ``channels_last`` uses) gives a
    channels-last batch. ``memory_format`` asks for a layout explicitly. Never a mixture: on some
    CPUs (AVX2 without AVX-512) oneDNN's convolution backward crashes when a batch's layout differs
    from the model's, so the layout must be the one the caller chose.
    """
    if x.ndim != 4:
        raise ValueError(f"random_crop_flip expects a batch [N, C, H, W], got shape {tuple(x.shape)}.")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}.")
    n, _, h, w = x.shape
    device = x.device
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    dy = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
    rows = dy[:, None] + torch.arange(h, device=device)  # [N, H]
    cols = dx[:, None] + torch.arange(w, device=device)  # [N, W]
    if flip:
        flipped = torch.rand(n, device=device, generator=generator) < 0.5
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # [N, H, W, C]
    if memory_format is None:
        memory_format = memory_format_of(x)
    # The gather produced NHWC memory: a channels-last result costs nothing, an NCHW one a copy.
    return out.permute(0, 3, 1, 2).contiguous(memory_format=memory_format)


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a 4-D tensor stored channels-last, else ``torch.contiguous_format``.

    A tensor whose layout is both (one channel, or 1x1 images) counts as contiguous.
    """
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format
