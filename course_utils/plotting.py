"""Plotting and display helpers: image grids, training curves (finished or live), decision regions.

How :func:`~course_utils.training.fit` shows a run in progress is decided here, by one rule
(:func:`live_display`): tqdm bars and curves redrawn in place only in a Jupyter kernel that a person
is watching; elsewhere, and in a fast-mode test or CI run, one plain line per epoch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
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


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where figures can be redrawn in place)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def quiet_test_run() -> bool:
    """True in a fast-mode run of the test-suite or CI: ``COURSE_FAST=1`` and either ``CI`` or
    ``COURSE_RECORD_DIR`` (which the test-suite sets for every run, nbval's kernels included) is set."""
    from .config import is_fast_mode

    return is_fast_mode() and bool(os.environ.get("CI") or os.environ.get("COURSE_RECORD_DIR"))


def live_display() -> bool:
    """Whether progress bars and live curves are shown: in a Jupyter kernel, except in a quiet test run.

    Under nbval the notebook runs in a real kernel too, so the kernel alone cannot tell that nobody is
    watching; :func:`quiet_test_run` does, and keeps executed notebooks in CI free of bars and extra figures.
    ``COURSE_LIVE_DISPLAY=1`` shows them in a kernel all the same (e.g. a browser test that wants to see
    what a student sees); ``COURSE_LIVE_DISPLAY=0`` never shows them (plain lines everywhere).
    """
    override = os.environ.get("COURSE_LIVE_DISPLAY", "").strip()
    if override in ("0", "1"):
        return override == "1" and in_notebook()
    return in_notebook() and not quiet_test_run()


class LivePlot:
    """Loss and accuracy curves that redraw in place in Jupyter (d2l's ``Animator`` idea).

    Draws only where :func:`live_display` allows (a notebook a person watches); elsewhere it does
    nothing: call :func:`plot_history` afterwards to get the figure.
    """

    def __init__(self, title: str = "", enabled: bool = True) -> None:
        self.enabled = enabled and live_display()
        self._handle = None
        if self.enabled:
            self.fig, (self.ax_loss, self.ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
            self.fig.suptitle(title)
            plt.close(self.fig)  # we display it ourselves, once, and then update in place

    def update(self, history) -> None:
        """Redraw the curves of a :class:`~course_utils.training.History` (no-op when disabled)."""
        if not self.enabled:
            return
        from IPython.display import Image, display

        from .figure_image import figure_png

        draw_history(history, self.ax_loss, self.ax_acc)
        if self._handle is None or history.epochs % 5 == 0:  # the layout hardly changes from epoch to epoch
            self.fig.tight_layout()
        # one render and a fast PNG (display(fig) renders twice for bbox_inches="tight" and compresses hard):
        # the curves cost the training little even with short epochs
        image = Image(data=figure_png(self.fig), format="png")
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)


def epoch_line(history, epochs: int) -> str:
    """The plain progress line of the latest epoch, e.g.
    ``epoch 3/10 | train loss 0.4120, acc 87.50% | val loss 0.3981, acc 88.10% | 1.2 s, 5,120 img/s``."""
    i = history.epochs
    parts = [f"epoch {i}/{epochs}", f"train loss {history.train_loss[-1]:.4f}, acc {history.train_acc[-1]:.2%}"]
    if history.val_loss:
        parts.append(f"val loss {history.val_loss[-1]:.4f}, acc {history.val_acc[-1]:.2%}")
    parts.append(f"{history.epoch_time[-1]:.1f} s, {history.images_per_s[-1]:,.0f} img/s")
    return " | ".join(parts)


class TrainingProgress:
    """What :func:`~course_utils.training.fit` shows while it trains.

    ``progress=True``: where :func:`live_display` holds, tqdm.auto bars (epochs, and batches within
    the epoch); elsewhere one plain :func:`epoch_line` per epoch (no bars, escape sequences or carriage
    returns: readable in a terminal, a log file or CI). ``progress=False``: nothing.
    ``live_plot=True``: the curves redrawn in place after every epoch (:class:`LivePlot`, same rule).
    """

    def __init__(self, epochs: int, *, progress: bool = True, live_plot: bool = True, title: str = "") -> None:
        self.total = epochs
        self.lines = progress and not live_display()
        self.bars = progress and not self.lines
        self.plot = LivePlot(title, enabled=live_plot)
        self._epoch_bar = None

    def epochs(self) -> Iterable[int]:
        """``range(epochs)``, wrapped in a bar when bars are shown."""
        if not self.bars:
            return range(self.total)
        from tqdm.auto import tqdm

        self._epoch_bar = tqdm(range(self.total), desc="epochs", leave=True)
        return self._epoch_bar

    def batches(self, batches: Iterator, n_batches: int, epoch: int) -> Iterator:
        """The epoch's batches, wrapped in a bar (removed when the epoch ends) when bars are shown."""
        if not self.bars:
            return batches
        from tqdm.auto import tqdm

        return tqdm(batches, total=n_batches, desc=f"epoch {epoch + 1}", leave=False)

    def update(self, history) -> None:
        """Report the epoch just finished: the bar's postfix or a printed line, and the live curves."""
        if self._epoch_bar is not None:
            postfix = {"loss": f"{history.train_loss[-1]:.4f}"}
            if history.val_acc:
                postfix["val_acc"] = f"{history.val_acc[-1]:.3f}"
            self._epoch_bar.set_postfix(postfix)
        elif self.lines:
            print(epoch_line(history, self.total), flush=True)
        self.plot.update(history)


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
