"""The ImageNet tier's data side: an ImageNet-layout folder, its transforms and its labels.

Layout: ``ROOT/train/<class>/*.JPEG`` and ``ROOT/val/<class>/*.JPEG`` (torchvision's
ImageFolder on each split; the class folders of the two splits must agree). Unlike
ImageFolder, hidden entries (``.ipynb_checkpoints``, ``.DS_Store``) are neither classes
nor images, and symbolic links to folders inside a class folder are not followed (a
link loop would list its images again and again, a link out of ROOT would add images
from elsewhere); an image that cannot be read is named with its path.

Labels are corrupted as in the CIFAR-10 tier (``harness.core.corrupt.corrupt_labels``), over
ImageFolder's sample order, which is sorted by class and file name and so the same on
every machine that holds the same files. Every rank draws the labels itself from the
run's seed; nothing is broadcast. The checksums below let the ranks prove to each other
that they hold the same files and the same labels (``harness.imagenet.distributed`` compares them
at start-up).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset
from torchvision import datasets, transforms
from torchvision.datasets.folder import has_file_allowed_extension

from harness.core.corrupt import LABEL_STREAM, corrupt_labels

VARIANTS = ("true", "partial", "random")
# ImageNet's per-channel statistics, as torchvision's reference recipes use them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Evaluation resizes the short side to size / 0.875 before the centre crop (342 for 299).
CENTRE_CROP_FRACTION = 0.875


def eval_transform(image_size: int) -> transforms.Compose:
    """Resize, centre crop, tensor, normalise: what evaluation, and training without augmentation, see."""
    return transforms.Compose(
        [
            transforms.Resize(round(image_size / CENTRE_CROP_FRACTION)),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def train_transform(image_size: int, augment: bool) -> transforms.Compose:
    """Training transform: the evaluation one, or random resized crops and flips when augmenting.

    The randomisation runs of the paper use no augmentation, so that is the default.
    """
    if not augment:
        return eval_transform(image_size)
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(image_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def draw_labels(targets: np.ndarray, variant: str, p: float, num_classes: int, seed: int) -> np.ndarray:
    """The training labels of a run: true, partially corrupted at level p, or random (p = 1).

    Pure and seeded: the same targets, variant, level and seed give the same labels on
    every rank and every machine.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
    level = {"true": 0.0, "random": 1.0}.get(variant, p)
    if variant == "partial" and not 0.0 < level < 1.0:
        raise ValueError(f"variant 'partial' needs a level p in (0, 1), got {p}")
    targets = np.asarray(targets, dtype=np.int64)
    if level == 0.0:
        return targets.copy()
    rng = np.random.default_rng([seed, LABEL_STREAM])
    return corrupt_labels(targets, level, num_classes, rng).astype(np.int64)


def checksum(*parts: bytes) -> int:
    """A 63-bit digest of some bytes, small enough for an int64 tensor in a collective."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return int.from_bytes(digest.digest()[:8], "little") >> 1


def labels_checksum(labels: np.ndarray) -> int:
    return checksum(np.ascontiguousarray(labels, dtype="<i8").tobytes())


def file_list_checksum(folder: datasets.ImageFolder) -> int:
    """Digest of the relative file paths and their true classes, in ImageFolder's order."""
    root = Path(folder.root)
    listing = "\n".join(f"{Path(path).relative_to(root).as_posix()}\t{target}" for path, target in folder.samples)
    return checksum(listing.encode())


class ImageFolderWithoutHidden(datasets.ImageFolder):
    """torchvision's ImageFolder without hidden entries, not following links to folders (see the module)."""

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        classes = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir() and not _hidden(entry.name))
        if not classes:
            raise FileNotFoundError(f"no class folder in {directory}")
        return classes, {name: index for index, name in enumerate(classes)}

    @staticmethod
    def make_dataset(directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False):
        """(path, class index) of every image, in ImageFolder's order: by class, then folder, then file name."""
        extensions = extensions or datasets.folder.IMG_EXTENSIONS
        samples = []
        for name, index in sorted(class_to_idx.items(), key=lambda item: item[1]):
            walked = []
            for folder, subfolders, files in os.walk(os.path.join(directory, name), followlinks=False):
                subfolders[:] = [sub for sub in subfolders if not _hidden(sub)]
                walked.append((folder, files))
            for folder, files in sorted(walked):
                for file in sorted(files):
                    path = os.path.join(folder, file)
                    valid = is_valid_file(path) if is_valid_file else has_file_allowed_extension(path, extensions)
                    if valid and not _hidden(file):
                        samples.append((path, index))
        if not samples and not allow_empty:
            raise FileNotFoundError(f"no images in the class folders of {directory}")
        return samples


def _hidden(name: str) -> bool:
    return name.startswith(".")


class Relabelled(Dataset):
    """An ImageFolder's images with other labels, read through a given transform."""

    def __init__(self, folder: datasets.ImageFolder, labels: np.ndarray, transform):
        if len(labels) != len(folder.samples):
            raise ValueError(f"{len(labels)} labels for {len(folder.samples)} images")
        self.paths = [path for path, _ in folder.samples]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.loader = folder.loader
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        path = self.paths[index]
        try:
            image = self.loader(path)
        except (OSError, ValueError) as error:  # a truncated or damaged file: name it, not a 200-line traceback
            raise OSError(f"cannot read image {path}: {error}") from None
        return self.transform(image), int(self.labels[index])


@dataclass
class FolderData:
    """One run's view of an ImageNet-layout folder."""

    root: Path
    classes: list[str]
    train: Relabelled  # training images with the run's labels, training transform
    train_eval: Relabelled  # the same images and labels, evaluation transform
    val: Relabelled  # validation images with their true labels, evaluation transform
    train_labels: np.ndarray
    labels_changed: int
    files_checksum: int  # over both splits' file lists
    labels_checksum: int

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def open_split(root: Path, split: str) -> datasets.ImageFolder:
    folder = root / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; expected {root}/{{train,val}}/<class>/<image>")
    try:
        return ImageFolderWithoutHidden(str(folder))
    except (FileNotFoundError, RuntimeError) as error:  # no class folders, or no images in them
        raise FileNotFoundError(f"{folder} holds no ImageFolder layout (<class>/<image>): {error}") from error


def load_folder(
    root, *, variant: str = "true", p: float = 0.0, seed: int = 0, image_size: int = 299, augment: bool = False
) -> FolderData:
    """Open ROOT/train and ROOT/val, draw the training labels, and build the three datasets."""
    root = Path(root)
    train_folder, val_folder = open_split(root, "train"), open_split(root, "val")
    if train_folder.classes != val_folder.classes:
        missing = sorted(set(train_folder.classes) ^ set(val_folder.classes))
        raise ValueError(f"train and val of {root} have different class folders (differing: {missing[:5]} ...)")
    num_classes = len(train_folder.classes)
    targets = np.asarray(train_folder.targets, dtype=np.int64)
    labels = draw_labels(targets, variant, p, num_classes, seed)
    evaluation = eval_transform(image_size)
    return FolderData(
        root=root,
        classes=list(train_folder.classes),
        train=Relabelled(train_folder, labels, train_transform(image_size, augment)),
        train_eval=Relabelled(train_folder, labels, evaluation),
        val=Relabelled(val_folder, np.asarray(val_folder.targets, dtype=np.int64), evaluation),
        train_labels=labels,
        labels_changed=int((labels != targets).sum()),
        files_checksum=checksum(
            file_list_checksum(train_folder).to_bytes(8, "little"), file_list_checksum(val_folder).to_bytes(8, "little")
        ),
        labels_checksum=labels_checksum(labels),
    )
