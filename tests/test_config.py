"""RunConfig: validation, profiles, and the hash that names a run."""

import re

import pytest

from harness.core.config import PROFILES, RunConfig, get_profile


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


# Keys of configs that are valid and train what they say, computed before settings that do not
# apply were refused: the new checks must leave every one of them where it was.
PINNED_KEYS = [
    (("paper", "inception", dict(variant="random", seed=1)), "5a61b7d155073583"),
    (("paper", "inception_no_bn", dict(variant="random", seed=1)), "3a3358bcea385b8c"),
    (("paper", "alexnet", dict(variant="random", seed=1)), "e90bc1b962f599a4"),
    (("paper", "mlp_3x512", dict(variant="random", seed=1)), "013363af4b8a51ca"),
    (("paper", "mlp_1x512", dict(variant="random", seed=1)), "09dea5c1e323f2b4"),
    # A sampled check on partial labels (claims A1, C5): the whole set is checked, the key keeps the fraction.
    (("paper", "alexnet", dict(variant="partial", corruption=0.4)), "ba1b126010d9c081"),
    (("paper", "inception", dict(weight_decay=0.0005)), "7ac24cd7f860355d"),
    (("paper", "alexnet", dict(augment="crop", weight_decay=0.0005)), "71b7ff5d1dd8ecee"),
    (("paper", "alexnet", dict(variant="random", dropout=0.5, max_passes=20)), "f74e72249886cb19"),
    (("smoke", "mlp_1x512", {}), "e6d721f96bc37dbd"),
    (("smoke", "mlp_1x512", dict(variant="partial", corruption=0.4)), "4a55cae3181becc5"),
    (("smoke", "mlp_1x512", dict(max_passes=3)), "6cec8fde8255b8f5"),  # test_every 5 > 3 passes: tests at the end
    (("smoke", "mlp_1x512", dict(augment="crop")), "2361a47e24827e15"),  # crops reach MLPs too
    ((None, "mlp_1x512", dict(optimizer="adam")), "4e47895b22bfed52"),
    ((None, "mlp_1x512", dict(optimizer="sgd")), "82e2799a81c8d1b9"),
    ((None, "mlp_1x512", dict(optimizer="torch.optim:Adam(betas=(0.9, 0.99))", lr=1e-3)), "ace97c3549ee57b1"),
    ((None, "mlp_1x512", dict(optimizer="torch.optim:SGD(lr=0.5)")), "793ddfea60879ba6"),
    ((None, "mlp_1x512", dict(deterministic=True)), "1c7909007bfc0c0d"),
    ((None, "mlp_1x512", dict(momentum=0.5)), "3a6f7de722c456e2"),
    ((None, "mlp_1x512", dict(variant="gaussian")), "2f58d82678a458ce"),
]


@pytest.mark.parametrize("where, key", PINNED_KEYS, ids=[f"{w[0]}-{w[1]}-{i}" for i, (w, _) in enumerate(PINNED_KEYS)])
def test_keys_of_valid_configs_stay_where_they_were(where, key):
    profile, model, changes = where
    config = get_profile(profile).config(model, **changes) if profile else RunConfig(model=model, **changes)
    assert config.key("data|sha256:x") == key


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(corruption=0.5), "corruption 0.5 applies only to variant 'partial'"),
        (dict(variant="random", corruption=0.5), "applies only to variant 'partial'"),
        (dict(variant="gaussian", corruption=0.3), "applies only to variant 'partial'"),
        (dict(model="inception", dropout=0.5), "inception has no dropout layer"),
        (dict(model="inception_no_bn", dropout=0.1), "inception_no_bn has no dropout layer"),
        (dict(precision="tf32"), "precision tf32 is a GPU setting"),
        (dict(precision="bf16", device="cpu"), "precision bf16 is a GPU setting"),
        (dict(loop="graph"), "loop 'graph' needs a CUDA device"),
        (dict(loop="graph", device="cuda", optimizer="adam"), "loop 'graph' needs a CUDA device"),
        (dict(optimizer="adam", momentum=0.5), "momentum applies only to paper_sgd"),
        (dict(optimizer="sgd", momentum=0.0), "momentum applies only to paper_sgd"),
        (dict(optimizer="torch.optim:SGD", momentum=0.5), "torch.optim:SGD(momentum=0.5)"),
        (dict(optimizer="torch.optim:SGD(lr=0.5)", lr=0.1), "lr is set twice"),
        (dict(optimizer="adam(lr=3e-4)", lr=1e-3), "lr is set twice"),
        (dict(optimizer="adamw(weight_decay=0.01)", weight_decay=5e-4), "weight_decay is set twice"),
        (dict(optimizer="paper_sgd(momentum=0.5)", momentum=0.8), "momentum is set twice"),
        (dict(optimizer="torch.optim:SGD(0.5)"), "torch.optim:SGD(lr=0.5)"),
    ],
)
def test_a_setting_that_does_not_apply_is_refused_with_the_fix(changes, message):
    """A run record must never carry a setting the run did not train with."""
    with pytest.raises(ValueError, match=re.escape(message)):
        RunConfig(**changes)


def test_the_partial_variant_keeps_its_ends_and_the_defaults_stay_valid():
    assert RunConfig(variant="partial", corruption=0.0).label_corruption == 0.0  # claim C5's p = 0
    assert RunConfig(variant="partial", corruption=1.0).label_corruption == 1.0
    assert RunConfig(optimizer="adam").momentum == 0.9  # the default is "unset", not a setting
    assert RunConfig(device="cuda", precision="bf16", loop="graph").uses_graph


def test_every_config_the_claims_build_is_valid():
    """The profiles' configs with each change claims/*.py passes to claim_run (see its claim_run calls)."""
    claim_changes = (
        [dict(variant=variant) for variant in ("true", "random", "shuffled_pixels", "random_pixels", "gaussian")]
        + [dict(variant="partial", corruption=p) for p in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]
        + [
            dict(weight_decay=0.0005),
            dict(augment="crop"),
            dict(augment="crop", weight_decay=0.0005),
            dict(n_train=5_000, lr_decay=0.95, decay_every=50_000, max_passes=150),  # C1/C2 on MNIST
        ]
    )
    for profile in PROFILES.values():
        for model in profile.cifar_models:
            for changes in claim_changes:
                profile.config(model, **changes)
            if not model.startswith("inception"):  # A3 skips Inception: it has no dropout layer
                profile.config(model, variant="random", dropout=0.5, max_passes=10)
            for spec in ("paper_sgd", "adam", "torch.optim:Adam(betas=(0.9, 0.99))"):  # --optimizer
                profile.config(model, optimizer=spec, lr=1e-3, weight_decay=0.0005)  # --tune-lr, C6


def test_a_record_made_before_the_checks_still_reads():
    """Stored records are history: read as written (a report must not die on one), never re-validated."""
    old = RunConfig().to_dict() | dict(variant="true", corruption=0.5, optimizer="adam", momentum=0.5)
    config = RunConfig.from_dict(old)
    assert (config.corruption, config.momentum, config.learning_rate) == (0.5, 0.5, 1e-3)
    with pytest.raises(ValueError, match="applies only to variant 'partial'"):
        config.replace(seed=1)  # a new run made from it is checked


def test_weight_decay_reaches_an_imported_factory_under_a_new_key():
    """Imported factories were built without the config's weight decay: those records must not be reused."""
    identity = "data|sha256:x"
    trained_without_it = "b2fc3788ca755976"  # the key such a run had when the weight decay was dropped
    config = RunConfig(optimizer="torch.optim:SGD", lr=0.1, weight_decay=5e-4)
    assert config.key(identity) != trained_without_it
    assert RunConfig(optimizer="torch.optim:SGD", lr=0.1).key(identity) == "163e6dfa47019038"  # no decay: as before


def test_a_built_in_spec_with_keywords_sets_its_learning_rate():
    assert RunConfig(optimizer="adam(lr=3e-4)").learning_rate == 3e-4
    assert RunConfig(optimizer="adam(eps=1e-6)").learning_rate == 1e-3  # the built-in's usual rate
    assert RunConfig(model="inception", optimizer="paper_sgd(nesterov=True)").learning_rate == 0.1
    assert RunConfig(optimizer="torch.optim:SGD(lr=0.5)").learning_rate is None  # as before: part of its key
