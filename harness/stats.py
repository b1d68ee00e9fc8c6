"""Statistics the claims use: binomial bounds, a trend test, medians of ratios.

Plain numpy and the standard library, exact where the sizes allow it.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def binomial_log_pmf(k: np.ndarray, n: int, p: float) -> np.ndarray:
    k = np.asarray(k, dtype=float)
    log_choose = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k.ravel()])
    return log_choose.reshape(k.shape) + k * math.log(p) + (n - k) * math.log1p(-p)


def binomial_two_sided_p(successes: int, n: int, p: float) -> float:
    """Exact two-sided p-value: total probability of outcomes no likelier than the observed."""
    if not 0 < p < 1:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    log_pmf = binomial_log_pmf(np.arange(n + 1), n, p)
    observed = log_pmf[successes]
    # A relative slack of 1e-7 keeps outcomes tied with the observed one in the sum.
    return float(min(1.0, np.exp(log_pmf[log_pmf <= observed + 1e-7]).sum()))


def binomial_interval(n: int, p: float, alpha: float) -> tuple[float, float]:
    """Central (1 - alpha) range of the success fraction under Binomial(n, p).

    The smallest [lo, hi] with P(X < lo) <= alpha/2 and P(X > hi) <= alpha/2,
    as fractions of n: where an accuracy lands if predictions are chance.
    """
    pmf = np.exp(binomial_log_pmf(np.arange(n + 1), n, p))
    cdf = np.cumsum(pmf)
    lo = int(np.searchsorted(cdf, alpha / 2, side="right"))
    hi = int(np.searchsorted(cdf, 1 - alpha / 2, side="left"))
    return lo / n, hi / n


def chance_accuracy(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Accuracy expected when predictions are independent of the labels.

    sum_c P(predict c) P(label c): exactly 1/K for balanced labels, and the
    right null for unbalanced ones (MNIST) whatever the predictions favour.
    """
    predicted = np.bincount(predictions, minlength=num_classes) / len(predictions)
    actual = np.bincount(labels, minlength=num_classes) / len(labels)
    return float(predicted @ actual)


def kendall_tau(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    signs = [np.sign(x[j] - x[i]) * np.sign(y[j] - y[i]) for i, j in itertools.combinations(range(len(x)), 2)]
    return float(np.mean(signs))


def increasing_trend_p(levels, values) -> float:
    """One-sided p-value that `values` rise with `levels` (Kendall's tau).

    Exact over all orderings for up to 8 points (8! = 40,320), else the
    normal approximation. A rising trend across all k points has p = 1/k!.
    """
    observed = kendall_tau(levels, values)
    values = np.asarray(values, float)
    if len(values) <= 8:
        taus = [kendall_tau(levels, values[list(order)]) for order in itertools.permutations(range(len(values)))]
        return float(np.mean(np.asarray(taus) >= observed - 1e-12))
    k = len(values)
    sd = math.sqrt(2 * (2 * k + 5) / (9 * k * (k - 1)))
    return 0.5 * math.erfc(observed / sd / math.sqrt(2))


def median(values) -> float:
    return float(np.median(np.asarray(values, float)))
