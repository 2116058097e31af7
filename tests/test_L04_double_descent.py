"""Numbers taught in lecture L4 (double descent), and the double-descent demo module."""

import numpy as np
import pytest

from course_utils.demos.double_descent import (
    RandomFeaturesExplorer,
    benchmark_redraw,
    default_widths,
    min_norm_lstsq,
    relu_features,
)

NB = "lectures/L04_double_descent.ipynb"


@pytest.fixture(scope="module")
def r(notebook_records):
    return notebook_records(NB)


def _near_threshold(widths, n, low=0.8, high=1.25):
    ratio = np.asarray(widths) / n
    return (ratio >= low) & (ratio <= high)


# ----------------------------------------------------------------- section 1: polynomials
def test_polynomial_solvers_match_torch(r):
    assert r["poly_ridge_vs_torch_rel_diff"] < 1e-6


def test_rms_table_shape_and_training_error_decreases(r):
    assert r["poly_degrees"] == list(range(10))
    for N in ("15", "100"):
        train, test = np.array(r["poly_rms_train"][N]), np.array(r["poly_rms_test"][N])
        assert train.shape == test.shape == (10,)
        # a higher degree contains every lower one: the training error can only go down
        assert np.all(np.diff(train) <= 1e-9), train
        assert train[9] < train[0]
    small_test = np.array(r["poly_rms_test"]["15"])
    # the classical U on 15 points: degree 3 beats both degree 0 and degree 9
    assert small_test[3] < small_test[0] and small_test[3] < small_test[9]
    # on 100 points degree 9 is about as good as degree 3
    large_test = np.array(r["poly_rms_test"]["100"])
    assert large_test[9] < 1.15 * large_test[3]


def test_degree9_coefficients_explode_and_ridge_tames_them(r):
    plain, ridge = r["poly_max_abs_coef_deg9"], r["poly_max_abs_coef_deg9_ridge"]
    fitted = r["poly_max_abs_fitted_deg9"]
    # "orders of magnitude larger than the fitted values themselves"
    for N in ("15", "100"):
        assert plain[N] > 1e3 * fitted[N], (plain[N], fitted[N])
    assert plain["15"] > plain["100"]  # more data, smaller coefficients
    for N in ("15", "100"):
        assert ridge[N] < 2e3  # ln lambda = -18 brings them down to hundreds
        assert plain[N] / ridge[N] > 10
    assert r["poly_rms_test_deg9_ridge_N15"] < r["poly_rms_test"]["15"][9]
    assert -30 < r["poly_best_ln_lambda"] < 0


def test_bias_variance_tradeoff(r):
    bias2, variance = np.array(r["bv_bias2"]), np.array(r["bv_variance"])
    assert bias2.shape == variance.shape == (10,)
    assert bias2[0] > 50 * bias2[3]  # rigid models are biased
    assert variance[9] > 5 * variance[0]  # flexible models vary
    total = bias2 + variance
    assert 1 <= int(np.argmin(total)) <= 8  # the minimum is inside: a U


# ----------------------------------------------------------------- section 2: random features
def test_notebook_min_norm_solver_and_gradient_descent(r):
    assert r["rf_minnorm_vs_pinv_rel_err"] < 1e-10
    assert r["rf_gd_vs_minnorm_rel_dist"] < 1e-3


def test_random_features_peak_exists(r):
    widths, n = np.array(r["rf_widths"]), r["rf_n"]
    assert n in widths
    near = _near_threshold(widths, n)
    small = widths <= n / 4
    large = widths >= 4 * n
    assert small.any() and large.any()
    for key, risk in r["rf_risk"].items():
        risk = np.array(risk)
        peak = risk[near].max()
        assert peak > 5 * risk[small].max(), key
        assert peak > 5 * risk[large].max(), key
        assert widths[np.argmax(risk)] == pytest.approx(n, rel=0.25), key


def test_label_noise_makes_the_peak_larger(r):
    levels = r["rf_noise_levels"]
    peaks = [r["rf_peak_near_threshold"][str(s)] for s in levels]
    assert levels == sorted(levels)
    assert all(b > 1.5 * a for a, b in zip(peaks, peaks[1:])), peaks


def test_tuned_ridge_removes_the_peak(r):
    widths, n = np.array(r["rf_widths"]), r["rf_n"]
    near = _near_threshold(widths, n)
    for key in r["rf_risk"]:
        plain = np.array(r["rf_risk"][key])
        ridge = np.array(r["rf_risk_ridge"][key])
        assert ridge[near].max() < plain[near].max() / 20, key
        # no bump: near the threshold tuned ridge is no worse than at any much smaller width
        assert ridge[near].max() <= 1.05 * ridge[widths <= n / 2].min(), key
        assert np.all(ridge <= plain * 1.05 + 1e-9), key


def test_norm_and_singular_value_explain_the_peak(r):
    widths, n = np.array(r["rf_widths"]), r["rf_n"]
    smin = np.array(r["rf_smallest_singular_value"])
    assert widths[np.argmin(smin)] == n
    for norm in r["rf_norm"].values():
        assert widths[np.argmax(norm)] == n


def test_benign_overfitting(r):
    for key, b in r["rf_benign"].items():
        assert b["train_mse_widest"] < 1e-20, key  # interpolates the noisy labels
        assert b["test_risk_widest"] < b["best_test_risk_below_threshold"], key
        assert b["test_risk_widest"] < 3 * b["tuned_ridge_widest"], key
        if float(key) > 0:  # "tuned ridge at the same width still does better"
            assert b["test_risk_widest"] > b["tuned_ridge_widest"], key


def test_random_features_peak_is_variance(r):
    widths, n = np.array(r["rf_widths"]), r["rf_n"]
    bias2, variance = np.array(r["rf_bv_bias2"]), np.array(r["rf_bv_variance"])
    j = int(np.argmax(variance))
    assert widths[j] == pytest.approx(n, rel=0.25)  # the variance peaks at p = n
    assert variance[j] >= 0.8 * (max(bias2[j], 0) + variance[j])  # "almost pure variance"
    assert variance[-1] < variance[j] / 10  # and falls again past the threshold
    assert np.all(np.diff(variance[widths >= 2 * n]) < 0.05 * variance[widths >= 2 * n][:-1])


def test_sample_wise_double_descent(r):
    p, sizes, risk = r["sw_p"], np.array(r["sw_sizes"]), np.array(r["sw_risk"])
    j = int(np.argmax(risk))
    assert sizes[j] == pytest.approx(p, rel=0.25)  # the peak at n = p
    before = risk[sizes <= p / 2].min()
    assert risk[j] > 10 * before  # more data (up to n = p) hurts
    assert risk[-1] < before  # far past it, more data helps again


# ----------------------------------------------------------------- section 3: trained MLP on digits
@pytest.fixture(scope="module")
def m(r):
    n, K = r["mlp_n"], r["mlp_classes"]
    d = {
        key: np.array(r[f"mlp_{key}"])
        for key in ("widths", "params", "train_mse", "test_mse", "test_err", "memorised_wrong", "reused")
    }
    d["ratio"] = d["params"] / (n * K)
    d["peak"] = int(np.argmax(d["test_mse"]))
    return d


def test_mlp_batched_networks_match_sequential(r):
    assert r["mlp_batched_vs_sequential_max_abs_diff"] < 1e-5


def test_mlp_parameter_count_and_reuse_protocol(m):
    assert np.all(m["params"] == (64 + 1) * m["widths"] + (m["widths"] + 1) * 10)
    # Belkin et al.: reuse below P = nK (from the second width on), fresh starts past it
    assert not m["reused"][0]
    assert np.all(m["reused"][1:] == (m["ratio"][1:] < 1))
    assert m["ratio"][0] < 0.2 and m["ratio"][-1] > 4


def test_mlp_reuse_lowers_training_loss_while_test_loss_rises(m):
    chain = np.flatnonzero(m["ratio"] < 1)
    assert np.all(np.diff(m["train_mse"][chain]) < 0), m["train_mse"][chain]
    up_to_peak = chain[chain <= m["peak"]]
    assert len(up_to_peak) >= 3
    assert np.all(np.diff(m["test_mse"][up_to_peak]) > 0), m["test_mse"][chain]  # rises up to the peak ...
    assert np.all(m["test_mse"][chain[chain > m["peak"]]] > 0.95 * m["test_mse"][m["peak"]])  # ... and stays there


def test_mlp_test_loss_peaks_just_below_the_threshold(r, m):
    j = m["peak"]
    assert r["mlp_peak_width"] == m["widths"][j]
    assert m["reused"][j]  # "among the last networks that still inherit"
    assert j >= np.flatnonzero(m["reused"])[-1] - 1
    assert 0.7 <= m["ratio"][j] < 1.0, m["ratio"][j]
    assert m["train_mse"][j] < 1e-2  # "where the training loss is already small"
    assert r["mlp_first_train_below_1e-2_ratio"] <= m["ratio"][j]
    assert m["test_mse"][j] > 3 * m["test_mse"][0]
    assert m["test_mse"][j] > 3 * m["test_mse"][-1]
    assert m["test_mse"][-1] == m["test_mse"].min()  # "the widest networks are the best of the sweep"


def test_mlp_test_error_climbs_then_falls(r, m):
    err, ratio = m["test_err"], m["ratio"]
    lo, hi = r["mlp_err_min_below_ratio"], r["mlp_err_peak_ratio"]
    j_lo, j_hi = int(np.flatnonzero(ratio == lo)[0]), int(np.flatnonzero(ratio == hi)[0])
    assert j_lo < j_hi and hi < 1
    assert err[j_hi] > err[j_lo] + 0.05  # climbs towards the threshold ...
    assert err[-1] < err[j_lo]
    assert err[-1] == err.min()  # "the lowest test error of all widths"


def test_mlp_second_descent_among_fresh_interpolating_networks(m):
    past = np.flatnonzero(m["ratio"] > 1)
    assert m["memorised_wrong"][past].min() > 0.95  # all of them memorise the wrong labels
    assert np.all(np.diff(m["test_mse"][past]) < 0)  # and still get better with width
    assert m["train_mse"][-1] < 1e-3


def test_mlp_over_training_time_is_classical_overfitting(r, m):
    best_step = {int(k): v for k, v in r["mlp_time_best_step"].items()}
    best = {int(k): v for k, v in r["mlp_time_best_loss"].items()}
    final = {int(k): v for k, v in r["mlp_time_final_loss"].items()}
    widest = int(m["widths"][-1])
    assert best_step[widest] <= r["mlp_steps"] / 10  # lowest early in training ...
    assert final[widest] > 1.5 * best[widest]  # ... then it rises (by a wide margin)
    assert all(best[H] < final[H] for H in best)  # below the final loss for every network
    assert not any(r["mlp_time_second_descent"].values())  # no epoch-wise second descent here


# ----------------------------------------------------------------- the demo module
@pytest.mark.parametrize("shape", [(30, 10), (30, 30), (30, 120), (5, 1)])
def test_min_norm_lstsq_matches_pinv(shape):
    rng = np.random.default_rng(0)
    F = rng.standard_normal(shape)
    y = rng.standard_normal(shape[0])
    np.testing.assert_allclose(min_norm_lstsq(F, y), np.linalg.pinv(F) @ y, rtol=1e-8, atol=1e-10)


def test_min_norm_lstsq_rank_deficient_and_matrix_targets():
    rng = np.random.default_rng(1)
    F = rng.standard_normal((20, 3)) @ rng.standard_normal((3, 40))  # rank 3
    Y = rng.standard_normal((20, 4))
    a = min_norm_lstsq(F, Y)
    np.testing.assert_allclose(a, np.linalg.pinv(F) @ Y, rtol=1e-7, atol=1e-9)
    # the minimum-norm solution lies in the row space of F
    P_row = np.linalg.pinv(F) @ F
    np.testing.assert_allclose(P_row @ a, a, atol=1e-9)
    assert np.allclose(min_norm_lstsq(np.zeros((4, 3)), np.ones(4)), 0)


def test_min_norm_lstsq_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        min_norm_lstsq(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="one row per row"):
        min_norm_lstsq(np.ones((3, 2)), np.ones(4))
    with pytest.raises(ValueError, match="finite"):
        min_norm_lstsq(np.array([[np.nan, 1.0]]), np.ones(1))
    with pytest.raises(ValueError, match="rcond"):
        min_norm_lstsq(np.ones((3, 2)), np.ones(3), rcond=-1)
    with pytest.raises(ValueError, match="must match"):
        relu_features(np.ones((3, 2)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="at least 10"):
        default_widths(5)


def test_explorer_curves_match_direct_solution():
    ex = RandomFeaturesExplorer(n=30, d=5, widths=[10, 30, 90], seeds=1, n_test=200)
    risk, norm = ex.curves(noise=0.5, lam=0.0)
    # recompute the same experiment directly with min_norm_lstsq
    rng = np.random.default_rng(0)
    beta = rng.standard_normal(5)
    beta /= np.linalg.norm(beta)
    X, X_test = rng.standard_normal((30, 5)), rng.standard_normal((200, 5))
    eps = rng.standard_normal(30)
    W = rng.standard_normal((5, 90)) / np.sqrt(5)
    for j, p in enumerate([10, 30, 90]):
        a = min_norm_lstsq(relu_features(X, W[:, :p]), X @ beta + 0.5 * eps)
        expected = np.mean((relu_features(X_test, W[:, :p]) @ a - X_test @ beta) ** 2)
        assert risk[j] == pytest.approx(expected, rel=1e-6)
        assert norm[j] == pytest.approx(np.linalg.norm(a), rel=1e-6)
    assert risk[1] > risk[0] and risk[1] > risk[2]  # the peak at p = n
    ridge_risk, _ = ex.curves(noise=0.5, lam=1.0)
    assert ridge_risk[1] < risk[1]
    with pytest.raises(ValueError, match=">= 0"):
        ex.curves(noise=-1.0, lam=0.0)


def test_explorer_draw_and_benchmark():
    ex = RandomFeaturesExplorer(n=20, d=5, seeds=1, n_test=100)
    fig = ex.draw(noise=0.3, log10_lam=-2)
    assert len(fig.axes) == 2
    ex.draw(noise=0.6, log10_lam=0)  # a second redraw reuses the lines
    assert len(fig.axes[0].get_lines()) == 3  # minimum norm, ridge, threshold marker
    ms = benchmark_redraw()
    assert 0 < ms < 5000


def test_notebook_solver_agrees_with_the_demo_module():
    """The explorer (course_utils.demos.double_descent) must compute what the lecture teaches."""
    import torch

    from conftest import load_scratch_cells

    ns = load_scratch_cells(
        NB,
        required=("min_norm_lstsq", "relu_features"),
        preload={"np": np, "torch": torch, "record": lambda key, value: value},
    )
    rng = np.random.default_rng(3)
    for shape in [(40, 10), (40, 40), (40, 160)]:
        X, W = rng.standard_normal((shape[0], 6)), rng.standard_normal((6, shape[1]))
        y = rng.standard_normal(shape[0])
        np.testing.assert_array_equal(ns["relu_features"](X, W), relu_features(X, W))
        F = relu_features(X, W)
        np.testing.assert_allclose(ns["min_norm_lstsq"](F, y), min_norm_lstsq(F, y), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------- Try-it answers
def test_tryit_answers_random_features(r):
    assert r["tryit_noise0_peak_ratio"] == pytest.approx(1.0, rel=0.25)  # a peak without label noise
    assert r["tryit_flatten_log10_lam"] < 2.0  # some λ on the slider flattens it
    widest = r["tryit_widest_risk"]
    assert widest["noise1_flatten"] < widest["noise1_no_ridge"]  # with noise 1 that λ helps the widest
    assert widest["noise0_lam_100"] > 1.5 * widest["noise0_no_ridge"]  # without noise λ = 1e2 hurts it
    for n in (50, 200):
        assert r[f"tryit_rf_peak_width_n{n}"] == pytest.approx(n, rel=0.25)
    assert r["tryit_sw_peak_n_p50"] == pytest.approx(50, rel=0.25)


def test_tryit_answer_polynomial_interpolation_is_not_benign(r):
    p = r["tryit_poly30_rms"]
    assert p["train"] < 1e-6  # it interpolates the 15 points
    assert p["test"] > 3 * p["test_degree3"]  # and is far worse than degree 3 on new inputs
