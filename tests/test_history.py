"""The history of earlier sessions: the tests' order, the time left, --claims-deadline and --claims-collect."""

import json
import re
import shutil

import pytest
from support import EnvironmentKept, claims_project

from harness.suite.history import (
    History,
    Measured,
    Progress,
    longest_first,
    machine_text,
    read_history,
    tuning_seconds_per_pass,
)
from harness.suite.session import parse_duration


def session(tests: dict, machine=None, profile="smoke") -> dict:
    """A session file's content: {test id: [(run key, seconds or None when reused)]}."""
    return {
        "profile": profile,
        "figures": [],
        "machine": machine or {"node": "vm", "cpu_count": 2, "gpus": []},
        "tests": {
            nodeid: {
                "outcome": "passed",
                "runs": [
                    {"key": key, "seconds": None if s is None else {"training": s, "evaluation": 0.0, "setup": 0.0}}
                    for key, s in runs
                ],
            }
            for nodeid, runs in tests.items()
        },
    }


def test_a_tests_runs_come_from_the_newest_session_that_ran_it_and_a_runs_seconds_from_the_newest_that_trained_it():
    history = History()
    newest = session({"t::a": [("k1", None), ("k2", 5.0)], "t::skipped": []})
    newest["tests"]["t::skipped"]["outcome"] = "skipped"  # a skipped test tells nothing of its runs
    history.add_session(newest, "session 3")
    history.add_session(
        session({"t::a": [("old", 99.0)], "t::skipped": [("k3", 7.0)], "t::b": [("k1", 40.0)]}, {"gpus": ["H100"]}),
        "session 2",
    )
    assert history.tests == {"t::a": ["k1", "k2"], "t::skipped": ["k3"], "t::b": ["k1"]}
    assert history.runs["k1"] == Measured(40.0, "? (H100)", "session 2")  # reused in 3, trained in 2
    assert history.runs["k2"].source == "session 3" and history.runs["old"].seconds == 99.0
    assert history.last_measured("k2") == "last took 5.0 s on vm (2 CPUs), session 3"
    assert history.last_measured("nope") == "never measured"


def test_the_order_counts_only_runs_not_recorded_and_puts_tests_without_a_history_first():
    history = History()
    history.add_session(
        session(
            {
                "t::short": [("s", 10.0)],
                "t::long": [("l1", 30.0), ("l2", 30.0)],
                "t::recorded": [("r", 500.0)],
                "t::theory": [],
            }
        ),
        "session 1",
    )
    seconds = history.test_seconds(["t::short", "t::long", "t::recorded", "t::theory", "t::new"], {"r"}.__contains__)
    assert seconds == {"t::short": 10.0, "t::long": 60.0, "t::recorded": 0.0, "t::theory": 0.0}

    class Item:
        def __init__(self, nodeid):
            self.nodeid = nodeid

    names = ("t::theory", "t::unit", "t::short", "t::recorded", "t::long", "t::new")
    items = [Item(name) for name in names]
    assert [item.nodeid for item in longest_first(items, seconds, lambda item: item.nodeid != "t::unit")] == [
        "t::new",  # a claim test no session ran: its runs may be long
        "t::long",
        "t::short",
        "t::theory",  # equal seconds keep their collection order
        "t::unit",  # trains no claim run: last, with the recorded
        "t::recorded",
    ]


def test_the_time_left_is_the_last_measured_seconds_of_the_runs_left_over_the_workers():
    to_train = {"a": Measured(60.0, "vm (2 CPUs)", "session 1"), "b": Measured(120.0, "vm (2 CPUs)", "session 1")}
    progress = Progress(started=0.0, workers=2, to_train={**to_train, "c": None})
    entry = {"key": "a", "reused": False, "label": "mlp_1x512 true seed 0", "reason": "fitted in 4 passes"}
    line = progress.finished({**entry, "seconds": {"training": 50.0, "evaluation": 1.0, "setup": 0.0}}, now=55.0)
    assert line == (
        "run 1/3 done: mlp_1x512 true seed 0 (fitted in 4 passes, 51 s); elapsed 55 s, "
        "about 1.0 min left (by the last measured times; 1 run never measured)"
    )
    assert progress.finished({**entry, "seconds": None}, now=60.0) is None  # counted once
    assert Progress(started=0.0).finished({**entry, "key": "z", "seconds": None}, now=1.0).endswith("elapsed 1.0 s")


def test_sessions_of_another_profile_and_unreadable_files_are_passed_over(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_RESULTS_DIR", str(tmp_path))
    folder = tmp_path / "sessions"
    folder.mkdir()
    (folder / "20260101T000000Z-0001-smoke.json").write_text(json.dumps({**session({"t": [("k", 3.0)]}), "number": 1}))
    (folder / "20260101T000001Z-0002-paper.json").write_text(
        json.dumps({**session({"t": [("k", 9.0)]}, profile="paper"), "number": 2})
    )
    (folder / "20260101T000002Z-0003-smoke.json").write_text("{not json")
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(session({"t": [("k", 1.0)], "u": [("j", 2.0)]})))
    history = read_history("smoke", [baseline, tmp_path / "missing.json"])
    assert history.runs["k"].seconds == 3.0 and history.runs["j"].source == "baseline baseline.json"
    assert machine_text({"node": "box", "gpus": ["H100", "H100"]}) == "box (H100)"


# --- a new optimizer's tests, estimated from another's by the ratio of their seconds per pass ---

C1 = "claims/c.py::test_c1_x[mlp_1x512-{}]"
LION = "lionpkg:Lion"  # a new optimizer: its test ids carry "Lion"
SCALE = {"model": "mlp_1x512", "n_train": 5000, "batch_size": 128}  # a tuning record's scale (trimmed)
STAMP = {"cpu": "x86_64", "host_platform": "Linux", "threads": 2}


def tuning_record(spec, trials, scale=SCALE, stamp=STAMP) -> dict:
    """A tuning record's keys the estimate reads (harness.suite.tuning.tune writes them): (train_seconds, passes)."""
    return {
        "optimizer": spec,
        "scale": scale,
        "stamp": stamp,
        "trials": [{"lr": 0.001, "train_seconds": s, "passes": n} for s, n in trials],
    }


def adam_history(tmp_path, lion_stamp=STAMP) -> History:
    """adam ran C1 (runs of 60 s and 30 s); Lion is tuned, never ran C1; Lion takes 3 s a pass, adam 1.5 s
    (its untimed trial, a record from before trials were timed, left out)."""
    folder = tmp_path / "tuning"
    folder.mkdir(parents=True)
    (folder / "adam.json").write_text(json.dumps(tuning_record("adam", [(30.0, 20), (15.0, 10), (None, 7)])))
    (folder / "Lion.json").write_text(json.dumps(tuning_record(LION, [(60.0, 20)], stamp=lion_stamp)))
    (folder / "damaged.json").write_text("{not json")  # passed over
    (folder / "untimed.json").write_text(json.dumps(tuning_record("sgd", [(None, 5)])))  # no timed trial
    earlier = session({C1.format("adam"): [("k1", 60.0), ("k2", 30.0)]})
    earlier["tests"][C1.format("adam")]["optimizer"] = "adam"
    history = History()
    history.add_session(earlier, "session 1")
    history.per_pass = tuning_seconds_per_pass(folder)
    assert set(history.per_pass) == {"adam", LION}
    return history


def test_a_never_measured_test_is_estimated_from_another_optimizers_by_their_seconds_per_pass(tmp_path, monkeypatch):
    history = adam_history(tmp_path)
    monkeypatch.setenv("HARNESS_RESULTS_DIR", str(tmp_path))  # read_history reads the results folder's records
    assert read_history("smoke").per_pass == history.per_pass
    to_train = history.to_train([C1.format("Lion")], lambda key: False)
    # Lion's 3 s a pass over adam's 1.5 s: twice adam's measured seconds.
    assert {key: m.seconds for key, m in to_train.items()} == {"k1@Lion": 120.0, "k2@Lion": 60.0}
    assert history.test_seconds([C1.format("Lion")], lambda key: False) == {C1.format("Lion"): 180.0}  # the order
    # The order is read before collection, from the history's own test ids: Lion's version is among them.
    assert history.test_seconds(history.tests, lambda key: False)[C1.format("Lion")] == 180.0
    progress = Progress(started=0.0, to_train=to_train)
    assert (
        progress.left_text()
        == ", about 3.0 min left (by the last measured times; 2 runs estimated from Lion's seconds per pass)"
    )
    # Lion's own run (its key unknown before) takes one estimate's place: run 1 of 2, one estimate left.
    line = progress.finished({"key": "lion-run", "reason": "fitted", "seconds": {"training": 100.0}}, now=100.0)
    assert line.startswith("run 1/2 done") and line.endswith(
        "(by the last measured times; 1 run estimated from Lion's seconds per pass)"
    )
    # adam's runs recorded (always so: the reference trained before) say nothing of Lion's: both are still
    # to train. (Filtering the estimate by the reference's records, as first written, left a real session
    # with no estimate at all: a .ci/run's adam session showed no time left.)
    recorded_adam = history.to_train([C1.format("Lion")], lambda key: key in ("k1", "k2"))
    assert recorded_adam == history.to_train([C1.format("Lion")], lambda key: False) and len(recorded_adam) == 2


def test_no_estimate_without_both_seconds_per_pass_on_one_machine_and_scale(tmp_path):
    other_machine = adam_history(tmp_path, lion_stamp={**STAMP, "threads": 16})
    assert other_machine.to_train([C1.format("Lion")], lambda key: False) == {}  # left "never measured", as before
    untuned = adam_history(tmp_path / "b")
    untuned.per_pass.pop("adam")  # the paper's SGD, say: never tuned, so never timed at the tuning scale
    assert untuned.to_train([C1.format("Lion")], lambda key: False) == {}
    assert untuned.test_seconds([C1.format("Lion")], lambda key: False) == {}  # a test no session ran goes first


@pytest.mark.parametrize(
    "text, seconds", [("0", 0.0), ("90", 90.0), ("90s", 90.0), ("9m", 540.0), ("1h30m", 5400.0), ("1.5h", 5400.0)]
)
def test_a_deadline_reads_hours_minutes_and_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-5", "1h30", "30m1h", "soon"])
def test_a_deadline_that_is_not_a_duration_is_refused(text):
    with pytest.raises(ValueError, match="--claims-deadline takes a duration"):
        parse_duration(text)


# Two claim tests: the first in the file trains a short run, the second a longer one (more images, more passes).
CLAIMS = """
def test_short(claim_run, claim_figure):
    record = claim_run("mlp_1x512", variant="true", max_passes=3, n_train=32, n_test=None)
    claim_figure("CX", "short", record["passes"], "reported", True, check=False)


def test_long(claim_run, claim_figure):
    record = claim_run("mlp_1x512", variant="random", max_passes=12, n_train=None, n_test=None)
    claim_figure("CY", "long", record["passes"], "reported", True, check=False)
"""


def run_inprocess(pytester, *args):
    with EnvironmentKept():
        return pytester.runpytest_inprocess("-p", "no:xdist", "--profile=smoke", "-v", *args)


def test_history_orders_a_second_session_longest_first_and_collect_and_deadline_list_what_they_did_not_train(
    pytester, tmp_path
):
    """Planted: collection order puts the short test first; the history must put the long one first."""
    data = claims_project(pytester, tmp_path, CLAIMS, n_train=512)
    results = tmp_path / "r"
    common = [f"--data-dir={data}", f"--results-dir={results}"]
    first = run_inprocess(pytester, *common)
    assert first.ret == 0
    order = [line for line in first.outlines if re.match(r"test_claim.py::test_\w+\[paper_sgd\] PASSED", line)]
    assert [line.split()[0] for line in order] == [
        "test_claim.py::test_short[paper_sgd]",
        "test_claim.py::test_long[paper_sgd]",
    ]

    shutil.rmtree(results / "runs")  # the records gone, the session file kept: the history remains
    collect = run_inprocess(pytester, *common, "--claims-collect", "-rs")
    assert collect.ret == pytest.ExitCode.INTERRUPTED  # verdicts incomplete: not green
    collect.stdout.fnmatch_lines(
        [
            "*test_claim.py::test_long[[]paper_sgd[]] SKIPPED*",
            "*test_claim.py::test_short[[]paper_sgd[]] SKIPPED*",
            "*claims runs not trained*",
            "2 runs not recorded; their tests skipped and the session exits 2.*",
            "  mlp_1x512 random seed 0 n_train=None max_passes=12: last took * on * (2 CPUs), session 1 (key *)",
            "  mlp_1x512 true seed 0 n_train=32 max_passes=3: last took * session 1 (key *)",
        ]
    )
    assert not (results / "runs").exists() or not list((results / "runs").glob("*/*.json"))  # nothing trained

    deadline = run_inprocess(pytester, *common, "--claims-deadline=0")
    assert deadline.ret == pytest.ExitCode.INTERRUPTED
    deadline.stdout.fnmatch_lines(["2 runs not started before the deadline;*"])

    second = run_inprocess(pytester, *common)
    assert second.ret == 0
    order = [
        line.split()[0] for line in second.outlines if re.match(r"test_claim.py::test_\w+\[paper_sgd\] PASSED", line)
    ]
    assert order == ["test_claim.py::test_long[paper_sgd]", "test_claim.py::test_short[paper_sgd]"]
    second.stdout.fnmatch_lines(["run 1/2 done: mlp_1x512 random seed 0 *, about * left (by the last measured times)"])

    collected = run_inprocess(pytester, *common, "--claims-order=collected", "--claims-fresh")
    order = [
        line.split()[0] for line in collected.outlines if re.match(r"test_claim.py::test_\w+\[paper_sgd\] PASSED", line)
    ]
    assert order == ["test_claim.py::test_short[paper_sgd]", "test_claim.py::test_long[paper_sgd]"]


def test_a_session_without_claim_tests_starts_no_child_process(pytester, tmp_path, monkeypatch):
    """Ordering reads session files; it never plans in a child pytest (planted: any Popen fails the session)."""
    import subprocess

    claims_project(pytester, tmp_path, "def test_plain():\n    assert 1 + 1 == 2\n")

    def no_child(*args, **kwargs):
        raise AssertionError(f"a child process was started: {args[0]!r}")

    monkeypatch.setattr(subprocess.Popen, "__init__", no_child)
    result = run_inprocess(pytester, f"--results-dir={tmp_path / 'r'}")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=1)
