"""Claims sessions as CSV: one row per figure of every session (``python -m harness sessions export``)."""

from __future__ import annotations

import csv
import errno
import io
import json
import sys
from pathlib import Path

from harness.core.optim import spec_id
from harness.core.record import replace_atomically
from harness.sessions.compare import figure_row
from harness.sessions.files import entry_optimizer, session_date, session_name

# One CSV row per figure; these names are the header, in this order.
EXPORT_COLUMNS = (
    "session",
    "date",
    "profile",
    "commit",
    "optimizer_spec",
    "optimizer_id",
    "optimizer_version",
    "optimizer_code",
    "claim",
    "test",
    "figure",
    "label",
    "measured",
    "threshold",
    "holds",
    "scope",
    "outcome",
)
PAPER_SCOPE = "paper"  # the scope of a figure that does not say it is beyond the paper


def export_rows(sessions: list[dict]) -> list[dict]:
    """One dict per figure of every session, keyed by EXPORT_COLUMNS, in the sessions' order.

    session: "0003" (a baseline: its file's name); date: ISO UTC
    (`files.session_date`); optimizer_*: "" for a claim that trains nothing, and
    version and code "" where the file does not name them (written before
    sessions did); label: the figure's stable identity (`compare.figure_row`: its
    ``key``, else `compare.figure_label`), which lines figures up across sessions;
    measured: the value (a list or dict as JSON text, None as ""); holds:
    True or False; scope: the figure's own ("beyond the paper") or "paper";
    outcome: its test's (passed, failed, xfailed, ...), "" where the session
    recorded none.
    """
    rows = []
    for session in sessions:
        number = session.get("number")
        identities = session.get("optimizer_identity") or {}
        tests = session.get("tests") or {}
        common = {
            "session": f"{int(number):04d}" if number else session_name(session),
            "date": session_date(session),
            "profile": session.get("profile", ""),
            "commit": (session.get("stamp") or {}).get("commit", ""),
        }
        for entry in session.get("figures", []):
            optimizer = entry_optimizer(entry, session)
            identity = (identities.get(optimizer) or {}) if optimizer else {}
            rows.append(
                {
                    **common,
                    "optimizer_spec": optimizer or "",
                    "optimizer_id": spec_id(optimizer) if optimizer else "",
                    "optimizer_version": identity.get("version") or "",
                    "optimizer_code": identity.get("code") or "",
                    "claim": entry.get("claim", "?"),
                    "test": entry.get("test", ""),
                    "figure": entry.get("figure", ""),
                    "label": figure_row(entry, session)[2],
                    "measured": _csv_value(entry.get("measured")),
                    "threshold": entry.get("threshold", ""),
                    "holds": bool(entry.get("holds")),
                    "scope": entry.get("scope") or PAPER_SCOPE,
                    "outcome": (tests.get(entry.get("test", "")) or {}).get("outcome", ""),
                }
            )
    return rows


def _csv_value(value):
    """A measured value as one CSV cell: numbers and text as they are, lists and dicts as JSON, None as ""."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return value


def write_csv(rows: list[dict], path: str | Path) -> None:
    """Write `rows` (from `export_rows`) as CSV under an EXPORT_COLUMNS header; path "-" is standard output.

    Written atomically (`harness.core.record.replace_atomically`): a file that
    cannot be written (OSError) leaves any earlier one as it was.
    """
    if str(path) == "-":
        _write_rows(rows, sys.stdout)
        return
    path = Path(path)
    if not path.parent.is_dir():  # a mistyped folder is refused, not made
        raise FileNotFoundError(errno.ENOENT, "no such folder", str(path.parent))
    text = io.StringIO(newline="")
    _write_rows(rows, text)
    replace_atomically(path, text.getvalue().encode("utf-8"))  # never a half file, nor the earlier one lost


def _write_rows(rows: list[dict], stream) -> None:
    writer = csv.DictWriter(stream, fieldnames=EXPORT_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
