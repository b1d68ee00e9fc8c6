"""C9: SGD on a linear model stays in the span of the data and reaches the minimum-norm solution.

Paper (section 5): for least squares with a linear model, SGD started at zero
keeps w = X^T alpha at every step, so when it interpolates it reaches the
unique interpolant in the row space, w = X^T (X X^T)^-1 y = pinv(X) y, the
solution of minimum l2 norm. From a non-zero start w0 the same argument
gives pinv(X) y + P_perp w0.

Scale: synthetic, clearly described: X (50 x 200) and y with independent
standard Gaussian entries (condition number of X about 3), batches of 10
rows, float64; the fuzz test varies the shape (n <= 10 < d <= 40), the
condition number (1 to 4), the scale, the batch size and the start. A
second fuzz test draws degenerate X: repeated rows, rows combining others
(rank-deficient, consistent targets), clustered and near-duplicate rows.

For every optimizer under test (--optimizer) the paper's SGD claim is
asked again, of that optimizer, on the same problem from zero: built and
stepped as the training loop builds and steps it (its spec resolved with
the loop's Hyper, the loop's closure step, train()/eval() modes), at the
learning rate --tune-lr chose for it, else C9's rule (1 - momentum) / L.
Its outcome is one of three: reaches pinv(X) y (holds), converges
elsewhere (FAILS, with its distance and row-space leak: the expected
answer for an adaptive method), or undecided (no convergence within the
step budget, or a loose bound: skipped as "undecided", never holds). The
other tests run once, with plain SGD and their own optimizers.

Every distance check is read through `LinearRun.verdict`: "within bound"
only when the bound is informative, i.e. below DECISION_FRACTION (half of
the 1% that counts as "elsewhere") of ||predicted limit|| (derivation in
harness.theory.min_norm); a looser bound is "undecided" and never passes.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.optim import spec_id
from harness.sessions.files import REFERENCE_OPTIMIZER
from harness.suite.session import SESSION
from harness.theory.min_norm import (
    DECISION_FRACTION,
    ELSEWHERE,
    MIN_RELATIVE_DEPARTURE,
    OUTSIDE,
    REACHES,
    UNDECIDED,
    WITHIN,
    limit_verdict,
    numerical_rank,
    optimizer_outcome,
    row_space_basis,
    spec_learning_rate,
    train_least_squares,
    train_optimizer_spec,
)

N, D, BATCH = 50, 200, 10
TOLERANCE = 1e-10  # stop when ||X w - y|| <= 1e-10 ||X w0 - y||


def gaussian_problem(seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=generator, dtype=torch.float64)
    y = torch.randn(N, generator=generator, dtype=torch.float64)
    return x, y


def test_c9_sgd_from_zero_reaches_the_minimum_norm_solution(claim_figure):
    """C9: plain SGD from zero reaches pinv(X) y and never leaves the row space.

    Thresholds (all derived, none fitted):
    - every iterate's component outside the row space is at most the
      float64 rounding budget of span-preserving steps (accumulated step by
      step from gamma_b |X_B|^T |r_B| and eps per update, plus the SVD's
      subspace error, eps max(n, d) kappa ||w||);
    - ||w - pinv(X) y|| <= (||X w - y|| + sigma_max leak) / sigma_r + leak
      (+ pinv's own rounding): an interpolant in the row space is unique;
    - that bound is informative: below DECISION_FRACTION ||pinv(X) y||, so
      the check can tell this limit from one 1% away (verdict "within bound").
    Scale: X 50 x 200 Gaussian, batches of 10, tolerance 1e-10, float64.
    """
    x, y = gaussian_problem()
    run = train_least_squares(x, y, batch_size=BATCH, tolerance=TOLERANCE)
    assert run.converged, f"no interpolation after {run.steps} steps: relative residual {run.relative_residual:.2e}"
    scale = float(run.min_norm.norm())
    claim_figure(
        "C9",
        "SGD: max row-space leak over all steps",
        run.max_row_space_leak,
        f"<= rounding budget {run.leak_budget:.2e}",
        run.max_row_space_leak <= run.leak_budget,
        check="deferred",  # the three figures are recorded, then checked together
    )
    claim_figure(
        "C9",
        "SGD: ||w - pinv(X) y||",
        run.distance_to_min_norm,
        f"<= {run.distance_bound:.2e}",
        run.distance_to_min_norm <= run.distance_bound,
        steps=run.steps,
        check="deferred",
    )
    claim_figure(
        "C9",
        "SGD: distance bound / ||pinv(X) y||",
        run.distance_bound / scale,
        f"< {DECISION_FRACTION} (bound decides)",
        run.bound_is_informative,
    )
    assert run.verdict == WITHIN


def test_c9_sgd_from_a_non_zero_start_keeps_its_orthogonal_part(claim_figure):
    """C9, non-zero start: the limit is pinv(X) y + P_perp w0, not the minimum-norm solution.

    Thresholds: iterates stay in w0 + row space within the rounding budget;
    ||w - (pinv(X) y + P_perp w0)|| within the same derived bound as above;
    and the distance to pinv(X) y equals ||P_perp w0|| (to that bound),
    far from zero: where SGD starts matters. Scale as above, w0 Gaussian.
    """
    x, y = gaussian_problem()
    w0 = torch.randn(D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    run = train_least_squares(x, y, w0=w0, batch_size=BATCH, tolerance=TOLERANCE)
    assert run.converged, f"no interpolation after {run.steps} steps: relative residual {run.relative_residual:.2e}"
    orthogonal_part = float((run.predicted_limit - run.min_norm).norm())
    claim_figure(
        "C9",
        "SGD from w0: ||w - (pinv(X) y + P_perp w0)||",
        run.distance_to_predicted,
        f"<= {run.distance_bound:.2e}",
        run.distance_to_predicted <= run.distance_bound,
        check="deferred",
    )
    claim_figure(
        "C9",
        "SGD from w0: ||w - pinv(X) y||",
        run.distance_to_min_norm,
        f"= ||P_perp w0|| = {orthogonal_part:.4g}",
        abs(run.distance_to_min_norm - orthogonal_part) <= run.distance_bound,
    )
    assert run.max_row_space_leak <= run.leak_budget
    assert run.verdict == WITHIN  # the bound is informative at ||pinv(X) y + P_perp w0||


# Step budget of an optimizer under test, declared, not a threshold: the
# Adam contrast's 50,000 steps (below), 80 times the 625 plain SGD needs
# here. A run that has not interpolated by then is "undecided", never "holds".
OPTIMIZER_STEP_BUDGET = 50_000


def asked_of(spec: str) -> str:
    """'' for the paper's SGD (its own claim); else "the paper's SGD claim asked of <optimizer>: "."""
    return "" if spec == REFERENCE_OPTIMIZER else f"the paper's SGD claim asked of {spec_id(spec)}: "


def test_c9_each_optimizer_from_zero_asked_for_the_minimum_norm_solution(request, optimizer_spec, claim_figure):
    """C9 asked of the optimizer under test: from zero, does it end at pinv(X) y?

    For paper_sgd this is the paper's claim (momentum keeps every step a
    combination of the rows); for any other optimizer it is the paper's SGD
    claim asked of it, and "converges elsewhere" is an answer, not a bug
    (Adam's is known: Wilson et al., 2017). Outcomes (`optimizer_outcome`):
    - reaches: interpolated (relative residual <= 1e-10 within
      OPTIMIZER_STEP_BUDGET steps) and ||w - pinv(X) y|| within the derived
      bound, which is below DECISION_FRACTION ||pinv(X) y||: holds;
    - elsewhere: interpolated, and the distance exceeds that bound: FAILS,
      with the distance and the row-space leak of the final weights;
    - undecided: not interpolated within the budget (or a bound too loose
      to tell): skipped as "undecided", with the residual; never holds.
    Learning rate: the one --tune-lr chose for the optimizer, else
    (1 - momentum) / L (`spec_learning_rate`; paper_sgd 0.1 / L, Adam 1 / L).
    Scale as above: X 50 x 200 Gaussian, batches of 10, float64, from zero.
    """
    x, y = gaussian_problem()
    tuned = request.config.stash[SESSION].tuned_lr.get(optimizer_spec)
    lr = tuned if tuned is not None else spec_learning_rate(optimizer_spec, x, BATCH)
    run = train_optimizer_spec(
        x, y, optimizer_spec, lr, batch_size=BATCH, tolerance=TOLERANCE, max_steps=OPTIMIZER_STEP_BUDGET
    )
    outcome = optimizer_outcome(run)
    scale = float(run.min_norm.norm())
    asked = asked_of(optimizer_spec)
    how = f"lr {lr:.3g}{' (tuned)' if tuned is not None else ''}, {run.steps} steps"
    claim_figure(
        "C9",
        "each optimizer from zero: relative residual ||X w - y|| / ||y||",
        run.relative_residual,
        f"{asked}<= {TOLERANCE} within {OPTIMIZER_STEP_BUDGET} steps ({how})",
        run.converged,
        check=False,  # the outcome below says what a run that did not converge means: undecided
    )
    leak = run.final_row_space_leak / scale
    if outcome != REACHES and outcome != ELSEWHERE:
        pytest.skip(
            f"undecided: {asked}relative residual {run.relative_residual:.2e} after "
            f"{run.steps} steps (tolerance {TOLERANCE}), bound / ||pinv(X) y|| {run.distance_bound / scale:.1e}; "
            f"distance to pinv(X) y {run.distance_to_min_norm / scale:.3g}, row-space leak {leak:.3g} of its norm"
        )
    claim_figure(
        "C9",
        "each optimizer from zero: ||w - pinv(X) y|| / ||pinv(X) y||",
        run.distance_to_min_norm / scale,
        f"{asked}<= bound {run.distance_bound / scale:.1e} ({outcome}; row-space leak {leak:.3g})",
        outcome == REACHES,
        steps=run.steps,
        lr=lr,
        row_space_leak=leak,
    )


# Declared reading of "clearly not the minimum-norm solution", fixed before
# measuring: at least MIN_RELATIVE_DEPARTURE (1%, harness.theory.min_norm) of
# ||pinv(X) y|| away, and at least a million times the rounding budget (so
# that it cannot be rounding). Why Adam lands elsewhere: it divides each
# coordinate's step by its own running gradient scale, so its steps are not
# combinations of the rows of X; its very first step is -lr sign(gradient),
# whose part outside the n-dimensional row space has norm about
# lr sqrt(d - n) for a generic problem, and nothing pulls that part back,
# since the loss does not see it.


def test_c9_adam_interpolates_elsewhere(claim_figure):
    """C9 contrast: Adam interpolates too, but not at the minimum-norm solution.

    The distance to pinv(X) y is at least the final iterate's component
    outside the row space (pinv(X) y has none), which is measured.
    Thresholds: Adam converges to the same tolerance (so the comparison is
    between limits, not unfinished runs), and that component is at least
    MIN_RELATIVE_DEPARTURE ||pinv(X) y|| and at least 1e6 times the rounding
    budget (declared above, with the reason). Scale as above, Adam lr 1e-3,
    from zero.
    """
    x, y = gaussian_problem()
    run = train_least_squares(
        x,
        y,
        optimizer_factory=lambda params: torch.optim.Adam(params, lr=1e-3),
        batch_size=BATCH,
        tolerance=TOLERANCE,
        max_steps=50_000,
    )
    assert run.converged, f"Adam did not interpolate in {run.steps} steps: residual {run.relative_residual:.2e}"
    scale = float(run.min_norm.norm())
    departure = run.final_row_space_leak / scale
    claim_figure(
        "C9",
        "Adam: ||w - pinv(X) y|| / ||pinv(X) y||",
        run.distance_to_min_norm / scale,
        f">= row-space leak {departure:.3f} >= {MIN_RELATIVE_DEPARTURE}",
        departure >= MIN_RELATIVE_DEPARTURE,
        steps=run.steps,
    )
    assert run.distance_to_min_norm >= run.final_row_space_leak * (1 - 1e-9)
    assert run.final_row_space_leak >= 1e6 * run.leak_budget
    assert run.verdict == OUTSIDE  # and the bound that says so is informative


@st.composite
def least_squares_problems(draw):
    """X = U diag(s) V^T with orthonormal U, V from a seeded generator; hypothesis
    picks n, d, the condition number kappa (1 to 4, singular values spaced
    geometrically), the scale (1e-3 to 1e3), the batch size and the start."""
    n = draw(st.integers(1, 10))
    d = n + draw(st.integers(1, 30))
    kappa = draw(st.floats(1.0, 4.0))
    scale = 10.0 ** draw(st.integers(-3, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    u = np.linalg.qr(rng.standard_normal((n, n)))[0]
    v = np.linalg.qr(rng.standard_normal((d, n)))[0]
    singular = scale * kappa ** -np.linspace(0, 1, n)
    x = (u * singular) @ v.T
    y = rng.standard_normal(n) * 10.0 ** draw(st.integers(-3, 3))
    w0 = rng.standard_normal(d) * scale**-1 if draw(st.booleans()) else None
    batch = draw(st.integers(1, n))
    return x, y, w0, batch, kappa


@settings(deadline=None)
@given(least_squares_problems())
def test_c9_fuzz_sgd_limit_is_min_norm_plus_start_orthogonal_part(problem):
    """C9 fuzzed over shapes, conditioning, scale, batch size and start.

    Thresholds: the same derived ones (leak within the rounding budget,
    distance to pinv(X) y + P_perp w0 within the derived bound). Step budget,
    derived: with lr = 1 / L each pass over the rows shrinks the slowest
    error mode by at least a factor (1 - 1/kappa^2), so ln(1/tol) kappa^2
    passes suffice for gradient descent; 4 times that, in steps of
    ceil(n / batch), leaves room for reshuffling.
    """
    x, y, w0, batch, kappa = problem
    n = x.shape[0]
    budget = 4 * math.ceil(kappa**2 * math.log(1 / TOLERANCE)) * math.ceil(n / batch) + 100
    run = train_least_squares(x, y, w0=w0, batch_size=batch, tolerance=TOLERANCE, max_steps=budget)
    assert run.converged, f"no interpolation in {run.steps} steps: relative residual {run.relative_residual:.2e}"
    assert run.max_row_space_leak <= run.leak_budget
    assert run.distance_to_predicted <= run.distance_bound
    assert run.verdict == WITHIN


# --------------------------------------------------------------------------- degenerate inputs


def null_space_direction(x, seed: int) -> torch.Tensor:
    """A unit vector (d,) orthogonal to the numerical row space of x (needs rank < d)."""
    basis = row_space_basis(torch.as_tensor(x, dtype=torch.float64))
    v = torch.randn(basis.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    v = v - basis @ (basis.T @ v)
    v = v - basis @ (basis.T @ v)  # a second pass removes the first's rounding along the basis
    return v / v.norm()


class KickedSGD(torch.optim.SGD):
    """Plain SGD with one planted wrong step: after its first update it adds `kick` to the weights.

    A kick outside the row space is what an optimizer that leaves the span
    of the data does once; a correct check must see it in the leak and in
    the distance to the predicted limit.
    """

    def __init__(self, params, lr: float, kick: torch.Tensor):
        super().__init__(params, lr=lr)
        self.kick, self.kicked = kick, False

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        if not self.kicked:
            self.param_groups[0]["params"][0].add_(self.kick)
            self.kicked = True
        return loss


def repeated_row_problem(seed=0):
    """20 x 60 standard Gaussian X whose last row repeats row 3, with consistent targets (y_19 = y_3): rank 19."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(20, 60, generator=generator, dtype=torch.float64)
    y = torch.randn(20, generator=generator, dtype=torch.float64)
    x[19], y[19] = x[3], y[3]
    return x, y


def test_c9_rank_deficient_repeated_row(claim_figure):
    """C9 on a rank-deficient X (a repeated row, consistent targets): the bound decides.

    The issue this reproduces: with the bound built on the smallest of all
    20 singular values (about 1e-15 here: the repeat makes X rank 19), Adam
    ended tens of percent from pinv(X) y and was reported within the bound.
    With sigma_r, the smallest singular value above the rank threshold (X
    restricted to its row space, the map that bounds ||e|| for e in it):
    SGD (full batch, lr 1/L) is "within bound" and Adam (lr 1e-3) "outside",
    both with an informative bound (< DECISION_FRACTION ||pinv(X) y||).
    Planted wrong answers, both 1% of ||pinv(X) y|| along the null space:
    SGD's final weights moved there, and SGD kicked there after its first
    step; both must come out "outside", the kick also as a leak above the
    rounding budget. Scale: X 20 x 60, tolerance 1e-10, float64.
    """
    x, y = repeated_row_problem()
    smallest = float(torch.linalg.svdvals(x)[-1])
    sgd = train_least_squares(x, y, tolerance=TOLERANCE)
    adam = train_least_squares(
        x,
        y,
        optimizer_factory=lambda params: torch.optim.Adam(params, lr=1e-3),
        tolerance=TOLERANCE,
        max_steps=50_000,
    )
    assert sgd.converged and adam.converged, (sgd.relative_residual, adam.relative_residual)
    scale = float(sgd.min_norm.norm())
    claim_figure(
        "C9",
        "repeated row: rank, sigma_r vs smallest singular value",
        f"{sgd.rank}, {sgd.sigma_min:.3g} vs {smallest:.1e}",
        "rank 19; bound divides by sigma_r",
        sgd.rank == 19 and sgd.sigma_min > 1e6 * smallest,  # sigma_r is not rounding noise
        check="deferred",
    )
    claim_figure(
        "C9",
        "repeated row: SGD ||w - pinv(X) y||",
        sgd.distance_to_min_norm,
        f"<= {sgd.distance_bound:.2e} < {DECISION_FRACTION} ||pinv(X) y|| ({sgd.verdict})",
        sgd.verdict == WITHIN,
        steps=sgd.steps,
        check="deferred",
    )
    claim_figure(
        "C9",
        "repeated row: Adam ||w - pinv(X) y|| / ||pinv(X) y||",
        adam.distance_to_min_norm / scale,
        f"> bound {adam.distance_bound / scale:.1e} ({adam.verdict})",
        adam.verdict == OUTSIDE,
        steps=adam.steps,
    )
    assert sgd.max_row_space_leak <= sgd.leak_budget

    kick = MIN_RELATIVE_DEPARTURE * scale * null_space_direction(x, seed=2)
    moved = limit_verdict(float((sgd.weights + kick - sgd.predicted_limit).norm()), sgd.distance_bound, scale)
    lr = 1.0 / float(torch.linalg.matrix_norm(x, ord=2)) ** 2
    kicked = train_least_squares(x, y, optimizer_factory=lambda p: KickedSGD(p, lr, kick), tolerance=TOLERANCE)
    claim_figure(
        "C9",
        "planted: SGD weights moved 1% along the null space",
        moved,
        f"== {OUTSIDE}",
        moved == OUTSIDE,
        check="deferred",
    )
    claim_figure(
        "C9",
        "planted: SGD kicked 1% off the row space, leak",
        kicked.max_row_space_leak,
        f"> budget {kicked.leak_budget:.2e} ({kicked.verdict})",
        kicked.max_row_space_leak > kicked.leak_budget and kicked.verdict == OUTSIDE,
    )


DEGENERATE_STRUCTURES = ("repeated", "combination", "clustered", "near_duplicate")
# Time budget of the fuzz for clustered and near-duplicate rows, declared, not
# a threshold: their condition number (up to 1e12) would ask for up to 1e24
# passes. A run cut short keeps a large residual, hence (bound >= residual /
# sigma_r) a loose bound, and must then be reported "undecided", never "within".
FUZZ_STEP_CAP = 200


@st.composite
def degenerate_least_squares(draw):
    """Degenerate (x, y, structure): a well-conditioned base of `rank` rows (kappa 1 to 2, scale
    1e-3 to 1e3) plus extra rows that are
    - "repeated": copies of base rows, targets copied (rank-deficient, consistent);
    - "combination": unit-norm random combinations of base rows, targets combined the same way;
    - "near_duplicate": copies moved by 1e-12 .. 1e-4 of the base's scale, targets copied or fresh;
    - "clustered": all rows a common centre plus a spread of 1e-8 .. 1e-2 of it, targets fresh or X v.
    The first two may have n > d (consistent, overdetermined); the last two have n < d.
    """
    structure = draw(st.sampled_from(DEGENERATE_STRUCTURES))
    rank = draw(st.integers(1, 8))
    extra = draw(st.integers(1, 4))
    n = rank + extra
    d = (rank if structure in ("repeated", "combination") else n) + draw(st.integers(1, 30))
    kappa = draw(st.floats(1.0, 2.0))
    scale = 10.0 ** draw(st.integers(-3, 3))
    target_scale = 10.0 ** draw(st.integers(-3, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    u = np.linalg.qr(rng.standard_normal((rank, rank)))[0]
    v = np.linalg.qr(rng.standard_normal((d, rank)))[0]
    base = (u * (scale * kappa ** -np.linspace(0, 1, rank))) @ v.T
    base_y = rng.standard_normal(rank) * target_scale
    sources = rng.integers(0, rank, extra)
    if structure == "repeated":
        x, y = np.concatenate([base, base[sources]]), np.concatenate([base_y, base_y[sources]])
    elif structure == "combination":
        mix = rng.standard_normal((extra, rank))
        mix /= np.linalg.norm(mix, axis=1, keepdims=True)
        x, y = np.concatenate([base, mix @ base]), np.concatenate([base_y, mix @ base_y])
    elif structure == "near_duplicate":
        gap = 10.0 ** draw(st.integers(-12, -4))
        moved = base[sources] + gap * scale * rng.standard_normal((extra, d)) / math.sqrt(d)
        fresh = draw(st.booleans())
        x = np.concatenate([base, moved])
        y = np.concatenate([base_y, rng.standard_normal(extra) * target_scale if fresh else base_y[sources]])
    else:
        spread = 10.0 ** draw(st.integers(-8, -2))
        centre = scale * rng.standard_normal(d) / math.sqrt(d)
        x = centre + spread * scale * rng.standard_normal((n, d)) / math.sqrt(d)
        smooth = draw(st.booleans())
        y = x @ rng.standard_normal(d) * target_scale / scale if smooth else rng.standard_normal(n) * target_scale
    batch = draw(st.integers(1, n))
    return x, y, structure, batch


@settings(deadline=None)
@given(degenerate_least_squares())
def test_c9_fuzz_degenerate_rows_are_decided_or_undecided_never_vacuous(problem):
    """C9 fuzzed over degenerate X: rank-deficient (repeated rows, rows combining
    others, consistent targets), near-duplicate and clustered rows.

    Thresholds, all derived: the rank is the numerical rank; for the
    rank-deficient kinds SGD converges within the derived step budget
    (4 kappa_r^2 ln(1/tol) passes, kappa_r = sigma_1 / sigma_r, as in the
    fuzz above) and is "within bound" with an informative bound. For every
    kind SGD is never "outside" (the bound holds for any iterate of a
    span-preserving run) and is "within" only with an informative bound.
    Planted wrong answer on every input: SGD's final weights moved by
    MIN_RELATIVE_DEPARTURE ||predicted limit|| along the null space is never
    "within", and is "outside" whenever the honest run's bound decides.
    """
    x, y, structure, batch = problem
    n = x.shape[0]
    singular = torch.linalg.svdvals(torch.from_numpy(x))
    rank = numerical_rank(singular, x.shape)
    kappa_r = float(singular[0] / singular[rank - 1])
    budget = 4 * math.ceil(kappa_r**2 * math.log(1 / TOLERANCE)) * math.ceil(n / batch) + 100
    if structure in ("clustered", "near_duplicate"):
        budget = min(budget, FUZZ_STEP_CAP)
    run = train_least_squares(x, y, batch_size=batch, tolerance=TOLERANCE, max_steps=budget)
    assert run.rank == rank
    if structure in ("repeated", "combination"):
        assert rank < n
        assert run.converged, f"no interpolation in {run.steps} steps: relative residual {run.relative_residual:.2e}"
        assert run.verdict == WITHIN, (run.distance_to_predicted, run.distance_bound, run.decision_scale)
    assert run.verdict != OUTSIDE
    assert run.verdict != WITHIN or run.bound_is_informative
    kick = MIN_RELATIVE_DEPARTURE * run.decision_scale * null_space_direction(x, seed=1)
    planted = limit_verdict(
        float((run.weights + kick - run.predicted_limit).norm()), run.distance_bound, run.decision_scale
    )
    assert planted != WITHIN
    assert planted == (OUTSIDE if run.bound_is_informative else UNDECIDED)
