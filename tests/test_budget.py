"""--claims-budget: runs that would end past the session's time are not started, and the session says so."""

import json
from types import SimpleNamespace

import pytest
from test_plan import TWO_RUNS, toy_key
from test_plugin import setup_project

from harness.core.config import RunConfig
from harness.core.store import cached_fit, run_key
from harness.suite import budget as budget_module
from harness.suite.budget import Budget, Pace, parse_duration, sittings_line
from harness.suite.plan import Estimate


@pytest.mark.parametrize(
    "text, seconds",
    [("0", 0.0), ("90", 90.0), ("90s", 90.0), ("9m", 540.0), ("1.5h", 5400.0), ("1h30m", 5400.0), ("2m30s", 150.0)],
)
def test_durations_read_hours_minutes_and_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "-5", "5x", "1m1h", "ten minutes", "1h-3m", "1h30", "2m5"])
def test_anything_else_is_refused_with_the_forms_it_takes(text):
    with pytest.raises(ValueError, match="90s, 9m or 1h30m"):
        parse_duration(text)


def test_a_run_starts_only_while_the_budget_lasts_and_its_estimate_ends_inside_it():
    budget = Budget(seconds=600.0, deadline=1_000.0)  # 600 s from 400
    assert budget.refusal("run", 100.0, now=850.0) is None  # 150 s left, 100 s needed
    assert budget.refusal("run", None, now=999.0) is None  # no estimate: only a spent budget refuses
    past = budget.refusal("run", 200.0, now=850.0)
    assert "run not started: its estimate, 3 min 20 s, ends past the 2 min 30 s left" in past.text
    assert "the same command continues" in past.text and not past.never
    whole = budget.refusal("run", 700.0, now=400.0)
    assert "longer than the 10 min 0 s a sitting of this budget has for runs" in whole.text and whole.never
    for estimate in (None, 0.0):
        spent = budget.refusal("run", estimate, now=1_000.0)
        assert "spent: run not started" in spent.text and not spent.never
    nothing = Budget(seconds=0.0, deadline=5.0).refusal("run", 3.0, now=5.0)
    assert "spent" in nothing.text and not nothing.never  # a budget of 0 trains nothing: asked for, not too small


def test_the_session_start_up_comes_off_what_a_sitting_has_for_a_run():
    budget = Budget(seconds=600.0, deadline=1_000.0)
    # Tests began 100 s in: 500 s is the most any run gets, in this sitting and every other.
    assert budget.refusal("run", 450.0, now=500.0, loop_start=500.0) is None
    late = budget.refusal("run", 550.0, now=500.0, loop_start=500.0)
    assert late.never and "longer than the 8 min 20 s a sitting of this budget has for runs" in late.text
    # Spent, and a run no sitting could start: the second is what the user must hear.
    assert budget.refusal("run", 550.0, now=1_001.0, loop_start=500.0).never


def test_the_store_asks_its_hook_only_when_a_run_must_train_and_a_refusal_leaves_nothing(tiny_npz, results):
    config = RunConfig(data=f"npz:{tiny_npz}", max_passes=2, device="cpu", variant="random")
    asked = []

    def refuse(key):
        asked.append(key)
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        cached_fit(config, before_training=refuse)
    assert asked == [run_key(config)]
    assert not (results / "runs").exists() and not list((results / "checkpoints").glob("*"))
    trained = cached_fit(config, before_training=asked.append)  # a hook that lets it train
    assert trained["reused"] is False and asked == [run_key(config)] * 2
    reused = cached_fit(config, before_training=refuse)  # recorded now: the hook is not asked
    assert reused["reused"] is True and len(asked) == 2


def test_a_spent_budget_skips_the_tests_whose_runs_are_not_recorded_exits_interrupted_and_the_rerun_finishes(
    pytester, tmp_path
):
    setup_project(pytester, tmp_path)
    data, results = tmp_path / "data", tmp_path / "r"
    pytester.makepyfile(test_claim=TWO_RUNS)
    common = (f"--data-dir={data}", f"--results-dir={results}", "--profile=smoke", "-p", "no:xdist", "-rs")
    first = pytester.runpytest_subprocess(*common, "-k", "test_one_run_again")  # records seed 0 only
    assert first.ret == 0

    cut = pytester.runpytest_subprocess(*common, "--claims-budget=0")
    cut.stdout.fnmatch_lines(
        [
            "claims budget: 0 s from the session's start (--claims-budget)*",
            "*claims budget*",
            "1 run not started within the budget of 0 s (estimated * alone); their tests were skipped. "
            "The same command continues: recorded runs are reused.",
            f"  mlp_1x512 true seed 1 max_passes=40 (about * s alone), key {toy_key(data, 1)}",
        ]
    )
    cut.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] *time budget (0 s, --claims-budget) spent: mlp_1x512 true seed 1 max_passes=40 not "
            "started; the same command continues*"
        ]
    )
    cut.stdout.fnmatch_lines(["*2 passed, 1 skipped*"])  # the recorded run's test and the theory test ran
    assert cut.ret == 2  # incomplete: interrupted, not passed
    sessions = sorted((results / "sessions").glob("*.json"))
    saved = json.loads(sessions[-1].read_text())
    assert saved["exit_status"] == 2  # the session file says so too, and which run was not started
    assert [entry["key"] for entry in saved["budget"]["refused"]] == [toy_key(data, 1)]
    assert not (results / "runs" / toy_key(data, 1)).exists()

    rest = pytester.runpytest_subprocess(*common, "--claims-budget=1h")
    rest.stdout.fnmatch_lines(["run 1 done: mlp_1x512 true seed 1 max_passes=40*", "*3 passed*"])
    assert rest.ret == 0 and "claims budget ====" not in rest.stdout.str()
    recorded = pytester.runpytest_subprocess(*common, "--claims-budget=0")  # nothing left to train: complete
    recorded.stdout.fnmatch_lines(["*3 passed*"])
    assert recorded.ret == 0


def test_a_failed_claim_keeps_the_failed_status_under_a_spent_budget(pytester, tmp_path):
    setup_project(pytester, tmp_path)
    pytester.makepyfile(
        test_failing="""
def test_fails(claim_figure):
    claim_figure("CF", "planted", 0.0, "== 1.0", False)
"""
    )
    result = pytester.runpytest_subprocess(
        f"--data-dir={tmp_path / 'data'}", f"--results-dir={tmp_path / 'r'}", "--profile=smoke", "-p", "no:xdist",
        "--claims-budget=0",
    )  # fmt: skip
    result.stdout.fnmatch_lines(["*1 failed, 1 skipped*"])  # setup_project's claim test: its run refused
    assert result.ret == 1


def test_workers_share_the_controllers_deadline_and_prefetched_runs_are_refused_too(pytester, tmp_path):
    setup_project(pytester, tmp_path)
    data = tmp_path / "data"
    pytester.makepyfile(test_claim=TWO_RUNS)
    result = pytester.runpytest_subprocess(
        f"--data-dir={data}", f"--results-dir={tmp_path / 'r'}", "--profile=smoke", "-n", "2",
        "--claims-plan=run", "--claims-prefetch", "--claims-budget=0", "-rs",
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        ["claims budget: 0 s x 2 workers: trains nothing; 2 runs to train are left for a sitting with a budget"]
    )
    result.stdout.fnmatch_lines(["*2 runs not started within the budget of 0 s*"])
    # seed 0: its prefetch item and the two claim tests that use it; seed 1: its prefetch item (test_two_runs
    # stopped at seed 0)
    result.stdout.fnmatch_lines(["SKIPPED [[]3[]] *time budget (0 s, --claims-budget) spent: *seed 0*"])
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] *time budget (0 s, --claims-budget) spent: *seed 1*"])
    result.stdout.fnmatch_lines(["*1 passed, 4 skipped*"])  # the theory test; two prefetch items, two claims
    assert result.ret == 2
    assert not (tmp_path / "r" / "runs").exists()


def test_a_budget_that_is_not_a_duration_or_beside_claims_fresh_stops_the_session_before_anything_runs(
    pytester, tmp_path
):
    setup_project(pytester, tmp_path)
    result = pytester.runpytest_subprocess(f"--data-dir={tmp_path / 'data'}", "--claims-budget=soon")
    result.stderr.fnmatch_lines(["*--claims-budget takes a duration such as 90s, 9m or 1h30m, not 'soon'"])
    assert result.ret == 4
    fresh = pytester.runpytest_subprocess(f"--data-dir={tmp_path / 'data'}", "--claims-budget=9m", "--claims-fresh")
    fresh.stderr.fnmatch_lines(["*--claims-budget with --claims-fresh never finishes*fresh --results-dir*"])
    assert fresh.ret == 4


# Each pass of MLP 1x512 on the CPU planted at 1,000 s: the toy run (128 images, 30 passes expected) is
# estimated at 30 x 1,000 x 128 / 5,000 = 768 s, longer than a 10-minute budget can ever give it.
PLANTED_SLOW = """
from harness.suite import plan

plan.CPU_PASS_SECONDS["mlp_1x512"] = plan.PassCost(1_000.0, 5_000, "planted")


def test_slow(claim_run, claim_figure):
    run = claim_run("mlp_1x512", variant="true", max_passes=40)
    claim_figure("CS", "fitted", run["train_accuracy"], "== 1.0", run["outcome"] == "fitted")
"""


def test_a_run_longer_than_any_sitting_of_the_budget_exits_4_and_a_budget_that_holds_it_trains_it(pytester, tmp_path):
    setup_project(pytester, tmp_path)
    pytester.makepyfile(test_claim=PLANTED_SLOW)
    common = (f"--data-dir={tmp_path / 'data'}", f"--results-dir={tmp_path / 'r'}", "--profile=smoke", "-p", "no:xdist")
    short = pytester.runpytest_subprocess(*common, "--claims-budget=10m", "-rs")
    short.stdout.fnmatch_lines(
        [
            "*its estimate alone, 12 min 48 s, is longer than the * a sitting of this budget has for runs; give "
            "--claims-budget more than that",
        ]
    )
    short.stdout.fnmatch_lines(
        ["1 run not started within the budget of 10 min 0 s (estimated 12 min 48 s alone)*1 of them can never "
         "start within it (exit status 4): give --claims-budget more."]
    )  # fmt: skip
    assert short.ret == 4  # running again would not help: not 2
    long = pytester.runpytest_subprocess(*common, "--claims-budget=1h")
    long.stdout.fnmatch_lines(["run 1 done: *", "*1 passed*"])
    assert long.ret == 0


MOVING_FIGURE = """
import os


def test_moves(claim_figure):
    claim_figure("CM", "a figure that moves", float(os.environ["FIGURE"]), "reported", True)


def test_trains(claim_run, claim_figure):
    run = claim_run("mlp_1x512", variant="true", max_passes=40, seed=int(os.environ["SEED"]))
    claim_figure("CT", "fitted", run["train_accuracy"], "== 1.0", run["outcome"] == "fitted")
"""


def test_a_regression_outranks_the_budgets_interrupted_status(pytester, tmp_path, monkeypatch):
    setup_project(pytester, tmp_path)
    pytester.makepyfile(test_claim=MOVING_FIGURE)
    common = (f"--data-dir={tmp_path / 'data'}", f"--results-dir={tmp_path / 'r'}", "--profile=smoke", "-p", "no:xdist")
    monkeypatch.setenv("FIGURE", "1.0")
    monkeypatch.setenv("SEED", "0")
    assert pytester.runpytest_subprocess(*common).ret == 0
    monkeypatch.setenv("SEED", "1")  # a run not recorded: the budget refuses it (exit 2 alone)
    monkeypatch.setenv("FIGURE", "0.5")  # and the figure moves past its rule
    moved = pytester.runpytest_subprocess(
        *common, "--claims-budget=0", "--claims-compare=1", "--claims-compare-fail=CM:0.1"
    )
    moved.stdout.fnmatch_lines(["*1 run not started within the budget of 0 s*"])
    assert moved.ret == 1, moved.stdout.str()


def test_the_pace_of_the_runs_trained_so_far_scales_the_next_estimate():
    pace = Pace()
    assert pace.factor() == 1.0  # nothing trained yet: the estimate alone
    pace.note(30.0, None)  # a run without an estimate says nothing of the pace
    assert pace.factor() == 1.0
    pace.note(30.0, 10.0)
    pace.note(10.0, 10.0)
    assert pace.factor() == 2.0  # 40 s measured for 20 s estimated: two runs side by side, say
    budget = Budget(seconds=600.0, deadline=1_000.0)
    assert budget.refusal("run", 100.0, now=850.0, pace=1.0) is None  # 100 s fits the 150 s left
    slowed = budget.refusal("run", 100.0, now=850.0, pace=pace.factor())  # 200 s does not
    assert "its estimate, 3 min 20 s (1 min 40 s alone x 2.00, the pace of the runs trained here so far)" in slowed.text
    # Slower than any sitting only at this pace: a later sitting may start it first, at its estimate alone.
    paced = budget.refusal("run", 400.0, now=400.0, pace=2.0)
    assert not paced.never and "ends past the 10 min 0 s left" in paced.text


def guarded_item(seconds: float, deadline: float):
    return SimpleNamespace(
        config=SimpleNamespace(_budget=Budget(seconds=seconds, deadline=deadline)), user_properties=[]
    )


def test_a_guard_times_the_run_it_let_start_and_the_next_guard_goes_by_that_pace(monkeypatch):
    clock = iter([100.0, 130.0, 130.0])  # asked: the first run's start, its end, the second's start
    monkeypatch.setattr(budget_module.time, "time", lambda: next(clock))
    monkeypatch.setattr(budget_module, "_PACE", Pace())
    item = guarded_item(600.0, 160.0)
    first = budget_module.before_training(item, "first", lambda: Estimate(30, 10.0, "CPU", "planted"))
    trained = first("key-1")  # 60 s left, 10 s estimated: starts
    trained({"passes": 30, "resumed_from_pass": None})  # took 30 s: three times the estimate
    second = budget_module.before_training(item, "second", lambda: Estimate(30, 15.0, "CPU", "planted"))
    with pytest.raises(pytest.skip.Exception, match=r"its estimate, 45 s \(15 s alone x 3.00"):
        second("key-2")  # 15 s alone, 45 s at this pace, 30 s left
    assert item.user_properties == [
        ("claims_budget_refused", {"key": "key-2", "label": "second", "seconds": 15.0, "never": False})
    ]
    item.config._budget = None
    assert budget_module.before_training(item, "third", lambda: None) is None  # no budget: no hook


def test_the_pace_counts_only_the_passes_a_run_trained_now(monkeypatch):
    clock = iter([0.0, 10.0, 10.0, 20.0])
    monkeypatch.setattr(budget_module.time, "time", lambda: next(clock))
    monkeypatch.setattr(budget_module, "_PACE", Pace())
    item = guarded_item(6_000.0, 6_000.0)
    estimate = Estimate(100, 100.0, "CPU", "planted")  # 1 s a pass
    # Resumed at pass 90 of 100: 10 passes in 10 s is the estimated pace, not a tenth of it.
    budget_module.before_training(item, "resumed", lambda: estimate)("k1")({"passes": 100, "resumed_from_pass": 90})
    assert budget_module._PACE.factor() == 1.0
    # Diverged after 5 passes, in 10 s: twice as slow a pass as estimated.
    budget_module.before_training(item, "diverged", lambda: estimate)("k2")({"passes": 5, "resumed_from_pass": None})
    assert budget_module._PACE.factor() == pytest.approx(20.0 / 15.0)


def test_the_store_hands_the_trained_record_to_the_guard_so_the_pace_learns_from_real_runs(
    tiny_npz, results, monkeypatch
):
    monkeypatch.setattr(budget_module, "_PACE", Pace())
    config = RunConfig(data=f"npz:{tiny_npz}", max_passes=2, device="cpu", variant="random")
    item = guarded_item(3_600.0, budget_module.time.time() + 3_600.0)
    guard = budget_module.before_training(item, "tiny", lambda: Estimate(2, 1e-9, "CPU", "planted"))
    record = cached_fit(config, before_training=guard)
    assert record["passes"] == 2 and budget_module._PACE.estimated == pytest.approx(1e-9)
    assert budget_module._PACE.factor() > 1.0  # a real run takes longer than a planted nanosecond


def test_workers_take_the_controllers_deadline_not_one_of_their_own():
    controller = SimpleNamespace(_budget=Budget(seconds=60.0, deadline=12_345.0))
    node = SimpleNamespace(config=controller, workerinput={})
    budget_module.pytest_configure_node(node)
    worker = SimpleNamespace(workerinput=node.workerinput)
    budget_module.pytest_configure(worker)
    assert worker._budget == Budget(seconds=60.0, deadline=12_345.0)
    node.config = SimpleNamespace(_budget=None)
    budget_module.pytest_configure_node(node)
    budget_module.pytest_configure(worker)
    assert worker._budget is None


def test_the_plan_says_how_many_sittings_its_runs_need_at_the_least():
    line = sittings_line(180.0, 2, [300.0, 200.0, 100.0, None])  # 600 s against 360 s a sitting
    assert line == (
        "claims budget: 3 min 0 s x 2 workers against 10 min 0 s of runs to train (estimated alone): "
        "at least 2 sittings of this command (+ 1 run without an estimate)"
    )
    assert "at least 1 sitting of this command" in sittings_line(180.0, 1, [180.0])  # exactly one budget's worth
    assert "at least 2 sittings" in sittings_line(180.0, 1, [180.0, 1.0])
    assert "nothing to train, one sitting gives every verdict" in sittings_line(180.0, 1, [])
    assert "trains nothing; 2 runs to train are left" in sittings_line(0.0, 4, [1.0, None])


def test_a_plan_under_a_budget_counts_the_workers_asked_for(pytester, tmp_path):
    setup_project(pytester, tmp_path)
    pytester.makepyfile(test_claim=TWO_RUNS)
    result = pytester.runpytest_subprocess(
        f"--data-dir={tmp_path / 'data'}", f"--results-dir={tmp_path / 'r'}", "--profile=smoke", "-n", "2",
        "--claims-plan", "--claims-budget=1s",
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        ["claims budget: 1 s x 2 workers against 1 s of runs to train (estimated alone): at least 1 sitting*"]
    )
    assert result.ret == 0  # planning trains nothing, so refuses nothing
