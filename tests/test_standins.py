"""Procedural stand-ins and toy data: shapes, determinism, class balance, learnability."""

import pytest
import torch

import course_utils as cu


def test_shapes10_is_deterministic_and_balanced():
    X1, y1 = cu.make_shapes10(2000, seed=5)
    X2, y2 = cu.make_shapes10(2000, seed=5)
    assert X1.shape == (2000, 3, 32, 32) and X1.dtype == torch.uint8
    assert torch.equal(X1, X2) and torch.equal(y1, y2)
    counts = torch.bincount(y1, minlength=10)
    assert counts.min() > 150  # every class present in roughly equal numbers
    assert not torch.equal(X1, cu.make_shapes10(2000, seed=6)[0])


def test_shapes10_classes_are_not_given_away_by_colour():
    X, y = cu.make_shapes10(3000, seed=0)
    mean_colour = X.float().mean(dim=(2, 3))  # [n, 3]
    per_class = torch.stack([mean_colour[y == k].mean(0) for k in range(10)])
    assert per_class.std(0).max() < 12  # class means of colour are nearly equal (0..255 scale)


def test_shapes10_is_learnable_by_a_small_cnn():
    torch.manual_seed(0)
    X, y = cu.make_shapes10(1000, seed=1)
    X = X.float() / 255
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )
    hist = cu.fit(
        model,
        (X[:800], y[:800]),
        val=(X[800:], y[800:]),
        epochs=5,
        lr=3e-3,
        device="cpu",
        live_plot=False,
        progress=False,
    )
    assert hist.train_loss[-1] < 0.8 * hist.train_loss[0]
    assert max(hist.val_acc) > 0.2  # chance is 0.1


def test_street_digits_keep_the_centre_label():
    digits = torch.zeros(10, 1, 28, 28)
    for k in range(10):
        digits[k, 0, 4 + k : 8 + k, 10:18] = 1.0  # a bar whose height encodes the class
    X, y = cu.make_street_digits(digits, torch.arange(10), n=200, seed=0)
    assert X.shape == (200, 3, 32, 32) and X.dtype == torch.uint8
    assert set(y.tolist()) <= set(range(10)) and len(set(y.tolist())) == 10
    with pytest.raises(ValueError, match="digit images but"):
        cu.make_street_digits(digits, torch.arange(9), n=5)
    with pytest.raises(ValueError, match=r"\[m, 1, h, w\]"):
        cu.make_street_digits(torch.zeros(10, 3, 28, 28), torch.arange(10), n=5)


@pytest.mark.parametrize("name, classes", [("xor", 2), ("circles", 2), ("moons", 2), ("spirals", 2), ("spirals3", 3)])
def test_toy_2d(name, classes):
    X, y = cu.make_toy_2d(name, n=300, seed=0)
    assert X.shape == (300, 2) and X.dtype == torch.float32 and y.unique().numel() == classes
    assert torch.equal(cu.make_toy_2d(name, n=300, seed=0)[0], X)


def test_toy_and_generators_reject_bad_input():
    with pytest.raises(ValueError, match="choose one of xor"):
        cu.make_toy_2d("swiss-roll")
    with pytest.raises(ValueError, match="positive number of images"):
        cu.make_shapes10(0)
