"""C3: random labels slow training down by only a small constant factor.

Paper (Figure 1a/1b, CIFAR-10): with the same hyperparameters, the time to
fit random labels is a small constant factor of the time to fit true labels;
the figure's values could not be read, so the ratio is measured and reported.

Paper scope: Inception, AlexNet and MLP 1x512 (Figure 1a shows Inception's
curves, Figure 1b all three); the other models run under --claims-extended.

Scale: the profile's (smoke: MLP 1x512, 5,000 images, seeds 0 and 1).

Where the verdict is declared: the paper tier only (VERDICT_TIERS). At the
smoke tier the per-seed ratios are reported and the verdict is skipped, with
the reason, because there it cannot fail in the direction that matters. On
5,000 images MLP 1x512 memorises the true labels too (100% train, about 41%
test): both runs fit by memorising, in about as many passes (27 vs 27, 35 vs
28; median ratio 0.9), so the ratio compares memorisation with memorisation,
not noise with real structure, which is what the claim bounds. And the pass
budget caps what it can measure: a random-label run that fits within the
150 passes against a true-label fit in 27 gives at most 150 / 27 = 5.6,
below MAX_SLOWDOWN; a slower one is out of budget and fails the premise
instead. Skipped rather than reported as a figure with threshold "reported":
a skip shows as one in the summary, the session file and the matrix, where
a "reported" figure would count as one that holds. Both runs must still fit
at every tier (the premise), so a random-label run that does not fit within
the budget fails C3 there too.
"""

import pytest

from harness.suite import paper, stats
from harness.suite.fixtures import require_fitted

# The tiers where the verdict can discriminate (derivation in the module docstring):
# on the full set the true labels' structure is learned first and random labels
# take clearly longer, so the ratio measures the cost of noise (one H100, passes
# true vs random: AlexNet 19 vs 61, MLP 3x512 29 vs 48, MLP 1x512 74 vs 129;
# ratios 1.66-3.21, ci/baselines/paper-h100.json).
VERDICT_TIERS = ("paper",)

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
    smoke tier measures 0.9) is reported, not failed. Premise: both runs of
    every seed fitted (steps to fit exist only then). Scale: the verdict is
    declared at VERDICT_TIERS only; elsewhere the per-seed ratios are reported
    and the test skips, saying why (module docstring).
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
    if profile.name not in VERDICT_TIERS:
        pytest.skip(
            f"C3's verdict is declared for the {', '.join(VERDICT_TIERS)} tier only: on the {profile.name} "
            f"tier's subsets true labels are memorised too, so the ratio (median {ratio:.3g}) compares "
            "memorisation with memorisation, and the pass budget caps it below the bound; the per-seed "
            "ratios are reported"
        )
    claim_figure(
        "C3",
        f"slowdown random/true, {model}, median of {len(ratios)} seeds",
        ratio,
        f"<= {MAX_SLOWDOWN}",
        ratio <= MAX_SLOWDOWN,
    )
