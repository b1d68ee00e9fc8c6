"""The paper's randomisation variants (section 2.1), pure and seeded.

Each function takes arrays and a numpy Generator and returns new arrays;
nothing is modified in place. Test labels are never touched: only the
training labels are corrupted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Corrupted:
    """Training and test images and labels after a variant is applied."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    # True where a training label differs from the original one.
    label_changed: torch.Tensor


# The seed stream of every data corruption; the ImageNet tier draws its labels from it too,
# so one seed means one draw in both tiers.
LABEL_STREAM = 0xC0AA


def corrupt_labels(labels: np.ndarray, p: float, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """With probability p, independently, replace a label by a uniform class.

    The draw may return the true class, so about p * (1 - 1/K) of the labels
    actually change (0.9p for 10 classes), as in the paper.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"corruption level must lie in [0, 1], got {p}")
    redraw = rng.random(len(labels)) < p
    fresh = rng.integers(0, num_classes, size=len(labels))
    return np.where(redraw, fresh, labels)


def shuffle_pixels(train: torch.Tensor, test: torch.Tensor, rng: np.random.Generator):
    """One permutation of pixel positions, shared by every train and test image.

    Pixel positions are permuted with their channels kept together, as the
    paper permutes pixels, not colour values.
    """
    n_positions = train.shape[2] * train.shape[3]
    order = torch.from_numpy(rng.permutation(n_positions))
    return _permute_positions(train, order), _permute_positions(test, order)


def random_pixels(images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A different random permutation of pixel positions for each image."""
    n, n_positions = images.shape[0], images.shape[2] * images.shape[3]
    orders = torch.from_numpy(np.argsort(rng.random((n, n_positions)), axis=1))
    flat = images.flatten(2)  # (N, C, H*W)
    gathered = torch.gather(flat, 2, orders[:, None, :].expand(-1, flat.shape[1], -1))
    return gathered.view_as(images)


def gaussian_images(shape, mean: torch.Tensor, std: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Gaussian noise images with the given per-channel mean and std."""
    noise = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))
    return noise * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)


def _permute_positions(images: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    flat = images.flatten(2)
    return flat[:, :, order].reshape(images.shape)


def apply_variant(
    variant: str,
    train_x: torch.Tensor,
    train_y: np.ndarray,
    test_x: torch.Tensor,
    test_y: np.ndarray,
    *,
    label_corruption: float,
    num_classes: int,
    seed: int,
) -> Corrupted:
    """Apply a variant to float images in [0, 1] (N, C, H, W) and int labels.

    Image variants are applied before per-image standardisation, to train and
    test images alike (for random pixels and Gaussian images the test set then
    carries no information, as it should). Gaussian images take the training
    set's per-channel mean and standard deviation.
    """
    if not 0.0 <= label_corruption <= 1.0:
        raise ValueError(f"corruption level must lie in [0, 1], got {label_corruption}")
    rng = np.random.default_rng([seed, LABEL_STREAM])  # its own stream: training draws stay independent
    # Level 0 draws nothing, so a true-label run is bit-identical to partial at p = 0.
    new_y = corrupt_labels(train_y, label_corruption, num_classes, rng) if label_corruption > 0 else train_y
    if variant in ("true", "partial", "random"):
        pass
    elif variant == "shuffled_pixels":
        train_x, test_x = shuffle_pixels(train_x, test_x, rng)
    elif variant == "random_pixels":
        train_x, test_x = random_pixels(train_x, rng), random_pixels(test_x, rng)
    elif variant == "gaussian":
        mean = train_x.mean(dim=(0, 2, 3))
        std = train_x.std(dim=(0, 2, 3))
        train_x = gaussian_images(tuple(train_x.shape), mean, std, rng)
        test_x = gaussian_images(tuple(test_x.shape), mean, std, rng)
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return Corrupted(
        train_x=train_x,
        train_y=torch.from_numpy(np.asarray(new_y, dtype=np.int64)),
        test_x=test_x,
        test_y=torch.from_numpy(np.asarray(test_y, dtype=np.int64)),
        label_changed=torch.from_numpy(np.asarray(new_y) != np.asarray(train_y)),
    )
