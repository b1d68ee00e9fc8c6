"""Run records on disk: append-only JSON, atomic, stamped, found by config hash.

Layout: ``RESULTS/runs/<key>/<utc time>.json``, one file per finished run;
the newest complete record answers a config. A fresh run adds a file and
never replaces one. ``RESULTS`` is ``$HARNESS_RESULTS_DIR`` or
``.harness-results`` in the working directory. Beside the records, while a
run trains: ``locks/<key>.lock`` (one trainer per run across processes),
``live/<key>.log`` (its progress) and ``checkpoints/<key>.pt`` (its state
after the last pass, see harness.checkpoint; a run killed hard resumes
from it).

A results folder that cannot be written (read-only, full) never costs the
run: it trains without lock, log or checkpoint, the record is returned with
``saved: False`` and a one-line ``save_error``, and one
`ResultsNotSavedWarning` says so.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import subprocess
import tempfile
import time
import warnings
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .checkpoint import RunCheckpoint, checkpoint_path
from .config import RunConfig
from .formatting import fmt_train_reading
from .prepare import load_raw_cached

REUSABLE = ("fitted", "out_of_budget", "diverged")  # "interrupted" is kept but never reused
# On a GPU a pass can be shorter than writing its checkpoint (see harness.checkpoint).
GPU_CHECKPOINT_SECONDS = 10.0


class ResultsNotSavedWarning(UserWarning):
    """The results folder could not be written: the run trained, its record is not on disk."""


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


def latest_record(key: str, root: Path | None = None, required: tuple[str, ...] = ()) -> dict | None:
    """The newest reusable record under `key`, or None.

    required: record fields the caller needs; a record made before they
    existed (e.g. `test_confusion`) is not reused, so the run is trained anew.
    """
    folder = (root or results_dir()) / "runs" / key
    for path in sorted(folder.glob("*.json"), reverse=True):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a damaged file is skipped, not trusted
        if record.get("outcome") in REUSABLE and all(field in record for field in required):
            return record
    return None


def save_record(record: dict, root: Path | None = None) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = (root or results_dir()) / "runs" / record["key"] / f"{stamp}.json"
    write_json_atomic(path, record)
    return path


@contextmanager
def _run_lock(key: str, root: Path, problems: "_WriteProblems"):
    """One trainer per run key across processes (xdist workers share runs).

    Yields whether the lock is held. When the lock file cannot be made the
    run goes on unlocked (another process may then train the same run) and
    the reason joins `problems`.
    """
    lock_path = root / "locks" / f"{key}.lock"
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        # flock needs a descriptor, not write access: a lock file made by another user still serves
        handle = open(lock_path, "r" if lock_path.exists() and not os.access(lock_path, os.W_OK) else "a")
    except OSError as error:
        problems.add(error, "run lock (another process may train this run too)")
        yield False
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_key(config: RunConfig) -> str:
    """The config's hash with the data's bytes, the optimizer's code and the harness's run semantics."""
    from . import RUN_SEMANTICS_VERSION
    from .optim import code_fingerprint

    raw = load_raw_cached(config.data)
    # A subset as large as the set is the whole set (data.subset_indices): one run, one key.
    if config.n_train is not None and config.n_train >= len(raw.train_y):
        config = config.replace(n_train=None)
    if config.n_test is not None and config.n_test >= len(raw.test_y):
        config = config.replace(n_test=None)
    identity = f"{raw.fingerprint}|{code_fingerprint(config.optimizer)}|semantics {RUN_SEMANTICS_VERSION}"
    return config.key(identity)


def cached_fit(
    config: RunConfig,
    *,
    fresh: bool = False,
    fresh_since: float | None = None,
    progress=None,
    root: Path | None = None,
    checkpoint_every: int = 1,
    checkpoint_min_seconds: float | None = None,
    required: tuple[str, ...] = (),
) -> dict:
    """The run record for `config`: reused when one exists, else trained and saved.

    fresh: retrain regardless. fresh_since (epoch seconds): reuse only a record
    finished at or after that moment, so a session that asked for fresh runs
    trains each shared run once, whichever process gets to it first.
    checkpoint_every: passes between checkpoints (not part of the run: a
    resumed run ends as the uninterrupted one whatever its value).
    checkpoint_min_seconds: training seconds between checkpoints at least;
    None: 0 on the CPU (every pass), GPU_CHECKPOINT_SECONDS on a GPU.
    required: record fields the caller needs; older records without them are not reused.
    A run killed before its record was saved resumes from its checkpoint.
    An interrupted run is saved (its curves are kept), its checkpoint kept
    for the next attempt, and the interrupt raised again.
    A results folder that cannot be written: see the module docstring.
    """
    from .train import fit  # imported here: the store is usable without the training stack

    from .optim import resolve

    resolve(config.optimizer)  # a bad optimizer spec fails before any data is read
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be at least 1 pass, got {checkpoint_every}")
    root = root or results_dir()
    key = run_key(config)
    problems = _WriteProblems(root)
    problems.add(_write_probe(root))
    writable = problems.none  # else: no lock, log, checkpoint or record is even tried
    with _run_lock(key, root, problems) if writable else nullcontext(False) as locked:
        if not fresh:
            record = latest_record(key, root, required)
            if record is not None and (fresh_since is None or record.get("finished_at", 0.0) >= fresh_since):
                record["reused"] = record["saved"] = True
                if locked:  # a kill between saving this record and removing its checkpoint left one
                    checkpoint_path(root, key).unlink(missing_ok=True)
                return record
        checkpoint = None
        if writable:
            if checkpoint_min_seconds is None:
                checkpoint_min_seconds = 0.0 if config.device == "cpu" else GPU_CHECKPOINT_SECONDS
            checkpoint = RunCheckpoint(
                checkpoint_path(root, key), key, every=checkpoint_every, min_seconds=checkpoint_min_seconds
            )
            if locked:  # only the lock's holder may take a temporary file for an orphan
                _remove_orphans(root, key, checkpoint)  # of a run of this key killed mid-write
            if fresh or (fresh_since is not None and _older_than(checkpoint.path, fresh_since)):
                checkpoint.remove()  # retrain means from the start: no passes of an earlier attempt
        with _live_log(root, key, config, problems if writable else None) as log:
            record = fit(config, progress=_both(log, progress), checkpoint=checkpoint)
        if checkpoint is not None and checkpoint.error:
            problems.add(checkpoint.error, "checkpoint")
        record["key"] = key
        record["stamp"] = machine_stamp(config.device)
        record["finished_at"] = time.time()
        path = None
        if writable:
            try:
                path = str(save_record(record, root))
            except OSError as error:
                problems.add(error, "record")
        record["path"], record["reused"], record["saved"] = path, False, path is not None
        if record["saved"] and checkpoint is not None and record["outcome"] != "interrupted":
            checkpoint.remove()  # the record now holds the run; an interrupted one may resume
        if not problems.none:
            message = problems.summary(record["saved"])
            if not record["saved"]:
                record["save_error"] = message
            warnings.warn(message, ResultsNotSavedWarning, stacklevel=2)  # one per run, whatever failed
        if record["outcome"] == "interrupted":
            kept = f"its curves are kept in {record['path']}" if record["saved"] else record["save_error"]
            raise KeyboardInterrupt(f"run interrupted; {kept}")
        return record


class _WriteProblems:
    """Why writes under the results folder failed; the first reason names the folder's state in one line."""

    def __init__(self, root: Path):
        self.root = root
        self.reasons: list[str] = []
        self.parts: list[str] = []  # what was not written, where known

    @property
    def none(self) -> bool:
        return not self.reasons

    def add(self, error: OSError | None, part: str | None = None) -> None:
        if error is not None:
            self.reasons.append(_reason(error))
            if part and part not in self.parts:
                self.parts.append(part)

    def summary(self, record_saved: bool) -> str:
        if record_saved:
            outcome = f"record saved; not written: {', '.join(self.parts) or 'part of the run files'}"
        else:
            outcome = "record not saved"
        return f"results folder {self.root} {self.reasons[0]}: {outcome}"


def _reason(error: OSError) -> str:
    """A folder's state in words, from the error a write into it raised."""
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"is read-only ({error.strerror})"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"is full ({error.strerror})"
    return f"cannot be written ({error.strerror or error})"


def _write_probe(root: Path) -> OSError | None:
    """Create, write, sync and delete a small file in `root`: the error when that fails, else None."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-probe.", suffix=".tmp") as probe:
            probe.write(b"x")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        return error
    return None


def _older_than(path: Path, moment: float) -> bool:
    """Whether `path` exists and was last written before `moment` (epoch seconds)."""
    try:
        return path.stat().st_mtime < moment
    except FileNotFoundError:
        return False


def _remove_orphans(root: Path, key: str, checkpoint: RunCheckpoint) -> None:
    """Temporary files of this run left by a process killed while writing (its record or its checkpoint)."""
    checkpoint.remove_orphans()
    for orphan in (root / "runs" / key).glob(".*.tmp"):
        orphan.unlink(missing_ok=True)


@contextmanager
def _live_log(root: Path, key: str, config: RunConfig, problems: _WriteProblems | None):
    """RESULTS/live/<key>.log: one line per pass while a run trains (`tail -f` it).

    Progress that pytest and its workers would swallow stays visible; the
    file is removed once the record is saved. problems None: no log (the
    folder is known to be unwritable); a log that cannot be written is
    dropped (the run goes on) and the reason joins `problems`.
    """
    if problems is None:
        yield None
        return
    path = root / "live" / f"{key}.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = open(path, "w", buffering=1)
    except OSError as error:
        problems.add(error, "progress log")
        yield None
        return

    def write_line(text: str) -> None:
        if stream.closed:
            return
        try:
            stream.write(text)
        except OSError as error:  # a full disk: stop logging, keep training
            problems.add(error, "progress log")
            _close_quietly(stream)

    def write(state: dict) -> None:
        test = state["test_accuracy"]
        write_line(
            f"pass {state['pass']}/{state['max_passes']} loss {state['loss']:.4f} "
            f"train {fmt_train_reading(state)} test {'-' if test is None else f'{test:.4f}'}\n"
        )

    write_line(f"{config.model} {config.variant} p={config.corruption} seed={config.seed} on {config.device}\n")
    try:
        yield write
    finally:
        _close_quietly(stream)
        path.unlink(missing_ok=True)


def _close_quietly(stream) -> None:
    try:
        stream.close()
    except OSError:
        pass  # flushing the last line failed; the log is only progress


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
