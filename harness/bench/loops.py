"""Training throughput: the harness's loop against the usual way, in one run.

Baseline ("usual"): what public reproductions do. A Dataset over uint8
images with per-image transforms (to tensor, centre crop 28, per-image
standardisation), a DataLoader with worker processes and pinned memory,
fp32, batch 128, one step per batch.

Ours ("resident"): the harness's eager loop. The preprocessed training set
lives on the device; a pass is a device-side permutation and slices, with
one host synchronisation per pass. Ours ("graph", CUDA only): the same with
the whole step captured as one CUDA graph (harness.core.graph_step).

With --fit, the time to zero training error on random labels (the paper
profile's settings for the model) for the eager and the graph loop (CUDA;
the eager loop alone on a CPU, over the CPU-sized training set), measured
in the same run, evaluation included. --fit-check-fractions times the
training-set check after each pass: 1.0 (the whole set every pass) is the
baseline of a sampled check (harness.core.train_check), which must fit at the
same pass.

Both train the same model with the paper's SGD for the same number of steps
after a warm-up; the clock starts and stops after a device synchronisation.
Printed per model: images/s of each, their ratio, and peak device memory.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch

from harness.bench.throughput import (
    BATCH,
    model_and_sgd,
    peak_tflops,
    resident_set,
    sgd_step,
    synchronize,
    synthetic_images,
    training_flops_per_image,
)
from harness.core.data import DataError
from harness.core.formatting import fmt_train_reading
from harness.core.models import MODEL_NAMES
from harness.core.prepare import load_raw_cached, standardise_per_image
from harness.core.train import CONVNETS, matmul_precision


class _UsualDataset(torch.utils.data.Dataset):
    """Per-image preprocessing on the host, as a torchvision transform pipeline would do it."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = torch.from_numpy(self.images[index]).permute(2, 0, 1).float().div(255.0)
        top = (image.shape[1] - 28) // 2
        left = (image.shape[2] - 28) // 2
        image = image[:, top : top + 28, left : left + 28]
        return standardise_per_image(image[None])[0], int(self.labels[index])


def _peak_tflops(device, precision: str) -> float | None:
    if device.type != "cuda":
        return None
    # the loops here run TF32 off: fp32's peak is their limit unless bf16 autocast is on
    return peak_tflops(torch.cuda.get_device_name(device), "bf16" if precision == "bf16" else "fp32")


def _autocast(device, precision: str):
    return torch.autocast("cuda", dtype=torch.bfloat16) if precision == "bf16" and device.type == "cuda" else None


def usual_images_per_second(name, images, labels, device, steps, workers) -> float:
    model, optimizer = model_and_sgd(name, device, images.shape[-1])
    loader = torch.utils.data.DataLoader(
        _UsualDataset(images, labels),
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=workers > 0,
    )
    seen, started, batches = 0, None, iter(loader)
    warmup = max(3, steps // 10)
    for index in range(steps + warmup):
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if name in CONVNETS:
            x = x.contiguous(memory_format=torch.channels_last)
        sgd_step(model, optimizer, x, y)
        if index + 1 == warmup:
            synchronize(device)
            started = time.perf_counter()
        elif index >= warmup:
            seen += len(y)
    synchronize(device)
    return seen / (time.perf_counter() - started)


def resident_images_per_second(name, images, labels, device, steps, precision="fp32") -> float:
    model, optimizer = model_and_sgd(name, device, images.shape[-1])
    x_all, y_all = resident_set(name, images, labels, device)
    n = len(y_all)
    generator = torch.Generator(device=device).manual_seed(0)
    order = torch.randperm(n, device=device, generator=generator)
    warmup = max(3, steps // 10)
    seen, started, cursor = 0, None, 0
    for index in range(steps + warmup):
        if cursor + BATCH > n:
            order, cursor = torch.randperm(n, device=device, generator=generator), 0
        rows = order[cursor : cursor + BATCH]
        cursor += BATCH
        sgd_step(model, optimizer, x_all[rows], y_all[rows], _autocast(device, precision))
        if index + 1 == warmup:
            synchronize(device)
            started = time.perf_counter()
        elif index >= warmup:
            seen += BATCH
    synchronize(device)
    return seen / (time.perf_counter() - started)


def graph_images_per_second(name, images, labels, device, steps, precision="fp32") -> float:
    from harness.core.graph_step import GraphedSGDStep

    model, _ = model_and_sgd(name, device, images.shape[-1])
    x_all, y_all = resident_set(name, images, labels, device)
    step = GraphedSGDStep(
        model,
        x_all,
        y_all,
        batch_size=BATCH,
        lr=0.01,
        momentum=0.9,
        weight_decay=0.0,
        autocast_dtype=torch.bfloat16 if precision == "bf16" else None,
    )
    generator = torch.Generator(device=device).manual_seed(0)
    timed = min(steps, len(y_all) // BATCH) * BATCH  # full batches only: one graph
    step.run_pass(torch.randperm(len(y_all), device=device, generator=generator)[:timed], 0.01)  # warm
    synchronize(device)
    started = time.perf_counter()
    step.run_pass(torch.randperm(len(y_all), device=device, generator=generator)[:timed], 0.01)
    synchronize(device)
    return timed / (time.perf_counter() - started)


def fit_benchmark(
    models,
    data_spec: str,
    device,
    loops=("eager", "graph"),
    precision: str | None = None,
    fractions: list[float] | None = None,
    n_train: int | None = None,
) -> None:
    """Time to zero training error on random labels, per loop and training-set check, same run.

    precision None keeps each model's paper-profile precision; "bf16" or
    "fp32" overrides it, which is how a precision's effect on the verdict
    (exactly 100% or not) is checked. fractions: the training-set check
    fractions to time (None: the profile's own); 1.0 is the baseline the
    others are compared with. n_train: a subset (None: the whole set).
    """
    from harness.core.config import get_profile
    from harness.core.train import fit

    chosen = "paper profile precision" if precision is None else precision
    scale = "all training images" if n_train is None else f"{n_train} training images"
    print(
        f"\ntime to fit random labels (paper profile settings, {chosen}, {data_spec}, {scale}); "
        "seconds include evaluation"
    )
    print(
        f"{'model':<16}{'loop':<7}{'check':>6}{'precision':>10} {'outcome':<15}{'passes':>7}{'whole':>6}"
        f"{'train acc':>10}{'train s':>9}{'eval s':>8}{'setup s':>8}{'total s':>9}{'img/s':>10}"
    )
    for name in models:
        totals, passes = {}, {}
        profile_config = get_profile("paper").config(name)
        for loop in loops:
            for fraction in fractions or [profile_config.train_check_fraction]:
                changes = {} if precision is None else {"precision": precision}
                if n_train is not None:
                    changes["n_train"] = n_train
                config = get_profile("paper").config(
                    name,
                    data=data_spec,
                    variant="random",
                    device=str(device),
                    loop=loop,
                    train_check_fraction=fraction,
                    **changes,
                )
                record = fit(config, progress=_every_tenth_pass(f"{name} {loop} check {fraction:g}"))
                total = record["train_seconds"] + record["eval_seconds"] + record["setup_seconds"]
                totals[loop, fraction], passes[loop, fraction] = total, record["passes_to_fit"]
                print(
                    f"{name:<16}{loop:<7}{fraction:>6g}{config.precision:>10} {record['outcome']:<15}"
                    f"{record['passes']:>7}{record['whole_set_checks']:>6}{record['train_accuracy']:>10.4%}"
                    f"{record['train_seconds']:>9.1f}{record['eval_seconds']:>8.1f}{record['setup_seconds']:>8.1f}"
                    f"{total:>9.1f}{record['images_per_second']:>10,.0f}",
                    flush=True,
                )
        for fraction in {f for _, f in totals}:
            if ("eager", fraction) in totals and ("graph", fraction) in totals:
                print(
                    f"{name:<16}graph/eager speed-up (check {fraction:g}): "
                    f"{totals['eager', fraction] / totals['graph', fraction]:.2f}x"
                )
        for loop, fraction in totals:
            if fraction < 1.0 and (loop, 1.0) in totals:
                same = (
                    "same pass to fit"
                    if passes[loop, fraction] == passes[loop, 1.0]
                    else (f"PASSES TO FIT DIFFER: {passes[loop, fraction]} vs {passes[loop, 1.0]}")
                )
                print(
                    f"{name:<16}{loop} loop: check {fraction:g} vs whole set every pass: "
                    f"{totals[loop, 1.0] / totals[loop, fraction]:.2f}x faster in total, {same}"
                )


def _every_tenth_pass(label: str):
    """A progress line on stderr every tenth pass: a fit on a CPU runs for minutes."""

    def show(state: dict) -> None:
        if state["pass"] % 10 == 0:
            print(
                f"  {label}: pass {state['pass']}/{state['max_passes']}, train {fmt_train_reading(state)}",
                file=sys.stderr,
                flush=True,
            )

    return show


def batched_benchmark(data_spec: str, runs: int, passes: int, n_train: int, device) -> None:
    """R MLP runs differing in seed: one by one (baseline) against batched, same run of the bench.

    The baselines are the single-run loops: eager everywhere, and the CUDA
    graph loop on a GPU (the harness's fastest single run there).
    """
    from harness.bench.batched import fit_batched
    from harness.core.config import RunConfig
    from harness.core.train import fit

    def configs(loop):
        return [
            RunConfig(
                data=data_spec,
                model="mlp_1x512",
                variant="random",
                seed=seed,
                n_train=n_train,
                max_passes=passes,
                device=str(device),
                loop=loop,
                test_every=passes,
            )
            for seed in range(runs)
        ]

    load_raw_cached(data_spec)  # reading the file is not part of either timing
    loops = ["eager"] + (["graph"] if device.type == "cuda" else [])
    one_by_one = {}
    for loop in loops:
        started = time.perf_counter()
        for config in configs(loop):
            fit(config)
        one_by_one[loop] = time.perf_counter() - started
    started = time.perf_counter()
    fit_batched(configs("eager"))
    together = time.perf_counter() - started
    print(f"\n{runs} runs of mlp_1x512, {passes} passes over {n_train} images each ({data_spec})")
    print(
        f"batched {together:.1f} s; "
        + "; ".join(
            f"one by one ({loop}) {seconds:.1f} s: batched is {seconds / together:.2f}x"
            for loop, seconds in one_by_one.items()
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        default="cifar10",
        help="data spec (default cifar10 under $HARNESS_DATA_DIR), or 'synthetic' (uint8 noise of CIFAR-10's shape)",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "tf32", "bf16"),
        default=None,
        help="precision of our loops (bf16 autocast, GPU; default fp32); the usual baseline "
        "stays fp32. With --fit it replaces the paper profile's precision of every model. "
        "tf32 (TF32 matmuls and convolutions) is for --in-flight only",
    )
    parser.add_argument("--models", nargs="+", default=None, choices=MODEL_NAMES)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps per loop (default 30 on CPU, 400 with --full)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers of the baseline (default 2 on CPU, 8 on GPU)"
    )
    parser.add_argument("--full", action="store_true", help="GPU scale: all models, full training set, 400 steps")
    parser.add_argument(
        "--batched",
        type=int,
        default=None,
        metavar="R",
        help="also time R MLP 1x512 runs one by one against batched (harness.bench.batched)",
    )
    parser.add_argument(
        "--fit",
        nargs="*",
        default=None,
        metavar="MODEL",
        help="also time fitting random labels, eager vs graph loop (default model mlp_1x512; "
        "on a CPU the eager loop over the CPU-sized training set)",
    )
    parser.add_argument(
        "--fit-loops",
        nargs="+",
        choices=("eager", "graph"),
        default=None,
        help="which loops --fit times (default both on CUDA; graph alone skips the slow eager runs)",
    )
    parser.add_argument(
        "--fit-check-fractions",
        nargs="+",
        type=float,
        default=None,
        metavar="F",
        help="training-set check fractions --fit times, e.g. 1.0 0.1 (1.0, the whole set every "
        "pass, is the baseline; default the paper profile's own per model)",
    )
    parser.add_argument(
        "--in-flight",
        nargs="+",
        type=int,
        default=None,
        metavar="N",
        help="instead of the usual-vs-ours table: aggregate throughput of N training runs in flight at once, one "
        "process each, as xdist workers (harness.bench.in_flight); 1 in flight is measured as the baseline. "
        "Trains on all training images on CUDA (their real memory), 5,000 on a CPU unless --full",
    )
    parser.add_argument(
        "--tier",
        choices=("smoke", "paper"),
        default=None,
        help="time a whole claims tier from one command (python -m harness bench --tier ...; "
        "harness.bench.tier runs it)",
    )
    args = parser.parse_args(argv)
    if args.tier is not None:
        print(
            "error: --tier is run by `python -m harness bench --tier ...` (harness.bench.tier), "
            "not by harness.bench.loops.main",
            file=sys.stderr,
        )
        return 2
    if args.precision == "tf32" and args.in_flight is None:
        print("error: --precision tf32 is for --in-flight", file=sys.stderr)
        return 2
    fit_precision, args.precision = args.precision, args.precision or "fp32"

    device = torch.device(args.device)
    cpu = device.type == "cpu"
    models = args.models or (list(MODEL_NAMES) if args.full else ["mlp_1x512", "alexnet"])
    steps = args.steps or (400 if args.full else 30)
    workers = args.workers if args.workers is not None else (2 if cpu else 8)
    if args.data == "synthetic":
        all_images, all_labels = synthetic_images()
        source = "synthetic uint8 noise, 32x32x3 (throughput only)"
    else:
        try:
            raw = load_raw_cached(args.data)
        except DataError as error:
            print(f"error: {error}; to time throughput without data, pass --data synthetic", file=sys.stderr)
            return 2
        all_images, all_labels, source = raw.train_x, raw.train_y, raw.source
    n = len(all_labels) if args.full else min(len(all_labels), 5_000)
    images, labels = all_images[:n], all_labels[:n]
    if args.in_flight is not None:
        from harness.bench.in_flight import in_flight_benchmark

        whole = device.type == "cuda" or args.full
        return in_flight_benchmark(
            models,
            args.in_flight,
            device,
            steps,
            args.precision,
            all_images if whole else images,
            all_labels if whole else labels,
            source,
        )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"device: {name}; torch {torch.__version__}; data: {source}, {n} training images; batch {BATCH}, "
        f"{steps} timed steps; ours in {args.precision}; baseline: DataLoader with {workers} workers, "
        "per-image transforms, fp32"
    )
    graphs = device.type == "cuda"
    peak_tflops = _peak_tflops(device, args.precision)
    print(
        f"{'model':<16}{'usual img/s':>13}{'resident img/s':>16}{'ratio':>8}{'graph img/s':>13}{'ratio':>8}"
        f"{'GFLOP/img':>10}{'TFLOP/s':>9}{'of peak':>9}{'peak MiB':>10}"
    )
    with matmul_precision("fp32"):
        for model_name in models:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            usual = usual_images_per_second(model_name, images, labels, device, steps, workers)
            resident = resident_images_per_second(model_name, images, labels, device, steps, args.precision)
            graph = (
                graph_images_per_second(model_name, images, labels, device, steps, args.precision)
                if graphs
                else float("nan")
            )
            peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
            flops = training_flops_per_image(model_name, images.shape[-1])
            best = resident if math.isnan(graph) else max(resident, graph)  # our best loop
            achieved = best * flops / 1e12
            fraction = f"{achieved / peak_tflops:>9.1%}" if peak_tflops else f"{'-':>9}"
            print(
                f"{model_name:<16}{usual:>13,.0f}{resident:>16,.0f}{resident / usual:>8.2f}"
                f"{graph:>13,.0f}{graph / usual:>8.2f}{flops / 1e9:>10.3f}{achieved:>9.2f}{fraction}{peak:>10,.0f}",
                flush=True,
            )
    if peak_tflops:
        print(
            f"of peak: our best loop's FLOP/s against the device's {args.precision} dense peak, "
            f"{peak_tflops} TFLOP/s (data sheet)"
        )
    if args.batched:
        if args.data == "synthetic":
            print("--batched trains real runs and needs a data spec", file=sys.stderr)
            return 2
        batched_benchmark(args.data, args.batched, 3 if cpu else 20, n, device)
    if args.fit is not None:
        loops = args.fit_loops or (["eager", "graph"] if graphs else ["eager"])
        if args.data == "synthetic" or ("graph" in loops and not graphs):
            print("--fit trains on real data (a data spec), and its graph loop needs CUDA", file=sys.stderr)
            return 2
        if any(not 0.0 < f <= 1.0 for f in args.fit_check_fractions or []):
            print("--fit-check-fractions must lie in (0, 1]", file=sys.stderr)
            return 2
        fit_benchmark(
            args.fit or ["mlp_1x512"],
            args.data,
            device,
            loops,
            "fp32" if cpu else fit_precision,
            args.fit_check_fractions,
            n if cpu and not args.full else None,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
