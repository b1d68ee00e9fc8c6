"""The claims matrix: optimizer x claim, figure and verdict in each cell, the paper's SGD as reference."""

import pytest
from support import figure

from harness.core.formatting import scope_beyond_the_paper, shown_figure
from harness.suite.matrix import claims_matrix, verdict
from harness.suite.paper import ARPIT_ET_AL as ARPIT

C1 = "claims/test_c01.py::test_c1_random_labels_are_fitted_exactly[mlp_1x512-{}]"
C3 = "claims/test_c03.py::test_c3_random_labels_cost_a_small_constant_factor[mlp_1x512-{}]"
C9 = "claims/test_c09.py::test_c9_sgd_from_zero_reaches_the_minimum_norm_solution"


def two_optimizer_session():
    figures = [
        figure("C1", "train accuracy, seed 0 (n=5000)", 1.0, True, "adam", C1.format("adam")),
        figure("C1", "train accuracy, seed 0 (n=5000)", 1.0, True, "paper_sgd", C1.format("paper_sgd")),
        figure("C1", "train accuracy, seed 1 (n=5000)", 0.98, False, "adam", C1.format("adam")),
        figure("C1", "train accuracy, seed 1 (n=5000)", 1.0, True, "paper_sgd", C1.format("paper_sgd")),
        figure("C9", "SGD: ||w - pinv(X) y||", 1e-12, True, None, C9),
    ]
    tests = {
        C1.format("adam"): {"optimizer": "adam", "outcome": "failed"},
        C1.format("paper_sgd"): {"optimizer": "paper_sgd", "outcome": "passed"},
        # C3 with Adam is listed as expected to fail and declared no figure before failing
        C3.format("adam"): {"optimizer": "adam", "outcome": "xfailed", "reason": "listed"},
        C3.format("paper_sgd"): {"optimizer": "paper_sgd", "outcome": "skipped", "reason": "no data"},
        C9: {"optimizer": None, "outcome": "passed"},
    }
    return {
        "profile": "smoke",
        "number": 3,
        "stamp": {"commit": "abc"},
        "optimizers": ["adam", "paper_sgd"],
        "tuning": {"adam": {"lr": 0.001, "file": "RESULTS/tuning/adam.json"}},
        "figures": figures,
        "tests": tests,
    }


def table_rows(text, first_cell):
    return [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]


def test_the_matrix_puts_the_papers_sgd_first_and_gives_figure_and_verdict_per_cell():
    text = claims_matrix(two_optimizer_session())
    assert "| claim | paper_sgd (reference) | adam |" in text
    c1, c1_figures_seed0, c1_figures_seed1 = table_rows(text, "C1")
    assert c1 == "| C1 | holds · 2/2 figures hold · 1, 1 | **FAILS** · 1/2 figures hold · 1, 0.98 |"
    assert c1_figures_seed1 == "| C1 | train accuracy, seed 1 (n=5000) | ? | 1 holds | 0.98 **FAILS** |"
    assert table_rows(text, "C3") == ["| C3 | skipped | FAILS (expected) |"]
    assert "| C9 | holds · 1/1 figures hold · 1e-12 |" in text  # trains nothing: listed once
    assert "session 0003" in text and "adam: learning rate 0.001, chosen by the tuning step" in text
    assert "\\|\\|w - pinv" not in text.split("Claims that train nothing")[0]  # C9 is not an optimizer row


def test_without_the_papers_sgd_the_reference_comes_from_another_session_or_says_not_run():
    only_adam = two_optimizer_session()
    only_adam["optimizers"] = ["adam"]
    only_adam["figures"] = [f for f in only_adam["figures"] if f["optimizer"] != "paper_sgd"]
    alone = claims_matrix(only_adam)
    assert "| claim | paper_sgd (reference, not run) | adam |" in alone
    assert table_rows(alone, "C1")[0].startswith("| C1 | not run | **FAILS**")
    reference = two_optimizer_session()
    reference["number"] = 2
    with_reference = claims_matrix(only_adam, reference=reference)
    assert "| claim | paper_sgd (reference, session 0002) | adam |" in with_reference
    assert table_rows(with_reference, "C1")[0].startswith("| C1 | holds · 2/2")


def test_a_session_from_before_the_plug_in_is_the_papers_sgd_and_pipes_are_escaped():
    legacy = {
        "profile": "paper",
        "stamp": {},
        "figures": [figure("C3", "ratio a|b", 2.0, True, "x", "claims/t.py::test_c3_x[mlp_1x512]")],
    }
    del legacy["figures"][0]["optimizer"]
    text = claims_matrix(legacy)
    assert "| C3 | holds · 1/1 figures hold · 2 |" in text
    assert "ratio a\\|b" in text


def test_verdicts():
    assert verdict(None) == "not run"
    assert verdict({"figures": [], "outcomes": {"t": "xpassed"}}).startswith("holds (unexpectedly")
    assert verdict({"figures": [], "outcomes": {"t": "error"}}) == "**FAILS**"
    assert verdict({"figures": [{"holds": False, "test": "t"}], "outcomes": {"t": "xfailed"}}) == "FAILS (expected)"


def test_a_test_that_failed_before_declaring_a_figure_shows_its_message():
    session = {
        "profile": "smoke",
        "optimizers": ["paper_sgd"],
        "figures": [],
        "tests": {
            C3.format("paper_sgd"): {
                "optimizer": "paper_sgd",
                "outcome": "failed",
                "message": "AssertionError: true labels, seed 0: training accuracy 99.26%\nmore",
            }
        },
    }
    (row,) = table_rows(claims_matrix(session), "C3")
    assert row == "| C3 | **FAILS** · test failed: AssertionError: true labels, seed 0: training accuracy 99.26% |"


def test_a_failing_cell_says_why_its_runs_did_not_fit():
    """Diverged, stalled and out of budget read differently; a long message is cut at a word, not mid-number."""
    runs = [
        {"key": "a", "outcome": "diverged", "passes": 3, "passes_to_fit": None, "reason": "diverged at pass 3"},
        {"key": "b", "outcome": "fitted", "passes": 27, "passes_to_fit": 27, "reason": "fitted in 27 passes"},
        {
            "key": "c",
            "outcome": "out_of_budget",
            "passes": 150,
            "passes_to_fit": None,
            "reason": "out of budget at 98.42% after 150 passes, still rising",
        },
    ]
    session = {
        "profile": "smoke",
        "optimizers": ["paper_sgd"],
        "figures": [],
        "tests": {
            C3.format("paper_sgd"): {"optimizer": "paper_sgd", "outcome": "failed", "message": "x", "runs": runs},
            C1.format("paper_sgd"): {
                "optimizer": "paper_sgd",
                "outcome": "failed",
                "message": "AssertionError: " + "training accuracy 0.984215 " * 5,
            },
        },
    }
    text = claims_matrix(session)
    (c3,) = table_rows(text, "C3")
    assert c3 == ("| C3 | **FAILS** · diverged at pass 3; out of budget at 98.42% after 150 passes, still rising |")
    (c1,) = table_rows(text, "C1")
    assert c1.endswith("0.984215 training accuracy... |")  # cut after a whole word, never inside a number


def test_run_reasons_name_what_happened():
    from harness.suite.summary import run_reason

    rising = {
        "outcome": "out_of_budget",
        "passes": 150,
        "curves": {"train_accuracy": [0.5] * 140 + [0.97 + i / 1000 for i in range(10)]},
    }
    flat = {"outcome": "out_of_budget", "passes": 150, "curves": {"train_accuracy": [0.5] * 139 + [0.98] * 11}}
    assert run_reason(rising) == "out of budget at 97.90% after 150 passes, still rising"
    assert run_reason(flat) == "out of budget at 98.00% after 150 passes, flat"
    assert run_reason({"outcome": "stalled", "passes": 1}) == "stalled at pass 1"
    assert run_reason({"outcome": "fitted", "passes_to_fit": 19, "passes": 19}) == "fitted in 19 passes"
    assert (
        run_reason({"outcome": "not_fittable", "attainable_train_accuracy": 0.824}) == "not fittable (ceiling 82.40%)"
    )


def test_a_figure_beyond_the_papers_scope_is_labelled_in_both_tables():
    session = {
        "profile": "smoke",
        "optimizers": ["paper_sgd"],
        "tests": {},
        "figures": [
            {
                **figure("C4", "train accuracy, gaussian", 1.0, True, "paper_sgd", "claims/test_c04.py::t[paper_sgd]"),
                "scope": "beyond the paper",
            }
        ],
    }
    rows = table_rows(claims_matrix(session), "C4")
    assert "| C4 | train accuracy, gaussian [beyond the paper] | ? | 1 holds |" in rows


def test_another_papers_claims_are_labelled_with_that_paper_in_both_tables_and_beyond_the_paper_adds_to_it():
    """A1-A3 are Arpit et al.'s: their figures carry that scope, and a run beyond Zhang et al.'s scope adds its own."""
    a1 = "claims/test_a1_a3_memorisation.py::test_a1_clean_examples_are_fitted_before_corrupted_ones[{}-paper_sgd]"
    session = {
        "profile": "paper",
        "optimizers": ["paper_sgd"],
        "tests": {a1.format("mlp_1x512"): {"optimizer": "paper_sgd", "outcome": "passed"}},
        "figures": [
            figure("A1", "lag, p=0.4, mlp_1x512", 5, True, "paper_sgd", a1.format("mlp_1x512"), scope=ARPIT),
            figure(
                "A1",
                "lag, p=0.4, mlp_3x512",
                4,
                True,
                "paper_sgd",
                a1.format("mlp_3x512"),
                scope=scope_beyond_the_paper(ARPIT),
            ),
        ],
    }
    text = claims_matrix(session)
    assert table_rows(text, f"A1 [{ARPIT}]") == [f"| A1 [{ARPIT}] | holds · 2/2 figures hold · 5, 4 |"]
    rows = figures_rows(text, "A1")
    assert f"| A1 | lag, p=0.4, mlp_1x512 [{ARPIT}] | ? | 5 holds |" in rows, rows
    assert f"| A1 | lag, p=0.4, mlp_3x512 [{ARPIT}; beyond the paper] | ? | 4 holds |" in rows, rows
    assert shown_figure({"figure": "x", "scope": scope_beyond_the_paper(ARPIT)}) == f"x [{ARPIT}; beyond the paper]"
    assert scope_beyond_the_paper(None) == scope_beyond_the_paper("paper") == "beyond the paper"
    assert scope_beyond_the_paper(scope_beyond_the_paper(ARPIT)) == f"{ARPIT}; beyond the paper"  # once


def test_a_claim_whose_tests_all_skipped_is_skipped_whatever_figures_they_reported():
    """C3 at the smoke tier reports its per-seed ratios, then skips its verdict: not a claim that holds."""
    skipped = {"t": "skipped"}
    assert verdict(
        {"figures": [{"holds": True, "test": "t", "threshold": "ratio (reported)"}], "outcomes": skipped}
    ) == ("skipped")
    assert verdict({"figures": [{"holds": True, "test": "t"}], "outcomes": {"t": "skipped", "u": "passed"}}) == "holds"
    assert verdict({"figures": [{"holds": False, "test": "t"}], "outcomes": skipped}) == "**FAILS**"


# --- the figures table's full labels and datasets, and each cell's training time ---


def figures_rows(text, claim):
    """The figures table's rows of `claim` (the table with a dataset column)."""
    table = text.split("Figures, lined up")[1]
    return [line for line in table.splitlines() if line.startswith(f"| {claim} |")]


def one_column_session(figures, tests=None):
    return {"profile": "smoke", "optimizers": ["paper_sgd"], "tests": tests or {}, "figures": figures}


def check_datasets_are_two_rows(text):
    rows = figures_rows(text, "C1")
    assert (
        "| C1 | train accuracy, seed 0 (CIFAR-10 (JPEG q75 copy), n=5000) | CIFAR-10 (JPEG q75 copy) | 1 holds |"
        in rows
    ), rows
    assert "| C1 | train accuracy, seed 0 (MNIST, n=5000) | MNIST | 0.9 **FAILS** |" in rows, rows


def test_figures_whose_short_labels_coincide_are_two_rows_with_their_full_labels_and_datasets(monkeypatch):
    from harness.sessions.compare import figure_label
    from harness.suite import matrix

    cifar, mnist = "train accuracy, seed 0 (CIFAR-10 (JPEG q75 copy), n=5000)", "train accuracy, seed 0 (MNIST, n=5000)"
    assert figure_label(cifar) == figure_label(mnist)  # what harness.sessions.compare matches by: one figure there
    session = one_column_session(
        [
            figure("C1", cifar, 1.0, True, "paper_sgd", C1.format("paper_sgd")),
            figure("C1", mnist, 0.9, False, "paper_sgd", C1.format("paper_sgd")),
        ]
    )
    check_datasets_are_two_rows(claims_matrix(session))
    # planted: rows matched by the short label, as before, merge the two figures into one row
    monkeypatch.setattr(matrix, "full_label", figure_label)
    monkeypatch.setattr(matrix, "figure_dataset", lambda entry, session: "?")
    with pytest.raises(AssertionError):
        check_datasets_are_two_rows(claims_matrix(session))


def check_measured_details_line_up(text):
    assert figures_rows(text, "C2") == [
        "| C2 | test accuracy, seed 0 (n_test=10000, relabelling p = #) | ? | 0.1 holds · # = 0.521 | 0.09 holds · # = 0.498 |"
    ]


def test_a_figure_whose_details_quote_measured_values_lines_up_across_optimizers(monkeypatch):
    from harness.suite import matrix

    text = "test accuracy, seed 0 (n_test=10000, relabelling p = {})"
    test = "claims/test_c02.py::test_c2_test_accuracy_is_chance[mlp_1x512-{}]"
    session = {
        "profile": "smoke",
        "optimizers": ["paper_sgd", "adam"],
        "tests": {},
        "figures": [
            figure("C2", text.format(0.521), 0.1, True, "paper_sgd", test.format("paper_sgd")),
            figure("C2", text.format(0.498), 0.09, True, "adam", test.format("adam")),
        ],
    }
    check_measured_details_line_up(claims_matrix(session))
    # planted: the declared text verbatim as the identity splits the figure in two rows
    monkeypatch.setattr(matrix, "full_label", lambda text: text)
    with pytest.raises(AssertionError):
        check_measured_details_line_up(claims_matrix(session))


def test_the_dataset_comes_from_the_figure_or_the_runs_its_test_used():
    test = "claims/test_c05.py::test_c5_x[mlp_1x512-paper_sgd]"
    session = one_column_session(
        [
            {**figure("C5", "ratio, seed 0", 2.0, True, "paper_sgd", test), "data": "mnist:/data"},
            figure("C5", "ratio, seed 1", 2.0, True, "paper_sgd", test),
        ],
        {test: {"optimizer": "paper_sgd", "outcome": "passed", "runs": [{"key": "k", "dataset": "cifar10"}]}},
    )
    rows = figures_rows(claims_matrix(session), "C5")
    assert rows == ["| C5 | ratio, seed 0 | MNIST | 2 holds |", "| C5 | ratio, seed 1 | CIFAR-10 | 2 holds |"]


def test_the_jpeg_copy_is_never_named_cifar10_alone():
    """A run's recorded data source is shown as recorded; a label naming the JPEG copy names the copy."""
    test = "claims/test_c01.py::test_c1_x[mlp_1x512-paper_sgd]"
    jpeg = "CIFAR-10 (JPEG q75 copy)"
    session = one_column_session(
        [
            figure("C1", "train accuracy, seed 0", 1.0, True, "paper_sgd", test),
            figure("C1", f"train accuracy, seed 1 ({jpeg}, n=5000)", 1.0, True, "paper_sgd", "claims/t.py::other"),
        ],
        {test: {"optimizer": "paper_sgd", "outcome": "passed", "runs": [{"key": "k", "dataset": jpeg}]}},
    )
    rows = figures_rows(claims_matrix(session), "C1")
    assert [row.split(" | ")[2] for row in rows] == [jpeg, jpeg]


def costed_session():
    run = {"outcome": "fitted", "reason": "fitted in 3 passes"}
    tests = {
        C1.format("paper_sgd"): {
            "optimizer": "paper_sgd",
            "outcome": "passed",
            "runs": [
                {**run, "key": "a", "reused": False, "seconds": {"training": 100.0, "evaluation": 5.0, "setup": 1.0}},
                {**run, "key": "b", "reused": True, "seconds": None},
            ],
        },
        # a second C1 test sharing run "a": the run is counted once
        C1.format("paper_sgd").replace("exactly", "twice"): {
            "optimizer": "paper_sgd",
            "outcome": "passed",
            "runs": [{**run, "key": "a", "reused": False, "seconds": {"training": 100.0}}],
        },
        C1.format("adam"): {
            "optimizer": "adam",
            "outcome": "passed",
            "runs": [{**run, "key": "c", "reused": False, "train_seconds": 8.0}],
        },
        C3.format("adam"): {
            "optimizer": "adam",
            "outcome": "passed",
            "runs": [{**run, "key": "d", "reused": True}, {**run, "key": "e", "reused": True}],
        },
    }
    return {"profile": "smoke", "optimizers": ["paper_sgd", "adam"], "tests": tests, "figures": []}


def check_costs(text):
    assert table_rows(text, "C1")[0] == "| C1 | holds · 1.7 min training + 1 run reused | holds · 8.0 s training |"
    assert table_rows(text, "C3")[0] == "| C3 | not run | holds · 2 runs reused |"


def test_each_cell_gives_its_runs_training_time_and_marks_reused_runs(monkeypatch):
    from harness.suite import matrix

    check_costs(claims_matrix(costed_session()))
    # planted: every test's runs summed, a run two tests shared counted twice (3.3 min)
    collect = matrix._collect

    def twice(session, spec):
        found = collect(session, spec)
        for cell in found.values():
            cell["runs"] = {f"{key}{n}": run for key, run in cell["runs"].items() for n in (1, 2)}
        return found

    monkeypatch.setattr(matrix, "_collect", twice)
    with pytest.raises(AssertionError):
        check_costs(claims_matrix(costed_session()))
    monkeypatch.undo()
    # planted: reused runs left out, so a cell of reused runs alone says nothing of them
    cost = matrix.cell_cost
    monkeypatch.setattr(matrix, "cell_cost", lambda runs: cost({k: r for k, r in runs.items() if not r.get("reused")}))
    with pytest.raises(AssertionError):
        check_costs(claims_matrix(costed_session()))


def test_cell_cost_shows_a_recorded_time_marked_and_nothing_where_no_run_was_timed():
    from harness.suite.matrix import cell_cost

    assert cell_cost({"a": {"reused": True, "train_seconds": 30.0}}) == "1 run reused (recorded 30 s training)"
    assert cell_cost({"a": {"key": "a", "outcome": "fitted"}}) == ""  # a session from before runs were timed
    assert cell_cost({"a": {"train_seconds": 7200.0}}) == "2.0 h training"


def test_a_cell_holds_only_when_every_test_behind_it_ran_and_passed():
    """A3's figure held in one test while its other test skipped: 'skipped in part' with the reason, never holds;
    a skip outside the claim's scope at this tier (beyond the paper, a CUDA-only scale) does not count."""
    from harness.suite.matrix import _cell, _collect, verdict

    session = {
        "figures": [figure("A3", "progress kept", 0.78, test="claims/t.py::test_a3_x[mlp_1x512-paper_sgd]")],
        "tests": {
            "claims/t.py::test_a3_x[mlp_1x512-paper_sgd]": {"optimizer": "paper_sgd", "outcome": "passed"},
            "claims/t.py::test_a3_y[mlp_1x512-paper_sgd]": {
                "optimizer": "paper_sgd",
                "outcome": "skipped",
                "reason": "Skipped: A3: mlp_1x512 seed 0 trained 4 passes (did not fit), the claim reads pass 10",
            },
            "claims/t.py::test_a3_z[mlp_1x512-paper_sgd]": {
                "optimizer": "paper_sgd",
                "outcome": "skipped",
                "reason": "beyond the paper: MNIST is not in the paper; --claims-extended runs it",
            },
        },
    }
    cell = _collect(session, "paper_sgd")["A3"]
    assert verdict(cell) == "skipped in part"
    assert "skipped: A3: mlp_1x512 seed 0 trained 4 passes" in _cell(cell)
    del session["tests"]["claims/t.py::test_a3_y[mlp_1x512-paper_sgd]"]
    assert verdict(_collect(session, "paper_sgd")["A3"]) == "holds"  # the out-of-scope skip alone


def test_the_numbers_that_differ_between_optimizers_are_shown_in_their_cells_with_the_passes():
    """Passes to fit true/random, 6/13 for one optimizer and 27/28 for SGD: the label shows '#', each cell its own."""
    text = "random/true passes to fit, seed 0 ({} vs {} passes)"
    test = "claims/test_c03.py::test_c3_x[mlp_1x512-{}]"
    session = {
        "profile": "smoke",
        "optimizers": ["paper_sgd", "hybrid"],
        "tests": {},
        "figures": [
            {**figure("C3", text.format(28, 27), 1.04, True, "paper_sgd", test.format("paper_sgd")), "passes": 27},
            {**figure("C3", text.format(13, 6), 2.17, True, "hybrid", test.format("hybrid")), "passes": 6},
        ],
    }
    assert figures_rows(claims_matrix(session), "C3") == [
        "| C3 | random/true passes to fit, seed 0 (# vs # passes) | ? | 1.04 holds · # = 28, 27 · 27 passes | "
        "2.17 holds · # = 13, 6 · 6 passes |"
    ]


# --- a claim not comparable for an optimizer, and tuning's warnings ---

C6_SWEEP = "claims/t.py::test_c6_weight_decay_sweep_finds_where_random_labels_stop_fitting[alexnet-{}]"
C6_OTHER = "claims/t.py::test_c6_no_regulariser_is_needed_to_generalise[alexnet-{}]"
NOT_COMPARABLE_REASON = (
    "Skipped: not comparable: adam at lr 0.001: its shrink scales as weight decay^0.00, not in proportion"
)


def not_comparable_session(other_outcome="passed"):
    """Adam's C6: one test ran (its figure holds or not), the sweep skipped as not comparable."""
    return {
        "profile": "smoke",
        "optimizers": ["paper_sgd", "adam"],
        "figures": [figure("C6", "test accuracy", 0.5, other_outcome == "passed", "adam", C6_OTHER.format("adam"))],
        "tests": {
            C6_OTHER.format("adam"): {"optimizer": "adam", "outcome": other_outcome},
            C6_SWEEP.format("adam"): {"optimizer": "adam", "outcome": "skipped", "reason": NOT_COMPARABLE_REASON},
        },
    }


def test_a_test_skipped_as_not_comparable_makes_the_cell_not_comparable_with_the_measured_reason():
    text = claims_matrix(not_comparable_session())
    reason = NOT_COMPARABLE_REASON.removeprefix("Skipped: not comparable: ")
    # Never "holds" (a test did not run), "skipped in part" or FAILS: the measured reason instead.
    assert table_rows(text, "C6")[0] == f"| C6 | not run | not comparable · 1/1 figures hold · 0.5 · {reason} |"
    assert "not comparable: a test's settings do not carry over" in text.split("| claim |")[0]  # the legend


def test_a_failure_of_another_test_still_fails_the_cell_and_says_what_was_not_comparable():
    row = table_rows(claims_matrix(not_comparable_session("failed")), "C6")[0]
    assert "| **FAILS** · 0/1 figures hold" in row
    assert "· not comparable: adam at lr 0.001" in row


def test_tuning_warnings_are_listed_under_their_optimizer():
    session = two_optimizer_session()
    session["tuning"]["adam"]["warnings"] = [
        "adam: the chosen lr 0.0001 is at the edge of the values tried (0.0001..0.1)",
        "adam: no lr tried fits true labels within 60 passes at the tuning scale; chosen by loss",
    ]
    notes = claims_matrix(session).split("| claim |")[0]
    head, first, second = notes.split("adam: learning rate 0.001, chosen by the tuning step")[1].splitlines()[:3]
    assert first == "  - warning: adam: the chosen lr 0.0001 is at the edge of the values tried (0.0001..0.1)"
    assert second.startswith("  - warning: adam: no lr tried fits true labels") and second.endswith("chosen by loss")
    del session["tuning"]["adam"]["warnings"]  # a session file from before warnings were recorded
    assert "warning:" not in claims_matrix(session)
