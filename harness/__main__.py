"""Command line: `python -m harness {fit,models,bench,theory-bench}`.

fit      train one configuration, show progress, print its summary (JSON with --json)
models   list the paper's models with their parameter counts
bench    training throughput of the harness's loop against the usual DataLoader loop
report   render run records and claim figures as a report folder
sessions list, show and compare claims sessions; the claims matrix
theory-bench
         time the finite-sample expressivity construction (C8)
"""

from __future__ import annotations

import argparse
import json
import sys

from .config import VARIANTS, RunConfig, get_profile, PROFILES
from .data import DataError
from .formatting import fmt_train_reading
from .optim import OptimizerSpecError

SUMMARY_FIELDS = (
    "outcome", "message", "passes", "passes_to_fit", "steps_to_fit", "train_accuracy", "test_accuracy",
    "best_test_accuracy", "train_seconds", "eval_seconds", "whole_set_checks", "images_per_second", "data_source",
    "n_train", "n_test", "parameters", "key", "path", "reused", "saved", "save_error", "resumed_from_pass",
)

FORWARDED = {
    "bench": ".bench:main",
    "theory-bench": ".theory.bench:main",
    "report": ".report:main",
    "sessions": ".sessions:main",
}

# CLI flag -> RunConfig field, for the flags that map one to one.
FIT_FIELDS = {
    "model": str, "data": str, "n_train": int, "n_test": int, "variant": str, "p": float, "seed": int,
    "device": str, "max_passes": int, "lr": float, "lr_decay": float, "decay_every": int,
    "batch_size": int, "momentum": float, "weight_decay": float, "optimizer": str, "init": str,
    "precision": str, "target_accuracy": float, "test_every": int, "loop": str, "dropout": float,
    "augment": str, "train_check_fraction": float,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in FORWARDED:  # commands with parsers of their own
        module, _, function = FORWARDED[argv[0]].partition(":")
        import importlib

        return getattr(importlib.import_module(module, __package__), function)(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="train one configuration and print its summary")
    fit.add_argument("--profile", choices=sorted(PROFILES), help="start from a profile's settings")
    for name, kind in FIT_FIELDS.items():
        flag = "--" + name.replace("_", "-")
        extra = {"choices": VARIANTS} if name == "variant" else {}
        helptext = "label corruption level for --variant partial" if name == "p" else None
        fit.add_argument(flag, type=kind, default=None, help=helptext, **extra)
    fit.add_argument("--deterministic", action="store_true",
                     help="deterministic kernels (see harness.train); part of the run key")
    fit.add_argument("--fresh", action="store_true", help="retrain even if a record of this run exists")
    fit.add_argument("--data-dir", help="where datasets live (sets HARNESS_DATA_DIR for cifar10/mnist specs)")
    fit.add_argument("--results-dir", help="where run records go (sets HARNESS_RESULTS_DIR)")
    fit.add_argument("--allow-download", action="store_true",
                     help="let torchvision download a missing CIFAR-10 or MNIST (sets HARNESS_ALLOW_DOWNLOAD=1)")
    fit.add_argument("--json", action="store_true", help="print the summary as one JSON line (last line of output)")
    fit.add_argument("--quiet", action="store_true", help="no per-pass progress")

    commands.add_parser("models", help="list the paper's models and their parameter counts")
    commands.add_parser("bench", help="throughput against the usual DataLoader loop (see its --help)")
    commands.add_parser("theory-bench", help="time the C8 construction (see its --help)")
    commands.add_parser("sessions", help="list, show, compare claims sessions; print the claims matrix (see its --help)")
    commands.add_parser("report", help="render run records and claim figures as Markdown, JSON and PNG (see its --help)")

    args = parser.parse_args(argv)
    try:
        if args.command == "models":
            return _models()
        return _fit(args)
    except (DataError, OptimizerSpecError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _models() -> int:
    from .models import describe_models

    print(f"{'model':<18}{'parameters':>12}{'paper':>12}")
    for name, measured, published in describe_models():
        mark = "" if measured == published else "  MISMATCH"
        print(f"{name:<18}{measured:>12,}{published:>12,}{mark}")
    return 0


def _fit(args) -> int:
    import torch

    from .store import cached_fit

    import os

    for option, variable in (("data_dir", "HARNESS_DATA_DIR"), ("results_dir", "HARNESS_RESULTS_DIR")):
        if getattr(args, option):
            os.environ[variable] = getattr(args, option)
    if args.allow_download:
        os.environ["HARNESS_ALLOW_DOWNLOAD"] = "1"
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
    progress = None if args.quiet else _print_progress
    record = cached_fit(config, fresh=args.fresh, progress=progress)
    summary = {name: record.get(name) for name in SUMMARY_FIELDS}
    summary["config"] = record["config"]
    if args.json:
        print(json.dumps(summary))
    else:
        for name in SUMMARY_FIELDS:
            print(f"{name:>20}: {summary[name]}")
    return 0 if record["outcome"] in ("fitted", "out_of_budget") else 1


def _print_progress(state: dict) -> None:
    test = state["test_accuracy"]
    test_text = f"{test:.4f}" if test is not None else "  -   "
    print(
        f"pass {state['pass']:>4}/{state['max_passes']}  loss {state['loss']:.4f}  "
        f"train {fmt_train_reading(state)}  test {test_text}  lr {state['lr']:.5f}  "
        f"{state['train_seconds']:.2f}s",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
