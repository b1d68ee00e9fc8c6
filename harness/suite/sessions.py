"""Claims sessions on disk: numbering, loading, comparison and its failure rules.

Each claims session is one JSON file, ``RESULTS/sessions/<utc time>-<NNNN>-<profile>.json``:
the profile, a machine stamp (platform, CPU, GPU, torch, CUDA, commit), the
optimizers under test, every claim figure and every test's outcome. The
number NNNN (0001, 0002, ... as in pytest-benchmark) is given under a lock,
so parallel sessions never share one; the time leads the name so that a
listing sorted by name is oldest first.

A baseline is a session file kept elsewhere (``ci/baselines/*.json``), made
from a real session by ``python -m harness sessions baseline``; it is never
written by hand.

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
(``optimizer_identity``: spec -> version and the code fingerprint its run
keys hold), so a comparison says when the code itself changed.

Several sessions make one claims matrix (`harness.suite.matrix.sessions_matrix`: a column per
optimizer of each session) or one CSV file (`export_rows`, `write_csv`: a
row per figure).

Command line: ``python -m harness sessions {list,show,compare,matrix,export,baseline}`` (`harness.suite.sessions_cli`).
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import math
import re
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness.core.formatting import fmt_value
from harness.core.optim import optimizer_identity, spec_id
from harness.core.record import json_value, replace_atomically

REFERENCE_OPTIMIZER = "paper_sgd"  # the paper's SGD: the reference column of every comparison
SESSION_NAME = re.compile(r"^(?P<time>\d{8}T\d{6}Z)-(?P<number>\d{4,})-(?P<profile>[\w-]+)\.json$")
# What makes two sessions "the same machine": hardware and OS, not host names
# (CI runners change them) and not software versions (reported separately).
MACHINE_FIELDS = ("system", "cpu", "cpu_count", "gpu", "gpu_count")
SOFTWARE_FIELDS = ("python", "torch", "torchvision", "numpy", "cuda")


class SessionError(ValueError):
    """A session reference or failure rule that cannot be used."""


class SessionSkippedWarning(UserWarning):
    """A numbered session file that cannot be read was passed over by 'last' (the warning names it)."""


class SessionNotSavedError(OSError):
    """The session file could not be written (a read-only or full results folder); the message says where and why."""


# --- storage -----------------------------------------------------------------


def sessions_dir(root: Path | None = None) -> Path:
    from harness.core.store import results_dir

    return (root or results_dir()) / "sessions"


def numbered_sessions(root: Path | None = None) -> list[tuple[int, Path]]:
    """(number, path) of every numbered session file, by number."""
    folder = sessions_dir(root)
    found = []
    for path in folder.glob("*.json") if folder.is_dir() else ():
        match = SESSION_NAME.match(path.name)
        if match:
            found.append((int(match["number"]), path))
    return sorted(found)


@contextmanager
def _locked(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".number.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_session(summary: dict, root: Path | None = None) -> Path:
    """Write `summary` as the next numbered session; sets summary["number"].

    A summary that lists its optimizers ("optimizers") and does not yet say
    what code they were gets summary["optimizer_identity"] here (see
    `optimizer_identities`), in the process that ran them: the file then
    names the version and code fingerprint behind every figure.

    A folder that cannot be written raises SessionNotSavedError, in one line,
    with summary["number"] left unset: no number is taken by a file that does
    not exist.
    """
    from harness.core.record import write_json_atomic

    if summary.get("optimizers") and "optimizer_identity" not in summary:
        summary["optimizer_identity"] = optimizer_identities(summary["optimizers"])
    folder = sessions_dir(root)
    try:
        with _locked(folder):
            existing = numbered_sessions(root)
            number = existing[-1][0] + 1 if existing else 1
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            path = folder / f"{stamp}-{number:04d}-{summary.get('profile', 'unknown')}.json"
            write_json_atomic(path, plain({**summary, "number": number}))
    except OSError as error:
        reason = error.strerror or str(error)
        raise SessionNotSavedError(
            f"cannot write a session file in {folder} ({reason}); the results folder may be read-only or full"
        ) from None
    summary["number"] = number
    return path


def plain(value):
    """`value` as JSON would give it back (`harness.core.record.json_value`)."""
    return json_value(value)


def resolve_reference(ref: str, root: Path | None = None, *, before: int | None = None) -> Path:
    """The file a reference names: 'last' (newest readable numbered session, older than `before` if given),
    a session number ('3', '0003'), or a path to a session or baseline file.

    'last' passes over a damaged newer file (not JSON, not a session) with a
    `SessionSkippedWarning` naming it, so a broken file never stands in for
    the session before it.
    """
    if ref in ("last", "latest"):
        candidates = [(n, p) for n, p in numbered_sessions(root) if before is None or n < before]
        for _, path in reversed(candidates):
            try:
                _read_session(path)
            except SessionError as error:
                warnings.warn(f"'last' skipped {path.name}: {error}", SessionSkippedWarning, stacklevel=2)
                continue
            return path
        skipped = f" (the {len(candidates)} there cannot be read)" if candidates else ""
        raise SessionError(f"no earlier numbered session under {sessions_dir(root)} to compare with{skipped}")
    if ref.isdigit():
        for number, path in numbered_sessions(root):
            if number == int(ref):
                return path
        raise SessionError(f"no session number {int(ref):04d} under {sessions_dir(root)}")
    path = Path(ref)
    if not path.is_file():
        raise SessionError(f"{ref!r} is neither 'last', a session number, nor a session or baseline file")
    return path


def load_session(ref: str | Path, root: Path | None = None, *, before: int | None = None) -> dict:
    """The session `ref` names (see `resolve_reference`); SessionError when it cannot be read."""
    return _read_session(resolve_reference(str(ref), root, before=before))


def _read_session(path: Path) -> dict:
    try:
        session = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SessionError(f"cannot read session file {path}: {error}") from None
    if not isinstance(session, dict) or "figures" not in session:
        raise SessionError(f"{path} is not a claims session file (no 'figures')")
    session.setdefault("file", str(path))
    return session


def find_reference(
    profile: str, root: Path | None = None, *, before: int | None = None, look_back: int = 50
) -> dict | None:
    """The newest numbered session of `profile` (older than `before`) that ran the paper's SGD."""
    candidates = [(n, p) for n, p in numbered_sessions(root) if before is None or n < before]
    for _, path in reversed(candidates[-look_back:]):
        try:
            session = load_session(path)
        except SessionError:
            continue
        if session.get("profile") == profile and REFERENCE_OPTIMIZER in session_optimizers(session):
            return session
    return None


def make_baseline(session: dict, source: str, note: str | None = None) -> dict:
    """A baseline: the session as measured, plus where it came from. Nothing is edited."""
    baseline = {k: v for k, v in session.items() if k != "file"}
    baseline["baseline"] = {
        "from": source,
        "made": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "optimizers": session_optimizers(session),
        "claims": sorted({f.get("claim", "?") for f in session.get("figures", [])}, key=claim_order),
    }
    if note:
        baseline["baseline"]["note"] = note
    return baseline


# --- identity ----------------------------------------------------------------


def session_optimizers(session: dict) -> list[str]:
    """Optimizer specs of a session; files written before the optimizer plug-in ran only the paper's SGD."""
    return list(session.get("optimizers") or [REFERENCE_OPTIMIZER])


def optimizer_identities(specs) -> dict[str, dict]:
    """{spec: {package, distribution, version, source, files, code}} per optimizer spec (`optim.optimizer_identity`).

    `code` is the fingerprint in the spec's run keys: ``torch 2.4.0`` for a
    built-in, ``lion-pytorch 0.2.2, sha256:...`` (its package's sources and
    version) for an import path, ``unhashable SPEC`` for one that cannot be
    imported here.
    """
    return {spec: optimizer_identity(spec) for spec in dict.fromkeys(specs)}


def session_name(session: dict) -> str:
    """'session 0003' for a numbered session, the file's name for a baseline, else 'unsaved session'."""
    number = session.get("number")
    if number:
        return f"session {int(number):04d}"
    return Path(session["file"]).name if session.get("file") else "unsaved session"


def session_date(session: dict) -> str:
    """When a session ran, as ISO UTC text: its stamp's time, else the time in its file's name (or its
    baseline's source's); "" where neither says."""
    stamp_time = (session.get("stamp") or {}).get("time")
    if stamp_time:
        return str(stamp_time)
    for name in (session.get("file"), (session.get("baseline") or {}).get("from")):
        match = SESSION_NAME.match(Path(name).name) if name else None
        if match:
            return datetime.strptime(match["time"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).isoformat()
    return ""


def entry_optimizer(entry: dict, session: dict) -> str | None:
    """The optimizer spec behind a figure or test, None for claims that train nothing."""
    if "optimizer" in entry:
        return entry["optimizer"]
    # Before the plug-in, every training claim ran the paper's SGD; the theory claims did not exist.
    return REFERENCE_OPTIMIZER if "optimizers" not in session else None


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
    return entry.get("claim", "?"), strip_optimizer_param(entry.get("test", ""), optimizer), label


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


def claim_of_test(nodeid: str) -> str:
    """'C3' for test_c3_..., 'A1' for test_a1_...; '?' when the name does not say."""
    match = re.search(r"::test_([a-z])(\d+)_", nodeid)
    return f"{match[1].upper()}{match[2]}" if match else "?"


def claim_order(claim: str) -> tuple:
    """C1 < C2 < ... < C12 < A1 < ...: the paper's claims, then the appendix's."""
    match = re.fullmatch(r"([A-Z]+)(\d+)", claim)
    if not match:
        return (2, claim, 0)
    return (0 if match[1] == "C" else 1, match[1], int(match[2]))


# --- machines ------------------------------------------------------------------


def machine_of(session: dict) -> dict:
    """Hardware and software identity of the machine a session ran on."""
    stamp = dict(session.get("stamp") or {})
    machine = dict(session.get("machine") or {})
    identity = {
        "system": (stamp.get("host_platform") or "?").split("-")[0],
        "cpu": stamp.get("cpu"),
        "cpu_count": machine.get("cpu_count"),
        "gpu": stamp.get("gpu") or "none",
        "gpu_count": machine.get("gpu_count", 1 if stamp.get("gpu") else 0),
    }
    identity.update({name: stamp.get(name) for name in SOFTWARE_FIELDS})
    return identity


def machine_differences(a: dict, b: dict) -> tuple[list[str], list[str]]:
    """(hardware differences, software differences) between two sessions, as 'field: A vs B'."""
    ma, mb = machine_of(a), machine_of(b)

    def differ(fields):
        return [
            f"{name}: {mb[name]!r} vs {ma[name]!r}"
            for name in fields
            if ma[name] is not None and mb[name] is not None and ma[name] != mb[name]
        ]

    return differ(MACHINE_FIELDS), differ(SOFTWARE_FIELDS)


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


# --- expected failures ---------------------------------------------------------


@dataclass
class ExpectedFailure:
    """One line of an expected-failures file: `optimizer: test-id-glob  # reason`."""

    optimizer: str  # an optimizer id (adam), a full spec (pkg.mod:Opt), a glob of ids, or * for every test
    pattern: str  # test id glob: * and ? are wildcards, everything else (brackets too) is literal
    reason: str
    path: str  # the file and line the entry comes from, for messages
    line: int
    matched: int = 0

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def covers(self, optimizer: str | None) -> bool:
        """Whether the line is about this optimizer (None: a test that trains nothing)."""
        if self.optimizer == "*":
            return True
        if optimizer is None:
            return False
        name = spec_id(optimizer)
        return self.optimizer in (optimizer, name) or bool(_glob(self.optimizer).fullmatch(name))

    def applies(self, nodeid: str, optimizer: str | None) -> bool:
        return self.covers(optimizer) and bool(_glob(self.pattern).fullmatch(nodeid))


class ExpectedFailureWarning(UserWarning):
    """A line of the expected-failures file that matches no collected test."""


def match_expected_failures(entries: list[ExpectedFailure], tests, optimizers) -> tuple[list, list]:
    """The expected failure of each test, and the lines that match none of them.

    `tests`: (test id, optimizer spec or None) pairs; the first line that
    applies to a test is its entry (None where none does), and counts in the
    line's `matched`. The unmatched lines returned are those about an
    optimizer under test (`optimizers`) or about every optimizer (*).
    """
    listed = []
    for nodeid, optimizer in tests:
        entry = next((entry for entry in entries if entry.applies(nodeid, optimizer)), None)
        if entry is not None:
            entry.matched += 1
        listed.append(entry)
    unmatched = [
        entry
        for entry in entries
        if not entry.matched and (entry.optimizer == "*" or any(entry.covers(spec) for spec in optimizers))
    ]
    return listed, unmatched


def _glob(pattern: str) -> re.Pattern:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


def read_expected_failures(path: str | Path) -> list[ExpectedFailure]:
    """Parse an expected-failures file; blank lines and '#' comments are skipped."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise SessionError(f"cannot read expected-failures file {path}: {error}") from None
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        comment = re.search(r"(?:^|\s)#", raw)
        body, reason = (raw[: comment.start()], raw[comment.end() :]) if comment else (raw, "")
        body = body.strip()
        if not body:
            continue
        match = re.fullmatch(r"(?P<optimizer>\S+?):\s+(?P<pattern>\S+)", body)
        if not match:
            raise SessionError(f"{path}:{number}: expected 'optimizer_id: test-id-glob  # reason', got {raw!r}")
        entries.append(
            ExpectedFailure(
                match["optimizer"], match["pattern"], reason.strip() or f"listed in {path}:{number}", str(path), number
            )
        )
    return entries


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
        if (spec_id(identity) if identity else "") != optimizer_id or strip_optimizer_param(nodeid, optimizer) != test:
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


# --- export --------------------------------------------------------------------

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
    (`session_date`); optimizer_*: "" for a claim that trains nothing, and
    version and code "" where the file does not name them (written before
    sessions did); label: the figure's stable identity (`figure_row`: its
    ``key``, else `figure_label`), which lines figures up across sessions;
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


# --- one matrix of several sessions ----------------------------------------------
