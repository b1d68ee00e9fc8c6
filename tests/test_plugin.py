"""The pytest plugin, driven in a subprocess with its output matched."""

import shutil
from pathlib import Path

from arrays_files import write_arrays_file

CLAIM = '''
def test_fits(claim_run, claim_figure):
    record = claim_run("mlp_1x512", variant="true", max_passes=40, n_test=None)
    claim_figure("CX", "train accuracy", record["train_accuracy"], "== 1.0", record["outcome"] == "fitted")
    assert record["outcome"] == "fitted"
'''


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


def test_header_names_profile_device_data_and_versions(pytester, tmp_path):
    data = setup_project(pytester, tmp_path)
    result = pytester.runpytest_subprocess(f"--data-dir={data}", f"--results-dir={tmp_path / 'r'}",
                                           "--profile=smoke", "-p", "no:xdist")
    result.stdout.fnmatch_lines([
        "claims profile: smoke*",
        "claims device: cpu; torch *, CUDA *",
        "claims data: cifar10=npz:*cifar10-tiny.npz, mnist=absent*",
        "*claim figures*",
        "CX   holds  train accuracy: 1*",
        "*1 passed*",
    ])
    assert list((tmp_path / "r" / "sessions").glob("*-smoke.json"))


def test_missing_data_skips_with_the_reason(pytester, tmp_path):
    setup_project(pytester, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = pytester.runpytest_subprocess(f"--data-dir={empty}", "--profile=smoke", "-rs", "-p", "no:xdist")
    result.stdout.fnmatch_lines(["*no cifar10 data in*HARNESS_DATA_DIR*", "*1 skipped*"])


def test_paper_profile_marks_training_claims_gpu_and_skips_them_without_cuda(pytester, tmp_path):
    import torch

    if torch.cuda.is_available():
        return  # on a GPU machine the claim would run for real
    data = setup_project(pytester, tmp_path)
    result = pytester.runpytest_subprocess(f"--data-dir={data}", "--profile=paper", "-m", "gpu", "-rs",
                                           "-p", "no:xdist")
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
    result = pytester.runpytest_subprocess(
        f"--data-dir={data}", f"--results-dir={tmp_path / 'r'}", "--profile=smoke", "-p", "no:xdist",
        "--optimizer=paper_sgd", "--optimizer=brokenopt:frozen",
    )
    result.stdout.fnmatch_lines([
        "claims optimizers: paper_sgd (torch *); brokenopt:frozen (brokenopt no version)",
        "*CX   FAILS  train accuracy <frozen>*",
        "*CX   holds  train accuracy <paper_sgd>*",
        "*1 failed, 1 passed*",
    ])
    result.stdout.fnmatch_lines(["FAILED test_claim.py::test_fits[[]frozen[]]*"])


def test_an_unresolvable_optimizer_stops_before_anything_trains(pytester, tmp_path):
    data = setup_project(pytester, tmp_path)
    result = pytester.runpytest_subprocess(f"--data-dir={data}", "--profile=smoke", "-p", "no:xdist",
                                           "--optimizer=nosuchpackage.thing:Opt")
    assert result.ret == 4  # pytest's usage error
    result.stderr.fnmatch_lines(["*optimizer 'nosuchpackage.thing:Opt' cannot be imported*"])
    assert not (tmp_path / "r").exists()
