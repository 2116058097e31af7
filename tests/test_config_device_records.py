"""config, device and records: switches, seeding, device choice, the record/load round trip."""

import json
import os
import random

import numpy as np
import pytest
import torch

import course_utils as cu
from course_utils import config, records


def test_fast_mode_switch(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    assert cu.is_fast_mode() and cu.fast_or_full("small", "big") == "small"
    monkeypatch.setenv("COURSE_FAST", "0")
    assert not cu.is_fast_mode() and cu.fast_or_full("small", "big") == "big"
    monkeypatch.delenv("COURSE_FAST")
    assert not cu.is_fast_mode()


def test_bad_switch_value_says_what_to_do(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "maybe")
    with pytest.raises(ValueError, match="COURSE_OFFLINE=1"):
        cu.is_offline()


def test_data_dir_is_configurable_and_created(monkeypatch, tmp_path):
    target = tmp_path / "cache" / "here"
    monkeypatch.setenv("COURSE_DATA_DIR", str(target))
    assert cu.data_dir() == target and target.is_dir()


def test_mode_summary_mentions_mode(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    line = config.mode_summary()
    assert "FAST" in line and "offline" in line


def test_seed_everything_makes_all_generators_repeat():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    cu.seed_everything(123)
    first = draw()
    cu.seed_everything(123)
    assert draw() == first
    with pytest.raises(ValueError, match="non-negative int"):
        cu.seed_everything(-1)


def test_get_device_prefers_cpu_here_and_rejects_missing_cuda(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    device = cu.get_device()
    assert device.type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        assert device.type in ("mps", "cpu")
        with pytest.raises(RuntimeError, match="runtime type"):
            cu.get_device("cuda")
    assert cu.get_device("cpu").type == "cpu"
    assert cu.describe_device(torch.device("cpu")).startswith("cpu")


def test_record_returns_value_and_round_trips(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_RECORD_DIR", str(tmp_path))
    cu.set_notebook("Lxx_demo")
    value = cu.record("losses", np.array([2.9, 0.0, 12.9]))
    assert isinstance(value, np.ndarray)
    cu.record("count", torch.tensor(7))
    cu.record("nested", {"a": (np.float32(1.5), 2)})
    data = cu.load_records("Lxx_demo")
    assert data == {"losses": [2.9, 0.0, 12.9], "count": 7, "nested": {"a": [1.5, 2]}}
    assert json.loads((tmp_path / "Lxx_demo.json").read_text())["count"] == 7


def test_the_notebook_key_is_module_state_not_an_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_RECORD_DIR", str(tmp_path))
    monkeypatch.delenv("COURSE_NOTEBOOK", raising=False)
    cu.set_notebook("Lxx_outer")
    assert records.current_notebook() == "Lxx_outer" and "COURSE_NOTEBOOK" not in os.environ
    with records.recording_as("Lxx_inner"):
        cu.record("inside", 1)
    cu.record("outside", 2)
    assert records.current_notebook() == "Lxx_outer"
    assert cu.load_records("Lxx_inner") == {"inside": 1} and cu.load_records("Lxx_outer") == {"outside": 2}
    with pytest.raises(ValueError, match="letters, digits"), records.recording_as("no/slashes"):
        pass


def test_record_without_dir_is_a_no_op(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_RECORD_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cu.record("x", 3) == 3
    assert list(tmp_path.iterdir()) == []


def test_record_rejects_bad_input(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_RECORD_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="non-empty string key"):
        cu.record("", 1)
    with pytest.raises(TypeError, match="Convert the value"):
        cu.record("model", object())
    with pytest.raises(ValueError, match="letters, digits"):
        cu.set_notebook("bad name/..")
    with pytest.raises(FileNotFoundError, match="was the notebook executed"):
        records.load_records("never_ran", tmp_path)
