"""The five CIFAR-10 models of the paper's Table 1, with their exact sizes, in one registry.

`MODELS` holds one `ModelEntry` per model: its builder, Table 1 parameter
count, the paper's learning rate and whether it is a convnet. Everything else
(the config's checks and default lr, the training loop's memory format, the
report's order) asks the registry, so a new model is one `register_model` call.

The parameter counts are part of the model definition: a network that misses
them is a different network, so every layout choice below (conv biases,
BatchNorm without affine parameters, 'same' padding, padded stride-2 layers)
is the one that reproduces the published count.

Forward passes have no data-dependent Python control flow and no in-place
ops, so the models can be captured in CUDA graphs and run in channels_last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

INIT_NAMES: tuple[str, ...] = ("default", "he")

# build(in_channels, image_size, num_classes, dropout) -> a module taking
# (N, in_channels, image_size, image_size) images and giving (N, num_classes) logits.
ModelBuilder = Callable[[int, int, int, float], nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """Everything the harness knows of one model, in one place.

    name: the config's `model` value, and the name in reports.
    build: `build(in_channels, image_size, num_classes, dropout) -> nn.Module`
        for (N, in_channels, image_size, image_size) input and (N, num_classes)
        logits, with PyTorch's default init (`build_model` applies "he").
        It is only called with dropout 0 when `takes_dropout` is False.
    table1_parameters: the paper's Table 1 parameter count for 3x28x28 input
        and 10 classes; None for a model the paper does not have.
    paper_lr: the initial learning rate of the paper's SGD for this model
        (what a run with `lr` unset trains with under paper_sgd or sgd).
    convnet: True for a convolutional model: trained in channels_last, and
        expects an image_size divisible by 4.
    takes_dropout: whether the model has hidden layers that dropout follows;
        a config with dropout on a model without them is refused.
    """

    name: str
    build: ModelBuilder
    table1_parameters: int | None
    paper_lr: float
    convnet: bool
    takes_dropout: bool = True


# Name -> entry, in the paper's order (Table 1's rows); reports list models in this order.
MODELS: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    """Adds a model to MODELS (at the end of the order); returns the entry.

    Raises ValueError when a model of that name is registered already:
    a second definition under one name would make two different networks
    share run keys.
    """
    if entry.name in MODELS:
        raise ValueError(f"model {entry.name!r} is registered already; register the new model under another name")
    MODELS[entry.name] = entry
    return entry


def model_names() -> tuple[str, ...]:
    """The registered model names, in the paper's order then in order of registration."""
    return tuple(MODELS)


def __getattr__(name: str):
    # MODEL_NAMES and PAPER_PARAMETER_COUNTS are kept for their users, read from
    # the registry at each access so that a model registered later is in them.
    if name == "MODEL_NAMES":
        return model_names()
    if name == "PAPER_PARAMETER_COUNTS":
        return {n: e.table1_parameters for n, e in MODELS.items() if e.table1_parameters is not None}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- Inception (small) -------------------------------------------------------


def _conv_module(in_ch: int, out_ch: int, kernel: int, stride: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=True)]
    if batch_norm:
        # affine=False: BatchNorm adds no trainable parameters, which is what
        # makes Table 1 list the same count with and without BatchNorm.
        layers.append(nn.BatchNorm2d(out_ch, affine=False))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _Concat(nn.Module):
    """Runs branches on the same input and stacks their outputs on channels."""

    def __init__(self, *branches: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def _inception_block(in_ch: int, c1: int, c3: int, batch_norm: bool) -> _Concat:
    return _Concat(
        _conv_module(in_ch, c1, 1, 1, batch_norm),
        _conv_module(in_ch, c3, 3, 1, batch_norm),
    )


def _downsample_block(in_ch: int, c: int, batch_norm: bool) -> _Concat:
    # Both branches are padded so that 28 -> 14 -> 7 and their sizes agree.
    return _Concat(
        _conv_module(in_ch, c, 3, 2, batch_norm),
        nn.MaxPool2d(3, stride=2, padding=1),
    )


def _inception(in_channels: int, num_classes: int, batch_norm: bool) -> nn.Sequential:
    # (kind, c1, c3) for an Inception block, (kind, c) for a downsample block.
    plan = [
        ("inc", 32, 32),
        ("inc", 32, 48),
        ("down", 80),
        ("inc", 112, 48),
        ("inc", 96, 64),
        ("inc", 80, 80),
        ("inc", 48, 96),
        ("down", 96),
        ("inc", 176, 160),
        ("inc", 176, 160),
    ]
    layers: list[nn.Module] = [_conv_module(in_channels, 96, 3, 1, batch_norm)]
    channels = 96
    for kind, *widths in plan:
        if kind == "inc":
            c1, c3 = widths
            layers.append(_inception_block(channels, c1, c3, batch_norm))
            channels = c1 + c3
        else:
            (c,) = widths
            layers.append(_downsample_block(channels, c, batch_norm))
            channels += c  # the max-pool branch keeps the input channels
    # Global mean-pool (7x7 for 28x28 input) rather than a fixed 7x7 kernel,
    # so other image sizes work too.
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)


# --- AlexNet (small) and MLPs -------------------------------------------------


def _relu_then_dropout(dropout: float) -> list[nn.Module]:
    return [nn.ReLU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])


def _alexnet(in_channels: int, image_size: int, num_classes: int, dropout: float) -> nn.Sequential:
    def stage(in_ch: int) -> list[nn.Module]:
        return [
            nn.Conv2d(in_ch, 64, 5, padding=2),
            nn.ReLU(),
            # Padding 1 halves the size exactly: 28 -> 14 -> 7.
            nn.MaxPool2d(3, stride=2, padding=1),
            # The usual small-AlexNet LRN: radius 4, alpha 0.001/9 per square.
            # torch divides alpha by size, hence alpha=0.001 with size=9.
            nn.LocalResponseNorm(size=9, alpha=0.001, beta=0.75, k=1.0),
        ]

    side = image_size // 4
    return nn.Sequential(
        *stage(in_channels),
        *stage(64),
        nn.Flatten(),
        nn.Linear(64 * side * side, 384),
        *_relu_then_dropout(dropout),
        nn.Linear(384, 192),
        *_relu_then_dropout(dropout),
        nn.Linear(192, num_classes),
    )


def _mlp(in_features: int, hidden_layers: int, num_classes: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for _ in range(hidden_layers):
        layers += [nn.Linear(width, 512), *_relu_then_dropout(dropout)]
        width = 512
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


# --- Public API ---------------------------------------------------------------


def _apply_he_init(model: nn.Module) -> None:
    # Without BatchNorm, PyTorch's default init lets the Inception signal fade
    # through the deep stack; He init keeps it alive so the model trains.
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def build_model(
    name: str,
    *,
    in_channels: int = 3,
    image_size: int = 28,
    num_classes: int = 10,
    init: str = "default",
    dropout: float = 0.0,
) -> nn.Module:
    """Builds the registered model `name` for (N, in_channels, image_size, image_size) input.

    Returns a module giving (N, num_classes) logits. Convnets expect
    image_size divisible by 4. dropout > 0 adds nn.Dropout after each hidden
    ReLU of the MLPs and of AlexNet's fully connected part. Raises ValueError
    for a name not in MODELS, an init not in INIT_NAMES, and dropout on a
    model without dropout layers.
    """
    entry = MODELS.get(name)
    if entry is None:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    if init not in INIT_NAMES:
        raise ValueError(f"unknown init {init!r}; valid inits: {', '.join(INIT_NAMES)}")
    if dropout > 0 and not entry.takes_dropout:
        # Refused rather than ignored: a record must never claim dropout it did not have.
        without = ", ".join(n for n, e in MODELS.items() if not e.takes_dropout)
        raise ValueError(f"{without} have no dropout layer; use dropout only with the other models")
    model = entry.build(in_channels, image_size, num_classes, dropout)
    if init == "he":
        _apply_he_init(model)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe_models() -> list[tuple[str, int, int | None]]:
    """(name, measured count for 3x28x28 input and 10 classes, Table 1 count or None) per registered model."""
    return [(name, count_parameters(build_model(name)), entry.table1_parameters) for name, entry in MODELS.items()]


# --- The paper's models ------------------------------------------------------
#
# Each builder has the registry's signature (in_channels, image_size,
# num_classes, dropout); the Inceptions ignore dropout (they refuse it through
# takes_dropout) and, pooling globally, the image size.


def _build_inception(in_channels: int, image_size: int, num_classes: int, dropout: float) -> nn.Module:
    return _inception(in_channels, num_classes, batch_norm=True)


def _build_inception_no_bn(in_channels: int, image_size: int, num_classes: int, dropout: float) -> nn.Module:
    return _inception(in_channels, num_classes, batch_norm=False)


def _build_mlp_3x512(in_channels: int, image_size: int, num_classes: int, dropout: float) -> nn.Module:
    return _mlp(in_channels * image_size * image_size, 3, num_classes, dropout)


def _build_mlp_1x512(in_channels: int, image_size: int, num_classes: int, dropout: float) -> nn.Module:
    return _mlp(in_channels * image_size * image_size, 1, num_classes, dropout)


# Learning rates: 0.1 for Inception (from reproductions), 0.01 for AlexNet and
# the MLPs. Parameter counts: Table 1, for 3x28x28 input and 10 classes.
register_model(ModelEntry("inception", _build_inception, 1_649_402, paper_lr=0.1, convnet=True, takes_dropout=False))
register_model(
    ModelEntry("inception_no_bn", _build_inception_no_bn, 1_649_402, paper_lr=0.1, convnet=True, takes_dropout=False)
)
register_model(ModelEntry("alexnet", _alexnet, 1_387_786, paper_lr=0.01, convnet=True))
register_model(ModelEntry("mlp_3x512", _build_mlp_3x512, 1_735_178, paper_lr=0.01, convnet=False))
register_model(ModelEntry("mlp_1x512", _build_mlp_1x512, 1_209_866, paper_lr=0.01, convnet=False))
