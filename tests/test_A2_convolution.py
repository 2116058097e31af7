"""A2 Convolution from scratch: the reference solution against torch.nn.functional, and the recorded numbers.

The grading pipeline (release, hidden tests, autograding) is tested in tests/test_nbgrader_pipeline.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nbgrader_helpers import solution_namespace

NB = "solutions/A2_convolution/A2_convolution.ipynb"
CELLS = [
    "conv_output_size",
    "conv_forward_naive",
    "conv_backward_naive",
    "a2_col2im",
    "im2col",
    "conv_forward_im2col",
    "conv_backward_im2col",
    "max_pool",
]
CASES = [((2, 3, 7, 7), (4, 3, 3, 3), 2, 1), ((1, 2, 6, 5), (3, 2, 3, 2), 1, 0), ((3, 1, 8, 8), (2, 1, 5, 5), 1, 2)]


@pytest.fixture(scope="module")
def sol():
    return solution_namespace("A2_convolution", CELLS)


@pytest.fixture(scope="module")
def rec(notebook_records):
    return notebook_records(NB)


@pytest.mark.parametrize(
    "n, f, p, s, expected",
    [
        (7, 3, 0, 1, 5),
        (7, 3, 0, 2, 3),
        (7, 3, 1, 3, 3),
        (7, 5, 0, 1, 3),
        (7, 5, 2, 1, 7),
        (32, 5, 2, 1, 32),
        (227, 11, 0, 4, 55),
    ],
)
def test_output_size_agrees_with_torch(sol, n, f, p, s, expected):
    assert sol["conv_output_size"](n, f, p, s) == expected
    out = F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, f, f), padding=p, stride=s)
    assert out.shape[-1] == expected


def test_output_size_explains_what_does_not_fit(sol):
    with pytest.raises(ValueError, match="not a whole number"):
        sol["conv_output_size"](7, 3, 0, 3)
    with pytest.raises(ValueError, match="spans"):
        sol["conv_output_size"](3, 5, 0, 1)
    with pytest.raises(TypeError, match="integer"):
        sol["conv_output_size"](7.5, 3)


@pytest.mark.parametrize("kind", ["naive", "im2col"])
@pytest.mark.parametrize("xs, ws, stride, pad", CASES)
def test_conv_matches_torch(sol, kind, xs, ws, stride, pad):
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x, w, b = rng.normal(size=xs), rng.normal(size=ws), rng.normal(size=ws[0])
    out, cache = sol[f"conv_forward_{kind}"](x, w, b, stride, pad)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ref = F.conv2d(xt, wt, bt, stride=stride, padding=pad)
    dout = rng.normal(size=tuple(ref.shape))
    ref.backward(torch.from_numpy(dout))
    assert np.allclose(out, ref.detach().numpy())
    for mine, theirs in zip(sol[f"conv_backward_{kind}"](dout, cache), (xt, wt, bt)):
        assert np.allclose(mine, theirs.grad.numpy())


def test_im2col_matches_unfold(sol):
    x = np.random.default_rng(0).normal(size=(2, 3, 6, 5))
    u = F.unfold(torch.from_numpy(x), (3, 2), padding=1, stride=1)
    assert np.array_equal(sol["im2col"](x, 3, 2, 1, 1), u.permute(1, 0, 2).reshape(u.shape[1], -1).numpy())


@pytest.mark.parametrize("xs, ph, pw, s", [((2, 3, 4, 4), 2, 2, 2), ((1, 2, 7, 7), 3, 3, 2), ((2, 1, 5, 6), 2, 3, 1)])
def test_max_pool_matches_torch(sol, xs, ph, pw, s):
    rng = np.random.default_rng(sum(xs))
    x = rng.normal(size=xs)
    out, cache = sol["max_pool_forward_naive"](x, ph, pw, s)
    xt = torch.tensor(x, requires_grad=True)
    ref = F.max_pool2d(xt, (ph, pw), s)
    dout = rng.normal(size=tuple(ref.shape))
    ref.backward(torch.from_numpy(dout))
    assert np.allclose(out, ref.detach().numpy())
    assert np.allclose(sol["max_pool_backward_naive"](dout, cache), xt.grad.numpy())


def test_recorded_numbers(rec):
    assert rec["A2_output_sizes"] == {
        "n7_f3_p0_s1": 5,
        "n7_f3_p0_s2": 3,
        "n7_f3_p1_s3": 3,
        "n7_f5_p0_s1": 3,
        "n7_f5_p2_s1": 7,
        "n32_f5_p2_s1": 32,
    }
    assert rec["A2_conv_gradcheck_max_rel_error"] < 1e-7
    assert rec["A2_cols_memory_ratio"] == pytest.approx(9.0)  # 3x3 windows, stride 1, padding 1
    assert rec["A2_speedup_im2col_vs_naive"] > 5  # typically far more; timing noise aside
