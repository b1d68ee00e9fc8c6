"""Optimizers as plug-ins: a spec string resolves to a factory.

The harness owns model, data, loss, seeds, budget and the learning-rate
schedule; an optimizer is anything that turns parameters into a
`torch.optim.Optimizer`. A spec is either a built-in name or an import path
``package.module:factory`` (the factory is called with the parameters, plus
``lr`` when the run sets one; otherwise its own default applies), optionally
with keyword arguments:
``package.module:factory(beta=0.9,eps=1e-8)``.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import re
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

Factory = Callable[..., torch.optim.Optimizer]


@dataclass(frozen=True)
class Hyper:
    """The run's optimizer settings that built-ins take from the config."""

    lr: float | None  # None: the factory's own default
    momentum: float = 0.9
    weight_decay: float = 0.0


def _paper_sgd(params, hyper: Hyper):
    return torch.optim.SGD(params, lr=hyper.lr, momentum=hyper.momentum, weight_decay=hyper.weight_decay)


def _plain_sgd(params, hyper: Hyper):
    return torch.optim.SGD(params, lr=hyper.lr, weight_decay=hyper.weight_decay)


BUILTINS: dict[str, Callable[[Iterable, Hyper], torch.optim.Optimizer]] = {
    "paper_sgd": _paper_sgd,  # SGD, momentum 0.9 (the paper's)
    "sgd": _plain_sgd,  # SGD without momentum
    "adam": lambda params, h: torch.optim.Adam(params, lr=h.lr, weight_decay=h.weight_decay),
    "adamw": lambda params, h: torch.optim.AdamW(params, lr=h.lr, weight_decay=h.weight_decay),
    "rmsprop": lambda params, h: torch.optim.RMSprop(params, lr=h.lr, weight_decay=h.weight_decay),
}

_IMPORT_SPEC = re.compile(r"^(?P<module>[\w.]+):(?P<attr>[\w.]+)(?:\((?P<kwargs>.*)\))?$")


class OptimizerSpecError(ValueError):
    """An optimizer spec that cannot be resolved."""


def resolve(spec: str) -> Callable[[Iterable, Hyper], torch.optim.Optimizer]:
    """Turn a spec into `build(params, hyper) -> Optimizer`; a clear error if not."""
    if spec in BUILTINS:
        return BUILTINS[spec]
    match = _IMPORT_SPEC.match(spec)
    if not match:
        raise OptimizerSpecError(
            f"optimizer {spec!r} is neither a built-in ({', '.join(BUILTINS)}) "
            "nor an import path package.module:factory"
        )
    try:
        target = importlib.import_module(match["module"])
        for part in match["attr"].split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise OptimizerSpecError(f"optimizer {spec!r} cannot be imported: {error}") from None
    kwargs = _parse_kwargs(spec, match["kwargs"] or "")

    def build(params, hyper: Hyper):
        given = {} if hyper.lr is None else {"lr": hyper.lr}
        optimizer = target(params, **{**given, **kwargs})
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise OptimizerSpecError(f"{spec!r} returned {type(optimizer).__name__}, not a torch.optim.Optimizer")
        return optimizer

    return build


def _parse_kwargs(spec: str, text: str) -> dict:
    if not text.strip():
        return {}
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except (SyntaxError, ValueError) as error:
        raise OptimizerSpecError(f"optimizer {spec!r}: keyword arguments must be literals ({error})") from None


def spec_kwargs(spec: str) -> dict:
    """The keyword arguments an import spec fixes (``{}`` for a built-in)."""
    match = None if spec in BUILTINS else _IMPORT_SPEC.match(spec)
    return _parse_kwargs(spec, match["kwargs"] or "") if match else {}


def spec_id(spec: str) -> str:
    """A short readable test id: the built-in name, or the factory's name and its arguments."""
    if spec in BUILTINS:
        return spec
    match = _IMPORT_SPEC.match(spec)
    if not match:
        return spec
    name = match["attr"].split(".")[-1]
    return f"{name}({match['kwargs']})" if match["kwargs"] else name


def describe(spec: str) -> str:
    """Spec with the version of the package that provides it, for report headers."""
    if spec in BUILTINS:
        return f"{spec} (torch {torch.__version__})"
    module = spec.split(":")[0]
    try:
        top = importlib.import_module(module.split(".")[0])
        version = getattr(top, "__version__", "no version")
    except ImportError:
        version = "not importable"
    return f"{spec} ({module.split('.')[0]} {version})"


def code_fingerprint(spec: str) -> str:
    """Identity of the optimizer's code: torch's version for a built-in, the source file's hash for an import.

    Part of every run key, so editing your optimizer retrains instead of
    reusing records made by the old code.
    """
    if spec in BUILTINS:
        return f"torch {torch.__version__}"
    match = _IMPORT_SPEC.match(spec)
    try:
        module = importlib.import_module(match["module"]) if match else None
        source = inspect.getsourcefile(module) if module else None
    except (ImportError, TypeError):
        source = None
    if not source:
        return f"unhashable {spec}"
    with open(source, "rb") as stream:
        return "sha256:" + hashlib.sha256(stream.read()).hexdigest()[:16]
