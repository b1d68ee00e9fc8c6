"""The test confusion matrix in every record, and C2's chance test on real runs.

The relabelling test itself is checked in test_stats.py; here it meets real
training: a run that saw its true labels is caught (a planted leak), the
records of every loop carry the matrix, and records made before it are not
reused by the claims that need it.
"""

import json

from harness.bench.batched import fit_batched
from harness.core.config import RunConfig
from harness.core.runner import cached_fit
from harness.core.train import fit
from harness.suite import stats

ALPHA = 0.01  # C2's level (claims/test_c01_c02_random_labels.py)


def tiny(tiny_npz, **changes):
    values = dict(data=f"npz:{tiny_npz}", model="mlp_1x512", max_passes=60, device="cpu", batch_size=32)
    values.update(changes)
    return RunConfig(**values)


def _consistent(record):
    confusion = record["test_confusion"]
    k = record["num_classes"]
    assert len(confusion) == k and all(len(row) == k for row in confusion)
    assert sum(map(sum, confusion)) == record["n_test"]
    assert [sum(row) for row in confusion] == record["test_label_counts"]
    assert [sum(column) for column in zip(*confusion)] == record["test_prediction_counts"]
    correct = sum(confusion[c][c] for c in range(k))
    assert correct == round(record["test_accuracy"] * record["n_test"])


def test_a_run_trained_on_true_labels_fails_the_chance_test(tiny_npz):
    """A planted leak: the learnable bands give well over chance, and the relabelling test rejects."""
    record = fit(tiny(tiny_npz, variant="true"))
    _consistent(record)
    assert record["test_accuracy"] > 0.5
    assert stats.relabelling_p_value(record["test_confusion"]) < ALPHA


def test_a_run_fitted_to_random_labels_carries_a_consistent_confusion_matrix(tiny_npz):
    record = fit(tiny(tiny_npz, variant="random", max_passes=150))
    assert record["outcome"] == "fitted"
    _consistent(record)
    assert 0.0 < stats.relabelling_p_value(record["test_confusion"]) <= 1.0


def test_batched_records_carry_the_final_models_confusion_matrix(tiny_npz):
    quick, slow = fit_batched(
        [tiny(tiny_npz, variant="true", max_passes=40), tiny(tiny_npz, variant="random", seed=3, max_passes=40)]
    )
    for record in (quick, slow):
        _consistent(record)
    assert stats.relabelling_p_value(quick["test_confusion"]) < ALPHA


def test_a_record_made_before_the_matrix_is_not_reused_where_the_matrix_is_needed(tiny_npz, results):
    config = tiny(tiny_npz, variant="random", max_passes=2)
    first = cached_fit(config)
    path = next((results / "runs" / first["key"]).glob("*.json"))
    old = json.loads(path.read_text())
    del old["test_confusion"]  # as written by the version before the matrix
    path.write_text(json.dumps(old))
    assert cached_fit(config)["reused"] is True  # claims that do not need it still reuse it
    again = cached_fit(config, required=("test_confusion",))
    assert again["reused"] is False and "test_confusion" in again
    assert cached_fit(config, required=("test_confusion",))["reused"] is True
