"""One optimizer made of several, each over its own part of a model: the Muon/AdamW hybrid as one spec.

``--optimizer='harness.core.hybrid:by_shape(matrices="torch.optim:Muon", rest="adamw")'``
builds Muon for the hidden layers' matrices and AdamW for the rest, and hands
the training loop ONE torch.optim.Optimizer (`CombinedOptimizer`) that steps
both, checkpoints both and shows every param group to the lr schedule and to
the run record. `combine` makes one of any optimizers an author builds
(docs/check-your-optimizer.md has a five-line factory that uses it).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence

import torch

from harness.core.optim import (
    BUILTIN_OPTIMIZERS,
    PAPER_LR,
    Hyper,
    OptimizerSpecError,
    builtin_name,
    extra_attributes,
    resolve,
    spec_kwargs,
)


def by_shape(
    named_parameters: list,
    *,
    matrices: str,
    rest: str,
    lr: float | None = None,
    weight_decay: float | None = None,
) -> CombinedOptimizer:
    """One optimizer for the hidden layers' matrices, another for everything else: a Muon/AdamW hybrid.

    Spec: ``harness.core.hybrid:by_shape(matrices="torch.optim:Muon", rest="adamw")``.

    named_parameters: the model's (name, parameter) pairs, in the model's
        order (the harness hands them over: the first parameter's name asks
        for them).
    matrices: the spec of the optimizer for the hidden layers' matrices: every
        parameter with ndim >= 2 except the first and the last of them in the
        model's order, which are the input layer's and the classifier's
        weights (all of our models register their layers input first,
        classifier last). Muon's authors keep the embedding and the output
        layer on AdamW; so does this. torch.optim.Muon takes only 2-D
        parameters: mlp_3x512's two hidden matrices are, mlp_1x512 has none
        (the hybrid is then its `rest` part alone), and a convolutional
        model's hidden filters are 4-D and need a matrix optimizer that
        takes them.
    rest: the spec of the optimizer for the other parameters: biases, norm
        gains, the input layer and the classifier.
    lr, weight_decay: the run's settings. The run's lr goes to both parts,
        so tuning moves both together; a part whose spec fixes its own lr
        (``rest="adamw(lr=3e-4)"``) keeps it, as a spec's keywords always
        win. A run that leaves lr unset gives each part its own default rate
        (adamw's 1e-3, Muon's 1e-3). A nonzero weight_decay goes to both.
        Each part is built exactly as a run would build its spec alone
        (`resolve`), from a list of its parameters; a part's spec whose
        factory asks for the model is refused (OptimizerSpecError).

    Returns a CombinedOptimizer whose param_groups are the parts' own
    groups, matrices first. A side that gets no parameter (a model with no
    hidden matrix, such as one linear layer) is left out. Raises
    OptimizerSpecError for a bad part spec, for a part that needs the run's
    lr when none is set (a built-in at the paper's rate), and for a model
    without parameters.
    """
    pairs = list(named_parameters)
    if not pairs or not all(isinstance(pair, tuple) and len(pair) == 2 for pair in pairs):
        raise OptimizerSpecError(
            "by_shape takes the model's named parameters, a non-empty list of (name, parameter) pairs"
        )
    matrix_names = [name for name, parameter in pairs if parameter.ndim >= 2][1:-1]  # not input layer, classifier
    hidden = set(matrix_names)
    parts = []
    for part_spec, chosen in (
        (matrices, [parameter for name, parameter in pairs if name in hidden]),
        (rest, [parameter for name, parameter in pairs if name not in hidden]),
    ):
        if chosen:
            parts.append(resolve(part_spec)(chosen, _part_hyper(part_spec, lr, weight_decay)))
    return combine(parts)


def _part_hyper(part_spec: str, lr: float | None, weight_decay: float | None) -> Hyper:
    """The settings a by_shape part is built with: the run's lr, else a built-in's usual rate (imported: its own)."""
    builtin = builtin_name(part_spec)
    if lr is None and builtin is not None and "lr" not in spec_kwargs(part_spec):
        default = BUILTIN_OPTIMIZERS[builtin].default_lr
        if default == PAPER_LR:
            raise OptimizerSpecError(
                f"by_shape part {part_spec!r} runs at the paper's rate of the model, which a part cannot read; "
                f"set the run's lr, or write the part's own: {builtin}(lr=...)"
            )
        lr = float(default)
    return Hyper(lr, weight_decay=weight_decay or 0.0)


class CombinedOptimizer(torch.optim.Optimizer):
    """One torch.optim.Optimizer made of several, each over its own parameters; stepping it steps each.

    param_groups are the parts' own group dicts (the same objects, in the
    parts' order), so a learning-rate schedule that writes group["lr"]
    reaches the part that owns the group, and what a run records of its
    groups (harness.core.train.optimizer_settings) lists every part's.
    step(closure) evaluates the closure once, under autograd, then steps
    each part without one: the parts are first-order optimizers that read
    the gradients it left (a part that needs the closure itself, SAM or
    LBFGS, cannot share one evaluation and raises its own error).
    state_dict() holds each part's state_dict() and the attributes it keeps
    outside it (a step counter kept as a Python int); load_state_dict()
    restores both, so a checkpointed run resumes exactly. `state` is a
    read-only view of the parts' states. Raises ValueError for no parts and
    for parts that share a parameter.
    """

    # A slot, not the instance's __dict__: the parts are saved through state_dict(), and a checkpoint
    # refuses an optimizer whose other instance attributes are not plain data (train.optimizer_attributes).
    __slots__ = ("optimizers",)

    def __init__(self, optimizers: Sequence[torch.optim.Optimizer]):
        if not optimizers:
            raise ValueError("CombinedOptimizer needs at least one optimizer")
        self.optimizers = tuple(optimizers)
        # torch's own checks (parameters shared between groups raise ValueError); no defaults of its own.
        super().__init__([group for part in self.optimizers for group in part.param_groups], {})
        self._gather()

    def _gather(self) -> None:
        """Point param_groups and state at the parts' own (again after load_state_dict, which replaces them)."""
        self.param_groups = [group for part in self.optimizers for group in part.param_groups]
        self.state = _StateView(self.optimizers)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for part in self.optimizers:
            part.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.optimizers:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {
            "optimizers": [part.state_dict() for part in self.optimizers],
            "attributes": [copy.deepcopy(extra_attributes(part)) for part in self.optimizers],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        saved = state_dict.get("optimizers") if isinstance(state_dict, Mapping) else None
        if not isinstance(saved, (list, tuple)) or len(saved) != len(self.optimizers):
            held = len(saved) if isinstance(saved, (list, tuple)) else "no"
            raise ValueError(
                f"this state_dict holds {held} optimizers' state; this CombinedOptimizer has {len(self.optimizers)}"
            )
        attributes = state_dict.get("attributes") or [{}] * len(saved)
        for part, part_state, part_attributes in zip(self.optimizers, saved, attributes, strict=True):
            part.load_state_dict(part_state)
            for name, value in part_attributes.items():
                setattr(part, name, copy.deepcopy(value))
        self._gather()


class _CombinedWithModes(CombinedOptimizer):
    """A CombinedOptimizer with a part that keeps training and evaluation weights: train()/eval() reach it."""

    __slots__ = ()

    def train(self) -> None:
        for part in self.optimizers:
            if callable(getattr(part, "train", None)):
                part.train()

    def eval(self) -> None:
        for part in self.optimizers:
            if callable(getattr(part, "eval", None)):
                part.eval()


def combine(optimizers: Sequence[torch.optim.Optimizer]) -> CombinedOptimizer:
    """The CombinedOptimizer of `optimizers`; with train()/eval() only when a part has them (schedule-free),
    since the loop records whether an optimizer has modes (harness.core.train.has_modes)."""
    with_modes = any(
        callable(getattr(part, "train", None)) and callable(getattr(part, "eval", None)) for part in optimizers
    )
    return (_CombinedWithModes if with_modes else CombinedOptimizer)(optimizers)


class _StateView(Mapping):
    """The parts' per-parameter state, read through one mapping (looked up without creating entries)."""

    def __init__(self, optimizers: Sequence[torch.optim.Optimizer]):
        self._parts = optimizers

    def __getitem__(self, parameter):
        for part in self._parts:
            if parameter in part.state:
                return part.state[parameter]
        raise KeyError(parameter)

    def __iter__(self) -> Iterator:
        return (parameter for part in self._parts for parameter in part.state)

    def __len__(self) -> int:
        return sum(len(part.state) for part in self._parts)
