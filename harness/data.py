"""Datasets: where they come from, how they are checked, how they are prepared.

Three sources, named by a data spec:

- ``cifar10[:ROOT]``: torchvision's CIFAR10 (python pickle batches under
  ``ROOT/cifar-10-batches-py``), downloaded into ROOT when allowed.
- ``mnist[:ROOT]``: torchvision's MNIST (idx files under ``ROOT/MNIST/raw``).
- ``npz:PATH``: an arrays file, for data brought by the user: uint8 arrays
  ``train_x`` (N, H, W) or (N, H, W, C), ``train_y`` (N,), ``test_x``,
  ``test_y``, labels in 0..num_classes-1, each class present in ``train_y``.

ROOT defaults to ``$HARNESS_DATA_DIR`` (else ``./data``). Every dataset
carries a human-readable ``source`` that names it honestly: a known arrays
file that is a lossy copy of a benchmark is never called by the benchmark's
name alone.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

ARRAY_NAMES = ("train_x", "train_y", "test_x", "test_y")

# Arrays files whose content is known, by sha256: their honest names.
KNOWN_ARRAYS_FILES = {
    "e0407deaf0b72eb46b612f4d66ead5d15440e4a8a55b344254a0f9e635686ebb": "CIFAR-10 (JPEG q75 copy)",
    "7a9e9afe3e5a31a40029aea4d65940367b3e0a32c169095d18883ac86d672e09": "MNIST (lossless arrays copy)",
    # The same JPEG copy, centre-cropped to 28x28 (the paper's crop, so runs
    # are unchanged): 135 MiB instead of 171 MB, for moving it between machines.
    "8985b80864e5233ca1cc4b657b673e3723bc3648e46161034b2ae8e0e3f0fcb5": "CIFAR-10 (JPEG q75 copy, centre-cropped 28x28)",
}


class DataError(ValueError):
    """Bad or missing data; the message says what to fix."""


@dataclass
class RawDataset:
    """uint8 images (N, H, W, C) and int64 labels, as read from disk."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str  # human-readable name of what this data is
    fingerprint: str  # identity of the bytes, for run keys

    @property
    def num_classes(self) -> int:
        return int(max(self.train_y.max(), self.test_y.max())) + 1


def default_data_dir() -> Path:
    return Path(os.environ.get("HARNESS_DATA_DIR", "data"))


def find_data_spec(dataset: str, allow_download: bool = False) -> tuple[str | None, str]:
    """The data spec for 'cifar10' or 'mnist' in the data folder, or None and why.

    torchvision's own layout is preferred (the real dataset); an arrays file
    (named cifar10*.npz / mnist*.npz) is the fallback, and names itself
    honestly in every record.
    """
    root = default_data_dir()
    layout = {"cifar10": "cifar-10-batches-py", "mnist": "MNIST/raw"}[dataset]
    if (root / layout).is_dir():
        return f"{dataset}:{root}", ""
    arrays = sorted(root.glob(f"{dataset}*.npz")) if root.is_dir() else []
    if arrays:
        return f"npz:{arrays[0]}", ""
    if allow_download:
        return f"{dataset}:{root}", ""
    return None, (
        f"no {dataset} data in {str(root)!r} (neither torchvision's {layout} nor a {dataset}*.npz arrays file); "
        "set HARNESS_DATA_DIR or --data-dir, or pass --allow-download"
    )


def load_raw(spec: str, *, allow_download: bool | None = None) -> RawDataset:
    """Read the dataset a spec names; a clear DataError when it cannot.

    allow_download defaults to $HARNESS_ALLOW_DOWNLOAD (set to 1 to let
    torchvision fetch a missing CIFAR-10 or MNIST into the data folder).
    """
    if allow_download is None:
        allow_download = os.environ.get("HARNESS_ALLOW_DOWNLOAD", "") == "1"
    kind, _, location = spec.partition(":")
    if kind == "npz":
        if not location:
            raise DataError("data spec 'npz:' needs a path, e.g. npz:data/mnist.npz")
        return load_arrays_file(Path(location))
    if kind in ("cifar10", "mnist"):
        root = Path(location) if location else default_data_dir()
        return _load_torchvision(kind, root, allow_download)
    raise DataError(f"unknown data spec {spec!r}; use cifar10[:ROOT], mnist[:ROOT] or npz:PATH")


def _load_torchvision(kind: str, root: Path, allow_download: bool) -> RawDataset:
    import torchvision

    if not root.is_dir() and not allow_download:
        raise DataError(
            f"data root {str(root)!r} does not exist; set HARNESS_DATA_DIR (or pass ROOT) "
            "to a folder holding the dataset, or allow downloading"
        )
    cls = torchvision.datasets.CIFAR10 if kind == "cifar10" else torchvision.datasets.MNIST
    try:
        train = cls(str(root), train=True, download=allow_download)
        test = cls(str(root), train=False, download=allow_download)
    except Exception as error:  # missing, truncated or foreign files: torchvision raises many kinds
        hint = "" if allow_download else " (downloading is off)"
        diagnose = _diagnose_cifar10_folder if kind == "cifar10" else _diagnose_mnist_folder
        problem = diagnose(root)
        said = " ".join(f"{type(error).__name__}: {error}".split())  # one line, whatever torchvision wrote
        if problem is None:
            raise DataError(f"torchvision could not read {kind} under {str(root)!r}{hint}: {said}") from None
        raise DataError(
            f"torchvision could not read {kind} under {str(root)!r}{hint}: {problem}; {_REFETCH} "
            f"(torchvision: {said})"
        ) from None
    arrays = [np.asarray(train.data), np.asarray(train.targets), np.asarray(test.data), np.asarray(test.targets)]
    name = "CIFAR-10 (torchvision)" if kind == "cifar10" else "MNIST (torchvision)"
    return _validated(dict(zip(ARRAY_NAMES, arrays)), name, origin=f"{kind} under {root}")


_REFETCH = (
    "delete that folder and download the dataset again (pass --allow-download or set HARNESS_ALLOW_DOWNLOAD=1), "
    "or use an arrays file instead (npz:PATH)"
)


def _diagnose_cifar10_folder(root: Path) -> str | None:
    """What is wrong with ROOT/cifar-10-batches-py, by torchvision's own file list and md5 checksums.

    torchvision says only "not found or corrupted"; the user needs to know
    which file, and that a folder which exists is not fixed by waiting.
    The checksums are read from torchvision's CIFAR10 class (and checked by
    its check_integrity) so that they stay the ones torchvision enforces.
    """
    from torchvision.datasets import cifar

    folder = root / cifar.CIFAR10.base_folder
    if not folder.is_dir():
        return f"there is no {cifar.CIFAR10.base_folder} folder in {str(root)!r}"
    expected = [*cifar.CIFAR10.train_list, *cifar.CIFAR10.test_list,
                [cifar.CIFAR10.meta["filename"], cifar.CIFAR10.meta["md5"]]]
    missing = [name for name, _ in expected if not (folder / name).is_file()]
    if missing:
        return f"the folder {str(folder)!r} exists but lacks {', '.join(missing)}"
    damaged = [name for name, md5 in expected if not cifar.check_integrity(str(folder / name), md5)]
    if damaged:
        return (
            f"the folder {str(folder)!r} exists but the md5 checksum of {', '.join(damaged)} does not match "
            "CIFAR-10's (a damaged or partial copy, or not the real dataset)"
        )
    return None


# MNIST's idx files: magic number (data type 0x08 = uint8, then the number of
# dimensions) and the dimensions, big-endian, before the data.
_MNIST_IDX_DIMENSIONS = {"images-idx3-ubyte": 3, "labels-idx1-ubyte": 1}


def _diagnose_mnist_folder(root: Path) -> str | None:
    """What is wrong with ROOT/MNIST/raw: a missing file, or an idx header its file size contradicts.

    torchvision keeps no checksum of the uncompressed idx files, so the
    header is the only integrity check there is: it states the dimensions,
    hence the file's exact size.
    """
    folder = root / "MNIST" / "raw"
    if not folder.is_dir():
        return f"there is no MNIST/raw folder in {str(root)!r}"
    names = [f"{split}-{kind}" for split in ("train", "t10k") for kind in _MNIST_IDX_DIMENSIONS]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        return f"the folder {str(folder)!r} exists but lacks {', '.join(missing)}"
    for name in names:
        problem = _idx_file_problem(folder / name, _MNIST_IDX_DIMENSIONS[name.split("-", 1)[1]])
        if problem:
            return f"the folder {str(folder)!r} exists but {name} {problem}"
    return None


def _idx_file_problem(path: Path, dimensions: int) -> str | None:
    size = path.stat().st_size
    header_size = 4 * (1 + dimensions)
    with open(path, "rb") as stream:
        header = stream.read(header_size)
    if len(header) < header_size or header[:4] != bytes([0, 0, 0x08, dimensions]):
        return f"is not a uint8 idx file of {dimensions} dimension(s) (its first bytes are {header[:4].hex()})"
    shape = [int.from_bytes(header[4 * i : 4 * i + 4], "big") for i in range(1, dimensions + 1)]
    promised = header_size + int(np.prod(shape))
    if size != promised:
        return f"is damaged: its header promises {promised} bytes (shape {tuple(shape)}), the file has {size}"
    return None


def load_arrays_file(path: Path) -> RawDataset:
    if not path.is_file():
        raise DataError(f"arrays file {str(path)!r} not found; pass npz:PATH to an existing .npz")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in ARRAY_NAMES if name not in archive.files]
            if missing:
                raise DataError(
                    f"arrays file {path} lacks {', '.join(missing)}; it needs uint8 arrays "
                    f"{', '.join(ARRAY_NAMES)}"
                )
            arrays = {name: archive[name] for name in ARRAY_NAMES}
    except DataError:
        raise
    except Exception as error:  # a truncated or foreign file
        said = " ".join(f"{type(error).__name__}: {error}".split())
        raise DataError(
            f"arrays file {path} is not a readable .npz ({said}): it is truncated, damaged or not an npz "
            f"archive; copy it again or rewrite it with numpy.savez (uint8 {', '.join(ARRAY_NAMES)})"
        ) from None
    digest = file_sha256(path)
    name = KNOWN_ARRAYS_FILES.get(digest, f"arrays file {path.name}")
    return _validated(arrays, name, origin=str(path), digest=digest)


@lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    stat = path.stat()
    # ctime and inode too: a rewrite that restores the mtime (cp -p, tar) still changes them.
    return _sha256_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


def _validated(arrays: dict, name: str, *, origin: str, digest: str | None = None) -> RawDataset:
    for part in ("train", "test"):
        x, y = arrays[f"{part}_x"], arrays[f"{part}_y"]
        if x.dtype != np.uint8:
            raise DataError(f"{origin}: {part}_x must be uint8 pixels, got {x.dtype}")
        if x.ndim == 3:
            x = x[..., None]  # grey images: add the channel axis
        if x.ndim != 4:
            raise DataError(f"{origin}: {part}_x must have shape (N, H, W) or (N, H, W, C), got {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{origin}: {part}_y must be a vector of {len(x)} labels, got shape {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{origin}: {part}_y must hold integer labels, got {y.dtype}")
        if len(x) == 0:
            raise DataError(f"{origin}: {part}_x is empty")
        arrays[f"{part}_x"], arrays[f"{part}_y"] = x, y.astype(np.int64)
    if arrays["train_x"].shape[1:] != arrays["test_x"].shape[1:]:
        raise DataError(f"{origin}: train and test images differ in shape")
    _check_label_range(arrays["train_y"], arrays["test_y"], origin)
    if digest is None:
        digest = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays.values())).hexdigest()
    # The bytes alone identify the data: the same file under another name is the same data.
    return RawDataset(**arrays, source=name, fingerprint=f"sha256:{digest}")


def _check_label_range(train_y: np.ndarray, test_y: np.ndarray, origin: str) -> None:
    """Labels must be the classes 0..K-1, each one present in train_y; K is inferred from them.

    A label outside that range (a negative one, a sentinel such as 255 or
    -1 stored as uint8, labels counted from 1) would silently add output
    classes that no image belongs to, and change what "random labels"
    means, so it is refused with the offending values and their counts.
    """
    for part, labels in (("train_y", train_y), ("test_y", test_y)):
        negative = labels[labels < 0]
        if len(negative):
            raise DataError(
                f"{origin}: {part} holds {len(negative)} negative label(s) ({_value_counts(negative)}); "
                "labels must be the classes 0..K-1: fix or drop those images"
            )
    present = np.unique(train_y)  # sorted, none negative
    gaps = np.flatnonzero(present != np.arange(len(present)))
    if len(gaps):
        # Everything above the first class that never occurs is out of range:
        # catches a stray 255 among 0..9 as well as labels counted from 1.
        first_absent = int(gaps[0])
        outside = train_y[train_y > first_absent]
        raise DataError(
            f"{origin}: train_y holds {len(outside)} label(s) outside the class range: class {first_absent} "
            f"never occurs, yet labels above it do ({_value_counts(outside)}). Labels must be the classes "
            "0..K-1, each present in the training set: renumber them or drop those images"
        )
    unseen = test_y[test_y > present[-1]]
    if len(unseen):
        raise DataError(
            f"{origin}: test_y holds {len(unseen)} label(s) outside the class range 0..{present[-1]} of "
            f"train_y ({_value_counts(unseen)}); test labels must be classes of the training set"
        )


def _value_counts(values: np.ndarray, shown: int = 5) -> str:
    """'255 x3, 12 x1': the most frequent values first, at most `shown` of them."""
    unique, counts = np.unique(values, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    parts = [f"{unique[i]} x{counts[i]}" for i in order[:shown]]
    if len(unique) > shown:
        parts.append(f"and {len(unique) - shown} more value(s)")
    return ", ".join(parts)


# --- preprocessing -------------------------------------------------------


def centre_crop(images: np.ndarray, size: int) -> np.ndarray:
    """Centre crop (N, H, W, C) to size x size; images already that small pass."""
    height, width = images.shape[1:3]
    if height < size or width < size:
        raise DataError(f"images of {height}x{width} are smaller than the {size}x{size} crop")
    top, left = (height - size) // 2, (width - size) // 2
    return images[:, top : top + size, left : left + size]


def standardise_per_image(images: torch.Tensor) -> torch.Tensor:
    """(x - mean(x)) / max(std(x), 1/sqrt(numel(x))) per image, as the paper.

    The floor on the std keeps uniform images finite (TensorFlow's
    per_image_standardization, which the paper used).
    """
    flat = images.flatten(1)
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, unbiased=False, keepdim=True)
    floor = 1.0 / flat.shape[1] ** 0.5
    return ((flat - mean) / std.clamp_min(floor)).view_as(images)


def to_unit_float(images: np.ndarray, crop: int = 28) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, crop, crop) in [0, 1]."""
    cropped = centre_crop(images, crop)
    return torch.from_numpy(np.ascontiguousarray(cropped)).permute(0, 3, 1, 2).float().div_(255.0)


def subset_indices(n_total: int, n_wanted: int | None, seed: int) -> np.ndarray:
    """A seeded random subset (sorted), or everything when n_wanted is None.

    Random, not the first n: the JPEG copy's test set is grouped by class, so
    a prefix would hold a single class.
    """
    if n_wanted is None or n_wanted >= n_total:
        return np.arange(n_total)
    rng = np.random.default_rng([seed, 0x5EB5E7])
    return np.sort(rng.choice(n_total, size=n_wanted, replace=False))
