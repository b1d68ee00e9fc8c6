"""Several MLP runs trained together as one batched computation.

Runs that differ only in seed, variant or corruption level share every
shape: stacked, R runs of an MLP are R independent networks whose layers are
batched matrix products. One step then costs one launch per layer instead of
R, which is what small matrices at batch 128 need. Measured on an H100
(`python -m harness bench --models mlp_1x512 --batched 16`, 5,000 images,
20 passes): 16 runs batched took 11.1 s, one by one 23.6 s in the eager
loop (2.1x) and 13.0 s in the CUDA-graph loop (1.2x): the graph loop
already removes most of the launch cost batching saves.

Each run keeps what makes it itself: its data (variant, labels, subset),
its initial weights (the same seeded model a single run builds), its own
order of examples (its own generator), its own stopping pass. The summed
loss gives each run exactly its own gradient, and the SGD update is
elementwise, so a batched run is the single run up to the rounding of
batched matrix products. A fitted run's learning rate drops to zero, so it
stays as it was fitted while the others continue.

Each run carries the evidence a single run measures (harness.core.evidence),
the weight decay read from a probe step of the batched update; one run whose
evidence contradicts its config refuses the whole batch before any pass.

Batched runs are not checkpointed: a killed batched run starts again from
its first pass.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from harness.core import evidence
from harness.core.config import RunConfig
from harness.core.models import build_model
from harness.core.optim import BUILTIN_OPTIMIZERS
from harness.core.prepare import fitting_refusal, load_raw_cached, prepare
from harness.core.record import LoopFacts, empty_curves, run_record
from harness.core.train import eval_batch

# Settings that must agree for runs to share one batched computation.
SHARED_FIELDS = (
    "data",
    "n_train",
    "n_test",
    "model",
    "init",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "dropout",
    "augment",
    "lr_decay",
    "decay_every",
    "batch_size",
    "max_passes",
    "target_accuracy",
    "test_every",
    "device",
    "precision",
    "deterministic",
    "train_check_fraction",
)


def check_batchable(configs: list[RunConfig]) -> None:
    if not configs:
        raise ValueError("fit_batched needs at least one config")
    first = configs[0]
    if not first.model.startswith("mlp"):
        raise ValueError(f"batched runs are for the MLPs; got {first.model}")
    own_sgd = BUILTIN_OPTIMIZERS.get(first.optimizer)  # the loop's own SGD update stands in for the optimizer's
    if (
        own_sgd is None
        or not own_sgd.graph_step
        or first.augment != "none"
        or first.dropout
        or first.precision != "fp32"
    ):
        raise ValueError("batched runs support the built-in SGD, fp32, no augmentation and no dropout")
    if first.train_check_fraction != 1.0:
        raise ValueError("batched runs check the whole training set every pass (train_check_fraction 1.0)")
    for config in configs[1:]:
        differing = [name for name in SHARED_FIELDS if getattr(config, name) != getattr(first, name)]
        if differing:
            raise ValueError(
                f"batched runs must agree on {', '.join(differing)}; they may differ in seed, variant, corruption"
            )


def _stack_layers(models) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(weights (R, in, out), biases (R, 1, out)) per Linear layer], leaf tensors that need grads."""
    layers = [[m for m in model.modules() if isinstance(m, torch.nn.Linear)] for model in models]
    stacked = []
    for per_run in zip(*layers):
        weight = torch.stack([layer.weight.detach().t() for layer in per_run]).contiguous().requires_grad_()
        bias = torch.stack([layer.bias.detach()[None, :] for layer in per_run]).contiguous().requires_grad_()
        stacked.append((weight, bias))
    return stacked


@torch.no_grad()
def _load_run_weights(model, layers, index: int) -> None:
    """Copy run `index`'s slice of the stacked layers back into its own model (inverse of `_stack_layers`)."""
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    for layer, (weight, bias) in zip(linear, layers, strict=True):
        layer.weight.copy_(weight[index].t())
        layer.bias.copy_(bias[index, 0])


def _forward(layers, images: torch.Tensor) -> torch.Tensor:
    """images (R, B, features) -> logits (R, B, classes)."""
    hidden = images
    for index, (weight, bias) in enumerate(layers):
        hidden = torch.baddbmm(bias, hidden, weight)
        if index < len(layers) - 1:
            hidden = F.relu(hidden)
    return hidden


@torch.no_grad()
def _sgd_step(params, buffers, lr: torch.Tensor, momentum: float, weight_decay: float) -> None:
    """torch.optim.SGD's step on stacked runs, with a learning rate per run (lr: (R, 1, 1))."""
    for param, buffer in zip(params, buffers):
        direction = param.grad.add(param, alpha=weight_decay) if weight_decay else param.grad
        if momentum:
            direction = buffer.mul_(momentum).add_(direction)
        param.sub_(direction * lr)
        param.grad = None


@torch.inference_mode()
def _predict(layers, images: torch.Tensor) -> torch.Tensor:
    size = eval_batch(images.device)
    return torch.cat(
        [_forward(layers, images[:, start : start + size]).argmax(dim=2) for start in range(0, images.shape[1], size)],
        dim=1,
    )


def fit_batched(configs: list[RunConfig], *, progress=None) -> list[dict]:
    """Train the runs together; one record per config, as `fit` would return it."""
    check_batchable(configs)
    device = torch.device(configs[0].device)
    raw = load_raw_cached(configs[0].data)
    runs = [prepare(config, raw, device) for config in configs]
    models = []
    for config, data in zip(configs, runs):
        torch.manual_seed(config.seed)  # the same initial weights as the single run
        models.append(
            build_model(config.model, in_channels=data.in_channels, num_classes=data.num_classes, init=config.init).to(
                device
            )
        )
    # Each run's evidence, measured before any pass as a single run measures it; one run that
    # contradicts its config refuses the batch (nothing trains, no record is written).
    findings = [_run_evidence(config, data, raw, model) for config, data, model in zip(configs, runs, models)]
    for config, found in zip(configs, findings):
        evidence.refuse_contradictions(config, found)
    layers = _stack_layers(models)
    params = [tensor for layer in layers for tensor in layer]
    buffers = [torch.zeros_like(p) for p in params]
    train_x = torch.stack([data.train_x.flatten(1) for data in runs])
    train_y = torch.stack([data.train_y for data in runs])
    test_x = torch.stack([data.test_x.flatten(1) for data in runs])
    test_y = torch.stack([data.test_y for data in runs])
    generators = [torch.Generator(device=device).manual_seed(config.seed) for config in configs]

    first = configs[0]
    r, n = len(configs), train_y.shape[1]
    lr0 = first.learning_rate
    momentum = first.momentum if BUILTIN_OPTIMIZERS[first.optimizer].takes_config_momentum else 0.0
    steps_per_pass = math.ceil(n / first.batch_size)
    run_index = torch.arange(r, device=device)[:, None]
    active = torch.ones(r, dtype=torch.bool, device=device)
    curves = [empty_curves() for _ in configs]
    outcomes = [("out_of_budget", "", None)] * r
    for index, (config, data) in enumerate(zip(configs, runs)):
        refusal = fitting_refusal(data.collisions, config.target_accuracy)
        if refusal is not None:  # identical inputs with different labels: the run is not trained
            active[index] = False
            outcomes[index] = ("not_fittable", refusal, None)

    for pass_index in range(first.max_passes if bool(active.any()) else 0):
        factor = first.lr_decay ** (pass_index * n / first.decay_every)
        # Per-run learning rate, shaped to scale each run's slice; zero once a run is done.
        lr = (lr0 * factor * active.float()).view(r, 1, 1)
        started = time.perf_counter()
        orders = torch.stack([torch.randperm(n, device=device, generator=g) for g in generators])
        loss_sums = torch.zeros(r, device=device)
        for start in range(0, n, first.batch_size):
            rows = orders[:, start : start + first.batch_size]
            logits = _forward(layers, train_x[run_index, rows])
            losses = F.cross_entropy(logits.transpose(1, 2), train_y[run_index, rows], reduction="none").mean(dim=1)
            losses.sum().backward()  # each run's slice of the gradient is its own loss's gradient
            _sgd_step(params, buffers, lr, momentum, first.weight_decay)
            loss_sums += losses.detach() * rows.shape[1]
        mean_losses = (loss_sums / n).tolist()  # one host synchronisation per pass
        train_seconds = time.perf_counter() - started

        started = time.perf_counter()
        train_correct = _predict(layers, train_x) == train_y
        test_due = (pass_index + 1) % first.test_every == 0 or pass_index + 1 == first.max_passes
        accuracies = train_correct.double().mean(dim=1).tolist()
        finishing = any(
            active[i] and (accuracies[i] >= first.target_accuracy or not math.isfinite(mean_losses[i]))
            for i in range(r)
        )
        test_accuracies = (
            (_predict(layers, test_x) == test_y).double().mean(dim=1).tolist() if test_due or finishing else [None] * r
        )
        eval_seconds = time.perf_counter() - started
        for index in range(r):
            if not active[index]:
                continue
            finished = accuracies[index] >= first.target_accuracy or not math.isfinite(mean_losses[index])
            curve = curves[index]
            curve["loss"].append(mean_losses[index])
            curve["train_accuracy"].append(accuracies[index])
            curve["train_checked"].append(n)  # always the whole set (check_batchable)
            curve["test_accuracy"].append(test_accuracies[index] if (test_due or finished) else None)
            curve["lr"].append(lr0 * factor)
            curve["train_seconds"].append(train_seconds / int(active.sum()))  # shared time, split evenly
            curve["eval_seconds"].append(eval_seconds / int(active.sum()))
            if not math.isfinite(mean_losses[index]):
                outcomes[index] = (
                    "diverged",
                    f"training loss became {mean_losses[index]} in pass {pass_index + 1}",
                    None,
                )
            elif accuracies[index] >= first.target_accuracy:
                outcomes[index] = ("fitted", "", pass_index + 1)
            if finished:
                active[index] = False
        if progress:
            progress({"pass": pass_index + 1, "max_passes": first.max_passes, "active": int(active.sum())})
        if not bool(active.any()):
            break

    # Every run's weights stopped moving when it finished (its lr is zero from then on), so
    # one classification of the test set now is each run's final model's.
    final_test = _predict(layers, test_x)
    records = []
    for index, (config, data, model, curve, (outcome, message, passes_to_fit)) in enumerate(
        zip(configs, runs, models, curves, outcomes)
    ):
        if outcome == "out_of_budget":
            message = f"training accuracy {curve['train_accuracy'][-1]:.4%} after {config.max_passes} passes"
        _load_run_weights(model, layers, index)  # the record's model digest is of the trained weights
        record = run_record(
            config.replace(loop="batched"),
            data,
            model,
            curve,
            outcome=outcome,
            message=message,
            passes_to_fit=passes_to_fit,
            steps_per_pass=steps_per_pass,
            loop=LoopFacts("batched"),
            test_predictions=final_test[index],
            evidence=evidence.as_record(findings[index]),
        )
        records.append(record)
    return records


def _run_evidence(config: RunConfig, data, raw, model) -> dict[str, evidence.Finding]:
    """One batched run's evidence: its data and model as a single run's, the update's decay by a probe step.

    The batched loop applies its own SGD update (`_sgd_step`) and never
    augments, so weight decay is what that update applies to a probe
    weight, and augmentation is none.
    """

    def probe_step(param: torch.Tensor) -> None:
        lr = torch.ones(1, 1, 1, dtype=param.dtype)
        _sgd_step([param], [torch.zeros_like(param)], lr, 0.0, config.weight_decay)

    return {
        **evidence.data_evidence(config, data, raw),
        "dropout": evidence.dropout_finding(config, model, data.train_x[: evidence.PROBE_ROWS]),
        "weight_decay": evidence.update_decay_finding(config, evidence.decay_applied(probe_step), "batched"),
        "augmentation": evidence.augmentation_finding(config, None, data.train_x, None),
    }
