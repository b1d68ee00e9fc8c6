"""The run plan (--claims-plan) and the progress lines of a claims session."""

import json
import os
import shutil
from pathlib import Path

import pytest
from test_plugin import setup_project

from harness.core.config import get_profile
from harness.core.store import _figures_disagree, run_key
from harness.suite import plan

TWO_RUNS = """
def test_two_runs(claim_run, claim_figure):
    first = claim_run("mlp_1x512", variant="true", max_passes=40)
    second = claim_run("mlp_1x512", variant="true", seed=1, max_passes=40)
    fitted = first["outcome"] == second["outcome"] == "fitted"
    claim_figure("CX", "both fitted", first["train_accuracy"], "== 1.0", fitted)


def test_one_run_again(claim_run, claim_figure):
    true = claim_run("mlp_1x512", variant="true", max_passes=40)
    claim_figure("CY", "true labels fitted", true["train_accuracy"], "== 1.0", true["outcome"] == "fitted")


def test_theory(claim_figure):
    claim_figure("CT", "no training", 1.0, "== 1.0", True)
"""


def project(pytester, tmp_path):
    data = setup_project(pytester, tmp_path)
    pytester.makepyfile(test_claim=TWO_RUNS)
    return data, tmp_path / "r"


def toy_key(data, seed):
    config = get_profile("smoke").config(
        "mlp_1x512", data=f"npz:{data / 'cifar10-tiny.npz'}", variant="true", seed=seed, max_passes=40
    )
    return run_key(config)


def test_plan_lists_each_run_with_its_key_trains_nothing_and_skips_the_tests(pytester, tmp_path):
    data, results = project(pytester, tmp_path)
    result = pytester.runpytest_subprocess(
        f"--data-dir={data}", f"--results-dir={results}", "--profile=smoke", "--claims-plan", "-p", "no:xdist", "-rs"
    )
    result.stdout.fnmatch_lines(
        [
            "*claims plan*",
            f"*mlp_1x512 true seed 0 max_passes=40  to train *30 passes on CPU*key {toy_key(data, 0)}, 2 tests",
            f"*mlp_1x512 true seed 1 max_passes=40  to train *30 passes on CPU*key {toy_key(data, 1)}, 1 test",
            "runs: 2, reused 0, to train 2; estimated GPU time 0 s, CPU time 1 s*",
            "longest test: 1 s, test_claim.py::test_two_runs[[]paper_sgd[]]: its runs train one after another*",
            "  CPU mlp_1x512: 0.7 s per pass over 5,000 images*",
            "no training (tests without claim_run, not run now): test_claim.py (1)",
            "*3 skipped*",
        ]
    )
    result.stdout.fnmatch_lines(["SKIPPED [[]2[]] *: planned only"])
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_claim.py*: planned only: no training"])
    assert result.ret == 0
    assert "CX" not in result.stdout.str()  # figures of stand-in records are neither shown nor saved
    assert not results.exists()  # no run, lock, checkpoint or session file


def test_a_normal_session_prints_one_progress_line_per_run_trained_then_the_plan_finds_them_recorded(
    pytester, tmp_path
):
    data, results = project(pytester, tmp_path)
    common = (f"--data-dir={data}", f"--results-dir={results}", "--profile=smoke", "-p", "no:xdist")
    trained = pytester.runpytest_subprocess(*common)
    trained.stdout.fnmatch_lines(
        [
            "run 1 done: mlp_1x512 true seed 0 max_passes=40 (fitted in * passes, * s); elapsed * s",
            "run 2 done: mlp_1x512 true seed 1 max_passes=40 (fitted in * passes, * s); elapsed * s",
            "*3 passed*",
        ]
    )
    assert trained.stdout.str().count(" done: ") == 2  # the run the second test reuses is not counted again
    planned = pytester.runpytest_subprocess(*common, "--claims-plan")
    planned.stdout.fnmatch_lines(
        [
            "*mlp_1x512 true seed 1 max_passes=40  recorded*",
            "runs: 2, reused 2, to train 0; estimated GPU time 0 s, CPU time 0 s*",
        ]
    )


def test_plan_then_run_under_xdist_prints_the_plan_then_progress_with_the_time_left(pytester, tmp_path):
    data, results = project(pytester, tmp_path)
    result = pytester.runpytest_subprocess(
        f"--data-dir={data}", f"--results-dir={results}", "--profile=smoke", "-n", "2", "--claims-plan=run"
    )
    result.stdout.fnmatch_lines(
        [
            "*claims plan*",
            "runs: 2, reused 0, to train 2*",
            "planned in one process: -n is ignored while planning (nothing trains)",
        ]
    )
    result.stdout.fnmatch_lines(
        ["run 1/2 done: mlp_1x512 true seed * max_passes=40 (fitted in * passes, * s); elapsed * s, about * s left"]
    )
    result.stdout.fnmatch_lines(["run 2/2 done: *, about 0 s left"])
    assert result.stdout.str().count(" done: ") == 2
    assert len(list((results / "runs").iterdir())) == 2


SHORT_BEFORE_LONG = """
def test_short(claim_run, claim_figure):
    run = claim_run("mlp_1x512", variant="true", n_train=32, max_passes=40)
    claim_figure("CS", "short run fitted", run["train_accuracy"], "== 1.0", run["outcome"] == "fitted")


def test_theory(claim_figure):
    claim_figure("CT", "no training", 1.0, "== 1.0", True)


def test_long(claim_run, claim_figure):
    run = claim_run("mlp_1x512", variant="true", n_train=128, max_passes=40)
    claim_figure("CL", "long run fitted", run["train_accuracy"], "== 1.0", run["outcome"] == "fitted")
"""


def ran_in_order(result) -> list[str]:
    names = [
        line.split("::")[1].split()[0] for line in result.outlines if "test_order.py::" in line and "PASSED" in line
    ]
    return [name.split("[")[0] for name in names]


def test_plan_then_run_trains_the_longest_tests_first_and_without_a_plan_keeps_the_file_order(pytester, tmp_path):
    data = setup_project(pytester, tmp_path)
    pytester.makepyfile(test_order=SHORT_BEFORE_LONG)
    common = (f"--data-dir={data}", "--profile=smoke", "-p", "no:xdist", "-v", "test_order.py")
    planned = pytester.runpytest_subprocess(*common, f"--results-dir={tmp_path / 'a'}", "--claims-plan=run")
    planned.stdout.fnmatch_lines(["tests go longest first (by the estimated seconds of the runs they train)"])
    # 128 training images cost 4x the estimate of 32; the test that trains nothing goes last
    assert ran_in_order(planned) == ["test_long", "test_short", "test_theory"], planned.stdout.str()
    plain = pytester.runpytest_subprocess(*common, f"--results-dir={tmp_path / 'b'}")
    assert ran_in_order(plain) == ["test_short", "test_theory", "test_long"], plain.stdout.str()


def test_plan_then_run_under_xdist_gives_every_worker_the_same_order(pytester, tmp_path):
    """Workers that collected different orders would stop xdist ("Different tests were collected")."""
    data = setup_project(pytester, tmp_path)
    pytester.makepyfile(test_order=SHORT_BEFORE_LONG)
    result = pytester.runpytest_subprocess(
        f"--data-dir={data}", f"--results-dir={tmp_path / 'r'}", "--profile=smoke", "-n", "2", "--claims-plan=run"
    )
    result.stdout.fnmatch_lines(["tests go longest first*", "*4 passed*"])  # with setup_project's test_claim.py
    assert "Different tests were collected" not in result.stdout.str()


def test_test_seconds_add_the_estimates_of_the_runs_each_test_trains_and_order_by_them():
    entry = {"status": "to train", "seconds": 10.0, "tests": ["a", "b"]}
    run_plan = plan.Plan(
        runs={
            "k1": {**entry, "id": "k1"},
            "k2": {**entry, "id": "k2", "seconds": 5.0, "tests": ["b"]},
            "k3": {**entry, "id": "k3", "status": "recorded", "tests": ["c"]},
            "k4": {**entry, "id": "k4", "seconds": None, "tests": ["d"]},
        }
    )
    seconds = plan.test_seconds(run_plan)
    assert seconds == {"a": 10.0, "b": 15.0}  # a recorded run and a run without an estimate count for nothing

    class Item:
        def __init__(self, nodeid):
            self.nodeid = nodeid

    items = [Item(name) for name in ("c", "a", "d", "b")]
    assert [item.nodeid for item in plan.longest_first(items, seconds)] == ["b", "a", "c", "d"]


def test_plan_of_the_paper_tier_on_a_cpu_plans_gpu_claims_and_lists_runs_without_data(pytester, tmp_path):
    """Planning needs neither CUDA nor the data: gpu claims are planned, absent data is named per run."""
    project(pytester, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = pytester.runpytest_subprocess(
        f"--data-dir={empty}",
        f"--results-dir={tmp_path / 'r'}",
        "--profile=paper",
        "-m",
        "gpu",
        "--claims-plan",
        "-p",
        "no:xdist",
    )
    result.stdout.fnmatch_lines(
        [
            "*mlp_1x512 true seed 1 max_passes=40  data missing *40 passes on GPU*key -, 1 test",
            "runs: 2, reused 0, to train 0, data missing 2; *",
            "data missing: no cifar10 data in*",
            "*2 skipped, 1 deselected*",
        ]
    )
    assert "needs a CUDA device" not in result.stdout.str()


def shared_data() -> Path | None:
    """The shared data folder (HARNESS_DATA_DIR, else ../shared/data beside the project) if it holds CIFAR-10's copy."""
    root = Path(__file__).resolve().parents[1]
    # Absolute: the plan runs in pytester's own folder, where a relative HARNESS_DATA_DIR means nothing.
    folder = Path(os.environ.get("HARNESS_DATA_DIR") or root.parent / "shared" / "data").resolve()
    return folder if list(folder.glob("cifar10*.npz")) else None


SHARED_DATA = shared_data()  # resolved now: pytester's tests run in a folder of their own


@pytest.mark.skipif(SHARED_DATA is None, reason="the plan of the real claims needs the shared data folder")
def test_plan_of_the_real_smoke_tier_lists_its_runs_and_trains_nothing(pytester, tmp_path):
    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "conftest.py", pytester.path / "conftest.py")
    shutil.copytree(root / "claims", pytester.path / "claims")
    results = tmp_path / "r"
    result = pytester.runpytest_subprocess(
        "claims",
        f"--data-dir={SHARED_DATA}",
        f"--results-dir={results}",
        "--profile=smoke",
        "--claims-plan",
        "--claims-extended",  # the weight-decay sweep is AlexNet's in the paper: on the MLP an extension
        "-p",
        "no:xdist",
    )
    result.stdout.fnmatch_lines(
        [
            "*mlp_1x512 random seed 0 weight_decay=0.05 * to train *150 passes on CPU (whole budget*",
            "*mlp_1x512 partial p=0.4 seed 0 * to train *30 passes on CPU*",
            "*mlp_1x512 random seed 1 * to train *",
            "runs: *, reused 0, to train *; estimated GPU time 0 s, CPU time * min *",
            "no training (tests without claim_run, not run now): claims/test_c08_expressivity.py*",
        ]
    )
    assert result.ret == 0 and not results.exists()


# --- the plan's parts, without pytest sessions ---------------------------------------------


def smoke(**changes):
    return get_profile("smoke").config("mlp_1x512", **changes)


def paper(model, **changes):
    return get_profile("paper").config(model, **changes)


def test_estimates_are_measured_seconds_per_pass_times_expected_passes_scaled_by_the_set():
    assert plan.estimate(smoke(variant="random"), 5_000, "cifar10") == plan.Estimate(
        30, pytest.approx(21.0), "CPU", "subset of cifar10: about 30 passes measured for any labels"
    )
    assert plan.estimate(smoke(variant="random"), 2_500, "cifar10").seconds == pytest.approx(10.5)
    inception = plan.estimate(paper("inception", variant="random"), 50_000, "cifar10")
    assert (inception.passes, inception.seconds, inception.device) == (52, pytest.approx(83.2), "GPU")
    assert plan.estimate(paper("inception", variant="true"), 50_000, "cifar10").passes == 26
    assert plan.estimate(paper("alexnet", variant="partial", corruption=0.4), 50_000, "cifar10").passes == 43
    assert plan.estimate(paper("alexnet", variant="random", weight_decay=0.05), 50_000, "cifar10").passes == 150
    assert plan.estimate(smoke(variant="true", weight_decay=0.02), 5_000, "cifar10").passes == 30  # fits
    assert plan.estimate(smoke(variant="true", weight_decay=0.05), 5_000, "cifar10").passes == 150  # 83.02% at 150
    assert (
        plan.estimate(paper("mlp_1x512", variant="random", dropout=0.5, max_passes=20), 50_000, "cifar10").passes == 20
    )  # capped at the budget
    assert plan.estimate(smoke(variant="random").replace(model="alexnet"), 5_000, "cifar10").seconds is None


def entry(label, status, seconds, device="GPU", key=None):
    return {
        "id": key or label,
        "key": key or label,
        "label": label,
        "status": status,
        "why": None,
        "passes": 10,
        "seconds": seconds,
        "device": device,
        "basis": "b",
        "model": "mlp_1x512",
        "n_train": 5_000,
    }


class Report:
    def __init__(self, nodeid, *entries):
        self.nodeid, self.user_properties = nodeid, [(plan.PLAN_PROPERTY, e) for e in entries]


def test_plan_totals_add_up_the_runs_to_train_and_list_them_longest_first():
    runs = plan.Plan()
    runs.note_report(Report("a.py::one", entry("short", "to train", 30.0), entry("long", "to train", 600.0)))
    runs.note_report(
        Report(
            "a.py::two",
            entry("long", "to train", 600.0),
            entry("done", "recorded", 900.0),
            entry("cpu", "to train", 90.0, device="CPU"),
            entry("unknown", "to train", None),
        )
    )
    runs.note_report(Report("b.py::theory", {"no_training": True}))
    lines = runs.lines()
    assert [line.split()[1] for line in lines[:5]] == ["done", "long", "cpu", "short", "unknown"]
    assert "key long, 2 tests" in lines[1]
    assert lines[5].startswith(
        "runs: 5, reused 1, to train 4; estimated GPU time 10 min 30 s, CPU time 1 min 30 s "
        "(+ 1 run without an estimate)"
    )
    assert lines[-1] == "no training (tests without claim_run, not run now): b.py (1)"
    assert runs.to_train() == {"short": 30.0, "long": 600.0, "cpu": 90.0, "unknown": None}
    assert plan.Plan.from_json(runs.to_json()).lines() == lines


def test_a_stand_in_record_reads_like_a_fitted_run_with_chance_test_accuracy_on_random_labels():
    config = smoke(variant="partial", corruption=0.4, data="npz:/nowhere.npz")
    record = plan.stand_in_record(
        config, "k", n_train=5_000, n_test=1_000, num_classes=10, source="s", passes=30, seconds=21.0
    )
    assert _figures_disagree(record) is None  # the store would trust its figures: curves and summary agree
    assert record["outcome"] == "fitted" and record["passes_to_fit"] == 30 and record["steps_to_fit"] == 30 * 40
    assert sum(map(sum, record["test_confusion"])) == 1_000 == sum(record["test_label_counts"])
    assert record["test_accuracy"] == pytest.approx(0.1 + 0.4 * 0.6, abs=0.01)
    clean, corrupted = record["curves"]["train_accuracy_clean"], record["curves"]["train_accuracy_corrupted"]
    assert clean.index(1.0) < corrupted.index(1.0) == 29
    random = plan.stand_in_record(
        smoke(variant="random"), "k", n_train=5_000, n_test=10_000, num_classes=10, source="s", passes=30, seconds=None
    )
    assert random["test_accuracy"] == 0.1 and "train_accuracy_clean" not in random["curves"]


def test_progress_counts_each_trained_run_once_and_estimates_what_is_left_only_with_a_plan():
    def trained(key, seconds, reused=False):
        return {
            "key": key,
            "label": f"mlp_1x512 {key}",
            "reused": reused,
            "reason": "fitted in 27 passes",
            "seconds": {"training": seconds, "evaluation": 0.0, "setup": 0.0},
        }

    without = plan.Progress(started=0.0)
    assert without.finished(trained("a", 19.0), now=250.0) == (
        "run 1 done: mlp_1x512 a (fitted in 27 passes, 19 s); elapsed 4 min 10 s"
    )
    assert without.finished(trained("a", 19.0), now=260.0) is None  # another test's use of the same run
    assert without.finished(trained("b", 5.0, reused=True), now=260.0) is None
    with_plan = plan.Progress(started=0.0, workers=2, planned={"a": 10.0, "b": 100.0, "c": 300.0})
    # a took twice its estimate: what is left (400 s of estimates) is read as 800 s, over 2 workers
    assert with_plan.finished(trained("a", 20.0), now=30.0).endswith("elapsed 30 s, about 6 min 40 s left")
    assert with_plan.finished(trained("a", 20.0), now=31.0) is None
    assert with_plan.finished(trained("b", 200.0), now=230.0).startswith("run 2/3 done: ")
    assert plan.duration(7_500) == "2 h 5 min"


def test_planning_before_a_session_leaves_its_junit_file_to_the_session(pytester, tmp_path):
    data, results = project(pytester, tmp_path)
    junit = tmp_path / "junit.xml"
    arguments = [f"--data-dir={data}", f"--results-dir={results}", "--profile=smoke", "-p", "no:xdist"]
    run_plan, why = plan.plan_in_child_process([*arguments, f"--junitxml={junit}", "--claims-plan"], pytester.path)
    assert run_plan is not None, why
    assert len(run_plan.runs) == 2
    assert not junit.exists()  # the plan's skipped tests did not take the session's file


def test_the_ini_setting_claims_plan_run_plans_every_session_first_unless_off(pytester, tmp_path):
    data = setup_project(pytester, tmp_path)
    pytester.makepyfile(test_order=SHORT_BEFORE_LONG)
    pytester.makeini("[pytest]\nclaims_plan = run\n")
    common = (f"--data-dir={data}", "--profile=smoke", "-p", "no:xdist", "-v", "test_order.py")
    planned = pytester.runpytest_subprocess(*common, f"--results-dir={tmp_path / 'a'}")
    planned.stdout.fnmatch_lines(["*claims plan*", "tests go longest first*"])
    assert ran_in_order(planned) == ["test_long", "test_short", "test_theory"]
    off = pytester.runpytest_subprocess(*common, f"--results-dir={tmp_path / 'b'}", "--claims-plan=off")
    assert "claims plan" not in off.stdout.str()
    assert ran_in_order(off) == ["test_short", "test_theory", "test_long"]
    pytester.makeini("[pytest]\nclaims_plan = sometimes\n")
    wrong = pytester.runpytest_subprocess(*common, f"--results-dir={tmp_path / 'c'}")
    wrong.stderr.fnmatch_lines(["*ini setting claims_plan must be run or off, not 'sometimes'*"])
    assert wrong.ret == pytest.ExitCode.USAGE_ERROR


CONVNET_AND_MLP = """
def test_two_models(claim_run, claim_figure):
    convnet = claim_run("alexnet", variant="random")
    mlp = claim_run("mlp_1x512", variant="random")
    claim_figure("CP", "fitted", convnet["train_accuracy"], "== 1.0", convnet["outcome"] == mlp["outcome"] == "fitted")
"""


def test_convnet_precision_changes_the_convnets_runs_only_and_is_refused_where_training_is_on_a_cpu(pytester, tmp_path):
    setup_project(pytester, tmp_path)
    pytester.makepyfile(test_claim=CONVNET_AND_MLP)
    empty = tmp_path / "empty"
    empty.mkdir()
    common = (f"--data-dir={empty}", f"--results-dir={tmp_path / 'r'}", "-p", "no:xdist")
    planned = pytester.runpytest_subprocess(*common, "--profile=paper", "--claims-plan", "--convnet-precision=bf16")
    planned.stdout.fnmatch_lines(["claims precision: convnets in bf16 (--convnet-precision)"])
    planned.stdout.fnmatch_lines(["*alexnet random seed 0 precision=bf16 *data missing*"])
    planned.stdout.fnmatch_lines(["*mlp_1x512 random seed 0 *data missing*"])
    assert "mlp_1x512 random seed 0 precision=" not in planned.stdout.str()
    refused = pytester.runpytest_subprocess(*common, "--profile=smoke", "--convnet-precision=bf16")
    refused.stderr.fnmatch_lines(["*--convnet-precision bf16 is a GPU setting; the claim runs here train on cpu*"])
    assert refused.ret == pytest.ExitCode.USAGE_ERROR


def test_a_plan_that_takes_too_long_is_given_up_and_the_session_told_why(monkeypatch, tmp_path):
    def stuck(command, **kwargs):
        raise plan.subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(plan.subprocess, "run", stuck)
    run_plan, why = plan.plan_in_child_process(["--claims-plan"], tmp_path)
    assert run_plan is None
    assert why == f"planning took over {plan.PLANNING_TIMEOUT_S:g} s and was stopped"


def test_prefetch_trains_each_planned_run_as_an_item_first_and_the_claim_tests_reuse_them(pytester, tmp_path):
    data = setup_project(pytester, tmp_path)
    pytester.makepyfile(test_order=SHORT_BEFORE_LONG)
    common = (f"--data-dir={data}", "--profile=smoke", "-v", "test_order.py", "--claims-plan=run")
    result = pytester.runpytest_subprocess(
        *common, f"--results-dir={tmp_path / 'a'}", "-p", "no:xdist", "--claims-prefetch"
    )
    ran = [line.split()[0] for line in result.outlines if line.endswith("]") and " PASSED " in line]
    long_key, short_key = (toy_key_of(data, n_train) for n_train in (128, 32))
    assert ran[:2] == [f"claims-prefetch::train[{long_key}]", f"claims-prefetch::train[{short_key}]"], ran
    assert [name.split("::")[1].split("[")[0] for name in ran[2:]] == ["test_long", "test_short", "test_theory"]
    result.stdout.fnmatch_lines(["run 1/2 done: mlp_1x512 true seed 0 n_train=128 max_passes=40 *", "*5 passed*"])
    assert result.stdout.str().count(" done: ") == 2  # the claim tests reused the prefetched records
    result.stdout.fnmatch_lines(["CL   holds *", "CS   holds *"])
    session = json.loads(next((tmp_path / "a" / "sessions").glob("*.json")).read_text())
    # the items are no claim tests (no verdict of their own); test_theory, with no optimizer, is none either
    assert sorted(session["tests"]) == ["test_order.py::test_long[paper_sgd]", "test_order.py::test_short[paper_sgd]"]
    assert session["runs"] == {"trained": 2, "used": 2}
    workers = pytester.runpytest_subprocess(*common, f"--results-dir={tmp_path / 'b'}", "-n", "2", "--claims-prefetch")
    workers.stdout.fnmatch_lines(["*5 passed*"])  # every worker collected the same items
    refused = pytester.runpytest_subprocess(
        *common, f"--results-dir={tmp_path / 'c'}", "--claims-plan=off", "--claims-prefetch"
    )
    refused.stderr.fnmatch_lines(["*--claims-prefetch trains the plan's runs: it needs --claims-plan=run*"])


def toy_key_of(data, n_train):
    config = get_profile("smoke").config(
        "mlp_1x512", data=f"npz:{data / 'cifar10-tiny.npz'}", variant="true", n_train=n_train, max_passes=40
    )
    return run_key(config)
