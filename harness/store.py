"""Run records on disk: append-only JSON, atomic, stamped, found by config hash.

Layout: ``RESULTS/runs/<key>/<utc time>.json``, one file per finished run;
the newest complete record answers a config. A fresh run adds a file and
never replaces one. ``RESULTS`` is ``$HARNESS_RESULTS_DIR`` or
``.harness-results`` in the working directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .config import RunConfig
from .prepare import load_raw_cached

REUSABLE = ("fitted", "out_of_budget", "diverged")  # "interrupted" is kept but never reused


def results_dir() -> Path:
    return Path(os.environ.get("HARNESS_RESULTS_DIR", ".harness-results"))


def write_json_atomic(path: Path, value) -> None:
    """Write to a temporary file beside `path`, then rename: never a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(value, stream, indent=1, sort_keys=True)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide records from other users
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def latest_record(key: str, root: Path | None = None) -> dict | None:
    folder = (root or results_dir()) / "runs" / key
    for path in sorted(folder.glob("*.json"), reverse=True):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a damaged file is skipped, not trusted
        if record.get("outcome") in REUSABLE:
            return record
    return None


def save_record(record: dict, root: Path | None = None) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = (root or results_dir()) / "runs" / record["key"] / f"{stamp}.json"
    write_json_atomic(path, record)
    return path


@contextmanager
def _run_lock(key: str, root: Path):
    """One trainer per run key across processes (xdist workers share runs)."""
    lock_path = root / "locks" / f"{key}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_key(config: RunConfig) -> str:
    """The config's hash with the data's bytes, the optimizer's code and the harness's run semantics."""
    from . import RUN_SEMANTICS_VERSION
    from .optim import code_fingerprint

    identity = f"{load_raw_cached(config.data).fingerprint}|{code_fingerprint(config.optimizer)}|semantics {RUN_SEMANTICS_VERSION}"
    return config.key(identity)


def cached_fit(
    config: RunConfig, *, fresh: bool = False, fresh_since: float | None = None, progress=None, root: Path | None = None
) -> dict:
    """The run record for `config`: reused when one exists, else trained and saved.

    fresh: retrain regardless. fresh_since (epoch seconds): reuse only a record
    finished at or after that moment, so a session that asked for fresh runs
    trains each shared run once, whichever process gets to it first.
    An interrupted run is saved (its curves are kept) and the interrupt raised again.
    """
    from .train import fit  # imported here: the store is usable without the training stack

    from .optim import resolve

    resolve(config.optimizer)  # a bad optimizer spec fails before any data is read
    root = root or results_dir()
    key = run_key(config)
    with _run_lock(key, root):
        if not fresh:
            record = latest_record(key, root)
            if record is not None and (fresh_since is None or record.get("finished_at", 0.0) >= fresh_since):
                record["reused"] = True
                return record
        with _live_log(root, key, config) as log:
            record = fit(config, progress=_both(log, progress))
        record["key"] = key
        record["stamp"] = machine_stamp(config.device)
        record["finished_at"] = time.time()
        record["path"] = str(save_record(record, root))
        record["reused"] = False
        if record["outcome"] == "interrupted":
            raise KeyboardInterrupt(f"run interrupted; its curves are kept in {record['path']}")
        return record


@contextmanager
def _live_log(root: Path, key: str, config: RunConfig):
    """RESULTS/live/<key>.log: one line per pass while a run trains (`tail -f` it).

    Progress that pytest and its workers would swallow stays visible; the
    file is removed once the record is saved.
    """
    path = root / "live" / f"{key}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as stream:
        stream.write(f"{config.model} {config.variant} p={config.corruption} seed={config.seed} on {config.device}\n")

        def write(state: dict) -> None:
            test = state["test_accuracy"]
            stream.write(
                f"pass {state['pass']}/{state['max_passes']} loss {state['loss']:.4f} "
                f"train {state['train_accuracy']:.4f} test {'-' if test is None else f'{test:.4f}'}\n"
            )

        try:
            yield write
        finally:
            path.unlink(missing_ok=True)


def _both(*callbacks):
    """One progress callback that calls each given one in turn (None ones skipped)."""
    present = [callback for callback in callbacks if callback is not None]
    return lambda state: [callback(state) for callback in present]


def machine_stamp(device: str = "cpu") -> dict:
    stamp = dict(_static_stamp())
    stamp["time"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    stamp["threads"] = torch.get_num_threads()
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        stamp["gpu"] = torch.cuda.get_device_name(index)
    return stamp


@lru_cache(maxsize=1)
def _static_stamp() -> dict:
    import torchvision

    from . import __version__

    return {
        "host_platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "cuda": torch.version.cuda,
        "harness": __version__,
        "commit": _git_commit(),
    }


def _git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not commit:
        return "unknown"
    return commit + ("+dirty" if dirty else "")
