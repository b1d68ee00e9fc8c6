"""Train a run from its config: `cached_fit`, the one place a run is trained, or its stored record reused.

What a run goes through here, in order: its optimizer spec is checked and
its key computed (harness.core.store.run_key); the results folder is probed
for writing; the run's lock is taken (``locks/<key>.lock``: one trainer per
run across processes, pytest-xdist workers included); the newest stored
record that answers the config is reused (harness.core.store.latest_record,
with the store's trust checks), unless a fresh run is asked for. Else the
caller's `before_training` hook may still refuse it (a session's deadline,
or --claims-collect); the run's checkpoint (``checkpoints/<key>.pt``, see
harness.core.checkpoint) is set up, so a run killed hard resumes from its
last pass; its progress goes to ``live/<key>.log`` while it trains
(harness.core.train.fit); the record is stamped (the machine, the time, the
session's fresh_since) and saved by the store (harness.core.store
.save_record) under the lock, then the checkpoint is removed. An
interrupted run is saved too, its checkpoint kept, and the interrupt raised
again.

A results folder that cannot be written (read-only, full) never costs the
run: it trains without lock, log or checkpoint, the record is returned with
``saved: False`` and a one-line ``save_error``, and one
`ResultsNotSavedWarning` says so.

This is the seam where another executor could train runs (a queue, another
machine, a batch of runs at once): everything above it (the claims suite,
tuning, the command line) asks `cached_fit` for a config's record and
reads what comes back; the store below it holds the records, whoever
trained them.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
import time
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path

from harness.core.checkpoint import RunCheckpoint, checkpoint_path
from harness.core.code_identity import run_code_fingerprint
from harness.core.config import RunConfig
from harness.core.formatting import fmt_train_reading
from harness.core.store import latest_record, machine_stamp, results_dir, run_key, save_record

# On a GPU a pass can be shorter than writing its checkpoint (see harness.core.checkpoint).
GPU_CHECKPOINT_SECONDS = 10.0


class ResultsNotSavedWarning(UserWarning):
    """The results folder could not be written: the run trained, its record is not on disk."""


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
    before_training=None,
) -> dict:
    """The run record for `config`: reused when one exists, else trained and saved.

    fresh: retrain regardless. fresh_since (the session's start, epoch
    seconds, also its identity): reuse only the newest record when a process
    given the same fresh_since saved it (``stamp.fresh_since``), so a session
    that asked for fresh runs trains each shared run once, whichever process
    gets to it first; no record's clock field can satisfy it.
    checkpoint_every: passes between checkpoints (not part of the run: a
    resumed run ends as the uninterrupted one whatever its value).
    checkpoint_min_seconds: training seconds between checkpoints at least;
    None: 0 on the CPU (every pass), GPU_CHECKPOINT_SECONDS on a GPU.
    required: record fields the caller needs; older records without them are not reused.
    before_training: called with the run's key once no record answers and the
    run must train (holding its lock, before any checkpoint or log is touched);
    an exception it raises leaves the store as it was and nothing trains (a
    session's deadline or --claims-collect refuses a run this way).
    A run killed before its record was saved resumes from its checkpoint.
    An interrupted run is saved (its curves are kept), its checkpoint kept
    for the next attempt, and the interrupt raised again.
    A results folder that cannot be written: see the module docstring.
    """
    from harness.core.optim import resolve
    from harness.core.train import fit  # imported here: importing the runner loads no training stack

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
            record = latest_record(key, root, required, code=run_code_fingerprint())
            # By the store's order, not a clock: a record answers a fresh session only if a process of that
            # session saved it (its stamp carries the session's fresh_since) and no later record shadows it.
            if record is not None and (fresh_since is None or _written_for(record) == fresh_since):
                record["reused"] = record["saved"] = True
                if locked:  # a kill between saving this record and removing its checkpoint left one
                    checkpoint_path(root, key).unlink(missing_ok=True)
                return record
        if before_training is not None:
            before_training(key)
        checkpoint = None
        if writable:
            if checkpoint_min_seconds is None:
                checkpoint_min_seconds = 0.0 if config.device == "cpu" else GPU_CHECKPOINT_SECONDS
            checkpoint = RunCheckpoint(
                checkpoint_path(root, key),
                key,
                every=checkpoint_every,
                min_seconds=checkpoint_min_seconds,
                run_code=run_code_fingerprint(),
                fresh_since=fresh_since,
            )
            if locked:  # only the lock's holder may take a temporary file for an orphan
                _remove_orphans(root, key, checkpoint)  # of a run of this key killed mid-write
            if fresh:
                checkpoint.remove()  # retrain means from the start: no passes of an earlier attempt
        with _live_log(root, key, config, problems if writable else None) as log:
            record = fit(config, progress=_both(log, progress), checkpoint=checkpoint)
        if checkpoint is not None and checkpoint.error:
            problems.add(checkpoint.error, "checkpoint")
        record["key"] = key
        record["stamp"] = {**machine_stamp(config.device), "run_code": run_code_fingerprint()}
        if fresh_since is not None:
            record["stamp"]["fresh_since"] = fresh_since
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
    """Why writes under the results folder failed; the summary names the folder's state in one line."""

    def __init__(self, root: Path):
        self.root = root
        self.errors: list[OSError | RuntimeError] = []
        self.parts: list[str] = []  # what was not written, where known

    @property
    def none(self) -> bool:
        return not self.errors

    def add(self, error: OSError | RuntimeError | None, part: str | None = None) -> None:
        """Note a failed write; a RuntimeError is torch.save's (harness.core.checkpoint), without an errno."""
        if error is not None:
            self.errors.append(error)
            if part and part not in self.parts:
                self.parts.append(part)

    def summary(self, record_saved: bool) -> str:
        # An OSError's errno names the folder's state (read-only, full); torch's RuntimeError does not.
        telling = next((error for error in self.errors if isinstance(error, OSError)), self.errors[0])
        if record_saved:
            outcome = f"record saved; not written: {', '.join(self.parts) or 'part of the run files'}"
        else:
            others = [part for part in self.parts if part != "record"]
            outcome = "record not saved" + (f"; not written either: {', '.join(others)}" if others else "")
        return f"results folder {self.root} {_reason(telling)}: {outcome}"


def _reason(error: OSError | RuntimeError) -> str:
    """A folder's state in words, from the error a write into it raised."""
    if not isinstance(error, OSError):
        first_line = (str(error).splitlines() or [""])[0]
        return f"cannot be written ({type(error).__name__}: {first_line})"
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


def _written_for(record: dict):
    """The fresh_since of the session whose process saved `record` (``stamp.fresh_since``), or None."""
    stamp = record.get("stamp")
    return stamp.get("fresh_since") if isinstance(stamp, dict) else None


@contextmanager
def _run_lock(key: str, root: Path, problems: _WriteProblems):
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
