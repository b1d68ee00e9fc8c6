"""pytest plugin: the claims session wired into pytest, and nothing else.

The session's state is one object, ``config.stash[SESSION]``
(harness.suite.session): options read once, what workers are sent, what the
controller gathers. The modules it wires in: `options` (the command line),
`gpus` (GPU per worker, refusing the GPU tier without CUDA), `tuning`
(--tune-lr), `history` (the tests' order and the time left, from earlier
session files), `controller` (every report gathered on the controller, the
session's end and terminal summary, through `summary`), and
harness.sessions (expected failures). The fixtures claim tests use
live in `harness.suite.fixtures`, the claim-author API, which this plugin loads.
"""

from __future__ import annotations

import os
import time
import warnings

import pytest
import torch

from harness.core.data import find_data_spec
from harness.core.optim import describe, spec_id
from harness.core.store import has_record, results_dir
from harness.sessions.expected import ExpectedFailureWarning, match_expected_failures
from harness.suite import gpus, history, tuning
from harness.suite.controller import Controller
from harness.suite.options import add_options
from harness.suite.session import SESSION, WORKER_INPUT, ClaimsSession
from harness.suite.summary import OPTIMIZER_PROPERTY

# Loaded with this plugin wherever it is loaded (the root conftest, -p): claim
# tests find their fixtures without naming a second plugin.
pytest_plugins = ["harness.suite.fixtures"]


def pytest_addoption(parser):
    add_options(parser)


@pytest.hookimpl(tryfirst=True)  # before anything can initialise CUDA in this process
def pytest_configure(config):
    # Registered here, not in a project's ini file: the claims run from an installed package too.
    config.addinivalue_line("markers", "gpu: needs a CUDA device (the paper tier)")
    config.addinivalue_line("markers", "slow: long-running; excluded from the default CPU run")
    config.addinivalue_line(
        "markers",
        "paper_scope(*models, source): the models the paper shows a claim for, and where "
        "(figure or table); the profile's other models run only under --claims-extended",
    )
    config.addinivalue_line(
        "markers",
        "beyond_paper(reason): a claim test the paper does not make (an extension); runs only under --claims-extended",
    )
    gpus.pin_worker_gpu(config)
    if config.getoption("--data-dir"):
        os.environ["HARNESS_DATA_DIR"] = config.getoption("--data-dir")
    if config.getoption("--results-dir"):
        os.environ["HARNESS_RESULTS_DIR"] = os.path.expanduser(config.getoption("--results-dir"))
    if config.getoption("--allow-download"):
        os.environ["HARNESS_ALLOW_DOWNLOAD"] = "1"  # read by every later dataset load
    if hasattr(config, "workerinput"):
        workers = int(config.workerinput.get("workercount", 1))
        torch.set_num_threads(gpus.threads_per_worker(os.cpu_count() or 1, workers, torch.cuda.is_available()))
    session = config.stash[SESSION] = ClaimsSession.from_config(config)
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Controller(config), "claims-controller")
    runs_per_gpu = config.getoption("--runs-per-gpu")
    if runs_per_gpu is not None and not hasattr(config, "workerinput"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0  # NVML: CUDA is not started
        try:
            gpus.workers_per_gpu(config.option, runs_per_gpu, count, config.pluginmanager.hasplugin("xdist"))
        except ValueError as error:
            raise pytest.UsageError(str(error)) from None
    if not config.getoption("--claims-partial") and not config.option.collectonly:
        refusal = gpus.gpu_refusal(config, session.device, session.profile.name)
        if refusal is not None:
            raise pytest.UsageError(refusal)


@pytest.hookimpl(tryfirst=True)  # before xdist starts its workers, which get the tuned rates and the order
def pytest_sessionstart(session):
    """On the controller: --tune-lr's learning rates, then the tests' order from the history."""
    config = session.config
    if hasattr(config, "workerinput"):
        return
    claims = config.stash[SESSION]
    _tune_learning_rates(config, claims)
    if config.getoption("--claims-order") == "history" or claims.collect or claims.deadline is not None:
        baselines = sorted((config.rootpath / "ci" / "baselines").glob("*.json"))
        claims.history = history.read_history(claims.profile.name, baselines)
    if config.getoption("--claims-order") == "history":
        claims.test_seconds = claims.history.test_seconds(claims.history.tests, _recorded(claims))
        if getattr(config.option, "maxschedchunk", 0) is None:
            # xdist then hands tests out one at a time: a claim test trains for seconds to minutes, and
            # a chunk would give the longest tests to the first worker.
            config.option.maxschedchunk = 1


def _recorded(claims: ClaimsSession):
    """Whether a run key has a record that will answer it (none does under --claims-fresh)."""
    return (lambda key: False) if claims.fresh_since is not None else has_record


def _tune_learning_rates(config, claims: ClaimsSession) -> None:
    """--tune-lr: choose each untuned optimizer's learning rate once, on the controller."""
    if not config.getoption("--tune-lr"):
        return
    specs = [spec for spec in claims.optimizers if tuning.needs_tuning(spec)]
    if not specs:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    say = (lambda line: reporter.write_line(f"claims: {line}")) if reporter else (lambda line: None)
    data, why = find_data_spec("cifar10", config.getoption("--allow-download"))
    if data is None:
        say(f"no learning-rate tuning: {why}")
        return
    base = tuning.base_config(data, device=config.getoption("--device"))
    try:
        claims.tuning = tuning.tune_session(
            specs, base, grid=claims.tune_grid, fresh=config.getoption("--claims-fresh"), say=say
        )
    except tuning.TuningError as error:
        raise pytest.UsageError(str(error)) from None
    claims.tuned_lr.update({spec: entry["lr"] for spec, entry in claims.tuning.items()})
    for spec in dict.fromkeys(claims.optimizers):  # the given-rate ones, timed at the same scale (history's ratio)
        if not tuning.needs_tuning(spec):
            tuning.time_reference(spec, base, fresh=config.getoption("--claims-fresh"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist: every worker works to the controller's choices (harness.suite.session.ClaimsSession.worker_input)."""
    node.workerinput[WORKER_INPUT] = node.config.stash[SESSION].worker_input()


def pytest_generate_tests(metafunc):
    """A claim test runs for every model of the profile and, if it trains, every optimizer under test.

    A test trains with the optimizer under test if it uses claim_run, or
    asks for `optimizer_spec` itself (C9's linear problem, stepped by each
    optimizer through the training loop's step).
    """
    claims = metafunc.config.stash[SESSION]
    if "model" in metafunc.fixturenames:
        scope = metafunc.definition.get_closest_marker("paper_scope")
        params = []
        for model in claims.profile.cifar_models:
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
        metafunc.parametrize("optimizer_spec", claims.optimizers, ids=[spec_id(s) for s in claims.optimizers])


def pytest_report_header(config):
    claims = config.stash[SESSION]
    device = f"{claims.device}; torch {torch.__version__}"
    if claims.device.startswith("cuda"):
        # CUDA's fields only where CUDA trains: on a CPU run they describe nothing used.
        gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU visible"
        device += f"; CUDA {torch.version.cuda or 'none'}{gpu}"
    sources = []
    for dataset in ("cifar10", "mnist"):
        spec, _ = find_data_spec(dataset, config.getoption("--allow-download"))
        sources.append(f"{dataset}={spec or 'absent'}")
    optimizers = [
        describe(spec) + (f" lr {claims.tuned_lr[spec]:g} (tuned)" if spec in claims.tuned_lr else "")
        for spec in claims.optimizers
    ]
    lines = [
        f"claims profile: {claims.profile.name} ({claims.profile.description})",
        f"claims device: {device}",
        f"claims data: {', '.join(sources)}; results: {results_dir()}",
        f"claims optimizers: {'; '.join(optimizers)}",
    ]
    if config.getoption("--convnet-precision"):
        lines.append(f"claims precision: convnets in {config.getoption('--convnet-precision')} (--convnet-precision)")
    if claims.deadline is not None:
        lines.append(
            f"claims deadline: no run starts after {time.strftime('%H:%M:%S', time.localtime(claims.deadline))}"
        )
    if claims.collect:
        lines.append("claims collect: nothing trains; verdicts from recorded runs only")
    return lines


@pytest.hookimpl(tryfirst=True)  # before -m selects on the markers added here
def pytest_collection_modifyitems(config, items):
    """Beyond-the-paper tests skip unless asked for; a GPU profile's training claims are marked gpu (skipped
    without CUDA); expected failures are marked xfail; the tests go in the history's order."""
    claims = config.stash[SESSION]
    on_gpu = claims.device.startswith("cuda")
    extended = config.getoption("--claims-extended")
    default = "needs a CUDA device (paper tier); on a CPU the smoke profile runs instead"
    for item in items:
        beyond = item.get_closest_marker("beyond_paper")
        if beyond is not None and not extended:
            why = beyond.kwargs.get("reason", "not a claim of the paper")
            item.add_marker(pytest.mark.skip(reason=f"beyond the paper: {why}; --claims-extended runs it"))
        if on_gpu and "claim_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gpu)
        optimizer = _item_optimizer(item)
        if optimizer is not None:
            item.user_properties.append((OPTIMIZER_PROPERTY, optimizer))
        marker = item.get_closest_marker("gpu")
        if marker is not None and not torch.cuda.is_available():
            # A test whose GPU tier has no CPU scale says so: pytest.mark.gpu(reason="...").
            item.add_marker(pytest.mark.skip(reason=marker.kwargs.get("reason", default)))
    _mark_expected_failures(claims, items)
    if claims.test_seconds:
        items[:] = history.longest_first(
            items, claims.test_seconds, lambda item: "claim_run" in getattr(item, "fixturenames", ())
        )


@pytest.hookimpl(trylast=True)  # after -m and -k deselected: the runs of the tests that will run
def pytest_collection_finish(session):
    config = session.config
    if not hasattr(config, "workerinput") and getattr(config.option, "dist", "no") == "no":
        _start_progress(config, [item.nodeid for item in session.items])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """xdist's controller does not collect: it learns the tests from the first worker's collection."""
    if node.config.stash[SESSION].progress is None:
        _start_progress(node.config, ids)


def _start_progress(config, nodeids) -> None:
    claims = config.stash[SESSION]
    to_train = claims.history.to_train(nodeids, _recorded(claims)) if claims.history is not None else {}
    workers = 1 if getattr(config.option, "dist", "no") == "no" else int(config.option.numprocesses or 1)
    claims.progress = history.Progress(claims.started, workers, to_train)


def _item_optimizer(item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("optimizer_spec") if callspec else None


def _mark_expected_failures(claims: ClaimsSession, items) -> None:
    """xfail (non-strict) the tests the expected-failures file lists; warn about lines that match none.

    Non-strict: an expected failure is a statement about a stochastic result at
    one scale; an unexpected pass (XPASS) is shown and recorded in the session,
    so a stale line is visible, but it is not a regression and does not fail
    a nightly job.
    """
    tests = [(item.nodeid, _item_optimizer(item)) for item in items]
    listed, unmatched = match_expected_failures(claims.expected_failures, tests, claims.optimizers)
    for item, entry in zip(items, listed):
        if entry is not None:
            item.add_marker(pytest.mark.xfail(reason=f"{entry.reason} [{entry.where}]", strict=False))
    for entry in unmatched:
        warnings.warn_explicit(
            f"'{entry.optimizer}: {entry.pattern}' matches no collected test",
            ExpectedFailureWarning,
            entry.path,
            entry.line,
        )
