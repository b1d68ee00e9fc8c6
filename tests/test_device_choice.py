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
