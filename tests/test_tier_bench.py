"""`python -m harness bench --tier`: the commands it times and the summary it builds, without running pytest."""

import json
import sys

import pytest

from harness.bench import tier
from harness.bench.tier import bench_summary, measured, run_seconds, tier_command

CPU = {"device": "CPU, 2 cores", "gpu": False, "bf16_peak_tflops": None}


def test_the_timed_command_keeps_the_suites_default_order_and_the_baseline_asks_for_collection_order(tmp_path):
    common = dict(workers=2, runs_per_gpu=None, extra=["--data-dir=/data"])
    timed = tier_command("smoke", "claims/", tmp_path / "results", baseline=False, **common)
    assert timed[:3] == [sys.executable, "-m", "pytest"]
    assert timed[3:] == [
        "claims/",
        "--profile=smoke",
        f"--results-dir={tmp_path / 'results'}",
        "-n",
        "2",
        "--data-dir=/data",
    ]
    assert not any(word.startswith(("--claims-plan", "--claims-order")) for word in timed)
    baseline = tier_command("smoke", "claims/", tmp_path / "baseline-results", baseline=True, **common)
    assert "--claims-order=collected" in baseline
    assert not any(word.startswith("--claims-plan") for word in baseline)


def test_the_paper_tier_runs_the_gpu_tests_with_the_runs_per_gpu_given(tmp_path):
    command = tier_command("paper", "claims/", tmp_path, baseline=False, workers=None, runs_per_gpu=3, extra=())
    assert command[-3:] == ["-m", "gpu", "--runs-per-gpu=3"]
    assert "-n" not in command


def write_results(results, seconds_per_run, outcomes):
    """A results folder as a timed command leaves it: run records and one session file."""
    for index, seconds in enumerate(seconds_per_run):
        record = {
            "config": {"model": "mlp_1x512", "data": "cifar10"},
            "train_seconds": seconds,
            "eval_seconds": 1.0,
            "setup_seconds": None,
            "passes": 3,
            "n_train": 128,
        }
        (results / "runs" / f"r{index}").mkdir(parents=True)
        (results / "runs" / f"r{index}" / "run.json").write_text(json.dumps(record))
    (results / "sessions").mkdir(parents=True)
    tests = {f"test_{index}": {"outcome": outcome} for index, outcome in enumerate(outcomes)}
    (results / "sessions" / "0001-smoke.json").write_text(json.dumps({"tests": tests}))


def test_the_summary_sums_the_trained_runs_and_sets_the_baseline_run_beside_the_timed_one(tmp_path):
    write_results(tmp_path / "results", [9.0, 5.0], ["passed", "failed", "passed"])
    write_results(tmp_path / "baseline-results", [9.0, 5.0], ["passed", "failed", "passed"])
    command = tier_command(
        "smoke", "claims/", tmp_path / "results", baseline=False, workers=2, runs_per_gpu=None, extra=()
    )
    timed = measured(command, 8.0, 1, tmp_path / "results")
    assert timed["records"][0]["train_seconds"] == 9.0
    assert (timed["runs_trained"], timed["serial_seconds"], timed["side_by_side"]) == (2, 16.0, 2.0)
    assert timed["verdicts"] == {"failed": 1, "passed": 2}
    assert timed["command"].startswith("python -m pytest claims/ --profile=smoke")
    baseline_command = tier_command(
        "smoke", "claims/", tmp_path / "baseline-results", baseline=True, workers=2, runs_per_gpu=None, extra=()
    )
    baseline = measured(baseline_command, 12.0, 1, tmp_path / "baseline-results")

    summary = bench_summary("smoke", CPU, timed, baseline, None)
    assert "records" not in summary["timed"] and "records" not in summary["baseline_run"]
    assert summary["timed"]["wall_seconds"] == 8.0 and summary["training_tflop"] is None
    assert "--claims-order=collected" in summary["baseline_run"]["command"]
    assert json.loads(json.dumps(summary)) == summary  # what tier-bench.json holds
    text = "\n".join(summary["lines"])
    for line in (
        "tier bench: smoke tier on CPU, 2 cores",
        "runs trained: 2; claim tests: 1 failed, 2 passed",
        "baseline serial (the trained runs' own times summed, measured in this run): ",
        "  serial / wall = 2.00 (runs side by side, on average)",
        "baseline in collection order (python -m pytest claims/ ",
        "the history order is 1.50x its speed",
    ):
        assert line in text, text
    assert "plan" not in text
    assert "baseline in collection order" not in "\n".join(bench_summary("smoke", CPU, timed, None, None)["lines"])


def test_run_seconds_counts_training_evaluation_and_setup():
    assert run_seconds({"train_seconds": 2.0, "eval_seconds": 0.5, "setup_seconds": None}) == 2.5
    assert run_seconds({}) == 0.0


def test_the_gpu_line_gives_the_arithmetic_over_the_wall_and_the_share_of_the_peak(tmp_path):
    write_results(tmp_path / "results", [1.0], ["passed"])
    timed = measured(["python", "-m", "pytest"], 10.0, 0, tmp_path / "results")
    host = {"device": "1 x H100", "gpu": True, "bf16_peak_tflops": 1000}
    (line,) = [line for line in bench_summary("paper", host, timed, None, 500.0)["lines"] if line.startswith("GPU use")]
    assert "500.0 TFLOP of training arithmetic over the wall = 50.00 TFLOP/s, 5.00% of the 1000" in line


def test_tier_bench_refuses_a_folder_that_holds_records_already(tmp_path, monkeypatch, capsys):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "old.json").write_text("{}")
    monkeypatch.setattr(tier, "machine", lambda: CPU)
    with pytest.raises(SystemExit) as stopped:
        tier.main(["--tier", "smoke", "--out", str(tmp_path / "bench")])
    assert stopped.value.code == 2
    assert "is not empty: the bench trains every run into a fresh folder" in capsys.readouterr().err
