"""harness.core.corrupt: the paper's randomisation variants (section 2.1).

Statistical checks use fixed seeds (so they are deterministic) and
thresholds derived from the test's null distribution at a stated level,
written next to each test; the chi-square critical values below are the
upper 1e-3 quantiles of the distribution, from standard tables.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
import torch

from harness.core.corrupt import apply_variant, corrupt_labels, gaussian_images, random_pixels, shuffle_pixels

ALPHA = 1e-3
# chi2.ppf(1 - 1e-3, df) for the degrees of freedom used below.
CHI2_CRITICAL_999 = {1: 10.828, 9: 27.877, 15: 37.697, 81: 126.083}
# Two-sided normal bound at level 1e-3: Phi^-1(1 - 5e-4) = 3.2905.
Z_999 = NormalDist().inv_cdf(1 - ALPHA / 2)

VARIANTS = ("true", "partial", "random", "shuffled_pixels", "random_pixels", "gaussian")
IMAGE_VARIANTS = ("shuffled_pixels", "random_pixels", "gaussian")


def chi_square_goodness_of_fit(counts: np.ndarray, expected: np.ndarray) -> float:
    return float(((counts - expected) ** 2 / expected).sum())


def chi_square_independence(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Pearson's statistic of the k x k contingency table of two label vectors; df = (k - 1)^2."""
    table = np.zeros((k, k))
    np.add.at(table, (a, b), 1)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    return float(((table - expected) ** 2 / expected).sum())


def position_coded(n: int, channels: int, side: int, image_offset: int = 0) -> torch.Tensor:
    """Images whose value at (image i, channel c, flat position q) is (i + offset)*10^6 + c*10^4 + q.

    After a permutation of positions, each value tells from which image,
    channel and position it came.
    """
    i = torch.arange(n).view(n, 1, 1) + image_offset
    c = torch.arange(channels).view(1, channels, 1)
    q = torch.arange(side * side).view(1, 1, side * side)
    return (i * 10**6 + c * 10**4 + q).view(n, channels, side, side)


def decode(images: torch.Tensor):
    """(image, channel, source position) of every value of position-coded images, each (N, C, H*W)."""
    flat = images.flatten(2)
    return flat // 10**6, (flat // 10**4) % 100, flat % 10**4


# --- label corruption ------------------------------------------------------


@pytest.mark.parametrize("k", [2, 10])
def test_random_labels_are_uniform_over_the_classes(k):
    """At p = 1 every label is a fresh uniform draw: class counts pass a chi-square goodness-of-fit test.

    n = 100,000 labels, df = K - 1, rejected above the chi-square 0.999
    quantile (27.877 for K = 10, 10.828 for K = 2). The true labels are
    deliberately unbalanced (mostly class 0) so a draw that leaked them
    would fail.
    """
    n = 100_000
    rng = np.random.default_rng(11)
    true = np.where(rng.random(n) < 0.7, 0, rng.integers(0, k, n))
    new = corrupt_labels(true, 1.0, k, np.random.default_rng(12))
    counts = np.bincount(new, minlength=k)
    assert len(counts) == k  # no class outside 0..K-1
    statistic = chi_square_goodness_of_fit(counts, np.full(k, n / k))
    assert statistic < CHI2_CRITICAL_999[k - 1], statistic


@pytest.mark.parametrize("k", [2, 10])
def test_random_labels_are_independent_of_the_true_labels(k):
    """At p = 1 the new label carries no information about the true one.

    Chi-square test of independence on the K x K table (true, new) of
    n = 100,000 labels, df = (K - 1)^2, rejected above the 0.999 quantile
    (126.083 for K = 10, 10.828 for K = 2). The same statistic at p = 0.5,
    where half the labels are kept, must be far above it: the test has power.
    """
    n = 100_000
    true = np.random.default_rng(21).integers(0, k, n)
    critical = CHI2_CRITICAL_999[(k - 1) ** 2]

    random = corrupt_labels(true, 1.0, k, np.random.default_rng(22))
    assert chi_square_independence(true, random, k) < critical

    half = corrupt_labels(true, 0.5, k, np.random.default_rng(23))
    assert chi_square_independence(true, half, k) > 100 * critical


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.8, 1.0])
def test_fraction_of_changed_labels_is_p_times_one_minus_one_over_k(p):
    """About p * (1 - 1/K) of labels change (0.9p for K = 10): a redraw may return the true class.

    The number changed is Binomial(n, q), q = 0.9p; with n = 200,000 the
    observed fraction must lie within Z * sqrt(q(1 - q)/n) of q, Z = 3.29
    (two-sided 99.9% normal bound). Unchanged labels keep their value.
    """
    n, k = 200_000, 10
    true = np.random.default_rng(31).integers(0, k, n)
    new = corrupt_labels(true, p, k, np.random.default_rng(32))
    q = p * (1 - 1 / k)
    bound = Z_999 * np.sqrt(q * (1 - q) / n)
    fraction = float(np.mean(new != true))
    assert abs(fraction - q) <= bound, (fraction, q, bound)
    assert new.min() >= 0 and new.max() < k


def test_fraction_bound_would_catch_a_redraw_that_always_changes_the_label():
    """The bound above separates 0.9p from p: at p = 0.5 the gap 0.05 is many times the bound (~0.0037).

    Without this, the previous test could pass for an implementation that
    draws only among the other classes, which the paper does not do.
    """
    n, p, k = 200_000, 0.5, 10
    q = p * (1 - 1 / k)
    assert abs(p - q) > 10 * Z_999 * np.sqrt(q * (1 - q) / n)


def test_zero_corruption_changes_no_label():
    """At p = 0 no label changes, whatever the random stream: the 'true labels' end of the scale."""
    labels = np.random.default_rng(41).integers(0, 10, 10_000)
    for seed in range(5):
        np.testing.assert_array_equal(corrupt_labels(labels, 0.0, 10, np.random.default_rng(seed)), labels)


def test_corrupt_labels_leaves_its_input_untouched():
    """The caller's label array is not modified: the module promises pure functions."""
    labels = np.random.default_rng(42).integers(0, 10, 1000)
    before = labels.copy()
    corrupt_labels(labels, 1.0, 10, np.random.default_rng(0))
    np.testing.assert_array_equal(labels, before)


@pytest.mark.parametrize("p", [-0.1, 1.0001, 2.0, float("nan")])
def test_corruption_level_outside_unit_interval_is_refused(p):
    """A level outside [0, 1] (or NaN) is a ValueError: it is a probability, and a typo must not run silently."""
    with pytest.raises(ValueError, match="corruption level must lie in"):
        corrupt_labels(np.zeros(10, dtype=np.int64), p, 10, np.random.default_rng(0))


# --- shuffled pixels -------------------------------------------------------


def test_shuffled_pixels_apply_one_permutation_to_every_train_and_test_image():
    """Every train and test image, every channel, has its positions moved by the same mapping.

    With position-coded images the source position of each output pixel is
    readable: it must be one permutation (not the identity) shared by all
    images and channels, and pixels never move between images or channels.
    """
    train = position_coded(6, 3, 28)
    test = position_coded(4, 3, 28, image_offset=100)

    new_train, new_test = shuffle_pixels(train, test, np.random.default_rng(51))

    assert new_train.shape == train.shape and new_test.shape == test.shape
    reference = None
    for original, shuffled in ((train, new_train), (test, new_test)):
        image, channel, source = decode(shuffled)
        image0, channel0, _ = decode(original)
        assert torch.equal(image, image0) and torch.equal(channel, channel0)
        if reference is None:
            reference = source[0, 0]
        assert torch.equal(source, reference.expand_as(source))
    assert torch.equal(torch.sort(reference).values, torch.arange(28 * 28))
    assert not torch.equal(reference, torch.arange(28 * 28))


def test_shuffled_pixels_keep_each_images_values_and_colours():
    """Each image keeps its multiset of values per channel, and each RGB triple stays a triple.

    The paper permutes pixels, not colour values: the set of (R, G, B)
    triples of an image is unchanged.
    """
    rng = np.random.default_rng(52)
    train = torch.from_numpy(rng.random((5, 3, 28, 28), dtype=np.float32))
    test = torch.from_numpy(rng.random((3, 3, 28, 28), dtype=np.float32))
    before_train, before_test = train.clone(), test.clone()

    new_train, new_test = shuffle_pixels(train, test, np.random.default_rng(53))

    for original, shuffled in ((train, new_train), (test, new_test)):
        assert torch.equal(torch.sort(shuffled.flatten(2)).values, torch.sort(original.flatten(2)).values)
        for i in range(len(original)):
            triples = {tuple(t) for t in original[i].flatten(1).T.tolist()}
            assert {tuple(t) for t in shuffled[i].flatten(1).T.tolist()} == triples
        assert not torch.equal(shuffled, original)
    assert torch.equal(train, before_train) and torch.equal(test, before_test)  # not in place


# --- random pixels ---------------------------------------------------------


def test_random_pixels_permute_each_image_within_itself_channels_together():
    """Each image is a permutation of its own pixels, the same one for all its channels.

    Position-coded images: every output value comes from the same image and
    channel; the source positions of an image are a permutation, equal
    across its three channels.
    """
    images = position_coded(50, 3, 28)
    out = random_pixels(images, np.random.default_rng(61))

    image, channel, source = decode(out)
    image0, channel0, _ = decode(images)
    assert torch.equal(image, image0) and torch.equal(channel, channel0)
    assert torch.equal(source, source[:, :1].expand_as(source))
    assert torch.equal(torch.sort(source[:, 0]).values, torch.arange(784).expand(50, -1))


def test_random_pixels_give_every_image_a_different_permutation():
    """No two of 50 images share a permutation (a collision among 784! orders means shared draws)."""
    images = position_coded(50, 1, 28)
    _, _, source = decode(random_pixels(images, np.random.default_rng(62)))
    orders = {tuple(row.tolist()) for row in source[:, 0]}
    assert len(orders) == 50
    assert tuple(range(784)) not in orders


def test_random_pixels_keep_each_images_sorted_values_per_channel():
    """Sorted values per image and channel are unchanged: nothing but positions moves."""
    images = torch.from_numpy(np.random.default_rng(63).random((8, 3, 28, 28), dtype=np.float32))
    before = images.clone()
    out = random_pixels(images, np.random.default_rng(64))
    assert torch.equal(torch.sort(out.flatten(2)).values, torch.sort(images.flatten(2)).values)
    assert torch.equal(images, before)


def test_random_pixels_send_each_position_anywhere_uniformly():
    """Across images, the source of output position 0 is uniform over all positions.

    20,000 images of 4 x 4: counts over the 16 source positions pass a
    chi-square goodness-of-fit test, df = 15, critical 37.697 at 1e-3.
    """
    n = 20_000
    images = position_coded(n, 1, 4)
    _, _, source = decode(random_pixels(images, np.random.default_rng(65)))
    counts = np.bincount(source[:, 0, 0].numpy(), minlength=16)
    assert chi_square_goodness_of_fit(counts, np.full(16, n / 16)) < CHI2_CRITICAL_999[15]


# --- gaussian images -------------------------------------------------------


def assert_channel_moments(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor):
    """Per-channel sample mean and std agree with the targets within derived bounds.

    For m i.i.d. normal values the sample mean has standard error std/sqrt(m)
    and the sample std about std/sqrt(2m). Two statistics per channel are
    tested, so the level 1e-3 is split among them (Bonferroni).
    """
    values = images.double().transpose(0, 1).flatten(1)  # (C, m)
    channels, m = values.shape
    z = NormalDist().inv_cdf(1 - ALPHA / (2 * 2 * channels))
    mean, std = mean.double(), std.double()
    assert torch.all((values.mean(1) - mean).abs() <= z * std / m**0.5), (values.mean(1), mean)
    assert torch.all((values.std(1) - std).abs() <= z * std / (2 * m) ** 0.5), (values.std(1), std)


def test_gaussian_images_have_the_requested_channel_mean_and_std():
    """Noise images match each channel's requested mean and std, and are normal in shape.

    500 x 28 x 28 values per channel. Normality: the fraction within one std
    of the mean is 0.6827, checked within a 99.9% binomial (normal) bound.
    """
    mean = torch.tensor([0.49, 0.48, 0.45])
    std = torch.tensor([0.25, 0.24, 0.26])
    images = gaussian_images((500, 3, 28, 28), mean, std, np.random.default_rng(71))

    assert images.shape == (500, 3, 28, 28) and images.dtype == torch.float32
    assert_channel_moments(images, mean, std)
    z_scores = (images.double() - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    n = z_scores.numel()
    p_within = 2 * NormalDist().cdf(1) - 1
    within = float((z_scores.abs() < 1).double().mean())
    assert abs(within - p_within) <= Z_999 * (p_within * (1 - p_within) / n) ** 0.5


def _dataset(seed: int, n: int = 400):
    """Float images in [0, 1] whose three channels differ in mean and spread."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3, 28, 28)) ** np.array([1.0, 2.0, 0.5]).reshape(1, 3, 1, 1)
    return torch.from_numpy(x.astype(np.float32))


def test_gaussian_variant_takes_the_training_sets_channel_statistics_for_train_and_test():
    """apply_variant 'gaussian' draws train and test noise with the training set's per-channel mean and std.

    The test images here have other statistics on purpose: the noise must
    follow the training set's, as section 2.1 replaces images by noise with
    the dataset's mean and variance.
    """
    train = _dataset(72)
    test = _dataset(73, n=300) * 0.5
    labels = np.arange(400) % 10
    out = apply_variant(
        "gaussian", train, labels, test, np.arange(300) % 10, label_corruption=0.0, num_classes=10, seed=5
    )
    mean, std = train.mean(dim=(0, 2, 3)), train.std(dim=(0, 2, 3))
    assert out.train_x.shape == train.shape and out.test_x.shape == test.shape
    assert_channel_moments(out.train_x, mean, std)
    assert_channel_moments(out.test_x, mean, std)


def test_gaussian_variant_keeps_no_information_about_the_images():
    """The noise depends on the inputs only through the training set's per-channel mean and std.

    Test images are replaced wholesale (identical output for any test
    images), and an unrelated training set rescaled to the same per-channel
    mean and std gives the same noise up to float rounding of the statistics.
    """
    labels, test_labels = np.arange(400) % 10, np.arange(100) % 10
    train = _dataset(74)
    kwargs = dict(label_corruption=0.0, num_classes=10, seed=9)
    base = apply_variant("gaussian", train, labels, _dataset(75, 100), test_labels, **kwargs)

    other_test = apply_variant("gaussian", train, labels, torch.zeros(100, 3, 28, 28), test_labels, **kwargs)
    assert torch.equal(base.train_x, other_test.train_x) and torch.equal(base.test_x, other_test.test_x)

    # Unrelated content, affinely matched (in float64) to train's per-channel mean and std.
    raw = torch.from_numpy(np.random.default_rng(76).standard_normal((400, 3, 28, 28)))
    target_mean, target_std = train.double().mean(dim=(0, 2, 3)), train.double().std(dim=(0, 2, 3))
    raw_mean, raw_std = raw.mean(dim=(0, 2, 3)), raw.std(dim=(0, 2, 3))
    matched = (
        (raw - raw_mean.view(1, 3, 1, 1)) / raw_std.view(1, 3, 1, 1) * target_std.view(1, 3, 1, 1)
        + target_mean.view(1, 3, 1, 1)
    ).float()
    for c in range(3):  # unrelated indeed: per-channel correlation ~0 (standard error ~0.002 for 313,600 values)
        assert torch.corrcoef(torch.stack([matched[:, c].flatten(), train[:, c].flatten()]))[0, 1].abs() < 0.01
    unrelated = apply_variant("gaussian", matched, labels, _dataset(77, 100), test_labels, **kwargs)
    torch.testing.assert_close(unrelated.train_x, base.train_x, atol=1e-5, rtol=0)
    torch.testing.assert_close(unrelated.test_x, base.test_x, atol=1e-5, rtol=0)


# --- apply_variant ---------------------------------------------------------


def _small_data(seed: int = 80):
    rng = np.random.default_rng(seed)
    train_x = torch.from_numpy(rng.random((64, 3, 28, 28), dtype=np.float32))
    test_x = torch.from_numpy(rng.random((32, 3, 28, 28), dtype=np.float32))
    return train_x, rng.integers(0, 10, 64), test_x, rng.integers(0, 10, 32)


def _run(variant, p, seed, data=None):
    train_x, train_y, test_x, test_y = data if data is not None else _small_data()
    return apply_variant(variant, train_x, train_y, test_x, test_y, label_corruption=p, num_classes=10, seed=seed)


def _equal(a, b) -> bool:
    return all(
        torch.equal(getattr(a, field), getattr(b, field))
        for field in ("train_x", "train_y", "test_x", "test_y", "label_changed")
    )


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_test_labels_are_never_changed(variant, p):
    """Whatever the variant and corruption level, test labels come back exactly as given.

    The paper corrupts only training labels; test accuracy is always
    measured against the true labels.
    """
    data = _small_data()
    out = _run(variant, p, seed=3, data=data)
    np.testing.assert_array_equal(out.test_y.numpy(), data[3])
    assert out.test_y.dtype == torch.int64


@pytest.mark.parametrize("variant", VARIANTS)
def test_apply_variant_does_not_modify_its_inputs(variant):
    """Inputs are left as they were: the module promises pure functions."""
    data = _small_data()
    copies = [d.clone() if isinstance(d, torch.Tensor) else d.copy() for d in data]
    _run(variant, 1.0, seed=4, data=data)
    for original, copy in zip(data, copies):
        assert np.array_equal(np.asarray(original), np.asarray(copy))


@pytest.mark.parametrize(
    "variant, p",
    [("partial", 0.5), ("random", 1.0), ("shuffled_pixels", 0.0), ("random_pixels", 0.0), ("gaussian", 0.0)],
)
def test_same_seed_same_output_other_seed_other_output(variant, p):
    """A seed fixes the whole randomisation (runs are reproducible); another seed gives another one."""
    first = _run(variant, p, seed=1)
    assert _equal(first, _run(variant, p, seed=1))
    assert not _equal(first, _run(variant, p, seed=2))


def test_true_labels_variant_returns_the_data_unchanged():
    """'true' at level 0 is the identity, whatever the seed: no label or pixel changes."""
    data = _small_data()
    for seed in (1, 2):
        out = _run("true", 0.0, seed=seed, data=data)
        assert torch.equal(out.train_x, data[0]) and torch.equal(out.test_x, data[2])
        np.testing.assert_array_equal(out.train_y.numpy(), data[1])
        assert not out.label_changed.any()


@pytest.mark.parametrize("variant, p", [("partial", 0.3), ("random", 1.0), ("true", 0.0), ("random_pixels", 0.0)])
def test_label_changed_marks_exactly_the_changed_labels(variant, p):
    """label_changed is True exactly where the returned training label differs from the given one."""
    train_x, _, test_x, test_y = _small_data()
    train_y = np.random.default_rng(81).integers(0, 10, 64)
    out = _run(variant, p, seed=6, data=(train_x, train_y, test_x, test_y))
    assert out.label_changed.dtype == torch.bool and out.train_y.dtype == torch.int64
    assert torch.equal(out.label_changed, out.train_y != torch.from_numpy(train_y))
    assert bool(out.label_changed.any()) == (p > 0)


def test_random_pixels_variant_permutes_train_and_test_images_independently():
    """Under apply_variant, train and test images get their own permutations (none shared)."""
    train_x, test_x = position_coded(20, 3, 28), position_coded(20, 3, 28, image_offset=100)
    out = _run("random_pixels", 0.0, seed=7, data=(train_x, np.arange(20) % 10, test_x, np.arange(20) % 10))
    orders = [tuple(row.tolist()) for x in (out.train_x, out.test_x) for row in decode(x)[2][:, 0]]
    assert len(set(orders)) == 40


def test_shuffled_pixels_variant_shares_the_permutation_between_train_and_test():
    """Under apply_variant, the one permutation of 'shuffled_pixels' is the same for train and test."""
    train_x, test_x = position_coded(5, 3, 28), position_coded(5, 3, 28, image_offset=100)
    out = _run("shuffled_pixels", 0.0, seed=8, data=(train_x, np.arange(5), test_x, np.arange(5)))
    train_source, test_source = decode(out.train_x)[2], decode(out.test_x)[2]
    assert torch.equal(train_source, test_source)
    assert torch.equal(train_source, train_source[:1, :1].expand_as(train_source))


def test_unknown_variant_is_refused():
    """A misspelt variant is a ValueError naming it, never a silent 'true labels' run."""
    with pytest.raises(ValueError, match="unknown variant 'inverted'"):
        _run("inverted", 0.0, seed=0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("p", [-0.5, -1e-9, 1.5, float("nan")])
def test_corruption_level_outside_unit_interval_is_refused_by_apply_variant(variant, p):
    """apply_variant refuses a level outside [0, 1] for every variant.

    A negative level in particular must not be read as 'no corruption'
    (level 0 skips the label draw entirely, so it needs its own check).
    """
    with pytest.raises(ValueError, match="corruption level must lie in"):
        _run(variant, p, seed=0)
