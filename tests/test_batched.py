"""Batched MLP runs: the same runs as one by one, up to the rounding of batched products."""

import pytest
import torch

from harness.bench.batched import check_batchable, fit_batched
from harness.core.config import RunConfig
from harness.core.train import fit


def config(tiny_npz, **changes):
    values = dict(data=f"npz:{tiny_npz}", model="mlp_1x512", max_passes=40, device="cpu", batch_size=32)
    values.update(changes)
    return RunConfig(**values)


def test_batched_runs_equal_the_single_runs(tiny_npz):
    """Seeds, variants and levels may differ; each run keeps its data, init, order and stopping pass."""
    configs = [
        config(tiny_npz, variant="true", seed=0),
        config(tiny_npz, variant="random", seed=1, max_passes=40),
        config(tiny_npz, variant="partial", corruption=0.5, seed=2),
    ]
    batched = fit_batched(configs)
    for single_config, together in zip(configs, batched):
        alone = fit(single_config)
        assert together["loop"] == "batched" and together["config"]["loop"] == "batched"
        assert together["outcome"] == alone["outcome"]
        torch.testing.assert_close(
            torch.tensor(together["curves"]["loss"][:3]),
            torch.tensor(alone["curves"]["loss"][:3]),
            rtol=1e-4,
            atol=1e-6,
        )
        assert (
            abs(len(together["curves"]["loss"]) - len(alone["curves"]["loss"])) <= 1
        )  # the same fitting pass, give or take rounding
        assert together["labels_changed"] == alone["labels_changed"]


def test_a_fitted_run_stops_while_the_others_go_on(tiny_npz):
    quick, slow = fit_batched([config(tiny_npz, variant="true"), config(tiny_npz, variant="random", seed=3)])
    assert quick["outcome"] == "fitted"
    assert len(quick["curves"]["loss"]) == quick["passes_to_fit"] < len(slow["curves"]["loss"])


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(model="alexnet"), "for the MLPs"),
        (dict(optimizer="adam"), "built-in SGD"),
        (dict(dropout=0.5), "no dropout"),
    ],
)
def test_only_alike_mlp_runs_are_batched(tiny_npz, changes, message):
    with pytest.raises(ValueError, match=message):
        check_batchable([config(tiny_npz, **changes)])
    with pytest.raises(ValueError, match="must agree on max_passes"):
        check_batchable([config(tiny_npz), config(tiny_npz, max_passes=3)])


def test_batched_records_have_their_own_key(tiny_npz):
    """A batched run is not bit-identical to a single one, so it never answers for it in the store."""
    single = config(tiny_npz)
    assert single.key("d") != single.replace(loop="batched").key("d")
    with pytest.raises(ValueError, match="fit_batched"):
        fit(single.replace(loop="batched"))


def test_batched_runs_carry_the_evidence_a_single_run_measures(tiny_npz):
    """The same data items, measured the same way; the weight decay is what the batched update applies."""
    configs = [config(tiny_npz, variant=variant, max_passes=1, weight_decay=5e-4) for variant in ("random", "true")]
    for together, single_config in zip(fit_batched(configs), configs):
        alone = fit(single_config)
        for name in ("labels", "label_flags", "test_labels", "pixels", "train_test_overlap", "n_train", "n_test"):
            assert together["evidence"][name] == alone["evidence"][name]
        decay = together["evidence"]["weight_decay"]
        assert decay["holds"] and decay["measured"]["batched_update"] == pytest.approx(single_config.weight_decay)
