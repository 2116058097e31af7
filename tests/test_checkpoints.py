"""course_utils.checkpoints: fit_or_load trains once, then loads; clear errors otherwise."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils import History
from course_utils.checkpoints import (
    checkpoint_dir,
    config_hash,
    fit_defaults,
    fit_or_load,
    load_checkpoint,
    save_checkpoint,
    training_config,
)


@pytest.fixture(autouse=True)
def tmp_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    return tmp_path / "data"


def make_model(seed: int = 0, hidden: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))


def make_data(n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


FIT = dict(lr=0.05, batch_size=8, live_plot=False, progress=False)


def test_checkpoint_dir_lives_in_data_dir(tmp_data_dir):
    assert checkpoint_dir() == tmp_data_dir / "checkpoints"
    assert checkpoint_dir().is_dir()


def test_fit_then_load_gives_same_weights_and_history(capsys):
    data = make_data()
    model = make_model()
    h1 = fit_or_load(model, "tiny", data, epochs=2, **FIT)
    assert "Training tiny" in capsys.readouterr().out
    files = list(checkpoint_dir().glob("tiny-*.pt"))
    assert len(files) == 1

    again = make_model()  # same seed: identical initial weights, so the config matches
    h2 = fit_or_load(again, "tiny", data, epochs=2, **FIT)
    out = capsys.readouterr().out
    assert "Loaded" in out and files[0].name in out
    assert isinstance(h2, History)
    assert h2.from_checkpoint and not h1.from_checkpoint
    assert h2.train_loss == pytest.approx(h1.train_loss)
    assert h2.epochs == 2
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())


@pytest.mark.parametrize("change", ["epochs", "lr", "init", "data", "extra", "optimizer"])
def test_any_relevant_change_trains_again(change, capsys):
    data, model = make_data(), make_model()
    fit_or_load(model, "tiny", data, epochs=1, **FIT)
    capsys.readouterr()
    kwargs = dict(FIT)
    epochs, extra, model2, data2 = 1, None, make_model(), data
    if change == "epochs":
        epochs = 2
    elif change == "lr":
        kwargs["lr"] = 0.01
    elif change == "init":
        model2 = make_model(seed=1)
    elif change == "data":
        data2 = make_data(seed=1)
    elif change == "extra":
        extra = {"note": "another run"}
    elif change == "optimizer":
        kwargs["optimizer"] = torch.optim.SGD(model2.parameters(), lr=0.05, momentum=0.9)
    fit_or_load(model2, "tiny", data2, epochs=epochs, extra=extra, **kwargs)
    out = capsys.readouterr().out
    assert "Training tiny" in out and "settings differ" in out
    assert len(list(checkpoint_dir().glob("tiny-*.pt"))) == 2


def test_display_settings_do_not_change_the_hash():
    data, model = make_data(), make_model()
    a = training_config(model, data, epochs=3, lr=0.1, live_plot=False, progress=False, title="x")
    b = training_config(model, data, epochs=3, lr=0.1, live_plot=True, device="cpu")
    assert config_hash(a) == config_hash(b)
    c = training_config(model, data, epochs=3, lr=0.1000001)
    assert config_hash(a) != config_hash(c)


def test_defaults_come_from_fits_signature(monkeypatch):
    """One source of truth: the hashed defaults are fit's own, so an explicit default hashes like none."""
    import inspect

    from course_utils import checkpoints

    params = inspect.signature(checkpoints.fit).parameters
    defaults = fit_defaults()
    assert defaults["lr"] == params["lr"].default and defaults["batch_size"] == params["batch_size"].default
    assert {"epochs", "val", "progress", "live_plot", "title", "callbacks", "device"}.isdisjoint(defaults)
    assert {"optimizer", "scheduler_step", "seed", "fast", "augment", "compile_model"} <= set(defaults)
    data, model = make_data(), make_model()
    explicit = {name: params[name].default for name in ("lr", "batch_size", "seed", "fast", "augment", "amp")}
    assert config_hash(training_config(model, data, epochs=2)) == config_hash(
        training_config(model, data, epochs=2, **explicit)
    )

    def fit_with_other_defaults(model, train, *, epochs, lr=0.5, batch_size=128, val=None, progress=True):
        raise AssertionError("not called")

    monkeypatch.setattr(checkpoints, "fit", fit_with_other_defaults)
    assert fit_defaults() == {"lr": 0.5, "batch_size": 128}  # follows the signature, not a copy of it


def test_retrain_forces_training(capsys):
    data = make_data()
    fit_or_load(make_model(), "tiny", data, epochs=1, **FIT)
    capsys.readouterr()
    fit_or_load(make_model(), "tiny", data, epochs=1, retrain=True, **FIT)
    assert "Saved" in capsys.readouterr().out


def test_scheduler_and_imagedata_are_fingerprinted():
    from course_utils import ImageData

    images = torch.rand(16, 1, 2, 2)
    data = ImageData(images, torch.randint(0, 3, (16,)), ["a", "b", "c"], "toy", "train", "test", False)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=4)
    hist = fit_or_load(
        model,
        "sched",
        data,
        epochs=2,
        optimizer=opt,
        scheduler=sched,
        scheduler_step="batch",
        batch_size=8,
        live_plot=False,
        progress=False,
        verbose=False,
    )
    assert hist.epochs == 2
    other = ImageData(images + 1e-3, data.labels, data.classes, "toy", "train", "test", False)
    cfg1 = training_config(make_model(), data, epochs=2)
    cfg2 = training_config(make_model(), other, epochs=2)
    assert config_hash(cfg1) != config_hash(cfg2)


def test_save_and_load_roundtrip_by_name_and_path(tmp_path):
    model = make_model()
    hist = History(train_loss=[1.0, 0.5], train_acc=[0.3, 0.6], device="cpu")
    path = save_checkpoint(model, "manual", history=hist)
    assert path == checkpoint_dir() / "manual.pt"
    fresh = make_model(seed=5)
    loaded = load_checkpoint(fresh, "manual")
    assert loaded.train_loss == [1.0, 0.5]
    assert torch.equal(fresh[1].weight, model[1].weight)
    explicit = tmp_path / "sub" / "model.pt"
    save_checkpoint(model, explicit)  # no history
    assert load_checkpoint(make_model(seed=3), explicit) is None


def test_mismatched_architecture_is_a_clear_error():
    save_checkpoint(make_model(hidden=8), "arch")
    with pytest.raises(ValueError, match=r"different architecture.*shapes differ.*1\.weight"):
        load_checkpoint(make_model(hidden=16), "arch")
    with pytest.raises(ValueError, match="entries the model lacks"):
        load_checkpoint(nn.Sequential(nn.Flatten(), nn.Linear(4, 8)), "arch")


def test_bad_inputs_raise_helpful_errors(tmp_path):
    with pytest.raises(ValueError, match="not valid"):
        fit_or_load(make_model(), "bad name!", make_data(), epochs=1)
    with pytest.raises(ValueError, match="positive int"):
        fit_or_load(make_model(), "ok", make_data(), epochs=0)
    with pytest.raises(TypeError, match="does not take: learning_rate"):
        fit_or_load(make_model(), "ok", make_data(), epochs=1, learning_rate=0.1)
    with pytest.raises(TypeError, match="cannot fingerprint"):
        fit_or_load(make_model(), "ok", "not data", epochs=1)
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        load_checkpoint(make_model(), "missing")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="cannot be read"):
        load_checkpoint(make_model(), junk)
    with pytest.raises(TypeError, match="nn.Module"):
        save_checkpoint("model", "x")
