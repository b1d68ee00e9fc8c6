"""The run plan of a claims session: the runs the selected claims need, which are recorded, what the rest cost.

Under ``--claims-plan`` (harness.suite.plugin) every selected claim test runs with
its `claim_run` calls answered by `plan_run` instead of by training: it
works out the run's key, whether a record answers it and an estimate of its
time, and hands the test a record to go on with (the recorded one, or a
`stand_in_record` of a fitted run), so the test reaches its later runs too.
The controller gathers the planned runs from the test reports in a `Plan`
and prints `Plan.lines()`.

What the plan is: the path on which every run not yet recorded fits (a
recorded run answers with its record, so the plan follows the session's own
path as far as records reach). A test whose later runs depend on outcomes
lists what that path reaches: a sweep that stops at its first unfitted run
is listed whole (an upper bound), and a run trained only after an unfitted
one (the weight-decay sweep's true-label run at its threshold) is not listed.

Estimates (`estimate`): measured seconds per pass for the model and device
(GPU_PASS_SECONDS, CPU_PASS_SECONDS) x the passes the run is expected to
need (`expected_passes`), scaled by its training set size. Rough by design:
they say which runs dominate and about how long a session takes.

`Progress` makes the line a normal session prints as each run it trains
finishes, with the time left when a plan was made first
(`plan_in_child_process`: a planning pytest beside the session). Nothing
here needs pytest's API.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.config import RunConfig

PLAN_PROPERTY = "claims_planned_run"  # a planned run, or a test that trains nothing, carried in its test's report
# A planning pytest started by `plan_in_child_process` writes its plan (JSON) to the file this variable names.
PLAN_FILE_VARIABLE = "HARNESS_CLAIMS_PLAN_FILE"
# Planning the whole paper tier takes about 7 s; a plan that takes minutes is stuck (a slow data
# folder, a hung import), and the session must not wait on it: it runs without the plan.
PLANNING_TIMEOUT_S = 300.0
CHANCE_FREE_TEST_ACCURACY = 0.5  # a stand-in's test accuracy where inputs and labels carry the classes


@dataclass(frozen=True)
class PassCost:
    """Seconds per pass over `images` training images (training, training-set check and test set), and the source."""

    seconds: float
    images: int
    source: str


GPU_IMAGES, CPU_IMAGES = 50_000, 5_000
# One H100 or H200, paper profile (CUDA-graph loop, test set every 5 passes): a whole
# run's time divided by its passes, random labels, one run alone on the GPU.
GPU_PASS_SECONDS = {
    "inception": PassCost(1.6, GPU_IMAGES, "random labels fitted in 52 passes in about 83 s"),
    # Measured in bf16; the paper profile trains it in TF32, whose speed for it was not measured.
    "inception_no_bn": PassCost(2.0, GPU_IMAGES, "about 2 s per pass over 135 passes, measured in bf16"),
    "alexnet": PassCost(0.66, GPU_IMAGES, "random labels fitted in 61 passes in about 40 s"),
    "mlp_3x512": PassCost(0.15, GPU_IMAGES, "estimated, not timed alone (random labels fit in 50 passes)"),
    "mlp_1x512": PassCost(0.1, GPU_IMAGES, "estimated, not timed alone (random labels fit in 124 passes)"),
}
# Two CPU cores, one thread per xdist worker. The other models have no CPU measurement:
# their runs are listed without an estimate.
CPU_PASS_SECONDS = {
    "mlp_1x512": PassCost(0.7, CPU_IMAGES, "random labels fitted in 27 passes in 19 s, 2 cores"),
}

# Passes to fit random labels on the whole CIFAR-10 training set, paper profile, one H100/H200.
FULL_SET_RANDOM_PASSES = {"inception": 52, "inception_no_bn": 135, "alexnet": 61, "mlp_3x512": 50, "mlp_1x512": 124}
# The passes of a variant on the whole set, as a share of random labels' (an estimate): true
# labels fit in about half as many (Inception 20 vs 49, MLP 1x512 68 vs 113 on an H100);
# noise inputs fit faster than random labels (C4's claim), shuffled pixels taken as random labels.
VARIANT_SHARE = {"true": 0.5, "random": 1.0, "shuffled_pixels": 1.0, "random_pixels": 0.8, "gaussian": 0.8}
# A training set of at most SUBSET_IMAGES is a subset (the smoke tier's 5,000 images): there
# MLP 1x512 fits CIFAR-10 random labels in 27-35 passes and true labels in about as many
# (27-28), and MNIST random labels in about 85, whatever the variant.
SUBSET_IMAGES = 10_000
SUBSET_PASSES = {"cifar10": 30, "mnist": 85}
# Runs measured not to fit take their whole budget: random labels at weight decay 0.02 and
# above (MLP 1x512, smoke tier: 99.48% after 150 passes at 0.02), any labels at 0.05 and above
# (the same, true labels: 83.02% after 150 passes at 0.05; the sweep's threshold run), and AlexNet
# on noise inputs over the whole set (99.856% and 99.944% after 150 passes, one H200).
NO_FIT_WEIGHT_DECAY = 0.02
NO_FIT_WEIGHT_DECAY_ANY_LABELS = 0.05
NOT_FITTED_ON_THE_WHOLE_SET = {("alexnet", "random_pixels"), ("alexnet", "gaussian")}
# Set sizes used when the data is absent (the plan still estimates the run).
KNOWN_SIZES = {"cifar10": (50_000, 10_000, 10), "mnist": (60_000, 10_000, 10)}


@dataclass(frozen=True)
class Estimate:
    """A run's expected cost: passes, seconds on its device (a GPU's or the CPU's), and where the passes come from."""

    passes: int
    seconds: float | None  # None: no measurement of this model on this device
    device: str  # "GPU" or "CPU"
    basis: str  # where the passes come from, in a few words


def expected_passes(config: RunConfig, n_train: int, dataset: str) -> tuple[int, str]:
    """(passes the run is expected to take, why), at most its budget `config.max_passes`."""
    budget = config.max_passes
    if config.label_corruption > 0 and config.weight_decay >= NO_FIT_WEIGHT_DECAY:
        return budget, f"whole budget: random labels at weight decay >= {NO_FIT_WEIGHT_DECAY:g} did not fit"
    if config.weight_decay >= NO_FIT_WEIGHT_DECAY_ANY_LABELS:
        return budget, f"whole budget: true labels at weight decay >= {NO_FIT_WEIGHT_DECAY_ANY_LABELS:g} did not fit"
    if n_train <= SUBSET_IMAGES:
        passes = SUBSET_PASSES.get(dataset, SUBSET_PASSES["cifar10"])
        basis = f"subset of {dataset}: about {passes} passes measured for any labels"
    elif (config.model, config.variant) in NOT_FITTED_ON_THE_WHOLE_SET:
        return budget, "whole budget: did not fit in 150 passes (measured)"
    elif config.model not in FULL_SET_RANDOM_PASSES:
        return budget, f"whole budget: no measurement for {config.model}"
    else:
        random = FULL_SET_RANDOM_PASSES[config.model]
        share = _variant_share(config)
        passes = round(random * share)
        basis = "random labels' passes (measured)" if share == 1 else f"{share:g} x random labels' {random} passes"
    if passes >= budget:
        return budget, f"{basis}; capped at the budget"
    return max(1, passes), basis


def _variant_share(config: RunConfig) -> float:
    """Partial labels interpolate between true and random labels' shares by their corruption level."""
    if config.variant == "partial":
        return VARIANT_SHARE["true"] + (VARIANT_SHARE["random"] - VARIANT_SHARE["true"]) * config.corruption
    return VARIANT_SHARE[config.variant]


def estimate(config: RunConfig, n_train: int, dataset: str) -> Estimate:
    """The run's expected passes and seconds: passes x seconds per pass x n_train / the measurement's images."""
    passes, basis = expected_passes(config, n_train, dataset)
    on_gpu = config.device.startswith("cuda")
    cost = (GPU_PASS_SECONDS if on_gpu else CPU_PASS_SECONDS).get(config.model)
    seconds = None if cost is None else passes * cost.seconds * n_train / cost.images
    return Estimate(passes, seconds, "GPU" if on_gpu else "CPU", basis)


def run_estimate(config: RunConfig, dataset: str) -> Estimate:
    """`estimate` for a run whose data is present: its training set size read from the data (cached).

    Raises harness.core.data.DataError for unreadable data.
    """
    from harness.core.prepare import load_raw_cached

    whole_train = len(load_raw_cached(config.data).train_y)
    return estimate(config, min(config.n_train or whole_train, whole_train), dataset)


def run_label(config: RunConfig, base: RunConfig, dataset: str) -> str:
    """'mlp_1x512 partial p=0.4 seed 0 weight_decay=0.0005': model, variant, seed, then what differs from `base`.

    base: the profile's config for the model (what the run's settings are changed from).
    """
    variant = f"partial p={config.corruption:g}" if config.variant == "partial" else config.variant
    words = [config.model, variant, f"seed {config.seed}"]
    if dataset != "cifar10":
        words.append(dataset)
    shown_elsewhere = ("model", "variant", "corruption", "seed", "data")
    for name, value in config.to_dict().items():
        if name not in shown_elsewhere and value != getattr(base, name):
            words.append(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}")
    return " ".join(words)


def plan_run(
    config: RunConfig,
    dataset: str,
    label: str,
    *,
    data_missing: str | None = None,
    required: tuple[str, ...] = (),
    fresh: bool = False,
) -> tuple[dict, dict]:
    """(planned entry, record the test goes on with) for one claim_run call under --claims-plan.

    data_missing: why the dataset is absent (None when present); the run is
    then listed with no key, as "data missing". required: the record fields
    the claim needs (a record without them does not count). fresh: records do
    not count (--claims-fresh). The record is the recorded run's, marked
    reused, or a `stand_in_record`. Raises harness.core.data.DataError for data
    that is present but unreadable.
    """
    from harness.core.prepare import load_raw_cached
    from harness.core.store import latest_record, run_key

    record, key = None, None
    if data_missing is None:
        raw = load_raw_cached(config.data)
        whole_train, n_test_all, num_classes = len(raw.train_y), len(raw.test_y), raw.num_classes
        source = raw.source
        key = run_key(config)
        record = None if fresh else latest_record(key, required=required)
        status = "recorded" if record is not None else "to train"
    else:
        whole_train, n_test_all, num_classes = KNOWN_SIZES.get(dataset, KNOWN_SIZES["cifar10"])
        source, status = dataset, "data missing"
    n_train = min(config.n_train or whole_train, whole_train)
    n_test = min(config.n_test or n_test_all, n_test_all)
    cost = estimate(config, n_train, dataset)
    entry = {
        "id": key or f"{label} ({status})",
        "key": key,
        "label": label,
        "status": status,
        "why": data_missing,
        "passes": cost.passes,
        "seconds": cost.seconds,
        "device": cost.device,
        "basis": cost.basis,
        "model": config.model,
        "n_train": n_train,
        "config": config.to_dict() if data_missing is None else None,  # what --claims-prefetch trains
    }
    if record is None:
        record = stand_in_record(
            config,
            key,
            n_train=n_train,
            n_test=n_test,
            num_classes=num_classes,
            source=source,
            passes=cost.passes,
            seconds=cost.seconds,
        )
    else:
        record["reused"] = record["saved"] = True
    return entry, record


def stand_in_record(
    config: RunConfig,
    key: str | None,
    *,
    n_train: int,
    n_test: int,
    num_classes: int,
    source: str,
    passes: int,
    seconds: float | None,
) -> dict:
    """A record shaped like a run that fitted in `passes` passes: every field the claims read, nothing trained.

    Test accuracy: chance (1/K) when labels or inputs carry nothing of the
    classes (random labels, random pixels, Gaussian images), 0.5 on true
    labels and shuffled pixels, in between for partial labels; the K x K
    test confusion (rows true classes, columns predictions, counts) puts
    that share of each class on its diagonal and spreads the rest evenly.
    Curves (one entry per pass): training accuracy rising from chance to
    1.0 at the last pass (the clean examples of partial labels by half the
    passes), the test accuracy every `test_every` passes and at the last.
    """
    chance = 1.0 / num_classes
    informative = config.variant in ("true", "partial", "shuffled_pixels")
    accuracy = chance
    if informative:
        accuracy += (CHANCE_FREE_TEST_ACCURACY - chance) * (1.0 - config.label_corruption)
    confusion = _confusion(n_test, num_classes, accuracy)
    test_accuracy = sum(confusion[c][c] for c in range(num_classes)) / n_test
    steps_per_pass = math.ceil(n_train / config.batch_size)
    curves = {
        "loss": [math.log(num_classes) * (1.0 - i / passes) + 1e-3 for i in range(1, passes + 1)],
        "train_accuracy": _rising(chance, passes, passes),
        "train_checked": [n_train] * passes,
        "test_accuracy": [
            test_accuracy if i % config.test_every == 0 or i == passes else None for i in range(1, passes + 1)
        ],
    }
    if 0.0 < config.label_corruption < 1.0:
        curves["train_accuracy_clean"] = _rising(chance, max(1, passes // 2), passes)
        curves["train_accuracy_corrupted"] = _rising(chance, passes, passes)
    return {
        "config": config.to_dict(),
        "key": key,
        "outcome": "fitted",
        "message": "",
        "planned": True,
        "data_source": source,
        "n_train": n_train,
        "n_test": n_test,
        "num_classes": num_classes,
        "labels_changed": round(n_train * config.label_corruption * (1.0 - chance)),
        "passes": passes,
        "passes_to_fit": passes,
        "steps_per_pass": steps_per_pass,
        "steps_to_fit": passes * steps_per_pass,
        "train_accuracy": 1.0,
        "test_accuracy": test_accuracy,
        "best_test_accuracy": test_accuracy,
        "curves": curves,
        "test_confusion": confusion,
        "test_prediction_counts": [sum(row[c] for row in confusion) for c in range(num_classes)],
        "test_label_counts": [sum(row) for row in confusion],
        "train_seconds": seconds or 0.0,
        "eval_seconds": 0.0,
        "setup_seconds": 0.0,
        "reused": False,
        "saved": True,
    }


def _rising(start: float, reaches_one_at: int, passes: int) -> list[float]:
    """Accuracy per pass, straight from `start` to exactly 1.0 at pass `reaches_one_at`, 1.0 after."""
    return [1.0 if i >= reaches_one_at else start + (1.0 - start) * i / reaches_one_at for i in range(1, passes + 1)]


def _confusion(n_test: int, num_classes: int, accuracy: float) -> list[list[int]]:
    """K x K counts: classes as equal as n_test allows, `accuracy` of each on the diagonal, the rest spread evenly."""
    rows = [n_test // num_classes + (c < n_test % num_classes) for c in range(num_classes)]
    matrix = []
    for c, total in enumerate(rows):
        right = round(total * accuracy)
        others = [
            (total - right) // (num_classes - 1) + (j < (total - right) % (num_classes - 1))
            for j in range(num_classes - 1)
        ]
        matrix.append(others[:c] + [right] + others[c:])
    return matrix


def duration(seconds: float) -> str:
    """'19 s', '4 min 10 s', '2 h 5 min'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@dataclass
class Plan:
    """The planned runs of a session, gathered from its test reports; `lines` prints them."""

    runs: dict = field(default_factory=dict)  # entry id -> planned entry, with "tests": node ids that use it
    untrained: list = field(default_factory=list)  # node ids of selected tests that train nothing
    notes: list = field(default_factory=list)  # lines printed under the plan (e.g. learning rates not yet tuned)

    def note_report(self, report) -> None:
        """A test report (pytest's TestReport, read by nodeid and user_properties only)."""
        for name, value in report.user_properties:
            if name != PLAN_PROPERTY:
                continue
            if value.get("no_training"):
                if report.nodeid not in self.untrained:
                    self.untrained.append(report.nodeid)
                continue
            entry = self.runs.setdefault(value["id"], {**value, "tests": []})
            if report.nodeid not in entry["tests"]:
                entry["tests"].append(report.nodeid)

    def ordered(self) -> list[dict]:
        """Runs longest first; runs without an estimate last."""
        return sorted(self.runs.values(), key=lambda e: (e["seconds"] is None, -(e["seconds"] or 0.0), e["label"]))

    def to_train(self) -> dict:
        """Run key -> estimated seconds (None without an estimate), for the runs the session will train."""
        return {e["key"]: e["seconds"] for e in self.runs.values() if e["status"] == "to train"}

    def lines(self) -> list[str]:
        ordered = self.ordered()
        width = max((len(e["label"]) for e in ordered), default=0)
        lines = [
            f"{i:>3}. {e['label']:<{width}}  {e['status']:<12} {_seconds_text(e):>10}  "
            f"{e['passes']} passes on {e['device']} ({e['basis']})  "
            f"key {e['key'] or '-'}, {len(e['tests'])} test{'s' if len(e['tests']) != 1 else ''}"
            for i, e in enumerate(ordered, 1)
        ]
        lines += self._totals(ordered)
        lines += self._basis(ordered)
        missing = sorted({e["why"] for e in ordered if e["status"] == "data missing"})
        lines += [f"data missing: {why}" for why in missing]
        if self.untrained:
            files: dict[str, int] = {}
            for nodeid in self.untrained:
                files[nodeid.split("::")[0]] = files.get(nodeid.split("::")[0], 0) + 1
            lines.append(
                "no training (tests without claim_run, not run now): "
                + ", ".join(f"{name} ({count})" for name, count in files.items())
            )
        return lines + self.notes

    def _totals(self, ordered: list[dict]) -> list[str]:
        train = [e for e in ordered if e["status"] == "to train"]
        reused = sum(e["status"] == "recorded" for e in ordered)
        times = {device: sum(e["seconds"] or 0.0 for e in train if e["device"] == device) for device in ("GPU", "CPU")}
        unknown = sum(e["seconds"] is None for e in train)
        line = (
            f"runs: {len(ordered)}, reused {reused}, to train {len(train)}"
            + (f", data missing {len(ordered) - reused - len(train)}" if len(ordered) > reused + len(train) else "")
            + f"; estimated GPU time {duration(times['GPU'])}, CPU time {duration(times['CPU'])}"
        )
        if unknown:
            line += f" (+ {unknown} run{'s' if unknown > 1 else ''} without an estimate)"
        lines = [line + " (summed over the runs: parallel workers divide it)"]
        per_test = test_seconds(self)
        if per_test:
            longest = max(per_test, key=per_test.get)
            lines.append(
                f"longest test: {duration(per_test[longest])}, {longest}: its runs train one after "
                "another, so no number of workers makes the session shorter than about this"
            )
        return lines

    @staticmethod
    def _basis(ordered: list[dict]) -> list[str]:
        used = sorted({(e["device"], e["model"]) for e in ordered})
        lines = [
            "estimate basis: expected passes x seconds per pass x n_train / the measurement's images "
            "(an estimate, on the path where every run fits; harness/suite/plan.py)"
        ]
        for device, model in used:
            cost = (GPU_PASS_SECONDS if device == "GPU" else CPU_PASS_SECONDS).get(model)
            lines.append(
                f"  {device} {model}: "
                + (
                    f"{cost.seconds:g} s per pass over {cost.images:,} images ({cost.source})"
                    if cost
                    else "no measurement"
                )
            )
        return lines

    def to_json(self) -> dict:
        return {"runs": list(self.runs.values()), "untrained": self.untrained, "notes": self.notes}

    @classmethod
    def from_json(cls, values: dict) -> Plan:
        return cls(runs={e["id"]: e for e in values["runs"]}, untrained=values["untrained"], notes=values["notes"])


def plan_in_child_process(pytest_arguments: list[str], cwd) -> tuple[Plan | None, str]:
    """(the plan, "") made by `python -m pytest PYTEST_ARGUMENTS` run in `cwd`, or (None, why not).

    The arguments must ask for a plan (--claims-plan); the child writes it to
    the file PLAN_FILE_VARIABLE names. A child process leaves the calling
    session (its xdist workers, its fixtures) as it is. Its JUnit XML goes
    to a file of its own: a --junitxml among the arguments names the
    session's file, which the plan's skipped tests must not fill.
    """
    with tempfile.TemporaryDirectory() as folder:
        plan_file = Path(folder) / "plan.json"
        own_junit = f"--junitxml={Path(folder) / 'plan-junit.xml'}"  # the last --junitxml wins
        try:
            finished = subprocess.run(
                [sys.executable, "-m", "pytest", *pytest_arguments, own_junit],
                cwd=cwd,
                capture_output=True,
                text=True,
                env={**os.environ, PLAN_FILE_VARIABLE: str(plan_file)},
                timeout=PLANNING_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return None, f"planning took over {PLANNING_TIMEOUT_S:g} s and was stopped"
        if not plan_file.exists():
            tail = (finished.stdout + finished.stderr).strip().splitlines()[-5:]
            return None, f"planning exited with status {finished.returncode}: {' / '.join(tail)}"
        return Plan.from_json(json.loads(plan_file.read_text())), ""


def test_seconds(run_plan: Plan) -> dict[str, float]:
    """Test node id -> the estimated seconds of the runs it may train, for the tests that train an estimated run.

    A run to train counts for every test that lists it: whichever of them
    runs first trains it, and the order must not depend on which that is.
    Recorded runs, runs without an estimate and tests that train nothing
    are left out.
    """
    seconds: dict[str, float] = {}
    for entry in run_plan.runs.values():
        if entry["status"] != "to train" or entry["seconds"] is None:
            continue
        for nodeid in entry["tests"]:
            seconds[nodeid] = seconds.get(nodeid, 0.0) + entry["seconds"]
    return seconds


def longest_first(items: list, seconds: dict[str, float]) -> list:
    """`items` (anything with a `nodeid`) by `seconds[nodeid]`, longest first; the rest after, in their order.

    Stable: tests with equal estimates, and tests without one, keep the
    order they came in, so every xdist worker that sorts the same
    collection with the same estimates gets the same order.
    """
    return sorted(items, key=lambda item: -seconds.get(item.nodeid, 0.0))


def _seconds_text(entry: dict) -> str:
    return "no estimate" if entry["seconds"] is None else duration(entry["seconds"])


@dataclass
class Progress:
    """The line a session prints as each run it trains finishes; the time left only when it planned first."""

    started: float  # epoch seconds
    workers: int = 1  # runs training side by side: the time left is divided among them
    planned: dict | None = None  # run key -> estimated seconds (or None), the plan's runs to train
    done: dict = field(default_factory=dict)  # run key -> measured seconds, each run trained so far

    def finished(self, entry: dict, now: float) -> str | None:
        """The line for a run entry (harness.suite.summary.run_entry, with its "label"), or None.

        None for a reused run and for a run already counted (several tests
        use one run; each is counted once, when its first trainer finishes).
        """
        if entry.get("reused") or entry.get("key") in self.done:
            return None
        measured = sum((entry.get("seconds") or {}).values())
        self.done[entry["key"]] = measured
        count = len(self.done)
        total = len(self.planned) if self.planned is not None else None
        head = f"run {count}/{total} done" if total is not None and count <= total else f"run {count} done"
        line = (
            f"{head}: {entry.get('label') or entry['key']} ({entry.get('reason')}, {duration(measured)}); "
            f"elapsed {duration(now - self.started)}"
        )
        left = self.seconds_left()
        return line if left is None else f"{line}, about {duration(left)} left"

    def seconds_left(self) -> float | None:
        """The planned runs not yet trained, estimated, scaled by measured / estimated so far, over the workers.

        None without a plan, or when no run left has an estimate.
        """
        if self.planned is None:
            return None
        left = [seconds for key, seconds in self.planned.items() if key not in self.done and seconds is not None]
        if not left and any(key not in self.done for key in self.planned):
            return None
        timed = [(self.done[key], seconds) for key, seconds in self.planned.items() if key in self.done and seconds]
        scale = sum(m for m, _ in timed) / sum(e for _, e in timed) if timed and sum(m for m, _ in timed) > 0 else 1.0
        return sum(left) * scale / max(1, self.workers)
