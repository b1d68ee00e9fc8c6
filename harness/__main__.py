"""Command line: `python -m harness {fit,models,bench,report,sessions,theory-bench}`.

fit           train one configuration, show progress (optimizer, lr, time left), print its summary
models        list the paper's models with their parameter counts
bench         the harness's training loop against the usual one; --in-flight: runs at once; --tier: a claims tier
report        render run records and claim figures as a report folder (Markdown, JSON, PNG)
sessions      list, show and compare claims sessions; print the claims matrix of one or several
theory-bench  time the finite-sample expressivity construction (C8)

Each `fit` progress line (stderr) gives the pass, loss, test accuracy, the
pass's seconds, then the training accuracy, the optimizer and its lr, and
the time left at most ("<= 3.1 min left": the mean pass time so far times
the passes left to max_passes; a run that fits stops sooner). --json makes
the summary one JSON line.

Exit status of `fit`, so scripts can tell the outcomes apart: 0 fitted,
3 out_of_budget, 4 diverged, 5 not_fittable (identical training inputs
with different labels cap the accuracy below the target), 6 stalled (no
parameter moved in a pass), 7 error (a pass raised, e.g. the optimizer's
step or CUDA out of memory: the record keeps the passes before it and
the error's first line; it is never reused); 2 a usage or settings error (one line on
stderr, nothing trained); 1 an unexpected error (a traceback); 130
(SIGINT) or 143 (SIGTERM) a stopped run, whose
record says "interrupted" and whose checkpoint is kept: the one line it
prints says after which pass it stopped and the command that resumes it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from contextlib import contextmanager

from harness.core.config import PROFILES, VARIANTS, RunConfig, get_profile
from harness.core.data import DataError
from harness.core.formatting import fmt_train_reading, fmt_value
from harness.core.optim import OptimizerSpecError

SUMMARY_FIELDS = (
    "outcome",
    "message",
    "passes",
    "passes_to_fit",
    "steps_to_fit",
    "train_accuracy",
    "test_accuracy",
    "best_test_accuracy",
    "train_seconds",
    "eval_seconds",
    "whole_set_checks",
    "images_per_second",
    "data_source",
    "n_train",
    "n_test",
    "parameters",
    "key",
    "path",
    "reused",
    "saved",
    "save_error",
    "resumed_from_pass",
)

# Exit status of `fit` per run outcome. 1 is Python's for an unexpected error, 2 argparse's (and
# ours) for a usage or settings error; a stopped run exits 128 + the signal's number.
EXIT_STATUSES = {"fitted": 0, "out_of_budget": 3, "diverged": 4, "not_fittable": 5, "stalled": 6, "error": 7}
USAGE_ERROR = 2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# `bench --tier` times a whole claims tier through pytest (harness.bench.tier), not the loops (harness.bench.loops).
TIER_BENCH = ".bench.tier:main"
FORWARDED = {
    "bench": ".bench.loops:main",
    "theory-bench": ".theory.bench:main",
    "report": ".report.render:main",
    "sessions": ".suite.sessions_cli:main",
}

# What each fit flag sets, as harness.core.config.RunConfig documents its field; the default is added from there.
FIT_HELP = {
    "model": "the paper's model: inception, inception_no_bn, alexnet, mlp_1x512, mlp_3x512 (`harness models`)",
    "data": "data spec: cifar10[:ROOT], mnist[:ROOT] or npz:PATH",
    "n_train": "training images used, a seeded subset; all when not given",
    "n_test": "test images used, a seeded subset; all when not given",
    "variant": "label or input randomisation of the paper's section 2.1",
    "p": "label corruption level: needed by --variant partial, refused by the other variants",
    "seed": "seed of the subset, the randomisation, the initialisation and the data order",
    "device": "cpu, cuda, cuda:1, ...",
    "max_passes": "budget, in passes over the training set",
    "lr": "initial learning rate; the optimizer's default (the model's paper lr for SGD) when not given",
    "lr_decay": "factor the lr is multiplied by once per --decay-every examples, in (0, 1]",
    "decay_every": "examples seen per lr decay step (50,000: one CIFAR-10 epoch)",
    "batch_size": "images per step",
    "momentum": "momentum of paper_sgd (a spec's own where it sets one)",
    "weight_decay": "L2 weight decay passed to the optimizer",
    "optimizer": "optimizer spec: paper_sgd, sgd, adam, adamw, rmsprop, or package.module:factory[(k=v,...)]",
    "init": "weight initialisation: default (PyTorch's) or he",
    "precision": "fp32, tf32 or bf16 (the last two on a GPU only)",
    "target_accuracy": "training accuracy at which a run counts as fitted",
    "test_every": "passes between test-set evaluations (the last pass always)",
    "loop": "eager, graph (the whole step as one CUDA graph) or auto (graph where it applies)",
    "dropout": "dropout after hidden layers (MLPs, AlexNet's fully connected layers)",
    "augment": "none or crop (random 28x28 crops of the image padded by 2 pixels)",
    "train_check_fraction": "share of the training set checked after each pass (the whole set decides a fit)",
}

# CLI flag -> RunConfig field, for the flags that map one to one.
FIT_FIELDS = {
    "model": str,
    "data": str,
    "n_train": int,
    "n_test": int,
    "variant": str,
    "p": float,
    "seed": int,
    "device": str,
    "max_passes": int,
    "lr": float,
    "lr_decay": float,
    "decay_every": int,
    "batch_size": int,
    "momentum": float,
    "weight_decay": float,
    "optimizer": str,
    "init": str,
    "precision": str,
    "target_accuracy": float,
    "test_every": int,
    "loop": str,
    "dropout": float,
    "augment": str,
    "train_check_fraction": float,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in FORWARDED:  # commands with parsers of their own
        target = FORWARDED[argv[0]]
        if argv[0] == "bench" and any(arg == "--tier" or arg.startswith("--tier=") for arg in argv[1:]):
            target = TIER_BENCH
        module, _, function = target.partition(":")
        import importlib

        return getattr(importlib.import_module(module, __package__), function)(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser(
        "fit",
        help="train one configuration and print its summary",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_exit_status_help(),
    )
    fit.add_argument("--profile", choices=sorted(PROFILES), help="start from a profile's settings")
    defaults = RunConfig()
    for name, kind in FIT_FIELDS.items():
        flag = "--" + name.replace("_", "-")
        extra = {"choices": VARIANTS} if name == "variant" else {}
        default = defaults.corruption if name == "p" else getattr(defaults, name)
        if name == "device":
            default = "cuda where CUDA is present, else cpu"
        shown = "" if default is None else f" (default {default})"  # None: the help says what happens
        fit.add_argument(flag, type=kind, default=None, help=FIT_HELP[name] + shown, **extra)
    fit.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic kernels (see harness.core.train); part of the run key",
    )
    fit.add_argument("--fresh", action="store_true", help="retrain even if a record of this run exists")
    fit.add_argument("--data-dir", help="where datasets live (sets HARNESS_DATA_DIR for cifar10/mnist specs)")
    fit.add_argument("--results-dir", help="where run records go (sets HARNESS_RESULTS_DIR)")
    fit.add_argument(
        "--allow-download",
        action="store_true",
        help="let torchvision download a missing CIFAR-10 or MNIST (sets HARNESS_ALLOW_DOWNLOAD=1)",
    )
    fit.add_argument("--json", action="store_true", help="print the summary as one JSON line (last line of output)")
    fit.add_argument("--quiet", action="store_true", help="no per-pass progress")

    commands.add_parser("models", help="list the paper's models and their parameter counts")
    commands.add_parser("bench", help="throughput against the usual DataLoader loop (see its --help)")
    commands.add_parser("theory-bench", help="time the C8 construction (see its --help)")
    commands.add_parser(
        "sessions", help="list, show, compare claims sessions; print the claims matrix (see its --help)"
    )
    commands.add_parser(
        "report", help="render run records and claim figures as Markdown, JSON and PNG (see its --help)"
    )

    args = parser.parse_args(argv)
    try:
        if args.command == "models":
            return _models()
        return _fit(args, argv)
    except (DataError, OptimizerSpecError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR


def _exit_status_help() -> str:
    outcomes = "\n".join(f"  {status}  {outcome}" for outcome, status in EXIT_STATUSES.items())
    return (
        f"exit status:\n{outcomes}\n  {USAGE_ERROR}  usage or settings error (nothing trained)\n"
        "  1  unexpected error (a traceback)\n"
        "  130, 143  stopped by SIGINT, SIGTERM: the record says interrupted, the checkpoint is kept,\n"
        "            and the last line on stderr gives the command that resumes the run"
    )


def _models() -> int:
    from harness.core.models import describe_models

    print(f"{'model':<18}{'parameters':>12}{'paper':>12}")
    for name, measured, published in describe_models():
        mark = "" if published is None or measured == published else "  MISMATCH"
        paper = "-" if published is None else f"{published:,}"  # a registered model Table 1 does not have
        print(f"{name:<18}{measured:>12,}{paper:>12}{mark}")
    return 0


# The paper tier's settings that decide whether a model trains at all, and those that go with them: where the
# paper tier sets the first and fit was not given it, fit says so (inception_no_bn at PyTorch's default init
# never starts fitting random labels; He init at lr 0.1 diverges).
DECISIVE_SETTINGS, COMPANION_SETTINGS = ("init",), ("lr", "lr_decay")


def _paper_settings_note(model: str, changes: dict) -> str | None:
    """One 'note:' line naming the paper tier's settings of `model` that fit left at RunConfig's defaults."""
    paper = get_profile("paper").model_overrides.get(model, {})
    defaults = RunConfig()
    if not any(name in paper and name not in changes for name in DECISIVE_SETTINGS):
        return None
    missing = {
        name: paper[name]
        for name in DECISIVE_SETTINGS + COMPANION_SETTINGS
        if name in paper and name not in changes and paper[name] != getattr(defaults, name)
    }
    given = " ".join(f"--{name.replace('_', '-')} {value}" for name, value in missing.items())
    return (
        f"note: {model} trains here at the defaults ({', '.join(f'{n} {getattr(defaults, n)}' for n in missing)}), "
        f"at which it does not train; the paper tier trains it with {given} (see harness.core.config), or give "
        "--profile paper"
    )


def _fit(args, argv: list[str]) -> int:
    import os

    import torch

    from harness.core.runner import cached_fit

    for option, variable in (("data_dir", "HARNESS_DATA_DIR"), ("results_dir", "HARNESS_RESULTS_DIR")):
        value = getattr(args, option)
        if value:
            os.environ[variable] = os.path.expanduser(value) if option == "results_dir" else value
    if args.allow_download:
        os.environ["HARNESS_ALLOW_DOWNLOAD"] = "1"
    _check_corruption_flags(args)
    changes = {name: getattr(args, name) for name in FIT_FIELDS if getattr(args, name) is not None}
    if "p" in changes:
        changes["corruption"] = changes.pop("p")
    if args.deterministic:
        changes["deterministic"] = True
    if args.profile:
        config = get_profile(args.profile).config(changes.pop("model", "mlp_1x512"), **changes)
    else:
        changes.setdefault("device", "cuda" if torch.cuda.is_available() else "cpu")
        config = RunConfig(**changes)
        note = _paper_settings_note(config.model, changes)
        if note:
            print(note, file=sys.stderr)
    watch = _RunWatch(quiet=args.quiet, optimizer=_optimizer_id(config.optimizer))
    try:
        with _stop_signals_interrupt(watch):
            record = cached_fit(config, fresh=args.fresh, progress=watch.progress)
    except KeyboardInterrupt as interrupt:
        print(watch.stopped_line(config, interrupt, argv), file=sys.stderr)
        return 128 + watch.signal_number
    summary = {name: record.get(name) for name in SUMMARY_FIELDS}
    summary["config"] = record["config"]
    if args.json:
        print(json.dumps(summary))
    else:
        for name in SUMMARY_FIELDS:
            value = summary[name]
            print(f"{name:>20}: {fmt_value(value, none='None') if isinstance(value, float) else value}")
    return EXIT_STATUSES.get(record["outcome"], 1)


def _check_corruption_flags(args) -> None:
    """--p and --variant partial go together: a level on another variant would be recorded, never used."""
    if args.p is not None and args.variant != "partial":
        raise ValueError(
            f"--p {args.p:g} sets the share of training labels redrawn, which only --variant partial "
            f"uses (the variant is {args.variant or 'true'}); add --variant partial, or drop --p"
        )
    if args.variant == "partial" and args.p is None:
        raise ValueError(
            "--variant partial needs --p LEVEL, the share of training labels redrawn (0 to 1); add e.g. --p 0.2"
        )


class _RunWatch:
    """What the command line knows of a run in progress: the last pass shown, and the signal that stopped it."""

    def __init__(self, quiet: bool, optimizer: str = ""):
        self.quiet, self.optimizer = quiet, optimizer
        self.last_pass, self.max_passes = 0, None
        self.pass_seconds: list[float] = []  # each pass shown so far: the mean gives the time left
        self.signal_number = signal.SIGINT  # a KeyboardInterrupt without a signal we caught reads as Ctrl-C

    def progress(self, state: dict) -> None:
        self.last_pass, self.max_passes = state["pass"], state["max_passes"]
        if isinstance(state.get("train_seconds"), (int, float)):
            self.pass_seconds.append(state["train_seconds"])
        if not self.quiet:
            _print_progress(state, self.optimizer, self.pass_seconds)

    def stopped_line(self, config: RunConfig, interrupt: KeyboardInterrupt, argv: list[str]) -> str:
        """One line: where the run stopped, what was kept (the store's words), the command that resumes it."""
        by = signal.Signals(self.signal_number).name
        command = shlex.join(["python", "-m", "harness", *_without_fresh(argv)])
        if not self.last_pass:
            return f"interrupted by {by} before the first pass; nothing was trained: start it again with: {command}"
        kept = "its record was not saved"
        if interrupt.args:  # the store's words: where the interrupted record is, or why it is not saved
            kept = str(interrupt.args[0]).removeprefix("run interrupted; ")
        how = "resume with" if _checkpoint_kept(config) else "no checkpoint was kept, so it starts over; rerun with"
        return f"interrupted by {by} after pass {self.last_pass} of {self.max_passes}; {kept}; {how}: {command}"


def _without_fresh(argv: list[str]) -> list[str]:
    """The command's arguments less --fresh (or a prefix of it): a fresh start would throw the checkpoint away."""
    return [word for word in argv if not (len(word) > 3 and "--fresh".startswith(word))]


def _checkpoint_kept(config: RunConfig) -> bool:
    from harness.core.checkpoint import checkpoint_path
    from harness.core.store import results_dir, run_key

    try:
        return checkpoint_path(results_dir(), run_key(config)).exists()
    except (OSError, ValueError):
        return False


@contextmanager
def _stop_signals_interrupt(watch: _RunWatch):
    """SIGINT and SIGTERM raise KeyboardInterrupt while the run trains.

    So a stopped run takes the store's interrupt path whichever signal
    stopped it (an "interrupted" record, the checkpoint kept, the live log
    removed; SIGTERM's default would leave a stale log and no record); the
    watch notes which signal, for the exit status. The previous handlers come
    back afterwards.
    """

    def interrupt(number, frame):
        watch.signal_number = number
        raise KeyboardInterrupt

    try:
        previous = {number: signal.signal(number, interrupt) for number in STOP_SIGNALS}
    except ValueError:  # not the main thread: signals stay as they are
        previous = {}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _optimizer_id(spec: str) -> str:
    from harness.core.optim import spec_id

    try:
        return spec_id(spec)
    except (OptimizerSpecError, ValueError):
        return spec


def _print_progress(state: dict, optimizer: str, pass_seconds: list[float]) -> None:
    """'pass    3/20  loss 2.2901  test 0.1010  0.21s  train 0.1375 · adam lr 0.001 · <= 3.6 s left'.

    The time left is an upper bound: the mean pass time so far times the
    passes left to max_passes (a run that fits stops sooner).
    """
    test = state["test_accuracy"]
    test_text = f"{test:.4f}" if test is not None else "  -   "
    reading = fmt_train_reading(state, optimizer=optimizer, pass_seconds=pass_seconds)
    print(
        f"pass {state['pass']:>4}/{state['max_passes']}  loss {state['loss']:.4f}  "
        f"test {test_text}  {state['train_seconds']:.2f}s  train {reading}",
        file=sys.stderr,
        flush=True,
    )


def _main_to_a_pipe() -> int:
    """main(), where a reader that stops early (`| head`) ends the command quietly, as Unix tools do."""
    try:
        return main()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return 141  # 128 + SIGPIPE, what a shell reports for a tool stopped by a closed pipe


if __name__ == "__main__":
    sys.exit(_main_to_a_pipe())
