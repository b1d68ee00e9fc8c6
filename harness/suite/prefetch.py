"""--claims-prefetch: the plan's runs trained as test items of their own, before the claim tests.

A claim test trains its runs one after another; a sweep (C6's weight decay)
is one test whose runs wait on each other, so on a machine with workers to
spare it is the session's floor (the plan names it: "longest test").
With --claims-prefetch every run the plan lists as to train becomes an item
(`PlannedRun`, node id `claims-prefetch::train[KEY]`) put before the claim
tests, longest first: the workers share out runs, not tests. The claim
tests then find the records (or wait on a run in flight: the store trains
each run once) and give their verdicts as before.

The cost: the plan lists the path on which every run fits, so a sweep is
prefetched whole, past where the test would stop; those runs take their
whole budget. Items report their runs like tests do (progress lines, the
session's run count) but are not claim tests: no verdict, no figure. The
claims matrix's cost per cell counts the runs a test trained itself, so
under prefetch it shows little.

A plugin of its own, listed by harness.suite.plugin, whose plan
(`config._run_plan`, made at the session's start) gives the runs on the
controller; xdist workers get them through their worker input, so every
worker collects the same items.
"""

from __future__ import annotations

import pytest

from harness.core.config import RunConfig
from harness.suite import budget, plan
from harness.suite.fixtures import fit_reporting_unsaved
from harness.suite.summary import RUN_PROPERTY, run_entry

PREFETCH_INPUT = "harness_prefetch"


class PlannedRun(pytest.Item):
    """One planned run, trained (or found recorded) through the store, as claim_run would."""

    def __init__(self, *, run: dict, **kwargs):
        super().__init__(**kwargs)
        self.run = run  # {"key", "label", "seconds", "passes", "device", "basis", "config": RunConfig.to_dict()}

    def runtest(self) -> None:
        config = RunConfig.from_dict(self.run["config"])
        planned = plan.Estimate(self.run["passes"], self.run["seconds"], self.run["device"], self.run["basis"])
        check = budget.before_training(self, self.run["label"], lambda: planned)
        record = fit_reporting_unsaved(config, self.config._fresh_since, before_training=check)
        self.user_properties.append((RUN_PROPERTY, {**run_entry(record), "label": self.run["label"]}))

    def reportinfo(self):
        return self.path, None, f"train {self.run['label']}"


def prefetched_runs(run_plan) -> list[dict]:
    """The runs to train of a plan (harness.suite.plan.Plan), longest first, each with its config."""
    return [
        {key: e[key] for key in ("key", "label", "seconds", "passes", "device", "basis", "config")}
        for e in run_plan.ordered()
        if e["status"] == "to train" and e.get("config") is not None
    ]


def _controller_runs(config) -> list[dict]:
    """The runs to prefetch on the controller: none without --claims-prefetch or without a plan."""
    run_plan = getattr(config, "_run_plan", None)
    if not config.getoption("--claims-prefetch") or run_plan is None:
        return []
    return prefetched_runs(run_plan)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist: each worker collects the same prefetch items as the others."""
    node.workerinput[PREFETCH_INPUT] = _controller_runs(node.config)


@pytest.hookimpl(trylast=True)  # after -k and -m deselected: the plan already followed them
def pytest_collection_modifyitems(session, config, items):
    workerinput = getattr(config, "workerinput", None)
    runs = workerinput.get(PREFETCH_INPUT) if workerinput else _controller_runs(config)
    if not runs:
        return
    items[:0] = [
        PlannedRun.from_parent(
            session, name=f"train[{run['key']}]", nodeid=f"claims-prefetch::train[{run['key']}]", run=run
        )
        for run in runs
    ]
