"""harness.core.record: one conversion to JSON values, one atomic writer for every file."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.bench.batched import fit_batched
from harness.core.checkpoint import save_atomic
from harness.core.config import RunConfig
from harness.core.evidence import REQUIRED_ITEMS
from harness.core.models import build_model
from harness.core.record import (
    CLAIM_CURVES,
    CLAIM_FIELDS,
    CURVES,
    FIELDS,
    NOISE_CURVES,
    json_value,
    replace_atomically,
    state_digest,
    write_json_atomic,
)
from harness.core.train import fit


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


# --- one record for every loop ------------------------------------------------------

FINAL_TEST_KEYS = {"test_prediction_counts", "test_confusion"}


def missing_and_unknown(record: dict) -> tuple[set, set]:
    """Keys of FIELDS a record lacks (the final test keys are optional), and keys FIELDS does not know."""
    return set(FIELDS) - set(record) - FINAL_TEST_KEYS, set(record) - set(FIELDS)


def test_every_loop_writes_the_same_keys(tiny_npz):
    """Eager, batched, and a run refused before training: the keys of FIELDS, the curves of CURVES."""
    base = RunConfig(data=f"npz:{tiny_npz}", model="mlp_1x512", max_passes=3, device="cpu", batch_size=32)
    eager = fit(base)
    partial = fit(base.replace(variant="partial", corruption=0.5, seed=2))
    (batched,) = fit_batched([base.replace(seed=1)])
    for record in (eager, batched, partial):
        assert missing_and_unknown(record) == (set(), set())
        assert set(CURVES) <= set(record["curves"]) <= set(CURVES) | set(NOISE_CURVES)
        assert all(len(curve) == record["passes"] for curve in record["curves"].values())
    assert set(NOISE_CURVES) <= set(partial["curves"])
    assert (eager["loop"], batched["loop"]) == ("eager", "batched")
    for record in (eager, batched, partial):  # every loop proves its variant and settings the same way
        assert set(record["evidence"]) == {*REQUIRED_ITEMS, "weight_decay", "augmentation"}
        assert all(
            set(item) == {"measured", "expected", "holds"} and item["holds"] for item in record["evidence"].values()
        )
        assert record["labels_changed"] == record["evidence"]["labels"]["measured"]
    assert eager["initial_loss"] > 0 and batched["initial_loss"] is None


def test_a_batched_record_digests_its_trained_weights_not_its_initial_ones(tiny_npz):
    config = RunConfig(data=f"npz:{tiny_npz}", model="mlp_1x512", max_passes=2, device="cpu", batch_size=32)
    (record,) = fit_batched([config])
    torch.manual_seed(config.seed)
    untrained = build_model(config.model, in_channels=1, num_classes=10, init=config.init)
    assert record["model_sha256"] != state_digest(untrained)


def test_the_key_check_finds_a_planted_missing_and_an_unknown_key():
    record = {key: None for key in FIELDS}
    del record["setup_seconds"]
    record["stray"] = 1
    assert missing_and_unknown(record) == ({"setup_seconds"}, {"stray"})


def test_the_fields_and_curves_claims_read_are_record_fields():
    assert set(CLAIM_FIELDS) <= set(FIELDS)
    assert set(CLAIM_CURVES) <= set(CURVES) | set(NOISE_CURVES)
