"""pytest plugin: options, markers, fixtures, report header and claim summary.

Thin on purpose: training, storage and statistics live in the library; this
module only wires them into pytest.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import torch

from .config import PROFILES, get_profile
from .data import DataError
from .optim import OptimizerSpecError, describe, resolve, spec_id
from .store import cached_fit, machine_stamp, results_dir, write_json_atomic

CLAIM_PROPERTY = "claim_figure"

try:  # hypothesis profiles: "ci" by default, "nightly" for the long runs
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.register_profile(
        "nightly", max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is a test extra; the claims that need it import it themselves
    pass


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
    group.addoption("--allow-download", action="store_true", help="let torchvision download missing datasets")
    group.addoption("--device", default=None, help="training device; default the profile's (cpu or cuda)")
    group.addoption(
        "--optimizer",
        action="append",
        default=None,
        help="optimizer under test (repeatable): a built-in (paper_sgd, sgd, adam, adamw, rmsprop) or "
        "package.module:factory[(k=v,...)]; default $HARNESS_OPTIMIZERS (';'-separated) or paper_sgd",
    )


def pytest_configure(config):
    if config.getoption("--data-dir"):
        os.environ["HARNESS_DATA_DIR"] = config.getoption("--data-dir")
    if config.getoption("--results-dir"):
        os.environ["HARNESS_RESULTS_DIR"] = config.getoption("--results-dir")
    if hasattr(config, "workerinput") and not torch.cuda.is_available():
        # One thread per worker: measured 2.6x faster than 2 workers x 2 threads
        # on a 2-core machine (small matrices do not scale across threads).
        torch.set_num_threads(1)
    config._optimizers = _optimizer_specs(config)


def _optimizer_specs(config) -> list[str]:
    """The optimizers under test, resolved now: a bad spec stops the run before anything trains."""
    specs = config.getoption("--optimizer") or [
        spec.strip() for spec in os.environ.get("HARNESS_OPTIMIZERS", "paper_sgd").split(";") if spec.strip()
    ]
    for spec in specs:
        try:
            resolve(spec)
        except OptimizerSpecError as error:
            raise pytest.UsageError(str(error)) from None
    return list(dict.fromkeys(specs))  # each once, in the order given


def _data_dir() -> Path:
    return Path(os.environ.get("HARNESS_DATA_DIR", "data"))


def find_data_spec(dataset: str, allow_download: bool = False) -> tuple[str | None, str]:
    """The data spec for 'cifar10' or 'mnist' in the data folder, or None and why.

    torchvision's own layout is preferred (the real dataset); an arrays file
    (named cifar10*.npz / mnist*.npz) is the fallback, and names itself
    honestly in every record.
    """
    root = _data_dir()
    layout = {"cifar10": "cifar-10-batches-py", "mnist": "MNIST/raw"}[dataset]
    if (root / layout).is_dir():
        return f"{dataset}:{root}", ""
    arrays = sorted(root.glob(f"{dataset}*.npz")) if root.is_dir() else []
    if arrays:
        return f"npz:{arrays[0]}", ""
    if allow_download:
        return f"{dataset}:{root}", ""
    return None, (
        f"no {dataset} data in {str(root)!r} (neither torchvision's {layout} nor a {dataset}*.npz arrays file); "
        "set HARNESS_DATA_DIR or --data-dir, or pass --allow-download"
    )


def active_profile(config):
    name = config.getoption("--profile")
    if name == "auto":
        name = "paper" if torch.cuda.is_available() else "smoke"
    return get_profile(name)


def _device(config) -> str:
    return config.getoption("--device") or active_profile(config).base.get("device", "cpu")


def pytest_generate_tests(metafunc):
    """A claim test runs for every model of the profile and, if it trains, every optimizer under test."""
    if "model" in metafunc.fixturenames:
        metafunc.parametrize("model", active_profile(metafunc.config).cifar_models)
    if "claim_run" in metafunc.fixturenames:
        specs = metafunc.config._optimizers
        metafunc.parametrize("optimizer_spec", specs, ids=[spec_id(s) for s in specs])


def pytest_report_header(config):
    profile = active_profile(config)
    device = _device(config)
    if device.startswith("cuda") and torch.cuda.is_available():
        device += f" ({torch.cuda.get_device_name(0)})"
    sources = []
    for dataset in ("cifar10", "mnist"):
        spec, why = find_data_spec(dataset, config.getoption("--allow-download"))
        sources.append(f"{dataset}={spec or 'absent'}")
    return [
        f"claims profile: {profile.name} ({profile.description})",
        f"claims device: {device}; torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}",
        f"claims data: {', '.join(sources)}; results: {results_dir()}",
        f"claims optimizers: {'; '.join(describe(spec) for spec in config._optimizers)}",
    ]


@pytest.hookimpl(tryfirst=True)  # before -m selects on the markers added here
def pytest_collection_modifyitems(config, items):
    """Training claims of a GPU profile are marked gpu; gpu items skip without CUDA."""
    on_gpu = _device(config).startswith("cuda")
    for item in items:
        if on_gpu and "claim_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gpu)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (paper tier); on a CPU the smoke profile runs instead")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def profile(request):
    return active_profile(request.config)


@pytest.fixture(scope="session")
def data_spec(request):
    """Function: dataset name -> data spec, skipping the test when the data is absent."""

    def spec_for(dataset: str) -> str:
        spec, why = find_data_spec(dataset, request.config.getoption("--allow-download"))
        if spec is None:
            pytest.skip(why)
        return spec

    return spec_for


_FRESH_DONE: set = set()  # configs retrained this session under --claims-fresh


@pytest.fixture
def claim_run(request, profile, data_spec, optimizer_spec):
    """Function: (model, dataset, **config changes) -> run record, reused across tests.

    Runs use the optimizer under test (the test's `optimizer_spec` parameter).
    """
    device = request.config.getoption("--device")
    fresh = request.config.getoption("--claims-fresh")
    fresh_done = _FRESH_DONE

    def run(model: str | None = None, dataset: str = "cifar10", **changes) -> dict:
        changes.setdefault("optimizer", optimizer_spec)
        if device:
            changes.setdefault("device", device)
        config = profile.config(model or profile.cifar_models[0], data=data_spec(dataset), **changes)
        first_time = config not in fresh_done
        fresh_done.add(config)  # --claims-fresh retrains once per session, then reuses
        try:
            return cached_fit(config, fresh=fresh and first_time)
        except DataError as error:
            pytest.fail(f"data error: {error}", pytrace=False)

    return run


@pytest.fixture(scope="session")
def mnist_arrays(data_spec):
    """MNIST as uint8 numpy arrays (train_x (60000, 28, 28), ...), for the theory claims."""
    from .prepare import load_raw_cached

    raw = load_raw_cached(data_spec("mnist"))
    return {
        "train_x": raw.train_x[..., 0],
        "train_y": raw.train_y,
        "test_x": raw.test_x[..., 0],
        "test_y": raw.test_y,
        "source": raw.source,
    }


@pytest.fixture
def claim_figure(request, record_property):
    """Function to declare a claim's figure: it lands in the summary table and the session file.

    record_property travels from xdist workers to the controller, so the
    summary sees every worker's figures.
    """

    def declare(claim: str, figure: str, measured, threshold: str, holds: bool, **context) -> None:
        entry = {"claim": claim, "figure": figure, "measured": measured, "threshold": threshold, "holds": bool(holds)}
        callspec = getattr(request.node, "callspec", None)
        entry["optimizer"] = callspec.params.get("optimizer_spec") if callspec else None
        entry.update(context)
        record_property(CLAIM_PROPERTY, entry)
        print(f"{claim}: {figure} = {_fmt(measured)} (threshold {threshold}) -> {'holds' if holds else 'FAILS'}")

    return declare


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def pytest_runtest_logreport(report):
    if report.when != "call":
        return
    for name, value in report.user_properties:
        if name == CLAIM_PROPERTY:
            _SESSION_FIGURES.append({**value, "test": report.nodeid})


_SESSION_FIGURES: list = []  # filled on the controller from every worker's reports


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _SESSION_FIGURES or hasattr(config, "workerinput"):  # the controller reports
        return
    write = terminalreporter.write_line
    terminalreporter.section("claim figures")
    for entry in sorted(_SESSION_FIGURES, key=lambda e: (e["claim"], e["test"])):
        verdict = "holds" if entry["holds"] else "FAILS"
        optimizer = f" <{spec_id(entry['optimizer'])}>" if entry.get("optimizer") and len(config._optimizers) > 1 else ""
        write(f"{entry['claim']:<4} {verdict:<6} {entry['figure']}{optimizer}: {_fmt(entry['measured'])}  [{entry['threshold']}]")
    summary = {
        "profile": active_profile(config).name,
        "stamp": machine_stamp(_device(config)),
        "exit_status": int(exitstatus),
        "optimizers": config._optimizers,
        "figures": _SESSION_FIGURES,
    }
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = results_dir() / "sessions" / f"{stamp}-{summary['profile']}.json"
    write_json_atomic(path, json.loads(json.dumps(summary, default=_jsonable)))
    write(f"claim figures saved to {path}")


def _jsonable(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)
