"""An optimizer's state outside state_dict() survives a resume, or the run is not checkpointed; an optimizer that
raises mid-run ends it with the outcome "error", never a later record that looks clean."""

import pytest
import torch

from harness.__main__ import EXIT_STATUSES
from harness.core import train
from harness.core.checkpoint import CheckpointRefusedWarning
from harness.core.config import RunConfig
from harness.core.runner import cached_fit
from harness.suite.fixtures import FAILED_RUN_OUTCOMES

OPTIMIZERS = '''
import collections

import torch


class CountingSGD(torch.optim.SGD):
    """Shrinks every step by its count, kept as a Python int outside state_dict()."""

    def __init__(self, params, lr=0.05):
        super().__init__(params, lr=lr)
        self.steps = 0

    def step(self, closure=None):
        self.steps += 1
        rates = [group["lr"] for group in self.param_groups]
        for group in self.param_groups:  # the lr, not the gradient: a closure recomputes the gradient in step
            group["lr"] = group["lr"] / (1.0 + 0.05 * self.steps)
        try:
            return super().step(closure)
        finally:
            for group, rate in zip(self.param_groups, rates):
                group["lr"] = rate


class RememberingSGD(torch.optim.SGD):
    """Keeps its recent losses in a deque: not plain data, so no checkpoint can restore it."""

    def __init__(self, params, lr=0.05):
        super().__init__(params, lr=lr)
        self.recent = collections.deque(maxlen=3)


class FailingSGD(torch.optim.SGD):
    """Raises at its 11th step, as an author's bug would."""

    def __init__(self, params, lr=0.05):
        super().__init__(params, lr=lr)
        self.steps = 0

    def step(self, closure=None):
        self.steps += 1
        if self.steps == 11:
            raise RuntimeError("step 11: planted failure")
        return super().step(closure)
'''


@pytest.fixture
def authored(tmp_path, monkeypatch):
    (tmp_path / "stateful_opts.py").write_text(OPTIMIZERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def config(npz, optimizer: str) -> RunConfig:
    # 64 images at batch 16: 4 steps a pass, so the failing optimizer raises in pass 3; random labels are not
    # fitted in 5 passes, so every run trains all of them
    return RunConfig(
        data=f"npz:{npz}",
        model="mlp_1x512",
        variant="random",
        n_train=64,
        n_test=32,
        batch_size=16,
        max_passes=5,
        optimizer=optimizer,
    )


def stop_after(passes: int):
    def progress(state):
        if state["pass"] == passes:
            raise KeyboardInterrupt

    return progress


def killed_and_resumed(run_config, results, monkeypatch):
    monkeypatch.setenv("HARNESS_RESULTS_DIR", str(results))
    with pytest.raises(KeyboardInterrupt):
        cached_fit(run_config, progress=stop_after(2))
    return cached_fit(run_config)


def test_a_step_counter_kept_outside_state_dict_is_restored_on_resume(tiny_npz, authored, tmp_path, monkeypatch):
    run_config = config(tiny_npz, "stateful_opts:CountingSGD")
    monkeypatch.setenv("HARNESS_RESULTS_DIR", str(tmp_path / "whole"))
    whole = cached_fit(run_config)
    resumed = killed_and_resumed(run_config, tmp_path / "resumed", monkeypatch)
    assert resumed["resumed_from_pass"] >= 1
    assert resumed["curves"]["loss"] == whole["curves"]["loss"]
    assert resumed["model_sha256"] == whole["model_sha256"]

    # Planted: a checkpoint without the attributes (state_dict() alone) resumes into another run.
    monkeypatch.setattr(train, "optimizer_attributes", lambda optimizer: {})
    lost = killed_and_resumed(run_config, tmp_path / "lost", monkeypatch)
    assert lost["resumed_from_pass"] >= 1 and lost["curves"]["loss"] != whole["curves"]["loss"]


def test_state_that_cannot_be_saved_means_no_checkpoint_said_once(tiny_npz, authored, results):
    with pytest.warns(CheckpointRefusedWarning, match=r"keeps recent outside state_dict\(\)") as caught:
        record = cached_fit(config(tiny_npz, "stateful_opts:RememberingSGD"))
    assert len([w for w in caught if issubclass(w.category, CheckpointRefusedWarning)]) == 1
    assert record["outcome"] in ("fitted", "out_of_budget") and record["resumed_from_pass"] is None
    assert not list((results / "checkpoints").glob("*.pt"))


def test_an_optimizer_that_raises_mid_run_ends_it_as_an_error_that_is_never_reused(tiny_npz, authored, results):
    first = cached_fit(config(tiny_npz, "stateful_opts:FailingSGD"))
    assert first["outcome"] == "error" and first["passes"] == 2  # passes 1-2 trained; step 11 is in pass 3
    assert first["message"] == "RuntimeError: step 11: planted failure (in pass 3)"
    assert len(first["curves"]["loss"]) == 2 and first["saved"]
    assert not list((results / "checkpoints").glob("*.pt"))  # no later attempt resumes past the error
    again = cached_fit(config(tiny_npz, "stateful_opts:FailingSGD"))
    assert not again["reused"] and again["outcome"] == "error" and again["resumed_from_pass"] is None
    assert EXIT_STATUSES["error"] not in (0, 1, 2) and "error" in FAILED_RUN_OUTCOMES


def test_the_optimizer_attributes_a_checkpoint_keeps_are_only_the_authors_own():
    plain = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
    assert train.optimizer_attributes(plain) == {}
    plain.steps, plain.history = 3, [1.0, torch.ones(1)]
    assert set(train.optimizer_attributes(plain)) == {"steps", "history"}
    plain.callback = print
    with pytest.raises(train.CheckpointRefused, match="keeps callback outside"):
        train.optimizer_attributes(plain)


DECAYING = '''
import torch


def adamw_default(params, lr=None):
    """An imported factory that keeps its package's own default weight decay (as SOAP's 0.01 and Muon's 0.1)."""
    return torch.optim.AdamW(params, lr=lr or 1e-3)


class SharpnessAware(torch.optim.SGD):
    """Keeps a setting as its own attribute, outside its param groups (as some SAM ports keep rho)."""

    def __init__(self, params, lr=0.01):
        super().__init__(params, lr=lr)
        self.rho = 0.05
        self.scales = (1.0, 2.0)
        self.helper = object()  # not a setting: left out
        self.buffer = torch.zeros(2)  # a tensor: state, not a setting
'''


def test_the_record_keeps_the_settings_that_ran_and_a_no_regulariser_claim_refuses_a_default_weight_decay(
    tiny_npz, tmp_path, results, monkeypatch
):
    from harness.suite.fixtures import require_trained

    (tmp_path / "decaying_opts.py").write_text(DECAYING)
    monkeypatch.syspath_prepend(str(tmp_path))
    record = cached_fit(
        RunConfig(data=f"npz:{tiny_npz}", n_train=64, n_test=32, max_passes=2, optimizer="decaying_opts:adamw_default")
    )
    (settings,) = record["optimizer_settings"]
    assert record["config"]["weight_decay"] == 0.0 and settings["weight_decay"] == 0.01  # what actually ran
    assert settings["betas"] == [0.9, 0.999] and settings["lr"] == 1e-3
    with pytest.raises(
        pytest.fail.Exception, match=r"keeps weight decay 0.01 .* 'decaying_opts:adamw_default\(weight_decay=0\)'"
    ):
        require_trained(record, "C6: mlp_1x512 true labels, no regularisers, seed 0", no_weight_decay=True)
    sgd = cached_fit(RunConfig(data=f"npz:{tiny_npz}", n_train=64, n_test=32, max_passes=2))
    assert sgd["optimizer_settings"][0]["weight_decay"] == 0.0
    require_trained(sgd, "C6: paper SGD", no_weight_decay=True)  # the paper's SGD passes


def test_the_record_keeps_the_settings_an_optimizer_holds_outside_its_param_groups(
    tiny_npz, tmp_path, results, monkeypatch
):
    (tmp_path / "decaying_opts.py").write_text(DECAYING)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = RunConfig(data=f"npz:{tiny_npz}", n_train=64, n_test=32, max_passes=1)
    record = cached_fit(config.replace(optimizer="decaying_opts:SharpnessAware"))
    assert record["optimizer_settings_outside_groups"] == {"rho": 0.05, "scales": [1.0, 2.0]}
    assert cached_fit(config)["optimizer_settings_outside_groups"] == {}  # the paper's SGD keeps none
