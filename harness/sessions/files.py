"""Claims sessions on disk: numbering, loading, baselines, and what a session says of itself.

Each claims session is one JSON file, ``RESULTS/sessions/<utc time>-<NNNN>-<profile>.json``:
the profile, a machine stamp (platform, CPU, GPU, torch, CUDA, commit), the
optimizers under test, every claim figure and every test's outcome. The
number NNNN (0001, 0002, ... as in pytest-benchmark) is given under a lock,
so parallel sessions never share one; the time leads the name so that a
listing sorted by name is oldest first.

A baseline is a session file kept elsewhere (``ci/baselines/*.json``), made
from a real session by ``python -m harness sessions baseline``; it is never
written by hand.

A session file names the code of each optimizer it ran
(``optimizer_identity``: spec -> version and the code fingerprint its run
keys hold), so a comparison (`harness.sessions.compare`) says when the code
itself changed.

Several sessions make one claims matrix (`harness.suite.matrix.sessions_matrix`: a column per
optimizer of each session) or one CSV file (`harness.sessions.export`: a row per figure).

Command line: ``python -m harness sessions {list,show,compare,matrix,export,baseline}`` (`harness.suite.sessions_cli`).
"""

from __future__ import annotations

import fcntl
import json
import re
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from harness.core.optim import optimizer_identity
from harness.core.record import json_value

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
    """{spec: {package, distribution, version, source, files, code, imports}} per optimizer spec
    (`optim.optimizer_identity`).

    `code` is the fingerprint in the spec's run keys: ``torch 2.4.0`` for a
    built-in, ``lion-pytorch 0.2.2, sha256:...`` (its package's sources and
    version, then ``, imports sha256:...`` over the packages they import) for
    an import path, ``unhashable SPEC`` for one that cannot be imported here.
    `imports`: the packages an import path's sources import, each with its
    distribution, version and code digest (harness.core.optimizer_source).
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
