"""The registries: one entry per model (harness.core.models), one per built-in optimizer (harness.core.optim).

Adding a model is one `register_model` call: the config accepts it, the
training loop trains it, the parameter table and the report list it. Each
built-in optimizer's entry is the one place that says its class, default
learning rate, momentum and whether the CUDA-graph loop implements it.
"""

import pytest
import torch
from torch import nn

from harness.core import models
from harness.core.config import RunConfig
from harness.core.models import MODELS, ModelEntry, build_model, count_parameters, describe_models, register_model
from harness.core.optim import BUILTIN_OPTIMIZERS, BUILTINS, PAPER_LR, Hyper, graph_optimizers, resolve
from harness.core.runner import cached_fit
from harness.report.describe import load_runs

TOY = "toy_mlp_1x32"
TOY_HIDDEN = 32


def _build_toy(in_channels: int, image_size: int, num_classes: int, dropout: float) -> nn.Module:
    """A 1-hidden-layer MLP of TOY_HIDDEN units: (N, C, H, W) images -> (N, num_classes) logits."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, TOY_HIDDEN),
        nn.ReLU(),
        nn.Linear(TOY_HIDDEN, num_classes),
    )


# 3x28x28 input and 10 classes, as Table 1's counts: weights and biases of both layers.
TOY_PARAMETERS = 3 * 28 * 28 * TOY_HIDDEN + TOY_HIDDEN + TOY_HIDDEN * 10 + 10


@pytest.fixture
def registry():
    """MODELS, restored in place after the test: whatever it registers is gone afterwards.

    In place, not replaced: the modules that imported the dict (train, the report) must see the test's entries.
    """
    saved = dict(MODELS)
    yield MODELS
    MODELS.clear()
    MODELS.update(saved)


@pytest.fixture
def toy(registry):
    """The toy model, registered the one way a new model is added."""
    return register_model(ModelEntry(TOY, _build_toy, table1_parameters=None, paper_lr=0.05, convnet=False))


def test_the_paper_models_are_registered_in_table_1_order():
    assert list(MODELS)[:5] == ["inception", "inception_no_bn", "alexnet", "mlp_3x512", "mlp_1x512"]
    assert {name: entry.paper_lr for name, entry in MODELS.items()} == {
        "inception": 0.1,
        "inception_no_bn": 0.1,
        "alexnet": 0.01,
        "mlp_3x512": 0.01,
        "mlp_1x512": 0.01,
    }


@pytest.mark.parametrize("name", list(MODELS), ids=list(MODELS))
def test_every_registered_model_builds_with_its_table_1_count(name):
    """Built for 3x28x28 input and 10 classes, a model has the paper's count wherever Table 1 gives one."""
    model = build_model(name)
    logits = model(torch.randn(2, 3, 28, 28))
    assert logits.shape == (2, 10)
    expected = MODELS[name].table1_parameters
    if expected is not None:
        assert count_parameters(model) == expected


def test_a_registered_model_trains_end_to_end_and_is_listed(toy, tiny_npz, results):
    """Registered once, the toy model is a valid config, fits through the run store, and tables and report list it."""
    assert toy.name in models.MODEL_NAMES
    config = RunConfig(data=f"npz:{tiny_npz}", model=TOY, max_passes=60, device="cpu", batch_size=32)
    assert config.learning_rate == 0.05  # the entry's paper lr, for the paper's SGD with lr unset
    record = cached_fit(config)
    assert record["outcome"] == "fitted"
    assert record["parameters"] == 1 * 28 * 28 * TOY_HIDDEN + TOY_HIDDEN + TOY_HIDDEN * 10 + 10  # grey images

    assert describe_models()[-1] == (TOY, TOY_PARAMETERS, None)
    # The report orders runs by the registry: the paper's models first, a registered one after them.
    cached_fit(config.replace(model="mlp_1x512", max_passes=1))
    assert [run["config"]["model"] for run in load_runs(results)] == ["mlp_1x512", TOY]


def test_an_unregistered_model_is_refused(registry):
    """Without the registration the same config does not exist (this is what the toy test needs it for)."""
    with pytest.raises(ValueError, match=f"unknown model '{TOY}'"):
        RunConfig(model=TOY)
    with pytest.raises(ValueError, match=f"unknown model '{TOY}'"):
        build_model(TOY)


def test_a_duplicate_registration_is_refused(toy):
    with pytest.raises(ValueError, match="registered already"):
        register_model(ModelEntry(TOY, _build_toy, table1_parameters=None, paper_lr=0.01, convnet=False))
    with pytest.raises(ValueError, match="registered already"):
        register_model(MODELS["alexnet"])
    assert MODELS[TOY] is toy


def test_a_registration_is_undone_after_its_test():
    assert TOY not in MODELS and len(MODELS) == 5


def test_dropout_follows_the_entry(toy):
    """A model whose entry takes no dropout refuses it, in the config and in the builder alike."""
    assert [name for name, entry in MODELS.items() if not entry.takes_dropout] == [
        "inception",
        "inception_no_bn",
    ]
    RunConfig(model=TOY, dropout=0.5)
    with pytest.raises(ValueError, match="no dropout layer"):
        RunConfig(model="inception", dropout=0.5)


@pytest.mark.parametrize("name", list(BUILTIN_OPTIMIZERS), ids=list(BUILTIN_OPTIMIZERS))
def test_every_builtin_optimizer_resolves_to_its_entry(name):
    """The spec builds the entry's torch class with the entry's default lr and momentum."""
    entry = BUILTIN_OPTIMIZERS[name]
    config = RunConfig(model="alexnet", optimizer=name)
    expected_lr = MODELS["alexnet"].paper_lr if entry.default_lr == PAPER_LR else entry.default_lr
    assert config.learning_rate == expected_lr
    optimizer = resolve(name)(nn.Linear(2, 2).parameters(), Hyper(config.learning_rate, 0.9, 0.0))
    assert type(optimizer) is entry.torch_class and name in BUILTINS
    group = optimizer.param_groups[0]
    assert group["lr"] == expected_lr
    if "momentum" in group:
        assert group["momentum"] == (0.9 if entry.takes_config_momentum else 0.0)


@pytest.mark.parametrize("name", list(BUILTIN_OPTIMIZERS), ids=list(BUILTIN_OPTIMIZERS))
def test_the_graph_flag_is_what_the_config_uses(name):
    """uses_graph holds on CUDA exactly for the entries the graph loop implements; a spec with keywords never."""
    graphed = BUILTIN_OPTIMIZERS[name].graph_step
    assert (name in graph_optimizers()) is graphed
    assert RunConfig(optimizer=name, device="cuda").uses_graph is graphed
    assert RunConfig(optimizer=name, device="cuda", loop="eager").uses_graph is False
    assert RunConfig(optimizer=name, device="cpu").uses_graph is False
    assert RunConfig(optimizer=f"{name}(weight_decay=0.0)", device="cuda").uses_graph is False


def test_the_kept_names_are_read_from_the_registries(toy):
    """The names older code imports (config, train, tuning) follow the registries."""
    from harness.core import config, train
    from harness.suite import tuning

    assert config.PAPER_LEARNING_RATES[TOY] == 0.05
    assert config.GRAPH_OPTIMIZERS == graph_optimizers() == ("paper_sgd", "sgd")
    assert train.CONVNETS == ("inception", "inception_no_bn", "alexnet")
    assert tuning.GIVEN_LR == ("paper_sgd", "sgd")
    assert TOY in models.MODEL_NAMES and TOY not in models.PAPER_PARAMETER_COUNTS  # Table 1 has no count for it
