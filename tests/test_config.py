"""RunConfig: validation, profiles, and the hash that names a run."""

import pytest

from harness.config import PROFILES, RunConfig, get_profile


def test_label_variants_with_equal_levels_are_one_run():
    """true == partial at p=0 and random == partial at p=1: the store must reuse, not retrain."""
    fp = "data|sha256:x"
    assert RunConfig(variant="true").key(fp) == RunConfig(variant="partial", corruption=0.0).key(fp)
    assert RunConfig(variant="random").key(fp) == RunConfig(variant="partial", corruption=1.0).key(fp)
    assert RunConfig(variant="true").key(fp) != RunConfig(variant="random").key(fp)
    assert RunConfig(variant="partial", corruption=0.2).key(fp) != RunConfig(variant="partial", corruption=0.4).key(fp)


def test_key_follows_the_data_bytes_not_the_path():
    a = RunConfig(data="npz:/one/place.npz")
    b = RunConfig(data="npz:/another/place.npz")
    assert a.key("same") == b.key("same")
    assert a.key("same") != a.key("other")


def test_key_ignores_device_index_and_unset_lr_equals_paper_lr():
    assert RunConfig(device="cuda:0").key("d") == RunConfig(device="cuda:1").key("d")
    assert RunConfig(device="cuda").key("d") != RunConfig(device="cpu").key("d")
    assert RunConfig(model="mlp_1x512").key("d") == RunConfig(model="mlp_1x512", lr=0.01).key("d")
    assert RunConfig(model="inception").learning_rate == 0.1


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(variant="noise"), "unknown variant"),
        (dict(variant="partial", corruption=1.5), "corruption level"),
        (dict(corruption=-0.1), "corruption level"),
        (dict(model="resnet"), "unknown model"),
        (dict(init="xavier"), "unknown init"),
        (dict(precision="fp16"), "unknown precision"),
        (dict(batch_size=0), "batch_size"),
        (dict(n_train=0), "n_train"),
        (dict(target_accuracy=0.0), "target_accuracy"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(changes, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**changes)


def test_profiles_override_defaults_and_explicit_changes_win():
    paper = get_profile("paper")
    assert paper.config("mlp_1x512").lr_decay == 0.99  # the documented second schedule
    assert paper.config("alexnet").lr_decay == 0.95  # the paper's
    assert paper.config("alexnet", lr_decay=0.9).lr_decay == 0.9
    assert PROFILES["smoke"].config("mlp_1x512").n_train == 5000
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("huge")
    with pytest.raises(ValueError, match="unknown config field"):
        RunConfig().replace(colour="red")


def test_config_round_trips_through_a_dict():
    config = RunConfig(variant="partial", corruption=0.4, seed=3)
    assert RunConfig.from_dict(config.to_dict()) == config


def test_keys_of_existing_runs_are_unchanged_by_the_deterministic_field():
    """Committed records are found by these hashes: a new field left at its default must not move them."""
    identity = "data|sha256:x"
    assert RunConfig().key(identity) == "a5ea13519ebe44f8"
    assert RunConfig(model="alexnet", device="cuda", variant="random", seed=1).key(identity) == "597ef724ecce7dbc"
    assert RunConfig(loop="batched", n_train=5000).key(identity) == "94cc8bed52edd4aa"
    assert RunConfig(deterministic=True).key(identity) != RunConfig().key(identity)
    old_record_config = {k: v for k, v in RunConfig().to_dict().items() if k != "deterministic"}
    assert RunConfig.from_dict(old_record_config).deterministic is False


def test_deterministic_must_be_a_bool():
    with pytest.raises(ValueError, match="deterministic must be True or False"):
        RunConfig(deterministic="yes")
