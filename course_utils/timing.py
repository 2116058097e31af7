"""Timing: a lap stopwatch for training epochs, and what the lectures' widgets use to measure and limit redraws.

* :class:`Timer` records laps (``fit`` times every epoch with it).
* :func:`time_call` and :func:`render` measure what a widget redraw really costs.
* :func:`one_thread` runs tiny tensor code on one CPU thread, where threads cost more than they save.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import matplotlib.pyplot as plt
import torch


class Timer:
    """Stopwatch that records laps: ``t = Timer(); ...; t.stop()``; ``t.sum()``, ``t.avg()``."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.start()

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        self.times.append(time.perf_counter() - self._t0)
        return self.times[-1]

    def sum(self) -> float:
        return sum(self.times)

    def avg(self) -> float:
        return self.sum() / len(self.times) if self.times else 0.0


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock time of ``fn()`` in milliseconds (used to benchmark widget redraws)."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1.")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return times[len(times) // 2]


def render(fig: plt.Figure) -> None:
    """Rasterise ``fig`` without showing it: what a redraw really costs (Agg backend).

    A figure closed with ``plt.close`` keeps only a do-nothing base canvas, on which ``draw()``
    returns at once; give it a real Agg canvas first so the timing measures actual drawing.
    """
    from matplotlib.backend_bases import FigureCanvasBase
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if type(fig.canvas) is FigureCanvasBase:
        FigureCanvasAgg(fig)
    fig.canvas.draw()


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the enclosed tensor code on one CPU thread, then restore the previous setting.

    Widgets compute on tiny tensors, where starting and coordinating threads costs far more than
    the arithmetic (10-100x slower per step on a busy 2-core machine).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
