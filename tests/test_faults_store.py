"""The store under faults: two processes asking for one run, a results folder that cannot be written."""

import errno
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch
from support import write_arrays_file
from test_faults_resume import interrupt_at

import harness.core.checkpoint
import harness.core.store
from harness.core.config import RunConfig
from harness.core.runner import ResultsNotSavedWarning, cached_fit

# Waits until both processes are ready (a file each in the barrier folder), then
# asks for the run; prints when it asked, when it got the answer, and the answer.
RACER = """
import json, sys, time
from pathlib import Path
from harness.core.config import RunConfig
from harness.core.runner import cached_fit

config, barrier, name = RunConfig.from_dict(json.loads(sys.argv[1])), Path(sys.argv[2]), sys.argv[3]
(barrier / name).touch()
while len(list(barrier.iterdir())) < 2:
    time.sleep(0.01)
asked = time.time()
record = cached_fit(config)
print(json.dumps({"asked": asked, "answered": time.time(), **record}))
"""


@pytest.fixture
def config(tmp_path):
    data = write_arrays_file(tmp_path / "faults.npz", n_train=256, n_test=64)
    return RunConfig(data=f"npz:{data}", model="mlp_1x512", variant="random", max_passes=4, batch_size=32, device="cpu")


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_two_processes_asking_for_one_run_train_it_once(config, tmp_path):
    results, barrier = tmp_path / "shared-results", tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "HARNESS_RESULTS_DIR": str(results)}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, json.dumps(config.to_dict()), str(barrier), name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    answers = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
        answers.append(json.loads(out.strip().splitlines()[-1]))

    trainers = [a for a in answers if not a["reused"]]
    reusers = [a for a in answers if a["reused"]]
    assert len(trainers) == 1 and len(reusers) == 1, "exactly one of the two trains"
    trainer, reuser = trainers[0], reusers[0]
    # The race was real: the second asked before the first had its answer.
    assert reuser["asked"] < trainer["answered"]
    assert reuser["key"] == trainer["key"]
    assert reuser["curves"] == trainer["curves"]
    assert reuser["model_sha256"] == trainer["model_sha256"]
    assert files_under(results) == [
        f"locks/{trainer['key']}.lock",
        f"runs/{trainer['key']}/{os.path.basename(trainer['path'])}",
    ]
    assert (
        json.loads((results / "runs" / trainer["key"] / os.path.basename(trainer["path"])).read_text())["curves"]
        == trainer["curves"]
    )


def run_expecting_one_warning(config, **options) -> tuple[dict, warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = cached_fit(config, **options)
    unsaved = [w for w in caught if issubclass(w.category, ResultsNotSavedWarning)]
    assert len(unsaved) == 1, [str(w.message) for w in caught]
    return record, unsaved[0]


def ignores_permissions(folder) -> bool:
    """Whether this process writes into `folder` despite its mode (root does)."""
    try:
        (folder / "probe").touch()
    except PermissionError:
        return False
    (folder / "probe").unlink()
    return True


def test_a_read_only_results_folder_still_returns_the_record(config, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(0o555)
    try:
        if ignores_permissions(results):
            pytest.skip("this user writes into read-only folders (root)")
        record, warning = run_expecting_one_warning(config, root=results)
        assert files_under(results) == []  # no lock, log, checkpoint or record
    finally:
        results.chmod(0o755)
    assert record["outcome"] == "out_of_budget" and record["passes"] == 4  # trained: the figures exist
    assert record["saved"] is False and record["path"] is None
    assert record["save_error"] == f"results folder {results} is read-only (Permission denied): record not saved"
    assert str(warning.message) == record["save_error"]


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_from_the_start_still_returns_the_record(config, tmp_path, monkeypatch):
    """Every write ends in fsync, where a full disk reports itself: all of them fail."""
    results = tmp_path / "results"
    monkeypatch.setattr(os, "fsync", no_space)
    record, warning = run_expecting_one_warning(config, root=results)
    assert record["passes"] == 4 and record["saved"] is False and record["path"] is None
    assert record["save_error"] == f"results folder {results} is full (No space left on device): record not saved"
    assert str(warning.message) == record["save_error"]
    assert files_under(results) == []


def test_a_disk_that_fills_during_the_run_keeps_the_checkpoint_for_the_next_attempt(config, tmp_path, monkeypatch):
    """The record cannot be written at the end: it is returned, and the checkpoint lets a later call finish cheaply."""
    results = tmp_path / "results"
    monkeypatch.setattr(harness.core.store, "write_json_atomic", no_space)
    record, warning = run_expecting_one_warning(config, root=results)
    assert record["saved"] is False and "is full" in record["save_error"] and str(results) in record["save_error"]
    assert not list(results.rglob("*.tmp")) and not list((results / "runs").rglob("*.json"))
    checkpoint = results / "checkpoints" / f"{record['key']}.pt"
    assert checkpoint.exists()

    monkeypatch.undo()
    again = cached_fit(config, root=results)
    assert again["saved"] is True and again["reused"] is False
    assert again["resumed_from_pass"] == config.max_passes - 1
    assert again["curves"]["loss"] == record["curves"]["loss"] and again["model_sha256"] == record["model_sha256"]
    assert not checkpoint.exists()


def test_a_checkpoint_that_cannot_be_written_costs_one_warning_not_the_run(config, tmp_path, monkeypatch):
    results = tmp_path / "results"
    calls = []

    def full(*args):
        calls.append(args)
        no_space()

    monkeypatch.setattr(harness.core.checkpoint, "save_atomic", full)
    record, warning = run_expecting_one_warning(config, root=results)
    assert len(calls) == 1  # the first failure stops further attempts
    assert record["saved"] is True and "save_error" not in record
    assert "is full" in str(warning.message) and "record saved" in str(warning.message)
    assert files_under(results) == [
        f"locks/{record['key']}.lock",
        f"runs/{record['key']}/{os.path.basename(record['path'])}",
    ]


def test_a_saved_record_says_so_and_leaves_no_checkpoint(config, tmp_path):
    results = tmp_path / "results"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResultsNotSavedWarning)
        record = cached_fit(config, root=results)
        reused = cached_fit(config, root=results)
    assert record["saved"] is True and reused["saved"] is True and reused["reused"] is True
    assert not (results / "checkpoints" / f"{record['key']}.pt").exists()
    assert not (results / "live" / f"{record['key']}.log").exists()


def test_a_progress_log_that_cannot_be_made_costs_one_warning_not_the_run(config, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "live").write_text("a file where the log folder should be")
    record, warning = run_expecting_one_warning(config, root=results)
    assert record["saved"] is True and record["passes"] == 4
    assert str(warning.message).startswith(f"results folder {results} cannot be written")
    assert "record saved" in str(warning.message)
    assert str(warning.message).endswith("record saved; not written: progress log")


def test_a_run_lock_that_cannot_be_made_leaves_other_processes_files_alone(config, tmp_path):
    """Without the lock this process may not take another's temporary files for orphans, and says what failed."""
    from harness.core.store import run_key

    results = tmp_path / "results"
    results.mkdir()
    (results / "locks").write_text("a file where the lock folder should be")
    key = run_key(config)
    others = [results / "checkpoints" / f".{key}.pt.12345.tmp", results / "runs" / key / ".20990101.json.6789.tmp"]
    for path in others:  # being written by a process that holds the lock
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half written")
    record, warning = run_expecting_one_warning(config, root=results)
    assert record["saved"] is True and all(path.exists() for path in others)
    assert "not written: run lock (another process may train this run too)" in str(warning.message)


def test_retraining_starts_from_the_first_pass_not_from_an_earlier_attempts_checkpoint(config, tmp_path):
    """fresh (and fresh_since, for checkpoints another session wrote) ignores what an earlier attempt left."""
    import time

    from harness.core.checkpoint import CheckpointIgnoredWarning, RunCheckpoint, checkpoint_path
    from harness.core.code_identity import run_code_fingerprint
    from harness.core.store import run_key
    from harness.core.train import fit

    results = tmp_path / "results"
    key = run_key(config)
    checkpoint = RunCheckpoint(checkpoint_path(results, key), key, run_code=run_code_fingerprint())

    stop_at_pass_3 = interrupt_at(3)

    fit(config, checkpoint=checkpoint, progress=stop_at_pass_3)  # an earlier attempt, killed
    assert checkpoint.path.exists()
    assert cached_fit(config, root=results, fresh=True)["resumed_from_pass"] is None
    fit(config, checkpoint=checkpoint, progress=stop_at_pass_3)
    with pytest.warns(CheckpointIgnoredWarning, match="written before this fresh session"):
        assert cached_fit(config, root=results, fresh_since=time.time() + 1)["resumed_from_pass"] is None
    fit(config, checkpoint=checkpoint, progress=stop_at_pass_3)  # left beside a finished record
    assert cached_fit(config, root=results)["reused"] is True
    assert not checkpoint.path.exists()  # the reused record holds the run; the stale checkpoint goes


# What torch.save raises when the disk fills under it: a RuntimeError from its zip writer, not an OSError.
TORCH_DISK_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 3276864 vs 3276752"


def torch_cannot_write(*args, **kwargs):
    raise RuntimeError(TORCH_DISK_FULL)


def test_a_checkpoint_torch_cannot_write_costs_one_warning_not_the_run(config, tmp_path, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.setattr(torch, "save", torch_cannot_write)
    record, warning = run_expecting_one_warning(config, root=results)
    assert record["passes"] == 4 and record["saved"] is True and "save_error" not in record
    assert str(warning.message).endswith("record saved; not written: checkpoint")
    assert "unexpected pos" in str(warning.message)
    # No partial checkpoint, no temporary file: only the lock and the record.
    assert files_under(results) == [
        f"locks/{record['key']}.lock",
        f"runs/{record['key']}/{os.path.basename(record['path'])}",
    ]


def test_a_full_disk_under_torch_and_the_record_still_returns_the_record(config, tmp_path, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.setattr(torch, "save", torch_cannot_write)
    monkeypatch.setattr(harness.core.store, "write_json_atomic", no_space)
    record, warning = run_expecting_one_warning(config, root=results)
    assert record["passes"] == 4 and record["saved"] is False and record["path"] is None
    assert "checkpoint" in record["save_error"] and "record" in record["save_error"]
    assert "No space left on device" in record["save_error"] and str(warning.message) == record["save_error"]
    assert not list(results.rglob("*.tmp")) and not list(results.rglob("*.pt")) and not list(results.rglob("*.json"))


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 5 MiB tmpfs: room for one MLP 1x512 checkpoint (3.3 MB) but not for the next beside it."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or 'mount failed'}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_disk_that_fills_during_the_run_costs_the_checkpoint_not_the_run(small_tmpfs, tmp_path):
    """The issue's case: MLP 1x512 on 1,000 MNIST-sized images, 5 passes, results on a 5 MiB disk."""
    data = write_arrays_file(tmp_path / "mnist-like.npz", n_train=1000, n_test=100)
    run = RunConfig(data=f"npz:{data}", model="mlp_1x512", variant="random", max_passes=5, device="cpu")
    results = small_tmpfs / "results"
    record, warning = run_expecting_one_warning(run, root=results)
    assert record["passes"] == 5 and record["outcome"] == "out_of_budget"
    assert f"results folder {results} is full (No space left on device)" in str(warning.message)
    assert "checkpoint" in str(warning.message)
    assert not list(results.rglob("*.tmp"))
    if record["saved"]:  # the record is small: it fits where the checkpoint did not, and answers the next call
        assert not list(results.rglob("*.pt"))
        assert cached_fit(run, root=results)["reused"] is True
    else:
        assert "is full" in record["save_error"]


def fill(folder) -> None:
    """Write into `folder` until its disk is full, as another program writing there would."""
    handle = os.open(folder / "ballast", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(handle, b"x" * 4096)
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(handle)


def test_a_disk_filled_by_another_writer_mid_run_still_returns_the_record(small_tmpfs, tmp_path):
    """After pass 1 nothing more fits: checkpoint and record fail for real (ENOSPC); the run still ends with its record."""
    data = write_arrays_file(tmp_path / "faults.npz", n_train=256, n_test=64)
    # 12 passes: a record of about 5 kB, more than the page the progress log gives back when it is removed.
    run = RunConfig(data=f"npz:{data}", model="mlp_1x512", variant="random", max_passes=12, batch_size=64, device="cpu")
    results = small_tmpfs / "results"

    def fill_after_pass_1(state):
        if state["pass"] == 1:
            fill(small_tmpfs)

    record, warning = run_expecting_one_warning(run, root=results, progress=fill_after_pass_1)
    assert record["passes"] == 12 and record["saved"] is False and record["path"] is None
    assert record["save_error"].startswith(
        f"results folder {results} is full (No space left on device): record not saved"
    )
    assert "checkpoint" in record["save_error"] and str(warning.message) == record["save_error"]
    assert not list(results.rglob("*.tmp")) and not list(results.rglob("*.pt")) and not list(results.rglob("*.json"))
