"""The run record: its keys, curves and units, built for every loop; values as JSON; files written whole.

`run_record` builds the record of a run the same way for the eager, graph
and batched loops (and a run refused before training), with the keys of
`FIELDS` and the per-pass `CURVES`; `RUN_SEMANTICS_VERSION` enters every run
key. The ImageNet tier's distributed run writes a record of its own kind
(``kind: imagenet-ddp``, harness.imagenet.distributed).

Every JSON file of the harness (run records, session files, baselines, the
report's JSON, tuning records) goes through `json_value` and
`write_json_atomic`; checkpoints (torch's format) go through the same
`replace_atomically`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch


def json_value(value, *, strict: bool = False):
    """`value` as JSON would give it back: plain dicts, lists, numbers, strings, None.

    numpy scalars become Python numbers and numpy arrays lists; tuples become
    lists and dict keys strings, as `json` writes them; any other object
    becomes its `str`. strict: a non-finite float (a run that never reached
    a level: ``inf``; a diverged loss: ``nan``) becomes its name as a
    string, for readers that refuse JSON's NaN/Infinity extension; otherwise
    it stays a float.
    """
    if isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(key): json_value(item, strict=strict) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item, strict=strict) for item in value]
    if isinstance(value, float):
        return str(value) if strict and not math.isfinite(value) else value
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def replace_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync, then rename onto `path`: never a half file.

    The file is made readable by every user (0644), so that another user of
    a shared results folder can read and resume what it holds. Raises
    OSError when the file cannot be written (errno ENOSPC for a full disk),
    after removing the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the file from other users
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, value) -> None:
    """`value` as indented JSON with sorted keys, written by `replace_atomically`."""
    replace_atomically(Path(path), json.dumps(value, indent=1, sort_keys=True).encode())


# --- the run record ---------------------------------------------------------------

# Bumped whenever a change alters what a run computes (data, variants,
# training, evaluation): it is part of every run key, so records made by the
# old code are never reused for the new.
# 3: every record carries the evidence that its variant and settings took effect
# (harness.core.evidence); a run whose evidence contradicts its config is refused.
RUN_SEMANTICS_VERSION = 3

# One entry per pass, in pass order; every curve has `passes` entries.
CURVES = {
    "loss": "mean training loss over the pass (cross-entropy, nats per image)",
    "train_accuracy": "training accuracy after the pass (0..1), over `train_checked` images",
    "train_checked": "images behind that reading: the whole training set, or a sample (harness.core.train_check)",
    "test_accuracy": "test accuracy after the pass (0..1); None in a pass where it was not measured",
    "lr": "learning rate of the first parameter group during the pass",
    "train_seconds": "wall-clock seconds of training in the pass (device synchronised)",
    "eval_seconds": "wall-clock seconds of the evaluations after the pass",
}
# Kept by the eager and graph loops where some labels were changed and some not (partially corrupted labels).
NOISE_CURVES = {
    "train_accuracy_clean": "training accuracy on the images whose label was kept (0..1)",
    "train_accuracy_corrupted": "training accuracy on the images whose label was changed (0..1)",
}

# The keys of every run record, whatever loop made it. Outcomes: "fitted", "out_of_budget",
# "diverged", "stalled", "not_fittable", "interrupted", "error" (harness.core.store.OUTCOMES).
FIELDS = {
    "config": "the run's RunConfig as a dict (its hash with the data and code is the run key)",
    "data_source": "what the data is, named by its content (harness.core.data)",
    "data_fingerprint": "sha256 of the dataset's bytes",
    "n_train": "training images used",
    "n_test": "test images used",
    "num_classes": "K, the number of classes",
    "labels_changed": "training labels the variant changed",
    "parameters": "trainable parameters of the model",
    "outcome": "how the run ended (see above)",
    "message": "why it ended that way, in a sentence ('' when fitted)",
    "passes": "passes trained",
    "steps_per_pass": "optimizer steps per pass",
    "passes_to_fit": "the pass whose whole training set reached the target accuracy; None when not fitted",
    "steps_to_fit": "passes_to_fit x steps_per_pass; None when not fitted",
    "train_accuracy": "the last pass's training accuracy (0..1)",
    "test_accuracy": "the last pass's test accuracy (0..1)",
    "best_test_accuracy": "the highest test accuracy measured (0..1): early stopping's figure",
    "train_seconds": "seconds of training, all passes",
    "eval_seconds": "seconds of evaluation, all passes",
    "whole_set_checks": "passes whose training accuracy is over the whole set",
    "images_per_second": "training throughput, images per second of train_seconds",
    "curves": "per-pass curves (CURVES, NOISE_CURVES)",
    "loop": "the loop that trained it: 'eager', 'graph' (CUDA graph), 'batched' (stacked MLPs), 'none' (refused)",
    "setup_seconds": "seconds before the first pass outside the data (graph warm-up and capture)",
    "resumed_from_pass": "passes taken from a checkpoint; None when trained from the start",
    "checkpoint_seconds": "seconds spent saving checkpoints, outside train_seconds",
    "model_sha256": "sha256 of the final parameters and buffers: equal digests, identical weights",
    "initial_loss": "the initialised network's loss on the first batch; None where not measured",
    "optimizer_modes": "the optimizer's train()/eval() were switched around evaluations",
    "optimizer_closure": "the optimizer was stepped as step(closure)",
    "optimizer_settings": "the optimizer's settings as its param groups held them once built, one dict per group of "
    "its scalar entries (lr, weight_decay, momentum, betas, eps, ...): what ran, defaults of an imported factory "
    "included; None where the loop builds no torch optimizer",
    "optimizer_settings_outside_groups": "the optimizer's scalar settings kept as its own attributes, outside its "
    "param groups, once built ({name: value}: a SAM's rho, a warm-up length); a combined optimizer's parts' as "
    "'name (of part i)'; None where the loop builds no torch optimizer",
    "test_label_counts": "test images per true class (K,)",
    "test_prediction_counts": "test predictions per class (K,); absent when the last pass measured none",
    "test_confusion": "K x K counts, rows true class, columns predicted class; absent as above",
    # Identical training inputs with different labels (harness.core.prepare.Collisions):
    "attainable_train_accuracy": "the highest training accuracy those inputs allow (0..1)",
    "identical_input_groups": "groups of identical training inputs",
    "colliding_inputs": "training inputs identical to another",
    "conflicting_inputs": "colliding inputs whose group carries more than one label",
    "unavoidable_errors": "training images no classifier can get right",
    "evidence": "measured proof that the variant and settings took effect: name -> {measured, expected, holds} "
    "(harness.core.evidence)",
}

# The record fields the claims read (claims/*.py and the suite's helpers), in one place: the
# store trusts a record only when each of them agrees with the record's curves and evidence
# (harness.core.store.CLAIM_FIELD_CHECKS says how, field by field).
CLAIM_FIELDS = (
    "config",
    "data_source",
    "outcome",
    "passes",
    "passes_to_fit",
    "steps_per_pass",
    "steps_to_fit",
    "train_accuracy",
    "test_accuracy",
    "best_test_accuracy",
    "n_train",
    "n_test",
    "labels_changed",
    "train_seconds",
    "test_confusion",
)
# The curves the claims read, each checked as well (same place).
CLAIM_CURVES = ("train_accuracy", "test_accuracy", "train_accuracy_clean", "train_accuracy_corrupted")


def empty_curves(track_noise: bool = False) -> dict[str, list]:
    """A run's curves before its first pass: CURVES, and NOISE_CURVES where tracked."""
    return {key: [] for key in (*CURVES, *(NOISE_CURVES if track_noise else ()))}


@dataclass(frozen=True)
class LoopFacts:
    """What the loop that trained a run knows beyond its curves (see FIELDS)."""

    loop: str
    setup_seconds: float = 0.0
    resumed_from_pass: int | None = None
    checkpoint_seconds: float = 0.0
    initial_loss: float | None = None
    optimizer_modes: bool = False
    optimizer_closure: bool = False
    optimizer_settings: list | None = None
    optimizer_settings_outside_groups: dict | None = None


def run_record(
    config,
    data,
    model,
    curves: dict[str, list],
    *,
    outcome: str,
    message: str,
    passes_to_fit: int | None,
    steps_per_pass: int,
    loop: LoopFacts,
    test_predictions,
    evidence: dict,
) -> dict:
    """The record of one run, for every loop: the keys of FIELDS.

    config: its RunConfig; data: its harness.core.prepare.DeviceData; model:
    the trained network (its parameters are counted and hashed);
    test_predictions: (n_test,) class indices of the final model, or None
    when the last pass measured no test accuracy; evidence: the run's
    measured evidence, name -> {measured, expected, holds}
    (harness.core.evidence.as_record).
    """
    from harness.core.models import count_parameters

    passes = len(curves["loss"])
    train_seconds = sum(curves["train_seconds"])
    n = len(data.train_y)
    return {
        "config": config.to_dict(),
        "data_source": data.source,
        "data_fingerprint": data.fingerprint,
        "n_train": n,
        "n_test": len(data.test_y),
        "num_classes": data.num_classes,
        "labels_changed": int(data.label_changed.sum()),
        "parameters": count_parameters(model),
        "outcome": outcome,
        "message": message,
        "passes": passes,
        "steps_per_pass": steps_per_pass,
        "passes_to_fit": passes_to_fit,
        "steps_to_fit": passes_to_fit * steps_per_pass if passes_to_fit else None,
        "train_accuracy": curves["train_accuracy"][-1] if passes else None,
        "test_accuracy": curves["test_accuracy"][-1] if passes else None,
        "best_test_accuracy": max((a for a in curves["test_accuracy"] if a is not None), default=None),
        "train_seconds": train_seconds,
        "eval_seconds": sum(curves["eval_seconds"]),
        "whole_set_checks": sum(count == n for count in curves["train_checked"]),
        "images_per_second": passes * n / train_seconds if train_seconds > 0 else None,
        "curves": curves,
        **asdict(loop),
        "model_sha256": state_digest(model),
        **test_counts(test_predictions, data.test_y, data.num_classes),
        **data.collisions.record_fields(),
        "evidence": evidence,
    }


def test_counts(predictions, labels, num_classes: int) -> dict:
    """The final model's test predictions by class, for the record.

    predictions, labels: (n_test,) integer tensors of class indices
    (predictions None: not measured at the end). Returns test_label_counts
    (K,), and with predictions test_prediction_counts (K,) and
    test_confusion (K x K counts, rows true class, columns predicted class):
    the relabelling test of "test accuracy is chance"
    (harness.suite.stats.relabelling_p_value) needs the whole matrix, since
    test images are right or wrong in groups.
    """
    counts = {"test_label_counts": torch.bincount(labels, minlength=num_classes).tolist()}
    if predictions is not None:
        pairs = labels.to(torch.int64) * num_classes + predictions.to(torch.int64)
        confusion = torch.bincount(pairs, minlength=num_classes * num_classes).view(num_classes, num_classes)
        counts["test_prediction_counts"] = confusion.sum(0).tolist()
        counts["test_confusion"] = confusion.tolist()
    return counts


def state_digest(model) -> str:
    """sha256 of a torch module's parameters and buffers, bit for bit: equal digests, identical weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
