"""GPU paths checked on a CPU, torch.cuda and the machine mocked where needed (none of this ran on a GPU).

The ImageNet claim under xdist (harness.imagenet.distributed.ranks_to_launch),
the shared memory `bench --in-flight` needs (harness.bench.in_flight.check_shared_memory),
and TF32 off in C10/C11's kernels and Gabor features (harness.theory.kernels.full_float32).
"""

import json
from collections import namedtuple
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from claims import test_imagenet_random_labels as imagenet_claim
from harness.bench import in_flight, loops, throughput
from harness.imagenet.distributed import ranks_to_launch
from harness.theory import kernels

# --------------------------------------------------------------------------- the ImageNet claim under xdist


def test_ranks_to_launch_is_every_visible_gpu_outside_xdist(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert ranks_to_launch(None) == 8


def test_ranks_to_launch_refuses_a_pinned_xdist_worker_in_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # what a worker pinned to GPU 3 sees
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with pytest.raises(RuntimeError) as refused:
        ranks_to_launch("gw3")
    line = str(refused.value)
    assert "\n" not in line
    assert "pytest-xdist worker gw3" in line and "CUDA_VISIBLE_DEVICES=3" in line
    assert "python -m pytest claims/test_imagenet_random_labels.py -m gpu -p no:xdist" in line


def test_ranks_to_launch_refuses_no_cuda_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(RuntimeError, match="needs at least one CUDA device"):
        ranks_to_launch(None)


@pytest.fixture
def imagenet_folder(tmp_path, monkeypatch):
    """An (empty) ImageNet layout, a fresh results folder, and a CUDA that says it is there."""
    folder = tmp_path / "imagenet"
    (folder / "train").mkdir(parents=True)
    (folder / "val").mkdir()
    for name in ("HARNESS_IMAGENET_RECORD", "HARNESS_IMAGENET_ARGS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HARNESS_IMAGENET_DIR", str(folder))
    monkeypatch.setenv("HARNESS_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    return tmp_path / "results"


def _claim_fixture(config):
    """The claim's fixture function itself, called with a request carrying `config`."""
    return imagenet_claim.imagenet_random_run.__wrapped__(SimpleNamespace(config=config))


def test_imagenet_claim_skips_in_a_pinned_xdist_worker_and_launches_nothing(imagenet_folder, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")

    def no_launch(*args, **kwargs):
        raise AssertionError("torchrun launched from a pinned worker")

    monkeypatch.setattr(imagenet_claim.subprocess, "run", no_launch)
    with pytest.raises(pytest.skip.Exception, match="pytest-xdist worker gw1, .* -p no:xdist$"):
        _claim_fixture(SimpleNamespace(workerinput={"workerid": "gw1"}))
    assert not (imagenet_folder / "imagenet").exists()  # no run folder left behind


def test_imagenet_claim_launches_one_rank_per_gpu_outside_xdist(imagenet_folder, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    launched = []

    def fake_torchrun(command, **kwargs):  # writes the record the real run would
        launched.append(command)
        record = command[command.index("--record") + 1]
        with open(record, "w") as out:
            json.dump({"kind": "imagenet-ddp", "world_size": 8}, out)
        return SimpleNamespace(returncode=0)

    monkeypatch.setattr(imagenet_claim.subprocess, "run", fake_torchrun)
    record = _claim_fixture(SimpleNamespace())  # the controller or a plain session: no workerinput
    assert record == {"kind": "imagenet-ddp", "world_size": 8}
    assert len(launched) == 1 and "--nproc_per_node=8" in launched[0]


# --------------------------------------------------------------------------- bench --in-flight and /dev/shm

Usage = namedtuple("Usage", "total used free")
MIB = 2**20


def _shm_with(monkeypatch, tmp_path, free: int) -> None:
    """A shared-memory folder with `free` bytes free, as shutil.disk_usage reads it."""
    monkeypatch.setattr(in_flight, "SHARED_MEMORY_FOLDER", str(tmp_path))
    monkeypatch.setattr(in_flight.shutil, "disk_usage", lambda folder: Usage(free, 0, free))


def test_shared_bytes_are_the_images_and_labels():
    images, labels = throughput.synthetic_images(1_000)
    assert in_flight.shared_bytes(images, labels) == 1_000 * 32 * 32 * 3 + 1_000 * labels.itemsize


def test_enough_shared_memory_passes_and_too_little_is_refused_naming_both_sizes(monkeypatch, tmp_path):
    _shm_with(monkeypatch, tmp_path, 64 * MIB)
    in_flight.check_shared_memory(64 * MIB)  # exactly enough
    with pytest.raises(ValueError) as refused:
        in_flight.check_shared_memory(154_000_000)
    line = str(refused.value)
    assert "\n" not in line and str(tmp_path) in line
    assert "needs 146.9 MiB there and 64.0 MiB are free" in line and "docker run --shm-size=1g" in line


def test_no_shared_memory_folder_is_not_checked(monkeypatch, tmp_path):
    monkeypatch.setattr(in_flight.shutil, "disk_usage", lambda folder: pytest.fail("read a folder that is not there"))
    in_flight.check_shared_memory(10**12, str(tmp_path / "absent"))


def test_in_flight_throughput_refuses_before_starting_a_run(monkeypatch, tmp_path):
    _shm_with(monkeypatch, tmp_path, 1 * MIB)
    monkeypatch.setattr(torch.multiprocessing, "get_context", lambda *a: pytest.fail("a run was started"))
    images, labels = throughput.synthetic_images(2_048)  # 6.0 MiB
    with pytest.raises(ValueError, match="needs 6.0 MiB there and 1.0 MiB are free"):
        in_flight.in_flight_throughput("mlp_1x512", 2, "cpu", 5, "fp32", images, labels)


def test_bench_in_flight_refuses_the_whole_cifar_set_in_a_default_docker_shm(monkeypatch, tmp_path, capsys):
    _shm_with(monkeypatch, tmp_path, 64 * MIB)  # docker run's default --shm-size=64m
    monkeypatch.setattr(in_flight, "in_flight_throughput", lambda *a, **k: pytest.fail("a run was started"))
    argv = ["--in-flight", "1", "2", "--models", "mlp_1x512", "--data", "synthetic", "--full", "--device", "cpu"]
    assert loops.main(argv) == 2  # all 50,000 images, as on CUDA: 153.6 MB + the labels
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert "needs 146.9 MiB there and 64.0 MiB are free" in err and "--shm-size=1g" in err


# --------------------------------------------------------------------------- TF32 off in C10/C11


def _tf32_settings():
    """How CUDA matmuls and cuDNN convolutions are set: the per-backend fp32_precision where torch has it."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        return matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    return matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def _set_tf32(settings) -> None:
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = settings
    else:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = settings


NEW_API = hasattr(torch.backends.cuda.matmul, "fp32_precision")
TF32_ON = ("tf32", "tf32") if NEW_API else (True, True)
TF32_OFF = ("ieee", "ieee") if NEW_API else (False, False)


@pytest.fixture
def caller_wants_tf32():
    """The caller turned TF32 on for both matmuls and convolutions; put back as it was after the test."""
    saved = _tf32_settings()
    _set_tf32(TF32_ON)
    yield
    _set_tf32(saved)


class _Observer(TorchFunctionMode):
    """Records the TF32 settings at every matmul, convolution and solve that runs under it."""

    WATCHED = ("matmul", "mm", "conv2d", "linalg_cholesky_ex", "linalg_solve", "linalg_solve_triangular")

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in self.WATCHED:
            self.seen.append((name, _tf32_settings()))
        return func(*args, **(kwargs or {}))


def _observed(compute):
    with _Observer() as observer:
        compute()
    return observer.seen


def test_gabor_features_convolve_with_tf32_off_and_restore_it(caller_wants_tf32):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    seen = _observed(lambda: kernels.gabor_features(images))
    assert {name for name, _ in seen} == {"conv2d"}
    assert {settings for _, settings in seen} == {TF32_OFF}
    assert _tf32_settings() == TF32_ON


def test_kernel_fit_and_its_predictions_run_with_tf32_off_and_restore_it(caller_wants_tf32):
    rng = np.random.default_rng(0)
    x, labels = rng.random((20, 5)).astype(np.float32), rng.integers(0, 3, 20)
    fit = []
    seen = _observed(lambda: fit.append(kernels.fit_interpolant(x, labels, 0.5, classes=3, dtype=torch.float32)))
    assert fit[0].solver == "cholesky"
    assert {"matmul", "linalg_cholesky_ex", "linalg_solve_triangular"} <= {name for name, _ in seen}
    seen += _observed(lambda: fit[0].predict(x))
    seen += _observed(lambda: kernels.nearest_neighbour_error(x, labels, x, labels))
    assert {settings for _, settings in seen} == {TF32_OFF}
    assert _tf32_settings() == TF32_ON


def test_full_float32_restores_the_callers_settings_after_an_error(caller_wants_tf32):
    with pytest.raises(RuntimeError, match="inside"):
        with kernels.full_float32():
            assert _tf32_settings() == TF32_OFF
            raise RuntimeError("inside")
    assert _tf32_settings() == TF32_ON
