"""The five Table 1 models: exact sizes, shapes, init options and trainability."""

import pytest
import torch
from torch import nn

from harness.core.models import (
    MODEL_NAMES,
    PAPER_PARAMETER_COUNTS,
    build_model,
    count_parameters,
    describe_models,
)

CONVNETS = ("inception", "inception_no_bn", "alexnet")
MLPS = ("mlp_3x512", "mlp_1x512")


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", MODEL_NAMES, ids=MODEL_NAMES)
def test_parameter_count_matches_table_1(name):
    """Each model has exactly the paper's parameter count for 3x28x28 input.

    The counts are the paper's Table 1: a model that misses them is a
    different model, and the claims about it would not be about the paper's.
    """
    assert count_parameters(build_model(name)) == PAPER_PARAMETER_COUNTS[name]


def test_describe_models_reports_every_model_against_the_paper():
    """describe_models lists every model with a measured count equal to the paper's.

    The CLI prints this table, so it must cover all models in a stable order.
    """
    rows = describe_models()
    assert [row[0] for row in rows] == list(MODEL_NAMES)
    for name, measured, paper in rows:
        assert measured == paper == PAPER_PARAMETER_COUNTS[name]


@pytest.mark.parametrize("in_channels", [3, 1], ids=["cifar_3x28x28", "mnist_1x28x28"])
@pytest.mark.parametrize("name", MODEL_NAMES, ids=MODEL_NAMES)
def test_forward_gives_finite_logits(name, in_channels):
    """A batch of 2 images gives (2, 10) finite logits, for CIFAR and MNIST shapes.

    The same models are trained on both data sets, so neither input shape
    may break them.
    """
    model = build_model(name, in_channels=in_channels)
    logits = model(torch.randn(2, in_channels, 28, 28))
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", CONVNETS, ids=CONVNETS)
def test_convnets_accept_32x32_input(name):
    """Convnets work at 32x32 as well, with the flattened size computed, not fixed.

    Uncropped CIFAR images are 32x32; a hard-coded 7x7 would fail there.
    """
    logits = build_model(name, image_size=32)(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)


def test_mlp_on_mnist_sizes_its_input_layer_from_the_image():
    """On MNIST the 1x512 MLP reads 784 pixels, so its size follows from 28x28x1.

    A count tied to CIFAR's 2352 inputs would silently give a wrong MNIST model.
    """
    model = build_model("mlp_1x512", in_channels=1, image_size=28)
    assert count_parameters(model) == 784 * 512 + 512 + 512 * 10 + 10


@pytest.mark.parametrize("name", MODEL_NAMES, ids=MODEL_NAMES)
def test_he_init_changes_weights_and_zeroes_biases(name):
    """init='he' redraws conv/linear weights and sets their biases to zero.

    Inception without BatchNorm barely trains under the default init; He init
    is what makes it train, so the option must really take effect.
    """
    torch.manual_seed(0)
    default = build_model(name)
    torch.manual_seed(0)
    he = build_model(name, init="he")
    layers = [m for m in he.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    default_layers = [m for m in default.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers
    for he_layer, default_layer in zip(layers, default_layers):
        assert not torch.equal(he_layer.weight, default_layer.weight)
        assert torch.count_nonzero(he_layer.bias) == 0
    assert count_parameters(he) == PAPER_PARAMETER_COUNTS[name]


def test_unknown_model_name_lists_valid_names():
    """An unknown model name raises ValueError naming the valid choices.

    A typo in a run configuration should say what would have worked.
    """
    with pytest.raises(ValueError) as error:
        build_model("resnet")
    message = str(error.value)
    assert "\n" not in message
    assert all(name in message for name in MODEL_NAMES)


def test_unknown_init_lists_valid_inits():
    """An unknown init raises ValueError naming the valid choices."""
    with pytest.raises(ValueError) as error:
        build_model("mlp_1x512", init="xavier")
    assert "default" in str(error.value) and "he" in str(error.value)


@pytest.mark.parametrize("name", ("alexnet",) + MLPS, ids=("alexnet",) + MLPS)
def test_dropout_adds_no_parameters(name):
    """dropout > 0 keeps the parameter count and adds Dropout layers (refused for Inception, below).

    The dropout claim compares the same models with and without dropout.
    """
    model = build_model(name, dropout=0.5)
    assert count_parameters(model) == PAPER_PARAMETER_COUNTS[name]
    assert any(isinstance(m, nn.Dropout) for m in model.modules())
    assert not any(isinstance(m, nn.Dropout) for m in build_model(name).modules())


@pytest.mark.parametrize("name", CONVNETS, ids=CONVNETS)
def test_convnets_run_in_channels_last_and_agree_with_contiguous(name):
    """Convnets give the same logits in channels_last as in the default layout.

    Fast GPU training uses channels_last; the layout must not change results.
    """
    model = build_model(name).eval()
    images = torch.randn(2, 3, 28, 28)
    expected = model(images)
    model = model.to(memory_format=torch.channels_last)
    logits = model(images.to(memory_format=torch.channels_last))
    assert logits.shape == (2, 10)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES, ids=MODEL_NAMES)
def test_eval_mode_is_deterministic(name):
    """In eval mode the same input gives the same finite logits twice.

    Test accuracy is measured in eval mode (BatchNorm running stats, no dropout).
    """
    model = build_model(name, dropout=0.0 if name.startswith("inception") else 0.5)
    model(torch.randn(4, 3, 28, 28))  # one training step's worth of BN statistics
    model.eval()
    images = torch.randn(2, 3, 28, 28)
    first, second = model(images), model(images)
    assert torch.isfinite(first).all()
    torch.testing.assert_close(first, second)


@pytest.mark.parametrize("name", MODEL_NAMES, ids=MODEL_NAMES)
def test_backward_reaches_every_parameter(name):
    """One backward pass gives a finite, non-zero gradient to every parameter.

    A parameter without gradient would count in Table 1 but never learn.
    """
    model = build_model(name)
    loss = nn.functional.cross_entropy(model(torch.randn(2, 3, 28, 28)), torch.tensor([0, 1]))
    loss.backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
        assert param.grad.abs().sum() > 0, param_name


def test_dropout_is_refused_for_inception_rather_than_ignored():
    with pytest.raises(ValueError, match="no dropout layer"):
        build_model("inception", dropout=0.5)
