"""Random-features double descent, live (lecture L4).

A fixed random ReLU layer turns each input ``x`` (``d`` numbers) into ``p`` features
``relu(x @ W)``; only the linear read-out on top is fitted, by ridge regression
(``lam > 0``) or by the minimum-norm least-squares solution (``lam = 0``). Sweeping the width
``p`` through the number of training samples ``n`` shows the double-descent peak; the
explorer lets a student change the label noise and the ridge strength and watch the peak grow
or vanish.

Everything expensive (one SVD per width and seed) is computed once in
:class:`RandomFeaturesExplorer`; a redraw after a slider moves only does small matrix-vector
products, which keeps the widget responsive.
"""

from __future__ import annotations

import contextlib

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import TICKDOWN, TICKLEFT, Line2D
from matplotlib.ticker import NullLocator

# the lecture's own solver and features (lectures/L04_double_descent.ipynb, cells marked `# @save`)
from ..taught.l04_double_descent import min_norm_lstsq, relu_features  # noqa: F401 (re-exported)


def _one_blas_thread():
    """Small matrices are fastest on one BLAS thread (and a busy machine makes many threads very slow)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1)


def default_widths(n: int) -> np.ndarray:
    """Widths from ``n/10`` to ``10 n``, geometric, with extra points around the threshold ``p = n``."""
    if n < 10:
        raise ValueError(f"Use at least 10 training samples (got n={n}).")
    near = n * np.array([0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2])
    grid = np.geomspace(n / 10, 10 * n, 25)
    grid = grid[np.abs(np.log(grid[:, None] / near[None])).min(axis=1) > 0.04]  # no near-duplicates
    return np.unique(np.round(np.concatenate([grid, near])).astype(int))


class RandomFeaturesExplorer:
    """Test risk of random-features regression versus width, for any label noise and ridge strength.

    Data: ``x ~ N(0, I_d)``, target ``f(x) = x . beta`` with ``|beta| = 1`` (signal variance 1),
    labels ``y = f(x) + noise * eps``. The test risk is the mean squared error against the clean
    target ``f`` on fresh inputs, averaged over ``seeds`` draws of data and features.
    """

    def __init__(self, n: int = 100, d: int = 20, widths=None, seeds: int = 3, n_test: int = 1000, seed: int = 0):
        if n < 10 or d < 1 or seeds < 1 or n_test < 10:
            raise ValueError(
                f"Need n >= 10, d >= 1, seeds >= 1 and n_test >= 10; got n={n}, d={d}, seeds={seeds}, n_test={n_test}."
            )
        self.n, self.d = n, d
        self.widths = default_widths(n) if widths is None else np.asarray(sorted(set(int(p) for p in widths)))
        if self.widths.min() < 1:
            raise ValueError("All widths must be positive integers.")
        with _one_blas_thread():
            self._precompute(seeds, n_test, seed)
        self.fig, (self.ax_risk, self.ax_norm) = plt.subplots(1, 2, figsize=(9.5, 3.6))
        plt.close(self.fig)

    def _precompute(self, seeds: int, n_test: int, seed: int) -> None:
        """One SVD per width and seed; the redraw then needs only small batched products.

        The test risk ``mean((F_test a - f_test)^2)`` is kept as a quadratic form in the read-out
        ``c`` (coordinates in the V basis): ``(c^T G c - 2 c^T b + |f_test|^2) / n_test`` with
        ``G = (F_test V)^T (F_test V)`` and ``b = (F_test V)^T f_test``, all padded to the largest
        rank and stacked over (seed, width) so that a redraw is a handful of einsums.
        """
        n, d = self.n, self.d
        rows = []  # per (seed, width): (s, U^T f, U^T eps, G, b, |f_test|^2 / n_test)
        for k in range(seeds):
            rng = np.random.default_rng(seed + k)
            beta = rng.standard_normal(d)
            beta /= np.linalg.norm(beta)
            X, X_test = rng.standard_normal((n, d)), rng.standard_normal((n_test, d))
            eps = rng.standard_normal(n)
            W = rng.standard_normal((d, int(self.widths.max()))) / np.sqrt(d)
            F_all, F_test_all = relu_features(X, W), relu_features(X_test, W)
            f, f_test = X @ beta, X_test @ beta
            for p in self.widths:
                U, s, Vt = np.linalg.svd(F_all[:, :p], full_matrices=False)
                keep = s > np.finfo(float).eps * max(n, p) * s[0]
                U, s, Vt = U[:, keep], s[keep], Vt[keep]
                FtV = F_test_all[:, :p] @ Vt.T
                rows.append(
                    (s, U.T @ f, U.T @ eps, FtV.T @ FtV / n_test, FtV.T @ f_test / n_test, f_test @ f_test / n_test)
                )
        r = max(len(row[0]) for row in rows)
        B = len(rows)
        self._s = np.ones((B, r))  # padding: s = 1 with zero targets gives c = 0 there
        self._Uf, self._Ueps, self._b = np.zeros((B, r)), np.zeros((B, r)), np.zeros((B, r))
        self._G = np.zeros((B, r, r))
        self._ff = np.array([row[5] for row in rows])
        for i, (s, Uf, Ueps, G, b, _) in enumerate(rows):
            k = len(s)
            self._s[i, :k], self._Uf[i, :k], self._Ueps[i, :k], self._b[i, :k] = s, Uf, Ueps, b
            self._G[i, :k, :k] = G
        self._seeds = seeds

    def curves(self, noise: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean test risk and mean read-out norm ``|a|`` for every width (``lam = 0``: minimum norm)."""
        if noise < 0 or lam < 0:
            raise ValueError(f"noise and lam must be >= 0; got noise={noise}, lam={lam}.")
        # plain einsum (no BLAS, so no thread pool to limit): a few hundred thousand flops
        c = self._s / (self._s**2 + lam) * (self._Uf + noise * self._Ueps)  # read-out in the V basis
        Gc = np.einsum("bij,bj->bi", self._G, c)
        risk = np.maximum(np.einsum("bi,bi->b", c, Gc - 2.0 * self._b) + self._ff, 0.0)
        norm = np.sqrt(np.einsum("bi,bi->b", c, c))
        shape = (self._seeds, len(self.widths))
        return risk.reshape(shape).mean(axis=0), norm.reshape(shape).mean(axis=0)

    def draw(self, noise: float = 0.5, log10_lam: float = -8.0) -> plt.Figure:
        """Redraw both panels for a label noise level and a ridge strength ``10**log10_lam``.

        The figure, axes, lines, legend and titles are built once; a redraw only updates them in
        place (data, y limits, legend and title text).
        """
        lam = 10.0**log10_lam
        base_risk, base_norm = self.curves(noise, 0.0)
        risk, norm = self.curves(noise, lam)
        if not hasattr(self, "_lines"):
            self._setup_axes()
        for (base_line, cur_line), base, cur in zip(self._lines, (base_risk, base_norm), (risk, norm)):
            base_line.set_ydata(base)
            cur_line.set_ydata(cur)
            cur_line.set_label(f"ridge, λ = 1e{log10_lam:+.2f}")
            ax = base_line.axes
            ax.relim()
            ax.autoscale_view()
        self._update_minor_ticks()
        self._legend.get_texts()[1].set_text(f"ridge, λ = 1e{log10_lam:+.2f}")
        self.ax_risk.set_title(f"label noise std = {noise:.2f}", fontsize=10)
        return self.fig

    def _setup_axes(self) -> None:
        ratio = self.widths / self.n
        self._lines = []
        self._minor = []  # per axis: (axis, its log minor locator, one marker line drawing those ticks)
        for ax, label in ((self.ax_risk, "test risk (MSE vs clean target)"), (self.ax_norm, "norm of read-out |a|")):
            (base,) = ax.plot(ratio, np.ones_like(ratio), color="0.6", lw=1.5, label="minimum norm (no ridge)")
            (cur,) = ax.plot(ratio, np.ones_like(ratio), "o-", color="C3", ms=3, label="ridge")
            self._lines.append((base, cur))
            ax.axvline(1.0, color="k", ls="--", lw=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("features / samples  (p / n)")
            ax.set_ylabel(label)
            # fixed label and title positions: no per-redraw layout search over tick-label boxes
            ax.xaxis.set_label_coords(0.5, -0.13)
            ax.yaxis.set_label_coords(-0.13, 0.5)  # moved left in _update_minor_ticks if minor labels show
            ax.grid(alpha=0.3, which="major")
            for axis, marker, transform in (
                (ax.xaxis, TICKDOWN, ax.get_xaxis_transform()),
                (ax.yaxis, TICKLEFT, ax.get_yaxis_transform()),
            ):
                marks = Line2D(
                    [],
                    [],
                    ls="none",
                    marker=marker,
                    ms=plt.rcParams["xtick.minor.size"],
                    mew=plt.rcParams["xtick.minor.width"],
                    color=plt.rcParams["xtick.color"],
                    transform=transform,
                    clip_on=False,
                    zorder=2.5,
                )
                # a figure-level artist (axes transform): not a data line of the axes, so it neither
                # enters autoscaling nor the axes' lines / legend
                self.fig.add_artist(marks)
                self._minor.append((axis, axis.get_minor_locator(), marks))
        self._legend = self.ax_risk.legend(fontsize=8, loc="upper right")
        self.ax_risk.set_title(" ", fontsize=10, y=1.0, pad=6)
        self.ax_norm.set_title("the peak is where the fit needs huge weights", fontsize=10, y=1.0, pad=6)
        self.fig.subplots_adjust(left=0.09, right=0.985, bottom=0.16, top=0.9, wspace=0.3)

    def _update_minor_ticks(self) -> None:
        """Unlabelled minor ticks as one marker line per axis instead of dozens of Tick artists.

        The log axes' minor ticks are plain marks (no labels, no grid lines) unless the view spans
        less than about a decade, when matplotlib labels them too. The marks are the same ticks at
        the same places (same locator, same size), drawn with one ``draw_markers`` call; when the
        minor formatter would label any of them, the axis gets its real minor ticks back.
        """
        for axis, locator, marks in self._minor:
            lo, hi = sorted(axis.get_view_interval())
            locs = np.asarray(locator(), dtype=float)
            major = np.asarray(axis.get_majorticklocs(), dtype=float)
            locs = locs[(locs >= lo * (1 - 1e-10)) & (locs <= hi * (1 + 1e-10))]
            if major.size:
                locs = locs[~np.isclose(locs[:, None], major[None, :], rtol=1e-10, atol=0).any(axis=1)]
            labelled = any(axis.get_minor_formatter().format_ticks(locs)) if locs.size else False
            if axis is axis.axes.yaxis:  # room for long minor labels such as "6.4x10^-1"
                axis.set_label_coords(-0.21 if labelled else -0.13, 0.5)
            if labelled:
                if axis.get_minor_locator() is not locator:
                    axis.set_minor_locator(locator)
                marks.set_visible(False)
            else:
                if not isinstance(axis.get_minor_locator(), NullLocator):
                    axis.set_minor_locator(NullLocator())
                    locator.set_axis(axis)  # keep reading this axis's view interval
                zeros = np.zeros_like(locs)
                marks.set_data((locs, zeros) if axis is axis.axes.xaxis else (zeros, locs))
                marks.set_visible(True)

    def widget(self):
        """Sliders for label noise and log10 of the ridge strength, and the figure."""
        import ipywidgets as w

        from ..figure_image import FigureImage

        noise = w.FloatSlider(
            value=0.5, min=0.0, max=1.0, step=0.05, description="label noise", continuous_update=False
        )
        lam = w.FloatSlider(
            value=-8.0, min=-8.0, max=2.0, step=0.25, description="log10 lambda", continuous_update=False
        )
        view = FigureImage(self.draw(noise.value, lam.value))  # one rasterisation and a fast PNG per redraw

        def show(_=None) -> None:
            view.update(self.draw(noise.value, lam.value))

        noise.observe(show, names="value")
        lam.observe(show, names="value")
        return w.VBox([w.HBox([noise, lam]), view.widget])


def benchmark_redraw() -> float:
    """Milliseconds for one redraw after a slider moves (recompute both curves, draw)."""
    from ..timing import render, time_call

    explorer = RandomFeaturesExplorer(n=100, seeds=3)
    values = iter(np.linspace(0.0, 1.0, 1000))

    def update() -> None:
        render(explorer.draw(noise=float(next(values)), log10_lam=-3.0))

    return time_call(update)
