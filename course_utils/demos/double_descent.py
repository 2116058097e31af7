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


def _one_blas_thread():
    """Small matrices are fastest on one BLAS thread (and a busy machine makes many threads very slow)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1)


def relu_features(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Random ReLU features ``relu(X @ W)`` of inputs ``X`` ``[n, d]`` with a fixed first layer ``W`` ``[d, p]``."""
    X = np.asarray(X, dtype=float)
    W = np.asarray(W, dtype=float)
    if X.ndim != 2 or W.ndim != 2:
        raise ValueError(f"relu_features needs 2-D arrays X [n, d] and W [d, p]; got shapes {X.shape} and {W.shape}.")
    if X.shape[1] != W.shape[0]:
        raise ValueError(f"X has {X.shape[1]} input columns but W has {W.shape[0]} rows; they must match "
                         "(W is [d, p] for inputs with d numbers).")
    return np.maximum(X @ W, 0.0)


def min_norm_lstsq(F: np.ndarray, y: np.ndarray, rcond: float | None = None) -> np.ndarray:
    """The minimum-norm least-squares solution ``a`` of ``F a ~= y`` (equal to ``pinv(F) @ y``).

    Computed from the thin SVD ``F = U diag(s) V^T``: ``a = V diag(1/s) U^T y``, keeping only
    singular values above ``rcond * s.max()`` (default: machine precision times ``max(F.shape)``,
    the same cut-off as :func:`numpy.linalg.pinv` uses). With fewer columns than rows and full
    rank this is ordinary least squares; with more columns it is the interpolating solution of
    smallest Euclidean norm.
    """
    F = np.asarray(F, dtype=float)
    y = np.asarray(y, dtype=float)
    if F.ndim != 2:
        raise ValueError(f"F must be a 2-D matrix [n, p]; got shape {F.shape}.")
    if y.ndim not in (1, 2) or y.shape[0] != F.shape[0]:
        raise ValueError(f"y must have one row per row of F ({F.shape[0]}); got shape {y.shape}.")
    if not (np.all(np.isfinite(F)) and np.all(np.isfinite(y))):
        raise ValueError("F and y must be finite (no NaN or inf); check the inputs.")
    if rcond is None:
        rcond = np.finfo(float).eps * max(F.shape)
    if rcond < 0:
        raise ValueError(f"rcond must be >= 0, got {rcond}.")
    U, s, Vt = np.linalg.svd(F, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return np.zeros((F.shape[1],) + y.shape[1:])
    keep = s > rcond * s[0]
    coef = (U[:, keep].T @ y) / (s[keep] if y.ndim == 1 else s[keep, None])
    return Vt[keep].T @ coef


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

    def __init__(self, n: int = 100, d: int = 20, widths=None, seeds: int = 3, n_test: int = 1000,
                 seed: int = 0):
        if n < 10 or d < 1 or seeds < 1 or n_test < 10:
            raise ValueError(f"Need n >= 10, d >= 1, seeds >= 1 and n_test >= 10; got n={n}, d={d}, "
                             f"seeds={seeds}, n_test={n_test}.")
        self.n, self.d = n, d
        self.widths = default_widths(n) if widths is None else np.asarray(sorted(set(int(p) for p in widths)))
        if self.widths.min() < 1:
            raise ValueError("All widths must be positive integers.")
        self._cache = []  # per seed: list over widths of (s, U^T f, U^T eps, F_test V, f_test)
        with _one_blas_thread():
            self._precompute(seeds, n_test, seed)
        self.fig, (self.ax_risk, self.ax_norm) = plt.subplots(1, 2, figsize=(9.5, 3.6))
        plt.close(self.fig)

    def _precompute(self, seeds: int, n_test: int, seed: int) -> None:
        n, d = self.n, self.d
        for k in range(seeds):
            rng = np.random.default_rng(seed + k)
            beta = rng.standard_normal(d)
            beta /= np.linalg.norm(beta)
            X, X_test = rng.standard_normal((n, d)), rng.standard_normal((n_test, d))
            eps = rng.standard_normal(n)
            W = rng.standard_normal((d, int(self.widths.max()))) / np.sqrt(d)
            F_all, F_test_all = relu_features(X, W), relu_features(X_test, W)
            f, f_test = X @ beta, X_test @ beta
            per_width = []
            for p in self.widths:
                U, s, Vt = np.linalg.svd(F_all[:, :p], full_matrices=False)
                keep = s > np.finfo(float).eps * max(n, p) * s[0]
                U, s, Vt = U[:, keep], s[keep], Vt[keep]
                per_width.append((s, U.T @ f, U.T @ eps, F_test_all[:, :p] @ Vt.T, f_test))
            self._cache.append(per_width)

    def curves(self, noise: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean test risk and mean read-out norm ``|a|`` for every width (``lam = 0``: minimum norm)."""
        if noise < 0 or lam < 0:
            raise ValueError(f"noise and lam must be >= 0; got noise={noise}, lam={lam}.")
        risk = np.zeros(len(self.widths))
        norm = np.zeros(len(self.widths))
        with _one_blas_thread():
            for per_width in self._cache:
                for j, (s, Uf, Ueps, FtV, f_test) in enumerate(per_width):
                    c = s / (s ** 2 + lam) * (Uf + noise * Ueps)  # read-out in the V basis
                    risk[j] += np.mean((FtV @ c - f_test) ** 2)
                    norm[j] += np.linalg.norm(c)
        return risk / len(self._cache), norm / len(self._cache)

    def draw(self, noise: float = 0.5, log10_lam: float = -8.0) -> plt.Figure:
        """Redraw both panels for a label noise level and a ridge strength ``10**log10_lam``."""
        lam = 10.0 ** log10_lam
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
        self.ax_risk.legend(fontsize=8, loc="upper right")
        self.ax_risk.set_title(f"label noise std = {noise:.2f}", fontsize=10)
        return self.fig

    def _setup_axes(self) -> None:
        ratio = self.widths / self.n
        self._lines = []
        for ax, label in ((self.ax_risk, "test risk (MSE vs clean target)"), (self.ax_norm, "norm of read-out |a|")):
            base, = ax.plot(ratio, np.ones_like(ratio), color="0.6", lw=1.5, label="minimum norm (no ridge)")
            cur, = ax.plot(ratio, np.ones_like(ratio), "o-", color="C3", ms=3)
            self._lines.append((base, cur))
            ax.axvline(1.0, color="k", ls="--", lw=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("features / samples  (p / n)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3, which="major")
        self.ax_norm.set_title("the peak is where the fit needs huge weights", fontsize=10)
        self.fig.tight_layout()

    def widget(self):
        """Sliders for label noise and log10 of the ridge strength, and the figure."""
        import ipywidgets as w
        from IPython.display import clear_output, display

        noise = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="label noise",
                              continuous_update=False)
        lam = w.FloatSlider(value=-8.0, min=-8.0, max=2.0, step=0.25, description="log10 lambda",
                            continuous_update=False)
        out = w.Output()

        def show(_=None) -> None:
            with out:
                clear_output(wait=True)
                display(self.draw(noise.value, lam.value))

        noise.observe(show, names="value")
        lam.observe(show, names="value")
        show()
        return w.VBox([w.HBox([noise, lam]), out])


def benchmark_redraw() -> float:
    """Milliseconds for one redraw after a slider moves (recompute both curves, draw)."""
    from ..widgets import render, time_call

    explorer = RandomFeaturesExplorer(n=100, seeds=3)
    values = iter(np.linspace(0.0, 1.0, 1000))

    def update() -> None:
        render(explorer.draw(noise=float(next(values)), log10_lam=-3.0))

    return time_call(update)
