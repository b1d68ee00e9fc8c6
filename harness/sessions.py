"""Claims sessions on disk: numbering, loading, comparison and its failure rules.

Each claims session is one JSON file, ``RESULTS/sessions/<utc time>-<NNNN>-<profile>.json``:
the profile, a machine stamp (platform, CPU, GPU, torch, CUDA, commit), the
optimizers under test, every claim figure and every test's outcome. The
number NNNN (0001, 0002, ... as in pytest-benchmark) is given under a lock,
so parallel sessions never share one; the time leads the name so that a
listing sorted by name is oldest first.

A baseline is a session file kept elsewhere (``ci/baselines/*.json``), made
from a real session by ``python -m harness.sessions baseline``; it is never
written by hand.

Comparing two sessions matches figures by a stable identity: optimizer, claim,
test id (without the optimizer parameter) and the figure's label, its text
with parenthesised details and anything after a colon removed (those carry
measured values). A claim can name a figure itself with ``key=...`` in
``claim_figure``. Numbers are compared, strings reported. A regression is a
verdict that flips from holds to FAILS, or a figure that moves past the
tolerance of a failure rule ``CLAIM:TOLERANCE`` (``C3:50%`` relative,
``C2:0.01`` absolute, ``*:...`` every claim).

Command line: ``python -m harness.sessions {list,show,matrix,compare,baseline}``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .formatting import fmt_value
from .optim import spec_id

REFERENCE_OPTIMIZER = "paper_sgd"  # the paper's SGD: the reference column of every comparison
SESSION_NAME = re.compile(r"^(?P<time>\d{8}T\d{6}Z)-(?P<number>\d{4,})-(?P<profile>[\w-]+)\.json$")
# What makes two sessions "the same machine": hardware and OS, not host names
# (CI runners change them) and not software versions (reported separately).
MACHINE_FIELDS = ("system", "cpu", "cpu_count", "gpu", "gpu_count")
SOFTWARE_FIELDS = ("python", "torch", "torchvision", "numpy", "cuda")


class SessionError(ValueError):
    """A session reference or failure rule that cannot be used."""


class SessionNotSavedError(OSError):
    """The session file could not be written (a read-only or full results folder); the message says where and why."""


# --- storage -----------------------------------------------------------------


def sessions_dir(root: Path | None = None) -> Path:
    from .store import results_dir

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

    A folder that cannot be written raises SessionNotSavedError, in one line,
    with summary["number"] left unset: no number is taken by a file that does
    not exist.
    """
    from .store import write_json_atomic

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
    """`value` as JSON would give it back: numpy scalars become numbers, other objects strings."""
    return json.loads(json.dumps(value, default=_jsonable))


def _jsonable(value):
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) else str(value)


def resolve_reference(ref: str, root: Path | None = None, *, before: int | None = None) -> Path:
    """The file a reference names: 'last' (newest numbered session, older than `before` if given),
    a session number ('3', '0003'), or a path to a session or baseline file."""
    if ref in ("last", "latest"):
        candidates = [(n, p) for n, p in numbered_sessions(root) if before is None or n < before]
        if not candidates:
            raise SessionError(f"no earlier numbered session under {sessions_dir(root)} to compare with")
        return candidates[-1][1]
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
    path = resolve_reference(str(ref), root, before=before)
    try:
        session = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SessionError(f"cannot read session file {path}: {error}") from None
    if not isinstance(session, dict) or "figures" not in session:
        raise SessionError(f"{path} is not a claims session file (no 'figures')")
    session.setdefault("file", str(path))
    return session


def find_reference(profile: str, root: Path | None = None, *, before: int | None = None,
                   look_back: int = 50) -> dict | None:
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
    if not optimizer or not nodeid.endswith("]") or "[" not in nodeid:
        return nodeid
    head, _, params = nodeid[:-1].partition("[")
    name = spec_id(optimizer)
    if params == name:
        return head
    if params.startswith(f"{name}-"):
        rest = params[len(name) + 1 :]
    elif params.endswith(f"-{name}"):
        rest = params[: -len(name) - 1]
    elif f"-{name}-" in params:
        rest = params.replace(f"-{name}-", "-", 1)
    else:
        return nodeid
    return f"{head}[{rest}]"


def figure_row(entry: dict, session: dict) -> tuple[str, str, str]:
    """(claim, test id without optimizer, label): a figure's identity across optimizers and sessions."""
    optimizer = entry_optimizer(entry, session)
    label = entry.get("key") or figure_label(entry.get("figure", ""))
    return entry.get("claim", "?"), strip_optimizer_param(entry.get("test", ""), optimizer), label


def indexed_figures(session: dict) -> dict[tuple, dict]:
    """{(optimizer id, claim, test, label): figure}; a repeated identity gets ' #2', ' #3'."""
    index: dict[tuple, dict] = {}
    for entry in session.get("figures", []):
        optimizer = entry_optimizer(entry, session)
        claim, test, label = figure_row(entry, session)
        key = (spec_id(optimizer) if optimizer else "", claim, test, label)
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
        return [f"{name}: {mb[name]!r} vs {ma[name]!r}" for name in fields
                if ma[name] is not None and mb[name] is not None and ma[name] != mb[name]]

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
    unmatched = [entry for entry in entries if not entry.matched
                 and (entry.optimizer == "*" or any(entry.covers(spec) for spec in optimizers))]
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
        entries.append(ExpectedFailure(match["optimizer"], match["pattern"],
                                       reason.strip() or f"listed in {path}:{number}", str(path), number))
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


def compare(current: dict, baseline: dict, rules: list[FailRule] | tuple = ()) -> Comparison:
    """Figures of `current` against `baseline`, matched by identity; regressions flagged."""
    name = baseline.get("file") or f"session {baseline.get('number', '?')}"
    result = Comparison(baseline_name=str(name))
    result.hardware, software = machine_differences(current, baseline)
    if software:
        result.notes.append("software differs: " + "; ".join(software))
    if current.get("profile") != baseline.get("profile"):
        result.hardware.insert(0, f"profile: {baseline.get('profile')!r} vs {current.get('profile')!r}")
    before_index, after_index = indexed_figures(baseline), indexed_figures(current)
    compared_optimizers = {key[0] for key in before_index} & {key[0] for key in after_index}
    only_new = sorted({key[0] for key in after_index} - {key[0] for key in before_index} - {""})
    for optimizer in only_new:
        count = sum(key[0] == optimizer for key in after_index)
        result.notes.append(f"{count} figures of {optimizer} have no baseline (the baseline did not run it)")
    for key in sorted(set(before_index) | set(after_index), key=lambda k: (claim_order(k[1]), k)):
        before, after = before_index.get(key), after_index.get(key)
        if key[0] in only_new:
            continue
        if after is None:
            if key[0] in compared_optimizers:
                result.rows.append(Row(key, before, None, "missing"))
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
    return result


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
    lines.append(f"against {result.baseline_name}: "
                 + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) if counts else
                 f"against {result.baseline_name}: no figures in common")
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


# --- command line --------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.sessions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-dir", type=Path, default=None, help="default $HARNESS_RESULTS_DIR")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="numbered sessions: number, profile, optimizers, exit status")
    show = commands.add_parser("show", help="one session's figures")
    show.add_argument("ref", nargs="?", default="last")
    matrix = commands.add_parser("matrix", help="the claims matrix (Markdown) of a session")
    matrix.add_argument("ref", nargs="?", default="last")
    matrix.add_argument("--reference", default=None, help="session or baseline supplying paper_sgd if the session lacks it")
    comp = commands.add_parser("compare", help="figure deltas of a session against a baseline; exit 1 on a regression")
    comp.add_argument("ref", help="the session: 'last', a number, or a file")
    comp.add_argument("baseline", help="the baseline: a number or a file")
    comp.add_argument("--fail", action="append", default=[], metavar="CLAIM:TOL", help="failure rule, repeatable")
    comp.add_argument("--all", action="store_true", help="list unchanged figures too")
    base = commands.add_parser("baseline", help="copy a real session into a baseline file")
    base.add_argument("ref", help="the session: 'last', a number, or a file")
    base.add_argument("out", type=Path)
    base.add_argument("--note", default=None, help="what the baseline covers, kept in the file")
    args = parser.parse_args(argv)
    root = args.results_dir
    try:
        if args.command == "list":
            return _list_sessions(root)
        if args.command == "show":
            session = load_session(args.ref, root)
            for entry in sorted(session["figures"], key=lambda e: (claim_order(e.get("claim", "")), e.get("test", ""))):
                verdict = "holds" if entry.get("holds") else "FAILS"
                print(f"{entry.get('claim', '?'):<4} {verdict:<6} {entry.get('figure')}: {fmt_value(entry.get('measured'))}"
                      f"  [{entry.get('threshold')}]")
            return 0
        if args.command == "matrix":
            from .matrix import claims_matrix

            reference = load_session(args.reference, root) if args.reference else None
            print(claims_matrix(load_session(args.ref, root), reference=reference))
            return 0
        if args.command == "compare":
            rules = [parse_fail_rule(text) for text in args.fail]
            result = compare(load_session(args.ref, root), load_session(args.baseline, root), rules)
            print("\n".join(format_comparison(result, all_rows=args.all)))
            return 1 if result.regressions else 0
        if args.command == "baseline":
            path = resolve_reference(args.ref, root)
            session = load_session(path)
            from .store import write_json_atomic

            source = str(path) if not path.is_absolute() else path.name  # no machine paths in a committed file
            write_json_atomic(args.out, make_baseline(session, source=source, note=args.note))
            print(f"baseline {args.out} from {path.name}: {len(session['figures'])} figures")
            return 0
    except SessionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 2


def _list_sessions(root: Path | None) -> int:
    """One line per numbered session; a file that cannot be read is skipped with a warning on stderr."""
    for number, path in numbered_sessions(root):
        try:
            session = load_session(path)
        except SessionError as error:
            print(f"warning: skipped {path.name}: {error}; remove it, or restore it from a copy", file=sys.stderr)
            continue
        optimizers = ", ".join(spec_id(s) for s in session_optimizers(session))
        print(f"{number:04d}  {session.get('profile')}  exit {session.get('exit_status')}  "
              f"{len(session.get('figures', []))} figures  [{optimizers}]  {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
