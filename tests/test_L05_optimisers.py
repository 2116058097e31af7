"""Lecture L5 (optimiser comparisons): the optimisers, the landscapes, the widget and the taught numbers.

The from-scratch optimisers are the notebook's own code: the cells tagged ``scratch`` are executed
here and checked against ``torch.optim`` over many steps, independently of the notebook's own asserts.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.optim import lr_scheduler  # noqa: E402

from conftest import load_scratch_cells  # noqa: E402
from course_utils.demos import optimiser_landscapes as ol  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "lectures/L05_optimisers.ipynb"
STEPS = 200


# ----------------------------------------------------------------------------------------------
# The notebook's from-scratch optimisers, run directly
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scratch() -> dict:
    return load_scratch_cells(
        NOTEBOOK,
        required=("GD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam", "AdamW"),
        preload={"torch": torch, "np": np, "math": math},
    )


def _problem(seed: int):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (6,), (2, 2, 2)]
    start = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    targets = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    return start, targets


def _loss(params, targets):
    total = 0
    for p, t in zip(params, targets):
        scale = torch.linspace(0.3, 2.5, p.numel(), dtype=p.dtype).view(p.shape)
        total = total + (scale * (p - t) ** 2).sum() + 0.2 * torch.sin(2 * p).sum() + 0.05 * (p**4).sum()
    return total


def _grads(params, targets):
    leaves = [torch.as_tensor(p).detach().clone().requires_grad_(True) for p in params]
    return list(torch.autograd.grad(_loss(leaves, targets), leaves))


def lockstep(ours, make_torch, steps=STEPS, seed=0, as_numpy=False, l2=0.0):
    """Run ``ours`` and a torch optimiser side by side; return the largest parameter gap and the distance moved."""
    start, targets = _problem(seed)
    mine = [p.numpy().copy() if as_numpy else p.clone() for p in start]
    theirs = [p.clone().requires_grad_(True) for p in start]
    opt = make_torch(theirs)
    worst = 0.0
    for _ in range(steps):
        grads = _grads(mine, targets)
        grads = [g + l2 * torch.as_tensor(p) for g, p in zip(grads, mine)]
        ours.step(mine, [g.numpy() for g in grads] if as_numpy else grads)
        opt.zero_grad()
        _loss(theirs, targets).backward()
        opt.step()
        worst = max(worst, max(float((torch.as_tensor(a) - b.detach()).abs().max()) for a, b in zip(mine, theirs)))
    moved = max(float((torch.as_tensor(a) - s).abs().max()) for a, s in zip(mine, start))
    return worst, moved


# (name in the notebook / module, kwargs for ours, torch factory)
CASES = [
    ("GD", dict(lr=0.03), lambda p: torch.optim.SGD(p, lr=0.03)),
    ("Momentum", dict(lr=0.02, beta=0.9), lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9)),
    ("Momentum", dict(lr=0.05, beta=0.5), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.5)),
    ("Nesterov", dict(lr=0.02, beta=0.9), lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9, nesterov=True)),
    ("Nesterov", dict(lr=0.04, beta=0.7), lambda p: torch.optim.SGD(p, lr=0.04, momentum=0.7, nesterov=True)),
    ("AdaGrad", dict(lr=0.1), lambda p: torch.optim.Adagrad(p, lr=0.1)),
    ("AdaGrad", dict(lr=0.3, eps=1e-6), lambda p: torch.optim.Adagrad(p, lr=0.3, eps=1e-6)),
    ("RMSProp", dict(lr=0.01, beta2=0.99, eps=1e-8), lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.99, eps=1e-8)),
    ("RMSProp", dict(lr=0.003, beta2=0.9, eps=1e-6), lambda p: torch.optim.RMSprop(p, lr=0.003, alpha=0.9, eps=1e-6)),
    (
        "Adam",
        dict(lr=0.02, beta1=0.9, beta2=0.999, eps=1e-8),
        lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.9, 0.999), eps=1e-8),
    ),
    (
        "Adam",
        dict(lr=0.05, beta1=0.8, beta2=0.99, eps=1e-6),
        lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99), eps=1e-6),
    ),
]


@pytest.mark.parametrize("name,kwargs,make_torch", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_scratch_optimiser_matches_torch_over_many_steps(scratch, name, kwargs, make_torch):
    worst, moved = lockstep(scratch[name](**kwargs), make_torch)
    assert moved > 0.1, "the test problem should move the parameters noticeably"
    assert worst < 1e-9, f"{name}{kwargs} drifted from torch.optim by {worst:.2e} over {STEPS} steps"


@pytest.mark.parametrize("wd", [0.01, 0.1])
def test_scratch_adamw_matches_torch_adamw(scratch, wd):
    worst, moved = lockstep(
        scratch["AdamW"](lr=0.02, weight_decay=wd), lambda p: torch.optim.AdamW(p, lr=0.02, weight_decay=wd)
    )
    assert moved > 0.1 and worst < 1e-9


def test_scratch_adam_plus_l2_matches_torch_adam_weight_decay_but_not_adamw(scratch):
    wd = 0.1
    worst, _ = lockstep(scratch["Adam"](lr=0.02), lambda p: torch.optim.Adam(p, lr=0.02, weight_decay=wd), l2=wd)
    assert worst < 1e-9
    differs, _ = lockstep(scratch["Adam"](lr=0.02), lambda p: torch.optim.AdamW(p, lr=0.02, weight_decay=wd), l2=wd)
    assert differs > 1e-3, "Adam with an L2 penalty should not coincide with AdamW"


def test_sgd_weight_decay_equals_l2_step_by_step(scratch):
    wd, lr = 0.1, 0.03
    start, targets = _problem(3)
    l2 = [p.clone() for p in start]
    decoupled = [p.clone() for p in start]
    opt_l2, opt_dec = scratch["GD"](lr), scratch["GD"](lr)
    torch_params = [p.clone().requires_grad_(True) for p in start]
    torch_opt = torch.optim.SGD(torch_params, lr=lr, weight_decay=wd)
    for _ in range(100):
        opt_l2.step(l2, [g + wd * p for g, p in zip(_grads(l2, targets), l2)])
        grads = _grads(decoupled, targets)
        for p in decoupled:
            p *= 1 - lr * wd
        opt_dec.step(decoupled, grads)
        torch_opt.zero_grad()
        _loss(torch_params, targets).backward()
        torch_opt.step()
        for a, b, c in zip(l2, decoupled, torch_params):
            assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
            assert torch.allclose(a, c.detach(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "g,beta1,beta2", [(0.7, 0.9, 0.999), (-3.0, 0.9, 0.999), (1e-3, 0.5, 0.9), (250.0, 0.99, 0.9999)]
)
def test_bias_correction_gives_the_gradient_exactly(scratch, g, beta1, beta2):
    adam = scratch["Adam"](lr=0.01, beta1=beta1, beta2=beta2)
    p = [torch.zeros(3, dtype=torch.float64)]
    grad = torch.full((3,), g, dtype=torch.float64)
    for t in range(1, 51):
        adam.step(p, [grad])
        s = adam.state[0]
        assert torch.allclose(s["m_hat"], grad, rtol=1e-13, atol=0)
        assert torch.allclose(s["v_hat"], grad**2, rtol=1e-12, atol=0)
        assert torch.allclose(s["m"], (1 - beta1**t) * grad, rtol=1e-12, atol=0)


def test_scratch_optimisers_reject_bad_learning_rates(scratch):
    for bad in (0, -0.1):
        with pytest.raises(ValueError, match="learning rate"):
            scratch["Adam"](lr=bad)
    with pytest.raises(ValueError, match="gradients"):
        scratch["GD"](0.1).step([torch.zeros(2)], [])


# ----------------------------------------------------------------------------------------------
# The module's numpy optimisers (used by the widget and the landscapes)
# ----------------------------------------------------------------------------------------------
MODULE_CASES = [
    ("GD", ol.GD(0.03), lambda p: torch.optim.SGD(p, lr=0.03)),
    ("momentum", ol.Momentum(0.02), lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9)),
    ("Nesterov", ol.Nesterov(0.02), lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9, nesterov=True)),
    ("AdaGrad", ol.AdaGrad(0.1), lambda p: torch.optim.Adagrad(p, lr=0.1)),
    ("RMSProp", ol.RMSProp(0.01), lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.99, eps=1e-8)),
    ("Adam", ol.Adam(0.02), lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.9, 0.999), eps=1e-8)),
]


@pytest.mark.parametrize("name,ours,make_torch", MODULE_CASES, ids=[c[0] for c in MODULE_CASES])
def test_module_optimiser_matches_torch(name, ours, make_torch):
    worst, moved = lockstep(ours, make_torch, as_numpy=True)
    assert moved > 0.1 and worst < 1e-9, f"{name}: gap {worst:.2e}"


def test_make_optimiser_names_and_errors():
    assert set(ol.OPTIMISER_NAMES) == set(ol.COLORS)
    for name in ol.OPTIMISER_NAMES:
        assert hasattr(ol.make_optimiser(name, 0.01), "step")
    with pytest.raises(ValueError, match="Unknown optimiser"):
        ol.make_optimiser("adamax", 0.01)
    with pytest.raises(ValueError, match="learning rate"):
        ol.make_optimiser("Adam", -1.0)
    with pytest.raises(ValueError, match="learning rate"):
        ol.make_optimiser("Adam", float("nan"))


# ----------------------------------------------------------------------------------------------
# Landscapes and trajectories
# ----------------------------------------------------------------------------------------------
def test_landscape_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    for ls in list(ol.LANDSCAPES.values()) + [ol.make_quadratic(20, angle_deg=30)]:
        for _ in range(5):
            p = rng.uniform([ls.xlim[0], ls.ylim[0]], [ls.xlim[1], ls.ylim[1]])
            h = 1e-6
            fd = [
                (ls.f(p[0] + h, p[1]) - ls.f(p[0] - h, p[1])) / (2 * h),
                (ls.f(p[0], p[1] + h) - ls.f(p[0], p[1] - h)) / (2 * h),
            ]
            assert np.allclose(ls.grad(*p), fd, rtol=1e-5, atol=1e-5), ls.name
        for m in ls.minima:
            assert np.allclose(ls.grad(*m), 0, atol=1e-12)


def test_quadratic_condition_number_is_kappa_for_any_rotation():
    for kappa, angle in [(50, 0), (50, 45), (7, 10)]:
        ev = np.linalg.eigvalsh(ol.make_quadratic(kappa, angle).hessian((0.3, -0.2)))
        assert ev.max() / ev.min() == pytest.approx(kappa, rel=1e-6)


def test_momentum_beats_gd_on_ill_conditioned_quadratic():
    quad = ol.LANDSCAPES["ill-conditioned quadratic"]
    steps = quad.steps
    # same learning rate, same number of steps
    for lr in (0.005, 0.01, 0.015, 0.02):
        gd = ol.trajectory(quad, "GD", steps, lr=lr)
        mom = ol.trajectory(quad, "momentum", steps, lr=lr)
        assert mom.final_gap < gd.final_gap / 10, lr
    # and each at its landscape default (GD near its stability limit)
    assert ol.trajectory(quad, "momentum").final_gap < ol.trajectory(quad, "GD").final_gap


def test_gd_stability_limit_is_two_over_largest_eigenvalue():
    quad = ol.LANDSCAPES["ill-conditioned quadratic"]
    limit = 2 / np.linalg.eigvalsh(quad.hessian((0, 0))).max()
    start_gap = quad.loss(np.array(quad.start)) - quad.f_min
    assert ol.trajectory(quad, "GD", 400, lr=0.98 * limit).final_gap < 1e-2 * start_gap
    assert ol.trajectory(quad, "GD", 400, lr=1.02 * limit).final_gap > 1e2 * start_gap
    assert ol.trajectory(quad, "GD", 400, lr=10 * limit).diverged


def test_adaptive_methods_escape_the_saddle_first():
    runs = ol.run_all("saddle point")

    def escape(run):
        idx = np.flatnonzero(np.abs(run.points[:, 1]) > 0.5)
        return idx[0] if len(idx) else 10**9

    for name in ("AdaGrad", "RMSProp", "Adam"):
        assert escape(runs[name]) < escape(runs["GD"]) / 5, name


def test_every_optimiser_makes_progress_on_every_landscape():
    for ls in ol.LANDSCAPES.values():
        start_gap = ls.loss(np.array(ls.start)) - ls.f_min
        for name, run in ol.run_all(ls).items():
            assert not run.diverged, (ls.name, name)
            assert len(run.points) == ls.steps + 1
            assert run.final_gap < start_gap, (ls.name, name)


def test_noisy_landscape_is_reproducible_and_noisy():
    noisy = ol.LANDSCAPES["noisy quadratic"]
    a = ol.trajectory(noisy, "GD", seed=3)
    b = ol.trajectory(noisy, "GD", seed=3)
    c = ol.trajectory(noisy, "GD", seed=4)
    assert np.array_equal(a.points, b.points)
    assert not np.allclose(a.points, c.points)
    with pytest.raises(ValueError, match="rng"):
        noisy.gradient(np.zeros(2))


def test_trajectory_accepts_student_optimisers_and_rejects_bad_input(scratch):
    quad = ol.LANDSCAPES["ill-conditioned quadratic"]
    ours = ol.trajectory(quad, scratch["Momentum"](lr=0.02), 60)
    theirs = ol.trajectory(quad, "momentum", 60, lr=0.02)
    assert np.allclose(ours.points, theirs.points)
    with pytest.raises(ValueError, match="steps"):
        ol.trajectory(quad, "GD", -1)
    with pytest.raises(ValueError, match="Unknown landscape"):
        ol.trajectory("himmelblau", "GD")
    with pytest.raises(ValueError, match="lr only"):
        ol.trajectory(quad, ol.GD(0.1), 10, lr=0.1)
    with pytest.raises(TypeError, match="step"):
        ol.trajectory(quad, object(), 10)
    with pytest.raises(ValueError, match="start"):
        ol.trajectory(quad, "GD", 10, start=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="kappa"):
        ol.make_quadratic(kappa=0.5)
    with pytest.raises(ValueError, match="noise"):
        ol.make_quadratic(noise=-1)


def test_compare_grid_draws_every_landscape():
    import matplotlib.pyplot as plt

    fig, results = ol.compare_grid()
    assert set(results) == set(ol.LANDSCAPES)
    assert all(set(r) == set(ol.OPTIMISER_NAMES) for r in results.values())
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# The widget
# ----------------------------------------------------------------------------------------------
def test_explorer_updates_for_every_setting():
    explorer = ol.LandscapeExplorer()
    for ls in ol.LANDSCAPES:
        for opt in list(ol.OPTIMISER_NAMES) + [ol.ALL]:
            runs = explorer.update(ls, opt, steps=20)
            assert set(runs) == (set(ol.OPTIMISER_NAMES) if opt == ol.ALL else {opt})
    runs = explorer.update("ill-conditioned quadratic", "GD", lr=1.0, steps=100)
    assert runs["GD"].diverged and "diverged" in explorer.ax_path.get_title()
    with pytest.raises(ValueError, match="Unknown landscape"):
        explorer.update("nowhere", "GD")
    with pytest.raises(ValueError, match="Unknown optimiser"):
        explorer.update("Rosenbrock", "LBFGS")


def test_explorer_widget_builds():
    pytest.importorskip("ipywidgets")
    box = ol.LandscapeExplorer().widget()
    assert box.children


def test_benchmark_redraw_smoke():
    ms = ol.benchmark_redraw(repeats=8)
    assert isinstance(ms, float) and 0 < ms < 1000  # target < 50 ms on an idle laptop


# ----------------------------------------------------------------------------------------------
# Learning-rate schedules against closed forms
# ----------------------------------------------------------------------------------------------
def _lrs(make, epochs=60, lr0=0.1):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr0)
    sched = make(opt)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)


def test_schedules_match_closed_forms():
    e = np.arange(60)
    lr0 = 0.1
    assert np.allclose(_lrs(lambda o: lr_scheduler.StepLR(o, 10, gamma=0.5)), lr0 * 0.5 ** (e // 10))
    assert np.allclose(_lrs(lambda o: lr_scheduler.ExponentialLR(o, 0.9)), lr0 * 0.9**e)
    assert np.allclose(_lrs(lambda o: lr_scheduler.LambdaLR(o, lambda k: 1 / (k + 1))), lr0 / (e + 1))
    cos = _lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=60, eta_min=0.001))
    assert np.allclose(cos, 0.001 + 0.5 * (lr0 - 0.001) * (1 + np.cos(np.pi * e / 60)))
    warm = _lrs(lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2))
    # cycles [0, 10), [10, 30), [30, 70)
    t_cur = np.where(e < 10, e, np.where(e < 30, e - 10, e - 30))
    period = np.where(e < 10, 10, np.where(e < 30, 20, 40))
    assert np.allclose(warm, 0.5 * lr0 * (1 + np.cos(np.pi * t_cur / period)))


# ----------------------------------------------------------------------------------------------
# The numbers the notebook teaches (records)
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def r(notebook_records):
    return notebook_records(NOTEBOOK)


def test_records_scratch_matches_torch(r):
    gaps = r["scratch_vs_torch_max_gap"]
    assert set(gaps) == {"GD", "momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam"}
    assert r["steps_checked"] >= 20
    assert all(0 <= g < 1e-10 for g in gaps.values())


def test_records_bias_correction(r):
    assert r["m_hat_max_abs_error"] < 1e-14
    assert r["v_hat_max_abs_error"] < 1e-14
    assert r["m1_uncorrected_over_g"] == pytest.approx(0.1, abs=1e-12)
    assert r["v1_uncorrected_over_g2"] == pytest.approx(0.001, abs=1e-12)
    assert r["adam_first_step_over_lr"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-4)


def test_records_quadratic_ranking_matches_the_prose(r):
    """Prose: AdaGrad and RMSProp beat momentum clearly on the aligned valley, Adam does not, Nesterov beats Adam."""
    gain = r["quadratic_gain_over_momentum"]
    assert gain["AdaGrad"] > 10 and gain["RMSProp"] > 10
    assert gain["Adam"] < 10
    assert gain["Nesterov"] > 10 * gain["Adam"]


def test_records_uncorrected_adam_steps_are_too_large(r):
    """The lecture teaches that dropping the bias correction makes Adam's early steps too LARGE (Kingma & Ba, s. 3)."""
    ratio = r["adam_uncorrected_step_ratio"]
    assert ratio["t=1"] == pytest.approx(0.1 / math.sqrt(0.001), rel=1e-9)  # 3.16
    assert 6.4 < ratio["peak"] < 6.8 and 10 <= ratio["peak_t"] <= 14  # about 6.6 near t = 12
    assert ratio["t=100"] == pytest.approx((1 - 0.9**100) / math.sqrt(1 - 0.999**100), rel=1e-9)
    assert min(ratio["t=1"], ratio["t=100"], ratio["t=300"]) > 1  # too large, never too small


def test_records_minibatch_sgd(r):
    after = r["linreg_loss_after_one_epoch"]
    assert after["batch 10"] < after["batch 100"] < after["batch 1000"]
    assert r["linreg_best_mse"] == pytest.approx(0.25, abs=0.05)  # the noise variance
    assert after["batch 10"] < 1.2 * r["linreg_best_mse"]


def test_records_ill_conditioned_quadratic(r):
    assert r["quadratic_condition_number"] == pytest.approx(50.0, rel=1e-6)
    assert r["gd_lr_limit"] == pytest.approx(2 / 50, rel=1e-6)
    assert r["gd_gap_after_300_steps_at_0.99_limit"] < 1e-2
    assert r["gd_gap_after_300_steps_at_1.01_limit"] > 1e3
    final = r["quadratic_final_gap"]
    assert final["momentum"] < final["GD_near_limit"] < final["GD_same_lr"]
    assert r["gd_zigzag_sign_changes"] >= 50


def test_records_grid(r):
    gaps = r["grid_final_gaps"]
    assert set(gaps) == set(ol.LANDSCAPES)
    assert gaps["ill-conditioned quadratic"]["momentum"] < gaps["ill-conditioned quadratic"]["GD"]
    assert gaps["Rosenbrock"]["Adam"] < gaps["Rosenbrock"]["GD"]
    escape = r["saddle_escape_step"]
    assert all(escape[name] is not None for name in escape)
    assert max(escape["AdaGrad"], escape["RMSProp"], escape["Adam"]) < escape["GD"]


def test_records_schedules(r):
    lr0 = r["schedule_lr0"]
    curves = {k: np.array(v) for k, v in r["schedule_curves"].items()}
    e = np.arange(len(next(iter(curves.values()))))
    assert np.allclose(curves["exponential (gamma 0.9)"], lr0 * 0.9**e)
    assert np.allclose(curves["step decay (x0.5 every 10)"], lr0 * 0.5 ** (e // 10))
    assert np.allclose(curves["1/epoch (LambdaLR)"], lr0 / (e + 1))
    assert np.allclose(curves["cosine annealing (T_max 50)"], 0.5 * lr0 * (1 + np.cos(np.pi * e / 50)))
    assert r["exponential_lr_after_10_epochs"] == pytest.approx(lr0 * 0.9**10, rel=1e-12)
    assert r["exponential_lr_after_10_epochs"] == pytest.approx(0.034868, abs=1e-6)
    assert r["step_decay_lr_at_epochs_9_10_25"] == pytest.approx([0.1, 0.05, 0.025])
    assert r["inverse_epoch_lr_at_epoch_4"] == pytest.approx(0.02)
    assert r["cosine_lr_at_half_period"] == pytest.approx(0.05)
    assert r["warm_restart_lr_at_epochs_9_10_30"][1:] == pytest.approx([lr0, lr0])
    assert r["warm_restart_lr_at_epochs_9_10_30"][0] < 0.1 * lr0
    floor = r["noisy_quadratic_final_gap"]
    assert floor["0.1 / (1 + t/20)"] < floor["constant 0.1"] / 3
    assert floor["0.1 x 0.99^t"] < floor["constant 0.1"] / 3
    # the slide's LambdaLR(lambda ep: 1e-2 / ep) divides by zero at epoch 0; 1 / (ep + 1) starts at lr0
    assert r["slide_lambdalr_error"].startswith("ZeroDivisionError")
    assert r["inverse_epoch_fixed_first_lrs"] == pytest.approx([lr0, lr0 / 2, lr0 / 3, lr0 / 4])


# ----------------------------------------------------------------------------------------------
# Section 0: optimisation background
# ----------------------------------------------------------------------------------------------
def test_records_background_double_well(r):
    """f = w^4 - 3 w^2 + w: two minima; gradient descent ends in the one on its side of the hill."""
    roots = np.sort(np.roots([4, 0, -6, 1]).real)
    assert r["well_minima"] == pytest.approx([roots[0], roots[2]])
    assert r["well_hill"] == pytest.approx(roots[1])
    assert r["well_minima"] == pytest.approx([-1.301, 1.131], abs=1e-3)
    deep, shallow = r["well_minimum_values"]
    assert deep < shallow < 0
    n_global, n_local = r["well_ends_global_local"]
    assert n_global > 0 and n_local > 0 and n_global + n_local == 45
    assert r["well_end_decided_by_side"] is True


def test_records_background_convexity(r):
    chord, eig = r["convexity_chord_gap"], r["convexity_min_hessian_eigenvalue"]
    for convex in ("ill-conditioned quadratic", "log-sum-exp log(e^x + e^y)", "|x| + |y|"):
        assert chord[convex] <= 1e-12
    for nonconvex in ("Rosenbrock", "saddle point", "tiny network w2 tanh(w1 x)"):
        assert chord[nonconvex] > 0.1
    assert eig["ill-conditioned quadratic"] == pytest.approx(1.0, abs=1e-4)
    assert eig["Rosenbrock"] < 0 and eig["saddle point"] == pytest.approx(-1.0, abs=1e-4)
    assert r["convex_set_midpoints_outside"]["disc"] == 0
    assert r["convex_set_midpoints_outside"]["ring"] > 0.1


def test_records_background_descent_directions(r):
    agree, tested = r["descent_sign_agreement"]
    assert tested > 500 and agree == tested
    assert r["descent_preconditioned_slope"] < 0


def test_records_background_newton_and_line_search(r):
    assert r["newton_quadratic_one_step_gap"] < 1e-12  # Newton: one step on a quadratic
    steps = r["background_steps_to_1e8"]
    assert steps["ill-conditioned quadratic"]["Newton"] == 1
    assert steps["Rosenbrock"]["Newton"] <= 10
    gaps = r["background_final_gaps"]
    for landscape in ("ill-conditioned quadratic", "Rosenbrock"):
        fixed = next(v for k, v in gaps[landscape].items() if k.startswith("GD, lr"))
        assert gaps[landscape]["GD + Armijo line search"] < fixed  # the line search beats the fixed rate
        assert fixed > 1e-8  # and plain GD has not arrived where Newton has
    evals = r["armijo_function_evaluations"]
    assert evals["ill-conditioned quadratic"] > 200 and evals["Rosenbrock"] > 1000  # more than one per step
    assert np.linalg.norm(r["newton_saddle_end"]) < 1e-6  # Newton walks onto the saddle


def test_records_background_robbins_monro(r):
    sums, final = r["robbins_monro_sums"], r["robbins_monro_final_mean_square"]
    const, inv, inv2 = (
        "constant 0.1 (sum of squares infinite)",
        "1 / (t + 2) (both conditions hold)",
        "1 / (t + 2)^2 (sum finite)",
    )
    assert sums[inv2][0] < 1 < sums[inv][0]  # 1/t^2 steps sum to less than the distance 5 ... 1/t keeps growing
    assert sums[inv][1] < 1 and sums[inv2][1] < 1 and sums[const][1] > 10
    assert final[inv] < final[const] / 10  # 1/t gets below the constant step's noise floor
    assert final[inv2] > 1  # 1/t^2 stops far from the minimum
    assert 0.02 < final[const] < 0.1  # floor about alpha sigma^2 / (2 - alpha) = 0.053


def test_records_cnn(r):
    names = {"GD", "momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam"}
    assert set(r["cnn_chosen_lr"]) == names
    sizes = r["cnn_first_update_norm_same_lr"]
    assert max(sizes.values()) / min(sizes.values()) > 50  # same lr, very different steps
    assert sizes["GD"] == pytest.approx(sizes["momentum"], rel=1e-6)  # v_1 = g
    assert sizes["Adam"] > 10 * sizes["GD"]
    for name in names:
        assert r["cnn_final_train_loss"][name] < 0.5 * r["cnn_first_batch_loss"][name], name
        assert r["cnn_test_acc"][name] > 0.5, name
        assert 0 <= r["cnn_val_acc"][name] <= 1


def test_records_amsgrad(r):
    assert r["reddi_final_x"]["Adam"] > 0.9  # Adam walks to the worst point
    assert r["reddi_final_x"]["AMSGrad"] < -0.5  # AMSGrad heads for the best one


def test_records_weight_decay(r):
    assert r["sgd_l2_vs_decay_max_gap"] < 1e-12
    assert r["sgd_l2_vs_torch_weight_decay_gap"] < 1e-12
    assert r["adamw_ours_vs_torch_gap"] < 1e-10
    assert r["adam_l2_ours_vs_torch_gap"] < 1e-10
    assert r["adam_l2_vs_adamw_gap"] > 1e-3
    d = r["decay_demo_final_mean"]
    assert d["Adam+L2 A"] > 0.8 and abs(d["Adam+L2 B"]) < 0.1
    assert d["AdamW A"] == pytest.approx(d["(1 - lr wd)^t"], abs=0.06)
    assert d["AdamW B"] == pytest.approx(d["(1 - lr wd)^t"], abs=0.06)


def test_records_wide_vs_sharp(r):
    curv, rise = r["minima_curvature"], r["minima_test_loss_rise"]
    assert curv["sharp"] > 10 * curv["wide"] > 0
    assert rise["sharp"] > 5 * rise["wide"] > 0
    frac = r["fraction_ending_sharp"]
    assert frac["0.05"] == 0.0 < frac["0.005"]


def test_cnn_race_reports_ties_within_the_noise(r):
    """The prose: the printout says which optimisers are within two standard errors of the best (a tie)."""
    race = r["cnn_race_vs_leader"]
    assert set(race) == {"GD", "momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam"}
    leaders = [n for n, v in race.items() if v["gap"] == 0 and v["se"] == 0]
    assert leaders, "the leader is compared with itself"
    for v in race.values():
        assert v["gap"] >= 0 and v["within_noise"] == (v["gap"] <= 2 * v["se"])


def test_cnn_learning_rate_search_brackets_the_best_rate(r):
    """In full mode the grid is extended until the best rate is not at its edge (fast mode does not search)."""
    if not r["cnn_lr_bracketed"]:
        assert len(set(r["cnn_chosen_lr"].values())) >= 1  # fast mode: the typical rates, no search
        return
    assert all(r["cnn_lr_bracketed"].values()), r["cnn_lr_bracketed"]
