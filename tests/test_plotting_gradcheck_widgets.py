"""Plot helpers, gradient checking and widget helpers."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

import course_utils as cu
from course_utils.demos.playground import Playground, benchmark_redraw, make_mlp


def test_show_images_draws_labelled_grid(tmp_path):
    X, y = cu.make_shapes10(10)
    fig = cu.show_images(X, y, cu.SHAPES10_CLASSES, ncols=4, title="grid")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 10 and len(fig.axes) == 12
    assert shown[0].get_title() == cu.SHAPES10_CLASSES[int(y[0])]
    path = cu.save_figure(fig, tmp_path / "sub" / "grid.png")
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="2 labels"):
        cu.show_images(X[:3], y[:2])
    with pytest.raises(ValueError, match="no images"):
        cu.show_images([])


def test_show_images_rescales_standardised_images():
    fig = cu.show_images(torch.randn(2, 1, 8, 8) * 5)
    data = fig.axes[0].images[0].get_array()
    assert data.min() >= 0 and data.max() <= 1


def test_plot_history_and_decision_regions():
    hist = cu.History(train_loss=[1.0, 0.5], train_acc=[0.5, 0.8], val_loss=[1.1, 0.7], val_acc=[0.4, 0.7])
    fig = cu.plot_history(hist, "run")
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 2
    X, y = cu.make_toy_2d("xor", 50)
    ax = cu.plot_decision_regions(lambda pts: (pts[:, 0] * pts[:, 1] > 0).long(), X, y, resolution=30)
    assert ax.collections  # contour + scatter
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        cu.plot_decision_regions(lambda p: p, np.zeros((5, 3)), np.zeros(5))


def test_numerical_gradient_matches_analytic():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 4))
    x = rng.normal(size=4)
    f = lambda v: float(v @ A @ v)  # noqa: E731
    num = cu.numerical_gradient(f, x)
    assert cu.relative_error(num, (A + A.T) @ x) < 1e-8


def test_numerical_gradient_array_checks_a_layer_backward():
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(3, 5)), rng.normal(size=(5, 2))
    dout = rng.normal(size=(3, 2))
    num = cu.numerical_gradient_array(lambda z: z @ w, x, dout)
    assert cu.relative_error(num, dout @ w.T) < 1e-8
    with pytest.raises(ValueError, match="must match"):
        cu.numerical_gradient_array(lambda z: z @ w, x, dout[:2])


def test_gradcheck_catches_a_bug_and_rejects_bad_input():
    x = np.linspace(-1, 1, 6)
    wrong = np.cos(x) * 2
    assert cu.relative_error(cu.numerical_gradient(lambda v: np.sin(v).sum(), x), wrong) > 0.1
    with pytest.raises(TypeError, match="float64"):
        cu.numerical_gradient(lambda v: v.sum(), x.astype(np.float32))
    with pytest.raises(TypeError, match="NumPy array"):
        cu.numerical_gradient(lambda v: v, [1.0])
    with pytest.raises(ValueError, match="shapes"):
        cu.relative_error(np.zeros(2), np.zeros(3))


def test_time_call_and_render():
    calls = []
    ms = cu.time_call(lambda: calls.append(1), repeats=3, warmup=1)
    assert ms >= 0 and len(calls) == 4
    with pytest.raises(ValueError):
        cu.time_call(lambda: None, repeats=0)
    fig = cu.plot_history(cu.History(train_loss=[1.0], train_acc=[0.5]))
    import matplotlib.pyplot as plt

    plt.close(fig)  # a closed figure must still really be drawn
    cu.render(fig)
    assert fig.canvas.get_renderer() is not None and cu.time_call(lambda: cu.render(fig), repeats=2) > 0.05


def test_playground_linear_fails_xor_hidden_layer_solves_it():
    pg = Playground(dataset="xor", depth=0, width=8, activation="tanh", lr=0.03)
    pg.train(300)
    linear = pg.accuracy()
    pg.reset(dataset="xor", depth=1, width=8, activation="tanh", lr=0.03)
    pg.train(300)
    assert linear < 0.8 < 0.95 < pg.accuracy()
    assert len(pg.draw().axes) == 2
    assert benchmark_redraw() > 0


def test_make_mlp_and_playground_errors():
    assert sum(p.numel() for p in make_mlp(2, 3, depth=2, width=4, activation="relu").parameters()) == (2 * 4 + 4) + (
        4 * 4 + 4
    ) + (4 * 3 + 3)
    with pytest.raises(ValueError, match="Unknown activation"):
        make_mlp(2, 2, 1, 4, "swish")
    with pytest.raises(ValueError, match="depth must be"):
        make_mlp(2, 2, -1, 4, "relu")
    with pytest.raises(ValueError, match="Unknown toy data set"):
        Playground(dataset="iris")


def test_one_thread_restores_the_previous_setting():
    import torch

    before = torch.get_num_threads()
    with cu.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with cu.one_thread():
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before
