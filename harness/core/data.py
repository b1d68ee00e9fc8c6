"""Datasets: where they come from and how they are checked (their preprocessing is `harness.core.prepare`'s).

Three sources, named by a data spec:

- ``cifar10[:ROOT]``: torchvision's CIFAR10 (python pickle batches under
  ``ROOT/cifar-10-batches-py``), downloaded into ROOT when allowed.
- ``mnist[:ROOT]``: torchvision's MNIST (idx files under ``ROOT/MNIST/raw``).
- ``npz:PATH``: an arrays file, for data brought by the user: uint8 arrays
  ``train_x`` (N, H, W) or (N, H, W, C), ``train_y`` (N,), ``test_x``,
  ``test_y``, labels in 0..K-1. An optional integer ``num_classes``
  declares K; without it, K is the classes ``train_y`` holds, each present
  as a class is (a few stray labels of their own are refused).

ROOT defaults to ``$HARNESS_DATA_DIR`` (else ``./data``). One discovery rule
(`find_data_spec`) decides what a ROOT holds, for the command line, the
claims and the bench alike: torchvision's layout first, else an arrays file
named ``cifar10*.npz`` / ``mnist*.npz``, else a download when allowed.

Every dataset carries a human-readable ``source`` that names it by its
content: a known arrays file that is a lossy copy of a benchmark is never
called by the benchmark's name alone, and a folder in MNIST's layout is
called MNIST only when its decoded arrays are MNIST's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

ARRAY_NAMES = ("train_x", "train_y", "test_x", "test_y")

# Arrays files whose content is known, by sha256: their honest names.
KNOWN_ARRAYS_FILES = {
    "e0407deaf0b72eb46b612f4d66ead5d15440e4a8a55b344254a0f9e635686ebb": "CIFAR-10 (JPEG q75 copy)",
    "7a9e9afe3e5a31a40029aea4d65940367b3e0a32c169095d18883ac86d672e09": "MNIST (lossless arrays copy)",
    # The same JPEG copy, centre-cropped to 28x28 (the paper's crop, so runs
    # are unchanged): 135 MiB instead of 171 MB, for moving it between machines.
    "8985b80864e5233ca1cc4b657b673e3723bc3648e46161034b2ae8e0e3f0fcb5": "CIFAR-10 (JPEG q75 copy, centre-cropped 28x28)",
}

# Folders in MNIST's layout whose decoded arrays are known, by the sha256 of
# those arrays (the fingerprint `_validated` computes): their honest names.
# torchvision keeps no checksum of the uncompressed idx files, so a folder
# holding anything in that layout (inverted pixels, shifted labels) loads;
# only its content can say it is MNIST. The digest below is of the official
# files, whose sha256 are train-images ba891046..., train-labels 65a50cbb...,
# t10k-images 0fa7898d..., t10k-labels ff7bcfd4....
KNOWN_FOLDER_CONTENT = {
    "1e35582d42a90940c55b956deb61875c020b567ed20e3c5b174f52bf7809ed9b": "MNIST (torchvision)",
}
UNKNOWN_MNIST_FOLDER = "MNIST-layout folder"

# Where torchvision keeps each dataset under ROOT.
LAYOUTS = {"cifar10": "cifar-10-batches-py", "mnist": "MNIST/raw"}

# The datasets' own names, for messages about their classes.
DATASET_NAMES = {"cifar10": "CIFAR-10", "mnist": "MNIST"}

# A class holding fewer training labels than this share of the median class
# is taken for stray labels (a "10" among digits 0..9), not for a class. A
# tenth: at 1% a 2,000-image subset (200 per class) let 2 strays train as an
# eleventh class; the datasets' real classes are near the median (MNIST's
# smallest holds 91% of it, CIFAR-10's are equal); a real rare class is
# declared (num_classes), which turns the check off.
STRAY_CLASS_SHARE = 0.1


class DataError(ValueError):
    """Bad or missing data; the message says what to fix."""


@dataclass
class RawDataset:
    """uint8 images (N, H, W, C) and int64 labels, as read from disk.

    num_classes comes from the source: the dataset's own class list for
    torchvision's CIFAR-10 and MNIST, the declared ``num_classes`` of an
    arrays file, else the classes its training labels hold.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str  # human-readable name of what this data is
    fingerprint: str  # identity of the bytes, for run keys
    num_classes: int


def default_data_dir() -> Path:
    return Path(os.environ.get("HARNESS_DATA_DIR", "data"))


def find_data_spec(
    dataset: str, allow_download: bool = False, root: Path | str | None = None
) -> tuple[str | None, str]:
    """The data spec for 'cifar10' or 'mnist' in ROOT (default: the data folder), or None and why.

    torchvision's own layout is preferred (the real dataset); an arrays file
    (named cifar10*.npz / mnist*.npz) is the fallback, and names itself
    honestly in every record; else torchvision's spec when downloading is
    allowed. When nothing is found, `why` says what ROOT holds instead and
    the fix (an archive to extract, the parent folder to pass, ...).
    """
    root = default_data_dir() if root is None else Path(root)
    found = _locate(dataset, root)
    if found is not None:
        return found, ""
    if allow_download:
        return f"{dataset}:{root}", ""
    return None, _why_not_found(dataset, root)


def _locate(dataset: str, root: Path) -> str | None:
    """The spec of what ROOT holds for `dataset` (torchvision layout, else an arrays file), or None."""
    if (root / LAYOUTS[dataset]).is_dir():
        return f"{dataset}:{root}"
    arrays = sorted(root.glob(f"{dataset}*.npz")) if root.is_dir() else []
    return f"npz:{arrays[0]}" if arrays else None


def _why_not_found(dataset: str, root: Path) -> str:
    """One line: ROOT holds no `dataset`, what it holds instead, and the fix."""
    where = f"no {dataset} data in {str(root)!r}"
    if not root.is_dir():
        return (
            f"{where}: that folder does not exist; set HARNESS_DATA_DIR (or --data-dir, or ROOT in {dataset}:ROOT) "
            f"to the folder holding torchvision's {LAYOUTS[dataset]} or a {dataset}*.npz arrays file, or allow "
            "downloading (--allow-download, or HARNESS_ALLOW_DOWNLOAD=1)"
        )
    diagnose = _diagnose_cifar10_folder if dataset == "cifar10" else _diagnose_mnist_folder
    return f"{where} (neither torchvision's {LAYOUTS[dataset]} nor a {dataset}*.npz arrays file): {diagnose(root)}"


def load_raw(spec: str, *, allow_download: bool | None = None) -> RawDataset:
    """Read the dataset a spec names; a clear DataError when it cannot.

    'cifar10[:ROOT]' and 'mnist[:ROOT]' go through `find_data_spec`'s rule,
    so a ROOT holding only mnist.npz serves 'mnist' as it serves the claims.
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
    if kind in LAYOUTS:
        root = Path(location) if location else default_data_dir()
        found = _locate(kind, root)
        if found is not None and found.startswith("npz:"):
            return load_arrays_file(Path(found.removeprefix("npz:")))
        return _load_torchvision(kind, root, allow_download)
    raise DataError(f"unknown data spec {spec!r}; use cifar10[:ROOT], mnist[:ROOT] or npz:PATH")


def _load_torchvision(kind: str, root: Path, allow_download: bool) -> RawDataset:
    import torchvision

    if not root.is_dir() and not allow_download:
        raise DataError(_why_not_found(kind, root))
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
            f"torchvision could not read {kind} under {str(root)!r}{hint}: {problem} (torchvision: {said})"
        ) from None
    arrays = [np.asarray(train.data), np.asarray(train.targets), np.asarray(test.data), np.asarray(test.targets)]
    # CIFAR-10's name is earned by torchvision's md5 check of every file; MNIST
    # has none for its idx files, so only the decoded content can earn it.
    name = "CIFAR-10 (torchvision)" if kind == "cifar10" else UNKNOWN_MNIST_FOLDER
    raw = _validated(
        dict(zip(ARRAY_NAMES, arrays)),
        name,
        origin=f"{kind} under {root}",
        declared_classes=(len(train.classes), f"{DATASET_NAMES[kind]}'s {len(train.classes)} classes"),
    )
    if kind == "mnist":
        raw = dataclasses.replace(raw, source=KNOWN_FOLDER_CONTENT.get(raw.fingerprint.removeprefix("sha256:"), name))
    return raw


# Deleting is the fix only for files that were found and failed their
# integrity check: a folder in the wrong place or still archived holds good data.
_REFETCH = (
    "delete that folder and download the dataset again (pass --allow-download or set HARNESS_ALLOW_DOWNLOAD=1), "
    "or use an arrays file instead (npz:PATH)"
)


def _diagnose_cifar10_folder(root: Path) -> str | None:
    """What is wrong with ROOT/cifar-10-batches-py and its fix, by torchvision's file list and md5 checksums.

    torchvision says only "not found or corrupted"; the user needs to know
    which file, and that a folder which exists is not fixed by waiting.
    The checksums are read from torchvision's CIFAR10 class (and checked by
    its check_integrity) so that they stay the ones torchvision enforces.
    None when nothing is found wrong.
    """
    from torchvision.datasets import cifar

    folder = root / cifar.CIFAR10.base_folder
    if not folder.is_dir():
        return _cifar10_elsewhere(root)
    expected = [
        *cifar.CIFAR10.train_list,
        *cifar.CIFAR10.test_list,
        [cifar.CIFAR10.meta["filename"], cifar.CIFAR10.meta["md5"]],
    ]
    missing = [name for name, _ in expected if not (folder / name).is_file()]
    if missing:
        return (
            f"the folder {str(folder)!r} exists but lacks {', '.join(missing)}: copy them back from "
            "cifar-10-python.tar.gz, or pass --allow-download to fetch the dataset into it"
        )
    damaged = [name for name, md5 in expected if not cifar.check_integrity(str(folder / name), md5)]
    if damaged:
        return (
            f"the folder {str(folder)!r} exists but the md5 checksum of {', '.join(damaged)} does not match "
            f"CIFAR-10's (a damaged or partial copy, or not the real dataset); {_REFETCH}"
        )
    return None


def _cifar10_elsewhere(root: Path) -> str:
    """ROOT has no cifar-10-batches-py: what it holds instead (the folder itself, the archive, the binary version)."""
    base = "cifar-10-batches-py"
    if root.name == base or (root / "data_batch_1").is_file() or (root / "batches.meta").is_file():
        return (
            f"{str(root)!r} is the {base} folder itself: pass the folder above it, {str(root.parent)!r}, "
            f"as ROOT (cifar10:{root.parent}) or HARNESS_DATA_DIR"
        )
    archive = root / "cifar-10-python.tar.gz"
    if archive.is_file():
        return (
            f"it holds {archive.name}, not extracted: extract it there (tar -xzf {archive} -C {root}), "
            "or pass --allow-download, which checks and extracts it"
        )
    binary = [name for name in ("cifar-10-batches-bin", "cifar-10-binary.tar.gz") if (root / name).exists()]
    if root.name == "cifar-10-batches-bin" or (root / "data_batch_1.bin").is_file():
        binary = [root.name]
    if binary:
        return (
            f"it holds {binary[0]}, CIFAR-10's binary version, and torchvision reads the python version: "
            f"put cifar-10-python.tar.gz in {str(root)!r} and extract it there, or pass --allow-download"
        )
    return (
        f"there is no {base} folder in {str(root)!r}: put CIFAR-10's python version there (cifar-10-python.tar.gz, "
        "extracted), set HARNESS_DATA_DIR to the folder that holds it, pass --allow-download, "
        "or use an arrays file (npz:PATH)"
    )


# MNIST's idx files: magic number (data type 0x08 = uint8, then the number of
# dimensions) and the dimensions, big-endian, before the data.
_MNIST_IDX_DIMENSIONS = {"images-idx3-ubyte": 3, "labels-idx1-ubyte": 1}
MNIST_FILES = tuple(f"{split}-{kind}" for split in ("train", "t10k") for kind in _MNIST_IDX_DIMENSIONS)
_GZIP_MAGIC = b"\x1f\x8b"


def _diagnose_mnist_folder(root: Path) -> str | None:
    """What is wrong with ROOT/MNIST/raw and its fix: a missing, compressed or renamed file, or a bad idx header.

    torchvision keeps no checksum of the uncompressed idx files, so the
    header is the only integrity check there is: it states the dimensions,
    hence the file's exact size. None when nothing is found wrong.
    """
    folder = root / "MNIST" / "raw"
    if not folder.is_dir():
        return _mnist_elsewhere(root)
    missing = [name for name in MNIST_FILES if not (folder / name).is_file()]
    if missing:
        return _mnist_missing(folder, missing)
    for name in MNIST_FILES:
        path = folder / name
        with open(path, "rb") as stream:
            compressed = stream.read(2) == _GZIP_MAGIC
        if compressed:
            return (
                f"the folder {str(folder)!r} exists but {name} is gzip-compressed under the uncompressed name: "
                f"decompress it (mv {path} {path}.gz && gunzip {path}.gz)"
            )
        problem = _idx_file_problem(path, _MNIST_IDX_DIMENSIONS[name.split("-", 1)[1]])
        if problem:
            return f"the folder {str(folder)!r} exists but {name} {problem}; {_REFETCH}"
    return None


def _mnist_missing(folder: Path, missing: list[str]) -> str:
    """The fix for idx files missing from MNIST/raw: decompress or rename what an archiver left, else fetch."""
    fixes, absent = [], []
    for name in missing:
        alias = _idx_alias(folder, name)
        if alias is None:
            absent.append(name)
        elif alias.name == f"{name}.gz":
            fixes.append(f"gunzip {alias}")
        elif alias.suffix == ".gz":
            fixes.append(f"decompress {alias} to {name} (gunzip -c {alias} > {folder / name})")
        else:
            fixes.append(f"rename {alias.name} to {name} (mv {alias} {folder / name})")
    fetch = f"put {', '.join(absent)} there, or pass --allow-download to fetch the missing files"
    if not fixes:
        return f"the folder {str(folder)!r} exists but lacks {', '.join(missing)}: {fetch}"
    return (
        f"the folder {str(folder)!r} lacks {', '.join(missing)} under the names torchvision reads, "
        f"but holds {'some of ' if absent else ''}them compressed or renamed: {'; '.join(fixes)}"
        + (f"; and {fetch}" if absent else "")
    )


def _idx_alias(folder: Path, name: str) -> Path | None:
    """A file in `folder` that is idx file `name` gzipped or renamed ('train-images.idx3-ubyte'), else None."""
    for path in sorted(folder.iterdir()):
        if path.name != name and _idx_name(path.name) == name:
            return path
    return None


def _idx_name(file_name: str) -> str:
    """The idx name torchvision reads for a file an archiver left compressed or renamed.

    'train-images.idx3-ubyte.gz' -> 'train-images-idx3-ubyte'.
    """
    return file_name.removesuffix(".gz").replace(".", "-")


def _mnist_elsewhere(root: Path) -> str:
    """ROOT has no MNIST/raw: whether ROOT is the MNIST or raw folder itself, or holds the idx files loose."""
    if root.name == "raw" and root.parent.name == "MNIST":
        return (
            f"{str(root)!r} is the MNIST/raw folder itself: pass {str(root.parent.parent)!r}, the folder holding "
            "MNIST/, as ROOT or HARNESS_DATA_DIR"
        )
    if root.name == "MNIST" and (root / "raw").is_dir():
        return (
            f"{str(root)!r} is the MNIST folder itself: pass {str(root.parent)!r}, the folder above it, "
            "as ROOT or HARNESS_DATA_DIR"
        )
    loose = [path.name for path in sorted(root.iterdir()) if _idx_name(path.name) in MNIST_FILES]
    if loose:
        target = root / "MNIST" / "raw"
        return (
            f"it holds MNIST's idx files ({', '.join(loose)}) directly, and torchvision reads them from "
            f"ROOT/MNIST/raw: move them into {target} (mkdir -p {target}, then mv them there)"
        )
    return (
        f"there is no MNIST/raw folder in {str(root)!r}: put MNIST's four idx files in {root / 'MNIST' / 'raw'}, "
        "set HARNESS_DATA_DIR to the folder that holds MNIST/, pass --allow-download, or use an arrays file (npz:PATH)"
    )


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
                    f"arrays file {path} lacks {', '.join(missing)}; it needs uint8 arrays {', '.join(ARRAY_NAMES)}"
                )
            arrays = {name: archive[name] for name in ARRAY_NAMES}
            declared = archive["num_classes"] if "num_classes" in archive.files else None
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
    declared_classes = None
    if declared is not None:
        count = _declared_class_count(declared, str(path))
        declared_classes = (count, f"the {count} classes its num_classes declares")
    return _validated(arrays, name, origin=str(path), digest=digest, declared_classes=declared_classes)


def _declared_class_count(declared: np.ndarray, origin: str) -> int:
    """An arrays file's optional `num_classes`: one positive integer, else a DataError."""
    if declared.size != 1 or not np.issubdtype(declared.dtype, np.integer) or int(declared.reshape(())) < 1:
        raise DataError(
            f"{origin}: num_classes must be one positive integer, got {declared.dtype} of shape {declared.shape}; "
            "save it as numpy.savez(..., num_classes=10), or leave it out to take the classes train_y holds"
        )
    return int(declared.reshape(()))


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


def _validated(
    arrays: dict,
    name: str,
    *,
    origin: str,
    digest: str | None = None,
    declared_classes: tuple[int, str] | None = None,
) -> RawDataset:
    """Shapes, dtypes and labels checked, grey images given a channel axis; a DataError naming the fix otherwise.

    declared_classes: (K, what declared it) when the source states its
    class count; else K is taken from the classes train_y holds.
    """
    for part in ("train", "test"):
        x, y = arrays[f"{part}_x"], arrays[f"{part}_y"]
        if x.dtype != np.uint8:
            raise DataError(f"{origin}: {part}_x must be uint8 pixels, got {x.dtype}")
        if x.ndim == 3:
            x = x[..., None]  # grey images: add the channel axis
        if x.ndim != 4:
            raise DataError(f"{origin}: {part}_x must have shape (N, H, W) or (N, H, W, C), got {x.shape}")
        if 0 in x.shape[1:]:
            raise DataError(
                f"{origin}: {part}_x has shape {x.shape}, images without pixels (a height, width or channel "
                "count of 0); save images as (N, H, W, C) with C = 1 (grey), 3 (RGB) or 4"
            )
        _refuse_channels_first(x.shape, f"{part}_x", origin)
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{origin}: {part}_y must be a vector of {len(x)} labels, got shape {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{origin}: {part}_y must hold integer labels, got {y.dtype}")
        if len(x) == 0:
            raise DataError(f"{origin}: {part}_x is empty")
        arrays[f"{part}_x"], arrays[f"{part}_y"] = x, y.astype(np.int64)
    if arrays["train_x"].shape[1:] != arrays["test_x"].shape[1:]:
        raise DataError(f"{origin}: train and test images differ in shape")
    if len(arrays["train_x"]) < 2:
        raise DataError(
            f"{origin}: train_x holds {len(arrays['train_x'])} image; a training set needs at least 2 images "
            "to show anything about fitting labels"
        )
    num_classes = _class_count(arrays["train_y"], arrays["test_y"], origin, declared_classes)
    present = np.unique(arrays["train_y"])
    if len(present) < 2:
        # One class: any classifier is 100% right on train and test, and random labels change nothing,
        # so every fitting claim would hold without measuring anything.
        raise DataError(
            f"{origin}: train_y holds one class ({int(present[0])}), and a classification run needs at least 2: "
            "every prediction would be right and random labels would change nothing; supply images of two or "
            "more classes"
        )
    if digest is None:
        digest = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays.values())).hexdigest()
    # The bytes alone identify the data: the same file under another name is the same data.
    return RawDataset(**arrays, source=name, fingerprint=f"sha256:{digest}", num_classes=num_classes)


# Channel counts an image can have: grey, RGB, RGBA.
_CHANNEL_COUNTS = (1, 3, 4)


def _refuse_channels_first(shape: tuple, array: str, origin: str) -> None:
    """(N, C, H, W) images would be read as C rows of H pixels with W channels: refuse them, naming the transpose."""
    if shape[1] in _CHANNEL_COUNTS and shape[3] not in _CHANNEL_COUNTS:
        raise DataError(
            f"{origin}: {array} has shape {shape}, which is channels-first (N, C, H, W); the harness reads "
            f"(N, H, W, C): transpose to (N, H, W, C) with numpy.transpose({array}, (0, 2, 3, 1)) "
            "and save the file again"
        )


def _class_count(train_y: np.ndarray, test_y: np.ndarray, origin: str, declared: tuple[int, str] | None) -> int:
    """The number of classes K, after checking every label against it; a DataError naming stray labels.

    A label outside the classes (a negative one, a sentinel such as 255 or
    -1 stored as uint8, labels counted from 1, a "10" among ten digits)
    would silently add output classes that no real image belongs to, and
    change what "random labels" means, so it is refused with the offending
    values and their counts. A declared K (the dataset's class list, an
    arrays file's num_classes) bounds the labels of train and test
    together; without one, K is the classes train_y holds, each of which
    must occur as a class does (not a handful of strays), and test labels
    must be among them.
    """
    for part, labels in (("train_y", train_y), ("test_y", test_y)):
        negative = labels[labels < 0]
        if len(negative):
            raise DataError(
                f"{origin}: {part} holds {len(negative)} negative label(s) ({_value_counts(negative)}); "
                "labels must be the classes 0..K-1: fix or drop those images"
            )
    if declared is not None:
        count, declared_by = declared
        for part, labels in (("train_y", train_y), ("test_y", test_y)):
            outside = labels[labels >= count]
            if len(outside):
                raise DataError(
                    f"{origin}: {part} holds {len(outside)} label(s) outside the class range 0..{count - 1} of "
                    f"{declared_by} ({_value_counts(outside)}): drop or relabel those images"
                )
        return count
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
    _refuse_stray_classes(train_y, origin)
    unseen = test_y[test_y > present[-1]]
    if len(unseen):
        raise DataError(
            f"{origin}: test_y holds {len(unseen)} label(s) outside the class range 0..{present[-1]} of "
            f"train_y ({_value_counts(unseen)}); test labels must be classes of the training set"
        )
    return len(present)


def _refuse_stray_classes(train_y: np.ndarray, origin: str) -> None:
    """A class with a sliver of the typical class's labels is stray labels (a "10" among 0..9): refuse it.

    The fix for a class that is real but rare is to declare the classes,
    which turns this check off.
    """
    counts = np.bincount(train_y)
    typical = float(np.median(counts))
    stray = np.flatnonzero(counts < STRAY_CLASS_SHARE * typical)
    if len(stray):
        labels = train_y[np.isin(train_y, stray)]
        raise DataError(
            f"{origin}: train_y holds {len(labels)} stray label(s) ({_value_counts(labels)}): "
            f"{'class' if len(stray) == 1 else 'classes'} {', '.join(map(str, stray))} "
            f"{'holds' if len(stray) == 1 else 'hold'} under {STRAY_CLASS_SHARE:.0%} of the median class's "
            f"{typical:g} labels, so they would add an output class of a few images. Drop or relabel those "
            f"images, or, if the class is real, declare the classes (numpy.savez(..., num_classes={len(counts)}))"
        )


def _value_counts(values: np.ndarray, shown: int = 5) -> str:
    """'255 x3, 12 x1': the most frequent values first, at most `shown` of them."""
    unique, counts = np.unique(values, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    parts = [f"{unique[i]} x{counts[i]}" for i in order[:shown]]
    if len(unique) > shown:
        parts.append(f"and {len(unique) - shown} more value(s)")
    return ", ".join(parts)


def subset_indices(n_total: int, n_wanted: int | None, seed: int) -> np.ndarray:
    """A seeded random subset (sorted), or everything when n_wanted is None.

    Random, not the first n: the JPEG copy's test set is grouped by class, so
    a prefix would hold a single class.
    """
    if n_wanted is None or n_wanted >= n_total:
        return np.arange(n_total)
    rng = np.random.default_rng([seed, 0x5EB5E7])
    return np.sort(rng.choice(n_total, size=n_wanted, replace=False))
