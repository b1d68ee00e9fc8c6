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
    # adam's own 1e-3 joins the grid, and is tried first; a real first pass gives the cost per pass
    trial_lines = [line for line in lines if "fit" in line and "passes" in line.split("lr ")[-1]]
    assert record["values_tried"] == [1e-4, 1e-3, 1e-2] and "lr 0.001" in trial_lines[0]
    assert "one pass of mlp_1x512 on 256 images takes about" in lines[1]  # tiny_npz: 256 training images
    assert record["lr"] in (1e-4, 1e-3, 1e-2) and not record["reused"]
    saved = json.loads(tuning.tuning_path("adam").read_text())
    assert saved["lr"] == record["lr"] and saved["grid"] == [1e-4, 1e-2]
    assert saved["scale"]["variant"] == "true" and saved["scale"]["max_passes"] == 2
    assert {t["outcome"] for t in saved["trials"]} <= {"fitted", "out_of_budget"}
    again = tuning.tune("adam", base, grid=(1e-4, 1e-2), passes=2)
    assert again["reused"] and again["lr"] == record["lr"]
    other_grid = tuning.tune("adam", base, grid=(1e-3,), passes=2)
    assert not other_grid["reused"] and other_grid["lr"] == 1e-3


def test_the_paper_sgd_is_timed_at_the_tuning_scale_so_runs_of_a_tuned_optimizer_can_be_estimated(tiny_npz, results):
    """history.py estimates a new optimizer's runs by the ratio of seconds per pass at one scale on one machine:
    the paper's SGD, never tuned, is timed at that scale (planted: recorded at another scale, the two
    differ and nothing could be estimated)."""
    from harness.suite.history import tuning_seconds_per_pass

    base = tiny_base(tiny_npz)
    tuning.tune("adam", base, grid=(1e-3,))
    record = tuning.time_reference("paper_sgd", base)
    assert record["timed_only"] and record["lr"] == 0.01 and record["trials"][0]["train_seconds"] > 0
    per_pass = tuning_seconds_per_pass(tuning.tuning_path("adam").parent)
    assert set(per_pass) == {"adam", "paper_sgd"} and per_pass["adam"][1] == per_pass["paper_sgd"][1]


PASS_SECONDS = {"train_seconds": 0.25, "eval_seconds": 0.125}  # what fake_runs reports of each pass


def fake_runs(monkeypatch, fits_at: dict, losses: dict, calls: list | None = None):
    """cached_fit stand-in: lr -> pass at which true labels fit (None: never) and last-pass loss; honours max_passes."""

    def fake_fit(config, fresh=False, root=None, progress=None):
        if calls is not None:
            calls.append((config.lr, config.max_passes))
        fit_pass, loss = fits_at.get(config.lr), losses[config.lr]
        fitted = fit_pass is not None and fit_pass <= config.max_passes and loss == loss
        passes = fit_pass if fitted else config.max_passes
        for number in range(1, passes + 1) if progress else ():
            progress({"pass": number, "max_passes": config.max_passes, "loss": 3.0, **PASS_SECONDS})
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
    # adam's own 1e-3 first, at the whole budget, then upward, then down; each capped at the best fit so far
    assert calls == [(1e-3, 60), (1e-2, 60), (1e-1, 40), (1e-4, 40)]


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


def test_trials_bracket_from_the_default_outward_upward_first(tiny_npz, results, monkeypatch):
    """adam starts at its 1e-3; each direction stops at its first trial worse than its nearer neighbour."""
    calls = []
    fake_runs(
        monkeypatch,
        fits_at={1e-3: 30, 1e-2: 20, 1e-1: 25, 1e-4: 45},
        losses={1e-5: 2.0, 1e-4: 1.0, 1e-3: 0.5, 1e-2: 0.2, 1e-1: 0.3, 1.0: float("nan")},
        calls=calls,
    )
    record = tuning.tune("adam", tiny_base(tiny_npz), grid=(1e-5, 1e-4, 1e-2, 1e-1, 1.0), passes=60)
    # 1e-1 cannot fit within 1e-2's 20 passes: worse, so 1.0 is skipped; 1e-4 cannot beat 1e-3: 1e-5 skipped
    assert calls == [(1e-3, 60), (1e-2, 30), (1e-1, 20), (1e-4, 20)] and record["lr"] == 1e-2
    assert sorted((t["order"], t["lr"]) for t in record["trials"]) == [(1, 1e-3), (2, 1e-2), (3, 1e-1), (4, 1e-4)]
    assert [s["lr"] for s in record["skipped"]] == [1.0, 1e-5]
    assert all("worse than lr" in s["why"] for s in record["skipped"])


def diverging_default_factory(tmp_path, monkeypatch) -> str:
    (tmp_path / "divergent.py").write_text(
        "import torch\n"
        "def momentum_sgd(params, lr=1.0, momentum=0.9):\n"
        "    return torch.optim.SGD(params, lr=lr, momentum=momentum)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "divergent:momentum_sgd"


def test_a_diverging_default_stops_the_walk_upward_and_the_slow_rates_do_not_run_their_budget(
    tiny_npz, results, monkeypatch, tmp_path
):
    """The issue's case: the default 1.0 diverges; 10 is not tried, 1e-3 and 1e-4 never run their 60 passes."""
    spec, calls = diverging_default_factory(tmp_path, monkeypatch), []
    fits_at = {1e-1: 8, 1e-2: 30, 1e-3: 55}  # the slower the rate, the more passes it needs
    losses = {10.0: float("nan"), 1.0: float("nan"), 1e-1: 0.05, 1e-2: 0.3, 1e-3: 0.8, 1e-4: 1.5}
    fake_runs(monkeypatch, fits_at=fits_at, losses=losses, calls=calls)
    record = tuning.tune(spec, tiny_base(tiny_npz), grid=(*tuning.GRID, 10.0), passes=60)
    assert calls == [(1.0, 60), (1e-1, 60), (1e-2, 8)] and record["lr"] == 1e-1
    assert not [lr for lr, budget in calls if lr <= 1e-3 and budget == 60]
    assert {s["lr"]: s["why"].split(":")[0] for s in record["skipped"]} == {
        10.0: "above lr 1, which diverged",
        1e-3: "beyond lr 0.01, worse than lr 0.1",
        1e-4: "beyond lr 0.01, worse than lr 0.1",
    }


def test_the_plan_comes_first_then_the_measured_cost_and_a_line_every_ten_passes(tiny_npz, results, monkeypatch):
    fake_runs(monkeypatch, fits_at={1e-2: 25}, losses={1e-4: 2.0, 1e-3: 1.0, 1e-2: 0.2, 1e-1: float("nan")})
    lines = []
    tuning.tune("adam", tiny_base(tiny_npz), passes=60, progress=lines.append)
    assert lines[0].startswith("tuning adam: from lr 0.001 up (0.01, 0.1), then down (0.0001)")
    assert lines[0].endswith("at most 4 trials x 60 passes")
    per_pass = PASS_SECONDS["train_seconds"] + PASS_SECONDS["eval_seconds"]
    assert f"takes about {per_pass:.2f} s here" in lines[1] and "lr" not in lines[1].split(":")[1]
    # 1e-3 runs its whole 60 passes (a line at 10..50), 1e-2 fits at 25 of 60 (lines at 10, 20)
    assert [line.split(": ")[1] for line in lines if "/60" in line] == [
        *(f"lr 0.001 pass {n}/60, loss 3.0000" for n in (10, 20, 30, 40, 50)),
        "lr 0.01 pass 10/60, loss 3.0000",
        "lr 0.01 pass 20/60, loss 3.0000",
    ]
    assert lines.index("tuning adam: lr 0.001 pass 10/60, loss 3.0000") > 1


def test_a_record_of_this_version_is_reused_and_the_session_carries_its_warnings(tiny_npz, results, monkeypatch):
    calls = []
    losses = {1e-5: 3.0, 1e-4: 2.0, 1e-3: 1.5, 1e-2: 1.0, 1e-1: 0.1}
    fake_runs(monkeypatch, fits_at={1e-1: 5}, losses=losses, calls=calls)
    base, lines = tiny_base(tiny_npz), []
    grid = (1e-5, 1e-4, 1e-2, 1e-1)
    with pytest.warns(tuning.TuningWarning, match="at the edge"):
        entry = tuning.tune_session(["adam"], base, grid=grid, say=lines.append)["adam"]
    first = json.loads(tuning.tuning_path("adam").read_text())
    assert [t["order"] for t in first["trials"]] == [4, 1, 2, 3]  # sorted by lr; 1e-4 ran last
    assert [s["lr"] for s in first["skipped"]] == [1e-5]
    assert entry["warnings"] == tuning.choice_warnings(first) and "at the edge" in entry["warnings"][0]
    assert f"warning: {entry['warnings'][0]}" in lines
    calls.clear()
    again = tuning.tune("adam", base, grid=grid)
    assert again["reused"] and again["lr"] == first["lr"] == 1e-1 and calls == []
    # a record of the older format (every value run, no order, nothing skipped) is reused as it is
    older = {key: value for key, value in first.items() if key not in ("skipped", "start_lr")}
    older["trials"] = [{key: value for key, value in t.items() if key != "order"} for t in first["trials"]]
    tuning.tuning_path("adam").write_text(json.dumps(older))
    assert tuning.tune("adam", base, grid=grid)["reused"] and calls == []
