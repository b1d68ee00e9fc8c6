"""What several test modules share (no test module imports another): small data files, session entries, an
environment guard for in-process pytest sessions, and a claims project in a pytester folder."""

import os
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_arrays_file(path, n_train=256, n_test=128, size=28, channels=1, classes=10, seed=0):
    """A small arrays file whose classes are learnable: each class brightens its own band of rows."""
    rng = np.random.default_rng(seed)

    def split(n):
        labels = rng.integers(0, classes, n)
        images = rng.integers(0, 60, (n, size, size, channels))
        band = size // classes
        for i, label in enumerate(labels):
            images[i, label * band : (label + 1) * band] += 150
        images = images.astype(np.uint8)
        return (images[..., 0] if channels == 1 else images), labels.astype(np.int64)

    train_x, train_y = split(n_train)
    test_x, test_y = split(n_test)
    np.savez(path, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)
    return path


def figure(claim, text, measured, holds=True, optimizer="paper_sgd", test=None, **context):
    """One declared figure as a session file holds it (`harness.suite.summary.figure_entry`'s keys)."""
    test = test or f"claims/test_x.py::test_{claim.lower()}_x[mlp_1x512-{optimizer}]"
    return {
        "claim": claim,
        "figure": text,
        "measured": measured,
        "threshold": "t",
        "holds": holds,
        "optimizer": optimizer,
        "test": test,
        **context,
    }


class EnvironmentKept:
    """Restores os.environ as it was: an in-process pytest session's plugin sets HARNESS_* variables."""

    def __enter__(self):
        self.saved = dict(os.environ)
        return self

    def __exit__(self, *exc):
        os.environ.clear()
        os.environ.update(self.saved)


def claims_project(pytester, tmp_path, claims: str, n_train: int = 128) -> Path:
    """The repository's conftest, a tiny cifar10 arrays file and one claims file; returns the data folder."""
    shutil.copy(ROOT / "conftest.py", pytester.path / "conftest.py")
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    write_arrays_file(data / "cifar10-tiny.npz", n_train=n_train, n_test=64)
    pytester.makepyfile(test_claim=claims)
    return data
