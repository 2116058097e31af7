"""Smoke test of benchmarks/train_speed.py on the CPU: tiny sizes, seconds, no timing assertions.

It checks that both loops (the textbook one and course_utils' fast path) really train, that the
JSON the benchmark writes has the documented layout, and that bad arguments are refused clearly.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

from benchmarks import train_speed as ts
from benchmarks.models import build, count_parameters, input_shape, lenet5, resnet18_cifar


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "speed.json"
    threads = torch.get_num_threads()
    try:  # one thread: on a busy 2-core machine two threads can be ten times slower
        ts.main(
            [
                "--device",
                "cpu",
                "--quick",
                "--images",
                "64",
                "--batch",
                "16",
                "--width",
                "4",
                "--threads",
                "1",
                "--lr",
                "3e-3",
                "--tta",
                "on",
                "--tta-limit",
                "256",
                "--tta-max-epochs",
                "2",
                "--target",
                "0.3",
                "--json",
                str(out),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    return json.loads(out.read_text())


def test_models_have_the_expected_shapes_and_sizes():
    assert count_parameters(lenet5()) == 61_706
    assert count_parameters(resnet18_cifar()) == 11_173_962
    for name in ("lenet5", "resnet18"):
        model = build(name, width=4)
        assert model(torch.zeros(2, *input_shape(name))).shape == (2, 10)
    with pytest.raises(ValueError, match="lenet5"):
        build("alexnet")
    with pytest.raises(ValueError, match="width"):
        resnet18_cifar(width=0)


def test_json_has_the_documented_layout(result):
    ts.validate_result(result)  # raises on any missing or mistyped field
    assert result["schema"] == ts.SCHEMA
    assert result["device"]["type"] == "cpu"
    assert {(r["net"], r["loop"]) for r in result["throughput"]} == {
        (net, loop) for net in ("lenet5", "resnet18") for loop in ("plain", "fast")
    }
    for row in result["throughput"]:
        assert len(row["epoch_times_s"]) == 1 + row["timed_epochs"]
        assert row["images_per_epoch"] == 64 and row["batch_size"] == 16
        assert row["epoch_50k_s_measured"] is None  # a 50,000-image epoch was not run
        assert row["epoch_50k_s_extrapolated"] == pytest.approx(50_000 / row["images_per_s"])
        assert not row["amp_bf16"] and not row["channels_last"]  # GPU-only extras stay off on a CPU
    assert set(result["speedup"]) == {"lenet5", "resnet18"}
    assert result["gpu_targets"] is None  # only checked on a GPU


def test_both_loops_train(result):
    for row in result["throughput"]:
        assert row["train_loss"][-1] < row["train_loss"][0], (row["net"], row["loop"], row["train_loss"])


def test_time_to_accuracy_rows_label_the_data(result):
    rows = result["time_to_accuracy"]
    assert {(r["net"], r["loop"]) for r in rows} == {(n, l) for n in ("lenet5", "resnet18") for l in ("plain", "fast")}
    for row in rows:
        assert row["target_acc"] == 0.3 and 1 <= len(row["val_acc"]) <= 2
        assert row["reached"] == (row["epochs"] is not None) == (row["train_time_s"] is not None)
    resnet = next(r for r in rows if r["net"] == "resnet18")
    assert resnet["dataset"] == "cifar10" and (resnet["is_standin"] == ("STAND-IN" in resnet["data"]))


def test_table_mentions_device_and_both_loops(result):
    text = ts.format_tables(result)
    assert "device: cpu" in text and "plain" in text and "fast" in text and "speed-up" in text
    assert "not checked, no GPU here" in text


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="choose from"):
        ts.run_benchmark(device="cpu", nets=["vgg"], log=lambda s: None)
    with pytest.raises(ValueError, match="batch"):
        ts.run_benchmark(device="cpu", batch=0, log=lambda s: None)
    with pytest.raises(ValueError, match="accuracy"):
        ts.run_benchmark(device="cpu", target=1.5, log=lambda s: None)
    bad = {"schema": ts.SCHEMA}
    with pytest.raises(ValueError, match="missing field"):
        ts.validate_result(bad)


def test_plain_epoch_reads_the_loss_every_step():
    # The textbook loop calls .item() twice per batch (loss and correct count): count the calls made
    # by the loop itself (the DataLoader makes one of its own, for a random seed).
    X, y = torch.randn(48, 1, 28, 28), torch.randint(0, 10, (48,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=16)
    model = lenet5()
    calls = []
    original = torch.Tensor.item

    def counting_item(self):
        if sys._getframe(1).f_code.co_filename == ts.__file__:
            calls.append(1)
        return original(self)

    torch.Tensor.item = counting_item
    try:
        ts.plain_train_epoch(
            model,
            loader,
            torch.optim.SGD(model.parameters(), lr=0.01),
            torch.nn.CrossEntropyLoss(),
            torch.device("cpu"),
        )
    finally:
        torch.Tensor.item = original
    assert len(calls) == 2 * len(loader)


def test_augmented_resnet_run_uses_both_augmentations():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = ts.run_benchmark(
            device="cpu",
            quick=True,
            nets=["resnet18"],
            images=32,
            batch=16,
            width=4,
            augment=True,
            timed_epochs=1,
            tta="off",
            log=lambda s: None,
        )
    finally:
        torch.set_num_threads(threads)
    ts.validate_result(result)
    assert all(row["augment"] for row in result["throughput"])
    assert result["tta_skipped"] == {"resnet18": "--tta off"}


def test_per_image_augmentation_returns_crops_of_the_right_size():
    X, y = torch.rand(4, 3, 32, 32), torch.arange(4)
    dataset = ts.PerImageAugment(X, y)
    image, label = dataset[2]
    assert image.shape == (3, 32, 32) and label == 2 and len(dataset) == 4
