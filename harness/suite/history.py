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
Nothing here predicts: a run never trained in a kept session is "never
measured", and the time left says how many such runs it leaves out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.formatting import fmt_duration
from harness.sessions.files import SessionError, load_session, numbered_sessions

SESSIONS_READ = 20  # the newest session files read: older ones add little but their reading time


@dataclass(frozen=True)
class Measured:
    """One run's last measured time: seconds (training, evaluation and set-up) and where it was measured."""

    seconds: float
    machine: str  # "vm (2 CPUs)", "gpu-box (NVIDIA H100 80GB HBM3)"
    source: str  # "session 12", "baseline smoke-cpu.json"

    def text(self) -> str:
        return f"{fmt_duration(self.seconds)} on {self.machine}, {self.source}"


@dataclass
class History:
    """Per test id, the run keys it used; per run key, its last `Measured` time."""

    tests: dict[str, list[str]] = field(default_factory=dict)
    runs: dict[str, Measured] = field(default_factory=dict)

    def add_session(self, session: dict, source: str) -> None:
        """Fill what newer sessions left unknown from `session` (a session file's content)."""
        machine = machine_text(session.get("machine") or {})
        for nodeid, test in (session.get("tests") or {}).items():
            runs = [run for run in test.get("runs") or [] if run.get("key")]
            if nodeid not in self.tests and test.get("outcome") in ("passed", "failed", "xfailed", "xpassed"):
                self.tests[nodeid] = [run["key"] for run in runs]
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
        return keys

    def test_seconds(self, nodeids, recorded) -> dict[str, float]:
        """{test id: seconds of its runs to train}; a test that no session ran is left out (it goes first).

        A run used by several tests counts for each: whichever starts first trains it.
        """
        seconds = {}
        for nodeid in nodeids:
            if nodeid not in self.tests:
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
    return history


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
        return text + (f"; {unknown} run{'s' if unknown != 1 else ''} never measured)" if unknown else ")")
