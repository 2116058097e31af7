"""The first call of every notebook: :func:`setup_notebook` (seeds, record file, figure style, mode and device)."""

from __future__ import annotations

import matplotlib
import torch

from .config import mode_summary
from .device import describe_device, get_device, seed_everything
from .records import set_notebook


def _inline_figures_in_a_kernel() -> None:
    """In a Jupyter kernel, draw figures inline whatever MPLBACKEND says (a headless run sets Agg,
    under which ``plt.show()`` would silently draw nothing into the notebook)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        shell.run_line_magic("matplotlib", "inline")


def setup_notebook(name: str, seed: int = 0) -> torch.device:
    """First call of every notebook: seeds everything, names the record file, prints mode and device.

    Returns the device to use.
    """
    set_notebook(name)
    seed_everything(seed)
    device = get_device()
    _inline_figures_in_a_kernel()
    matplotlib.rcParams.update({"figure.dpi": 90, "axes.spines.top": False, "axes.spines.right": False})
    print(mode_summary())
    print(f"device: {describe_device(device)} | seed: {seed}")
    return device
