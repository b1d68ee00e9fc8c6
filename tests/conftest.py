"""Fixtures shared by the harness tests: small data files the tests write."""

import pytest
from support import write_arrays_file


@pytest.fixture
def tiny_npz(tmp_path):
    return write_arrays_file(tmp_path / "tiny.npz")


@pytest.fixture
def results(tmp_path, monkeypatch):
    folder = tmp_path / "results"
    monkeypatch.setenv("HARNESS_RESULTS_DIR", str(folder))
    return folder


pytest_plugins = ["pytester"]
