"""Lecture L7 (batch normalisation): the from-scratch layer, BN folding, and the numbers the notebook teaches.

The notebook's own implementations live in cells tagged ``scratch``. They are executed here and checked
against ``torch.nn.BatchNorm1d/2d`` (forward in both modes, running averages, backward through autograd) and
against finite differences, over many shapes and settings, independently of the notebook's own asserts.
The last group of tests reads the values the notebook recorded (``notebook_records``) and asserts the
qualitative claims its prose makes, with margins chosen from runs over several seeds.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from conftest import load_scratch_cells  # noqa: E402
from course_utils import numerical_gradient_array, relative_error  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "lectures/L07_batch_normalisation.ipynb"
NAMES = (
    "batchnorm_forward",
    "batchnorm_backward",
    "batchnorm_backward_alt",
    "spatial_batchnorm_forward",
    "spatial_batchnorm_backward",
    "fold_bn_into_conv",
    "fold_all_bn",
)


# ----------------------------------------------------------------------------------------------
# The notebook's from-scratch code
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bn() -> dict:
    return load_scratch_cells(
        NOTEBOOK, required=NAMES, preload={"np": np, "torch": torch, "nn": nn, "copy": copy, "math": math}
    )


def _torch_bn(cls, gamma, beta, eps, momentum):
    layer = cls(len(gamma), eps=eps, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(gamma))
        layer.bias.copy_(torch.from_numpy(beta))
    return layer


# ----------------------------------------------------------------------------------------------
# Forward pass and running averages vs torch
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 1), (3, 7), (16, 5), (128, 33)])
@pytest.mark.parametrize("momentum,eps", [(0.1, 1e-5), (0.3, 1e-3), (None, 1e-5), (1.0, 0.1)])
def test_forward_and_running_stats_match_batchnorm1d(bn, shape, momentum, eps):
    rng = np.random.default_rng(sum(shape))
    n, d = shape
    gamma, beta = rng.uniform(0.2, 3, d), rng.normal(0, 2, d)
    layer = _torch_bn(nn.BatchNorm1d, gamma, beta, eps, momentum).train()
    param = {"mode": "train", "eps": eps, "momentum": momentum}
    for _ in range(6):
        x = rng.normal(rng.normal(0, 5), rng.uniform(0.1, 4), (n, d))
        ours, _ = bn["batchnorm_forward"](x, gamma, beta, param)
        theirs = layer(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(param["running_mean"], layer.running_mean.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(param["running_var"], layer.running_var.numpy(), rtol=1e-12, atol=1e-12)
    assert param["num_batches_tracked"] == layer.num_batches_tracked.item() == 6
    param["mode"] = "eval"
    layer.eval()
    x = rng.normal(1, 3, (max(n - 1, 1), d))  # evaluation works for any batch size, even 1
    ours, _ = bn["batchnorm_forward"](x, gamma, beta, param)
    np.testing.assert_allclose(ours, layer(torch.from_numpy(x)).detach().numpy(), rtol=1e-10, atol=1e-10)


def test_running_var_is_unbiased_and_momentum_weights_the_new_batch(bn):
    x = np.array([[1.0], [2.0], [4.0], [7.0]])
    param = {"mode": "train", "momentum": 0.25}
    bn["batchnorm_forward"](x, np.ones(1), np.zeros(1), param)
    assert param["running_mean"][0] == pytest.approx(0.75 * 0 + 0.25 * 3.5)
    assert param["running_var"][0] == pytest.approx(0.75 * 1 + 0.25 * 7.0)  # unbiased variance 21/3 = 7


def test_train_output_is_standardised_and_eval_uses_running_stats(bn):
    rng = np.random.default_rng(0)
    x = rng.normal(4, 3, (50, 6))
    out, cache = bn["batchnorm_forward"](x, np.ones(6), np.zeros(6), {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=0), x.var(axis=0) / (x.var(axis=0) + 1e-5), rtol=1e-12)
    param = {"mode": "eval", "running_mean": np.full(6, 2.0), "running_var": np.full(6, 4.0), "eps": 0.0}
    out, _ = bn["batchnorm_forward"](x, np.full(6, 3.0), np.full(6, -1.0), param)
    np.testing.assert_allclose(out, 3 * (x - 2) / 2 - 1)
    assert "num_batches_tracked" not in param  # eval mode leaves the statistics alone


# ----------------------------------------------------------------------------------------------
# Backward pass: both versions vs autograd and finite differences
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 1), (4, 3), (17, 8), (64, 32)])
@pytest.mark.parametrize("version", ["batchnorm_backward", "batchnorm_backward_alt"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_backward_matches_autograd(bn, shape, version, mode):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    n, d = shape
    x = rng.normal(2, 3, shape)
    gamma, beta = rng.normal(1, 0.5, d), rng.normal(0, 1, d)
    dout = rng.normal(size=shape)
    running_mean, running_var = rng.normal(0, 1, d), rng.uniform(0.5, 3, d)
    layer = _torch_bn(nn.BatchNorm1d, gamma, beta, 1e-5, 0.1)
    with torch.no_grad():
        layer.running_mean.copy_(torch.from_numpy(running_mean))
        layer.running_var.copy_(torch.from_numpy(running_var))
    layer.train(mode == "train")
    x_t = torch.tensor(x, requires_grad=True)
    layer(x_t).backward(torch.from_numpy(dout))
    param = {"mode": mode, "running_mean": running_mean.copy(), "running_var": running_var.copy()}
    _, cache = bn["batchnorm_forward"](x, gamma, beta, param)
    dx, dgamma, dbeta = bn[version](dout, cache)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(dgamma, layer.weight.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dbeta, layer.bias.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("version", ["batchnorm_backward", "batchnorm_backward_alt"])
def test_backward_matches_finite_differences(bn, version):
    rng = np.random.default_rng(7)
    x = rng.normal(-1, 2, (5, 3))
    gamma, beta, dout = rng.normal(1, 0.5, 3), rng.normal(0, 1, 3), rng.normal(size=(5, 3))

    def f(x_=None, g_=None, b_=None):
        return bn["batchnorm_forward"](
            x if x_ is None else x_, gamma if g_ is None else g_, beta if b_ is None else b_, {"mode": "train"}
        )[0]

    _, cache = bn["batchnorm_forward"](x, gamma, beta, {"mode": "train"})
    dx, dgamma, dbeta = bn[version](dout, cache)
    assert relative_error(dx, numerical_gradient_array(lambda v: f(x_=v), x.copy(), dout)) < 1e-7
    assert relative_error(dgamma, numerical_gradient_array(lambda v: f(g_=v), gamma.copy(), dout)) < 1e-7
    assert relative_error(dbeta, numerical_gradient_array(lambda v: f(b_=v), beta.copy(), dout)) < 1e-7


def test_closed_form_gradient_sums_to_zero_and_is_orthogonal_to_x_hat(bn):
    rng = np.random.default_rng(8)
    x, dout = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    _, cache = bn["batchnorm_forward"](x, np.ones(4), np.zeros(4), {"mode": "train"})
    dx = bn["batchnorm_backward_alt"](dout, cache)[0]
    np.testing.assert_allclose(dx.sum(axis=0), 0, atol=1e-12)  # shift invariance: exact
    # scale invariance holds exactly only without eps (with eps it is off by about eps / var)
    _, cache0 = bn["batchnorm_forward"](x, np.ones(4), np.zeros(4), {"mode": "train", "eps": 0.0})
    dx0 = bn["batchnorm_backward_alt"](dout, cache0)[0]
    np.testing.assert_allclose((dx0 * cache0["x_hat"]).sum(axis=0), 0, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Spatial (BatchNorm2d) version
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 2, 3, 3), (2, 3, 4, 5), (8, 4, 1, 1), (5, 6, 7, 2)])
def test_spatial_matches_batchnorm2d(bn, shape):
    rng = np.random.default_rng(sum(shape))
    c = shape[1]
    x = rng.normal(1, 2, shape)
    gamma, beta, dout = rng.uniform(0.5, 2, c), rng.normal(0, 1, c), rng.normal(size=shape)
    layer = _torch_bn(nn.BatchNorm2d, gamma, beta, 1e-5, 0.1).train()
    x_t = torch.tensor(x, requires_grad=True)
    out_t = layer(x_t)
    out_t.backward(torch.from_numpy(dout))
    param = {"mode": "train"}
    out, cache = bn["spatial_batchnorm_forward"](x, gamma, beta, param)
    dx, dgamma, dbeta = bn["spatial_batchnorm_backward"](dout, cache)
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(param["running_mean"], layer.running_mean.numpy(), atol=1e-12)
    np.testing.assert_allclose(param["running_var"], layer.running_var.numpy(), rtol=1e-12)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(dgamma, layer.weight.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dbeta, layer.bias.grad.numpy(), rtol=1e-10, atol=1e-10)
    param["mode"] = "eval"
    layer.eval()
    out, _ = bn["spatial_batchnorm_forward"](x, gamma, beta, param)
    np.testing.assert_allclose(out, layer(torch.from_numpy(x)).detach().numpy(), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------------------
# Bad inputs give errors that say what to do
# ----------------------------------------------------------------------------------------------
def test_bad_inputs_raise_helpful_errors(bn):
    fwd = bn["batchnorm_forward"]
    ok_x, ones, zeros = np.ones((4, 3)), np.ones(3), np.zeros(3)
    with pytest.raises(ValueError, match="at least 2"):
        fwd(np.ones((1, 3)), ones, zeros, {"mode": "train"})
    with pytest.raises(ValueError, match="spatial_batchnorm_forward"):
        fwd(np.ones((2, 3, 4, 4)), ones, zeros, {"mode": "train"})
    with pytest.raises(ValueError, match="gamma must have shape"):
        fwd(ok_x, np.ones(4), zeros, {"mode": "train"})
    with pytest.raises(ValueError, match="'train' or 'eval'"):
        fwd(ok_x, ones, zeros, {"mode": "test"})
    with pytest.raises(ValueError, match="momentum"):
        fwd(ok_x, ones, zeros, {"mode": "train", "momentum": 0.9 + 1})
    with pytest.raises(TypeError, match="dict"):
        fwd(ok_x, ones, zeros, None)
    _, cache = fwd(np.arange(12.0).reshape(4, 3), ones, zeros, {"mode": "train"})
    for version in ("batchnorm_backward", "batchnorm_backward_alt"):
        with pytest.raises(ValueError, match="dout has shape"):
            bn[version](np.ones((3, 3)), cache)
        with pytest.raises(TypeError, match="cache"):
            bn[version](np.ones((4, 3)), None)
    with pytest.raises(ValueError, match="4-D"):
        bn["spatial_batchnorm_forward"](ok_x, ones, zeros, {"mode": "train"})
    # N = 1 and 1x1 images: only one value per channel, as torch refuses too
    with pytest.raises(ValueError, match="at least 2"):
        bn["spatial_batchnorm_forward"](np.ones((1, 3, 1, 1)), ones, zeros, {"mode": "train"})


# ----------------------------------------------------------------------------------------------
# Folding BN into the preceding convolution
# ----------------------------------------------------------------------------------------------
def _trained_bn(channels, seed, affine=True, make_input=None):
    torch.manual_seed(seed)
    layer = nn.BatchNorm2d(channels, affine=affine, dtype=torch.float64)
    with torch.no_grad():
        if affine:
            layer.weight.uniform_(-2, 2)  # negative gammas too
            layer.bias.normal_()
        for _ in range(15):
            layer.train()(make_input())
    return layer.eval()


@pytest.mark.parametrize(
    "stride,padding,dilation,groups,bias,affine",
    [
        (1, 0, 1, 1, True, True),
        (2, 1, 1, 1, False, True),
        (1, 2, 2, 1, True, False),
        (2, 1, 1, 2, False, True),
        (1, 1, 1, 4, True, True),
    ],
)
def test_fold_bn_into_conv_matches_conv_then_bn_in_eval_mode(bn, stride, padding, dilation, groups, bias, affine):
    torch.manual_seed(stride * 7 + groups)
    conv = nn.Conv2d(
        4, 8, 3, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias, dtype=torch.float64
    )
    layer = _trained_bn(
        8, seed=3, affine=affine, make_input=lambda: conv(torch.randn(6, 4, 11, 11, dtype=torch.float64) * 3 + 1)
    )
    folded = bn["fold_bn_into_conv"](conv, layer)
    assert isinstance(folded, nn.Conv2d) and folded.bias is not None
    x = torch.randn(3, 4, 11, 11, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), layer(conv(x)), rtol=1e-11, atol=1e-11)
    assert conv.weight.shape == folded.weight.shape
    reference = torch.nn.utils.fusion.fuse_conv_bn_eval(conv.eval(), layer)  # PyTorch's own folding
    torch.testing.assert_close(folded.weight, reference.weight, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(folded.bias, reference.bias, rtol=1e-12, atol=1e-12)


def test_fold_all_bn_on_a_trained_network(bn):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1, bias=False),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 4, 3, stride=2),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
    ).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(20):  # a few real training steps move every statistic
        x, y = torch.randn(16, 2, 10, 10, dtype=torch.float64) * 2 + 0.5, torch.randint(0, 3, (16,))
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    folded = bn["fold_all_bn"](model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert len(folded) == len(model) - 2
    x = torch.randn(5, 2, 10, 10, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-10, atol=1e-10)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "folding must not change the original"


def test_fold_errors(bn):
    fold = bn["fold_bn_into_conv"]
    with pytest.raises(TypeError, match="expected"):
        fold(nn.Linear(3, 3), nn.BatchNorm2d(3))
    with pytest.raises(ValueError, match="channels"):
        fold(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(5))
    with pytest.raises(ValueError, match="track_running_stats"):
        fold(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False))
    with pytest.raises(TypeError, match="nn.Sequential"):
        bn["fold_all_bn"](nn.Conv2d(3, 4, 3))


def test_conv_bias_before_bn_is_cancelled_in_training_mode():
    torch.manual_seed(2)
    conv = nn.Conv2d(3, 5, 3, dtype=torch.float64)
    with torch.no_grad():
        conv.bias.uniform_(-5, 5)
    x = torch.randn(6, 3, 8, 8, dtype=torch.float64)
    bn_layer = nn.BatchNorm2d(5, dtype=torch.float64).train()
    out = bn_layer(conv(x))
    no_bias = bn_layer(nn.functional.conv2d(x, conv.weight))
    torch.testing.assert_close(out, no_bias, rtol=0, atol=1e-12)
    (out * torch.randn_like(out)).sum().backward()
    assert conv.bias.grad.abs().max() < 1e-12


# ----------------------------------------------------------------------------------------------
# Numbers and claims the notebook teaches
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def records(notebook_records) -> dict:
    return notebook_records(NOTEBOOK)


def test_recorded_checks_against_torch(records):
    assert records["forward_train_max_diff"] < 1e-12
    assert records["running_stats_max_diff"] < 1e-12
    assert records["forward_eval_max_diff"] < 1e-12
    assert max(records["bn2d_max_diffs"].values()) < 1e-12
    errors = records["gradient_relative_errors"]
    assert len(errors) == 12
    assert all(v < 1e-7 for k, v in errors.items() if "finite" in k)
    assert all(v < 1e-10 for k, v in errors.items() if "autograd" in k)
    assert records["dx_column_sum_max"] < 1e-10
    assert records["closed_form_speedup"] > 0


def test_recorded_demo_and_running_var_convention(records):
    np.testing.assert_allclose(records["demo_x_hat_mean"], 0, atol=1e-12)
    np.testing.assert_allclose(records["demo_y_mean"], [1.0, -1.0], atol=1e-12)
    assert records["one_batch_running_var"] == pytest.approx(1.6)  # 0.9 * 1 + 0.1 * (21 / 3)
    assert records["one_batch_candidates"]["unbiased (divide by N-1)"] == pytest.approx(1.6)
    assert records["one_batch_candidates"]["biased (divide by N)"] == pytest.approx(0.9 + 0.1 * 21 / 4)


def test_recorded_shapes_1d_vs_2d(records):
    assert records["bn2d_shapes"] == {
        "input x": [4, 3, 5, 6],
        "running_mean / weight / bias": [3],
        "values per statistic": 4 * 5 * 6,
        "mean over dims (0, 2, 3)": [3],
    }
    assert records["reduce_dims"] == {
        "BatchNorm1d on (N, D)": [0],
        "BatchNorm1d on (N, C, L)": [0, 2],
        "BatchNorm2d on (N, C, H, W)": [0, 2, 3],
    }
    assert records["bn_params_per_channel"] == 2 * 16
    assert records["bn_params_per_position"] == 2 * 16 * 14 * 14


def _acc(records, bn, lr, init=1.0):
    return records["final_acc"][f"{'bn' if bn else 'plain'} lr={lr} init={init}"]


def test_training_sweep_claims(records):
    lr_small, lr_mid, lr_big = records["lrs"]
    small_scale, _, big_scale = records["init_scales"]
    # small learning rate: both learn, BN further
    assert _acc(records, False, lr_small) > 0.35
    assert _acc(records, True, lr_small) > _acc(records, False, lr_small)
    # middle learning rate: both losses jump far above ln 10 at first; BN recovers, the plain network ends far behind
    assert _acc(records, True, lr_mid) > 0.6
    assert _acc(records, True, lr_mid) - _acc(records, False, lr_mid) > 0.15
    peak = records["peak_loss"]
    assert peak[f"plain lr={lr_mid} init=1.0"] > 2 * math.log(10)
    assert peak[f"bn lr={lr_mid} init=1.0"] > 2 * math.log(10)
    # largest learning rate: the plain network fails, BN is much worse than at the middle rate
    assert _acc(records, False, lr_big) < 0.2
    assert _acc(records, True, lr_big) < _acc(records, True, lr_mid) - 0.15
    # initial scale: without BN nothing is learned at either extreme; with BN both train, the large one slower
    for scale in (small_scale, big_scale):
        assert _acc(records, False, lr_small, scale) < 0.25
        assert _acc(records, True, lr_small, scale) > 0.5
    assert _acc(records, True, lr_small, big_scale) < _acc(records, True, lr_small, small_scale)
    # "growing them makes the first steps catastrophic": the plain network's loss explodes, BN's does not
    assert peak[f"plain lr={lr_small} init={big_scale}"] > 10 * math.log(10)
    assert peak[f"bn lr={lr_small} init={big_scale}"] < peak[f"plain lr={lr_small} init={big_scale}"]
    assert records["grad_ratio_conv_scale4"] == pytest.approx(4.0, abs=1e-2)


def test_train_vs_eval_claims(records):
    assert records["companion_logit_diff_eval"] < 1e-5 < 1e-2 < records["companion_logit_diff_train"]
    acc = records["eval_mode_accuracies"]
    eval_acc = acc["eval mode"]
    assert eval_acc > 0.6
    assert abs(acc["train mode, shuffled batches of 100"] - eval_acc) < 0.03
    assert eval_acc - acc["train mode, batch size 1"] > 0.03
    assert eval_acc - acc["train mode, batches of 50 sorted by label"] > 0.03
    assert min(records["running_var_relative_change"]) > 0.005
    assert records["eval_acc_before_train_mode_passes"] == pytest.approx(eval_acc)
    assert abs(records["eval_acc_after_train_mode_passes"] - eval_acc) < 0.05  # "changes little here"
    # Issue 12: recomputing the BN statistics over the training set (momentum=None) repairs the damaged copy
    assert records["bn_recompute_first_mean_gap"] < 1e-4
    recomputed = records["bn_recompute_accuracies"]
    assert recomputed["as trained (exponential averages)"] == pytest.approx(eval_acc)
    assert abs(recomputed["statistics recomputed on the training set"] - eval_acc) < 0.03


def test_folding_and_bias_claims(records):
    assert records["fold_max_diff_float64"] < 1e-12
    assert records["fold_vs_fuse_conv_bn_eval"] < 1e-12
    assert records["fold_trained_logit_max_diff"] < 1e-3
    assert records["fold_same_predictions"] == 1.0
    counts = records["fold_param_counts"]
    assert counts["with BN"] - counts["folded"] == 8 + 16 + 32  # 2 per channel become 1 per channel
    assert records["fold_layer_counts"] == {"with BN": 14, "folded": 11}
    assert records["bias_output_max_diff"] < 1e-12
    assert records["bias_grad_max_abs"] < 1e-12
    after_1, after_10, after_100 = records["bias_eval_diff_after_1_10_100"]
    assert after_1 > after_10 > after_100 and after_100 < 1e-2 * after_1  # decays like 0.9 ** k
    assert records["bias_params_saved_in_cnn"] == 8 + 16 + 32


def test_gradient_norm_illustration(records):
    cv = records["grad_norm_cv"]
    assert set(cv) == {"plain lr=0.03", "bn lr=0.03", "plain lr=0.1", "bn lr=0.1"}
    assert all(v > 0 and math.isfinite(v) for v in cv.values())
    assert cv["plain lr=0.1"] > cv["bn lr=0.1"]
