"""SGD on an under-determined linear least-squares problem finds the minimum-norm solution.

Zhang et al. (2017), section 5: for a linear model w trained by SGD on the
loss sum_i (<w, x_i> - y_i)^2, every update is a combination of the x_i,
so an iterate started at zero stays in the row space of X, w = X^T alpha.
When it interpolates (X w = y, possible when n < d and X has full row
rank), the only interpolant in the row space is w* = X^T (X X^T)^-1 y =
pinv(X) y, the solution of minimum l2 norm. From a start w0 the iterates
stay in w0 + row space and the limit is w* + P_perp w0.

The optimizer is a plug-in: any callable that turns an iterable of
parameters into a torch.optim.Optimizer. The harness owns the rest (model,
loss, gradient, batches, step budget, the checks). Adaptive methods scale
coordinates separately, leave the row space and end at another interpolant;
`train_least_squares` measures how far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
_EPS = float(np.finfo(np.float64).eps)
_TINY = float(np.finfo(np.float64).tiny)  # guards divisions by a zero norm


def _gamma(m: int) -> float:
    return m * _EPS / (1.0 - m * _EPS)


@dataclass
class LinearRun:
    """The outcome of one run and its checks (float64 throughout; norms are l2).

    steps: optimizer steps taken.
    converged: relative_residual <= the tolerance asked for.
    relative_residual: ||X w - y|| / ||X w0 - y|| at the end (0 if the start fits).
    min_norm: pinv(X) y. predicted_limit: min_norm + P_perp w0.
    distance_to_min_norm, distance_to_predicted: ||w - min_norm||, ||w - predicted_limit||.
    distance_bound: what ||w - predicted_limit|| may be at most if every step stayed in
        w0 + row space up to rounding (derivation in `_distance_bound`).
    max_row_space_leak: max over all steps of ||P_perp (w_t - w0)||, measured each step.
    final_row_space_leak: the same for the last iterate; for w0 = 0 it is a lower
        bound on distance_to_min_norm, since min_norm lies in the row space.
    leak_budget: how large max_row_space_leak may be from float64 rounding alone
        if every update is a combination of the rows (as plain SGD's are).
    """

    weights: torch.Tensor
    steps: int
    converged: bool
    relative_residual: float
    min_norm: torch.Tensor
    predicted_limit: torch.Tensor
    distance_to_min_norm: float
    distance_to_predicted: float
    distance_bound: float
    max_row_space_leak: float
    final_row_space_leak: float
    leak_budget: float


def check_problem(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """x (n, d) and y (n,) as float64 tensors; ValueError for bad shapes or values."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float64) if not isinstance(x, torch.Tensor) else x).double()
    y = torch.as_tensor(np.asarray(y, dtype=np.float64) if not isinstance(y, torch.Tensor) else y).double()
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x must be a non-empty 2-D array of shape (n, d); got shape {tuple(x.shape)}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape (n,) = ({x.shape[0]},) to match x; got shape {tuple(y.shape)}")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("x and y must be finite; remove or replace NaN and infinite values")
    return x, y


def min_norm_solution(x, y) -> torch.Tensor:
    """pinv(X) y: the least-squares solution of minimum l2 norm."""
    x, y = check_problem(x, y)
    return torch.linalg.pinv(x) @ y


def row_space_basis(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis (d, r) of the row space of x, from its SVD (rank by LAPACK's rule)."""
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    rank = int((s > s.max() * max(x.shape) * _EPS).sum()) if s.numel() else 0
    return vh[:rank].T


def default_learning_rate(x: torch.Tensor, batch_size: int) -> float:
    """1 / L for the batch loss 0.5 ||X_B w - y_B||^2, safe for every batch of that size.

    L = ||X_B||^2 <= min(||X||^2, sum of the batch_size largest ||x_i||^2).
    """
    row_norms = (x * x).sum(1).sort(descending=True).values
    lipschitz = min(float(torch.linalg.matrix_norm(x, ord=2)) ** 2, float(row_norms[:batch_size].sum()))
    return 1.0 / lipschitz


def plain_sgd(lr: float) -> OptimizerFactory:
    """The default plug-in: SGD without momentum or weight decay."""
    return lambda params: torch.optim.SGD(params, lr=lr)


def train_least_squares(
    x,
    y,
    *,
    optimizer_factory: OptimizerFactory | None = None,
    w0=None,
    batch_size: int | None = None,
    max_steps: int = 20_000,
    tolerance: float = 1e-10,
    seed: int = 0,
) -> LinearRun:
    """Train w on 0.5 ||X_B w - y_B||^2 over random batches until ||X w - y|| <= tolerance ||X w0 - y||.

    optimizer_factory: params -> torch.optim.Optimizer; default plain SGD at
        `default_learning_rate`. w0: start (default zero). batch_size: default
        all n rows (then "SGD" is gradient descent). Batches are drawn without
        replacement, reshuffled every pass, seeded. The gradient is
        X_B^T (X_B w - y_B), written into w.grad before each optimizer step.
    Every step measures the iterate's component outside w0 + row space.
    """
    x, y = check_problem(x, y)
    n, d = x.shape
    batch_size = n if batch_size is None else int(batch_size)
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must lie in [1, n = {n}]; got {batch_size}")
    start = torch.zeros(d, dtype=torch.float64) if w0 is None else torch.as_tensor(w0, dtype=torch.float64).clone()
    if start.shape != (d,):
        raise ValueError(f"w0 must have shape (d,) = ({d},); got {tuple(start.shape)}")
    factory = optimizer_factory or plain_sgd(default_learning_rate(x, batch_size))
    weights = torch.nn.Parameter(start.clone())
    optimizer = factory([weights])
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer_factory returned {type(optimizer).__name__}, not a torch.optim.Optimizer")

    basis = row_space_basis(x)
    singular = torch.linalg.svdvals(x)
    sigma_max, sigma_min = float(singular[0]), float(singular[min(n, d) - 1])
    start_residual = max(float((x @ start - y).norm()), _TINY)  # the starting residual
    generator = torch.Generator().manual_seed(seed)
    order, cursor = torch.randperm(n, generator=generator), 0
    rounding = 0.0  # accumulated rounding budget of span-preserving updates
    max_leak = 0.0
    steps = 0
    with torch.no_grad():
        residual = float((x @ weights - y).norm()) / start_residual
        while residual > tolerance and steps < max_steps:
            if cursor + batch_size > n:
                order, cursor = torch.randperm(n, generator=generator), 0
            rows = order[cursor : cursor + batch_size]
            cursor += batch_size
            x_b = x[rows]
            r_b = x_b @ weights - y[rows]
            weights.grad = x_b.T @ r_b
            before = weights.detach().clone()
            optimizer.step()
            steps += 1
            # Rounding of one span-preserving step: the gradient's matvec (gamma_b
            # times |X_B|^T |r_B|), then scaling and adding the update (eps each).
            update = weights - before
            rounding += (
                _gamma(batch_size) * float((x_b.abs().T @ r_b.abs()).norm()) * float(update.norm())
                / max(float(weights.grad.norm()), _TINY)
                + _EPS * (float(update.norm()) + float(weights.norm()))
            )
            max_leak = max(max_leak, _leak(weights - start, basis))
            residual = float((x @ weights - y).norm()) / start_residual
        final = weights.detach().clone()

    min_norm = torch.linalg.pinv(x) @ y
    predicted = min_norm + (start - basis @ (basis.T @ start))
    # measuring P_perp itself is inexact: the SVD's basis is off the true row
    # space by an angle of about eps * max(n, d) * kappa (Wedin's theorem with
    # the SVD's backward error), on top of the rounding of v - Q Q^T v.
    kappa = sigma_max / sigma_min if sigma_min > 0 else math.inf
    measure_slack = (_gamma(2 * d) + _gamma(max(n, d)) * kappa) * (float(final.norm()) + float(start.norm()))
    leak_budget = rounding + measure_slack
    final_leak = _leak(final - start, basis)
    return LinearRun(
        weights=final,
        steps=steps,
        converged=residual <= tolerance,
        relative_residual=residual,
        min_norm=min_norm,
        predicted_limit=predicted,
        distance_to_min_norm=float((final - min_norm).norm()),
        distance_to_predicted=float((final - predicted).norm()),
        distance_bound=_distance_bound(residual * start_residual, leak_budget, sigma_min, sigma_max, min_norm, predicted, n, d),
        max_row_space_leak=max_leak,
        final_row_space_leak=final_leak,
        leak_budget=leak_budget,
    )


def _leak(v: torch.Tensor, basis: torch.Tensor) -> float:
    """||P_perp v||: the part of v outside the row space."""
    return float((v - basis @ (basis.T @ v)).norm())


def _distance_bound(residual_norm, leak, sigma_min, sigma_max, min_norm, predicted, n, d) -> float:
    """Bound on ||w - predicted_limit|| for an iterate w in w0 + row space up to `leak`.

    Write w - predicted = e + l with l the leak (||l|| <= leak) and e in the
    row space. X predicted = y (up to pinv's rounding), so X e = (X w - y) - X l
    and ||e|| <= (||X w - y|| + sigma_max leak) / sigma_min. pinv(X) y itself
    is accurate to about gamma_{max(n,d)} kappa ||pinv(X) y||; the projection
    of w0 adds the same order on ||predicted||.
    """
    if sigma_min <= 0:
        return math.inf
    kappa = sigma_max / sigma_min
    solve = _gamma(max(n, d)) * kappa * (float(min_norm.norm()) + float(predicted.norm()))
    return (residual_norm + sigma_max * leak) / sigma_min + leak + solve
