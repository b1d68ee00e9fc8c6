"""C8: finite-sample expressivity (Theorem 1 and its depth-k form).

Paper (section 4, Theorem 1): there is a two-layer ReLU network with 2n + d
weights that represents any function on any sample of n distinct points in
d dimensions; Appendix C: a depth-k network with O(n / k) parameters per
layer does too. The construction is exact in exact arithmetic; in float64
"represents" means: reproduces the targets within a rounding bound derived
from the network's own conditioning (harness.theory.expressivity.
residual_bound; the formula is restated next to each test that uses it).

Scale: d = 3072 (CIFAR-10's input size), n = 10,000 Gaussian points on a
CPU; the fuzz tests draw n up to 300 and d up to 64. The benchmark
(python -m harness.theory.bench) runs n = 100,000.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.theory.expressivity import (
    DEFAULT_DIRECTIONS,
    construct_two_layer,
    fit_deep,
    max_abs_residual,
    residual_bound,
)

D = 3072  # CIFAR-10's 32 x 32 x 3
N = 10_000  # CPU scale; the paper's statement is for any n


@pytest.fixture(scope="module")
def gaussian_sample():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=generator, dtype=torch.float64).numpy()
    y = torch.randn(N, generator=generator, dtype=torch.float64).numpy()
    return x, y


@pytest.fixture(scope="module")
def built(gaussian_sample):
    return construct_two_layer(*gaussian_sample)


# Tolerance (derivation in residual_bound's docstring), eps = 2^-52,
# gamma_m = m eps / (1 - m eps), W = ||w||_1, span = max z - b_1,
# delta = measured |z(forward) - z(construction)|:
#   plain forward:        gamma_{n+4} W span + W delta
#   deep forward:         gamma_{n+8} W span + W delta
#   compensated forward:  3 eps max_i |w_i (z_i - b_i)| + 2 eps max|y| + 4 gamma_{2n}^2 W span + W delta
# It is eps times the size of w times the range of z, as the conditioning of
# the triangular system dictates; no constant in it was fitted to a result.


def test_c8_two_layer_network_fits_any_targets(gaussian_sample, built, claim_figure):
    """C8: Theorem 1's network, 2n + d parameters, fits arbitrary real targets.

    Paper: 2n + d weights represent any function on n points in d dimensions.
    Threshold: parameter count exactly 2n + d; worst residual over all n
    points within the derived rounding bound of the plain forward pass (and
    of the compensated one); for +-1 labels any residual below 1 would
    already give 100% training accuracy. Scale: n = 10,000, d = 3072,
    Gaussian points and targets, float64.
    """
    x, y = gaussian_sample
    net = built.network
    assert net.parameter_count == 2 * N + D
    residual = max_abs_residual(net, x, y)
    bound = residual_bound(built, x, y, "plain")
    claim_figure("C8", f"parameters, n={N}, d={D}", net.parameter_count, f"== 2n + d = {2 * N + D}", True)
    claim_figure("C8", "worst residual, plain forward", residual, f"<= {bound:.2e} (rounding bound)", residual <= bound)
    assert residual <= bound
    compensated = max_abs_residual(net, x, y, compensated=True)
    compensated_bound = residual_bound(built, x, y, "compensated")
    claim_figure(
        "C8", "worst residual, compensated forward", compensated, f"<= {compensated_bound:.2e}",
        compensated <= compensated_bound,
    )
    assert compensated <= compensated_bound


@pytest.mark.parametrize("depth", [3, 10, 101])
def test_c8_depth_k_network_has_o_n_over_k_parameters_per_layer(gaussian_sample, depth, claim_figure):
    """C8 (Appendix C): a depth-k network with O(n / k) parameters per layer fits too.

    Threshold: k - 1 hidden layers; every layer after the first has at most
    2 ceil(n / (k - 1)) free parameters (a block of thresholds and the
    previous block's output weights), the first at most d + 1 + ceil(n / (k - 1)),
    the total is 2n + d + 1; the worst residual is within the derived deep
    rounding bound. Scale: n = 10,000, d = 3072, k = 3, 10, 101.
    """
    x, y = gaussian_sample
    deep = fit_deep(x, y, depth)
    per_block = math.ceil(N / (depth - 1))
    counts = deep.layer_parameter_counts()
    assert deep.depth == depth and len(counts) == depth
    assert deep.parameter_count == 2 * N + D + 1
    assert counts[0] <= D + 1 + per_block and max(counts[1:]) <= 2 * per_block
    residual = max_abs_residual(deep, x, y)
    bound = residual_bound(construct_two_layer(x, y), x, y, "deep")
    claim_figure(
        "C8", f"depth {depth}: max parameters per layer after the first", max(counts[1:]),
        f"<= 2 ceil(n/(k-1)) = {2 * per_block}", True,
    )
    claim_figure("C8", f"depth {depth}: worst residual", residual, f"<= {bound:.2e}", residual <= bound)
    assert residual <= bound


def test_c8_numerics_thresholds_just_above_the_previous_point(gaussian_sample, built, claim_figure):
    """Why the construction places b_j just above z_{j-1} (not a claim of the paper).

    The theorem allows any b_j in (z_{j-1}, z_j). In float64: b_j just below
    its own z_j multiplies the slope recurrence by about 1 / fraction at each
    step, so w overflows within a few hundred points; midpoints give
    |factor| = 1, so slopes alternate and ||w||_1, hence the rounding error,
    grows. Threshold: below_own raises OverflowError at n = 300; midpoint's
    ||w||_1 and worst residual are both larger than above_previous's on the
    same points and direction. Scale: n = 10,000 (300 for below_own), d = 3072.
    """
    x, y = gaussian_sample
    with pytest.raises(OverflowError):
        construct_two_layer(x[:300], y[:300], placement="below_own")
    midpoint = construct_two_layer(x, y, placement="midpoint")
    above_w = float(built.network.out_weights.detach().abs().sum())
    mid_w = float(midpoint.network.out_weights.detach().abs().sum())
    above_r, mid_r = max_abs_residual(built.network, x, y), max_abs_residual(midpoint.network, x, y)
    claim_figure("C8", "||w||_1 above_previous vs midpoint", f"{above_w:.2e} vs {mid_w:.2e}", "above < midpoint",
                 above_w < mid_w)
    claim_figure("C8", "worst residual above_previous vs midpoint", f"{above_r:.2e} vs {mid_r:.2e}",
                 "above < midpoint", above_r < mid_r)
    assert above_w < mid_w and above_r < mid_r


def test_c8_numerics_near_duplicate_points(claim_figure):
    """Near-duplicates: the hard case for the construction (not a claim of the paper).

    Ten of 1,000 Gaussian points in d = 3072 are copies of others moved by
    1e-13 per coordinate, so neighbouring z differ by about 1e-13 and w is
    about 1e13. Threshold: with the defaults (best of 8 directions by
    minimum gap, compensated evaluation) the worst residual is within the
    derived compensated bound; best-of-8 with compensated evaluation is no
    worse than a single direction with the plain sum; the midpoint
    placement is worse than above_previous on the same direction.
    """
    rng = np.random.default_rng(1)
    base = rng.standard_normal((990, D))
    copies = base[rng.choice(990, 10, replace=False)] + 1e-13 * rng.standard_normal((10, D))
    x = np.concatenate([base, copies])
    y = rng.standard_normal(1000)
    single = construct_two_layer(x, y, n_directions=1)
    best = construct_two_layer(x, y, n_directions=DEFAULT_DIRECTIONS)
    single_plain = max_abs_residual(single.network, x, y)
    best_plain = max_abs_residual(best.network, x, y)
    best_compensated = max_abs_residual(best.network, x, y, compensated=True)
    bound = residual_bound(best, x, y, "compensated")
    midpoint = construct_two_layer(x, y, placement="midpoint")
    midpoint_plain = max_abs_residual(midpoint.network, x, y)
    claim_figure("C8", "near-duplicates: 1 direction, plain sum", single_plain, "reported", True)
    claim_figure("C8", "near-duplicates: best of 8, plain sum", best_plain, "reported", True)
    claim_figure("C8", "near-duplicates: midpoints, best of 8, plain sum", midpoint_plain,
                 f"> above_previous {best_plain:.2e}", midpoint_plain > best_plain)
    claim_figure("C8", "near-duplicates: best of 8, compensated", best_compensated, f"<= {bound:.2e}",
                 best_compensated <= bound)
    assert best_compensated <= bound
    assert best_compensated <= single_plain
    assert midpoint_plain > best_plain


# --------------------------------------------------------------------------- fuzzing


@st.composite
def point_sets(draw):
    """Points with the structures that break naive constructions.

    Bulk values come from a seeded numpy generator (hypothesis shrinks the
    seed and the structure, not thousands of floats); hypothesis picks n, d,
    the overall scale (1e-50 .. 1e50), per-coordinate scales (up to 1e6
    apart), collinear and lattice sets, near-duplicates (moved by 1e-10 ..
    1e-4 of the data's scale) and exact repeats (given equal targets), and
    the targets' kind and scale (1e-20 .. 1e20).
    """
    n = draw(st.integers(1, 300))
    d = draw(st.integers(1, 64))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = draw(st.sampled_from(["gaussian", "collinear", "lattice"]))
    if shape == "gaussian":
        x = rng.standard_normal((n, d))
    elif shape == "collinear":
        x = rng.standard_normal(d) + np.linspace(-1, 1, n)[:, None] * rng.standard_normal(d)
    else:  # integer grid points: many exactly equal coordinates
        x = rng.integers(-3, 4, size=(n, d)).astype(np.float64)
    if draw(st.booleans()):
        x = x * 10.0 ** rng.uniform(-3, 3, size=d)
    x = x * 10.0 ** draw(st.integers(-50, 50))
    near = draw(st.integers(0, n // 2))
    if near:  # copies of other points, moved by gap times the data's scale
        gap = 10.0 ** draw(st.integers(-10, -4))
        sources, rows = rng.integers(0, n, near), rng.integers(0, n, near)
        x[rows] = x[sources] + gap * np.abs(x).max() * rng.standard_normal((near, d))
    kind = draw(st.sampled_from(["gaussian", "signs", "constant", "zeros", "heavy", "integers"]))
    y = {
        "gaussian": lambda: rng.standard_normal(n),
        "signs": lambda: rng.choice([-1.0, 1.0], n),
        "constant": lambda: np.full(n, rng.standard_normal()),
        "zeros": lambda: np.zeros(n),
        "heavy": lambda: rng.standard_cauchy(n),
        "integers": lambda: rng.integers(-1000, 1000, n).astype(np.float64),
    }[kind]() * 10.0 ** draw(st.integers(-20, 20))
    repeats = draw(st.integers(0, n // 3))
    if repeats:  # exact repeats: must be merged, not refused
        sources, rows = rng.integers(0, n, repeats), rng.integers(0, n, repeats)
        x[rows] = x[sources]
    first_target = {}
    for i, row in enumerate(x + 0.0):  # every repeat (made here or by the lattice) keeps one target
        y[i] = first_target.setdefault(row.tobytes(), y[i])
    return x, y


def _distinct_rows(x):
    return len({row.tobytes() for row in (x + 0.0)})


@settings(deadline=None)
@given(point_sets(), st.integers(2, 12))
def test_c8_fuzz_any_points_any_targets(sample, depth):
    """C8 fuzzed: for any points (near-duplicates, huge and tiny scales,
    collinear and lattice sets, exact repeats) and any targets, the two-layer
    network has 2 n_unique + d parameters and fits within the plain rounding
    bound gamma_{n+4} W span + W delta; a depth-k network (k up to 12) has
    2 n_unique + d + 1 parameters and fits within gamma_{n+8} W span + W delta.

    Sets whose distinct points no float64 projection separates are refused
    with ValueError; the strategy's smallest relative gap (1e-10) keeps that
    from happening, so here a refusal is a failure.
    """
    x, y = sample
    n, d = x.shape
    built = construct_two_layer(x, y)
    unique = _distinct_rows(x)
    assert built.network.parameter_count == 2 * unique + d
    residual = max_abs_residual(built.network, x, y)
    assert residual <= residual_bound(built, x, y, "plain")
    deep = fit_deep(x, y, min(depth, unique + 1))
    assert deep.parameter_count == 2 * unique + d + 1
    assert max_abs_residual(deep, x, y) <= residual_bound(built, x, y, "deep")
