"""Plotting helpers: image grids, training curves, decision regions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch


def _to_numpy_image(img: torch.Tensor | np.ndarray) -> np.ndarray:
    arr = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
    if arr.ndim == 3 and arr.shape[0] in (1, 3):  # CHW -> HWC
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3):
        raise ValueError(f"An image must be [H, W], [C, H, W] or [H, W, C], got shape {arr.shape}.")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > 1:  # standardised or 0..255 data: rescale for display only
        arr = (arr - lo) / (hi - lo + 1e-12)
    return arr


def show_images(
    images: torch.Tensor | Sequence,
    labels: Sequence | torch.Tensor | None = None,
    classes: Sequence[str] | None = None,
    ncols: int = 8,
    title: str | None = None,
    size: float = 1.3,
    cmap: str = "gray",
) -> plt.Figure:
    """A grid of images with optional labels (class indices mapped through ``classes``)."""
    n = len(images)
    if n == 0:
        raise ValueError("show_images got no images.")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{n} images but {len(labels)} labels.")
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    row_height = size + (0.3 if labels is not None else 0.0)  # room for each row's titles
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, row_height * nrows + (0.4 if title else 0)), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(_to_numpy_image(images[i]), cmap=cmap, interpolation="nearest")
        if labels is not None:
            lab = int(labels[i]) if not isinstance(labels[i], str) else labels[i]
            ax.set_title(classes[lab] if classes is not None and isinstance(lab, int) else str(lab), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def draw_history(history, ax_loss: plt.Axes, ax_acc: plt.Axes) -> None:
    """Draw loss and accuracy curves of a :class:`~course_utils.training.History` onto two axes."""
    epochs = np.arange(1, history.epochs + 1)
    for ax in (ax_loss, ax_acc):
        ax.clear()
        ax.grid(alpha=0.3)
        ax.set_xlabel("epoch")
    ax_loss.plot(epochs, history.train_loss, "o-", label="train")
    if history.val_loss:
        ax_loss.plot(epochs, history.val_loss, "s--", label="validation")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_acc.plot(epochs, history.train_acc, "o-", label="train")
    if history.val_acc:
        ax_acc.plot(epochs, history.val_acc, "s--", label="validation")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0, 1.02)
    ax_acc.legend()


def plot_history(history, title: str = "") -> plt.Figure:
    """Figure with the loss and accuracy curves of a finished training run."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
    draw_history(history, ax_loss, ax_acc)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def decision_grid(
    X: torch.Tensor | np.ndarray, resolution: int = 150, margin: float = 0.25
) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """A grid of points covering the 2-D data: returns ``xx, yy`` and the points as a tensor."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"Decision regions need 2-D points of shape [n, 2], got {X.shape}.")
    lo, hi = X.min(axis=0) - margin, X.max(axis=0) + margin
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = torch.tensor(np.stack([xx.ravel(), yy.ravel()], axis=1), dtype=torch.float32)
    return xx, yy, grid


def plot_decision_regions(
    predict: Callable[[torch.Tensor], torch.Tensor],
    X,
    y,
    ax: plt.Axes | None = None,
    resolution: int = 150,
    title: str = "",
) -> plt.Axes:
    """Colour the plane by ``predict`` (which maps ``[m, 2]`` points to class ids) and scatter the data."""
    xx, yy, grid = decision_grid(X, resolution)
    with torch.no_grad():
        labels = np.asarray(predict(grid)).reshape(xx.shape)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    y = np.asarray(y)
    n_classes = int(max(labels.max(), y.max())) + 1
    cmap = plt.get_cmap("coolwarm" if n_classes == 2 else "viridis", n_classes)
    ax.contourf(xx, yy, labels, levels=np.arange(n_classes + 1) - 0.5, cmap=cmap, alpha=0.35)
    X = np.asarray(X)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, vmin=-0.5, vmax=n_classes - 0.5, s=12, edgecolors="k", linewidths=0.3)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 110) -> Path:
    """Save ``fig`` as PNG (creating folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
