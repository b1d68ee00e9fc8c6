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
loss, gradient, batches, step budget, the checks). `train_optimizer_spec`
runs an optimizer under test as the training loop does: resolved from its
spec with `harness.core.optim.resolve(spec)(model, Hyper(lr))`, stepped
through `harness.core.train.closure_step` (so closure optimizers such as
LBFGS run), switched with `set_optimizer_mode` (train() to step, eval() to
read the weights); `optimizer_outcome` reads its run: REACHES, ELSEWHERE or
UNDECIDED (a run that did not converge is never REACHES). Adaptive methods scale
coordinates separately, leave the row space and end at another interpolant;
`train_least_squares` measures how far.

Rank. Everything here uses the numerical rank r of X (`numerical_rank`, the
rule `row_space_basis` has always used: singular values above
sigma_1 max(n, d) eps). The row space is the span of the first r right
singular vectors; pinv(X) y is the truncated pseudo-inverse on those r
directions; sigma_min and kappa are those of X restricted to its row space
(sigma_r and sigma_1 / sigma_r), since only they bound ||e|| for e in the
row space. A problem with repeated rows or rows that combine others
(rank r < n) and consistent targets still has pinv(X) y as its minimum-norm
interpolant; with targets that leave the column space no w interpolates and
`train_least_squares` refuses the problem up front.

Deciding. A bound is only evidence if it is small at the scale of the
decision it serves: `LinearRun.bound_is_informative` and `limit_verdict`
turn a bound that cannot tell "at the predicted limit" from "elsewhere"
into the verdict UNDECIDED, never into a pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from harness.core.optim import BUILTIN_OPTIMIZERS, Hyper, builtin_name, resolve, spec_kwargs
from harness.core.train import closure_step, set_optimizer_mode

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
_EPS = float(np.finfo(np.float64).eps)
_TINY = float(np.finfo(np.float64).tiny)  # guards divisions by a zero norm

# "Elsewhere", declared before measuring: an iterate at least 1% of
# ||predicted_limit|| from the predicted limit is not at it (the claims'
# contrast, Adam, ends tens of percent away).
MIN_RELATIVE_DEPARTURE = 0.01
# A distance bound decides between "at the predicted limit" (distance 0) and
# "elsewhere" (distance >= MIN_RELATIVE_DEPARTURE ||limit||) only if the two
# answers cannot both lie within it of a measured distance: balls of radius
# `bound` around two points D apart are disjoint iff bound < D / 2 (the
# half-the-gap rule C8 applies to target values). Hence half the departure.
DECISION_FRACTION = MIN_RELATIVE_DEPARTURE / 2

WITHIN = "within bound"  # at the predicted limit, as far as float64 can tell
OUTSIDE = "outside bound"  # provably not at the predicted limit
UNDECIDED = "undecided"  # the bound is too loose to tell either way


# The outcomes of an optimizer asked the paper's SGD claim (`optimizer_outcome`).
REACHES = "reaches the minimum-norm solution"
ELSEWHERE = "converges elsewhere"
NOT_DECIDED = "undecided"


def _gamma(m: int) -> float:
    """Higham's gamma_m = m eps / (1 - m eps): the relative error bound of an m-term sum."""
    return m * _EPS / (1.0 - m * _EPS)


def limit_verdict(distance: float, bound: float, scale: float) -> str:
    """WITHIN, OUTSIDE or UNDECIDED for a weight vector `distance` (l2) from a predicted limit.

    bound: the most `distance` may be if the weights are at the limit up to
    rounding. scale: ||predicted limit||, the size the decision is made at.
    UNDECIDED unless bound < DECISION_FRACTION * scale (derivation next to
    DECISION_FRACTION), whatever the distance: a loose bound never passes.
    A zero limit (y = 0 from w0 = 0) leaves no scale and is UNDECIDED too.
    """
    if not bound < DECISION_FRACTION * scale:  # (also catches a NaN bound)
        return UNDECIDED
    return WITHIN if distance <= bound else OUTSIDE


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
    rank: the numerical rank r of X (`numerical_rank`); the row space has dimension r.
    sigma_min: sigma_r, the smallest singular value above the rank threshold
        (0.0 for X = 0); condition_number: sigma_1 / sigma_r (inf for X = 0).
    inconsistency: ||y - X pinv(X) y||, the part of y outside X's column space
        (float64 rounding for consistent targets; larger ones are refused up front).
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
    rank: int
    sigma_min: float
    condition_number: float
    inconsistency: float

    @property
    def decision_scale(self) -> float:
        """||predicted_limit||: the size at which "at the limit" and "elsewhere" are told apart."""
        return float(self.predicted_limit.norm())

    @property
    def bound_is_informative(self) -> bool:
        """distance_bound < DECISION_FRACTION * ||predicted_limit|| (derivation next to DECISION_FRACTION).

        distance_bound includes leak_budget (see `_distance_bound`), so an
        informative distance bound makes the leak check decide too.
        """
        return limit_verdict(0.0, self.distance_bound, self.decision_scale) != UNDECIDED

    @property
    def verdict(self) -> str:
        """WITHIN, OUTSIDE or UNDECIDED for the final iterate against predicted_limit (`limit_verdict`)."""
        return limit_verdict(self.distance_to_predicted, self.distance_bound, self.decision_scale)


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


def numerical_rank(singular_values: torch.Tensor, shape: tuple[int, int]) -> int:
    """How many singular values exceed sigma_1 max(n, d) eps (LAPACK's and numpy's rank rule).

    singular_values: those of an (n, d) matrix of shape `shape`, descending.
    Singular values below the threshold are indistinguishable from the
    rounding of the matrix's own SVD (backward error about max(n, d) eps
    sigma_1), so their directions count as null. 0 for the zero matrix.
    """
    if singular_values.numel() == 0:
        return 0
    threshold = float(singular_values[0]) * max(shape) * _EPS
    return int((singular_values > threshold).sum())


def _truncated_svd(x: torch.Tensor):
    """(u_r (n, r), s_r (r,), v_r (d, r), sigma_cut): the SVD of x cut at its numerical rank r.

    sigma_cut is the largest singular value discarded (0.0 when none is).
    """
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    rank = numerical_rank(s, tuple(x.shape))
    sigma_cut = float(s[rank]) if rank < s.numel() else 0.0
    return u[:, :rank], s[:rank], vh[:rank].T, sigma_cut


def min_norm_solution(x, y) -> torch.Tensor:
    """pinv(X) y (d,): the least-squares solution of minimum l2 norm, pinv cut at the numerical rank."""
    x, y = check_problem(x, y)
    u, s, v, _ = _truncated_svd(x)
    return v @ ((u.T @ y) / s)


def row_space_basis(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis (d, r) of the row space of x, r = `numerical_rank`, from its SVD."""
    return _truncated_svd(x)[2]


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
    closure: bool = False,
    factory_takes_model: bool = False,
) -> LinearRun:
    """Train w on 0.5 ||X_B w - y_B||^2 over random batches until ||X w - y|| <= tolerance ||X w0 - y||.

    x (n, d), y (n,), w0 (d,), all turned into float64. optimizer_factory:
        params -> torch.optim.Optimizer; default plain SGD at
        `default_learning_rate`. w0: start (default zero). batch_size: default
        all n rows (then "SGD" is gradient descent). Batches are drawn without
        replacement, reshuffled every pass, seeded. The gradient is
        X_B^T (X_B w - y_B), written into w.grad before each optimizer step.
    Every step measures the iterate's component outside w0 + row space.
    closure: step as the training loop does (`_closure_stepper`): the loss
        recomputed by a closure, optimizer.train() to step and optimizer.eval()
        to read the weights; otherwise the gradient is written into w.grad and
        optimizer.step() is called without a closure.
    factory_takes_model: hand optimizer_factory the least-squares model (a
        torch.nn.Module whose one parameter, named ``weights``, is w; the
        module the closure evaluates) instead of [w], as the training loop
        hands a factory the network (`train_optimizer_spec`).

    X may be rank-deficient (repeated rows, rows combining others, n > d):
    the row space, pinv(X) y and the bounds all use the numerical rank.

    Raises ValueError for bad shapes or values, for a batch size outside
    [1, n], and, before any step, for inconsistent targets: when the part
    of y outside X's column space is larger than the stopping rule allows
    (derivation in `_check_consistent`), no iterate in w0 + row space can
    meet it, so the run could only exhaust max_steps, and the distance
    bound, which assumes X predicted_limit = y, would be void. Refusing up
    front says so where converged=False would leave it to be guessed.
    TypeError if optimizer_factory does not return an Optimizer.
    """
    x, y = check_problem(x, y)
    n, d = x.shape
    batch_size = n if batch_size is None else int(batch_size)
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must lie in [1, n = {n}]; got {batch_size}")
    start = torch.zeros(d, dtype=torch.float64) if w0 is None else torch.as_tensor(w0, dtype=torch.float64).clone()
    if start.shape != (d,):
        raise ValueError(f"w0 must have shape (d,) = ({d},); got {tuple(start.shape)}")
    u_r, s_r, basis, sigma_cut = _truncated_svd(x)
    rank = basis.shape[1]
    sigma_max = float(s_r[0]) if rank else 0.0
    sigma_min = float(s_r[-1]) if rank else 0.0  # sigma_r: X restricted to its row space
    kappa = sigma_max / sigma_min if rank else math.inf
    min_norm = basis @ ((u_r.T @ y) / s_r)
    inconsistency = float((y - u_r @ (u_r.T @ y)).norm())
    start_residual = max(float((x @ start - y).norm()), _TINY)  # the starting residual
    _check_consistent(inconsistency, y, start, sigma_cut, kappa, tolerance * start_residual, rank)
    factory = optimizer_factory or plain_sgd(default_learning_rate(x, batch_size))
    weights = torch.nn.Parameter(start.clone())
    model = _SquaredResidual(weights)
    optimizer = factory(model if factory_takes_model else [weights])
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer_factory returned {type(optimizer).__name__}, not a torch.optim.Optimizer")

    generator = torch.Generator().manual_seed(seed)
    order, cursor = torch.randperm(n, generator=generator), 0
    rounding = 0.0  # accumulated rounding budget of span-preserving updates
    max_leak = 0.0
    steps = 0
    # The closure's gradient passes through four more roundings per entry than
    # X_B^T r_B (scaling r_B by b, squaring, and the loss's 1/b and 2 back):
    # gamma_{b+4} instead of gamma_b.
    gradient_rounding = _gamma(batch_size + 4) if closure else _gamma(batch_size)
    stepper = _closure_stepper(model, optimizer) if closure else None
    with torch.no_grad(), _one_thread(closure):
        residual = float((x @ weights - y).norm()) / start_residual
        while residual > tolerance and steps < max_steps:
            if cursor + batch_size > n:
                order, cursor = torch.randperm(n, generator=generator), 0
            rows = order[cursor : cursor + batch_size]
            cursor += batch_size
            x_b = x[rows]
            r_b = x_b @ weights - y[rows]
            gradient = x_b.T @ r_b
            before = weights.detach().clone()
            if stepper is None:
                weights.grad = gradient
                optimizer.step()
            else:
                stepper(x_b, y[rows])  # leaves the weights the optimizer evaluates in `weights`
            steps += 1
            # Rounding of one span-preserving step: the gradient's matvec (gamma_b
            # times |X_B|^T |r_B|), then scaling and adding the update (eps each).
            # A span-preserving update is X_B^T c with ||c|| = ||r_B|| times
            # (||update|| / ||gradient||); its part along the discarded singular
            # directions V_cut (true row-space directions below the rank
            # threshold) is (X_B V_cut)^T c, of norm <= sigma_cut ||c||.
            update = weights - before
            update_per_gradient = float(update.norm()) / max(float(gradient.norm()), _TINY)
            rounding += (
                gradient_rounding * float((x_b.abs().T @ r_b.abs()).norm()) + sigma_cut * float(r_b.norm())
            ) * update_per_gradient + _EPS * (float(update.norm()) + float(weights.norm()))
            max_leak = max(max_leak, _leak(weights - start, basis))
            residual = float((x @ weights - y).norm()) / start_residual
        final = weights.detach().clone()

    predicted = min_norm + (start - basis @ (basis.T @ start))
    # measuring P_perp itself is inexact: the SVD's basis is off the true row
    # space by an angle of about eps * max(n, d) * kappa (Wedin's theorem with
    # the SVD's backward error over the gap sigma_r - sigma_cut, which the
    # rank threshold keeps near sigma_r), on top of the rounding of v - Q Q^T v.
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
        distance_bound=_distance_bound(
            residual * start_residual,
            leak_budget,
            inconsistency + sigma_cut * float(start.norm()),
            sigma_min,
            sigma_max,
            min_norm,
            predicted,
            n,
            d,
        ),
        max_row_space_leak=max_leak,
        final_row_space_leak=final_leak,
        leak_budget=leak_budget,
        rank=rank,
        sigma_min=sigma_min,
        condition_number=kappa,
        inconsistency=inconsistency,
    )


# Soft targets (+1, -1) for each row: cross-entropy against them is z_1 - z_0
# exactly (the log-sum-exp cancels, the targets summing to zero), and its
# gradient with respect to the logits is (-1, +1) / b exactly.
_LINEAR_TARGETS = torch.tensor([[1.0, -1.0]], dtype=torch.float64)


class _SquaredResidual(torch.nn.Module):
    """w as a model whose cross-entropy, against `_LINEAR_TARGETS`, is 0.5 ||X_B w - y_B||^2.

    The training loop's step (`harness.core.train.closure_step`) evaluates
    F.cross_entropy(model(batch), labels) averaged over the batch. Here the
    batch is [X_B | y_B] (b, d + 1) and the logits of row i are
    (0, 0.5 b r_i^2), r_i = <x_i, w> - y_i: the batch mean of z_1 - z_0 is
    0.5 sum_i r_i^2, whose gradient is X_B^T r_B, as in the plain path.
    The loss value itself is read through the log-sum-exp (about log 2), so
    it is exact only to about eps log 2, 1e-16 absolute: an optimizer that
    reads loss values (a line search) cannot resolve losses below that,
    while every gradient is exact to the rounding counted in the budget.
    """

    def __init__(self, weights: torch.nn.Parameter):
        super().__init__()
        self.weights = weights

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        residual = batch[:, :-1] @ self.weights - batch[:, -1]
        half = 0.5 * residual.shape[0] * residual * residual
        return torch.stack([torch.zeros_like(half), half], 1)


def _closure_stepper(model: _SquaredResidual, optimizer: torch.optim.Optimizer):
    """step(x_b, y_b): one optimizer step on the batch through the training loop's step contract.

    optimizer.train() before the step (`set_optimizer_mode`), the step
    through `closure_step` (a closure that zeroes the gradient, recomputes
    the loss and back-propagates, called as often as the optimizer needs;
    the plain form for an optimizer that ignores it), then optimizer.eval(),
    so that the model's `weights` hold what the optimizer means to be
    evaluated (a schedule-free optimizer's average) whenever they are read.
    """

    def step(x_b: torch.Tensor, y_b: torch.Tensor) -> None:
        set_optimizer_mode(optimizer, "train")
        closure_step(model, optimizer, torch.cat([x_b, y_b[:, None]], 1), _LINEAR_TARGETS.expand(len(y_b), 2))
        set_optimizer_mode(optimizer, "eval")

    return step


def default_step_budget(kappa: float, tolerance: float, n: int, batch_size: int) -> int:
    """Steps plain SGD at lr 1/L needs, 4 times over: 4 ceil(kappa^2 ln(1/tol)) ceil(n / b) + 100.

    With lr = 1 / L each pass over the rows shrinks the slowest error mode by
    at least a factor (1 - 1/kappa^2), so ln(1/tol) kappa^2 passes suffice
    for gradient descent; 4 times that, in steps of ceil(n / b), leaves room
    for reshuffling (the rule of C9's fuzz test).
    """
    return 4 * math.ceil(kappa**2 * math.log(1 / tolerance)) * math.ceil(n / batch_size) + 100


def train_optimizer_spec(
    x,
    y,
    spec: str,
    lr: float | None = None,
    *,
    batch_size: int | None = None,
    max_steps: int = 20_000,
    tolerance: float = 1e-10,
    seed: int = 0,
) -> LinearRun:
    """`train_least_squares` from zero with the optimizer `spec` built and stepped as the training loop does.

    The optimizer is `resolve(spec)(model, Hyper(lr))` (the loop's
    resolution: a built-in or ``package.module:factory``, keywords in the
    spec winning over lr; paper_sgd gets the config's momentum 0.9; a
    factory that asks for the model or its named parameters gets the
    least-squares model, whose one parameter is ``weights``), and every step
    goes through the loop's closure step (`_closure_stepper`): any optimizer
    the loop accepts, SAM-like, schedule-free-like and LBFGS included.
    lr: the rate to use; None for C9's own rule, `spec_learning_rate`.
    """
    x, y = check_problem(x, y)
    batch_size = x.shape[0] if batch_size is None else int(batch_size)
    if lr is None and 1 <= batch_size <= x.shape[0]:
        lr = spec_learning_rate(spec, x, batch_size)
    build = resolve(spec)
    return train_least_squares(
        x,
        y,
        optimizer_factory=lambda model: build(model, Hyper(lr)),
        batch_size=batch_size,
        max_steps=max_steps,
        tolerance=tolerance,
        seed=seed,
        closure=True,
        factory_takes_model=True,
    )


def spec_learning_rate(spec: str, x: torch.Tensor, batch_size: int) -> float:
    """C9's learning rate for an optimizer with no tuned one: (1 - momentum) / L.

    1 / L (`default_learning_rate`) is the largest step safe for plain SGD
    on every batch. Heavy-ball momentum beta multiplies a steady step by
    1 / (1 - beta), so an optimizer given momentum (paper_sgd takes the
    config's 0.9; a spec may set its own) gets (1 - beta) / L: the same
    effective step (at 1 / L, paper_sgd's momentum 0.9 diverged on C9's
    problem with batches of 10). Every other optimizer gets 1 / L. A spec
    that sets lr itself keeps it (its keywords win in `resolve`).
    """
    builtin = builtin_name(spec)
    momentum = spec_kwargs(spec).get("momentum")
    if momentum is None:
        takes = builtin is not None and BUILTIN_OPTIMIZERS[builtin].takes_config_momentum
        momentum = Hyper(None).momentum if takes else 0.0  # the loop's default: the config's 0.9
    return (1.0 - float(momentum)) * default_learning_rate(x, batch_size)


def optimizer_outcome(run: LinearRun) -> str:
    """REACHES, ELSEWHERE or NOT_DECIDED for a run from zero asked the paper's SGD claim.

    REACHES: it converged (residual within the tolerance) and its limit is
    within the derived bound of pinv(X) y, the bound being informative
    (`LinearRun.verdict` WITHIN). ELSEWHERE: it converged and its limit is
    provably not pinv(X) y (OUTSIDE). NOT_DECIDED: it did not converge within
    its step budget (whatever its distance: an unfinished run is no limit),
    or the bound was too loose to tell (UNDECIDED).
    """
    if not run.converged:
        return NOT_DECIDED
    return {WITHIN: REACHES, OUTSIDE: ELSEWHERE}.get(run.verdict, NOT_DECIDED)


@contextmanager
def _one_thread(wanted: bool):
    """torch on one CPU thread while the block runs (when `wanted`), then as before.

    The closure's autograd on a (b, d) problem is too small to share: on two
    busy cores its thread hand-offs cost about 8 ms a step, against 1 ms on one.
    """
    threads = torch.get_num_threads()
    if wanted:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if wanted:
            torch.set_num_threads(threads)


def _leak(v: torch.Tensor, basis: torch.Tensor) -> float:
    """||P_perp v||: the part of v outside the row space."""
    return float((v - basis @ (basis.T @ v)).norm())


def _check_consistent(inconsistency, y, start, sigma_cut, kappa, allowed_residual, rank) -> None:
    """ValueError if no iterate in w0 + row space can reach ||X w - y|| <= allowed_residual.

    For w = w0 + v, v in the row space (span V_r), the part of X w - y
    outside the column space U_r is P(X w0) - P y (X v lies in span U_r),
    and ||P X w0|| <= sigma_cut ||w0||. So every such iterate has
    ||X w - y|| >= ||P y|| - sigma_cut ||w0||. ||P y|| is measured with the
    computed U_r, off by an angle of about gamma_{max(n,d)} kappa (as for the
    row space) plus the rounding of y - U U^T y (gamma_{2n}): that slack is
    subtracted before refusing, so rounding alone never refuses. For X = 0
    (rank 0) U_r is empty, exactly, and only the subtraction's rounding is left.
    """
    n = y.numel()
    if rank == n:
        return  # U_r spans R^n: every y is consistent
    angle = _gamma(max(n, start.numel())) * kappa if rank else 0.0
    slack = (_gamma(2 * n) + angle) * float(y.norm())
    floor = inconsistency - sigma_cut * float(start.norm()) - slack
    if floor > allowed_residual:
        raise ValueError(
            f"y is inconsistent with x: its part outside the column space of x (numerical rank {rank} < n = {n}) "
            f"has norm {inconsistency:.3g}, so ||X w - y|| stays >= {floor:.3g} > tolerance * ||X w0 - y|| = "
            f"{allowed_residual:.3g} for every w in w0 + row space and no w interpolates; "
            "give repeated rows equal targets (and combined rows the combined targets) or raise tolerance"
        )


def _distance_bound(residual_norm, leak, target_gap, sigma_min, sigma_max, min_norm, predicted, n, d) -> float:
    """Bound on ||w - predicted_limit|| for an iterate w in w0 + row space up to `leak`.

    Write w - predicted = e + l with l the leak (||l|| <= leak) and e in the
    row space (span of the r right singular vectors kept). X e = (X w - y) -
    X l + (y - X predicted), and ||X e|| >= sigma_r ||e|| for e in the row
    space (sigma_min = sigma_r, the smallest singular value kept: the
    smallest over all min(n, d) would be rounding noise for a rank-deficient
    X and make the bound vacuous). y - X predicted = (y - U_r U_r^T y) -
    U_cut S_cut V_cut^T w0 has norm <= target_gap = inconsistency +
    sigma_cut ||w0||. So ||e|| <= (||X w - y|| + sigma_max leak + target_gap)
    / sigma_r. pinv(X) y itself is accurate to about gamma_{max(n,d)} kappa
    ||pinv(X) y||; the projection of w0 adds the same order on ||predicted||.
    The bound is at least `leak`, so it is informative only if leak is.
    inf for X = 0 (rank 0 leaves no sigma_r).
    """
    if sigma_min <= 0:
        return math.inf
    kappa = sigma_max / sigma_min
    solve = _gamma(max(n, d)) * kappa * (float(min_norm.norm()) + float(predicted.norm()))
    return (residual_norm + sigma_max * leak + target_gap) / sigma_min + leak + solve
