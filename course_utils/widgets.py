"""Small helpers shared by the interactive widgets of the lectures."""
from __future__ import annotations

import time
from typing import Callable

import matplotlib.pyplot as plt


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
