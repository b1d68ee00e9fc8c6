"""The claims matrix: which claims hold for which optimizer, as Markdown.

Built from a claims session file (``harness.sessions.files``): one column per
optimizer, the paper's SGD first as the reference, one row per claim; each
cell gives the verdict, how many of the claim's figures hold, their
measured values and the training time its runs took (reused records marked
as reused). A second table lines up every figure across optimizers by its
full label as declared, with the dataset its runs used.
Claims that train nothing (the theory claims) do not depend on the optimizer
and are listed once, below, with the checks of a claim that run without the
optimizer under test (C9's fixed checks of plain SGD). A claim the paper
makes of its SGD and asks of every optimizer (C9) says so in the cells of
the other optimizers ("the paper's SGD claim asked of adam: ..."), where
FAILS is an answer about the optimizer, not a fault of the harness; the
notes say which claims read the optimizer under test and which do not.

    from harness.suite.matrix import claims_matrix
    text = claims_matrix(json.load(open("RESULTS/sessions/<file>.json")))
"""

from __future__ import annotations

import re
import textwrap
from collections import defaultdict

from harness.core.data import DATASET_NAMES
from harness.core.formatting import SCOPE_SEPARATOR, figure_scope, fmt_duration, fmt_value
from harness.core.optim import spec_id
from harness.sessions.compare import replace_optimizer_param, strip_optimizer_param
from harness.sessions.files import (
    REFERENCE_OPTIMIZER,
    claim_of_test,
    claim_order,
    entry_optimizer,
    find_reference,
    session_date,
    session_name,
    session_optimizers,
)
from harness.suite.paper import OTHER_PAPERS_CLAIMS

FAILED = ("failed", "error")
MAX_VALUES = 4  # measured values shown in a matrix cell; the figures table has them all
MAX_MESSAGE = 90  # characters of a failed test's message shown where it declared no figure
# Claims the paper makes of its SGD that every optimizer under test is asked too: their cells
# in another optimizer's column say so, since FAILS there may be the expected answer.
SGD_CLAIMS_ASKED_OF_EVERY_OPTIMIZER = {
    "C9": "converging elsewhere is what an adaptive method is known to do (Wilson et al., 2017)",
}
# Claims that train nothing and what they run instead of the optimizer under test.
RUN_WITHOUT_THE_OPTIMIZER = {
    "C8": "constructs Theorem 1's network, trains nothing",
    "C10": "solves Gaussian-kernel interpolation in closed form, trains nothing",
    "C11": "compares kernel solutions' norms in closed form, trains nothing",
    "C12": "trains one network with its own full-batch Adam, an instrument for the class's supremum",
}
UNDECIDED = "undecided"  # a skip whose reason starts with this: the claim's test could not tell
NOT_COMPARABLE = "not comparable"  # a skip reason's start: the test's settings do not carry over (C6's sweep)


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
    lines.append(f"- {optimizer_reading(claims, sorted(theory, key=claim_order))}")
    lines.append("")
    if claims:
        lines.append("| claim | " + " | ".join(name for name, _, _ in columns) + " |")
        lines.append("|---" * (len(columns) + 1) + "|")
        for claim in claims:
            row = [_asked_cell(claim, name, spec, cells[name].get(claim)) for name, spec, _ in columns]
            lines.append(f"| {_claim_name(claim)} | " + " | ".join(row) + " |")
        lines += ["", "Figures, lined up across optimizers (measured value, verdict):", ""]
        lines += _figures_table(columns)
    else:
        lines.append("No training claim ran in this session.")
    if theory:
        lines += [
            "",
            "Claims that train nothing, and checks that run without the optimizer under test "
            "(the same for every optimizer):",
            "",
            "| claim | verdict |",
            "|---|---|",
        ]
        lines += [f"| {claim} | {_cell(theory[claim])} |" for claim in sorted(theory, key=claim_order)]
    return "\n".join(lines) + "\n"


def _asked_cell(claim: str, name: str, spec: str, cell: dict | None) -> str:
    """A matrix cell; in another optimizer's column a claim of the paper's SGD is labelled as asked of it."""
    text = _cell(cell)
    if claim in SGD_CLAIMS_ASKED_OF_EVERY_OPTIMIZER and spec != REFERENCE_OPTIMIZER and cell:
        return f"the paper's SGD claim asked of {name}: {text}"
    return text


def optimizer_reading(claims: list[str], theory: list[str]) -> str:
    """The note saying which claims read the optimizer under test and which run without it."""
    reading = [_claim_name(c) for c in claims]
    without = [c for c in theory if c not in claims]
    parts = [f"reads the optimizer under test: {', '.join(reading) if reading else 'none in this session'}"]
    if without:
        why = [f"{c} ({RUN_WITHOUT_THE_OPTIMIZER[c]})" if c in RUN_WITHOUT_THE_OPTIMIZER else c for c in without]
        parts.append(f"run without it (listed once, below): {'; '.join(why)}")
    both = [c for c in claims if c in theory]
    if both:
        parts.append(
            f"{', '.join(both)}: a test per optimizer in the table, and fixed checks that run without it, below"
        )
    asked = [c for c in claims if c in SGD_CLAIMS_ASKED_OF_EVERY_OPTIMIZER]
    for claim in asked:
        parts.append(
            f"{claim} is the paper's SGD claim asked of each other optimizer: "
            f"{SGD_CLAIMS_ASKED_OF_EVERY_OPTIMIZER[claim]}"
        )
    return "; ".join(parts)


def _claim_name(claim: str) -> str:
    """A claim as its row names it: another paper's claim labelled with that paper ("A1 [Arpit et al. (2017)]")."""
    scope = OTHER_PAPERS_CLAIMS.get(claim)
    return f"{claim} [{scope}]" if scope else claim


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
            entry = tuning[spec]
            cost = (
                f", {fmt_duration(entry['seconds'])} of this session"
                if isinstance(entry.get("seconds"), (int, float)) and not entry.get("reused")
                else ", recorded earlier"
                if entry.get("reused")
                else ""
            )
            warned = "".join(f"\n  - warning: {line}" for line in entry.get("warnings") or [])
            notes.append(
                f"{spec_id(spec)}: learning rate {entry['lr']:g}, chosen by the tuning step "
                f"({entry.get('file', 'RESULTS/tuning')}{cost}){warned}"
            )
    notes.append(
        "holds: every figure of the claim holds and every test behind it ran and passed; FAILS: a figure or test "
        "failed; FAILS (expected): listed in the expected-failures file; skipped: could not run here; skipped in "
        "part: a test of the claim skipped (the reason follows), never holds; "
        "undecided: ran, but could not tell (a run that did not converge in its budget), never holds; "
        "not comparable: a test's settings do not carry over to the optimizer (what was measured follows)"
    )
    notes.append(
        "training: the training passes' time of the runs the claim's tests used, each run once; "
        "reused: runs taken from earlier records, not trained (and not timed) here"
    )
    notes.append("figures table: each figure's full label as declared; dataset: what its runs used, ? where unrecorded")
    return notes


def _collect(session: dict | None, spec: str | None) -> dict[str, dict]:
    """{claim: {"figures": [...], "outcomes": {nodeid: outcome}}} for one optimizer (None: no optimizer)."""
    found: dict[str, dict] = defaultdict(
        lambda: {"figures": [], "outcomes": {}, "messages": {}, "reasons": [], "runs": {}, "skips": {}}
    )
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
            if test.get("outcome") == "skipped" and test.get("reason"):
                found[claim]["skips"][nodeid] = str(test["reason"])
            for number, run in enumerate(test.get("runs") or []):  # a run two tests shared counts once
                found[claim]["runs"].setdefault(run.get("key") or f"{nodeid} #{number}", run)
            if test.get("outcome") in FAILED:
                for run in test.get("runs") or []:
                    if run.get("outcome") != "fitted" and run.get("reason") not in found[claim]["reasons"]:
                        found[claim]["reasons"].append(run["reason"])
    return dict(found)


def verdict(cell: dict | None) -> str:
    """holds, FAILS, FAILS (expected), holds (unexpectedly), undecided, skipped, skipped in part or not run.

    holds only when every test behind the cell ran and passed. skipped: every
    test of the claim skipped, whatever figures they reported before skipping;
    skipped in part: some ran and passed, another skipped (bar skips outside
    the claim's scope at this tier, OUT_OF_SCOPE_SKIPS), with its reason.
    undecided: every test skipped, one of them because it could not tell (its
    reason starts with "undecided": C9's run that did not converge); never holds.
    not comparable: a test skipped "not comparable: <what was measured>", none failed.
    """
    if not cell:
        return "not run"
    outcomes = cell["outcomes"]
    skips = (cell.get("skips") or {}).values()
    if outcomes and all(o == "skipped" for o in outcomes.values()):
        if any(reason.removeprefix("Skipped: ").startswith(UNDECIDED) for reason in skips):
            return UNDECIDED
    expected = {n for n, o in outcomes.items() if o == "xfailed"}
    failing_figures = [f for f in cell["figures"] if not f.get("holds") and f.get("test") not in expected]
    if failing_figures or any(o in FAILED for o in outcomes.values()):
        return "**FAILS**"
    if expected:
        return "FAILS (expected)"
    if any(o == "xpassed" for o in outcomes.values()):
        return "holds (unexpectedly: listed as expected to fail)"
    if not_comparable(cell):  # never "holds", "skipped" or "skipped in part": the reason is a measurement
        return NOT_COMPARABLE
    if outcomes and all(o == "skipped" for o in outcomes.values()):
        # Figures a skipped test declared are reported, not a verdict (C3's per-seed ratios
        # at a tier where its verdict cannot discriminate): the claim was not decided here.
        return "skipped"
    if part_skipped(cell):
        return "skipped in part"  # never "holds": a test behind the cell did not run
    if cell["figures"] or any(o == "passed" for o in outcomes.values()):
        return "holds"
    return "not run"


# Skips that are not part of the claim at this tier: a test beyond the paper's scope (run under
# --claims-extended) and a scale only a CUDA GPU reaches (the paper tier's own tests).
OUT_OF_SCOPE_SKIPS = ("beyond the paper", "needs a CUDA", "need a CUDA")


def part_skipped(cell: dict) -> list[str]:
    """The reasons of the claim's tests that skipped while others ran, bar skips outside its scope here."""
    return [
        reason.removeprefix("Skipped: ")
        for nodeid, reason in (cell.get("skips") or {}).items()
        if cell["outcomes"].get(nodeid) == "skipped" and not any(words in reason for words in OUT_OF_SCOPE_SKIPS)
    ]


def not_comparable(cell: dict) -> list[str]:
    """The measured reasons of the claim's tests that skipped as not comparable for this optimizer."""
    reasons = [reason.removeprefix("Skipped: ") for reason in (cell.get("skips") or {}).values()]
    return [r.removeprefix(f"{NOT_COMPARABLE}: ") for r in reasons if r.startswith(NOT_COMPARABLE)]


def _cell(cell: dict | None) -> str:
    text = decided = verdict(cell)
    figures = (cell or {}).get("figures") or []
    if figures:
        holding = sum(bool(f.get("holds")) for f in figures)
        values = ", ".join(fmt_value(f.get("measured"), none="None") for f in figures[:MAX_VALUES])
        more = ", ..." if len(figures) > MAX_VALUES else ""
        text += f" · {holding}/{len(figures)} figures hold · {values}{more}"
    if decided == "skipped in part":  # why, in the skipped test's own words
        text += f" · skipped: {textwrap.shorten(part_skipped(cell)[0], MAX_MESSAGE * 2, placeholder='...')}"
    if not_comparable(cell or {}):  # why, as measured; beside a failure of another test, too
        said = "" if decided == NOT_COMPARABLE else f"{NOT_COMPARABLE}: "
        text += f" · {said}{textwrap.shorten(not_comparable(cell)[0], MAX_MESSAGE * 2, placeholder='...')}"
    if decided == UNDECIDED:  # why, in the test's own words
        reason = next(iter((cell or {}).get("skips", {}).values()), "")
        reason = reason.removeprefix("Skipped: ").removeprefix(f"{UNDECIDED}: ")
        text += f" · {textwrap.shorten(reason, MAX_MESSAGE * 2, placeholder='...')}"
    with_figures = {f.get("test") for f in figures}
    silent = [message for nodeid, message in (cell or {}).get("messages", {}).items() if nodeid not in with_figures]
    reasons = (cell or {}).get("reasons") or []
    if reasons and text.startswith("**FAILS**"):  # why, in the runs' own words: diverged, stalled, out of budget
        text += " · " + "; ".join(reasons)
    elif silent:  # a test that failed before declaring a figure: its message is the figure
        first = silent[0].strip().splitlines()[0] if silent[0].strip() else ""
        text += f" · test failed: {textwrap.shorten(first, MAX_MESSAGE, placeholder='...')}"
    cost = cell_cost((cell or {}).get("runs") or {})
    if cost:
        text += f" · {cost}"
    return _escape(text)


def run_train_seconds(run: dict) -> float | None:
    """A session's run entry's training time in seconds; None where the entry has none (reused, or not recorded).

    Reads ``train_seconds``, else ``seconds.training`` (harness.suite.summary.run_entry).
    """
    if isinstance(run.get("train_seconds"), (int, float)):
        return float(run["train_seconds"])
    seconds = run.get("seconds")
    if isinstance(seconds, dict) and isinstance(seconds.get("training"), (int, float)):
        return float(seconds["training"])
    return None


def cell_cost(runs: dict[str, dict]) -> str:
    """'12 s training', '3.1 min training + 2 runs reused', '2 runs reused'; '' when no run says its time.

    A reused run was not trained in the session: it counts as reused, never
    with a time (its recorded time, where the entry keeps it, is shown marked
    'recorded'). Sessions saved before runs carried their time show nothing.
    """
    trained = [
        seconds for run in runs.values() if not run.get("reused") and (seconds := run_train_seconds(run)) is not None
    ]
    reused = [run for run in runs.values() if run.get("reused")]
    parts = [f"{fmt_duration(sum(trained))} training"] if trained else []
    if reused:
        recorded = [seconds for run in reused if (seconds := run_train_seconds(run)) is not None]
        word = "run" if len(reused) == 1 else "runs"
        parts.append(
            f"{len(reused)} {word} reused"
            + (f" (recorded {fmt_duration(sum(recorded))} training)" if len(recorded) == len(reused) else "")
        )
    return " + ".join(parts)


# A number that is a value, not part of a word ('CIFAR-10' keeps its 10 only as part of the name's identity).
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def full_label(text: str) -> str:
    """A figure's identity in the figures table: its text as declared, every detail kept.

    Only the numbers inside parentheses and after the first colon become '#'
    (values measured per run: 'relabelling p = 0.521'), so the same figure of
    two optimizers lines up while two figures that differ in any word (the
    dataset in their details, say) are two rows.
    """
    text = re.sub(r"\s+", " ", str(text)).strip()
    head, colon, tail = text.partition(":")
    out, depth = [], 0
    for piece in re.split(r"([()])", head):
        if piece in "()" and piece:
            depth += 1 if piece == "(" else -1
            out.append(piece)
        else:
            out.append(_NUMBER.sub("#", piece) if depth > 0 else piece)
    return "".join(out) + colon + _NUMBER.sub("#", tail)


def shown_label(texts: list[str]) -> str:
    """The label a figures-table row shows: the declared text, numbers that differ between columns as '#'."""
    texts = [re.sub(r"\s+", " ", str(text)).strip() for text in texts]
    if len(set(texts)) == 1:
        return texts[0]
    split = [_NUMBER.split(text) for text in texts]
    numbers = [_NUMBER.findall(text) for text in texts]
    if any(parts != split[0] for parts in split) or len({len(n) for n in numbers}) != 1:
        return full_label(texts[0])
    shown = [values[0] if len(set(values)) == 1 else "#" for values in zip(*numbers)]
    return "".join(part + (shown[i] if i < len(shown) else "") for i, part in enumerate(split[0]))


def differing_numbers(texts: list[str]) -> list[list[str]]:
    """Per text, the numbers `shown_label` shows as '#' (those that differ between the texts); [] where none do
    or the texts do not line up number for number."""
    texts = [re.sub(r"\s+", " ", str(text)).strip() for text in texts]
    if len(set(texts)) == 1:
        return []
    split = [_NUMBER.split(text) for text in texts]
    numbers = [_NUMBER.findall(text) for text in texts]
    if any(parts != split[0] for parts in split) or len({len(n) for n in numbers}) != 1:
        return []
    positions = [i for i, values in enumerate(zip(*numbers)) if len(set(values)) > 1]
    return [[own[i] for i in positions] for own in numbers]


def figure_dataset(entry: dict, session: dict) -> str:
    """The dataset a figure's runs used, by name ('CIFAR-10', 'MNIST'); '?' where nothing says.

    From the figure entry's own ``dataset`` or ``data`` (a claim's context),
    else the ``dataset`` (or ``data``) of the runs its test used (the
    session's tests[test]["runs"]), else a dataset the declared text names.
    """
    found = [entry.get("dataset") or entry.get("data")]
    if not found[0]:
        runs = ((session.get("tests") or {}).get(entry.get("test", "")) or {}).get("runs") or []
        found = [run.get("dataset") or run.get("data") for run in runs]
    names = list(dict.fromkeys(_dataset_name(str(spec)) for spec in found if spec))
    if names:
        return ", ".join(names)
    text = str(entry.get("figure", "")).lower()
    if "jpeg" in text and "cifar" in text:  # the JPEG copy is never called CIFAR-10 alone
        return "CIFAR-10 (JPEG q75 copy)"
    named = [name for kind, name in DATASET_NAMES.items() if kind in text or name.lower() in text]
    return ", ".join(named) if named else "?"


def _dataset_name(spec: str) -> str:
    """'cifar10:/data' -> 'CIFAR-10', 'mnist' -> 'MNIST'; an arrays file by its file name."""
    kind, _, rest = spec.partition(":")
    if kind in DATASET_NAMES:
        return DATASET_NAMES[kind]
    if kind == "npz" and rest:
        return rest.replace("\\", "/").rsplit("/", 1)[-1]
    return spec


def _figures_table(columns) -> list[str]:
    """One row per figure: claim, full label (as declared), dataset, then each column's value and verdict.

    Figures line up across optimizers by claim, test (less the optimizer's
    parameter), dataset and full label (`full_label`); a figure repeated under
    one identity in one column gets ' #2', ' #3'.
    """
    rows: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for name, spec, source in columns:
        if source is None:
            continue
        seen: dict[tuple, int] = defaultdict(int)
        for entry in source.get("figures", []):
            optimizer = entry_optimizer(entry, source)
            if optimizer != spec:
                continue
            identity = (
                entry.get("claim", "?"),
                strip_optimizer_param(entry.get("test", ""), optimizer),
                figure_dataset(entry, source),
                entry.get("key") or full_label(entry.get("figure", "")),
            )
            seen[identity] += 1
            rows[(*identity, seen[identity])][name] = entry
    lines = [
        "| claim | figure | dataset | " + " | ".join(name for name, _, _ in columns) + " |",
        "|---" * (len(columns) + 3) + "|",
    ]
    for key in sorted(rows, key=lambda k: (claim_order(k[0]), k[1], k[3], k[2], k[4])):
        claim, _, dataset, _, repeat = key
        entries = [rows[key][name] for name, _, _ in columns if name in rows[key]]
        label = shown_label([entry.get("figure", "") for entry in entries])
        if repeat > 1:
            label = f"{label} #{repeat}"
        # Labelled as every display labels a figure (harness.core.formatting.shown_figure), each scope once.
        scopes = list(dict.fromkeys(p for e in entries for p in (figure_scope(e) or "").split(SCOPE_SEPARATOR) if p))
        if scopes:
            label = f"{label} [{SCOPE_SEPARATOR.join(scopes)}]"
        differing = differing_numbers([entry.get("figure", "") for entry in entries])
        cells = []
        for name, _, _ in columns:
            entry = rows[key].get(name)
            if entry is None:
                cells.append("-")
                continue
            cell = f"{fmt_value(entry.get('measured'), none='None')} {'holds' if entry.get('holds') else '**FAILS**'}"
            if differing:  # the label's '#', in this column's own numbers, in order
                cell += " · # = " + ", ".join(differing[entries.index(entry)])
            if isinstance(entry.get("passes"), int):
                cell += f" · {entry['passes']} passes"
            cells.append(cell)
        lines.append(
            f"| {claim} | {_escape(label)} | {_escape(dataset)} | " + " | ".join(_escape(c) for c in cells) + " |"
        )
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
