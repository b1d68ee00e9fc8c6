"""PyTorch's optimizer contract in the training loop: closures, train/eval modes, checkpoints, fast verdicts.

Tiny optimizers of each kind, written here, go through `fit` as an author's
would: closure-only (SAM-like, two evaluations per step, and torch's LBFGS),
schedule-free-like (separate training and evaluation weights), frozen (no
parameter ever moves) and exploding (finite loss growing without bound).
Factories that ask for the model or its named parameters, one whose lr
defaults to None (as CAME's), and the Muon/AdamW hybrid (`by_shape`, and the
guide's own factory) with torch's Muon, checkpointed and resumed.
"""

import copy
import io
import re
import textwrap
from pathlib import Path

import pytest
import torch

from harness.core.checkpoint import RunCheckpoint
from harness.core.config import RunConfig
from harness.core.hybrid import CombinedOptimizer, combine
from harness.core.optim import NO_DEFAULT_LR, Hyper, OptimizerSpecError, resolve
from harness.core.train import (
    MAX_LOSS_GROWTH,
    closure_step,
    first_step_error,
    fit,
    has_modes,
    optimizer_settings,
)

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "check-your-optimizer.md"
HYBRID = 'harness.core.hybrid:by_shape(matrices="torch.optim:Muon", rest="adamw")'

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


    GIVEN = []  # what the factories below were handed, and at which rate


    def sgd_of_model(model, lr=0.05):
        """Asks for the model (its first parameter's name)."""
        GIVEN.append(model)
        return torch.optim.SGD(model.parameters(), lr=lr)


    def sgd_of_names(named_parameters, lr=0.05):
        """Asks for the named parameters."""
        GIVEN.append(named_parameters)
        return torch.optim.SGD([parameter for _, parameter in named_parameters], lr=lr)


    def no_parameters(*, lr=0.05):
        return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


    def came_like(params, lr=None):
        """As came_pytorch.CAME: lr defaults to None and must be given."""
        if lr is None:
            raise ValueError("came_like needs a learning rate")
        GIVEN.append(lr)
        return torch.optim.Adam(params, lr=lr)


    def own_rate(params, lr=0.02):
        GIVEN.append(lr)
        return torch.optim.SGD(params, lr=lr)
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


# --- factories that ask for the model or its named parameters ----------------------------------------------


def small_mlp(seed=0):
    """Input layer, two hidden matrices, classifier: 6 -> 8 -> 8 -> 8 -> 3."""
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def test_a_factory_gets_the_model_or_its_named_parameters_as_its_first_parameter_asks(authored):
    import authored_optimizers

    model = small_mlp()
    resolve(f"{authored}:sgd_of_model")(model, Hyper(0.1))
    assert authored_optimizers.GIVEN[-1] is model
    optimizer = resolve(f"{authored}:sgd_of_names")(model, Hyper(0.1))
    given = authored_optimizers.GIVEN[-1]
    assert [name for name, _ in given] == [name for name, _ in model.named_parameters()]
    assert all(a is b for (_, a), (_, b) in zip(given, model.named_parameters(), strict=True))
    assert optimizer.param_groups[0]["lr"] == 0.1
    # A factory named by the usual first parameter, and a built-in, still get the parameters.
    sgd = resolve("torch.optim:SGD")(model, Hyper(0.1))
    assert sgd.param_groups[0]["params"] == list(model.parameters())
    assert resolve("adam")(model, Hyper(1e-3)).param_groups[0]["params"] == list(model.parameters())


def test_a_factory_that_asks_for_what_it_cannot_get_is_refused_with_the_reason(authored):
    params = list(small_mlp().parameters())
    for factory, asked in (("sgd_of_model", "asks for model"), ("sgd_of_names", "asks for named_parameters")):
        with pytest.raises(OptimizerSpecError, match=f"{asked} .*handed parameters only"):
            resolve(f"{authored}:{factory}")(params, Hyper(0.1))
    with pytest.raises(OptimizerSpecError, match="no positional first parameter"):
        resolve(f"{authored}:no_parameters")


def test_a_model_asking_factory_trains_in_the_loop(tiny_npz, authored):
    import authored_optimizers

    record = fit(tiny(tiny_npz, optimizer=f"{authored}:sgd_of_names", max_passes=2))
    assert record["outcome"] in ("fitted", "out_of_budget") and record["passes"] >= 1
    assert [name for name, _ in authored_optimizers.GIVEN[-1]] == ["1.weight", "1.bias", "3.weight", "3.bias"]


# --- the first-step check when the factory has no default learning rate ----------------------------------


def test_the_first_step_check_gives_a_factory_without_a_default_lr_the_rate_tuning_tries_first(authored):
    import authored_optimizers

    assert first_step_error(f"{authored}:came_like") is None
    assert authored_optimizers.GIVEN[-1] == NO_DEFAULT_LR
    assert first_step_error(f"{authored}:own_rate") is None
    assert authored_optimizers.GIVEN[-1] == 0.02  # a default of its own is kept
    assert first_step_error(f"{authored}:came_like(lr=0.3)") is None
    assert authored_optimizers.GIVEN[-1] == 0.3  # the spec's own rate wins


# --- the Muon/AdamW hybrid with torch's Muon ---------------------------------------------------------------


def test_the_hybrid_is_accepted_where_bare_muon_is_refused():
    assert "Muon only supports 2D parameters" in first_step_error("torch.optim:Muon")
    assert first_step_error(HYBRID) is None
    model = small_mlp()
    hybrid = resolve(HYBRID)(model, Hyper(None))
    assert isinstance(hybrid, CombinedOptimizer) and not has_modes(hybrid)
    muon, adamw = hybrid.optimizers
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    hidden = {id(model[2].weight), id(model[4].weight)}  # not the input layer's, not the classifier's
    assert {id(p) for p in muon.param_groups[0]["params"]} == hidden
    assert {id(p) for p in adamw.param_groups[0]["params"]} == {id(p) for p in model.parameters()} - hidden
    # The groups are the parts' own: a schedule's write reaches the part, and the record lists both.
    assert hybrid.param_groups[0] is muon.param_groups[0] and hybrid.param_groups[1] is adamw.param_groups[0]
    hybrid.param_groups[1]["lr"] = 5e-4
    assert adamw.param_groups[0]["lr"] == 5e-4
    settings = optimizer_settings(hybrid)
    assert "ns_steps" in settings[0] and "betas" in settings[1]
    assert [group["lr"] for group in resolve(HYBRID)(model, Hyper(0.01)).param_groups] == [0.01, 0.01]


def _steps(model, optimizer, count, seed):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        images, labels = torch.randn(16, 6, generator=generator), torch.randint(0, 3, (16,), generator=generator)
        closure_step(model, optimizer, images, labels)  # the loop's own step


def test_the_hybrid_round_trips_a_checkpoint_to_an_identical_next_step():
    model = small_mlp()
    hybrid = resolve(HYBRID)(model, Hyper(0.01))
    _steps(model, hybrid, 3, seed=1)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": hybrid.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # as a checkpoint is read back
    resumed_model = small_mlp(seed=7)
    resumed_model.load_state_dict(saved["model"])
    resumed = resolve(HYBRID)(resumed_model, Hyper(0.01))
    resumed.load_state_dict(saved["optimizer"])
    assert resumed.param_groups[0] is resumed.optimizers[0].param_groups[0]  # gathered again after loading
    _steps(model, hybrid, 1, seed=2)
    _steps(resumed_model, resumed, 1, seed=2)
    for a, b in zip(model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


def _narrow_mlp(in_channels, image_size, num_classes, dropout):
    """Three hidden layers of 32: two hidden matrices for Muon, cheap on a CPU (torch's Muon orthogonalises in
    bfloat16, slow there: one pass of mlp_3x512 took a minute on two cores, against 5 s for AdamW)."""
    sizes = [in_channels * image_size * image_size, 32, 32, 32]
    layers = [torch.nn.Flatten()]
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(32, num_classes))


@pytest.fixture
def narrow_mlp():
    """A narrow deep MLP, registered for the test only (MODELS restored in place afterwards)."""
    from harness.core.models import MODELS, ModelEntry, register_model

    saved = dict(MODELS)
    register_model(ModelEntry("narrow_mlp_3x32", _narrow_mlp, None, paper_lr=0.01, convnet=False, takes_dropout=False))
    yield "narrow_mlp_3x32"
    MODELS.clear()
    MODELS.update(saved)


class DecayingSGD(torch.optim.SGD):
    """SGD at lr / (1 + steps), its step count a Python int outside state_dict() (as some authors keep one)."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, lr=lr)
        self.steps = 0

    @torch.no_grad()
    def step(self, closure=None):
        self.steps += 1
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"] / self.steps)


def test_a_combined_optimizer_keeps_its_parts_attributes_across_a_checkpoint():
    def combined(model):
        return combine([DecayingSGD(model[0].parameters()), torch.optim.Adam(model[2].parameters())])

    model = small_mlp()
    optimizer = combined(model)
    _steps(model, optimizer, 3, seed=1)
    saved, weights = copy.deepcopy(optimizer.state_dict()), copy.deepcopy(model.state_dict())
    resumed_model = small_mlp(seed=7)
    resumed_model.load_state_dict(weights)
    resumed = combined(resumed_model)
    resumed.load_state_dict(saved)
    assert resumed.optimizers[0].steps == 3
    _steps(model, optimizer, 1, seed=2)
    _steps(resumed_model, resumed, 1, seed=2)
    for a, b in zip(model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_hybrid_trains_and_resumes_in_the_loop(tiny_npz, tmp_path, narrow_mlp):
    config = tiny(tiny_npz, model=narrow_mlp, optimizer=HYBRID, lr=0.01, variant="random", max_passes=3)
    whole = fit(config)
    assert whole["outcome"] == "out_of_budget", whole["message"]
    assert [("ns_steps" in group, "betas" in group) for group in whole["optimizer_settings"]] == [
        (True, False),
        (False, True),
    ]

    def stop_after_pass_2(state):
        if state["pass"] == 2:
            raise KeyboardInterrupt

    path = tmp_path / "run.pt"
    fit(config, progress=stop_after_pass_2, checkpoint=RunCheckpoint(path, "key", every=1, min_seconds=0.0))
    resumed = fit(config, checkpoint=RunCheckpoint(path, "key", every=1, min_seconds=0.0))
    assert resumed["resumed_from_pass"] == 1
    assert resumed["model_sha256"] == whole["model_sha256"]


def test_a_hybrid_with_a_part_that_has_modes_passes_train_and_eval_to_it(authored):
    import authored_optimizers

    model = small_mlp()
    parts = [authored_optimizers.TwoWeights(model[0].parameters()), torch.optim.SGD(model[2].parameters(), lr=0.1)]
    combined = combine(parts)
    assert has_modes(combined) and not has_modes(combine([torch.optim.SGD(model[4].parameters(), lr=0.1)]))
    authored_optimizers.LOG.clear()
    combined.train()
    combined.eval()
    assert authored_optimizers.LOG == ["train", "eval"]


def test_the_guides_hybrid_factory_runs_as_written(tmp_path, monkeypatch):
    """The guide's five-line Muon/AdamW factory is real code: it asks for the named parameters and steps."""
    code = re.search(r"<!-- hybrid-optimizer[^>]*-->\n```python\n(.*?)```", GUIDE.read_text(), re.S).group(1)
    (tmp_path / "myhybrid.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = "myhybrid:muon_adamw"
    assert first_step_error(spec) is None
    model = small_mlp()
    before = copy.deepcopy(model)
    optimizer = resolve(spec)(model, Hyper(0.01))
    kinds = [type(part).__name__ for part in optimizer.optimizers]
    assert kinds == ["Muon", "AdamW"]
    _steps(model, optimizer, 1, seed=0)
    assert all(not torch.equal(a, b) for a, b in zip(model.parameters(), before.parameters(), strict=True))
