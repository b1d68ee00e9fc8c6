"""The statistics behind the claim thresholds, against values computed by hand."""

import math

import numpy as np
import pytest

from harness import stats


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
