"""Numbers taught by lectures/L03_initialisation_variance.ipynb, and the L3 widget.

The notebook records its Monte Carlo estimates next to the formulas they check; these tests
recompute the formulas here from the stated sizes (not from the notebook's own "formula" entries
where that matters), assert the tolerances a Monte Carlo estimate of that size must meet, and check
that the recorded tables behave as the lecture says. The widget module is tested directly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from torch import nn

from course_utils.demos import init_explorer as ie

NB = "lectures/L03_initialisation_variance.ipynb"
SLIDES_TABLE = [1.0, 0.63, 0.49, 0.41, 0.36, 0.32, 0.29, 0.27, 0.25, 0.24, 0.23]


@pytest.fixture(scope="module")
def rec(notebook_records):
    return notebook_records(NB)


def close(measured: float, expected: float, rel: float) -> bool:
    return abs(measured - expected) <= rel * abs(expected)


# ----------------------------------------------------------------------------- 1 symmetry
def test_constant_init_gives_identical_gradients(rec):
    assert rec["symmetry_grad_row_spread"] < 1e-6


def test_constant_init_units_stay_clones(rec):
    t = rec["symmetry_training"]
    const, rand = t["constant 0.3"], t["random (PyTorch default)"]
    assert const["distinct_units"] == 1
    assert rand["distinct_units"] == 6
    assert const["loss"] > 2 * rand["loss"]


def test_zero_init_only_output_bias_learns(rec):
    g = rec["zero_init_grad_max"]
    assert g["0.weight"] == 0 and g["0.bias"] == 0 and g["2.weight"] == 0
    assert g["2.bias"] > 0


# ----------------------------------------------------------------------------- 2 small Gaussian
def test_small_gaussian_tanh_collapses(rec):
    stds = rec["small_tanh_std"]
    assert len(stds) == 11  # input + 10 layers
    assert stds[0] == pytest.approx(1.0, abs=0.02)
    assert stds[10] < 1e-3  # collapsed by layer 10
    assert all(b < a for a, b in zip(stds[1:], stds[2:]))


def test_small_gaussian_factor_per_layer(rec):
    f = rec["small_tanh_factor"]
    assert f["predicted"] == pytest.approx(math.sqrt(500 * 0.01**2))
    assert close(f["measured"], f["predicted"], 0.05)


def test_slides_table_is_lecun_not_small(rec):
    lecun = rec["lecun_tanh_std"]
    assert rec["slides_vs_lecun_max_abs_diff"] == pytest.approx(max(abs(a - b) for a, b in zip(lecun, SLIDES_TABLE)))
    assert rec["slides_vs_lecun_max_abs_diff"] < 0.03
    assert abs(rec["small_tanh_std"][10] - SLIDES_TABLE[10]) > 0.1


# ----------------------------------------------------------------------------- 3 variance facts
def test_variance_of_sum(rec):
    m = rec["mc_var_sum"]
    assert m["formula"] == pytest.approx(50 * 2.0**2)
    assert close(m["measured"], m["formula"], 0.04)


def test_variance_of_product(rec):
    m = rec["mc_var_product"]
    assert m["formula"] == pytest.approx(1.5**2 * 16 / 12)
    assert close(m["measured"], m["formula"], 0.05)
    s = rec["mc_var_product_nonzero_mean"]
    assert s["full_formula"] == pytest.approx(1.5**2 * 16 / 12 + 16 / 12)
    assert close(s["measured"], s["full_formula"], 0.05)
    assert s["measured"] > 1.2 * s["short_formula"]  # the zero-mean formula fails with E[X] = 1


# ----------------------------------------------------------------------------- 4 derivations
def test_lecun_forward(rec):
    m = rec["lecun_forward"]
    assert close(m["LeCun 1/n_in"]["measured"], 1.0, 0.05)
    assert close(m["N(0, 0.01^2)"]["measured"], 400 * 0.01**2, 0.08)


def test_backward_rule(rec):
    m = rec["backward_check"]
    assert m["LeCun 1/n_in"]["formula"] == pytest.approx(100 / 400)
    assert close(m["LeCun 1/n_in"]["measured"], 0.25, 0.05)
    assert close(m["1/n_out"]["measured"], 1.0, 0.05)


def test_xavier(rec):
    m = rec["xavier_check"]
    assert close(m["weight_var"]["measured"], 2 / 500, 0.05)
    assert close(m["forward_factor"]["measured"], 2 * 400 / 500, 0.05)
    assert close(m["backward_factor"]["measured"], 2 * 100 / 500, 0.05)


def test_he(rec):
    m = rec["he_check"]
    assert m["relu_second_moment_ratio"] == pytest.approx(0.5, abs=0.01)
    assert close(m["forward_ratio_fan_in"], 1.0, 0.08)
    assert close(m["backward_ratio_fan_out"], 1.0, 0.08)
    assert close(m["weight_var_fan_in"]["measured"], 2 / 400, 0.05)
    assert close(m["weight_var_fan_out"]["measured"], 2 / 100, 0.05)


def test_conv_fans_recorded(rec):
    assert rec["conv_fans"]["ours"] == rec["conv_fans"]["torch"] == [16 * 3 * 5, 32 * 3 * 5]


@pytest.mark.parametrize("c_in,c_out,kernel", [(16, 32, (3, 5)), (3, 64, (7, 7)), (128, 8, (1, 1)), (5, 7, (2, 3))])
def test_conv_fans_match_torch(c_in, c_out, kernel):
    conv = nn.Conv2d(c_in, c_out, kernel)
    f1, f2 = kernel
    assert nn.init._calculate_fan_in_and_fan_out(conv.weight) == (c_in * f1 * f2, c_out * f1 * f2)


def test_conv_variances(rec):
    m = rec["conv_check"]
    assert close(m["forward_var_1_over_fan_in"], 1.0, 0.05)
    assert close(m["backward_var_1_over_fan_out_interior"], 1.0, 0.05)
    assert m["backward_var_1_over_fan_out_all_pixels"] < 0.9  # border pixels get fewer terms


# ----------------------------------------------------------------------------- 5 deep networks
def test_deep_tables(rec):
    d = rec["deep_std"]
    for act in ("tanh", "relu"):
        for scheme in ("small", "xavier", "he", "large"):
            assert len(d[act][scheme]["act"]) == len(d[act][scheme]["grad"]) == 10
    # small init collapses, forward and backward
    for act in ("tanh", "relu"):
        small = d[act]["small"]
        assert small["act"][-1] < 1e-3 * small["act"][0]
        assert small["grad"][0] < 1e-3 * small["grad"][-1]
    # He + ReLU keeps both roughly constant
    he = d["relu"]["he"]
    assert 0.5 <= he["act"][-1] / he["act"][0] <= 2
    assert 0.5 <= he["grad"][0] / he["grad"][-1] <= 2
    # too large explodes with ReLU
    large = d["relu"]["large"]
    assert large["act"][-1] / large["act"][0] > 100
    assert large["grad"][0] / large["grad"][-1] > 100
    # Xavier with ReLU loses the factor 2 per layer; with tanh it drifts down slowly
    assert d["relu"]["xavier"]["act"][-1] / d["relu"]["xavier"]["act"][0] < 0.2
    assert 0.2 < d["tanh"]["xavier"]["act"][-1] / d["tanh"]["xavier"]["act"][0] < 1
    # large tanh saturates, and its gradients grow on the way down
    assert rec["tanh_large_saturated_fraction"] > 0.2
    assert d["tanh"]["large"]["grad"][0] > d["tanh"]["large"]["grad"][-1]


def test_deep_ratio_record(rec):
    r = rec["deep_act_ratio_last_first"]
    assert 0.5 <= r["relu/he"] <= 2
    assert r["relu/small"] < 1e-3 and r["relu/large"] > 100


def test_widget_matches_autograd_in_notebook(rec):
    assert rec["widget_vs_autograd_max_diff"] < 1e-5


# ----------------------------------------------------------------------------- 7 PyTorch default
def test_pytorch_default_recorded(rec):
    m = rec["pytorch_default"]
    assert m["gain_a_sqrt5"]["torch"] == pytest.approx(math.sqrt(1 / 3))
    assert close(m["linear_weight_var"]["measured"], 1 / (3 * 1000), 0.03)
    assert m["linear_weight_max_abs"]["measured"] <= 1 / math.sqrt(1000)
    assert m["linear_weight_max_abs"]["measured"] > 0.99 / math.sqrt(1000)
    assert close(m["linear_bias_var"]["measured"], 1 / (3 * 1000), 0.25)
    assert close(m["conv_weight_var"]["measured"], 1 / (3 * 16 * 9), 0.05)


@pytest.mark.parametrize("fan_in,fan_out", [(2000, 300), (64, 4000)])
def test_pytorch_default_linear_variance(fan_in, fan_out):
    torch.manual_seed(0)
    layer = nn.Linear(fan_in, fan_out)
    assert close(layer.weight.var().item(), 1 / (3 * fan_in), 0.03)
    assert layer.weight.abs().max().item() <= 1 / math.sqrt(fan_in)
    assert ie.init_std("pytorch", fan_in, fan_out) == pytest.approx(math.sqrt(1 / (3 * fan_in)))


def test_pytorch_default_conv_variance():
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 128, 3)
    assert close(conv.weight.var().item(), 1 / (3 * 64 * 9), 0.03)


def test_default_vs_he(rec):
    m = rec["default_vs_he"]
    n = 256
    assert m["floor_std"] == pytest.approx(math.sqrt(2 / (5 * n)))
    dz, dg, hz, hg = m["default_z_std"], m["default_grad_std"], m["he_z_std"], m["he_grad_std"]
    assert len(dz) == len(hz) == 20
    assert close(dz[-1], m["floor_std"], 0.15)  # settles at the bias floor
    assert close(dz[0], math.sqrt(1 / 3 + 1 / (3 * n)), 0.1)
    assert dz[-1] / dz[0] < 0.2
    assert dg[0] / dg[-1] < 1e-4  # gradients vanish
    # the derived decay (sqrt 6 per layer) within a factor 3 after 19 layers
    assert 1 / 3 < dg[0] / m["predicted_default_grad_std"][0] < 3
    assert 0.5 <= hz[-1] / hz[0] <= 2
    assert 0.5 <= hg[0] / hg[-1] <= 2


def test_input_scaling(rec):
    m = rec["input_scaling"]
    for v in m.values():
        assert close(v["measured_std"], v["predicted_std"], 0.1)
    assert 0.85 <= m["standardised"]["measured_std"] <= 1.15
    assert m["0..255"]["measured_std"] > 50
    assert 0.2 < m["[0, 1]"]["measured_std"] < 0.8
    assert m["0..255"]["tanh_saturated"] > 0.9
    assert m["standardised"]["tanh_saturated"] < 0.05


# ----------------------------------------------------------------------------- 8 BatchNorm
def test_bn_scale_invariance(rec):
    g = rec["bn_scale_invariance_max_diff"]
    assert g["10.0"] < 1e-3 and g["1000.0"] < 1e-3
    assert g["0.1"] < 1e-2
    assert g["0.01"] > 0.05  # epsilon is no longer negligible
    # the prose: the gap at c = 10 and 1000 is not float rounding but BN's epsilon, which accounts for all of it
    pred = rec["bn_scale_gap_predicted_by_eps"]
    for c in ("10.0", "1000.0"):
        assert g[c] > 50 * 1.2e-7
        assert 0.8 < g[c] / pred[c] < 1.25


def test_bn_forward_stds(rec):
    s = rec["bn_forward_stds"]
    last_plain = [v[-1] for k, v in s.items() if k.startswith("no BN")]
    last_bn = [v[-1] for k, v in s.items() if k.startswith("BN")]
    assert len(last_plain) == len(last_bn) == 4
    assert max(last_plain) / min(last_plain) > 1e6
    assert max(last_bn) / min(last_bn) < 1.1


def test_bn_training(rec):
    t = rec["bn_training"]
    for name in ("0.01", "0.05", "He", "0.3"):
        assert t[f"BN, std {name}"]["test_acc"] > 0.85
    assert t["no BN, std He"]["test_acc"] > 0.6
    assert t["no BN, std 0.01"]["test_acc"] < 0.2
    assert t["no BN, std 0.05"]["test_acc"] < 0.2
    assert t["no BN, std 0.3"]["status"] == "diverged" or t["no BN, std 0.3"]["test_acc"] < 0.2
    for run in t.values():  # a diverged run has no accuracy to report (it is not "0 % accurate")
        assert (run["status"] == "diverged") == (run["test_acc"] is None)


# ----------------------------------------------------------------------------- widget module
@pytest.mark.parametrize("fan_in,fan_out", [(100, 100), (400, 100), (27, 300)])
def test_init_std_matches_torch_formulas(fan_in, fan_out):
    relu_gain = nn.init.calculate_gain("relu")
    assert ie.init_std("lecun", fan_in, fan_out) == pytest.approx(1 / math.sqrt(fan_in))
    assert ie.init_std("xavier", fan_in, fan_out) == pytest.approx(math.sqrt(2 / (fan_in + fan_out)))
    assert ie.init_std("he_in", fan_in, fan_out) == pytest.approx(relu_gain / math.sqrt(fan_in))
    assert ie.init_std("he_out", fan_in, fan_out) == pytest.approx(relu_gain / math.sqrt(fan_out))
    torch.manual_seed(0)
    w = torch.empty(fan_out, fan_in)
    nn.init.xavier_normal_(w)
    assert close(w.std().item(), ie.init_std("xavier", fan_in, fan_out), 0.05)
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert close(w.std().item(), ie.init_std("he_out", fan_in, fan_out), 0.05)


@pytest.mark.parametrize("activation", ie.ACTIVATIONS)
@pytest.mark.parametrize("scheme", ["xavier", "pytorch", "small"])
def test_propagate_matches_autograd(activation, scheme):
    p = ie.propagate(depth=5, width=48, activation=activation, scheme=scheme, shape="funnel", batch=16)
    act = {"linear": lambda z: z, "tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}[activation]
    h = p.inputs.clone().requires_grad_(True)
    zs = []
    for W, b in zip(p.weights, p.biases):
        z = h @ W.T + (0 if b is None else b)
        z.retain_grad()
        zs.append(z)
        h = act(z)
    (h * p.output_grad).sum().backward()
    for z, a, g in zip(zs, p.activations, p.grads):
        assert torch.allclose(act(z).detach(), a, atol=1e-6)
        assert torch.allclose(z.grad, g, atol=1e-6, rtol=1e-4)


def test_propagate_pytorch_scheme_is_uniform_with_bias():
    p = ie.propagate(depth=2, width=256, activation="relu", scheme="pytorch")
    bound = 1 / math.sqrt(256)
    for W, b in zip(p.weights, p.biases):
        assert W.abs().max() <= bound and b is not None and b.abs().max() <= bound
        assert close(W.var().item(), 1 / (3 * 256), 0.05)


def test_propagate_he_modes_on_a_funnel():
    """fan_in keeps the forward signal, fan_out the backward signal (widths 512 -> 64)."""
    fwd = ie.propagate(depth=12, width=512, activation="relu", scheme="he_in", shape="funnel", batch=256)
    bwd = ie.propagate(depth=12, width=512, activation="relu", scheme="he_out", shape="funnel", batch=256)
    assert 0.5 <= fwd.act_std[-1] / fwd.act_std[0] <= 2
    assert 0.5 <= bwd.grad_std[0] / bwd.grad_std[-1] <= 2
    # and each mode lets the other direction drift by about sqrt(n_0 / n_L) = sqrt(8) over the funnel
    assert fwd.grad_std[0] / fwd.grad_std[-1] < 0.6
    assert bwd.act_std[-1] / bwd.act_std[0] > 1.3


def test_layer_widths():
    assert ie.layer_widths(3, 64) == [64] * 4
    w = ie.layer_widths(6, 512, "funnel")
    assert w[0] == 512 and w[-1] == 64 and all(a >= b for a, b in zip(w, w[1:]))


def test_layer_histograms_columns():
    values = [torch.randn(1000), torch.randn(1000) * 0.01, torch.zeros(10)]
    hist = ie.layer_histograms(values, -3, 3)
    assert hist.shape == (ie.BINS, 3)
    assert hist[:, 0].max() == pytest.approx(1.0) and hist[:, 1].max() == pytest.approx(1.0)
    assert hist[:, 2].max() == 0  # all exact zeros are left out


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: ie.init_std("glorot", 10, 10), "Unknown init scheme"),
        (lambda: ie.init_std("xavier", 0, 10), "positive integers"),
        (lambda: ie.layer_widths(0, 64), "depth"),
        (lambda: ie.layer_widths(5, 4096), "width"),
        (lambda: ie.layer_widths(5, 64, "pyramid"), "Unknown shape"),
        (lambda: ie.propagate(activation="gelu"), "Unknown activation"),
        (lambda: ie.propagate(batch=1), "batch"),
        (lambda: ie.layer_histograms([torch.ones(3)], 1.0, 1.0), "lo < hi"),
        (lambda: ie.layer_histograms([], 0.0, 1.0), "non-empty"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_explorer_draws_every_setting():
    explorer = ie.InitExplorer(depth=4, width=32)
    for scheme in ie.SCHEMES:
        for activation in ie.ACTIVATIONS:
            explorer.update(depth=4, width=32, activation=activation, scheme=scheme, shape="funnel")
            fig = explorer.draw()
    assert isinstance(fig.canvas, FigureCanvasAgg)
    fig.canvas.draw()
    assert explorer.params["scheme"] == list(ie.SCHEMES)[-1]


def test_explorer_widget_builds():
    pytest.importorskip("ipywidgets")
    box = ie.InitExplorer(depth=3, width=16).widget()
    assert len(box.children) == 2


def test_benchmark_redraw_smoke():
    ms = ie.benchmark_redraw()
    assert isinstance(ms, float) and 0 < ms < 5000


def test_init_explorer_shows_underflow_as_a_gap_not_a_plateau():
    """A std that underflowed to exactly 0 was drawn as a plateau at 1e-30 under a title like 'x4.1e-29'."""
    explorer = ie.InitExplorer(depth=30, width=8, activation="relu", scheme="small")
    explorer.draw()
    act_std = np.array(explorer.result.act_std, dtype=float)
    assert (act_std == 0).any(), "this setting underflows (the premise of the test)"
    drawn = np.asarray(explorer._line_act.get_ydata(), dtype=float)
    assert np.isnan(drawn[act_std == 0]).all() and (drawn[act_std > 0] == act_std[act_std > 0]).all()
    first_zero = int(np.flatnonzero(act_std == 0)[0]) + 1
    assert f"activations underflow to 0 at layer {first_zero}" in explorer._std_title.get_text()


@pytest.mark.parametrize("activation", ie.ACTIVATIONS)
def test_init_explorer_draws_at_the_extreme_settings(activation):
    explorer = ie.InitExplorer(depth=4, width=16)
    for depth, width in ((1, ie.MIN_WIDTH), (ie.MAX_DEPTH, ie.MIN_WIDTH), (ie.MAX_DEPTH, 64)):
        for scheme in ie.SCHEMES:
            explorer.update(depth=depth, width=width, activation=activation, scheme=scheme)
            explorer.draw()
            title = explorer._std_title.get_text()
            parts = title.replace("\n", ", ").split(", gradients ")
            assert len(parts) == 2 and all(("×" in p) != ("flow to" in p) for p in parts), title
            assert "×nan" not in title and "×inf" not in title and "×0 " not in title + " ", title
