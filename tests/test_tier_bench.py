"""`python -m harness bench --tier`: a whole tier from one command, against the serial sum of its runs."""

import json
import subprocess
import sys

from test_plugin import setup_project

from harness.suite.tier_bench import run_seconds

ONE_HOLDS_ONE_FAILS = """
def test_holds(claim_run, claim_figure):
    run = claim_run("mlp_1x512", variant="true", max_passes=40)
    claim_figure("CH", "fitted", run["train_accuracy"], "== 1.0", run["outcome"] == "fitted")


def test_planted_failure(claim_run, claim_figure):
    run = claim_run("mlp_1x512", variant="true", seed=1, max_passes=40)
    claim_figure("CF", "planted: accuracy below zero", run["train_accuracy"], "< 0", run["train_accuracy"] < 0)
"""


def bench(pytester, tmp_path, *arguments):
    data = setup_project(pytester, tmp_path)
    pytester.makepyfile(test_bench=ONE_HOLDS_ONE_FAILS)
    pytester.makeini("[pytest]\nclaims_plan = run\n")  # as in the project: the plan is the default
    command = [sys.executable, "-m", "harness", "bench", "--tier", "smoke", "--tests", "test_bench.py"]
    command += ["--workers", "0", "--out", str(tmp_path / "bench"), *arguments, "--", f"--data-dir={data}"]
    return subprocess.run(command, cwd=pytester.path, capture_output=True, text=True, timeout=600)


def test_tier_bench_times_the_planned_command_and_sums_the_runs_it_trained(pytester, tmp_path):
    finished = bench(pytester, tmp_path, "--baseline-run")
    out = finished.stdout
    assert finished.returncode == 1, out + finished.stderr  # pytest's status: the planted failure fails
    summary = json.loads((tmp_path / "bench" / "tier-bench.json").read_text())
    planned = summary["planned"]
    assert "--claims-plan=run" in planned["command"] and "-m gpu" not in planned["command"]
    assert planned["runs_trained"] == 2
    assert planned["verdicts"] == {"failed": 1, "passed": 1}
    records = [json.loads(p.read_text()) for p in (tmp_path / "bench" / "results" / "runs").glob("*/*.json")]
    assert planned["serial_seconds"] == sum(run_seconds(record) for record in records) > 0
    assert planned["side_by_side"] == planned["serial_seconds"] / planned["wall_seconds"]
    assert 0 < planned["side_by_side"] < 1  # one worker, plus pytest's and the planner's own time
    baseline = summary["baseline_run"]
    assert "--claims-plan=off" in baseline["command"] and baseline["runs_trained"] == 2
    assert "claims plan" not in (tmp_path / "bench" / "baseline.log").read_text()  # not planned, ini or no ini
    assert summary["training_tflop"] is None  # no GPU: no utilisation figure
    alone = summary["estimated_alone"]  # the plan of the same two runs, estimated one at a time
    assert (alone["runs"], alone["without_estimate"], alone["why"]) == (2, 0, "")
    assert alone["seconds"] > 0
    assert "claims plan" in (tmp_path / "bench" / "pytest.log").read_text()
    for line in (
        "tier bench: smoke tier on CPU, ",
        "runs trained: 2; claim tests: 1 failed, 1 passed",
        "baseline serial (the trained runs' own times summed, measured in this run): ",
        "  serial / wall = ",
        "baseline without the plan (",
        "the plan's estimate of the runs one at a time, each alone: ",
        "  estimated alone / wall = ",
    ):
        assert line in out, out


def test_tier_bench_refuses_a_folder_that_holds_records_already(pytester, tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "old.json").write_text("{}")
    finished = bench(pytester, tmp_path)
    assert finished.returncode == 2
    assert "is not empty: the bench trains every run into a fresh folder" in finished.stderr
