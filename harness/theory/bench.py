"""Time and accuracy of Theorem 1's construction at large n.

    python -m harness.theory.bench --sizes 1000 10000 100000 --dim 3072

For each n: n Gaussian points in d dimensions (float64) with Gaussian
targets; the time to build the network (direction, thresholds, weights,
O(n) after the projections), the worst residual of its forward pass on all
n points, and, up to --compensated-up-to points, of its compensated
evaluation. Evaluating on all n points is O(n^2) and takes longer than the
build. Timings are wall-clock on this process's threads.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from harness.theory.expressivity import DEFAULT_DIRECTIONS, PLACEMENTS, construct_two_layer, max_abs_residual


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m harness.theory.bench",
        description="Build Theorem 1's 2n + d ReLU network for n random points; report time and residual.",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000], help="numbers of points n")
    parser.add_argument("--dim", type=int, default=3072, help="dimension d (3072 = CIFAR-10's 32 x 32 x 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the points, targets and directions")
    parser.add_argument("--directions", type=int, default=DEFAULT_DIRECTIONS, help="random directions tried for a")
    parser.add_argument("--placement", choices=PLACEMENTS, default="above_previous", help="where thresholds sit")
    parser.add_argument(
        "--compensated-up-to",
        type=int,
        default=20_000,
        metavar="N",
        help="also evaluate compensated for n <= N (about ten times the plain evaluation's cost)",
    )
    args = parser.parse_args(argv)
    if min(args.sizes) < 1 or args.dim < 1:
        parser.error("--sizes and --dim must be positive")
    return args


def measure(n: int, d: int, seed: int, directions: int, placement: str, compensated: bool) -> dict:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64).numpy()
    y = torch.randn(n, generator=generator, dtype=torch.float64).numpy()
    start = time.perf_counter()
    try:
        built = construct_two_layer(x, y, placement=placement, n_directions=directions, seed=seed)
    except (OverflowError, ValueError) as error:  # an unstable placement fails: a result, not a crash
        return {"n": n, "d": d, "error": str(error)}
    build_seconds = time.perf_counter() - start
    net = built.network
    start = time.perf_counter()
    residual = max_abs_residual(net, x, y)
    eval_seconds = time.perf_counter() - start
    return {
        "n": n,
        "d": d,
        "parameters": net.parameter_count,
        "build_seconds": build_seconds,
        "eval_seconds": eval_seconds,
        "residual": residual,
        "compensated_residual": max_abs_residual(net, x, y, compensated=True) if compensated else None,
        "weights_l1": float(net.out_weights.detach().abs().sum()),
        "relative_min_gap": built.relative_min_gap,
    }


def format_table(rows: list[dict]) -> str:
    header = (
        f"{'n':>8} {'d':>6} {'params':>9} {'build s':>8} {'eval s':>8} {'worst residual':>15} "
        f"{'compensated':>12} {'||w||_1':>9} {'min gap/range':>13}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        if "error" in row:
            lines.append(f"{row['n']:>8} {row['d']:>6}  failed: {row['error']}")
            continue
        compensated = f"{row['compensated_residual']:.2e}" if row["compensated_residual"] is not None else "-"
        lines.append(
            f"{row['n']:>8} {row['d']:>6} {row['parameters']:>9} {row['build_seconds']:>8.2f} "
            f"{row['eval_seconds']:>8.2f} {row['residual']:>15.2e} {compensated:>12} "
            f"{row['weights_l1']:>9.1e} {row['relative_min_gap']:>13.1e}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    print(
        f"Theorem 1 construction, float64, Gaussian points and targets, placement {args.placement}, "
        f"best of {args.directions} directions, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    rows = []
    for n in args.sizes:
        rows.append(measure(n, args.dim, args.seed, args.directions, args.placement, n <= args.compensated_up_to))
        print(format_table(rows[-1:]).splitlines()[-1] if len(rows) > 1 else format_table(rows), flush=True)
    return 0 if all("error" not in row for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
