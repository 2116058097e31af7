"""Lecture L10 (understanding and breaking CNNs): the numbers the notebook teaches, and its from-scratch code.

Two kinds of tests:

* the values the notebook recorded (accuracy of the small CNN, occlusion drops, the saliency
  gradient check, class-score maximisation, FGSM and the accuracy-vs-epsilon curve, transfer
  learning), asserting only claims that hold for any reasonable training run;
* the notebook's own implementations (the cells tagged ``scratch``: ``occlusion_map``,
  ``saliency_map``, ``loss_gradient`` and ``fgsm``), executed here on a fresh random network and
  checked against ``torch.autograd`` independently of the notebook's asserts.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import load_scratch_cells

ROOT = Path(__file__).resolve().parents[1]
NB = "lectures/L10_understanding_and_breaking_cnns.ipynb"


@pytest.fixture(scope="module")
def r(notebook_records):
    return notebook_records(NB)


# ----------------------------------------------------------------------------------------------
# Recorded values
# ----------------------------------------------------------------------------------------------
def test_the_network_is_accurate_enough_to_interpret(r):
    assert r["test_acc"] > 0.9


def test_filters_and_feature_maps_have_the_taught_shapes(r):
    assert r["filter_shape"] == [8, 1, 5, 5]
    assert r["feature_map_shapes"] == {"conv1 + ReLU": [8, 28, 28], "conv2 + ReLU": [16, 14, 14]}
    for fraction in r["feature_map_zero_fraction"].values():
        assert 0.05 < fraction < 0.95  # ReLU zeroes part of the maps, not all of them


def test_occluding_the_digit_hurts_more_than_occluding_the_empty_border(r):
    black = r["occlusion_mean_drop"]["black patch (0.0)"]
    grey = r["occlusion_mean_drop"]["grey patch (0.5)"]
    assert r["occlusion_digits"] >= 20
    assert abs(black["empty"]) < 1e-3  # a black patch on black background changes no pixel
    assert black["digit"] > black["empty"] + 0.03
    assert black["digit"] > 0.03
    # A grey patch is not "nothing": on the empty border it adds a blob and does hurt.
    assert grey["empty"] > black["empty"] + 0.005


def test_saliency_matches_central_differences(r):
    assert r["saliency_map_relative_error"] < 1e-6


def test_class_score_maximisation_raises_every_score(r):
    start, end = np.array(r["dream_scores_start"]), np.array(r["dream_scores_end"])
    assert len(start) == len(end) == 10
    assert np.all(end > start + 5)
    assert r["dream_predictions"] == list(range(10))
    assert min(r["dream_target_probability"]) > 0.9


def test_fgsm_matches_autograd_and_respects_the_budget(r):
    assert r["fgsm_sign_agreement"] == 1.0
    assert r["fgsm_max_change"] == pytest.approx(0.1, abs=1e-6)


def test_a_confident_digit_is_flipped_by_a_small_budget(r):
    v = r["victim"]
    assert v["p_clean"] > 0.99
    assert v["adv_label"] != v["label"]
    assert 1 <= v["levels"] <= 40  # at most 40 of 255 grey levels per pixel
    assert v["eps"] == pytest.approx(v["levels"] / 255)
    assert r["median_flip_levels"] >= v["levels"]
    assert r["fooled_within_80_levels"] > 0.5


def test_accuracy_falls_with_epsilon_and_random_noise_does_not_matter(r):
    eps, acc, noise = r["eps_values"], r["fgsm_accuracy"], r["random_noise_accuracy"]
    assert eps[0] == 0 and eps == sorted(eps) and len(acc) == len(noise) == len(eps)
    assert acc[0] == noise[0] and acc[0] > 0.9
    assert all(b <= a + 0.02 for a, b in zip(acc, acc[1:])), acc  # monotone, up to noise
    assert acc[-1] < 0.5 * acc[0]
    assert acc[-1] < 0.2
    assert noise[-1] > acc[-1] + 0.3


def test_frozen_features_transfer_with_few_labels(r):
    results = {int(n): accs for n, accs in r["transfer_accuracy"].items()}
    fewest = results[min(results)]
    assert r["transfer_features_unchanged"] is True
    assert fewest["frozen features + linear head"] > 0.3  # chance is 0.1
    assert fewest["frozen features + linear SVM"] > 0.3
    best_frozen = max(fewest["frozen features + linear head"], fewest["frozen features + linear SVM"])
    assert best_frozen > fewest["same CNN from scratch"]
    for accs in results.values():
        assert all(0 <= a <= 1 for a in accs.values())


def test_the_stand_in_is_labelled(r):
    from course_utils import is_offline

    if is_offline():
        assert r["transfer_is_standin"] is True


# ----------------------------------------------------------------------------------------------
# The notebook's own implementations, run on a fresh network
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scratch() -> dict:
    return load_scratch_cells(
        NB,
        required=("occlusion_map", "saliency_map", "loss_gradient", "fgsm"),
        preload={"torch": torch, "nn": nn, "F": F, "np": np, "itertools": itertools},
    )


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(1)
    model = (
        nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
        .double()
        .eval()
    )
    model.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def batch():
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(6, 1, 12, 12, generator=gen, dtype=torch.float64)
    x[0, :, :3] = 0.0  # some pixels at the clipping limits
    x[1, :, -3:] = 1.0
    y = torch.randint(0, 5, (6,), generator=gen)
    return x, y


def test_fgsm_is_eps_times_the_sign_of_the_autograd_gradient(scratch, net, batch):
    x, y = batch
    for eps in (0.0, 0.03, 0.2):
        x_req = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(net(x_req), y), x_req)  # mean reduction: same signs
        unclipped = scratch["fgsm"](net, x, y, eps, clip=False)
        assert torch.allclose(unclipped - x, eps * g.sign(), atol=1e-12)
        clipped = scratch["fgsm"](net, x, y, eps)
        assert torch.allclose(clipped, (x + eps * g.sign()).clamp(0, 1))
        assert clipped.min() >= 0 and clipped.max() <= 1
        assert (clipped - x).abs().max() <= eps + 1e-12


def test_fgsm_increases_the_loss_for_a_small_step(scratch, net, batch):
    x, y = batch
    before = F.cross_entropy(net(x), y, reduction="none")
    after = F.cross_entropy(net(scratch["fgsm"](net, x, y, 1e-3, clip=False)), y, reduction="none")
    assert torch.all(after > before)


def test_loss_gradient_is_per_image(scratch, net, batch):
    x, y = batch
    g = scratch["loss_gradient"](net, x, y)
    for i in range(len(x)):
        xi = x[i : i + 1].clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(F.cross_entropy(net(xi), y[i : i + 1]), xi)
        assert torch.allclose(g[i : i + 1], gi, atol=1e-12)


def test_fgsm_rejects_bad_input(scratch, net, batch):
    x, y = batch
    with pytest.raises(ValueError, match="eps"):
        scratch["fgsm"](net, x, y, -0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        scratch["fgsm"](net, x * 255, y, 0.1)


def test_saliency_is_the_gradient_of_each_class_score(scratch, net, batch):
    x, _ = batch
    classes = torch.tensor([0, 1, 2, 3, 4, 0])
    sal = scratch["saliency_map"](net, x, classes)
    assert sal.shape == x.shape
    for i, c in enumerate(classes.tolist()):
        xi = x[i : i + 1].clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(net(xi)[0, c], xi)
        assert torch.allclose(sal[i : i + 1], gi, atol=1e-12)


def test_saliency_rejects_bad_input(scratch, net, batch):
    x, _ = batch
    with pytest.raises(ValueError, match="batch"):
        scratch["saliency_map"](net, x[0], [0])
    with pytest.raises(ValueError, match="one class per image"):
        scratch["saliency_map"](net, x, [0, 1])


def test_occlusion_map_matches_a_direct_computation(scratch, net, batch):
    x, _ = batch
    image, label, size, stride, fill = x[2], 3, 4, 2, 0.25
    drop = scratch["occlusion_map"](net, image, label, size=size, stride=stride, fill=fill)
    n = (12 - size) // stride + 1
    assert drop.shape == (n, n)
    p_clean = net(image[None]).softmax(1)[0, label]
    for i, j in [(0, 0), (1, 3), (n - 1, n - 1)]:
        occluded = image.clone()
        occluded[:, i * stride : i * stride + size, j * stride : j * stride + size] = fill
        expected = p_clean - net(occluded[None]).softmax(1)[0, label]
        assert drop[i, j].item() == pytest.approx(expected.item(), abs=1e-12)


def test_occlusion_with_the_background_value_on_empty_image_changes_nothing(scratch, net):
    blank = torch.zeros(1, 12, 12, dtype=torch.float64)
    drop = scratch["occlusion_map"](net, blank, 1, size=3, stride=3, fill=0.0)
    assert torch.all(drop == 0)


def test_occlusion_rejects_bad_input(scratch, net, batch):
    x, _ = batch
    with pytest.raises(ValueError, match="one"):
        scratch["occlusion_map"](net, x, 0)
    with pytest.raises(ValueError, match="size"):
        scratch["occlusion_map"](net, x[0], 0, size=13)
    with pytest.raises(ValueError, match="stride"):
        scratch["occlusion_map"](net, x[0], 0, size=3, stride=0)
