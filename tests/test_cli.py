"""The command line, driven in a subprocess as a user would."""

import json
import os
import subprocess
import sys

import pytest


def harness(*args, env_extra=None, cwd=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_models_lists_the_exact_paper_counts():
    result = harness("models")
    assert result.returncode == 0
    assert "1,649,402" in result.stdout and "1,209,866" in result.stdout
    assert "MISMATCH" not in result.stdout


def test_fit_prints_progress_and_ends_with_a_json_summary(tiny_npz, results):
    result = harness(
        "fit", "--model", "mlp_1x512", "--data", f"npz:{tiny_npz}", "--variant", "random",
        "--seed", "0", "--max-passes", "3", "--device", "cpu", "--json",
    )
    assert result.returncode == 0, result.stderr
    assert "pass    1/3" in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for field in ("outcome", "steps_to_fit", "train_accuracy", "test_accuracy", "data_source"):
        assert field in summary
    assert summary["data_source"] == "arrays file tiny.npz"
    assert summary["config"]["variant"] == "random"


def test_fit_writes_records_where_the_option_says(tiny_npz, tmp_path):
    target = tmp_path / "elsewhere"
    result = harness("fit", "--data", f"npz:{tiny_npz}", "--max-passes", "1", "--device", "cpu", "--quiet",
                     "--results-dir", str(target))
    assert result.returncode == 0, result.stderr
    assert len(list((target / "runs").glob("*/*.json"))) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "npz:/nonexistent/x.npz"], "not found"),
        (["--model", "resnet"], "unknown model"),
        (["--variant", "partial", "--p", "1.5"], "corruption level must lie in [0, 1]"),
        (["--optimizer", "nope"], "neither a built-in"),
        (["--data", "cifar10:/nonexistent/root"], "HARNESS_DATA_DIR"),
    ],
)
def test_bad_input_is_one_clear_line_and_leaves_no_record(tiny_npz, results, args, message):
    base = ["fit", "--data", f"npz:{tiny_npz}", "--max-passes", "1", "--device", "cpu"]
    result = harness(*base, *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not (results / "runs").exists()


def test_unknown_variant_is_refused_by_the_parser(tiny_npz):
    result = harness("fit", "--data", f"npz:{tiny_npz}", "--variant", "noise")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_malformed_arrays_file_is_refused(tmp_path, results):
    import numpy as np

    bad = tmp_path / "bad.npz"
    np.savez(bad, train_x=np.zeros((4, 28, 28), np.float32), train_y=np.zeros(4, int),
             test_x=np.zeros((2, 28, 28), np.uint8), test_y=np.zeros(2, int))
    result = harness("fit", "--data", f"npz:{bad}", "--max-passes", "1", "--device", "cpu")
    assert result.returncode == 2 and "must be uint8" in result.stderr


def test_bench_prints_the_baseline_and_ours_with_their_ratio(tiny_npz):
    result = harness("bench", "--data", f"npz:{tiny_npz}", "--models", "mlp_1x512", "--steps", "3",
                     "--workers", "0", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "baseline: DataLoader" in result.stdout
    row = [line for line in result.stdout.splitlines() if line.startswith("mlp_1x512")][0]
    usual, resident, ratio = (float(v.replace(",", "")) for v in row.split()[1:4])
    assert ratio == pytest.approx(resident / usual, rel=0.02)


def test_bench_times_batched_runs_against_one_by_one(tiny_npz):
    result = harness("bench", "--data", f"npz:{tiny_npz}", "--models", "mlp_1x512", "--steps", "2",
                     "--workers", "0", "--device", "cpu", "--batched", "2")
    assert result.returncode == 0, result.stderr
    assert "2 runs of mlp_1x512" in result.stdout and "one by one" in result.stdout


def test_bench_times_a_sampled_training_set_check_against_the_whole_set(tiny_npz):
    result = harness("bench", "--data", f"npz:{tiny_npz}", "--models", "mlp_1x512", "--steps", "2",
                     "--workers", "0", "--device", "cpu", "--fit", "mlp_1x512", "--fit-check-fractions", "1.0", "0.25")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("mlp_1x512") and " fp32 " in line]
    assert [(row[1], row[2], row[4]) for row in rows] == [("eager", "1", "fitted"), ("eager", "0.25", "fitted")]
    assert "check 0.25 vs whole set every pass" in result.stdout and "same pass to fit" in result.stdout


def test_bench_refuses_a_graph_fit_without_cuda(tiny_npz):
    result = harness("bench", "--data", f"npz:{tiny_npz}", "--models", "mlp_1x512", "--steps", "2",
                     "--workers", "0", "--device", "cpu", "--fit", "--fit-loops", "graph")
    assert result.returncode == 2 and "graph loop needs CUDA" in result.stderr
