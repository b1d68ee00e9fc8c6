"""The learning-rate tuning step: who is tuned, how the choice is made, recorded and reused."""

import json

import pytest

from harness.core import runner
from harness.core.config import get_profile
from harness.suite import tuning


def tiny_base(path):
    smoke = get_profile("smoke")
    return smoke.config(smoke.cifar_models[0], data=f"npz:{path}")


@pytest.mark.parametrize(
    "spec, tuned",
    [
        ("paper_sgd", False),
        ("sgd", False),
        ("adam", True),
        ("adamw", True),
        ("rmsprop", True),
        ("torch.optim:Adagrad", True),
        ("torch.optim:Adagrad(lr=0.05)", False),
        ("torch.optim:Adagrad(eps=1e-8)", True),
    ],
)
def test_only_optimizers_without_a_given_learning_rate_are_tuned(spec, tuned):
    assert tuning.needs_tuning(spec) is tuned


def test_the_grid_runs_on_true_labels_is_recorded_and_reused(tiny_npz, results):
    base = tiny_base(tiny_npz)
    lines = []
    record = tuning.tune("adam", base, grid=(1e-4, 1e-2), passes=2, progress=lines.append)
    # adam's own 1e-3 joins the grid, and is tried first
    assert record["values_tried"] == [1e-4, 1e-3, 1e-2] and len(lines) == 3 and "lr 0.001" in lines[0]
    assert record["lr"] in (1e-4, 1e-3, 1e-2) and not record["reused"]
    saved = json.loads(tuning.tuning_path("adam").read_text())
    assert saved["lr"] == record["lr"] and saved["grid"] == [1e-4, 1e-2]
    assert saved["scale"]["variant"] == "true" and saved["scale"]["max_passes"] == 2
    assert {t["outcome"] for t in saved["trials"]} <= {"fitted", "out_of_budget"}
    again = tuning.tune("adam", base, grid=(1e-4, 1e-2), passes=2)
    assert again["reused"] and again["lr"] == record["lr"]
    other_grid = tuning.tune("adam", base, grid=(1e-3,), passes=2)
    assert not other_grid["reused"] and other_grid["lr"] == 1e-3


def fake_runs(monkeypatch, fits_at: dict, losses: dict, calls: list | None = None):
    """cached_fit stand-in: lr -> pass at which true labels fit (None: never) and last-pass loss; honours max_passes."""

    def fake_fit(config, fresh=False, root=None):
        if calls is not None:
            calls.append((config.lr, config.max_passes))
        fit_pass, loss = fits_at.get(config.lr), losses[config.lr]
        fitted = fit_pass is not None and fit_pass <= config.max_passes and loss == loss
        passes = fit_pass if fitted else config.max_passes
        outcome = "fitted" if fitted else ("diverged" if loss != loss else "out_of_budget")
        return {
            "outcome": outcome,
            "curves": {"loss": [3.0] * (passes - 1) + [loss]},
            "passes": passes,
            "passes_to_fit": passes if fitted else None,
            "train_accuracy": 1.0 if fitted else 0.8,
            "key": f"k{config.lr}",
        }

    monkeypatch.setattr(runner, "cached_fit", fake_fit)


def test_fewest_passes_to_fit_wins_where_the_early_loss_points_elsewhere(tiny_npz, results, monkeypatch):
    """The trial user's Lion case: 1e-3 has the lowest loss after a few passes but never fits; 1e-4 fits."""
    calls = []
    fake_runs(
        monkeypatch,
        fits_at={1e-4: 19, 1e-2: 40},
        losses={1e-4: 0.9, 1e-3: 0.2, 1e-2: 0.5, 1e-1: float("nan")},
        calls=calls,
    )
    record = tuning.tune("adam", tiny_base(tiny_npz), passes=60)
    assert record["lr"] == 1e-4 and record["fits_true_labels"]
    # adam's own 1e-3 first, at the whole budget; every later trial capped at the best passes to fit so far
    assert calls == [(1e-3, 60), (1e-4, 60), (1e-2, 19), (1e-1, 19)]


def test_ties_and_unfitted_grids_go_to_the_lowest_loss_and_diverged_runs_are_excluded(tiny_npz, results, monkeypatch):
    fake_runs(monkeypatch, fits_at={}, losses={1e-4: 2.0, 1e-3: 0.5, 1e-2: float("nan"), 1e-1: 0.7})
    with pytest.warns(tuning.TuningWarning, match="no lr tried fits true labels"):
        record = tuning.tune("adam", tiny_base(tiny_npz), passes=5)
    assert record["lr"] == 1e-3 and not record["fits_true_labels"]
    fake_runs(monkeypatch, fits_at={1e-3: 10, 1e-2: 10}, losses={1e-4: 2.0, 1e-3: 0.5, 1e-2: 0.3, 1e-1: 0.7})
    assert tuning.tune("adam", tiny_base(tiny_npz), passes=20, fresh=True)["lr"] == 1e-2  # a tie: lower loss
    fake_runs(monkeypatch, fits_at={}, losses=dict.fromkeys((1e-4, 1e-3, 1e-2, 1e-1), float("nan")))
    with pytest.raises(tuning.TuningError, match="diverged"):
        tuning.tune("adam", tiny_base(tiny_npz), passes=2, fresh=True)


def test_a_choice_at_the_grids_edge_warns(tiny_npz, results, monkeypatch):
    fake_runs(monkeypatch, fits_at={1e-1: 5}, losses={1e-4: 2.0, 1e-3: 1.5, 1e-2: 1.0, 1e-1: 0.1})
    with pytest.warns(tuning.TuningWarning, match="at the edge of the values tried"):
        assert tuning.tune("adam", tiny_base(tiny_npz), passes=20)["lr"] == 1e-1


def test_an_imported_optimizers_own_default_joins_the_grid(tmp_path, monkeypatch):
    """Prodigy's intended rate is 1.0, outside the default grid: it is tried."""
    (tmp_path / "ownrate.py").write_text(
        "import torch\n"
        "class Prodigyish(torch.optim.SGD):\n"
        "    def __init__(self, params, lr=1.0, d0=1e-6):\n"
        "        super().__init__(params, lr=lr * d0)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert tuning.default_lr("ownrate:Prodigyish") == 1.0
    assert tuning.tuning_grid("ownrate:Prodigyish") == (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    assert tuning.default_lr("adam") == 1e-3 and tuning.tuning_grid("adam") == tuning.GRID
    assert tuning.default_lr("torch.optim:LBFGS") == 1.0


def test_tuning_files_are_named_by_optimizer_id(results):
    assert tuning.tuning_path("adam").name == "adam.json"
    assert tuning.tuning_path("pkg.mod:Lion(beta=0.9)").name == "Lion_beta=0.9.json"
    assert tuning.tuning_path("adam").parent == results / "tuning"


def test_a_grid_is_parsed_or_refused():
    assert tuning.parse_grid("1e-4, 1e-3") == (1e-4, 1e-3)
    for bad in ("", "fast", "0.1,-1", "nan"):
        with pytest.raises(ValueError, match="bad learning-rate grid"):
            tuning.parse_grid(bad)
