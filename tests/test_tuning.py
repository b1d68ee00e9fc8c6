"""The learning-rate tuning step: who is tuned, how the choice is made, recorded and reused."""

import json

import pytest

from harness import store, tuning
from harness.config import get_profile


def tiny_base(path):
    smoke = get_profile("smoke")
    return smoke.config(smoke.cifar_models[0], data=f"npz:{path}")


@pytest.mark.parametrize("spec, tuned", [
    ("paper_sgd", False), ("sgd", False), ("adam", True), ("adamw", True), ("rmsprop", True),
    ("torch.optim:Adagrad", True), ("torch.optim:Adagrad(lr=0.05)", False), ("torch.optim:Adagrad(eps=1e-8)", True),
])
def test_only_optimizers_without_a_given_learning_rate_are_tuned(spec, tuned):
    assert tuning.needs_tuning(spec) is tuned


def test_the_grid_runs_on_true_labels_is_recorded_and_reused(tiny_npz, results):
    base = tiny_base(tiny_npz)
    lines = []
    record = tuning.tune("adam", base, grid=(1e-4, 1e-2), passes=2, progress=lines.append)
    assert record["lr"] in (1e-4, 1e-2) and not record["reused"] and len(lines) == 2
    saved = json.loads(tuning.tuning_path("adam").read_text())
    assert saved["lr"] == record["lr"] and saved["grid"] == [1e-4, 1e-2]
    assert saved["scale"]["variant"] == "true" and saved["scale"]["max_passes"] == 2
    best = min(saved["trials"], key=lambda t: t["final_loss"])
    assert best["lr"] == record["lr"]
    assert {t["outcome"] for t in saved["trials"]} <= {"fitted", "out_of_budget"}
    again = tuning.tune("adam", base, grid=(1e-4, 1e-2), passes=2)
    assert again["reused"] and again["lr"] == record["lr"]
    other_grid = tuning.tune("adam", base, grid=(1e-3,), passes=2)
    assert not other_grid["reused"] and other_grid["lr"] == 1e-3


def test_the_lowest_last_pass_loss_wins_and_diverged_runs_are_excluded(tiny_npz, results, monkeypatch):
    losses = {1e-4: 2.0, 1e-3: 0.5, 1e-2: float("nan"), 1e-1: 0.5}

    def fake_fit(config, fresh=False, root=None):
        loss = losses[config.lr]
        outcome = "diverged" if loss != loss else "out_of_budget"
        accuracy = 0.9 if config.lr == 1e-1 else 0.8
        return {"outcome": outcome, "curves": {"loss": [3.0, loss]}, "train_accuracy": accuracy, "passes": 2,
                "key": f"k{config.lr}"}

    monkeypatch.setattr(store, "cached_fit", fake_fit)
    record = tuning.tune("adam", tiny_base(tiny_npz), passes=2)
    assert record["lr"] == 1e-1  # tie on loss with 1e-3: the higher training accuracy wins
    losses.update({1e-3: float("nan"), 1e-4: float("inf"), 1e-1: float("nan")})
    with pytest.raises(tuning.TuningError, match="diverged"):
        tuning.tune("adam", tiny_base(tiny_npz), passes=2, fresh=True)


def test_tuning_files_are_named_by_optimizer_id(results):
    assert tuning.tuning_path("adam").name == "adam.json"
    assert tuning.tuning_path("pkg.mod:Lion(beta=0.9)").name == "Lion_beta=0.9.json"
    assert tuning.tuning_path("adam").parent == results / "tuning"


def test_a_grid_is_parsed_or_refused():
    assert tuning.parse_grid("1e-4, 1e-3") == (1e-4, 1e-3)
    for bad in ("", "fast", "0.1,-1", "nan"):
        with pytest.raises(ValueError, match="bad learning-rate grid"):
            tuning.parse_grid(bad)
