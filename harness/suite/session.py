"""One claims session's state: the options as read once, what the controller gathers, what workers are sent.

`ClaimsSession.from_config` reads every option of harness.suite.options
(a bad value is pytest's usage error, before anything trains) and lives in
``config.stash[SESSION]``; xdist workers get the controller's choices (tuned
learning rates, the session's start, the deadline, the tests' order) in one
worker-input entry (`worker_input`, `from_worker_input`), so every process
trains to the same settings.

Runs not started (`before_training`): under --claims-deadline a run that
would start after the deadline, under --claims-collect every run not
recorded, skips its test with the reason; the controller lists them at the
end with the seconds they last took (harness.suite.history) and the session
exits 2 (interrupted): its verdicts are incomplete, which a script must not
read as every claim holding. The same command run again reuses the records.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

import pytest
import torch

from harness.core.config import get_profile
from harness.core.optim import OptimizerSpecError, resolve
from harness.sessions.compare import parse_fail_rule
from harness.sessions.expected import read_expected_failures
from harness.sessions.files import SessionError, load_session
from harness.suite import tuning
from harness.suite.summary import SessionRecord

SESSION = pytest.StashKey["ClaimsSession"]()
WORKER_INPUT = "harness_claims_session"
NOT_STARTED_PROPERTY = "claims_run_not_started"  # a run a test did not train (deadline, collect), in its report

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text: str) -> float:
    """Seconds in '90', '90s', '9m', '1.5h', '1h30m', '2m30s' (h, m, s; a bare number alone is seconds).

    Raises ValueError for anything else: empty, negative, units out of
    order, or a number without its unit after another ('1h30').
    """
    cleaned = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
        return float(cleaned)
    match = _DURATION.fullmatch(cleaned)
    if not cleaned or match is None or not any(match.groups()):
        raise ValueError(f"--claims-deadline takes a duration such as 90s, 9m or 1h30m, not {text!r}")
    hours, minutes, seconds = (float(group) if group else 0.0 for group in match.groups())
    return hours * 3600.0 + minutes * 60.0 + seconds


@dataclass
class ClaimsSession:
    """What a claims session needs to know and what its controller gathers (see the module's docstring)."""

    profile: object  # harness.core.config.Profile
    device: str
    optimizers: list[str]
    started: float  # epoch seconds
    fresh_since: float | None = None  # --claims-fresh: the session's start, the identity of its records
    deadline: float | None = None  # --claims-deadline: epoch seconds after which no run starts
    collect: bool = False  # --claims-collect: no run trains
    tuned_lr: dict = field(default_factory=dict)  # optimizer spec -> lr chosen by --tune-lr
    tuning: dict = field(default_factory=dict)  # --tune-lr's entries, for the session file
    tune_grid: list = field(default_factory=list)
    expected_failures: list = field(default_factory=list)
    fail_rules: list = field(default_factory=list)
    test_seconds: dict = field(default_factory=dict)  # test id -> seconds of its runs to train (the order)
    # controller only
    record: SessionRecord = field(default_factory=SessionRecord)
    not_started: dict = field(default_factory=dict)  # run key -> {"label", "why"}
    history: object = None  # harness.suite.history.History, where the order or a listing needed it
    progress: object = None  # harness.suite.history.Progress
    unmeasured: dict = field(default_factory=dict)
    end: object = None  # harness.suite.summary.SessionEnd, once saved

    @classmethod
    def from_config(cls, config) -> ClaimsSession:
        """Read and check the options (pytest.UsageError for a bad one); a worker takes the controller's choices."""
        option = config.getoption
        name = option("--profile")
        profile = get_profile(("paper" if torch.cuda.is_available() else "smoke") if name == "auto" else name)
        device = option("--device") or profile.base.get("device", "cpu")
        workerinput = getattr(config, "workerinput", None)
        try:
            session = cls(
                profile=profile,
                device=device,
                optimizers=_optimizer_specs(option("--optimizer"), device),
                started=time.time(),
                collect=option("--claims-collect"),
                tune_grid=tuning.parse_grid(option("--tune-lr-grid") or ",".join(map(str, tuning.GRID))),
                expected_failures=read_expected_failures(option("--claims-xfail")) if option("--claims-xfail") else [],
                fail_rules=[parse_fail_rule(text) for text in option("--claims-compare-fail")],
            )
            reference = option("--claims-compare")
            if reference and reference not in ("last", "latest") and not workerinput:
                load_session(reference)  # a wrong number or file stops the run before anything trains
            deadline = option("--claims-deadline")
            if deadline is not None:
                session.deadline = session.started + parse_duration(deadline)
        except (ValueError, SessionError) as error:
            raise pytest.UsageError(str(error)) from None
        if session.fail_rules and not reference:
            raise pytest.UsageError(
                "--claims-compare-fail needs --claims-compare=REF (a session number or a baseline file)"
            )
        if option("--claims-fresh"):
            if deadline is not None or session.collect:
                raise pytest.UsageError(
                    "--claims-fresh retrains every run: with --claims-deadline each sitting would retrain the runs "
                    "of the one before, and --claims-collect trains nothing; give a fresh --results-dir instead"
                )
            session.fresh_since = session.started
        precision = option("--convnet-precision")
        if precision not in (None, "fp32") and not device.startswith("cuda"):
            raise pytest.UsageError(
                f"--convnet-precision {precision} is a GPU setting; the claim runs here train on {device}"
            )
        if workerinput:
            session.from_worker_input(workerinput[WORKER_INPUT])
        return session

    def worker_input(self) -> dict:
        """The controller's choices every xdist worker works to (plain values: they travel by execnet)."""
        return {
            "tuned_lr": dict(self.tuned_lr),
            "fresh_since": self.fresh_since,
            "deadline": self.deadline,
            "test_seconds": dict(self.test_seconds),
        }

    def from_worker_input(self, given: dict) -> None:
        self.tuned_lr = dict(given["tuned_lr"])
        self.fresh_since, self.deadline = given["fresh_since"], given["deadline"]
        self.test_seconds = dict(given["test_seconds"])

    def before_training(self, item, label: str):
        """The store's hook (harness.core.runner.cached_fit) for a run of `item`: None, or one that refuses it.

        Called with the run's key once no record answers: under
        --claims-collect, or past --claims-deadline, it skips `item` with
        the reason and notes the run in the item's report.
        """
        if not self.collect and self.deadline is None:
            return None

        def refuse(key: str) -> None:
            if self.collect:
                why = "not recorded (--claims-collect trains nothing)"
            elif time.time() >= self.deadline:
                why = f"not started: past the deadline ({_clock(self.deadline)}, --claims-deadline)"
            else:
                return
            item.user_properties.append((NOT_STARTED_PROPERTY, {"key": key, "label": label, "why": why}))
            pytest.skip(f"run {label} {why}")

        return refuse

    def note_not_started(self, report) -> None:
        for name, value in report.user_properties:
            if name == NOT_STARTED_PROPERTY:
                self.not_started.setdefault(value["key"], value)

    def not_started_lines(self) -> list[str]:
        """The terminal section's lines: each run not trained, with the seconds it last took and where."""
        count = len(self.not_started)
        what = "not recorded" if self.collect else "not started before the deadline"
        lines = [
            f"{count} run{'s' if count != 1 else ''} {what}; their tests skipped and the session exits 2. "
            "The same command without "
            f"{'--claims-collect' if self.collect else '--claims-deadline, or run again,'} trains them "
            "(recorded runs are reused)."
        ]
        for key, entry in self.not_started.items():
            last = self.history.last_measured(key) if self.history is not None else "never measured"
            lines.append(f"  {entry['label']}: {last} (key {key})")
        return lines


def _clock(moment: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(moment))


def _optimizer_specs(given: list[str] | None, device: str) -> list[str]:
    """The optimizers under test, resolved and stepped once now on the runs' device (the profile's, or --device;
    a CUDA device only where CUDA is present): a bad spec stops the run before anything trains.

    A spec that resolves but whose first step fails (a missing closure, a
    step in the wrong mode, an error in the author's code) stops the session
    with one line (pytest's usage error, exit status 4), not inside every claim.
    """
    from harness.core.train import first_step_error

    specs = given or [
        spec.strip() for spec in os.environ.get("HARNESS_OPTIMIZERS", "paper_sgd").split(";") if spec.strip()
    ]
    for spec in specs:
        try:
            resolve(spec)
        except OptimizerSpecError as error:
            raise pytest.UsageError(str(error)) from None
        error = first_step_error(spec, device if torch.cuda.is_available() or device == "cpu" else "cpu")
        if error is not None:
            raise pytest.UsageError(f"optimizer {spec!r} cannot take a training step: {error}")
    return list(dict.fromkeys(specs))  # each once, in the order given
