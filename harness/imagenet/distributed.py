"""The ImageNet tier's training entry point: DistributedDataParallel, one process per device.

Launch (one node, 8 GPUs; several nodes: see docs/imagenet-runbook.md)::

    torchrun --standalone --nproc_per_node=8 -m harness.imagenet.distributed \\
        --data /path/to/imagenet --variant random --seed 0 --epochs 100 \\
        --record results/imagenet-random.json --checkpoint results/imagenet-random.pt

Run without torchrun, it trains as a world of one process (same code path).

What every rank does: join the process group (nccl on CUDA, gloo on the CPU, with an
explicit timeout so that no collective waits forever), open the folder and draw the
run's labels from the seed (``harness.imagenet.data``), prove to the other ranks that it holds
the same files and labels (checksums gathered and compared: a mismatch stops every rank
with a message naming the ranks), then train with a ``DistributedSampler`` (seeded,
``set_epoch`` every epoch) and SGD. After each epoch the loss and running training
accuracy are all-reduced, the validation set is evaluated in shards (each image once),
and rank 0 prints one progress line. At the end, rank 0 writes the run record (JSON,
atomically) to ``--record``. ``--checkpoint`` saves model and optimizer after every epoch
and resumes from it when the file exists.

One process and W processes with the same global batch B train the same network up to
float rounding: each rank takes B/W images of every global batch (the sampler's
permutation depends on seed and epoch only, and rank r takes its positions r, r+W, ...,
so the union of the ranks' batches is the one-process batch) and DDP averages the
gradients. This holds for networks without batch statistics or dropout (each rank draws
its own dropout masks, seeded per epoch and rank); BatchNorm normalises each rank's B/W
images on their own. When W does not divide the number of images, DistributedSampler
repeats a few images to give every rank the same count: the last global batch then
differs from one process's, and those images count twice in the running accuracy. ``--sync-bn`` (``torch.nn.SyncBatchNorm``) restores
whole-batch statistics for Inception V3, but only on CUDA devices: torch's SyncBatchNorm
has no CPU implementation, so it is refused on the gloo/CPU path.

Testing hook: ``HARNESS_DDP_FAIL_RANK=R`` with ``HARNESS_DDP_FAIL_AT_STEP=S`` makes rank R
exit at once with code 3 (no clean-up, like a crash) before its training step S (counted
from 1 over the whole run). The tests use it to show that a dying rank fails the job,
with a message naming the rank, instead of leaving the others hanging.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.elastic.multiprocessing.errors import record as record_errors
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from harness.core.checkpoint import save_atomic
from harness.core.models import MODEL_NAMES, build_model, count_parameters
from harness.core.train import matmul_precision
from harness.imagenet.data import VARIANTS, FolderData, load_folder

FAIL_RANK_ENV = "HARNESS_DDP_FAIL_RANK"
FAIL_STEP_ENV = "HARNESS_DDP_FAIL_AT_STEP"
FAULT_EXIT_CODE = 3
INCEPTION_V3 = "inception_v3"
INCEPTION_V3_MIN_SIZE = 75  # torchvision's inception_v3 cannot shrink a smaller image to its 8x8 grid
AUX_LOGITS_MIN_SIZE = 299  # the auxiliary head's 5x5 convolution needs the 5x5 map that 299 gives
AUX_LOSS_WEIGHT = 0.4  # torchvision's reference recipe weights the auxiliary head's loss so


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.imagenet.distributed", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with train/<class>/* and val/<class>/*")
    parser.add_argument("--record", type=Path, required=True, help="where rank 0 writes the run record (JSON)")
    parser.add_argument("--checkpoint", type=Path, help="saved after every epoch; resumed from when it exists")
    parser.add_argument("--model", default=INCEPTION_V3, choices=(INCEPTION_V3, *MODEL_NAMES))
    parser.add_argument("--variant", default="random", choices=VARIANTS)
    parser.add_argument("--p", type=float, default=0.0, help="corruption level of variant 'partial'")
    parser.add_argument("--seed", type=int, default=0, help="labels, initialisation and data order")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--global-batch", type=int, default=256, help="images per step over all ranks")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--lr-decay", type=float, default=0.97, help="learning rate factor per epoch")
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--augment", action="store_true", help="random resized crops and flips (off: centre crop)")
    parser.add_argument("--aux-logits", action="store_true", help="Inception V3's auxiliary head and its loss")
    parser.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across ranks (CUDA only)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16"), help="non-fp32: CUDA only")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader worker processes per rank")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--timeout-seconds", type=float, default=1800.0, help="longest wait in any collective")
    parser.add_argument(
        "--train-eval-every",
        type=int,
        default=0,
        help="evaluate the whole training set every N epochs (0: after the last epoch only)",
    )
    args = parser.parse_args(argv)
    _check_args(parser, args)
    return args


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.epochs < 1 or args.global_batch < 1 or args.workers < 0 or args.timeout_seconds <= 0:
        parser.error("--epochs and --global-batch must be positive, --workers >= 0, --timeout-seconds > 0")
    if args.model == INCEPTION_V3 and args.image_size < INCEPTION_V3_MIN_SIZE:
        parser.error(f"inception_v3 needs --image-size >= {INCEPTION_V3_MIN_SIZE} (299 in the paper)")
    if args.model != INCEPTION_V3 and (args.aux_logits or args.sync_bn):
        parser.error("--aux-logits and --sync-bn apply to --model inception_v3 only")
    if args.aux_logits and args.image_size < AUX_LOGITS_MIN_SIZE:
        parser.error(f"--aux-logits needs --image-size >= {AUX_LOGITS_MIN_SIZE} (the auxiliary head's input)")
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but CUDA is not available")
    if args.sync_bn and not cuda:
        parser.error("--sync-bn needs CUDA devices: torch's SyncBatchNorm has no CPU implementation")
    if args.precision != "fp32" and not cuda:
        parser.error(f"--precision {args.precision} is a GPU setting; use fp32 on the CPU")


# --- the process group ---------------------------------------------------------------


@dataclass
class World:
    rank: int
    size: int
    device: torch.device
    backend: str

    def say(self, text: str) -> None:
        """A progress line from rank 0 only, on stderr (stdout stays free for other tools)."""
        if self.rank == 0:
            print(f"[harness.imagenet.distributed] {text}", file=sys.stderr, flush=True)


def ranks_to_launch(xdist_worker: str | None) -> int:
    """How many ranks the claim tests' `torchrun --standalone` starts: one per visible CUDA device.

    xdist_worker: the pytest-xdist worker the caller runs in ("gw3"), or None
    outside one. Raises RuntimeError, in one line, where that count is not
    the machine's: in an xdist worker, which the suite pins to one GPU
    (CUDA_VISIBLE_DEVICES, harness.suite.gpus.pin_worker_gpu) and whose GPUs
    the other workers share, torch sees one device and the run would start
    one rank; and where no CUDA device is visible.
    """
    count = torch.cuda.device_count()
    if xdist_worker:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
        raise RuntimeError(
            f"ImageNet tier: not launched from pytest-xdist worker {xdist_worker}, which sees {count} CUDA "
            f"device(s) (CUDA_VISIBLE_DEVICES={visible}: the suite pins each worker to one GPU and the workers "
            "share them), not the machine's GPUs; run it in a session of its own: python -m pytest "
            "claims/test_imagenet_random_labels.py -m gpu -p no:xdist"
        )
    if count < 1:
        raise RuntimeError("ImageNet tier: needs at least one CUDA device (torch.cuda.device_count() is 0)")
    return count


def start_world(args: argparse.Namespace) -> World:
    """Join torchrun's process group (or make a world of one): nccl on CUDA, gloo on the CPU."""
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    timeout = timedelta(seconds=args.timeout_seconds)
    backend = "nccl" if cuda else "gloo"
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    local_rank = int(os.environ.get("LOCAL_RANK", 0)) if launched else 0
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if launched:
        dist.init_process_group(backend, timeout=timeout, device_id=device if cuda else None)
    else:
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)
    return World(dist.get_rank(), dist.get_world_size(), device, backend)


def check_identical_across_ranks(values: dict[str, int], device: torch.device, group=None) -> list[list[int]]:
    """Gather integer values (checksums) from every rank; raise on every rank if any differ.

    Every rank receives every rank's values, so all of them raise the same error and
    none is left waiting. Returns the gathered values, one list per rank.
    """
    mine = torch.tensor(list(values.values()), dtype=torch.int64, device=device)
    everyone = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(everyone, mine, group=group)
    gathered = [tensor.tolist() for tensor in everyone]
    for position, name in enumerate(values):
        per_rank = [ranks_values[position] for ranks_values in gathered]
        if len(set(per_rank)) > 1:
            listing = ", ".join(f"rank {rank}: {value:016x}" for rank, value in enumerate(per_rank))
            raise RuntimeError(f"ranks disagree on the {name} ({listing}); every rank must see the same data")
    return gathered


class _Fault:
    """The testing hook: rank R exits with FAULT_EXIT_CODE before its step S."""

    def __init__(self, rank: int | None, step: int | None):
        self.rank, self.step = rank, step

    @classmethod
    def from_env(cls) -> _Fault:
        raw_rank, raw_step = os.environ.get(FAIL_RANK_ENV), os.environ.get(FAIL_STEP_ENV)
        if raw_rank is None and raw_step is None:
            return cls(None, None)
        try:
            return cls(int(raw_rank), int(raw_step))
        except (TypeError, ValueError):
            raise ValueError(
                f"{FAIL_RANK_ENV} and {FAIL_STEP_ENV} must both be integers, got {raw_rank!r} and {raw_step!r}"
            ) from None

    def before_step(self, rank: int, step: int) -> None:
        if rank == self.rank and step == self.step:
            print(
                f"[harness.imagenet.distributed] rank {rank}: fault injected before step {step} "
                f"({FAIL_RANK_ENV}/{FAIL_STEP_ENV}); exiting with code {FAULT_EXIT_CODE}",
                file=sys.stderr,
                flush=True,
            )
            os._exit(FAULT_EXIT_CODE)  # no clean-up: a crash, not a goodbye


# --- model, data loading, evaluation ------------------------------------------------------


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed torch's generators (dropout; the DataLoader workers' seeds) from (seed, epoch, rank).

    Per epoch: a run resumed at epoch k draws what the uninterrupted run drew
    there, with no RNG state in the checkpoint. Per rank: the ranks' dropout
    masks and augmentations differ, as they would for the images of one
    process's batch. (So with dropout, W ranks and one process draw
    different masks; only networks without dropout and batch statistics
    give the one-process result.)
    """
    torch.manual_seed(int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, dtype=np.uint64)[0] >> 1))


def build_network(args: argparse.Namespace, num_classes: int) -> nn.Module:
    """torchvision's Inception V3 (untrained, its own init), or one of the harness's models."""
    torch.manual_seed(args.seed)  # every rank builds the same network; DDP then copies rank 0's anyway
    if args.model == INCEPTION_V3:
        from torchvision.models import inception_v3

        return inception_v3(weights=None, aux_logits=args.aux_logits, init_weights=True, num_classes=num_classes)
    return build_model(args.model, in_channels=3, image_size=args.image_size, num_classes=num_classes)


class ShardSampler(Sampler):
    """Rank r's share of a dataset for evaluation: r, r + W, r + 2W, ...: every image exactly once.

    DistributedSampler would pad the shards to equal length with repeated images, which
    miscounts accuracy; evaluation needs no equal lengths since it runs no collective per batch.
    """

    def __init__(self, length: int, rank: int, world_size: int):
        self.indices = range(rank, length, world_size)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _loader(dataset, batch: int, sampler, args, world: World) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=args.workers,
        pin_memory=world.device.type == "cuda",
        persistent_workers=args.workers > 0,
    )


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, world: World, num_classes: int) -> dict:
    """Top-1 accuracy over the whole dataset, all ranks' shards together, in eval mode and fp32."""
    with matmul_precision("fp32"):  # TF32 off, whatever training used, as in the CIFAR-10 tier
        return _evaluate(model, loader, world, num_classes)


def _evaluate(model: nn.Module, loader: DataLoader, world: World, num_classes: int) -> dict:
    model.eval()
    # K x K counts, rows true class, columns predicted (float64 is exact for counts below 2^53).
    # The relabelling test of chance accuracy needs the whole matrix (harness.suite.stats).
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.float64, device=world.device)
    for images, labels in loader:
        images, labels = images.to(world.device, non_blocking=True), labels.to(world.device, non_blocking=True)
        guesses = model(images).argmax(dim=1)
        confusion += torch.bincount(labels * num_classes + guesses, minlength=num_classes * num_classes)
    dist.all_reduce(confusion)
    confusion = confusion.view(num_classes, num_classes).to(torch.int64)
    n = int(confusion.sum())
    return {
        "accuracy": float(confusion.diagonal().sum()) / n,
        "n": n,
        "prediction_counts": confusion.sum(0).tolist(),
        "label_counts": confusion.sum(1).tolist(),
        "confusion": confusion.tolist(),
    }


def _align_buffers(model: nn.Module) -> None:
    """Rank 0's BatchNorm statistics on every rank, so that all ranks evaluate one network."""
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


# --- checkpoints ------------------------------------------------------------------------


def _identity(args: argparse.Namespace, data: FolderData) -> dict:
    """What a checkpoint must share with the run that resumes it."""
    keys = (
        "model",
        "variant",
        "p",
        "seed",
        "global_batch",
        "image_size",
        "augment",
        "aux_logits",
        "lr",
        "momentum",
        "weight_decay",
        "lr_decay",
        "precision",
        "sync_bn",
    )
    return {
        **{key: getattr(args, key) for key in keys},
        "files_checksum": data.files_checksum,
        "labels_checksum": data.labels_checksum,
    }


def load_checkpoint(path: Path | None, identity: dict, world: World) -> dict | None:
    """Rank 0 reads the checkpoint and sends it to the others (no shared file system needed)."""
    box = [None]
    if world.rank == 0 and path is not None and path.exists():
        box[0] = torch.load(path, map_location="cpu", weights_only=True)
    dist.broadcast_object_list(box, src=0, device=world.device if world.backend == "nccl" else None)
    state = box[0]
    if state is not None and state["identity"] != identity:
        differing = sorted(key for key in identity if state["identity"].get(key) != identity[key])
        raise ValueError(
            f"checkpoint {path} belongs to another run (differs in {', '.join(differing)}); "
            "move it away or pass another --checkpoint"
        )
    return state


# --- training ---------------------------------------------------------------------------


def _precision_context(args: argparse.Namespace, world: World):
    if world.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.precision != "fp32"
    return torch.autocast("cuda", dtype=torch.bfloat16) if args.precision == "bf16" else nullcontext()


def _train_epoch(network, optimizer, loader, world, autocast, fault, first_step) -> tuple[float, float, int]:
    """One pass; returns (loss sum, correct predictions, images) summed over all ranks."""
    network.train()
    sums = torch.zeros(2, dtype=torch.float64, device=world.device)  # loss sum, correct: no host sync per step
    seen = 0
    for step, (images, labels) in enumerate(loader, start=first_step):
        fault.before_step(world.rank, step)
        images, labels = images.to(world.device, non_blocking=True), labels.to(world.device, non_blocking=True)
        if world.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast:
            output = network(images)
            logits = output.logits if hasattr(output, "aux_logits") else output
            loss = F.cross_entropy(logits, labels)
            if getattr(output, "aux_logits", None) is not None:
                loss = loss + AUX_LOSS_WEIGHT * F.cross_entropy(output.aux_logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP all-reduces (averages) the gradients here
        optimizer.step()
        sums += torch.stack([loss.detach().double() * len(labels), (logits.argmax(dim=1) == labels).sum().double()])
        seen += len(labels)
    totals = torch.cat([sums, torch.tensor([seen], dtype=torch.float64, device=world.device)])
    dist.all_reduce(totals)  # one collective per epoch, not per step
    loss_sum, correct, images = totals.tolist()
    return loss_sum, correct, int(images)


def stop_with_parent() -> bool:
    """Ask the kernel to send this process SIGTERM when its parent dies (Linux prctl PR_SET_PDEATHSIG).

    A rank's parent is torchrun's agent; killed with SIGKILL it cannot stop
    its ranks, which would otherwise train on and write checkpoints without
    a supervisor. Returns False where the call is not available (not Linux).
    A parent already gone when this is called (reparented to init) stops
    this process at once.
    """
    import ctypes
    import signal

    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(1, signal.SIGTERM, 0, 0, 0) != 0:  # 1: PR_SET_PDEATHSIG
        return False
    if os.getppid() != parent:  # the parent died between the two calls
        os.kill(os.getpid(), signal.SIGTERM)
    return True


@record_errors  # torchrun's failure summary then shows this rank's traceback
def main(argv: list[str] | None = None) -> dict | None:
    """Train one run; returns the record on rank 0 (None on the other ranks)."""
    args = parse_args(argv)
    if "RANK" in os.environ:
        stop_with_parent()  # torchrun's agent killed (SIGKILL): its ranks must not train on, unsupervised
    world = start_world(args)
    try:
        return _run(args, world)
    finally:
        dist.destroy_process_group()


def _start_training(args, world: World, data: FolderData, identity: dict):
    """Network, its DDP wrapper, optimizer, curves and first epoch: fresh, or from the checkpoint."""
    model = build_network(args, data.num_classes)
    state = load_checkpoint(args.checkpoint, identity, world)
    if state is not None:
        model.load_state_dict(state["model"])
    if args.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(world.device)
    if world.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    network = DistributedDataParallel(model, device_ids=[world.device.index] if world.device.type == "cuda" else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    curves = {
        key: [] for key in ("loss", "train_accuracy_running", "train_accuracy", "test_accuracy", "lr", "epoch_seconds")
    }
    if state is None:
        return model, network, optimizer, curves, 0
    optimizer.load_state_dict(state["optimizer"])
    world.say(f"resumed from {args.checkpoint} after epoch {state['epochs_done']}")
    return model, network, optimizer, state["curves"], state["epochs_done"]


def _run(args: argparse.Namespace, world: World) -> dict | None:
    started = time.perf_counter()
    if args.global_batch % world.size:
        raise ValueError(f"--global-batch {args.global_batch} does not split over {world.size} ranks")
    per_rank_batch = args.global_batch // world.size
    data = load_folder(
        args.data, variant=args.variant, p=args.p, seed=args.seed, image_size=args.image_size, augment=args.augment
    )
    rank_checksums = check_identical_across_ranks(
        {"file list": data.files_checksum, "training labels": data.labels_checksum}, world.device
    )
    world.say(
        f"{world.size} rank(s), {world.backend}, {world.device.type}; {len(data.train)} train / "
        f"{len(data.val)} val images, {data.num_classes} classes; {args.variant} labels "
        f"({data.labels_changed} changed), identical on every rank (checksum {data.labels_checksum:016x})"
    )

    identity = _identity(args, data)
    model, network, optimizer, curves, first_epoch = _start_training(args, world, data, identity)
    sampler = DistributedSampler(data.train, num_replicas=world.size, rank=world.rank, shuffle=True, seed=args.seed)
    train_loader = _loader(data.train, per_rank_batch, sampler, args, world)
    val_loader = _loader(data.val, per_rank_batch, ShardSampler(len(data.val), world.rank, world.size), args, world)
    train_eval_loader = _loader(
        data.train_eval, per_rank_batch, ShardSampler(len(data.train_eval), world.rank, world.size), args, world
    )
    autocast = _precision_context(args, world)
    fault = _Fault.from_env()

    for epoch in range(first_epoch, args.epochs):
        epoch_started = time.perf_counter()
        lr = args.lr * args.lr_decay**epoch
        for group in optimizer.param_groups:
            group["lr"] = lr
        sampler.set_epoch(epoch)  # a new order every epoch, the same on every rank
        _seed_epoch(args.seed, epoch, world.rank)
        loss_sum, correct, seen = _train_epoch(
            network, optimizer, train_loader, world, autocast, fault, first_step=epoch * len(train_loader) + 1
        )
        _align_buffers(model)
        test = evaluate(model, val_loader, world, data.num_classes)
        last = epoch + 1 == args.epochs
        every = args.train_eval_every
        train_eval = (
            evaluate(model, train_eval_loader, world, data.num_classes)
            if last or (every and (epoch + 1) % every == 0)
            else None
        )
        curves["loss"].append(loss_sum / seen)
        curves["train_accuracy_running"].append(correct / seen)
        curves["train_accuracy"].append(train_eval["accuracy"] if train_eval else None)
        curves["test_accuracy"].append(test["accuracy"])
        curves["lr"].append(lr)
        curves["epoch_seconds"].append(time.perf_counter() - epoch_started)
        world.say(
            f"epoch {epoch + 1}/{args.epochs} loss {curves['loss'][-1]:.4f} "
            f"train (running) {correct / seen:.4f}"
            + (f" train {train_eval['accuracy']:.4f}" if train_eval else "")
            + f" test {test['accuracy']:.4f} lr {lr:.4g} {curves['epoch_seconds'][-1]:.1f}s"
        )
        if not math.isfinite(curves["loss"][-1]):
            raise FloatingPointError(f"training loss became {curves['loss'][-1]} in epoch {epoch + 1}")
        if args.checkpoint is not None and world.rank == 0:
            save_atomic(
                args.checkpoint,
                {
                    "identity": identity,
                    "epochs_done": epoch + 1,
                    "curves": curves,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                },
            )

    if first_epoch >= args.epochs:  # resumed a finished run: measure the final network again
        _align_buffers(model)
        test = evaluate(model, val_loader, world, data.num_classes)
        train_eval = evaluate(model, train_eval_loader, world, data.num_classes)
    if world.rank != 0:
        return None
    result = _record(
        args,
        world,
        data,
        model,
        curves,
        test,
        train_eval,
        rank_checksums,
        per_rank_batch,
        len(train_loader),
        first_epoch,
        time.perf_counter() - started,
    )
    from harness.core.record import write_json_atomic

    write_json_atomic(args.record, result)
    world.say(f"record written to {args.record}")
    return result


def _record(
    args,
    world,
    data,
    model,
    curves,
    test,
    train_eval,
    rank_checksums,
    per_rank_batch,
    steps_per_epoch,
    first_epoch,
    seconds,
) -> dict:
    from harness.core.store import machine_stamp

    return {
        "kind": "imagenet-ddp",
        "config": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "world_size": world.size,
        "backend": world.backend,
        "global_batch": args.global_batch,
        "per_rank_batch": per_rank_batch,
        "steps_per_epoch": steps_per_epoch,
        "data_root": str(data.root),
        "num_classes": data.num_classes,
        "n_train": len(data.train),
        "n_test": test["n"],
        "labels_changed": data.labels_changed,
        "files_checksum": f"{data.files_checksum:016x}",
        "labels_checksum": f"{data.labels_checksum:016x}",
        "rank_labels_checksums": [f"{values[1]:016x}" for values in rank_checksums],
        "parameters": count_parameters(model),
        "outcome": "finished",
        "resumed_after_epoch": first_epoch or None,
        "epochs": len(curves["loss"]),
        "train_accuracy": train_eval["accuracy"],
        "test_accuracy": test["accuracy"],
        "test_prediction_counts": test["prediction_counts"],
        "test_label_counts": test["label_counts"],
        "test_confusion": test["confusion"],
        "seconds": seconds,
        # rank 0's peak, which the other ranks match up to their last, shorter batches
        "gpu_memory_peak_bytes": torch.cuda.max_memory_allocated(world.device) if world.device.type == "cuda" else None,
        "curves": curves,
        "stamp": machine_stamp(str(world.device)),
    }


if __name__ == "__main__":
    main()
