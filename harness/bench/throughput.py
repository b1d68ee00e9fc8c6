"""What the throughput benchmarks share: the batch, the models' training FLOPs, peaks, an eager step, the resident set.

Used by harness.bench.loops (one run: the harness's loops against the usual
DataLoader loop) and harness.bench.in_flight (several runs at once), and by
the tier bench's GPU-use figure.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F

from harness.core.models import build_model
from harness.core.prepare import standardise_per_image
from harness.core.train import CONVNETS

BATCH = 128


# Dense peak without tensor cores (fp32 FMA), TFLOP/s, from the vendors' data
# sheets: the bench runs in fp32 with TF32 off, so this is its physical limit.
FP32_PEAK_TFLOPS = {"H100 80GB HBM3": 66.9, "H100 SXM": 66.9, "H200": 66.9, "A100": 19.5, "H100 PCIe": 51.2}


# Dense bf16 tensor-core peak, TFLOP/s, data sheets: the limit of a bf16 run.
BF16_PEAK_TFLOPS = {"H100 80GB HBM3": 989.4, "H100 SXM": 989.4, "H200": 989.4, "A100": 312.0, "H100 PCIe": 756.0}
# Dense TF32 tensor-core peak, TFLOP/s, data sheets: the limit of a TF32 run.
TF32_PEAK_TFLOPS = {"H100 80GB HBM3": 494.7, "H100 SXM": 494.7, "H200": 494.7, "A100": 156.0, "H100 PCIe": 378.0}


def peak_tflops(device_name: str, precision: str) -> float | None:
    """The device's dense peak for `precision` ("fp32", "tf32", "bf16"), TFLOP/s; None when not in the tables."""
    table = {"fp32": FP32_PEAK_TFLOPS, "tf32": TF32_PEAK_TFLOPS, "bf16": BF16_PEAK_TFLOPS}[precision]
    return next((peak for key, peak in table.items() if key in device_name), None)


def training_flops_per_image(name: str, channels: int = 3) -> float:
    """FLOPs of one training step (forward and backward) per image, counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(name, in_channels=channels)
    images, labels = torch.randn(BATCH, channels, 28, 28), torch.randint(0, 10, (BATCH,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(images), labels).backward()
    return counter.get_total_flops() / BATCH


def synthetic_images(n: int = 50_000, seed: int = 0):
    """uint8 noise of CIFAR-10's shape: throughput does not depend on the pixels."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def model_and_sgd(name: str, device, channels: int):
    """(model on `device`, channels_last for a convnet; the paper's SGD: lr 0.01, momentum 0.9), seeded 0."""
    torch.manual_seed(0)
    model = build_model(name, in_channels=channels).to(device)
    if name in CONVNETS:
        model = model.to(memory_format=torch.channels_last)
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def sgd_step(model, optimizer, images, labels, autocast=None) -> torch.Tensor:
    """One eager training step on a batch (images (B, C, 28, 28), labels (B,)); the loss, not synchronised."""
    with autocast or nullcontext():
        loss = F.cross_entropy(model(images), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def synchronize(device) -> None:
    """Wait for the device's queued work (CUDA); a clock read after it times the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resident_set(name, images, labels, device):
    """(images float (N, C, 28, 28) centre-cropped and standardised per image, labels int64 (N,)) on `device`.

    images: uint8 (N, H, W, C), H and W >= 28. A convnet's images are channels_last.
    """
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)
    top = (x_all.shape[2] - 28) // 2
    x_all = standardise_per_image(x_all[:, :, top : top + 28, top : top + 28]).to(device)
    if name in CONVNETS:
        x_all = x_all.contiguous(memory_format=torch.channels_last)
    return x_all, torch.from_numpy(labels.astype(np.int64)).to(device)
