"""C3: random labels slow training down by only a small constant factor.

Paper (Figure 1a/1b, CIFAR-10): with the same hyperparameters, the time to
fit random labels is a small constant factor of the time to fit true labels;
the figure's values could not be read, so the ratio is measured and reported.

Paper scope: Inception, AlexNet and MLP 1x512 (Figure 1a shows Inception's
curves, Figure 1b all three); the other models run under --claims-extended.

Scale: the profile's (smoke: MLP 1x512, 5,000 images, seeds 0 and 1).
"""

import pytest

from harness.suite import paper, stats
from harness.suite.fixtures import require_fitted

# Declared reading of "a small constant factor", fixed before measuring: at
# most one order of magnitude. The paper gives no number; its Figure 1a plots
# both curves on one linear axis of a few thousand steps, where the random
# label curve reaches zero loss within a few multiples of the true one. A
# ratio above 10 would mean "memorising noise is much harder", the opposite
# of the claim.
MAX_SLOWDOWN = 10.0


@pytest.mark.paper_scope(*paper.FIGURE_1BC_MODELS, source="Figure 1a and 1b")
def test_c3_random_labels_cost_a_small_constant_factor(claim_run, claim_figure, profile, model):
    """C3: steps to zero training error, random / true labels, median over seeds.

    Threshold: both runs fit, and the median ratio of passes to 100% training
    accuracy is at most MAX_SLOWDOWN (10; derivation above). The same
    hyperparameters are used for both label sets, as in the paper. The claim
    bounds the cost of noise from above; whether noise is slower at all is
    A2's claim (claims/test_a1_a3_memorisation.py), so a ratio below 1 (the
    smoke tier measures 0.9) is reported, not failed.
    """
    ratios = []
    for seed in profile.seeds:
        true = claim_run(model, variant="true", seed=seed)
        random = claim_run(model, variant="random", seed=seed)
        require_fitted(true, f"C3: {model} true labels, seed {seed}")
        require_fitted(random, f"C3: {model} random labels, seed {seed}")
        ratios.append(random["steps_to_fit"] / true["steps_to_fit"])
        claim_figure(
            "C3",
            f"passes to fit, {model}, seed {seed}: true {true['passes_to_fit']}, random {random['passes_to_fit']}",
            ratios[-1],
            "ratio (reported)",
            True,
            seconds_true=true["train_seconds"],
            seconds_random=random["train_seconds"],
        )
    ratio = stats.median(ratios)
    claim_figure(
        "C3",
        f"slowdown random/true, {model}, median of {len(ratios)} seeds",
        ratio,
        f"<= {MAX_SLOWDOWN}",
        ratio <= MAX_SLOWDOWN,
    )
