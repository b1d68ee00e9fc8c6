"""A claims session as its controller gathers it: figures, test outcomes and runs, and their summaries.

The pytest plugin feeds a `SessionRecord` from every test's report (the
xdist workers' included: their tests carry figures and runs as user
properties), builds the session's summary with `session_summary`, compares
and saves it through a `SessionEnd` (the numbered session file of
``harness.sessions.files``), and prints the `terminal_sections` made of it all.
Nothing here needs pytest.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch

from harness.core.formatting import fmt_duration, fmt_value, shown_figure
from harness.core.optim import spec_id
from harness.core.record import json_value
from harness.core.store import machine_stamp
from harness.sessions.compare import Comparison, FailRule, compare, format_comparison, reason_of_test
from harness.sessions.files import (
    SessionError,
    SessionNotSavedError,
    claim_of_test,
    claim_order,
    load_session,
    save_session,
)
from harness.suite.matrix import session_matrix

CLAIM_PROPERTY = "claim_figure"
OPTIMIZER_PROPERTY = "claims_optimizer"  # a test's optimizer spec, carried to the controller in its reports
RUN_PROPERTY = "claims_run"  # each run a test used: its key, whether reused and saved, carried to the controller
# The start of the reason a claim test skips with when its dataset is absent (harness.suite.fixtures.data_spec):
# such a test measured nothing, and a session with one is not green unless --claims-partial says so.
DATA_MISSING = "data missing"


@dataclass
class SessionRecord:
    """What the controller has heard of the session so far."""

    figures: list = field(default_factory=list)  # every claim figure, with its test's id
    tests: dict = field(default_factory=dict)  # nodeid -> {"outcome", "optimizer", ...}, claim tests only
    runs: dict = field(default_factory=dict)  # run key -> {"trained", "saved", "save_error"}: each run used, once

    def note_report(self, report) -> None:
        """One phase's report of a test (pytest's TestReport, read by its attributes only)."""
        self._note_outcome(report)
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == CLAIM_PROPERTY:
                self.figures.append({**value, "test": report.nodeid})
            elif name == RUN_PROPERTY:
                note_run(self.runs, value)
                test = self.tests.get(report.nodeid)
                if test is not None and value.get("outcome"):
                    runs = test.setdefault("runs", [])
                    kept = ("key", "outcome", "passes", "passes_to_fit", "reason", "dataset", "reused", "seconds")
                    summary = {k: value.get(k) for k in kept}
                    if summary not in runs:
                        runs.append(summary)

    def _note_outcome(self, report) -> None:
        """passed, failed, error, skipped, xfailed or xpassed, for tests of claims (or of an optimizer)."""
        optimizer = dict(report.user_properties).get(OPTIMIZER_PROPERTY)
        if optimizer is None and claim_of_test(report.nodeid) == "?":
            return
        expected = hasattr(report, "wasxfail")
        if report.when == "call":
            outcome = (
                ("xpassed" if expected else "passed") if report.passed else ("xfailed" if expected else report.outcome)
            )
        elif report.failed:
            outcome = "error"
        elif report.skipped:
            outcome = "xfailed" if expected else "skipped"
        else:
            return
        entry = self.tests.setdefault(report.nodeid, {"optimizer": optimizer})
        if entry.get("outcome") in ("failed", "error"):
            return  # a teardown cannot make a failed test pass
        entry["outcome"] = outcome
        if expected:
            entry["reason"] = report.wasxfail
        elif report.skipped and isinstance(report.longrepr, tuple):
            entry["reason"] = report.longrepr[2]
        elif report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            entry["message"] = (getattr(crash, "message", None) or str(report.longrepr))[:300]

    def unmeasured(self) -> dict[str, str]:
        """{test id: reason} of the claim tests that skipped because their data was absent."""
        reasons = {
            nodeid: reason_of_test(entry) for nodeid, entry in self.tests.items() if entry.get("outcome") == "skipped"
        }
        return {nodeid: reason for nodeid, reason in reasons.items() if reason.startswith(DATA_MISSING)}

    def run_counts(self) -> dict:
        return {"trained": sum(run["trained"] for run in self.runs.values()), "used": len(self.runs)}


def run_entry(record: dict) -> dict:
    """What a test reports of a run it used (RUN_PROPERTY), from the run's record."""
    return {
        "key": record.get("key"),
        "outcome": record.get("outcome"),
        "passes": record.get("passes"),
        "passes_to_fit": record.get("passes_to_fit"),
        "reason": run_reason(record),
        "dataset": record.get("data_source"),  # the data named by its content, for the matrix's figures table
        "reused": bool(record.get("reused")),
        "saved": bool(record.get("saved", True)),
        "save_error": record.get("save_error"),
        # where a claims session's time goes: the passes and the evaluation of each run it trained
        "seconds": None
        if record.get("reused")
        else {
            "training": record.get("train_seconds") or 0.0,
            "evaluation": record.get("eval_seconds") or 0.0,
            "setup": record.get("setup_seconds") or 0.0,
        },
    }


# A run out of budget is "still rising" if its training accuracy gained more than this
# over its last RISING_WINDOW passes (half a point: well above a fitted-looking plateau's
# wobble, far below the gains of a run that needs only more passes).
RISING_GAIN, RISING_WINDOW = 0.005, 10


def run_reason(record: dict) -> str:
    """What happened to a run, in a short phrase for the matrix: 'fitted in 27 passes', 'diverged at pass 3',
    'stalled at pass 1', 'out of budget at 98.42% after 150 passes, still rising', 'not fittable (ceiling 82.40%)'."""
    outcome, passes = record.get("outcome"), record.get("passes")
    if outcome == "fitted":
        return f"fitted in {record.get('passes_to_fit')} passes"
    if outcome in ("diverged", "stalled", "interrupted", "error"):
        return f"{outcome} at pass {passes}"
    if outcome == "not_fittable":
        ceiling = record.get("attainable_train_accuracy")
        return "not fittable" + (f" (ceiling {ceiling:.2%})" if isinstance(ceiling, float) else "")
    curve = [a for a in ((record.get("curves") or {}).get("train_accuracy") or []) if a is not None]
    if outcome == "out_of_budget" and curve:
        gained = curve[-1] - curve[max(0, len(curve) - 1 - RISING_WINDOW)]
        trend = "still rising" if gained > RISING_GAIN else "flat"
        return f"out of budget at {curve[-1]:.2%} after {passes} passes, {trend}"
    return str(outcome)


def note_run(runs: dict, entry: dict) -> None:
    """Add a test's use of a run to `runs`; a run counts as trained if any test trained it (the others reused it)."""
    seen = runs.setdefault(entry["key"], {"trained": False, "saved": True, "save_error": None, "seconds": None})
    seen["trained"] |= not entry["reused"]
    if entry.get("seconds") and seen["seconds"] is None:  # a run trained twice (unsaved) is timed once
        seen["seconds"] = entry["seconds"]
    if not entry["saved"]:
        seen["saved"], seen["save_error"] = False, entry.get("save_error") or "no reason given"


def runs_summary_lines(runs: dict, folder) -> list[str]:
    """'runs: T trained, R reused from FOLDER', then one line per distinct reason records were not saved."""
    trained = sum(run["trained"] for run in runs.values())
    lines = [f"runs: {trained} trained, {len(runs) - trained} reused from {folder}"]
    timed = [run["seconds"] for run in runs.values() if run["seconds"]]
    if timed:
        total = {part: sum(seconds[part] for seconds in timed) for part in timed[0]}
        lines[0] += (
            f"; their time: {total['training']:.0f} s training passes, {total['evaluation']:.0f} s "
            f"evaluation, {total['setup']:.0f} s graph capture (summed over workers)"
        )
    unsaved: dict[str, int] = {}
    for run in runs.values():
        if not run["saved"]:
            unsaved[run["save_error"]] = unsaved.get(run["save_error"], 0) + 1
    for reason, count in unsaved.items():
        lines.append(f"{count} run record{'s' if count > 1 else ''} could not be saved: {reason}")
    return lines


def figure_entry(
    claim: str, figure: str, measured, threshold: str, holds: bool, optimizer: str | None, context: dict
) -> dict:
    """A declared claim figure (CLAIM_PROPERTY), in plain Python values: xdist cannot send numpy scalars."""
    entry = {
        "claim": claim,
        "figure": figure,
        "measured": measured,
        "threshold": threshold,
        "holds": bool(holds),
        "optimizer": optimizer,
    }
    entry.update(context)
    return json_value(entry)


def declared_line(claim: str, figure: str, measured, threshold: str, holds: bool) -> str:
    """The line a test prints as it declares a figure."""
    verdict = "holds" if holds else "FAILS"
    return f"{claim}: {figure} = {fmt_value(measured, none='None')} (threshold {threshold}) -> {verdict}"


def figure_lines(figures: list, optimizers: list[str]) -> list[str]:
    """The 'claim figures' section (-v): one line per figure, claims in the paper's order; the optimizer when several ran."""
    lines = []
    for entry in sorted(figures, key=lambda e: (claim_order(e["claim"]), e["test"])):
        verdict = "holds" if entry["holds"] else "FAILS"
        optimizer = f" <{spec_id(entry['optimizer'])}>" if entry.get("optimizer") and len(optimizers) > 1 else ""
        lines.append(
            f"{entry['claim']:<4} {verdict:<6} {shown_figure(entry)}{optimizer}: "
            f"{fmt_value(entry['measured'], none='None')}  [{entry['threshold']}]"
        )
    return lines


def claim_lines(record: SessionRecord, optimizers: list[str]) -> list[str]:
    """The 'claims' section: one line per claim, C1 ... C12 then A1 ..., with its verdict and one figure.

    Verdict: FAILS when a figure of the claim does not hold or one of its
    tests failed (naming the optimizers where several ran); "expected to
    fail" when its failures were all listed as expected (--claims-xfail);
    "not measured" when every test of it skipped; else holds. The figure
    shown is the first that does not hold, else the first compared with a
    paper value, else the first declared; the paper's value beside it
    (percent, or percentage points for a difference, as the paper gives it).
    """
    claims: dict[str, dict] = {}
    for entry in record.figures:
        claims.setdefault(entry["claim"], {"figures": [], "tests": {}})["figures"].append(entry)
    for nodeid, test in record.tests.items():
        claim = claim_of_test(nodeid)
        if claim != "?":
            claims.setdefault(claim, {"figures": [], "tests": {}})["tests"][nodeid] = test
    lines = []
    for claim in sorted(claims, key=claim_order):
        figures, tests = claims[claim]["figures"], claims[claim]["tests"]
        failing = [entry for entry in figures if not entry["holds"]]
        failed = [nodeid for nodeid, test in tests.items() if test.get("outcome") in ("failed", "error")]
        outcomes = {test.get("outcome") for test in tests.values()}
        if failing or failed:
            verdict = "FAILS"
        elif "xfailed" in outcomes:
            verdict = "expected to fail"
        elif figures or "passed" in outcomes:
            verdict = "holds"
        else:
            verdict = "not measured"
        line = f"{claim:<4} {verdict:<7}"
        if figures:
            line += f" {len(figures) - len(failing)}/{len(figures)} figures hold"
        if len(optimizers) > 1 and verdict == "FAILS":
            where = {entry.get("optimizer") for entry in failing} | {
                tests[nodeid].get("optimizer") for nodeid in failed
            }
            line += f" (FAILS with {', '.join(sorted(spec_id(spec) for spec in where if spec))})"
        shown = (failing or [entry for entry in figures if entry.get("paper") is not None] or figures or [None])[0]
        if shown is not None:
            line += f"; {shown_figure(shown)}: {fmt_value(shown['measured'], none='None')} [{shown['threshold']}]"
            if shown.get("paper") is not None:
                line += f", paper {fmt_value(shown['paper'])}"
        elif failed:
            line += f"; {failed[0]}: {tests[failed[0]].get('message', 'failed')}"
        lines.append(line)
    return lines


def session_summary(
    record: SessionRecord,
    *,
    profile: str,
    device: str,
    args,
    workers,
    optimizers: list[str],
    tuning: dict,
    expected_failures: str | None,
) -> dict:
    """The session file's content before it is compared and saved (exit status and runs come last)."""
    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    return {
        "profile": profile,
        "stamp": machine_stamp(device),
        "machine": {"node": platform.node(), "cpu_count": os.cpu_count(), "gpu_count": len(gpus), "gpus": gpus},
        "command": " ".join(["python -m pytest", *args]),
        "workers": workers,
        "exit_status": None,
        "optimizers": optimizers,
        "tuning": tuning,
        "expected_failures": expected_failures,
        "figures": record.figures,
        "tests": record.tests,
    }


@dataclass
class SessionEnd:
    """The session's summary at its end: compared with a baseline if asked, then saved (or why not)."""

    summary: dict
    comparison: Comparison | None = None
    baseline: dict | None = None  # the session compared with, once read
    compare_error: str | None = None
    path: Path | None = None
    save_error: str | None = None
    rules: list[FailRule] = field(default_factory=list)  # the failure rules the comparison was asked with

    def compare_with(self, reference: str, rules: list[FailRule]) -> None:
        """Compare with the session `reference` names; the outcome goes into summary["comparison"].

        A comparison that cannot be made (no readable session to compare
        with) leaves the reason in compare_error; with failure rules given,
        the session then counts as regressed (`regressed`): a gate that was
        asked for never switches itself off.
        """
        self.rules = list(rules)
        try:
            baseline = load_session(reference)
        except SessionError as error:
            self.compare_error = str(error)
            if self.rules:
                self.compare_error += (
                    f"; the session fails: failure rules were given ({', '.join(r.text for r in rules)})"
                )
            self.summary["comparison"] = {
                "baseline": None,
                "rules": [rule.text for rule in rules],
                "error": self.compare_error,
                "regressions": [],
            }
            return
        result = compare(self.summary, baseline, rules)
        self.comparison, self.baseline = result, baseline
        self.summary["comparison"] = {
            "baseline": result.baseline_name,
            "rules": [rule.text for rule in rules],
            "machines_differ": result.hardware,
            "regressions": [{"figure": list(row.key), "why": row.regression} for row in result.regressions],
        }

    @property
    def regressed(self) -> bool:
        """A figure regressed, or failure rules were given and no comparison could be made."""
        if self.compare_error is not None:
            return bool(self.rules)
        return bool(self.comparison and self.comparison.regressions)

    def save(self, exit_status: int, runs: dict) -> None:
        """Save as the next numbered session; a folder that cannot be written leaves the reason in save_error."""
        self.summary["exit_status"] = exit_status
        self.summary["runs"] = runs
        try:
            self.path = save_session(self.summary)
        except SessionNotSavedError as error:  # verdicts still reach the terminal, with the reason
            self.save_error = str(error)


LOUD = {"yellow": True, "bold": True}  # terminal markup of a line that must not be missed


def terminal_sections(
    record: SessionRecord, optimizers: list[str], folder, end: SessionEnd | None, *, figures: bool = False
) -> list[tuple[str | None, dict, list[tuple[str, dict]]]]:
    """The claims part of the terminal summary: (title or None to go on under the last, markup, [(line, markup)]).

    One line per claim (`claim_lines`), the figure lines too where asked
    (`figures`: pytest's -v), and the runs; once the session is saved (`end`), the
    claims matrix when it has two columns or more (the paper's SGD is always
    one), the comparison if one was asked for, and where the figures went.
    """
    lines = [(line, {"red": " FAILS" in line[:12]}) for line in claim_lines(record, optimizers)]
    if record.runs:
        first, *unsaved = runs_summary_lines(record.runs, folder)
        lines += [(first, {})] + [(line, LOUD) for line in unsaved]
    if end is not None and end.summary.get("tuning"):
        lines.append((tuning_line(end.summary["tuning"]), {}))
    sections = [("claims", {}, lines)]
    if figures:
        sections.insert(0, ("claim figures", {}, [(line, {}) for line in figure_lines(record.figures, optimizers)]))
    if end is None:
        return sections
    matrix = session_matrix(end.summary, optimizers, baseline=end.baseline)
    if matrix is not None:
        sections.append(("claims matrix", {}, [(line, {}) for line in matrix.splitlines()]))
    if end.compare_error:
        sections.append(("claims comparison", {}, [(f"no comparison: {end.compare_error}", {"yellow": True})]))
    elif end.comparison is not None:
        result = end.comparison
        sections.append(
            (
                "claims comparison",
                {"red": bool(result.regressions or result.hardware)},
                [_comparison_line(line) for line in format_comparison(result)],
            )
        )
    if end.save_error:
        saved = (f"claim figures not saved: {end.save_error}", LOUD)
    else:
        saved = (f"claim figures saved to {end.path} (session {end.summary['number']:04d})", {})
    sections.append((None, {}, [saved]))
    return sections


def tuning_line(tuning: dict) -> str:
    """'tuning (--tune-lr): adam lr 0.001 in 31 s; lion lr 0.0001 recorded earlier': its cost beside the runs'."""
    parts = []
    for spec, entry in tuning.items():
        when = "recorded earlier" if entry.get("reused") else f"in {fmt_duration(entry.get('seconds') or 0.0)}"
        parts.append(f"{spec_id(spec)} lr {entry['lr']:g} {when}")
    return "tuning (--tune-lr): " + "; ".join(parts)


def unmeasured_lines(unmeasured: dict[str, str], accepted: bool) -> list[str]:
    """The framed lines of a session whose selected claim tests could not run for missing data.

    unmeasured: {test id: skip reason} (SessionRecord.unmeasured); accepted:
    --claims-partial was given (the session's exit status is then left as it is).
    """
    reasons = sorted({reason.removeprefix(f"{DATA_MISSING}:").strip() for reason in unmeasured.values()})
    verdict = "accepted by --claims-partial" if accepted else "the session fails"
    lines = [f"{len(unmeasured)} selected claim test(s) measured nothing, {DATA_MISSING} ({verdict}):"]
    lines += [f"  {reason}" for reason in reasons]
    if not accepted:
        lines.append(
            "  fix: point HARNESS_DATA_DIR (or --data-dir) at the data, or --allow-download; "
            "--claims-partial accepts a session that measured only part of what it selected"
        )
    return lines


def _comparison_line(line: str) -> tuple[str, dict]:
    loud = line.startswith("!!") or "REGRESSION" in line  # the machines warning and each regression
    return line, {"red": loud, "bold": loud}
