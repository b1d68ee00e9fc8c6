"""Claims under faults: a run that diverges, a results folder that cannot be written, a second session.

Each test drives the plugin in an in-process pytester session on a tiny arrays file (128
images, MLP 1x512), as tests/test_plugin.py does, and reads what a user
reads: the terminal output and the files left in the results folder.
"""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from support import EnvironmentKept, write_arrays_file

from harness.core.config import RunConfig
from harness.suite.fixtures import unfitted_run_line
from harness.suite.summary import note_run, runs_summary_lines

# Three tests, three runs: seed 0 is shared, so one test reuses what the other
# trained; the third run's learning rate makes it diverge (at pass 6 on a CPU).
CLAIMS = """
from harness.suite.fixtures import require_fitted


def test_seed_0(claim_run, claim_figure):
    record = claim_run("mlp_1x512", variant="true", max_passes=40, seed=0)
    fitted = record["outcome"] == "fitted"
    claim_figure("CX", "train accuracy, seed 0", record["train_accuracy"], "== 1.0", fitted, check=False)
    require_fitted(record, "CX: seed 0")


def test_both_seeds(claim_run, claim_figure):
    for seed in (0, 1):
        record = claim_run("mlp_1x512", variant="true", max_passes=40, seed=seed)
        claim_figure("CX", f"passes to fit, seed {seed}", record["passes"], "reported", True)


def test_fits_at_a_huge_learning_rate(claim_run, claim_figure):
    record = claim_run("mlp_1x512", variant="true", lr=1e4, max_passes=20)
    fitted = record["outcome"] == "fitted"
    claim_figure("CD", "train accuracy", record["train_accuracy"], "== 1.0", fitted, check=False)
    require_fitted(record, "CD: mlp_1x512 seed 0")
"""
FITTING = ["-k", "seed"]  # the two tests whose runs fit


def claims_project(pytester, tmp_path) -> list[str]:
    """The repository's conftest, a tiny cifar10 arrays file and one claims file; the options to run it."""
    shutil.copy(Path(__file__).resolve().parents[1] / "conftest.py", pytester.path / "conftest.py")
    data = tmp_path / "data"
    data.mkdir()
    write_arrays_file(data / "cifar10-tiny.npz", n_train=128, n_test=64)
    pytester.makepyfile(test_claim=CLAIMS)
    return [f"--data-dir={data}", "--profile=smoke", "-p", "no:xdist", "-v"]  # -v: the figure lines too


def run_inprocess(pytester, *args):
    """A pytest session in this process (no interpreter to start, torch already imported); the
    HARNESS_* variables its plugin sets from --data-dir and --results-dir are restored after it."""
    with EnvironmentKept():
        return pytester.runpytest_inprocess(*args)


def run_records(results: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((results / "runs").glob("*/*.json"))]


def verdict_lines(result) -> list[str]:
    return [line for line in result.outlines if re.match(r"C[XD]\s+(holds|FAILS)\s", line)]


def test_a_diverged_run_fails_in_one_line_and_a_second_session_trains_nothing_with_the_same_verdicts(
    pytester, tmp_path
):
    options = claims_project(pytester, tmp_path)
    results = tmp_path / "results"
    first = run_inprocess(pytester, *options, f"--results-dir={results}")
    diverged_report = [
        "*_ test_fits_at_a_huge_learning_rate[[]paper_sgd[]] _*",
        # the whole report: a loss that explodes is diverged before it reaches NaN (100x its start)
        "CD: mlp_1x512 seed 0 diverged: training loss * in pass * is over 100 times its start * (lr 10000)",
        "*- Captured stdout call -*",
    ]
    first.stdout.fnmatch_lines(
        [
            *diverged_report,
            "*claim figures*",
            "CD   FAILS  train accuracy: *",
            f"runs: 3 trained, 0 reused from {results}; their time: *",
            "*1 failed, 2 passed*",
        ]
    )
    output = first.stdout.str()
    assert "Traceback" not in output and "require_fitted(record" not in output  # no code, no assertion internals
    records = run_records(results)
    (diverged,) = [record for record in records if record["outcome"] == "diverged"]
    losses = diverged["curves"]["loss"]  # the curves up to the pass that diverged
    assert len(losses) == diverged["passes"] < 20 and losses[0] == losses[0]
    assert not losses[-1] <= 100 * diverged["initial_loss"]  # NaN, or finite past 100x its start
    assert f"in pass {diverged['passes']} is over 100 times its start" in output and "(lr 10000)" in output

    second = run_inprocess(pytester, *options, f"--results-dir={results}")
    second.stdout.fnmatch_lines([*diverged_report, f"runs: 0 trained, 3 reused from {results}", "*1 failed, 2 passed*"])
    assert run_records(results) == records  # not one record added or rewritten
    assert verdict_lines(second) == verdict_lines(first) and len(verdict_lines(first)) == 6  # 4 figures, 2 claims
    sessions = sorted((results / "sessions").glob("*.json"))
    assert [json.loads(path.read_text())["runs"] for path in sessions] == [
        {"trained": 3, "used": 3},
        {"trained": 0, "used": 3},
    ]


def expect_unsaved_session(result, results: Path, reason: str) -> None:
    """Verdicts and figures on the terminal; the unsaved records and session each said once, in one line."""
    result.stdout.fnmatch_lines(
        [
            "CX   holds  passes to fit, seed 0: *",
            "CX   holds  train accuracy, seed 0: 1*",
            f"runs: 2 trained, 0 reused from {results}; their time: *",
            f"2 run records could not be saved: results folder {results} {reason}*",
            f"claim figures not saved: cannot write a session file in {results / 'sessions'} *",
            "*2 passed*",
        ]
    )
    output = result.stdout.str()
    assert output.count("could not be saved") == 1 and "ResultsNotSavedWarning" not in output
    assert "INTERNALERROR" not in output and result.ret == 0


def test_results_path_that_cannot_be_written_still_reports_every_verdict_and_figure(pytester, tmp_path):
    """A file where the results folder should be: nothing can be written under it, even by root."""
    options = claims_project(pytester, tmp_path)
    results = tmp_path / "results"
    results.write_text("not a folder")
    result = run_inprocess(pytester, *options, *FITTING, f"--results-dir={results}")
    expect_unsaved_session(result, results, "cannot be written")
    assert results.read_text() == "not a folder"


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into a read-only folder regardless of its mode"
)
def test_read_only_results_folder_still_reports_every_verdict_and_figure(pytester, tmp_path):
    options = claims_project(pytester, tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(0o555)
    try:
        result = run_inprocess(pytester, *options, *FITTING, f"--results-dir={results}")
    finally:
        results.chmod(0o755)
    expect_unsaved_session(result, results, "is read-only")
    assert list(results.iterdir()) == []


# --- the one-line report and the runs summary, without training ---------------------------------


@pytest.mark.parametrize(
    "outcome, message, optimizer, expected",
    [
        (
            "diverged",
            "training loss became nan in pass 3",
            "paper_sgd",
            "C1: inception seed 0 diverged: training loss became nan in pass 3 (lr 0.1)",
        ),
        (
            "out_of_budget",
            "training accuracy 99.8000% after 150 passes",
            "adam",
            "C1: inception seed 0 did not fit: training accuracy 99.8000% after 150 passes (lr 0.001)",
        ),
        (
            "diverged",
            "training loss became inf in pass 1",
            "mypkg.opt:Lion",
            "C1: inception seed 0 diverged: training loss became inf in pass 1 (the optimizer factory's own default lr)",
        ),
        (
            "diverged",
            "training loss became inf in pass 1",
            "torch.optim:Adagrad(lr=0.05)",
            "C1: inception seed 0 diverged: training loss became inf in pass 1 (lr 0.05, set in the optimizer spec)",
        ),
    ],
    ids=["paper_lr", "builtin_default_lr", "factory_default_lr", "spec_lr"],
)
def test_an_unfitted_run_reads_as_one_line_with_its_initial_learning_rate(outcome, message, optimizer, expected):
    record = {
        "outcome": outcome,
        "message": message,
        "config": RunConfig(model="inception", optimizer=optimizer).to_dict(),
    }
    assert unfitted_run_line(record, "C1: inception seed 0") == expected


def test_runs_summary_counts_each_run_once_and_each_reason_for_unsaved_records_once(tmp_path):
    runs = {}
    read_only = "results folder R is read-only (Permission denied): record not saved"
    # Run a is used by two tests; unsaved, it is trained by both: still one run, and one unsaved record.
    for key, reused, saved in [("a", False, False), ("a", False, False), ("b", True, True), ("c", False, False)]:
        note_run(runs, {"key": key, "reused": reused, "saved": saved, "save_error": None if saved else read_only})
    assert runs_summary_lines(runs, tmp_path) == [
        f"runs: 2 trained, 1 reused from {tmp_path}",
        f"2 run records could not be saved: {read_only}",
    ]


def test_runs_summary_says_where_the_trained_runs_spent_their_time(tmp_path):
    runs = {}
    note_run(
        runs,
        {
            "key": "a",
            "reused": False,
            "saved": True,
            "save_error": None,
            "seconds": {"training": 10.4, "evaluation": 2.0, "setup": 0.0},
        },
    )
    note_run(runs, {"key": "a", "reused": True, "saved": True, "save_error": None, "seconds": None})
    note_run(
        runs,
        {
            "key": "b",
            "reused": False,
            "saved": True,
            "save_error": None,
            "seconds": {"training": 5.0, "evaluation": 1.2, "setup": 0.5},
        },
    )
    note_run(runs, {"key": "c", "reused": True, "saved": True, "save_error": None, "seconds": None})
    assert runs_summary_lines(runs, tmp_path) == [
        f"runs: 2 trained, 1 reused from {tmp_path}; their time: 15 s training passes, 3 s evaluation, "
        "0 s graph capture (summed over workers)"
    ]
