"""A record answers only the harness code that made it: edit the run's code, train, revert, and the edited code's
record is never served (harness.core.code_identity)."""

import subprocess
import sys
import warnings

import pytest

from harness.core import runner
from harness.core.checkpoint import CheckpointIgnoredWarning, RunCheckpoint
from harness.core.code_identity import RUN_CODE_MODULES, run_code_fingerprint, syntax_of
from harness.core.config import RunConfig
from harness.core.runner import cached_fit
from harness.core.store import latest_record

CORRUPTION = '''
def corrupt(labels, rng):
    """Replace every label by a uniform draw."""
    return rng.integers(0, 10, len(labels))
'''


def test_comments_docstrings_and_formatting_do_not_count_but_code_does():
    same = CORRUPTION.replace('"""Replace every label by a uniform draw."""', '"""Other words."""  # a comment')
    assert syntax_of(same) == syntax_of(CORRUPTION)
    assert syntax_of(CORRUPTION.replace("(0, 10, len(labels))", "(0, 10,\n        len(labels))")) == syntax_of(
        CORRUPTION
    )
    no_op = CORRUPTION.replace("return rng.integers(0, 10, len(labels))", "return labels")  # the planted edit
    assert syntax_of(no_op) != syntax_of(CORRUPTION)
    assert len(run_code_fingerprint()) == 16


def test_every_core_module_a_training_run_imports_is_fingerprinted_or_said_not_to_decide_numbers():
    script = "import sys, harness.core.train; print(' '.join(sorted(m for m in sys.modules if m.startswith('harness.core.'))))"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    # Not deciding a run's numbers: where its checkpoint goes, how figures are printed, and how the
    # optimizer's own code is hashed (that fingerprint is a part of the run key itself).
    not_deciding = {"checkpoint", "formatting", "optimizer_source"}
    modules = {name.removeprefix("harness.core.") for name in loaded}
    assert modules - set(RUN_CODE_MODULES) - not_deciding == set()


def fit(npz, **changes):
    config = RunConfig(data=f"npz:{npz}", model="mlp_1x512", n_train=64, n_test=32, max_passes=3, **changes)
    return cached_fit(config)


def test_an_edit_retrains_and_its_revert_is_answered_by_the_original_record_not_the_edited_one(
    tiny_npz, results, monkeypatch
):
    original = fit(tiny_npz)
    assert original["stamp"]["run_code"] == run_code_fingerprint() and not original["reused"]
    with monkeypatch.context() as edit:
        edit.setattr(runner, "run_code_fingerprint", lambda: "edited0000000000")
        edited = fit(tiny_npz)
    assert not edited["reused"] and edited["stamp"]["run_code"] == "edited0000000000"
    assert latest_record(edited["key"])["stamp"]["store_seq"] == edited["stamp"]["store_seq"]  # the newest
    reverted = fit(tiny_npz)
    assert reverted["reused"] and reverted["stamp"]["store_seq"] == original["stamp"]["store_seq"]


def test_a_record_made_before_records_carried_a_run_code_is_not_reused(tiny_npz, results):
    import json
    from pathlib import Path

    record = fit(tiny_npz)
    saved = json.loads(Path(record["path"]).read_text())
    del saved["stamp"]["run_code"]  # as older code wrote it
    Path(record["path"]).write_text(json.dumps(saved))
    assert latest_record(record["key"], code=run_code_fingerprint()) is None
    assert latest_record(record["key"])["model_sha256"] == record["model_sha256"]  # the report reads any code's
    assert not fit(tiny_npz)["reused"]


def test_a_checkpoint_written_by_other_code_is_not_resumed(tmp_path):
    config_values = {"model": "mlp_1x512"}
    state = {"passes": 1, "curves": {"loss": [1.0]}}
    RunCheckpoint(tmp_path / "k.pt", "k", run_code="edited0000000000").save(state, config_values)
    with pytest.warns(CheckpointIgnoredWarning, match="written by other harness code"):
        assert RunCheckpoint(tmp_path / "k.pt", "k", run_code=run_code_fingerprint()).load(config_values) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert RunCheckpoint(tmp_path / "k.pt", "k", run_code="edited0000000000").load(config_values)["passes"] == 1


def test_a_fresh_session_resumes_only_its_own_checkpoint_whatever_the_files_clock_says(tmp_path):
    import os
    import time

    config_values = {"model": "mlp_1x512"}
    state = {"passes": 1, "curves": {"loss": [1.0]}}
    RunCheckpoint(tmp_path / "k.pt", "k", fresh_since=1000.0).save(state, config_values)
    ahead = time.time() + 3600
    os.utime(tmp_path / "k.pt", (ahead, ahead))  # planted: a clock an hour ahead wrote it
    with pytest.warns(CheckpointIgnoredWarning, match="written before this fresh session"):
        assert RunCheckpoint(tmp_path / "k.pt", "k", fresh_since=2000.0).load(config_values) is None
    assert RunCheckpoint(tmp_path / "k.pt", "k", fresh_since=1000.0).load(config_values)["passes"] == 1
    assert RunCheckpoint(tmp_path / "k.pt", "k").load(config_values)["passes"] == 1  # not fresh: resumed
