"""One learning rate per optimizer, chosen once by a short grid on true labels.

The paper's point is that the same hyperparameters serve true and random
labels. The paper's SGD has the paper's learning rates; an optimizer without
a given one (adam, adamw, rmsprop, or an imported factory whose spec does not
set ``lr``) gets one from this small tuning step, in the spirit of DeepOBS:

- scale: the smoke tier's first model (MLP 1x512) on its CIFAR-10 subset
  (5,000 images), TRUE labels only, seed 0, the profile's batch and schedule;
- grid: GRID, one value per decade (override with ``--tune-lr-grid``);
- budget: PASSES passes per value (the test set once, at the end);
- choice: the lowest mean training loss of the last pass among the runs that
  did not diverge; ties go to the higher training accuracy, then the smaller lr.

The choice is recorded in ``RESULTS/tuning/<optimizer id>.json`` (grid, scale,
every trial, machine stamp) and used for every variant of every claim run of
that optimizer, random labels included: it is tuned once, on true labels,
never per claim. Runs go through the run store, so a repeated tuning step
only reads records. Cost at the smoke scale: 4 values x 5 passes, about
10 s of CPU on 2 cores (measured: see docs/check-your-optimizer.md).
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path

from .config import RunConfig, get_profile
from .optim import BUILTINS, OptimizerSpecError, code_fingerprint, spec_id, spec_kwargs

GRID = (1e-4, 1e-3, 1e-2, 1e-1)  # initial learning rates tried, one per decade
PASSES = 5  # passes over the tuning subset per trial
N_TEST = 1_000  # test images evaluated once per trial (the choice ignores them; kept small)
SEED = 0
GIVEN_LR = ("paper_sgd", "sgd")  # built-ins that use the paper's learning rates


class TuningError(RuntimeError):
    """No learning rate of the grid trained without diverging."""


def needs_tuning(spec: str) -> bool:
    """True for an optimizer without a given learning rate.

    The paper's SGD (and plain SGD) use the paper's rates; an imported
    factory whose spec sets ``lr=...`` has one; the other built-ins' 1e-3 and
    a factory's own default are conventions, not choices for this task.
    """
    if spec in GIVEN_LR:
        return False
    return spec in BUILTINS or "lr" not in spec_kwargs(spec)


def tuning_path(spec: str, root: Path | None = None) -> Path:
    from .store import results_dir

    safe = re.sub(r"[^\w.=-]+", "_", spec_id(spec)).strip("_") or "optimizer"
    return (root or results_dir()) / "tuning" / f"{safe}.json"


def base_config(data: str, device: str | None = None) -> RunConfig:
    """The tuning scale: the smoke tier's first model on `data` (a CIFAR-10 spec), on `device` if given."""
    smoke = get_profile("smoke")
    base = smoke.config(smoke.cifar_models[0], data=data)
    return base.replace(device=device) if device else base


def trial_config(base: RunConfig, spec: str, lr: float, passes: int = PASSES) -> RunConfig:
    """The run of one grid value: `base` on true labels, short, with this optimizer and lr."""
    return base.replace(optimizer=spec, lr=float(lr), variant="true", corruption=0.0, seed=SEED,
                        max_passes=passes, test_every=passes,
                        n_test=min(N_TEST, base.n_test) if base.n_test else N_TEST)


def _scale(base: RunConfig, passes: int) -> dict:
    values = trial_config(base, "-", 1.0, passes).to_dict()
    for name in ("optimizer", "lr"):
        values.pop(name)
    return values


def load_choice(spec: str, base: RunConfig, grid=GRID, passes: int = PASSES, root: Path | None = None) -> dict | None:
    """The recorded tuning of `spec` if it was made with this grid, budget and scale, else None."""
    path = tuning_path(spec, root)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    same = (record.get("optimizer") == spec and record.get("grid") == [float(v) for v in grid]
            and record.get("scale") == _scale(base, passes) and record.get("code") == code_fingerprint(spec))
    return record if same else None


def _score(record: dict) -> tuple | None:
    """Sort key of a trial (smaller is better), None if it diverged."""
    losses = (record.get("curves") or {}).get("loss") or []
    loss = losses[-1] if losses else None
    if record.get("outcome") == "diverged" or loss is None or not math.isfinite(loss):
        return None
    return (loss, -(record.get("train_accuracy") or 0.0))


def tune(spec: str, base: RunConfig, *, grid=GRID, passes: int = PASSES, fresh: bool = False,
         root: Path | None = None, progress=None) -> dict:
    """Choose `spec`'s learning rate (see the module docstring); returns the tuning record, saved.

    A record made with the same grid, budget and scale is reused unless `fresh`.
    `progress(text)` hears one line per trial.
    """
    from .store import cached_fit, machine_stamp, write_json_atomic

    if not fresh:
        record = load_choice(spec, base, grid, passes, root)
        if record is not None:
            record["reused"] = True
            return record
    trials = []
    for lr in grid:
        run = cached_fit(trial_config(base, spec, lr, passes), fresh=fresh, root=root)
        score = _score(run)
        trials.append({
            "lr": float(lr),
            "outcome": run["outcome"],
            "final_loss": score[0] if score else None,
            "train_accuracy": run.get("train_accuracy"),
            "passes": run.get("passes"),
            "train_seconds": run.get("train_seconds"),
            "run_key": run.get("key"),
        })
        if progress:
            loss = f"{score[0]:.4f}" if score else "diverged"
            progress(f"tuning {spec_id(spec)}: lr {lr:g} -> last-pass loss {loss}, "
                     f"train accuracy {run.get('train_accuracy') or 0:.4f}")
    usable = [(_score_of(t), t["lr"]) for t in trials if t["final_loss"] is not None]
    if not usable:
        raise TuningError(f"every learning rate of {list(grid)} diverged for {spec!r} on true labels")
    chosen = min(usable)[1]
    record = {
        "optimizer": spec,
        "id": spec_id(spec),
        "lr": chosen,
        "criterion": "lowest mean training loss over the last pass, true labels; diverged runs excluded; "
                     "ties: higher training accuracy, then smaller lr",
        "grid": [float(v) for v in grid],
        "passes": passes,
        "scale": _scale(base, passes),
        "code": code_fingerprint(spec),  # an edited optimizer is tuned again
        "trials": trials,
        "stamp": machine_stamp(base.device),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = tuning_path(spec, root)
    write_json_atomic(path, record)
    record["reused"] = False
    return record


def tune_session(specs, base: RunConfig, *, grid=GRID, fresh: bool = False, say=lambda line: None) -> dict:
    """--tune-lr: tune each of `specs` in turn; {spec: what the session file records of its choice}.

    `say(text)` hears each trial and each choice. A failure raises TuningError
    naming the optimizer.
    """
    from .data import DataError

    chosen = {}
    for spec in specs:
        try:
            record = tune(spec, base, grid=grid, fresh=fresh, progress=say)
        except (TuningError, DataError, OptimizerSpecError) as error:
            raise TuningError(f"learning-rate tuning of {spec!r} failed: {error}") from None
        path = tuning_path(spec)
        chosen[spec] = {"lr": record["lr"], "grid": record["grid"], "passes": record["passes"],
                        "file": str(path), "reused": record["reused"]}
        say(f"{spec_id(spec)} uses lr {record['lr']:g} ({'recorded' if record['reused'] else 'chosen now'}, {path})")
    return chosen


def _score_of(trial: dict) -> tuple:
    return (trial["final_loss"], -(trial["train_accuracy"] or 0.0))


def parse_grid(text: str) -> tuple[float, ...]:
    """'1e-4,1e-3,1e-2' -> (0.0001, 0.001, 0.01); a clear error otherwise."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"bad learning-rate grid {text!r}: expected positive numbers separated by commas")
    return values
