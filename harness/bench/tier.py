"""Time a whole claims tier from one command: `python -m harness bench --tier smoke|paper`.

What it runs: `python -m pytest claims/ --profile=TIER` (with `-m gpu` for
the paper tier), into a fresh results folder, so every run the tier needs
is trained, with the workers given (`--workers N` is pytest-xdist's -n;
`--runs-per-gpu K` the suite's). The timed command runs the tests in the
history order, the suite's default: longest first, by the seconds their
runs took in the newest session file of the profile. Its output goes to
the terminal and to `pytest.log`.

What it reports, measured in the same run:
- the wall time of the one command, its exit status and the verdicts
  (claim tests passed, failed, skipped);
- the named baseline "serial": the sum of the trained runs' own times
  (training passes, evaluation and set-up, each measured in the process
  that trained it, while the others trained beside it); serial / wall is
  how many ran side by side on average. That is the speed-up over one run
  at a time only where runs do not slow each other (a CPU core per
  worker): on a shared GPU each run's own time grows with the others;
- with `--baseline-run`, also a baseline run that keeps pytest's
  collection order (`--claims-order=collected`; the same tier and workers,
  another fresh folder), timed the same way, and the ratio of the two walls;
- on a GPU, the training arithmetic (passes x training images x FLOPs per
  image, harness.bench.throughput.training_flops_per_image) over the wall, in
  TFLOP/s and as a share of the device's dense bf16 peak (data sheet):
  how much of the GPU the tier used. Evaluation is not counted.

Everything lands in `--out` (default `tier-bench/TIER-UTCSTAMP`): the
records (`results/`), the logs, and `tier-bench.json` with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from harness.core.formatting import fmt_duration
from harness.core.record import write_json_atomic

TIERS = ("smoke", "paper")
SUMMARY_FILE = "tier-bench.json"


def tier_command(tier: str, tests: str, results: Path, *, baseline: bool, workers, runs_per_gpu, extra) -> list[str]:
    """The pytest command line of one timed run of `tier` (a list for subprocess).

    The timed command keeps the suite's default order (the history order);
    the baseline asks for pytest's collection order.
    """
    command = [sys.executable, "-m", "pytest", tests, f"--profile={tier}", f"--results-dir={results}"]
    if tier == "paper":
        command += ["-m", "gpu"]
    if baseline:
        command.append("--claims-order=collected")
    if workers is not None:
        command += ["-n", str(workers)]
    if runs_per_gpu is not None:
        command.append(f"--runs-per-gpu={runs_per_gpu}")
    return command + list(extra)


def timed_run(command: list[str], log: Path, cwd: Path) -> tuple[float, int]:
    """(wall seconds, exit status) of `command`, its output shown and written to `log` line by line."""
    started = time.perf_counter()
    with open(log, "w") as stream:
        child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in child.stdout:
            sys.stdout.write(line)
            stream.write(line)
        status = child.wait()
    return time.perf_counter() - started, status


def trained_runs(results: Path) -> list[dict]:
    """Every run record under `results/runs` (a fresh folder: each was trained by the timed command)."""
    return [json.loads(path.read_text()) for path in sorted((results / "runs").glob("*/*.json"))]


def run_seconds(record: dict) -> float:
    """A run's own time: training passes + evaluation + set-up (graph capture), seconds."""
    return sum(record.get(part) or 0.0 for part in ("train_seconds", "eval_seconds", "setup_seconds"))


def verdicts(results: Path) -> dict[str, int]:
    """Claim tests by outcome ("passed", "failed", "skipped", ...), from the session file of the timed command."""
    counts: dict[str, int] = {}
    for path in sorted((results / "sessions").glob("*.json")):
        for test in json.loads(path.read_text()).get("tests", {}).values():
            outcome = test.get("outcome") or "unknown"
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def training_tflop(records: list[dict]) -> float:
    """The runs' training arithmetic, TFLOP: passes x training images x FLOPs per image of each run's model."""
    from harness.bench.throughput import training_flops_per_image

    per_image: dict[tuple, float] = {}
    total = 0.0
    for record in records:
        # MNIST is the suite's one grey dataset; the channels change the first layer's FLOPs only
        channels = 1 if "mnist" in str(record["config"].get("data", "")).lower() else 3
        model = record["config"]["model"]
        if (model, channels) not in per_image:
            per_image[model, channels] = training_flops_per_image(model, channels)
        total += (record.get("passes") or 0) * (record.get("n_train") or 0) * per_image[model, channels]
    return total / 1e12


def measure(tier, tests, folder: Path, cwd: Path, *, baseline: bool, workers, runs_per_gpu, extra) -> dict:
    """Run the tier once into `folder` and return what was measured (see the module docstring)."""
    results = folder / ("baseline-results" if baseline else "results")
    command = tier_command(
        tier, tests, results, baseline=baseline, workers=workers, runs_per_gpu=runs_per_gpu, extra=extra
    )
    wall, status = timed_run(command, folder / ("baseline.log" if baseline else "pytest.log"), cwd)
    return measured(command, wall, status, results)


def measured(command: list[str], wall: float, status: int, results: Path) -> dict:
    """What one timed command gave: its wall and exit status, the runs it trained into `results`, their verdicts."""
    records = trained_runs(results)
    serial = sum(run_seconds(record) for record in records)
    return {
        "command": " ".join(["python", *command[1:]]),
        "wall_seconds": wall,
        "exit_status": status,
        "runs_trained": len(records),
        "serial_seconds": serial,
        "side_by_side": serial / wall if wall > 0 else None,
        "verdicts": verdicts(results),
        "records": records,
    }


def machine() -> dict:
    """The device the tier trains on, in words, and the bf16 dense peak where the data sheet table has it."""
    import torch

    from harness.bench.throughput import peak_tflops

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        peak = peak_tflops(name, "bf16")
        return {"device": f"{torch.cuda.device_count()} x {name}", "gpu": True, "bf16_peak_tflops": peak}
    return {"device": f"CPU, {os.cpu_count()} cores", "gpu": False, "bf16_peak_tflops": None}


def report_lines(tier: str, host: dict, timed: dict, baseline: dict | None, tflop: float | None) -> list[str]:
    """The bench's summary for people: wall, verdicts, the serial baseline and the ratios."""
    outcome = ", ".join(f"{count} {name}" for name, count in sorted(timed["verdicts"].items())) or "none recorded"
    lines = [
        f"tier bench: {tier} tier on {host['device']}",
        f"command: {timed['command']}",
        f"wall: {fmt_duration(timed['wall_seconds'])} (exit status {timed['exit_status']}); "
        f"runs trained: {timed['runs_trained']}; claim tests: {outcome}",
        f"baseline serial (the trained runs' own times summed, measured in this run): "
        f"{fmt_duration(timed['serial_seconds'])}",
    ]
    if timed["side_by_side"] is not None:
        lines.append(f"  serial / wall = {timed['side_by_side']:.2f} (runs side by side, on average)")
    if baseline is not None:
        ratio = baseline["wall_seconds"] / timed["wall_seconds"] if timed["wall_seconds"] > 0 else float("nan")
        lines.append(
            f"baseline in collection order ({baseline['command']}): {fmt_duration(baseline['wall_seconds'])} "
            f"(exit status {baseline['exit_status']}, {baseline['runs_trained']} runs); "
            f"the history order is {ratio:.2f}x its speed"
        )
    if tflop is not None:
        achieved = tflop / timed["wall_seconds"] if timed["wall_seconds"] > 0 else 0.0
        peak = host["bf16_peak_tflops"]
        share = f", {achieved / peak:.2%} of the {peak} TFLOP/s dense bf16 peak (data sheet)" if peak else ""
        lines.append(
            f"GPU use: {tflop:,.1f} TFLOP of training arithmetic over the wall = {achieved:.2f} TFLOP/s{share}"
        )
    return lines


def bench_summary(tier: str, host: dict, timed: dict, baseline: dict | None, tflop: float | None) -> dict:
    """What `tier-bench.json` holds: every figure (the records left out) and the summary's lines."""
    return {
        "tier": tier,
        "machine": host,
        "timed": {k: v for k, v in timed.items() if k != "records"},
        "baseline_run": None if baseline is None else {k: v for k, v in baseline.items() if k != "records"},
        "training_tflop": tflop,
        "lines": report_lines(tier, host, timed, baseline, tflop),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness bench --tier",
        description=__doc__.split("\n\n")[0],
        epilog="Arguments after -- go to pytest as they are (e.g. -- --data-dir=/data -k c1).",
    )
    parser.add_argument("--tier", choices=TIERS, required=True, help="smoke (CPU) or paper (-m gpu)")
    parser.add_argument("--tests", default="claims/", help="the claim tests to run (default claims/)")
    parser.add_argument("--workers", type=int, default=None, help="pytest-xdist's -n (default: 2 on a CPU, none)")
    parser.add_argument("--runs-per-gpu", type=int, default=None, help="the suite's --runs-per-gpu (GPU)")
    parser.add_argument("--out", type=Path, default=None, help="folder for records, logs and tier-bench.json")
    parser.add_argument(
        "--baseline-run",
        action="store_true",
        help="also time the command in collection order, --claims-order=collected (fresh folder)",
    )
    own, extra = (argv if argv is not None else sys.argv[1:]), []
    if "--" in own:
        own, extra = own[: own.index("--")], own[own.index("--") + 1 :]
    args = parser.parse_args(own)
    host = machine()
    workers = args.workers
    if workers is None and args.runs_per_gpu is None and not host["gpu"]:
        workers = 2  # today's CPU command, `python -m pytest claims/ -n 2`
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = args.out or Path("tier-bench") / f"{args.tier}-{stamp}"
    if folder.exists() and any(folder.iterdir()):
        parser.error(f"{folder} is not empty: the bench trains every run into a fresh folder")
    folder.mkdir(parents=True, exist_ok=True)  # pytest runs in this folder too: a relative --out stays right
    common = dict(workers=workers, runs_per_gpu=args.runs_per_gpu, extra=extra)
    baseline = None
    if args.baseline_run:
        baseline = measure(args.tier, args.tests, folder, Path.cwd(), baseline=True, **common)
    timed = measure(args.tier, args.tests, folder, Path.cwd(), baseline=False, **common)
    tflop = training_tflop(timed["records"]) if host["gpu"] else None
    summary = bench_summary(args.tier, host, timed, baseline, tflop)
    print("\n" + "\n".join(summary["lines"]))
    write_json_atomic(folder / SUMMARY_FILE, summary)
    print(f"records, logs and {SUMMARY_FILE} in {folder}")
    return timed["exit_status"]


if __name__ == "__main__":
    sys.exit(main())
