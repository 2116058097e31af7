"""Numbers taught by lectures/L00_learning_recipe.ipynb, recomputed independently here, and the
interactive playground behind its section 8 (course_utils/demos/playground.py).

Where the notebook uses a from-scratch implementation (hinge loss, softmax, k-NN, the classifier
counts), the tests recompute the value with PyTorch, scikit-learn or a closed-form formula.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

matplotlib.use("Agg")

from course_utils.demos.playground import (
    ACTIVATIONS,
    TOY_DATASETS,
    Playground,  # noqa: E402
    benchmark_redraw,
    make_mlp,
)

NB = "lectures/L00_learning_recipe.ipynb"

# The worked example of section 4: rows cat, car, frog; one column per image (true classes cat, car, frog).
SCORES = torch.tensor([[3.2, 1.3, 2.2], [5.1, 4.9, 2.5], [-1.7, 2.0, -3.1]])
LABELS = torch.tensor([0, 1, 2])


@pytest.fixture(scope="module")
def rec(notebook_records):
    return notebook_records(NB)


# ----------------------------------------------------------------------------- section 2: k-NN
def test_knn_well_above_chance(rec):
    acc = {int(k): v for k, v in rec["knn_val_accuracy"].items()}
    chance = rec["knn_chance"]
    assert chance == pytest.approx(0.1)
    assert set(acc) >= {1, 3, 5, 101}
    assert min(acc.values()) > chance + 0.5, "every k should be far above guessing"
    assert max(acc.values()) > 0.9
    assert rec["knn_val_accuracy_k1_L1"] > chance + 0.5
    assert rec["knn_test_accuracy"] > 0.9


def test_k_is_chosen_on_validation_not_test(rec):
    """The prose: k is chosen on a validation split, the test set is used once, for the chosen k."""
    val = {int(k): v for k, v in rec["knn_val_accuracy"].items()}
    k = rec["knn_k_chosen"]
    assert val[k] == max(val.values()) and k == min(kk for kk, v in val.items() if v == val[k])
    # the prose: validation accuracy is best for small k and decays as k grows
    assert k <= 9 and val[101] < val[k] - 0.02


def test_knn_matches_sklearn(rec):
    from sklearn.neighbors import KNeighborsClassifier

    from course_utils import load_dataset

    train = load_dataset("digits", "train", verbose=False)
    test = load_dataset("digits", "test", verbose=False)
    Xtr, ytr = train.images.flatten(1).numpy(), train.labels.numpy()
    Xte, yte = test.images.flatten(1).numpy(), test.labels.numpy()
    sk = KNeighborsClassifier(n_neighbors=rec["knn_k_chosen"]).fit(Xtr, ytr).score(Xte, yte)
    assert rec["knn_test_accuracy"] == pytest.approx(sk, abs=1e-6)
    sk1 = KNeighborsClassifier(n_neighbors=1).fit(Xtr, ytr).score(Xte, yte)
    assert rec["knn_accuracy_k1_original"] == pytest.approx(sk1, abs=1e-6)


def test_knn_shift_hurts(rec):
    assert rec["knn_accuracy_k1_shifted"] < rec["knn_accuracy_k1_original"] - 0.1


def test_gradient_descent_by_hand_matches_torch_sgd(rec):
    assert rec["gd_vs_torch_sgd_max_gap"] < 1e-6
    assert rec["linear_digits_accuracy_gd"] > 0.85
    risk = rec["final_training_risk"]
    assert risk["gradient descent"] > risk["Adam"]  # the prose: GD gets less far in the same steps


# ----------------------------------------------------------------------------- section 3: linear classifier
def test_cifar_sized_linear_classifier(rec):
    assert rec["cifar_W_shape"] == [10, 3072]
    assert rec["cifar_linear_params"] == 10 * 3 * 32 * 32 + 10 == 30_730


def test_linear_classifier_on_digits(rec):
    assert rec["linear_digits_accuracy"] > 0.85


# ----------------------------------------------------------------------------- section 4: losses
def test_hinge_losses(rec):
    assert rec["hinge_losses"] == pytest.approx([2.9, 0.0, 12.9], abs=1e-4)
    assert rec["hinge_mean"] == pytest.approx((2.9 + 0.0 + 12.9) / 3, abs=1e-4)
    assert rec["hinge_mean"] == pytest.approx(5.27, abs=0.005)
    # PyTorch's MultiMarginLoss divides the same sum by the number of classes.
    torch_sum = nn.MultiMarginLoss(margin=1.0, reduction="none")(SCORES.T, LABELS) * 3
    assert rec["hinge_losses"] == pytest.approx(torch_sum.tolist(), abs=1e-5)
    assert rec["hinge_at_equal_scores"] == pytest.approx(2.0)


def test_softmax_and_cross_entropy(rec):
    probs = rec["softmax_probs_image1"]
    assert sum(probs) == pytest.approx(1.0, abs=1e-6)
    assert probs == pytest.approx(torch.softmax(SCORES[:, 0], dim=0).tolist(), abs=1e-6)
    assert probs == pytest.approx([0.13, 0.87, 0.0], abs=0.005)
    ce_torch = F.cross_entropy(SCORES[:, 0][None], LABELS[:1]).item()
    assert rec["ce_image1_ln"] == pytest.approx(ce_torch, rel=1e-6)
    assert rec["ce_image1_ln"] == pytest.approx(2.04, abs=0.005)
    # The slides' 0.89 is the base-10 version: log10(1 / p_cat).
    assert rec["ce_image1_log10"] == pytest.approx(math.log10(1 / probs[0]), rel=1e-6)
    assert rec["ce_image1_log10"] == pytest.approx(0.89, abs=0.005)
    assert rec["ce_image1_ln"] / rec["ce_image1_log10"] == pytest.approx(math.log(10), rel=1e-6)
    assert rec["ce_all_ln"] == pytest.approx(F.cross_entropy(SCORES.T, LABELS, reduction="none").tolist(), rel=1e-6)


def test_logistic_loss_needs_its_minus_sign(rec):
    """Issue 12: the NN/CNN deck's logistic loss lacks its minus sign; without it the loss falls as predictions worsen."""
    scores = rec["logistic_loss_scores"]
    with_minus, without_minus = rec["logistic_loss_with_minus"], rec["logistic_loss_without_minus"]
    assert with_minus == pytest.approx([math.log1p(math.exp(-s)) for s in scores], rel=1e-4)  # float32
    assert without_minus == pytest.approx([-v for v in with_minus], rel=1e-4)
    assert all(a < b for a, b in zip(with_minus, with_minus[1:]))  # scores go from right to wrong: loss rises
    assert all(a > b for a, b in zip(without_minus, without_minus[1:]))  # the slide's version falls


def test_regularisation(rec):
    r = rec["reg_example"]
    assert r["score_w1"] == r["score_w2"] == pytest.approx(1.0)
    assert (r["l2_w1"], r["l2_w2"]) == pytest.approx((1.0, 0.25))
    assert (r["l1_w1"], r["l1_w2"]) == pytest.approx((1.0, 1.0))
    d = rec["reg_digits"]
    assert d["L1"]["near_zero_fraction"] > d["L2"]["near_zero_fraction"] > d["none"]["near_zero_fraction"]
    assert d["L2"]["l2_norm"] < d["none"]["l2_norm"]
    assert all(v["test_accuracy"] > 0.8 for v in d.values())


# ----------------------------------------------------------------------------- section 5: OvR / OvO
def test_classifier_counts(rec):
    assert rec["ovr_count_K10"] == 10
    assert rec["ovo_count_K10"] == 10 * 9 // 2 == 45
    sk = rec["ovr_ovo_sklearn"]
    assert sk["one-vs-rest"]["classifiers"] == 10
    assert sk["one-vs-one"]["classifiers"] == 45
    assert min(v["test_accuracy"] for v in sk.values()) > 0.85


# ----------------------------------------------------------------------------- section 6: XOR
def test_xor_needs_a_hidden_layer(rec):
    assert rec["xor_accuracy_linear"] < 0.8
    assert rec["xor_accuracy_hidden"] > 0.95
    assert rec["xor_accuracy_handbuilt"] == 1.0


# ----------------------------------------------------------------------------- section 7: approximation
def test_constructive_error_shrinks_with_width(rec):
    err = sorted((int(n), e) for n, e in rec["ua_constructive_max_error"].items())
    values = [e for _, e in err]
    assert all(b < a for a, b in zip(values, values[1:])), f"not strictly decreasing: {err}"
    assert values[-1] < 0.05


def test_trained_error_shrinks_with_width(rec):
    rmse = sorted((int(w), e) for w, e in rec["ua_trained_rmse"].items())
    by_width = dict(rmse)
    assert by_width[1] > by_width[2] > by_width[4] > by_width[8], rmse
    assert rmse[-1][1] < rmse[0][1] / 10, rmse
    assert min(e for w, e in rmse if w >= 8) < 0.05


def test_depth_versus_width_sawtooth(rec):
    for row in rec["sawtooth"]:
        k = row["k"]
        assert row["pieces_deep"] == row["pieces_shallow"] == 2**k
        assert row["deep_params"] == 6 * k + 1
        assert row["shallow_units"] == 2**k
        assert row["shallow_params"] == 3 * 2**k + 1


# ----------------------------------------------------------------------------- section 8: playground
def test_notebook_playground_snapshot(rec):
    assert rec["playground_spirals_accuracy"] > 0.9


def test_playground_trains_xor():
    pg = Playground("xor", depth=1, width=8, activation="tanh", lr=0.03, noise=0.05)
    assert pg.accuracy() < 0.8  # untrained
    pg.train(300)
    assert pg.accuracy() > 0.95
    assert len(pg.losses) == 300 and pg.losses[-1] < pg.losses[0]


def test_playground_without_hidden_layer_fails_xor():
    pg = Playground("xor", depth=0, width=8, activation="tanh", lr=0.03, noise=0.05)
    pg.train(300)
    assert pg.accuracy() < 0.8


def test_benchmark_redraw_returns_positive_ms():
    ms = benchmark_redraw()
    assert isinstance(ms, float) and ms > 0


def test_playground_every_option_draws():
    for dataset in TOY_DATASETS:
        for activation in ACTIVATIONS:
            pg = Playground(dataset, depth=2, width=4, activation=activation, n=60, resolution=20)
            pg.train(2)
            assert pg.draw() is pg.fig
            assert pg.to_png()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fast_redraw_matches_a_full_draw():
    """The cached-background redraw must paint the same pixels as drawing the whole figure."""
    pg = Playground("spirals", depth=2, width=16, activation="relu")
    pg.draw()  # first draw: builds the background
    pg.train(120)
    pg.draw()  # fast path
    fast = np.asarray(pg.fig.canvas.buffer_rgba()).astype(int).copy()
    pg.fig.canvas.draw()  # everything from scratch
    full = np.asarray(pg.fig.canvas.buffer_rgba()).astype(int)
    differing = (np.abs(fast - full).max(axis=-1) > 8).mean()
    assert differing < 1e-3, f"{differing:.2%} of the pixels differ"


def test_playground_widget_reacts_to_controls():
    pytest.importorskip("ipywidgets")
    pg = Playground("xor", n=80, resolution=30)
    ui = pg.widget(steps_per_frame=3, frames=2)
    left, right = ui.children[0].children
    dataset, depth, width = left.children
    activation, lr, train_button = right.children
    image = ui.children[1]
    before = image.value
    width.value = 4
    assert pg.params["width"] == 4 and image.value != before
    dataset.value = "circles"
    assert pg.params["dataset"] == "circles"
    train_button.click()
    assert len(pg.losses) == 6 and not train_button.disabled


def test_bad_inputs_raise_helpful_errors():
    with pytest.raises(ValueError, match="activation"):
        make_mlp(2, 2, 1, 8, "swish")
    with pytest.raises(ValueError, match="depth"):
        make_mlp(2, 2, -1, 8, "relu")
    with pytest.raises(TypeError, match="width"):
        make_mlp(2, 2, 1, 8.5, "relu")
    with pytest.raises(ValueError, match="toy data set"):
        Playground("mnist")
    with pytest.raises(ValueError, match="learning rate"):
        Playground(lr=0)
    pg = Playground(n=40, resolution=20)
    with pytest.raises(ValueError, match="steps"):
        pg.train(-5)


def test_playground_survives_an_exploding_loss():
    """lr=10 with 8 ELU layers once crashed the redraw (a Python int too large for the log axis)."""
    pg = Playground("xor", depth=8, width=64, activation="elu", lr=10.0, resolution=20)
    pg.train(60)
    assert pg.to_png().startswith(b"\x89PNG")
    pg.losses += [3e25, 1e300]  # astronomically large but finite
    assert pg.to_png().startswith(b"\x89PNG")
    pg.losses.append(float("nan"))  # diverged
    assert pg.diverged
    assert pg.to_png().startswith(b"\x89PNG")
    assert "lower the learning rate" in pg._title.get_text()
    steps = len(pg.losses)
    pg.train(10)  # nothing to learn from nan weights: no further steps
    assert len(pg.losses) == steps
