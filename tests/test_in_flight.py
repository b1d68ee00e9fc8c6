"""Runs in flight at once (harness.bench.in_flight): on a CPU, small and fast."""

import time

import pytest

from harness.bench import in_flight, loops, throughput
from harness.bench.in_flight import in_flight_throughput


@pytest.fixture(scope="module")
def small_set():
    return throughput.synthetic_images(2_048)


def test_a_failed_run_is_reported_with_its_text_and_nothing_hangs(small_set):
    images, labels = small_set  # run 1 raises after its warm-up; run 0 must still be timed
    started = time.monotonic()
    result = in_flight_throughput("mlp_1x512", 2, "cpu", 5, "fp32", images, labels, timeout_s=60, fail_run=1)
    assert time.monotonic() - started < 30
    assert result.failures == ["run 1: RuntimeError: planted failure in run 1"]
    assert len(result.per_run) == 1 and result.images_per_second > 0  # the other run still reports


def test_bf16_on_a_cpu_is_refused(small_set):
    images, labels = small_set
    with pytest.raises(ValueError, match="bf16 .* needs a CUDA device"):
        in_flight_throughput("mlp_1x512", 1, "cpu", 5, "bf16", images, labels)


def test_one_and_two_runs_in_flight_give_a_result_each_and_a_row_each(capsys, monkeypatch):
    measured = []  # one real measurement per count (spawning costs seconds), seen as loops.main gets it

    def spy(*args, **kwargs):
        measured.append(real(*args, **kwargs))
        return measured[-1]

    real = in_flight.in_flight_throughput
    monkeypatch.setattr(in_flight, "in_flight_throughput", spy)
    argv = ["--in-flight", "1", "2", "--models", "mlp_1x512", "--data", "synthetic", "--steps", "5", "--device", "cpu"]
    assert loops.main(argv) == 0
    assert [result.runs for result in measured] == [1, 2]
    for result in measured:
        assert result.failures == [] and result.images_per_second > 0
        assert len(result.per_run) == result.runs and all(rate > 0 for rate in result.per_run)
        assert result.peak_mib is None  # no device memory on a CPU
    out = capsys.readouterr().out
    assert "in flight on CPU" in out and "baseline: 1 run in flight, measured in this run" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("mlp_1x512")]
    assert [row[1] for row in rows] == ["1", "2"]
    assert "FAILED" not in out
    assert "best for mlp_1x512: " in out and "the single run)" in out


def test_bench_measures_the_baseline_when_1_is_not_asked_for(capsys, monkeypatch):
    asked = []

    def fake(model_name, runs, *args, **kwargs):  # linear scaling, no processes
        asked.append(runs)
        return in_flight.InFlightResult(runs=runs, images_per_second=100.0 * runs, per_run=[100.0] * runs)

    monkeypatch.setattr(in_flight, "in_flight_throughput", fake)
    argv = ["--in-flight", "4", "--models", "mlp_1x512", "--data", "synthetic", "--steps", "5", "--device", "cpu"]
    assert loops.main(argv) == 0
    assert asked == [1, 4]
    assert "best for mlp_1x512: 4 in flight (4.00 the single run)" in capsys.readouterr().out


def test_bench_refuses_bf16_in_flight_on_a_cpu(capsys):
    argv = ["--in-flight", "1", "--precision", "bf16", "--data", "synthetic", "--device", "cpu"]
    assert loops.main(argv) == 2
    assert "bf16" in capsys.readouterr().err


def test_bench_points_tier_to_the_harness_command(capsys):
    assert loops.main(["--tier", "smoke"]) == 2
    assert "python -m harness bench --tier" in capsys.readouterr().err
