"""Initialisation explorer (lecture L3): how the weight scale shapes the signal in a deep network.

Pick a depth, a width (constant, or a funnel that narrows with depth), an activation and an
initialisation scheme. The explorer pushes a batch of standard-normal inputs through a stack of
bias-free fully connected layers, back-propagates a standard-normal gradient from the top, and draws

* the standard deviation of the activations ``h_l`` and of the back-propagated gradients
  ``dL/dz_l`` per layer (log scale), and
* one histogram per layer, for activations and for gradients, drawn as a colour column each.

Only the weight scale changes between schemes: every scheme rescales the *same* random numbers, so
what you see is the effect of the scale and nothing else. (The PyTorch default is the one uniform
scheme and the one with a random bias, as in ``nn.Linear``.)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator
from matplotlib.transforms import Bbox

from ..timing import one_thread

__all__ = [
    "ACTIVATIONS",
    "SCHEMES",
    "SHAPES",
    "InitExplorer",
    "Propagation",
    "benchmark_redraw",
    "init_std",
    "layer_histograms",
    "layer_widths",
    "propagate",
]

ACTIVATIONS = ("linear", "tanh", "relu", "sigmoid")
SHAPES = ("constant", "funnel")
# key -> label shown in the menu
SCHEMES = {
    "small": "small: N(0, 0.01²)",
    "lecun": "LeCun: Var = 1/n_in",
    "xavier": "Xavier: Var = 2/(n_in+n_out)",
    "he_in": "He fan_in: Var = 2/n_in",
    "he_out": "He fan_out: Var = 2/n_out",
    "pytorch": "PyTorch default: U(±1/√n_in), random bias",
    "large": "large: N(0, 0.2²)",
}
MAX_DEPTH = 30
MAX_WIDTH = 512
MIN_WIDTH = 8
BATCH = 128
BINS = 41


def _check_choice(name: str, value: str, options) -> None:
    if value not in options:
        raise ValueError(f"Unknown {name} {value!r}; choose one of: {', '.join(options)}.")


def init_std(scheme: str, fan_in: int, fan_out: int) -> float:
    """Standard deviation of the weights that ``scheme`` gives a layer with these fans.

    For ``"pytorch"`` this is the std of the uniform distribution U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    i.e. sqrt(1 / (3 fan_in)).
    """
    _check_choice("init scheme", scheme, SCHEMES)
    if not (isinstance(fan_in, int) and isinstance(fan_out, int)) or fan_in < 1 or fan_out < 1:
        raise ValueError(f"fan_in and fan_out must be positive integers, got {fan_in!r} and {fan_out!r}.")
    variance = {
        "small": 0.01**2,
        "lecun": 1 / fan_in,
        "xavier": 2 / (fan_in + fan_out),
        "he_in": 2 / fan_in,
        "he_out": 2 / fan_out,
        "pytorch": 1 / (3 * fan_in),
        "large": 0.2**2,
    }[scheme]
    return math.sqrt(variance)


def layer_widths(depth: int, width: int, shape: str = "constant") -> list[int]:
    """Sizes ``[n_0, n_1, ..., n_depth]`` of the input and of every layer's output.

    ``"constant"``: every size is ``width``. ``"funnel"``: sizes shrink geometrically from
    ``width`` to ``width / 8`` (at least 8), so fan_in > fan_out in every layer.
    """
    _check_choice("shape", shape, SHAPES)
    if not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be an integer from 1 to {MAX_DEPTH}, got {depth!r}.")
    if not isinstance(width, int) or not MIN_WIDTH <= width <= MAX_WIDTH:
        raise ValueError(f"width must be an integer from {MIN_WIDTH} to {MAX_WIDTH}, got {width!r}.")
    if shape == "constant":
        return [width] * (depth + 1)
    return [max(MIN_WIDTH, round(width * 8.0 ** (-layer / depth))) for layer in range(depth + 1)]


@dataclass
class Propagation:
    """What one forward and backward pass through the stack produced."""

    widths: list[int]
    activations: list[torch.Tensor]  # h_1 ... h_L, each [batch, n_l]
    grads: list[torch.Tensor]  # dL/dz_1 ... dL/dz_L, each [batch, n_l]
    weights: list[torch.Tensor]  # W_1 ... W_L, each [n_l, n_(l-1)]
    biases: list[torch.Tensor | None]
    inputs: torch.Tensor  # x = h_0, [batch, n_0]
    output_grad: torch.Tensor  # g = dL/dh_L, [batch, n_L]; the loss is L = sum(h_L * g)

    @property
    def act_std(self) -> list[float]:
        return [float(h.std()) for h in self.activations]

    @property
    def grad_std(self) -> list[float]:
        return [float(g.std()) for g in self.grads]


class _RandomBank:
    """Standard-normal numbers drawn once; each layer's weights are a rescaled corner of them."""

    def __init__(self, depth: int, width: int, batch: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.weights = torch.randn(depth, width, width, generator=gen)
        self.bias = torch.randn(depth, width, generator=gen)
        self.x = torch.randn(batch, width, generator=gen)
        self.g = torch.randn(batch, width, generator=gen)
        self.depth, self.width = depth, width


_ACT = {
    "linear": (lambda z: z, lambda z, h: torch.ones_like(z)),
    "tanh": (torch.tanh, lambda z, h: 1 - h * h),
    "relu": (torch.relu, lambda z, h: (z > 0).to(z.dtype)),
    "sigmoid": (torch.sigmoid, lambda z, h: h * (1 - h)),
}


def _run(bank: _RandomBank, depth: int, widths: list[int], activation: str, scheme: str) -> Propagation:
    """Forward and manual backward pass (checked against autograd in the tests and in L3)."""
    act, act_grad = _ACT[activation]
    uniform = scheme == "pytorch"
    weights, biases = [], []
    for layer in range(depth):
        n_in, n_out = widths[layer], widths[layer + 1]
        base = bank.weights[layer, :n_out, :n_in]
        std = init_std(scheme, n_in, n_out)
        if uniform:  # erf(z / sqrt 2) turns N(0, 1) into U(-1, 1) exactly; its std is 1/sqrt(3)
            bound = 1 / math.sqrt(n_in)
            weights.append(torch.erf(base / math.sqrt(2)) * bound)
            biases.append(torch.erf(bank.bias[layer, :n_out] / math.sqrt(2)) * bound)
        else:
            weights.append(base * std)
            biases.append(None)
    h = bank.x[:, : widths[0]]
    zs, hs = [], []
    for W, b in zip(weights, biases):
        z = h @ W.T
        if b is not None:
            z = z + b
        h = act(z)
        zs.append(z)
        hs.append(h)
    grad_h = bank.g[:, : widths[-1]]  # L = sum(h_L * g)  =>  dL/dh_L = g
    grads = [torch.empty(0)] * depth
    for layer in range(depth - 1, -1, -1):
        delta = grad_h * act_grad(zs[layer], hs[layer])
        grads[layer] = delta
        grad_h = delta @ weights[layer]
    return Propagation(
        widths=widths,
        activations=hs,
        grads=grads,
        weights=weights,
        biases=biases,
        inputs=bank.x[:, : widths[0]],
        output_grad=bank.g[:, : widths[-1]],
    )


def propagate(
    depth: int = 10,
    width: int = 256,
    activation: str = "tanh",
    scheme: str = "xavier",
    shape: str = "constant",
    batch: int = BATCH,
    seed: int = 0,
) -> Propagation:
    """One forward pass of ``batch`` standard-normal inputs and one backward pass of a
    standard-normal output gradient through ``depth`` bias-free layers (PyTorch default: with bias).
    """
    _check_choice("activation", activation, ACTIVATIONS)
    _check_choice("init scheme", scheme, SCHEMES)
    widths = layer_widths(depth, width, shape)
    if not isinstance(batch, int) or batch < 2:
        raise ValueError(f"batch must be an integer >= 2 (a std needs two samples), got {batch!r}.")
    bank = _RandomBank(depth, max(widths), batch, seed)
    with one_thread():
        return _run(bank, depth, widths, activation, scheme)


def layer_histograms(values: list[torch.Tensor], lo: float, hi: float) -> np.ndarray:
    """[BINS, layers]: one histogram per layer, scaled so that each column's tallest bin is 1.

    Exact zeros (the inactive half of a ReLU layer, and their zero gradients) are left out, so the
    shape of the rest stays visible; values outside [lo, hi] pile up in the edge bins.
    """
    if not lo < hi:
        raise ValueError(f"The histogram range needs lo < hi, got lo={lo}, hi={hi}.")
    if not values:
        raise ValueError("layer_histograms needs a non-empty list of tensors (one per layer).")
    # Leaving the zeros out by boolean indexing copies every tensor; it is cheaper to histogram
    # everything and take the zeros back out of the one bin that histc puts 0 into (same counts).
    zero_bin = torch.histc(torch.zeros(1).clamp(lo, hi), bins=BINS, min=lo, max=hi)
    cols = []
    for v in values:
        counts = torch.histc(v.clamp(lo, hi), bins=BINS, min=lo, max=hi) if v.numel() else torch.zeros(BINS)
        cols.append(counts - (v == 0).sum() * zero_bin)
    counts = torch.stack(cols, dim=1)
    return (counts / counts.amax(dim=0).clamp_min(1)).numpy()


@contextmanager
def _shown(artist: Artist) -> Iterator[None]:
    """Make a normally hidden artist visible for the duration of the block."""
    artist.set_visible(True)
    try:
        yield
    finally:
        artist.set_visible(False)


class _StaticTextLayer(Artist):
    """Text that never changes (panel titles, axis labels, the legend), rasterised once and pasted.

    Glyph layout and rendering are most of the cost of an Agg redraw. These artists are hidden
    from their usual parents and drawn by this layer instead, above the axes: on an Agg renderer
    of a size, dpi and figure placement seen before, it pastes the pixels it rendered the first
    time (the same artists, drawn on a transparent buffer, so lines behind the legend still show
    through its frame as before); on any other renderer (PDF, SVG, a new size) it draws them afresh.
    """

    def __init__(self, artists) -> None:
        super().__init__()
        self._artists = list(artists)
        for artist in self._artists:
            artist.set_visible(False)
        self._cache: dict[tuple, list] = {}
        self.set_zorder(10)  # after the axes (zorder 0)

    def _draw_artists(self, renderer) -> None:
        for artist in self._artists:
            with _shown(artist):
                artist.draw(renderer)

    def get_tightbbox(self, renderer=None):
        """The union of the cached artists' boxes (so that bbox_inches="tight" keeps them)."""
        boxes = []
        for artist in self._artists:
            with _shown(artist):
                box = artist.get_tightbbox(renderer)
            if box is not None and box.width and box.height:
                boxes.append(box)
        return Bbox.union(boxes) if boxes else None

    def draw(self, renderer) -> None:
        if not self.get_visible():
            return
        if not isinstance(renderer, RendererAgg):
            self._draw_artists(renderer)
            return
        width, height = int(renderer.width), int(renderer.height)
        # where the figure lies on this canvas (savefig(bbox_inches="tight") crops and shifts it)
        corners = self.figure.transFigure.transform([(0, 0), (1, 1)]).round(2)
        key = (width, height, renderer.dpi, tuple(corners.ravel()))
        if key not in self._cache:
            layer = RendererAgg(width, height, renderer.dpi)
            self._draw_artists(layer)
            pixels = np.asarray(layer.buffer_rgba())
            patches = []
            for artist in self._artists:
                with _shown(artist):
                    box = artist.get_window_extent(layer)
                x0, y0 = max(int(box.x0) - 2, 0), max(int(box.y0) - 2, 0)
                x1, y1 = min(int(math.ceil(box.x1)) + 2, width), min(int(math.ceil(box.y1)) + 2, height)
                if x1 > x0 and y1 > y0:  # the buffer's rows run top-down, draw_image wants them bottom-up
                    patches.append((x0, y0, pixels[height - y1 : height - y0, x0:x1][::-1].copy()))
            self._cache[key] = patches
        gc = renderer.new_gc()
        for x0, y0, patch in self._cache[key]:
            renderer.draw_image(gc, x0, y0, patch)
        gc.restore()


def _drawable(stds: np.ndarray) -> np.ndarray:
    """Standard deviations for a log axis: zeros (underflow) and non-finite values become gaps (nan)."""
    stds = np.asarray(stds, dtype=float)
    return np.where(np.isfinite(stds) & (stds > 0), stds, np.nan)


def _change(stds: np.ndarray, layers: np.ndarray) -> str:
    """How a std changes along ``layers`` (in the order the signal travels), in words where a ratio would lie."""
    stds = np.asarray(stds, dtype=float)
    bad = np.flatnonzero(~np.isfinite(stds))
    if len(bad):
        return f"overflow to inf/nan at layer {layers[bad[0]]}"
    zero = np.flatnonzero(stds == 0)
    if len(zero):
        return f"underflow to 0 at layer {layers[zero[0]]}"
    return f"×{stds[-1] / stds[0]:.2g}"


class InitExplorer:
    """The figure behind the L3 widget; ``update(...)`` recomputes, ``draw()`` redraws in place."""

    def __init__(
        self,
        depth: int = 10,
        width: int = 256,
        activation: str = "tanh",
        scheme: str = "xavier",
        shape: str = "constant",
        seed: int = 0,
    ) -> None:
        self._bank = _RandomBank(MAX_DEPTH, MAX_WIDTH, BATCH, seed)
        # A Figure outside pyplot: nothing to close, and it keeps its Agg canvas (a figure closed with
        # plt.close falls back to a canvas that does not draw, which would make redraw timings meaningless).
        self.fig = Figure(figsize=(11, 3.5))
        FigureCanvasAgg(self.fig)
        axes = self.fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.1, 1, 1]})
        self.ax_std, self.ax_act, self.ax_grad = axes
        self._build_axes()
        self.update(depth=depth, width=width, activation=activation, scheme=scheme, shape=shape)

    def _build_axes(self) -> None:
        # Text is most of the cost of a redraw, so: few ticks, no minor ticks, and titles and axis labels
        # at fixed positions (matplotlib otherwise measures every tick label to place them).
        ax = self.ax_std
        (self._line_act,) = ax.plot([], [], "o-", ms=3, color="C0", label="activations $h_l$")
        (self._line_grad,) = ax.plot([], [], "s-", ms=3, color="C3", label=r"gradients $\partial L/\partial z_l$")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(numticks=4))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_ylabel("standard deviation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
        self._std_title = ax.set_title("", fontsize=9, y=1.0)
        norm = PowerNorm(gamma=0.4, vmin=0, vmax=1)
        blank = np.zeros((BINS, 2))
        self._img_act = self.ax_act.imshow(
            blank, aspect="auto", origin="lower", cmap="magma", norm=norm, interpolation="nearest"
        )
        self._img_grad = self.ax_grad.imshow(
            blank, aspect="auto", origin="lower", cmap="magma", norm=norm, interpolation="nearest"
        )
        self.ax_act.set_title("activations: one histogram per layer", fontsize=9, y=1.0)
        self.ax_grad.set_title("gradients (they flow right to left)", fontsize=9, y=1.0)
        self.ax_act.set_ylabel("value")
        for axis in (self.ax_std, self.ax_act, self.ax_grad):
            axis.xaxis.set_major_locator(MaxNLocator(4, integer=True))
            axis.yaxis.set_label_coords(-0.13, 0.5)
        for axis in (self.ax_act, self.ax_grad):
            axis.yaxis.set_major_locator(MaxNLocator(4))
        self.fig.subplots_adjust(left=0.07, right=0.99, bottom=0.14, top=0.84, wspace=0.25)
        x_label = self.fig.text(0.5, 0.02, "layer", ha="center", fontsize=10)  # one x label for all panels
        self._suptitle = self.fig.suptitle("", fontsize=10)
        # Static text (fixed positions, see above) is rasterised once; the dynamic titles, ticks and
        # tick labels are drawn afresh on every redraw.
        static = [
            self.ax_act.title,
            self.ax_grad.title,
            self.ax_std.yaxis.label,
            self.ax_act.yaxis.label,
            self.ax_std.get_legend(),
            x_label,
        ]
        self.fig.add_artist(_StaticTextLayer(static))

    def update(self, *, depth: int, width: int, activation: str, scheme: str, shape: str = "constant") -> Propagation:
        """Recompute the forward and backward pass for new settings (no drawing)."""
        _check_choice("activation", activation, ACTIVATIONS)
        _check_choice("init scheme", scheme, SCHEMES)
        widths = layer_widths(depth, width, shape)
        self.params = dict(depth=depth, width=width, activation=activation, scheme=scheme, shape=shape)
        with one_thread():
            self.result = _run(self._bank, depth, widths, activation, scheme)
        return self.result

    def _ranges(self) -> tuple[tuple[float, float], tuple[float, float]]:
        act = self.params["activation"]
        first = self.result.activations[0]
        scale = 4 * float(first.pow(2).mean().sqrt()) or 1.0
        act_range = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "relu": (0.0, scale)}.get(act, (-scale, scale))
        g = 4 * float(self.result.grads[-1].std()) or 1.0
        return act_range, (-g, g)

    def draw(self) -> Figure:
        """Redraw the three panels for the current settings and return the figure."""
        r = self.result
        depth = len(r.activations)
        layers = np.arange(1, depth + 1)
        with one_thread():
            act_std = np.array(r.act_std, dtype=float)
            grad_std = np.array(r.grad_std, dtype=float)
            (a_lo, a_hi), (g_lo, g_hi) = self._ranges()
            hist_act = layer_histograms(r.activations, a_lo, a_hi)
            hist_grad = layer_histograms(r.grads, g_lo, g_hi)
        # A std that underflowed to exactly 0 (or overflowed) has no place on a log axis: leave a gap
        # there and say so in the title, instead of drawing a made-up plateau.
        self._line_act.set_data(layers, _drawable(act_std))
        self._line_grad.set_data(layers, _drawable(grad_std))
        ax = self.ax_std
        both = _drawable(np.concatenate([act_std, grad_std]))
        lo, hi = (np.nanmin(both), np.nanmax(both)) if np.isfinite(both).any() else (1.0, 1.0)
        ax.set_xlim(0.5, depth + 0.5)
        ax.set_ylim(min(lo / 3, 0.1), max(hi * 3, 10))
        for img, axis, values, (v_lo, v_hi) in (
            (self._img_act, self.ax_act, hist_act, (a_lo, a_hi)),
            (self._img_grad, self.ax_grad, hist_grad, (g_lo, g_hi)),
        ):
            img.set_data(values)
            img.set_extent((0.5, depth + 0.5, v_lo, v_hi))
            axis.set_xlim(0.5, depth + 0.5)
            axis.set_ylim(v_lo, v_hi)
        p = self.params
        widths = r.widths
        width_txt = f"width {widths[0]}" if p["shape"] == "constant" else f"widths {widths[0]}→{widths[-1]}"
        act_change, grad_change = _change(act_std, layers), _change(grad_std[::-1], layers[::-1])
        joiner = ", " if len(act_change) + len(grad_change) < 30 else "\n"  # long verdicts: one per line
        self._std_title.set_text(f"activations {act_change}{joiner}gradients {grad_change}")
        self._suptitle.set_text(f"{p['depth']} layers, {width_txt}, {p['activation']}, {SCHEMES[p['scheme']]}")
        return self.fig

    def widget(self):
        """ipywidgets controls (depth, width, shape, activation, init scheme) and the live figure."""
        import ipywidgets as w

        from ..figure_image import FigureImage

        style = {"description_width": "80px"}
        p = self.params
        controls = {
            "depth": w.IntSlider(value=p["depth"], min=1, max=MAX_DEPTH, description="depth", style=style),
            "width": w.IntSlider(
                value=p["width"], min=MIN_WIDTH, max=MAX_WIDTH, step=8, description="width", style=style
            ),
            "shape": w.Dropdown(options=SHAPES, value=p["shape"], description="widths", style=style),
            "activation": w.Dropdown(options=ACTIVATIONS, value=p["activation"], description="activation", style=style),
            "scheme": w.Dropdown(
                options=[(label, key) for key, label in SCHEMES.items()],
                value=p["scheme"],
                description="init",
                style=style,
                layout=w.Layout(width="360px"),
            ),
        }
        # This figure lives outside pyplot: FigureImage renders it on its own canvas, once, as a fast PNG.
        view = FigureImage(self.draw())

        def show() -> None:
            view.update(self.draw())

        def on_change(_=None) -> None:
            self.update(**{k: c.value for k, c in controls.items()})
            show()

        for c in controls.values():
            c.observe(on_change, names="value")
        show()
        items = list(controls.values())
        return w.VBox([w.HBox([w.VBox(items[:3]), w.VBox(items[3:])]), view.widget])


def benchmark_redraw() -> float:
    """Median milliseconds of one redraw after a control changes (recompute + rasterise).

    Each timed call changes one control (scheme, activation, depth or width, in turn) at the
    default size (10 layers of 256 units) and redraws.
    """
    from ..timing import render, time_call

    explorer = InitExplorer()
    states = [
        dict(scheme="he_in", activation="relu", depth=10, width=256),
        dict(scheme="small", activation="relu", depth=10, width=256),
        dict(scheme="small", activation="tanh", depth=10, width=256),
        dict(scheme="xavier", activation="tanh", depth=12, width=256),
        dict(scheme="xavier", activation="tanh", depth=10, width=200),
    ]
    step = [0]

    def update() -> None:
        explorer.update(**states[step[0] % len(states)])
        step[0] += 1
        render(explorer.draw())

    return time_call(update, repeats=9, warmup=2)
