"""C1 and C2 at ImageNet scale: Inception V3 fits random labels, and then tests at chance.

Paper (Zhang et al., ICLR 2017, the ImageNet table): Inception V3 on ImageNet with random
labels and no regularisers reaches 95.20% top-1 training accuracy; its top-1 test accuracy
is about 0.1%, chance for 1,000 classes.

Scale: the whole folder named by HARNESS_IMAGENET_DIR (train/<class>/*.JPEG,
val/<class>/*.JPEG), torchvision's Inception V3 at 299x299, trained by
``harness.imagenet.distributed`` under torchrun with one process per visible CUDA device.
Skipped unless that folder is given and a CUDA device is present, and, when it would have
to train, in a pytest-xdist worker (pinned to one GPU: ``ranks_to_launch``). The run takes hours on
an 8-GPU node and days on one GPU (estimates in docs/imagenet-runbook.md); its record is
kept under RESULTS/imagenet/<key>/ and reused, and an interrupted run resumes from its
checkpoint. Training settings beyond the entry point's defaults go in
HARNESS_IMAGENET_ARGS (e.g. "--precision bf16 --workers 12"). A run made by hand (several
nodes) is read instead from HARNESS_IMAGENET_RECORD.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.core.store import results_dir
from harness.imagenet.distributed import parse_args, ranks_to_launch
from harness.suite import stats

pytestmark = [
    pytest.mark.gpu(
        reason="the ImageNet tier needs CUDA devices and an ImageNet folder; it has no CPU scale "
        "(tests/test_distributed.py runs its training code on the CPU with gloo)"
    ),
    pytest.mark.slow,
]

PAPER_TRAIN_TOP1 = 95.20  # %, Inception V3, random labels, no regularisers
PAPER_TEST_TOP1 = 0.1  # %, "about 0.1": chance for 1,000 classes
# C1's threshold: a training error at most twice the paper's (4.80% -> 9.60%), that is
# top-1 training accuracy >= 90.40%. Why a factor and not the paper's figure itself: the
# paper states neither the schedule nor the number of epochs of this run, so ours (SGD,
# the entry point's defaults) is a different optimisation of the same network; sampling
# error is no reason for a margin (over 1.28 million images it is about 0.02 points). A
# factor of two on the error is the declared band for "the same memorisation"; 90.40%
# is still 900 times chance.
TRAIN_ERROR_FACTOR = 2.0
TRAIN_TOP1_THRESHOLD = 1.0 - TRAIN_ERROR_FACTOR * (1.0 - PAPER_TRAIN_TOP1 / 100)
ALPHA = 0.01  # false-alarm rate of the chance test, as for CIFAR-10's C2
RELABELLINGS = 20_000  # Monte Carlo renamings of the 1,000 classes for C2's relabelling test
SEED = 0
# Settings that do not change what is computed stay out of the run key.
NOT_IN_KEY = ("data", "record", "checkpoint", "workers", "timeout_seconds", "device", "train_eval_every")


@pytest.fixture(scope="module")
def imagenet_random_run(request) -> dict:
    """The run record of Inception V3 on random labels: reused if present, else trained (or resumed)."""
    if os.environ.get("HARNESS_IMAGENET_RECORD"):
        return _record_made_by_hand(Path(os.environ["HARNESS_IMAGENET_RECORD"]))
    folder = os.environ.get("HARNESS_IMAGENET_DIR")
    if not folder:
        pytest.skip(
            "ImageNet tier: set HARNESS_IMAGENET_DIR to a folder with train/<class>/*.JPEG and "
            "val/<class>/*.JPEG to run it (or HARNESS_IMAGENET_RECORD to a finished run's record)"
        )
    folder = Path(folder)
    if not (folder / "train").is_dir() or not (folder / "val").is_dir():
        pytest.skip(f"ImageNet tier: HARNESS_IMAGENET_DIR={folder} has no train/ and val/ folders")
    if not torch.cuda.is_available():
        pytest.skip("ImageNet tier: needs at least one CUDA device")

    arguments = [
        "--data",
        str(folder),
        "--model",
        "inception_v3",
        "--variant",
        "random",
        "--seed",
        str(SEED),
        *shlex.split(os.environ.get("HARNESS_IMAGENET_ARGS", "")),
    ]
    settings = vars(parse_args([*arguments, "--record", "unused.json"]))
    identity = {key: str(value) for key, value in sorted(settings.items()) if key not in NOT_IN_KEY}
    identity["data_folder"] = str(folder.resolve())
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    out = results_dir() / "imagenet" / key
    record_path = out / "record.json"
    if record_path.exists():
        return json.loads(record_path.read_text())

    # Under xdist the worker sees the one GPU it is pinned to: skipped, not failed (the
    # claim is not measured there, not refuted), with the command that runs it alone.
    worker = request.config.workerinput.get("workerid", "?") if hasattr(request.config, "workerinput") else None
    try:
        ranks = ranks_to_launch(worker)
    except RuntimeError as refusal:
        pytest.skip(str(refusal))
    out.mkdir(parents=True, exist_ok=True)
    (out / "settings.json").write_text(json.dumps(identity, indent=1))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={ranks}",
        "-m",
        "harness.imagenet.distributed",
        *arguments,
        "--record",
        str(record_path),
        "--checkpoint",
        str(out / "checkpoint.pt"),
    ]
    with open(out / "train.log", "a") as log:  # `tail -f` it: rank 0 prints a line per epoch
        finished = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if finished.returncode != 0 or not record_path.exists():
        tail = (out / "train.log").read_text()[-4000:]
        pytest.fail(
            f"the ImageNet run failed (exit code {finished.returncode}); rerun to resume from its "
            f"checkpoint. End of {out / 'train.log'}:\n{tail}"
        )
    return json.loads(record_path.read_text())


def _record_made_by_hand(path: Path) -> dict:
    """A record written by `torchrun ... -m harness.imagenet.distributed --record PATH`, checked to be this claim's run."""
    record = json.loads(path.read_text())
    config = record.get("config", {})
    this_claim = (config.get("model"), config.get("variant")) == ("inception_v3", "random")
    if record.get("kind") != "imagenet-ddp" or not this_claim:
        pytest.fail(f"{path} is not a record of inception_v3 on random labels from harness.imagenet.distributed")
    return record


def test_c1_inception_v3_fits_random_imagenet_labels(imagenet_random_run, claim_figure):
    """C1 at ImageNet scale: top-1 training accuracy on random labels near the paper's 95.20%.

    Figure: top-1 accuracy of the final network on the whole training set, in eval mode,
    against the random labels it was trained on. Threshold: >= 90.40%, a training error
    at most twice the paper's 4.80% (derivation beside TRAIN_ERROR_FACTOR).
    """
    record = imagenet_random_run
    accuracy = record["train_accuracy"]
    holds = accuracy >= TRAIN_TOP1_THRESHOLD
    claim_figure(
        "C1",
        f"ImageNet top-1 train accuracy, random labels, {record['config']['model']} "
        f"(n={record['n_train']}, {record['epochs']} epochs, {record['world_size']} ranks)",
        accuracy,
        f">= {TRAIN_TOP1_THRESHOLD:.4f} (error <= {TRAIN_ERROR_FACTOR:g} x paper's)",
        holds,
        paper=PAPER_TRAIN_TOP1,
    )


def test_c2_imagenet_test_accuracy_is_chance(imagenet_random_run, claim_figure):
    """C2 at ImageNet scale: after fitting random labels, validation accuracy is chance.

    Threshold: the class-relabelling test does not reject chance at alpha = 0.01; its
    derivation, and why not the binomial test, as for CIFAR-10 (test_c01_c02_random_labels,
    test_c2_test_accuracy_is_chance). With K = 1,000 classes the renamings cannot be
    enumerated: RELABELLINGS uniform ones are drawn (seeded), p = (1 + count) / (1 +
    RELABELLINGS), whose standard error at p = ALPHA is sqrt(0.01 x 0.99 / 20,000) = 0.0007.
    A record made before the confusion matrix was recorded cannot be judged: the test
    fails and says to rerun it.
    Premise: the run fitted its random labels by C1's reading (top-1 training accuracy
    >= TRAIN_TOP1_THRESHOLD). Chance test accuracy is evidence only for a net that
    memorised its random labels: one that never learned anything tests at chance too.
    """
    record = imagenet_random_run
    if record["train_accuracy"] < TRAIN_TOP1_THRESHOLD:
        pytest.fail(
            f"C2: ImageNet {record['config']['model']} not shown, random labels not fitted: top-1 train "
            f"accuracy {record['train_accuracy']:.4f} after {record['epochs']} epochs, below C1's "
            f"{TRAIN_TOP1_THRESHOLD:.4f}",
            pytrace=False,
        )
    if "test_confusion" not in record:
        pytest.fail(
            "the ImageNet record has no test confusion matrix (made before it was recorded); "
            "move it aside and rerun to train it with this version",
            pytrace=False,
        )
    p_value = stats.relabelling_p_value(record["test_confusion"], samples=RELABELLINGS, seed=SEED)
    claim_figure(
        "C2",
        f"ImageNet top-1 test accuracy, random labels, {record['config']['model']} "
        f"(n_test={record['n_test']}, relabelling p = {p_value:.3g})",
        record["test_accuracy"],
        f"relabelling p >= {ALPHA} (chance 1/K)",
        p_value >= ALPHA,
        paper=PAPER_TEST_TOP1,
    )
