"""Inputs identical after preprocessing but labelled differently: counted before training, with the ceiling they set.

Uniform images all standardise to one input (zero) and exact duplicates stay
duplicates; when such inputs carry different labels (random labels are drawn
independently for each), no classifier reaches 100% training accuracy. The
counting runs on the prepared training inputs and the labels the run trains
on, so a run that cannot fit is reported as such instead of as an optimizer
that could not fit it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import write_arrays_file

from harness.core.config import RunConfig
from harness.core.data import load_raw
from harness.core.prepare import (
    Collisions,
    attainable_accuracy,
    count_collisions,
    fitting_refusal,
    identical_input_groups,
    prepare,
    standardise_per_image,
)

CPU = torch.device("cpu")


def test_uniform_images_of_every_brightness_standardise_to_exactly_zero():
    """All 256 grey levels, grey and colour: each uniform image comes out exactly 0.0, not rounding noise.

    A floating-point mean can miss the pixel value by an ulp; the residue,
    divided by the std floor, used to leave uniform images as 256 slightly
    different inputs where there is one.
    """
    for channels in (1, 3):
        levels = torch.arange(256, dtype=torch.float32).div(255).view(256, 1, 1, 1)
        images = levels.expand(256, channels, 28, 28).contiguous()
        out = standardise_per_image(images)
        assert torch.equal(out, torch.zeros_like(out)), f"{int((out != 0).flatten(1).any(1).sum())} nonzero"


def test_groups_are_the_uniform_images_and_the_exact_duplicates():
    """Rows 0-4 uniform (five brightness levels), rows 7 and 9 one image twice: two groups, nothing else."""
    images = torch.rand(12, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    images[:5] = torch.linspace(0.1, 0.9, 5).view(5, 1, 1, 1)
    images[9] = images[7]
    groups = identical_input_groups(standardise_per_image(images))
    assert [group.tolist() for group in groups] == [[0, 1, 2, 3, 4], [7, 9]]


def test_inputs_with_equal_bit_sums_but_different_bytes_are_not_a_group():
    """Two inputs that are permutations of each other share the checksum; only identical bytes make a group."""
    first = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    images = torch.cat([first, first.flip(-1)])
    assert identical_input_groups(images) == []


def test_the_ceiling_keeps_each_groups_most_frequent_label():
    """Ten identical inputs labelled 3,3,3,3,1,1,2,... lose all but the four 3s: 6 errors in 20, ceiling 70%."""
    images = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    images[:10] = 0.5
    labels = np.array([3, 3, 3, 3, 1, 1, 2, 2, 0, 5] + list(range(10)))
    collisions = count_collisions(standardise_per_image(images), labels)
    assert collisions.unavoidable_errors == 6 and collisions.colliding_inputs == 10
    assert collisions.attainable_accuracy == pytest.approx(0.7)
    assert attainable_accuracy(standardise_per_image(images), labels) == pytest.approx(0.7)


def _uniform_among_random(path, n=2000, n_uniform=400):
    """An arrays file of n noise images, n_uniform of them uniform (random grey levels); labels 0..9 in turn."""
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    uniform = np.sort(rng.choice(n, n_uniform, replace=False))
    train_x[uniform] = rng.integers(0, 256, n_uniform, dtype=np.uint8)[:, None, None]
    train_y = np.arange(n) % 10
    np.savez(path, train_x=train_x, train_y=train_y, test_x=train_x[:100], test_y=train_y[:100])
    return uniform


def test_400_uniform_images_among_2000_cap_random_labels_at_82_40_percent(tmp_path):
    """The tracker's example: 400 uniform images among 2,000, random labels (seed 10): at most 82.40%.

    The 400 uniform images are one input; with their labels redrawn, the
    best any classifier does is the most frequent label among them (48), so
    1,600 + 48 of 2,000 = 82.40%. The count is taken from the labels the run
    trains on (after the random draw), not the file's labels, which here
    would all disagree too.
    """
    path = tmp_path / "uniform.npz"
    uniform_rows = _uniform_among_random(path)
    config = RunConfig(data=f"npz:{path}", variant="random", seed=10)

    data = prepare(config, load_raw(config.data), CPU)

    trained_labels = data.train_y.numpy()[uniform_rows]
    expected = (1600 + np.bincount(trained_labels).max()) / 2000
    assert expected == pytest.approx(0.824)
    assert data.collisions.attainable_accuracy == pytest.approx(expected)
    assert [rows.tolist() for rows in data.collisions.dataset_rows] == [uniform_rows.tolist()]
    refusal = fitting_refusal(data.collisions, config.target_accuracy)
    assert refusal is not None and "\n" not in refusal
    for fragment in (
        "400 training inputs",
        "1 group(s)",
        "82.40%",
        "below the target 100.00%",
        "drop or deduplicate",
        f"train_x rows {', '.join(map(str, uniform_rows[:5]))}, ...",
    ):
        assert fragment in refusal, f"{fragment!r} not in: {refusal}"
    assert data.collisions.record_fields() == {
        "attainable_train_accuracy": 0.824,
        "identical_input_groups": 1,
        "colliding_inputs": 400,
        "conflicting_inputs": 400,
        "unavoidable_errors": 352,
    }


def test_a_target_at_or_below_the_ceiling_is_not_refused(tmp_path):
    path = tmp_path / "uniform.npz"
    _uniform_among_random(path)
    data = prepare(RunConfig(data=f"npz:{path}", variant="random", seed=10), load_raw(f"npz:{path}"), CPU)
    assert fitting_refusal(data.collisions, 0.824) is None
    assert fitting_refusal(data.collisions, 0.8) is None


def test_duplicates_whose_true_labels_agree_leave_the_data_fittable(tmp_path):
    """Exact duplicates with one label each cost nothing: true labels fit; random labels on them do not."""
    path = tmp_path / "duplicates.npz"
    rng = np.random.default_rng(3)
    train_x = rng.integers(0, 256, (200, 28, 28), dtype=np.uint8)
    train_x[100:] = train_x[:100]  # every image twice, under the same label
    train_y = np.tile(np.arange(100) % 10, 2)
    np.savez(path, train_x=train_x, train_y=train_y, test_x=train_x[:10], test_y=train_y[:10])
    raw = load_raw(f"npz:{path}")

    true = prepare(RunConfig(data=f"npz:{path}", variant="true"), raw, CPU).collisions
    random = prepare(RunConfig(data=f"npz:{path}", variant="random"), raw, CPU).collisions

    assert len(true.groups) == 100 and true.conflicting == () and true.attainable_accuracy == 1.0
    assert fitting_refusal(true, 1.0) is None
    # Random labels: each pair disagrees with probability 0.9; only those pairs cost accuracy and are named.
    assert len(random.groups) == 100 and 0 < len(random.conflicting) < 100
    assert random.attainable_accuracy == (200 - len(random.conflicting)) / 200
    assert f"{2 * len(random.conflicting)} training inputs fall into {len(random.conflicting)} group(s)" in (
        fitting_refusal(random, 1.0)
    )


def test_data_without_collisions_has_a_ceiling_of_one(tiny_npz):
    data = prepare(RunConfig(data=f"npz:{tiny_npz}", variant="random"), load_raw(f"npz:{tiny_npz}"), CPU)
    assert data.collisions == Collisions(n_train=len(data.train_y))
    assert data.collisions.attainable_accuracy == 1.0
    assert fitting_refusal(data.collisions, 1.0) is None


def test_gaussian_images_replace_the_uniform_ones_and_collide_no_more(tmp_path):
    """The counting runs on the inputs the variant produced: Gaussian noise images are all distinct."""
    path = tmp_path / "uniform.npz"
    _uniform_among_random(path, n=200, n_uniform=40)
    data = prepare(RunConfig(data=f"npz:{path}", variant="gaussian"), load_raw(f"npz:{path}"), CPU)
    assert data.collisions.groups == ()


def test_counting_uses_the_training_subset_and_names_rows_of_the_file(tmp_path):
    """With n_train a subset, the groups are of the subset, reported as rows of the file's train_x."""
    path = write_arrays_file(tmp_path / "set.npz", n_train=300)
    arrays = dict(np.load(path))
    arrays["train_x"][[10, 20, 30]] = 0
    np.savez(path, **arrays)
    config = RunConfig(data=f"npz:{path}", n_train=299, seed=4, variant="random")
    data = prepare(config, load_raw(config.data), CPU)
    (rows,) = data.collisions.dataset_rows
    assert set(rows.tolist()) <= {10, 20, 30} and len(rows) >= 2


def test_a_run_that_cannot_fit_is_refused_before_training_with_its_ceiling(tmp_path, results):
    """The tracker's example through the training loop, the store and the batched loop: no pass is trained."""
    from harness.bench.batched import fit_batched
    from harness.core.runner import cached_fit
    from harness.core.train import fit

    path = tmp_path / "uniform.npz"
    _uniform_among_random(path)
    config = RunConfig(data=f"npz:{path}", variant="random", seed=10, max_passes=80, batch_size=128)
    record = fit(config)
    assert record["outcome"] == "not_fittable" and record["passes"] == 0
    assert record["attainable_train_accuracy"] == pytest.approx(0.824)
    assert "82.40%" in record["message"]
    first, again = cached_fit(config), cached_fit(config)
    assert first["outcome"] == "not_fittable" and again["reused"] is True
    short = config.replace(max_passes=2)
    batched = fit_batched([short, short.replace(variant="true")])
    # The file's own labels disagree among the uniform images too: neither run trains a pass.
    assert [(r["outcome"], r["passes"]) for r in batched] == [("not_fittable", 0)] * 2
