"""Bad input gets a message that says what was wrong and what to do (issue 11, point 7).

One test (or a few) per case: a data folder that cannot be used, a damaged cache, labels that do not fit
the model, one-hot labels, an unknown device name, a model without parameters, a diverging run, and
``source="real"`` without a network.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from torch import nn

import course_utils as cu
from course_utils import config, datasets


@pytest.fixture(autouse=True)
def offline_in_tmp(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("COURSE_DEVICE", raising=False)


def _digits(n: int = 256):
    return cu.load_dataset("digits", "train", limit=n, verbose=False)


def _linear(outputs: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, outputs))


QUIET = dict(device="cpu", live_plot=False, progress=False)


# ----------------------------------------------------------------------------- COURSE_DATA_DIR
@pytest.mark.parametrize("kind", ["a file", "under a file"])
def test_an_unusable_data_dir_is_named_when_data_is_loaded_not_in_the_first_cell(kind, monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("COURSE_DATA_DIR", str(blocker if kind == "a file" else blocker / "cache"))
    monkeypatch.setenv("COURSE_RECORD_DIR", str(tmp_path / "records"))
    cu.setup_notebook("L99_first_cell")  # the first cell of every notebook still runs ...
    assert "WARNING" in capsys.readouterr().out and "COURSE_DATA_DIR" in cu.mode_summary()
    cu.load_dataset("digits", verbose=False)  # ... and so does data that needs no cache
    with pytest.raises(
        cu.DataDirError, match="COURSE_DATA_DIR=.*(file, not a folder|not a folder).*Set COURSE_DATA_DIR"
    ):
        cu.load_dataset("cifar10", verbose=False)
    assert blocker.read_text() == "x"


def test_a_read_only_data_dir_still_serves_data_and_says_what_to_do(monkeypatch, tmp_path):
    ro = tmp_path / "read-only"
    ro.mkdir()
    monkeypatch.setenv("COURSE_DATA_DIR", str(ro))
    real_access = os.access
    monkeypatch.setattr(
        config.os,
        "access",
        lambda p, mode: False if str(p).startswith(str(ro)) and mode & os.W_OK else real_access(p, mode),
    )  # root ignores chmod, so the check is told instead

    def no_writes(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(datasets.torch, "save", no_writes)
    assert "read-only" in cu.mode_summary() and "COURSE_DATA_DIR" in cu.mode_summary()
    with pytest.warns(UserWarning, match="Could not cache data in .*Set COURSE_DATA_DIR to a folder you can write to"):
        data = cu.load_dataset("cifar10", "test", limit=10, verbose=False)
    assert len(data) == 10
    with pytest.raises(cu.DataDirError, match="Cannot write to .*COURSE_DATA_DIR"):
        config.writable_data_subdir("torchvision")  # what a download needs


# ----------------------------------------------------------------------------- damaged caches
def test_a_damaged_cache_file_is_deleted_and_rebuilt():
    first = cu.load_dataset("cifar10", "test", verbose=False)
    (cache,) = (config.data_dir() / "standins").glob("cifar10-test-*.pt")
    cache.write_bytes(b"PK\x03\x04 not really a zip file")  # what an interrupted write leaves
    with pytest.warns(UserWarning, match=f"{cache.name} was damaged.*deleted it; the data is rebuilt"):
        again = cu.load_dataset("cifar10", "test", verbose=False)
    assert torch.equal(first.images, again.images)
    assert torch.equal(torch.load(cache, weights_only=True)[1], first.labels)  # rewritten, readable


def test_damaged_torchvision_files_name_the_folder_to_delete():
    raw = config.data_dir() / "torchvision" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (raw / name).write_bytes(os.urandom(100))
    with pytest.raises(cu.CorruptCacheError, match=f"Delete {raw.parent}"):
        cu.load_dataset("mnist", verbose=False)


# ----------------------------------------------------------------------------- labels
def test_labels_beyond_the_models_outputs():
    data = _digits()
    with pytest.raises(ValueError, match="model has 5 outputs but the labels go up to 9"):
        cu.fit(_linear(5), data, epochs=1, **QUIET)
    with pytest.raises(ValueError, match="model has 5 outputs but the labels go up to 9"):
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data), batch_size=64)
        cu.fit(_linear(5), loader, epochs=1, **QUIET)
    with pytest.raises(ValueError, match="model has 5 outputs but the labels go up to 9"):
        cu.evaluate(_linear(5), data, device="cpu")


def test_a_later_loader_batch_with_a_label_too_large_is_explained():
    X, y = torch.rand(64, 1, 8, 8), torch.zeros(64, dtype=torch.long)
    y[-1] = 7  # only the last batch has it
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=16)
    with pytest.raises(ValueError, match="model has 5 outputs but the labels go up to 7"):
        cu.fit(_linear(5), loader, epochs=1, **QUIET)


@pytest.mark.parametrize(
    "make",
    [
        lambda y: nn.functional.one_hot(y, 10).float(),
        lambda y: nn.functional.one_hot(y, 10),
        lambda y: y.float(),
    ],
    ids=["one-hot float", "one-hot int", "float"],
)
def test_one_hot_or_float_labels_are_refused_with_the_fix(make):
    data = _digits()
    bad = (data.images, make(data.labels))
    with pytest.raises(ValueError, match="integer class labels.*argmax"):
        cu.fit(_linear(), bad, epochs=1, **QUIET)
    with pytest.raises(ValueError, match="integer class labels"):
        cu.evaluate(_linear(), bad, device="cpu")


def test_a_custom_loss_may_take_float_targets():
    X = torch.rand(32, 1, 8, 8)
    hist = cu.fit(_linear(), (X, torch.rand(32, 10)), epochs=1, loss_fn=nn.MSELoss(), **QUIET)
    assert hist.epochs == 1


# ----------------------------------------------------------------------------- devices and models
def test_device_gpu_says_which_names_exist(monkeypatch):
    with pytest.raises(ValueError, match="device='gpu'.*'cuda'.*'mps'.*'cpu'"):
        cu.fit(_linear(), _digits(), epochs=1, live_plot=False, progress=False, device="gpu")
    with pytest.raises(ValueError, match="'cuda'"):
        cu.evaluate(_linear(), _digits(), device="gpu")
    monkeypatch.setenv("COURSE_DEVICE", "gpu")
    with pytest.raises(ValueError, match="COURSE_DEVICE='gpu'"):
        cu.get_device()


def test_a_model_without_parameters():
    data = _digits(32)
    metrics = cu.evaluate(nn.Flatten(), (data.images.reshape(32, 64)[:, :10], data.labels))
    assert set(metrics) == {"loss", "acc"}  # no bare StopIteration
    with pytest.raises(ValueError, match="no trainable parameters"):
        cu.fit(nn.Flatten(), data, epochs=1, **QUIET)


# ----------------------------------------------------------------------------- divergence
def test_a_diverging_run_stops_with_a_learning_rate_hint():
    with pytest.raises(FloatingPointError, match=r"diverged: the loss rose from .*lr=100\b.*10x smaller"):
        cu.fit(_linear(), _digits(), epochs=3, lr=100, **QUIET)


def test_a_healthy_run_is_not_called_diverging():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hist = cu.fit(_linear(), _digits(), epochs=3, lr=1e-2, **QUIET)
    assert hist.train_loss[-1] < hist.train_loss[0]


# ----------------------------------------------------------------------------- source="real" without data
def test_real_source_without_network_does_not_blame_course_offline(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "0")

    def no_network(address, timeout=None):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(datasets.socket, "create_connection", no_network)
    with pytest.raises(RuntimeError) as info:
        cu.load_dataset("cifar10", source="real", verbose=False)
    message = str(info.value)
    assert "COURSE_OFFLINE is not set" in message and "unset COURSE_OFFLINE" not in message
    assert "no network connection" in message and "Connect this machine to the internet" in message
    assert "source='offline'" in message


def test_real_source_in_offline_mode_names_the_switch():
    with pytest.raises(RuntimeError, match="COURSE_OFFLINE is set, which forbids downloads: unset it"):
        cu.load_dataset("cifar10", source="real", verbose=False)
