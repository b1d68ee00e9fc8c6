"""From a config and raw data to device-resident training tensors.

Done once per run: subset, /255 and centre crop, the variant, per-image
standardisation, then one copy to the device. The training loop afterwards
only indexes these tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from .config import RunConfig
from .corrupt import apply_variant
from .data import DataError, RawDataset, load_raw, standardise_per_image, subset_indices, to_unit_float

CROP = 28  # the paper's centre crop, in pixels


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

    @property
    def in_channels(self) -> int:
        return self.train_x.shape[1]


def load_raw_cached(spec: str) -> RawDataset:
    """One read per process: many runs share a dataset."""
    import os

    return _load_raw_cached(spec, os.environ.get("HARNESS_ALLOW_DOWNLOAD", "") == "1")


@lru_cache(maxsize=4)
def _load_raw_cached(spec: str, allow_download: bool) -> RawDataset:
    return load_raw(spec, allow_download=allow_download)


def prepare(config: RunConfig, raw: RawDataset, device: torch.device) -> DeviceData:
    check_crop_fits(raw)
    # The subset is drawn from the seed, so a run's true- and random-label
    # versions see the same images.
    train_rows = subset_indices(len(raw.train_y), config.n_train, config.seed)
    test_rows = subset_indices(len(raw.test_y), config.n_test, config.seed)
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
    return DeviceData(
        train_x=standardise_per_image(corrupted.train_x).to(device),
        train_y=corrupted.train_y.to(device),
        test_x=standardise_per_image(corrupted.test_x).to(device),
        test_y=corrupted.test_y.to(device),
        label_changed=corrupted.label_changed.to(device),
        num_classes=raw.num_classes,
        source=raw.source,
        fingerprint=raw.fingerprint,
    )


def check_crop_fits(raw: RawDataset) -> None:
    """Images smaller than the crop are refused before any training, naming the data."""
    height, width = raw.train_x.shape[1:3]
    if height < CROP or width < CROP:
        raise DataError(
            f"{raw.source}: images are {height}x{width}, smaller than the {CROP}x{CROP} centre crop every run "
            f"trains on; supply images of at least {CROP}x{CROP} pixels"
        )
