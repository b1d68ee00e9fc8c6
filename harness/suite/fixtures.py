"""The claim-author API: the fixtures and helpers a claim test uses.

A claim test lives in ``claims/test_<claim>_<topic>.py`` and tests one
sentence of Zhang et al. (ICLR 2017). What it may rely on:

Naming: the test's name starts with the claim id, ``test_c3_...`` for C3,
``test_a1_...`` for the appendix's A1 (`harness.sessions.files.claim_of_test` reads
``test_<letter><number>_``). The id orders the summary, the claims matrix
and the report, and places a test that failed before declaring a figure.
The id passed to `claim_figure` is the same, in capitals ("C3").

Fixtures:

- ``profile``: the scale tier (smoke on a CPU, paper on a GPU): its models
  (``profile.cifar_models``), seeds (``profile.seeds``) and run settings.
- ``model``: a test that takes it runs once per model of the profile; mark
  it ``@pytest.mark.paper_scope(*models, source="Figure 1b")`` and the
  models the paper does not show run only under --claims-extended; a whole
  test the paper does not make is ``@pytest.mark.beyond_paper(reason=...)``.
- ``claim_run(model, dataset="cifar10", record_fields=(), **changes)``: the
  run record of one training run (trained once, then reused), with the
  optimizer under test; the test runs once per optimizer.
- ``data_spec(dataset)``: the dataset's spec, skipping the test when the
  data is absent; ``mnist_arrays``: MNIST as numpy arrays, for theory claims.
- ``claim_figure(claim, figure, measured, threshold, holds, check=True, **context)``:
  declares one figure of the claim. It is recorded for the summary table,
  the session file and the matrix, printed, and it is the check: a figure
  that does not hold fails the test at once, in one line naming the claim,
  the figure, the measured value and the threshold. ``check="deferred"``
  records a failing figure and fails the test with the next figure declared
  with the default check, or when the test's body ends: figures declared
  together are all recorded before any of them fails the test (declare
  them deferred, the last one with the default check). ``check=False``
  only reports: a figure with threshold "reported", or one whose verdict
  another check states better (`require_fitted` after a "train accuracy
  == 1.0" figure names what happened to the run).
  Do not restate a figure's verdict in an ``assert``; assert only what no
  figure declares (an invariant of the method, a planted fault found).
  ``scope="Arpit et al. (2017)"`` in the context marks a claim another paper
  makes, read from this paper's runs (`harness.suite.paper.ARPIT_ET_AL`);
  a test beyond the paper's scope adds "beyond the paper" to it. Every
  display labels a figure with its scope ("... [Arpit et al. (2017)]").
- ``require_fitted(record, "C3: mlp_1x512 true labels, seed 0")`` (import it
  from this module): fails the test in one line unless the run fitted.
- ``require_trained(record, what, *, fitted=False, min_passes=0, min_test_readings=0)``:
  the premises of a claim that reads a run, checked before its figures mean
  anything; fails the test in one line naming what happened. Always: the run
  did not diverge, stall, stop interrupted or refuse to train (not
  fittable). ``fitted=True``: it reached its target accuracy; a number:
  its final training accuracy is at least that (a paper's level of fit,
  Table 1's 99.80%, where an out-of-budget run counts as the paper's did).
  ``min_passes``: it trained at least that many passes, or fitted sooner (a
  claim that reads a pass). ``min_test_readings``: its test-accuracy curve
  has at least that many readings (a claim that reads a curve;
  ``count_test_readings(record)`` counts them). Each premise a claim passes
  is a module constant derived like a threshold.

Premises: a claim that reads a training run states, with `require_trained`
(or `require_fitted`), how the run must have trained for its figure to be
evidence, and fails on them: a run that diverged in its first pass tests
at chance, changes nothing between two settings and has one test reading,
and C6's "a few points", C7 and A2 held on such runs before they stated
their premises (tests/test_claim_premises.py plants them). Where a figure is
bounded on the side where the claim holds (best - final test accuracy is
>= 0 by construction), the premise is what lets it fail, and a comment
beside it says how the claim can fail.

Thresholds: fix each threshold before measuring, as a module constant
(``MAX_SLOWDOWN = 10.0``) with a comment deriving it from the paper's words
or figures, and say why that number and not another. The test's docstring
starts with the claim id and what is measured, then a "Threshold:" paragraph
stating the pass rule in words, the constant it uses and what a figure on
the other side would mean (see claims/test_c03_slowdown.py). The module's
docstring quotes the paper, its scope (which models and figures) and the
scale the profile runs at.

Paper numbers live in `harness.suite.paper` (Table 1, the models each
figure shows); take them from there, never retype them. Statistics (medians,
trend and chance tests, binomial intervals) live in `harness.suite.stats`;
a test's significance level is a module constant (``ALPHA``), fixed and
derived like a threshold.
"""

from __future__ import annotations

import warnings

import pytest

from harness.core.config import RunConfig
from harness.core.data import DataError, find_data_spec
from harness.core.evidence import ManipulationError
from harness.core.formatting import scope_beyond_the_paper
from harness.core.models import MODELS
from harness.core.optim import spec_kwargs
from harness.core.runner import ResultsNotSavedWarning, cached_fit
from harness.suite import summary as claims_summary
from harness.suite.session import SESSION
from harness.suite.summary import CLAIM_PROPERTY, RUN_PROPERTY

# The lines of the figures declared with check="deferred" that do not hold,
# kept on the test item until the next checked figure or the end of its body.
_DEFERRED_FAILURES = pytest.StashKey[list]()


@pytest.fixture(scope="session")
def profile(request):
    """The scale tier this session runs (harness.core.config.Profile)."""
    return request.config.stash[SESSION].profile


@pytest.fixture(scope="session")
def data_spec(request):
    """Function: dataset name -> data spec, skipping the test when the data is absent."""

    def spec_for(dataset: str) -> str:
        spec, why = find_data_spec(dataset, request.config.getoption("--allow-download"))
        if spec is None:
            pytest.skip(f"{claims_summary.DATA_MISSING}: {why}")  # measured nothing: the session is not green
        return spec

    return spec_for


@pytest.fixture
def claim_run(request, profile, data_spec, optimizer_spec):
    """Function: (model, dataset, record_fields=(), **config changes) -> run record, reused across tests.

    record_fields: record fields the claim needs; a stored record made before
    they existed is not reused (the run is trained anew).

    Runs use the optimizer under test (the test's `optimizer_spec` parameter),
    at the learning rate --tune-lr chose for it where it chose one; a
    convolutional model's runs use --convnet-precision where it is given.
    Under --claims-collect, or past --claims-deadline, a run not recorded
    skips the test instead of training (harness.suite.session).
    """
    claims = request.config.stash[SESSION]
    convnet_precision = request.config.getoption("--convnet-precision")
    tuned_lr = claims.tuned_lr.get(optimizer_spec)
    bases: dict[tuple, RunConfig] = {}  # the profile's config per (model, data): what a run's label is read against

    def run(model: str | None = None, dataset: str = "cifar10", record_fields: tuple[str, ...] = (), **changes) -> dict:
        changes.setdefault("optimizer", optimizer_spec)
        if tuned_lr is not None and changes["optimizer"] == optimizer_spec:
            changes.setdefault("lr", tuned_lr)  # one lr for every variant, chosen once by --tune-lr
        if request.config.getoption("--device"):
            changes.setdefault("device", request.config.getoption("--device"))
        model = model or profile.cifar_models[0]
        if convnet_precision and MODELS[model].convnet:
            changes.setdefault("precision", convnet_precision)
        data = data_spec(dataset)
        config = profile.config(model, data=data, **changes)
        base = bases.setdefault((model, data), profile.config(model, data=data))
        label = run_label(config, base, dataset)
        try:
            # Under --claims-fresh a record counts only if this session made it: each
            # shared run is trained once, by whichever worker reaches it first.
            record = fit_reporting_unsaved(
                config, claims.fresh_since, record_fields, before_training=claims.before_training(request.node, label)
            )
            failure = None
        except DataError as error:
            failure = f"data error: {error}"
        except ManipulationError as error:  # the harness did not do what the config says: no figure from it
            failure = f"run refused: {error}"
        if failure is not None:  # failed outside the except block: one line, without the chained error
            pytest.fail(failure, pytrace=False)
        request.node.user_properties.append((RUN_PROPERTY, {**claims_summary.run_entry(record), "label": label}))
        return record

    return run


def run_label(config: RunConfig, base: RunConfig, dataset: str) -> str:
    """'mlp_1x512 partial p=0.4 seed 0 weight_decay=0.0005': model, variant, seed, then what differs from `base`.

    base: the profile's config for the model (what the run's settings are changed from).
    """
    variant = f"partial p={config.corruption:g}" if config.variant == "partial" else config.variant
    words = [config.model, variant, f"seed {config.seed}"]
    if dataset != "cifar10":
        words.append(dataset)
    shown_elsewhere = ("model", "variant", "corruption", "seed", "data")
    for name, value in config.to_dict().items():
        if name not in shown_elsewhere and value != getattr(base, name):
            words.append(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}")
    return " ".join(words)


def require_fitted(record: dict, what: str) -> None:
    """Fail the calling claim test in one line unless `record`'s run fitted.

    `what` names the run in the claim's words, e.g. "C1: inception seed 0";
    the failure reads "C1: inception seed 0 diverged: training loss became
    nan in pass 3 (lr 0.1)", with no traceback: the outcome is the finding,
    not a bug in the test. The same as ``require_trained(record, what, fitted=True)``.
    """
    require_trained(record, what, fitted=True)


# Outcomes after which a run's readings are evidence of nothing a claim reads: its
# loss blew up, no parameter moved, it was stopped, or its data cannot be fitted.
FAILED_RUN_OUTCOMES = ("diverged", "stalled", "interrupted", "not_fittable", "error")


def require_trained(
    record: dict,
    what: str,
    *,
    fitted: bool | float = False,
    min_passes: int = 0,
    min_test_readings: int = 0,
    no_weight_decay: bool = False,
) -> None:
    """Fail the calling claim test in one line unless `record`'s run trained as the claim needs.

    The premises, checked in this order, the first one missed failing the test:

    - always: the run did not diverge, stall, stop interrupted or refuse to
      train (FAILED_RUN_OUTCOMES): "C6: mlp_1x512 seed 0 diverged: training
      loss became nan in pass 1 (lr 10)";
    - fitted=True: it reached its target accuracy (as `require_fitted`); a
      number in (0, 1]: its final training accuracy is at least that, whatever
      its outcome ("... did not fit: training accuracy 95.0000% after 150
      passes (lr 0.01); the claim needs 99.80% training accuracy");
    - min_passes: it trained at least that many passes, or fitted sooner
      ("A3: ... trained 4 passes (did not fit), the claim reads pass 10");
    - min_test_readings: its test-accuracy curve holds at least that many
      readings ("C7: mlp_1x512 seed 0 has 1 test reading, the claim needs at
      least 3");
    - no_weight_decay: its optimizer's param groups held no weight decay
      (``optimizer_settings``): an imported factory's own default (0.01, 0.1)
      would be a regulariser the claim says is off ("C6: ... the optimizer
      keeps weight decay 0.01 ... give the spec weight_decay=0").

    `what` names the run in the claim's words, as for `require_fitted`. No
    traceback: a premise missed is the finding, not a bug in the test.
    """
    outcome = record["outcome"]
    if outcome in FAILED_RUN_OUTCOMES or (fitted is True and outcome != "fitted"):
        pytest.fail(unfitted_run_line(record, what), pytrace=False)
    if not isinstance(fitted, bool) and record["train_accuracy"] < fitted:
        line = (
            unfitted_run_line(record, what)
            if outcome != "fitted"
            else f"{what} reached {record['train_accuracy']:.4%} training accuracy (its target)"
        )
        pytest.fail(f"{line}; the claim needs {fitted:.2%} training accuracy", pytrace=False)
    if record["passes"] < min_passes and outcome != "fitted":
        passes = record["passes"]
        pytest.fail(
            f"{what} trained {passes} pass{'es' if passes != 1 else ''} "
            f"({_OUTCOME_WORDS.get(outcome, outcome)}), the claim reads pass {min_passes}",
            pytrace=False,
        )
    if no_weight_decay:
        values = {group.get("weight_decay") for group in record.get("optimizer_settings") or []}
        decay = sorted(v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and v != 0)
        if decay:
            spec = RunConfig.from_dict(record["config"]).optimizer
            pytest.fail(
                f"{what}: the optimizer keeps weight decay {', '.join(f'{d:g}' for d in decay)} in its param groups, "
                f"though the run asks for none ({spec}'s own default): give the spec weight_decay=0, e.g. "
                f"'{spec.split('(')[0]}(weight_decay=0)'",
                pytrace=False,
            )
    readings = count_test_readings(record)
    if readings < min_test_readings:
        pytest.fail(
            f"{what} has {readings} test reading{'s' if readings != 1 else ''}, "
            f"the claim needs at least {min_test_readings}",
            pytrace=False,
        )


def count_test_readings(record: dict) -> int:
    """How many passes of the run measured test accuracy (its curve's entries that are not None)."""
    return sum(value is not None for value in record["curves"]["test_accuracy"])


_OUTCOME_WORDS = {
    "diverged": "diverged",
    "out_of_budget": "did not fit",
    "interrupted": "was interrupted",
    "not_fittable": "is not fittable",
    "stalled": "stalled",
    "error": "failed with an error",
}


def unfitted_run_line(record: dict, what: str) -> str:
    """One line: the run, what happened to it, the trainer's reason and the initial learning rate."""
    config = RunConfig.from_dict(record["config"])
    lr, spec_lr = config.learning_rate, spec_kwargs(config.optimizer).get("lr")
    if lr is not None:
        rate = f"lr {lr:g}"
    elif isinstance(spec_lr, (int, float)):
        rate = f"lr {spec_lr:g}, set in the optimizer spec"
    else:
        rate = "the optimizer factory's own default lr"
    said = f"{record['message']} " if record.get("message") else ""
    outcome = _OUTCOME_WORDS.get(record["outcome"], record["outcome"])
    return f"{what} {outcome}: {said}({rate})"


@pytest.fixture(scope="session")
def mnist_arrays(data_spec):
    """MNIST as uint8 numpy arrays (train_x (60000, 28, 28), ...), for the theory claims."""
    from harness.core.prepare import load_raw_cached

    raw = load_raw_cached(data_spec("mnist"))
    return {
        "train_x": raw.train_x[..., 0],
        "train_y": raw.train_y,
        "test_x": raw.test_x[..., 0],
        "test_y": raw.test_y,
        "source": raw.source,
    }


@pytest.fixture
def claim_figure(request, record_property):
    """Function to declare a claim's figure and check it: see the module's docstring.

    The figure is recorded before its verdict can fail the test, so a failed
    claim still shows in the summary table, the session file and the matrix.
    record_property travels from xdist workers to the controller, so the
    summary sees every worker's figures.
    """

    def declare(claim: str, figure: str, measured, threshold: str, holds: bool, *, check=True, **context) -> None:
        if check not in (True, False, "deferred"):
            raise ValueError(f"claim_figure: check is True, False or 'deferred', not {check!r}")
        if request.node.get_closest_marker("beyond_paper") is not None:
            context["scope"] = scope_beyond_the_paper(context.get("scope"))
        callspec = getattr(request.node, "callspec", None)
        optimizer = callspec.params.get("optimizer_spec") if callspec else None
        record_property(
            CLAIM_PROPERTY, claims_summary.figure_entry(claim, figure, measured, threshold, holds, optimizer, context)
        )
        line = claims_summary.declared_line(claim, figure, measured, threshold, holds)
        print(line)
        if check is False:
            return
        failed = request.node.stash.setdefault(_DEFERRED_FAILURES, [])
        if not holds:
            failed.append(line)
        if check is True and failed:
            request.node.stash[_DEFERRED_FAILURES] = []
            # No traceback: the figure is the finding, not a bug in the test.
            pytest.fail("\n".join(failed), pytrace=False)

    return declare


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fail a test whose body ended with deferred figures that do not hold, one line each.

    An exception of the body itself comes first, as an assert after the
    figures did before claim_figure checked them.
    """
    result = yield
    failed = item.stash.get(_DEFERRED_FAILURES, [])
    if failed:
        pytest.fail("\n".join(failed), pytrace=False)
    return result


def fit_reporting_unsaved(
    config: RunConfig, fresh_since: float | None, required: tuple[str, ...] = (), *, before_training=None
) -> dict:
    """cached_fit, with the store's warning about an unsaved record left to the terminal summary.

    before_training: cached_fit's hook (harness.suite.session.ClaimsSession.before_training's).

    The summary lists unsaved records once for the whole session; the same
    warning per run would repeat it. Warnings about anything else (or about
    a record that was saved after all) are passed on unchanged.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = cached_fit(config, fresh_since=fresh_since, required=required, before_training=before_training)
    for warning in caught:
        if issubclass(warning.category, ResultsNotSavedWarning) and not record["saved"]:
            continue
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return record
