"""C1 and C2: deep nets fit random labels, and then test at chance.

Paper (Table 1, CIFAR-10, random labels): training accuracy 100.0 / 100.0 /
99.82 / 100.0 / 99.34 (Inception, w/o BN, AlexNet, MLP 3x512, MLP 1x512), test
accuracy 9.78 / 10.12 / 9.86 / 10.48 / 10.61 (chance 10.0).

Paper scope: Table 1's five models on CIFAR-10. MNIST random labels are not a
claim of the paper: they run under --claims-extended, labelled beyond the paper.

Scale: the profile's (smoke: MLP 1x512 on 5,000-image subsets of the CIFAR-10
JPEG copy, seeds 0 and 1; paper: full CIFAR-10, five models).
"""

import pytest

from harness.suite import paper, stats
from harness.suite.fixtures import require_fitted

ALPHA = 0.01  # false-alarm rate of the chance test: 1 in 100 sound runs fails it
# MNIST beyond the paper, at one scale on every tier: 5,000 images, the paper's x0.95
# per 50,000 examples seen, 150 passes (measured on a CPU: fitted in about 85 passes).
# The whole training set is not run: MLP 1x512 reached 97.21% on all 60,000 random
# MNIST labels after 250 passes at x0.99 per 50,000 examples (one H100), so the budget
# a full-set run needs is more than that and has not been measured.
MNIST_EXTENSION = dict(n_train=5_000, lr_decay=0.95, decay_every=50_000, max_passes=150)


@pytest.mark.paper_scope(*paper.TABLE_1_MODELS, source="Table 1")
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
            check=False,  # require_fitted checks it, naming what happened to the run
        )
        require_fitted(record, f"C1: {model} seed {seed}")


@pytest.mark.beyond_paper(reason="the paper fits random labels on CIFAR-10 and ImageNet, not MNIST")
def test_c1_random_labels_are_fitted_on_mnist(claim_run, claim_figure, profile):
    """C1 on a second dataset (beyond the paper): MLP 1x512 fits random labels on MNIST.

    Threshold: 100% training accuracy within the pass budget, as above.
    Scale and schedule: MNIST_EXTENSION on every tier (above, with why).
    """
    record = claim_run("mlp_1x512", dataset="mnist", variant="random", seed=profile.seeds[0], **MNIST_EXTENSION)
    claim_figure(
        "C1",
        f"train accuracy, random labels, mlp_1x512 ({record['data_source']}, n={record['n_train']})",
        record["train_accuracy"],
        "== 1.0",
        record["outcome"] == "fitted",
        passes=record["passes"],
        check=False,  # require_fitted checks it, naming what happened to the run
    )
    require_fitted(record, "C1: mlp_1x512 on MNIST")


def chance_check(record: dict, what: str) -> tuple[float, float]:
    """(test accuracy, relabelling p-value) of a run fitted to random labels.

    The premise first: chance test accuracy is evidence only for a run that
    fitted its random labels (a run that never trained also tests at chance),
    so an unfitted run fails here, naming its outcome, instead of holding.
    A record made before the test confusion matrix existed is not reused
    (claim_run's record_fields), so every record here has it.
    """
    require_fitted(record, f"{what}: not shown, random labels not fitted;")
    return record["test_accuracy"], stats.relabelling_p_value(record["test_confusion"])


@pytest.mark.paper_scope(*paper.TABLE_1_MODELS, source="Table 1")
def test_c2_test_accuracy_is_chance(claim_run, claim_figure, profile, model):
    """C2: after fitting random labels, test accuracy is chance.

    Threshold: the class-relabelling test does not reject chance at alpha =
    0.01 (harness.suite.stats.relabelling_p_value, exact over all 10! renamings).
    Derivation: the random training labels are exchangeable across classes,
    and training (a loss symmetric in the classes, an output layer initialised
    exchangeably) is equivariant to renaming them; so with no information
    about the true labels, every renaming of the predicted classes is equally
    likely, and the observed accuracy is compared with the accuracies of all
    renamings of the same confusion matrix (null mean exactly 1/K). Why not
    the binomial test: it treats the 10,000 test predictions as independent
    trials, but a net fitted to random labels maps similar images to one
    class, so groups of test images are right or wrong together and accuracy
    spreads far wider than binomial (measured on an H200: Inception at 10.93%
    gave binomial p = 0.0022 with no leak). The paper's values (9.78..10.61)
    would all hold under either test.
    """
    for seed in profile.seeds:
        record = claim_run(model, variant="random", seed=seed, record_fields=("test_confusion",))
        accuracy, p_value = chance_check(record, f"C2: {model} seed {seed}")
        claim_figure(
            "C2",
            f"test accuracy, random labels, {model}, seed {seed} (n_test={record['n_test']}, relabelling p = {p_value:.3g})",
            accuracy,
            f"relabelling p >= {ALPHA} (chance 1/K)",
            p_value >= ALPHA,
            paper=paper.RANDOM_LABELS_TEST_ACCURACY.get(model),
        )


@pytest.mark.beyond_paper(reason="the paper fits random labels on CIFAR-10 and ImageNet, not MNIST")
def test_c2_test_accuracy_is_chance_on_mnist(claim_run, claim_figure, profile):
    """C2 on MNIST (beyond the paper): the same relabelling test, on MNIST_EXTENSION's run."""
    record = claim_run(
        "mlp_1x512",
        dataset="mnist",
        variant="random",
        seed=profile.seeds[0],
        record_fields=("test_confusion",),
        **MNIST_EXTENSION,
    )
    accuracy, p_value = chance_check(record, "C2: mlp_1x512 on MNIST")
    claim_figure(
        "C2",
        f"test accuracy, random labels, MNIST (relabelling p = {p_value:.3g})",
        accuracy,
        f"relabelling p >= {ALPHA} (chance 1/K)",
        p_value >= ALPHA,
    )
