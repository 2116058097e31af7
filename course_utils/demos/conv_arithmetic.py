"""Convolution arithmetic (lecture L2): output-size rules and an interactive sliding-window figure.

The figure is drawn in the spirit of the well-known convolution-arithmetic animations: the
(padded) input grid on the left, the output grid on the right, the current window highlighted
on the input and the output cell it produces highlighted on the output.

Public helpers::

    conv_output_size(7, 3, s=2)             # -> 3
    conv_output_size(7, 3, s=3)             # ValueError that explains why and suggests a fix
    conv_output_size(7, 3, s=3, strict=False)   # -> 2, what PyTorch silently does (floor)
    conv_transpose_output_size(3, 3, s=2)   # -> 7
    ConvArithmetic(n=5, f=3, p=1, s=2).widget()
    frame_strip(5, 3, p=1, s=2)             # a static strip of frames (no live kernel needed)
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.patches import Rectangle

# The rules are checked and explained in course_utils.conv_rules; conv_output_size itself is the lecture's own
# cell (lectures/L02_convolution_arithmetic.ipynb, marked `# @save`, exported to course_utils.taught).
from ..conv_rules import check_conv_args as _check_conv_args
from ..conv_rules import check_int as _check_int
from ..conv_rules import effective_kernel_size, fit_explanation
from ..conv_rules import expression as _expression
from ..taught.l02_convolution_arithmetic import conv_output_size

__all__ = [
    "effective_kernel_size",
    "conv_output_size",
    "conv_transpose_output_size",
    "fit_explanation",
    "ConvArithmetic",
    "frame_strip",
    "benchmark_redraw",
]

# Colours (colour-blind friendly pairs from ColorBrewer "Paired").
_PAD = np.array([1.0, 1.0, 1.0])
_INPUT = np.array([0.651, 0.808, 0.890])  # light blue
_TAP = np.array([0.122, 0.471, 0.706])  # dark blue: input cells the window reads
_TAP_PAD = np.array([0.55, 0.70, 0.85])  # mid blue: padding (zero) cells the window reads
_DONE = np.array([0.698, 0.875, 0.541])  # light green: outputs already computed
_CURRENT = np.array([0.200, 0.627, 0.173])  # dark green: the output being computed
_TODO = np.array([0.94, 0.94, 0.94])  # grey: outputs still to compute
_UNVISITED = np.array([0.85, 0.20, 0.20])  # red: cells a rounded-down convolution never reads


def conv_transpose_output_size(n: int, f: int, p: int = 0, s: int = 1, d: int = 1, output_padding: int = 0) -> int:
    """Output size of a transposed convolution: ``(n - 1)s - 2p + d(f - 1) + output_padding + 1``.

    It inverts :func:`conv_output_size` shape-wise; ``output_padding`` (``< s`` or ``< d``) picks
    one of the several input sizes that a strided convolution maps to the same output size.
    """
    n, f, p, s, d = _check_conv_args(n, f, p, s, d)
    output_padding = _check_int("output_padding", output_padding, 0)
    if output_padding >= max(s, d):
        raise ValueError(
            f"output_padding must be smaller than the stride or the dilation "
            f"(here max({s}, {d}) = {max(s, d)}), got {output_padding}."
        )
    out = (n - 1) * s - 2 * p + d * (f - 1) + output_padding + 1
    if out < 1:
        raise ValueError(
            f"(n - 1)s - 2p + d(f - 1) + output_padding + 1 = {out}: the padding {p} crops away "
            "the whole output. Use a smaller padding."
        )
    return out


class ConvArithmetic:
    """One convolution along both axes of a square input, drawn as a grid picture.

    Parameters: input size ``n``, filter size ``f``, padding ``p``, stride ``s``, dilation ``d``
    and ``position``, the index (row-major) of the output cell being computed.
    """

    def __init__(
        self,
        n: int = 5,
        f: int = 3,
        p: int = 1,
        s: int = 2,
        d: int = 1,
        position: int = 0,
        figsize: tuple[float, float] = (6.4, 3.6),
    ):
        self.fig, self.ax = plt.subplots(figsize=figsize)
        plt.close(self.fig)  # shown explicitly (display / widget), never twice
        # plt.close() leaves the figure with a do-nothing base canvas; give it a real (Agg) one so that
        # fig.canvas.draw() really rasterises (what course_utils.render times in benchmark_redraw)
        FigureCanvasAgg(self.fig)
        self.params: dict[str, int] = {}
        self.set(n=n, f=f, p=p, s=s, d=d, position=position)

    # -- state ---------------------------------------------------------------------------------
    def set(self, **params: int) -> None:
        """Change any of ``n, f, p, s, d, position``; the position is clipped to the valid range."""
        unknown = set(params) - {"n", "f", "p", "s", "d", "position"}
        if unknown:
            raise ValueError(f"Unknown parameter(s) {sorted(unknown)}; use n, f, p, s, d or position.")
        merged = {**self.params, **params}
        for name, minimum in (("n", 1), ("f", 1), ("p", 0), ("s", 1), ("d", 1), ("position", 0)):
            merged[name] = _check_int(name, merged[name], minimum)
        self.params = merged
        self.explanation = fit_explanation(merged["n"], merged["f"], merged["p"], merged["s"], merged["d"])
        self.out = (
            None
            if self.explanation
            else conv_output_size(merged["n"], merged["f"], merged["p"], merged["s"], merged["d"])
        )
        if self.out is not None:
            self.params["position"] = min(merged["position"], self.out**2 - 1)

    @property
    def positions(self) -> int:
        """Number of window positions (output cells); 0 when the parameters do not fit."""
        return 0 if self.out is None else self.out**2

    def window_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns (in padded coordinates) that the current window reads."""
        p = self.params
        r, c = divmod(p["position"], self.out)
        taps = np.arange(p["f"]) * p["d"]
        return r * p["s"] + taps, c * p["s"] + taps

    # -- drawing -------------------------------------------------------------------------------
    def caption(self) -> tuple[str, str]:
        """``(headline, detail)``: the parameters, and the formula or the reason they do not fit."""
        p = self.params
        n, f, pad, s, d = p["n"], p["f"], p["p"], p["s"], p["d"]
        head = f"N={n}, F={f}, P={pad}, S={s}, dilation={d}"
        if d > 1:
            head += f", F_eff={effective_kernel_size(f, d)}"
        if self.out is None:
            return head + ": does not fit", self.explanation
        expr, _ = _expression(n, f, pad, s, d)
        return head, f"{expr}   (output cell {p['position'] + 1} of {self.out**2})"

    def draw(
        self, ax: plt.Axes | None = None, title: bool = True, fontsize: float = 9, text: bool = True
    ) -> plt.Figure:
        """Redraw the picture (onto ``ax`` if given, else onto this object's own figure).

        ``text=False`` leaves out the title and the explanation box (the widget shows them as HTML:
        rasterising text is most of the cost of a matplotlib redraw).
        """
        ax = ax or self.ax
        # Remove the previous picture's artists instead of ax.clear(), which rebuilds ticks and spines
        # and would cost most of the redraw time.
        for artist in [*ax.images, *ax.collections, *ax.patches, *ax.texts]:
            artist.remove()
        ax.set_axis_off()
        ax.set_aspect("equal")
        prm = self.params
        n, f, pad, s, d = prm["n"], prm["f"], prm["p"], prm["s"], prm["d"]
        npad = n + 2 * pad
        # input picture: padding white, input light blue, window taps dark blue
        img = np.empty((npad, npad, 3))
        img[:] = _PAD
        img[pad : pad + n, pad : pad + n] = _INPUT
        if self.out is not None:
            rows, cols = self.window_cells()
            inside_r = (rows >= pad) & (rows < pad + n)
            inside_c = (cols >= pad) & (cols < pad + n)
            img[np.ix_(rows, cols)] = _TAP_PAD
            img[np.ix_(rows[inside_r], cols[inside_c])] = _TAP
        else:
            k = effective_kernel_size(f, d)
            if k <= npad:  # tint red what a rounded-down (PyTorch) convolution never reads
                reach = ((npad - k) // s) * s + k
                img[reach:, :] = 0.45 * img[reach:, :] + 0.55 * _UNVISITED
                img[:reach, reach:] = 0.45 * img[:reach, reach:] + 0.55 * _UNVISITED
        # One QuadMesh per grid (cell colours and borders in one artist) rasterises much faster than
        # images plus line collections. The y axis points down, like matrix rows.
        edges = np.arange(npad + 1)
        ax.pcolormesh(edges, edges, img, edgecolors="0.6", linewidth=0.5)
        ax.add_patch(Rectangle((pad, pad), n, n, fill=False, edgecolor="black", linewidth=1.4))
        ax.text(
            npad / 2,
            npad + 0.45,
            f"input {n}x{n}" + (f", padding {pad}" if pad else ""),
            ha="center",
            va="top",
            fontsize=fontsize,
        )
        x0 = npad + 1.5
        if self.out is None:
            if effective_kernel_size(f, d) <= npad:
                ax.text(
                    npad / 2,
                    npad + 1.1,
                    "red: never visited",
                    ha="center",
                    va="top",
                    fontsize=fontsize - 1,
                    color="firebrick",
                )
            if text:
                ax.text(
                    x0,
                    npad / 2,
                    _wrap(self.explanation, 46),
                    ha="left",
                    va="center",
                    fontsize=fontsize,
                    color="firebrick",
                    bbox=dict(boxstyle="round", facecolor="mistyrose", edgecolor="firebrick"),
                )
            ax.set_xlim(-0.2, x0 + 13)
            ax.set_ylim(npad + 1.6, -0.3)
            ax.set_title(self.caption()[0] if title and text else "", fontsize=fontsize + 1)
            return ax.figure
        out = self.out
        k = prm["position"]
        y0 = (npad - out) / 2  # centre the output grid vertically next to the input
        oimg = np.empty((out * out, 3))
        oimg[:k] = _DONE
        oimg[k] = _CURRENT
        oimg[k + 1 :] = _TODO
        ax.pcolormesh(
            x0 + np.arange(out + 1),
            y0 + np.arange(out + 1),
            oimg.reshape(out, out, 3),
            edgecolors="black",
            linewidth=0.8,
        )
        ax.text(x0 + out / 2, y0 + out + 0.45, f"output {out}x{out}", ha="center", va="top", fontsize=fontsize)
        # the window's outline, and thin lines from its corners to the output cell it produces
        rows, cols = self.window_cells()
        r, c = divmod(k, out)
        wx0, wx1, wy0, wy1 = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
        ax.add_patch(Rectangle((wx0, wy0), wx1 - wx0, wy1 - wy0, fill=False, edgecolor=_TAP, linewidth=1.8))
        links = [[(wx1, wy0), (x0 + c, y0 + r)], [(wx1, wy1), (x0 + c, y0 + r + 1)]]
        ax.add_collection(LineCollection(links, colors=[_CURRENT], linewidths=0.8, alpha=0.7))
        ax.set_xlim(-0.2, x0 + out + 0.6)
        ax.set_ylim(npad + 1.6, -0.3)
        ax.set_title("\n".join(self.caption()) if title and text else "", fontsize=fontsize + 1)
        return ax.figure

    def widget(self):
        """Sliders for N, F, P, S, dilation and the window position, plus a Play button."""
        import html

        import ipywidgets as w

        from ..figure_image import FigureImage

        style = {"description_width": "70px"}
        p = self.params
        sliders = {
            "n": w.IntSlider(value=p["n"], min=1, max=10, description="input N", style=style),
            "f": w.IntSlider(value=p["f"], min=1, max=7, description="filter F", style=style),
            "p": w.IntSlider(value=p["p"], min=0, max=4, description="padding P", style=style),
            "s": w.IntSlider(value=p["s"], min=1, max=4, description="stride S", style=style),
            "d": w.IntSlider(value=p["d"], min=1, max=3, description="dilation", style=style),
        }
        position = w.IntSlider(
            value=p["position"], min=0, max=max(self.positions - 1, 0), description="position", style=style
        )
        play = w.Play(value=position.value, min=0, max=position.max, interval=600, description="slide the window")
        w.jslink((play, "value"), (position, "value"))
        caption = w.HTML()
        # The picture has no title (the caption above is HTML): let the axes fill the figure.
        self.fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.99)
        self.draw(text=False)
        view = FigureImage(self.fig)
        resetting = {"on": False}  # True while on_params moves the position slider itself

        def show() -> None:
            head, detail = self.caption()
            colour = "firebrick" if self.out is None else "black"
            caption.value = (
                f"<div style='font-family:sans-serif'><b>{html.escape(head)}</b><br>"
                f"<span style='color:{colour}'>{html.escape(detail)}</span></div>"
            )
            view.update(self.draw(text=False))

        def on_params(_=None) -> None:
            self.set(**{k: s.value for k, s in sliders.items()}, position=0)
            last = max(self.positions - 1, 0)
            resetting["on"] = True  # moving the position back to 0 must not draw a second picture
            try:
                position.max = play.max = last
                position.value = play.value = 0
                position.disabled = play.disabled = self.out is None
            finally:
                resetting["on"] = False
            show()

        def on_position(change) -> None:
            if self.out is not None and not resetting["on"]:
                self.set(position=change["new"])
                show()

        for s in sliders.values():
            s.observe(on_params, names="value")
        position.observe(on_position, names="value")
        show()
        box = w.VBox(
            [
                w.HBox([w.VBox(list(sliders.values())[:3]), w.VBox(list(sliders.values())[3:] + [position, play])]),
                caption,
                view.widget,
            ]
        )
        box.figure_view = view  # tests count its updates (one picture per slider move)
        return box


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def frame_strip(
    n: int, f: int, p: int = 0, s: int = 1, d: int = 1, frames: int | None = 4, ncols: int = 5, size: float = 2.6
) -> plt.Figure:
    """A static row of frames showing the window at ``frames`` evenly spaced positions.

    ``frames=None`` draws every position (``ncols`` frames per row). When the parameters do not fit, one frame shows the explanation.
    """
    demo = ConvArithmetic(n=n, f=f, p=p, s=s, d=d)
    if demo.out is None:
        fig, ax = plt.subplots(figsize=(2.2 * size, size))
        demo.draw(ax=ax)
        return fig
    total = demo.positions
    count = total if frames is None else max(1, min(frames, total))
    picks = np.unique(np.linspace(0, total - 1, count).round().astype(int))
    ncols = max(1, min(ncols, len(picks)))
    nrows = -(-len(picks) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * 0.85 * nrows + 0.3), squeeze=False)
    for ax in axes.flat[len(picks) :]:
        ax.set_axis_off()
    for ax, k in zip(axes.flat, picks):
        demo.set(position=int(k))
        demo.draw(ax=ax, title=False, fontsize=7)
        ax.set_title(f"output cell {k + 1} of {total}", fontsize=8)
    expr, _ = _expression(n, f, p, s, d)
    fig.suptitle(f"N={n}, F={f}, P={p}, S={s}, dilation={d}:  {expr}", fontsize=10)
    fig.tight_layout()
    return fig


def benchmark_redraw() -> float:
    """Median milliseconds of one redraw after a slider moves (new parameters, draw, rasterise)."""
    from ..timing import render, time_call

    demo = ConvArithmetic()
    settings = [
        dict(n=7, f=3, p=1, s=2, d=1, position=4),
        dict(n=6, f=3, p=0, s=1, d=2, position=3),
        dict(n=7, f=3, p=0, s=3, d=1, position=0),
        dict(n=5, f=3, p=1, s=2, d=1, position=8),
    ]
    state = {"i": 0}

    def update() -> None:  # what the widget does when a slider moves
        demo.set(**settings[state["i"] % len(settings)])
        state["i"] += 1
        demo.caption()
        render(demo.draw(text=False))

    return time_call(update, repeats=9)
