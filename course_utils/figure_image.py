"""Show a matplotlib figure in a widget cheaply: one rasterisation, a fast PNG, an ``ipywidgets.Image``.

``display(fig)`` inside an ``Output`` widget (the usual way) costs far more than drawing the figure: the
inline backend saves with ``bbox_inches="tight"``, which renders the figure twice, encodes the PNG with full
zlib compression, sends it base64-encoded inside JSON, and the browser rebuilds the output area
(``clear_output`` then a new ``<img>``). :class:`FigureImage` renders once on the figure's own Agg canvas,
encodes with the fastest zlib level (the bytes travel over a local socket, size hardly matters) and updates
one ``ipywidgets.Image``, whose value travels as a binary buffer. Works in JupyterLab, Notebook 7 and Colab.

    view = FigureImage(fig)          # view.widget goes into the widget's layout
    view.update()                    # after changing the figure's artists
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["FigureImage", "figure_png"]


def _agg_canvas(fig: Figure) -> FigureCanvasAgg:
    """The figure's Agg canvas, attached first when the figure has none (e.g. after ``plt.close(fig)``)."""
    if type(fig.canvas) is FigureCanvasBase or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    return fig.canvas


def figure_png(fig: Figure, draw: bool = True, compress_level: int = 1) -> bytes:
    """PNG bytes of ``fig`` as it is on screen (its size and dpi, no cropping).

    ``draw=False`` encodes what the canvas already holds (a widget that blits its changing artists has drawn
    them itself). ``compress_level`` is zlib's (0-9): 1 is several times faster than the default 6.
    """
    from PIL import Image

    if not 0 <= compress_level <= 9:
        raise ValueError(f"compress_level must be between 0 and 9 (zlib's levels), got {compress_level}.")
    canvas = _agg_canvas(fig)
    if draw:
        canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="png", compress_level=compress_level)
    return buffer.getvalue()


class FigureImage:
    """An ``ipywidgets.Image`` that shows ``fig``; :meth:`update` re-renders it after the figure changed.

    Only an update whose PNG differs from the one on screen is sent (a control that did not change the picture
    costs the browser nothing).
    """

    def __init__(self, fig: Figure, **layout) -> None:
        import ipywidgets as w

        self.fig = fig
        self.widget = w.Image(format="png", layout=w.Layout(**layout))
        self.updates = 0  # images sent to the browser (tests use it to catch double redraws)
        self.update()

    def update(self, fig: Figure | None = None, draw: bool = True) -> None:
        """Render ``fig`` (default: the figure given at construction) and show it."""
        if fig is not None:
            self.fig = fig
        png = figure_png(self.fig, draw=draw)
        if png != self.widget.value:
            self.widget.value = png
            self.updates += 1
