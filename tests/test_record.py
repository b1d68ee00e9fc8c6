"""harness.core.record: one conversion to JSON values, one atomic writer for every file."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.core.checkpoint import save_atomic
from harness.core.record import json_value, replace_atomically, write_json_atomic


def test_json_value_gives_what_json_gives_back():
    value = {
        1: np.float32(0.5),
        "counts": np.array([[1, 2], [3, 4]], dtype=np.int64),
        "pair": (np.int64(3), None),
        "flag": np.bool_(True),
        "path": Path("a/b"),
    }
    plain = json_value(value)
    assert plain == {"1": 0.5, "counts": [[1, 2], [3, 4]], "pair": [3, None], "flag": True, "path": "a/b"}
    assert type(plain["flag"]) is bool and type(plain["pair"][0]) is int
    assert json.loads(json.dumps(plain)) == plain  # a round trip changes nothing more


def test_non_finite_numbers_stay_floats_unless_strict():
    value = {"passes_to_level": [float("inf"), 3.0], "loss": np.float64("nan")}
    loose = json_value(value)
    assert loose["passes_to_level"][0] == math.inf and math.isnan(loose["loss"])
    assert json_value(value, strict=True) == {"passes_to_level": ["inf", 3.0], "loss": "nan"}
    json.dumps(json_value(value, strict=True), allow_nan=False)  # strict JSON readers accept it


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    write_json_atomic(target, {"version": 1})

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_json_atomic(target, {"version": 2})
    with pytest.raises(OSError):
        save_atomic(tmp_path / "state.pt", {"weights": torch.zeros(3)})
    assert json.loads(target.read_text()) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_files_are_readable_by_other_users(tmp_path):
    replace_atomically(tmp_path / "x.bin", b"abc")
    assert (tmp_path / "x.bin").read_bytes() == b"abc"
    assert (tmp_path / "x.bin").stat().st_mode & 0o777 == 0o644
