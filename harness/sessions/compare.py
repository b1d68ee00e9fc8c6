"""Comparison of two claims sessions, figure by figure, and its failure rules.

Comparing two sessions matches figures by a stable identity: optimizer, claim,
test id (without the optimizer parameter) and the figure's label, its text
with parenthesised details and anything after a colon removed (those carry
measured values). A claim can name a figure itself with ``key=...`` in
``claim_figure``. Numbers are compared, strings reported. A regression is a
verdict that flips from holds to FAILS, or a figure that moves past the
tolerance of a failure rule ``CLAIM:TOLERANCE`` (``C3:50%`` relative,
``C2:0.01`` absolute, ``*:...`` every claim). Two specs of one optimizer
(``pkg:Lion`` against ``pkg:Lion(lr=1e-4)``) have different ids; an
``as_optimizer`` pair lines the figures of one up with the other's.

A session file names the code of each optimizer it ran
(``optimizer_identity``, `harness.sessions.files.optimizer_identities`), so a
comparison says when the code itself changed.

The session files themselves (numbering, loading, machines) are `harness.sessions.files`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from harness.core.formatting import fmt_value
from harness.core.optim import spec_id
from harness.sessions.files import (
    SessionError,
    claim_order,
    entry_optimizer,
    machine_differences,
    session_optimizers,
)

# --- figure identity -----------------------------------------------------------


def figure_label(text: str) -> str:
    """The stable part of a figure's text.

    Parenthesised details go (data source, chance level, per-seed values);
    after the first colon, which separates a figure's name from values it
    quotes, every number becomes '#': 'passes to fit, seed 0: true 27,
    random 30' is 'passes to fit, seed 0: true #, random #'.
    """
    label, previous = str(text), None
    while previous != label:
        previous, label = label, re.sub(r"\([^()]*\)", "", label)
    head, colon, tail = label.partition(":")
    tail = re.sub(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", "#", tail)
    label = head + colon + tail
    return re.sub(r"\s+", " ", re.sub(r"\s+([,:])", r"\1", label)).strip(" ,:")


def strip_optimizer_param(nodeid: str, optimizer: str | None) -> str:
    """The test id with the optimizer's parameter removed, so figures of two optimizers line up."""
    return replace_optimizer_param(nodeid, optimizer, None)


def replace_optimizer_param(nodeid: str, optimizer: str | None, replacement: str | None) -> str:
    """The test id with the optimizer's parameter (its spec id) replaced by `replacement`, or removed if None.

    ``c.py::t[mlp_1x512-adam]`` with ``adam`` -> ``c.py::t[mlp_1x512-X]``; a
    test id without the optimizer's parameter is returned unchanged.
    """
    if not optimizer or not nodeid.endswith("]") or "[" not in nodeid:
        return nodeid
    head, _, params = nodeid[:-1].partition("[")
    name = spec_id(optimizer)
    if params == name:
        return head if replacement is None else f"{head}[{replacement}]"
    if params.startswith(f"{name}-"):
        rest = params[len(name) + 1 :]
        params = rest if replacement is None else f"{replacement}-{rest}"
    elif params.endswith(f"-{name}"):
        rest = params[: -len(name) - 1]
        params = rest if replacement is None else f"{rest}-{replacement}"
    elif f"-{name}-" in params:
        params = params.replace(f"-{name}-", "-" if replacement is None else f"-{replacement}-", 1)
    else:
        return nodeid
    return f"{head}[{params}]"


def figure_row(entry: dict, session: dict) -> tuple[str, str, str]:
    """(claim, test id without optimizer, label): a figure's identity across optimizers and sessions."""
    optimizer = entry_optimizer(entry, session)
    label = entry.get("key") or figure_label(entry.get("figure", ""))
    return entry.get("claim", "?"), strip_optimizer_param(claims_test_id(entry.get("test", "")), optimizer), label


# A claim test's file and test, after whatever folder the session saw it in: claims/ in the repository,
# none or a site-packages path ending in harness_claims/ where the claims are installed.
_CLAIM_TEST = re.compile(r"^(?:(?:.*/)?(?:claims|harness_claims)/)?(test_[^/]+\.py::.+)$")


def claims_test_id(nodeid: str) -> str:
    """A claim test's id as the repository names it (``claims/test_c01_...py::...``), whether the session ran the
    repository's claims/ or the installed harness_claims (whose ids start at the file), so the two compare."""
    match = _CLAIM_TEST.match(nodeid)
    return f"claims/{match[1]}" if match else nodeid


def indexed_figures(session: dict, as_optimizer: dict[str, str] | None = None) -> dict[tuple, dict]:
    """{(optimizer id, claim, test, label): figure}; a repeated identity gets ' #2', ' #3'.

    as_optimizer: {spec of this session: spec whose id its figures take}, so
    that they line up with another session's figures of that spec. A spec
    whose id another one takes, and that is not renamed itself, is left out
    (two sets of figures under one id would not line up).
    """
    renamed = as_optimizer or {}
    displaced = set(renamed.values()) - set(renamed)
    index: dict[tuple, dict] = {}
    for entry in session.get("figures", []):
        optimizer = entry_optimizer(entry, session)
        if optimizer in displaced:
            continue
        claim, test, label = figure_row(entry, session)
        identity = renamed.get(optimizer, optimizer)
        key = (spec_id(identity) if identity else "", claim, test, label)
        repeat = 2
        while key in index:
            key = (key[0], claim, test, f"{label} #{repeat}")
            repeat += 1
        index[key] = entry
    return index


# --- failure rules -------------------------------------------------------------


@dataclass(frozen=True)
class FailRule:
    """`selector:tolerance`: a figure of a selected claim that moves further fails the session."""

    selector: str  # a claim ("C3", any case) or "*" for every claim
    tolerance: float  # a fraction of the baseline's magnitude if relative, else in the figure's unit
    relative: bool
    text: str

    def selects(self, claim: str) -> bool:
        return self.selector == "*" or self.selector.upper() == claim.upper()

    def exceeded(self, before: float, after: float) -> bool:
        change = abs(after - before)
        if self.relative:
            if before == 0:
                return change > 0
            return change / abs(before) > self.tolerance
        return change > self.tolerance


def parse_fail_rule(text: str) -> FailRule:
    """'C3:50%' (relative), 'C2:0.01' (absolute), '*:10%' (every claim), '10%' (= '*:10%')."""
    selector, _, tolerance = text.strip().rpartition(":")
    selector = selector.strip() or "*"
    tolerance = tolerance.strip()
    relative = tolerance.endswith("%")
    try:
        value = float(tolerance[:-1] if relative else tolerance)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0 or not re.fullmatch(r"\*|[A-Za-z][\w.-]*", selector):
        raise SessionError(
            f"bad failure rule {text!r}: expected CLAIM:TOLERANCE, e.g. C3:50% (relative) or C2:0.01 "
            "(absolute), CLAIM a claim id such as C3 or * for every claim"
        )
    return FailRule(selector, value / 100 if relative else value, relative, text.strip())


# --- comparison ----------------------------------------------------------------


@dataclass
class Row:
    key: tuple  # (optimizer id, claim, test, label)
    before: dict | None  # the baseline's figure
    after: dict | None  # this session's figure
    status: str  # same, changed, new, missing, flipped, fixed
    delta: float | None = None
    regression: str | None = None  # why this row fails the session


@dataclass
class Comparison:
    baseline_name: str
    rows: list[Row] = field(default_factory=list)
    hardware: list[str] = field(default_factory=list)  # loud: numbers from different machines
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        return [row for row in self.rows if row.regression]


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def parse_optimizer_pair(text: str) -> tuple[str, str]:
    """'SPEC_A=SPEC_B' -> (SPEC_A, SPEC_B), split at the '=' outside parentheses and quotes.

    ``pkg:Lion(lr=1e-4)=pkg:Lion`` -> (``pkg:Lion(lr=1e-4)``, ``pkg:Lion``).
    Raises SessionError for text with no such '=' or an empty side.
    """
    depth, quote = 0, None
    for position, character in enumerate(text):
        if quote:
            quote = None if character == quote else quote
        elif character in "'\"":
            quote = character
        elif character in "([{":
            depth += 1
        elif character in ")]}":
            depth -= 1
        elif character == "=" and depth == 0:
            first, second = text[:position].strip(), text[position + 1 :].strip()
            if first and second:
                return first, second
            break
    raise SessionError(
        f"bad optimizer pair {text!r}: expected SPEC_A=SPEC_B, e.g. 'pkg:Lion(lr=1e-4)=pkg:Lion' "
        "(the session's optimizer, then the baseline's it is compared with)"
    )


def _spec_named(name: str, session: dict, side: str) -> str:
    """The spec of `session` that `name` names (the spec itself or its id); SessionError naming the choices."""
    specs = session_optimizers(session)
    found = [spec for spec in specs if name == spec] or [spec for spec in specs if name == spec_id(spec)]
    if len(found) != 1:
        problem = "names none" if not found else f"names {len(found)}"
        raise SessionError(
            f"optimizer {name!r} {problem} of the {side}'s optimizers ({', '.join(specs)}); "
            "give one of them, as its spec or its id"
        )
    return found[0]


def optimizer_pairs(as_optimizer: dict[str, str], current: dict, baseline: dict) -> dict[str, str]:
    """{current spec: baseline spec} from names given by spec or id (``Lion(lr=0.0001)``: ``Lion``).

    Raises SessionError for a name that is not one of its session's optimizers.
    """
    return {_spec_named(a, current, "session"): _spec_named(b, baseline, "baseline") for a, b in as_optimizer.items()}


def compare(
    current: dict, baseline: dict, rules: list[FailRule] | tuple = (), as_optimizer: dict[str, str] | None = None
) -> Comparison:
    """Figures of `current` against `baseline`, matched by identity; regressions flagged.

    as_optimizer: {optimizer of `current`: optimizer of `baseline`}, each by
    spec or id: the first's figures are compared with the second's (two specs
    of one optimizer, ``Lion(lr=1e-4)`` against ``Lion``). Their rows name the
    optimizer ``BASELINE_ID -> CURRENT_ID``. Raises SessionError for a name
    that is not one of its session's optimizers.
    """
    name = baseline.get("file") or f"session {baseline.get('number', '?')}"
    result = Comparison(baseline_name=str(name))
    result.hardware, software = machine_differences(current, baseline)
    if software:
        result.notes.append("software differs: " + "; ".join(software))
    if current.get("profile") != baseline.get("profile"):
        result.hardware.insert(0, f"profile: {baseline.get('profile')!r} vs {current.get('profile')!r}")
    pairs = optimizer_pairs(as_optimizer or {}, current, baseline)
    for spec in sorted(set(pairs.values()) - set(pairs)):
        if spec in session_optimizers(current):
            result.notes.append(
                f"{spec_id(spec)} of this session is left out: "
                f"{', '.join(spec_id(a) for a, b in pairs.items() if b == spec)} takes its place"
            )
    result.notes += _code_changes(current, baseline, pairs)
    before_index, after_index = indexed_figures(baseline), indexed_figures(current, pairs)
    renamed_away = {spec_id(spec) for spec, other in pairs.items() if spec != other}
    only_new = sorted({key[0] for key in after_index} - {key[0] for key in before_index} - {""})
    for optimizer in only_new:
        count = sum(key[0] == optimizer for key in after_index)
        result.notes.append(f"{count} figures of {optimizer} have no baseline (the baseline did not run it)")
    for key in sorted(set(before_index) | set(after_index), key=lambda k: (claim_order(k[1]), k)):
        before, after = before_index.get(key), after_index.get(key)
        if key[0] in only_new:
            continue
        if after is None and key[0] in renamed_away:
            continue  # this session's figures of that spec are compared under another's name
        if after is None:
            # Not measured is never "same": a figure the baseline has and this session lacks fails the comparison.
            why = _absence(key, current, pairs)
            result.rows.append(Row(key, before, None, "missing", regression=f"absent from this session ({why})"))
            continue
        if before is None:
            result.rows.append(Row(key, None, after, "new"))
            continue
        row = Row(key, before, after, "same")
        x, y = _number(before.get("measured")), _number(after.get("measured"))
        if x is not None and y is not None:
            row.delta = y - x
            # Rounding (float32 against float64 arithmetic) is not a change.
            if not math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-12):
                row.status = "changed"
            broken = [rule.text for rule in rules if rule.selects(key[1]) and rule.exceeded(x, y)]
            if broken:
                row.regression = f"moved past {', '.join(broken)}"
        elif before.get("measured") != after.get("measured"):
            row.status = "changed"
        if before.get("holds") and not after.get("holds"):
            row.status, row.regression = "flipped", "verdict flip: holds -> FAILS"
        elif not before.get("holds") and after.get("holds"):
            row.status = "fixed"
        result.rows.append(row)
    compared_claims = {row.key[1] for row in result.rows if row.before and row.after}
    for rule in rules:
        if not any(rule.selects(claim) for claim in compared_claims):
            result.notes.append(f"failure rule {rule.text} selects no figure present in both sessions")
    shown = {spec_id(b): f"{spec_id(b)} -> {spec_id(a)}" for a, b in pairs.items() if spec_id(a) != spec_id(b)}
    for row in result.rows:  # name both specs a row compares: the id alone is the baseline's
        if row.key[0] in shown:
            row.key = (shown[row.key[0]], *row.key[1:])
    return result


def reason_of_test(entry: dict) -> str:
    """A session file's test entry: its skip reason or failure message, without pytest's "Skipped: " prefix."""
    return str(entry.get("reason") or entry.get("message") or "").removeprefix("Skipped: ")


def _absence(key: tuple, current: dict, pairs: dict[str, str]) -> str:
    """Why the session `current` has no figure under `key` (optimizer id, claim, test, label), in a phrase."""
    optimizer_id, _, test, _ = key
    for nodeid, entry in (current.get("tests") or {}).items():
        optimizer = entry.get("optimizer")
        identity = pairs.get(optimizer, optimizer)
        same_test = strip_optimizer_param(claims_test_id(nodeid), optimizer) == test
        if (spec_id(identity) if identity else "") != optimizer_id or not same_test:
            continue
        outcome = entry.get("outcome", "ran")
        detail = reason_of_test(entry)
        return f"its test {outcome}" + (f": {' '.join(str(detail).split())[:160]}" if detail else "")
    if optimizer_id and optimizer_id not in {spec_id(pairs.get(s, s)) for s in session_optimizers(current)}:
        return f"{optimizer_id} did not run"
    return "its test did not run, or declared no such figure"


def _code_changes(current: dict, baseline: dict, pairs: dict[str, str]) -> list[str]:
    """A note for each optimizer compared whose code (version or sources) differs between the two sessions.

    Only where both sessions name it (``optimizer_identity``) and could read
    it: files written before sessions named their code, and specs that could
    not be imported where they ran (``unhashable SPEC``), say nothing.
    """
    before, after = baseline.get("optimizer_identity") or {}, current.get("optimizer_identity") or {}
    notes = []
    for spec in session_optimizers(current):
        other = pairs.get(spec, spec)
        old, new = (before.get(other) or {}).get("code"), (after.get(spec) or {}).get("code")
        unread = any(code.startswith("unhashable") for code in (old or "", new or ""))  # says nothing of the code
        if old and new and old != new and not unread:
            notes.append(
                f"code of {spec_id(spec)} differs: {old} in the baseline, {new} now; its deltas include that change"
            )
    return notes


def format_comparison(result: Comparison, *, all_rows: bool = False) -> list[str]:
    """Text lines: warnings first, then one line per figure that is not unchanged (all with all_rows)."""
    lines = []
    if result.hardware:
        lines.append("!" * 78)
        lines.append(f"!! WARNING: comparing across different machines or profiles with {result.baseline_name}:")
        lines.extend(f"!!   {difference}" for difference in result.hardware)
        lines.append("!! Deltas below mix hardware differences with code changes; read them as such.")
        lines.append("!" * 78)
    lines.extend(f"note: {note}" for note in result.notes)
    counts: dict[str, int] = {}
    for row in result.rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    lines.append(
        f"against {result.baseline_name}: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        if counts
        else f"against {result.baseline_name}: no figures in common"
    )
    for row in result.rows:
        if row.status == "same" and not all_rows:
            continue
        optimizer, claim, test, label = row.key
        verdicts = "->".join(("holds" if f.get("holds") else "FAILS") for f in (row.before, row.after) if f)
        values = f"{fmt_value((row.before or {}).get('measured'))} -> {fmt_value((row.after or {}).get('measured'))}"
        delta = ""
        if row.delta is not None and row.status != "same":
            base = _number(row.before.get("measured"))
            percent = f", {row.delta / abs(base):+.1%}" if base else ""
            delta = f" (delta {row.delta:+.4g}{percent})"
        flag = f"  REGRESSION: {row.regression}" if row.regression else ""
        where = f" <{optimizer}>" if optimizer else ""
        lines.append(f"{claim:<4} {row.status:<8} {label}{where}: {values}{delta} [{verdicts}]{flag}")
    if result.regressions:
        lines.append(f"{len(result.regressions)} regression(s) against {result.baseline_name}")
    return lines
