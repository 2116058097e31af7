"""Numbers taught by lectures/L11_support_vector_machines.ipynb, recomputed independently where that is cheap.

The notebook solves the SVM primal and dual with SciPy's SLSQP and checks them against scikit-learn; here the
recorded values are checked against closed forms (distance, lambda = 1/(2CN), feature counts), against
scikit-learn run again on the same data, and against the claims the lecture's prose makes (margins shrink as C
grows, CNN features beat pixels for a linear SVM, ...).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.svm import SVC

NB = "lectures/L11_support_vector_machines.ipynb"


@pytest.fixture(scope="module")
def rec(notebook_records):
    return notebook_records(NB)


def _separable_data():
    # The data of sections 2-3, built exactly as in the notebook.
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal([1.5, 1.5], 0.6, size=(10, 2)), rng.normal([-1.0, -0.5], 0.6, size=(10, 2))])
    return X, np.r_[np.ones(10), -np.ones(10)]


# ----------------------------------------------------------------------------- section 1: geometry
def test_distance_example(rec):
    # w = (3, 4), b = -5, x = (3, 2): score 9 + 8 - 5 = 12, ||w|| = 5, distance 12/5
    assert rec["distance_example"]["score"] == pytest.approx(12.0)
    assert rec["distance_example"]["distance"] == pytest.approx(2.4)


# ----------------------------------------------------------------------------- sections 2-3: primal and dual
def test_hard_margin_matches_sklearn(rec):
    X, y = _separable_data()
    svc = SVC(kernel="linear", C=1e6, tol=1e-8).fit(X, y)
    assert rec["hard_margin_width"] == pytest.approx(2 / np.linalg.norm(svc.coef_[0]), rel=1e-5)
    assert rec["hard_margin_width"] == pytest.approx(2 * rec["hard_margin_closest_distance"], rel=1e-6)
    assert rec["hard_margin_support_count"] == len(svc.support_) == 3
    assert rec["primal_vs_sklearn_same_support"] is True
    assert rec["primal_vs_sklearn_w_gap"] < 1e-4 and rec["primal_vs_sklearn_b_gap"] < 1e-4


def test_another_separating_line_has_a_smaller_margin(rec):
    assert 0 < rec["turned_line_margin"] < rec["hard_margin_width"]


def test_dual(rec):
    alphas = rec["dual_alpha_support"]
    assert len(alphas) == rec["hard_margin_support_count"] and min(alphas) > 1e-3
    assert rec["dual_same_support"] is True
    assert rec["dual_vs_primal_w_gap"] < 1e-4
    assert abs(rec["dual_alpha_y_sum"]) < 1e-8
    assert rec["dual_decision_function_gap"] < 1e-4
    # ||w||^2 = sum_i alpha_i y_i x_i.w = sum_i alpha_i (1 - y_i b) = sum(alpha), so sum(alpha) = 4 / margin^2
    assert sum(alphas) == pytest.approx(4 / rec["hard_margin_width"] ** 2, rel=1e-4)


# ----------------------------------------------------------------------------- section 4: lifting
def test_lifting_separates_what_no_threshold_does(rec):
    assert rec["lift_best_threshold_accuracy"] < 0.8
    assert rec["lift_svm_accuracy"] == 1.0
    lo, hi = rec["lift_thresholds"]
    assert -1.6 < lo < -1.0 and 1.0 < hi < 1.6  # between the middle group [-1, 1] and the outer ones (|x| > 1.6)


# ----------------------------------------------------------------------------- section 5: kernel trick
def test_kernel_trick(rec):
    k = rec["kernel_trick"]
    assert k["poly_gram_gap"] < 1e-10 and k["hi_gram_gap"] == 0.0
    assert k["rbf_min_eigenvalue"] > -1e-10
    assert rec["kernel_vs_explicit_decision_gap"] < 1e-6
    assert {int(d): n for d, n in rec["poly_feature_counts"].items()} == {d: math.comb(64 + d, d) for d in (2, 3, 4)}


# ----------------------------------------------------------------------------- section 6: decision regions
def test_kernel_decision_regions(rec):
    r = rec["kernel_regions"]
    assert r["linear"]["train_accuracy"] < 0.7
    assert r["linear"]["support_vectors"] >= 0.9 * 200  # (nearly) every point
    for name in ("polynomial, degree 2", "RBF, gamma = 2", "histogram intersection"):
        assert r[name]["train_accuracy"] > 0.97, name
        assert r[name]["support_vectors"] < r["linear"]["support_vectors"], name


# ----------------------------------------------------------------------------- section 7: soft margin
def test_soft_margin_trend(rec):
    soft = {float(c): v for c, v in rec["soft_margin"].items()}
    Cs = sorted(soft)
    assert Cs == [0.01, 0.1, 1.0, 100.0]
    for key in ("margin", "support_vectors", "in_street", "total_slack"):
        values = [soft[c][key] for c in Cs]
        assert all(a > b for a, b in zip(values, values[1:])), f"{key} should fall as C grows: {values}"
    assert all(soft[c]["misclassified"] <= 10 for c in Cs)  # "stays small" (100 points)
    assert all(soft[c]["misclassified"] >= 1 for c in Cs)  # overlapping clouds: unavoidable errors


def test_soft_margin_table_matches_a_fresh_fit(rec):
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal([1, 1], 1.0, size=(50, 2)), rng.normal([-1, -1], 1.0, size=(50, 2))])
    y = np.r_[np.ones(50), -np.ones(50)]
    for c, row in rec["soft_margin"].items():
        clf = SVC(kernel="linear", C=float(c)).fit(X, y)
        slack = np.maximum(0, 1 - y * clf.decision_function(X))
        assert row["margin"] == pytest.approx(2 / np.linalg.norm(clf.coef_[0]), rel=1e-6)
        assert row["support_vectors"] == len(clf.support_)
        assert row["total_slack"] == pytest.approx(slack.sum(), rel=1e-6)
        assert row["misclassified"] == int((slack > 1).sum()) == int((clf.predict(X) != y).sum())


def test_lambda_of_L00(rec):
    assert rec["lambda_of_L00_linearsvc"] == pytest.approx(1 / (2 * 0.1 * 1438))


# ----------------------------------------------------------------------------- section 8: C and gamma
def test_rbf_grid_from_too_simple_to_too_wiggly(rec):
    g = rec["rbf_grid"]
    simple, wiggly = g["C=0.1, gamma=0.1"], g["C=100, gamma=30"]
    assert wiggly["train"] > 0.98 and wiggly["train"] - wiggly["val"] > 0.05  # overfits
    assert simple["train"] < 0.85  # too simple
    best = rec["rbf_grid_best"]
    assert g[best]["val"] == max(v["val"] for v in g.values())
    assert g[best]["val"] > simple["val"] and g[best]["val"] > wiggly["val"]


# ----------------------------------------------------------------------------- section 9: hinge loss
def test_hinge_link(rec):
    assert rec["binary_vs_multiclass_hinge_gap"] < 1e-12
    link = rec["hinge_link"]
    assert link["w_gap"] < 1e-3 and link["b_gap"] < 1e-3
    assert link["objective_subgradient"] >= link["objective_svc"] - 1e-6
    assert link["objective_subgradient"] - link["objective_svc"] < 1e-3


# ----------------------------------------------------------------------------- section 10: CNN features
def test_svm_on_cnn_features(rec):
    r = rec["cnn_features_svm"]
    assert rec["cnn_feature_size"] == 128
    lin_pix, lin_cnn = r["linear SVM on pixels"], r["linear SVM on CNN features"]
    assert lin_cnn["test"] > lin_pix["test"]
    assert lin_cnn["test, shifted 1 px"] > lin_pix["test, shifted 1 px"] + 0.1  # "much better" under a shift
    # the RBF kernel helps most on pixels
    gain_pixels = r["RBF SVM on pixels"]["test"] - lin_pix["test"]
    gain_cnn = r["RBF SVM on CNN features"]["test"] - lin_cnn["test"]
    assert gain_pixels > gain_cnn and gain_pixels > 0
    for name, acc in r.items():
        assert acc["test"] > 0.85, name
        assert acc["test, shifted 1 px"] < acc["test"], name
