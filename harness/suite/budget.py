"""--claims-budget: a claims session that starts no run it cannot finish in the time given, and says what is left.

A tier can take longer than the time at hand (a GPU slot, a CI job's limit,
an evening). With ``--claims-budget=DURATION`` ("0", "90s", "9m", "1h30m";
counted from the session's start, its planning included) a run that must
train is started only while the budget lasts and, where its time can be
estimated (harness.suite.plan.estimate: measured seconds per pass x expected
passes, times the pace of the runs the process trained so far, `Pace`),
only if that estimate ends inside the budget. A refused run skips
its test (or its --claims-prefetch item) with the reason; the runs trained
before are recorded as always, and a run already training finishes. The
same command run again reuses every record and trains what is left, so a
tier too long for one sitting is checked in a few, and the last sitting
(nothing left to train) gives every verdict in one session. ``0`` trains
nothing: the verdicts of what is recorded, the rest skipped.

A session that refused a run ends with pytest's "interrupted" exit status
(2) unless a test failed or a comparison regressed (1): its verdicts are
incomplete, which a script or a nightly job must not read as all claims
holding. Where a run's estimate is longer than a sitting of this budget
has for runs at all (the budget less the session's start-up, measured
from when this process began running tests), running again cannot help:
the status is then 4 (a usage error: give a larger budget). The terminal
summary lists the runs not started, the session file keeps them
("budget"). --claims-fresh is refused beside a budget: each sitting would
retrain the runs of the one before.

Estimates are of one run alone on its device; runs side by side (xdist
workers, --runs-per-gpu) each take longer. Each process therefore scales
its next estimate by the pace of the runs it trained (`Pace`: wall time
against the estimate of the passes each trained, so a run that diverged
early or resumed from a checkpoint counts for what it did), which it learns
only once a run has ended: leave a margin for the first ones. A run with a
checkpoint is judged on its whole estimate (the checkpoint is read only
when it trains), so it may be refused with little of it left. A run killed
by an outer time limit is not lost: it resumes from its checkpoint
(harness.core.checkpoint) when the results folder is kept.

A plugin of its own, listed by harness.suite.plugin; claim_run and the
prefetch items ask `before_training` for the store's hook (it refuses a
run, or lets it start and times it). Nothing here trains.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

import pytest

from harness.suite.plan import duration

BUDGET_INPUT = "harness_budget"  # xdist worker input: the controller's budget, so every worker has one deadline
BUDGET_PROPERTY = "claims_budget_refused"  # a run the budget did not start, carried in its test's report
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")
_BARE_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(text: str) -> float:
    """Seconds in '90', '90s', '9m', '1.5h', '1h30m', '2m30s' (h, m, s; a bare number alone is seconds).

    Raises ValueError for anything else: empty, negative, units out of
    order, or a number without its unit after another ('1h30').
    """
    cleaned = text.strip().lower().replace(" ", "")
    if _BARE_SECONDS.fullmatch(cleaned):
        return float(cleaned)
    match = _DURATION.fullmatch(cleaned)
    if not cleaned or match is None or not any(match.groups()):
        raise ValueError(f"--claims-budget takes a duration such as 90s, 9m or 1h30m, not {text!r}")
    hours, minutes, seconds = (float(group) if group else 0.0 for group in match.groups())
    return hours * _UNITS["h"] + minutes * _UNITS["m"] + seconds


@dataclass(frozen=True)
class Refusal:
    """Why a run may not start; `never`: no sitting of this budget can start it (rerunning does not help)."""

    text: str
    never: bool = False


@dataclass(frozen=True)
class Budget:
    """The session's time: `seconds` in all, ending at `deadline` (epoch seconds)."""

    seconds: float
    deadline: float

    def refusal(
        self, label: str, estimate: float | None, now: float, *, pace: float = 1.0, loop_start: float | None = None
    ) -> Refusal | None:
        """Why the run `label` may not start at `now` (epoch seconds), or None where it may.

        estimate: the run's expected seconds alone (None where its model has
        no measurement on this device: then only a spent budget refuses it).
        pace: measured / estimated seconds of the runs this process trained
        so far (`Pace`); the estimate is scaled by it. loop_start: when this
        process began running tests; the time from then to the deadline is
        the most any sitting gives a run (the session's start-up comes off
        the budget every time), and a run estimated past it alone (the pace
        starts anew in each sitting) is refused as `never`. A budget of 0
        trains nothing: its refusals are not `never`.
        """
        left = self.deadline - now
        head = f"time budget ({duration(self.seconds)}, --claims-budget)"
        rerun = "the same command continues: recorded runs are reused"
        if left <= 0 and (self.seconds <= 0 or estimate is None):
            return Refusal(f"{head} spent: {label} not started; {rerun}")
        if estimate is None:
            return None
        expected = estimate * pace
        said = duration(expected)
        if pace != 1.0:
            said += f" ({duration(estimate)} alone x {pace:.2f}, the pace of the runs trained here so far)"
        most = self.deadline - (loop_start if loop_start is not None else self.deadline - self.seconds)
        # Never: judged on the estimate alone, since a later sitting may start the run before any
        # other has slowed the pace (the longest runs go first).
        if estimate > most:
            return Refusal(
                f"{head}: {label} not started: its estimate alone, {duration(estimate)}, is longer than the "
                f"{duration(max(most, 0))} a sitting of this budget has for runs; give --claims-budget more than that",
                never=True,
            )
        if left <= 0:
            return Refusal(f"{head} spent: {label} not started; {rerun}")
        if expected > left:
            return Refusal(
                f"{head}: {label} not started: its estimate, {said}, ends past the {duration(left)} left; {rerun}"
            )
        return None


def sittings_line(budget_seconds: float, workers: int, to_train: list[float | None]) -> str:
    """The plan's line under a budget: the runs to train against budget x workers, and the sittings that needs.

    to_train: the estimated seconds of each run to train (None: no estimate).
    At the least, since a test's runs train one after another and runs side
    by side go slower than alone; a budget of 0 trains nothing.
    """
    known = sum(seconds for seconds in to_train if seconds is not None)
    unknown = sum(seconds is None for seconds in to_train)
    head = f"claims budget: {duration(budget_seconds)} x {workers} worker{'s' if workers != 1 else ''}"
    if not to_train:
        return f"{head}: nothing to train, one sitting gives every verdict"
    if budget_seconds <= 0:
        return f"{head}: trains nothing; {len(to_train)} runs to train are left for a sitting with a budget"
    sittings = max(1, math.ceil(known / (budget_seconds * workers)))
    line = (
        f"{head} against {duration(known)} of runs to train (estimated alone): at least {sittings} "
        f"sitting{'s' if sittings != 1 else ''} of this command"
    )
    return line + (f" (+ {unknown} run{'s' if unknown != 1 else ''} without an estimate)" if unknown else "")


@dataclass
class Pace:
    """Measured / estimated seconds over the runs one process trained: how much slower than alone they go.

    Runs side by side (xdist workers, --runs-per-gpu) share the machine, so
    each takes longer than the estimate of it alone; every worker scales the
    next estimate by what its own runs took. 1.0 before any run with an estimate.
    """

    measured: float = 0.0
    estimated: float = 0.0

    def note(self, measured: float, estimated: float | None) -> None:
        """measured: wall seconds of the passes one run trained; estimated: the estimate of those passes."""
        if estimated:
            self.measured += measured
            self.estimated += estimated

    def factor(self) -> float:
        return self.measured / self.estimated if self.estimated > 0 and self.measured > 0 else 1.0


_PACE = Pace()  # this process's: a worker's runs, or the session's without xdist


@pytest.hookimpl(tryfirst=True)  # the deadline counts from before the plan is made
def pytest_configure(config):
    config._budget = None
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        given = workerinput.get(BUDGET_INPUT)
        config._budget = Budget(**given) if given else None
        return
    text = config.getoption("--claims-budget")
    if text is None:
        return
    if config.getoption("--claims-fresh"):
        raise pytest.UsageError(
            "--claims-budget with --claims-fresh never finishes: each sitting would retrain the runs of the one "
            "before; give the sittings a fresh --results-dir instead of --claims-fresh"
        )
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    config._budget = Budget(seconds, time.time() + seconds)
    config._budget_refused = []
    config.pluginmanager.register(_RefusedRuns(config), "claims-budget-refused")


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    """The moment this process starts running tests: what is left of the budget then is all a run can get."""
    session.config._budget_loop_start = time.time()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist: every worker works to the controller's deadline."""
    budget = node.config._budget
    node.workerinput[BUDGET_INPUT] = (
        None if budget is None else {"seconds": budget.seconds, "deadline": budget.deadline}
    )


def pytest_report_header(config):
    budget = config._budget
    if budget is None:
        return None
    return [
        f"claims budget: {duration(budget.seconds)} from the session's start (--claims-budget): a run starts only "
        "while it lasts and, where the run has an estimate, only if it is estimated to end inside it"
    ]


def before_training(item, label: str, estimate) -> RunGuard | None:
    """The store's hook (harness.core.store.cached_fit) for one run of `item`, or None without a budget.

    estimate: a callable giving the run's harness.suite.plan.Estimate (its
    seconds alone may be None), asked only when the run must train. A refused
    run skips `item` with the reason and is noted in its report for the
    terminal summary; a run let start is timed, once trained, for the pace.
    """
    budget = item.config._budget
    return None if budget is None else RunGuard(budget, item, label, estimate)


class RunGuard:
    """cached_fit's `before_training` for one run under a budget: refuses it, or times it for the pace."""

    def __init__(self, budget: Budget, item, label: str, estimate):
        self.budget, self.item, self.label, self.estimate = budget, item, label, estimate
        self.started: float | None = None

    def __call__(self, key: str):
        """Skips the item where the run may not start; else returns what the store calls with its record."""
        estimate = self.estimate()
        now = time.time()
        loop_start = getattr(self.item.config, "_budget_loop_start", None)
        refusal = self.budget.refusal(self.label, estimate.seconds, now, pace=_PACE.factor(), loop_start=loop_start)
        if refusal is not None:
            entry = {"key": key, "label": self.label, "seconds": estimate.seconds, "never": refusal.never}
            self.item.user_properties.append((BUDGET_PROPERTY, entry))
            pytest.skip(refusal.text)
        started = now

        def trained(record: dict) -> None:
            """The pace counts the passes this run trained now (a resumed run's checkpoint passes are not)."""
            if estimate.seconds is None or not estimate.passes:
                return
            passes = record.get("passes", 0) - (record.get("resumed_from_pass") or 0)
            _PACE.note(time.time() - started, estimate.seconds * max(passes, 0) / estimate.passes)

        return trained


class _RefusedRuns:
    """The controller's list of runs the budget did not start, from every worker's reports; its summary and status."""

    def __init__(self, config):
        self.config = config

    def pytest_runtest_logreport(self, report):
        for name, value in report.user_properties:
            if name == BUDGET_PROPERTY and all(value["key"] != seen["key"] for seen in self.config._budget_refused):
                self.config._budget_refused.append(value)

    @pytest.hookimpl(tryfirst=True)  # before the claims plugin saves the status and the refusals in the session file
    def pytest_sessionfinish(self, session, exitstatus):
        refused = self.config._budget_refused
        if refused and session.exitstatus == pytest.ExitCode.OK:
            # 4 where no sitting of this budget can start a run (running again would not help), else 2
            never = any(entry["never"] for entry in refused)
            session.exitstatus = pytest.ExitCode.USAGE_ERROR if never else pytest.ExitCode.INTERRUPTED

    def pytest_terminal_summary(self, terminalreporter):
        refused = self.config._budget_refused
        if not refused:
            return
        budget = self.config._budget
        terminalreporter.section("claims budget")
        known = [entry["seconds"] for entry in refused if entry["seconds"] is not None]
        unknown = len(refused) - len(known)
        estimated = f"estimated {duration(sum(known))} alone" if known else ""
        if unknown:
            estimated += f"{' + ' if known else ''}{unknown} without an estimate"
        never = [entry for entry in refused if entry["never"]]
        terminalreporter.write_line(
            f"{len(refused)} run{'s' if len(refused) != 1 else ''} not started within the budget of "
            f"{duration(budget.seconds)} ({estimated}); their tests were skipped. "
            + (
                f"{len(never)} of them can never start within it (exit status 4): give --claims-budget more."
                if never
                else "The same command continues: recorded runs are reused."
            )
        )
        for entry in refused:
            estimate = "no estimate" if entry["seconds"] is None else f"about {duration(entry['seconds'])} alone"
            longer = ", longer than any sitting of this budget" if entry["never"] else ""
            terminalreporter.write_line(f"  {entry['label']} ({estimate}{longer}), key {entry['key']}")


def session_entry(config) -> dict | None:
    """What the session file keeps of the budget: its seconds and the runs it did not start (None without one)."""
    budget = getattr(config, "_budget", None)
    if budget is None:
        return None
    return {"seconds": budget.seconds, "refused": list(getattr(config, "_budget_refused", []))}
