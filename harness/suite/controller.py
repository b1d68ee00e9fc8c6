"""The controller's side of a claims session: every test's report gathered, the session's end, its summary.

Registered by the plugin on the controller only (never in an xdist worker,
whose reports reach the controller with their user properties): the
figures, outcomes and runs into the session's record, the runs not
started, a progress line per run trained; at the end the exit status
(nothing measured, runs not started, a regression), the comparison, the
numbered session file and the terminal sections.
"""

from __future__ import annotations

import time
import warnings

import pytest

from harness.core.store import results_dir
from harness.sessions.export import export_rows, write_csv
from harness.sessions.files import plain
from harness.suite import summary as claims_summary
from harness.suite.session import SESSION
from harness.suite.summary import RUN_PROPERTY


class Controller:
    """The controller's listener (registered in pytest_configure, not in xdist workers): every test's report, the
    session's end (status, comparison, session file) and its terminal summary."""

    def __init__(self, config):
        self.config = config
        self.claims = config.stash[SESSION]

    def pytest_runtest_logreport(self, report):
        """Figures, outcomes and runs; runs not started; a progress line per run trained."""
        claims = self.claims
        claims.record.note_report(report)
        claims.note_not_started(report)
        if report.when != "call" or claims.progress is None:
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        for name, value in report.user_properties:
            if name == RUN_PROPERTY:
                line = claims.progress.finished(value, time.time())
                if line and reporter is not None:
                    reporter.ensure_newline()
                    # Under xdist the status letters leave the line open, which ensure_newline does not see.
                    if getattr(reporter, "_width_of_current_line", 0):
                        reporter.write("\n")
                    reporter.write_line(line)

    def pytest_sessionfinish(self, session):
        """The exit status (not measured, not started, regressed), then the numbered session file."""
        config, claims = self.config, self.claims
        claims.unmeasured = claims.record.unmeasured()
        if claims.unmeasured and not config.getoption("--claims-partial") and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # skipped for want of data is not measured
        if claims.not_started and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.INTERRUPTED  # verdicts incomplete: the same command goes on
        if not claims.record.figures:
            return
        summary = plain(
            claims_summary.session_summary(
                claims.record,
                profile=claims.profile.name,
                device=claims.device,
                args=config.invocation_params.args,
                workers=getattr(config.option, "numprocesses", None),
                optimizers=claims.optimizers,
                tuning=claims.tuning,
                expected_failures=config.getoption("--claims-xfail"),
            )
        )
        if claims.not_started:
            summary["not_started"] = list(claims.not_started.values())
        end = claims_summary.SessionEnd(summary)
        reference = config.getoption("--claims-compare")
        if reference:
            end.compare_with(reference, claims.fail_rules)
            # A regression outranks a session cut short (by --claims-deadline, or Ctrl-C) and a usage error.
            if end.regressed and session.exitstatus in (
                pytest.ExitCode.OK,
                pytest.ExitCode.TESTS_FAILED,
                pytest.ExitCode.INTERRUPTED,
                pytest.ExitCode.USAGE_ERROR,
            ):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        end.save(int(session.exitstatus), claims.record.run_counts())
        export = config.getoption("--claims-export")
        if export:
            try:
                write_csv(export_rows([end.summary]), export)
            except OSError as error:  # the verdicts still stand; say why the file is missing
                warnings.warn(f"--claims-export: cannot write {export}: {error.strerror or error}", stacklevel=2)
        claims.end = end

    def pytest_terminal_summary(self, terminalreporter):
        claims = self.claims
        if claims.unmeasured:
            accepted = self.config.getoption("--claims-partial")
            terminalreporter.section("claims not measured", red=not accepted, yellow=accepted, bold=True)
            for line in claims_summary.unmeasured_lines(claims.unmeasured, accepted):
                terminalreporter.write_line(line, red=not accepted, yellow=accepted, bold=True)
        if claims.not_started:
            terminalreporter.section("claims runs not trained", yellow=True, bold=True)
            for line in claims.not_started_lines():
                terminalreporter.write_line(line)
        if not (claims.record.figures or claims.record.runs):
            return
        sections = claims_summary.terminal_sections(
            claims.record, claims.optimizers, results_dir(), claims.end, figures=self.config.getoption("verbose") > 0
        )
        for title, markup, lines in sections:
            if title is not None:
                terminalreporter.section(title, **markup)
            for line, line_markup in lines:
                terminalreporter.write_line(line, **line_markup)
