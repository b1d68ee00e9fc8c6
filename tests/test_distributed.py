"""The ImageNet tier's DDP path on the CPU: gloo, two processes, a tiny image folder.

Two torchrun launches (a run that must match one process, a run whose rank 1 dies);
everything else trains in this process as a world of one. About 25 s on two cores.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from PIL import Image
from torchvision import datasets

from harness.imagenet import distributed
from harness.imagenet.data import draw_labels, labels_checksum, load_folder
from harness.imagenet.distributed import FAIL_RANK_ENV, FAIL_STEP_ENV, FAULT_EXIT_CODE, check_identical_across_ranks

REPOSITORY = Path(__file__).resolve().parents[1]
CLASSES, TRAIN_PER_CLASS, VAL_PER_CLASS = 4, 12, 4
LAUNCH_TIMEOUT = 120  # seconds: a launch takes about 10 s here; a hang would take the collective timeout (60 s)
SEED = 3
GLOBAL_BATCH, EPOCHS = 8, 2
# A network without batch statistics (the paper's MLP 1x512 on 28x28 crops), so that
# two ranks and one process compute the same thing.
RUN = [
    "--model",
    "mlp_1x512",
    "--image-size",
    "28",
    "--global-batch",
    str(GLOBAL_BATCH),
    "--epochs",
    str(EPOCHS),
    "--lr",
    "0.01",
    "--momentum",
    "0.9",
    "--workers",
    "0",
    "--seed",
    str(SEED),
    "--timeout-seconds",
    "60",
]


def _write_folder(root: Path, classes: int, train_per_class: int, val_per_class: int) -> Path:
    """32x32 noise PNGs in ImageFolder's layout: root/{train,val}/<class>/<image>."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for label in range(classes):
            class_folder = root / split / f"n{label:08d}"
            class_folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(class_folder / f"image_{index:04d}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return _write_folder(tmp_path_factory.mktemp("imagenet-layout"), CLASSES, TRAIN_PER_CLASS, VAL_PER_CLASS)


def _torchrun(folder: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "harness.imagenet.distributed",
        "--data",
        str(folder),
        "--record",
        str(out / "record.json"),
        "--checkpoint",
        str(out / "checkpoint.pt"),
        *RUN,
        *extra,
    ]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("HARNESS_DDP_")}
    environment.update(env or {}, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        command, cwd=REPOSITORY, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _train_here(folder: Path, out: Path, *extra: str) -> dict:
    """One process, no torchrun: a world of one with the same code path."""
    return distributed.main(
        [
            "--data",
            str(folder),
            "--record",
            str(out / "record.json"),
            "--checkpoint",
            str(out / "checkpoint.pt"),
            *RUN,
            *extra,
        ]
    )


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoint.pt", weights_only=True)["model"]


def test_two_ranks_train_what_one_process_trains_with_the_same_global_batch(folder, tmp_path):
    """Same labels on every rank, and the same network as one process, up to float rounding.

    Tolerance per tensor: steps x eps32 x max|w| / (1 - momentum). Derivation: the two runs
    differ only in the order in which per-image gradients are summed (within a rank, then
    across ranks, against all at once), a difference of about one rounding (eps32 relative)
    per step; momentum re-applies each step's difference with total weight 1 / (1 - 0.9) = 10.
    Measured differences are about 1% of it; a wrong split of the batches or a gradient
    summed instead of averaged moves the weights by about lr x gradient, 1e3 times more.
    """
    launch = _torchrun(folder, tmp_path / "two")
    one = _train_here(folder, tmp_path / "one")
    output, _ = launch.communicate(timeout=LAUNCH_TIMEOUT)
    assert launch.returncode == 0, output
    two = json.loads((tmp_path / "two" / "record.json").read_text())

    targets = datasets.ImageFolder(str(folder / "train")).targets
    expected = f"{labels_checksum(draw_labels(np.asarray(targets), 'random', 0.0, CLASSES, SEED)):016x}"
    assert two["rank_labels_checksums"] == [expected, expected]  # each rank drew the same labels itself
    assert one["labels_checksum"] == two["labels_checksum"] == expected
    assert one["labels_changed"] > 0  # random labels, not the true ones
    assert (one["world_size"], one["per_rank_batch"]) == (1, GLOBAL_BATCH)
    assert (two["world_size"], two["per_rank_batch"]) == (2, GLOBAL_BATCH // 2)
    assert one["steps_per_epoch"] == two["steps_per_epoch"] == CLASSES * TRAIN_PER_CLASS // GLOBAL_BATCH
    assert two["n_train"] == CLASSES * TRAIN_PER_CLASS and two["n_test"] == CLASSES * VAL_PER_CLASS

    steps = EPOCHS * one["steps_per_epoch"]
    eps = torch.finfo(torch.float32).eps
    one_weights, two_weights = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for name, weight in one_weights.items():
        tolerance = steps * eps * float(weight.abs().max()) / (1 - 0.9)
        difference = float((weight - two_weights[name]).abs().max())
        assert difference <= tolerance, (
            f"{name}: two ranks and one process differ by {difference:.3g} > {tolerance:.3g}"
        )
    assert np.allclose(one["curves"]["loss"], two["curves"]["loss"], rtol=steps * eps / (1 - 0.9), atol=0)
    assert one["curves"]["train_accuracy_running"] == two["curves"]["train_accuracy_running"]
    assert (one["train_accuracy"], one["test_accuracy"]) == (two["train_accuracy"], two["test_accuracy"])
    assert "epoch 2/2" in output  # rank 0's progress lines


def test_a_rank_that_dies_fails_the_job_quickly_naming_the_rank(folder, tmp_path):
    """Rank 1 exits before its second step: the job must fail, not hang, and say which rank died."""
    started = time.monotonic()
    launch = _torchrun(folder, tmp_path, env={FAIL_RANK_ENV: "1", FAIL_STEP_ENV: "2"})
    try:
        output, _ = launch.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        launch.kill()
        pytest.fail(f"the job still ran {LAUNCH_TIMEOUT} s after rank 1 died: a rank hangs in a collective")
    seconds = time.monotonic() - started
    assert launch.returncode != 0, output
    assert "rank 1: fault injected before step 2" in output
    # torchrun's failure summary lists rank 1 with the exit code it chose. (Its "root cause" may
    # be the survivor instead: a rank that dies without an error file is timed when the agent
    # notices it, which can be after the survivor's own error about the broken connection.)
    assert re.search(rf"rank\s*:\s*1 \(local_rank: 1\)\s*\n\s*exitcode\s*:\s*{FAULT_EXIT_CODE}\b", output), output
    assert not (tmp_path / "record.json").exists()
    assert seconds < 60, f"failing took {seconds:.0f} s, as long as the collective timeout: the survivor hung"


def _check_in_threads(values_per_rank: list[dict]) -> list:
    """check_identical_across_ranks on two real gloo ranks, as threads of this process."""
    store, results = dist.HashStore(), [None, None]

    def rank(number: int) -> None:
        group = dist.ProcessGroupGloo(dist.PrefixStore("check", store), number, 2, timedelta(seconds=20))
        try:
            results[number] = check_identical_across_ranks(values_per_rank[number], torch.device("cpu"), group)
        except RuntimeError as error:
            results[number] = error

    threads = [threading.Thread(target=rank, args=(number,)) for number in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_ranks_that_disagree_on_the_labels_all_stop_with_a_message():
    same = {"file list": 11, "training labels": 22}
    assert _check_in_threads([same, same]) == [[[11, 22], [11, 22]]] * 2
    results = _check_in_threads([same, {"file list": 11, "training labels": 23}])
    for error in results:  # both ranks raise, so neither waits for the other
        assert isinstance(error, RuntimeError)
        assert "ranks disagree on the training labels" in str(error)
        assert f"rank 0: {22:016x}, rank 1: {23:016x}" in str(error)


def test_a_resumed_run_ends_where_an_uninterrupted_one_ends(folder, tmp_path):
    straight = _train_here(folder, tmp_path / "straight")
    _train_here(folder, tmp_path / "resumed", "--epochs", "1")  # stopped after one epoch
    resumed = _train_here(folder, tmp_path / "resumed")  # --epochs 2 again, same checkpoint
    assert resumed["resumed_after_epoch"] == 1
    for curve in ("loss", "train_accuracy_running", "test_accuracy", "lr"):
        assert resumed["curves"][curve] == straight["curves"][curve], curve
    assert resumed["train_accuracy"] == straight["train_accuracy"]
    straight_weights, resumed_weights = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(straight_weights[name], resumed_weights[name]) for name in straight_weights)
    with pytest.raises(ValueError, match=r"belongs to another run \(differs in labels_checksum, seed\)"):
        _train_here(folder, tmp_path / "resumed", "--seed", "4")


def test_inception_v3_trains_at_its_smallest_input(tmp_path):
    """torchvision's Inception V3 through the same entry point, at 75x75, one process, one step."""
    from torchvision.models import inception_v3

    small = _write_folder(tmp_path / "small", classes=2, train_per_class=2, val_per_class=1)
    record = distributed.main(
        [
            "--data",
            str(small),
            "--record",
            str(tmp_path / "record.json"),
            "--model",
            "inception_v3",
            "--image-size",
            "75",
            "--global-batch",
            "4",
            "--epochs",
            "1",
            "--workers",
            "0",
            "--lr",
            "0.01",
        ]
    )
    expected = sum(
        p.numel() for p in inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=2).parameters()
    )
    assert record["parameters"] == expected
    assert record["steps_per_epoch"] == 1 and np.isfinite(record["curves"]["loss"][0])
    assert sum(record["test_prediction_counts"]) == 2
    assert json.loads((tmp_path / "record.json").read_text())["train_accuracy"] == record["train_accuracy"]


def test_a_resumed_inception_v3_run_draws_the_dropout_masks_of_the_uninterrupted_one(tmp_path):
    """Inception V3 has dropout (p=0.5): a resume must redraw epoch 2's masks, not epoch 1's again."""
    small = _write_folder(tmp_path / "small", classes=2, train_per_class=2, val_per_class=1)

    def train(out: Path, epochs: int) -> dict:
        return distributed.main(
            [
                "--data",
                str(small),
                "--record",
                str(out / "record.json"),
                "--checkpoint",
                str(out / "checkpoint.pt"),
                "--model",
                "inception_v3",
                "--image-size",
                "75",
                "--global-batch",
                "4",
                "--epochs",
                str(epochs),
                "--workers",
                "0",
                "--lr",
                "0.01",
                "--variant",
                "true",
            ]
        )

    straight = train(tmp_path / "straight", 2)
    train(tmp_path / "resumed", 1)
    resumed = train(tmp_path / "resumed", 2)
    assert resumed["resumed_after_epoch"] == 1
    assert resumed["curves"]["loss"] == straight["curves"]["loss"]
    straight_weights, resumed_weights = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(straight_weights[name], resumed_weights[name]) for name in straight_weights)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--sync-bn"], "SyncBatchNorm has no CPU implementation"),
        (["--image-size", "64"], "inception_v3 needs --image-size >= 75"),
        (["--aux-logits", "--image-size", "128"], "--aux-logits needs --image-size >= 299"),
        (["--model", "mlp_1x512", "--sync-bn"], "apply to --model inception_v3 only"),
        (["--precision", "bf16", "--device", "cpu"], "GPU setting"),
    ],
)
def test_settings_that_cannot_work_are_refused_before_training(arguments, message, capsys):
    with pytest.raises(SystemExit):
        distributed.parse_args(["--data", "x", "--record", "y.json", "--device", "cpu", *arguments])
    assert message in capsys.readouterr().err


def test_a_folder_without_the_layout_is_refused_clearly(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="expected .*train,val"):
        load_folder(tmp_path)
    (tmp_path / "train").symlink_to(folder / "train")
    (tmp_path / "val").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no ImageFolder layout"):
        load_folder(tmp_path)


def test_labels_are_drawn_from_the_seed_over_the_sorted_samples():
    targets = np.repeat(np.arange(10), 100)
    random = draw_labels(targets, "random", 0.0, 10, seed=0)
    assert np.array_equal(random, draw_labels(targets, "random", 0.0, 10, seed=0))
    assert not np.array_equal(random, draw_labels(targets, "random", 0.0, 10, seed=1))
    assert 0.8 < (random != targets).mean() < 0.97  # about 0.9 change: a draw may return the true class
    assert np.array_equal(draw_labels(targets, "true", 0.0, 10, seed=0), targets)
    partial = draw_labels(targets, "partial", 0.5, 10, seed=0)
    assert 0.35 < (partial != targets).mean() < 0.55  # about 0.45
    with pytest.raises(ValueError, match="needs a level p"):
        draw_labels(targets, "partial", 0.0, 10, seed=0)
    with pytest.raises(ValueError, match="unknown variant"):
        draw_labels(targets, "gaussian", 0.0, 10, seed=0)
