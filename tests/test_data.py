"""harness.core.data: the three data sources, their error messages, preprocessing, fingerprints.

The torchvision sources are exercised through torchvision's own readers on
small files written here in the real on-disk formats (CIFAR-10 python pickle
batches, MNIST idx files), so the layout conversions the harness relies on
are checked pixel by pixel without the real datasets.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar
from support import write_arrays_file

from harness.core import data
from harness.core.data import DataError, load_arrays_file, load_raw, subset_indices
from harness.core.prepare import centre_crop, standardise_per_image, to_unit_float

CIFAR_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# --- writers for the real on-disk formats ----------------------------------


def cifar_row(image: np.ndarray) -> np.ndarray:
    """One (32, 32, 3) image as a CIFAR-10 row of 3072 bytes, written from the format's definition.

    The format: the first 1024 bytes are the red plane, then green, then blue,
    each plane row-major, so pixel (row, col) of channel c sits at byte
    c * 1024 + row * 32 + col. Written by explicit offsets (not by a
    transpose) so the test does not mirror the reader's own reshaping.
    """
    row = np.zeros(3072, dtype=np.uint8)
    channel, r, c = np.meshgrid(np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    row[channel * 1024 + r * 32 + c] = image[r, c, channel]
    return row


def write_cifar10(root, train_images, train_labels, test_images, test_labels):
    """Write ROOT/cifar-10-batches-py as the real dataset lays it out.

    Five training batches and a test batch, each a pickled dict with 'data'
    (N, 3072) uint8 and 'labels' (a list), plus batches.meta with
    'label_names'. The real files are Python 2 pickles whose str keys read
    back as str under encoding='latin1'; a protocol-2 pickle with str keys
    reads back identically.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    splits = np.array_split(np.arange(len(train_images)), len(CIFAR_TRAIN_BATCHES))
    batches = [(name, train_images[idx], train_labels[idx]) for name, idx in zip(CIFAR_TRAIN_BATCHES, splits)]
    batches.append(("test_batch", test_images, test_labels))
    for name, images, labels in batches:
        entry = {
            "batch_label": f"{name} of 5",
            "labels": [int(label) for label in labels],
            "data": np.stack([cifar_row(image) for image in images]),
            "filenames": [f"image_{i}.png" for i in range(len(images))],
        }
        with open(folder / name, "wb") as stream:
            pickle.dump(entry, stream, protocol=2)
    with open(folder / "batches.meta", "wb") as stream:
        pickle.dump({"label_names": CIFAR_LABEL_NAMES, "num_cases_per_batch": 2, "num_vis": 3072}, stream, protocol=2)
    return folder


def idx_images(images: np.ndarray) -> bytes:
    """MNIST idx3 image file: big-endian magic 2051, N, rows, cols, then uint8 pixels row-major."""
    n, rows, cols = images.shape
    return struct.pack(">IIII", 2051, n, rows, cols) + images.astype(np.uint8).tobytes(order="C")


def idx_labels(labels: np.ndarray) -> bytes:
    """MNIST idx1 label file: big-endian magic 2049, N, then one uint8 per label."""
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def write_mnist(root, train_images, train_labels, test_images, test_labels):
    """Write ROOT/MNIST/raw with the four uncompressed idx files, as torchvision leaves them."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(idx_images(train_images))
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_labels(train_labels))
    (raw / "t10k-images-idx3-ubyte").write_bytes(idx_images(test_images))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(idx_labels(test_labels))
    return raw


@pytest.fixture
def cifar_integrity_by_existence(monkeypatch):
    """Make torchvision's CIFAR10 accept the small test files.

    CIFAR10 checks the md5 of each batch file against the real 170 MB
    dataset's checksums (check_integrity in torchvision.datasets.cifar),
    which files of a few kilobytes can never match. Only that check is
    replaced, by an existence check; the reading code stays torchvision's own.
    """
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


@pytest.fixture
def cifar_arrays():
    """Small random CIFAR-like arrays: 10 train images (2 per batch file) and 3 test images."""
    rng = np.random.default_rng(1)
    train_x = rng.integers(0, 256, size=(10, 32, 32, 3), dtype=np.uint8)
    train_y = np.arange(10) % 10
    test_x = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    test_y = np.array([4, 0, 9])
    return train_x, train_y, test_x, test_y


@pytest.fixture
def mnist_arrays():
    rng = np.random.default_rng(2)
    train_x = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    train_y = np.array([5, 0, 4, 1, 9, 2, 1, 3, 6, 7, 8, 5])  # every class 0..9 occurs
    test_x = rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    test_y = np.array([2, 1, 0, 5])
    return train_x, train_y, test_x, test_y


# --- torchvision: CIFAR-10 -------------------------------------------------


def test_cifar10_pickle_batches_read_as_nhwc_with_every_pixel_in_place(
    tmp_path, cifar_integrity_by_existence, cifar_arrays
):
    """CIFAR-10 batch files load as (N, 32, 32, 3) uint8, each pixel where it was written.

    The files store colour planes (R, G, B) one after another; images written
    by byte offset must come back with image[n, row, col, c] equal to the byte
    at c*1024 + row*32 + col, so a mixed-up plane or transpose would show.
    Train batches are read in order 1..5, then labels must follow them.
    """
    train_x, train_y, test_x, test_y = cifar_arrays
    write_cifar10(tmp_path, train_x, train_y, test_x, test_y)

    raw = load_raw(f"cifar10:{tmp_path}")

    assert raw.train_x.shape == (10, 32, 32, 3) and raw.test_x.shape == (3, 32, 32, 3)
    assert raw.train_x.dtype == np.uint8
    np.testing.assert_array_equal(raw.train_x, train_x)
    np.testing.assert_array_equal(raw.test_x, test_x)
    np.testing.assert_array_equal(raw.train_y, train_y)
    np.testing.assert_array_equal(raw.test_y, test_y)
    assert raw.train_y.dtype == np.int64
    assert raw.source == "CIFAR-10 (torchvision)"
    assert raw.fingerprint.startswith("sha256:")
    assert raw.num_classes == 10


def test_cifar10_single_marked_pixel_lands_at_its_row_column_and_channel(tmp_path, cifar_integrity_by_existence):
    """A lone non-zero byte in the green plane appears at exactly one (row, col, green) place.

    Byte 1024 + 5*32 + 7 is green, row 5, column 7: the only non-zero value
    of the loaded image must be there, which pins the plane order and the
    row-major layout independently of the random-image round trip.
    """
    train_x = np.zeros((5, 32, 32, 3), dtype=np.uint8)
    test_x = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    write_cifar10(tmp_path, train_x, np.arange(5), test_x, np.array([0]))
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    with open(batch, "rb") as stream:
        entry = pickle.load(stream)
    entry["data"][0, 1024 + 5 * 32 + 7] = 200
    with open(batch, "wb") as stream:
        pickle.dump(entry, stream, protocol=2)

    raw = load_raw(f"cifar10:{tmp_path}")

    assert np.argwhere(raw.train_x).tolist() == [[0, 5, 7, 1]]
    assert raw.train_x[0, 5, 7, 1] == 200


def test_cifar10_small_files_fail_torchvisions_md5_check_with_a_data_error(tmp_path, cifar_arrays):
    """Without the integrity patch, the test files are rejected as corrupted, as a DataError.

    This shows the md5 check is real (hence the patch elsewhere) and that
    torchvision's RuntimeError is turned into the harness's own error.
    """
    write_cifar10(tmp_path, *cifar_arrays)
    with pytest.raises(DataError, match="torchvision could not read cifar10") as caught:
        load_raw(f"cifar10:{tmp_path}")
    assert "downloading is off" in str(caught.value)


# --- torchvision: MNIST ----------------------------------------------------


def test_mnist_idx_files_read_as_nhw1_with_values_and_labels(tmp_path, mnist_arrays):
    """MNIST idx files load as (N, 28, 28, 1) uint8 with pixels and labels unchanged.

    torchvision's MNIST only checks that the raw files exist (no md5 for the
    uncompressed files), so no patch is needed. The harness adds the channel
    axis to grey images; random content in MNIST's layout is named by its
    layout, never "MNIST".
    """
    train_x, train_y, test_x, test_y = mnist_arrays
    write_mnist(tmp_path, train_x, train_y, test_x, test_y)

    raw = load_raw(f"mnist:{tmp_path}")

    assert raw.train_x.shape == (12, 28, 28, 1) and raw.test_x.shape == (4, 28, 28, 1)
    assert raw.train_x.dtype == np.uint8 and raw.train_y.dtype == np.int64
    np.testing.assert_array_equal(raw.train_x[..., 0], train_x)
    np.testing.assert_array_equal(raw.test_x[..., 0], test_x)
    np.testing.assert_array_equal(raw.train_y, train_y)
    np.testing.assert_array_equal(raw.test_y, test_y)
    assert raw.source == "MNIST-layout folder"
    assert raw.num_classes == 10


def test_mnist_idx_pixels_are_row_major(tmp_path):
    """Byte 28*3 + 20 after the idx header is row 3, column 20 of the first image."""
    train_x = np.zeros((2, 28, 28), dtype=np.uint8)
    train_x[0, 3, 20] = 77
    write_mnist(tmp_path, train_x, np.array([0, 1]), np.zeros((1, 28, 28), np.uint8), np.array([1]))
    header = 16
    assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").read_bytes()[header + 28 * 3 + 20] == 77

    raw = load_raw(f"mnist:{tmp_path}")

    assert np.argwhere(raw.train_x).tolist() == [[0, 3, 20, 0]]


def test_default_root_comes_from_harness_data_dir(tmp_path, monkeypatch, mnist_arrays):
    """'mnist' without a ROOT reads from $HARNESS_DATA_DIR, as the documentation says."""
    write_mnist(tmp_path, *mnist_arrays)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    raw = load_raw("mnist")
    assert raw.train_x.shape == (12, 28, 28, 1)


def test_mnist_layout_folder_is_named_mnist_only_when_its_content_is(tmp_path, monkeypatch, mnist_arrays):
    """The name follows the decoded arrays' digest: known content is MNIST; inverted pixels or shifted labels are not.

    torchvision reads any idx files in MNIST's layout without a checksum,
    so the layout alone says nothing about what the images are. The digest
    registry is extended with the test folder's own content, as the real
    MNIST is too large for a unit test.
    """
    train_x, train_y, test_x, test_y = mnist_arrays
    write_mnist(tmp_path / "same", train_x, train_y, test_x, test_y)
    write_mnist(tmp_path / "inverted", 255 - train_x, train_y, 255 - test_x, test_y)
    write_mnist(tmp_path / "shifted", train_x, (train_y + 1) % 10, test_x, (test_y + 1) % 10)
    digest = load_raw(f"mnist:{tmp_path / 'same'}").fingerprint.removeprefix("sha256:")
    monkeypatch.setitem(data.KNOWN_FOLDER_CONTENT, digest, "MNIST (torchvision)")

    names = {name: load_raw(f"mnist:{tmp_path / name}").source for name in ("same", "inverted", "shifted")}

    assert names == {"same": "MNIST (torchvision)", "inverted": "MNIST-layout folder", "shifted": "MNIST-layout folder"}


SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"


@pytest.mark.skipif(not SHARED_MNIST.is_file(), reason="needs the lossless MNIST copy at ../shared/data/mnist.npz")
def test_real_mnist_in_idx_files_is_named_mnist_and_a_doctored_copy_is_not(tmp_path):
    """The registered digest is the real MNIST's: its files, written as torchvision keeps them, are named MNIST.

    The shared copy is byte-identical to the official idx files (their
    published sha256s match the files written here); flipping one label
    makes the folder a "MNIST-layout folder".
    """
    with np.load(SHARED_MNIST) as arrays:
        train_x, train_y, test_x, test_y = (arrays[name] for name in ("train_x", "train_y", "test_x", "test_y"))
    write_mnist(tmp_path / "real", train_x, train_y, test_x, test_y)
    doctored = train_y.copy()
    doctored[0] = (doctored[0] + 1) % 10
    write_mnist(tmp_path / "doctored", train_x, doctored, test_x, test_y)

    assert load_raw(f"mnist:{tmp_path / 'real'}").source == "MNIST (torchvision)"
    assert load_raw(f"mnist:{tmp_path / 'doctored'}").source == "MNIST-layout folder"


def test_number_of_classes_comes_from_the_dataset_not_from_the_labels_seen(
    tmp_path, cifar_integrity_by_existence, cifar_arrays, mnist_arrays
):
    """CIFAR-10 and MNIST folders have ten classes even when the labels present stop at 4."""
    train_x, _, test_x, _ = mnist_arrays
    write_mnist(tmp_path / "mnist", train_x, np.arange(12) % 5, test_x, np.arange(4) % 5)
    cifar_x, _, cifar_test_x, _ = cifar_arrays
    write_cifar10(tmp_path / "cifar", cifar_x, np.arange(10) % 5, cifar_test_x, np.arange(3))

    assert load_raw(f"mnist:{tmp_path / 'mnist'}").num_classes == 10
    assert load_raw(f"cifar10:{tmp_path / 'cifar'}").num_classes == 10


def test_cifar10_folder_label_past_its_ten_classes_is_refused_with_its_count(tmp_path, cifar_integrity_by_existence):
    """Labels 0..10, every one present: still a stray "10", since CIFAR-10's batches.meta lists ten classes."""
    rng = np.random.default_rng(7)
    write_cifar10(
        tmp_path,
        rng.integers(0, 256, (11, 32, 32, 3), dtype=np.uint8),
        np.arange(11),
        rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8),
        np.array([0, 1]),
    )
    with pytest.raises(
        DataError,
        match=r"train_y holds 1 label\(s\) outside the class range 0..9 of CIFAR-10's 10 "
        r"classes \(10 x1\)",
    ):
        load_raw(f"cifar10:{tmp_path}")


# --- one discovery rule ----------------------------------------------------


def test_bare_dataset_spec_reads_the_arrays_file_in_the_data_folder(tmp_path, monkeypatch):
    """'mnist' with HARNESS_DATA_DIR holding mnist.npz loads that file, as the claims' discovery finds it."""
    path = write_arrays_file(tmp_path / "mnist.npz")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))

    assert data.find_data_spec("mnist") == (f"npz:{path}", "")
    assert load_raw("mnist").source == "arrays file mnist.npz"
    assert load_raw(f"mnist:{tmp_path}").fingerprint == f"sha256:{data.file_sha256(path)}"


def test_cli_fit_with_data_mnist_trains_on_the_arrays_file_in_the_data_folder(tmp_path, monkeypatch, capsys):
    """The README's newcomer path: --data-dir holding mnist.npz and --data mnist trains, naming the file."""
    from harness.__main__ import main

    (tmp_path / "data").mkdir()
    write_arrays_file(tmp_path / "data" / "mnist.npz")
    # The command line sets these variables itself; monkeypatch restores them afterwards.
    monkeypatch.setenv("HARNESS_DATA_DIR", "unset")
    monkeypatch.setenv("HARNESS_RESULTS_DIR", str(tmp_path / "results"))

    main(
        [
            "fit",
            "--data",
            "mnist",
            "--data-dir",
            str(tmp_path / "data"),
            "--n-train",
            "64",
            "--n-test",
            "32",
            "--max-passes",
            "1",
            "--device",
            "cpu",
            "--quiet",
            "--json",
        ]
    )

    printed = capsys.readouterr()
    assert printed.out.strip(), f"nothing trained: {printed.err}"
    summary = json.loads(printed.out.strip().splitlines()[-1])
    assert summary["outcome"] in ("fitted", "out_of_budget") and summary["data_source"] == "arrays file mnist.npz"


# --- torchvision: missing data ---------------------------------------------


@pytest.mark.parametrize("kind", ["cifar10", "mnist"])
def test_missing_root_without_download_names_harness_data_dir(tmp_path, kind):
    """A root that does not exist, downloading off: DataError telling the user about HARNESS_DATA_DIR.

    These machines reach no dataset host, so the first thing a user needs is
    where the harness looks for data and how to change it.
    """
    absent = tmp_path / "no-such-folder"
    with pytest.raises(DataError, match="HARNESS_DATA_DIR") as caught:
        load_raw(f"{kind}:{absent}")
    assert str(absent) in str(caught.value)
    assert not absent.exists()  # nothing was created or downloaded


def test_missing_default_root_names_harness_data_dir(tmp_path, monkeypatch):
    """With no ROOT in the spec, the missing default folder is reported, naming HARNESS_DATA_DIR."""
    absent = tmp_path / "unset-data"
    monkeypatch.setenv("HARNESS_DATA_DIR", str(absent))
    with pytest.raises(DataError, match="HARNESS_DATA_DIR") as caught:
        load_raw("cifar10")
    assert str(absent) in str(caught.value)


@pytest.mark.parametrize("kind", ["cifar10", "mnist"])
def test_existing_root_without_dataset_files_is_a_data_error(tmp_path, kind, cifar_integrity_by_existence):
    """A root that exists but holds no dataset: DataError naming the kind and root, not a raw RuntimeError."""
    (tmp_path / "unrelated.txt").write_text("not a dataset")
    with pytest.raises(DataError, match=f"could not read {kind}") as caught:
        load_raw(f"{kind}:{tmp_path}")
    assert str(tmp_path) in str(caught.value)


def test_mnist_with_one_idx_file_missing_is_a_data_error(tmp_path, mnist_arrays):
    """Three of the four idx files is still an incomplete dataset: DataError."""
    raw = write_mnist(tmp_path, *mnist_arrays)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="could not read mnist"):
        load_raw(f"mnist:{tmp_path}")


def _break_mnist_garbage(root):
    (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"garbage" * 10)


def _break_mnist_labels_as_images(root):
    raw = root / "MNIST" / "raw"
    shutil.copy(raw / "t10k-labels-idx1-ubyte", raw / "t10k-images-idx3-ubyte")


def _break_cifar_truncated(root):
    batch = root / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:100])


@pytest.mark.parametrize(
    "kind, breaker, error_type",
    [
        ("mnist", _break_mnist_garbage, "AssertionError"),
        ("mnist", _break_mnist_labels_as_images, "ValueError"),
        ("cifar10", _break_cifar_truncated, "UnpicklingError"),
    ],
    ids=["mnist_garbage_images", "mnist_label_file_as_images", "cifar_truncated_pickle"],
)
def test_corrupt_torchvision_file_is_a_data_error(
    tmp_path, kind, breaker, error_type, cifar_integrity_by_existence, mnist_arrays, cifar_arrays
):
    """A present but corrupt dataset file gives DataError, like every other unreadable dataset.

    load_raw promises 'a clear DataError when it cannot' read; callers (the
    plugin) rely on DataError to report data problems instead of crashing.
    torchvision fails on such files with assorted exception types (not only
    RuntimeError); the message keeps the type torchvision raised.
    """
    if kind == "mnist":
        write_mnist(tmp_path, *mnist_arrays)
    else:
        write_cifar10(tmp_path, *cifar_arrays)
    breaker(tmp_path)
    with pytest.raises(DataError, match=f"torchvision could not read {kind}.*{error_type}"):
        load_raw(f"{kind}:{tmp_path}")


# --- arrays files ----------------------------------------------------------


def grey_arrays(n_train=8, n_test=4):
    rng = np.random.default_rng(3)
    return {
        "train_x": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_y": np.arange(n_train) % 4,
        "test_x": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_y": np.arange(n_test) % 4,
    }


def colour_arrays():
    rng = np.random.default_rng(4)
    return {
        "train_x": rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8),
        "train_y": np.array([0, 1, 2, 0, 1, 2], dtype=np.int32),
        "test_x": rng.integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8),
        "test_y": np.array([2, 0], dtype=np.uint8),
    }


def save_npz(path, arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def test_grey_arrays_file_gets_a_channel_axis(tmp_path):
    """Grey (N, 28, 28) arrays load as (N, 28, 28, 1), values and labels unchanged."""
    arrays = grey_arrays()
    path = save_npz(tmp_path / "digits.npz", arrays)

    raw = load_raw(f"npz:{path}")

    assert raw.train_x.shape == (8, 28, 28, 1) and raw.test_x.shape == (4, 28, 28, 1)
    np.testing.assert_array_equal(raw.train_x[..., 0], arrays["train_x"])
    np.testing.assert_array_equal(raw.test_x[..., 0], arrays["test_x"])
    np.testing.assert_array_equal(raw.train_y, arrays["train_y"])
    assert raw.num_classes == 4


def test_colour_arrays_file_kept_as_is_with_int64_labels(tmp_path):
    """Colour (N, 32, 32, 3) arrays keep their shape; labels of any integer dtype become int64."""
    arrays = colour_arrays()
    path = save_npz(tmp_path / "colour.npz", arrays)

    raw = load_arrays_file(path)

    assert raw.train_x.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(raw.train_x, arrays["train_x"])
    np.testing.assert_array_equal(raw.test_x, arrays["test_x"])
    assert raw.train_y.dtype == np.int64 and raw.test_y.dtype == np.int64
    np.testing.assert_array_equal(raw.test_y, [2, 0])


def test_unknown_arrays_file_is_named_by_its_file_name(tmp_path):
    """An arrays file the harness does not know is called 'arrays file NAME.npz', never a benchmark's name."""
    path = save_npz(tmp_path / "my_data.npz", grey_arrays())
    raw = load_raw(f"npz:{path}")
    assert raw.source == "arrays file my_data.npz"
    assert raw.fingerprint == f"sha256:{data.file_sha256(path)}"


def test_known_arrays_file_gets_its_honest_name_whatever_it_is_called(tmp_path, monkeypatch):
    """A file whose sha256 is in KNOWN_ARRAYS_FILES takes the registered name, not its file name.

    This is how a lossy benchmark copy keeps its honest label (e.g. 'JPEG q75
    copy') even if renamed; the registry is extended here with the test
    file's own digest, since the real files are far too large for a test.
    """
    path = save_npz(tmp_path / "cifar10.npz", grey_arrays())
    monkeypatch.setitem(data.KNOWN_ARRAYS_FILES, data.file_sha256(path), "Example set (lossy copy)")
    raw = load_raw(f"npz:{path}")
    assert raw.source == "Example set (lossy copy)"
    assert raw.fingerprint == f"sha256:{data.file_sha256(path)}"


def test_known_arrays_registry_names_copies_honestly():
    """The registered names say what the known files are: the CIFAR-10 copy is marked as a JPEG copy."""
    names = set(data.KNOWN_ARRAYS_FILES.values())
    assert "CIFAR-10 (JPEG q75 copy)" in names
    assert "CIFAR-10" not in names and "CIFAR-10 (torchvision)" not in names
    assert all(len(digest) == 64 and int(digest, 16) >= 0 for digest in data.KNOWN_ARRAYS_FILES)


def _without(name):
    arrays = grey_arrays()
    del arrays[name]
    return arrays


def _replace(**changes):
    arrays = grey_arrays()
    arrays.update(changes)
    return arrays


BAD_ARRAYS = {
    "missing_train_y": (_without("train_y"), "lacks train_y"),
    "missing_test_x": (_without("test_x"), "lacks test_x"),
    "float_images": (_replace(train_x=np.zeros((8, 28, 28), np.float32)), "train_x must be uint8"),
    "two_d_images": (_replace(test_x=np.zeros((4, 784), np.uint8)), r"test_x must have shape \(N, H, W\)"),
    "label_length_mismatch": (_replace(train_y=np.arange(7) % 4), "train_y must be a vector of 8 labels"),
    "negative_labels": (
        _replace(train_y=np.array([0, 1, 2, 3, -1, 1, 2, 3])),
        r"train_y holds 1 negative label\(s\) \(-1 x1\)",
    ),
    "test_label_not_in_train": (
        _replace(test_y=np.array([0, 1, 2, 7])),
        r"test_y holds 1 label\(s\) outside the class range 0..3 of train_y \(7 x1\)",
    ),
    "float_labels": (_replace(train_y=np.zeros(8, np.float64)), "train_y must hold integer labels"),
    "train_test_shape_differ": (_replace(test_x=np.zeros((4, 32, 32), np.uint8)), "train and test images differ"),
    "empty_train": (
        _replace(train_x=np.zeros((0, 28, 28), np.uint8), train_y=np.zeros(0, np.int64)),
        "train_x is empty",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_bad_arrays_file_gives_a_one_line_data_error_saying_what_is_wrong(tmp_path, case):
    """Each malformed arrays file is refused with a DataError whose single line names the problem.

    Users bring their own arrays files; a clear message (which array, what
    was expected) is the difference between a fix and a debugging session.
    """
    arrays, expected = BAD_ARRAYS[case]
    path = save_npz(tmp_path / f"{case}.npz", arrays)
    with pytest.raises(DataError, match=expected) as caught:
        load_raw(f"npz:{path}")
    assert "\n" not in str(caught.value)


def test_missing_arrays_file_is_a_data_error_naming_the_path(tmp_path):
    """An npz spec pointing nowhere is refused with a one-line DataError that names the path to fix."""
    absent = tmp_path / "absent.npz"
    with pytest.raises(DataError, match="not found") as caught:
        load_raw(f"npz:{absent}")
    assert str(absent) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "content", [b"this is not an npz file at all", b"PK\x03\x04truncated zip"], ids=["text", "truncated_zip"]
)
def test_garbage_arrays_file_is_a_data_error(tmp_path, content):
    """A file that is not an npz archive is refused as 'not a readable .npz', in one line."""
    path = tmp_path / "garbage.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match="garbage.npz is not a readable .npz") as caught:
        load_raw(f"npz:{path}")
    assert "\n" not in str(caught.value)


def test_npz_spec_without_path_is_a_data_error():
    """'npz:' alone is refused with a message saying a path is needed, not an obscure file error on ''."""
    with pytest.raises(DataError, match="needs a path"):
        load_raw("npz:")


@pytest.mark.parametrize("spec", ["imagenet:/data", "CIFAR10", "", "cifar100:x"])
def test_unknown_spec_kind_is_a_data_error_listing_the_valid_kinds(spec):
    """An unknown data spec is refused with the forms that are accepted."""
    with pytest.raises(DataError, match=r"unknown data spec.*cifar10\[:ROOT\], mnist\[:ROOT\] or npz:PATH"):
        load_raw(spec)


# --- preprocessing ---------------------------------------------------------


def index_coded_images(n=2, size=32, channels=3):
    """Images whose pixel (row, col, c) holds row*1000 + col*10 + c (+ image * 10**6), to read positions back."""
    n_idx, r, c, ch = np.meshgrid(np.arange(n), np.arange(size), np.arange(size), np.arange(channels), indexing="ij")
    return n_idx * 10**6 + r * 1000 + c * 10 + ch


def test_centre_crop_32_to_28_drops_two_pixels_on_each_side():
    """32 -> 28 keeps rows and columns 2..29: the exact centre, as the paper's centre crop."""
    images = index_coded_images()
    cropped = centre_crop(images, 28)
    assert cropped.shape == (2, 28, 28, 3)
    rows = (cropped[..., 0] % 10**6) // 1000
    cols = (cropped[..., 0] % 1000) // 10
    np.testing.assert_array_equal(rows[0, :, 0], np.arange(2, 30))
    np.testing.assert_array_equal(cols[0, 0, :], np.arange(2, 30))
    np.testing.assert_array_equal(cropped, images[:, 2:30, 2:30, :])


def test_centre_crop_of_an_image_already_that_size_is_unchanged():
    """Images already at the crop size pass through unchanged (MNIST is 28x28 from the start)."""
    images = index_coded_images(size=28)
    np.testing.assert_array_equal(centre_crop(images, 28), images)


def test_centre_crop_of_a_too_small_image_is_a_data_error():
    """Images smaller than the crop are refused with a DataError giving both sizes, never silently padded."""
    with pytest.raises(DataError, match="24x24 are smaller than the 28x28 crop"):
        centre_crop(np.zeros((1, 24, 24, 1), np.uint8), 28)


def test_per_image_standardisation_gives_zero_mean_unit_std_per_image():
    """Each image separately has mean 0 and (population) std 1, whatever its own scale and offset."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(5, 3, 28, 28, generator=generator)
    images = images * torch.tensor([0.1, 1.0, 3.0, 0.5, 2.0]).view(5, 1, 1, 1) + torch.arange(5.0).view(5, 1, 1, 1)

    out = standardise_per_image(images)

    flat = out.flatten(1)
    assert out.shape == images.shape
    torch.testing.assert_close(flat.mean(1), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.std(1, unbiased=False), torch.ones(5), atol=1e-4, rtol=0)


def test_per_image_standardisation_of_a_constant_image_is_finite_zero():
    """A uniform image has std 0; the floor 1/sqrt(numel) keeps it finite (all zeros), as TensorFlow's."""
    images = torch.full((2, 1, 28, 28), 0.7)
    out = standardise_per_image(images)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.zeros_like(out), atol=1e-5, rtol=0)


def test_per_image_standardisation_floors_a_tiny_std_at_one_over_sqrt_numel():
    """An image whose std is below 1/sqrt(numel) is divided by that floor, not by its own std.

    With numel = 784, the floor is 1/28: the output is (x - mean) * 28.
    """
    image = torch.full((1, 1, 28, 28), 0.5, dtype=torch.float64)
    image[0, 0, 0, 0] = 0.5 + 1e-3  # std ~3.6e-5, far below 1/28
    out = standardise_per_image(image)
    torch.testing.assert_close(out, (image - image.mean()) * 28.0)


def test_to_unit_float_is_float32_nchw_in_unit_range_and_centre_cropped():
    """uint8 NHWC -> float32 NCHW / 255, centre crop 28: pixel (c, i, j) is source (i+2, j+2, c) / 255."""
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    images[0, 2, 2, 0], images[0, 2, 3, 0] = 0, 255

    out = to_unit_float(images)

    assert out.dtype == torch.float32 and out.shape == (3, 3, 28, 28)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out[0, 0, 0, 0] == 0.0 and out[0, 0, 0, 1] == 1.0
    expected = torch.from_numpy(images[:, 2:30, 2:30, :].astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    torch.testing.assert_close(out, expected)


def test_to_unit_float_of_grey_28x28_gives_one_channel():
    """Grey 28x28 images (MNIST) become one-channel NCHW float32, 51/255 = 0.2, with nothing cropped."""
    images = np.full((2, 28, 28, 1), 51, dtype=np.uint8)
    out = to_unit_float(images)
    assert out.shape == (2, 1, 28, 28)
    torch.testing.assert_close(out, torch.full((2, 1, 28, 28), 0.2))


def test_subset_indices_is_seeded_sorted_unique_and_random():
    """A subset is reproducible per seed, sorted, without repeats, in range, and not simply a prefix.

    The prefix matters: the JPEG copy's test set is grouped by class, so the
    first n would hold one class.
    """
    first = subset_indices(1000, 100, seed=7)
    assert len(first) == 100
    np.testing.assert_array_equal(first, subset_indices(1000, 100, seed=7))
    assert not np.array_equal(first, subset_indices(1000, 100, seed=8))
    assert np.all(np.diff(first) > 0)  # sorted and unique
    assert first.min() >= 0 and first.max() < 1000
    assert not np.array_equal(first, np.arange(100))


@pytest.mark.parametrize("wanted", [None, 50, 80])
def test_subset_indices_is_everything_when_none_or_at_least_the_total(wanted):
    """No subset size, or one at least the total, means every example, in order."""
    np.testing.assert_array_equal(subset_indices(50, wanted, seed=3), np.arange(50))


# --- fingerprint -----------------------------------------------------------


def test_same_bytes_under_another_folder_have_the_same_fingerprint(tmp_path):
    """The fingerprint identifies the bytes: a copy of the file in another folder is the same data."""
    first = save_npz(tmp_path / "a" / "set.npz", grey_arrays())
    second = tmp_path / "b" / "set.npz"
    second.parent.mkdir()
    shutil.copyfile(first, second)
    assert load_raw(f"npz:{first}").fingerprint == load_raw(f"npz:{second}").fingerprint


def test_same_bytes_under_another_file_name_have_the_same_fingerprint(tmp_path):
    """Renaming a file does not change its data, so it should not change the fingerprint (or the run key)."""
    first = save_npz(tmp_path / "a" / "set.npz", grey_arrays())
    second = tmp_path / "b" / "renamed.npz"
    second.parent.mkdir()
    shutil.copyfile(first, second)
    assert load_raw(f"npz:{first}").fingerprint == load_raw(f"npz:{second}").fingerprint


def test_different_bytes_have_different_fingerprints(tmp_path):
    """Changing one pixel changes the fingerprint, so a changed file is never taken for the old one."""
    arrays = grey_arrays()
    first = save_npz(tmp_path / "a" / "set.npz", arrays)
    arrays["train_x"][0, 0, 0] ^= 1
    second = save_npz(tmp_path / "b" / "set.npz", arrays)
    assert load_raw(f"npz:{first}").fingerprint != load_raw(f"npz:{second}").fingerprint


def test_torchvision_fingerprint_follows_the_content_not_the_root(tmp_path, mnist_arrays):
    """Two roots holding the same MNIST files share a fingerprint; a changed label changes it."""
    train_x, train_y, test_x, test_y = mnist_arrays
    write_mnist(tmp_path / "one", train_x, train_y, test_x, test_y)
    write_mnist(tmp_path / "two", train_x, train_y, test_x, test_y)
    changed = train_y.copy()
    changed[0] = 6
    write_mnist(tmp_path / "three", train_x, changed, test_x, test_y)

    one, two, three = (load_raw(f"mnist:{tmp_path / name}").fingerprint for name in ("one", "two", "three"))

    assert one == two
    assert one != three


def test_rewritten_file_with_restored_mtime_gets_a_new_fingerprint(tmp_path):
    """A file rewritten in place with other bytes of the same size gets a new fingerprint.

    The fingerprint goes into run keys, so a stale one would let a record
    trained on the old data stand for the new. Here the mtime is restored
    explicitly, as copying tools that preserve timestamps do.
    """
    arrays = grey_arrays()
    path = save_npz(tmp_path / "set.npz", arrays)
    before = path.stat()
    first = load_raw(f"npz:{path}")
    arrays["train_x"][0, 0, 0] ^= 1
    save_npz(path, arrays)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    second = load_raw(f"npz:{path}")

    # Preconditions, failed (not asserted) so they cannot pass for the expected failure:
    if path.stat().st_size != before.st_size or second.train_x[0, 0, 0, 0] == first.train_x[0, 0, 0, 0]:
        pytest.fail("setup: the rewrite must keep the size and the new bytes must be read")
    assert second.fingerprint != first.fingerprint
