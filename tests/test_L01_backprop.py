"""Numbers taught by lectures/L01_backprop_by_hand.ipynb, recomputed independently here.

The notebook computes everything with hand-written NumPy; these tests recompute the same
quantities with PyTorch autograd (in a vectorised form, not the notebook's scalar code) or with
closed-form formulas, and compare them with what the notebook recorded.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

NB = "lectures/L01_backprop_by_hand.ipynb"

# The worked 2-2-1 network, stated in the notebook's first cell of section 3.
X_IN = [0.6, -0.4]
TARGET = 1.0
PARAMS = {
    "w1_11": 0.3,
    "w1_12": -0.2,
    "b1_1": 0.1,
    "w1_21": 0.5,
    "w1_22": 0.4,
    "b1_2": -0.3,
    "w2_11": 0.8,
    "w2_12": -0.6,
    "b2_1": 0.2,
}
NAMES = list(PARAMS)

# Section 4: the MLP used for the cost comparison.
D_IN, BATCH = 32, 256


@pytest.fixture(scope="module")
def rec(notebook_records):
    return notebook_records(NB)


# ----------------------------------------------------------------------------- section 1
def test_chain_jacobian_matches_torch(rec):
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    W1 = torch.tensor([[0.1, -0.3, 0.2], [0.4, 0.0, -0.1], [-0.2, 0.5, 0.3], [0.3, 0.2, -0.4]], dtype=torch.float64)
    b1 = torch.tensor([0.0, 0.1, -0.1, 0.2], dtype=torch.float64)
    W2 = torch.tensor([[0.5, -0.2, 0.1, 0.3], [-0.4, 0.6, 0.2, -0.1]], dtype=torch.float64)
    b2 = torch.tensor([0.05, -0.05], dtype=torch.float64)

    def f(v):
        return W2 @ torch.tanh(W1 @ v + b1) + b2

    J = torch.autograd.functional.jacobian(f, x).numpy()
    assert np.allclose(rec["chain_jacobian"], J, rtol=1e-12, atol=1e-14)
    assert rec["chain_jacobian_maxdiff"] < 1e-12

    xg = x.clone().requires_grad_(True)
    (0.5 * (f(xg) ** 2).sum()).backward()
    assert np.allclose(rec["chain_dEdx"], xg.grad.numpy(), rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- section 3
def torch_221(output: str) -> dict:
    """The 2-2-1 network written with matrices; autograd gives the gradient and the deltas."""
    W1 = torch.tensor(
        [[PARAMS["w1_11"], PARAMS["w1_12"]], [PARAMS["w1_21"], PARAMS["w1_22"]]],
        dtype=torch.float64,
        requires_grad=True,
    )
    b1 = torch.tensor([PARAMS["b1_1"], PARAMS["b1_2"]], dtype=torch.float64, requires_grad=True)
    W2 = torch.tensor([PARAMS["w2_11"], PARAMS["w2_12"]], dtype=torch.float64, requires_grad=True)
    b2 = torch.tensor(PARAMS["b2_1"], dtype=torch.float64, requires_grad=True)
    x = torch.tensor(X_IN, dtype=torch.float64)
    a_hidden = W1 @ x + b1
    a_hidden.retain_grad()
    z = torch.sigmoid(a_hidden)
    a3 = W2 @ z + b2
    a3.retain_grad()
    y = torch.sigmoid(a3) if output == "sigmoid" else a3
    E = 0.5 * (y - TARGET) ** 2
    E.backward()
    grad = {
        "w1_11": W1.grad[0, 0],
        "w1_12": W1.grad[0, 1],
        "b1_1": b1.grad[0],
        "w1_21": W1.grad[1, 0],
        "w1_22": W1.grad[1, 1],
        "b1_2": b1.grad[1],
        "w2_11": W2.grad[0],
        "w2_12": W2.grad[1],
        "b2_1": b2.grad,
    }
    forward = {"a1": a_hidden[0], "a2": a_hidden[1], "z1": z[0], "z2": z[1], "a3": a3, "y": y, "E": E}
    deltas = {"d1": a_hidden.grad[0], "d2": a_hidden.grad[1], "d3": a3.grad}
    as_float = lambda d: {k: float(v.detach()) for k, v in d.items()}  # noqa: E731
    return {"forward": as_float(forward), "grad": as_float(grad), "deltas": as_float(deltas)}


def _close(recorded: dict, expected: dict, rtol: float = 1e-10, atol: float = 1e-13) -> None:
    assert set(recorded) == set(expected)
    for k in expected:
        assert recorded[k] == pytest.approx(expected[k], rel=rtol, abs=atol), k


def test_221_setup_is_the_stated_one(rec):
    assert rec["net221_params"] == PARAMS
    assert rec["net221_input"] == X_IN
    assert rec["net221_target"] == TARGET


def test_221_forward_pass(rec):
    _close(rec["net221_forward"], torch_221("sigmoid")["forward"])


def test_221_deltas(rec):
    ref = torch_221("sigmoid")
    _close(rec["net221_deltas"], ref["deltas"])
    y = ref["forward"]["y"]
    assert rec["net221_deltas"]["d3"] == pytest.approx(y * (1 - y) * (y - TARGET), rel=1e-12)
    assert rec["net221_deltas"]["d3"] < 0  # y < t: the error wants the output to grow


def test_221_gradients_hand_fd_torch(rec):
    ref = torch_221("sigmoid")["grad"]
    _close(rec["net221_grad_hand"], ref)
    _close(rec["net221_grad_torch"], ref)
    _close(rec["net221_grad_fd"], ref, rtol=1e-6, atol=1e-10)
    assert rec["net221_relerr_hand_vs_fd"] < 1e-7


def test_221_linear_output(rec):
    ref = torch_221("linear")
    _close(rec["net221_linear_forward"], ref["forward"])
    _close(rec["net221_linear_deltas"], ref["deltas"])
    _close(rec["net221_linear_grad_hand"], ref["grad"])
    fwd = rec["net221_linear_forward"]
    assert rec["net221_linear_deltas"]["d3"] == pytest.approx(fwd["y"] - TARGET, rel=1e-12)
    # the sigmoid output scales every gradient by y(1 - y) <= 1/4
    assert abs(rec["net221_linear_deltas"]["d3"]) > 4 * abs(rec["net221_deltas"]["d3"])


# ----------------------------------------------------------------------------- section 4
def _mlp_counts(n: int) -> tuple[int, int, int, int]:
    """(W, forward MACs, backprop MACs, finite-difference MACs) of the D_IN -> n -> n -> 1 MLP."""
    W = n * D_IN + n + n * n + n + n + 1
    fwd = BATCH * (D_IN * n + n * n + n)
    backward = BATCH * (n + n * n) + BATCH * (n + n * n + n * D_IN)  # send deltas back + weight grads
    return W, fwd, fwd + backward, 2 * W * fwd


def test_cost_small_network_counts(rec):
    W, fwd, bp, fd = _mlp_counts(16)
    assert rec["cost_small_W"] == W
    assert rec["cost_small_fd_forward_passes"] == 2 * W
    assert rec["cost_small_macs"] == {"forward": fwd, "backprop": bp, "finite_diff": fd}


def test_cost_count_table(rec):
    widths = rec["cost_widths"]
    assert len(widths) >= 5
    counts = [_mlp_counts(n) for n in widths]
    table = rec["cost_counts"]
    assert table["W"] == [c[0] for c in counts]
    assert table["forward"] == [c[1] for c in counts]
    assert table["backprop"] == [c[2] for c in counts]
    assert table["finite_diff"] == [c[3] for c in counts]
    # backprop is a small constant (at most three) times one forward pass ...
    assert all(2 <= b / f <= 3 for b, f in zip(table["backprop"], table["forward"]))
    # ... while finite differences cost 2W forward passes: the ratio grows linearly with W
    ratios = [fd / bp for fd, bp in zip(table["finite_diff"], table["backprop"])]
    assert all(r2 > r1 for r1, r2 in zip(ratios, ratios[1:]))
    slope = np.polyfit(np.log(table["W"]), np.log(ratios), 1)[0]
    assert 0.95 < slope < 1.05


def test_cost_timing_slopes(rec):
    """Timings are noisy on a shared CPU, so the thresholds are generous; the exact statement
    of the cost argument is the count test above."""
    t = rec["cost_timing"]
    assert t["W"] == rec["cost_counts"]["W"]
    logW = np.log10(t["W"])
    for key, name in [
        ("backprop_ms", "cost_slope_backprop"),
        ("fd_est_ms", "cost_slope_finite_diff"),
        ("forward_ms", "cost_slope_forward"),
    ]:
        assert rec[name] == pytest.approx(np.polyfit(logW, np.log10(t[key]), 1)[0], rel=1e-9)
    assert rec["cost_slope_finite_diff"] > 1.5
    assert rec["cost_slope_backprop"] < 1.3
    assert rec["cost_slope_finite_diff"] - rec["cost_slope_backprop"] > 0.4
    assert 0.3 < rec["cost_slope_forward"] < 1.3
    # the prose: finite differences are one power of W steeper than one forward pass (they are 2W forward passes)
    assert rec["cost_slope_fd_minus_forward"] == pytest.approx(
        rec["cost_slope_finite_diff"] - rec["cost_slope_forward"]
    )
    assert 0.7 < rec["cost_slope_fd_minus_forward"] < 1.3  # timings: noisy on a busy machine
    ratio = np.median(np.array(t["backprop_ms"]) / np.array(t["forward_ms"]))
    assert rec["cost_backprop_over_forward_median"] == pytest.approx(ratio)
    assert 1.0 < ratio < 10.0  # "a small constant times one forward pass"
    # finite differences are slower than backprop at every size, by a factor that grows with W
    gaps = [fd / bp for fd, bp in zip(t["fd_est_ms"], t["backprop_ms"])]
    assert all(g > 100 for g in gaps) and gaps[-1] > 100 * gaps[0]
    # the K-partials estimate agrees with the full finite-difference run (within timing noise)
    for W, ms in zip(t["fd_full_W"], t["fd_full_ms"]):
        est = t["fd_est_ms"][t["W"].index(W)]
        assert 0.05 < ms / est < 20


# ----------------------------------------------------------------------------- section 5
def test_graph_values_and_derivatives_closed_form(rec):
    x, y = 3.0, 2.0
    assert rec["graph_point"] == {"x": x, "y": y}
    u = math.log(x)
    v = y * u
    w = math.sqrt(v)
    f = v + w
    dfdv = 1 + 1 / (2 * w)
    assert rec["graph_f"] == pytest.approx(f, rel=1e-14)
    assert rec["graph_dfdx"] == pytest.approx(y / x * dfdv, rel=1e-14)
    assert rec["graph_dfdy"] == pytest.approx(u * dfdv, rel=1e-14)
    assert rec["graph_values"] == pytest.approx({"x": x, "y": y, "u": u, "v": v, "w": w, "f": f}, rel=1e-14)
    adj = {"f": 1.0, "w": 1.0, "v": dfdv, "u": y * dfdv, "x": y * dfdv / x, "y": u * dfdv}
    assert rec["graph_adjoints"] == pytest.approx(adj, rel=1e-14)
    # forward mode: tangents with respect to x and to y end at the same derivatives
    tx, ty = rec["graph_forward_tangents_x"], rec["graph_forward_tangents_y"]
    assert tx == pytest.approx(
        {"x": 1, "y": 0, "u": 1 / x, "v": y / x, "w": y / x / (2 * w), "f": y / x * dfdv}, rel=1e-14, abs=0
    )
    assert ty == pytest.approx({"x": 0, "y": 1, "u": 0, "v": u, "w": u / (2 * w), "f": u * dfdv}, rel=1e-14, abs=0)


def test_graph_matches_torch(rec):
    x = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    f = y * torch.log(x) + torch.sqrt(y * torch.log(x))
    f.backward()
    assert rec["graph_f"] == pytest.approx(f.item(), rel=1e-14)
    assert rec["graph_dfdx"] == pytest.approx(x.grad.item(), rel=1e-14)
    assert rec["graph_dfdy"] == pytest.approx(y.grad.item(), rel=1e-14)


def test_slide_forward_mode_error_is_flagged(rec):
    """Issue 12: the SNU slides print df/dx = 0.742 for this graph; the true value is 0.892."""
    slide, reproduced = rec["slide_forward_mode_dfdx"]
    assert slide == 0.742 and round(reproduced, 3) == 0.742
    assert round(rec["graph_dfdx"], 3) == 0.892


def test_matrix_chain_costs(rec):
    chains = rec["matrix_chain"]
    assert len(chains) == 2
    for entry in chains.values():
        d = entry["dims"]
        K = len(d) - 1
        forward = sum(d[k] * d[k - 1] * d[0] for k in range(2, K + 1))
        reverse = sum(d[K] * d[k] * d[k - 1] for k in range(1, K))
        assert entry["forward"] == forward
        assert entry["reverse"] == reverse
        assert entry["optimal"] <= min(forward, reverse)
        if d[-1] == 1:  # scalar output: reverse mode is the optimal order
            assert entry["optimal"] == reverse
            assert forward > 100 * reverse
        if d[0] == 1:  # scalar input: forward mode is the optimal order
            assert entry["optimal"] == forward
            assert reverse > 100 * forward


# ----------------------------------------------------------------------------- section 6
def test_gradcheck_correct_vs_buggy(rec):
    err = rec["gradcheck_relerr"]
    assert set(err) == {"correct", "no_sigmoid_derivative", "transposed_weight"}
    assert err["correct"] < 1e-6
    assert err["no_sigmoid_derivative"] > 1e-2
    assert err["transposed_weight"] > 1e-2


def test_gradcheck_locates_the_bug(rec):
    per = rec["gradcheck_relerr_per_array"]
    assert all(v < 1e-6 for v in per["correct"].values())
    # the missing derivative sits in hidden layer 2: W3, b3 are untouched, everything before is wrong
    nd = per["no_sigmoid_derivative"]
    assert nd["W3"] < 1e-6 and nd["b3"] < 1e-6
    assert all(nd[k] > 1e-2 for k in ("W2", "b2", "W1", "b1"))
    # the transposed W2 only corrupts the deltas of hidden layer 1
    tw = per["transposed_weight"]
    assert all(tw[k] < 1e-6 for k in ("W3", "b3", "W2", "b2"))
    assert tw["W1"] > 1e-2 and tw["b1"] > 1e-2
    for label, errors in per.items():
        assert rec["gradcheck_relerr"][label] == pytest.approx(max(errors.values()))


def test_gradcheck_step_size_sweep(rec):
    h = np.array(rec["gradcheck_h_values"])
    e = np.array(rec["gradcheck_h_errors"])
    assert len(h) == len(e) >= 10
    assert e[np.isclose(h, 1e-5)][0] < 1e-6  # the default step is in the sweet spot
    assert e[0] > 100 * e.min() and e[-1] > 100 * e.min()  # truncation and round-off both hurt
    assert rec["gradcheck_best_h"] == pytest.approx(h[np.argmin(e)])
    assert 1e-7 <= rec["gradcheck_best_h"] <= 1e-3


def test_counted_backprop_is_a_few_forward_passes(rec):
    """The prose: backprop costs a small, fixed number of forward passes (at most about three), at every width."""
    counted = rec["cost_backprop_over_forward_counted"]
    c = rec["cost_counts"]
    assert counted == pytest.approx([b / f for b, f in zip(c["backprop"], c["forward"])])
    assert all(1.5 <= r <= 3.2 for r in counted)


def test_gradient_cost_three_for_matrix_products_five_in_general(rec):
    """The prose: about three forward passes for matrix products; the general bound of about five is reached by an
    elementwise product (one operation forward, four backward)."""
    ratio = rec["gradient_cost_ratio_by_operation"]
    assert ratio["elementwise product A * B"] == 5
    assert 3 <= ratio["matrix product A @ B"] < 3.1
    assert ratio["elementwise sum A + B"] == 3
