"""How an optimizer applies `weight_decay`, measured: ignored, proportional, or not proportional.

A coefficient of weight decay means different things to different
optimizers. The paper's SGD adds ``c * w`` to the gradient (coupled L2) and
its momentum 0.9 amplifies it; AdamW shrinks the weights by ``lr * c`` each
step (decoupled); Adam adds ``c * w`` to a gradient it then normalises, so
its step barely depends on ``c``; a factory may also take ``weight_decay``
and drop it. A sweep of coefficients chosen for the paper's SGD is only
comparable across optimizers once that is known, and names do not tell it:
this module measures it.

What the probe measures: it builds the optimizer from its spec, as a run
does (`harness.core.optim.resolve`), on one parameter tensor of weights it
makes itself (all INITIAL_WEIGHT: a weight of zero cannot show a shrink),
sets the gradient to zeros and steps STEPS times, at each of two
coefficients. With the loss gradient zero, any change of the weights comes
from the decay alone (an update rule's own step on a zero gradient is zero
for every optimizer the harness ships: SGD, Adam, AdamW, RMSprop). The
shrink per step is read over the last half of the steps
(`1 - (w_end / w_mid) ** (1 / n)`), after momentum and moment estimates
have settled: momentum 0.9 amplifies a coupled decay about tenfold once its
buffer fills, which is why measuring beats a formula.

Classification, from the two coefficients c1 < c2 (by default the two ends
of the caller's coefficients):

- "ignored": the weights did not move at either coefficient (relative
  change below NO_SHRINK);
- "proportional": the shrink scales as the coefficient, its measured
  exponent ``log(s2 / s1) / log(c2 / c1)`` within EXPONENT_TOLERANCE of 1
  (SGD's coupled L2 and AdamW's decoupled decay both are);
- "not proportional": anything else (Adam's coupled L2: its normalised
  step shrinks by about lr per step whatever the coefficient, exponent 0).

For a proportional decay the probe also measures the paper's SGD (the
model's paper learning rate, momentum 0.9) and returns the factor that makes
the optimizer's shrink per step at ``c * factor`` equal to the paper SGD's
at ``c``.

Limits: the probe sees the decay of one step rule on float64 weights at one
learning rate, the run's initial one; a schedule that changes the lr scales
both optimizers' decay alike only if both decays are proportional to lr. An
optimizer whose update on a zero gradient is not zero (noise, a sign of
zero taken as one) is read as decaying; one that treats weight decay per
parameter shape (excluding vectors, say) is read on a vector. Deterministic,
on the CPU, in milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from harness.core.optim import Hyper, resolve

PAPER_SGD = "paper_sgd"
STEPS = 100  # steps per coefficient; the shrink is read over the last STEPS // 2
# Momentum 0.9's transient decays as 0.9**t: after STEPS // 2 = 50 steps it is 0.5% of its
# start, so the second half reads the settled rate.
INITIAL_WEIGHT = 1.0  # the probe's own weights: nonzero, so that a shrink can be seen
N_WEIGHTS = 4  # a small vector; every entry shrinks alike
# "No shrink": a relative change of the weights over all the steps below this. Rounding in
# float64 moves a weight by about 1e-16 per step (1e-14 over STEPS); the weakest decay a sweep
# uses (lr 1e-4 x coefficient 1e-4) moves it by 1e-6 over STEPS. 1e-10 sits between, far from both.
NO_SHRINK = 1e-10
# A proportional decay's measured exponent is 1 up to the compounding of the shrink over a
# step (second order: about the per-step shrink itself, under 1% at the coefficients a sweep
# probes); Adam's coupled L2, the other convention, measures 0. 0.25 is a quarter of the way,
# far beyond the first and far short of the second.
EXPONENT_TOLERANCE = 0.25

CONVENTIONS = ("proportional", "ignored", "not proportional")


@dataclass(frozen=True)
class DecayConvention:
    """What the probe found of an optimizer's weight decay.

    convention: one of CONVENTIONS.
    factor: for "proportional", the number a paper-SGD coefficient is
        multiplied by to give this optimizer the same shrink per step
        (AdamW at lr 1e-3 against SGD at lr 0.01 with momentum 0.9: about
        100); None otherwise.
    reason: one line with the measured shrinks, for a report or a skip.
    """

    convention: str
    factor: float | None
    reason: str


def build_optimizer(spec: str, model: torch.nn.Module, hyper: Hyper) -> torch.optim.Optimizer:
    """The optimizer a run would build from `spec` for `model` (the one place the probe calls optim).

    optim's build takes the model, and hands a factory the model, its named
    parameters or its parameters, as the factory asks.
    """
    return resolve(spec)(model, hyper)


def shrink_per_step(
    spec: str, lr: float | None, coefficient: float, *, momentum: float = 0.9, initial: float = INITIAL_WEIGHT
) -> float:
    """The fraction of its size a weight loses per step to weight decay alone (zero loss gradient).

    lr: the learning rate the optimizer is built with (None: its factory's
    own default); momentum: what a built-in that takes the config's momentum
    gets (the paper's SGD). initial: the weights' starting value.
    Returns the settled shrink per step, 0 for an optimizer that leaves the
    weights alone, negative for one that grows them.
    Raises ValueError for a coefficient that is not a positive finite
    number or an initial weight of zero (no shrink could be seen);
    harness.core.optim.OptimizerSpecError for a spec that cannot be built.
    """
    if not (isinstance(coefficient, (int, float)) and math.isfinite(coefficient) and coefficient > 0):
        raise ValueError(f"weight decay coefficient must be a positive finite number, not {coefficient!r}")
    if not (math.isfinite(initial) and initial != 0):
        raise ValueError(f"initial weight must be nonzero and finite, not {initial!r}: no shrink can be seen on 0")
    probe = torch.nn.Module()  # a model of one parameter tensor, so that any factory's first argument can be given
    probe.weights = torch.nn.Parameter(torch.full((N_WEIGHTS,), float(initial), dtype=torch.float64))
    optimizer = build_optimizer(spec, probe, Hyper(lr=lr, momentum=momentum, weight_decay=coefficient))
    weights = probe.weights
    middle = None
    for step in range(STEPS):
        weights.grad = torch.zeros_like(weights)  # no loss: only the decay moves the weights
        optimizer.step()
        if step + 1 == STEPS // 2:
            middle = weights.detach().abs().mean().item()
    end = weights.detach().abs().mean().item()
    if not (math.isfinite(end) and middle):
        return 1.0 if end == 0 or middle == 0 else math.nan  # all shrunk away; or overflowed
    ratio = end / middle
    if abs(ratio - 1) < NO_SHRINK:
        return 0.0
    return 1 - ratio ** (1 / (STEPS - STEPS // 2))


def probe_weight_decay(
    spec: str, lr: float | None, coefficients: Sequence[float], paper_lr: float, *, paper_momentum: float = 0.9
) -> DecayConvention:
    """Classify how `spec` applies weight decay, and match it to the paper's SGD (module docstring).

    lr: the optimizer's learning rate in the runs (None: its factory's
    default); coefficients: the paper-SGD coefficients the caller will use
    (at least two different ones; the smallest and the largest are probed);
    paper_lr: the paper SGD's learning rate for the run's model.
    Raises ValueError for fewer than two distinct positive coefficients or a
    paper_lr that is not positive.
    """
    values = sorted({float(c) for c in coefficients})
    if len(values) < 2 or values[0] <= 0:
        raise ValueError(f"the probe needs two different positive coefficients, not {list(coefficients)!r}")
    if not (math.isfinite(paper_lr) and paper_lr > 0):
        raise ValueError(f"paper_lr must be a positive learning rate, not {paper_lr!r}")
    low, high = values[0], values[-1]
    s_low, s_high = shrink_per_step(spec, lr, low), shrink_per_step(spec, lr, high)
    measured = f"shrink per step {s_low:.3g} at weight decay {low:g}, {s_high:.3g} at {high:g}"
    at = f"lr {lr:g}" if lr is not None else "its default lr"
    if s_low == 0 and s_high == 0:
        return DecayConvention("ignored", None, f"{spec} at {at} leaves the weights alone ({measured}): ignored")
    if not (s_low > 0 and s_high > 0 and math.isfinite(s_low) and math.isfinite(s_high)):
        return DecayConvention(
            "not proportional", None, f"{spec} at {at} does not shrink the weights steadily ({measured})"
        )
    exponent = math.log(s_high / s_low) / math.log(high / low)
    if abs(exponent - 1) > EXPONENT_TOLERANCE:
        return DecayConvention(
            "not proportional",
            None,
            f"{spec} at {at}: its shrink scales as weight decay^{exponent:.2f}, not in proportion "
            f"({measured}; a coupled L2 through a normalised step does this)",
        )
    paper = shrink_per_step(PAPER_SGD, paper_lr, low, momentum=paper_momentum)
    factor = paper / s_low
    return DecayConvention(
        "proportional",
        factor,
        f"{spec} at {at}: shrink proportional to weight decay ({measured}); the paper's SGD "
        f"(lr {paper_lr:g}, momentum {paper_momentum:g}) shrinks {paper:.3g} per step at {low:g}: factor {factor:.3g}",
    )
