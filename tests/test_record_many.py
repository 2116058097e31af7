"""``record_many``: the one call of a lecture's compact recording cell (one per section)."""

from __future__ import annotations

import numpy as np
import pytest

import course_utils as cu


def test_record_many_stores_every_keyword(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_RECORD_DIR", str(tmp_path))
    cu.set_notebook("Lxx_many")
    cu.record("earlier", 1)
    assert cu.record_many(hinge_mean=np.float32(2.5), hinge_losses=np.array([2.0, 3.0])) is None
    assert cu.load_records("Lxx_many") == {"earlier": 1, "hinge_mean": 2.5, "hinge_losses": [2.0, 3.0]}


def test_record_many_rejects_nothing_and_bad_values(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_RECORD_DIR", str(tmp_path))
    cu.set_notebook("Lxx_many_bad")
    with pytest.raises(ValueError, match="at least one keyword"):
        cu.record_many()
    with pytest.raises(TypeError, match="Convert the value"):
        cu.record_many(model=object())
