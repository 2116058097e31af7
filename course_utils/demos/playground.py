"""A small "neural network playground" for 2-D toy data (used in lecture L0).

Pick a data set, depth, width, activation and learning rate; train a multilayer perceptron
live and watch its decision region change.

Speed matters for a widget that redraws while it trains, so the figure is drawn the way an
animation would be: the static parts (axes, labels, ticks) are rasterised once and cached,
and a redraw only paints the four artists that change (the probability image, the data
points, the title and the loss curve) on top of the cached background, then encodes the
pixels as a PNG for an ``ipywidgets.Image``. A full redraw happens only when the layout
changes (the loss axis needs new limits, or the data needs a different view).
"""

from __future__ import annotations

import asyncio
import importlib
import io
import math
import threading

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from ..timing import one_thread
from ..toy_data import make_toy_2d

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
}
TOY_DATASETS = ("xor", "circles", "moons", "spirals")
_NICE_STEPS = (100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000)


def make_mlp(in_features: int, out_features: int, depth: int, width: int, activation: str) -> nn.Sequential:
    """An MLP with ``depth`` hidden layers of ``width`` units (``depth=0``: a linear classifier)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}.")
    for name, value in (
        ("in_features", in_features),
        ("out_features", out_features),
        ("depth", depth),
        ("width", width),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__}).")
    if depth < 0 or width < 1:
        raise ValueError(f"depth must be >= 0 and width >= 1, got depth={depth}, width={width}.")
    if in_features < 1 or out_features < 1:
        raise ValueError(f"in_features and out_features must be >= 1, got {in_features} and {out_features}.")
    layers: list[nn.Module] = []
    size = in_features
    for _ in range(depth):
        layers += [nn.Linear(size, width), ACTIVATIONS[activation]()]
        size = width
    layers.append(nn.Linear(size, out_features))
    return nn.Sequential(*layers)


def _class_colours(k: int) -> np.ndarray:
    """RGB colours of the ``k`` classes (blue/red for two classes, tab10 otherwise)."""
    if k == 2:
        cmap = plt.get_cmap("coolwarm")
        return np.array([cmap(0.0)[:3], cmap(1.0)[:3]])
    return (
        np.array(plt.get_cmap("tab10").colors[:k]) if k <= 10 else plt.get_cmap("viridis")(np.linspace(0, 1, k))[:, :3]
    )


class Playground:
    """Train an MLP on 2-D toy data and draw its decision region.

    >>> pg = Playground("xor", depth=1, width=8, activation="tanh")   # doctest: +SKIP
    >>> pg.train(300); pg.accuracy()                                 # doctest: +SKIP
    >>> pg.draw()          # the figure (shown by Jupyter)            # doctest: +SKIP
    >>> pg.widget()        # live controls (needs a running kernel)   # doctest: +SKIP
    """

    def __init__(
        self,
        dataset: str = "xor",
        depth: int = 1,
        width: int = 8,
        activation: str = "tanh",
        lr: float = 0.03,
        n: int = 300,
        noise: float = 0.15,
        seed: int = 0,
        resolution: int = 90,
    ):
        if not isinstance(resolution, (int, np.integer)) or not 10 <= resolution <= 400:
            raise ValueError(f"resolution (grid points per side) must be an int in [10, 400], got {resolution!r}.")
        self.resolution = int(resolution)
        # A figure outside pyplot with its own Agg canvas: nothing is shown twice, and the canvas
        # really rasterises (a closed pyplot figure gets a canvas whose draw() does nothing).
        self.fig = Figure(figsize=(8, 3.6), dpi=90)
        FigureCanvasAgg(self.fig)
        self.ax_region, self.ax_loss = self.fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.1]})
        self.fig.subplots_adjust(left=0.02, right=0.97, bottom=0.15, top=0.84, wspace=0.2)
        self._build_artists()
        self._background = None
        self._layout: tuple | None = None
        self.reset(dataset=dataset, depth=depth, width=width, activation=activation, lr=lr, n=n, noise=noise, seed=seed)

    # ------------------------------------------------------------------ model and data
    def reset(
        self,
        *,
        dataset: str,
        depth: int,
        width: int,
        activation: str,
        lr: float,
        n: int = 300,
        noise: float = 0.15,
        seed: int = 0,
    ) -> None:
        """Build new data and a freshly initialised model."""
        if dataset not in TOY_DATASETS:
            raise ValueError(f"Unknown toy data set {dataset!r}; choose one of {', '.join(TOY_DATASETS)}.")
        if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0 or not math.isfinite(lr):
            raise ValueError(f"The learning rate must be a positive number, got {lr!r}.")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}.")
        key = (dataset, n, noise, seed)
        if getattr(self, "_data_key", None) != key:  # changing only the model keeps the data
            self.X, self.y = make_toy_2d(dataset, n=n, noise=noise, seed=seed)
            self._data_key = key
            self._set_view()
        self.params = dict(dataset=dataset, depth=depth, width=width, activation=activation, lr=lr)
        torch.manual_seed(seed)
        self.model = make_mlp(2, int(self.y.max()) + 1, depth, width, activation)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.losses: list[float] = []

    def _set_view(self) -> None:
        """A square view around the data (in steps of 0.5) and the grid the model is evaluated on."""
        X = self.X.numpy()
        self._half = math.ceil((np.abs(X).max() + 0.1) * 2) / 2
        axis = np.linspace(-self._half, self._half, self.resolution, dtype=np.float32)
        xx, yy = np.meshgrid(axis, axis)
        self._grid = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], axis=1))
        k = int(self.y.max()) + 1
        self._colours = _class_colours(k)
        self._cmap = plt.get_cmap("coolwarm")
        self._points.set_offsets(X)
        self._points.set_facecolor(self._colours[self.y.numpy()])
        h = self._half
        self._image.set_extent((-h, h, -h, h))

    def train(self, steps: int = 100) -> float:
        """Full-batch Adam steps; returns the final training loss."""
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {steps!r}.")
        loss_fn = nn.CrossEntropyLoss()
        with one_thread():
            for _ in range(steps):
                if self.diverged:  # nothing left to learn from nan weights; the title says what to do
                    break
                loss = loss_fn(self.model(self.X), self.y)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                self.losses.append(loss.item())
        return self.losses[-1] if self.losses else float("nan")

    @torch.no_grad()
    def accuracy(self) -> float:
        """Fraction of the training points the current model classifies correctly."""
        with one_thread():
            return float((self.model(self.X).argmax(1) == self.y).float().mean())

    # ------------------------------------------------------------------ drawing
    def _build_artists(self) -> None:
        ax = self.ax_region
        r = self.resolution
        self._image = ax.imshow(
            np.ones((r, r, 3)), origin="lower", extent=(-1, 1, -1, 1), interpolation="bilinear", aspect="equal"
        )
        self._points = ax.scatter(np.zeros(1), np.zeros(1), s=11, edgecolors="k", linewidths=0.3)
        self._title = ax.set_title("", fontsize=9, y=1.02)  # fixed y: no auto-placement, blit-safe
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():  # a closed frame, whatever the notebook's style says
            spine.set_visible(True)
        (self._line,) = self.ax_loss.plot([], [], color="C0", lw=1.4)
        self.ax_loss.set_yscale("log")
        self.ax_loss.set_xlabel("training step")
        self.ax_loss.set_title("training loss (cross-entropy)", fontsize=9)
        self.ax_loss.grid(alpha=0.3)

    def _dynamic_artists(self) -> list:
        return [self._image, self._points, self._title, self._line]

    def _loss_limits(self) -> tuple[float, float, float]:
        n = len(self.losses)
        xmax = next((s for s in _NICE_STEPS if s >= n), n)
        finite = [v for v in self.losses if math.isfinite(v)]
        if not finite:
            return xmax, 1e-2, 1.0
        lo, hi = min(finite), min(max(finite), 1e30)  # floats throughout: a diverged loss can be astronomically large
        ymin = min(1e-2, 10.0 ** math.floor(math.log10(max(lo, 1e-5))))
        ymax = max(1.0, 10.0 ** math.ceil(math.log10(max(hi, 1e-5))))
        return xmax, ymin, ymax

    @property
    def diverged(self) -> bool:
        """True once the training loss has become inf or nan (the learning rate was too large)."""
        return bool(self.losses) and not math.isfinite(self.losses[-1])

    @torch.no_grad()
    def _update_artists(self) -> None:
        with one_thread():
            probs = torch.softmax(self.model(self._grid), dim=1).numpy()
        r = self.resolution
        if probs.shape[1] == 2:  # diverging colours: white-ish where the model is unsure (p = 0.5)
            rgb = self._cmap(probs[:, 1])[:, :3]
        else:  # the expected class colour under the model
            rgb = probs @ self._colours
        rgb = 1 - 0.6 * (1 - rgb)  # pale, so that the data points stand out
        rgb = np.nan_to_num(rgb, nan=0.8)  # a diverged model predicts nan: show grey, not garbage
        self._image.set_data(rgb.reshape(r, r, 3).clip(0, 1))
        p = self.params
        head = f"{p['dataset']}: {p['depth']} hidden layer(s) of {p['width']}, {p['activation']}, lr {p['lr']:.3g}"
        if self.diverged:
            status = (
                f"training diverged after {len(self.losses)} steps (loss {self.losses[-1]}): lower the learning rate"
            )
        else:
            status = f"training accuracy {self.accuracy():.0%} after {len(self.losses)} steps"
        self._title.set_text(f"{head}\n{status}")
        losses = np.asarray(self.losses, dtype=float)
        self._line.set_data(np.arange(1, len(losses) + 1), np.where(np.isfinite(losses), losses, np.nan))

    def _full_draw(self, layout: tuple) -> None:
        xmax, ymin, ymax = layout[:3]
        h = self._half
        self.ax_region.set_xlim(-h, h)
        self.ax_region.set_ylim(-h, h)
        self.ax_loss.set_xlim(0, xmax)
        self.ax_loss.set_ylim(ymin, ymax)
        canvas = self.fig.canvas
        dynamic = self._dynamic_artists()
        for a in dynamic:
            a.set_visible(False)
        canvas.draw()
        self._background = canvas.copy_from_bbox(self.fig.bbox)
        for a in dynamic:
            a.set_visible(True)
        self._layout = layout

    def draw(self) -> Figure:
        """Bring the figure up to date (decision region with data; loss curve) and return it.

        Only the changing artists are repainted over a cached background; Jupyter shows the
        returned figure as a static image.
        """
        self._update_artists()
        layout = (*self._loss_limits(), self._half, self.fig.dpi, tuple(self.fig.get_size_inches()))
        if self._background is None or layout != self._layout:
            self._full_draw(layout)
        canvas = self.fig.canvas
        canvas.restore_region(self._background)
        for a in self._dynamic_artists():
            a.axes.draw_artist(a)
        for spine in self.ax_region.spines.values():  # the image covered the inner half of the frame
            self.ax_region.draw_artist(spine)
        return self.fig

    def to_png(self) -> bytes:
        """Redraw and encode the canvas as PNG bytes (what the widget displays)."""
        from PIL import Image

        self.draw()
        pixels = np.asarray(self.fig.canvas.buffer_rgba())[..., :3]
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def widget(self, steps_per_frame: int = 25, frames: int = 12):
        """An ipywidgets UI: controls, a Train button that animates training, and the figure."""
        import ipywidgets as w

        if steps_per_frame < 1 or frames < 1:
            raise ValueError(f"steps_per_frame and frames must be >= 1, got {steps_per_frame} and {frames}.")
        style = {"description_width": "90px"}
        controls = {
            "dataset": w.Dropdown(options=TOY_DATASETS, value=self.params["dataset"], description="data", style=style),
            "depth": w.IntSlider(value=self.params["depth"], min=0, max=4, description="hidden layers", style=style),
            "width": w.IntSlider(value=self.params["width"], min=1, max=64, description="width", style=style),
            "activation": w.Dropdown(
                options=list(ACTIVATIONS), value=self.params["activation"], description="activation", style=style
            ),
            "lr": w.FloatLogSlider(
                value=self.params["lr"], base=10, min=-4, max=0, description="learning rate", style=style
            ),
        }
        train_button = w.Button(description=f"Train {steps_per_frame * frames} steps", button_style="primary")
        image = w.Image(value=self.to_png(), format="png")
        generation = {"n": 0}  # a control change stops a running animation (its model is gone)
        running: set = set()  # the animation task, kept referenced while it runs

        def show() -> None:
            image.value = self.to_png()

        def on_change(_=None) -> None:
            generation["n"] += 1
            self.reset(**{k: c.value for k, c in controls.items()})
            show()

        async def animate(started: int) -> None:
            try:
                for _ in range(frames):
                    if generation["n"] != started:
                        break
                    self.train(steps_per_frame)
                    show()
                    await asyncio.sleep(0)  # the kernel is free between frames: sliders answer during training
            finally:
                train_button.disabled = False

        def on_train(_=None) -> None:
            train_button.disabled = True
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a script or a test): animate right here
                loop = None
            task = animate(generation["n"])
            if loop is None:
                asyncio.run(task)
            else:
                running.add(future := loop.create_task(task))
                future.add_done_callback(running.discard)

        # The first choice of "circles" or "moons" imports scikit-learn (seconds on a busy machine):
        # import it now, in the background, while the student reads.
        threading.Thread(target=_import_quietly, args=("sklearn.datasets",), daemon=True).start()
        for c in controls.values():
            c.observe(on_change, names="value")
        train_button.on_click(on_train)
        return w.VBox(
            [w.HBox([w.VBox(list(controls.values())[:3]), w.VBox(list(controls.values())[3:] + [train_button])]), image]
        )


def _import_quietly(module: str) -> None:
    """Import ``module`` to warm it up; a missing optional package only means no warm-up."""
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - a warm-up must never break the widget
        pass


def benchmark_redraw() -> float:
    """Milliseconds for one redraw after a control changes: new model, redraw, PNG for the widget.

    Successive calls alternate between two settings so that every timed redraw follows a real change.
    """
    from ..timing import time_call

    pg = Playground(dataset="circles")
    settings = [
        dict(dataset="circles", depth=2, width=16, activation="relu", lr=0.03),
        dict(dataset="circles", depth=1, width=8, activation="tanh", lr=0.01),
    ]
    state = {"i": 0}

    def update() -> None:
        state["i"] += 1
        pg.reset(**settings[state["i"] % 2])
        pg.to_png()

    return time_call(update)
