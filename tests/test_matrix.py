"""The claims matrix: optimizer x claim, figure and verdict in each cell, the paper's SGD as reference."""

from harness.suite.matrix import claims_matrix, verdict


def figure(claim, text, measured, holds, optimizer, test):
    return {
        "claim": claim,
        "figure": text,
        "measured": measured,
        "threshold": "t",
        "holds": holds,
        "optimizer": optimizer,
        "test": test,
    }


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
    assert c1_figures_seed1 == "| C1 | train accuracy, seed 1 | 1 holds | 0.98 **FAILS** |"
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
    assert "| C4 | train accuracy, gaussian [beyond the paper] | 1 holds |" in rows
