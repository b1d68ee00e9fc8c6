"""A run proves its manipulation, and a record is consistent before it is trusted.

Each test plants one defect in the harness at toy scale (a variant that is
never applied, a flag that lies, a test set that is the training set, a
setting that never reaches the optimizer or the model) and shows the
evidence refusing the run before any pass with a `ManipulationError`; or
plants one wrong figure in a real record and shows the store refusing to
trust it. The planted wrong answer is the test: a check that let it through
would fail here.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from support import write_arrays_file

import harness.bench.batched as batched
import harness.core.corrupt as corrupt
import harness.core.prepare as prepare_module
import harness.core.train as train
from harness.bench.batched import fit_batched
from harness.core.config import RunConfig
from harness.core.data import DataError, load_raw
from harness.core.evidence import (
    LABEL_COUNT_ALPHA,
    REQUIRED_ITEMS,
    Finding,
    ManipulationError,
    identical_across,
    label_count_interval,
    param_group_decay_finding,
)
from harness.core.record import CLAIM_CURVES, CLAIM_FIELDS
from harness.core.runner import cached_fit
from harness.core.store import CLAIM_CURVE_CHECKS, CLAIM_FIELD_CHECKS, untrusted_because
from harness.core.train import fit

CPU = torch.device("cpu")


def tiny(data_path, **changes) -> RunConfig:
    values = dict(data=f"npz:{data_path}", model="mlp_1x512", max_passes=2, device="cpu", batch_size=64)
    values.update(changes)
    return RunConfig(**values)


def refused(config: RunConfig, *phrases: str, fitter=fit) -> str:
    """The ManipulationError `fitter(config)` raises; each phrase must be in its message."""
    with pytest.raises(ManipulationError) as caught:
        fitter(config)
    message = str(caught.value)
    assert message.startswith(f"run {config.model}, ") and f"seed {config.seed}" in message
    for phrase in phrases:
        assert phrase in message, message
    return message


# --- labels ----------------------------------------------------------------------------


def test_random_labels_that_change_no_label_are_refused_before_training(tiny_npz, monkeypatch):
    trained = []
    monkeypatch.setattr(train, "_eager_pass", lambda *args: trained.append(args))
    monkeypatch.setattr(corrupt, "corrupt_labels", lambda labels, p, k, rng: labels.copy())
    message = refused(tiny(tiny_npz, variant="random"), "labels: 0 of 256 training labels differ from the dataset's")
    assert "random labels (label corruption 1)" in message and "expected about 230 (" in message
    assert trained == []


@pytest.mark.parametrize(
    "redraw",
    [
        pytest.param(lambda original: lambda labels, p, k, rng: labels.copy(), id="never-redrawn"),
        pytest.param(lambda original: lambda labels, p, k, rng: original(labels, 1.0, k, rng), id="p-ignored"),
    ],
)
def test_label_corruption_half_that_is_not_applied_as_half_is_refused(tiny_npz, monkeypatch, redraw):
    monkeypatch.setattr(corrupt, "corrupt_labels", redraw(corrupt.corrupt_labels))
    refused(tiny(tiny_npz, variant="partial", corruption=0.5), "labels: ", "for label corruption 0.5")


def lying_flags(claim):
    """apply_variant whose label_changed says `claim(labels, flags)` instead of the truth."""
    original = corrupt.apply_variant

    def apply(*args, **kwargs):
        result = original(*args, **kwargs)
        return dataclasses.replace(result, label_changed=claim(result.label_changed))

    return apply


def test_unchanged_labels_whose_flags_say_changed_are_refused_by_the_recount(tiny_npz, monkeypatch):
    """The plant changes no label and flags 90% as changed: the recount against the dataset finds 0."""
    monkeypatch.setattr(corrupt, "corrupt_labels", lambda labels, p, k, rng: labels.copy())
    flags = torch.rand(256, generator=torch.Generator().manual_seed(0)) < 0.9
    monkeypatch.setattr(prepare_module, "apply_variant", lying_flags(lambda truth: flags))
    refused(tiny(tiny_npz, variant="random"), "labels: 0 of 256", "label_flags: ")


def test_changed_labels_whose_flags_say_unchanged_are_refused(tiny_npz, monkeypatch):
    """The noise curves and labels_changed read the flags: flags that lie are a contradiction of their own."""
    monkeypatch.setattr(prepare_module, "apply_variant", lying_flags(torch.zeros_like))
    refused(tiny(tiny_npz, variant="partial", corruption=0.5), "nothing was trained: label_flags: ")  # labels hold


# --- pixels ----------------------------------------------------------------------------


def variant_never_applied(variant):
    """apply_variant that gives the source images back for `variant` (as if the variant were "true")."""
    original = corrupt.apply_variant
    return lambda name, *args, **kwargs: original("true" if name == variant else name, *args, **kwargs)


@pytest.mark.parametrize("variant", ["shuffled_pixels", "random_pixels", "gaussian"])
def test_a_pixel_variant_that_leaves_the_images_as_they_were_is_refused(tiny_npz, monkeypatch, variant):
    monkeypatch.setattr(prepare_module, "apply_variant", variant_never_applied(variant))
    refused(tiny(tiny_npz, variant=variant), "pixels: 0 of 256 sampled non-uniform training images differ")


def test_pixels_that_are_not_shuffled_inside_the_variant_are_refused(tiny_npz, monkeypatch):
    """The plant sits in the shuffling function itself, below apply_variant."""
    monkeypatch.setattr(corrupt, "shuffle_pixels", lambda train_x, test_x, rng: (train_x, test_x))
    refused(tiny(tiny_npz, variant="shuffled_pixels"), "pixels: 0 of 256")


def test_gaussian_images_that_keep_the_source_values_are_refused(tiny_npz, monkeypatch):
    """Gaussian images must replace the values, not move them: random pixels passed off as Gaussian images."""
    monkeypatch.setattr(corrupt, "gaussian_images", lambda shape, mean, std, rng: None)
    original = corrupt.apply_variant
    monkeypatch.setattr(
        prepare_module,
        "apply_variant",
        lambda name, *args, **kwargs: original("random_pixels" if name == "gaussian" else name, *args, **kwargs),
    )
    refused(tiny(tiny_npz, variant="gaussian"), "pixels: 256 of 256", "256 keep their values")


def test_pixels_shuffled_under_true_labels_are_refused(tiny_npz, monkeypatch):
    """The other way round: a label variant whose inputs are not the source images."""
    original = corrupt.apply_variant
    monkeypatch.setattr(
        prepare_module, "apply_variant", lambda variant, *args, **kwargs: original("shuffled_pixels", *args, **kwargs)
    )
    refused(tiny(tiny_npz, variant="true"), "pixels: 256 of 256 sampled non-uniform training images differ")


# --- sizes and the train/test split ----------------------------------------------------


def leaked(original):
    """prepare whose test set is the first training rows (a train/test leak of the same size)."""

    def prepare(config, raw, device):
        data = original(config, raw, device)
        n_test = len(data.test_y)
        return dataclasses.replace(data, test_x=data.train_x[:n_test].clone(), test_y=data.train_y[:n_test].clone())

    return prepare


def test_a_test_set_replaced_by_training_rows_is_refused(tiny_npz, monkeypatch):
    monkeypatch.setattr(train, "prepare", leaked(prepare_module.prepare))
    refused(tiny(tiny_npz), "train_test_overlap: 128 of 128 test inputs are training inputs, expected at most 1")


def test_a_test_set_cut_short_without_asking_is_refused(tiny_npz, monkeypatch):
    original = prepare_module.subset_indices
    halved = lambda total, wanted, seed: original(total, wanted or (total // 2 if total == 128 else None), seed)  # noqa: E731
    monkeypatch.setattr(prepare_module, "subset_indices", halved)
    refused(tiny(tiny_npz), "n_test: the run uses 64 test images (64 labels), expected 128 (the whole test split)")
    # Asked for, a smaller test set is what the run should use.
    monkeypatch.setattr(prepare_module, "subset_indices", original)
    assert fit(tiny(tiny_npz, n_test=64, max_passes=1))["evidence"]["n_test"] == {
        "measured": 64,
        "expected": "64 (the config's subset of 64)",
        "holds": True,
    }


def test_exact_duplicates_across_the_splits_count_and_near_duplicates_do_not(tmp_path):
    """A dataset whose own splits share 3 exact images is not refused for them; 10 near-duplicates count 0."""
    path = write_arrays_file(tmp_path / "dups.npz")
    with np.load(path) as arrays:
        values = dict(arrays)
    values["test_x"][:3] = values["train_x"][:3]  # exact duplicates
    near = values["train_x"][10:20].copy()
    near[:, 14, 14] ^= 1  # one pixel one grey level off
    values["test_x"][3:13] = near
    np.savez(path, **values)
    record = fit(tiny(path, max_passes=1))
    assert record["evidence"]["train_test_overlap"]["measured"] == {
        "test_inputs_in_train": 3,
        "dataset_splits_share": 3,
    }
    assert record["evidence"]["train_test_overlap"]["holds"]

    raw = load_raw(f"npz:{path}")
    prepared = prepare_module.prepare(tiny(path), raw, CPU)
    assert identical_across(prepared.train_x, prepared.test_x) == 3
    assert identical_across(prepared.train_x[10:20], prepared.test_x[3:13]) == 0


# --- the optimizer, the model, the augmentation ----------------------------------------


def test_weight_decay_that_never_reaches_the_optimizer_is_refused(tiny_npz, monkeypatch):
    original = train.resolve

    def resolve_without_decay(spec):
        build = original(spec)
        return lambda params, hyper: build(params, dataclasses.replace(hyper, weight_decay=0.0))

    monkeypatch.setattr(train, "resolve", resolve_without_decay)
    refused(
        tiny(tiny_npz, weight_decay=5e-4),
        "weight_decay: the optimizer's param groups carry weight decay 0, expected 0.0005",
    )


def test_weight_decay_the_batched_update_drops_is_refused(tiny_npz, monkeypatch):
    original = batched._sgd_step
    monkeypatch.setattr(
        batched,
        "_sgd_step",
        lambda params, buffers, lr, momentum, weight_decay: original(params, buffers, lr, momentum, 0),
    )
    config = tiny(tiny_npz, weight_decay=5e-4)
    refused(config, "weight_decay: the batched loop's update applies weight decay 0", fitter=lambda c: fit_batched([c]))


def test_an_optimizer_without_weight_decay_in_its_groups_is_not_refused_where_the_config_asks_none():
    """A third-party optimizer may keep no weight_decay: recorded as it is, refused only where it can be checked."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    del optimizer.param_groups[0]["weight_decay"]
    finding = param_group_decay_finding(RunConfig(optimizer="torch.optim:SGD", lr=0.1), optimizer)
    assert finding.holds and finding.measured == {"param_groups": [None]}
    built_in = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, weight_decay=0.0)
    assert not param_group_decay_finding(RunConfig(weight_decay=5e-4), built_in).holds


@pytest.mark.parametrize("plant", ["no-dropout-module", "dropout-switched-off"])
def test_dropout_that_is_never_on_is_refused(tiny_npz, monkeypatch, plant):
    if plant == "no-dropout-module":
        original = train.build_model
        monkeypatch.setattr(train, "build_model", lambda *args, **kwargs: original(*args, **{**kwargs, "dropout": 0.0}))
    else:
        monkeypatch.setattr(torch.nn.Dropout, "forward", lambda self, x: x)
    refused(tiny(tiny_npz, dropout=0.5), "dropout: two train-mode passes over the same 64 images agree")


def test_random_crops_that_are_never_taken_are_refused(tiny_npz, monkeypatch):
    monkeypatch.setattr(train.RandomCrop, "__call__", lambda self, rows: self.padded[rows][..., 2:-2, 2:-2])
    refused(tiny(tiny_npz, augment="crop"), "augmentation: of 64 rows cropped twice, 0 differ between the draws and 0")


def test_the_probes_leave_the_run_as_it_would_be_without_them(tiny_npz, monkeypatch):
    """Dropout and crop probes draw from forked or restored generators: the trained weights are the same."""
    config = tiny(tiny_npz, dropout=0.5, augment="crop", weight_decay=5e-4)
    measured = fit(config)
    not_probed = lambda *args: Finding(None, "not measured", True, "")  # noqa: E731
    monkeypatch.setattr(train.evidence, "dropout_finding", not_probed)
    monkeypatch.setattr(train.evidence, "augmentation_finding", not_probed)
    assert fit(config)["model_sha256"] == measured["model_sha256"]


# --- where a refusal goes ---------------------------------------------------------------


def test_a_refused_run_leaves_no_record_log_or_checkpoint(tiny_npz, results, monkeypatch):
    monkeypatch.setattr(corrupt, "corrupt_labels", lambda labels, p, k, rng: labels.copy())
    with pytest.raises(ManipulationError, match="labels: 0 of 256"):
        cached_fit(tiny(tiny_npz, variant="random"))
    assert not list(results.rglob("*.json")) and not list(results.rglob("*.pt")) and not list(results.rglob("*.log"))


def test_the_command_line_prints_the_refusal_in_one_line_and_exits_2(tiny_npz, results, monkeypatch, capsys):
    from harness.__main__ import main

    monkeypatch.setattr(corrupt, "corrupt_labels", lambda labels, p, k, rng: labels.copy())
    status = main(["fit", "--data", f"npz:{tiny_npz}", "--variant", "random", "--max-passes", "1", "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1
    assert lines[0].startswith("error: run mlp_1x512, random labels (label corruption 1), seed 0 contradicts its")


def test_a_batch_with_one_manipulated_run_is_refused_whole(tiny_npz, monkeypatch):
    monkeypatch.setattr(corrupt, "corrupt_labels", lambda labels, p, k, rng: labels.copy())
    configs = [tiny(tiny_npz, variant="true"), tiny(tiny_npz, variant="random", seed=1)]
    refused(configs[1], "labels: 0 of 256", fitter=lambda c: fit_batched([configs[0], c]))


# --- degenerate data and the binomial bound ---------------------------------------------


def test_the_label_count_interval_is_exact_and_behaves_at_the_edges():
    assert label_count_interval(0, 0.9) == (0, 0) and label_count_interval(50, 0.0) == (0, 0)
    assert label_count_interval(50, 1.0) == (50, 50)
    assert label_count_interval(5, 0.45) == (0, 5)  # no count of 5 is unlikely enough to refuse
    lo, hi = label_count_interval(5_000, 0.9)
    assert 4_360 < lo < 4_400 and 4_600 < hi < 4_640 and not lo <= 0 <= hi
    # Against exact rational tails: the interval is the tightest whose tails are each <= alpha / 2.
    n, q = 60, Fraction(9, 20)
    pmf = [math.comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(n + 1)]
    lo, hi = label_count_interval(n, float(q))
    half = Fraction(LABEL_COUNT_ALPHA) / 2
    assert sum(pmf[:lo]) <= half < sum(pmf[: lo + 1])
    assert sum(pmf[hi + 1 :]) <= half < sum(pmf[hi:])


def test_a_one_class_dataset_is_refused_before_any_evidence_is_needed(tmp_path):
    """One class: every prediction right, random labels a no-op; 'fitted at 100% test' would measure nothing."""
    path = write_arrays_file(tmp_path / "one.npz", n_train=64, n_test=32, classes=1)
    with pytest.raises(DataError, match="train_y holds one class .0., and a classification run needs at least 2"):
        fit(tiny(path, variant="random", max_passes=1))


def test_five_images_are_measured_without_refusing_an_honest_run(tmp_path):
    path = tmp_path / "five.npz"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (5, 28, 28), dtype=np.uint8)
    labels = np.array([0, 1, 0, 1, 0])
    np.savez(path, train_x=images, train_y=labels, test_x=images[::-1].copy() ^ 1, test_y=labels)
    for variant in ("true", "random", "shuffled_pixels"):
        record = fit(tiny(path, variant=variant, max_passes=1))
        assert all(item["holds"] for item in record["evidence"].values())
    assert record["evidence"]["pixels"]["measured"]["sampled"] == 5


def test_every_record_carries_evidence_that_holds_even_one_refused_before_training(tmp_path):
    path = write_arrays_file(tmp_path / "clash.npz", n_train=64, n_test=32)
    with np.load(path) as arrays:
        values = dict(arrays)
    values["train_x"][1], values["train_y"][1] = values["train_x"][0], (values["train_y"][0] + 1) % 10
    np.savez(path, **values)
    not_fittable = fit(tiny(path))
    (batch,) = fit_batched([tiny(tiny_npz_path(tmp_path))])
    assert not_fittable["outcome"] == "not_fittable"
    for record in (not_fittable, batch):
        assert set(REQUIRED_ITEMS) <= set(record["evidence"])
        assert all(item["holds"] for item in record["evidence"].values())
    assert set(batch["evidence"]) == {*REQUIRED_ITEMS, "weight_decay", "augmentation"}


def tiny_npz_path(tmp_path):
    return write_arrays_file(tmp_path / "plain.npz", n_train=64, n_test=32)


# --- the store: a record is consistent before it is trusted ----------------------------


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Two real records: random labels on 64 images fitted after some passes, and partial labels out of budget."""
    folder = tmp_path_factory.mktemp("stored")
    data = write_arrays_file(folder / "data.npz")
    fitted = cached_fit(
        tiny(data, variant="random", n_train=64, batch_size=16, max_passes=60, test_every=2, seed=1),
        root=folder / "results",
    )
    partial = cached_fit(
        tiny(data, variant="partial", corruption=0.5, max_passes=5, test_every=2, seed=3), root=folder / "results"
    )
    assert fitted["outcome"] == "fitted" and fitted["passes_to_fit"] > 2 and partial["outcome"] == "out_of_budget"
    return {"fitted": fitted, "partial": partial}


def set_passes_to_fit(record):
    record["passes_to_fit"] = 150
    record["steps_to_fit"] = 150 * record["steps_per_pass"]


def set_steps_per_pass(record):
    record["steps_per_pass"] += 1
    record["steps_to_fit"] = record["passes_to_fit"] * record["steps_per_pass"]


def best_is_the_final_reading(record):
    assert record["best_test_accuracy"] != record["test_accuracy"]  # else the plant would change nothing
    record["best_test_accuracy"] = record["test_accuracy"]


def move_a_confusion_count_onto_the_diagonal(record):
    confusion = record["test_confusion"]
    row = next(k for k, counts in enumerate(confusion) if sum(counts) > counts[k])
    column = next(j for j, count in enumerate(confusion[row]) if j != row and count)
    confusion[row][column] -= 1
    confusion[row][row] += 1


def unscheduled_test_reading(record):
    record["curves"]["test_accuracy"][0] = 0.5  # pass 1 of a run read every 2 passes


def a_scheduled_reading_dropped(record):
    record["curves"]["test_accuracy"][1] = None


def earlier_whole_set_fit(record):
    record["curves"]["train_accuracy"][0] = 1.0


# Per claim field and claim curve: (which record, the plant). A wrong value of each must be refused.
PLANTS = {
    "config": ("partial", lambda r: r["config"].update(seed=r["config"]["seed"] + 1)),
    "data_source": ("partial", lambda r: r.update(data_source="CIFAR-10 (JPEG q75 copy)")),
    "outcome": ("fitted", lambda r: r.update(outcome="stalled")),
    "passes": ("partial", lambda r: r.update(passes=r["passes"] + 1)),
    "passes_to_fit": ("fitted", set_passes_to_fit),
    "steps_per_pass": ("fitted", set_steps_per_pass),
    "steps_to_fit": ("fitted", lambda r: r.update(steps_to_fit=r["steps_to_fit"] + 1)),
    "train_accuracy": ("partial", lambda r: r.update(train_accuracy=0.99)),
    "test_accuracy": ("partial", lambda r: r.update(test_accuracy=0.99)),
    "best_test_accuracy": ("fitted", best_is_the_final_reading),
    "n_train": ("partial", lambda r: r.update(n_train=r["n_train"] - 1)),
    "n_test": ("partial", lambda r: r.update(n_test=r["n_test"] - 1)),
    "labels_changed": ("partial", lambda r: r.update(labels_changed=r["labels_changed"] + 1)),
    "train_seconds": ("partial", lambda r: r.update(train_seconds=2 * r["train_seconds"] + 1)),
    "test_confusion": ("fitted", move_a_confusion_count_onto_the_diagonal),
    "curves.train_accuracy": ("fitted", earlier_whole_set_fit),
    "curves.test_accuracy": ("fitted", unscheduled_test_reading),
    "curves.train_accuracy_clean": ("partial", lambda r: r["curves"]["train_accuracy_clean"].__setitem__(0, 0.999)),
    "curves.train_accuracy_corrupted": (
        "partial",
        lambda r: r["curves"]["train_accuracy_corrupted"].__setitem__(1, 0.777),
    ),
}


def test_every_field_and_curve_a_claim_reads_has_a_check_and_a_plant():
    assert set(CLAIM_FIELD_CHECKS) == set(CLAIM_FIELDS)
    assert set(CLAIM_CURVE_CHECKS) == set(CLAIM_CURVES)
    assert set(PLANTS) == set(CLAIM_FIELDS) | {f"curves.{name}" for name in CLAIM_CURVES}


def test_the_real_records_are_trusted(stored):
    for record in stored.values():
        assert untrusted_because(record, record["key"]) is None


@pytest.mark.parametrize("field", sorted(PLANTS))
def test_a_wrong_value_of_a_claim_field_makes_the_record_untrusted(stored, field):
    which, plant = PLANTS[field]
    record = copy.deepcopy(stored[which])
    plant(record)
    assert untrusted_because(record, stored[which]["key"]) is not None


@pytest.mark.parametrize(
    "plant, reason",
    [
        (set_passes_to_fit, "passes_to_fit 150 is not the pass its whole training set reached the target"),
        (best_is_the_final_reading, "best_test_accuracy"),
        (lambda r: r.update(steps_to_fit=r["steps_to_fit"] * 2), "steps_to_fit"),
        (a_scheduled_reading_dropped, "its test curve has"),
        (unscheduled_test_reading, "its test curve has"),
    ],
    ids=["passes-to-fit-150", "best-is-final", "steps-to-fit", "reading-dropped", "reading-added"],
)
def test_the_issues_records_are_untrusted_with_the_reason(stored, plant, reason):
    record = copy.deepcopy(stored["fitted"])
    plant(record)
    assert reason in untrusted_because(record, record["key"])


@pytest.mark.parametrize(
    "plant, reason",
    [
        (lambda r: r.pop("evidence"), "carries no evidence"),
        (lambda r: r["evidence"].pop("pixels"), "lacks pixels"),
        (lambda r: r["evidence"]["labels"].update(holds=False), "its evidence labels does not hold"),
        (lambda r: r["evidence"]["train_test_overlap"].update(holds="yes"), "train_test_overlap does not hold"),
        (lambda r: r["curves"].update(train_accuracy_clean=5), "cannot be read"),
    ],
    ids=["no-evidence", "an-item-missing", "an-item-fails", "holds-not-true", "a-curve-not-a-list"],
)
def test_a_record_without_evidence_that_holds_is_untrusted(stored, plant, reason):
    record = copy.deepcopy(stored["partial"])
    plant(record)
    assert reason in untrusted_because(record, record["key"])
