"""GPUs and the claims session: one GPU per xdist worker, K runs per GPU, and refusing the GPU tier without CUDA."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import torch


def gpu_refusal(config, device: str, profile: str) -> str | None:
    """Why a session that asks for the GPU tier cannot run here (no usable CUDA device), or None.

    Asked for: training on CUDA (--profile=paper, --device=cuda...) or a -m
    expression that selects gpu-marked tests and no unmarked ones (-m gpu).
    Without CUDA every such test would skip and the session would exit 0
    having measured nothing. Collecting (--collect-only) and --claims-partial
    are exempt: they do not claim to have measured.
    """
    if torch.cuda.is_available() or hasattr(config, "workerinput"):
        return None
    if config.option.collectonly or config.getoption("--claims-partial"):
        return None
    if device.startswith("cuda"):
        asked = f"the {profile} profile trains on {device}"
    elif selects_gpu_only(config.option.markexpr):
        asked = f"-m {config.option.markexpr!r} selects the GPU tier"
    else:
        return None
    return (
        f"{asked}, but torch sees no CUDA device (torch.cuda.is_available() is False), so nothing would be "
        "measured. Run it on a machine with a CUDA GPU and a CUDA build of torch, run the CPU smoke tier "
        "instead (python -m pytest claims/), or add --claims-partial to accept the skips"
    )


def selects_gpu_only(markexpr: str) -> bool:
    """Whether the -m expression selects some gpu-marked test and no test without the gpu marker.

    Read over every combination of the markers it names (a handful), with
    pytest's own -m parser: "gpu" and "gpu and slow" ask for the GPU tier;
    "not gpu" and "gpu or not slow" also keep CPU tests.
    """
    if not markexpr:
        return False
    from itertools import combinations

    from _pytest.mark.expression import Expression  # the parser behind -m: the same reading as the selection

    try:
        expression = Expression.compile(markexpr)
    except Exception:  # noqa: BLE001 - pytest reports a malformed -m itself
        return False
    names = sorted(set(re.findall(r"[A-Za-z_][\w.]*", markexpr)) - {"and", "or", "not", "gpu"})
    selected_with = {True: False, False: False}
    for size in range(len(names) + 1):
        for others in combinations(names, size):
            for gpu in (True, False):
                marks = frozenset({*others, *(["gpu"] if gpu else [])})
                selected_with[gpu] |= expression.evaluate(marks.__contains__)
    return selected_with[True] and not selected_with[False]


def workers_per_gpu(option, runs_per_gpu: int, gpus: int, has_xdist: bool) -> None:
    """--runs-per-gpu: set xdist's options (numprocesses, dist, tx) to `runs_per_gpu` x `gpus` workers.

    Set in pytest_configure, before xdist's own (trylast) starts the
    distributed session; each worker is then pinned to GPU (its index mod
    gpus), so every GPU gets `runs_per_gpu` of them. Raises ValueError for a
    count below 1, no GPU, no xdist, or -n given too (the two would disagree).
    """
    if runs_per_gpu < 1:
        raise ValueError(f"--runs-per-gpu must be 1 or more, not {runs_per_gpu}")
    if gpus == 0:
        raise ValueError("--runs-per-gpu needs CUDA; on a CPU, -n N sets the runs side by side")
    if not has_xdist:
        raise ValueError("--runs-per-gpu starts pytest-xdist workers: install pytest-xdist, or leave -p no:xdist out")
    if getattr(option, "numprocesses", None):
        raise ValueError("give either -n or --runs-per-gpu: -n sets the workers of every GPU together")
    option.numprocesses = runs_per_gpu * gpus
    option.tx = ["popen"] * option.numprocesses
    if option.dist == "no":
        option.dist = "load"


def worker_gpu(worker: str, visible: str | None, count: int) -> str:
    """The one GPU an xdist worker ('gw3') uses: workers take the visible GPUs in turn."""
    index = int(re.sub(r"\D", "", worker) or 0)
    ids = [part.strip() for part in (visible or "").split(",") if part.strip()] or [str(i) for i in range(count)]
    return ids[index % min(count, len(ids))]


# Present where the NVIDIA kernel driver is loaded (Linux): without it NVML's silence means no GPU, not a fault.
NVIDIA_DRIVER = Path("/proc/driver/nvidia")


def pin_worker_gpu(config) -> str | None:
    """One GPU per xdist worker, set through CUDA_VISIBLE_DEVICES before CUDA starts in the worker.

    Only in an xdist worker (PYTEST_XDIST_WORKER, which a pytest run started
    from inside a worker inherits, is not enough), when CUDA is present and
    more than one GPU is visible; workers take them in turn, so -n with a
    multiple of the GPUs (or --runs-per-gpu) shares them evenly.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or not hasattr(config, "workerinput"):
        return None
    count = gpus_without_starting_cuda()
    if count is None and not NVIDIA_DRIVER.exists():
        return None  # no NVIDIA driver loaded: a CPU machine, nothing to pin and nothing to warn of
    if count is None:
        warnings.warn(
            f"xdist worker {worker}: the GPUs cannot be counted without starting CUDA (NVML does not answer), so "
            "it is not given a GPU of its own and every worker sees every GPU; set CUDA_VISIBLE_DEVICES per "
            "worker, or run one worker per GPU machine",
            stacklevel=2,
        )
        return None
    if count <= 1:
        return None
    if torch.cuda.is_initialized():
        warnings.warn(f"CUDA already started in xdist worker {worker}: cannot give it a GPU of its own", stacklevel=2)
        return None
    os.environ["CUDA_VISIBLE_DEVICES"] = choice = worker_gpu(worker, os.environ.get("CUDA_VISIBLE_DEVICES"), count)
    return choice


def gpus_without_starting_cuda() -> int | None:
    """The visible GPUs, counted through NVML (CUDA_VISIBLE_DEVICES respected), or None when NVML cannot say.

    Not torch.cuda.device_count(): where NVML fails it falls back to the CUDA
    driver's count, which starts the driver; a CUDA_VISIBLE_DEVICES set after
    that is ignored, so the pinning would silently do nothing.
    """
    if not torch.cuda.is_initialized() and hasattr(torch.cuda, "_device_count_nvml"):
        count = torch.cuda._device_count_nvml()  # private, but the one count that leaves CUDA unstarted
        return count if count >= 0 else None
    return torch.cuda.device_count() if torch.cuda.is_initialized() else None


def threads_per_worker(cpus: int, workers: int, cuda: bool) -> int:
    """CPU threads for each xdist worker: 1 on a CPU-only machine, else the cores shared out among the workers.

    On a CPU the workers train and one thread each was measured 2.6x faster
    than 2 workers x 2 threads on 2 cores (small matrices do not scale across
    threads). On a GPU host the CPU prepares each run's data (4-15 s) while
    the GPU trains: K workers keeping every core each would oversubscribe it.
    """
    return 1 if not cuda else max(1, cpus // max(1, workers))
