"""Run records: atomic, append-only, stamped, reused by config hash."""

import json

import pytest

from harness.core.config import RunConfig
from harness.core.runner import cached_fit
from harness.core.store import RecordIgnoredWarning, latest_record, run_key, write_json_atomic


def config(tiny_npz, **changes):
    values = dict(data=f"npz:{tiny_npz}", max_passes=2, device="cpu", variant="random")
    values.update(changes)
    return RunConfig(**values)


def test_a_run_is_trained_once_then_reused(tiny_npz, results):
    first = cached_fit(config(tiny_npz))
    second = cached_fit(config(tiny_npz))
    assert first["reused"] is False and second["reused"] is True
    assert first["key"] == second["key"]
    assert second["curves"] == first["curves"]
    # A differently named but identical run (partial at p=1) is the same record.
    assert cached_fit(config(tiny_npz, variant="partial", corruption=1.0))["reused"] is True


def test_fresh_appends_a_record_and_never_overwrites(tiny_npz, results):
    first = cached_fit(config(tiny_npz))
    cached_fit(config(tiny_npz), fresh=True)
    files = sorted((results / "runs" / first["key"]).glob("*.json"))
    assert len(files) == 2


def test_records_are_stamped_with_config_machine_and_data(tiny_npz, results):
    record = cached_fit(config(tiny_npz))
    saved = json.loads(open(record["path"]).read())
    assert saved["config"]["variant"] == "random"
    assert saved["data_source"] == "arrays file tiny.npz"
    assert "sha256:" in saved["data_fingerprint"]
    for field in ("torch", "cuda", "commit", "python", "time", "host_platform"):
        assert field in saved["stamp"]


def test_a_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_damaged_records_are_skipped(tiny_npz, results):
    record = cached_fit(config(tiny_npz))
    (results / "runs" / record["key"] / "99999999.json").write_text("{ not json")
    with pytest.warns(RecordIgnoredWarning, match="99999999.json ignored: it cannot be read as JSON"):
        assert latest_record(record["key"], results)["key"] == record["key"]


def test_bad_data_leaves_no_record(tmp_path, results):
    with pytest.raises(ValueError, match="not found"):
        cached_fit(RunConfig(data=f"npz:{tmp_path / 'missing.npz'}"))
    assert not (results / "runs").exists()


def test_a_training_run_keeps_a_live_log_until_its_record_is_saved(tiny_npz, results):
    """Progress stays visible under pytest and xdist: RESULTS/live/<key>.log, one line per pass."""
    snapshots = []

    def peek(state):
        snapshots.append(next((results / "live").glob("*.log")).read_text())

    record = cached_fit(config(tiny_npz, max_passes=2), progress=peek)
    assert "pass 1/2 loss" in snapshots[0] and "pass 2/2" in snapshots[1]
    assert not (results / "live" / f"{record['key']}.log").exists()


def test_an_interrupted_run_keeps_its_record_and_raises_again(tiny_npz, results):
    """Ctrl-C must stop a claims session, not turn into a recorded claim failure."""

    def interrupt(state):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="curves are kept"):
        cached_fit(config(tiny_npz, max_passes=3), progress=interrupt)
    saved = [json.loads(p.read_text()) for p in (results / "runs").glob("*/*.json")]
    assert [r["outcome"] for r in saved] == ["interrupted"]
    assert cached_fit(config(tiny_npz, max_passes=3))["reused"] is False  # never reused


def test_an_interrupted_run_resumes_from_its_checkpoint_when_asked_again(tiny_npz, results):
    """Ctrl-C after pass 2: pass 1's checkpoint is kept, and the next call trains only what is left."""

    def interrupt_in_pass_2(state):
        if state["pass"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached_fit(config(tiny_npz, max_passes=3), progress=interrupt_in_pass_2)
    assert len(list((results / "checkpoints").glob("*.pt"))) == 1
    passes_trained = []
    resumed = cached_fit(config(tiny_npz, max_passes=3), progress=lambda state: passes_trained.append(state["pass"]))
    assert resumed["resumed_from_pass"] == 1 and passes_trained == [2, 3] and resumed["saved"] is True
    assert not list((results / "checkpoints").glob("*.pt"))  # the record holds the run now


def test_fresh_since_reuses_only_records_of_this_session(tiny_npz, results):
    import time

    first = cached_fit(config(tiny_npz))
    started = time.time()
    second = cached_fit(config(tiny_npz), fresh_since=started)
    third = cached_fit(config(tiny_npz), fresh_since=started)
    assert second["reused"] is False and third["reused"] is True
    assert third["finished_at"] == second["finished_at"] > first["finished_at"]


def test_editing_an_imported_optimizer_changes_the_run_key(tmp_path, monkeypatch):
    import sys

    from harness.core.store import run_key

    module = tmp_path / "editedopt.py"
    module.write_text("import torch\ndef make(params, lr=0.1):\n    return torch.optim.SGD(params, lr=lr)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = tmp_path / "d.npz"
    from support import write_arrays_file

    write_arrays_file(data)
    spec_config = RunConfig(data=f"npz:{data}", optimizer="editedopt:make")
    before = run_key(spec_config)
    module.write_text(module.read_text() + "# a change\n")
    sys.modules.pop("editedopt", None)
    assert run_key(spec_config) != before


def test_a_subset_as_large_as_the_set_is_the_whole_set(tiny_npz):
    """n_train (n_test) >= the set's size trains on exactly the data None does: the same run key."""
    from harness.core.prepare import load_raw_cached

    raw = load_raw_cached(f"npz:{tiny_npz}")
    whole = RunConfig(data=f"npz:{tiny_npz}", device="cpu")
    assert run_key(whole.replace(n_train=len(raw.train_y), n_test=10 * len(raw.test_y))) == run_key(whole)
    assert run_key(whole.replace(n_train=len(raw.train_y) - 1)) != run_key(whole)
