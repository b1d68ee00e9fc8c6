"""Per-pass checkpoints of one training run, so a run killed hard resumes where it stopped.

Layout: ``RESULTS/checkpoints/<run key>.pt``, one file per run, replaced after
every pass (or every `every` passes, and no sooner than `min_seconds` after
the last save: the store asks for 10 s on a GPU, where passes are short) and
removed once the run's record is saved. A checkpoint holds what the next pass depends on: model and optimizer
state (or the graph loop's momentum buffers), the state of the data-order
generator (which the random crop shares), torch's global RNG states (dropout
draws from them), the curves so far and the number of passes done, plus the
config and the run key it belongs to.

Written atomically (temporary file beside it, fsync, rename), so a kill at
any moment leaves either the previous checkpoint or the new one, and at
worst an orphaned temporary file, which the store removes the next time it
trains that run holding the run's lock (harness.core.runner.cached_fit). A checkpoint is only ever trusted when it loads completely and names
this run (format version, run key and config all equal); anything else is
reported with a `CheckpointIgnoredWarning` and the run starts over.

On the CPU a resumed run ends bitwise as the uninterrupted one when both
parts run with the same torch build and thread count (torch.get_num_threads:
the claims plugin uses one per xdist worker, a plain process one per core);
with another count the arithmetic, hence the last bits, may differ.

Batched runs (harness.bench.batched) are not checkpointed: a killed batched run
starts again from its first pass.
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from harness.core.record import replace_atomically

# Bumped when the saved fields change: older checkpoints are then ignored.
# 2: curves gained "train_checked" (harness.core.train_check).
FORMAT_VERSION = 2


class CheckpointRefusedWarning(UserWarning):
    """A run is not checkpointed: what it would need to resume exactly cannot be saved."""


class CheckpointIgnoredWarning(UserWarning):
    """A checkpoint was found but not trusted (damaged, or of another run); the run starts over."""


def checkpoint_path(root: Path, run_key: str) -> Path:
    return root / "checkpoints" / f"{run_key}.pt"


@dataclass
class RunCheckpoint:
    """Where one run's checkpoint lives, which run it belongs to, and how often it is written.

    A save that fails (read-only or full disk: an OSError; torch.save's
    RuntimeError from its zip writer) does not stop training: `error` keeps
    it, no file is left half written, and no further save is tried.
    """

    path: Path
    run_key: str
    every: int = 1  # passes between saves; a resumed run repeats at most every - 1 passes
    # Seconds between saves at least, counted from when the checkpoint is made
    # (so data loading and graph capture count towards the first): on a GPU an MLP pass takes
    # about 0.05 s, as long as writing and syncing its 13 MB checkpoint, so
    # saving after every pass would double the run's time. A run killed
    # hard then repeats at most this long plus one pass.
    min_seconds: float = 0.0
    # The run-code fingerprint (harness.core.code_identity) of the code training the run, where known: a
    # checkpoint written by other code is not resumed (its passes may have computed something else).
    run_code: str | None = None
    # --claims-fresh: the session's start, its identity (harness.core.runner.cached_fit's fresh_since); a
    # checkpoint is resumed only by the session that wrote it, judged by this stamp, not by a file's clock.
    fresh_since: float | None = None
    error: OSError | RuntimeError | None = None
    refused: str | None = None  # why this run is not checkpointed (its state cannot be saved faithfully)
    _last_save: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._last_save = time.monotonic()  # a run's first save, too, waits min_seconds of training
        if self.every < 1:
            raise ValueError(f"checkpoint every must be at least 1 pass, got {self.every}")
        if self.min_seconds < 0:
            raise ValueError(f"checkpoint min_seconds must not be negative, got {self.min_seconds}")

    def due(self, passes_done: int) -> bool:
        return (
            self.error is None
            and self.refused is None
            and passes_done % self.every == 0
            and time.monotonic() - self._last_save >= self.min_seconds
        )

    def load(self, config_values: dict) -> dict | None:
        """The saved state when a trustworthy checkpoint of this run exists, else None."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - a damaged file can fail in many ways; none is trusted
            first_line = (str(error).splitlines() or [""])[0]
            self._ignore(f"it does not load ({type(error).__name__}: {first_line})")
            return None
        problem = _mismatch(state, self.run_key, config_values, self.run_code)
        if problem is None and self.fresh_since is not None and state.get("fresh_since") != self.fresh_since:
            problem = "it was written before this fresh session (--claims-fresh retrains from the start)"
        if problem:
            self._ignore(problem)
            return None
        return state

    def save(self, state: dict, config_values: dict) -> None:
        """Replace the checkpoint atomically with `state`, stamped with this run's identity."""
        stamped = {
            **state,
            "version": FORMAT_VERSION,
            "run_key": self.run_key,
            "config": config_values,
            "run_code": self.run_code,
            "fresh_since": self.fresh_since,
        }
        try:
            save_atomic(self.path, stamped)
        except (OSError, RuntimeError) as error:  # a checkpoint only saves time: the run goes on without one
            self.error = error
        self._last_save = time.monotonic()

    def refuse(self, reason: str) -> None:
        """Write no checkpoint for this run (and remove one left by an earlier attempt), saying why once."""
        self.refused = reason
        self.remove()
        warnings.warn(
            f"run {self.run_key} is not checkpointed: {reason}; if it is stopped it starts over",
            CheckpointRefusedWarning,
            stacklevel=3,
        )

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def remove_orphans(self) -> None:
        """Delete temporary files a killed save left behind (only this run's; call it holding the run's lock)."""
        for orphan in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            orphan.unlink(missing_ok=True)

    def _ignore(self, reason: str) -> None:
        warnings.warn(
            f"checkpoint {self.path} ignored, the run starts over: {reason}", CheckpointIgnoredWarning, stacklevel=3
        )


def _mismatch(state, run_key: str, config_values: dict, run_code: str | None = None) -> str | None:
    """Why `state` is not a checkpoint of this run, or None when it is."""
    if not isinstance(state, dict):
        return "it is not a checkpoint"
    if state.get("version") != FORMAT_VERSION:
        return f"format version {state.get('version')!r}, this harness writes {FORMAT_VERSION}"
    if state.get("run_key") != run_key:
        return f"it belongs to run {state.get('run_key')!r}, not {run_key!r}"
    if state.get("config") != config_values:
        return "its config differs from this run's"
    if run_code is not None and state.get("run_code") != run_code:
        return f"it was written by other harness code (run code {state.get('run_code')!r}, this code {run_code!r})"
    passes = state.get("passes")
    curves = state.get("curves")
    if not isinstance(passes, int) or not isinstance(curves, dict) or any(len(v) != passes for v in curves.values()):
        return "its pass count and curves disagree"
    return None


def save_atomic(path: Path, value) -> None:
    """torch.save to a temporary file beside `path`, fsync, then rename: never a half file under `path`.

    Raises OSError when the file cannot be written (errno ENOSPC for a full
    disk), after removing the temporary file.
    """
    # Serialised in memory first: torch.save writing into a file that fills
    # reports a RuntimeError ("enforce fail at inline_container.cc ...
    # unexpected pos") instead of the OSError, so the disk's state is lost.
    serialised = io.BytesIO()
    torch.save(value, serialised)
    replace_atomically(path, serialised.getvalue())
