"""Lecture L6 (generalisation and regularisation): the hand-written tools and the taught numbers.

The cells tagged ``scratch`` in the notebook (k-NN regression, the bias-variance estimate, the weight-decay
step, dropout, test-time augmentation) are executed here and checked against PyTorch and scikit-learn,
independently of the notebook's own asserts. The remaining tests read the numbers the notebook recorded.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from conftest import load_scratch_cells  # noqa: E402
from course_utils import fast_or_full  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "lectures/L06_generalisation_regularisation.ipynb"
SCRATCH_NAMES = (
    "NOISE",
    "true_curve",
    "sample_points",
    "knn_regress",
    "bias_variance",
    "make_mlp",
    "EarlyStopping",
    "sgd_weight_decay_step",
    "dropout",
    "Dropout",
    "shift_images",
    "tta_probabilities",
)


# ----------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scratch() -> dict:
    return load_scratch_cells(
        NOTEBOOK, required=SCRATCH_NAMES, preload={"torch": torch, "np": np, "nn": nn, "F": F, "copy": copy}
    )


@pytest.fixture(scope="module")
def records(notebook_records) -> dict:
    return notebook_records(NOTEBOOK)


def _small_mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4)).double()
    net.unused = nn.Linear(3, 3).double()  # takes no part in the loss: its .grad stays None
    return net


# ----------------------------------------------------------------------------------------------
# Early stopping callback
# ----------------------------------------------------------------------------------------------
class _FakeHistory:
    def __init__(self):
        self.val_loss: list[float] = []


@pytest.mark.parametrize("stop", [False, True])
def test_early_stopping_tracks_the_best_epoch_and_its_weights(scratch, stop):
    model = nn.Linear(2, 1)
    stopper = scratch["EarlyStopping"](model, patience=2, stop=stop)
    history = _FakeHistory()
    answers = []
    for epoch, loss in enumerate([3.0, 2.0, 1.0, 1.5, 1.6, 0.5]):
        with torch.no_grad():
            model.weight.fill_(float(epoch))  # mark the weights with the epoch index
        history.val_loss.append(loss)
        answers.append(stopper(epoch, history))
        if epoch == 4:
            assert stopper.best_epoch == 3 and torch.all(stopper.best_state["weight"] == 2.0)
    assert answers == [False, False, False, False, stop, False]
    assert stopper.stop_epoch == 5 and stopper.choice_at_stop == 3
    assert stopper.best_epoch == 6 and stopper.best_loss == 0.5  # a later improvement is still recorded


def test_early_stopping_really_stops_fit(scratch):
    from course_utils import fit

    gen = torch.Generator().manual_seed(0)
    X, y = torch.randn(64, 1, 28, 28, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    Xv, yv = torch.randn(64, 1, 28, 28, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    torch.manual_seed(0)
    model = scratch["make_mlp"](32)
    stopper = scratch["EarlyStopping"](model, patience=1, stop=True)
    history = fit(
        model,
        (X, y),
        val=(Xv, yv),
        epochs=30,
        lr=1e-2,
        batch_size=16,
        device="cpu",
        callbacks=[stopper],
        live_plot=False,
        progress=False,
    )
    assert stopper.stop_epoch is not None, "pure-noise labels should make the validation loss rise"
    assert history.epochs == stopper.stop_epoch < 30


def test_early_stopping_rejects_bad_input(scratch):
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="patience"):
            scratch["EarlyStopping"](nn.Linear(2, 1), patience=bad)
    with pytest.raises(ValueError, match="validation data"):
        scratch["EarlyStopping"](nn.Linear(2, 1))(0, _FakeHistory())


# ----------------------------------------------------------------------------------------------
# Weight decay, written by hand, against torch.optim.SGD(weight_decay=...)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lr, lam", [(0.1, 0.0), (0.1, 0.05), (0.02, 0.5), (0.3, 1e-3)])
def test_weight_decay_step_equals_torch_sgd_step_for_step(scratch, lr, lam):
    ours = _small_mlp(seed=3)
    theirs = _small_mlp(seed=3)
    opt = torch.optim.SGD(theirs.parameters(), lr=lr, weight_decay=lam)
    gen = torch.Generator().manual_seed(0)
    start = [p.detach().clone() for p in ours.parameters()]
    for _ in range(40):
        X = torch.randn(16, 12, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 4, (16,), generator=gen)
        for net in (ours, theirs):
            net.zero_grad()
            F.cross_entropy(net[:3](X), y).backward()
        scratch["sgd_weight_decay_step"](ours.parameters(), lr, lam)
        opt.step()
        for a, b in zip(ours.parameters(), theirs.parameters()):
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    moved = max((p - s).abs().max().item() for p, s in zip(ours.parameters(), start))
    assert moved > 1e-2, "the check is vacuous: the weights hardly moved"
    assert all(torch.equal(a, b) for a, b in zip(ours.unused.parameters(), start[-2:]))


def test_weight_decay_step_is_the_formula(scratch):
    theta = torch.tensor([2.0, -1.0], dtype=torch.float64, requires_grad=True)
    theta.grad = torch.tensor([0.5, 0.25], dtype=torch.float64)
    scratch["sgd_weight_decay_step"]([theta], 0.1, 0.2)
    expected = (1 - 0.1 * 0.2) * torch.tensor([2.0, -1.0], dtype=torch.float64) - 0.1 * torch.tensor(
        [0.5, 0.25], dtype=torch.float64
    )
    assert torch.allclose(theta.detach(), expected, rtol=1e-15)


@pytest.mark.parametrize(
    "lr, lam, fragment", [(0.0, 0.1, "learning rate"), (-1.0, 0.1, "learning rate"), (0.1, -0.1, "weight_decay")]
)
def test_weight_decay_step_rejects_bad_arguments(scratch, lr, lam, fragment):
    p = nn.Parameter(torch.ones(2))
    p.grad = torch.ones(2)
    with pytest.raises(ValueError, match=fragment):
        scratch["sgd_weight_decay_step"]([p], lr, lam)


# ----------------------------------------------------------------------------------------------
# Dropout, written by hand, against torch.nn.functional.dropout
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics_match_torch(scratch, p):
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(1000, 1000, generator=gen) + 0.5
    ours = scratch["dropout"](x, p, generator=torch.Generator().manual_seed(2))
    theirs = F.dropout(x, p, training=True)
    for out in (ours, theirs):
        assert abs((out == 0).float().mean().item() - p) < 0.005  # fraction zeroed ~ p
        assert out.mean().item() == pytest.approx(x.mean().item(), rel=0.01)  # mean preserved
        survivors = out[out != 0]
        assert torch.allclose(survivors, x[out != 0] / (1 - p), rtol=1e-6)  # survivors scaled by 1/(1-p)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dropout_equals_torch_exactly_given_the_same_mask(scratch, p, dtype):
    torch.manual_seed(7)
    x = (torch.rand(64, 33, dtype=dtype) + 0.1).requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    theirs = F.dropout(x, p, training=True)
    mask = (theirs != 0).to(dtype)
    ours = scratch["dropout"](x2, p, mask=mask)
    assert torch.equal(ours, theirs)
    weights = torch.randn(64, 33, dtype=dtype)
    (theirs * weights).sum().backward()
    (ours * weights).sum().backward()
    assert torch.equal(x.grad, x2.grad)


def test_dropout_eval_mode_and_extreme_probabilities(scratch):
    dropout = scratch["dropout"]
    x = torch.randn(50, 20)
    assert torch.equal(dropout(x, 0.5, training=False), x)
    assert torch.equal(dropout(x, 0.0), x)
    assert torch.equal(dropout(x, 1.0), F.dropout(x, 1.0, training=True))
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))


def test_dropout_module_follows_train_and_eval(scratch):
    layer = scratch["Dropout"](0.5)
    reference = nn.Dropout(0.5)
    x = torch.randn(200, 30)
    layer.train()
    a, b = layer(x), layer(x)
    assert not torch.equal(a, b)
    assert set(torch.unique((a / x).round(decimals=4)).tolist()) <= {0.0, 2.0}
    layer.eval(), reference.eval()
    assert torch.equal(layer(x), x) and torch.equal(reference(x), x)
    assert list(layer.state_dict()) == []  # no parameters, no buffers, like nn.Dropout


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.5", True, None])
def test_dropout_rejects_a_bad_probability(scratch, bad):
    with pytest.raises(ValueError, match="probability p"):
        scratch["dropout"](torch.ones(3), bad)
    with pytest.raises(ValueError, match="probability p"):
        scratch["Dropout"](bad)


def test_dropout_rejects_a_mask_of_the_wrong_shape(scratch):
    with pytest.raises(ValueError, match="shape"):
        scratch["dropout"](torch.ones(4, 5), 0.5, mask=torch.ones(5, 4))


# ----------------------------------------------------------------------------------------------
# k-NN regression and the bias-variance decomposition
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3, 7, 25])
def test_knn_regress_matches_scikit_learn(scratch, k):
    from sklearn.neighbors import KNeighborsRegressor

    rng = np.random.default_rng(0)
    x, y = scratch["sample_points"](25, rng)
    query = rng.uniform(0, 1, 40)
    expected = KNeighborsRegressor(n_neighbors=k).fit(x[:, None], y).predict(query[:, None])
    assert np.allclose(scratch["knn_regress"](x, y, query, k), expected, rtol=1e-12)


def test_knn_regress_extremes_and_bad_inputs(scratch):
    knn = scratch["knn_regress"]
    rng = np.random.default_rng(1)
    x, y = scratch["sample_points"](30, rng)
    assert np.array_equal(knn(x, y, x, 1), y)  # k = 1 memorises
    assert np.allclose(knn(x, y, np.linspace(0, 1, 7), 30), y.mean())  # k = n predicts the mean
    for bad_k in (0, 31, 2.5, True):
        with pytest.raises(ValueError, match="k must be"):
            knn(x, y, x, bad_k)
    with pytest.raises(ValueError, match="same length"):
        knn(x, y[:-1], x, 3)


def test_bias_variance_decomposition(scratch):
    grid = np.linspace(0.05, 0.95, 60)
    noise_var = scratch["NOISE"] ** 2
    small_k = scratch["bias_variance"](1, 300, 40, grid, seed=5)
    large_k = scratch["bias_variance"](40, 300, 40, grid, seed=6)
    for d in (small_k, large_k):
        fits_vs_truth = np.mean((d["preds"] - scratch["true_curve"](grid)) ** 2)
        assert fits_vs_truth == pytest.approx(d["bias2"] + d["variance"], rel=1e-12)
        assert d["test_mse"] == pytest.approx(d["bias2"] + d["variance"] + noise_var, rel=0.1)
    assert small_k["variance"] > 3 * large_k["variance"]
    assert large_k["bias2"] > 10 * small_k["bias2"]
    with pytest.raises(ValueError, match="at least 2"):
        scratch["bias_variance"](3, 1, 40, grid)


# ----------------------------------------------------------------------------------------------
# Test-time augmentation helpers
# ----------------------------------------------------------------------------------------------
def test_shift_images_moves_content_and_fills_with_zeros(scratch):
    shift = scratch["shift_images"]
    img = torch.zeros(1, 1, 6, 6)
    img[0, 0, 2, 3] = 1.0
    assert torch.equal(shift(img, 0, 0), img)
    moved = shift(img, 1, -2)
    assert moved.shape == img.shape and moved[0, 0, 3, 1] == 1.0 and moved.sum() == 1.0
    assert torch.equal(shift(shift(img, 1, -2), -1, 2), img)  # nothing fell off the edge here
    assert shift(img, 0, 3).sum() == 0  # pushed off the edge: zeros


def test_tta_with_the_identity_view_is_the_plain_softmax(scratch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 5))
    images = torch.randn(8, 1, 4, 4)
    plain = F.softmax(model(images), dim=1).detach()
    assert torch.equal(scratch["tta_probabilities"](model, images, [lambda im: im]), plain)
    two = scratch["tta_probabilities"](model, images, [lambda im: im, lambda im: im.flip(-1)])
    assert torch.allclose(two.sum(dim=1), torch.ones(8))
    with pytest.raises(ValueError, match="at least one view"):
        scratch["tta_probabilities"](model, images, [])


# ----------------------------------------------------------------------------------------------
# Numbers the notebook teaches
# ----------------------------------------------------------------------------------------------
def test_split_sizes(records):
    sizes = records["split_sizes"]
    assert sizes["train"] == fast_or_full(300, 1000)
    assert sizes["val"] == fast_or_full(300, 500)
    assert sizes["test"] > 0


def test_validation_chooses_k_and_training_error_misleads(records):
    train_mse, val_mse, ks = records["knn_train_mse"], records["knn_val_mse"], records["bv_ks"]
    assert train_mse[0] == 0.0  # k = 1 memorises its training set
    assert train_mse[-1] > train_mse[0]
    k = records["knn_k_chosen_on_validation"]
    assert ks[0] < k < ks[-1]  # the validation curve is U-shaped
    assert val_mse[ks.index(k)] == min(val_mse)
    assert records["knn_test_mse_of_chosen_k"] > records["bv_noise_var"]  # nothing beats the noise


def test_recorded_bias_variance(records):
    bias2, variance = records["bv_bias2"], records["bv_variance"]
    assert variance[0] > 3 * variance[-1] and bias2[-1] > 10 * bias2[0]
    assert np.allclose(records["bv_test_mse_measured"], records["bv_bias2_plus_var_plus_noise"], rtol=0.1)


def test_early_stopping(records):
    val_loss, train_loss = records["es_val_loss"], records["es_train_loss"]
    epochs, best = records["es_epochs"], records["es_best_epoch"]
    assert len(val_loss) == len(train_loss) == epochs
    assert best == int(np.argmin(val_loss)) + 1  # the epoch is the minimum of the val curve
    assert 1 < best < epochs  # ... and lies inside the run
    assert val_loss[-1] > 1.05 * min(val_loss)  # the validation loss turned up again
    assert train_loss[-1] < train_loss[best - 1]  # while training loss kept falling
    patience = records["es_patience_stop"]
    if patience["stop_epoch"] is not None:
        assert patience["stop_epoch"] - patience["choice"] == patience["patience"]
        assert patience["choice"] <= best
    test_loss, test_acc = records["es_test_loss"], records["es_test_acc"]
    assert test_loss["best_epoch"] < test_loss["last_epoch"]  # the choice paid off on the test set
    assert test_acc["best_epoch"] > test_acc["last_epoch"]
    assert 0.1 < records["fraction_wrong_training_labels"] < 0.3
    assert records["mlp_parameters"] > 100 * records["split_sizes"]["train"]  # over-parameterised


def test_recorded_weight_decay(records):
    assert records["wd_max_gap_vs_torch"] < 1e-12
    assert records["wd_steps_checked"] >= 10
    norms = records["weight_norm"]
    assert norms["weight_decay"] < norms["plain"]
    assert records["wd_val_loss"][-1] < records["es_val_loss"][-1]


def test_recorded_dropout(records):
    stats = records["dropout_stats"]
    p = stats["p"]
    assert abs(stats["zero_fraction_ours"] - p) < 0.005 and abs(stats["zero_fraction_torch"] - p) < 0.005
    assert stats["mean_ours"] == pytest.approx(stats["mean_input"], rel=0.01)
    assert stats["mean_torch"] == pytest.approx(stats["mean_input"], rel=0.01)
    assert records["dropout_exact_match"] == {"output": True, "gradient": True}
    assert records["dropout_modes"] == {"train_calls_equal": False, "eval_calls_equal": True}
    assert len(records["dropout_val_loss"]) == records["es_epochs"]


def test_conv_feature_maps_are_spatially_correlated(records):
    conv = records["conv_dropout"]
    assert conv["neighbour_corr_feature_map"] > 0.6
    assert abs(conv["neighbour_corr_shuffled"]) < 0.1
    assert conv["corr_blurred_dropped_vs_blurred_original"] > 0.7
    assert records["dropout2d_fraction_channels_zeroed"] == pytest.approx(0.5, abs=0.03)


def test_more_regularisation_raises_the_loss(records):
    """Issue 12, the babysitting check: data loss + penalty rises with lambda; untrained loss is about ln 10."""
    totals = records["reg_sanity_total_loss"]
    assert all(a < b for a, b in zip(totals, totals[1:]))
    assert records["reg_sanity_init_data_loss"] == pytest.approx(math.log(10), abs=0.3)


def test_dropout_on_a_linear_model_is_ridge(records):
    """Issue 12: averaged over masks, input dropout adds p/(1-p) * sum_j w_j^2 mean(x_j^2) to the squared loss."""
    monte_carlo, closed_form = records["linear_dropout_mc_vs_closed"]
    assert monte_carlo == pytest.approx(closed_form, rel=0.01)
    distance = records["linear_dropout_distance"]
    assert distance["ridge"] < 0.02 and distance["no penalty"] > 0.15
    # dropout commutes with ReLU (non-negative homogeneous), not with tanh
    assert records["dropout_commute_gap"]["ReLU"] == 0 and records["dropout_commute_gap"]["tanh"] > 0.01


def test_flips_are_wrong_for_digits(records):
    acc = records["view_accuracy"]
    for view in ("horizontal flip", "vertical flip", "rotated 180°"):
        assert acc[view] < acc["original"] - 0.3
    aug = records["augmentation_experiment"]
    assert aug["random flips"]["test_acc"] < aug["none"]["test_acc"] - 0.05
    assert aug["random shifts"]["affine_test_acc"] > aug["none"]["affine_test_acc"] + 0.05
    # the prose: the flip-trained network is clearly worse, many standard errors, on ordinary digits
    gaps = records["augmentation_gaps_vs_none"]
    assert gaps["random flips"]["gap"] < -3 * gaps["random flips"]["se"]
    for g in gaps.values():  # the printed verdict is the 2-SE rule applied to the printed numbers
        assert g["within_noise"] == (abs(g["gap"]) < 2 * g["se"]) and g["se"] > 0
    assert gaps["random shifts"]["gap"] == pytest.approx(
        aug["random shifts"]["test_acc"] - aug["none"]["test_acc"], abs=1e-6
    )


def test_spurious_feature_causes_a_test_drop(records):
    s = records["spurious"]
    assert s["stamped_model_test_acc"] < s["clean_model_test_acc"] - 0.05
    assert s["stamped_model_test_acc"] < s["stamped_model_val_acc"] - 0.15
    assert s["stamped_model_follows_mark"] > 0.15  # chance would be 0.1


def test_test_time_augmentation(records):
    tta = records["tta"]
    assert tta["n_views"] >= 2
    assert tta["tta_acc"] >= tta["mean_single_view_acc"]
    gap = records["tta_gap_vs_original"]
    assert gap["gap"] == pytest.approx(tta["tta_acc"] - tta["original_view_acc"], abs=1e-6)
    assert gap["within_noise"] == (abs(gap["gap"]) < 2 * gap["se"])


def test_ensemble_beats_the_mean_single_model(records):
    ens = records["ensemble"]
    assert ens["mean_member_acc"] == pytest.approx(np.mean(ens["member_acc"]))
    assert ens["ensemble_acc"] >= ens["mean_member_acc"]
    assert ens["ensemble_nll"] < ens["mean_member_nll"]


def test_weight_scaling_is_exact_only_for_linear_models(records):
    gaps = records["weight_scaling_gap"]
    assert gaps["linear"] < 1e-12 and gaps["softmax_geometric_mean"] < 1e-12
    assert gaps["softmax_arithmetic_mean"] > 1e-4 and gaps["relu_hidden_layer"] > 1e-4


def test_mc_dropout(records):
    mc = records["mc_dropout"]
    assert mc["single_sample_acc"] < mc["eval_acc"]  # one sub-network is worse than the full net
    assert mc["mc_acc"] == pytest.approx(mc["eval_acc"], abs=0.05)  # averaging recovers (about) the full net


def test_notebook_structure():
    nb = nbformat.read(ROOT / NOTEBOOK, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "Try it" in text and "## Summary" in text
    code = [c for c in nb.cells if c.cell_type == "code"]
    first = next(c for c in code if "colab-setup" not in c.metadata.get("tags", []))
    assert 'setup_notebook("L06_generalisation_regularisation")' in first.source
    assert all(not c.outputs and c.execution_count is None for c in code), "store the notebook clean"
