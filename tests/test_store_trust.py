"""Which records the store trusts: only a record whose own contents name the run asked for.

A file under ``runs/<key>/`` is reused only when its config and data
fingerprint hash to that key and its summary figures agree with its own
curves; anything else (copied from another run, edited by hand, not a record
at all) is skipped with a `RecordIgnoredWarning` naming the file.
"""

import copy
import json
import shutil
import warnings

import pytest
from support import write_arrays_file

from harness.bench.batched import fit_batched
from harness.core.config import RunConfig
from harness.core.prepare import load_raw_cached
from harness.core.runner import cached_fit
from harness.core.store import RecordIgnoredWarning, latest_record, run_key, save_record, write_json_atomic


def config(tiny_npz, **changes):
    values = dict(data=f"npz:{tiny_npz}", max_passes=2, device="cpu", variant="random")
    values.update(changes)
    return RunConfig(**values)


def place(record: dict, folder, name: str) -> None:
    """Write `record` as the file `name` in `folder`: a copy made by hand, not by the store."""
    write_json_atomic(folder / name, record)


def ignored(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RecordIgnoredWarning)]


def latest_with_warnings(key, root, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = latest_record(key, root, **options)
    return record, ignored(caught)


def test_a_record_copied_from_another_runs_folder_is_not_reused(tiny_npz, results):
    """The issue's example: a random-label record under the true-label run's key made C1-like claims lie."""
    random_labels = cached_fit(config(tiny_npz, variant="random"))
    true_key = run_key(config(tiny_npz, variant="true"))
    place(random_labels, results / "runs" / true_key, "99990101T000000000000Z.json")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = cached_fit(config(tiny_npz, variant="true"))
    assert record["reused"] is False and record["config"]["variant"] == "true"
    assert any("99990101T000000000000Z.json" in message and "hash to run" in message for message in ignored(caught))


def fitted_by_hand(record):
    record.update(outcome="fitted", train_accuracy=1.0)
    record["curves"]["train_accuracy"] = [0.1] * len(record["curves"]["train_accuracy"])


def its_test_accuracy_not_its_curves(record):
    record["test_accuracy"] = 0.99


def more_passes_than_its_curves(record):
    record["passes"] += 5


def fitted_below_its_target(record):
    record["outcome"] = "fitted"
    record["train_accuracy"] = record["curves"]["train_accuracy"][-1] = 0.5


def fitted_in_150_passes_by_hand(record):
    """The issue's record: passes_to_fit 150 for a run whose curves never reached the target."""
    record.update(passes_to_fit=150, steps_to_fit=150 * record["steps_per_pass"])


def its_evidence_removed(record):
    del record["evidence"]


def its_labels_changed_not_its_evidence(record):
    record["labels_changed"] = 0


@pytest.mark.parametrize(
    "edit",
    [
        fitted_by_hand,
        its_test_accuracy_not_its_curves,
        more_passes_than_its_curves,
        fitted_below_its_target,
        fitted_in_150_passes_by_hand,
        its_evidence_removed,
        its_labels_changed_not_its_evidence,
    ],
)
def test_a_record_whose_figures_disagree_with_its_curves_is_not_reused(tiny_npz, results, edit):
    """A hand-made train_accuracy 1.0 over curves at 10% must not make a memorisation claim hold."""
    real = cached_fit(config(tiny_npz))
    forged = copy.deepcopy(real)
    edit(forged)
    forged["finished_at"] = real["finished_at"] + 60  # newer by its contents and its name
    place(forged, results / "runs" / real["key"], "99990101T000000000000Z.json")

    record, messages = latest_with_warnings(real["key"], results)
    assert record["finished_at"] == real["finished_at"] and record["curves"] == real["curves"]
    assert len(messages) == 1 and "99990101T000000000000Z.json" in messages[0]


@pytest.mark.parametrize(
    "content, reason",
    [
        ("[1, 2, 3]", "not a record"),
        (json.dumps({"outcome": "fitted", "train_accuracy": 1.0}), "no config"),
        (json.dumps({"outcome": "fitted", "config": {"model": "no_such_model"}, "data_fingerprint": "x"}), "config"),
        (json.dumps({"outcome": "fitted", "config": ["not", "a", "dict"]}), "no config"),
    ],
    ids=["list", "without-config", "unknown-model", "config-not-a-dict"],
)
def test_a_file_that_is_not_a_record_is_skipped_with_a_warning_naming_it(tiny_npz, results, content, reason):
    """Fit, the claims and the report all read records through latest_record: none of them may crash on one."""
    real = cached_fit(config(tiny_npz))
    folder = results / "runs" / real["key"]
    (folder / "99990101T000000000000Z.json").write_text(content)

    record, messages = latest_with_warnings(real["key"], results)
    assert record["finished_at"] == real["finished_at"]
    assert len(messages) == 1 and str(folder / "99990101T000000000000Z.json") in messages[0] and reason in messages[0]

    (folder / real["path"].split("/")[-1]).unlink()  # only the bad file is left: train anew
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecordIgnoredWarning)
        assert cached_fit(config(tiny_npz))["reused"] is False


def test_a_record_of_other_data_is_not_reused(tiny_npz, results):
    real = cached_fit(config(tiny_npz))
    path = results / "runs" / real["key"] / real["path"].split("/")[-1]
    other = json.loads(path.read_text())
    other["data_fingerprint"] = "sha256:" + "0" * 64
    path.write_text(json.dumps(other))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = cached_fit(config(tiny_npz))
    assert again["reused"] is False and again["data_fingerprint"] == real["data_fingerprint"]
    assert any(path.name in message for message in ignored(caught))


def test_a_subset_record_placed_under_the_whole_sets_key_is_not_reused(tiny_npz, results):
    """100 of 256 images is another run than all 256, though its config's n_train equals the images it used."""
    subset = cached_fit(config(tiny_npz, n_train=100))
    whole_key = run_key(config(tiny_npz))
    place(subset, results / "runs" / whole_key, "99990101T000000000000Z.json")
    record, messages = latest_with_warnings(whole_key, results)
    assert record is None and len(messages) == 1


def test_the_newest_record_is_the_one_that_finished_last_whatever_its_file_name(tiny_npz, results):
    first = cached_fit(config(tiny_npz))
    second = cached_fit(config(tiny_npz), fresh=True)
    folder = results / "runs" / first["key"]
    # The older record under a name that sorts last (a copy, a clock set wrong).
    (folder / first["path"].split("/")[-1]).rename(folder / "99990101T000000000000Z.json")

    record, messages = latest_with_warnings(first["key"], results)
    assert record["finished_at"] == second["finished_at"] > first["finished_at"] and messages == []
    assert cached_fit(config(tiny_npz))["finished_at"] == second["finished_at"]


def test_a_record_made_before_the_newest_optional_fields_still_loads(tiny_npz, results):
    """Older code wrote no test counts, no whole-set check count and no finished_at; such a record still answers."""
    real = cached_fit(config(tiny_npz))
    path = results / "runs" / real["key"] / real["path"].split("/")[-1]
    older = json.loads(path.read_text())
    for field in (
        "test_confusion",
        "test_prediction_counts",
        "test_label_counts",
        "whole_set_checks",
        "finished_at",
        "model_sha256",
        "checkpoint_seconds",
        "resumed_from_pass",
        "setup_seconds",
    ):
        older.pop(field, None)
    older["curves"].pop("train_checked")
    path.write_text(json.dumps(older))

    record, messages = latest_with_warnings(real["key"], results)
    assert record is not None and messages == []
    assert cached_fit(config(tiny_npz))["reused"] is True


def test_a_record_without_a_required_field_is_passed_over_without_a_warning(tiny_npz, results):
    """Older records lack fields newer claims need: expected, so no warning, and the run is trained anew."""
    real = cached_fit(config(tiny_npz))
    record, messages = latest_with_warnings(real["key"], results, required=("no_such_field",))
    assert record is None and messages == []


def test_a_subset_as_large_as_the_set_reuses_the_whole_sets_record(tiny_npz, results):
    whole = cached_fit(config(tiny_npz))
    size = len(load_raw_cached(f"npz:{tiny_npz}").train_y)
    for n_train in (size, size + 1000):
        assert cached_fit(config(tiny_npz, n_train=n_train))["finished_at"] == whole["finished_at"]
    larger = cached_fit(config(tiny_npz, variant="true", n_train=size + 1000))
    assert cached_fit(config(tiny_npz, variant="true"))["finished_at"] == larger["finished_at"]


def test_the_same_data_under_another_path_reuses_the_record(tiny_npz, results, tmp_path):
    """The data's fingerprint names the run, not its path; even once the recorded path is gone."""
    cached_fit(config(tiny_npz))
    moved = tmp_path / "elsewhere" / "tiny.npz"
    moved.parent.mkdir()
    shutil.move(tiny_npz, moved)
    assert cached_fit(config(moved))["reused"] is True


def test_batched_records_are_reused_under_their_own_key(tmp_path):
    """fit_batched's records carry loop "batched" in their config: they hash to the key of that config."""
    data = write_arrays_file(tmp_path / "batched.npz", n_train=64, n_test=32)
    root = tmp_path / "results"
    configs = [RunConfig(data=f"npz:{data}", max_passes=2, device="cpu", seed=seed) for seed in (0, 1)]
    for made, record in zip(configs, fit_batched(configs)):
        key = run_key(made.replace(loop="batched"))
        save_record({**record, "key": key, "finished_at": 1.0}, root)
        found, messages = latest_with_warnings(key, root)
        assert found is not None and found["config"]["seed"] == made.seed and messages == []
