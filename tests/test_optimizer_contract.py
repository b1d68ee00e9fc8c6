"""PyTorch's optimizer contract in the training loop: closures, train/eval modes, checkpoints, fast verdicts.

Tiny optimizers of each kind, written here, go through `fit` as an author's
would: closure-only (SAM-like, two evaluations per step, and torch's LBFGS),
schedule-free-like (separate training and evaluation weights), frozen (no
parameter ever moves) and exploding (finite loss growing without bound).
"""

import textwrap

import pytest
import torch

from harness.core.checkpoint import RunCheckpoint
from harness.core.config import RunConfig
from harness.core.train import MAX_LOSS_GROWTH, fit

OPTIMIZERS = textwrap.dedent('''
    import torch


    class ClosureOnly(torch.optim.Optimizer):
        """SAM-like: needs the closure, evaluates it twice per step (at w, then at a perturbed w)."""

        def __init__(self, params, lr=0.05, rho=0.01):
            super().__init__(params, dict(lr=lr, rho=rho))

        @torch.no_grad()
        def step(self, closure=None):
            if closure is None:
                raise RuntimeError("ClosureOnly needs a closure")
            loss = closure()
            saved = []
            for group in self.param_groups:
                for p in group["params"]:
                    saved.append(p.clone())
                    if p.grad is not None:
                        p.add_(p.grad, alpha=group["rho"])
            closure()
            for group in self.param_groups:
                for p in group["params"]:
                    grad = p.grad
                    p.copy_(saved.pop(0))
                    if grad is not None:
                        p.add_(grad, alpha=-group["lr"])
            return loss


    LOG = []  # what TwoWeights was asked to do, in order


    class TwoWeights(torch.optim.Optimizer):
        """Schedule-free-like: SGD steps on training weights; eval() shows their running average
        (taken at each eval()), train() brings the training weights back. Starts in eval mode."""

        def __init__(self, params, lr=0.05):
            super().__init__(params, dict(lr=lr, mode="eval", evals=0))

        @torch.no_grad()
        def train(self):
            LOG.append("train")
            for group in self.param_groups:
                if group["mode"] == "eval":
                    for p in group["params"]:
                        if "train" in self.state[p]:
                            p.copy_(self.state[p]["train"])
                    group["mode"] = "train"

        @torch.no_grad()
        def eval(self):
            LOG.append("eval")
            for group in self.param_groups:
                if group["mode"] == "train":
                    group["evals"] += 1
                    for p in group["params"]:
                        state = self.state[p]
                        state["train"] = p.clone()
                        average = state.get("average", p.clone())
                        state["average"] = average + (p - average) / group["evals"]
                        p.copy_(state["average"])
                    group["mode"] = "eval"

        @torch.no_grad()
        def step(self, closure=None):
            if any(group["mode"] != "train" for group in self.param_groups):
                raise RuntimeError("TwoWeights.step called in eval mode: call optimizer.train() first")
            if not LOG or LOG[-1] != "step":
                LOG.append("step")
            with torch.enable_grad():
                loss = closure() if closure is not None else None
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-group["lr"])
            return loss


    class Frozen(torch.optim.Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, dict(lr=lr))

        def step(self, closure=None):
            return closure() if closure is not None else None


    class Exploding(torch.optim.Optimizer):
        """Scales every weight up each step: the loss grows fast but stays finite for a while."""

        def __init__(self, params, lr=0.1):
            super().__init__(params, dict(lr=lr))

        @torch.no_grad()
        def step(self, closure=None):
            with torch.enable_grad():
                loss = closure()
            for group in self.param_groups:
                for p in group["params"]:
                    p.mul_(1.5)
            return loss
''')


@pytest.fixture
def authored(tmp_path, monkeypatch):
    (tmp_path / "authored_optimizers.py").write_text(OPTIMIZERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "authored_optimizers"


def tiny(tiny_npz, **changes):
    values = dict(data=f"npz:{tiny_npz}", model="mlp_1x512", max_passes=60, device="cpu", batch_size=32)
    values.update(changes)
    return RunConfig(**values)


def test_a_closure_only_optimizer_trains_and_fits(tiny_npz, authored):
    record = fit(tiny(tiny_npz, optimizer=f"{authored}:ClosureOnly"))
    assert record["outcome"] == "fitted"
    assert record["optimizer_modes"] is False


def test_torchs_lbfgs_runs_through_its_closure(tiny_npz):
    record = fit(tiny(tiny_npz, optimizer="torch.optim:LBFGS(max_iter=2)", lr=0.1, max_passes=3))
    assert record["outcome"] in ("fitted", "out_of_budget") and record["passes"] >= 1
    assert all(loss == loss for loss in record["curves"]["loss"])  # finite, from the closure's first evaluation


def test_the_closure_form_leaves_sgd_runs_unchanged_bit_for_bit(tiny_npz):
    """The paper's SGD through step(closure): the record's weights digest matches a plain backward-then-step run."""
    import harness.core.train as train

    config = tiny(tiny_npz, max_passes=3)
    through_closure = fit(config)

    def plain_step(model, optimizer, batch, labels, autocast):
        loss = torch.nn.functional.cross_entropy(model(batch), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    original = train.closure_step
    train.closure_step = plain_step
    try:
        plain = fit(config)
    finally:
        train.closure_step = original
    assert through_closure["model_sha256"] == plain["model_sha256"]
    assert through_closure["curves"]["loss"] == plain["curves"]["loss"]


def test_an_optimizer_with_modes_steps_in_train_mode_and_is_evaluated_in_eval_mode(tiny_npz, authored):
    """train() before every pass's steps, eval() before every evaluation, nothing else, in that order."""
    import authored_optimizers

    authored_optimizers.LOG.clear()
    record = fit(tiny(tiny_npz, optimizer=f"{authored}:TwoWeights", max_passes=5))
    assert record["optimizer_modes"] is True
    assert authored_optimizers.LOG == ["train", "step", "eval"] * record["passes"]


@pytest.mark.parametrize("factory", ["TwoWeights", "ClosureOnly"])
def test_an_optimizer_of_each_kind_resumes_to_the_uninterrupted_run(tiny_npz, authored, tmp_path, factory):
    """Its state (training weights, averages, mode; or momentum-free closure steps) round-trips a checkpoint."""
    config = tiny(tiny_npz, optimizer=f"{authored}:{factory}", variant="random", max_passes=6)
    whole = fit(config)

    def stop_after_pass_4(state):
        if state["pass"] == 4:
            raise KeyboardInterrupt

    path = tmp_path / "run.pt"
    stopped = fit(config, progress=stop_after_pass_4, checkpoint=RunCheckpoint(path, "key", every=1, min_seconds=0.0))
    assert stopped["outcome"] == "interrupted" and path.exists()
    resumed = fit(config, checkpoint=RunCheckpoint(path, "key", every=1, min_seconds=0.0))
    assert resumed["resumed_from_pass"] == 3
    assert resumed["model_sha256"] == whole["model_sha256"]
    assert resumed["curves"]["loss"] == whole["curves"]["loss"]


def test_a_frozen_optimizer_stalls_in_its_first_pass(tiny_npz, authored):
    record = fit(tiny(tiny_npz, optimizer=f"{authored}:Frozen", variant="random", max_passes=150))
    assert record["outcome"] == "stalled" and record["passes"] == 1
    assert "no parameter changed in pass 1" in record["message"]


def test_an_exploding_finite_loss_counts_as_diverged_long_before_the_budget(tiny_npz, authored):
    record = fit(tiny(tiny_npz, optimizer=f"{authored}:Exploding", variant="random", max_passes=150))
    assert record["outcome"] == "diverged" and record["passes"] < 10
    assert f"over {MAX_LOSS_GROWTH:g} times its start" in record["message"] or "became" in record["message"]
    assert record["initial_loss"] > 0


def test_an_optimizer_that_ignores_its_closure_gets_gradients_first(tiny_npz, tmp_path, monkeypatch):
    """The closure is optional in torch.optim's contract: a step that never calls it still trains, unchanged."""
    (tmp_path / "plainopt.py").write_text(
        textwrap.dedent("""
        import torch

        class PlainSGD(torch.optim.SGD):
            def step(self, closure=None):
                return super().step()  # ignores the closure
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plain = fit(tiny(tiny_npz, optimizer="plainopt:PlainSGD(momentum=0.9)", lr=0.01, max_passes=3))
    reference = fit(tiny(tiny_npz, optimizer="paper_sgd", lr=0.01, max_passes=3))
    assert plain["optimizer_closure"] is False and reference["optimizer_closure"] is True
    assert plain["model_sha256"] == reference["model_sha256"]
