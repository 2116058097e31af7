"""fit / evaluate / Timer / Accumulator / History: behaviour, reproducibility and errors."""

import pytest
import torch
from torch import nn

import course_utils as cu


def _blobs(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.tensor([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    X = centres[y] + 0.5 * torch.randn(n, 2, generator=g)
    return X, y


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))


def test_fit_learns_and_records_history():
    X, y = _blobs()
    hist = cu.fit(
        _model(),
        (X, y),
        val=_blobs(200, 1),
        epochs=5,
        lr=0.02,
        batch_size=32,
        device="cpu",
        live_plot=False,
        progress=False,
    )
    assert hist.epochs == 5 and len(hist.val_acc) == 5 and len(hist.epoch_time) == 5
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert hist.val_acc[-1] > 0.9
    assert "5 epochs on cpu" in hist.summary()
    assert all(v > 0 for v in hist.images_per_s)


def test_fit_is_reproducible_with_a_seed():
    X, y = _blobs()
    runs = [
        cu.fit(_model(), (X, y), epochs=2, lr=0.02, device="cpu", live_plot=False, progress=False, seed=7)
        for _ in range(2)
    ]
    assert runs[0].train_loss == runs[1].train_loss


def test_fit_accepts_dataloader_and_imagedata_and_scheduler():
    X, y = _blobs()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=50, shuffle=True)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    hist = cu.fit(
        model, loader, epochs=3, optimizer=opt, scheduler=sched, device="cpu", live_plot=False, progress=False
    )
    assert hist.lr == pytest.approx([0.1, 0.05, 0.025])
    digits = cu.load_dataset("digits", "train", source="offline", limit=256, verbose=False)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    hist = cu.fit(flat, digits, epochs=1, device="cpu", live_plot=False, progress=False)
    assert hist.epochs == 1


def test_evaluate_matches_a_manual_computation():
    X, y = _blobs(100)
    model = _model()
    metrics = cu.evaluate(model, (X, y), device="cpu", batch_size=7)
    with torch.no_grad():
        logits = model(X)
    assert metrics["loss"] == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert metrics["acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert model.training  # evaluate restores the mode


def test_fit_explains_divergence():
    X, y = _blobs()
    X[5, 0] = float("inf")  # one corrupt input poisons the loss
    with pytest.raises(FloatingPointError, match="learning rate"):
        cu.fit(_model(), (X, y), epochs=2, device="cpu", live_plot=False, progress=False)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"epochs": 0}, ValueError, "epochs must be a positive int"),
        ({"epochs": 1, "scheduler_step": "step"}, ValueError, "'epoch' or 'batch'"),
        ({"epochs": 1, "batch_size": 0}, ValueError, "batch_size"),
    ],
)
def test_fit_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        cu.fit(_model(), _blobs(), device="cpu", live_plot=False, progress=False, **kwargs)


def test_fit_rejects_bad_data():
    with pytest.raises(TypeError, match="ImageData, an \\(X, y\\) pair"):
        cu.fit(_model(), [[1, 2]], epochs=1, device="cpu", live_plot=False, progress=False)
    with pytest.raises(ValueError, match="X has 10 examples but y has 9"):
        cu.fit(
            _model(),
            (torch.zeros(10, 2), torch.zeros(9, dtype=torch.long)),
            epochs=1,
            device="cpu",
            live_plot=False,
            progress=False,
        )
    with pytest.raises(TypeError, match="two tensors"):
        cu.fit(_model(), ([0.0], [1]), epochs=1, device="cpu", live_plot=False, progress=False)


def test_timer_and_accumulator():
    t = cu.Timer()
    lap = t.stop()
    assert lap >= 0 and t.sum() == pytest.approx(lap) and t.avg() == pytest.approx(lap)
    acc = cu.Accumulator(2)
    acc.add(1, 2)
    acc.add(torch.tensor(3.0), 4)
    assert (acc[0], acc[1]) == (4.0, 6.0)
    acc.reset()
    assert acc.data == [0.0, 0.0]
    with pytest.raises(ValueError, match="holds 2 values"):
        acc.add(1)


def test_live_plot_is_silent_outside_jupyter():
    assert not cu.in_notebook()
    plot = cu.LivePlot("x")
    assert not plot.enabled
    plot.update(cu.History())  # no error, nothing drawn


def test_a_callback_returning_true_stops_training():
    seen = []

    def stop_when_accurate(epoch, history):
        seen.append(epoch)
        return history.train_acc[-1] > 0.5

    hist = cu.fit(
        _model(),
        _blobs(),
        epochs=50,
        lr=0.02,
        device="cpu",
        live_plot=False,
        progress=False,
        callbacks=[stop_when_accurate],
    )
    assert hist.epochs == len(seen) < 50


def test_augmentation_follows_the_fit_seed():
    X, y = cu.make_shapes10(64)
    X = X.float() / 255

    def run():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
        return cu.fit(
            model, (X, y), epochs=2, augment="crop_flip", device="cpu", live_plot=False, progress=False, seed=5
        ).train_loss

    torch.manual_seed(123)
    first = run()
    torch.manual_seed(456)  # a different global state must not matter
    assert run() == first


def test_outside_jupyter_fit_prints_one_plain_line_per_epoch():
    """A script's output (a pipe, not a terminal; a CI log) gets no bars, escape sequences or carriage returns."""
    import subprocess
    import sys

    code = (
        "import torch, course_utils as cu\n"
        "from torch import nn\n"
        "torch.manual_seed(0)\n"
        "X, y = torch.randn(300, 2), torch.randint(0, 3, (300,))\n"
        "cu.fit(nn.Linear(2, 3), (X, y), val=(X[:60], y[:60]), epochs=4, batch_size=16, device='cpu')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "\x1b[" not in output and "\r" not in output, repr(output)
    lines = [line for line in output.splitlines() if line.strip()]
    assert [line.split(" | ")[0] for line in lines] == [f"epoch {i}/4" for i in range(1, 5)], lines
    assert all("train loss" in line and "val loss" in line for line in lines)


def test_progress_false_prints_nothing(capsys):
    X, y = _blobs()
    cu.fit(_model(), (X, y), epochs=2, device="cpu", live_plot=False, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_fit_leaves_cudnn_autotuning_as_it_found_it(monkeypatch):
    """fit's fast path switches cuDNN's autotuner on for its own run only (it used to stay on for good)."""
    from course_utils.training import cudnn_autotuning

    for before in (False, True):
        monkeypatch.setattr(torch.backends.cudnn, "benchmark", before)
        cu.fit(_model(), _blobs(64), epochs=1, device="cpu", fast=True, live_plot=False, progress=False)
        assert torch.backends.cudnn.benchmark is before
        with pytest.raises(RuntimeError, match="boom"), cudnn_autotuning(True):
            assert torch.backends.cudnn.benchmark is True
            raise RuntimeError("boom")
        assert torch.backends.cudnn.benchmark is before


@pytest.mark.parametrize(
    "env, kernel, expected",
    [
        ({}, False, False),  # a script or terminal: plain lines
        ({}, True, True),  # a notebook a student runs: bars and live curves
        ({"COURSE_FAST": "1", "CI": "true"}, True, False),  # nbval in fast-mode CI
        ({"COURSE_FAST": "1", "COURSE_RECORD_DIR": "/tmp/x"}, True, False),  # nbval under the local test-suite
        ({"COURSE_FAST": "0", "CI": "true"}, True, True),  # full-mode runs show what a student sees
        ({"COURSE_FAST": "1", "CI": "true", "COURSE_LIVE_DISPLAY": "1"}, True, True),  # asked for: shown
        ({"COURSE_LIVE_DISPLAY": "1"}, False, False),  # ... but only where a kernel can show it
        ({"COURSE_LIVE_DISPLAY": "0"}, True, False),  # never
    ],
)
def test_live_display_rule(monkeypatch, env, kernel, expected):
    from course_utils import plotting

    for name in ("COURSE_FAST", "CI", "COURSE_RECORD_DIR", "COURSE_LIVE_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(plotting, "in_notebook", lambda: kernel)
    assert plotting.live_display() is expected
    shown = plotting.TrainingProgress(3, progress=True, live_plot=False)
    assert (shown.bars, shown.lines) == (expected, not expected)
    assert not plotting.TrainingProgress(3, progress=False, live_plot=False).lines


def test_a_notebook_under_fast_ci_gets_plain_lines_not_bars(monkeypatch, capsys):
    from course_utils import plotting

    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("COURSE_LIVE_DISPLAY", raising=False)
    monkeypatch.setattr(plotting, "in_notebook", lambda: True)  # as in nbval's kernel
    cu.fit(_model(), _blobs(64), epochs=2, device="cpu")  # progress and live_plot on, as a lecture may ask
    captured = capsys.readouterr()
    assert [line.split(" | ")[0] for line in captured.out.splitlines()] == ["epoch 1/2", "epoch 2/2"]
    assert captured.err == "" and "\r" not in captured.out


def test_a_watched_notebook_gets_tqdm_bars_not_lines(monkeypatch, capsys):
    from course_utils import plotting

    for name in ("COURSE_FAST", "CI", "COURSE_RECORD_DIR", "COURSE_LIVE_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(plotting, "in_notebook", lambda: True)
    cu.fit(_model(), _blobs(64), epochs=2, device="cpu", live_plot=False)
    captured = capsys.readouterr()
    assert captured.out == ""  # no plain lines: the bars (text bars outside a real kernel) go to stderr
    assert "epochs: 100%" in captured.err and "2/2" in captured.err


def test_train_epoch_is_the_loop_fit_runs():
    """fit's epoch is train_epoch: the same seed, data and model give the same first-epoch loss."""
    from course_utils.training import TrainingRun, _as_batches, train_epoch

    X, y = _blobs(96)
    hist = cu.fit(_model(), (X, y), epochs=1, batch_size=32, lr=0.02, device="cpu", live_plot=False, progress=False)
    model = _model()
    generator = torch.Generator().manual_seed(0)
    batches, _, n_batches = _as_batches((X, y), 32, True, torch.device("cpu"), generator)
    run = TrainingRun(
        model=model,
        step_model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=0.02),
        loss_fn=nn.CrossEntropyLoss(),
        device=torch.device("cpu"),
        batches=batches,
        n_batches=n_batches,
    )
    loss_sum, correct, seen = train_epoch(run, run.batches())
    assert seen == 96 and run.first_loss is not None
    assert float(loss_sum) / seen == pytest.approx(hist.train_loss[0], rel=1e-6)
    assert float(correct) / seen == pytest.approx(hist.train_acc[0])
