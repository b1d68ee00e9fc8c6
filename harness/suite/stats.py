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


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs: K x K int64, rows true, columns predicted.

    labels, predictions: 1-D integer sequences of the same length with values
    in 0..num_classes-1. ValueError on other shapes, lengths or values.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    k = int(num_classes)
    pairs = {}
    for name, values in (("labels", labels), ("predictions", predictions)):
        array = np.asarray(values)
        if array.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
        if array.size and array.dtype.kind not in "iu":
            raise ValueError(f"{name} must be integers, got dtype {array.dtype}")
        array = array.astype(np.int64)
        if array.size and (array.min() < 0 or array.max() >= k):
            raise ValueError(f"{name} must lie in 0..{k - 1}, got values from {array.min()} to {array.max()}")
        pairs[name] = array
    if len(pairs["labels"]) != len(pairs["predictions"]):
        raise ValueError(
            f"labels and predictions differ in length: {len(pairs['labels'])} vs {len(pairs['predictions'])}"
        )
    flat = np.bincount(pairs["labels"] * k + pairs["predictions"], minlength=k * k)
    return flat.reshape(k, k).astype(np.int64)


EXACT_RELABELLING_MAX_CLASSES = 10  # 10! = 3,628,800 renamings, counted exactly by the subset DP
DEFAULT_RELABELLING_SAMPLES = 100_000


def _confusion_counts(confusion) -> np.ndarray:
    """The confusion matrix as a validated K x K int64 array (K >= 2, counts >= 0, total > 0)."""
    array = np.asarray(confusion)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"confusion must be a square 2-D matrix, got shape {array.shape}")
    k = array.shape[0]
    if k < 2:
        raise ValueError(f"confusion needs at least 2 classes, got shape {array.shape}")
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array) | (array != np.round(array))
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            value = array[where].item()
            raise ValueError(f"confusion must hold integer counts, got {value!r} at {where} (shape {array.shape})")
    elif array.dtype.kind not in "iub":
        raise ValueError(f"confusion must hold integer counts, got dtype {array.dtype} (shape {array.shape})")
    if (array < 0).any():
        where = tuple(int(i) for i in np.argwhere(array < 0)[0])
        raise ValueError(
            f"confusion counts must be non-negative, got {array[where].item()} at {where} (shape {array.shape})"
        )
    # K * N must stay exact in int64 (the comparisons below); a float sum screens without overflow.
    if float(array.sum(dtype=np.float64)) * k >= 2.0**61:
        total = array.sum(dtype=np.float64)
        raise ValueError(f"confusion counts too large: total about {total:.3g} with K = {k}")
    counts = array.astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        raise ValueError(f"confusion must count at least one prediction, got a total of 0 (shape {array.shape})")
    return counts


def _renaming_accuracy_counts(counts: np.ndarray) -> np.ndarray:
    """How many of the K! renamings pi give each accuracy count S_pi = sum_c counts[c, pi(c)].

    Returns an int32 vector v with v[s] = #{pi : S_pi = s}, s = 0..len(v)-1 (len(v) <= N + 1),
    summing to K! (int32 holds every count up to 12! = 479,001,600; used for K <= 10).

    Dynamic programme over subsets of used columns: after r rows exactly r columns are used,
    so a state is the set (bitmask) of used columns and row r is the one assigned next; its
    value is the vector of counts of each partial sum. Within a layer
    (fixed r) adding column j shifts every state lacking j by the same counts[r, j], so each
    layer is K vectorised shift-and-adds over the layer's states (at most C(10, 5) = 252 x N+1).
    Measured, K = 10, N = 10,000 (1,000 per class) on one CPU core: 0.05 s when every row is
    concentrated in one column (the longest vectors), 0.007 s for predictions spread evenly.
    """
    k = counts.shape[0]
    if k > 12:
        raise ValueError(f"the exact count is for K <= 12 (int32 counts), got K = {k}")
    # Largest partial sum after r rows, so each layer's vectors are no longer than they need be.
    reach = np.concatenate([[0], np.cumsum(counts.max(axis=1))])
    masks = [0]
    table = np.ones((1, 1), dtype=np.int32)
    for r in range(k):
        following = sorted({mask | (1 << j) for mask in masks for j in range(k) if not mask >> j & 1})
        position = {mask: i for i, mask in enumerate(following)}
        width = table.shape[1]
        grown = np.zeros((len(following), int(reach[r + 1]) + 1), dtype=np.int32)
        for j in range(k):
            sources = [i for i, mask in enumerate(masks) if not mask >> j & 1]
            targets = [position[masks[i] | (1 << j)] for i in sources]  # distinct for a fixed j
            shift = int(counts[r, j])
            grown[targets, shift : shift + width] += table[sources]
        masks, table = following, grown
    return table[0]


def relabelling_p_value(confusion, *, samples: int | None = None, seed=0) -> float:
    """Two-sided p-value that test accuracy is chance under renaming of the classes.

    confusion: K x K array-like of non-negative integer counts, rows the true class,
    columns the predicted class, K >= 2 and total N > 0 (the number of test images).
    samples: None for the exact p-value when K <= 10, else the number of random renamings
    (Monte Carlo; 100,000 by default when K > 10). seed: the numpy Generator's seed for them.
    Returns a float in (0, 1]. Raises ValueError for a matrix that is not 2-D and square,
    has K < 2, non-integer or negative counts or a zero total, or for samples < 1.

    The null (Zhang et al. 2017, Table 1: a net fitted to random training labels tests at
    chance). Random training labels are exchangeable across classes, and training with a
    loss symmetric in the classes from an exchangeable output-layer initialisation is
    equivariant to renaming them; so under the null the law of the predicted classes is
    invariant under every permutation pi of the class names, and conditionally on the
    test images and their true labels every renaming of the predicted classes is equally
    likely. The predictions are not independent trials: a net maps similar images to the
    same class, so whole groups of test images are right or wrong together and accuracy
    spreads far wider than binomial; the binomial test falsely rejects such nets.

    Statistic: the correct count under renaming pi, S_pi = sum_c confusion[c, pi(c)]
    (accuracy S_pi / N); observed S = trace (pi = identity). Its null mean over uniform pi
    is exactly N / K whatever the marginals, since each row's count spreads evenly over
    the columns: chance accuracy under this null is 1/K, not the product of the marginals
    (sum_c P(label c) P(predict c), see chance_accuracy). Both are 1/K on a balanced test
    set; on an unbalanced one the relabelling null is the one the mechanism above implies.
    p = #{pi : |K S_pi - N| >= |K S - N|} / K!, compared in exact integers: a Fisher/Pitman
    randomisation test under a group invariance (Fisher 1935, The Design of Experiments;
    Pitman 1937, JRSS Suppl. 4), valid at every level (P(p <= alpha) <= alpha under the
    null) and conservative where renamings tie. Its resolution is the group's: the smallest
    attainable p is 1/K!, and for K = 2 the one other renaming has accuracy 1 - observed, so
    p = 1 always (K = 3: p >= 1/6; K >= 4 is needed to reject at 0.05, K >= 5 at 0.01).

    Exact for K <= 10 by a dynamic programme over subsets of used columns (all 10! =
    3,628,800 renamings; at most about 0.05 s for K = 10, N = 10,000 on one CPU core; memory
    at most 2 x 252 x (N + 1) int32). For K > 10, or when samples is given: Monte Carlo over
    `samples` uniform random renamings, p = (1 + #{at least as far}) / (1 + samples), itself
    a valid p-value; its standard error about the exact one is sqrt(p (1 - p) / samples)
    (0.0007 at p = 0.05 with 100,000 samples). K = 1000 (ImageNet) with a dense matrix:
    about 0.25 s per 10,000 samples on one CPU core (2.7 s for the default 100,000).
    """
    counts = _confusion_counts(confusion)
    k = counts.shape[0]
    total = int(counts.sum())
    observed = abs(k * int(np.trace(counts)) - total)
    if samples is None and k <= EXACT_RELABELLING_MAX_CLASSES:
        distribution = _renaming_accuracy_counts(counts)
        far = np.abs(k * np.arange(len(distribution), dtype=np.int64) - total) >= observed
        return int(distribution[far].sum()) / math.factorial(k)
    if samples is None:
        samples = DEFAULT_RELABELLING_SAMPLES
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be a positive integer or None, got {samples!r}")
    rng = np.random.default_rng(seed)
    rows = np.arange(k)
    chunk = max(1, 2**20 // k)  # renamings per vectorised gather: about 8 MB of int64 indices
    hits = done = 0
    while done < samples:
        size = min(chunk, samples - done)
        renamings = rng.permuted(np.broadcast_to(rows, (size, k)), axis=1)
        correct = counts[rows, renamings].sum(axis=1)
        hits += int(np.count_nonzero(np.abs(k * correct - total) >= observed))
        done += size
    return (1 + hits) / (1 + samples)
