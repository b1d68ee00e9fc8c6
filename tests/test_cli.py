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
        "fit",
        "--model",
        "mlp_1x512",
        "--data",
        f"npz:{tiny_npz}",
        "--variant",
        "random",
        "--seed",
        "0",
        "--max-passes",
        "3",
        "--device",
        "cpu",
        "--json",
    )
    assert result.returncode == 3, result.stderr  # out_of_budget: random labels are not fitted in 3 passes
    assert "pass    1/3" in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for field in ("outcome", "steps_to_fit", "train_accuracy", "test_accuracy", "data_source"):
        assert field in summary
    assert summary["data_source"] == "arrays file tiny.npz"
    assert summary["config"]["variant"] == "random"


def test_fit_writes_records_where_the_option_says(tiny_npz, tmp_path):
    target = tmp_path / "elsewhere"
    result = harness(
        "fit",
        "--data",
        f"npz:{tiny_npz}",
        "--max-passes",
        "1",
        "--device",
        "cpu",
        "--quiet",
        "--results-dir",
        str(target),
    )
    assert result.returncode in (0, 3), result.stderr  # fitted or out of budget
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
    np.savez(
        bad,
        train_x=np.zeros((4, 28, 28), np.float32),
        train_y=np.zeros(4, int),
        test_x=np.zeros((2, 28, 28), np.uint8),
        test_y=np.zeros(2, int),
    )
    result = harness("fit", "--data", f"npz:{bad}", "--max-passes", "1", "--device", "cpu")
    assert result.returncode == 2 and "must be uint8" in result.stderr


def test_bench_prints_the_baseline_and_ours_with_their_ratio(tiny_npz):
    result = harness(
        "bench",
        "--data",
        f"npz:{tiny_npz}",
        "--models",
        "mlp_1x512",
        "--steps",
        "3",
        "--workers",
        "0",
        "--device",
        "cpu",
    )
    assert result.returncode == 0, result.stderr
    assert "baseline: DataLoader" in result.stdout
    row = [line for line in result.stdout.splitlines() if line.startswith("mlp_1x512")][0]
    usual, resident, ratio = (float(v.replace(",", "")) for v in row.split()[1:4])
    assert ratio == pytest.approx(resident / usual, rel=0.02)


def test_bench_times_batched_runs_against_one_by_one(tiny_npz):
    result = harness(
        "bench",
        "--data",
        f"npz:{tiny_npz}",
        "--models",
        "mlp_1x512",
        "--steps",
        "2",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--batched",
        "2",
    )
    assert result.returncode == 0, result.stderr
    assert "2 runs of mlp_1x512" in result.stdout and "one by one" in result.stdout


def test_bench_times_a_sampled_training_set_check_against_the_whole_set(tiny_npz):
    result = harness(
        "bench",
        "--data",
        f"npz:{tiny_npz}",
        "--models",
        "mlp_1x512",
        "--steps",
        "2",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--fit",
        "mlp_1x512",
        "--fit-check-fractions",
        "1.0",
        "0.25",
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("mlp_1x512") and " fp32 " in line]
    assert [(row[1], row[2], row[4]) for row in rows] == [("eager", "1", "fitted"), ("eager", "0.25", "fitted")]
    assert "check 0.25 vs whole set every pass" in result.stdout and "same pass to fit" in result.stdout


def test_bench_refuses_a_graph_fit_without_cuda(tiny_npz):
    result = harness(
        "bench",
        "--data",
        f"npz:{tiny_npz}",
        "--models",
        "mlp_1x512",
        "--steps",
        "2",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--fit",
        "--fit-loops",
        "graph",
    )
    assert result.returncode == 2 and "graph loop needs CUDA" in result.stderr


@pytest.mark.parametrize(
    "args, outcome, status",
    [
        (["--target-accuracy", "0.2", "--max-passes", "30"], "fitted", 0),
        (["--variant", "random", "--max-passes", "1"], "out_of_budget", 3),
        (["--lr", "1e30", "--max-passes", "3"], "diverged", 4),
        (["--lr", "0", "--max-passes", "3"], "stalled", 6),
    ],
)
def test_fit_exits_with_a_status_per_outcome(tiny_npz, results, args, outcome, status):
    """Scripts tell a fitted run from one out of budget or diverged by the exit status alone."""
    from harness.__main__ import main

    assert main(["fit", "--data", f"npz:{tiny_npz}", "--device", "cpu", "--quiet", *args]) == status
    record = json.loads(next((results / "runs").glob("*/*.json")).read_text())
    assert record["outcome"] == outcome


def test_a_run_that_cannot_fit_exits_5(tiny_npz, results):
    """Two identical training images with different labels: no optimizer reaches 100%."""
    import numpy as np

    from harness.__main__ import main

    arrays = dict(np.load(tiny_npz))
    arrays["train_x"][1], arrays["train_y"][1] = arrays["train_x"][0], (arrays["train_y"][0] + 1) % 10
    np.savez(tiny_npz, **arrays)
    assert main(["fit", "--data", f"npz:{tiny_npz}", "--device", "cpu", "--quiet", "--max-passes", "1"]) == 5


def test_every_outcome_a_record_can_have_has_its_own_exit_status():
    from harness.__main__ import EXIT_STATUSES, USAGE_ERROR
    from harness.core.store import REUSABLE

    # "interrupted" is the signal's status, 128 + its number; "error" is not reused but has its own status
    assert set(EXIT_STATUSES) == set(REUSABLE) | {"error"}
    assert len(set(EXIT_STATUSES.values()) | {1, USAGE_ERROR}) == len(EXIT_STATUSES) + 2


def test_the_help_lists_every_command_and_the_exit_statuses(capsys):
    import harness.__main__ as cli

    assert all(command in cli.__doc__.splitlines()[0] for command in ("fit", "report", "sessions", "bench"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fit", "--help"])
    assert exit_info.value.code == 0
    shown = capsys.readouterr().out
    for outcome, status in cli.EXIT_STATUSES.items():
        assert f"{status}  {outcome}" in shown and f"{status} {outcome}" in cli.__doc__.replace("\n", " ")


@pytest.fixture
def start_fit(tmp_path):
    """Function: fit arguments -> a running `harness fit` (results under tmp_path); killed if a test fails."""
    started = []

    def start(args):
        env = dict(os.environ, HARNESS_RESULTS_DIR=str(tmp_path / "results"))
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "harness", "fit", *args],
                stderr=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def _first_pass(process) -> tuple[int, list[str]]:
    """The number of the first pass a run shows, with the stderr lines up to it."""
    seen = []
    for line in process.stderr:
        seen.append(line.rstrip("\n"))
        if line.startswith("pass "):
            return int(line.split()[1].split("/")[0]), seen
    raise AssertionError(f"no pass shown: {seen}")


def _stop_after(process, passes: int, signal_number: int) -> tuple[int, list[str]]:
    """Wait for the progress line of pass `passes`, send the signal; (exit status, stderr lines)."""
    seen = []
    for line in process.stderr:
        seen.append(line.rstrip("\n"))
        if line.startswith(f"pass {passes:>4}/"):
            process.send_signal(signal_number)
            break
    seen += process.stderr.read().splitlines()
    return process.wait(timeout=60), seen


def test_a_stopped_fit_says_where_it_stopped_and_how_it_resumes(tiny_npz, tmp_path, start_fit):
    """SIGINT: exit 130, one line (no traceback) with the pass and the resuming command; the resumed
    run starts after that pass. SIGTERM: the same through the same path, exit 143, no stale live log."""
    import shlex
    import signal

    results = tmp_path / "results"
    args = ["--data", f"npz:{tiny_npz}", "--variant", "random", "--max-passes", "5000", "--device", "cpu"]
    status, lines = _stop_after(start_fit(args), 3, signal.SIGINT)
    assert status == 130, lines
    assert not any("Traceback" in line for line in lines), lines
    stopped = [line for line in lines if line.startswith("interrupted")]
    assert len(stopped) == 1, lines
    passes = int(stopped[0].split("after pass ")[1].split(" ")[0])
    assert passes >= 3
    command = shlex.split(stopped[0].split("resume with: ")[1])
    assert command[:4] == ["python", "-m", "harness", "fit"] and command[4:] == args
    assert [json.loads(p.read_text())["outcome"] for p in results.glob("runs/*/*.json")] == ["interrupted"]

    resumed = start_fit(command[4:])
    first, shown = _first_pass(resumed)
    assert first in (passes, passes + 1), shown  # from the checkpoint of the last pass, or the one before
    status, lines = _stop_after(resumed, first + 1, signal.SIGTERM)
    assert status == 143, lines
    assert not any("Traceback" in line for line in lines), lines
    assert any(line.startswith("interrupted") and "resume with: " in line for line in lines), lines
    assert not list(results.glob("live/*.log"))  # the live log went with the run
    assert list(results.glob("checkpoints/*.pt"))  # and its state stayed for the next attempt


def test_fit_progress_names_the_optimizer_and_lr_and_the_time_left_at_most(tiny_npz, results):
    import re

    result = harness(
        "fit",
        *("--model", "mlp_1x512", "--data", f"npz:{tiny_npz}", "--variant", "random", "--seed", "0"),
        *("--max-passes", "3", "--device", "cpu", "--optimizer", "adam", "--lr", "0.001"),
    )
    assert result.returncode in (0, 3), result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("pass ")]
    assert len(progress) == 3, result.stderr
    pattern = r"train \d\.\d{4}.* · adam lr (0\.\d+|\de-\d+) · <= \d+(\.\d)? (s|min|h) left$"
    for line in progress:
        assert re.search(pattern, line), line
    assert " · adam lr 0.001 · " in progress[0]  # the scheduled lr of the pass: it decays from --lr
    assert progress[-1].endswith("<= 0.0 s left")  # the last pass: nothing left to max_passes


def test_the_time_left_is_the_mean_pass_time_times_the_passes_left():
    from harness.core.formatting import fmt_duration, fmt_time_left, fmt_train_reading

    assert fmt_time_left([1.0, 3.0], 90) == "<= 3.0 min left"  # the mean (2 s), not the last pass (4.5 min)
    assert fmt_time_left([1.0, 3.0], 90) != f"<= {fmt_duration(3.0 * 90)} left"  # planted: the last pass's time
    assert fmt_time_left([], 5) == ""  # nothing timed yet
    assert [fmt_duration(s) for s in (0.42, 12.4, 186.0, 9000.0)] == ["0.4 s", "12 s", "3.1 min", "2.5 h"]
    state = {"train_accuracy": 0.5, "pass": 2, "max_passes": 10, "lr": 0.01}
    assert fmt_train_reading(state) == "0.5000"  # the store's live log calls it so
    assert fmt_train_reading(state, optimizer="Lion", pass_seconds=[2.0, 4.0]) == "0.5000 · Lion lr 0.01 · <= 24 s left"


def test_the_docstring_gives_every_command_one_line():
    import harness.__main__ as cli

    listed = [line.split()[0] for line in cli.__doc__.split("\n\n")[1].splitlines()]
    assert listed == ["fit", "models", "bench", "report", "sessions", "theory-bench"]
    assert set(listed) == {"fit", "models", *cli.FORWARDED}
