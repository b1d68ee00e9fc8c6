"""Inputs at the edge of what a run can take: refused before anything trains, in one line naming the limit.

Seeds beyond 64 bits, a learning-rate decay that is no decay factor, a home
folder in the results path, images without channels, and a training set of
one image.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
from support import EnvironmentKept, write_arrays_file

from harness.__main__ import main
from harness.core.config import RunConfig
from harness.core.data import DataError, load_arrays_file
from harness.core.store import results_dir


def fit(data, *args):
    return main(["fit", "--data", f"npz:{data}", "--max-passes", "1", "--device", "cpu", "--quiet", *args])


def refused_in_one_line(capsys, status, message):
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2, lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    return lines[0]


# --- seeds -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [2**70, 2**63, -1])
def test_a_seed_outside_64_bits_is_refused_naming_the_range(seed):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\]"):
        RunConfig(seed=seed)


def test_the_largest_64_bit_seed_is_taken():
    assert RunConfig(seed=2**63 - 1).seed == 2**63 - 1


def test_the_command_line_refuses_a_huge_seed_before_training(tiny_npz, results, capsys):
    status = fit(tiny_npz, "--seed", str(2**70))
    refused_in_one_line(capsys, status, "[0, 2**63 - 1]")
    assert not (results / "runs").exists()


# --- learning-rate decay -----------------------------------------------------------------------


@pytest.mark.parametrize("decay", [-0.5, 0.0, 1.5, float("nan")])
def test_an_lr_decay_outside_0_to_1_is_refused(decay):
    with pytest.raises(ValueError, match=r"lr_decay .* must lie in \(0, 1\]"):
        RunConfig(lr_decay=decay)


def test_an_lr_decay_of_one_keeps_the_rate():
    assert RunConfig(lr_decay=1.0).lr_decay == 1.0


def test_a_stored_record_with_an_old_setting_still_reads():
    old = RunConfig.from_dict({**RunConfig().to_dict(), "lr_decay": 1.5, "seed": -1, "n_train": 1})
    assert (old.lr_decay, old.seed, old.n_train) == (1.5, -1, 1)


def test_the_command_line_refuses_a_negative_lr_decay_before_training(tiny_npz, results, capsys):
    status = fit(tiny_npz, "--lr-decay", "-0.5", "--max-passes", "2", "--n-train", "64")
    refused_in_one_line(capsys, status, "lr_decay")
    assert not (results / "runs").exists()


# --- ~ in the results folder -------------------------------------------------------------------


def test_the_results_variable_expands_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HARNESS_RESULTS_DIR", "~/results")
    assert results_dir() == tmp_path / "results"


def test_the_results_option_expands_the_home_folder(tiny_npz, tmp_path, monkeypatch, capsys):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HARNESS_RESULTS_DIR", raising=False)
    monkeypatch.chdir(work)
    status = fit(tiny_npz, "--results-dir", "~/results", "--n-train", "64", "--n-test", "32")
    assert status in (0, 3), capsys.readouterr().err
    assert (home / "results" / "runs").is_dir()
    assert not (work / "~").exists()


# --- images without channels -------------------------------------------------------------------


def zero_channel_file(path):
    write_arrays_file(path, n_train=32, n_test=16)
    with np.load(path) as arrays:
        values = dict(arrays)
    values["train_x"] = np.zeros((32, 28, 28, 0), np.uint8)
    values["test_x"] = np.zeros((16, 28, 28, 0), np.uint8)
    np.savez(path, **values)
    return path


def test_images_without_channels_are_refused_at_load_naming_file_and_shape(tmp_path):
    path = zero_channel_file(tmp_path / "empty.npz")
    with pytest.raises(DataError) as refused:
        load_arrays_file(path)
    assert str(path) in str(refused.value) and "(32, 28, 28, 0)" in str(refused.value)


def test_the_command_line_refuses_images_without_channels_in_one_line(tmp_path, results, capsys):
    path = zero_channel_file(tmp_path / "empty.npz")
    line = refused_in_one_line(capsys, fit(path), "(32, 28, 28, 0)")
    assert str(path) in line


# --- a training set of one image ---------------------------------------------------------------


def test_a_one_image_subset_is_refused():
    with pytest.raises(ValueError, match="n_train must be at least 2"):
        RunConfig(n_train=1)


def test_an_arrays_file_of_one_training_image_is_refused(tmp_path):
    path = tmp_path / "one.npz"
    images = np.random.default_rng(0).integers(0, 255, (3, 28, 28), dtype=np.uint8)
    np.savez(path, train_x=images[:1], train_y=np.array([0]), test_x=images[1:], test_y=np.array([0, 0]))
    with pytest.raises(DataError, match="at least 2 images"):
        load_arrays_file(path)


def test_the_command_line_refuses_one_training_image(tiny_npz, results, capsys):
    status = fit(tiny_npz, "--n-train", "1", "--variant", "random")
    refused_in_one_line(capsys, status, "n_train must be at least 2")
    assert not (results / "runs").exists()


def test_the_pytest_option_expands_the_home_folder(pytester, tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "conftest.py", pytester.path / "conftest.py")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    pytester.makepyfile(
        test_where=f"""
import os

def test_results_folder():
    assert os.environ["HARNESS_RESULTS_DIR"] == {str(home / "results")!r}
"""
    )
    with EnvironmentKept():  # in this process: the plugin reads HOME when it expands ~, not at import
        result = pytester.runpytest_inprocess("--results-dir=~/results", "-p", "no:xdist")
    result.assert_outcomes(passed=1)


# --- a subset of one class -----------------------------------------------------------------------


def test_a_training_subset_that_lands_on_one_class_is_refused_before_training(tmp_path, results, capsys):
    """A set of two classes, most images of one: a seed whose 2-image subset is all class 0 is refused."""
    from harness.core.data import subset_indices

    labels = np.zeros(220, dtype=np.int64)
    labels[::11] = 1  # 20 images of class 1, 200 of class 0
    rng = np.random.default_rng(0)
    path = tmp_path / "lopsided.npz"
    np.savez(
        path,
        train_x=rng.integers(0, 256, (220, 28, 28), dtype=np.uint8),
        train_y=labels,
        test_x=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        test_y=np.arange(20) % 2,
    )
    one_class = next(seed for seed in range(100) if len(set(labels[subset_indices(220, 2, seed)])) == 1)
    two_classes = next(seed for seed in range(100) if len(set(labels[subset_indices(220, 2, seed)])) == 2)
    status = fit(path, "--n-train", "2", "--seed", str(one_class))
    refused_in_one_line(capsys, status, f"the 2-image training subset drawn with seed {one_class} holds one class (0)")
    assert not (results / "runs").exists()
    assert fit(path, "--n-train", "2", "--seed", str(two_classes)) in (0, 3)  # planted contrast: it trains


# --- a model whose defaults do not train -------------------------------------------------------------


def test_fit_names_the_paper_tiers_settings_of_a_model_left_at_defaults_that_do_not_train(
    tiny_npz, results, capsys, monkeypatch
):
    """inception_no_bn at PyTorch's default init never starts fitting random labels: fit says what the paper
    tier uses instead (the run itself is not the point here: the store is stubbed)."""
    from harness.core import runner

    monkeypatch.setattr(runner, "cached_fit", lambda config, **kwargs: {"outcome": "fitted", "config": {}})
    assert fit(tiny_npz, "--model", "inception_no_bn") == 0
    err = capsys.readouterr().err
    assert "note: inception_no_bn trains here at the defaults (init default, lr None, lr_decay 0.95)" in err
    assert "--init he --lr 0.02 --lr-decay 0.98" in err
    assert fit(tiny_npz, "--model", "inception_no_bn", "--init", "he", "--lr", "0.02", "--lr-decay", "0.98") == 0
    assert "note:" not in capsys.readouterr().err
    assert fit(tiny_npz, "--model", "mlp_1x512") == 0
    assert "note:" not in capsys.readouterr().err


def test_report_and_sessions_read_the_home_folder_in_results_dir(tmp_path, monkeypatch, capsys):
    """'~' in --results-dir (and the report's older --results) is the home folder for every command."""
    from harness.report.render import main as report_main
    from harness.suite.sessions_cli import main as sessions_main

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "r" / "sessions").mkdir(parents=True)
    assert sessions_main(["--results-dir=~/r", "list"]) == 0
    assert report_main(["--results-dir=~/r"]) == 0 and (tmp_path / "r" / "report" / "report.md").exists()
    assert report_main(["--results", "~/r", "--out", "~/out"]) == 0 and (tmp_path / "out" / "report.md").exists()
    assert not any(path.name == "~" for path in Path.cwd().iterdir())
