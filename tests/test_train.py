"""The training loop: outcomes as values, curves kept, schedule, the fitted check."""

import math

import pytest
import torch

from harness.core.config import RunConfig
from harness.core.optim import OptimizerSpecError
from harness.core.train import fit


def tiny(tiny_npz, **changes):
    values = dict(data=f"npz:{tiny_npz}", model="mlp_1x512", max_passes=60, device="cpu", batch_size=32)
    values.update(changes)
    return RunConfig(**values)


def test_true_labels_on_learnable_data_are_fitted(tiny_npz):
    """The fitted outcome is the first pass with the whole training set at 100%, in eval mode."""
    record = fit(tiny(tiny_npz))
    assert record["outcome"] == "fitted"
    assert record["train_accuracy"] == 1.0
    assert record["passes_to_fit"] == record["passes"] == len(record["curves"]["loss"])
    assert record["steps_to_fit"] == record["passes_to_fit"] * math.ceil(256 / 32)
    assert all(a < 1.0 for a in record["curves"]["train_accuracy"][:-1])  # the first, not a later pass
    assert record["test_accuracy"] > 0.5  # the bands are learnable, so it generalises
    assert record["data_source"] == "arrays file tiny.npz"


def test_random_labels_on_tiny_data_are_fitted_and_test_near_chance(tiny_npz):
    record = fit(tiny(tiny_npz, variant="random", max_passes=150))
    assert record["outcome"] == "fitted"
    assert record["labels_changed"] > 200  # about 0.9 x 256 redrawn labels differ
    assert sum(record["test_prediction_counts"]) == record["n_test"] == 128


def test_out_of_budget_keeps_the_curves(tiny_npz):
    record = fit(tiny(tiny_npz, variant="random", max_passes=2))
    assert record["outcome"] == "out_of_budget"
    assert "after 2 passes" in record["message"]
    assert len(record["curves"]["train_accuracy"]) == 2
    assert record["passes_to_fit"] is None and record["steps_to_fit"] is None


def test_divergence_is_an_outcome_not_a_traceback(tiny_npz):
    record = fit(tiny(tiny_npz, lr=1e12, max_passes=5))
    assert record["outcome"] == "diverged"
    assert "loss became" in record["message"]
    assert len(record["curves"]["loss"]) >= 1


def test_a_diverged_run_names_its_pass_and_keeps_the_curves_up_to_it(tiny_npz):
    record = fit(tiny(tiny_npz, lr=1e12, max_passes=5))
    losses = record["curves"]["loss"]
    assert record["message"].endswith(f"in pass {len(losses)}") and record["passes"] == len(losses)
    assert not math.isfinite(losses[-1]) and all(math.isfinite(loss) for loss in losses[:-1])
    assert all(len(values) == len(losses) for values in record["curves"].values())
    assert record["test_accuracy"] is not None  # the last pass is always measured on the test set


def test_lr_decays_per_examples_seen_not_per_pass(tiny_npz):
    """On a subset of n images, x0.95 applies per 50,000 examples: lr_k = lr0 * 0.95^(k n / 50000)."""
    record = fit(tiny(tiny_npz, max_passes=3, target_accuracy=1.0, variant="random", decay_every=512))
    lrs = record["curves"]["lr"]
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[1] == pytest.approx(0.01 * 0.95**0.5)
    assert lrs[2] == pytest.approx(0.01 * 0.95)


def test_test_set_is_measured_every_k_passes_and_at_the_end(tiny_npz):
    record = fit(tiny(tiny_npz, variant="random", max_passes=7, test_every=3))
    measured = [a is not None for a in record["curves"]["test_accuracy"]]
    assert measured == [False, False, True, False, False, True, True]


def test_same_seed_same_run(tiny_npz):
    first = fit(tiny(tiny_npz, max_passes=2, variant="random"))
    second = fit(tiny(tiny_npz, max_passes=2, variant="random"))
    assert first["curves"]["loss"] == second["curves"]["loss"]


def test_deterministic_runs_are_bitwise_identical_and_restore_the_settings(tiny_npz):
    """Curves and final weights equal bit for bit; deterministic kernels on during the run only."""
    during = []
    config = tiny(tiny_npz, max_passes=3, variant="random", dropout=0.2, augment="crop", deterministic=True)
    before = torch.are_deterministic_algorithms_enabled()
    first = fit(config, progress=lambda state: during.append(torch.are_deterministic_algorithms_enabled()))
    assert during == [True] * 3 and torch.are_deterministic_algorithms_enabled() == before
    second = fit(config)
    for name in ("loss", "train_accuracy", "test_accuracy", "lr"):
        assert first["curves"][name] == second["curves"][name]
    assert first["model_sha256"] == second["model_sha256"]
    assert first["model_sha256"] != fit(config.replace(seed=1))["model_sha256"]  # the digest sees the weights


def test_partial_corruption_tracks_clean_and_corrupted_examples(tiny_npz):
    record = fit(tiny(tiny_npz, variant="partial", corruption=0.5, max_passes=3))
    assert len(record["curves"]["train_accuracy_clean"]) == 3
    assert len(record["curves"]["train_accuracy_corrupted"]) == 3


def test_convnet_trains_on_grey_images(tiny_npz):
    record = fit(tiny(tiny_npz, model="alexnet", max_passes=1))
    assert record["parameters"] > 1_000_000 and record["passes"] == 1


def test_bad_settings_fail_before_training(tiny_npz):
    with pytest.raises(OptimizerSpecError, match="neither a built-in"):
        fit(tiny(tiny_npz, optimizer="nonsense"))
    with pytest.raises(ValueError, match="precision bf16 is a GPU setting"):
        fit(tiny(tiny_npz, precision="bf16"))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            fit(tiny(tiny_npz, device="cuda"))


def test_a_plug_in_optimizer_by_import_path(tiny_npz):
    record = fit(tiny(tiny_npz, optimizer="torch.optim:Adam(betas=(0.9, 0.99))", lr=1e-3, max_passes=2))
    assert record["passes"] >= 1


def test_random_crop_takes_a_shifted_window_of_each_padded_image():
    """Each augmented image is a 28x28 window of its own image padded by 2 px: no mixing across images."""
    from harness.core.train import RandomCrop

    images = torch.arange(3 * 1 * 28 * 28, dtype=torch.float32).view(3, 1, 28, 28)
    crop = RandomCrop(images, torch.Generator().manual_seed(0))
    out = crop(torch.tensor([2, 0]))
    assert out.shape == (2, 1, 28, 28)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for got, row in zip(out, (2, 0)):
        windows = [padded[row, :, i : i + 28, j : j + 28] for i in range(5) for j in range(5)]
        assert any(torch.equal(got, w) for w in windows)


def test_weight_decay_dropout_and_crop_train(tiny_npz):
    record = fit(tiny(tiny_npz, weight_decay=5e-4, dropout=0.2, augment="crop", max_passes=2))
    assert record["passes"] == 2 and record["config"]["augment"] == "crop"
