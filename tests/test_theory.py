"""Fast unit tests of harness.theory: bad input, parameter counts, small exact cases."""

import itertools
import math

import numpy as np
import pytest
import torch

from harness.theory import bench, expressivity, kernels, min_norm, rademacher
from harness.theory.expressivity import construct_two_layer, fit_deep, fit_two_layer, max_abs_residual


def gaussian_points(n, d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal(n)


# --------------------------------------------------------------------------- C8 construction


def test_two_layer_network_has_2n_plus_d_parameters_and_fits():
    x, y = gaussian_points(7, 5)
    net = fit_two_layer(x, y)
    assert isinstance(net, torch.nn.Module)
    assert net.parameter_count == 2 * 7 + 5 == sum(p.numel() for p in net.parameters())
    assert max_abs_residual(net, x, y) < 1e-12


def test_small_exact_case_on_a_line():
    """Three points on the real line; the fit is exact to rounding and the
    thresholds interleave the sorted projections as the theorem requires."""
    x = np.array([[0.0], [1.0], [2.0]])
    y = np.array([1.0, 3.0, 2.0])
    built = construct_two_layer(x, y)
    net = built.network
    z, b = built.z_sorted, net.biases.detach().numpy()
    assert b[0] < z[0]
    assert np.all(z[:-1] <= b[1:]) and np.all(b[1:] < z[1:])
    assert max_abs_residual(net, x, y) < 1e-14
    # a single point: one unit, w = y / (z - b)
    single = fit_two_layer(np.array([[2.0, -1.0]]), np.array([5.0]))
    assert single.parameter_count == 2 + 2
    assert abs(float(single(torch.tensor([2.0, -1.0], dtype=torch.float64)).detach()) - 5.0) < 1e-14


def test_weights_solve_the_lower_triangular_system():
    """w from the O(n) recurrence equals the dense triangular solve of A w = y."""
    x, y = gaussian_points(40, 3, seed=1)
    built = construct_two_layer(x, y)
    net = built.network
    z = torch.from_numpy(built.z_sorted)
    a_matrix = torch.relu(z[:, None] - net.biases.detach()[None, :])
    assert torch.equal(a_matrix, a_matrix.tril()) and bool((a_matrix.diagonal() > 0).all())
    y_sorted = torch.empty(40, dtype=torch.float64)
    y_sorted[torch.from_numpy(built.rank_of_point)] = torch.from_numpy(y)
    dense = torch.linalg.solve_triangular(a_matrix, y_sorted[:, None], upper=False)[:, 0]
    w = net.out_weights.detach()
    assert torch.allclose(w, dense, rtol=1e-6, atol=1e-9 * float(dense.abs().max()))


def test_forward_is_differentiable_and_checks_its_input():
    x, y = gaussian_points(10, 4)
    net = fit_two_layer(x, y)
    out = net(torch.from_numpy(x))
    out.sum().backward()
    assert net.out_weights.grad is not None and net.direction.grad is not None
    with pytest.raises(ValueError, match=r"shape \(m, 4\)"):
        net(torch.zeros(3, 5, dtype=torch.float64))


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.zeros((0, 3)), np.zeros(0), "no points"),
        (np.zeros((3, 0)), np.zeros(3), "no features"),
        (np.zeros(3), np.zeros(3), "2-D"),
        (np.eye(3), np.zeros(2), r"shape \(n,\) = \(3,\)"),
        (np.eye(3), np.zeros((3, 1)), r"shape \(n,\)"),
        (np.array([[0.0], [np.nan]]), np.zeros(2), "x contains NaN or infinite values .first at row 1"),
        (np.eye(2), np.array([0.0, np.inf]), "y contains NaN or infinite"),
        (np.array([["a"], ["b"]]), np.zeros(2), "numeric"),
    ],
)
def test_bad_input_is_refused_with_a_one_line_message(x, y, message):
    with pytest.raises(ValueError, match=message) as error:
        fit_two_layer(x, y)
    assert "\n" not in str(error.value)


def test_identical_points_with_different_targets_are_named():
    x, y = gaussian_points(6, 3)
    x[4] = x[1]
    y[4] = y[1] + 1.0
    with pytest.raises(ValueError, match=r"points 1, 4 have targets") as error:
        fit_two_layer(x, y)
    assert "\n" not in str(error.value)


def test_identical_points_with_equal_targets_are_merged():
    x, y = gaussian_points(6, 3)
    x[4], y[4] = x[1], y[1]
    x[5] = -0.0 * x[5]  # -0.0 and 0.0 are the same point
    x[2] = 0.0 * x[2]
    y[5] = y[2]
    built = construct_two_layer(x, y)
    assert sorted(map(sorted, built.merged_groups)) == [[1, 4], [2, 5]]
    assert built.network.parameter_count == 2 * 4 + 3
    assert max_abs_residual(built.network, x, y) < 1e-12


def test_points_too_close_to_separate_are_refused():
    # the huge second coordinate swamps the first in every projection
    x = np.array([[0.0, 1e20], [1.0, 1e20]])
    with pytest.raises(ValueError, match="points 0 and 1 are distinct but too close"):
        fit_two_layer(x, np.array([0.0, 1.0]))


def test_bad_options_are_refused():
    x, y = gaussian_points(5, 2)
    with pytest.raises(ValueError, match="placement must be one of"):
        fit_two_layer(x, y, placement="anywhere")
    with pytest.raises(ValueError, match="fraction must lie in"):
        fit_two_layer(x, y, bias_fraction=0.7)
    with pytest.raises(ValueError, match="n_directions"):
        fit_two_layer(x, y, n_directions=0)


def test_thresholds_just_below_their_own_point_overflow():
    x, y = gaussian_points(300, 4)
    with pytest.raises(OverflowError, match="use 'above_previous'"):
        fit_two_layer(x, y, placement="below_own")


@pytest.mark.parametrize("depth", [2, 3, 5, 21])
def test_deep_network_counts_and_equals_the_shallow_one(depth):
    n, d = 20, 6
    x, y = gaussian_points(n, d)
    shallow = fit_two_layer(x, y)
    deep = fit_deep(x, y, depth)
    assert deep.depth == depth
    assert deep.parameter_count == 2 * n + d + 1 == sum(deep.layer_parameter_counts())
    per_block = math.ceil(n / (depth - 1))
    counts = deep.layer_parameter_counts()
    assert counts[0] <= d + 1 + per_block
    assert all(c <= 2 * per_block for c in counts[1:])
    assert all(w <= per_block + 3 for w in deep.layer_widths())
    # the same function everywhere, data points and elsewhere (both are zero below b_1)
    probe = torch.from_numpy(np.concatenate([x, 3 * np.random.default_rng(5).standard_normal((50, d))]))
    with torch.no_grad():
        assert torch.allclose(deep(probe), shallow(probe), rtol=1e-9, atol=1e-9)
    assert max_abs_residual(deep, x, y) < 1e-10


def test_residual_bound_refuses_an_unknown_kind():
    x, y = gaussian_points(3, 2)
    with pytest.raises(ValueError, match="kind must be"):
        expressivity.residual_bound(construct_two_layer(x, y), x, y, "exact")


def test_deep_network_refuses_bad_depths():
    x, y = gaussian_points(4, 2)
    with pytest.raises(ValueError, match="depth must be an integer >= 2"):
        fit_deep(x, y, 1)
    with pytest.raises(ValueError, match="only 4 distinct points"):
        fit_deep(x, y, 6)


def test_compensated_evaluation_is_at_least_as_accurate():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((100, 8))
    x = np.concatenate([base, base[:5] + 1e-12 * rng.standard_normal((5, 8))])
    y = rng.standard_normal(105)
    built = construct_two_layer(x, y)
    net = built.network
    plain, compensated = max_abs_residual(net, x, y), max_abs_residual(net, x, y, compensated=True)
    assert compensated <= plain <= expressivity.residual_bound(built, x, y, "plain")
    assert compensated <= expressivity.residual_bound(built, x, y, "compensated")
    assert expressivity.residual_bound(built, x, y, "compensated") < expressivity.residual_bound(built, x, y)


def near_duplicate_signs(n=40, d=3, seed=0):
    """n points in d dimensions, half of them copies of the others moved by 1e-12, with +-1 labels."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n // 2, d))
    copies = base[rng.integers(0, n // 2, n - n // 2)] + 1e-12 * rng.standard_normal((n - n // 2, d))
    return np.concatenate([base, copies]), rng.choice([-1.0, 1.0], n)


def test_decision_margin_constant_fit_residual_and_nearest_target():
    assert expressivity.decision_margin([1.0, -1.0, 1.0]) == 1.0
    assert expressivity.decision_margin([0.0, 0.5, 2.0, 0.5]) == 0.25
    assert expressivity.decision_margin([3.0, 3.0]) == math.inf == expressivity.decision_margin([5.0])
    assert expressivity.constant_fit_residual([0.0, 0.5, 2.0]) == 1.0
    assert expressivity.constant_fit_residual([3.0, 3.0]) == 0.0
    assert np.array_equal(expressivity.nearest_target([-0.2, 0.9, 5.0, 1.5], [0.0, 1.0, 2.0]), [0.0, 1.0, 2.0, 1.0])
    assert np.array_equal(expressivity.nearest_target([-7.0, 9.0], [4.0]), [4.0, 4.0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        expressivity.decision_margin([0.0, np.nan])


def test_check_fit_decides_with_the_plain_forward_when_its_bound_is_below_the_margin():
    x, y = gaussian_points(7, 5)
    built = construct_two_layer(x, y)
    fit = expressivity.check_fit(built, x, y)
    assert fit.evaluation == "plain" and fit.holds and fit.bound < fit.margin and fit.identified_share == 1.0
    assert math.isnan(fit.compensated_bound)


def test_check_fit_switches_to_the_compensated_forward_on_near_duplicates():
    x, y = near_duplicate_signs()
    built = construct_two_layer(x, y)
    fit = expressivity.check_fit(built, x, y)
    assert fit.forward_bound >= 1.0 > fit.compensated_bound  # plain bound past the labels' margin
    assert fit.evaluation == "compensated" and fit.holds and fit.identified_share == 1.0
    assert "compensated forward decides" in fit.reason


def test_check_fit_refuses_when_no_bound_is_below_the_margin():
    x, y = near_duplicate_signs()
    built = construct_two_layer(x, y)
    refused = expressivity.check_fit(built, x, y, margin=1e-300)
    assert refused.evaluation is None and not refused.decided and not refused.holds
    assert refused.reason.startswith("refused")
    assert refused.bound == min(refused.forward_bound, refused.compensated_bound)
    deep = fit_deep(x, y, 3)
    deep_refused = expressivity.check_fit(built, x, y, network=deep)  # no compensated deep forward to fall back on
    assert deep_refused.evaluation is None and math.isnan(deep_refused.compensated_bound)
    assert expressivity.check_fit(built, x, y, network=deep, margin=math.inf).evaluation == "deep"


def test_check_fit_refuses_bad_arguments():
    x, y = gaussian_points(5, 2)
    built = construct_two_layer(x, y)
    with pytest.raises(TypeError, match="DeepInterpolant"):
        expressivity.check_fit(built, x, y, network=fit_two_layer(x, y))
    with pytest.raises(ValueError, match="margin must be a number"):
        expressivity.check_fit(built, x, y, margin=math.nan)
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        expressivity.check_fit(built, x, y[:3])


def test_check_fit_catches_wrong_targets():
    x, y = gaussian_points(20, 3)
    built = construct_two_layer(x, y)
    planted = y.copy()
    planted[[2, 7]] = planted[[7, 2]]  # same values, two of them in the wrong place
    assert expressivity.check_fit(built, x, y).holds
    assert not expressivity.check_fit(built, x, planted).holds


# --------------------------------------------------------------------------- C9 min-norm


def test_sgd_on_one_equation_finds_the_exact_min_norm_solution():
    run = min_norm.train_least_squares(np.array([[1.0, 1.0]]), np.array([2.0]), tolerance=1e-14)
    assert run.converged
    assert torch.allclose(run.weights, torch.tensor([1.0, 1.0], dtype=torch.float64), atol=1e-13)
    assert run.distance_to_min_norm <= run.distance_bound


def test_momentum_sgd_also_stays_in_the_row_space():
    """Heavy-ball steps are combinations of past gradients, so the span argument holds too."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 12)), rng.standard_normal(5)
    lr = min_norm.default_learning_rate(torch.from_numpy(x), 5)
    run = min_norm.train_least_squares(
        x, y, optimizer_factory=lambda p: torch.optim.SGD(p, lr=0.5 * lr, momentum=0.5), max_steps=5000
    )
    assert run.converged and run.max_row_space_leak <= run.leak_budget
    assert run.distance_to_min_norm <= run.distance_bound


def test_min_norm_solution_and_row_space_basis():
    x = torch.tensor([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=torch.float64)  # rank 1
    assert min_norm.row_space_basis(x).shape == (3, 1)
    w = min_norm.min_norm_solution(x, [1.0, 2.0])
    assert torch.allclose(w, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))


def test_default_learning_rate_is_safe_for_every_batch():
    x = torch.randn(6, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lr = min_norm.default_learning_rate(x, 2)
    for pair in itertools.combinations(range(6), 2):  # lr * ||X_B||^2 <= 1 for every batch
        assert lr * float(torch.linalg.matrix_norm(x[list(pair)], ord=2)) ** 2 <= 1 + 1e-12


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"x": np.zeros(3), "y": np.zeros(3)}, ValueError, "2-D"),
        ({"x": np.eye(2), "y": np.zeros(3)}, ValueError, r"shape \(n,\) = \(2,\)"),
        ({"x": np.eye(2), "y": np.array([0.0, np.nan])}, ValueError, "finite"),
        ({"x": np.eye(2), "y": np.zeros(2), "batch_size": 3}, ValueError, "batch_size"),
        ({"x": np.eye(2), "y": np.zeros(2), "w0": np.zeros(3)}, ValueError, "w0"),
        ({"x": np.eye(2), "y": np.zeros(2), "optimizer_factory": lambda p: None}, TypeError, "not a torch.optim"),
    ],
)
def test_least_squares_refuses_bad_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        min_norm.train_least_squares(**kwargs)


def test_numerical_rank_and_the_rank_deficient_min_norm_solution():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 9))
    x[4] = x[1]  # a repeated row
    x[3] = 0.5 * x[0] - 2.0 * x[2]  # a combination of two others (up to rounding): rank 3
    y = rng.standard_normal(5)
    y[4], y[3] = y[1], 0.5 * y[0] - 2.0 * y[2]
    singular = torch.linalg.svdvals(torch.from_numpy(x))
    assert min_norm.numerical_rank(singular, x.shape) == 3 and float(singular[-1]) < 1e-14
    assert min_norm.row_space_basis(torch.from_numpy(x)).shape == (9, 3)
    w = min_norm.min_norm_solution(x, y)
    assert torch.allclose(torch.from_numpy(x) @ w, torch.from_numpy(y), atol=1e-12)
    assert torch.allclose(w, torch.from_numpy(np.linalg.pinv(x) @ y), atol=1e-12)
    run = min_norm.train_least_squares(x, y)
    assert run.converged and run.rank == 3
    assert run.sigma_min == pytest.approx(float(singular[2])) and run.condition_number < 1e3
    assert run.verdict == min_norm.WITHIN


def test_inconsistent_targets_are_refused_up_front():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 6)), rng.standard_normal(4)
    x[3] = x[0]
    y[3] = y[0] + 1.0  # the repeated row asks for two values at once
    with pytest.raises(ValueError, match=r"y is inconsistent with x: .*numerical rank 3 < n = 4") as error:
        min_norm.train_least_squares(x, y)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="inconsistent"):  # overdetermined, generic targets
        min_norm.train_least_squares(rng.standard_normal((6, 3)), rng.standard_normal(6))
    with pytest.raises(ValueError, match="numerical rank 0"):
        min_norm.train_least_squares(np.zeros((2, 3)), np.ones(2))
    # consistent up to rounding is not refused
    y[3] = y[0]
    assert min_norm.train_least_squares(x, y).converged


def test_limit_verdict_is_undecided_for_a_loose_bound():
    fraction = min_norm.DECISION_FRACTION
    assert fraction == min_norm.MIN_RELATIVE_DEPARTURE / 2
    assert min_norm.limit_verdict(0.0, 0.01, 1.0) == min_norm.UNDECIDED  # 1% bound: could be either
    assert min_norm.limit_verdict(0.0, fraction, 1.0) == min_norm.UNDECIDED  # balls of radius D / 2 touch
    assert min_norm.limit_verdict(0.0, 0.99 * fraction, 1.0) == min_norm.WITHIN
    assert min_norm.limit_verdict(1e-3, 1e-4, 1.0) == min_norm.OUTSIDE
    assert min_norm.limit_verdict(0.0, math.nan, 1.0) == min_norm.UNDECIDED
    assert min_norm.limit_verdict(0.0, math.inf, 1.0) == min_norm.UNDECIDED


# --------------------------------------------------------------------------- C10-C11 kernels


def test_gaussian_kernel_matches_its_definition():
    a = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    k = kernels.gaussian_kernel(a, a, 0.3)
    direct = torch.exp(-0.3 * ((a[:, None] - a[None]) ** 2).sum(-1))
    assert torch.allclose(k, direct, atol=1e-14)
    assert torch.allclose(k.diagonal(), torch.ones(5, dtype=torch.float64))


def test_kernel_interpolant_fits_its_training_labels():
    rng = np.random.default_rng(0)
    x, labels = rng.random((30, 4)), rng.integers(0, 3, 30)
    fit = kernels.fit_interpolant(x, labels, gamma=1.0, classes=3)
    assert fit.relative_residual < 1e-8 and fit.solver == "cholesky"
    assert fit.error_rate(x, labels) == 0.0
    # ||f||^2 = trace(alpha^T K alpha) = trace(alpha^T Y) when K alpha = Y
    assert math.isclose(fit.rkhs_norm**2, float((fit.alpha * kernels.one_hot(labels, 3)).sum()), rel_tol=1e-6)


@pytest.mark.parametrize(
    "x, labels, gamma, message",
    [
        (np.zeros((0, 2)), np.zeros(0, int), 1.0, "n >= 1"),
        (np.eye(3), np.array([0, 1]), 1.0, "2 entries for 3 rows"),
        (np.eye(2), np.array([0, 10]), 1.0, r"labels must lie in \[0, 10\)"),
        (np.eye(2), np.array([0, 1]), 0.0, "gamma must be positive"),
        (np.array([[np.inf, 0.0], [0.0, 1.0]]), np.array([0, 1]), 1.0, "finite"),
    ],
)
def test_kernel_fit_refuses_bad_input(x, labels, gamma, message):
    with pytest.raises(ValueError, match=message):
        kernels.fit_interpolant(x, labels, gamma)


def test_gabor_features_shape_and_fixed_points():
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    images[1, 10:18, 10:18] = 255
    features = kernels.gabor_features(images)
    assert features.shape == (3, 17 * 7 * 7)
    assert np.all(features[0] == 0)  # zero-mean wavelets and averaging of nothing
    assert np.all(features[1] >= 0) and features[1].max() > 0
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        kernels.gabor_features(np.zeros((28, 28)))


def test_matched_gamma_undoes_a_rescaling():
    rng = np.random.default_rng(0)
    reference = rng.random((50, 5))
    assert math.isclose(kernels.matched_gamma(3 * reference, reference, 0.02), 0.02 / 9, rel_tol=1e-12)


def test_nearest_neighbour_on_its_own_training_set_is_perfect():
    rng = np.random.default_rng(0)
    x, labels = rng.random((20, 3)), rng.integers(0, 4, 20)
    assert kernels.nearest_neighbour_error(x, labels, x, labels) == 0.0


# --------------------------------------------------------------------------- C12 Rademacher


def test_rademacher_signs_are_seeded_signs():
    signs = rademacher.rademacher_signs(100, 3, seed=4)
    assert signs.shape == (3, 100) and set(np.unique(signs)) == {-1.0, 1.0}
    assert np.array_equal(signs, rademacher.rademacher_signs(100, 3, seed=4))
    with pytest.raises(ValueError, match="n >= 1"):
        rademacher.rademacher_signs(0, 3)


def test_rademacher_extremes():
    x, _ = gaussian_points(40, 6)
    assert rademacher.empirical_rademacher(rademacher.interpolating_network_fitter(), x, draws=3).mean == 1.0
    assert rademacher.empirical_rademacher(lambda x, s: np.zeros(len(s)), x, draws=3).mean == 0.0
    # n <= d: least squares fits any signs
    wide, _ = gaussian_points(5, 8)
    assert rademacher.empirical_rademacher(rademacher.least_squares_sign_fitter, wide, draws=3).mean == 1.0
    with pytest.raises(ValueError, match="fitter returned shape"):
        rademacher.empirical_rademacher(lambda x, s: np.zeros(2), x, draws=1)


def test_bounded_linear_class_has_its_closed_form():
    x = np.array([[1.0], [-2.0], [0.5]])
    estimate, jensen = rademacher.bounded_linear_rademacher(x, draws=4, seed=1)
    signs = rademacher.rademacher_signs(3, 4, seed=1)
    expected = [abs(float(s @ x[:, 0])) / 2.0 / 3 for s in signs]  # B = 1 / max|x| = 1/2
    assert np.allclose(estimate.per_draw, expected)
    assert math.isclose(jensen, 0.5 * math.sqrt(1 + 4 + 0.25) / 3)
    with pytest.raises(ValueError, match="every point is zero"):
        rademacher.bounded_linear_rademacher(np.zeros((3, 2)))


# --------------------------------------------------------------------------- bench


def test_bench_prints_a_table(capsys):
    assert bench.main(["--sizes", "30", "200", "--dim", "8"]) == 0
    out = capsys.readouterr().out
    assert "worst residual" in out and "\n     200" in out


def test_bench_refuses_bad_sizes():
    with pytest.raises(SystemExit):
        bench.parse_args(["--sizes", "0"])
