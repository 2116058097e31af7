"""Two-dimensional toy data sets (XOR, circles, moons, spirals) for the decision-region pictures of the
early lectures and the L00 playground: small, made up on purpose, and deterministic given ``seed``."""

from __future__ import annotations

import numpy as np
import torch


def make_toy_2d(name: str, n: int = 400, noise: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-dimensional binary (or, for ``spirals3``, three-class) toy data sets.

    ``name`` is one of ``xor``, ``circles``, ``moons``, ``spirals`` (two arms) or
    ``spirals3`` (three arms). Returns ``X`` (float32 ``[n, 2]``, roughly in [-1, 1]) and
    ``y`` (int64 ``[n]``).
    """
    if not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"n must be a positive number of points, got {n!r}.")
    rng = np.random.default_rng(seed)
    if name == "xor":
        X = rng.uniform(-1, 1, size=(n, 2))
        y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
        X = X + rng.normal(0, noise * 0.5, size=X.shape)
    elif name == "circles":
        from sklearn.datasets import make_circles

        X, y = make_circles(n_samples=n, noise=noise * 0.5, factor=0.45, random_state=seed)
    elif name == "moons":
        from sklearn.datasets import make_moons

        X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
        X = (X - np.array([0.5, 0.25])) / 1.2
    elif name in ("spirals", "spirals3"):
        k = 2 if name == "spirals" else 3
        y = np.arange(n) % k
        t = rng.uniform(0.05, 1, size=n)
        angle = t * 3.5 * np.pi + y * 2 * np.pi / k
        X = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
        X = X + rng.normal(0, noise * 0.5, size=X.shape) * t[:, None]
    else:
        raise ValueError(f"Unknown toy data set {name!r}; choose one of xor, circles, moons, spirals, spirals3.")
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)
