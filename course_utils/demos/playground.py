"""A small "neural network playground" for 2-D toy data (used in lecture L0).

Pick a data set, depth, width, activation and learning rate; train a multilayer perceptron
live and watch its decision region change.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from ..plotting import decision_grid
from ..standins import make_toy_2d

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "softplus": nn.Softplus,
}
TOY_DATASETS = ("xor", "circles", "moons", "spirals")


def make_mlp(in_features: int, out_features: int, depth: int, width: int, activation: str) -> nn.Sequential:
    """An MLP with ``depth`` hidden layers of ``width`` units (``depth=0``: a linear classifier)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}.")
    if depth < 0 or width < 1:
        raise ValueError(f"depth must be >= 0 and width >= 1, got depth={depth}, width={width}.")
    layers: list[nn.Module] = []
    size = in_features
    for _ in range(depth):
        layers += [nn.Linear(size, width), ACTIVATIONS[activation]()]
        size = width
    layers.append(nn.Linear(size, out_features))
    return nn.Sequential(*layers)


class Playground:
    """Train an MLP on 2-D toy data and draw its decision region."""

    def __init__(self, dataset: str = "xor", depth: int = 1, width: int = 8, activation: str = "tanh",
                 lr: float = 0.03, n: int = 300, noise: float = 0.15, seed: int = 0, resolution: int = 90):
        self.resolution = resolution
        self.fig, (self.ax_region, self.ax_loss) = plt.subplots(1, 2, figsize=(8, 3.6),
                                                                gridspec_kw={"width_ratios": [1, 1.1]})
        plt.close(self.fig)
        self.reset(dataset=dataset, depth=depth, width=width, activation=activation, lr=lr, n=n,
                   noise=noise, seed=seed)

    def reset(self, *, dataset: str, depth: int, width: int, activation: str, lr: float,
              n: int = 300, noise: float = 0.15, seed: int = 0) -> None:
        """Build new data and a freshly initialised model."""
        if dataset not in TOY_DATASETS:
            raise ValueError(f"Unknown toy data set {dataset!r}; choose one of {', '.join(TOY_DATASETS)}.")
        if lr <= 0:
            raise ValueError(f"The learning rate must be positive, got {lr}.")
        self.params = dict(dataset=dataset, depth=depth, width=width, activation=activation, lr=lr)
        self.X, self.y = make_toy_2d(dataset, n=n, noise=noise, seed=seed)
        torch.manual_seed(seed)
        self.model = make_mlp(2, int(self.y.max()) + 1, depth, width, activation)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.losses: list[float] = []
        self._xx, self._yy, self._grid = decision_grid(self.X.numpy(), self.resolution)

    def train(self, steps: int = 100) -> float:
        """Full-batch Adam steps; returns the final training loss."""
        loss_fn = nn.CrossEntropyLoss()
        for _ in range(steps):
            loss = loss_fn(self.model(self.X), self.y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.losses.append(loss.item())
        return self.losses[-1] if self.losses else float("nan")

    @torch.no_grad()
    def accuracy(self) -> float:
        return float((self.model(self.X).argmax(1) == self.y).float().mean())

    @torch.no_grad()
    def draw(self) -> plt.Figure:
        """Redraw both panels (decision region with data; loss curve) and return the figure."""
        ax = self.ax_region
        ax.clear()
        probs = torch.softmax(self.model(self._grid), dim=1)
        k = probs.shape[1]
        y = self.y.numpy()
        cmap = plt.get_cmap("coolwarm" if k == 2 else "viridis", k)
        if k == 2:  # show confidence, not only the argmax
            ax.contourf(self._xx, self._yy, probs[:, 1].reshape(self._xx.shape).numpy(),
                        levels=np.linspace(0, 1, 11), cmap="coolwarm", alpha=0.45)
        else:
            ax.contourf(self._xx, self._yy, probs.argmax(1).reshape(self._xx.shape).numpy(),
                        levels=np.arange(k + 1) - 0.5, cmap=cmap, alpha=0.35)
        X = self.X.numpy()
        ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, vmin=-0.5, vmax=k - 0.5, s=10, edgecolors="k",
                   linewidths=0.3)
        p = self.params
        ax.set_title(f"{p['dataset']}: depth {p['depth']}, width {p['width']}, {p['activation']}\n"
                     f"accuracy {self.accuracy():.0%} after {len(self.losses)} steps", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        self.ax_loss.clear()
        self.ax_loss.plot(self.losses, color="C0")
        self.ax_loss.set_xlabel("step")
        self.ax_loss.set_ylabel("training loss")
        self.ax_loss.set_yscale("log")
        self.ax_loss.grid(alpha=0.3)
        self.fig.tight_layout()
        return self.fig

    def widget(self, steps_per_frame: int = 25, frames: int = 12):
        """An ipywidgets UI: controls, a Train button that animates training, and the figure."""
        import ipywidgets as w
        from IPython.display import clear_output, display

        style = {"description_width": "90px"}
        controls = {
            "dataset": w.Dropdown(options=TOY_DATASETS, value=self.params["dataset"], description="data", style=style),
            "depth": w.IntSlider(value=self.params["depth"], min=0, max=4, description="hidden layers", style=style),
            "width": w.IntSlider(value=self.params["width"], min=1, max=64, description="width", style=style),
            "activation": w.Dropdown(options=list(ACTIVATIONS), value=self.params["activation"],
                                     description="activation", style=style),
            "lr": w.FloatLogSlider(value=self.params["lr"], base=10, min=-4, max=0, description="learning rate",
                                   style=style),
        }
        train_button = w.Button(description=f"Train {steps_per_frame * frames} steps", button_style="primary")
        out = w.Output()

        def show() -> None:
            with out:
                clear_output(wait=True)
                display(self.draw())

        def on_change(_=None) -> None:
            self.reset(**{k: c.value for k, c in controls.items()})
            show()

        def on_train(_=None) -> None:
            for _ in range(frames):
                self.train(steps_per_frame)
                show()

        for c in controls.values():
            c.observe(on_change, names="value")
        train_button.on_click(on_train)
        show()
        return w.VBox([w.HBox([w.VBox(list(controls.values())[:3]),
                               w.VBox(list(controls.values())[3:] + [train_button])]), out])


def benchmark_redraw() -> float:
    """Milliseconds for one redraw after a control changes (new data and model, then draw)."""
    from ..widgets import render, time_call

    pg = Playground()

    def update() -> None:
        pg.reset(dataset="circles", depth=2, width=16, activation="relu", lr=0.03)
        render(pg.draw())

    return time_call(update)
