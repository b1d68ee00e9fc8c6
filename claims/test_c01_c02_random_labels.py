"""C1 and C2: deep nets fit random labels, and then test at chance.

Paper (Table 1, CIFAR-10, random labels): training accuracy 100.0 / 100.0 /
99.82 / 100.0 / 99.34 (Inception, w/o BN, AlexNet, MLP 3x512, MLP 1x512), test
accuracy 9.78 / 10.12 / 9.86 / 10.48 / 10.61 (chance 10.0).

Scale: the profile's (smoke: MLP 1x512 on 5,000-image subsets of the CIFAR-10
JPEG copy and of MNIST, seeds 0 and 1; paper: full CIFAR-10, five models).
"""

import numpy as np

from harness import paper, stats
from harness.plugin import require_fitted

ALPHA = 0.01  # false-alarm rate of the chance test: 1 in 100 sound runs fails it


def test_c1_random_labels_are_fitted_exactly(claim_run, claim_figure, profile, model):
    """C1: zero training error on random labels, with the hyperparameters of true labels.

    Threshold: 100% training accuracy (every training image classified as its
    random label), evaluated in eval mode after a pass, within the profile's
    pass budget. No tolerance: the paper's claim for Inception and the MLP
    3x512 is exactly 100.0%, and a run that stops short has not shown it.
    The paper reports 99.34% for MLP 1x512 under its x0.95 schedule; the paper
    profile runs that model with x0.99 per pass (recorded in the run config),
    which reaches exactly 100% (the paper: "with some modification of the
    hyperparameters, perfect accuracy could be achieved").
    """
    for seed in profile.seeds:
        record = claim_run(model, variant="random", seed=seed)
        claim_figure(
            "C1",
            f"train accuracy, random labels, {model}, seed {seed} ({record['data_source']}, n={record['n_train']})",
            record["train_accuracy"],
            "== 1.0",
            record["outcome"] == "fitted",
            paper=paper.RANDOM_LABELS_TRAIN_ACCURACY.get(model),
            passes=record["passes"],
        )
        require_fitted(record, f"C1: {model} seed {seed}")


def test_c1_random_labels_are_fitted_on_mnist(claim_run, claim_figure, profile):
    """C1 on a second dataset: MLP 1x512 fits random labels on MNIST.

    Threshold: 100% training accuracy within the pass budget, as above.
    Scale: the profile's training-set size of MNIST (smoke: 5,000 images).
    """
    record = claim_run("mlp_1x512", dataset="mnist", variant="random", seed=profile.seeds[0])
    claim_figure(
        "C1",
        f"train accuracy, random labels, mlp_1x512 ({record['data_source']}, n={record['n_train']})",
        record["train_accuracy"],
        "== 1.0",
        record["outcome"] == "fitted",
        passes=record["passes"],
    )
    require_fitted(record, "C1: mlp_1x512 on MNIST")


def _chance_check(record: dict) -> tuple[float, float, float]:
    """(observed accuracy, chance accuracy, two-sided p-value)."""
    predicted = np.asarray(record["test_prediction_counts"], dtype=float)
    labels = np.asarray(record["test_label_counts"], dtype=float)
    chance = float((predicted / predicted.sum()) @ (labels / labels.sum()))
    n_test = record["n_test"]
    successes = round(record["test_accuracy"] * n_test)
    return record["test_accuracy"], chance, stats.binomial_two_sided_p(successes, n_test, chance)


def test_c2_test_accuracy_is_chance(claim_run, claim_figure, profile, model):
    """C2: after fitting random labels, test accuracy is chance.

    Threshold: the exact two-sided binomial test does not reject chance at
    alpha = 0.01. Derivation: the network never saw a true training label, so
    its test predictions are independent of the test labels and the number of
    correct ones is Binomial(n_test, c) with c = sum_k P(predict k) P(label k)
    (c = 0.1 exactly for CIFAR-10's balanced test set; for unbalanced sets the
    prediction marginal matters). The interval at n_test = 10,000 and c = 0.1
    is about 9.2%..10.8%; every paper value (9.78..10.61) lies inside it.
    """
    for seed in profile.seeds:
        record = claim_run(model, variant="random", seed=seed)
        accuracy, chance, p_value = _chance_check(record)
        low, high = stats.binomial_interval(record["n_test"], chance, ALPHA)
        claim_figure(
            "C2",
            f"test accuracy, random labels, {model}, seed {seed} (chance {chance:.4f}, n_test={record['n_test']})",
            accuracy,
            f"in [{low:.4f}, {high:.4f}] (binomial, alpha {ALPHA})",
            p_value >= ALPHA,
            paper=paper.RANDOM_LABELS_TEST_ACCURACY.get(model),
        )
        assert p_value >= ALPHA, f"test accuracy {accuracy:.4f} is not chance {chance:.4f} (p = {p_value:.2g})"


def test_c2_test_accuracy_is_chance_on_mnist(claim_run, claim_figure, profile):
    """C2 on MNIST, whose test classes are unbalanced: the same binomial test, chance from the marginals."""
    record = claim_run("mlp_1x512", dataset="mnist", variant="random", seed=profile.seeds[0])
    accuracy, chance, p_value = _chance_check(record)
    claim_figure("C2", f"test accuracy, random labels, MNIST (chance {chance:.4f})", accuracy,
                 f"binomial p >= {ALPHA}", p_value >= ALPHA)
    assert p_value >= ALPHA, f"test accuracy {accuracy:.4f} is not chance {chance:.4f} (p = {p_value:.2g})"
