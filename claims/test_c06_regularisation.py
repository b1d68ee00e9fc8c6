"""C6: explicit regularisation is neither necessary nor sufficient.

Paper (Table 1, CIFAR-10): with random crop and weight decay both off the
models still generalise far above chance (test accuracy Inception 85.75,
AlexNet 76.07, MLP 3x512 52.39, MLP 1x512 50.51; chance 10); turning them on
moves test accuracy by a few points (largest gain: AlexNet with crop and
weight decay, 81.22, +5.15); random labels are still fitted with weight decay
on (Inception 100%, MLP 1x512 99.21%), except AlexNet, which "failed to
converge" with weight decay on random labels (coefficient unstated: swept
below, test_c6_weight_decay_sweep_finds_where_random_labels_stop_fitting).

Paper scope: Table 1's five models; the weight-decay sweep over AlexNet
alone, the model of the exception (section 3: "fails to converge"). Appendix
Table 4's Inception and MLP 1x512 are the models the paper shows still
fitting with weight decay: that is the "not sufficient" test, not the sweep;
the sweep on them (the smoke tier's MLP 1x512 included) runs under
--claims-extended, labelled beyond the paper.

Weight decay when on: 0.0005 (what reproductions use; unconfirmed). Crop: the
harness's random 28x28 crop of the image padded by 2 pixels (the paper's
colour perturbations are not reproduced).

Scale: the profile's. Paper: full CIFAR-10, Table 1's grid for each model
(crop x weight decay for Inception and AlexNet, weight decay on/off for the
others, as in the table). Smoke: MLP 1x512 on 5,000 images, seeds 0 and 1,
weight decay on/off: exactly MLP 1x512's rows of Table 1 (the table has no
crop rows for the MLPs, so the smoke tier trains none); the paper's numbers
are full-scale values, reported beside the subset's, not targets for it.

Premises: every run a figure reads trained without diverging, stalling or
being stopped (harness.suite.fixtures.require_trained); the true-label runs
of "not necessary" and "a few points" fitted as Table 1's runs did
(TABLE_1_FIT), the figures being Table 1's test accuracies of fitted nets.
"""

import pytest

from harness.core.config import RunConfig
from harness.core.models import MODEL_NAMES, MODELS
from harness.core.weight_decay import probe_weight_decay
from harness.sessions.files import REFERENCE_OPTIMIZER
from harness.suite import paper, stats
from harness.suite.fixtures import require_fitted, require_trained

WEIGHT_DECAY = 0.0005  # the "on" value: the paper gives none; reproductions' common choice
CHANCE = 0.1  # CIFAR-10's balanced test set

# Table 1: test accuracy (%) by (random crop, weight decay), true labels; and
# training accuracy (%) on random labels with weight decay on (AlexNet "failed
# to converge").
PAPER_TEST_ACCURACY = {model: paper.table1_true_label_test_accuracy(model) for model in MODEL_NAMES}
PAPER_RANDOM_LABELS_WEIGHT_DECAY_TRAIN = paper.RANDOM_LABELS_WEIGHT_DECAY_TRAIN

# "Far above chance": at least three times chance. The 99% binomial range of
# a chance-level accuracy at n_test = 10,000 ends at 10.8%, so 30% is tens of
# standard deviations past any chance fluctuation, and below the lowest
# unregularised accuracy in Table 1 (50.51) with room for the smoke tier's
# 5,000-image subsets (measured there: about 41%).
MIN_TEST_ACCURACY = 3 * CHANCE
# "A few points": the largest change any regulariser makes in Table 1 is
# +5.15 points (AlexNet, crop and weight decay); one point of seed-to-seed
# spread on top gives 6. A regulariser that moved test accuracy by more would
# make it (nearly) necessary, against the claim.
MAX_EFFECT = 0.06
# "Still fitted": the lowest training accuracy on random labels the paper
# reports as fitted with weight decay on is 99.21% (MLP 1x512); 99% of the
# training set memorised at random is memorisation beyond doubt.
MIN_FIT = 0.99
CROP_MODELS = ("inception", "alexnet")  # the models Table 1 trains with random crop
# Premise of the Table 1 comparisons: each true-label run fitted as Table 1's runs
# did, to at least the lowest training accuracy of the table's true-label rows
# (99.80%, MLP 1x512 with weight decay; harness.suite.paper). Why: Table 1 reports
# the test accuracy of nets that fit their training set; a run that did not (one
# that diverged in pass 1 tests at chance, and so does its pair, a "change" of 0)
# is not the table's experiment, and its difference from another says nothing of
# regularisers. Not stricter: an out-of-budget run at 99.85% counts, as the table's
# 99.82% and 99.90% did.
TABLE_1_FIT = paper.TRUE_LABELS_LOWEST_TRAIN_ACCURACY / 100


def _grid(model):
    """Table 1's (crop, weight decay) settings for a model, the all-off one excluded."""
    return [setting for setting in PAPER_TEST_ACCURACY[model] if setting != (False, False)]


def _settings(crop, weight_decay):
    return dict(augment="crop" if crop else "none", weight_decay=WEIGHT_DECAY if weight_decay else 0.0)


@pytest.mark.paper_scope(*paper.TABLE_1_MODELS, source="Table 1")
def test_c6_no_regulariser_is_needed_to_generalise(claim_run, claim_figure, profile, model):
    """C6 "not necessary": true labels, crop and weight decay off, test accuracy far above chance.

    Threshold: test accuracy >= MIN_TEST_ACCURACY (30%, three times chance;
    derivation above) for every seed of the profile. Premises: the run fitted
    to TABLE_1_FIT (a net that fits its training set and still generalises
    is the claim; derivation above), and its optimizer held no weight decay
    (an imported factory's own default would be a regulariser left on).
    """
    for seed in profile.seeds:
        record = claim_run(model, variant="true", seed=seed, record_fields=("optimizer_settings",))
        require_trained(
            record, f"C6: {model} true labels, no regularisers, seed {seed}", fitted=TABLE_1_FIT, no_weight_decay=True
        )
        accuracy = record["test_accuracy"]
        claim_figure(
            "C6",
            f"test accuracy, no regularisers, true labels, {model}, seed {seed} (n={record['n_train']})",
            accuracy,
            f">= {MIN_TEST_ACCURACY:.2f}",
            accuracy >= MIN_TEST_ACCURACY,
            paper=PAPER_TEST_ACCURACY[model][(False, False)],
        )


@pytest.mark.paper_scope(*paper.TABLE_1_MODELS, source="Table 1")
def test_c6_regularisers_move_test_accuracy_by_a_few_points(claim_run, claim_figure, profile, model):
    """C6 "a few points": each Table 1 regulariser setting against all-off, paired by seed.

    Threshold: |median over seeds of (test accuracy with the setting - test
    accuracy with everything off)|, the systematic effect, is at most
    MAX_EFFECT (6 points;
    derivation above). Where Table 1 shows a clear gain (random crop, on
    Inception and AlexNet: +3.3 and +5.2 points with weight decay) the gain
    must also be positive ("regularisers help"); weight decay alone moves
    Table 1's numbers by -0.12..+1.29 points, too little to claim a sign.
    Premise: both runs of every pair fitted to TABLE_1_FIT, as Table 1's did
    (derivation above): two runs that never trained test alike, and their
    change of 0 would hold here without showing anything.
    """
    plain = {
        seed: claim_run(model, variant="true", seed=seed, record_fields=("optimizer_settings",))
        for seed in profile.seeds
    }
    for seed, record in plain.items():
        require_trained(
            record, f"C6: {model} true labels, no regularisers, seed {seed}", fitted=TABLE_1_FIT, no_weight_decay=True
        )
    for crop, weight_decay in _grid(model):
        name = f"crop {'on' if crop else 'off'}, weight decay {'on' if weight_decay else 'off'}"
        changes = []
        for seed in profile.seeds:
            regularised = claim_run(model, variant="true", seed=seed, **_settings(crop, weight_decay))
            require_trained(regularised, f"C6: {model} true labels, {name}, seed {seed}", fitted=TABLE_1_FIT)
            changes.append(regularised["test_accuracy"] - plain[seed]["test_accuracy"])
        effect = stats.median(changes)
        paper_effect = PAPER_TEST_ACCURACY[model][(crop, weight_decay)] - PAPER_TEST_ACCURACY[model][(False, False)]
        claim_figure(
            "C6",
            f"test accuracy change from regularisers ({name}), {model}, median of "
            f"{len(changes)} seeds (each: {', '.join(f'{c:+.4f}' for c in changes)})",
            effect,
            f"|change| <= {MAX_EFFECT}" + (" and > 0" if crop else ""),
            abs(effect) <= MAX_EFFECT and (effect > 0 or not crop),
            paper=round(paper_effect, 2),
            key=f"C6 effect crop={crop} weight_decay={weight_decay} {model}",
        )


@pytest.mark.paper_scope(*paper.TABLE_1_MODELS, source="Table 1")
def test_c6_weight_decay_does_not_prevent_fitting_random_labels(claim_run, claim_figure, profile, model):
    """C6 "not sufficient": random labels are still fitted with weight decay 0.0005 on.

    Threshold: training accuracy >= MIN_FIT (99%; derivation above) within the
    profile's pass budget, every seed. AlexNet is the paper's exception and
    has its own test below. Premise: the run trained (did not diverge, stall
    or stop); a run that did not fit within the budget is the claim failing,
    and its figure says so.
    """
    if model == "alexnet":
        pytest.skip(
            "AlexNet with weight decay fails to converge on random labels in the paper; "
            "tested by test_c6_weight_decay_sweep_finds_where_random_labels_stop_fitting"
        )
    for seed in profile.seeds:
        record = claim_run(model, variant="random", seed=seed, weight_decay=WEIGHT_DECAY)
        require_trained(record, f"C6: {model} random labels, weight decay {WEIGHT_DECAY}, seed {seed}")
        claim_figure(
            "C6",
            f"train accuracy, random labels, weight decay {WEIGHT_DECAY}, {model}, seed {seed}",
            record["train_accuracy"],
            f">= {MIN_FIT}",
            record["train_accuracy"] >= MIN_FIT,
            paper=PAPER_RANDOM_LABELS_WEIGHT_DECAY_TRAIN.get(model),
            passes=record["passes"],
            outcome=record["outcome"],
        )


# AlexNet's statement, "fails to converge on random labels with weight decay on",
# names no coefficient (reproductions pick 0.0005 for convnets, 0.0001 for MLPs),
# and at 0.0005 AlexNet fits random labels exactly (73 and 74 passes on an H100 and
# an H200). So the coefficient is swept in ascending order: the statement holds if
# some coefficient stops the random-label fit while true-label test accuracy stays
# within MAX_EFFECT of no weight decay; the smallest such coefficient (the
# threshold) is reported with the accuracy there. The grid doubles or so per step
# from reproductions' 0.0005 and goes past 0.01 because MLP 1x512 on the smoke tier
# (an extension, beyond the paper's scope) still fits random labels there (measured
# on 2 cores, 5,000 images, seed 0: fitted in 33, 35, 35, 38, 83 passes at
# 0.0005..0.01; 99.48% after 150 passes at 0.02; 76.74% at 0.05).
# Convention: these are coefficients of SGD's coupled L2 (c * w added to the gradient) at the
# paper's learning rate and momentum 0.9. Another optimizer's decay is measured first
# (harness.core.weight_decay): one whose shrink is proportional to the coefficient (AdamW's
# decoupled decay) is swept at the coefficients that shrink its weights per step as the paper's
# SGD shrinks them at these; one that ignores weight decay, or whose shrink does not scale with
# the coefficient (Adam's coupled L2 through a normalised step), is not comparable, and says so.
WEIGHT_DECAY_SWEEP = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05)


def _sweep_for(config: RunConfig, model: str) -> list[tuple[float, str]]:
    """(coefficient the run uses, its name in the figure) per WEIGHT_DECAY_SWEEP value, for `config`'s optimizer.

    The paper's SGD runs the sweep as written. Another optimizer runs it scaled
    to the paper SGD's decay (the probe's factor), or skips the test with
    "not comparable: <what the probe measured>".
    """
    if config.optimizer == REFERENCE_OPTIMIZER:
        return [(c, f"{c:g}") for c in WEIGHT_DECAY_SWEEP]
    found = probe_weight_decay(
        config.optimizer,
        config.learning_rate,
        WEIGHT_DECAY_SWEEP,
        MODELS[model].paper_lr,
        paper_momentum=config.momentum,
    )
    if found.convention != "proportional":
        pytest.skip(f"not comparable: {found.reason}")
    matched = "decay matched to the paper's SGD"
    return [(c * found.factor, f"coefficient {c:g} x {found.factor:.3g} ({matched})") for c in WEIGHT_DECAY_SWEEP]


@pytest.mark.paper_scope("alexnet", source="section 3: AlexNet with weight decay fails to converge on random labels")
def test_c6_weight_decay_sweep_finds_where_random_labels_stop_fitting(claim_run, claim_figure, profile, model):
    """C6, AlexNet's exception as a sweep: the weight decay that stops random labels, and its cost.

    Convention: WEIGHT_DECAY_SWEEP holds coefficients of SGD's coupled L2 at
    the paper's learning rate and momentum; another optimizer is swept at the
    coefficients that match its measured decay to the paper SGD's, or the
    test skips as "not comparable" with what was measured (`_sweep_for`).
    Random-label runs (first seed) in WEIGHT_DECAY_SWEEP's ascending order,
    each fitted or not: training accuracy >= MIN_FIT (99%, C6's "still
    fitted") within the pass budget. The first coefficient not fitted is the
    threshold, and the sweep stops there: the verdict needs the smallest one,
    and every run above it would cost the whole budget. At the threshold, the
    true-label run gives the test accuracy change from no weight decay.
    Threshold of the claim: a threshold exists in the sweep, and the change
    there is at least -MAX_EFFECT (6 points, C6's "a few points"; derivation
    above). Premises: random labels without weight decay are fitted (C1),
    else nothing is shown; every run of the sweep trained without diverging,
    stalling or being stopped, since only a run that trained and still fell
    short of MIN_FIT shows weight decay stopping the fit (a run that diverged
    is not one that "fails to converge" because of weight decay, and would
    otherwise be taken for the threshold); the true-label run without weight
    decay fitted to TABLE_1_FIT, and the one at the threshold trained (it need
    not fit: weight decay that strong may slow it past the budget).
    """
    seed = profile.seeds[0]
    unregularised = claim_run(model, variant="random", seed=seed)
    require_fitted(unregularised, f"C6 sweep: {model} random labels without weight decay (not shown)")
    sweep = _sweep_for(RunConfig.from_dict(unregularised["config"]), model)
    threshold = None
    for weight_decay, name in sweep:
        random = claim_run(model, variant="random", seed=seed, weight_decay=weight_decay)
        require_trained(random, f"C6 sweep: {model} random labels, weight decay {name}")
        fitted = random["train_accuracy"] >= MIN_FIT
        claim_figure(
            "C6",
            f"weight decay sweep, {model}, {name}: random-label train accuracy ({random['passes']} passes)",
            random["train_accuracy"],
            f">= {MIN_FIT}: still fitted; below: the threshold",
            True,
            outcome=random["outcome"],
        )
        if not fitted:
            threshold = weight_decay
            break
    if threshold is None:
        claim_figure(
            "C6",
            f"weight decay sweep, {model}: smallest coefficient that stops random labels",
            None,
            f"one of {', '.join(f'{c:g}' for c, _ in sweep)}",
            False,
            check=False,  # the failure below says it in the claim's words
        )
        pytest.fail(f"C6 sweep: {model} fits random labels at every weight decay up to {sweep[-1][1]}", pytrace=False)
    plain = claim_run(model, variant="true", seed=seed)
    require_trained(plain, f"C6 sweep: {model} true labels without weight decay", fitted=TABLE_1_FIT)
    true = claim_run(model, variant="true", seed=seed, weight_decay=threshold)
    require_trained(true, f"C6 sweep: {model} true labels, weight decay {threshold:g}")
    change = true["test_accuracy"] - plain["test_accuracy"]
    holds = change >= -MAX_EFFECT
    claim_figure(
        "C6",
        f"weight decay sweep, {model}: true-label test accuracy change at the threshold "
        f"{threshold:g} (test {true['test_accuracy']:.4f})",
        change,
        f">= -{MAX_EFFECT}",
        holds,
        key=f"C6 sweep threshold {model}",
        weight_decay=threshold,
        paper="fails to converge" if model == "alexnet" else None,
    )
