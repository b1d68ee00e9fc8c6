"""Run records on disk: append-only JSON, atomic, stamped, found by config hash.

Layout: ``RESULTS/runs/<key>/<utc time>.json``, one file per finished run;
the newest complete record answers a config. A fresh run adds a file and
never replaces one. A file answers only for the run it describes: its
config and data fingerprint must hash to its folder's key and its figures
must agree with its own curves; any other file (copied from another run's
folder, edited by hand, not a record) is skipped with a
`RecordIgnoredWarning` naming it. Records are ordered by the store itself,
not by clocks: each saved record's ``stamp.store_seq`` is one more than any
under its key, given under the run's lock, and the newest record is the one
with the highest; a record whose ``finished_at`` lies in the future (a
machine whose clock runs ahead, a planted file) is warned about and ranks
below every other. ``RESULTS`` is ``$HARNESS_RESULTS_DIR`` or
``.harness-results`` in the working directory. Beside the records, while a
run trains (harness.core.runner trains it): ``locks/<key>.lock`` (one trainer per run across processes),
``live/<key>.log`` (its progress) and ``checkpoints/<key>.pt`` (its state
after the last pass, see harness.core.checkpoint; a run killed hard resumes
from it).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
import warnings
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from harness.core.config import RunConfig
from harness.core.data import KNOWN_ARRAYS_FILES, KNOWN_FOLDER_CONTENT
from harness.core.evidence import REQUIRED_ITEMS
from harness.core.prepare import load_raw_cached
from harness.core.record import NOISE_CURVES, RUN_SEMANTICS_VERSION, write_json_atomic

# "interrupted" and "error" (a pass raised: the optimizer's error, CUDA out of memory) are kept but never
# reused (an error may be the machine's); "stalled" (no parameter moved in a pass) and "not_fittable"
# (identical inputs with different labels, refused before training) are: the same config and data give
# the same outcome.
REUSABLE = ("fitted", "out_of_budget", "diverged", "stalled", "not_fittable")
OUTCOMES = REUSABLE + ("interrupted", "error")


# Each record field the claims read (harness.core.record.CLAIM_FIELDS) and what the store holds
# it to before trusting the record (`untrusted_because`), so that no figure a claim reads can
# disagree with the curves and the evidence it came with.
CLAIM_FIELD_CHECKS = {
    "config": "hashes, with the data fingerprint, to the record's own run key",
    "data_source": "a known dataset's name only for that dataset's fingerprint, and that name for it",
    "outcome": "one of OUTCOMES; fitted exactly when passes_to_fit is set, with training accuracy at the target",
    "passes": "the length of every curve",
    "passes_to_fit": "the first pass whose whole-set reading reaches the target, which is the last pass; "
    "None when not fitted",
    "steps_per_pass": "ceil(n_train / batch_size)",
    "steps_to_fit": "passes_to_fit x steps_per_pass; None when not fitted",
    "train_accuracy": "the training curve's last reading",
    "test_accuracy": "the test curve's last reading, and the final confusion's diagonal share",
    "best_test_accuracy": "the largest reading of the test curve",
    "n_train": "the evidence's count of training images; no reading is over more",
    "n_test": "the evidence's count of test images; the test label counts add up to it",
    "labels_changed": "the evidence's recount of training labels that differ from the dataset's",
    "train_seconds": "the sum of the per-pass training seconds",
    "test_confusion": "K x K counts whose rows add up to the test label counts",
}
# The same for the curves the claims read (harness.core.record.CLAIM_CURVES).
CLAIM_CURVE_CHECKS = {
    "train_accuracy": "one reading per pass; no whole-set reading before the last pass reaches the target",
    "test_accuracy": "readings exactly at the passes the schedule measures: every test_every passes and the last",
    "train_accuracy_clean": "with the corrupted curve, weighted by labels_changed, gives each whole-set reading",
    "train_accuracy_corrupted": "with the clean curve, weighted by labels_changed, gives each whole-set reading",
}


class RecordIgnoredWarning(UserWarning):
    """A file under a run's key was not trusted as its record (it names the file and why); it is never reused."""


class RecordFromTheFutureWarning(UserWarning):
    """A record says it finished later than now (beyond FUTURE_TOLERANCE_SECONDS): it ranks oldest, never newest."""


# How far a record's finished_at may lie ahead of this machine's clock before it counts as from the future.
FUTURE_TOLERANCE_SECONDS = 300.0


def results_dir() -> Path:
    return Path(os.environ.get("HARNESS_RESULTS_DIR", ".harness-results")).expanduser()


def has_record(key: str, root: Path | None = None) -> bool:
    """Whether the store holds a record file under `key` (not read: `latest_record` says whether it answers)."""
    return any(((root or results_dir()) / "runs" / key).glob("*.json"))


def latest_record(
    key: str, root: Path | None = None, required: tuple[str, ...] = (), code: str | None = None
) -> dict | None:
    """The newest reusable record under `key`, or None.

    Newest: by the store's own order (`record_order`): the highest
    ``stamp.store_seq``, given when the record was saved; records without
    one (older code) rank below every record with one, among themselves by
    `finished_at` then file name. A record whose `finished_at` is later than
    now plus FUTURE_TOLERANCE_SECONDS ranks below all others, with a
    `RecordFromTheFutureWarning` naming it.
    Reusable: trusted (see `untrusted_because`) and outcome in REUSABLE. A
    file that is unreadable, not JSON or untrusted is skipped with a
    `RecordIgnoredWarning` naming it and why (records are written
    atomically, so such a file came from elsewhere); an interrupted run's
    record is skipped silently.
    required: record fields the caller needs; a record made before they
    existed (e.g. `test_confusion`) is not reused, so the run is trained anew.
    code: where given, only a record stamped with this run-code fingerprint
    (``stamp.run_code``, harness.core.code_identity) answers; others are
    passed over silently (made by other code, not damaged).
    """
    folder = (root or results_dir()) / "runs" / key
    candidates = []
    now = time.time()
    for path in folder.glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as error:  # unreadable, not UTF-8 or not JSON: the store never writes one
            problem = f"it cannot be read as JSON ({error})"
        else:
            problem = untrusted_because(record, key)
        if problem:
            warnings.warn(f"run record {path} ignored: {problem}", RecordIgnoredWarning, stacklevel=2)
        elif (
            record["outcome"] in REUSABLE
            and all(field in record for field in required)
            and (code is None or (record.get("stamp") or {}).get("run_code") == code)
        ):
            order = record_order(record, path.name, now)
            if order[0] == -math.inf:
                warnings.warn(
                    f"run record {path} says it finished at {record['finished_at']!r}, later than this machine's "
                    f"clock (plus {FUTURE_TOLERANCE_SECONDS:g} s): ranked oldest (a clock running ahead, or a "
                    "planted file)",
                    RecordFromTheFutureWarning,
                    stacklevel=2,
                )
            candidates.append((order, record))
    if not candidates:
        return None
    return max(candidates, key=lambda candidate: candidate[0])[1]


def record_order(record: dict, name: str, now: float | None = None) -> tuple:
    """Where `record` (saved as file `name`) stands in its key's order: larger is newer.

    (tier, store_seq, finished_at, name): tier 1 for a record with a store
    sequence number, 0 for one without (older code), -inf for one from the
    future (finished_at beyond now + FUTURE_TOLERANCE_SECONDS).
    """
    finished = _finished_at(record)
    now = time.time() if now is None else now
    if finished > now + FUTURE_TOLERANCE_SECONDS:
        return (-math.inf, -1, -math.inf, name)
    seq = store_seq(record)
    return (0 if seq is None else 1, -1 if seq is None else seq, finished, name)


def store_seq(record) -> int | None:
    """The sequence number the store gave `record` when it saved it (``stamp.store_seq``), or None."""
    stamp = record.get("stamp") if isinstance(record, dict) else None
    seq = stamp.get("store_seq") if isinstance(stamp, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1 else None


def _finished_at(record: dict) -> float:
    finished = record.get("finished_at")
    return float(finished) if isinstance(finished, (int, float)) and not isinstance(finished, bool) else -math.inf


def untrusted_because(record, key: str) -> str | None:
    """Why `record` (a parsed JSON file) may not answer for run `key`, or None when it may.

    It must be a JSON object with one of the OUTCOMES, a config and a data
    fingerprint that hash to `key` under this code (`record_key`), a numeric
    or absent `finished_at`, summary figures equal to its own curves' (see
    `_figures_disagree`), and evidence that holds and agrees with its figures
    (see `_evidence_disagrees`): together, every field of CLAIM_FIELD_CHECKS.
    """
    if not isinstance(record, dict):
        return f"it is not a record (a JSON {type(record).__name__}, not an object)"
    if record.get("outcome") not in OUTCOMES:
        return f"its outcome {record.get('outcome')!r} is none of {', '.join(OUTCOMES)}"
    if not isinstance(record.get("config"), dict):
        return "it has no config"
    if not isinstance(record.get("data_fingerprint"), str):
        return "it has no data fingerprint"
    try:
        own_key = record_key(record)
    except (TypeError, ValueError) as error:
        return f"its config and data do not name a run ({error})"
    if own_key != key:
        return f"its config and data fingerprint hash to run {own_key}, not {key} (a record of another run)"
    if "finished_at" in record and _finished_at(record) == -math.inf:
        return f"its finished_at {record['finished_at']!r} is not a time"
    figures = _figures_disagree(record)
    if figures is not None:
        return figures
    try:
        return _evidence_disagrees(record)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as error:  # a field of the wrong kind
        return f"its evidence cannot be read as a run's ({type(error).__name__}: {error})"


def _figures_disagree(record: dict) -> str | None:
    """Why `record`'s summary figures contradict its curves, or None when they agree.

    passes == len(curves["loss"]); train_accuracy and test_accuracy equal the
    last entries of their curves (None after no pass); a "fitted" run's
    train_accuracy reaches its config's target_accuracy; and the figures
    of `_schedule_disagrees` (passes and steps to fit, best test accuracy,
    the test readings' passes, the final confusion, train seconds, the
    data's name).
    """
    curves = record.get("curves")
    names = ("loss", "train_accuracy", "test_accuracy")
    if not isinstance(curves, dict) or not all(isinstance(curves.get(name), list) for name in names):
        return "it has no loss and accuracy curves"
    passes = len(curves["loss"])
    if any(len(curves[name]) != passes for name in names):
        return "its loss and accuracy curves differ in length"
    if record.get("passes") != passes:
        return f"it says {record.get('passes')!r} passes, its loss curve has {passes}"
    for name in ("train_accuracy", "test_accuracy"):
        last = curves[name][-1] if passes else None
        if not _same_number(record.get(name), last):
            return f"its {name} {record.get(name)!r} is not its curve's last value {last!r}"
    if record["outcome"] == "fitted":
        target = RunConfig.from_dict(record["config"]).target_accuracy
        accuracy = record["train_accuracy"]
        if not isinstance(accuracy, (int, float)) or not accuracy >= target:  # NaN is no fit either
            return f"it says fitted at training accuracy {accuracy!r}, below its target {target}"
    try:
        return _schedule_disagrees(record, curves, passes)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as error:  # a field of the wrong kind
        return f"its figures cannot be read as a run's ({type(error).__name__}: {error})"


def _schedule_disagrees(record: dict, curves: dict, passes: int) -> str | None:
    """Why the figures a claim reads contradict the training loop's rules over these curves, or None.

    The rules are train.py's (and batched.py's): a run stops at the first
    pass whose whole-set reading (train_checked == n_train) reaches the
    target, so that pass is the last and passes_to_fit names it; the test
    set is read every test_every passes and at the last pass (an
    interrupted run's last pass may hold a reading or not).
    """
    config = RunConfig.from_dict(record["config"])
    n_train, outcome = record.get("n_train"), record["outcome"]
    if not _is_count(n_train) or not _is_count(record.get("n_test")):
        return f"its n_train {n_train!r} and n_test {record.get('n_test')!r} are not image counts"
    if passes and record.get("steps_per_pass") != math.ceil(n_train / config.batch_size):
        return (
            f"its steps_per_pass {record.get('steps_per_pass')!r} is not ceil({n_train} / batch size "
            f"{config.batch_size})"
        )
    # Older code checked the whole set every pass and kept no train_checked curve.
    checked = curves.get("train_checked", [n_train] * passes)
    if len(checked) != passes or any(not _is_count(count) or count > n_train for count in checked):
        return f"its train_checked curve is not {passes} counts of at most n_train {n_train}"
    reached = [
        number
        for number, (count, accuracy) in enumerate(zip(checked, curves["train_accuracy"]), start=1)
        if count == n_train and isinstance(accuracy, (int, float)) and accuracy >= config.target_accuracy
    ]
    if reached and reached[0] < passes:
        return (
            f"its whole training set reached the target {config.target_accuracy} at pass {reached[0]}, "
            f"yet it trained {passes} passes"
        )
    passes_to_fit = record.get("passes_to_fit")
    if outcome == "fitted":
        if passes_to_fit != passes or not reached:
            return (
                f"its passes_to_fit {passes_to_fit!r} is not the pass its whole training set reached the target "
                f"({reached[0] if reached else 'none'})"
            )
    elif passes_to_fit is not None:
        return f"it says passes_to_fit {passes_to_fit!r} for a run that ended {outcome}"
    elif reached and outcome in ("out_of_budget", "stalled"):
        return f"it ended {outcome} though its whole training set reached the target at pass {reached[0]}"
    steps = passes_to_fit * record.get("steps_per_pass") if passes_to_fit else None
    if record.get("steps_to_fit") != steps:
        return f"its steps_to_fit {record.get('steps_to_fit')!r} is not passes_to_fit x steps_per_pass ({steps!r})"
    return _test_readings_disagree(record, curves, passes, config) or _names_disagree(record, curves)


def _test_readings_disagree(record: dict, curves: dict, passes: int, config: RunConfig) -> str | None:
    """The test curve's readings against the schedule, best_test_accuracy and the final confusion."""
    readings = curves["test_accuracy"]
    measured = [number for number, reading in enumerate(readings, start=1) if reading is not None]
    scheduled = [number for number in range(1, passes + 1) if number % config.test_every == 0 or number == passes]
    if record["outcome"] == "interrupted":  # stopped after a pass that may or may not have read the test set
        scheduled = [number for number in scheduled if number < passes] + [n for n in measured if n == passes]
    if measured != scheduled:
        return (
            f"its test curve has {len(measured)} readings, at passes {_passes_list(measured)}; its schedule "
            f"(every {config.test_every} passes and the last) reads at {_passes_list(scheduled)}"
        )
    best = max((readings[number - 1] for number in measured), default=None)
    if not _same_number(record.get("best_test_accuracy"), best):
        return f"its best_test_accuracy {record.get('best_test_accuracy')!r} is not its test curve's best {best!r}"
    label_counts = record.get("test_label_counts")
    if label_counts is not None and sum(label_counts) != record["n_test"]:
        return f"its test label counts add up to {sum(label_counts)}, not its n_test {record['n_test']}"
    confusion = record.get("test_confusion")
    if confusion is None:
        return None
    classes = len(confusion)
    if any(len(row) != classes or any(not _is_count(count, 0) for count in row) for row in confusion):
        return "its test_confusion is not a square table of counts"
    if sum(map(sum, confusion)) != record["n_test"] or (
        label_counts is not None and [sum(row) for row in confusion] != label_counts
    ):
        return f"its test_confusion counts {sum(map(sum, confusion))} images by class unlike its test label counts"
    predicted = record.get("test_prediction_counts")
    if predicted is not None and [sum(row[k] for row in confusion) for k in range(classes)] != predicted:
        return "its test_confusion's columns do not add up to its test prediction counts"
    final = record.get("test_accuracy")
    diagonal = sum(confusion[k][k] for k in range(classes)) / record["n_test"]
    if not isinstance(final, (int, float)) or not math.isclose(final, diagonal, rel_tol=1e-12, abs_tol=1e-12):
        return f"its test_accuracy {final!r} is not its final confusion's diagonal share {diagonal!r}"
    return None


def _names_disagree(record: dict, curves: dict) -> str | None:
    """train_seconds against its curve (where kept), and the data's name against its fingerprint."""
    if "train_seconds" in curves:
        total = sum(curves["train_seconds"])
        if not isinstance(record.get("train_seconds"), (int, float)) or not math.isclose(
            record["train_seconds"], total, rel_tol=1e-9, abs_tol=1e-9
        ):
            return f"its train_seconds {record.get('train_seconds')!r} is not its curve's sum {total!r}"
    known = {**KNOWN_ARRAYS_FILES, **KNOWN_FOLDER_CONTENT}
    named = known.get(str(record.get("data_fingerprint", "")).removeprefix("sha256:"))
    source = record.get("data_source")
    if (named is not None and source != named) or (named is None and source in known.values()):
        return f"its data_source {source!r} is not the name of the data its fingerprint identifies ({named!r})"
    return None


def _evidence_disagrees(record: dict) -> str | None:
    """Why `record`'s evidence is missing, does not hold, or disagrees with its figures, or None.

    Every item of harness.core.evidence.REQUIRED_ITEMS is there and every
    item holds; labels_changed, n_train and n_test are the evidence's
    counts; the curves the loop keeps per pass (train_seconds, and the clean
    and corrupted readings where kept) have one entry per pass; and on each
    whole-set pass the clean and corrupted readings, weighted by the
    changed labels, give the training reading.
    """
    found = record.get("evidence")
    if not isinstance(found, dict) or any(not isinstance(found.get(name), dict) for name in REQUIRED_ITEMS):
        missing = [name for name in REQUIRED_ITEMS if not isinstance(found, dict) or name not in found]
        return f"it carries no evidence that its variant and settings took effect (lacks {', '.join(missing)})"
    for name, item in found.items():
        if not isinstance(item, dict) or item.get("holds") is not True:
            expected = item.get("expected") if isinstance(item, dict) else None
            return f"its evidence {name} does not hold (measured {_measured(item)!r}, expected {expected!r})"
    for field, item in (("labels_changed", "labels"), ("n_train", "n_train"), ("n_test", "n_test")):
        if record.get(field) != found[item].get("measured"):
            return f"its {field} {record.get(field)!r} is not its evidence's {found[item].get('measured')!r}"
    curves, passes = record["curves"], record["passes"]
    for name in ("train_seconds", *NOISE_CURVES):
        if (name == "train_seconds" or name in curves) and len(curves.get(name) or ()) != passes:
            return f"its {name} curve does not have one entry for each of its {passes} passes"
    if "train_accuracy_clean" in curves or "train_accuracy_corrupted" in curves:
        return _noise_curves_disagree(record, curves)
    return None


def _noise_curves_disagree(record: dict, curves: dict) -> str | None:
    """On every whole-set pass: clean x kept labels + corrupted x changed labels = training reading x n_train."""
    n, changed = record["n_train"], record["labels_changed"]
    checked = curves.get("train_checked", [n] * record["passes"])
    rows = zip(checked, curves["train_accuracy"], curves["train_accuracy_clean"], curves["train_accuracy_corrupted"])
    for number, (count, accuracy, clean, corrupted) in enumerate(rows, start=1):
        if count != n:
            continue  # a sampled reading: its groups are the sample's members
        if not all(isinstance(value, (int, float)) for value in (accuracy, clean, corrupted)):
            return f"its pass {number} lacks a clean or corrupted reading"
        if abs(clean * (n - changed) + corrupted * changed - accuracy * n) > 1e-6:
            return (
                f"its pass {number} reads {clean!r} on kept and {corrupted!r} on changed labels, which with "
                f"{changed} of {n} labels changed is not its training reading {accuracy!r}"
            )
    return None


def _measured(item):
    return item.get("measured") if isinstance(item, dict) else item


def _is_count(value, least: int = 1) -> bool:
    """An int (not a bool) of at least `least`."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _passes_list(numbers: list[int], shown: int = 8) -> str:
    """'5, 10, 15, ...': pass numbers for a message."""
    return ", ".join(map(str, numbers[:shown])) + (", ..." if len(numbers) > shown else "") if numbers else "none"


def _same_number(a, b) -> bool:
    """a == b, with NaN equal to NaN (JSON keeps a diverged run's NaN)."""
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return both_nan or a == b


def save_record(record: dict, root: Path | None = None) -> Path:
    """Write `record` as a new file under its key; sets ``record["stamp"]["store_seq"]`` (see `next_store_seq`).

    harness.core.runner.cached_fit calls it holding the run's lock, so two records of one key never share a number.
    """
    folder = (root or results_dir()) / "runs" / record["key"]
    stamp = dict(record.get("stamp") or {})
    stamp["store_seq"] = next_store_seq(folder)
    record["stamp"] = stamp
    name = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{name}.json"
    if path.exists():  # the name is only for people; a new record never replaces one
        path = folder / f"{name}-{stamp['store_seq']}.json"
    write_json_atomic(path, record)
    return path


def next_store_seq(folder: Path) -> int:
    """One more than the highest ``stamp.store_seq`` of the JSON files in `folder` (1 for none): the store's order."""
    highest = 0
    for path in folder.glob("*.json"):
        try:
            seq = store_seq(json.loads(path.read_text()))
        except (OSError, ValueError):  # damaged or vanished: it holds no number
            continue
        highest = max(highest, seq or 0)
    return highest + 1


def run_key(config: RunConfig) -> str:
    """The config's hash with the data's bytes, the optimizer's code and the harness's run semantics."""
    raw = load_raw_cached(config.data)
    config = _whole_sets_unset(config, len(raw.train_y), len(raw.test_y))
    return config.key(_identity(raw.fingerprint, config.optimizer))


def record_key(record: dict) -> str:
    """The run key `record`'s own config and data fingerprint hash to under this code, as `run_key` computes it.

    The data is named by the record's fingerprint, so a record of the same
    data read from another path (or from a path since gone) keeps its key.
    Raises TypeError or ValueError for a config that is not a run's.
    """
    config = RunConfig.from_dict(record["config"])
    fingerprint = record["data_fingerprint"]
    train_size = _set_size(config, record, fingerprint, "n_train")
    test_size = _set_size(config, record, fingerprint, "n_test")
    config = _whole_sets_unset(config, train_size, test_size)
    return config.key(_identity(fingerprint, config.optimizer))


def _identity(data_fingerprint: str, optimizer: str) -> str:
    from harness.core.optim import code_fingerprint

    return f"{data_fingerprint}|{code_fingerprint(optimizer)}|semantics {RUN_SEMANTICS_VERSION}"


def _whole_sets_unset(config: RunConfig, train_size: int | None, test_size: int | None) -> RunConfig:
    """A subset as large as the set is the whole set (data.subset_indices): one run, one key.

    train_size, test_size: the sets' sizes in images; None where unknown (the subset is kept).
    """
    changes = {}
    if config.n_train is not None and train_size is not None and config.n_train >= train_size:
        changes["n_train"] = None
    if config.n_test is not None and test_size is not None and config.n_test >= test_size:
        changes["n_test"] = None
    # from_dict, not replace: a stored record's config is read as written, not held to today's checks.
    return RunConfig.from_dict({**config.to_dict(), **changes}) if changes else config


def _set_size(config: RunConfig, record: dict, fingerprint: str, field: str) -> int | None:
    """The size of the set a record's `field` ("n_train", "n_test") subsets, as far as the record tells.

    A record that used fewer images than its config asked for used the whole
    set. One that used exactly as many is a subset or the whole set: the data
    itself, read from the config's path when it still holds these bytes,
    settles it; else None (the subset is kept, so the record is at worst not
    reused). Raises ValueError for a record that used more than it asked for.
    """
    asked, used = getattr(config, field), record.get(field)
    if asked is None or not isinstance(used, int):
        return None
    if used > asked:
        raise ValueError(f"it used {used} images for {field} {asked}")
    if used < asked:
        return used
    try:
        raw = load_raw_cached(config.data)
    except Exception:  # noqa: BLE001 - data gone or unreadable: the size is unknown, not an error
        return None
    if raw.fingerprint != fingerprint:
        return None
    return len(raw.train_y if field == "n_train" else raw.test_y)


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

    from harness import __version__

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
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not commit:
        return "unknown"
    return commit + ("+dirty" if dirty else "")
