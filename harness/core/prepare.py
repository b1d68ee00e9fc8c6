"""From a config and raw data to device-resident training tensors.

Done once per run: subset, /255 and centre crop, the variant, per-image
standardisation, then one copy to the device. The training loop afterwards
only indexes these tensors.

Before the copy, the prepared training inputs are checked for collisions:
inputs that are identical after preprocessing (uniform images all
standardise to zero; exact duplicates) but carry different labels cannot
all be classified correctly, so 100% training accuracy is out of reach
whatever the optimizer does. `prepare` counts them against the labels the
run trains on (after any label corruption) and carries the attainable
ceiling in `DeviceData.collisions`; `fitting_refusal` says when a target
lies above it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from harness.core.config import RunConfig
from harness.core.corrupt import apply_variant
from harness.core.data import (
    DataError,
    RawDataset,
    default_data_dir,
    load_raw,
    subset_indices,
)

CROP = 28  # the paper's centre crop, in pixels


# --- the paper's preprocessing: crop, [0, 1], per-image standardisation ------------


def centre_crop(images: np.ndarray, size: int) -> np.ndarray:
    """Centre crop (N, H, W, C) to size x size; images already that small pass."""
    height, width = images.shape[1:3]
    if height < size or width < size:
        raise DataError(f"images of {height}x{width} are smaller than the {size}x{size} crop")
    top, left = (height - size) // 2, (width - size) // 2
    return images[:, top : top + size, left : left + size]


def standardise_per_image(images: torch.Tensor) -> torch.Tensor:
    """(x - mean(x)) / max(std(x), 1/sqrt(numel(x))) per image, as the paper; (N, C, H, W) in and out.

    The floor on the std keeps uniform images finite (TensorFlow's
    per_image_standardization, which the paper used); a uniform image
    comes out exactly zero, whatever its brightness.
    """
    flat = images.flatten(1)
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, unbiased=False, keepdim=True)
    floor = 1.0 / flat.shape[1] ** 0.5
    centred = flat - mean
    # A uniform image is exactly zero: its mean, summed in floating point, can
    # miss the pixel value by an ulp, which would leave uniform images of
    # different brightness as different specks of rounding noise instead of
    # the one input they are (`count_collisions` below counts such collisions).
    lowest, highest = torch.aminmax(flat, dim=1)
    centred[lowest == highest] = 0.0
    return centred.div_(std.clamp_min(floor)).view_as(images)


def to_unit_float(images: np.ndarray, crop: int = 28) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, crop, crop) in [0, 1]."""
    cropped = centre_crop(images, crop)
    return torch.from_numpy(np.ascontiguousarray(cropped)).permute(0, 3, 1, 2).float().div_(255.0)


@dataclass
class DeviceData:
    train_x: torch.Tensor  # float32 (N, C, 28, 28), standardised per image
    train_y: torch.Tensor  # int64 (N,), after the variant
    test_x: torch.Tensor
    test_y: torch.Tensor  # never corrupted
    label_changed: torch.Tensor  # bool (N,): training labels the variant changed
    num_classes: int
    source: str
    fingerprint: str
    collisions: Collisions  # identical training inputs and the attainable training accuracy

    @property
    def in_channels(self) -> int:
        return self.train_x.shape[1]


def load_raw_cached(spec: str) -> RawDataset:
    """One read per process: many runs share a dataset.

    The data folder is part of the cache key: a spec without ROOT ('mnist')
    names whatever $HARNESS_DATA_DIR holds at the time.
    """
    import os

    return _load_raw_cached(spec, os.environ.get("HARNESS_ALLOW_DOWNLOAD", "") == "1", str(default_data_dir()))


@lru_cache(maxsize=4)
def _load_raw_cached(spec: str, allow_download: bool, data_dir: str) -> RawDataset:
    return load_raw(spec, allow_download=allow_download)


def prepare(config: RunConfig, raw: RawDataset, device: torch.device) -> DeviceData:
    check_crop_fits(raw)
    # The subset is drawn from the seed, so a run's true- and random-label
    # versions see the same images.
    train_rows = subset_indices(len(raw.train_y), config.n_train, config.seed)
    test_rows = subset_indices(len(raw.test_y), config.n_test, config.seed)
    drawn_classes = np.unique(raw.train_y[train_rows])
    if len(drawn_classes) < 2:  # every prediction right, random labels a no-op: a "fit" that measures nothing
        raise DataError(
            f"the {len(train_rows)}-image training subset drawn with seed {config.seed} holds one class "
            f"({int(drawn_classes[0])}) of the dataset's {raw.num_classes}: draw more images (n_train) or another seed"
        )
    corrupted = apply_variant(
        config.variant,
        to_unit_float(raw.train_x[train_rows], CROP),
        raw.train_y[train_rows],
        to_unit_float(raw.test_x[test_rows], CROP),
        raw.test_y[test_rows],
        label_corruption=config.label_corruption,
        num_classes=raw.num_classes,
        seed=config.seed,
    )
    train_x = standardise_per_image(corrupted.train_x)
    collisions = count_collisions(train_x, corrupted.train_y.numpy(), train_rows)
    return DeviceData(
        train_x=train_x.to(device),
        train_y=corrupted.train_y.to(device),
        test_x=standardise_per_image(corrupted.test_x).to(device),
        test_y=corrupted.test_y.to(device),
        label_changed=corrupted.label_changed.to(device),
        num_classes=raw.num_classes,
        source=raw.source,
        fingerprint=raw.fingerprint,
        collisions=collisions,
    )


def check_crop_fits(raw: RawDataset) -> None:
    """Images smaller than the crop are refused before any training, naming the data."""
    height, width = raw.train_x.shape[1:3]
    if height < CROP or width < CROP:
        raise DataError(
            f"{raw.source}: images are {height}x{width}, smaller than the {CROP}x{CROP} centre crop every run "
            f"trains on; supply images of at least {CROP}x{CROP} pixels"
        )


# --- collisions: identical inputs, the labels on them, the attainable ceiling ---


@dataclass(frozen=True)
class Collisions:
    """Training inputs identical after preprocessing, and the best training accuracy their labels allow.

    groups: each set of two or more identical prepared inputs, as row
    indices into the prepared training set (int64 arrays, ascending).
    dataset_rows: the same groups as rows of the raw train_x (the subset's
    rows), for messages a user can act on.
    conflicting: indices into `groups` of those whose labels disagree.
    unavoidable_errors: inputs no classifier can get right: in each group,
    all but those carrying its most frequent label.
    """

    n_train: int
    groups: tuple[np.ndarray, ...] = ()
    dataset_rows: tuple[np.ndarray, ...] = ()
    conflicting: tuple[int, ...] = ()
    unavoidable_errors: int = 0

    @property
    def colliding_inputs(self) -> int:
        """Inputs that have an identical twin, whatever their labels."""
        return sum(len(group) for group in self.groups)

    @property
    def conflicting_inputs(self) -> int:
        """Inputs in groups whose labels disagree: the ones that cost accuracy."""
        return sum(len(self.groups[index]) for index in self.conflicting)

    @property
    def attainable_accuracy(self) -> float:
        """The ceiling on training accuracy, in [0, 1]: 1.0 when no two identical inputs disagree."""
        return (self.n_train - self.unavoidable_errors) / self.n_train

    def record_fields(self) -> dict:
        """What a run record carries about collisions (JSON-ready)."""
        return {
            "attainable_train_accuracy": self.attainable_accuracy,
            "identical_input_groups": len(self.groups),
            "colliding_inputs": self.colliding_inputs,
            "conflicting_inputs": self.conflicting_inputs,
            "unavoidable_errors": self.unavoidable_errors,
        }


def count_collisions(images: torch.Tensor, labels: np.ndarray, dataset_rows: np.ndarray | None = None) -> Collisions:
    """The collisions among prepared training inputs (N, ...) under the labels (N,) the run trains on.

    dataset_rows (N,): each input's row in the raw data (default: its own
    index). Cost: one integer pass over the inputs, then hashing only the
    inputs that share a checksum.
    """
    n = len(labels)
    rows = np.arange(n) if dataset_rows is None else np.asarray(dataset_rows)
    labels = np.asarray(labels)
    groups = identical_input_groups(images)
    kept = [int(np.bincount(labels[group]).max()) for group in groups]  # the most frequent label's count
    return Collisions(
        n_train=n,
        groups=tuple(groups),
        dataset_rows=tuple(rows[group] for group in groups),
        conflicting=tuple(index for index, group in enumerate(groups) if kept[index] < len(group)),
        unavoidable_errors=sum(len(group) - count for group, count in zip(groups, kept)),
    )


def attainable_accuracy(images: torch.Tensor, labels: np.ndarray) -> float:
    """The best training accuracy any classifier can reach on inputs (N, ...) with labels (N,), in [0, 1]."""
    return count_collisions(images, labels).attainable_accuracy


def identical_input_groups(images: torch.Tensor) -> list[np.ndarray]:
    """Sets of two or more byte-identical inputs among images (N, ...), as ascending row indices (int64).

    A checksum of each input's bits (an exact integer sum, so identical
    inputs always share it) picks the candidates; only those are hashed,
    which keeps a collision-free set at one pass over its bytes.
    """
    values = images.detach().cpu().reshape(len(images), -1).contiguous().numpy()
    bits = values.view(f"i{values.itemsize}")  # the same bytes as integers of the element's size
    checksums = bits.sum(axis=1, dtype=np.int64)  # wraps on overflow: still equal for equal inputs
    _, inverse, counts = np.unique(checksums, return_inverse=True, return_counts=True)
    candidates = np.flatnonzero(counts[inverse] > 1)
    by_digest: dict[bytes, list[int]] = {}
    for row in candidates:
        by_digest.setdefault(hashlib.blake2b(values[row].tobytes(), digest_size=16).digest(), []).append(int(row))
    groups = [np.array(rows, dtype=np.int64) for rows in by_digest.values() if len(rows) > 1]
    return sorted(groups, key=lambda group: group[0])


def fitting_refusal(collisions: Collisions, target_accuracy: float, shown: int = 3) -> str | None:
    """Why training to target_accuracy (a share in (0, 1]) cannot succeed, or None when it can.

    The message names the collisions, the ceiling and the fix, so a run
    that cannot fit is not taken for an optimizer that could not fit it.
    """
    if collisions.attainable_accuracy >= target_accuracy:
        return None
    conflicting = [collisions.dataset_rows[index] for index in collisions.conflicting]
    examples = "; ".join(_row_list(rows) for rows in conflicting[:shown])
    more = f" and {len(conflicting) - shown} more group(s)" if len(conflicting) > shown else ""
    return (
        f"{collisions.conflicting_inputs} training inputs fall into {len(conflicting)} group(s) that are identical "
        "after preprocessing (uniform images, exact duplicates) yet carry different labels, so at most "
        f"{collisions.attainable_accuracy:.2%} training accuracy is attainable, below the target "
        f"{target_accuracy:.2%}; drop or deduplicate those images (train_x rows {examples}{more})"
    )


def _row_list(rows: np.ndarray, shown: int = 5) -> str:
    """'3, 17, 52, ...': the first `shown` rows of a group."""
    return ", ".join(map(str, rows[:shown])) + (", ..." if len(rows) > shown else "")
