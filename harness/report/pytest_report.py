"""The report at the end of a claims session, as a pytest plugin beside ``harness.suite.plugin``.

``--claims-report=DIR`` renders the results folder's report (Markdown, JSON,
figures; `harness.report.render`) into DIR once the session's file is saved.
A plugin of its own so that the claims suite never imports the report,
which reads the suite's session files. A report that cannot be rendered (a
full disk, a mistyped ``MPLBACKEND``) never changes the session's exit
status: it says so in one line and what was not written.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from harness.core.store import results_dir
from harness.suite.session import SESSION


def pytest_addoption(parser):
    parser.getgroup("claims").addoption(
        "--claims-report",
        default=None,
        metavar="DIR",
        help="at the end of the session, render the report (Markdown, JSON, figures) of the results folder into DIR",
    )


@pytest.hookimpl(trylast=True)  # after the claims summary, which saves the session the report reads
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    report_dir = config.getoption("--claims-report")
    if not report_dir or hasattr(config, "workerinput") or SESSION not in config.stash:
        return
    if config.stash[SESSION].end is None:  # set by the suite's plugin when it saved a session file
        return
    try:
        from harness.report.render import render_report  # here: a bad MPLBACKEND fails on import

        written = render_report(results_dir(), Path(report_dir))
    except Exception as error:  # noqa: BLE001 - the report never turns a session's verdicts red
        reason = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            reason = f"the disk is full ({error.strerror})"
        message = (
            f"--claims-report: report not written to {report_dir} ({reason}); the session's verdicts stand, "
            "and any report files there may be missing or from an earlier report"
        )
        terminalreporter.write_line(f"warning: {message}", yellow=True, bold=True)
        return
    terminalreporter.write_line(f"report written to {written}")
