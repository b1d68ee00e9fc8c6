"""One learning rate per optimizer, chosen once by a short grid on true labels.

The paper's point is that the same hyperparameters serve true and random
labels. The paper's SGD has the paper's learning rates; an optimizer without
a given one (adam, adamw, rmsprop, or an imported factory whose spec does not
set ``lr``) gets one from this small tuning step, in the spirit of DeepOBS:

- scale: the smoke tier's first model (MLP 1x512) on its CIFAR-10 subset
  (5,000 images), TRUE labels only, seed 0, the profile's batch and schedule;
- grid: GRID, one per decade (override with ``--tune-lr-grid``), plus the
  optimizer's own default rate (a built-in's usual one, a factory's ``lr``
  default; NO_DEFAULT_LR where it has none), so its author's rate is tried;
- order: from that default outward, upward first (a faster rate fits in fewer
  passes, tightening the cap for the slower, costlier ones, or diverges in a
  pass or two), then downward. A direction stops at its first trial worse (by
  `_rank`; diverged or stalled is worst) than its neighbour nearer the start,
  upward also at a diverged or stalled one: the measure is ASSUMED unimodal in
  log lr. Values not run are listed under ``skipped``, each with its reason;
- budget: PASSES passes per value at most; each value after the first is
  stopped at the fewest passes to fit found so far, since it can only win by
  fitting in fewer (or as many, then by loss);
- choice: the fewest passes to 100% training accuracy on true labels; ties,
  and a grid where no value fits, go to the lowest mean training loss of the
  last pass, then the smaller lr. Why passes to fit and not the loss after a
  few passes: the claims ask for fitting, and the two disagree (a trial user
  found Lion's 5-pass loss best at 1e-3, where it fits neither label set in
  150 passes, while its default 1e-4 fits random labels in 19 passes).

A plan line (order, cap, bound: values x PASSES passes) comes first, the
seconds of the first pass once it ran, a line every PROGRESS_PASSES passes of
a trial, and every trial's outcome. A choice at the grid's edge, or one that
does not fit true labels, warns (`TuningWarning`). The choice is recorded in
``RESULTS/tuning/<optimizer id>.json`` (grid, scale, every trial with its
order, the values skipped, machine stamp) and used for every claim run of that
optimizer, random labels included. Runs go through the run store, so a
repeated tuning step only reads records; a record of the older format (every
value run, no order) is reused as it is: it saw every value.
Cost, measured (docs/results/tuning-bracket-cpu-2026-12-05, `measure.py
before|after --passes 60`, 2 shared CPU cores): a momentum SGD whose default
1.0 diverges took 152 passes (158 s) in the old sorted order, 59 (80 s)
bracketed; at 20 passes per trial, 65 against 45. Seconds there follow the
machine's load (0.26 to 3.3 s per pass); the plan line states the bound.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

from harness.core.config import RunConfig, get_profile
from harness.core.optim import (
    BUILTIN_OPTIMIZERS,
    BUILTINS,
    NO_DEFAULT_LR,
    PAPER_LR,
    OptimizerSpecError,
    builtin_name,
    code_fingerprint,
    import_factory,
    spec_id,
    spec_kwargs,
)

GRID = (1e-4, 1e-3, 1e-2, 1e-1)  # initial learning rates tried, one per decade
# Passes per trial at most: about twice the 27 passes the paper's SGD needs to fit
# the true labels of the tuning subset (measured on 2 cores), so a rate that fits
# true labels in this budget is no slower than the paper's optimizer by more than 2x.
PASSES = 60
PROGRESS_PASSES = 10  # a long trial says where it is every this many passes
N_TEST = 1_000  # test images evaluated once per trial (the choice ignores them; kept small)
SEED = 0
# Built-ins that use the paper's learning rates (their registry entry's default lr is the model's paper lr).
GIVEN_LR = tuple(name for name, entry in BUILTIN_OPTIMIZERS.items() if entry.default_lr == PAPER_LR)


class TuningError(RuntimeError):
    """No learning rate of the grid trained without diverging."""


class TuningWarning(UserWarning):
    """The chosen rate sits at the grid's edge, or does not fit true labels within the trial budget."""


def default_lr(spec: str) -> float | None:
    """The optimizer's own default learning rate: a built-in's usual one, else its factory's `lr` default.

    None where there is none to read (no `lr` parameter, no numeric default).
    """
    if builtin_name(spec):
        return RunConfig(optimizer=builtin_name(spec)).learning_rate
    try:
        parameter = inspect.signature(import_factory(spec)).parameters.get("lr")
    except (OptimizerSpecError, TypeError, ValueError):  # not importable, no optimizer factory, or no signature
        return None
    default = getattr(parameter, "default", None)
    if isinstance(default, (int, float)) and not isinstance(default, bool) and math.isfinite(default) and default > 0:
        return float(default)
    return None


def tuning_grid(spec: str, grid=GRID) -> tuple[float, ...]:
    """The values tried for `spec`: the grid and its start (`start_lr`), ascending, each once."""
    return tuple(sorted({float(v) for v in grid} | {start_lr(spec)}))


def start_lr(spec: str) -> float:
    """Where tuning starts: the optimizer's default rate, else NO_DEFAULT_LR."""
    own = default_lr(spec)
    return NO_DEFAULT_LR if own is None else own


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
    from harness.core.store import results_dir

    safe = re.sub(r"[^\w.=-]+", "_", spec_id(spec)).strip("_") or "optimizer"
    return (root or results_dir()) / "tuning" / f"{safe}.json"


def base_config(data: str, device: str | None = None) -> RunConfig:
    """The tuning scale: the smoke tier's first model on `data` (a CIFAR-10 spec), on `device` if given."""
    smoke = get_profile("smoke")
    base = smoke.config(smoke.cifar_models[0], data=data)
    return base.replace(device=device) if device else base


def trial_config(base: RunConfig, spec: str, lr: float, passes: int = PASSES) -> RunConfig:
    """The run of one grid value: `base` on true labels, short, with this optimizer and lr."""
    return base.replace(
        optimizer=spec,
        lr=float(lr),
        variant="true",
        corruption=0.0,
        seed=SEED,
        max_passes=passes,
        test_every=passes,
        n_test=min(N_TEST, base.n_test) if base.n_test else N_TEST,
    )


def _scale(base: RunConfig, passes: int) -> dict:
    values = trial_config(base, "-", 1.0, passes).to_dict()
    for name in ("optimizer", "lr"):
        values.pop(name)
    return values


def load_choice(spec: str, base: RunConfig, grid=GRID, passes: int = PASSES, root: Path | None = None) -> dict | None:
    """The recorded tuning of `spec` if it was made with this grid, budget and scale, else None.

    A damaged file (unreadable, not JSON, not a tuning record) and a record
    whose lr is not one of the values this grid tries (a rate of 1e9, -1 or
    NaN written by hand) are passed over with a `TuningWarning` naming the
    file: the optimizer is tuned again and the file replaced.
    """
    path = tuning_path(spec, root)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:  # unreadable, not UTF-8 or not JSON
        _skip(path, f"it cannot be read as JSON ({error})")
        return None
    if not isinstance(record, dict):
        _skip(path, f"it is not a tuning record (a JSON {type(record).__name__}, not an object)")
        return None
    same = (
        record.get("optimizer") == spec
        and record.get("grid") == [float(v) for v in grid]
        and record.get("scale") == _scale(base, passes)
        and record.get("code") == code_fingerprint(spec)
    )
    if not same:
        return None
    lr, values = record.get("lr"), tuning_grid(spec, grid)
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr in values):
        _skip(path, f"its lr {lr!r} is not one of the values tried ({', '.join(f'{v:g}' for v in values)})")
        return None
    if not isinstance(record.get("passes"), int) or not isinstance(record.get("id"), str):
        _skip(path, "it lacks the passes or id of a tuning record")
        return None
    return record


def _skip(path: Path, why: str) -> None:
    warnings.warn(f"tuning file {path} skipped: {why}; the optimizer is tuned again", TuningWarning, stacklevel=3)


def _trial(lr: float, run: dict) -> dict:
    """What the tuning record keeps of one trial run."""
    losses = (run.get("curves") or {}).get("loss") or []
    loss = losses[-1] if losses else None
    usable = (
        run.get("outcome") not in ("diverged", "stalled", "not_fittable", "error")
        and loss is not None
        and math.isfinite(loss)
    )
    return {
        "lr": float(lr),
        "outcome": run["outcome"],
        "passes_to_fit": run.get("passes_to_fit"),
        "passes": run.get("passes"),
        "final_loss": loss if usable else None,
        "train_accuracy": run.get("train_accuracy"),
        "train_seconds": run.get("train_seconds"),
        "run_key": run.get("key"),
    }


def _rank(trial: dict) -> tuple | None:
    """Sort key of a trial (smaller is better): fitted first by passes, then loss, then lr; None if unusable."""
    if trial["final_loss"] is None:
        return None
    passes = trial["passes_to_fit"] if trial["outcome"] == "fitted" else math.inf
    return (passes, trial["final_loss"], trial["lr"])


def _worse(trial: dict, than: dict) -> bool:
    """Whether `trial` ranks below `than` (unusable is worst; passes to fit, then loss; lr not compared)."""
    return _rank(than) is not None and (_rank(trial) is None or _rank(trial)[:2] > _rank(than)[:2])


def _listed(values) -> str:
    return ", ".join(f"{v:g}" for v in values) or "none"


def _describe_trial(spec: str, trial: dict) -> str:
    if trial["outcome"] == "fitted":
        what = f"fits true labels in {trial['passes_to_fit']} passes"
    elif trial["final_loss"] is None:
        what = f"{trial['outcome']} after {trial['passes']} passes"
    else:
        what = f"not fitted in {trial['passes']} passes (train accuracy {trial['train_accuracy'] or 0:.4f})"
    loss = "" if trial["final_loss"] is None else f", last-pass loss {trial['final_loss']:.4f}"
    return f"tuning {spec_id(spec)}: lr {trial['lr']:g} {what}{loss}"


def tune(
    spec: str,
    base: RunConfig,
    *,
    grid=GRID,
    passes: int = PASSES,
    fresh: bool = False,
    root: Path | None = None,
    progress=None,
) -> dict:
    """Choose `spec`'s learning rate (see the module docstring); returns the tuning record, saved.

    A record made with the same grid, budget and scale is reused unless `fresh`.
    `progress(text)` hears the plan, the cost per pass once measured, a line every
    PROGRESS_PASSES passes of a trial, one per trial and one per skip. Warns (TuningWarning) when the
    choice sits at the edge of the values tried or does not fit true labels.
    """
    from harness.core.formatting import fmt_duration
    from harness.core.runner import cached_fit
    from harness.core.store import machine_stamp, write_json_atomic

    if not fresh:
        record = load_choice(spec, base, grid, passes, root)
        if record is not None:
            record["reused"] = True
            return record
    values, start, name, say = tuning_grid(spec, grid), start_lr(spec), spec_id(spec), progress or (lambda _: None)
    above, below = [v for v in values if v > start], [v for v in reversed(values) if v < start]
    say(
        f"tuning {name}: from lr {start:g} up ({_listed(above)}), then down ({_listed(below)}), each direction "
        f"stopped at its first trial worse than the one before, each trial at the fewest passes to fit so far; "
        f"at most {len(values)} trials x {passes} passes"
    )
    trials, skipped, best, measured = [], [], passes, []

    def heard(lr: float):
        def state(now: dict) -> None:
            if not measured:  # the first pass trained here: the cost per pass, measured
                measured.append(now["train_seconds"] + now["eval_seconds"])
                images = now["train_checked"] if now.get("train_whole") else (base.n_train or "all")
                say(
                    f"tuning {name}: one pass of {base.model} on {images} images takes about {measured[0]:.2f} s "
                    f"here: the bound is about {fmt_duration(len(values) * passes * measured[0])}"
                )
            if now["pass"] % PROGRESS_PASSES == 0 and now["pass"] < now["max_passes"]:
                say(f"tuning {name}: lr {lr:g} pass {now['pass']}/{now['max_passes']}, loss {now['loss']:.4f}")

        return state

    def run_trial(lr: float) -> dict:
        nonlocal best
        run = cached_fit(trial_config(base, spec, lr, best), fresh=fresh, root=root, progress=heard(lr))
        trial = {**_trial(lr, run), "order": len(trials) + 1}
        trials.append(trial)
        if trial["outcome"] == "fitted":
            best = min(best, trial["passes_to_fit"])
        say(_describe_trial(spec, trial))
        return trial

    first = run_trial(start)
    for rest, upward in ((above, True), (below, False)):
        nearer, previous = first, None
        for index, lr in enumerate(rest):
            if upward and _rank(nearer) is None:
                why = f"above lr {nearer['lr']:g}, which {nearer['outcome']}: assumed no better"
            elif previous is not None and _worse(nearer, previous):
                why = f"beyond lr {nearer['lr']:g}, worse than lr {previous['lr']:g}: assumed unimodal in log lr"
            else:
                previous, nearer = nearer, run_trial(lr)
                continue
            skipped += [{"lr": value, "why": why} for value in rest[index:]]
            say(f"tuning {name}: lr {_listed(rest[index:])} skipped, {why}")
            break
    usable = [(_rank(t), t) for t in trials if _rank(t) is not None]
    if not usable:
        raise TuningError(f"every learning rate of {list(values)} diverged or stalled for {spec!r} on true labels")
    chosen = min(usable, key=lambda pair: pair[0])[1]
    record = {
        "optimizer": spec,
        "id": spec_id(spec),
        "lr": chosen["lr"],
        "fits_true_labels": chosen["outcome"] == "fitted",
        "criterion": "fewest passes to fit true labels (100% training accuracy), trials capped at the best so far "
        "and bracketed from the default outward; "
        "ties and unfitted grids: lowest last-pass training loss, then smaller lr; diverged and "
        "stalled runs excluded",
        "grid": [float(v) for v in grid],
        "values_tried": list(values),
        "default_lr": default_lr(spec),
        "start_lr": start,
        "skipped": skipped,
        "passes": passes,
        "scale": _scale(base, passes),
        "code": code_fingerprint(spec),  # an edited optimizer is tuned again
        "trials": sorted(trials, key=lambda t: t["lr"]),
        "stamp": machine_stamp(base.device),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = tuning_path(spec, root)
    write_json_atomic(path, record)
    record["reused"] = False
    for line in choice_warnings(record):
        warnings.warn(line, TuningWarning, stacklevel=2)
    return record


def choice_warnings(record: dict) -> list[str]:
    """What is doubtful about a tuning choice, one line each (empty when nothing is)."""
    lines = []
    values, lr = record.get("values_tried") or record["grid"], record["lr"]
    if len(values) > 1 and lr in (min(values), max(values)):
        lines.append(
            f"{record['id']}: the chosen lr {lr:g} is at the edge of the values tried "
            f"({min(values):g}..{max(values):g}); widen --tune-lr-grid to see past it"
        )
    if not record.get("fits_true_labels", True):
        lines.append(
            f"{record['id']}: no lr tried fits true labels within {record['passes']} passes at the "
            f"tuning scale; the claims will run at lr {lr:g}, chosen by loss"
        )
    return lines


def tune_session(specs, base: RunConfig, *, grid=GRID, fresh: bool = False, say=lambda line: None) -> dict:
    """--tune-lr: tune each of `specs` in turn; {spec: what the session file records of its choice}.

    `say(text)` hears each trial and each choice. A failure raises TuningError
    naming the optimizer.
    """
    from harness.core.data import DataError

    chosen = {}
    for spec in specs:
        started = time.perf_counter()
        try:
            record = tune(spec, base, grid=grid, fresh=fresh, progress=say)
        except (TuningError, DataError, OptimizerSpecError) as error:
            raise TuningError(f"learning-rate tuning of {spec!r} failed: {error}") from None
        path = tuning_path(spec)
        chosen[spec] = {
            "lr": record["lr"],
            "grid": record["grid"],
            "passes": record["passes"],
            "file": str(path),
            "reused": record["reused"],
            "seconds": time.perf_counter() - started,  # this session's wall time on it (reading a recorded choice: ~0)
            "warnings": choice_warnings(record),
        }
        say(f"{spec_id(spec)} uses lr {record['lr']:g} ({'recorded' if record['reused'] else 'chosen now'}, {path})")
        for line in chosen[spec]["warnings"]:
            say(f"warning: {line}")
    return chosen


def time_reference(spec: str, base: RunConfig, *, fresh: bool = False, root: Path | None = None) -> dict:
    """One trial of an optimizer with a given rate (the paper's SGD) at the tuning scale, recorded like a tuning
    (`tuning_path`, ``"timed_only": true``): the seconds per pass the tuned optimizers' are compared with, so a
    session can estimate a new optimizer's runs from the reference's measured ones (harness.suite.history).
    The run goes through the run store: trained once per scale, code and machine. Returns the record."""
    from harness.core.runner import cached_fit
    from harness.core.store import machine_stamp, write_json_atomic

    lr = base.replace(optimizer=spec).learning_rate
    run = cached_fit(trial_config(base, spec, lr), fresh=fresh, root=root)
    record = {
        "optimizer": spec,
        "id": spec_id(spec),
        "lr": lr,
        "timed_only": True,  # not a choice: the rate is the optimizer's own (the paper's)
        "scale": _scale(base, PASSES),
        "code": code_fingerprint(spec),
        "trials": [_trial(lr, run)],
        "stamp": machine_stamp(base.device),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(tuning_path(spec, root), record)
    return record


def parse_grid(text: str) -> tuple[float, ...]:
    """'1e-4,1e-3,1e-2' -> (0.0001, 0.001, 0.01); a clear error otherwise."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"bad learning-rate grid {text!r}: expected positive numbers separated by commas")
    return values
