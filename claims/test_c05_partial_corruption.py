"""C5: partial label corruption interpolates between true and random labels.

Paper (Figure 1c, CIFAR-10): at every corruption level p the training error
reaches zero, and the test error rises steadily with p towards 90%.

Paper scope: Inception, AlexNet and MLP 1x512 (Figure 1c); the other models
run under --claims-extended.

Scale: the profile's (smoke: MLP 1x512, 5,000 images of the CIFAR-10 JPEG
copy, first seed; p in {0, 0.2, ..., 1}).
"""

import pytest

from harness.suite import paper, stats
from harness.suite.fixtures import require_fitted

LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# One-sided significance of the rising trend. Six levels admit 720 orderings;
# a perfectly rising series has p = 1/720, one swapped neighbour pair 6/720.
TREND_ALPHA = 0.01


def _runs(claim_run, model, seed):
    return [claim_run(model, variant="partial", corruption=p, seed=seed) for p in LEVELS]


@pytest.mark.paper_scope(*paper.FIGURE_1BC_MODELS, source="Figure 1c")
def test_c5_every_corruption_level_is_fitted(claim_run, claim_figure, profile, model):
    """C5: 100% training accuracy at every level p, within the pass budget (no tolerance)."""
    for p, record in zip(LEVELS, _runs(claim_run, model, profile.seeds[0])):
        claim_figure(
            "C5",
            f"train accuracy at p={p}, {model}",
            record["train_accuracy"],
            "== 1.0",
            record["outcome"] == "fitted",
            passes=record["passes"],
            check=False,  # require_fitted checks it, naming what happened to the run
        )
        require_fitted(record, f"C5: {model} p={p}")


@pytest.mark.paper_scope(*paper.FIGURE_1BC_MODELS, source="Figure 1c")
def test_c5_test_error_rises_with_corruption(claim_run, claim_figure, profile, model):
    """C5: test error rises steadily with p.

    Threshold: Kendall's tau between p and the final test error is positive
    with exact one-sided p-value <= 0.01 over the six levels: a trend test over
    all levels, not a chain of pairwise inequalities. At p = 1 the test
    accuracy must also be chance, the end point the paper's curve approaches:
    C2's class-relabelling test at alpha 0.01 (why not a binomial interval:
    claims/test_c01_c02_random_labels.py, test_c2_test_accuracy_is_chance).
    Premise: every run fitted. Figure 1c's test errors are those of nets that
    fit their training labels ("training error is 0"), and only those make
    the trend the claim's: runs that never trained (diverged in pass 1) all
    test at chance, and the end point would pass C2's test on any of them.
    """
    records = _runs(claim_run, model, profile.seeds[0])
    for p, record in zip(LEVELS, records):
        require_fitted(record, f"C5: {model} p={p}")
    errors = [1.0 - r["test_accuracy"] for r in records]
    p_value = stats.increasing_trend_p(LEVELS, errors)
    tau = stats.kendall_tau(LEVELS, errors)
    claim_figure(
        "C5",
        f"Kendall tau of test error vs p, {model} (errors {', '.join(f'{e:.3f}' for e in errors)})",
        tau,
        f"one-sided p = {p_value:.4f} <= {TREND_ALPHA}",
        p_value <= TREND_ALPHA,
    )
    end = claim_run(model, variant="partial", corruption=1.0, seed=profile.seeds[0], record_fields=("test_confusion",))
    require_fitted(end, f"C5: {model} p=1.0")
    chance_p = stats.relabelling_p_value(end["test_confusion"])
    claim_figure(
        "C5",
        f"test error at p=1, {model} (relabelling p = {chance_p:.3g})",
        errors[-1],
        f"chance: relabelling p >= {TREND_ALPHA}",
        chance_p >= TREND_ALPHA,
    )
