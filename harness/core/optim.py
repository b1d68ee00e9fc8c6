"""Optimizers as plug-ins: a spec string resolves to a factory.

The harness owns model, data, loss, seeds, budget and the learning-rate
schedule; an optimizer is anything that turns parameters into a
`torch.optim.Optimizer`. A spec is a built-in name or an import path
``package.module:factory``, either optionally with literal keyword arguments:
``adam(lr=3e-4)``, ``package.module:factory(beta=0.9, eps=1e-8)``.

What reaches the optimizer from the run's config:
- a built-in takes the config's ``lr``, ``weight_decay`` and, for
  ``paper_sgd``, ``momentum``; its spec's keywords add to them (a keyword that
  names one of those settings fills it in the config: harness.core.config);
- an imported factory is called with what its first parameter asks for,
  ``lr`` when the run sets one, ``weight_decay`` when the run sets a nonzero
  one, and the spec's keywords; the config's momentum never reaches it (set
  it in the spec).
Keywords are passed by name only. The first argument is passed by position
and chosen by the name of the factory's first parameter:
- ``model``: the ``torch.nn.Module`` being trained;
- ``named_parameters``: a list of ``(name, parameter)`` pairs, the model's
  ``named_parameters()`` (names such as ``"3.weight"``);
- any other name (``params``, a torch.optim class's first parameter): the
  model's parameters, as torch.optim expects them.
A Muon-style hybrid (one optimizer for the hidden layers' matrices, another
for the rest) is then one spec: `by_shape`, for instance
``harness.core.optim:by_shape(matrices="torch.optim:Muon", rest="adamw")``;
`CombinedOptimizer` is the one torch.optim.Optimizer that steps its parts.

`resolve(spec)` returns ``build(model, hyper)``; the training loop, the
first-step check and C9 hand it the model. A caller that has parameters
only may pass them instead, and then a factory that asks for the model or
its named parameters is refused (OptimizerSpecError), never called with
something else. When a run leaves lr unset and the factory has no default
rate of its own (``lr=None``, or ``lr`` without a default), the first-step
check builds it at NO_DEFAULT_LR, the rate tuning tries first for it
(`first_step_lr`).

Every run key holds the identity of the optimizer's code (`code_fingerprint`):
torch's version for a built-in; for an import path, a hash of every source
file of the package that holds it and that package's version, so that an edit
anywhere in it (not only in the module the spec names) trains anew, and of the
packages those files import (torch, torchvision and numpy by version only):
editing a package that a small factory file wraps trains anew too.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from harness.core.optimizer_source import CodeIdentity
from harness.core.optimizer_source import code_identity as source_identity

Factory = Callable[..., torch.optim.Optimizer]


@dataclass(frozen=True)
class Hyper:
    """The run's optimizer settings that built-ins take from the config."""

    lr: float | None  # None: the factory's own default
    momentum: float = 0.9
    weight_decay: float = 0.0


@dataclass(frozen=True)
class BuiltinOptimizer:
    """One built-in optimizer: what it builds and what a run takes from the config for it.

    name: the spec that names it (``adam``, or ``adam(lr=3e-4)`` with keywords).
    torch_class: the torch.optim.Optimizer subclass it builds.
    default_lr: the initial learning rate of a run that leaves ``lr`` unset:
        a number, or PAPER_LR for the paper's rate of the run's model
        (harness.core.models.ModelEntry.paper_lr).
    takes_config_momentum: whether the config's ``momentum`` is passed to it
        (only the paper's SGD; plain sgd runs without momentum unless its
        spec sets one).
    graph_step: whether the CUDA-graph loop implements its update itself
        (harness.core.graph_step, SGD with momentum and weight decay); only
        for the spec written as the bare name, since the graph step knows no
        keywords.
    """

    name: str
    torch_class: type
    default_lr: float | str
    takes_config_momentum: bool = False
    graph_step: bool = False


# The learning rate tried first for an optimizer whose factory has no default lr of its own (its
# default is None, or it has no lr parameter): tuning brackets outward from it, and the first-step
# check builds the optimizer with it. The middle of tuning's grid, and Adam's usual rate.
NO_DEFAULT_LR = 1e-3

PAPER_LR = "paper"  # BuiltinOptimizer.default_lr: the paper's learning rate of the run's model

# Name -> entry, in the order error messages list them.
BUILTIN_OPTIMIZERS: dict[str, BuiltinOptimizer] = {
    entry.name: entry
    for entry in (
        # SGD with the paper's momentum 0.9, and SGD without momentum: both at the paper's rates.
        BuiltinOptimizer("paper_sgd", torch.optim.SGD, PAPER_LR, takes_config_momentum=True, graph_step=True),
        BuiltinOptimizer("sgd", torch.optim.SGD, PAPER_LR, graph_step=True),
        # The adaptive optimizers at their usual 1e-3 (a convention, not a choice: harness.suite.tuning tunes them).
        BuiltinOptimizer("adam", torch.optim.Adam, 1e-3),
        BuiltinOptimizer("adamw", torch.optim.AdamW, 1e-3),
        BuiltinOptimizer("rmsprop", torch.optim.RMSprop, 1e-3),
    )
}

# Built-in name -> (torch class, whether the config's momentum reaches it); kept for its users.
BUILTIN_CLASSES: dict[str, tuple[type, bool]] = {
    name: (entry.torch_class, entry.takes_config_momentum) for name, entry in BUILTIN_OPTIMIZERS.items()
}


def graph_optimizers() -> tuple[str, ...]:
    """The optimizer specs the CUDA-graph loop implements itself, exactly as written (no keywords)."""
    return tuple(name for name, entry in BUILTIN_OPTIMIZERS.items() if entry.graph_step)


def builtin_default_lr(name: str, paper_lr: float) -> float:
    """The initial learning rate of built-in `name` when a run leaves lr unset; `paper_lr` is the model's.

    Raises KeyError for a name that is no built-in.
    """
    default = BUILTIN_OPTIMIZERS[name].default_lr
    return paper_lr if default == PAPER_LR else float(default)


def _builtin(name: str) -> Callable[..., torch.optim.Optimizer]:
    entry = BUILTIN_OPTIMIZERS[name]

    def build(params, hyper: Hyper, **options) -> torch.optim.Optimizer:
        settings = {"lr": hyper.lr, "weight_decay": hyper.weight_decay}
        if entry.takes_config_momentum:
            settings["momentum"] = hyper.momentum
        return entry.torch_class(params, **{**settings, **options})

    build.__name__ = build.__qualname__ = f"_{name}"
    return build


BUILTINS: dict[str, Callable[..., torch.optim.Optimizer]] = {name: _builtin(name) for name in BUILTIN_OPTIMIZERS}

_SPEC = re.compile(r"^(?P<target>[\w.:]+?)(?:\((?P<arguments>.*)\))?$", re.S)
_IMPORT_TARGET = re.compile(r"^(?P<module>[\w.]+):(?P<attr>[\w.]+)$")
FACTORY_SHAPE = (
    "a torch.optim.Optimizer subclass, or a function (params, lr=..., **options) -> torch.optim.Optimizer "
    "(its first parameter named model or named_parameters to receive those instead)"
)
# What a factory's first parameter asks for, by its name; any other name gets the parameters.
ASKS_FOR_MODEL, ASKS_FOR_NAMED_PARAMETERS, ASKS_FOR_PARAMETERS = "model", "named_parameters", "parameters"


class OptimizerSpecError(ValueError):
    """An optimizer spec that cannot be resolved."""


def builtin_name(spec: str) -> str | None:
    """The built-in a spec names (``adam`` for ``adam(lr=3e-4)``), None for an import path or a bad spec."""
    match = _SPEC.match(spec)
    return match["target"] if match and match["target"] in BUILTINS else None


def builtin_takes(name: str, keyword: str) -> bool:
    """Whether built-in `name`'s torch class takes `keyword` (adam has no momentum, sgd has one)."""
    return keyword in (_keyword_names(BUILTIN_CLASSES[name][0]) or ())


def resolve(spec: str) -> Callable[[torch.nn.Module | Iterable, Hyper], torch.optim.Optimizer]:
    """Turn a spec into `build(model, hyper) -> Optimizer`.

    build's first argument is the torch.nn.Module being trained; the factory
    gets the model, its named parameters or its parameters, as its first
    parameter's name asks (see the module docstring). A caller with
    parameters only may pass them (an iterable of tensors or param groups),
    and then a factory that asks for the model or its named parameters
    raises OptimizerSpecError at build time, naming what it asked for.

    Raises OptimizerSpecError, one line naming the fix, for: a name that is
    neither a built-in nor ``package.module:factory`` (with a suggestion for a
    dotted path), positional or non-literal arguments, a module or name that
    cannot be imported, a target that is no optimizer factory (``os:system``),
    a factory with no positional first parameter to receive the parameters,
    and keywords the factory does not take.
    """
    target, keywords = _parse(spec)
    if target in BUILTINS:
        _check_keywords(spec, target, BUILTIN_CLASSES[target][0], keywords)
        builtin = functools.partial(BUILTINS[target], **keywords) if keywords else BUILTINS[target]
        return lambda model, hyper: builtin(_parameters(model), hyper)
    factory = import_factory(spec, target)
    _check_keywords(spec, target, factory, keywords)
    asks_for = factory_asks_for(spec, factory)

    def build(model, hyper: Hyper):
        first = _first_argument(spec, asks_for, model)
        given = _settings_for_factory(spec, factory, hyper)
        try:
            optimizer = factory(first, **{**given, **keywords})
        except TypeError as error:  # called with what a factory takes, yet the call does not fit
            raise OptimizerSpecError(
                f"optimizer {spec!r} cannot be called as factory({asks_for}, **options) ({error}); name {FACTORY_SHAPE}"
            ) from error
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise OptimizerSpecError(
                f"{spec!r} returned {type(optimizer).__name__}, not a torch.optim.Optimizer; name {FACTORY_SHAPE}"
            )
        return optimizer

    return build


def factory_asks_for(spec: str, factory) -> str:
    """What a factory's first parameter asks for: ASKS_FOR_MODEL, ASKS_FOR_NAMED_PARAMETERS or ASKS_FOR_PARAMETERS.

    Read from the first parameter's name (``model``, ``named_parameters``,
    anything else); a factory whose signature cannot be read gets the
    parameters. Raises OptimizerSpecError for a factory with no positional
    first parameter (``def factory(*, lr)``): it could receive nothing.
    """
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return ASKS_FOR_PARAMETERS
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not parameters or parameters[0].kind not in (*positional, inspect.Parameter.VAR_POSITIONAL):
        raise OptimizerSpecError(
            f"optimizer {spec!r}: its factory has no positional first parameter to receive the parameters "
            f"(nor the model); name {FACTORY_SHAPE}"
        )
    first = parameters[0]
    if first.kind in positional and first.name in (ASKS_FOR_MODEL, ASKS_FOR_NAMED_PARAMETERS):
        return first.name
    return ASKS_FOR_PARAMETERS


def _first_argument(spec: str, asks_for: str, model):
    """The model, its (name, parameter) pairs, or its parameters, as the factory asks; OptimizerSpecError
    when it asks for the model or its names and the caller handed over parameters only."""
    if asks_for == ASKS_FOR_PARAMETERS:
        return _parameters(model)
    if not isinstance(model, torch.nn.Module):
        raise OptimizerSpecError(
            f"optimizer {spec!r}: its factory asks for {asks_for} (its first parameter's name), and it was "
            f"handed parameters only; build it with the torch.nn.Module, build(model, hyper)"
        )
    return model if asks_for == ASKS_FOR_MODEL else list(model.named_parameters())


def _parameters(model):
    """The parameters to give an optimizer: a module's, or what the caller handed over (tensors or groups)."""
    return model.parameters() if isinstance(model, torch.nn.Module) else model


def first_step_lr(spec: str, lr: float | None) -> float | None:
    """The learning rate the first-step check builds `spec` with, for a run whose rate is `lr`.

    `lr` itself where the run sets one (a built-in always has one:
    RunConfig.learning_rate). Unset, an imported factory whose default lr is
    None or missing (CAME's lr=None raises unless given a rate), or which has
    no ``lr`` of its own but takes ``**options``, gets NO_DEFAULT_LR, the rate
    tuning tries first for it; a factory with a default rate keeps it (None:
    not passed), and one that takes no lr at all gets none.
    """
    if lr is not None or builtin_name(spec):
        return lr
    try:
        parameters = inspect.signature(import_factory(spec)).parameters
    except (OptimizerSpecError, TypeError, ValueError):  # resolve() reports a bad spec; no signature: as it is
        return None
    if "lr" in spec_kwargs(spec):
        return None  # the spec's own lr wins over the run's anyway
    own = parameters.get("lr")
    if own is None:
        takes_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        return NO_DEFAULT_LR if takes_any else None
    return NO_DEFAULT_LR if own.default is None or own.default is inspect.Parameter.empty else None


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
    return f"; did you mean {module + ':' + name + spec[len(target) :]!r}?"


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
    return (
        f"optimizer {spec!r}: keyword arguments must be name=literal, e.g. {target}(lr=0.1, betas=(0.9, 0.99)) "
        f"({error})"
    )


def _positional_message(spec: str, target: str, source: str, call: ast.Call) -> str:
    """Positional arguments are refused, with the call that names them (the factory takes the parameters first)."""
    names = _parameter_names(target)[: len(call.args)]
    names += ["NAME"] * (len(call.args) - len(names))
    written = [f"{name}={ast.get_source_segment(source, value)}" for name, value in zip(names, call.args)]
    written += [ast.get_source_segment(source, keyword) for keyword in call.keywords]
    them = "it" if len(call.args) == 1 else "them"
    return (
        f"optimizer {spec!r}: positional arguments are not passed to the factory, which takes the parameters "
        f"first; name {them}: {target}({', '.join(written)})"
    )


def _parameter_names(target: str) -> list[str]:
    """The factory's parameter names after the parameters, where it can be looked up; [] where not."""
    try:
        factory = BUILTIN_CLASSES[target][0] if target in BUILTINS else import_factory(target, target)
        parameters = list(inspect.signature(factory).parameters.values())[1:]
    except (OptimizerSpecError, TypeError, ValueError):
        return []
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def import_factory(spec: str, target: str | None = None) -> Factory:
    """The callable an import path names (``package.module:factory`` or ``package.module:Class.method``).

    spec: the optimizer spec, as written (named in error messages).
    target: its ``module:attribute`` part; None takes it from `spec`, keywords dropped.
    Raises OptimizerSpecError, naming the fix, when the module or the name
    cannot be imported, or names something that cannot make an optimizer.
    """
    if target is None:
        target = spec.split("(", 1)[0]
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
        raise OptimizerSpecError(
            f"optimizer {spec!r} names {target}, {problem}, which is not an optimizer factory; name {FACTORY_SHAPE}"
        )
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
    """Spec with the identity of the code behind it, for report and session headers.

    ``adam (torch 2.4.0)`` for a built-in; for an import path, the version of
    the distribution (or ``__version__``) and the fingerprint that goes into its
    run keys: ``lion_pytorch:Lion (lion-pytorch 0.2.2, code sha256:0123456789abcdef
    of lion_pytorch/, 3 files)``, ``myopt:Lion (myopt no version, code
    sha256:... of myopt.py)``, ``pkg:Opt (pkg not importable)``.
    """
    if builtin_name(spec):
        return f"{spec} (torch {torch.__version__})"
    if _is_harness_factory(spec):
        return f"{spec} ({code_fingerprint(spec)})"
    identity = code_identity(spec)
    if identity.digest is None:
        return f"{spec} ({identity.package} not importable)"
    return f"{spec} ({identity})"


def optimizer_identity(spec: str) -> dict:
    """What a session file records of an optimizer's code: {package, distribution, version, source, files, code}.

    `code` is the fingerprint its run keys hold (`code_fingerprint`); a
    built-in is torch's: ``{"package": "torch", "version": "2.4.0", ...}``.
    """
    if builtin_name(spec):
        return {
            "package": "torch",
            "distribution": "torch",
            "version": torch.__version__,
            "source": "",
            "files": 0,
            "code": code_fingerprint(spec),
            "imports": [],
        }
    if _is_harness_factory(spec):
        return {
            "package": "harness",
            "distribution": None,
            "version": None,
            "source": "",
            "files": 0,
            "code": code_fingerprint(spec),
            "imports": [],
            "parts": {name: optimizer_identity(part) for name, part in _spec_parts(spec).items()},
        }
    return code_identity(spec).as_dict()


def code_identity(spec: str) -> CodeIdentity:
    """Where an import spec's code comes from, its version and a hash of its sources
    (harness.core.optimizer_source.code_identity). A built-in raises ValueError: its code is torch's."""
    if builtin_name(spec):
        raise ValueError(f"{spec!r} is a built-in: its code is torch {torch.__version__}")
    parts = _import_parts(spec)
    return source_identity(spec, parts[0] if parts else spec.split(":")[0])


def code_fingerprint(spec: str) -> str:
    """Identity of the optimizer's code, as it goes into every run key (see `code_identity`).

    ``torch 2.4.0`` for a built-in (unchanged since built-ins existed: their
    records keep their keys); for an import path, the hash of the sources
    of its whole package, prefixed by the version where there is one:
    ``lion-pytorch 0.2.2, sha256:0123456789abcdef``. Editing any source file of
    your optimizer's package (not only the module the spec names), or
    installing another version of it, retrains instead of reusing records
    made by the old code; so does editing a package it imports (named
    ``, imports sha256:...``; torch, torchvision and numpy by version only).

    A factory of the harness itself (``harness.core.hybrid:by_shape(...)``)
    is ``harness run code; matrices=<fingerprint>; rest=<fingerprint>``:
    the harness's code is what every record's run-code stamp already
    answers (harness.core.code_identity), and the optimizers it combines,
    given as specs in its keywords, are named by their own fingerprints.
    """
    if builtin_name(spec):
        return f"torch {torch.__version__}"
    if _is_harness_factory(spec):
        parts = "".join(f"; {name}={code_fingerprint(part)}" for name, part in sorted(_spec_parts(spec).items()))
        return f"harness run code{parts}"
    return code_identity(spec).fingerprint


def _is_harness_factory(spec: str) -> bool:
    """Whether an import spec names a factory of the harness itself (harness.core.hybrid:by_shape)."""
    parts = _import_parts(spec)
    return parts is not None and parts[0].split(".")[0] == "harness"


def _spec_parts(spec: str) -> dict[str, str]:
    """The keywords of `spec` whose values are optimizer specs themselves (by_shape's matrices and rest)."""
    found = {}
    for name, value in spec_kwargs(spec).items():
        if isinstance(value, str):
            try:
                _parse(value)
            except OptimizerSpecError:
                continue
            found[name] = value
    return found


def extra_attributes(optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's instance attributes outside what torch.optim.Optimizer keeps (a step counter kept as a
    Python int, a schedule's position): state_dict() does not hold them, so whatever saves an optimizer keeps
    them beside it."""
    return {name: value for name, value in vars(optimizer).items() if name not in _base_optimizer_attributes()}


@functools.lru_cache(maxsize=1)
def _base_optimizer_attributes() -> frozenset:
    probe = torch.optim.Optimizer([torch.zeros(1, requires_grad=True)], {})
    return frozenset(vars(probe)) | {"defaults", "state", "param_groups"}
