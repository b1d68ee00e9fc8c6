"""The claims matrix: which claims hold for which optimizer, as Markdown.

Built from a claims session file (``harness.suite.sessions``): one column per
optimizer, the paper's SGD first as the reference, one row per claim; each
cell gives the verdict, how many of the claim's figures hold and their
measured values. A second table lines up every figure across optimizers.
Claims that train nothing (the theory claims) do not depend on the optimizer
and are listed once, below.

    from harness.suite.matrix import claims_matrix
    text = claims_matrix(json.load(open("RESULTS/sessions/<file>.json")))
"""

from __future__ import annotations

import textwrap
from collections import defaultdict

from harness.core.formatting import BEYOND_THE_PAPER, fmt_value
from harness.core.optim import spec_id
from harness.suite.sessions import (
    REFERENCE_OPTIMIZER,
    claim_of_test,
    claim_order,
    entry_optimizer,
    figure_row,
    find_reference,
    replace_optimizer_param,
    session_date,
    session_name,
    session_optimizers,
)

FAILED = ("failed", "error")
MAX_VALUES = 4  # measured values shown in a matrix cell; the figures table has them all
MAX_MESSAGE = 90  # characters of a failed test's message shown where it declared no figure


def claims_matrix(session: dict, *, reference: dict | None = None) -> str:
    """Markdown claims matrix (optimizer x claim) of one session file's figures and test outcomes.

    `reference`: another session (or baseline) whose paper_sgd results fill the
    reference column when `session` did not run the paper's SGD itself.
    """
    columns = _columns(session, reference)
    cells = {name: _collect(source, spec) for name, spec, source in columns}
    theory = _collect(session, None)
    claims = sorted({claim for cell in cells.values() for claim in cell}, key=claim_order)
    lines = [f"### Claims matrix ({_describe(session)})", ""]
    lines += [f"- {note}" for note in _notes(session, columns)]
    lines.append("")
    if claims:
        lines.append("| claim | " + " | ".join(name for name, _, _ in columns) + " |")
        lines.append("|---" * (len(columns) + 1) + "|")
        for claim in claims:
            row = [_cell(cells[name].get(claim)) for name, _, _ in columns]
            lines.append(f"| {claim} | " + " | ".join(row) + " |")
        lines += ["", "Figures, lined up across optimizers (measured value, verdict):", ""]
        lines += _figures_table(columns)
    else:
        lines.append("No training claim ran in this session.")
    if theory:
        lines += [
            "",
            "Claims that train nothing (the same for every optimizer):",
            "",
            "| claim | verdict |",
            "|---|---|",
        ]
        lines += [f"| {claim} | {_cell(theory[claim])} |" for claim in sorted(theory, key=claim_order)]
    return "\n".join(lines) + "\n"


def session_matrix(summary: dict, optimizers: list[str], baseline: dict | None = None) -> str | None:
    """The matrix a claims session prints at its end; None when it would have one column only.

    When the paper's SGD is not under test, its column comes from `baseline`
    (the session compared with) if that ran it at the same profile, else from
    the newest earlier numbered session that did.
    """
    reference = None
    if REFERENCE_OPTIMIZER not in optimizers:
        if (
            baseline
            and REFERENCE_OPTIMIZER in session_optimizers(baseline)
            and baseline.get("profile") == summary["profile"]
        ):
            reference = baseline
        else:
            reference = find_reference(summary["profile"], before=summary.get("number"))
    if len(optimizers) + (reference is not None) < 2:
        return None
    return claims_matrix(summary, reference=reference)


def _describe(session: dict) -> str:
    number = session.get("number")
    parts = [f"profile {session.get('profile', '?')}"]
    if number:
        parts.append(f"session {int(number):04d}")
    commit = (session.get("stamp") or {}).get("commit")
    if commit:
        parts.append(f"commit {commit[:12]}")
    return ", ".join(parts)


def _columns(session: dict, reference: dict | None) -> list[tuple[str, str, dict | None]]:
    """(header, optimizer spec, session holding its results) per column, the paper's SGD first."""
    specs = session_optimizers(session)
    columns = []
    if REFERENCE_OPTIMIZER in specs:
        columns.append((f"{REFERENCE_OPTIMIZER} (reference)", REFERENCE_OPTIMIZER, session))
    elif reference is not None and REFERENCE_OPTIMIZER in session_optimizers(reference):
        where = f"session {int(reference['number']):04d}" if reference.get("number") else "baseline"
        columns.append((f"{REFERENCE_OPTIMIZER} (reference, {where})", REFERENCE_OPTIMIZER, reference))
    else:
        columns.append((f"{REFERENCE_OPTIMIZER} (reference, not run)", REFERENCE_OPTIMIZER, None))
    columns += [(_escape(spec_id(spec)), spec, session) for spec in specs if spec != REFERENCE_OPTIMIZER]
    return columns


def _notes(session: dict, columns) -> list[str]:
    notes = []
    tuning = session.get("tuning") or {}
    for _, spec, source in columns:
        if source is None:
            notes.append(
                f"{REFERENCE_OPTIMIZER} did not run in this session and no reference session was given; "
                "run it with `--optimizer=paper_sgd` beside yours"
            )
        elif spec in tuning:
            notes.append(
                f"{spec_id(spec)}: learning rate {tuning[spec]['lr']:g}, chosen by the tuning step "
                f"({tuning[spec].get('file', 'RESULTS/tuning')})"
            )
    notes.append(
        "holds: every figure of the claim holds and its tests passed; FAILS: a figure or test failed; "
        "FAILS (expected): listed in the expected-failures file; skipped: could not run here"
    )
    return notes


def _collect(session: dict | None, spec: str | None) -> dict[str, dict]:
    """{claim: {"figures": [...], "outcomes": {nodeid: outcome}}} for one optimizer (None: no optimizer)."""
    found: dict[str, dict] = defaultdict(lambda: {"figures": [], "outcomes": {}, "messages": {}, "reasons": []})
    if session is None:
        return {}
    test_claims: dict[str, set] = defaultdict(set)
    for entry in session.get("figures", []):
        if entry_optimizer(entry, session) == spec:
            found[entry.get("claim", "?")]["figures"].append(entry)
            test_claims[entry.get("test", "")].add(entry.get("claim", "?"))
    for nodeid, test in (session.get("tests") or {}).items():
        if test.get("optimizer") != spec:
            continue
        for claim in test_claims.get(nodeid) or {claim_of_test(nodeid)} - {"?"}:
            found[claim]["outcomes"][nodeid] = test.get("outcome")
            if test.get("message"):
                found[claim]["messages"][nodeid] = test["message"]
            if test.get("outcome") in FAILED:
                for run in test.get("runs") or []:
                    if run.get("outcome") != "fitted" and run.get("reason") not in found[claim]["reasons"]:
                        found[claim]["reasons"].append(run["reason"])
    return dict(found)


def verdict(cell: dict | None) -> str:
    """holds, FAILS, FAILS (expected), holds (unexpectedly), skipped or not run."""
    if not cell:
        return "not run"
    outcomes = cell["outcomes"]
    expected = {n for n, o in outcomes.items() if o == "xfailed"}
    failing_figures = [f for f in cell["figures"] if not f.get("holds") and f.get("test") not in expected]
    if failing_figures or any(o in FAILED for o in outcomes.values()):
        return "**FAILS**"
    if expected:
        return "FAILS (expected)"
    if any(o == "xpassed" for o in outcomes.values()):
        return "holds (unexpectedly: listed as expected to fail)"
    if cell["figures"] or any(o == "passed" for o in outcomes.values()):
        return "holds"
    if outcomes and all(o == "skipped" for o in outcomes.values()):
        return "skipped"
    return "not run"


def _cell(cell: dict | None) -> str:
    text = verdict(cell)
    figures = (cell or {}).get("figures") or []
    if figures:
        holding = sum(bool(f.get("holds")) for f in figures)
        values = ", ".join(fmt_value(f.get("measured"), none="None") for f in figures[:MAX_VALUES])
        more = ", ..." if len(figures) > MAX_VALUES else ""
        text += f" · {holding}/{len(figures)} figures hold · {values}{more}"
    with_figures = {f.get("test") for f in figures}
    silent = [message for nodeid, message in (cell or {}).get("messages", {}).items() if nodeid not in with_figures]
    reasons = (cell or {}).get("reasons") or []
    if reasons and text.startswith("**FAILS**"):  # why, in the runs' own words: diverged, stalled, out of budget
        text += " · " + "; ".join(reasons)
    elif silent:  # a test that failed before declaring a figure: its message is the figure
        first = silent[0].strip().splitlines()[0] if silent[0].strip() else ""
        text += f" · test failed: {textwrap.shorten(first, MAX_MESSAGE, placeholder='...')}"
    return _escape(text)


def _figures_table(columns) -> list[str]:
    rows: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for name, spec, source in columns:
        if source is None:
            continue
        for entry in source.get("figures", []):
            if entry_optimizer(entry, source) == spec:
                rows[figure_row(entry, source)][name] = entry
    lines = [
        "| claim | figure | " + " | ".join(name for name, _, _ in columns) + " |",
        "|---" * (len(columns) + 2) + "|",
    ]
    for key in sorted(rows, key=lambda k: (claim_order(k[0]), k[1], k[2])):
        claim, _, label = key
        if any(entry.get("scope") == BEYOND_THE_PAPER for entry in rows[key].values()):
            label = f"{label} [{BEYOND_THE_PAPER}]"
        cells = []
        for name, _, _ in columns:
            entry = rows[key].get(name)
            cells.append(
                "-"
                if entry is None
                else f"{fmt_value(entry.get('measured'), none='None')} {'holds' if entry.get('holds') else '**FAILS**'}"
            )
        lines.append(f"| {claim} | {_escape(label)} | " + " | ".join(_escape(c) for c in cells) + " |")
    return lines


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def merged_session(sessions: list[dict]) -> tuple[dict, dict | None]:
    """(one session with each optimizer of each of `sessions` as a column, the session giving paper_sgd's).

    The first session that ran the paper's SGD gives the reference column
    (for `matrix.claims_matrix`'s `reference`, so the column says which
    session it is; None where none ran it). Every other optimizer of every
    session is a column named by its spec (the matrix shows its id), or
    ``SPEC (session NNNN)`` where two columns would show the same id: one
    spec in two sessions, a second paper_sgd. Figures and test outcomes are
    copied with their optimizer renamed to the column's name, and the
    optimizer parameter of their test ids with it, so that the figures
    table lines every column up. Claims that train nothing keep the figures
    of every session; a test id that two sessions share gets the second's
    name appended.
    """
    reference = next((s for s in sessions if REFERENCE_OPTIMIZER in session_optimizers(s)), None)
    columns = [
        (index, spec)
        for index, session in enumerate(sessions)
        for spec in session_optimizers(session)
        if not (session is reference and spec == REFERENCE_OPTIMIZER)
    ]
    id_counts: dict[str, int] = {REFERENCE_OPTIMIZER: 1} if reference is not None else {}
    for _, spec in columns:
        id_counts[spec_id(spec)] = id_counts.get(spec_id(spec), 0) + 1
    names = {
        (index, spec): spec if id_counts[spec_id(spec)] == 1 else f"{spec} ({session_name(sessions[index])})"
        for index, spec in columns
    }
    profiles = list(dict.fromkeys(str(session.get("profile", "?")) for session in sessions))
    merged = {
        "profile": " + ".join(profiles),
        "stamp": {},
        "optimizers": [names[column] for column in columns],
        "tuning": {},
        "figures": [],
        "tests": {},
    }
    theory_ids_taken: set[str] = set()
    for index, session in enumerate(sessions):
        column_of = {spec: names.get((index, spec)) for spec in session_optimizers(session)}
        tests = session.get("tests") or {}
        figures = session.get("figures", [])
        for spec, entry in (session.get("tuning") or {}).items():
            if column_of.get(spec):
                merged["tuning"][column_of[spec]] = entry
        own_theory_ids = {nodeid for nodeid, test in tests.items() if test.get("optimizer") is None}
        own_theory_ids |= {entry.get("test", "") for entry in figures if entry_optimizer(entry, session) is None}
        theory_id = {
            nodeid: nodeid if nodeid not in theory_ids_taken else f"{nodeid} ({session_name(session)})"
            for nodeid in own_theory_ids
        }
        theory_ids_taken |= set(theory_id.values())

        def renamed(nodeid: str, spec: str | None, theory_id=theory_id, column_of=column_of) -> str:
            if spec is None:
                return theory_id[nodeid]
            return replace_optimizer_param(nodeid, spec, spec_id(column_of[spec]))

        for nodeid, test in tests.items():
            spec = test.get("optimizer")
            if spec is None or column_of.get(spec):  # the reference's own runs stay in the reference session
                merged["tests"][renamed(nodeid, spec)] = {**test, "optimizer": column_of.get(spec) if spec else None}
        for entry in figures:
            spec = entry_optimizer(entry, session)
            if spec is None or column_of.get(spec):
                merged["figures"].append(
                    {
                        **entry,
                        "optimizer": column_of.get(spec) if spec else None,
                        "test": renamed(entry.get("test", ""), spec),
                    }
                )
    return merged, reference


def sessions_matrix(sessions: list[dict], reference: dict | None = None) -> str:
    """The claims matrix (Markdown) of one session, or of several as one matrix (`merged_session`).

    reference: a session or baseline giving the paper_sgd column where none
    of `sessions` ran it. Several sessions add a line each under the title
    (name, date, commit, profile, optimizers), and a warning where their
    profiles differ.
    """
    if len(sessions) == 1:
        return claims_matrix(sessions[0], reference=reference)
    merged, own_reference = merged_session(sessions)
    title, _, rest = claims_matrix(merged, reference=own_reference or reference).partition("\n\n")
    lines = []
    for session in sessions:
        commit = (session.get("stamp") or {}).get("commit")
        details = [
            session_date(session)[:10],
            f"commit {commit[:12]}" if commit else "",
            f"profile {session.get('profile', '?')}",
        ]
        lines.append(
            f"- {session_name(session)} ({', '.join(d for d in details if d)}): "
            f"{', '.join(session_optimizers(session))}"
        )
    if " + " in merged["profile"]:
        lines.append(
            f"- **profiles differ** ({merged['profile']}): their runs differ in scale; "
            "read the columns' verdicts side by side, not their values"
        )
    return f"{title}\n\n" + "\n".join(lines) + "\n" + rest
