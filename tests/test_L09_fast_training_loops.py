"""Lecture L9 (training fast): the facts the notebook teaches that do not depend on timing.

Speeds vary from machine to machine and run to run, so no test asserts a speed. What is asserted:
both loops learn equally well, the instrumented counts of host reads and host-to-device copies,
the bf16/float16 number formats, channels-last strides, and that every timing was recorded.
"""

from __future__ import annotations

import pytest
import torch

NB = "lectures/L09_fast_training_loops.ipynb"


@pytest.fixture(scope="module")
def r(notebook_records):
    return notebook_records(NB)


def test_data_sizes(r):
    assert r["mnist_full_megabytes"] == pytest.approx(188.16)
    assert r["cifar10_full_megabytes"] == pytest.approx(614.4)
    assert 0 < r["train_set_megabytes"] <= r["mnist_full_megabytes"]


def test_both_loops_reach_similar_accuracy(r):
    assert r["parity_epochs"] >= 3
    assert r["textbook_test_acc"] > 0.8 and r["resident_test_acc"] > 0.8
    assert abs(r["textbook_test_acc"] - r["resident_test_acc"]) < 0.05


def test_host_reads_per_epoch_are_two_per_batch_vs_one(r):
    n_batches = r["count_batches_per_epoch"]
    assert n_batches == 8
    assert r["textbook_reads_per_epoch"] == 2 * n_batches  # loss.item() and correct.item(), every batch
    assert r["resident_reads_per_epoch"] == 1  # one .tolist() at the end of the epoch


def test_one_upload_of_the_data_set_vs_one_copy_per_batch(r):
    epochs, n_batches = r["count_epochs"], r["count_batches_per_epoch"]
    assert r["textbook_copies"] == 2 * n_batches * epochs  # X and y, every batch, every epoch
    assert r["resident_copies"] == 2  # X and y, once
    assert r["resident_copied_bytes"] == r["data_bytes"]
    assert r["textbook_copied_bytes"] == epochs * r["data_bytes"]


def test_fit_reads_do_not_grow_with_the_number_of_batches(r):
    assert r["fit_reads_per_epoch"] == [2, 2]  # the loss and the number correct, whatever the batch size
    assert r["fit_reads_once"] == [2, 2]  # the label range and the first loss, once per call
    assert r["fit_copies"] == [2, 2]  # X and y, once


def test_number_formats(r):
    assert r["bf16_max"] == pytest.approx(torch.finfo(torch.float32).max, rel=0.01)
    assert r["fp16_max"] == 65504.0
    assert r["bf16_eps"] == 2.0**-7
    assert r["70000_in_fp16"] == float("inf")
    assert r["70000_in_bf16"] == 70144.0
    expected = "torch.bfloat16" if r["bf16_autocast_available"] else "torch.float32"
    assert r["autocast_dtypes"] == [expected, "torch.float32"]  # matmuls in bf16, the loss in float32


def test_channels_last_layout(r):
    assert r["strides_nchw"] == [12, 6, 3, 1]
    assert r["strides_nhwc"] == [12, 1, 6, 2]
    assert r["memory_order_nhwc"] == [0, 100, 1, 101, 2, 102, 10, 110, 11, 111, 12, 112]


def test_launch_overhead_measurements_exist(r):
    assert r["mlp_ops_per_step"] > 20  # forward, backward and Adam: dozens of ops
    assert r["us_per_tiny_op"] > 0
    assert set(r["ms_per_step_by_batch"]) == {"1", "4", "16", "64", "256", "1024"}
    assert all(ms > 0 for ms in r["ms_per_step_by_batch"].values())


def test_ladder_was_measured_for_both_models(r):
    rungs = r["ladder_rungs"]
    assert set(rungs) == {"tiny MLP", "small CNN"}
    for model, names in rungs.items():
        assert names[:3] == ["textbook", "data on device", "no per-step sync"]
        assert "channels_last" not in names or model == "small CNN"
        assert all(r["ladder_images_per_s"][model][n] > 0 for n in names)
        assert set(r["ladder_step_ratios"][model]) == set(names[1:])


def test_bf16_and_channels_last_training_only_on_a_gpu(r):
    """On a CPU they crash some processors' convolution backward (AVX2-only EPYC): the lecture skips them there."""
    if r["bf16_channels_last_training"]:
        return  # a GPU run: both rungs may run
    for model, names in r["ladder_rungs"].items():
        assert "bf16 autocast" not in names and "channels_last" not in names, (model, names)


def test_total_speedup_verdict_accounts_for_noise(r):
    """The printed verdict on the whole ladder follows the stated rule: a change counts only beyond the noise."""
    for model, total in r["ladder_total"].items():
        noise = max(total["noise"], 1.1)
        expected = "helped" if total["ratio"] > noise else "hurt" if total["ratio"] < 1 / noise else "within the noise"
        assert total["verdict"] == expected, (model, total)
        assert total["noise"] >= 1.0
