"""A run killed hard resumes from its last checkpoint and ends as if it had never stopped.

The kill is real: a training process is sent SIGKILL between passes, then
the same run is asked for again (in this process: a new process that finds
the checkpoint, as a rerun would). On the CPU the resumed record must equal an
uninterrupted run's in everything but timings, and the results folder must
hold no temporary or half-written file.
"""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from support import write_arrays_file

from harness.core.checkpoint import CheckpointIgnoredWarning, RunCheckpoint
from harness.core.config import RunConfig
from harness.core.runner import cached_fit
from harness.core.train import fit

# Fields that measure time or place, or say how the run was made: everything else must agree.
NOT_COMPARED = {
    "train_seconds",
    "eval_seconds",
    "setup_seconds",
    "checkpoint_seconds",
    "images_per_second",
    "resumed_from_pass",
    "stamp",
    "finished_at",
    "path",
    "reused",
    "saved",
}
TIMING_CURVES = {"train_seconds", "eval_seconds"}

# Trains one run through the store (so with its checkpoints), pausing after each
# pass so that the test can kill it between passes. It uses this process's
# thread count: CPU results are bitwise equal only at equal thread counts.
VICTIM = """
import json, sys, time
import torch
from harness.core.config import RunConfig
from harness.core.runner import cached_fit

torch.set_num_threads(int(sys.argv[3]))
cached_fit(RunConfig.from_dict(json.loads(sys.argv[1])), progress=lambda state: time.sleep(float(sys.argv[2])))
"""


def comparable(record: dict) -> dict:
    kept = {name: value for name, value in record.items() if name not in NOT_COMPARED}
    kept["curves"] = {name: values for name, values in record["curves"].items() if name not in TIMING_CURVES}
    return kept


def start_victim(config: RunConfig, results, pause: float) -> subprocess.Popen:
    env = {**os.environ, "HARNESS_RESULTS_DIR": str(results)}
    return subprocess.Popen(
        [sys.executable, "-c", VICTIM, json.dumps(config.to_dict()), str(pause), str(torch.get_num_threads())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def checkpoint_passes(results) -> tuple[int, str | None]:
    """(passes saved in the run's checkpoint, its run key), or (0, None) while there is none."""
    for path in (results / "checkpoints").glob("*.pt"):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError):
            continue  # replaced between glob and load: look again
        return state["passes"], state["run_key"]
    return 0, None


@pytest.fixture
def killable_config(tmp_path):
    """Dropout, random crops and half the labels corrupted: every RNG a resume must restore is in use."""
    data = write_arrays_file(tmp_path / "faults.npz", n_train=256, n_test=64)
    return RunConfig(
        data=f"npz:{data}",
        model="mlp_1x512",
        variant="partial",
        corruption=0.5,
        dropout=0.2,
        augment="crop",
        max_passes=6,
        batch_size=32,
        test_every=2,
        device="cpu",
    )


def test_a_run_killed_mid_way_resumes_and_ends_as_the_uninterrupted_run(killable_config, tmp_path):
    killed_results = tmp_path / "killed"
    victim = start_victim(killable_config, killed_results, pause=0.3)
    deadline = time.monotonic() + 60
    while (seen := checkpoint_passes(killed_results))[0] < 2:
        assert victim.poll() is None, "the run ended before it could be killed: " + victim.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint of pass 2 within 60 s"
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    passes_at_kill, key = seen
    assert not list((killed_results / "runs").glob("*/*.json")), "killed before its record, as intended"
    # A temporary file as a kill during a checkpoint write leaves it: the next run must clear it.
    (killed_results / "checkpoints" / f".{key}.pt.killed.tmp").write_bytes(b"half a checkpoint")

    resumed = cached_fit(killable_config, root=killed_results)
    reference = cached_fit(killable_config, root=tmp_path / "reference")

    assert reference["resumed_from_pass"] is None
    assert resumed["resumed_from_pass"] >= passes_at_kill >= 2
    assert resumed["resumed_from_pass"] < resumed["passes"]  # it trained passes of its own after resuming
    assert comparable(resumed) == comparable(reference)
    assert resumed["passes"] == killable_config.max_passes
    assert len(resumed["curves"]["train_accuracy_clean"]) == resumed["passes"]

    leftovers = [p for p in killed_results.rglob("*") if p.is_file() and p.suffix != ".lock"]
    assert leftovers == [Path(resumed["path"])]
    assert json.loads(leftovers[0].read_text())["passes"] == resumed["passes"]  # whole, and the run's


def interrupt_at(passes: int):
    """A progress callback that presses Ctrl-C as pass `passes` ends, before its checkpoint is saved."""

    def progress(state):
        if state["pass"] == passes:
            raise KeyboardInterrupt

    return progress


@pytest.mark.parametrize("every", [1, 2])
def test_an_interrupted_fit_resumes_from_its_last_saved_pass(killable_config, tmp_path, every):
    checkpoint = RunCheckpoint(tmp_path / "run.pt", "run-key", every=every)
    stopped = fit(killable_config, checkpoint=checkpoint, progress=interrupt_at(4))
    assert stopped["outcome"] == "interrupted" and stopped["passes"] == 4
    resumed = fit(killable_config, checkpoint=checkpoint)
    assert resumed["resumed_from_pass"] == (3 if every == 1 else 2)
    assert comparable(resumed) == comparable(fit(killable_config))


def damage_truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def damage_other_run(path):
    state = torch.load(path, weights_only=True)
    torch.save({**state, "run_key": "another-run"}, path)


def damage_old_format(path):
    state = torch.load(path, weights_only=True)
    torch.save({**state, "version": 0}, path)


def damage_other_config(path):
    state = torch.load(path, weights_only=True)
    torch.save({**state, "config": {**state["config"], "seed": 7}}, path)


@pytest.mark.parametrize(
    "damage, reason",
    [
        (damage_truncate, "does not load"),
        (damage_other_run, "belongs to run 'another-run'"),
        (damage_old_format, "format version 0"),
        (damage_other_config, "config differs"),
    ],
)
def test_an_untrustworthy_checkpoint_is_reported_and_the_run_starts_over(killable_config, tmp_path, damage, reason):
    config = killable_config.replace(max_passes=3)
    checkpoint = RunCheckpoint(tmp_path / "run.pt", "run-key")
    fit(config, checkpoint=checkpoint, progress=interrupt_at(3))
    damage(checkpoint.path)
    with pytest.warns(CheckpointIgnoredWarning, match=reason):
        record = fit(config, checkpoint=checkpoint)
    assert record["resumed_from_pass"] is None
    assert comparable(record) == comparable(fit(config))


def test_fit_without_a_checkpoint_writes_no_file(killable_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(killable_config.replace(max_passes=2))
    assert sorted(tmp_path.rglob("*")) == before


def test_checkpoints_wait_for_their_minimum_interval(tmp_path, monkeypatch):
    """A checkpoint is due no sooner than `min_seconds` after the last save (GPU passes are short)."""
    clock = [100.0]
    monkeypatch.setattr("harness.core.checkpoint.time.monotonic", lambda: clock[0])
    checkpoint = RunCheckpoint(tmp_path / "run.pt", "run-key", min_seconds=10.0)
    assert not checkpoint.due(1)
    clock[0] += 10.0
    assert checkpoint.due(2)
    checkpoint.save({"passes": 2, "curves": {}}, {})
    assert not checkpoint.due(3)
    clock[0] += 9.9
    assert not checkpoint.due(4)
    clock[0] += 0.1
    assert checkpoint.due(5)
    assert RunCheckpoint(tmp_path / "other.pt", "run-key").due(1)  # the default: every pass
