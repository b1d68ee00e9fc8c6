"""The pytest plugin, driven in a pytester session (in this process) with its output matched."""

import json
import shutil
from pathlib import Path

import pytest
from support import EnvironmentKept, write_arrays_file

from harness.suite.tuning import TuningWarning

CLAIM = """
def test_fits(claim_run, claim_figure):
    record = claim_run("mlp_1x512", variant="true", max_passes=40, n_test=None)
    claim_figure("CX", "train accuracy", record["train_accuracy"], "== 1.0", record["outcome"] == "fitted")
"""


# Options go as --name=value: pytest takes a bare value of an option it does not
# know yet (the plugin loads from the conftest) for a path when finding the rootdir.
def setup_project(pytester, tmp_path):
    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "conftest.py", pytester.path / "conftest.py")
    data = tmp_path / "data"
    data.mkdir()
    write_arrays_file(data / "cifar10-tiny.npz", n_train=128, n_test=64)
    pytester.makepyfile(test_claim=CLAIM)
    return data


def run_inprocess(pytester, *args):
    """A pytest session in this process (no interpreter to start, torch already imported); the
    HARNESS_* variables its plugin sets from --data-dir and --results-dir are restored after it."""
    with EnvironmentKept():
        return pytester.runpytest_inprocess(*args)


def test_header_names_profile_device_data_and_versions(pytester, tmp_path):
    data = setup_project(pytester, tmp_path)
    result = run_inprocess(
        pytester, f"--data-dir={data}", f"--results-dir={tmp_path / 'r'}", "--profile=smoke", "-p", "no:xdist"
    )
    result.stdout.fnmatch_lines(
        [
            "claims profile: smoke*",
            "claims device: cpu; torch *",
            "claims data: cifar10=npz:*cifar10-tiny.npz, mnist=absent*",
            "*= claims =*",
            "CX   holds   1/1 figures hold; train accuracy: 1 [[]== 1.0[]]",
            "*1 passed*",
        ]
    )
    assert list((tmp_path / "r" / "sessions").glob("*-smoke.json"))
    (device_line,) = [line for line in result.outlines if line.startswith("claims device:")]
    assert "CUDA" not in device_line  # a CPU run names no CUDA version or GPU


def test_missing_data_fails_the_session_in_one_framed_section_unless_partial_is_accepted(pytester, tmp_path):
    """No data means nothing measured: the claim skips with the reason, and the session is not green."""
    setup_project(pytester, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    options = [f"--data-dir={empty}", "--profile=smoke", "-rs", "-p", "no:xdist"]
    result = run_inprocess(pytester, *options)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*claims not measured*",
            "1 selected claim test(s) measured nothing, data missing (the session fails):",
            "  no cifar10 data in*",
            "  fix: point HARNESS_DATA_DIR (or --data-dir) at the data*--claims-partial accepts*",
            "SKIPPED*data missing: no cifar10 data in*HARNESS_DATA_DIR*",
            "*1 skipped*",
        ]
    )
    partial = run_inprocess(pytester, *options, "--claims-partial")
    assert partial.ret == 0
    partial.stdout.fnmatch_lines(["*measured nothing, data missing (accepted by --claims-partial):"])


@pytest.mark.parametrize("ask", [["--profile=paper"], ["-m", "gpu"]])
def test_the_gpu_tier_without_cuda_is_refused_before_anything_runs(pytester, tmp_path, ask):
    import torch

    if torch.cuda.is_available():
        pytest.skip("on a GPU machine the claim runs for real")
    data = setup_project(pytester, tmp_path)
    result = run_inprocess(pytester, f"--data-dir={data}", *ask, "-p", "no:xdist")
    assert result.ret == 4  # pytest's usage error: one line, nothing collected or run
    result.stderr.fnmatch_lines(["ERROR: * but torch sees no CUDA device *--claims-partial to accept the skips"])


@pytest.mark.parametrize(
    "expression, asks",
    [("gpu", True), ("gpu and slow", True), ("gpu or slow", False), ("not gpu", False), ("gpu or not slow", False)],
)
def test_a_mark_expression_asks_for_the_gpu_tier_only_when_it_keeps_no_unmarked_test(expression, asks):
    from harness.suite.gpus import selects_gpu_only

    assert selects_gpu_only(expression) is asks


def test_paper_profile_marks_training_claims_gpu_and_skips_them_without_cuda_when_partial(pytester, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("on a GPU machine the claim would run for real")
    data = setup_project(pytester, tmp_path)
    result = run_inprocess(
        pytester, f"--data-dir={data}", "--profile=paper", "-m", "gpu", "--claims-partial", "-rs", "-p", "no:xdist"
    )
    result.stdout.fnmatch_lines(["*needs a CUDA device*", "*1 skipped*"])


BROKEN = '''
import torch


def frozen(params, lr=0.1):
    """An optimizer that never moves the weights: the fitting claims must fail with it."""
    return torch.optim.SGD(params, lr=0.0)
'''


def test_the_suite_fails_with_an_optimizer_that_never_moves(pytester, tmp_path):
    """A claim suite that cannot fail proves nothing: a frozen optimizer must fail the fitting claim."""
    data = setup_project(pytester, tmp_path)
    pytester.makepyfile(brokenopt=BROKEN)
    result = run_inprocess(
        pytester,
        f"--data-dir={data}",
        f"--results-dir={tmp_path / 'r'}",
        "--profile=smoke",
        "-p",
        "no:xdist",
        "--optimizer=paper_sgd",
        "--optimizer=brokenopt:frozen",
        "-v",
    )
    result.stdout.fnmatch_lines(
        [
            "claims optimizers: paper_sgd (torch *); brokenopt:frozen (brokenopt no version, code sha256:* of brokenopt.py)",
            "*CX   FAILS  train accuracy <frozen>*",
            "*CX   holds  train accuracy <paper_sgd>*",
            "*= claims =*",
            "CX   FAILS   1/2 figures hold (FAILS with frozen); train accuracy: 0.1* [[]== 1.0[]]",
            "*1 failed, 1 passed*",
        ]
    )
    result.stdout.fnmatch_lines(["FAILED test_claim.py::test_fits[[]frozen[]]*"])


def test_an_unresolvable_optimizer_stops_before_anything_trains(pytester, tmp_path):
    data = setup_project(pytester, tmp_path)
    result = run_inprocess(
        pytester, f"--data-dir={data}", "--profile=smoke", "-p", "no:xdist", "--optimizer=nosuchpackage.thing:Opt"
    )
    assert result.ret == 4  # pytest's usage error
    result.stderr.fnmatch_lines(["*optimizer 'nosuchpackage.thing:Opt' cannot be imported*"])
    assert not (tmp_path / "r").exists()


CLOSURELESS = """
import torch

class NeedsTrainMode(torch.optim.SGD):
    def step(self, closure=None):
        raise RuntimeError("call optimizer.train() before step()")
"""


def test_an_optimizer_whose_first_step_fails_stops_the_session_in_one_line(pytester, tmp_path):
    data = setup_project(pytester, tmp_path)
    pytester.makepyfile(closureless=CLOSURELESS)
    result = run_inprocess(
        pytester,
        f"--data-dir={data}",
        f"--results-dir={tmp_path / 'r'}",
        "--profile=smoke",
        "-p",
        "no:xdist",
        "--optimizer=closureless:NeedsTrainMode",
    )
    assert result.ret == 4  # pytest's usage error, before any test
    result.stderr.fnmatch_lines(
        [
            "*optimizer 'closureless:NeedsTrainMode' cannot take a training step: "
            "RuntimeError: call optimizer.train() before step()*"
        ]
    )
    assert not (tmp_path / "r").exists()


# --- check your optimizer: tuning, matrix, expected failures, sessions and compare ---------------


def run_records(results):
    import json

    return [json.loads(p.read_text()) for p in (results / "runs").glob("*/*.json")]


def session_files(results):
    import json

    return [json.loads(p.read_text()) for p in sorted((results / "sessions").glob("*.json"))]


def test_two_optimizers_on_xdist_workers_get_a_tuned_lr_a_claims_matrix_and_numbered_sessions(pytester, tmp_path):
    data = setup_project(pytester, tmp_path)
    results = tmp_path / "r"
    options = [
        f"--data-dir={data}",
        f"--results-dir={results}",
        "--profile=smoke",
        "-n",
        "2",
        "--optimizer=paper_sgd",
        "--optimizer=adam",
        "--tune-lr",
        "--tune-lr-grid=1e-3,1e-2",
    ]
    # In this process the tuning's warning reaches this test (a subprocess printed it to its stderr):
    # a grid of two rates puts any choice at its edge.
    with pytest.warns(TuningWarning, match=r"adam: the chosen lr .* is at the edge of the values tried"):
        result = run_inprocess(pytester, *options)
    result.stdout.fnmatch_lines(
        [
            "claims optimizers: paper_sgd (torch *); adam (torch *) lr * (tuned)",
            "tuning (--tune-lr): adam lr * in *",
            "*claims matrix*",
            "*adam: learning rate *, chosen by the tuning step (*adam.json, * of this session)*",
            "| claim | paper_sgd (reference) | adam |",
            "| CX | holds * | holds * |",
            "claim figures saved to *-0001-smoke.json (session 0001)",
            "*2 passed*",
        ]
    )
    (session,) = session_files(results)
    assert session["tuning"]["adam"]["seconds"] > 0  # the tuning's cost is kept beside the runs
    tuned = session["tuning"]["adam"]["lr"]
    assert tuned in (1e-3, 1e-2) and (results / "tuning" / "adam.json").exists()
    # The paper's SGD timed at the tuning scale: adam's runs can then be estimated from paper_sgd's (history)
    assert json.loads((results / "tuning" / "paper_sgd.json").read_text())["timed_only"]
    assert session["number"] == 1 and session["optimizers"] == ["paper_sgd", "adam"]
    assert session["command"].startswith("python -m pytest") and session["machine"]["cpu_count"]
    assert {t["outcome"] for t in session["tests"].values()} == {"passed"}
    claim_runs = [r["config"] for r in run_records(results) if r["config"]["max_passes"] == 40]
    assert {(c["optimizer"], c["lr"]) for c in claim_runs} == {("paper_sgd", None), ("adam", tuned)}
    again = run_inprocess(pytester, *options, "--claims-compare")
    again.stdout.fnmatch_lines(
        [
            "claims: adam uses lr * (recorded, *adam.json)",
            "tuning (--tune-lr): adam lr * recorded earlier",
            "*adam: learning rate *, chosen by the tuning step (*adam.json, recorded earlier)*",
            "*claims comparison*",
            "against *-0001-smoke.json: 2 same",
            "*(session 0002)",
        ]
    )
    assert again.ret == 0


def test_expected_failures_are_xfailed_with_their_reason_and_a_stale_line_warns(pytester, tmp_path):
    data = setup_project(pytester, tmp_path)
    pytester.makepyfile(brokenopt=BROKEN)
    xfail = tmp_path / "xfail.txt"
    xfail.write_text(
        "frozen: test_claim.py::test_fits[frozen]  # never moves its weights\n"
        "paper_sgd: *::test_gone*  # a test that was removed\n"
        "adam: *  # not under test here: no warning\n"
    )
    result = run_inprocess(
        pytester,
        f"--data-dir={data}",
        f"--results-dir={tmp_path / 'r'}",
        "--profile=smoke",
        "-p",
        "no:xdist",
        "-rx",
        "--optimizer=paper_sgd",
        "--optimizer=brokenopt:frozen",
        f"--claims-xfail={xfail}",
    )
    result.stdout.fnmatch_lines(
        [
            "*xfail.txt:2: ExpectedFailureWarning: 'paper_sgd: *::test_gone*' matches no collected test",
            "| CX | holds * | FAILS (expected) * |",
            "XFAIL test_claim.py::test_fits[[]frozen[]] - never moves its weights [[]*xfail.txt:1[]]",
            "*1 passed, 1 xfailed, 1 warning*",
        ]
    )
    assert result.ret == 0
    assert "adam: *" not in result.stdout.str()
    (session,) = session_files(tmp_path / "r")
    assert session["tests"]["test_claim.py::test_fits[frozen]"]["outcome"] == "xfailed"


def test_compare_fails_the_session_on_a_flip_or_a_figure_past_its_tolerance_and_warns_across_machines(
    pytester, tmp_path
):
    import json

    data = setup_project(pytester, tmp_path)
    pytester.makepyfile(brokenopt=BROKEN)
    xfail = tmp_path / "xfail.txt"
    xfail.write_text("frozen: *  # never moves its weights\n")
    options = [
        f"--data-dir={data}",
        f"--results-dir={tmp_path / 'r'}",
        "--profile=smoke",
        "-p",
        "no:xdist",
        "--optimizer=paper_sgd",
        "--optimizer=brokenopt:frozen",
        f"--claims-xfail={xfail}",
    ]
    assert run_inprocess(pytester, *options).ret == 0
    (first,) = session_files(tmp_path / "r")
    for entry in first["figures"]:  # a baseline in which the frozen optimizer held and SGD measured 0.9
        entry.update({"holds": True} if "frozen" in entry["optimizer"] else {"measured": 0.9})
    first["stamp"]["gpu"] = "NVIDIA H100 80GB HBM3"
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(first))
    result = run_inprocess(pytester, *options, f"--claims-compare={baseline}", "--claims-compare-fail=CX:5%")
    result.stdout.fnmatch_lines(
        [
            "*claims comparison*",
            "!! WARNING: comparing across different machines or profiles with *baseline.json:",
            "!!   gpu: 'NVIDIA H100 80GB HBM3' vs 'none'",
            "CX   flipped  train accuracy <frozen>: * [[]holds->FAILS[]]  REGRESSION: verdict flip: holds -> FAILS",
            "CX   changed  train accuracy <paper_sgd>: 0.9 -> 1 (delta +0.1, +11.1%) [[]holds->holds[]]  "
            "REGRESSION: moved past CX:5%",
            "2 regression(s) against *baseline.json",
            "*1 passed, 1 xfailed*",
        ]
    )
    assert result.ret == 1  # every test passed or failed as expected: the regressions fail the session
    assert session_files(tmp_path / "r")[-1]["comparison"]["regressions"]


def test_bad_expected_failures_compare_references_and_rules_stop_before_anything_trains(pytester, tmp_path):
    data = setup_project(pytester, tmp_path)
    bad_xfail = tmp_path / "xfail.txt"
    bad_xfail.write_text("adam test_claim.py::test_fits\n")
    base = [f"--data-dir={data}", f"--results-dir={tmp_path / 'r'}", "--profile=smoke", "-p", "no:xdist"]
    for options, message in [
        ([f"--claims-xfail={bad_xfail}"], "*xfail.txt:1: expected 'optimizer_id: test-id-glob*"),
        (["--claims-compare=0007"], "*no session number 0007*"),
        (["--claims-compare=last", "--claims-compare-fail=CX:fast"], "*bad failure rule 'CX:fast'*"),
        (["--claims-compare-fail=CX:5%"], "*--claims-compare-fail needs --claims-compare=REF*"),
        (["--tune-lr", "--tune-lr-grid=0.1,-1"], "*bad learning-rate grid*"),
    ]:
        result = run_inprocess(pytester, *base, *options)  # stops in pytest_configure
        assert result.ret == 4, options
        result.stderr.fnmatch_lines([message])
    assert not (tmp_path / "r" / "runs").exists()


def test_each_xdist_worker_gets_one_gpu_when_several_are_visible(monkeypatch):
    import types

    import torch

    from harness.suite import gpus as plugin

    assert plugin.worker_gpu("gw0", None, 4) == "0"
    assert plugin.worker_gpu("gw5", None, 4) == "1"
    assert plugin.worker_gpu("gw1", "2,3", 4) == "3"
    assert plugin.worker_gpu("gw2", "2,3", 2) == "2"
    worker, controller = types.SimpleNamespace(workerinput={"workerid": "gw3"}), types.SimpleNamespace()
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    monkeypatch.setattr(torch.cuda, "_device_count_nvml", lambda: 1)
    assert plugin.pin_worker_gpu(worker) is None and plugin.os.environ["CUDA_VISIBLE_DEVICES"] == "4,5,6"
    monkeypatch.setattr(torch.cuda, "_device_count_nvml", lambda: 3)
    assert plugin.pin_worker_gpu(controller) is None  # a run started inside a worker inherits its variable
    assert plugin.pin_worker_gpu(worker) == "4" and plugin.os.environ["CUDA_VISIBLE_DEVICES"] == "4"
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    assert plugin.pin_worker_gpu(worker) is None  # not an xdist worker: every GPU stays visible


def test_the_optimizer_of_the_check_your_optimizer_guide_runs_tuned_beside_the_papers_sgd(pytester, tmp_path):
    """The guide's example optimizer is real code: it resolves, is tuned, and trains a claim."""
    import re

    guide = (Path(__file__).resolve().parents[1] / "docs" / "check-your-optimizer.md").read_text()
    code = re.search(r"<!-- example-optimizer[^>]*-->\n```python\n(.*?)```", guide, re.S).group(1)
    data = setup_project(pytester, tmp_path)
    pytester.makepyfile(myopt=code)
    result = run_inprocess(
        pytester,
        f"--data-dir={data}",
        f"--results-dir={tmp_path / 'r'}",
        "--profile=smoke",
        "-p",
        "no:xdist",
        "--optimizer=paper_sgd",
        "--optimizer=myopt:Lion",
        "--tune-lr",
        "--tune-lr-grid=1e-3,1e-2",
    )
    result.stdout.fnmatch_lines(
        [
            "claims: tuning Lion: lr 0.001 *",  # the spec's own default rate, first
            "claims optimizers: paper_sgd (torch *); myopt:Lion (myopt no version, code sha256:* of myopt.py) lr * (tuned)",
            "| claim | paper_sgd (reference) | Lion |",
            "*2 passed*",
        ]
    )


def test_claims_report_option_renders_the_report_at_the_end(pytester, tmp_path):
    # A process of its own: drawing imports matplotlib's backends, and modules first imported inside an
    # in-process session are dropped from sys.modules after it; the second copy of matplotlib that a later
    # import makes breaks the report tests that run after this one in the same process.
    data = setup_project(pytester, tmp_path)
    report = tmp_path / "report"
    result = pytester.runpytest_subprocess(
        f"--data-dir={data}",
        f"--results-dir={tmp_path / 'r'}",
        "--profile=smoke",
        "-p",
        "no:xdist",
        f"--claims-report={report}",
    )
    result.stdout.fnmatch_lines(["report written to *report.md"])
    assert "CX" in (report / "report.md").read_text()


NUMPY_CLAIM = """
import numpy as np


def test_numpy_figure(claim_figure):
    claim_figure("CY", "numpy figure", np.float64(0.25), "<= 1", np.bool_(True), spread=np.float32(0.5))
"""


def test_numpy_figures_travel_between_xdist_workers(pytester, tmp_path):
    """Claims often compute figures with numpy; they must reach the controller's summary intact."""
    setup_project(pytester, tmp_path)
    pytester.makepyfile(test_numpy=NUMPY_CLAIM)
    # The controller runs in this process; xdist's worker is a process of its own, so the figures still travel.
    result = run_inprocess(
        pytester, f"--results-dir={tmp_path / 'r'}", "--profile=smoke", "-n", "1", "-v", "test_numpy.py"
    )
    result.stdout.fnmatch_lines(["CY   holds  numpy figure: 0.25*", "*1 passed*"])


SCOPED_CLAIMS = """
import pytest

@pytest.mark.paper_scope("inception", source="Figure 1a")
def test_scoped(claim_run, claim_figure, model):
    record = claim_run(model, variant="true", max_passes=40, n_test=None)
    claim_figure("CX", f"train accuracy, {model}", record["train_accuracy"], "== 1.0", record["outcome"] == "fitted")

@pytest.mark.paper_scope("mlp_1x512", source="Table 1")
def test_in_scope(claim_figure, model):
    claim_figure("CY", f"in scope, {model}", 1.0, "== 1.0", True)

@pytest.mark.beyond_paper(reason="MNIST is not in the paper")
def test_extension(claim_figure):
    claim_figure("CZ", "an extension", 1.0, "== 1.0", True)
"""


def test_claims_beyond_the_papers_scope_skip_unless_extended_and_are_labelled(pytester, tmp_path):
    data = setup_project(pytester, tmp_path)
    pytester.makepyfile(test_claim=SCOPED_CLAIMS)
    common = (f"--data-dir={data}", f"--results-dir={tmp_path / 'r'}", "--profile=smoke", "-p", "no:xdist", "-rs")
    result = run_inprocess(pytester, *common)
    result.stdout.fnmatch_lines(
        [
            "*beyond the paper: mlp_1x512 is beyond the paper's scope for this claim (inception: Figure 1a); "
            "--claims-extended runs it*",
            "*beyond the paper: MNIST is not in the paper; --claims-extended runs it*",
            "*1 passed, 2 skipped*",
        ]
    )
    assert "[beyond the paper]" not in result.stdout.str()
    result = run_inprocess(pytester, *common, "--claims-extended", "-v")
    result.stdout.fnmatch_lines(
        [
            "CX   holds  train accuracy, mlp_1x512 [[]beyond the paper[]]: 1*",
            "CY   holds  in scope, mlp_1x512: 1*",
            "CZ   holds  an extension [[]beyond the paper[]]: 1*",
            "*3 passed*",
        ]
    )


def test_claims_export_writes_one_csv_row_per_figure(pytester, tmp_path):
    import csv

    data = setup_project(pytester, tmp_path)
    export = tmp_path / "figures.csv"
    result = run_inprocess(
        pytester,
        f"--data-dir={data}",
        f"--results-dir={tmp_path / 'r'}",
        "--profile=smoke",
        "-p",
        "no:xdist",
        f"--claims-export={export}",
    )
    result.stdout.fnmatch_lines(["*1 passed*"])
    (row,) = list(csv.DictReader(export.open()))
    assert (row["claim"], row["figure"], row["holds"], row["scope"], row["optimizer_spec"]) == (
        "CX",
        "train accuracy",
        "True",
        "paper",
        "paper_sgd",
    )
    assert row["session"] and row["outcome"] == "passed"


# Planted wrong answers: a figure that does not hold is the test's failure.
WRONG_ANSWERS = """
def test_wrong_at_once(claim_figure):
    claim_figure("CW", "planted wrong answer", 0.5, "== 1.0", False)
    claim_figure("CW", "never declared", 1.0, "== 1.0", True)


def test_wrong_with_the_group(claim_figure):
    claim_figure("CV", "first of a group, wrong", 0.25, "<= 0.1", False, check="deferred")
    claim_figure("CV", "second of the group", 1.0, "== 1.0", True)


def test_wrong_at_the_end(claim_figure):
    claim_figure("CU", "deferred to the end, wrong", 3, "< 2", False, check="deferred")
    claim_figure("CU", "reported only", 7, "reported", False, check=False)
"""


def test_a_figure_that_does_not_hold_fails_its_test_in_one_line_and_is_still_recorded(pytester, tmp_path):
    """claim_figure records the figure, then fails the test: the summary and the session file still show it."""
    setup_project(pytester, tmp_path)
    pytester.makepyfile(test_claim=WRONG_ANSWERS)
    results = tmp_path / "r"
    result = run_inprocess(pytester, f"--results-dir={results}", "--profile=smoke", "-p", "no:xdist", "-v")
    result.stdout.fnmatch_lines(
        [
            "*_ test_wrong_at_once _*",
            "CW: planted wrong answer = 0.5 (threshold == 1.0) -> FAILS",
            "*_ test_wrong_with_the_group _*",
            "CV: first of a group, wrong = 0.25 (threshold <= 0.1) -> FAILS",
            "*_ test_wrong_at_the_end _*",
            "CU: deferred to the end, wrong = 3 (threshold < 2) -> FAILS",
            "*claim figures*",
            "CU   FAILS  deferred to the end, wrong: 3  [[]< 2[]]",
            "CU   FAILS  reported only: 7  [[]reported[]]",
            "CV   FAILS  first of a group, wrong: 0.25  [[]<= 0.1[]]",
            "CV   holds  second of the group: 1*",
            "CW   FAILS  planted wrong answer: 0.5  [[]== 1.0[]]",
            "*= claims =*",
            "CU   FAILS   0/2 figures hold; deferred to the end, wrong: 3 [[]< 2[]]",
            "CV   FAILS   1/2 figures hold; first of a group, wrong: 0.25 [[]<= 0.1[]]",
            "CW   FAILS   0/1 figures hold; planted wrong answer: 0.5 [[]== 1.0[]]",
            "*3 failed*",
        ]
    )
    output = result.stdout.str()
    assert "never declared" not in output  # the test stopped at its first wrong figure
    assert "Traceback" not in output and "def test_wrong" not in output  # one line, no code
    (session,) = [json.loads(path.read_text()) for path in (results / "sessions").glob("*.json")]
    recorded = {(figure["claim"], figure["figure"], figure["holds"]) for figure in session["figures"]}
    assert recorded == {
        ("CW", "planted wrong answer", False),
        ("CV", "first of a group, wrong", False),
        ("CV", "second of the group", True),
        ("CU", "deferred to the end, wrong", False),
        ("CU", "reported only", False),
    }


def test_runs_per_gpu_starts_k_workers_per_gpu_and_refuses_what_it_cannot_do():
    from types import SimpleNamespace

    from harness.suite.gpus import workers_per_gpu

    option = SimpleNamespace(numprocesses=None, dist="no", tx=[])
    workers_per_gpu(option, 4, 2, has_xdist=True)
    assert (option.numprocesses, option.dist, option.tx) == (8, "load", ["popen"] * 8)
    steal = SimpleNamespace(numprocesses=None, dist="worksteal", tx=[])
    workers_per_gpu(steal, 2, 1, has_xdist=True)
    assert (steal.numprocesses, steal.dist) == (2, "worksteal")  # a distribution mode given is kept
    refusals = {
        "must be 1 or more": (SimpleNamespace(numprocesses=None, dist="no", tx=[]), 0, 1, True),
        "needs CUDA": (SimpleNamespace(numprocesses=None, dist="no", tx=[]), 2, 0, True),
        "install pytest-xdist": (SimpleNamespace(numprocesses=None, dist="no", tx=[]), 2, 1, False),
        "either -n or --runs-per-gpu": (SimpleNamespace(numprocesses=3, dist="load", tx=["popen"] * 3), 2, 1, True),
    }
    for message, (namespace, runs, gpus, has_xdist) in refusals.items():
        with pytest.raises(ValueError, match=message):
            workers_per_gpu(namespace, runs, gpus, has_xdist)


def test_runs_per_gpu_on_a_cpu_stops_before_anything_runs(pytester, tmp_path):
    data = setup_project(pytester, tmp_path)
    result = run_inprocess(pytester, f"--data-dir={data}", f"--results-dir={tmp_path / 'r'}", "--runs-per-gpu=2")
    result.stderr.fnmatch_lines(["*--runs-per-gpu needs CUDA; on a CPU, -n N sets the runs side by side*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert not (tmp_path / "r").exists()
