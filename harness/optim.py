"""Optimizers as plug-ins: a spec string resolves to a factory.

The harness owns model, data, loss, seeds, budget and the learning-rate
schedule; an optimizer is anything that turns parameters into a
`torch.optim.Optimizer`. A spec is a built-in name or an import path
``package.module:factory``, either optionally with literal keyword arguments:
``adam(lr=3e-4)``, ``package.module:factory(beta=0.9, eps=1e-8)``.

What reaches the optimizer from the run's config:
- a built-in takes the config's ``lr``, ``weight_decay`` and, for
  ``paper_sgd``, ``momentum``; its spec's keywords add to them (a keyword that
  names one of those settings fills it in the config: harness.config);
- an imported factory is called with the parameters, ``lr`` when the run sets
  one, ``weight_decay`` when the run sets a nonzero one, and the spec's
  keywords; the config's momentum never reaches it (set it in the spec).
Arguments are passed by name only: the factory takes the parameters first.
"""

from __future__ import annotations

import ast
import functools
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


# Built-in name -> (torch class, whether the config's momentum reaches it).
BUILTIN_CLASSES: dict[str, tuple[type, bool]] = {
    "paper_sgd": (torch.optim.SGD, True),  # SGD, momentum 0.9 (the paper's)
    "sgd": (torch.optim.SGD, False),  # SGD without momentum
    "adam": (torch.optim.Adam, False),
    "adamw": (torch.optim.AdamW, False),
    "rmsprop": (torch.optim.RMSprop, False),
}


def _builtin(name: str) -> Callable[..., torch.optim.Optimizer]:
    optimizer_class, takes_momentum = BUILTIN_CLASSES[name]

    def build(params, hyper: Hyper, **options) -> torch.optim.Optimizer:
        settings = {"lr": hyper.lr, "weight_decay": hyper.weight_decay}
        if takes_momentum:
            settings["momentum"] = hyper.momentum
        return optimizer_class(params, **{**settings, **options})

    build.__name__ = build.__qualname__ = f"_{name}"
    return build


BUILTINS: dict[str, Callable[..., torch.optim.Optimizer]] = {name: _builtin(name) for name in BUILTIN_CLASSES}

_SPEC = re.compile(r"^(?P<target>[\w.:]+?)(?:\((?P<arguments>.*)\))?$", re.S)
_IMPORT_TARGET = re.compile(r"^(?P<module>[\w.]+):(?P<attr>[\w.]+)$")
FACTORY_SHAPE = "a torch.optim.Optimizer subclass, or a function (params, lr=..., **options) -> torch.optim.Optimizer"


class OptimizerSpecError(ValueError):
    """An optimizer spec that cannot be resolved."""


def builtin_name(spec: str) -> str | None:
    """The built-in a spec names (``adam`` for ``adam(lr=3e-4)``), None for an import path or a bad spec."""
    match = _SPEC.match(spec)
    return match["target"] if match and match["target"] in BUILTINS else None


def builtin_takes(name: str, keyword: str) -> bool:
    """Whether built-in `name`'s torch class takes `keyword` (adam has no momentum, sgd has one)."""
    return keyword in (_keyword_names(BUILTIN_CLASSES[name][0]) or ())


def resolve(spec: str) -> Callable[[Iterable, Hyper], torch.optim.Optimizer]:
    """Turn a spec into `build(params, hyper) -> Optimizer`.

    Raises OptimizerSpecError, one line naming the fix, for: a name that is
    neither a built-in nor ``package.module:factory`` (with a suggestion for a
    dotted path), positional or non-literal arguments, a module or name that
    cannot be imported, a target that is no optimizer factory (``os:system``),
    and keywords the factory does not take.
    """
    target, keywords = _parse(spec)
    if target in BUILTINS:
        _check_keywords(spec, target, BUILTIN_CLASSES[target][0], keywords)
        return functools.partial(BUILTINS[target], **keywords) if keywords else BUILTINS[target]
    factory = _import_factory(spec, target)
    _check_keywords(spec, target, factory, keywords)

    def build(params, hyper: Hyper):
        given = _settings_for_factory(spec, factory, hyper)
        try:
            optimizer = factory(params, **{**given, **keywords})
        except TypeError as error:  # called with what a factory takes, yet the call does not fit
            raise OptimizerSpecError(
                f"optimizer {spec!r} cannot be called as factory(params, **options) ({error}); name {FACTORY_SHAPE}"
            ) from error
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise OptimizerSpecError(
                f"{spec!r} returned {type(optimizer).__name__}, not a torch.optim.Optimizer; name {FACTORY_SHAPE}"
            )
        return optimizer

    return build


def _parse(spec: str) -> tuple[str, dict]:
    """(target, keyword arguments) of a spec; OptimizerSpecError for anything else."""
    match = _SPEC.match(spec)
    target = match["target"] if match else None
    if target not in BUILTINS and not (target and _IMPORT_TARGET.match(target)):
        raise OptimizerSpecError(
            f"optimizer {spec!r} is neither a built-in ({', '.join(BUILTINS)}) "
            f"nor an import path package.module:factory{_dotted_path_hint(spec, target)}"
        )
    return target, _keywords(spec, target, match["arguments"] or "")


def _dotted_path_hint(spec: str, target: str | None) -> str:
    """'; did you mean 'torch.optim:SGD'?' for 'torch.optim.SGD': the factory follows a colon."""
    if not target or ":" in target or "." not in target:
        return ""
    module, _, name = target.rpartition(".")
    return f"; did you mean {module + ':' + name + spec[len(target):]!r}?"


def spec_kwargs(spec: str) -> dict:
    """The keyword arguments a spec fixes (``{}`` without any, or for a name that is no spec).

    Raises OptimizerSpecError for arguments that are not ``name=literal``.
    """
    match = _SPEC.match(spec)
    if not match or not match["arguments"]:
        return {}
    return _keywords(spec, match["target"], match["arguments"])


def _keywords(spec: str, target: str, text: str) -> dict:
    """The keyword arguments written in a spec's parentheses, as values; OptimizerSpecError with the fix if not."""
    if not text.strip():
        return {}
    source = f"f({text})"
    try:
        call = ast.parse(source, mode="eval").body
        if not isinstance(call, ast.Call):
            raise SyntaxError("not one argument list")
    except SyntaxError as error:
        raise OptimizerSpecError(_keywords_message(spec, target, error)) from None
    if call.args:
        raise OptimizerSpecError(_positional_message(spec, target, source, call))
    try:
        if any(keyword.arg is None for keyword in call.keywords):
            raise ValueError("** is not a keyword argument")
        return {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}
    except ValueError as error:
        raise OptimizerSpecError(_keywords_message(spec, target, error)) from None


def _keywords_message(spec: str, target: str, error: Exception) -> str:
    return (f"optimizer {spec!r}: keyword arguments must be name=literal, e.g. {target}(lr=0.1, betas=(0.9, 0.99)) "
            f"({error})")


def _positional_message(spec: str, target: str, source: str, call: ast.Call) -> str:
    """Positional arguments are refused, with the call that names them (the factory takes the parameters first)."""
    names = _parameter_names(target)[: len(call.args)]
    names += ["NAME"] * (len(call.args) - len(names))
    written = [f"{name}={ast.get_source_segment(source, value)}" for name, value in zip(names, call.args)]
    written += [ast.get_source_segment(source, keyword) for keyword in call.keywords]
    them = "it" if len(call.args) == 1 else "them"
    return (f"optimizer {spec!r}: positional arguments are not passed to the factory, which takes the parameters "
            f"first; name {them}: {target}({', '.join(written)})")


def _parameter_names(target: str) -> list[str]:
    """The factory's parameter names after the parameters, where it can be looked up; [] where not."""
    try:
        factory = BUILTIN_CLASSES[target][0] if target in BUILTINS else _import_factory(target, target)
        parameters = list(inspect.signature(factory).parameters.values())[1:]
    except (OptimizerSpecError, TypeError, ValueError):
        return []
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _import_factory(spec: str, target: str) -> Factory:
    """The callable an import path names; OptimizerSpecError unless it can make an optimizer."""
    module_name, _, attribute = target.partition(":")
    try:
        factory = importlib.import_module(module_name)
        for part in attribute.split("."):
            factory = getattr(factory, part)
    except (ImportError, AttributeError) as error:
        raise OptimizerSpecError(
            f"optimizer {spec!r} cannot be imported: {error}; check that {module_name} is importable here "
            f"(installed, or on PYTHONPATH) and defines {attribute}"
        ) from None
    problem = _not_a_factory(factory)
    if problem:
        raise OptimizerSpecError(f"optimizer {spec!r} names {target}, {problem}, which is not an optimizer factory; "
                                 f"name {FACTORY_SHAPE}")
    return factory


def _not_a_factory(target) -> str | None:
    """Why `target` cannot be an optimizer factory, or None when it can be one.

    Functions written in C (os.system, builtins.eval) are refused without a
    call: no optimizer factory is one. Python callables are called at
    build time, and what they return is checked then.
    """
    if isinstance(target, type):
        return None if issubclass(target, torch.optim.Optimizer) else "a class that is not a torch.optim.Optimizer"
    if inspect.isbuiltin(target) or inspect.ismethoddescriptor(target):
        return "a built-in function"
    if inspect.ismodule(target) or not callable(target):
        return f"a {type(target).__name__}"
    return None


def _check_keywords(spec: str, target: str, factory, keywords: dict) -> None:
    """Every keyword must be one the factory takes (any, where it takes **options)."""
    accepted = _keyword_names(factory) if keywords else None
    unknown = [name for name in keywords if accepted is not None and name not in accepted]
    if unknown:
        raise OptimizerSpecError(
            f"optimizer {spec!r}: {target} takes no keyword {', '.join(unknown)}; it takes {', '.join(accepted)}"
        )


def _keyword_names(factory) -> list[str] | None:
    """Keywords the factory takes after the parameters; None when it takes any (**options) or cannot be read."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters[1:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _settings_for_factory(spec: str, factory, hyper: Hyper) -> dict:
    """The config's settings an imported factory is called with: lr when set, weight_decay when nonzero."""
    given = {"lr": hyper.lr, "weight_decay": hyper.weight_decay or None}
    given = {name: value for name, value in given.items() if value is not None}
    accepted = _keyword_names(factory)
    for name, value in given.items():
        if accepted is not None and name not in accepted:
            raise OptimizerSpecError(
                f"optimizer {spec!r} takes no {name}, and this run sets {name} {value:g}; leave {name} "
                f"{'unset' if name == 'lr' else 'at 0'} for it, or name a factory that takes {name}"
            )
    return given


def _import_parts(spec: str) -> tuple[str, str, str | None] | None:
    """(module, attribute, argument text or None) of an import spec; None for a built-in or a bad spec."""
    match = _SPEC.match(spec)
    target = match and _IMPORT_TARGET.match(match["target"])
    return (target["module"], target["attr"], match["arguments"]) if target else None


def spec_id(spec: str) -> str:
    """A short readable test id: the built-in spec as written, or the factory's name and its arguments."""
    parts = _import_parts(spec)
    if parts is None:
        return spec
    _, attribute, arguments = parts
    name = attribute.split(".")[-1]
    return f"{name}({arguments})" if arguments else name


def describe(spec: str) -> str:
    """Spec with the version of the package that provides it, for report headers."""
    if builtin_name(spec):
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
    if builtin_name(spec):
        return f"torch {torch.__version__}"
    parts = _import_parts(spec)
    try:
        module = importlib.import_module(parts[0]) if parts else None
        source = inspect.getsourcefile(module) if module else None
    except (ImportError, TypeError):
        source = None
    if not source:
        return f"unhashable {spec}"
    with open(source, "rb") as stream:
        return "sha256:" + hashlib.sha256(stream.read()).hexdigest()[:16]
