"""The sampled training-set check: cheaper passes, the same verdict and the same pass to fit."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_faults_resume import comparable, interrupt_at

from harness.core.checkpoint import RunCheckpoint
from harness.core.config import RunConfig
from harness.core.train import _share, fit
from harness.core.train_check import GATE_SLACK, TrainingSetCheck


def tiny(tiny_npz, **changes):
    values = dict(data=f"npz:{tiny_npz}", model="mlp_1x512", max_passes=150, device="cpu", batch_size=32)
    values.update(changes)
    return RunConfig(**values)


def passthrough(model, images):
    """A stand-in classifier whose 'images' are its predictions, so a test sets every error by hand."""
    return images


def counting(calls):
    def predict(model, images):
        calls.append(len(images))
        return images

    return predict


@pytest.mark.parametrize("variant", ["random", "true"])
def test_a_sampled_check_fits_at_the_same_pass_with_the_same_weights(tiny_npz, variant):
    """Training is untouched by the sample, and the whole-set check still decides the pass that fits."""
    whole = fit(tiny(tiny_npz, variant=variant))
    sampled = fit(tiny(tiny_npz, variant=variant, train_check_fraction=0.25))
    assert whole["outcome"] == sampled["outcome"] == "fitted"
    assert sampled["passes_to_fit"] == whole["passes_to_fit"]
    assert sampled["model_sha256"] == whole["model_sha256"]
    assert sampled["curves"]["loss"] == whole["curves"]["loss"]
    assert sampled["train_accuracy"] == whole["train_accuracy"] == 1.0
    checked = sampled["curves"]["train_checked"]
    assert set(checked) <= {64, 256} and checked[-1] == 256  # 0.25 x 256 training images, or all of them
    for count, estimate, exact in zip(checked, sampled["curves"]["train_accuracy"], whole["curves"]["train_accuracy"]):
        if count == 256:
            assert estimate == exact  # a whole-set reading is the exact one
    assert sampled["whole_set_checks"] == checked.count(256)
    assert whole["whole_set_checks"] == whole["passes"]


@pytest.mark.parametrize("architecture, changes", [("mlp_1x512", {"dropout": 0.2}), ("alexnet", {"max_passes": 2})])
def test_sampling_leaves_dropout_and_convnets_untouched(tiny_npz, architecture, changes):
    """Dropout draws from the global generator, AlexNet runs channels_last: neither may notice the sample."""
    whole = fit(tiny(tiny_npz, model=architecture, variant="random", **changes))
    sampled = fit(tiny(tiny_npz, model=architecture, variant="random", train_check_fraction=0.25, **changes))
    assert sampled["model_sha256"] == whole["model_sha256"]
    assert sampled["curves"]["loss"] == whole["curves"]["loss"]
    assert sampled["passes_to_fit"] == whole["passes_to_fit"]


def test_a_sampled_run_resumes_to_the_record_of_an_uninterrupted_one(tiny_npz, tmp_path):
    config = tiny(tiny_npz, variant="random", train_check_fraction=0.25, max_passes=8)
    checkpoint = RunCheckpoint(tmp_path / "run.pt", "run-key", every=1)
    stopped = fit(config, checkpoint=checkpoint, progress=interrupt_at(4))
    assert stopped["outcome"] == "interrupted"
    resumed = fit(config, checkpoint=checkpoint)
    assert resumed["resumed_from_pass"] == 3
    assert comparable(resumed) == comparable(fit(config))
    assert resumed["curves"]["train_checked"][:3] == [64, 64, 64]


def test_an_empty_group_reads_none_not_nan():
    assert _share(torch.zeros(0, dtype=torch.bool)) is None
    assert _share(torch.tensor([True, False])) == 0.5


def test_random_labels_check_the_sample_on_most_passes(tiny_npz):
    record = fit(tiny(tiny_npz, variant="random", train_check_fraction=0.25))
    assert record["outcome"] == "fitted"
    # Random labels are fitted late: the sample holds errors for most of the run.
    assert record["whole_set_checks"] < record["passes"] / 2
    # Their clean and corrupted curves (labels that happen to be right or not) are read over the same images.
    assert (
        len(record["curves"]["train_accuracy_clean"])
        == len(record["curves"]["train_accuracy_corrupted"])
        == record["passes"]
    )


def test_the_last_pass_of_a_budget_is_checked_on_the_whole_set(tiny_npz):
    record = fit(tiny(tiny_npz, variant="random", max_passes=3, train_check_fraction=0.25))
    assert record["outcome"] == "out_of_budget"
    assert record["curves"]["train_checked"] == [64, 64, 256]


def test_partially_corrupted_labels_check_the_whole_set_every_pass(tiny_npz):
    """Their clean and corrupted curves are claim evidence at every pass (A1, A2)."""
    record = fit(tiny(tiny_npz, variant="partial", corruption=0.5, max_passes=3, train_check_fraction=0.25))
    assert record["curves"]["train_checked"] == [256, 256, 256]
    assert len(record["curves"]["train_accuracy_clean"]) == 3


def test_a_sample_with_more_errors_than_allowed_skips_the_whole_set():
    labels = torch.zeros(100, dtype=torch.long)
    predictions = torch.ones(100, dtype=torch.long)  # every image wrong
    calls = []
    check = TrainingSetCheck(counting(calls), predictions, labels, fraction=0.1, target_accuracy=1.0, seed=0)
    reading = check.measure(None)
    assert calls == [10] and reading.checked == 10 and not reading.whole and reading.accuracy == 0.0
    assert torch.equal(labels[reading.rows], labels[check.sample_rows])
    check.measure(None, whole=True)
    assert calls == [10, 100]


@pytest.mark.parametrize("sample_errors", range(GATE_SLACK + 1))
def test_a_sample_within_the_slack_asks_the_whole_set(sample_errors):
    """Up to GATE_SLACK sample errors beyond the allowance: a near tie that flips between batch shapes."""
    labels = torch.zeros(100, dtype=torch.long)
    check = TrainingSetCheck(passthrough, labels.clone(), labels, fraction=0.1, target_accuracy=1.0, seed=0)
    predictions = labels.clone()
    predictions[check.sample_rows[:sample_errors]] = 1
    calls = []
    check.predict, check.images = counting(calls), predictions
    check.sample_images = predictions[check.sample_rows]
    reading = check.measure(None)
    assert calls == [10, 100] and reading.whole and reading.accuracy == 1.0 - sample_errors / 100


def test_a_fraction_covering_the_set_never_samples():
    labels = torch.zeros(10, dtype=torch.long)
    calls = []
    TrainingSetCheck(counting(calls), labels, labels, fraction=0.95, target_accuracy=1.0, seed=0).measure(None)
    assert calls == [10]  # ceil(0.95 x 10) = 10: the sample would be the whole set


@given(
    n=st.integers(1, 300),
    fraction=st.floats(0.01, 1.0),
    target=st.sampled_from([1.0, 0.999, 0.99, 0.9, 0.5, 0.1]),
    error_rate=st.floats(0.0, 0.2),
    seed=st.integers(0, 2**31),
)
@settings(max_examples=300, deadline=None)
def test_the_gate_never_misses_a_fitted_whole_set(n, fraction, target, error_rate, seed):
    """Whenever the whole set is at the target, the reading is the whole set's: the fit is seen at its pass."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.zeros(n, dtype=torch.long)
    predictions = (torch.rand(n, generator=generator) < error_rate).long()  # 1 = an error
    check = TrainingSetCheck(passthrough, predictions, labels, fraction=fraction, target_accuracy=target, seed=seed)
    reading = check.measure(None)
    whole_accuracy = float((predictions == labels).double().mean())
    if whole_accuracy >= target:
        assert reading.whole and reading.checked == n and reading.accuracy == whole_accuracy
    if not reading.whole:  # a sampled reading: only when the whole set cannot be at the target
        assert reading.checked == math.ceil(fraction * n) < n
        assert whole_accuracy < target


def test_the_sample_keeps_channels_last_and_is_fixed_by_the_seed():
    images = torch.randn(40, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    labels = torch.arange(40)

    def rows(seed):
        return TrainingSetCheck(passthrough, images, labels, fraction=0.25, target_accuracy=1.0, seed=seed)

    assert rows(3).sample_images.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(rows(3).sample_labels, rows(3).sample_labels)
    assert not torch.equal(rows(3).sample_labels, rows(4).sample_labels)
    assert torch.equal(images[rows(3).sample_labels], rows(3).sample_images)  # labels are row numbers here


def test_the_fraction_is_validated_and_keyed_only_below_one():
    with pytest.raises(ValueError, match="train_check_fraction must lie in"):
        RunConfig(train_check_fraction=0.0)
    with pytest.raises(ValueError, match="train_check_fraction must lie in"):
        RunConfig(train_check_fraction=1.5)
    base = RunConfig()
    assert base.replace(train_check_fraction=1.0).key("data") == base.key("data")  # keys of older runs stand
    assert base.replace(train_check_fraction=0.1).key("data") != base.key("data")


# In its own process: deterministic=True needs CUBLAS_WORKSPACE_CONFIG before CUDA starts
# (see tests/test_graph_step.py), so that the two runs differ only in their checks.
GRAPH_LOOP_CHECK = """
import json, sys
from harness.core.config import RunConfig
from harness.core.train import fit

data, device, loop = sys.argv[1:]
base = dict(data=f"npz:{data}", model="mlp_1x512", device=device, loop=loop, variant="random", max_passes=150,
            batch_size=32, deterministic=True)
print(json.dumps([fit(RunConfig(train_check_fraction=fraction, **base)) for fraction in (1.0, 0.25)]))
"""


@pytest.mark.gpu(reason="the CUDA-graph loop needs a CUDA device (the nightly GPU job runs this)")
def test_the_graph_loop_fits_at_the_same_pass_with_a_sampled_check(tiny_npz):
    import json
    import os
    import subprocess
    import sys

    environment = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    done = subprocess.run(
        [sys.executable, "-c", GRAPH_LOOP_CHECK, str(tiny_npz), "cuda", "graph"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    whole, sampled = json.loads(done.stdout.strip().splitlines()[-1])
    assert whole["loop"] == sampled["loop"] == "graph"
    assert whole["outcome"] == sampled["outcome"] == "fitted"
    assert sampled["passes_to_fit"] == whole["passes_to_fit"]
    assert sampled["curves"]["loss"] == whole["curves"]["loss"]
    assert sampled["whole_set_checks"] < whole["whole_set_checks"]
