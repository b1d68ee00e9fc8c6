"""Aggregate training throughput of several runs in flight on one device at once.

pytest-xdist runs claims as separate worker processes sharing one GPU; how
many to start per GPU is a measurement, not a guess. Each of `runs` spawned
processes trains the same model as the harness does (resident training set,
the paper's SGD: lr 0.01, momentum 0.9, batch 128; the CUDA-graph loop on
CUDA, the eager loop on a CPU with one thread, as an xdist worker there).
All warm up, meet at a barrier, time `steps` steps and report their
time.monotonic() interval (system-wide on Linux, so comparable across
processes): aggregate images/s = all images / (latest end - earliest start).
"""

from __future__ import annotations

import os
import queue as queue_module
import shutil
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
import torch

from harness.bench.throughput import (
    BATCH,
    model_and_sgd,
    peak_tflops,
    resident_set,
    sgd_step,
    synchronize,
    training_flops_per_image,
)
from harness.core.config import PRECISIONS
from harness.core.train import matmul_precision

# Where torch's shared memory (either sharing strategy) lives on Linux: a tmpfs, 64 MiB in a default Docker container.
SHARED_MEMORY_FOLDER = "/dev/shm"


@dataclass
class InFlightResult:
    """One measurement: `runs` processes in flight; rates in images/s, memory in MiB.

    per_run holds one rate per run that finished (its images over its own
    interval); failures one line per run that did not. peak_mib: the largest
    peak of device memory reserved by one run's caching allocator (CUDA; the
    CUDA context, some hundreds of MiB, comes on top), None on a CPU.
    """

    runs: int
    images_per_second: float
    per_run: list[float] = field(default_factory=list)
    peak_mib: float | None = None
    failures: list[str] = field(default_factory=list)
    device_name: str = ""


def _train_in_child(index, model_name, device_name, steps, precision, images, labels, barrier, results, fail):
    """One run (a spawned process): set up, warm up, barrier, `steps` timed steps, report on `results`."""
    device, error = torch.device(device_name), None
    try:
        if device.type == "cpu":
            torch.set_num_threads(1)  # as each xdist worker on a CPU
        elif device.index is not None:
            torch.cuda.set_device(device)
        with matmul_precision(precision):
            loop = _setup(model_name, device, precision, images.numpy(), labels.numpy())
            loop(max(3, steps // 10))  # warm-up: lazy initialisation, allocator, caches
            synchronize(device)
        if fail:
            raise RuntimeError(f"planted failure in run {index}")
    except Exception as exc:
        error = _error_line(index, exc)
    try:
        barrier.wait()  # a failed run still arrives, so the others are not held until the timeout
        if error is None:
            with matmul_precision(precision):
                start = time.monotonic()
                loop(steps)
                synchronize(device)
                end = time.monotonic()
            cuda = device.type == "cuda"
            peak = torch.cuda.max_memory_reserved(device) / 2**20 if cuda else None
            name = torch.cuda.get_device_name(device) if cuda else "CPU"
            results.put({"run": index, "start": start, "end": end, "images": steps * BATCH, "peak": peak, "name": name})
            return
    except threading.BrokenBarrierError:
        error = error or f"run {index}: not timed, the barrier broke (a run died or was not ready in time)"
    except Exception as exc:
        error = _error_line(index, exc)
    results.put({"run": index, "error": error})


def _error_line(index: int, exc: BaseException) -> str:
    """The failure's one line for the table; the traceback goes to the run's stderr."""
    traceback.print_exc(file=sys.stderr)
    lines = str(exc).strip().splitlines()
    return f"run {index}: {type(exc).__name__}: {lines[0] if lines else ''}"


def check_settings(runs: int, device, precision: str) -> None:
    """Raises ValueError for runs < 1, an unknown precision, or bf16 on a device other than CUDA."""
    if runs < 1:
        raise ValueError(f"runs in flight must be at least 1, got {runs}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" and torch.device(device).type != "cuda":
        raise ValueError("bf16 autocast in flight needs a CUDA device; on a CPU use fp32 (or tf32 on a GPU)")


def shared_bytes(images, labels) -> int:
    """Bytes that in_flight_throughput puts in shared memory: the images and labels, once, whatever the runs."""
    return np.asarray(images).nbytes + np.asarray(labels).nbytes


def check_shared_memory(nbytes: int, folder: str | None = None) -> None:
    """Raises ValueError, in one line, when `folder` has less free space than the `nbytes` to share.

    The runs are spawned processes that get the training set through shared
    memory, not a copy each; without room for it the benchmark fails later,
    part-way, with an error that does not name the cause. Nothing is checked where
    the folder does not exist (no such tmpfs: macOS, Windows). folder:
    SHARED_MEMORY_FOLDER unless given.
    """
    folder = folder or SHARED_MEMORY_FOLDER
    if not os.path.isdir(folder):
        return
    free = shutil.disk_usage(folder).free
    if nbytes > free:
        raise ValueError(
            f"runs in flight share the training set through {folder}: it needs {nbytes / 2**20:,.1f} MiB there "
            f"and {free / 2**20:,.1f} MiB are free; give it more (docker run --shm-size=1g, or --ipc=host) "
            "or share fewer images (on a CPU, leave out --full: 5,000 images)"
        )


def _setup(model_name, device, precision, images, labels):
    """The training loop of one run: a function of a step count that trains that many steps."""
    model, optimizer = model_and_sgd(model_name, device, images.shape[-1])
    x_all, y_all = resident_set(model_name, images, labels, device)
    generator = torch.Generator(device=device).manual_seed(0)

    def rows(count):  # the rows of `count` batches: passes in random order, as training draws them
        n, need = len(y_all), count * BATCH
        order = [torch.randperm(n, device=device, generator=generator) for _ in range(-(-need // n))]
        return torch.cat(order)[:need]

    if device.type == "cuda":
        from harness.core.graph_step import GraphedSGDStep

        dtype = torch.bfloat16 if precision == "bf16" else None
        kwargs = dict(batch_size=BATCH, lr=0.01, momentum=0.9, weight_decay=0.0, autocast_dtype=dtype)
        step = GraphedSGDStep(model, x_all, y_all, **kwargs)
        return lambda count: step.run_pass(rows(count), 0.01)

    def eager(count):
        order = rows(count)
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            sgd_step(model, optimizer, x_all[batch], y_all[batch])

    return eager


def in_flight_throughput(
    model_name: str,
    runs: int,
    device,
    steps: int,
    precision: str,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    timeout_s: float = 900.0,
    fail_run: int | None = None,
) -> InFlightResult:
    """Trains `runs` copies of `model_name` at once, one process each; returns their throughput.

    images: (N, H, W, C) uint8, labels: (N,) ints (N >= 128), shared with the
    processes, not copied. precision: "fp32" (TF32 off), "tf32" or "bf16"
    (autocast; CUDA only). A run that fails (an exception, CUDA out of
    memory) is reported in failures; the others still are. timeout_s bounds
    the wait for all runs to be ready and for each report. fail_run: a test
    hook, the run with that index raises after its warm-up. Raises
    ValueError for runs < 1, an unknown precision, bf16 on a CPU, or too
    little free shared memory for images and labels (check_shared_memory).
    """
    device = torch.device(device)
    check_settings(runs, device, precision)
    check_shared_memory(shared_bytes(images, labels))
    context = torch.multiprocessing.get_context("spawn")  # the parent's CUDA state (if any) stays out
    barrier, results = context.Barrier(runs, timeout=timeout_s), context.Queue()
    shared = torch.from_numpy(np.ascontiguousarray(images)).share_memory_(), torch.from_numpy(np.asarray(labels))
    args = (model_name, str(device), steps, precision, shared[0], shared[1].share_memory_(), barrier, results)
    processes = [context.Process(target=_train_in_child, args=(i, *args, i == fail_run)) for i in range(runs)]
    for process in processes:
        process.start()
    reports = _collect(processes, results, barrier, time.monotonic() + 2 * timeout_s)
    done = [r for r in reports.values() if "error" not in r]
    failures = [reports[i]["error"] for i in sorted(reports) if "error" in reports[i]]
    failures += [
        f"run {i}: exited ({p.exitcode}) without a report" for i, p in enumerate(processes) if i not in reports
    ]
    span = max((r["end"] for r in done), default=0.0) - min((r["start"] for r in done), default=0.0)
    peaks = [r["peak"] for r in done if r["peak"] is not None]
    return InFlightResult(
        runs=runs,
        images_per_second=sum(r["images"] for r in done) / span if done else 0.0,
        per_run=[r["images"] / (r["end"] - r["start"]) for r in sorted(done, key=lambda r: r["run"])],
        peak_mib=max(peaks) if peaks else None,
        failures=failures,
        device_name=next((r["name"] for r in done), ""),
    )


def _collect(processes, results, barrier, deadline) -> dict:
    """Every run's report, by run; then the processes are joined (or ended, past the deadline)."""
    reports = {}
    while len(reports) < len(processes) and time.monotonic() < deadline:
        try:
            report = results.get(timeout=1.0)
            reports[report["run"]] = report
        except queue_module.Empty:
            if any(not p.is_alive() and i not in reports for i, p in enumerate(processes)):
                barrier.abort()  # a run died without a word (killed, crashed): the others must not wait on it
            if not any(p.is_alive() for p in processes) and results.empty():
                break
    for process in processes:
        process.join(timeout=5.0)
        if process.is_alive():
            process.terminate()
            process.join()
    return reports


def in_flight_benchmark(models, counts, device, steps, precision, images, labels, source) -> int:
    """Prints, per model and count of runs in flight, the aggregate throughput against 1 in flight.

    The parent does not touch CUDA: the device's name comes from the runs.
    Returns 0, or 2 for a usage error or too little free shared memory (printed on stderr).
    """
    device = torch.device(device)
    counts = sorted(set(counts) | {1})  # 1 in flight is the baseline, measured in this run
    try:
        check_settings(min(counts), device, precision)
        check_shared_memory(shared_bytes(images, labels))  # before any run starts, not in one of them
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    named, peak_tflop = False, None
    for model_name in models:
        flops = training_flops_per_image(model_name, images.shape[-1])
        results = {}
        for count in counts:
            result = results[count] = in_flight_throughput(model_name, count, device, steps, precision, images, labels)
            if not named:  # the header waits for the first runs: they name the device
                name = result.device_name if device.type == "cuda" else f"CPU, {os.cpu_count()} cores, 1 thread per run"
                named, peak_tflop = True, peak_tflops(name, precision) if device.type == "cuda" else None
                print(
                    f"in flight on {name or device}; torch {torch.__version__}; data: {source}, {len(labels)} "
                    f"training images; batch {BATCH}, {steps} timed steps per run; {precision}; "
                    "baseline: 1 run in flight, measured in this run\n"
                    f"{'model':<16}{'in flight':>10}{'agg img/s':>12}{'mean run img/s':>16}{'x vs 1':>8}"
                    f"{'peak MiB/run':>14}{'TFLOP/s':>9}{'of peak':>9}"
                )
            base = results[1].images_per_second
            ratio = result.images_per_second / base if base else float("nan")
            mean = sum(result.per_run) / len(result.per_run) if result.per_run else float("nan")
            peak = f"{result.peak_mib:>14,.0f}" if result.peak_mib is not None else f"{'-':>14}"
            achieved = result.images_per_second * flops / 1e12
            of_peak = f"{achieved / peak_tflop:>9.1%}" if peak_tflop else f"{'-':>9}"
            row = f"{model_name:<16}{count:>10}{result.images_per_second:>12,.0f}{mean:>16,.0f}{ratio:>8.2f}{peak}"
            failed = f"  FAILED {len(result.failures)}/{count}: {result.failures[0]}" if result.failures else ""
            print(f"{row}{achieved:>9.3f}{of_peak}{failed}", flush=True)
        good = {c: r.images_per_second for c, r in results.items() if not r.failures}
        if 1 in good and good[1] > 0:
            best = max(good, key=good.get)
            print(f"best for {model_name}: {best} in flight ({good[best] / good[1]:.2f} the single run)")
        else:
            print(f"best for {model_name}: none (1 in flight failed)")
    return 0
