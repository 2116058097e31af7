"""A1 Backprop from scratch: the reference solution against PyTorch, and the numbers the notebook records.

The grading pipeline (release, hidden tests, autograding) is tested in tests/test_nbgrader_pipeline.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nbgrader_helpers import solution_namespace

NB = "solutions/A1_backprop/A1_backprop.ipynb"
CELLS = ["affine_forward", "affine_backward", "relu", "sigmoid", "softmax_loss", "a1_init_net", "two_layer_loss"]


@pytest.fixture(scope="module")
def sol():
    return solution_namespace("A1_backprop", CELLS)


@pytest.fixture(scope="module")
def rec(notebook_records):
    return notebook_records(NB)


def _t(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("shape, m", [((4, 6), 3), ((2, 3, 4, 5), 7), ((1, 1), 1)])
def test_affine_matches_torch(sol, shape, m):
    rng = np.random.default_rng(len(shape) + m)
    x, w, b = rng.normal(size=shape), rng.normal(size=(int(np.prod(shape[1:])), m)), rng.normal(size=m)
    dout = rng.normal(size=(shape[0], m))
    out, cache = sol["affine_forward"](x, w, b)
    xt, wt, bt = _t(x), _t(w), _t(b)
    ref = xt.reshape(shape[0], -1) @ wt + bt
    ref.backward(torch.from_numpy(dout))
    assert np.allclose(out, ref.detach().numpy())
    for mine, theirs in zip(sol["affine_backward"](dout, cache), (xt, wt, bt)):
        assert np.allclose(mine, theirs.grad.numpy())


@pytest.mark.parametrize("name, torch_fn", [("relu", torch.relu), ("sigmoid", torch.sigmoid)])
def test_activations_match_torch(sol, name, torch_fn):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4)) * 3
    x[0, :2] = 0.0  # ReLU's kink: PyTorch's gradient there is 0
    dout = rng.normal(size=x.shape)
    out, cache = sol[f"{name}_forward"](x)
    xt = _t(x)
    torch_fn(xt).backward(torch.from_numpy(dout))
    assert np.allclose(out, torch_fn(torch.from_numpy(x)).numpy())
    assert np.allclose(sol[f"{name}_backward"](dout, cache), xt.grad.numpy())


@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_softmax_loss_matches_torch_cross_entropy(sol, scale):
    rng = np.random.default_rng(2)
    scores, y = scale * rng.normal(size=(8, 5)), rng.integers(5, size=8)
    loss, dscores = sol["softmax_loss"](scores, y)
    st = _t(scores)
    ref = F.cross_entropy(st, torch.from_numpy(y))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-10)
    assert np.allclose(dscores, st.grad.numpy())


def test_two_layer_net_matches_torch_autograd(sol):
    rng = np.random.default_rng(3)
    params = sol["init_two_layer_net"](6, 9, 4, weight_scale=0.5, seed=3)
    X, y, reg = rng.normal(size=(7, 6)), rng.integers(4, size=7), 0.3
    loss, grads = sol["two_layer_loss"](params, X, y, reg=reg)
    p = {k: _t(v) for k, v in params.items()}
    model = torch.nn.Sequential(torch.nn.Linear(6, 9), torch.nn.ReLU(), torch.nn.Linear(9, 4)).double()
    with torch.no_grad():  # the same network as an nn.Module (Linear stores W transposed)
        model[0].weight.copy_(p["W1"].T), model[0].bias.copy_(p["b1"])
        model[2].weight.copy_(p["W2"].T), model[2].bias.copy_(p["b2"])
    ref = F.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(y)) + 0.5 * reg * (
        model[0].weight.square().sum() + model[2].weight.square().sum()
    )
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-10)
    assert np.allclose(grads["W1"], model[0].weight.grad.numpy().T)
    assert np.allclose(grads["b1"], model[0].bias.grad.numpy())
    assert np.allclose(grads["W2"], model[2].weight.grad.numpy().T)
    assert np.allclose(grads["b2"], model[2].bias.grad.numpy())
    assert np.allclose(sol["two_layer_loss"](params, X), model(torch.from_numpy(X)).detach().numpy())


def test_recorded_gradient_checks(rec):
    assert rec["A1_affine_gradcheck_max_rel_error"] < 1e-7
    assert rec["A1_buggy_db_rel_error"] > 1e-2  # the deliberate bug is caught
    assert rec["A1_initial_softmax_loss"] == pytest.approx(math.log(10), abs=1e-2)


def test_recorded_training_result(rec):
    assert rec["A1_dataset"] in ("digits", "mnist")
    assert rec["A1_val_accuracy"] >= 0.90 and rec["A1_test_accuracy"] >= 0.85
    d = 64 if rec["A1_dataset"] == "digits" else 784
    assert rec["A1_n_params"] == d * 100 + 100 + 100 * 10 + 10
