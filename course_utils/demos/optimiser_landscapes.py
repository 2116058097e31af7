"""2-D loss landscapes and optimiser trajectories (used in lecture L5).

Four landscapes show four ways in which optimisation gets hard:

* an **ill-conditioned quadratic** (a long, narrow valley: plain gradient descent zig-zags),
* a **saddle point** (the gradient vanishes although the point is not a minimum),
* the **Rosenbrock** function (a curved, flat-bottomed valley),
* a **noisy quadratic** (every gradient is corrupted by noise, as with small minibatches).

Six optimisers walk on them: GD, momentum, Nesterov, AdaGrad, RMSProp and Adam. They are the lecture's
own classes (the cells of lectures/L05_optimisers.ipynb marked ``# @save``, exported to
:mod:`course_utils.taught.l05_optimisers`): each has a ``step(params, grads)`` method that works on numpy
arrays as well as on tensors and matches ``torch.optim`` step for step (the tests check that). They run
here on numpy arrays, because a ``torch.optim`` step on two numbers costs far more time than the
arithmetic itself, and the widget must redraw quickly. Any object with such a ``step`` method can be
passed to :func:`trajectory`, and :class:`LandscapeExplorer` takes a student's own classes.

The interactive figure is :class:`LandscapeExplorer`; :func:`benchmark_redraw` times one redraw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator

from ..taught.l05_optimisers import GD, AdaGrad, Adam, Momentum, Nesterov, RMSProp

OPTIMISER_NAMES = ("GD", "momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam")
COLORS = {
    "GD": "#1f77b4",
    "momentum": "#ff7f0e",
    "Nesterov": "#2ca02c",
    "AdaGrad": "#9467bd",
    "RMSProp": "#8c564b",
    "Adam": "#d62728",
}
DIVERGED_NORM = 1e6  # a trajectory that gets this far from the origin is stopped and called diverged


# --------------------------------------------------------------------------------------------
# Optimisers: the lecture's own classes (lectures/L05_optimisers.ipynb, exported to course_utils.taught)
# --------------------------------------------------------------------------------------------
OPTIMISERS: dict[str, type] = dict(zip(OPTIMISER_NAMES, (GD, Momentum, Nesterov, AdaGrad, RMSProp, Adam)))


def _check_lr(lr: float) -> float:
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"The learning rate must be a positive finite number, got {lr!r}.")
    return float(lr)


def make_optimiser(name: str, lr: float, optimisers: dict[str, type] | None = None):
    """A fresh optimiser by name (one of :data:`OPTIMISER_NAMES`) with the course's defaults.

    ``optimisers`` maps the names to classes called as ``cls(lr)``; by default :data:`OPTIMISERS`, the
    lecture's classes. Pass the ones defined in the notebook to watch a student's own code walk.
    """
    classes = OPTIMISERS if optimisers is None else optimisers
    if name not in classes:
        raise ValueError(f"Unknown optimiser {name!r}; choose one of {', '.join(classes)}.")
    return classes[name](_check_lr(lr))


# --------------------------------------------------------------------------------------------
# Landscapes
# --------------------------------------------------------------------------------------------
@dataclass
class Landscape:
    """A 2-D loss surface: ``f(x, y)`` (vectorised), its gradient, a start point and plot settings.

    ``lrs`` holds a sensible learning rate per optimiser (they differ a lot, which is the point);
    ``noise`` is the standard deviation of Gaussian noise added to every gradient.
    """

    name: str
    f: Callable[[np.ndarray, np.ndarray], np.ndarray]
    grad: Callable[[float, float], tuple[float, float]]
    start: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    minima: list[tuple[float, float]]
    saddles: list[tuple[float, float]]
    lrs: dict[str, float]
    steps: int
    noise: float = 0.0
    description: str = ""
    _grid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def f_min(self) -> float:
        """The lowest value of the loss (at the minima)."""
        return float(min(self.f(np.array(x), np.array(y)) for x, y in self.minima))

    def loss(self, p: np.ndarray) -> float:
        return float(self.f(p[0], p[1]))

    def gradient(self, p: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """The gradient at ``p``; with ``noise > 0`` plus Gaussian noise drawn from ``rng``."""
        g = np.array(self.grad(float(p[0]), float(p[1])), dtype=float)
        if self.noise > 0:
            if rng is None:
                raise ValueError(
                    f"The {self.name} landscape has noisy gradients: pass rng=np.random.default_rng(seed)."
                )
            g += self.noise * rng.standard_normal(2)
        return g

    def hessian(self, p: Sequence[float], h: float = 1e-5) -> np.ndarray:
        """Hessian at ``p`` by central differences of the (noise-free) gradient."""
        p = np.asarray(p, dtype=float)
        H = np.zeros((2, 2))
        for j in range(2):
            e = np.zeros(2)
            e[j] = h
            H[:, j] = (np.array(self.grad(*(p + e))) - np.array(self.grad(*(p - e)))) / (2 * h)
        return (H + H.T) / 2

    def grid(self, resolution: int = 160) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``xx, yy, f - f_min`` on a grid over the plot limits (cached)."""
        if self._grid is None or self._grid[0].shape[0] != resolution:
            xx, yy = np.meshgrid(np.linspace(*self.xlim, resolution), np.linspace(*self.ylim, resolution))
            self._grid = (xx, yy, self.f(xx, yy) - self.f_min)
        return self._grid


def make_quadratic(
    kappa: float = 50.0, angle_deg: float = 0.0, noise: float = 0.0, name: str | None = None
) -> Landscape:
    """f = 0.5 (u^2 + kappa v^2) in coordinates (u, v) rotated by ``angle_deg``: condition number ``kappa``."""
    if not kappa >= 1:
        raise ValueError(f"The condition number kappa must be >= 1, got {kappa}.")
    if noise < 0:
        raise ValueError(f"noise is a standard deviation and must be >= 0, got {noise}.")
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    # Hessian H = R diag(1, kappa) R^T
    h11, h12, h22 = c * c + kappa * s * s, c * s * (1 - kappa), s * s + kappa * c * c

    def f(x, y):
        return 0.5 * (h11 * x * x + 2 * h12 * x * y + h22 * y * y)

    def grad(x, y):
        return h11 * x + h12 * y, h12 * x + h22 * y

    lr_gd = 1.8 / kappa
    if name is None:
        name = "noisy quadratic" if noise > 0 else "ill-conditioned quadratic"
    return Landscape(
        name=name,
        f=f,
        grad=grad,
        start=(-5.0, 1.0),
        xlim=(-5.8, 1.8),
        ylim=(-1.6, 1.6),
        minima=[(0.0, 0.0)],
        saddles=[],
        lrs={
            "GD": lr_gd,
            "momentum": 0.02 * 50 / kappa,
            "Nesterov": 0.02 * 50 / kappa,
            "AdaGrad": 1.0,
            "RMSProp": 0.1,
            "Adam": 0.3,
        },
        steps=60,
        noise=noise,
        description=f"0.5 (u^2 + {kappa:g} v^2), axes rotated by {angle_deg:g} degrees"
        if angle_deg
        else f"0.5 (x^2 + {kappa:g} y^2)",
    )


def make_saddle() -> Landscape:
    """f = x^2/2 + y^4/4 - y^2/2: a saddle at the origin between two minima at (0, +-1)."""
    return Landscape(
        name="saddle point",
        f=lambda x, y: 0.5 * x * x + 0.25 * y**4 - 0.5 * y * y,
        grad=lambda x, y: (x, y**3 - y),
        start=(-2.5, 1e-3),
        xlim=(-2.8, 2.2),
        ylim=(-1.6, 1.6),
        minima=[(0.0, 1.0), (0.0, -1.0)],
        saddles=[(0.0, 0.0)],
        lrs={"GD": 0.1, "momentum": 0.02, "Nesterov": 0.02, "AdaGrad": 0.5, "RMSProp": 0.05, "Adam": 0.1},
        steps=80,
        description="x^2/2 + y^4/4 - y^2/2, starting just beside the saddle",
    )


def make_rosenbrock() -> Landscape:
    """f = (1 - x)^2 + 100 (y - x^2)^2: a curved valley with its minimum at (1, 1)."""
    return Landscape(
        name="Rosenbrock",
        f=lambda x, y: (1 - x) ** 2 + 100 * (y - x * x) ** 2,
        grad=lambda x, y: (-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)),
        start=(-1.2, 1.0),
        xlim=(-2.0, 2.0),
        ylim=(-1.0, 3.0),
        minima=[(1.0, 1.0)],
        saddles=[],
        lrs={"GD": 2e-3, "momentum": 5e-4, "Nesterov": 5e-4, "AdaGrad": 0.5, "RMSProp": 0.01, "Adam": 0.1},
        steps=500,
        description="(1 - x)^2 + 100 (y - x^2)^2",
    )


def make_landscapes() -> dict[str, Landscape]:
    """The four landscapes of the lecture, by name."""
    noisy = make_quadratic(kappa=5.0, noise=2.0)
    noisy.lrs = {"GD": 0.1, "momentum": 0.02, "Nesterov": 0.02, "AdaGrad": 1.0, "RMSProp": 0.05, "Adam": 0.1}
    noisy.steps = 150
    noisy.description = "0.5 (x^2 + 5 y^2), every gradient plus Gaussian noise of standard deviation 2"
    return {ls.name: ls for ls in (make_quadratic(), make_saddle(), make_rosenbrock(), noisy)}


LANDSCAPES = make_landscapes()


# --------------------------------------------------------------------------------------------
# Trajectories
# --------------------------------------------------------------------------------------------
@dataclass
class Trajectory:
    """The points visited (``[steps + 1, 2]``) and ``f - f_min`` at each of them."""

    points: np.ndarray
    gaps: np.ndarray
    diverged: bool
    label: str = ""

    @property
    def final_gap(self) -> float:
        """f - f_min at the last point (``inf`` if the run diverged)."""
        return float("inf") if self.diverged else float(self.gaps[-1])


def _get_landscape(landscape: Landscape | str) -> Landscape:
    if isinstance(landscape, Landscape):
        return landscape
    if landscape not in LANDSCAPES:
        raise ValueError(f"Unknown landscape {landscape!r}; choose one of {', '.join(LANDSCAPES)}.")
    return LANDSCAPES[landscape]


def trajectory(
    landscape: Landscape | str,
    optimiser: object | str,
    steps: int | None = None,
    lr: float | None = None,
    start: Sequence[float] | None = None,
    seed: int = 0,
) -> Trajectory:
    """Run ``optimiser`` for ``steps`` steps from the landscape's start point.

    ``optimiser`` is a name from :data:`OPTIMISER_NAMES` (then ``lr`` defaults to the landscape's
    choice for it) or any object with ``step(params, grads)`` that updates numpy arrays in place.
    Noisy gradients are drawn from ``np.random.default_rng(seed)``, so every optimiser sees the same noise.
    """
    ls = _get_landscape(landscape)
    steps = ls.steps if steps is None else steps
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}.")
    if isinstance(optimiser, str):
        label = optimiser
        optimiser = make_optimiser(optimiser, ls.lrs[optimiser] if lr is None and optimiser in ls.lrs else lr)
    else:
        if lr is not None:
            raise ValueError("Pass lr only with an optimiser name; an optimiser object already has its learning rate.")
        if not hasattr(optimiser, "step"):
            raise TypeError(
                f"optimiser must be a name or have a step(params, grads) method, got {type(optimiser).__name__}."
            )
        label = type(optimiser).__name__
    rng = np.random.default_rng(seed)
    p = np.array(ls.start if start is None else start, dtype=float)
    if p.shape != (2,):
        raise ValueError(f"start must be a point (x, y), got {start!r}.")
    points = np.empty((steps + 1, 2))
    points[0] = p
    diverged = False
    n = steps
    for k in range(steps):
        optimiser.step([p], [ls.gradient(p, rng)])
        if not (np.isfinite(p).all() and abs(p[0]) + abs(p[1]) < DIVERGED_NORM):
            diverged, n = True, k + 1
            break
        points[k + 1] = p
    points = points[: n + 1] if not diverged else points[:n]
    gaps = ls.f(points[:, 0], points[:, 1]) - ls.f_min
    return Trajectory(points, gaps, diverged, label)


def run_all(
    landscape: Landscape | str, optimisers: Sequence[str] = OPTIMISER_NAMES, steps: int | None = None, seed: int = 0
) -> dict[str, Trajectory]:
    """Every named optimiser on one landscape, each with the landscape's learning rate for it."""
    return {name: trajectory(landscape, name, steps, seed=seed) for name in optimisers}


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------
def _levels(z: np.ndarray, n: int = 14) -> np.ndarray:
    lo = max(float(np.percentile(z, 0.5)), 1e-3)
    return np.geomspace(lo, float(z.max()), n)


def draw_landscape(ax: plt.Axes, landscape: Landscape | str, filled: bool = True, resolution: int = 160):
    """Contours of ``f - f_min`` on a log scale, the start (circle), minima (stars) and saddles (crosses)."""
    ls = _get_landscape(landscape)
    xx, yy, z = ls.grid(resolution)
    levels = _levels(z)
    artists = []
    zc = np.clip(z, levels[0], None)
    if filled:
        artists.append(ax.contourf(xx, yy, zc, levels=levels, norm=LogNorm(), cmap="bone", alpha=0.45, extend="both"))
    artists.append(ax.contour(xx, yy, zc, levels=levels, norm=LogNorm(), colors="k", linewidths=0.3, alpha=0.5))
    mx, my = zip(*ls.minima)
    artists += ax.plot(mx, my, "*", color="gold", markeredgecolor="k", markersize=13, zorder=5)
    if ls.saddles:
        sx, sy = zip(*ls.saddles)
        artists += ax.plot(sx, sy, "X", color="w", markeredgecolor="k", markersize=9, zorder=5)
    artists += ax.plot(*ls.start, "o", color="w", markeredgecolor="k", markersize=7, zorder=5)
    ax.set_xlim(ls.xlim)
    ax.set_ylim(ls.ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return artists


def plot_trajectories(
    landscape: Landscape | str,
    runs: dict[str, Trajectory],
    ax_path: plt.Axes | None = None,
    ax_loss: plt.Axes | None = None,
    title: str | None = None,
    legend: bool = True,
):
    """Trajectories on the contour plot (left) and ``f - f_min`` per step on a log scale (right)."""
    ls = _get_landscape(landscape)
    if ax_path is None:
        fig, (ax_path, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    draw_landscape(ax_path, ls)
    for i, (name, run) in enumerate(runs.items()):
        color = COLORS.get(name, f"C{i}")
        label = name + (" (diverged)" if run.diverged else "")
        ax_path.plot(run.points[:, 0], run.points[:, 1], ".-", color=color, lw=1.3, ms=3, label=label)
        if ax_loss is not None and len(run.gaps):
            ax_loss.semilogy(np.maximum(run.gaps, 1e-12), color=color, lw=1.5, label=label)
    ax_path.set_title(title if title is not None else ls.name, fontsize=10)
    if legend:
        (ax_loss or ax_path).legend(fontsize=7, loc="lower left", framealpha=0.8)
    if ax_loss is not None:
        ax_loss.set_xlabel("step")
        ax_loss.set_ylabel("f - f_min")
        ax_loss.grid(alpha=0.3)
    return ax_path.figure


def compare_grid(
    landscapes: Sequence[Landscape | str] | None = None, optimisers: Sequence[str] = OPTIMISER_NAMES, seed: int = 0
) -> tuple[plt.Figure, dict]:
    """A 2 x n grid: trajectories of every optimiser (top) and their loss curves (bottom), one column per landscape.

    Returns the figure and ``{landscape name: {optimiser: Trajectory}}``.
    """
    landscapes = [_get_landscape(ls) for ls in (landscapes or list(LANDSCAPES))]
    fig, axes = plt.subplots(
        2,
        len(landscapes),
        figsize=(4.2 * len(landscapes), 7.4),
        gridspec_kw={"height_ratios": [1.25, 1]},
        squeeze=False,
    )
    results = {}
    for j, ls in enumerate(landscapes):
        runs = run_all(ls, optimisers, seed=seed)
        results[ls.name] = runs
        plot_trajectories(ls, runs, axes[0, j], axes[1, j], legend=False)
    handles, labels = axes[1, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        [lab.replace(" (diverged)", "") for lab in labels],
        loc="lower center",
        ncol=len(optimisers),
        fontsize=9,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig, results


# --------------------------------------------------------------------------------------------
# The widget
# --------------------------------------------------------------------------------------------
ALL = "all (their default lr)"
PATH_ZORDER = 2.2


class LandscapeExplorer:
    """Pick a landscape, an optimiser, a learning rate and a number of steps; see the path and the loss.

    The contours of each landscape are drawn once and then only shown or hidden; a control change
    recomputes one trajectory (numpy, a few ms) and moves the line artists.
    """

    def __init__(
        self,
        landscape: str = "ill-conditioned quadratic",
        optimiser: str = "GD",
        lr: float | None = None,
        steps: int | None = None,
        landscapes: dict[str, Landscape] | None = None,
        optimisers: dict[str, type] | None = None,
    ):
        self.landscapes = dict(landscapes or LANDSCAPES)
        # the classes that walk: the lecture's (default) or a student's own, e.g. {"GD": GD, ...} from the notebook
        self.optimisers = dict(OPTIMISERS if optimisers is None else optimisers)
        if set(self.optimisers) != set(OPTIMISER_NAMES):
            raise ValueError(
                f"optimisers must map exactly the names {', '.join(OPTIMISER_NAMES)} to classes; "
                f"got {', '.join(map(repr, self.optimisers)) or 'none'}."
            )
        self.fig, (self.ax_path, self.ax_loss) = plt.subplots(
            1, 2, figsize=(9.5, 3.7), gridspec_kw={"width_ratios": [1.15, 1]}
        )
        plt.close(self.fig)
        self._backgrounds: dict[str, list] = {}
        # zorder: above the contour lines (2), below the spines / axes (2.5) and the markers (5)
        self._path_lines = {
            n: self.ax_path.plot([], [], ".-", color=COLORS[n], lw=1.3, ms=3, label=n, zorder=PATH_ZORDER)[0]
            for n in OPTIMISER_NAMES
        }
        self._loss_lines = {
            n: self.ax_loss.semilogy([1], [1], color=COLORS[n], lw=1.5, label=n)[0] for n in OPTIMISER_NAMES
        }
        self.ax_loss.set_xlabel("step")
        self.ax_loss.set_ylabel("f - f_min")
        self.ax_loss.grid(alpha=0.3)
        # Fewer ticks than matplotlib's default: every tick label is a text to lay out and rasterise
        # at each redraw, which is most of a redraw's cost.
        self.ax_path.xaxis.set_major_locator(MaxNLocator(6))
        self.ax_path.yaxis.set_major_locator(MaxNLocator(5))
        self.ax_loss.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        self._minor_log = LogLocator(subs="auto")
        self.legend = self.ax_loss.legend(fontsize=7, loc="lower left", framealpha=0.8)
        self._legend_labels: tuple[str, ...] | None = None
        # The contour panel's static part (contours, markers, spines, ticks, axis labels) is rasterised
        # once per landscape and figure geometry, then pasted back at each redraw (see _draw_path_axes).
        self._static_cache: dict[tuple, object] = {}  # blitting: static pixels by figure geometry
        self.ax_path.draw = self._draw_path_axes
        self.runs: dict[str, Trajectory] = {}
        self.update(landscape, optimiser, lr, steps)
        self.fig.tight_layout()

    def _live_path_artists(self) -> list:
        """The contour panel's artists drawn at every redraw, in drawing order: the paths and all that lies
        above them (spines, title, start / minimum markers). The rest (patch, contours, axes) is cached."""
        ax = self.ax_path
        dynamic = list(self._path_lines.values()) + [ax.title, ax._left_title, ax._right_title]
        live = [
            a
            for a in ax.get_children()
            if a is not ax.patch
            and a is not ax.xaxis
            and a is not ax.yaxis
            and (a.get_zorder() > PATH_ZORDER or any(a is d for d in dynamic))
        ]
        return sorted(live, key=lambda a: a.get_zorder())

    def _draw_path_axes(self, renderer) -> None:
        """Draw the contour panel: the cached static pixels (blitted), then the live artists.

        The first draw for a landscape (and figure size / dpi) draws the static part normally and keeps
        its pixels (``copy_from_bbox``); later draws restore them (``restore_region``) and draw only the
        paths and what lies above them, which gives the same image as a full draw.
        """
        ax = self.ax_path
        if not hasattr(renderer, "copy_from_bbox") or "draw_path" in vars(renderer) or not ax.get_visible():
            type(ax).draw(ax, renderer)  # not Agg (pdf, svg), or a dry run to measure sizes: no cache
            return
        titles = (ax.title, ax._left_title, ax._right_title)
        live_all = self._live_path_artists()
        live = [a for a in live_all if a.get_visible()]
        static = [a for a in ax.get_children() if not any(a is b for b in live_all)]
        key = (
            renderer.width,
            renderer.height,
            renderer.dpi,
            tuple(ax.bbox.bounds),
            tuple(ax.viewLim.bounds),
            tuple(id(a) for a in static if a.get_visible()),
        )
        region = self._static_cache.get(key)
        if region is None:
            for a in live:
                a.set_visible(False)
            try:
                type(ax).draw(ax, renderer)
                bbox = ax.get_tightbbox(renderer).padded(3)
                bbox = type(bbox).intersection(bbox, self.fig.bbox) or self.fig.bbox
                if len(self._static_cache) > 16:
                    self._static_cache.clear()
                pixels = renderer.copy_from_bbox(bbox)
            finally:
                for a in live:
                    a.set_visible(True)
            # the titles' positions depend only on the static layout (no ticks or labels on top)
            ax._update_title_position(renderer)
            self._static_cache[key] = pixels, [t.get_position() for t in titles]
        else:
            renderer.restore_region(region[0])
            for t, xy in zip(titles, region[1]):
                t.set_position(xy)
        for a in live:
            a.draw(renderer)

    def _show_background(self, name: str) -> None:
        if name not in self._backgrounds:
            self._backgrounds[name] = draw_landscape(self.ax_path, self.landscapes[name])
        for key, artists in self._backgrounds.items():
            for artist in artists:
                artist.set_visible(key == name)

    def update(
        self, landscape: str, optimiser: str, lr: float | None = None, steps: int | None = None
    ) -> dict[str, Trajectory]:
        """Recompute the trajectories for these settings and move the artists (does not render)."""
        if landscape not in self.landscapes:
            raise ValueError(f"Unknown landscape {landscape!r}; choose one of {', '.join(self.landscapes)}.")
        if optimiser != ALL and optimiser not in OPTIMISER_NAMES:
            raise ValueError(f"Unknown optimiser {optimiser!r}; choose one of {', '.join(OPTIMISER_NAMES)} or {ALL!r}.")
        ls = self.landscapes[landscape]
        steps = ls.steps if steps is None else int(steps)
        names = OPTIMISER_NAMES if optimiser == ALL else (optimiser,)
        if optimiser == ALL:
            lr = None
        self.settings = dict(
            landscape=landscape,
            optimiser=optimiser,
            lr=lr if lr is not None else (ls.lrs[optimiser] if optimiser != ALL else None),
            steps=steps,
        )
        self.runs = {n: self._run(ls, n, lr, steps) for n in names}
        self._show_background(landscape)
        self.ax_path.set_xlim(ls.xlim)
        self.ax_path.set_ylim(ls.ylim)
        lo, hi = np.inf, 0.0
        for n in OPTIMISER_NAMES:
            run = self.runs.get(n)
            visible = run is not None and len(run.points) > 0
            self._path_lines[n].set_visible(visible)
            self._loss_lines[n].set_visible(visible)
            self._path_lines[n].set_label(n if run is None or not run.diverged else n + " (diverged)")
            if visible:
                self._path_lines[n].set_data(run.points[:, 0], run.points[:, 1])
                gaps = np.maximum(run.gaps, 1e-12)
                self._loss_lines[n].set_data(np.arange(len(gaps)), gaps)
                lo, hi = min(lo, gaps.min()), max(hi, gaps.max())
        self.ax_loss.set_xlim(0, max(steps, 1))
        if hi > 0:
            y0, y1 = max(lo / 2, 1e-12), hi * 2
            self.ax_loss.set_ylim(y0, y1)
            # unlabelled minor ticks only help when the loss spans few decades (then some are labelled)
            self.ax_loss.yaxis.set_minor_locator(self._minor_log if y1 / y0 < 1e3 else NullLocator())
        shown = [self._path_lines[n] for n in names]
        labels = tuple(h.get_label() for h in shown)
        if labels != self._legend_labels:  # rebuild the legend only when its entries change
            self.legend.remove()
            self.legend = self.ax_loss.legend(shown, list(labels), fontsize=7, loc="lower left", framealpha=0.8)
            self._legend_labels = labels
        if optimiser == ALL:
            title = f"{landscape}: all optimisers, {steps} steps"
        else:
            run = self.runs[optimiser]
            result = "diverged" if run.diverged else f"f - f_min = {run.final_gap:.2e}"
            title = f"{landscape}: {optimiser}, lr {self.settings['lr']:.3g}, {steps} steps: {result}"
        self.ax_path.set_title(title, fontsize=9)
        return self.runs

    def _run(self, ls: Landscape, name: str, lr: float | None, steps: int) -> Trajectory:
        """One trajectory of ``self.optimisers[name]`` (the landscape's learning rate for it when ``lr`` is None)."""
        run = trajectory(ls, make_optimiser(name, ls.lrs[name] if lr is None else lr, self.optimisers), steps)
        run.label = name
        return run

    def draw(self) -> plt.Figure:
        return self.fig

    def widget(self):
        """ipywidgets controls plus the figure; changing the landscape or optimiser resets lr and steps."""
        import ipywidgets as w

        from ..figure_image import FigureImage

        style = {"description_width": "80px"}
        s = self.settings
        c_land = w.Dropdown(options=list(self.landscapes), value=s["landscape"], description="landscape", style=style)
        c_opt = w.Dropdown(
            options=list(OPTIMISER_NAMES) + [ALL], value=s["optimiser"], description="optimiser", style=style
        )
        c_lr = w.FloatLogSlider(
            value=s["lr"] or 0.01,
            base=10,
            min=-4,
            max=0.5,
            step=0.05,
            description="learning rate",
            readout_format=".2g",
            style=style,
        )
        c_steps = w.IntSlider(value=s["steps"], min=1, max=1000, description="steps", style=style)
        view = FigureImage(self.fig)  # one rasterisation and a fast PNG per redraw (see course_utils.figure_image)
        busy = {"flag": False}
        drawn = {"key": None}

        def show() -> None:
            view.update()

        def redraw(_=None) -> None:
            # The log slider snaps a value set from Python (a landscape's default lr) to its grid and sends the
            # snapped value back: the same notch is no new setting to draw.
            notch = round((math.log10(c_lr.value) - c_lr.min) / c_lr.step)
            key = (c_land.value, c_opt.value, None if c_opt.value == ALL else notch, c_steps.value)
            if busy["flag"] or key == drawn["key"]:
                return
            drawn["key"] = key
            c_lr.disabled = c_opt.value == ALL
            self.update(c_land.value, c_opt.value, None if c_opt.value == ALL else c_lr.value, c_steps.value)
            show()

        def reset_defaults(_=None) -> None:
            ls = self.landscapes[c_land.value]
            busy["flag"] = True
            if c_opt.value != ALL:
                c_lr.value = ls.lrs[c_opt.value]
            c_steps.value = ls.steps
            busy["flag"] = False
            redraw()

        c_land.observe(reset_defaults, names="value")
        c_opt.observe(reset_defaults, names="value")
        c_lr.observe(redraw, names="value")
        c_steps.observe(redraw, names="value")
        redraw()
        return w.VBox([w.HBox([w.VBox([c_land, c_opt]), w.VBox([c_lr, c_steps])]), view.widget])


def benchmark_redraw(repeats: int = 7) -> float:
    """Median milliseconds for one redraw after a control changes (recompute + rasterise the figure).

    The changes cycle through all four controls (learning rate, steps, optimiser, landscape), with
    every landscape's contours already drawn once, as they are after a student has visited them.
    """
    from ..timing import render, time_call

    explorer = LandscapeExplorer()
    for name in explorer.landscapes:  # show every landscape once (its first visit draws and caches the background)
        explorer.update(name, "GD")
        render(explorer.draw())
    settings = [
        ("ill-conditioned quadratic", "GD", 0.02, 60),
        ("ill-conditioned quadratic", "GD", 0.02, 120),
        ("ill-conditioned quadratic", "Adam", None, 120),
        ("Rosenbrock", "Adam", None, None),
        ("Rosenbrock", "Adam", 0.05, None),
        ("Rosenbrock", "Adam", 0.05, 1000),
        ("saddle point", "momentum", None, None),
        ("noisy quadratic", ALL, None, None),
    ]
    state = {"i": 0}

    def one_change() -> None:
        explorer.update(*settings[state["i"] % len(settings)])
        state["i"] += 1
        render(explorer.draw())

    return time_call(one_change, repeats=max(repeats, len(settings)), warmup=1)
