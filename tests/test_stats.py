"""The statistics behind the claim thresholds, against values computed by hand."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness.suite import stats


def test_binomial_p_value_matches_a_hand_computed_case():
    # n=4, p=1/2: P(0)=P(4)=1/16, P(1)=P(3)=4/16, P(2)=6/16.
    assert stats.binomial_two_sided_p(0, 4, 0.5) == pytest.approx(2 / 16)
    assert stats.binomial_two_sided_p(1, 4, 0.5) == pytest.approx(10 / 16)
    assert stats.binomial_two_sided_p(2, 4, 0.5) == pytest.approx(1.0)


def test_binomial_interval_covers_the_stated_mass():
    n, p, alpha = 10_000, 0.1, 0.01
    low, high = stats.binomial_interval(n, p, alpha)
    sd = math.sqrt(p * (1 - p) / n)
    # The normal approximation's 99% half-width is 2.576 sd; the exact one is within a count of it.
    assert low == pytest.approx(p - 2.576 * sd, abs=2 / n)
    assert high == pytest.approx(p + 2.576 * sd, abs=2 / n)


def test_chance_accuracy_uses_both_marginals():
    labels = np.array([0, 0, 0, 1])  # 3/4 class 0
    assert stats.chance_accuracy(np.array([0, 0, 0, 0]), labels, 2) == pytest.approx(0.75)
    assert stats.chance_accuracy(np.array([0, 0, 1, 1]), labels, 2) == pytest.approx(0.5)


def test_trend_p_value_is_exact_for_small_series():
    levels = [0, 1, 2, 3, 4, 5]
    assert stats.increasing_trend_p(levels, [1, 2, 3, 4, 5, 6]) == pytest.approx(1 / 720)
    assert stats.increasing_trend_p(levels, [6, 5, 4, 3, 2, 1]) == pytest.approx(1.0)
    # One swapped neighbour pair: tau = 13/15; 1 + 5 orderings reach it or better.
    assert stats.increasing_trend_p(levels, [1, 2, 4, 3, 5, 6]) == pytest.approx(6 / 720)
    assert stats.kendall_tau(levels, [1, 2, 4, 3, 5, 6]) == pytest.approx(13 / 15)


# --- The relabelling test of "test accuracy is chance" (claim C2) ----------------------------

TEN_FACTORIAL = math.factorial(10)  # 3,628,800 renamings of CIFAR-10's classes


def brute_force_relabelling_p(confusion):
    """The definition, renaming by renaming: share of pi with |K S_pi - N| >= |K S_id - N|."""
    confusion = np.asarray(confusion, dtype=np.int64)
    k, n = len(confusion), int(confusion.sum())
    perms = np.array(list(itertools.permutations(range(k))))
    correct = confusion[np.arange(k), perms].sum(axis=1)
    observed = abs(k * int(np.trace(confusion)) - n)
    return int(np.count_nonzero(np.abs(k * correct - n) >= observed)) / len(perms)


def clustered(targets, sizes, spill=None):
    """Every image of true class c predicted as targets[c] (plus an optional spill matrix)."""
    k = len(targets)
    confusion = np.zeros((k, k), dtype=np.int64) if spill is None else np.array(spill, dtype=np.int64)
    confusion[np.arange(k), targets] += sizes
    return confusion


@st.composite
def confusions(draw, min_classes=2, max_classes=6, max_count=15):
    """Square count matrices, half of them clustered (each true class mostly one predicted class)."""
    k = draw(st.integers(min_classes, max_classes))
    cells = st.lists(st.integers(0, max_count), min_size=k * k, max_size=k * k)
    if draw(st.booleans()):
        targets = draw(st.lists(st.integers(0, k - 1), min_size=k, max_size=k))
        sizes = draw(st.lists(st.integers(1, 8 * max_count), min_size=k, max_size=k))
        spill = np.array(draw(cells)).reshape(k, k) // 4
        return clustered(targets, sizes, spill)
    confusion = np.array(draw(cells), dtype=np.int64).reshape(k, k)
    assume(confusion.sum() > 0)
    return confusion


def test_relabelling_p_value_matches_hand_enumeration():
    # K = 2, [[3, 1], [0, 2]], N = 6: identity S = 3 + 2 = 5, swap S = 1 + 0 = 1.
    # |2*5 - 6| = |2*1 - 6| = 4: both renamings are as far from N/K = 3, so p = 2/2 = 1.
    # (With two classes the swap always scores N - S: p = 1 for every K = 2 matrix.)
    assert stats.relabelling_p_value([[3, 1], [0, 2]]) == 1.0
    assert stats.relabelling_p_value([[9, 0], [0, 9]]) == 1.0
    # K = 3, N = 16, null mean 16/3; renaming pi = (pi(0), pi(1), pi(2)), S_pi, |3 S_pi - 16|:
    #   (0,1,2): 5+4+3 = 12 -> 20    (0,2,1): 5+2+0 = 7 -> 5    (1,0,2): 1+0+3 = 4 -> 4
    #   (1,2,0): 1+2+1 =  4 ->  4    (2,0,1): 0+0+0 = 0 -> 16   (2,1,0): 0+4+1 = 5 -> 1
    # (the six S sum to 32 = 3! * 16/3). Renaming the columns by sigma makes renaming sigma
    # the observed one: its p is the share of deviations at least its own.
    confusion = np.array([[5, 1, 0], [0, 4, 2], [1, 0, 3]])
    assert stats.relabelling_p_value(confusion) == pytest.approx(1 / 6)  # 20: only itself
    assert stats.relabelling_p_value(confusion[:, [0, 2, 1]]) == pytest.approx(3 / 6)  # 5: 20, 16, 5
    assert stats.relabelling_p_value(confusion[:, [2, 0, 1]]) == pytest.approx(2 / 6)  # 16: 20, 16
    assert stats.relabelling_p_value(confusion[:, [2, 1, 0]]) == pytest.approx(6 / 6)  # 1: all six
    assert stats.relabelling_p_value(confusion[:, [1, 0, 2]]) == pytest.approx(5 / 6)  # 4: all but 1


@given(confusions())
@settings(deadline=None)
def test_exact_relabelling_p_value_equals_brute_force(confusion):
    assert stats.relabelling_p_value(confusion) == brute_force_relabelling_p(confusion)


@given(confusions(max_classes=7))
@settings(deadline=None)
def test_renamings_spread_every_row_evenly_so_the_null_mean_is_n_over_k(confusion):
    # Whatever the marginals: E[S_pi] = N / K over the K! renamings, i.e. sum_s s v[s] = (K-1)! N.
    k, n = len(confusion), int(confusion.sum())
    counts = stats._renaming_accuracy_counts(confusion)
    assert int(counts.sum()) == math.factorial(k)
    assert int(np.arange(len(counts)) @ counts.astype(np.int64)) == math.factorial(k - 1) * n


def test_a_clustered_net_at_chance_fails_the_binomial_test_but_not_the_relabelling_test():
    # 1,000 test images per CIFAR-10 class, each class predicted whole as the next one (a
    # derangement): accuracy 0, which the binomial test calls impossible at chance.
    confusion = clustered(np.roll(np.arange(10), -1), 1_000)
    assert stats.binomial_two_sided_p(int(np.trace(confusion)), 10_000, 0.1) < 0.01
    # S_pi = 1,000 x (number of classes pi sends where the net does); |10 S_pi - N| >= N
    # unless exactly one: p = 1 - P(one fixed point) = 1 - 10 D(9) / 10! with D(9) = 133,496
    # derangements of 9, = 2,293,840 / 3,628,800 = 0.632121 (about 1 - 1/e).
    p = stats.relabelling_p_value(confusion)
    assert p == pytest.approx(2_293_840 / TEN_FACTORIAL, rel=1e-12)
    assert p > 0.5
    # The same for any other derangement; and p = 1 for a net that scores exactly N/K by
    # getting one whole class right (one fixed point).
    assert stats.relabelling_p_value(clustered(np.array([1, 0, 3, 2, 5, 4, 7, 6, 9, 8]), 1_000)) == p
    assert stats.relabelling_p_value(clustered(np.array([0, 2, 3, 4, 5, 6, 7, 8, 9, 1]), 1_000)) == 1.0


def test_a_model_fitted_to_true_labels_fails_the_chance_claim():
    # 40% accuracy spread realistically: per-class hit rates 25..55%, the misses lumped on a few
    # classes (Dirichlet(0.5)), one class (3) sent more often to class 7 than to itself.
    rng = np.random.default_rng(2017)
    hit = np.array([0.50, 0.55, 0.30, 0.25, 0.35, 0.30, 0.50, 0.45, 0.50, 0.40])
    rows = []
    for c in range(10):
        probs = np.insert(rng.dirichlet(np.full(9, 0.5)) * (1 - hit[c]), c, hit[c])
        rows.append(rng.multinomial(1_000, probs))
    confusion = np.array(rows)
    assert np.trace(confusion) == 3_968 and confusion[3, 7] > confusion[3, 3]
    # No other renaming comes near 3,968 correct: p = 1/10! = 2.8e-7.
    assert stats.relabelling_p_value(confusion) == pytest.approx(1 / TEN_FACTORIAL, rel=1e-12)
    assert stats.relabelling_p_value(confusion, samples=10_000) == pytest.approx(1 / 10_001)


@given(confusions(min_classes=3, max_classes=5, max_count=20))
@settings(deadline=None)
def test_the_relabelling_test_never_false_alarms_above_its_level(base):
    # Under the null every column renaming of the base is equally likely: the p-values of all
    # K! of them are the whole null law, and P(p <= alpha) <= alpha must hold exactly.
    k = len(base)
    renamings = itertools.permutations(range(k))
    p_values = np.array([stats.relabelling_p_value(base[:, list(sigma)]) for sigma in renamings])
    for alpha in (0.01, 0.05, 0.1, 0.25):
        assert np.mean(p_values <= alpha) <= alpha


def test_monte_carlo_false_alarms_stay_within_the_binomial_bound_for_ten_classes():
    # A clustered base with unequal classes (600..1,400 images) and some spill; 300 renamings of
    # it drawn at random stand for 300 nets fitted to random labels.
    rng = np.random.default_rng(7)
    sizes = rng.integers(600, 1_400, size=10)
    spill = rng.multinomial(1_000, np.full(100, 0.01)).reshape(10, 10)
    base = clustered(rng.permutation(10), sizes, spill)
    false_alarms = sum(
        stats.relabelling_p_value(base[:, rng.permutation(10)], samples=2_000, seed=trial) <= 0.05
        for trial in range(300)
    )
    # Each is a valid p-value, so the count is at most Binomial(300, 0.05) in law; its 0.999
    # quantile is 28 (mean 15): a true rate of 5% exceeds it less than once in a thousand runs.
    # (This base and these seeds give 12; the binomial test alarms on 278 of 300 such renamings.)
    bound = int(np.searchsorted(np.cumsum(np.exp(stats.binomial_log_pmf(np.arange(301), 300, 0.05))), 0.999))
    assert bound == 28
    assert false_alarms <= bound


def test_monte_carlo_agrees_with_the_exact_count_and_is_deterministic():
    rng = np.random.default_rng(13)
    confusion = rng.multinomial(1_000, np.full(10, 0.1), size=10)
    exact = stats.relabelling_p_value(confusion)
    assert exact == pytest.approx(0.42995, abs=1e-5)
    samples = 20_000
    estimate = stats.relabelling_p_value(confusion, samples=samples, seed=3)
    assert abs(estimate - exact) <= 4 * math.sqrt(exact * (1 - exact) / samples)
    assert stats.relabelling_p_value(confusion, samples=samples, seed=3) == estimate
    # The add-one form: (1 + hits) / (1 + samples).
    assert (estimate * (samples + 1)) == pytest.approx(round(estimate * (samples + 1)))


def test_more_than_ten_classes_use_monte_carlo_and_imagenet_sized_matrices_run():
    rng = np.random.default_rng(5)
    eleven = rng.multinomial(200, np.full(11, 1 / 11), size=11)
    p = stats.relabelling_p_value(eleven)  # default 100,000 renamings
    assert 0 < p <= 1 and (p * 100_001) == pytest.approx(round(p * 100_001))
    # ImageNet-sized, given densely: 1,000 classes, 30 images of each predicted as one class and
    # 20,000 more spread at random (50,000 in all, as in the validation set).
    spill = rng.multinomial(20_000, np.full(10**6, 1e-6)).reshape(1_000, 1_000)
    imagenet = clustered(rng.integers(0, 1_000, size=1_000), 30, spill)
    p = stats.relabelling_p_value(imagenet, samples=10_000, seed=1)
    assert 0 < p <= 1
    assert stats.relabelling_p_value(imagenet, samples=10_000, seed=1) == p


@pytest.mark.parametrize(
    "confusion, message",
    [
        ([[1, 2, 3], [4, 5, 6]], r"square.*\(2, 3\)"),
        ([1, 2, 3, 4], r"square.*\(4,\)"),
        (np.ones((2, 2, 2), dtype=int), r"square.*\(2, 2, 2\)"),
        ([[4]], r"at least 2 classes.*\(1, 1\)"),
        (np.zeros((0, 0), dtype=int), r"at least 2 classes.*\(0, 0\)"),
        ([[1, -1], [0, 2]], r"non-negative.*-1 at \(0, 1\)"),
        ([[1.5, 0.0], [0.0, 2.0]], r"integer counts.*1\.5 at \(0, 0\)"),
        ([[np.nan, 0.0], [0.0, 2.0]], r"integer counts.*nan"),
        ([["a", "b"], ["c", "d"]], r"integer counts.*dtype"),
        ([[0, 0], [0, 0]], r"at least one prediction.*total of 0"),
    ],
)
def test_relabelling_p_value_rejects_what_is_not_a_confusion_matrix(confusion, message):
    with pytest.raises(ValueError, match=message):
        stats.relabelling_p_value(confusion)


def test_relabelling_p_value_accepts_whole_floats_and_rejects_bad_sample_counts():
    assert stats.relabelling_p_value([[3.0, 1.0], [0.0, 2.0]]) == 1.0
    for samples in (0, -5, 2.5):
        with pytest.raises(ValueError, match="samples must be a positive integer"):
            stats.relabelling_p_value([[3, 1], [0, 2]], samples=samples)


def test_confusion_matrix_counts_rows_true_columns_predicted():
    labels = np.array([0, 0, 1, 2, 2, 2])
    predictions = np.array([0, 1, 1, 2, 0, 2])
    expected = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    confusion = stats.confusion_matrix(labels, predictions, 3)
    assert confusion.dtype == np.int64 and confusion.shape == (3, 3)
    np.testing.assert_array_equal(confusion, expected)
    np.testing.assert_array_equal(stats.confusion_matrix([], [], 2), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2.*from 0 to 3"):
        stats.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match=r"predictions must lie in 0\.\.2.*from -1 to 1"):
        stats.confusion_matrix([0, 1], [-1, 1], 3)
    with pytest.raises(ValueError, match="differ in length: 2 vs 3"):
        stats.confusion_matrix([0, 1], [0, 1, 2], 3)
    with pytest.raises(ValueError, match="integers"):
        stats.confusion_matrix([0.5, 1.0], [0, 1], 3)
