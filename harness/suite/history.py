"""What earlier sessions measured: the runs each claim test used and the seconds each run took.

A claims session file (harness.sessions.files) keeps, per claim test, the
run keys it used and, for each run it trained, the seconds it took
(training passes, evaluation, set-up) on the session's machine. Read
newest first, the session files of the profile give:

- the tests' order (`History.test_seconds`): the seconds of each test's
  runs that are not in the store yet, so a session that trains starts its
  longest tests first and its last test does not start alone at the end;
- the time left on the progress line (`Progress`);
- what --claims-collect and --claims-deadline list for a run not trained:
  the seconds it last took and where, or "never measured".

A test's runs come from the newest session that ran it; a run's seconds
from the newest session that trained it. Baseline files (a session file
with a "baseline" entry, committed beside the suite) come after every
session file, so a fresh checkout orders its first session by them.
A test never run with optimizer X but run with Y is estimated (one ratio,
no model): Y's seconds times X's over Y's tuning seconds per pass, both
measured at the tuning scale on one machine (a given-rate optimizer such as
the paper's SGD is timed there by harness.suite.tuning.time_reference). Any other run never trained in a kept
session is "never measured", and the time left says how many of each.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.formatting import fmt_duration
from harness.core.optim import spec_id
from harness.core.store import results_dir
from harness.sessions.compare import replace_optimizer_param, strip_optimizer_param
from harness.sessions.files import SessionError, load_session, numbered_sessions

_same_test = functools.lru_cache(maxsize=4096)(strip_optimizer_param)  # asked of every known test per estimate
SESSIONS_READ = 20  # the newest session files read: older ones add little but their reading time


@dataclass(frozen=True)
class Measured:
    """One run's last measured time: seconds (training, evaluation and set-up) and where it was measured."""

    seconds: float
    machine: str  # "vm (2 CPUs)", "gpu-box (NVIDIA H100 80GB HBM3)"
    source: str  # "session 12", "baseline smoke-cpu.json"
    estimated_from: str = ""  # the optimizer id whose seconds per pass scaled another's time; "" if measured

    def text(self) -> str:
        return f"{fmt_duration(self.seconds)} on {self.machine}, {self.source}"


@dataclass
class History:
    """Per test id, its run keys and optimizer; per run key, its last `Measured` time; `tuning_seconds_per_pass`."""

    tests: dict[str, list[str]] = field(default_factory=dict)
    runs: dict[str, Measured] = field(default_factory=dict)
    optimizers: dict[str, str | None] = field(default_factory=dict)
    per_pass: dict[str, tuple[float, str]] = field(default_factory=dict)

    def add_session(self, session: dict, source: str) -> None:
        """Fill what newer sessions left unknown from `session` (a session file's content)."""
        machine = machine_text(session.get("machine") or {})
        for nodeid, test in (session.get("tests") or {}).items():
            runs = [run for run in test.get("runs") or [] if run.get("key")]
            if nodeid not in self.tests and test.get("outcome") in ("passed", "failed", "xfailed", "xpassed"):
                self.tests[nodeid] = [run["key"] for run in runs]
                self.optimizers[nodeid] = test.get("optimizer")
            for run in runs:
                seconds = run.get("seconds")
                if seconds and run["key"] not in self.runs:
                    self.runs[run["key"]] = Measured(float(sum(seconds.values())), machine, source)

    def to_train(self, nodeids, recorded) -> dict[str, Measured | None]:
        """{run key: its last measured time, or None} of the runs `nodeids` used that `recorded(key)` denies."""
        keys = {}
        for nodeid in nodeids:
            for key in self.tests.get(nodeid, ()):
                if key not in keys and not recorded(key):
                    keys[key] = self.runs.get(key)
            keys.update((key, est) for key, est in self.estimated(nodeid, recorded).items() if key not in keys)
        return keys

    def estimated(self, nodeid: str, recorded) -> dict[str, Measured]:
        """{'<run key>@<optimizer id>': estimate} of a test no session ran, from the same test run with an
        optimizer tuned at the same scale and machine (`per_pass`'s second item); {} where there is none."""
        for spec, (own, where) in self.per_pass.items() if nodeid not in self.tests else ():
            test, name = _same_test(nodeid, spec), spec_id(spec)
            for known, other in self.optimizers.items():
                theirs, their_where = self.per_pass.get(other, (0, None))
                if test != nodeid and where == their_where and _same_test(known, other) == test:
                    # X's runs, not Y's, are the ones to train: that Y's are recorded says nothing of them
                    ratio, runs = own / theirs, [(k, self.runs.get(k)) for k in self.tests[known]]
                    return {f"{k}@{name}": Measured(m.seconds * ratio, m.machine, m.source, name) for k, m in runs if m}
        return {}

    def test_seconds(self, nodeids, recorded) -> dict[str, float]:
        """{test id: seconds of its runs to train}; a test that no session ran is left out (it goes first),
        unless `estimated`: each test is also given under each tuned optimizer (the ids are known before collection).

        A run used by several tests counts for each: whichever starts first trains it.
        """
        seconds, tuned = {}, [spec_id(spec) for spec in self.per_pass]
        for nodeid in dict.fromkeys(
            [*nodeids, *(replace_optimizer_param(n, self.optimizers.get(n), t) for n in nodeids for t in tuned)]
        ):
            if nodeid not in self.tests and not self.estimated(nodeid, recorded):
                continue
            runs = self.to_train([nodeid], recorded)
            seconds[nodeid] = sum(measured.seconds for measured in runs.values() if measured is not None)
        return seconds

    def last_measured(self, key: str) -> str:
        measured = self.runs.get(key)
        return "never measured" if measured is None else f"last took {measured.text()}"


def machine_text(machine: dict) -> str:
    """'vm (2 CPUs)' or 'vm (NVIDIA H100 80GB HBM3)': the session file's machine, in a few words."""
    gpus = machine.get("gpus") or []
    what = ", ".join(sorted(set(gpus))) if gpus else f"{machine.get('cpu_count', '?')} CPUs"
    return f"{machine.get('node', '?')} ({what})"


def read_history(profile: str, baselines=()) -> History:
    """The history of `profile`: its newest session files (SESSIONS_READ), then the baseline files given.

    baselines: paths of session files with a "baseline" entry; those of
    another profile are passed over, as are session files that cannot be read.
    """
    history = History()
    for number, path in reversed(numbered_sessions()[-SESSIONS_READ:]):
        try:
            session = load_session(path)
        except SessionError:
            continue
        if session.get("profile") == profile:
            history.add_session(session, f"session {number}")
    for path in baselines:
        try:
            session = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(session, dict) and session.get("profile") == profile:
            history.add_session(session, f"baseline {Path(path).name}")
    history.per_pass = tuning_seconds_per_pass(results_dir() / "tuning")  # what tuned optimizers take per pass
    return history


def tuning_seconds_per_pass(folder: Path) -> dict[str, tuple[float, str]]:
    """{optimizer spec: (its trials' training seconds over their passes, tuning scale and machine as one string)}
    from the tuning records in `folder`; a record without timed trials, or unreadable, is passed over."""
    found = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            record = json.loads(path.read_text())
            trials = [t for t in record["trials"] if isinstance(t.get("train_seconds"), (int, float)) and t["passes"]]
            stamp = record.get("stamp") or {}
            machine = [stamp.get("gpu") or stamp.get("cpu"), stamp.get("host_platform"), stamp.get("threads")]
            if trials:
                seconds = sum(t["train_seconds"] for t in trials) / sum(t["passes"] for t in trials)
                found[record["optimizer"]] = (seconds, json.dumps([record["scale"], machine], sort_keys=True))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return found


def longest_first(items: list, seconds: dict[str, float], trains=lambda item: True) -> list:
    """`items` (anything with a `nodeid`) by `seconds`, longest first.

    A test no session ran goes first if `trains(item)` (a new claim test, a
    new optimizer's: its runs may be long), else last (a test that trains
    no claim run). Stable: tests with equal seconds keep the order they came
    in, so every xdist worker that sorts the same collection with the same
    seconds gets the same order.
    """

    def key(item) -> float:
        known = seconds.get(item.nodeid)
        return -known if known is not None else (-float("inf") if trains(item) else 0.0)

    return sorted(items, key=key)


@dataclass
class Progress:
    """The line a session prints as each run it trains finishes, with the time left by the history."""

    started: float  # epoch seconds
    workers: int = 1  # runs training side by side: the time left is divided among them
    to_train: dict = field(default_factory=dict)  # run key -> Measured or None: the history's runs to train
    done: set = field(default_factory=set)  # run keys trained so far

    def finished(self, entry: dict, now: float) -> str | None:
        """The line for a run entry (harness.suite.summary.run_entry, with its "label"), or None.

        None for a reused run and for a run already counted (several tests
        use one run; each is counted once, when its first trainer finishes).
        """
        if entry.get("reused") or entry.get("key") in self.done:
            return None
        if entry["key"] not in self.to_train:  # a run of an estimated test (its key unknown) takes one estimate's place
            pending = [k for k, m in self.to_train.items() if k not in self.done and m and m.estimated_from]
            self.to_train.update({entry["key"]: self.to_train.pop(pending[0])} if pending else {})
        self.done.add(entry["key"])
        measured = sum((entry.get("seconds") or {}).values())
        total = len(self.to_train)
        head = f"run {len(self.done)}/{total} done" if len(self.done) <= total else f"run {len(self.done)} done"
        line = (
            f"{head}: {entry.get('label') or entry['key']} ({entry.get('reason')}, {fmt_duration(measured)}); "
            f"elapsed {fmt_duration(now - self.started)}"
        )
        return line + self.left_text()

    def left_text(self) -> str:
        """', about 4.2 min left (by the last measured times; 2 runs never measured)', or '' without a history."""
        left = {key: measured for key, measured in self.to_train.items() if key not in self.done}
        known = [measured.seconds for measured in left.values() if measured is not None]
        unknown = len(left) - len(known)
        if not known and not unknown:
            return ""
        text = f", about {fmt_duration(sum(known) / max(1, self.workers))} left (by the last measured times"
        for name, n in Counter(m.estimated_from for m in left.values() if m and m.estimated_from).items():
            text += f"; {n} run{'s' if n != 1 else ''} estimated from {name}'s seconds per pass"
        return text + (f"; {unknown} run{'s' if unknown != 1 else ''} never measured)" if unknown else ")")
