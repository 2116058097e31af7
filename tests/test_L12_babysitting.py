"""Lecture L12 (babysitting a network, from MNIST to street numbers): the numbers and verdicts it teaches.

Two kinds of tests:

* the values the notebook recorded, in fast mode: the collapse of SGD on raw SVHN pixels and its fixes, the
  curvature that explains it, the CNNs against the linear models, over-fitting and dropout, the learning-rate
  search and the MNIST comparison. Only claims that hold for any reasonable run are asserted, with margins;
* the notebook's own helpers (cells tagged ``scratch``: the linear training loop and its diagnosis, the
  largest-eigenvalue computation, the three CNNs), executed here on small synthetic inputs and checked against
  NumPy/PyTorch independently of the notebook.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import load_scratch_cells
from course_utils import fast_or_full, is_fast_mode

NB = "lectures/L12_babysitting_mnist_to_svhn.ipynb"
SCRATCH_NAMES = (
    "OPTIMISERS",
    "flat",
    "train_linear",
    "diagnose",
    "largest_eigenvalue",
    "cnn_cf",
    "cnn_cnf",
    "cnn_cpncpnff",
    "n_params",
    "WIDTH",
    "HIDDEN",
)


@pytest.fixture(scope="module")
def r(notebook_records):
    return notebook_records(NB)


@pytest.fixture(scope="module")
def scratch():
    return load_scratch_cells(
        NB,
        required=SCRATCH_NAMES,
        preload={"torch": torch, "np": np, "nn": nn, "F": F, "fast_or_full": fast_or_full, "ON_GPU": False},
    )


# ----------------------------------------------------------------------------------------------
# Recorded values
# ----------------------------------------------------------------------------------------------
def test_data_sizes_and_the_stand_in_is_declared(r):
    sizes = r["data_sizes"]
    assert r["cnn_width"] in (8, 16, 64)
    if is_fast_mode():
        assert sizes["svhn_train"] == 800 and sizes["svhn_val"] == 500
        assert sizes["mnist_test"] == 1000
    assert sizes["svhn_is_standin"] in (True, False)


def test_logistic_regression_works_on_mnist(r):
    m = r["logreg_sgd_mnist"]
    assert m["acc"] > 0.85
    assert m["top_share"] < 0.2  # predictions spread over the classes


def test_sgd_on_raw_svhn_pixels_collapses_to_one_class(r):
    s, m = r["logreg_sgd_svhn"], r["logreg_sgd_mnist"]
    assert r["logreg_sgd_svhn_collapsed"] is True
    assert s["top_share"] > 0.4  # over four times the fair share of one class in ten
    assert s["acc"] < 0.25
    assert s["mean_abs_logit"] > 10 * m["mean_abs_logit"]  # the logit-histogram symptom


def test_the_mean_image_direction_is_far_steeper_on_svhn(r):
    c = r["largest_eigenvalue"]
    assert r["eigenvalue_ratio_svhn_to_mnist"] == pytest.approx(c["svhn"] / c["mnist"])
    assert r["eigenvalue_ratio_svhn_to_mnist"] > 10
    assert r["eigenvalue_drop_from_centring_svhn"] > 5
    assert c["mnist_centred"] < c["mnist"]


def test_mean_subtraction_and_adam_fix_the_collapse(r):
    grid, verdicts = r["linear_svhn_grid"], r["linear_svhn_verdicts"]
    assert set(grid) == {f"{o}, {c}" for o in ("SGD", "RMSProp", "Adam") for c in ("raw", "centred")}
    assert grid["SGD, raw"]["top_share"] > 0.4
    assert verdicts["SGD, raw"] in ("collapsed", "skewed")
    for opt in ("SGD", "RMSProp", "Adam"):
        assert verdicts[f"{opt}, centred"] != "collapsed"
        assert grid[f"{opt}, centred"]["top_share"] < grid[f"{opt}, raw"]["top_share"]
    assert r["centring_stops_the_collapse_for_every_optimiser"] is True
    assert r["adam_alone_reduces_the_collapse"] is True
    assert grid["Adam, centred"]["top_share"] < 0.3
    assert grid["Adam, centred"]["acc"] > grid["SGD, raw"]["acc"]


def test_cnns_beat_every_linear_model(r):
    cnn = r["cnn_svhn"]
    assert r["cnn_beats_linear"] is True
    best_linear = max(g["acc"] for g in r["linear_svhn_grid"].values())
    for name in ("cnn_cf", "cnn_cnf"):
        assert cnn[name]["val_acc"] > best_linear + 0.1
        assert cnn[name]["train_acc"] > cnn[name]["val_acc"]  # memorising the small training set
    width = r["cnn_width"]
    assert cnn["cnn_cf"]["params"] == 3 * 25 * width + width + width * 32 * 32 * 10 + 10
    assert cnn["cnn_cnf"]["params"] == cnn["cnn_cf"]["params"] + 2 * width  # batch norm's scale and shift


def test_the_deep_cnn_overfits_and_dropout_helps(r):
    deep = r["deep_cnn"]
    nd, dr = deep["no dropout"], deep["dropout"]
    assert r["deep_cnn_overfits"] is True
    assert nd["train_acc"] > 0.95
    assert nd["gap"] > 0.1
    assert nd["val_loss"] > nd["best_val_loss"] + 0.05  # the validation loss turned up
    assert r["dropout_helps"] is True
    assert dr["val_loss"] < nd["val_loss"] - 0.1
    assert dr["gap"] < nd["gap"]


def test_the_learning_rate_search_brackets_its_best_value(r):
    accs = r["search_val_acc"]
    assert len(accs) == 6
    assert r["search_best_is_inside_the_range"] is True
    assert 1e-4 < r["search_best_lr"] < 3e-2
    assert r["search_spread"] > 0.1


def test_the_test_set_agrees_with_validation(r):
    test_acc, val_acc = r["svhn_test_acc_dropout_net"], r["deep_cnn"]["dropout"]["val_acc"]
    assert test_acc > 0.4
    assert abs(test_acc - val_acc) < 0.15


def test_on_mnist_the_cnn_beats_logistic_regression(r):
    cmp = r["mnist_comparison"]
    assert r["mnist_cnn_beats_logreg"] is True
    assert cmp["cnn_cf"]["acc"] > cmp["logreg"]["acc"] + 0.02
    assert cmp["logreg"]["params"] == 28 * 28 * 10 + 10
    width = r["cnn_width"]
    assert cmp["cnn_cf"]["params"] == 25 * width + width + width * 28 * 28 * 10 + 10
    assert cmp["cnn_cf_64_filters_params"] == 503_434


# ----------------------------------------------------------------------------------------------
# The notebook's helpers, checked independently
# ----------------------------------------------------------------------------------------------
def test_largest_eigenvalue_matches_numpy(scratch):
    rows = torch.rand(200, 15)
    with_bias = np.c_[rows.numpy().astype(np.float64), np.ones(200)]
    expected = np.linalg.eigvalsh(with_bias.T @ with_bias / 200)[-1]
    assert scratch["largest_eigenvalue"](rows) == pytest.approx(expected, rel=1e-9)
    wide = torch.rand(6, 40)  # fewer rows than columns: the smaller Gram matrix is used
    with_bias = np.c_[wide.numpy().astype(np.float64), np.ones(6)]
    assert scratch["largest_eigenvalue"](wide) == pytest.approx(
        np.linalg.eigvalsh(with_bias.T @ with_bias / 6)[-1], rel=1e-9
    )


def test_flat_subtracts_the_per_channel_mean(scratch):
    images = torch.rand(4, 3, 2, 2)
    mean = torch.tensor([0.1, 0.2, 0.3])
    rows = scratch["flat"](images, mean)
    assert rows.shape == (4, 12)
    assert torch.allclose(rows.view(4, 3, 4), (images - mean.view(1, 3, 1, 1)).view(4, 3, 4))
    assert torch.equal(scratch["flat"](images), images.flatten(1))


def test_train_linear_learns_separable_data_and_diagnose_counts(scratch):
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 10
    X = F.one_hot(y, 10).float() * 3 + 0.1 * torch.randn(300, 10, generator=gen)
    model, monitor = scratch["train_linear"](X, y, "Adam", lr=0.05, steps=60, batch_size=50)
    assert len(monitor["loss"]) == len(monitor["max_abs_logit"]) == 60
    assert monitor["loss"][-1] < monitor["loss"][0]
    d = scratch["diagnose"](model, X, y)
    assert d["acc"] > 0.95
    assert d["top_share"] == pytest.approx(0.1, abs=0.02)
    constant = nn.Linear(10, 10)
    with torch.no_grad():
        constant.weight.zero_()
        constant.bias.copy_(torch.arange(10.0))
    assert scratch["diagnose"](constant, X, y)["top_share"] == 1.0
    assert scratch["diagnose"](constant, X, y)["top_class"] == 9
    with pytest.raises(ValueError, match="optimiser"):
        scratch["train_linear"](X, y, "LBFGS")


def test_the_three_cnns_have_the_taught_shapes(scratch):
    x_svhn, x_mnist = torch.rand(2, 3, 32, 32), torch.rand(2, 1, 28, 28)
    for make in ("cnn_cf", "cnn_cnf"):
        assert scratch[make]()(x_svhn).shape == (2, 10)
        assert scratch[make](in_channels=1, size=28)(x_mnist).shape == (2, 10)
    deep = scratch["cnn_cpncpnff"](0.5)
    assert deep(x_svhn).shape == (2, 10)
    assert sum(isinstance(m, nn.Dropout) for m in deep) == 3  # before each dense layer
    assert sum(isinstance(m, nn.Conv2d) for m in deep) == 2
    assert sum(isinstance(m, nn.Linear) for m in deep) == 3
    convs = [m for m in scratch["cnn_cf"](width=64) if isinstance(m, nn.Conv2d)]
    assert convs[0].kernel_size == (5, 5) and convs[0].out_channels == 64
    no_drop = scratch["cnn_cpncpnff"](0.0).eval()
    assert torch.equal(no_drop(x_svhn), no_drop(x_svhn))
