"""Corrupt data is refused before any training, with a DataError that names the file and the fix.

Each case writes real files (an .npz by numpy, CIFAR-10 pickle batches,
MNIST idx files) and damages them the way disks, copies and hand-made
datasets do: a cut-off file, a flipped byte, a missing array, a sentinel
label. torchvision's own readers and integrity check run unpatched; only
CIFAR-10's expected checksums are replaced by those of the small files
written here, since no small file can match the real 170 MB dataset's.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tarfile

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar
from support import write_arrays_file
from test_data import CIFAR_TRAIN_BATCHES, write_cifar10, write_mnist

from harness.core import runner
from harness.core.config import RunConfig
from harness.core.data import DataError, find_data_spec, load_raw
from harness.core.prepare import prepare


def assert_one_line(error: pytest.ExceptionInfo, *fragments: str) -> str:
    text = str(error.value)
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in: {text}"
    return text


# --- arrays files ----------------------------------------------------------


def test_truncated_npz_names_the_file_says_it_is_truncated_and_how_to_remake_it(tmp_path):
    path = write_arrays_file(tmp_path / "cifar10-mine.npz")
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError) as caught:
        load_raw(f"npz:{path}")
    assert_one_line(caught, str(path), "not a readable .npz", "truncated", "numpy.savez")


def test_npz_with_a_damaged_member_is_refused_like_a_truncated_one(tmp_path):
    """A flipped byte inside an array's data: the zip's CRC check catches it when the array is read."""
    path = write_arrays_file(tmp_path / "flipped.npz")
    content = bytearray(path.read_bytes())
    content[len(content) // 3] ^= 0xFF  # inside train_x's bytes, far from the zip directory at the end
    path.write_bytes(bytes(content))
    with pytest.raises(DataError) as caught:
        load_raw(f"npz:{path}")
    assert_one_line(caught, str(path), "not a readable .npz", "damaged")


def _arrays(**changes):
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "train_y": np.arange(20) % 10,
        "test_x": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "test_y": np.arange(10),
    }
    arrays.update(changes)
    return {name: value for name, value in arrays.items() if value is not None}


@pytest.mark.parametrize(
    "changes, what",
    [
        (dict(test_y=None), "lacks test_y"),
        (dict(train_x=np.zeros((20, 28, 28), np.int16)), "train_x must be uint8 pixels, got int16"),
        (dict(train_y=np.eye(10, dtype=np.int64)[np.arange(20) % 10]), "train_y must be a vector of 20 labels"),
        (dict(test_x=np.zeros((10, 784), np.uint8)), "test_x must have shape (N, H, W) or (N, H, W, C)"),
    ],
    ids=["missing_array", "int16_pixels", "one_hot_labels", "flat_images"],
)
def test_npz_with_a_missing_or_misshapen_array_names_the_file_and_the_array(tmp_path, changes, what):
    caught = _refusal(tmp_path / "mine.npz", changes)
    assert_one_line(caught, "mine.npz", what)


@pytest.mark.parametrize(
    "changes, fragments",
    [
        (
            dict(train_y=np.array([-1, -1, -3, *range(10), *range(7)])),
            ["train_y holds 3 negative label(s)", "-1 x2", "-3 x1"],
        ),
        # -1 stored as uint8: a sentinel for "unlabelled" that would add 246 empty classes.
        (
            dict(train_y=np.array([*range(10), *range(7), 255, 255, 255], np.uint8)),
            ["train_y holds 3 label(s) outside the class range", "class 10 never occurs", "255 x3"],
        ),
        (
            dict(train_y=np.arange(20) % 10 + 1, test_y=np.arange(10) + 1),
            ["train_y holds 20 label(s) outside the class range", "class 0 never occurs", "renumber"],
        ),
        (
            dict(test_y=np.array([0, 1, 2, 3, 4, 5, 6, 10, 10, 12])),
            ["test_y holds 3 label(s) outside the class range 0..9 of train_y", "10 x2", "12 x1"],
        ),
    ],
    ids=["negative", "sentinel_255", "counted_from_one", "test_label_past_the_classes"],
)
def test_labels_outside_the_class_range_are_named_with_their_counts(tmp_path, changes, fragments):
    path = tmp_path / "labels.npz"
    assert_one_line(_refusal(path, changes), str(path), *fragments)


def _balanced(n_per_class=600, classes=10, **changes):
    """Arrays with `classes` classes of n_per_class training images each, like an MNIST copy in miniature."""
    rng = np.random.default_rng(1)
    n = n_per_class * classes
    arrays = {
        "train_x": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        "train_y": np.arange(n) % classes,
        "test_x": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "test_y": np.arange(20) % classes,
    }
    arrays.update(changes)
    return arrays


def _stray_tens():
    labels = np.arange(6000) % 10
    labels[:3] = 10  # classes 0, 1 and 2 keep 599 images each
    return labels


def test_arrays_file_label_one_past_the_last_class_is_refused_naming_its_count(tmp_path):
    """train_y[:3] = 10 in a ten-class set: three stray labels, not an eleventh class that trains."""
    path = tmp_path / "mnist-copy.npz"
    np.savez(path, **_balanced(train_y=_stray_tens()))
    with pytest.raises(DataError) as caught:
        load_raw(f"npz:{path}")
    assert_one_line(
        caught,
        str(path),
        "train_y holds 3 stray label(s) (10 x3)",
        "class 10 holds under 10%",
        "median class's 600 labels",
        "num_classes=11",
    )


@pytest.mark.parametrize("strays", [1, 2, 19])
def test_a_few_stray_labels_in_a_small_set_are_refused_too(tmp_path, strays):
    """2,000 images, 200 a class: 1 to 19 labels "10" are strays (at the old 1% rule, 2 or more trained as a class)."""
    labels = np.arange(2000) % 10
    labels[:strays] = 10
    path = tmp_path / "subset.npz"
    np.savez(path, **_balanced(n_per_class=200, train_y=labels))
    with pytest.raises(DataError, match=f"train_y holds {strays} stray label"):
        load_raw(f"npz:{path}")


def test_arrays_file_declared_classes_refuse_a_label_past_them_and_keep_a_rare_class(tmp_path):
    """Declared num_classes = 10: the three 10s are refused with their count; declared 11, they are a real class."""
    path = tmp_path / "declared.npz"
    np.savez(path, **_balanced(train_y=_stray_tens()), num_classes=10)
    with pytest.raises(DataError) as caught:
        load_raw(f"npz:{path}")
    assert_one_line(
        caught,
        "train_y holds 3 label(s) outside the class range 0..9 of the 10 classes its num_classes declares (10 x3)",
    )
    np.savez(path, **_balanced(train_y=_stray_tens()), num_classes=11)
    assert load_raw(f"npz:{path}").num_classes == 11


def test_arrays_file_declared_classes_bound_the_test_labels_too(tmp_path):
    path = tmp_path / "declared.npz"
    test_y = np.arange(20) % 10
    test_y[:2] = 11
    np.savez(path, **_balanced(classes=10, test_y=test_y), num_classes=12)
    assert load_raw(f"npz:{path}").num_classes == 12
    np.savez(path, **_balanced(classes=10, test_y=test_y), num_classes=10)
    with pytest.raises(DataError) as caught:
        load_raw(f"npz:{path}")
    assert_one_line(caught, "test_y holds 2 label(s) outside the class range 0..9", "(11 x2)")


@pytest.mark.parametrize("declared", [np.array([10, 11]), np.array(10.0), np.array(0)], ids=["two", "float", "zero"])
def test_arrays_file_num_classes_must_be_one_positive_integer(tmp_path, declared):
    path = tmp_path / "declared.npz"
    np.savez(path, **_balanced(), num_classes=declared)
    with pytest.raises(DataError) as caught:
        load_raw(f"npz:{path}")
    assert_one_line(caught, "num_classes must be one positive integer", "numpy.savez(..., num_classes=10)")


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)], ids=["rgb", "grey"])
def test_channels_first_images_are_refused_naming_the_transpose(tmp_path, shape):
    """(N, 3, 32, 32) and (N, 1, 28, 28) are channels-first: said so, with the transpose, not "3x32 too small"."""
    rng = np.random.default_rng(2)
    caught = _refusal(
        tmp_path / "nchw.npz",
        dict(
            train_x=rng.integers(0, 256, (20, *shape), dtype=np.uint8),
            test_x=rng.integers(0, 256, (10, *shape), dtype=np.uint8),
        ),
    )
    assert_one_line(
        caught,
        "nchw.npz",
        f"train_x has shape (20, {shape[0]}, {shape[1]}, {shape[2]})",
        "channels-first",
        "transpose to (N, H, W, C)",
        "numpy.transpose(train_x, (0, 2, 3, 1))",
    )


def _refusal(path, changes):
    """Write the arrays file with `changes` and return the DataError that loading it raises."""
    np.savez(path, **_arrays(**changes))
    with pytest.raises(DataError) as caught:
        load_raw(f"npz:{path}")
    return caught


def test_a_corrupt_arrays_file_stops_cached_fit_before_any_training(tmp_path, results, monkeypatch):
    """The data is read (and refused) while the run's key is computed: fit is never reached, nothing is saved."""
    path = write_arrays_file(tmp_path / "bad.npz")
    arrays = dict(np.load(path))
    arrays["train_y"][:4] = 200
    np.savez(path, **arrays)
    trained = []
    monkeypatch.setattr("harness.core.train.fit", lambda *args, **kwargs: trained.append(args))
    with pytest.raises(DataError, match="200 x4"):
        runner.cached_fit(RunConfig(data=f"npz:{path}", max_passes=1))
    assert trained == [] and not (results / "runs").exists()


def test_images_smaller_than_the_crop_are_refused_at_prepare_time_naming_the_data(tmp_path):
    path = write_arrays_file(tmp_path / "small.npz", size=20)
    raw = load_raw(f"npz:{path}")
    with pytest.raises(DataError) as caught:
        prepare(RunConfig(data=f"npz:{path}"), raw, torch.device("cpu"))
    assert_one_line(caught, "arrays file small.npz", "20x20", "28x28")


# --- torchvision folders ---------------------------------------------------


@pytest.fixture
def cifar_folder(tmp_path, monkeypatch):
    """A small CIFAR-10 folder whose checksums torchvision's CIFAR10 expects: its real check passes."""
    rng = np.random.default_rng(5)
    folder = write_cifar10(
        tmp_path,
        rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8),
        np.arange(10),
        rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8),
        np.array([4, 0, 9]),
    )

    def md5(name):
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    cifar10 = torchvision.datasets.cifar.CIFAR10
    monkeypatch.setattr(cifar10, "train_list", [[name, md5(name)] for name in CIFAR_TRAIN_BATCHES])
    monkeypatch.setattr(cifar10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(cifar10, "meta", {**cifar10.meta, "md5": md5("batches.meta")})
    assert load_raw(f"cifar10:{tmp_path}").train_x.shape == (10, 32, 32, 3)  # intact, it loads
    return folder


def test_cifar10_batch_with_a_flipped_byte_fails_its_checksum_naming_the_file_and_the_fix(cifar_folder):
    batch = cifar_folder / "data_batch_3"
    content = bytearray(batch.read_bytes())
    content[len(content) // 2] ^= 0x01
    batch.write_bytes(bytes(content))
    with pytest.raises(DataError) as caught:
        load_raw(f"cifar10:{cifar_folder.parent}")
    text = assert_one_line(
        caught,
        str(cifar_folder),
        "exists but the md5 checksum of data_batch_3 does not match",
        "delete that folder",
        "--allow-download",
        "downloading is off",
    )
    assert "data_batch_1" not in text and "test_batch" not in text.split("(torchvision")[0]


def test_cifar10_folder_missing_a_batch_names_it(cifar_folder):
    (cifar_folder / "test_batch").unlink()
    with pytest.raises(DataError) as caught:
        load_raw(f"cifar10:{cifar_folder.parent}")
    assert_one_line(caught, "exists but lacks test_batch", "--allow-download")


MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _mnist(root, train_labels=None):
    rng = np.random.default_rng(6)
    labels = np.arange(20) % 10 if train_labels is None else train_labels
    return write_mnist(
        root,
        rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        labels,
        rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        np.arange(5),
    )


def test_truncated_mnist_idx_file_is_named_with_the_size_its_header_promises(tmp_path):
    raw = _mnist(tmp_path)
    images = raw / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    with pytest.raises(DataError) as caught:
        load_raw(f"mnist:{tmp_path}")
    assert_one_line(
        caught,
        str(raw),
        "t10k-images-idx3-ubyte is damaged",
        f"promises {16 + 5 * 28 * 28} bytes",
        "has 1000",
        "delete that folder",
    )


def test_mnist_file_that_is_not_idx_is_named(tmp_path):
    raw = _mnist(tmp_path)
    (raw / "train-labels-idx1-ubyte").write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(DataError) as caught:
        load_raw(f"mnist:{tmp_path}")
    assert_one_line(caught, "train-labels-idx1-ubyte is not a uint8 idx file")


def test_mnist_label_past_the_classes_is_refused_with_its_count(tmp_path):
    labels = np.arange(20) % 10
    labels[[3, 7]] = 200
    labels[[13, 17]] = [3, 7]  # keep every class 0..9 present
    _mnist(tmp_path, labels)
    with pytest.raises(DataError) as caught:
        load_raw(f"mnist:{tmp_path}")
    assert_one_line(caught, f"mnist under {tmp_path}", "2 label(s) outside the class range", "200 x2")


def test_mnist_label_one_past_the_last_class_is_refused_with_its_count(tmp_path):
    """A "10" among MNIST's digits 0..9, every digit still present: MNIST has ten classes, so it is refused."""
    labels = np.arange(20) % 10
    labels[:3] = 10  # digits 0, 1 and 2 still occur at rows 10, 11 and 12
    _mnist(tmp_path, labels)
    with pytest.raises(DataError) as caught:
        load_raw(f"mnist:{tmp_path}")
    assert_one_line(caught, "train_y holds 3 label(s) outside the class range 0..9 of MNIST's 10 classes", "10 x3")


# --- folder diagnoses: the real fix, and deletion only for a failed checksum ---


def _no_deletion(text: str) -> None:
    assert "delete" not in text, f"advises deleting good data: {text}"


def test_root_pointing_at_the_cifar10_batches_folder_itself_names_its_parent(cifar_folder):
    with pytest.raises(DataError) as caught:
        load_raw(f"cifar10:{cifar_folder}")
    _no_deletion(
        assert_one_line(
            caught,
            "is the cifar-10-batches-py folder itself",
            "pass the folder above it",
            f"cifar10:{cifar_folder.parent}",
        )
    )


def test_unextracted_cifar10_archive_is_named_with_the_command_that_extracts_it(cifar_folder):
    root = cifar_folder.parent
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cifar_folder, arcname=cifar_folder.name)
    shutil.rmtree(cifar_folder)
    with pytest.raises(DataError) as caught:
        load_raw(f"cifar10:{root}")
    _no_deletion(assert_one_line(caught, "cifar-10-python.tar.gz, not extracted", f"tar -xzf {archive} -C {root}"))


@pytest.mark.parametrize("where", ["beside", "itself"])
def test_cifar10_binary_version_is_named_and_the_python_version_asked_for(tmp_path, where):
    binary = tmp_path / "cifar-10-batches-bin"
    binary.mkdir()
    for name in ("data_batch_1.bin", "test_batch.bin", "batches.meta.txt"):
        (binary / name).write_bytes(b"\x00" * 3073)
    root = tmp_path if where == "beside" else binary
    with pytest.raises(DataError) as caught:
        load_raw(f"cifar10:{root}")
    _no_deletion(
        assert_one_line(
            caught,
            "cifar-10-batches-bin, CIFAR-10's binary version",
            "torchvision reads the python version",
            "cifar-10-python.tar.gz",
        )
    )


@pytest.mark.parametrize("kind", ["cifar10", "mnist"])
def test_folder_without_the_dataset_is_not_told_to_delete_itself(tmp_path, kind):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(DataError) as caught:
        load_raw(f"{kind}:{tmp_path}")
    _no_deletion(assert_one_line(caught, "--allow-download", "npz:PATH"))


def test_gzipped_mnist_idx_files_are_named_with_gunzip(tmp_path):
    raw = _mnist(tmp_path)
    for name in MNIST_NAMES:
        (raw / f"{name}.gz").write_bytes(gzip.compress((raw / name).read_bytes()))
        (raw / name).unlink()
    with pytest.raises(DataError) as caught:
        load_raw(f"mnist:{tmp_path}")
    _no_deletion(
        assert_one_line(
            caught, f"gunzip {raw / 'train-images-idx3-ubyte.gz'}", f"gunzip {raw / 't10k-labels-idx1-ubyte.gz'}"
        )
    )


def test_mnist_idx_files_renamed_by_an_archiver_are_named_with_the_rename(tmp_path):
    """'train-images.idx3-ubyte' (a dot for the dash, as some archives ship them) is MNIST under the wrong name."""
    raw = _mnist(tmp_path)
    for name in MNIST_NAMES:
        (raw / name).rename(raw / name.replace("-idx", ".idx"))
    with pytest.raises(DataError) as caught:
        load_raw(f"mnist:{tmp_path}")
    _no_deletion(
        assert_one_line(
            caught,
            "rename train-images.idx3-ubyte to train-images-idx3-ubyte",
            "rename t10k-labels.idx1-ubyte to t10k-labels-idx1-ubyte",
        )
    )


def test_mnist_idx_file_gzipped_under_its_plain_name_is_named_as_compressed(tmp_path):
    raw = _mnist(tmp_path)
    images = raw / "t10k-images-idx3-ubyte"
    images.write_bytes(gzip.compress(images.read_bytes()))
    with pytest.raises(DataError) as caught:
        load_raw(f"mnist:{tmp_path}")
    _no_deletion(assert_one_line(caught, "t10k-images-idx3-ubyte is gzip-compressed", "gunzip"))


def test_root_pointing_at_mnist_raw_itself_names_the_folder_to_pass(tmp_path):
    raw = _mnist(tmp_path)
    with pytest.raises(DataError) as caught:
        load_raw(f"mnist:{raw}")
    _no_deletion(assert_one_line(caught, "is the MNIST/raw folder itself", f"pass {str(tmp_path)!r}"))


def test_data_folder_discovery_says_what_the_folder_holds_instead(tmp_path, monkeypatch):
    """find_data_spec (the claims' and the CLI's rule) finds no data in a folder holding the archive, and says why."""
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not extracted")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    spec, why = find_data_spec("cifar10")
    assert spec is None and "\n" not in why
    for fragment in (f"no cifar10 data in {str(tmp_path)!r}", "not extracted", "tar -xzf"):
        assert fragment in why, f"{fragment!r} not in: {why}"
    _no_deletion(why)
