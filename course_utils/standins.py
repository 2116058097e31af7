"""Procedural stand-in data sets for when the real ones cannot be downloaded.

They are *not* CIFAR-10 or SVHN. They have the same tensor shapes and the same number
of classes, so every model and training loop in the course runs on them unchanged, and
they are learnable, so curves go down. Anything trained on them is labelled a stand-in.

Both generators are deterministic given ``seed`` and fully vectorised (50,000 images in
a few seconds on a CPU).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SHAPES10_CLASSES = [
    "disc",
    "ring",
    "square",
    "diamond",
    "triangle",
    "cross",
    "h-stripes",
    "v-stripes",
    "checker",
    "two-discs",
]


def _check_n(n: int) -> None:
    if not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"n must be a positive number of images, got {n!r}.")


def _random_colours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Foreground/background RGB pairs that always differ by a visible amount."""
    fg = rng.uniform(0, 1, size=(n, 3))
    bg = rng.uniform(0, 1, size=(n, 3))
    too_close = np.abs(fg - bg).sum(axis=1) < 0.9
    while too_close.any():
        bg[too_close] = rng.uniform(0, 1, size=(int(too_close.sum()), 3))
        too_close = np.abs(fg - bg).sum(axis=1) < 0.9
    return fg, bg


def make_shapes10(n: int, seed: int = 0, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A CIFAR-10-shaped stand-in: ``n`` RGB images of ten shape/texture classes.

    Returns ``images`` (uint8, ``[n, 3, size, size]``) and ``labels`` (int64, ``[n]``).
    Each image has a random position, scale, rotation, foreground and background colour,
    a background gradient and pixel noise, so colour alone never gives the class away.
    """
    _check_n(n)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n)
    f32 = np.float32
    coords = ((np.arange(size) + 0.5) / size * 2 - 1).astype(f32)  # pixel centres in [-1, 1]
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    cx = rng.uniform(-0.3, 0.3, (n, 1, 1)).astype(f32)
    cy = rng.uniform(-0.3, 0.3, (n, 1, 1)).astype(f32)
    radius = rng.uniform(0.35, 0.6, (n, 1, 1)).astype(f32)
    jitter = rng.uniform(-0.25, 0.25, (n, 1, 1)).astype(f32)  # small rotation, radians
    dx, dy = xx[None] - cx, yy[None] - cy
    u = dx * np.cos(jitter) + dy * np.sin(jitter)
    v = -dx * np.sin(jitter) + dy * np.cos(jitter)
    dist = np.sqrt(dx**2 + dy**2)
    period = rng.uniform(0.25, 0.45, (n, 1, 1)).astype(f32)
    width = radius * 0.3
    sdf = np.empty((n, size, size), dtype=f32)  # > 0 inside the shape
    for k in range(10):
        m = labels == k
        if not m.any():
            continue
        uk, vk, dk, rk, wk, pk = u[m], v[m], dist[m], radius[m], width[m], period[m]
        if k == 0:
            s = rk - dk
        elif k == 1:
            s = wk / 1.5 - np.abs(dk - rk * 0.8)
        elif k == 2:
            s = rk * 0.85 - np.maximum(np.abs(uk), np.abs(vk))
        elif k == 3:
            s = rk - (np.abs(uk) + np.abs(vk))
        elif k == 4:  # equilateral triangle, apex up: inside all three edges
            s = np.minimum.reduce(
                [rk * 0.5 - (np.cos(t) * uk + np.sin(t) * vk) for t in (np.pi / 2, -np.pi / 6, 7 * np.pi / 6)]
            )
        elif k == 5:
            s = np.maximum(np.minimum(wk - np.abs(uk), rk - np.abs(vk)), np.minimum(wk - np.abs(vk), rk - np.abs(uk)))
        elif k == 6:
            s = np.sin(2 * np.pi * vk / pk) * pk / (2 * np.pi)
        elif k == 7:
            s = np.sin(2 * np.pi * uk / pk) * pk / (2 * np.pi)
        elif k == 8:
            s = np.sin(2 * np.pi * uk / pk) * np.sin(2 * np.pi * vk / pk) * pk / (2 * np.pi)
        else:
            off = rk * 0.55
            s = np.maximum(rk * 0.45 - np.sqrt((uk - off) ** 2 + vk**2), rk * 0.45 - np.sqrt((uk + off) ** 2 + vk**2))
        sdf[m] = s
    mask = 1 / (1 + np.exp(np.clip(-sdf * size * 1.5, -30, 30)))  # anti-aliased edge about one pixel wide
    fg, bg = (c.astype(f32) for c in _random_colours(rng, n))
    grad_dir = rng.normal(size=(n, 2)).astype(f32)
    gradient = (grad_dir[:, 0, None, None] * xx + grad_dir[:, 1, None, None] * yy) * 0.08
    img = bg[:, :, None, None] * (1 - mask[:, None]) + fg[:, :, None, None] * mask[:, None]
    img = img + gradient[:, None] + rng.standard_normal(size=img.shape, dtype=f32) * f32(0.05)
    img = np.clip(img, 0, 1)
    return torch.from_numpy((img * 255).round().astype(np.uint8)), torch.from_numpy(labels.astype(np.int64))


def make_street_digits(
    digits: torch.Tensor, labels: torch.Tensor, n: int, seed: int = 0, size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """An SVHN-shaped stand-in built from real handwritten digits.

    ``digits`` are grey-scale digit images (``[m, 1, h, w]`` or ``[m, h, w]``, values in
    [0, 1] or 0..255) with their ``labels``. Each output image shows one digit, centred, at
    a random scale, with parts of two neighbouring digits at the left and right edge (as
    house numbers have), random colours and noise. Returns uint8 ``[n, 3, size, size]``
    images and the centre digit's int64 label.
    """
    _check_n(n)
    if digits.ndim == 3:
        digits = digits[:, None]
    if digits.ndim != 4 or digits.shape[1] != 1:
        raise ValueError(f"digits must have shape [m, 1, h, w] or [m, h, w], got {tuple(digits.shape)}.")
    if len(digits) != len(labels):
        raise ValueError(f"{len(digits)} digit images but {len(labels)} labels.")
    digits = digits.float()
    if digits.max() > 1.5:
        digits = digits / 255.0
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randint(len(digits), (n, 3), generator=gen)
    scale = torch.empty(n).uniform_(0.75, 1.0, generator=gen)
    shift = torch.empty(n, 2).uniform_(-0.08, 0.08, generator=gen)

    def place(src: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = 1 / scale
        theta[:, 1, 1] = 1 / scale
        theta[:, 0, 2] = -(shift[:, 0] + dx) / scale
        theta[:, 1, 2] = -shift[:, 1] / scale
        grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
        return F.grid_sample(src, grid, align_corners=False, padding_mode="zeros")

    centre = place(digits[pick[:, 0]], torch.zeros(n))
    left = place(digits[pick[:, 1]], -1.25 * scale)
    right = place(digits[pick[:, 2]], 1.25 * scale)
    mask = torch.maximum(centre, torch.maximum(left, right)).clamp(0, 1)
    rng = np.random.default_rng(seed)
    fg, bg = (torch.from_numpy(c).float() for c in _random_colours(rng, n))
    img = bg[:, :, None, None] * (1 - mask) + fg[:, :, None, None] * mask
    img = img + torch.randn(img.shape, generator=gen) * 0.04
    img = img.clamp(0, 1)
    return (img * 255).round().to(torch.uint8), labels[pick[:, 0]].long()
