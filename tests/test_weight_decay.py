"""The weight-decay probe: each convention an optimizer may follow is told apart by measurement."""

import importlib.util
import math
import textwrap
from pathlib import Path

import pytest

from harness.core.config import RunConfig
from harness.core.weight_decay import NO_SHRINK, STEPS, probe_weight_decay, shrink_per_step

SWEEP_ENDS = (0.0005, 0.05)  # the ends of C6's sweep, as the claim probes them
PAPER_LR = 0.01  # AlexNet's and the MLPs' paper learning rate
MOMENTUM = 0.9

# Hand-written optimizers an author might supply: a decoupled AdamW-like rule, and one that takes
# weight_decay and drops it.
OPTIMIZERS = textwrap.dedent('''
    import torch

    class DecoupledLike(torch.optim.Optimizer):
        """Sign-of-momentum steps (zero on a zero gradient) with AdamW's decoupled decay."""

        def __init__(self, params, lr=1e-3, weight_decay=0.0):
            super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                    p.add_(torch.sign(p.grad), alpha=-group["lr"])
            return None

    def adamw_by_name(named_parameters, lr=1e-3, weight_decay=0.0):
        """A factory that asks for the named parameters (to exempt some from decay, say)."""
        return torch.optim.AdamW([p for _, p in named_parameters], lr=lr, weight_decay=weight_decay)

    def ignores_weight_decay(params, lr=1e-3, weight_decay=0.0):
        """Takes weight_decay and never uses it."""
        return torch.optim.Adam(params, lr=lr)
''')


@pytest.fixture
def authored(tmp_path, monkeypatch):
    (tmp_path / "decay_optimizers.py").write_text(OPTIMIZERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "decay_optimizers"


def test_the_papers_sgd_is_proportional_with_factor_one_and_momentum_amplifies_it():
    found = probe_weight_decay("paper_sgd", PAPER_LR, SWEEP_ENDS, PAPER_LR)
    assert found.convention == "proportional"
    assert found.factor == pytest.approx(1.0)
    # Momentum 0.9 makes a settled coupled decay lr * c / (1 - 0.9) per step: ten times plain SGD's.
    plain = shrink_per_step("sgd", PAPER_LR, SWEEP_ENDS[0])
    amplified = shrink_per_step("paper_sgd", PAPER_LR, SWEEP_ENDS[0], momentum=MOMENTUM)
    assert plain == pytest.approx(PAPER_LR * SWEEP_ENDS[0], rel=1e-3)
    assert amplified == pytest.approx(PAPER_LR * SWEEP_ENDS[0] / (1 - MOMENTUM), rel=1e-2)


@pytest.mark.parametrize("spec", ["adamw", "torch.optim:AdamW", "DecoupledLike", "adamw_by_name"])
def test_decoupled_decay_is_proportional_and_matched_by_lr_ratio_over_momentum(spec, authored):
    spec = f"{authored}:{spec}" if spec in ("DecoupledLike", "adamw_by_name") else spec
    lr = 1e-3
    found = probe_weight_decay(spec, lr, SWEEP_ENDS, PAPER_LR)
    assert found.convention == "proportional", found.reason
    # Decoupled: lr * c per step; the paper's SGD: paper_lr * c / (1 - momentum). Their ratio is the factor.
    assert found.factor == pytest.approx(PAPER_LR / (1 - MOMENTUM) / lr, rel=1e-2)
    assert "factor" in found.reason


def test_a_factory_that_drops_weight_decay_is_ignored(authored):
    found = probe_weight_decay(f"{authored}:ignores_weight_decay", 1e-3, SWEEP_ENDS, PAPER_LR)
    assert (found.convention, found.factor) == ("ignored", None)
    assert "leaves the weights alone" in found.reason


@pytest.mark.parametrize("spec", ["adam", "torch.optim:Adam"])
def test_coupled_decay_through_a_normalised_step_is_not_proportional(spec):
    found = probe_weight_decay(spec, 1e-3, SWEEP_ENDS, PAPER_LR)
    assert (found.convention, found.factor) == ("not proportional", None)
    assert "weight decay^0.0" in found.reason  # the measured exponent: the coefficient does not matter


def test_zero_weights_are_refused_and_the_probe_makes_its_own_nonzero_ones():
    # On zero weights nothing could shrink, and every optimizer would read as "ignored".
    with pytest.raises(ValueError, match="nonzero"):
        shrink_per_step("adamw", 1e-3, 0.01, initial=0.0)
    # The default start is the probe's own nonzero weights: a real decay is seen.
    assert shrink_per_step("adamw", 1e-3, 0.01) == pytest.approx(1e-5, rel=1e-6)
    assert shrink_per_step("adamw", 1e-3, 0.01, initial=-3.0) == pytest.approx(1e-5, rel=1e-6)


@pytest.mark.parametrize(
    "coefficients, paper_lr, message",
    [
        ((0.01,), PAPER_LR, "two different positive"),
        ((0.01, 0.01), PAPER_LR, "two different positive"),
        ((0.0, 0.01), PAPER_LR, "two different positive"),
        (SWEEP_ENDS, 0.0, "paper_lr"),
    ],
)
def test_bad_input_is_refused_with_the_fix(coefficients, paper_lr, message):
    with pytest.raises(ValueError, match=message):
        probe_weight_decay("adamw", 1e-3, coefficients, paper_lr)
    with pytest.raises(ValueError, match="positive finite"):
        shrink_per_step("adamw", 1e-3, math.nan)


def test_no_shrink_floor_sits_between_rounding_and_the_weakest_decay():
    # The floor must be above float64 rounding over STEPS steps and below the weakest decay a
    # sweep could use (lr 1e-4 x coefficient 1e-4, read over the last half of the steps).
    assert STEPS * 1e-16 < NO_SHRINK < 1e-4 * 1e-4 * (STEPS // 2)
    assert shrink_per_step("adamw", 1e-4, 1e-4) > 0


# --- C6's sweep, as the claim builds it for each optimizer ------------------------------------------


@pytest.fixture(scope="module")
def c6():
    """The C6 claim module, loaded under a name of its own (never meeting the suite's copy)."""
    path = Path(__file__).resolve().parents[1] / "claims" / "test_c06_regularisation.py"
    spec = importlib.util.spec_from_file_location("c6_claim_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sweep_runs_the_papers_sgd_at_its_coefficients_exactly(c6):
    sweep = c6._sweep_for(RunConfig(model="alexnet", optimizer="paper_sgd"), "alexnet")
    # The very numbers, not approximations: the paper SGD's run keys must not change.
    assert [coefficient for coefficient, _ in sweep] == list(c6.WEIGHT_DECAY_SWEEP)
    assert [name for _, name in sweep] == [f"{c:g}" for c in c6.WEIGHT_DECAY_SWEEP]


def test_the_sweep_scales_a_decoupled_decay_to_the_papers_sgd(c6):
    lr = 1e-3
    try:
        sweep = c6._sweep_for(RunConfig(model="alexnet", optimizer="adamw", lr=lr), "alexnet")
    except pytest.skip.Exception as skipped:  # a skip here is the defect, not a test to pass over
        pytest.fail(f"adamw's sweep skipped: {skipped}")
    factor = PAPER_LR / (1 - MOMENTUM) / lr  # AlexNet's paper lr is 0.01
    assert [c for c, _ in sweep] == pytest.approx([c * factor for c in c6.WEIGHT_DECAY_SWEEP], rel=1e-2)
    assert sweep[0][1].startswith("coefficient 0.0005 x 100 (decay matched to the paper's SGD)")


@pytest.mark.parametrize("spec, measured", [("adam", "not in proportion"), ("ignores", "leaves the weights alone")])
def test_the_sweep_skips_as_not_comparable_with_what_was_measured(c6, authored, spec, measured):
    spec = f"{authored}:ignores_weight_decay" if spec == "ignores" else spec
    with pytest.raises(pytest.skip.Exception, match=f"^not comparable: .*{measured}"):
        c6._sweep_for(RunConfig(model="alexnet", optimizer=spec, lr=1e-3), "alexnet")
