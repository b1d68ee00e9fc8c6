"""Small arrays files for tests: real .npz layout, learnable classes."""

import numpy as np


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
