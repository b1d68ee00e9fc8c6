"""The five CIFAR-10 models of the paper's Table 1, with their exact sizes.

The parameter counts are part of the model definition: a network that misses
them is a different network, so every layout choice below (conv biases,
BatchNorm without affine parameters, 'same' padding, padded stride-2 layers)
is the one that reproduces the published count.

Forward passes have no data-dependent Python control flow and no in-place
ops, so the models can be captured in CUDA graphs and run in channels_last.
"""

from __future__ import annotations

import torch
from torch import nn

MODEL_NAMES: tuple[str, ...] = (
    "inception",
    "inception_no_bn",
    "alexnet",
    "mlp_3x512",
    "mlp_1x512",
)

# Table 1, for 3x28x28 input and 10 classes.
PAPER_PARAMETER_COUNTS: dict[str, int] = {
    "inception": 1_649_402,
    "inception_no_bn": 1_649_402,
    "alexnet": 1_387_786,
    "mlp_3x512": 1_735_178,
    "mlp_1x512": 1_209_866,
}

INIT_NAMES: tuple[str, ...] = ("default", "he")


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
    """Builds one of MODEL_NAMES for (N, in_channels, image_size, image_size) input.

    Convnets expect image_size divisible by 4. dropout > 0 adds nn.Dropout
    after each hidden ReLU of the MLPs and of AlexNet's fully connected part.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    if init not in INIT_NAMES:
        raise ValueError(f"unknown init {init!r}; valid inits: {', '.join(INIT_NAMES)}")
    if dropout > 0 and name.startswith("inception"):
        # Refused rather than ignored: a record must never claim dropout it did not have.
        raise ValueError("the Inception models have no dropout layer; use dropout only with alexnet or the MLPs")

    if name == "inception":
        model = _inception(in_channels, num_classes, batch_norm=True)
    elif name == "inception_no_bn":
        model = _inception(in_channels, num_classes, batch_norm=False)
    elif name == "alexnet":
        model = _alexnet(in_channels, image_size, num_classes, dropout)
    else:
        hidden_layers = 3 if name == "mlp_3x512" else 1
        model = _mlp(in_channels * image_size * image_size, hidden_layers, num_classes, dropout)

    if init == "he":
        _apply_he_init(model)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe_models() -> list[tuple[str, int, int]]:
    """(name, measured count for 3x28x28 input, paper count) for each model."""
    return [(name, count_parameters(build_model(name)), PAPER_PARAMETER_COUNTS[name]) for name in MODEL_NAMES]
