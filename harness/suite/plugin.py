"""pytest plugin: options, markers, session state, report header and claim summary.

Thin on purpose: training, storage and statistics live in the library; this
module only wires them into pytest. The fixtures claim tests use
(`claim_run`, `claim_figure`, ...) and `require_fitted` live in
`harness.suite.fixtures`, the claim-author API, which this plugin loads. The optimizer checks wire in three more
library modules: `tuning` (--tune-lr), `sessions` (numbered session files,
--claims-xfail, --claims-compare and its failure rules) and `matrix` (the
claims matrix printed when two optimizers or more ran); `summary`
gathers the session's figures, test outcomes and runs from the reports and
makes the summary lines and the session file of them; the summary counts
the runs trained and reused.

Run plan (`plan`): --claims-plan runs the selected claim tests with every
claim_run answered by the plan instead of by training, prints the runs they
need (recorded or to train, with estimated times) and trains nothing; the
tests are reported skipped, "planned only", and tests without claim_run are
not run. Planning is one process: under xdist (-n) the plan is still made,
in the controller alone (nothing trains, so workers would only add their
start-up). --claims-plan=run plans first in a child pytest, orders the tests
longest first by the plan's estimates, prints the plan, then runs the
session; each run trained then prints a progress line with the time left.
Without a plan the line gives the count and the time elapsed.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path

import pytest
import torch

from harness.core.config import PRECISIONS, PROFILES, get_profile
from harness.core.data import find_data_spec
from harness.core.optim import OptimizerSpecError, describe, resolve, spec_id
from harness.core.store import results_dir
from harness.suite import plan, sessions, tuning
from harness.suite import summary as claims_summary
from harness.suite.plan import PLAN_FILE_VARIABLE, PLAN_PROPERTY
from harness.suite.summary import OPTIMIZER_PROPERTY, RUN_PROPERTY

# Loaded with this plugin wherever it is loaded (the root conftest, -p): claim
# tests find their fixtures without naming a second plugin.
# The budget first: the fixtures import it, and pytest rewrites asserts only in plugins it imports itself.
pytest_plugins = ["harness.suite.budget", "harness.suite.fixtures", "harness.suite.prefetch"]

_SESSION = claims_summary.SessionRecord()  # filled on the controller from every worker's reports


def pytest_addoption(parser):
    group = parser.getgroup("claims", "rethinking-generalization claims")
    group.addoption(
        "--profile",
        default=os.environ.get("HARNESS_PROFILE", "auto"),
        choices=["auto", *sorted(PROFILES)],
        help="scale tier of the claims: smoke (CPU, subsets), paper (GPU, full scale); "
        "auto (default) = paper where CUDA is available, else smoke",
    )
    group.addoption(
        "--data-dir",
        default=None,
        help="folder holding the datasets (torchvision layout or arrays files); default $HARNESS_DATA_DIR or ./data",
    )
    group.addoption("--results-dir", default=None, help="where run records go; default $HARNESS_RESULTS_DIR")
    group.addoption("--claims-fresh", action="store_true", help="retrain every run instead of reusing records")
    group.addoption(
        "--claims-export",
        default=None,
        metavar="FILE.csv",
        help="at the end of the session, write each claim figure of this session as one CSV row (session, date, "
        "profile, commit, optimizer, claim, test, figure, measured, threshold, holds, scope, outcome); the same "
        "as `python -m harness sessions export`",
    )
    group.addoption(
        "--claims-extended",
        action="store_true",
        help="also run each claim beyond the paper's scope (models or datasets the paper does not show it for); "
        "those figures are labelled 'beyond the paper' in the summary, the matrix and the report",
    )
    group.addoption("--allow-download", action="store_true", help="let torchvision download missing datasets")
    group.addoption(
        "--claims-partial",
        action="store_true",
        help="accept a session that could not measure what it selected (claims skipped for missing data; the "
        "GPU tier asked for without a CUDA device): without it such a session exits non-zero",
    )
    group.addoption("--device", default=None, help="training device; default the profile's (cpu or cuda)")
    group.addoption(
        "--optimizer",
        action="append",
        default=None,
        help="optimizer under test (repeatable): a built-in (paper_sgd, sgd, adam, adamw, rmsprop) or "
        "package.module:factory[(k=v,...)]; default $HARNESS_OPTIMIZERS (';'-separated) or paper_sgd",
    )
    group.addoption(
        "--tune-lr",
        action="store_true",
        help="choose the learning rate of each optimizer without a given one by a short grid on true labels "
        "at the smoke scale, once; recorded in RESULTS/tuning/<optimizer>.json and used for every claim run",
    )
    group.addoption(
        "--tune-lr-grid",
        default=None,
        metavar="LR,LR,...",
        help=f"learning rates tried by --tune-lr (default {','.join(f'{v:g}' for v in tuning.GRID)})",
    )
    group.addoption(
        "--claims-xfail",
        default=None,
        metavar="FILE",
        help="expected failures: lines 'optimizer_id: test-id-glob  # reason' (* for any optimizer); "
        "matching tests are marked xfail (non-strict); a line that matches no collected test warns",
    )
    group.addoption(
        "--claims-compare",
        nargs="?",
        const="last",
        default=None,
        metavar="REF",
        help="compare this session's claim figures with a numbered session (a number, or 'last', the "
        "default) or a baseline file; give it as --claims-compare=REF",
    )
    group.addoption(
        "--claims-compare-fail",
        action="append",
        default=[],
        metavar="CLAIM:TOL",
        help="fail the session when a figure of CLAIM moves past TOL against the compared session: "
        "C3:50%% (relative), C2:0.01 (absolute), *:TOL for every claim; repeatable. A verdict flip "
        "(holds -> FAILS) always fails a compared session",
    )
    group.addoption(
        "--claims-plan",
        nargs="?",
        const="only",
        default=None,
        choices=["only", "run", "off"],
        help="list the runs the selected claim tests need (recorded or to train, estimated time, longest first) "
        "and train nothing; --claims-plan=run plans, then runs the tests longest first with progress lines and "
        "the time left (the default where the ini sets claims_plan = run); --claims-plan=off does not plan (give the "
        "value with '='). Planning is one process (-n is ignored while planning)",
    )
    group.addoption(
        "--claims-prefetch",
        action="store_true",
        help="with the plan (--claims-plan=run): train every planned run as an item of its own before the "
        "claim tests, longest first, so the workers share out runs, not tests (a sweep's runs train side "
        "by side, past where it would stop); the claim tests then reuse the records",
    )
    group.addoption(
        "--convnet-precision",
        default=None,
        choices=PRECISIONS,
        help="train the convolutional models' runs in this precision instead of the profile's (a GPU "
        "setting, part of every run key): how bf16's effect on each verdict is checked",
    )
    group.addoption(
        "--claims-budget",
        default=None,
        metavar="DURATION",
        help="start no training run that would end past this time from the session's start (90s, 9m, 1h30m; 0 "
        "trains nothing): refused runs skip their tests, the session exits 2 (interrupted), and the same command "
        "run again reuses the records and trains what is left",
    )
    parser.addini(
        "claims_plan",
        "--claims-plan's default: run (plan, then train the longest tests first) or off",
        default="off",
    )
    group.addoption(
        "--runs-per-gpu",
        type=int,
        default=None,
        metavar="K",
        help="training runs in flight on each GPU: starts K xdist workers per visible GPU (CUDA and "
        "pytest-xdist; instead of -n). `python -m harness bench --in-flight 1 2 4 8` measures the best K",
    )


@pytest.hookimpl(tryfirst=True)  # before anything can initialise CUDA in this process
def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "paper_scope(*models, source): the models the paper shows a claim for, and where "
        "(figure or table); the profile's other models run only under --claims-extended",
    )
    config.addinivalue_line(
        "markers",
        "beyond_paper(reason): a claim test the paper does not make (an extension); runs only under --claims-extended",
    )
    _pin_worker_gpu(config)
    if config.getoption("--data-dir"):
        os.environ["HARNESS_DATA_DIR"] = config.getoption("--data-dir")
    if config.getoption("--results-dir"):
        os.environ["HARNESS_RESULTS_DIR"] = os.path.expanduser(config.getoption("--results-dir"))
    if hasattr(config, "workerinput") and not torch.cuda.is_available():
        # One thread per worker: measured 2.6x faster than 2 workers x 2 threads
        # on a 2-core machine (small matrices do not scale across threads).
        torch.set_num_threads(1)
    config._optimizers = _optimizer_specs(config)
    workerinput = getattr(config, "workerinput", None)
    config._tuned_lr = dict(workerinput.get("harness_tuned_lr", {})) if workerinput else {}
    if config.getoption("--allow-download"):
        os.environ["HARNESS_ALLOW_DOWNLOAD"] = "1"  # read by every later dataset load
    config._fresh_since = None
    if config.getoption("--claims-fresh"):
        config._fresh_since = workerinput["harness_fresh_since"] if workerinput else time.time()
    config._tuning = {}
    try:
        config._tune_grid = tuning.parse_grid(config.getoption("--tune-lr-grid") or ",".join(map(str, tuning.GRID)))
        xfail_file = config.getoption("--claims-xfail")
        config._expected_failures = sessions.read_expected_failures(xfail_file) if xfail_file else []
        config._fail_rules = [sessions.parse_fail_rule(text) for text in config.getoption("--claims-compare-fail")]
        reference = config.getoption("--claims-compare")
        if reference and reference not in ("last", "latest") and not workerinput:
            sessions.load_session(reference)  # a wrong number or file stops the run before anything trains
    except (ValueError, sessions.SessionError) as error:
        raise pytest.UsageError(str(error)) from None
    if config._fail_rules and not config.getoption("--claims-compare"):
        raise pytest.UsageError(
            "--claims-compare-fail needs --claims-compare=REF (a session number or a baseline file)"
        )
    precision = config.getoption("--convnet-precision")
    if precision not in (None, "fp32") and not _device(config).startswith("cuda"):
        raise pytest.UsageError(
            f"--convnet-precision {precision} is a GPU setting; the claim runs here train on {_device(config)}"
        )
    if config.getini("claims_plan") not in ("run", "off"):
        raise pytest.UsageError(f"ini setting claims_plan must be run or off, not {config.getini('claims_plan')!r}")
    if config.getoption("--claims-prefetch") and not (planning_only(config) or plans_before_running(config)):
        raise pytest.UsageError("--claims-prefetch trains the plan's runs: it needs --claims-plan=run")
    runs_per_gpu = config.getoption("--runs-per-gpu")
    if runs_per_gpu is not None and not workerinput:
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0  # NVML: CUDA is not started
        try:
            workers_per_gpu(config.option, runs_per_gpu, gpus, config.pluginmanager.hasplugin("xdist"))
        except ValueError as error:
            raise pytest.UsageError(str(error)) from None
    refusal = _gpu_refusal(config)
    if refusal is not None:
        raise pytest.UsageError(refusal)
    _configure_plan_and_progress(config)


def _gpu_refusal(config) -> str | None:
    """Why a session that asks for the GPU tier cannot run here (no usable CUDA device), or None.

    Asked for: training on CUDA (--profile=paper, --device=cuda...) or a -m
    expression that selects gpu-marked tests and no unmarked ones (-m gpu).
    Without CUDA every such test would skip and the session would exit 0
    having measured nothing. Planning (--claims-plan), collecting and
    --claims-partial are exempt: they do not claim to have measured.
    """
    if torch.cuda.is_available() or hasattr(config, "workerinput") or planning_only(config):
        return None
    if config.option.collectonly or config.getoption("--claims-partial"):
        return None
    if _device(config).startswith("cuda"):
        asked = f"the {active_profile(config).name} profile trains on {_device(config)}"
    elif _selects_gpu_only(config.option.markexpr):
        asked = f"-m {config.option.markexpr!r} selects the GPU tier"
    else:
        return None
    return (
        f"{asked}, but torch sees no CUDA device (torch.cuda.is_available() is False), so nothing would be "
        "measured. Run it on a machine with a CUDA GPU and a CUDA build of torch, run the CPU smoke tier "
        "instead (python -m pytest claims/), or add --claims-partial to accept the skips"
    )


def _selects_gpu_only(markexpr: str) -> bool:
    """Whether the -m expression selects some gpu-marked test and no test without the gpu marker.

    Read over every combination of the markers it names (a handful), with
    pytest's own -m parser: "gpu" and "gpu and slow" ask for the GPU tier;
    "not gpu" and "gpu or not slow" also keep CPU tests.
    """
    if not markexpr:
        return False
    from itertools import combinations

    from _pytest.mark.expression import Expression  # the parser behind -m: the same reading as the selection

    try:
        expression = Expression.compile(markexpr)
    except Exception:  # noqa: BLE001 - pytest reports a malformed -m itself
        return False
    names = sorted(set(re.findall(r"[A-Za-z_][\w.]*", markexpr)) - {"and", "or", "not", "gpu"})
    selected_with = {True: False, False: False}
    for size in range(len(names) + 1):
        for others in combinations(names, size):
            for gpu in (True, False):
                marks = frozenset({*others, *(["gpu"] if gpu else [])})
                selected_with[gpu] |= expression.evaluate(marks.__contains__)
    return selected_with[True] and not selected_with[False]


def workers_per_gpu(option, runs_per_gpu: int, gpus: int, has_xdist: bool) -> None:
    """--runs-per-gpu: set xdist's options (numprocesses, dist, tx) to `runs_per_gpu` x `gpus` workers.

    Set in pytest_configure, before xdist's own (trylast) starts the
    distributed session; each worker is then pinned to GPU (its index mod
    gpus), so every GPU gets `runs_per_gpu` of them. Raises ValueError for a
    count below 1, no GPU, no xdist, or -n given too (the two would disagree).
    """
    if runs_per_gpu < 1:
        raise ValueError(f"--runs-per-gpu must be 1 or more, not {runs_per_gpu}")
    if gpus == 0:
        raise ValueError("--runs-per-gpu needs CUDA; on a CPU, -n N sets the runs side by side")
    if not has_xdist:
        raise ValueError("--runs-per-gpu starts pytest-xdist workers: install pytest-xdist, or leave -p no:xdist out")
    if getattr(option, "numprocesses", None):
        raise ValueError("give either -n or --runs-per-gpu: -n sets the workers of every GPU together")
    option.numprocesses = runs_per_gpu * gpus
    option.tx = ["popen"] * option.numprocesses
    if option.dist == "no":
        option.dist = "load"


def planning_only(config) -> bool:
    """True in a --claims-plan session (plan only): claim_run plans instead of training, figures are not kept."""
    return config.getoption("--claims-plan") == "only"


def plans_before_running(config) -> bool:
    """--claims-plan=run, given or by default: the ini setting `claims_plan` ("run" in this project's
    pyproject, so `python -m pytest claims/` trains the longest tests first; planning the whole paper
    tier takes about 7 s), else off."""
    return (config.getoption("--claims-plan") or config.getini("claims_plan")) == "run"


def _configure_plan_and_progress(config) -> None:
    """Planning: one process, a Plan filled from the test reports. Otherwise the controller prints progress.

    Planning turns xdist's distribution off (its own "-n 0": dist "no", no
    nodes) before xdist's configure starts workers: the plan trains nothing,
    and one process sees every planned run.
    """
    config._workers_asked = _workers(config)  # planning sets xdist off; the budget's line counts the workers asked
    if planning_only(config):
        config._plan = plan.Plan()
        if getattr(config.option, "dist", "no") != "no":
            config.option.dist, config.option.tx, config.option.numprocesses = "no", [], 0
            config._plan.notes.append("planned in one process: -n is ignored while planning (nothing trains)")
        if config._fresh_since is not None:
            config._plan.notes.append("--claims-fresh: every run is to train, recorded or not")
        config.pluginmanager.register(_PlanGatherer(config._plan), "claims-plan-gatherer")
    elif not hasattr(config, "workerinput"):
        config._progress = plan.Progress(time.time(), workers=_workers(config))
        config.pluginmanager.register(_ProgressLines(config), "claims-progress")


def _workers(config) -> int:
    """How many processes train side by side: xdist's workers, else 1."""
    if getattr(config.option, "dist", "no") == "no":
        return 1
    return int(getattr(config.option, "numprocesses", None) or 1)


class _PlanGatherer:
    """--claims-plan: every test report's planned runs (and tests that train nothing) into the Plan."""

    def __init__(self, run_plan: plan.Plan):
        self.plan = run_plan

    def pytest_runtest_logreport(self, report):
        self.plan.note_report(report)


class _ProgressLines:
    """The controller's line per run trained, from the run entries in every worker's test reports."""

    def __init__(self, config):
        self.config = config

    def pytest_runtest_logreport(self, report):
        if report.when != "call":
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        for name, value in report.user_properties:
            if name == RUN_PROPERTY:
                line = self.config._progress.finished(value, time.time())
                if line and reporter is not None:
                    reporter.ensure_newline()
                    # Under xdist the status letters leave the line open, which ensure_newline does not see.
                    if getattr(reporter, "_width_of_current_line", 0):
                        reporter.write("\n")
                    reporter.write_line(line)


def worker_gpu(worker: str, visible: str | None, count: int) -> str:
    """The one GPU an xdist worker ('gw3') uses: workers take the visible GPUs in turn."""
    index = int(re.sub(r"\D", "", worker) or 0)
    ids = [part.strip() for part in (visible or "").split(",") if part.strip()] or [str(i) for i in range(count)]
    return ids[index % min(count, len(ids))]


def _pin_worker_gpu(config) -> str | None:
    """One GPU per xdist worker, set through CUDA_VISIBLE_DEVICES before CUDA starts in the worker.

    Only in an xdist worker (PYTEST_XDIST_WORKER, which a pytest run started
    from inside a worker inherits, is not enough), when CUDA is present and
    more than one GPU is visible; workers take them in turn, so -n with a
    multiple of the GPUs (or --runs-per-gpu) shares them evenly.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or not hasattr(config, "workerinput"):
        return None
    count = torch.cuda.device_count()  # NVML-based where it can be: does not initialise CUDA
    if count <= 1:
        return None
    if torch.cuda.is_initialized():
        warnings.warn(f"CUDA already started in xdist worker {worker}: cannot give it a GPU of its own", stacklevel=2)
        return None
    os.environ["CUDA_VISIBLE_DEVICES"] = choice = worker_gpu(worker, os.environ.get("CUDA_VISIBLE_DEVICES"), count)
    return choice


@pytest.hookimpl(tryfirst=True)  # before xdist starts its workers, which get the choices and the plan
def pytest_sessionstart(session):
    """On the controller: --tune-lr's learning rates, then --claims-plan=run's plan (which plans at them)."""
    config = session.config
    if hasattr(config, "workerinput"):
        return
    _tune_learning_rates(config)
    _plan_before_running(config)


def _tune_learning_rates(config) -> None:
    """--tune-lr: choose each untuned optimizer's learning rate once, on the controller."""
    if not config.getoption("--tune-lr"):
        return
    specs = [spec for spec in config._optimizers if tuning.needs_tuning(spec)]
    if not specs:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    say = (lambda line: reporter.write_line(f"claims: {line}")) if reporter else (lambda line: None)
    data, why = find_data_spec("cifar10", config.getoption("--allow-download"))
    if data is None:
        say(f"no learning-rate tuning: {why}")
        return
    base = tuning.base_config(data, device=config.getoption("--device"))
    if planning_only(config):
        _plan_with_recorded_tuning(config, specs, base)
        return
    try:
        config._tuning = tuning.tune_session(
            specs, base, grid=config._tune_grid, fresh=config.getoption("--claims-fresh"), say=say
        )
    except tuning.TuningError as error:
        raise pytest.UsageError(str(error)) from None
    config._tuned_lr.update({spec: entry["lr"] for spec, entry in config._tuning.items()})


def _plan_with_recorded_tuning(config, specs, base) -> None:
    """Planning tunes nothing: a recorded choice is used; an optimizer not tuned yet is planned at its default lr."""
    for spec in specs:
        choice = tuning.load_choice(spec, base, grid=config._tune_grid)
        if choice is not None:
            config._tuned_lr[spec] = choice["lr"]
            config._plan.notes.append(f"{spec_id(spec)}: lr {choice['lr']:g}, recorded by --tune-lr")
        else:
            trials = len(tuning.tuning_grid(spec, config._tune_grid))
            config._plan.notes.append(
                f"{spec_id(spec)}: not tuned yet; --tune-lr tunes it first ({trials} short "
                "runs at the smoke scale, not in this plan), so its runs are planned at its "
                "default lr"
            )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist: every worker uses the learning rates the controller chose and its session start."""
    node.workerinput["harness_tuned_lr"] = dict(node.config._tuned_lr)
    node.workerinput["harness_fresh_since"] = node.config._fresh_since
    node.workerinput["harness_test_seconds"] = dict(getattr(node.config, "_test_seconds", {}))


def _optimizer_specs(config) -> list[str]:
    """The optimizers under test, resolved and stepped once now: a bad spec stops the run before anything trains.

    A spec that resolves but whose first step fails (a missing closure, a
    step in the wrong mode, an error in the author's code) stops the session
    with one line (pytest's usage error, exit status 4), not inside every claim.
    """
    from harness.core.train import first_step_error

    specs = config.getoption("--optimizer") or [
        spec.strip() for spec in os.environ.get("HARNESS_OPTIMIZERS", "paper_sgd").split(";") if spec.strip()
    ]
    for spec in specs:
        try:
            resolve(spec)
        except OptimizerSpecError as error:
            raise pytest.UsageError(str(error)) from None
        error = first_step_error(spec)
        if error is not None:
            raise pytest.UsageError(f"optimizer {spec!r} cannot take a training step: {error}")
    return list(dict.fromkeys(specs))  # each once, in the order given


def active_profile(config):
    """The profile this session runs: --profile, where "auto" is paper with CUDA, else smoke."""
    name = config.getoption("--profile")
    if name == "auto":
        name = "paper" if torch.cuda.is_available() else "smoke"
    return get_profile(name)


def _device(config) -> str:
    return config.getoption("--device") or active_profile(config).base.get("device", "cpu")


def pytest_generate_tests(metafunc):
    """A claim test runs for every model of the profile and, if it trains, every optimizer under test.

    A test trains with the optimizer under test if it uses claim_run, or
    asks for `optimizer_spec` itself (C9's linear problem, stepped by each
    optimizer through the training loop's step).
    """
    if "model" in metafunc.fixturenames:
        scope = metafunc.definition.get_closest_marker("paper_scope")
        params = []
        for model in active_profile(metafunc.config).cifar_models:
            if scope is None or model in scope.args:
                params.append(model)
            else:
                why = (
                    f"{model} is beyond the paper's scope for this claim ({', '.join(scope.args)}: "
                    f"{scope.kwargs.get('source', 'the paper')})"
                )
                params.append(pytest.param(model, marks=pytest.mark.beyond_paper(reason=why)))
        metafunc.parametrize("model", params)
    if "claim_run" in metafunc.fixturenames or "optimizer_spec" in metafunc.fixturenames:
        specs = metafunc.config._optimizers
        metafunc.parametrize("optimizer_spec", specs, ids=[spec_id(s) for s in specs])


def pytest_report_header(config):
    profile = active_profile(config)
    device = f"{_device(config)}; torch {torch.__version__}"
    if _device(config).startswith("cuda"):
        # CUDA's fields only where CUDA trains: on a CPU run they describe nothing used.
        gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU visible"
        device += f"; CUDA {torch.version.cuda or 'none'}{gpu}"
    sources = []
    for dataset in ("cifar10", "mnist"):
        spec, why = find_data_spec(dataset, config.getoption("--allow-download"))
        sources.append(f"{dataset}={spec or 'absent'}")
    return [
        f"claims profile: {profile.name} ({profile.description})",
        f"claims device: {device}",
        f"claims data: {', '.join(sources)}; results: {results_dir()}",
        f"claims optimizers: {'; '.join(_describe_optimizer(config, spec) for spec in config._optimizers)}",
    ] + (
        [f"claims precision: convnets in {config.getoption('--convnet-precision')} (--convnet-precision)"]
        if config.getoption("--convnet-precision")
        else []
    )


def _describe_optimizer(config, spec: str) -> str:
    text = describe(spec)
    if spec in config._tuned_lr:
        text += f" lr {config._tuned_lr[spec]:g} (tuned)"
    return text


@pytest.hookimpl(tryfirst=True)  # before -m selects on the markers added here
def pytest_collection_modifyitems(config, items):
    """Training claims of a GPU profile are marked gpu; gpu items skip without CUDA."""
    on_gpu = _device(config).startswith("cuda")
    extended = config.getoption("--claims-extended")
    for item in items:
        beyond = item.get_closest_marker("beyond_paper")
        if beyond is not None:
            why = beyond.kwargs.get("reason", "not a claim of the paper")
            if not extended:
                item.add_marker(pytest.mark.skip(reason=f"beyond the paper: {why}; --claims-extended runs it"))
        if on_gpu and "claim_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gpu)
        optimizer = _item_optimizer(item)
        if optimizer is not None:
            item.user_properties.append((OPTIMIZER_PROPERTY, optimizer))
    _mark_expected_failures(config, items)
    workerinput = getattr(config, "workerinput", None)
    seconds = workerinput.get("harness_test_seconds") if workerinput else getattr(config, "_test_seconds", None)
    if seconds:
        items[:] = plan.longest_first(items, seconds)
    if planning_only(config):
        _plan_items(items)
        return  # planned, not trained: a gpu claim is planned without CUDA too
    if torch.cuda.is_available():
        return
    default = "needs a CUDA device (paper tier); on a CPU the smoke profile runs instead"
    for item in items:
        marker = item.get_closest_marker("gpu")
        if marker is not None:
            # A test whose GPU tier has no CPU scale says so: pytest.mark.gpu(reason="...").
            item.add_marker(pytest.mark.skip(reason=marker.kwargs.get("reason", default)))


def _plan_items(items) -> None:
    """Under --claims-plan a test without claim_run is not run (it trains nothing); the plan counts it."""
    for item in items:
        if "claim_run" in getattr(item, "fixturenames", ()) or item.get_closest_marker("skip") is not None:
            continue
        item.add_marker(pytest.mark.skip(reason="planned only: no training"))
        item.user_properties.append((PLAN_PROPERTY, {"no_training": True}))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Under --claims-plan a claim test's outcome on stand-in records means nothing: it is reported skipped."""
    if not planning_only(item.config):
        return (yield)
    try:
        yield
    except pytest.skip.Exception as skipped:
        pytest.skip(f"planned only; the test skipped itself: {skipped.msg}")
    except (Exception, pytest.fail.Exception):
        pass  # a stand-in record can fail a claim's assertion or statistic; the plan needs only its runs
    pytest.skip("planned only")


def _plan_before_running(config) -> None:
    """--claims-plan=run: plan in a child pytest before collection, so tests can go longest first.

    The plan gives the progress lines their time left and every test the
    estimated seconds of the runs it trains (`plan.test_seconds`), which
    orders the collection in this process and, through their worker input,
    in every xdist worker alike. xdist then hands tests out one at a time
    (--maxschedchunk 1 unless given): a claim test trains for seconds to
    minutes, and a chunk would give the longest tests to the first worker.
    """
    if not plans_before_running(config) or config.option.collectonly:
        return
    arguments = [*config.invocation_params.args, "--claims-plan=only"]  # the last --claims-plan wins
    config._run_plan, config._run_plan_missing = plan.plan_in_child_process(arguments, config.invocation_params.dir)
    if config._run_plan is None:
        return
    config._test_seconds = plan.test_seconds(config._run_plan)
    config._progress.planned = config._run_plan.to_train()
    if getattr(config.option, "maxschedchunk", 0) is None:
        config.option.maxschedchunk = 1


@pytest.hookimpl(tryfirst=True)  # before the session's own loop (xdist's included) runs any test
def pytest_runtestloop(session):
    """--claims-plan=run: print the plan made at the session's start (or why there is none), then run."""
    config = session.config
    if not hasattr(config, "_run_plan"):
        return None
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    write = reporter.write_line if reporter is not None else print
    if config._run_plan is None:
        write(f"claims plan: not made ({config._run_plan_missing}); the session runs without the time left")
        return None
    if not config._run_plan.runs:
        write("claims plan: the selected tests train no claim run")
        return None
    if reporter is not None:
        reporter.section("claims plan")
    for line in config._run_plan.lines():
        write(line)
    write("tests go longest first (by the estimated seconds of the runs they train)")
    _write_budget_line(config, config._run_plan, write)
    if config.getoption("--claims-prefetch"):
        write("--claims-prefetch: the runs to train go first, as items of their own, longest first")
    return None


def _write_budget_line(config, run_plan: plan.Plan, write) -> None:
    """Under --claims-budget: how many sittings the plan's runs to train need at the least."""
    from harness.suite import budget  # here: imported first by pytest, as a plugin (asserts rewritten)

    if config._budget is not None:
        write(budget.sittings_line(config._budget.seconds, config._workers_asked, list(run_plan.to_train().values())))


def _item_optimizer(item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("optimizer_spec") if callspec else None


def _mark_expected_failures(config, items) -> None:
    """xfail (non-strict) the tests the expected-failures file lists; warn about lines that match none.

    Non-strict: an expected failure is a statement about a stochastic result at
    one scale; an unexpected pass (XPASS) is shown and recorded in the session,
    so a stale line is visible, but it is not a regression and does not fail
    a nightly job.
    """
    tests = [(item.nodeid, _item_optimizer(item)) for item in items]
    listed, unmatched = sessions.match_expected_failures(config._expected_failures, tests, config._optimizers)
    for item, entry in zip(items, listed):
        if entry is not None:
            item.add_marker(pytest.mark.xfail(reason=f"{entry.reason} [{entry.where}]", strict=False))
    for entry in unmatched:
        warnings.warn_explicit(
            f"'{entry.optimizer}: {entry.pattern}' matches no collected test",
            sessions.ExpectedFailureWarning,
            entry.path,
            entry.line,
        )


def pytest_runtest_logreport(report):
    _SESSION.note_report(report)


def pytest_sessionfinish(session, exitstatus):
    """The controller saves the numbered session file, after comparing it when asked."""
    config = session.config
    if planning_only(config) and PLAN_FILE_VARIABLE in os.environ and not hasattr(config, "workerinput"):
        Path(os.environ[PLAN_FILE_VARIABLE]).write_text(json.dumps(config._plan.to_json()))
    if hasattr(config, "workerinput") or planning_only(config):
        return
    config._unmeasured = _SESSION.unmeasured()
    if config._unmeasured and not config.getoption("--claims-partial") and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # skipped for want of data is not measured
    if not _SESSION.figures:
        return
    summary = sessions.plain(
        claims_summary.session_summary(
            _SESSION,
            profile=active_profile(config).name,
            device=_device(config),
            args=config.invocation_params.args,
            workers=getattr(config.option, "numprocesses", None),
            optimizers=config._optimizers,
            tuning=config._tuning,
            expected_failures=config.getoption("--claims-xfail"),
        )
    )
    from harness.suite import budget  # here: imported first by pytest, as a plugin (asserts rewritten)

    budget_entry = budget.session_entry(config)
    if budget_entry is not None:
        summary["budget"] = budget_entry  # which runs a sitting did not start, and why
    end = claims_summary.SessionEnd(summary)
    reference = config.getoption("--claims-compare")
    if reference:
        end.compare_with(reference, config._fail_rules)
        # A regression outranks a session cut short ("interrupted": by --claims-budget, or Ctrl-C)
        # and a budget too small for a run (--claims-budget's usage error).
        if end.regressed and session.exitstatus in (
            pytest.ExitCode.OK,
            pytest.ExitCode.TESTS_FAILED,
            pytest.ExitCode.INTERRUPTED,
            pytest.ExitCode.USAGE_ERROR,
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    end.save(int(session.exitstatus), _SESSION.run_counts())
    export = config.getoption("--claims-export")
    if export:
        try:
            sessions.write_csv(sessions.export_rows([end.summary]), export)
        except OSError as error:  # the verdicts still stand; say why the file is missing
            warnings.warn(f"--claims-export: cannot write {export}: {error.strerror or error}", stacklevel=2)
    config._session_end = end


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if planning_only(config) and not hasattr(config, "workerinput"):
        if config.option.collectonly:
            return  # nothing ran, so nothing was planned
        terminalreporter.section("claims plan")
        for line in config._plan.lines():
            terminalreporter.write_line(line)
        _write_budget_line(config, config._plan, terminalreporter.write_line)
        return
    if hasattr(config, "workerinput"):  # the controller reports
        return
    unmeasured = getattr(config, "_unmeasured", None)
    if unmeasured:
        accepted = config.getoption("--claims-partial")
        terminalreporter.section("claims not measured", red=not accepted, yellow=accepted, bold=True)
        for line in claims_summary.unmeasured_lines(unmeasured, accepted):
            terminalreporter.write_line(line, red=not accepted, yellow=accepted, bold=True)
    if not (_SESSION.figures or _SESSION.runs):
        return
    end = getattr(config, "_session_end", None)  # None where no figure was declared: nothing was saved
    for title, markup, lines in claims_summary.terminal_sections(_SESSION, config._optimizers, results_dir(), end):
        if title is not None:
            terminalreporter.section(title, **markup)
        for line, line_markup in lines:
            terminalreporter.write_line(line, **line_markup)
