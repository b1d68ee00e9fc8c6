"""The device a run names is the device everything happens on: cuda:N made current before a graph is captured,
and the optimizer's first-step check taken on the runs' device. Fixed without a GPU (CUDA mocked)."""

import pytest
import torch

from harness.core import train
from harness.core.config import RunConfig
from harness.suite import session


class Stop(Exception):
    """Raised by the mocked set_device: the test has seen what it needed."""


def test_a_run_on_cuda_1_makes_cuda_1_current_before_anything_is_put_on_it(monkeypatch, tiny_npz):
    chosen = []

    def set_device(index):
        chosen.append(index)
        raise Stop

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    with pytest.raises(Stop):
        train.fit(RunConfig(data=f"npz:{tiny_npz}", device="cuda:1", max_passes=1))
    assert chosen == [1]
    chosen.clear()
    with pytest.raises(Stop):
        train.use_device(torch.device("cuda"))
    assert chosen == [0]
    train.use_device(torch.device("cpu"))  # nothing for a CPU (the mock would raise)


def test_the_first_step_check_runs_on_the_runs_device(monkeypatch):
    asked = []
    monkeypatch.setattr(train, "first_step_error", lambda spec, device="cpu": asked.append(device))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    session._optimizer_specs(["paper_sgd"], "cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    session._optimizer_specs(["paper_sgd"], "cuda")  # refused later in one line (no CUDA): checked on the CPU
    session._optimizer_specs(["paper_sgd"], "cpu")
    assert asked == ["cuda:1", "cpu", "cpu"]


def test_a_cuda_only_optimizer_fails_the_check_on_a_cpu_with_the_reason():
    error = train.first_step_error("torch.optim:Adam(capturable=True)", "cpu")
    assert error is not None and "capturable" in error.lower()
    assert train.first_step_error("paper_sgd", "cpu") is None


def test_workers_are_pinned_only_where_nvml_counts_the_gpus_never_by_starting_cuda(monkeypatch, tmp_path):
    """torch.cuda.device_count() starts the CUDA driver where NVML fails; the pinning must not (planted: it raises)."""
    import types
    import warnings

    from harness.suite import gpus

    def starts_cuda():
        raise AssertionError("device_count() would start the driver: CUDA_VISIBLE_DEVICES set later is ignored")

    worker = types.SimpleNamespace(workerinput={"workerid": "gw1"})
    monkeypatch.setattr(torch.cuda, "device_count", starts_cuda)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # restored after: pin_worker_gpu sets it
    monkeypatch.setattr(torch.cuda, "_device_count_nvml", lambda: -1)  # NVML does not answer
    monkeypatch.setattr(gpus, "NVIDIA_DRIVER", tmp_path)  # a driver is loaded: its silence is a fault
    with pytest.warns(UserWarning, match="cannot be counted without starting CUDA"):
        assert gpus.pin_worker_gpu(worker) is None
    monkeypatch.setattr(gpus, "NVIDIA_DRIVER", tmp_path / "absent")  # no driver: a CPU machine, said nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gpus.pin_worker_gpu(worker) is None
    monkeypatch.setattr(torch.cuda, "_device_count_nvml", lambda: 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gpus.pin_worker_gpu(worker) == "1"


def test_each_worker_keeps_its_share_of_the_cores_on_a_gpu_host_and_one_thread_on_a_cpu():
    from harness.suite.gpus import threads_per_worker

    assert threads_per_worker(16, 4, cuda=True) == 4
    assert threads_per_worker(16, 32, cuda=True) == 1
    assert threads_per_worker(2, 2, cuda=False) == 1
    assert threads_per_worker(16, 1, cuda=False) == 1
