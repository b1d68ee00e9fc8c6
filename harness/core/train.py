"""fit(config) -> run record: the training loop behind every claim.

Data stays on the device; each pass is a device-side permutation and slices,
with one host synchronisation per pass. After every pass the training set is
classified in eval mode (fp32, no autograd, batches sized per device) and the run stops
at the first pass whose whole training set reaches the target accuracy (with
`train_check_fraction` below 1, a sample gates that whole-set check without
changing the pass it stops at: harness.core.train_check). The outcome is a
value, never a lost traceback: "fitted", "out_of_budget", "diverged" or
"interrupted", and the curves are kept in every case.

Evidence: before any pass, the run measures on the data, model, optimizer
and augmentation it actually uses that its variant and settings took effect
(labels changed as p says, pixels as the variant says, no test input among
the training inputs, weight decay in the updates, dropout and crops on when
asked: harness.core.evidence); a contradiction raises `ManipulationError`
naming the run, nothing trains, and the record carries the rest as
`evidence`.

Checkpoints: given a `RunCheckpoint` (harness.core.checkpoint), `fit` saves the
run's state after every pass and, on start, resumes from a trustworthy
checkpoint of the same run; on the CPU a resumed run ends with the record of
an uninterrupted one (timings aside), `resumed_from_pass` says it resumed.
Without one, `fit` writes no file. The graph loop (CUDA) saves and restores
its own momentum buffers (GraphedSGDStep.buffers) in place of the optimizer's
state; that path is not exercised by the CPU test suite.

Determinism. On the CPU the same config and seed give bitwise identical
curves and final weights (`model_sha256` in the record), with or without
`deterministic`, for the same torch build and thread count. On a GPU,
by default, they do not:
- cuDNN picks convolution algorithms by benchmark (cudnn.benchmark), and
  several of them, as well as some pooling backward kernels and
  index_add/scatter-style kernels, add partial results with atomics, whose
  order (and so the last bits) varies from run to run;
- cuBLAS may split its reductions differently from run to run unless its
  workspace is fixed (CUBLAS_WORKSPACE_CONFIG);
- the graph loop and the eager loop compute the same steps but not in the
  same floating-point order (the graph's own SGD update, its loss sum), so
  their curves differ in the last bits and, over many passes, visibly;
  with random crops they also draw different crops (per pass in the
  graph, per batch in the eager loop), so those runs differ by design;
- TF32 and bf16 change results against fp32 by design (precision "fp32"
  keeps full precision; evaluation is always fp32).
`deterministic=True` (config field, not in the run key when False) turns on
torch.use_deterministic_algorithms, cudnn.deterministic and turns off
cudnn.benchmark for the run (restored afterwards), and on CUDA needs
CUBLAS_WORKSPACE_CONFIG (set to ":4096:8" when CUDA has not started yet,
else a clear error). It makes repeated GPU runs of one config agree on the
same machine and software; it does not make GPU agree with CPU, graph with
eager, or TF32/bf16 with fp32, and an op without a deterministic kernel
raises rather than run.
"""

from __future__ import annotations

import math
import os
import time
import weakref
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from typing import NamedTuple

import torch
import torch.nn.functional as F

from harness.core import evidence
from harness.core.checkpoint import RunCheckpoint
from harness.core.config import RunConfig
from harness.core.hybrid import CombinedOptimizer
from harness.core.models import MODELS, build_model
from harness.core.optim import (
    BUILTIN_OPTIMIZERS,
    Hyper,
    extra_attributes,
    first_step_lr,
    resolve,
)
from harness.core.prepare import DeviceData, fitting_refusal, load_raw_cached, prepare
from harness.core.record import LoopFacts, empty_curves, run_record
from harness.core.train_check import TrainingSetCheck

# Images per evaluation batch, by device kind. On a GPU large batches pay, since
# no activations are kept; on a CPU they spill the caches: measured on 2 cores,
# AlexNet classified 1.6k images/s in batches of 4,096 and 2.3-3.4k in batches
# of 128, Inception 0.3k against 0.6-0.8k; the MLPs ran alike at either size.
EVAL_BATCHES = {"cuda": 4096, "cpu": 128}


def eval_batch(device: torch.device) -> int:
    return EVAL_BATCHES.get(device.type, EVAL_BATCHES["cuda"])


def __getattr__(name: str):
    # CONVNETS, the convolutional models (trained in channels_last), kept for its users;
    # read from the model registry at each access, so a model registered later is in it.
    if name == "CONVNETS":
        return tuple(model for model, entry in MODELS.items() if entry.convnet)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# A finite loss counts as diverged once a pass's mean exceeds this multiple of the
# run's start: the larger of the initial network's loss on the first batch and ln K
# (the loss of a uniform prediction, 2.30 for 10 classes). Why 100: a learning run
# lowers its loss from there, and a transient spike of a few times the start is
# common at a high lr; two orders of magnitude above it means logits hundreds of
# nats wrong, from which no run in this suite has come back, and a run exploding to
# a finite 3e5 used to burn its whole budget before failing.
MAX_LOSS_GROWTH = 100.0

Progress = Callable[[dict], None]


def fit(
    config: RunConfig,
    *,
    data: DeviceData | None = None,
    progress: Progress | None = None,
    checkpoint: RunCheckpoint | None = None,
) -> dict:
    """Train one configuration and return its run record (a JSON-ready dict).

    checkpoint: where to save the run's state after each pass and to resume
    from (see the module docstring); None writes nothing.
    """
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"config asks for device {config.device!r} but CUDA is not available")
    use_device(device)
    if config.loop == "batched":
        raise ValueError("loop 'batched' is harness.bench.batched.fit_batched's; fit trains one run")
    if config.precision != "fp32" and device.type != "cuda":
        raise ValueError(f"precision {config.precision} is a GPU setting; use precision fp32 on the CPU")
    with (
        matmul_precision(config.precision if device.type == "cuda" else "fp32"),
        _deterministic(config.deterministic, device),
    ):
        return _fit(config, device, data, progress, checkpoint)


def use_device(device: torch.device) -> None:
    """Make a CUDA device the current one (cuda:1 as well as cuda:0) before anything is put on it.

    A CUDA graph is captured on the current device, and the side stream and
    the memory pool the capture uses are the current device's: without this a
    run on cuda:1 would capture on cuda:0 (stall or fail). Nothing for a CPU.
    """
    if device.type == "cuda":
        torch.cuda.set_device(device.index or 0)


@contextmanager
def matmul_precision(precision: str):
    """TF32 on only when asked for: cuDNN's default would quietly use it for "fp32" convolutions."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    use_tf32 = precision in ("tf32", "bf16")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = use_tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextmanager
def _deterministic(enabled: bool, device: torch.device):
    """Deterministic kernels for the run when asked for; the previous settings come back afterwards."""
    if not enabled:
        yield
        return
    if device.type == "cuda" and not os.environ.get("CUBLAS_WORKSPACE_CONFIG"):
        if torch.cuda.is_initialized():
            raise RuntimeError(
                "deterministic=True on CUDA needs CUBLAS_WORKSPACE_CONFIG=:4096:8 in the environment before CUDA "
                "starts, and CUDA has already started in this process; set it and run again"
            )
        # Left set afterwards: the cuBLAS handles created under it outlive the run.
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2], saved[3]


def _fit(
    config: RunConfig,
    device: torch.device,
    data: DeviceData | None,
    progress: Progress | None,
    checkpoint: RunCheckpoint | None,
) -> dict:
    resolve(config.optimizer)  # an unresolvable optimizer fails before any data is read
    raw = load_raw_cached(config.data)
    if data is None:
        data = prepare(config, raw, device)

    model, train_x, test_x = _model_and_inputs(config, data, device)
    # What the config implies, measured on the data and model the run uses, before any pass:
    # a contradiction raises ManipulationError and nothing trains (harness.core.evidence).
    findings = {
        **evidence.data_evidence(config, data, raw),
        "dropout": evidence.dropout_finding(config, model, train_x[: evidence.PROBE_ROWS]),
    }
    evidence.refuse_contradictions(config, findings)
    refusal = fitting_refusal(data.collisions, config.target_accuracy)
    if refusal is not None:
        # Identical inputs carry different labels: no optimizer reaches the target, so none is blamed.
        return run_record(
            config,
            data,
            model,
            empty_curves(),
            outcome="not_fittable",
            message=refusal,
            passes_to_fit=None,
            steps_per_pass=math.ceil(len(data.train_y) / config.batch_size),
            loop=LoopFacts("none"),
            test_predictions=None,
            evidence=evidence.as_record(findings),
        )
    optimizer, base_lrs, generator, autocast, augment, graphed, setup_seconds = _stepping(
        config, data, model, train_x, device
    )
    findings["weight_decay"] = _weight_decay_finding(config, optimizer, graphed)
    findings["augmentation"] = evidence.augmentation_finding(config, augment, train_x, generator)
    evidence.refuse_contradictions(config, findings)
    n = len(data.train_y)
    steps_per_pass = math.ceil(n / config.batch_size)
    track_noise = bool(data.label_changed.any()) and not bool(data.label_changed.all())
    curves = empty_curves(track_noise)
    training_set_check = TrainingSetCheck(
        _predict,
        train_x,
        data.train_y,
        fraction=config.train_check_fraction,
        target_accuracy=config.target_accuracy,
        seed=config.seed,
        whole_every_pass=0.0 < config.label_corruption < 1.0,
    )
    outcome, message, passes_to_fit = "out_of_budget", "", None
    test_predictions, checkpoint_seconds = None, 0.0
    config_values = config.to_dict()
    initial_loss = _initial_loss(model, train_x, data.train_y, config.batch_size)  # before any checkpoint is restored
    loss_ceiling = MAX_LOSS_GROWTH * max(initial_loss, math.log(data.num_classes))
    settings = optimizer_settings(optimizer)  # as built: before the schedule or a checkpoint changes a group
    settings_outside = settings_outside_groups(optimizer)
    resumed = checkpoint.load(config_values) if checkpoint else None
    if resumed is not None:
        _restore(resumed, model, optimizer, graphed, generator, curves)
    first_pass = resumed["passes"] if resumed is not None else 0

    try:
        for pass_index in range(first_pass, config.max_passes):
            # x lr_decay per `decay_every` examples seen: on the full CIFAR-10
            # set this is the paper's x0.95 per epoch; on a subset it keeps the
            # schedule's pace in examples instead of dying after a few passes.
            factor = config.lr_decay ** (pass_index * n / config.decay_every)
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * factor

            before = [parameter.detach().clone() for parameter in model.parameters()]
            _synchronise(device)
            started = time.perf_counter()
            order = torch.randperm(n, device=device, generator=generator)
            if graphed is not None:
                loss_sum = graphed.run_pass(order, base_lrs[0] * factor)
            else:
                loss_sum = _eager_pass(
                    model, optimizer, train_x, data.train_y, order, config.batch_size, augment, autocast
                )
            mean_loss = float(loss_sum) / n  # the pass's one host synchronisation
            train_seconds = time.perf_counter() - started

            started = time.perf_counter()
            if graphed is None:
                set_optimizer_mode(optimizer, "eval")  # evaluate the weights the optimizer means to be evaluated
            # Stalled: no parameter changed over the whole pass (compared in the same optimizer mode).
            stalled = not bool(torch.stack([old.ne(new).any() for old, new in zip(before, model.parameters())]).any())
            stopping = not math.isfinite(mean_loss) or mean_loss > loss_ceiling or stalled
            last_pass = pass_index + 1 == config.max_passes or stopping
            reading = training_set_check.measure(model, whole=last_pass)
            train_accuracy = reading.accuracy
            fitted = reading.whole and train_accuracy >= config.target_accuracy  # a sample never ends a run
            finishing = fitted or last_pass
            if finishing or (pass_index + 1) % config.test_every == 0:
                test_predictions = _predict(model, test_x)
                test_accuracy = float((test_predictions == data.test_y).double().mean())
            else:
                test_accuracy = None  # not measured this pass
            curves["loss"].append(mean_loss)
            curves["train_accuracy"].append(train_accuracy)
            curves["train_checked"].append(reading.checked)
            curves["test_accuracy"].append(test_accuracy)
            curves["lr"].append(base_lrs[0] * factor)
            curves["train_seconds"].append(train_seconds)
            if track_noise:
                changed = data.label_changed if reading.whole else data.label_changed[reading.rows]
                curves["train_accuracy_clean"].append(_share(reading.correct[~changed]))
                curves["train_accuracy_corrupted"].append(_share(reading.correct[changed]))
            curves["eval_seconds"].append(time.perf_counter() - started)
            if progress:
                progress(
                    {
                        "pass": pass_index + 1,
                        "max_passes": config.max_passes,
                        "train_whole": reading.whole,
                        **{k: v[-1] for k, v in curves.items()},
                    }
                )

            ended = _stop_reason(mean_loss, loss_ceiling, fitted, stalled, pass_index + 1)
            if ended is not None:
                outcome, message = ended
                passes_to_fit = pass_index + 1 if outcome == "fitted" else None
                break
            # Saved only when another pass follows: a finished run goes straight to its record.
            if checkpoint and pass_index + 1 < config.max_passes and checkpoint.due(pass_index + 1):
                started = time.perf_counter()
                try:
                    snapshot = _snapshot(pass_index + 1, model, optimizer, graphed, generator, curves)
                except CheckpointRefused as refused:
                    checkpoint.refuse(str(refused))
                else:
                    checkpoint.save(snapshot, config_values)
                checkpoint_seconds += time.perf_counter() - started
        else:
            message = f"training accuracy {curves['train_accuracy'][-1]:.4%} after {config.max_passes} passes"
    except KeyboardInterrupt:
        # The record's train_accuracy is then the last pass's reading, which a
        # sampled check may have taken over its sample (curves["train_checked"]).
        outcome, message = "interrupted", "stopped by the user"
    except Exception as error:  # noqa: BLE001 - the optimizer's or the device's error is the run's outcome
        # An error in a pass (an optimizer that raises at some step, CUDA out of memory) ends the run with
        # the passes it completed: its own outcome, never a later record that looks clean.
        done = min(len(values) for values in curves.values()) if curves else 0
        for values in curves.values():
            del values[done:]  # a pass that failed part-way leaves no reading
        first_line = (str(error).splitlines() or [""])[0]
        outcome, message = "error", f"{type(error).__name__}: {first_line} (in pass {done + 1})"

    facts = LoopFacts(
        loop="graph" if graphed is not None else "eager",
        setup_seconds=setup_seconds,
        resumed_from_pass=first_pass or None,
        checkpoint_seconds=checkpoint_seconds,
        initial_loss=initial_loss,
        optimizer_modes=graphed is None and has_modes(optimizer),
        optimizer_closure=graphed is None and optimizer not in IGNORES_CLOSURE,
        optimizer_settings=settings,
        optimizer_settings_outside_groups=settings_outside,
    )
    measured_at_end = bool(curves["test_accuracy"]) and curves["test_accuracy"][-1] is not None
    return run_record(
        config,
        data,
        model,
        curves,
        outcome=outcome,
        message=message,
        passes_to_fit=passes_to_fit,
        steps_per_pass=steps_per_pass,
        loop=facts,
        test_predictions=test_predictions if measured_at_end else None,
        evidence=evidence.as_record(findings),
    )


def _weight_decay_finding(config: RunConfig, optimizer, graphed) -> evidence.Finding:
    """The weight decay the run's updates apply: the graph step's own update, else the optimizer's param groups."""
    if graphed is None:
        return evidence.param_group_decay_finding(config, optimizer)
    from harness.core import graph_step

    def probe_step(param: torch.Tensor) -> None:
        lr = torch.ones((), dtype=param.dtype)
        graph_step.sgd_update_([param], [param.grad], [torch.zeros_like(param)], lr, 0.0, graphed.weight_decay)

    return evidence.update_decay_finding(config, evidence.decay_applied(probe_step), "graph")


def _stop_reason(
    mean_loss: float, loss_ceiling: float, fitted: bool, stalled: bool, pass_number: int
) -> tuple[str, str] | None:
    """(outcome, message) when the pass just trained ends the run, None to go on; the first reason that applies wins."""
    if not math.isfinite(mean_loss):
        return "diverged", f"training loss became {mean_loss} in pass {pass_number}"
    if mean_loss > loss_ceiling:
        return "diverged", (
            f"training loss {mean_loss:.3g} in pass {pass_number} is over "
            f"{MAX_LOSS_GROWTH:g} times its start {loss_ceiling / MAX_LOSS_GROWTH:.3g}"
        )
    if fitted:
        return "fitted", ""
    if stalled:
        return "stalled", f"no parameter changed in pass {pass_number}"
    return None


def _model_and_inputs(config: RunConfig, data: DeviceData, device: torch.device):
    """(model, train_x, test_x): the seeded initial network on `device`, in the memory format its inputs take."""
    torch.manual_seed(config.seed)
    model = build_model(
        config.model,
        in_channels=data.in_channels,
        num_classes=data.num_classes,
        init=config.init,
        dropout=config.dropout,
    ).to(device)
    train_x, test_x = data.train_x, data.test_x
    if MODELS[config.model].convnet:
        # channels_last: measured 1.4x for AlexNet on a CPU, and what bf16
        # convolutions want on a GPU.
        model = model.to(memory_format=torch.channels_last)
        train_x = train_x.contiguous(memory_format=torch.channels_last)
        test_x = test_x.contiguous(memory_format=torch.channels_last)
    return model, train_x, test_x


class _Stepping(NamedTuple):
    """What takes a training step: the optimizer with its base rates, the data-order generator, the loop."""

    optimizer: torch.optim.Optimizer
    base_lrs: list[float]
    generator: torch.Generator
    autocast: object  # a context manager: bf16 autocast, or nothing
    augment: RandomCrop | None
    graphed: object | None  # harness.core.graph_step.GraphedSGDStep where the CUDA-graph loop applies
    setup_seconds: float  # graph warm-up and capture: counted in the record, not hidden


def _stepping(config: RunConfig, data: DeviceData, model, train_x: torch.Tensor, device: torch.device) -> _Stepping:
    """The optimizer, generator and loop of a run, made in the order the run's random draws depend on."""
    # The model itself: a factory may ask for it or its named parameters (harness.core.optim.resolve).
    optimizer = resolve(config.optimizer)(model, Hyper(config.learning_rate, config.momentum, config.weight_decay))
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    generator = torch.Generator(device=device).manual_seed(config.seed)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if config.precision == "bf16" else nullcontext()

    augment = RandomCrop(train_x, generator) if config.augment == "crop" else None
    graphed, setup_started = None, time.perf_counter()
    if config.uses_graph:
        from harness.core.graph_step import GraphedSGDStep

        graphed = GraphedSGDStep(
            model,
            train_x,
            data.train_y,
            batch_size=config.batch_size,
            lr=base_lrs[0],
            # Only an optimizer that takes the config's momentum (paper_sgd) runs with it; plain sgd has none.
            momentum=config.momentum if BUILTIN_OPTIMIZERS[config.optimizer].takes_config_momentum else 0.0,
            weight_decay=config.weight_decay,
            autocast_dtype=torch.bfloat16 if config.precision == "bf16" else None,
            augment=augment,
        )
    return _Stepping(optimizer, base_lrs, generator, autocast, augment, graphed, time.perf_counter() - setup_started)


@torch.no_grad()
def _initial_loss(model, images, labels, batch_size: int) -> float:
    """The initialised network's mean loss on the first batch, in eval mode (no dropout draw, no RNG used)."""
    was_training = model.training
    model.eval()
    loss = float(F.cross_entropy(model(images[:batch_size]).float(), labels[:batch_size]))
    model.train(was_training)
    return loss


def _snapshot(passes, model, optimizer, graphed, generator, curves) -> dict:
    """Everything the next pass depends on, as plain tensors and lists (see harness.core.checkpoint)."""
    rng = {"data_order": generator.get_state(), "torch_cpu": torch.get_rng_state()}
    if generator.device.type == "cuda":
        rng["torch_cuda"] = torch.cuda.get_rng_state(generator.device)  # dropout on CUDA draws from it
    state = {
        "passes": passes,
        "model": model.state_dict(),
        "rng": rng,
        "curves": {name: list(values) for name, values in curves.items()},
    }
    if graphed is not None:
        state["momentum_buffers"] = [buffer.detach().clone() for buffer in graphed.buffers]
    else:
        state["optimizer"] = optimizer.state_dict()
        state["optimizer_attributes"] = optimizer_attributes(optimizer)
    return state


def optimizer_settings(optimizer) -> list[dict]:
    """Each param group's scalar settings (lr, weight_decay, momentum, betas, eps, ...): what the optimizer runs
    with, an imported factory's own defaults included (harness.core.record.FIELDS["optimizer_settings"])."""
    return [
        {name: list(value) if isinstance(value, tuple) else value for name, value in group.items() if _setting(value)}
        for group in optimizer.param_groups
    ]


def settings_outside_groups(optimizer) -> dict:
    """The optimizer's scalar settings kept as its own instance attributes, outside its param groups ({name:
    value}, a SAM's rho, a warm-up length): what a reader of the record could not see in `optimizer_settings`.
    A combined optimizer's parts' are named 'name (of part i)'; tensors and objects are left out (not settings)."""
    found = {name: value for name, value in extra_attributes(optimizer).items() if _setting(value)}
    for index, part in enumerate(
        getattr(optimizer, "optimizers", ()) if isinstance(optimizer, CombinedOptimizer) else ()
    ):
        found.update(
            {f"{name} (of part {index})": value for name, value in extra_attributes(part).items() if _setting(value)}
        )
    return {name: list(value) if isinstance(value, tuple) else value for name, value in found.items()}


def _setting(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return not (isinstance(value, float) and not math.isfinite(value))
    return isinstance(value, (tuple, list)) and all(
        isinstance(item, (int, float)) and not isinstance(item, bool) for item in value
    )


def optimizer_attributes(optimizer) -> dict:
    """The optimizer's instance attributes outside what torch.optim.Optimizer keeps (a step counter kept as a
    Python int, a schedule's position): state_dict() does not hold them, so a checkpoint keeps them beside it.

    Raises CheckpointRefused when one is not plain data (numbers, strings, tensors, and lists, tuples and
    dicts of them): it could not be saved and restored, so the run is not checkpointed. The parts of a
    CombinedOptimizer are checked too (its state_dict() carries their attributes).
    """
    extra = extra_attributes(optimizer)
    held = dict(extra)
    if isinstance(optimizer, CombinedOptimizer):
        for index, part in enumerate(optimizer.optimizers):
            held.update({f"{name} (of part {index})": value for name, value in extra_attributes(part).items()})
    unsaved = sorted(name for name, value in held.items() if not _plain(value))
    if unsaved:
        raise CheckpointRefused(
            f"the optimizer keeps {', '.join(unsaved)} outside state_dict(), which a checkpoint cannot restore"
        )
    return extra


class CheckpointRefused(Exception):
    """A run's state cannot be checkpointed faithfully: it trains on without checkpoints."""


def _plain(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, (str, int)) and _plain(item) for key, item in value.items())
    return False


def _restore(state, model, optimizer, graphed, generator, curves) -> None:
    """Put a run back in the state `_snapshot` saved (tensors copied in place: the captured graph keeps them)."""
    model.load_state_dict(state["model"])
    if graphed is not None:
        with torch.no_grad():
            for buffer, saved in zip(graphed.buffers, state["momentum_buffers"], strict=True):
                buffer.copy_(saved)
    else:
        optimizer.load_state_dict(state["optimizer"])
        for name, value in state.get("optimizer_attributes", {}).items():
            setattr(optimizer, name, value)
    generator.set_state(state["rng"]["data_order"])
    torch.set_rng_state(state["rng"]["torch_cpu"])
    if generator.device.type == "cuda":
        torch.cuda.set_rng_state(state["rng"]["torch_cuda"], generator.device)
    for name, values in state["curves"].items():
        curves[name][:] = values


def _eager_pass(model, optimizer, images, labels, order, batch_size, augment, autocast) -> torch.Tensor:
    """One pass of ordinary steps; returns the summed loss, on the device (no host sync)."""
    model.train()
    set_optimizer_mode(optimizer, "train")
    loss_sum = torch.zeros((), device=images.device)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = augment(rows) if augment else images[rows]  # drawn once: every closure call sees the same crops
        loss = closure_step(model, optimizer, batch, labels[rows], autocast)
        loss_sum += loss.detach().float() * len(rows)
    return loss_sum


def closure_step(model, optimizer, batch, labels, autocast=None) -> torch.Tensor:
    """One optimizer step through PyTorch's closure contract; returns the loss at the weights before it.

    The closure zeroes the gradients, recomputes the loss on the same batch
    and back-propagates, as `torch.optim.Optimizer.step(closure)` expects:
    SGD and Adam call it once (the same operations in the same order as a
    plain backward-then-step, so their runs are unchanged bit for bit),
    sharpness-aware and line-search optimizers (SAM, LBFGS) call it as often
    as they need. The loss returned is the closure's first evaluation, so
    every optimizer's curve reads the loss at the weights the step started
    from, whatever its `step` returns. An optimizer whose step ignores the
    closure (it is optional in the contract) gets the plain form from its
    second step on (IGNORES_CLOSURE).
    """
    losses = []

    def closure():
        with torch.enable_grad():  # torch's own step() turns autograd off around a closure call
            optimizer.zero_grad(set_to_none=True)
            with autocast or nullcontext():
                loss = F.cross_entropy(model(batch), labels)
            loss.backward()
        losses.append(loss)
        return loss

    if optimizer not in IGNORES_CLOSURE:
        optimizer.step(closure)
        if losses:
            return losses[0]
        # This step ignored its closure. It came first (the optimizer joins the set below), so no
        # gradient existed yet and it had nothing to apply (the contract skips parameters without
        # .grad); from now on this optimizer gets the plain form: gradients first, then step().
        IGNORES_CLOSURE.add(optimizer)
    closure()
    optimizer.step()
    return losses[0]


# Optimizers whose step(closure) never calls the closure (the closure is optional in
# torch.optim's contract): closure_step gives them the plain form.
IGNORES_CLOSURE: weakref.WeakSet[torch.optim.Optimizer] = weakref.WeakSet()


def first_step_error(spec: str, device: str = "cpu") -> str | None:
    """Why optimizer `spec` cannot take one step as the training loop takes it, or None if it can.

    One step on a tiny MLP on `device` (the device the runs train on: a
    CUDA-only optimizer, Adam(capturable=True), steps only there) through
    the loop's own path (the model handed to the factory, train(),
    step(closure), eval() where it has modes), so that an optimizer that
    cannot run stops before anything trains instead of failing inside every
    claim. The MLP has an input layer, one hidden matrix and a classifier,
    so each part of a hybrid (harness.core.hybrid.by_shape) takes a step.
    The rate is the one a run would use; a factory with no default rate of
    its own (lr=None) gets the one tuning tries first (first_step_lr).
    The message is one line: the error's type and text.
    """
    generator = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
    ).to(device)
    images, labels = torch.randn(16, 8, generator=generator), torch.randint(0, 3, (16,), generator=generator)
    images, labels = images.to(device), labels.to(device)
    try:
        lr = first_step_lr(spec, RunConfig(optimizer=spec).learning_rate)
        optimizer = resolve(spec)(model, Hyper(lr))
        set_optimizer_mode(optimizer, "train")
        closure_step(model, optimizer, images, labels)
        set_optimizer_mode(optimizer, "eval")
    except Exception as error:  # whatever the author's code raises is the finding
        return f"{type(error).__name__}: {' '.join(str(error).split())}"
    return None


def has_modes(optimizer) -> bool:
    """Whether an optimizer keeps separate training and evaluation weights (schedule-free: train()/eval())."""
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))


def set_optimizer_mode(optimizer, mode: str) -> None:
    """optimizer.train() before steps, optimizer.eval() before any evaluation, where it has them.

    Schedule-free optimizers step one sequence of weights and evaluate
    another (an average); without the switch the harness would measure the
    wrong weights (measured: random labels fitted at pass 20 at the
    evaluation weights were read as 120 and 145 at the training weights).
    """
    if has_modes(optimizer):
        getattr(optimizer, mode)()


class RandomCrop:
    """Random 28x28 crops of the training images padded by 2 pixels, per image, batched on the device.

    The padded set is made once; a batch gathers its rows, then its crop
    windows, with two gathers and no per-image Python. Evaluation always sees
    the uncropped images.
    """

    PAD = 2

    def __init__(self, images: torch.Tensor, generator: torch.Generator):
        self.padded = F.pad(images, (self.PAD,) * 4)
        self.size = images.shape[-1]
        self.generator = generator
        self.window = torch.arange(self.size, device=images.device)
        channels_last = images.is_contiguous(memory_format=torch.channels_last) and images.shape[1] > 1
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        return self.crop(rows, self.draw(len(rows)))

    def draw(self, count: int) -> torch.Tensor:
        """(2, count) random shifts, top and left, in [0, 2 * PAD]: one crop window per image."""
        return torch.randint(0, 2 * self.PAD + 1, (2, count), device=self.padded.device, generator=self.generator)

    def crop(self, rows: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        """The images `rows`, each cropped at its shifts: no random draw, so a CUDA graph can capture it."""
        batch = self.padded.index_select(0, rows)
        b, c, h, w = batch.shape
        top = (shifts[0][:, None] + self.window)[:, None, :, None].expand(b, c, self.size, w)
        batch = torch.gather(batch, 2, top)
        left = (shifts[1][:, None] + self.window)[:, None, None, :].expand(b, c, self.size, self.size)
        return torch.gather(batch, 3, left).contiguous(memory_format=self.memory_format)


@torch.inference_mode()
def _predict(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Predicted classes of all images, in eval mode and fp32 (TF32 off), in batches of eval_batch(device)."""
    model.eval()
    with matmul_precision("fp32"):  # the exact 100% check is made in full precision
        size = eval_batch(images.device)
        return torch.cat([model(images[start : start + size]).argmax(dim=1) for start in range(0, len(images), size)])


def _share(correct: torch.Tensor) -> float | None:
    """Accuracy over a group of images; None for an empty group (a sample may miss a small one)."""
    return float(correct.double().mean()) if len(correct) else None


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
