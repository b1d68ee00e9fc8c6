"""Run records on disk: values as JSON gives them back, and files written whole or not at all.

Every JSON file of the harness (run records, session files, baselines, the
report's JSON, tuning records) goes through `json_value` and
`write_json_atomic`; checkpoints (torch's format) go through the same
`replace_atomically`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np


def json_value(value, *, strict: bool = False):
    """`value` as JSON would give it back: plain dicts, lists, numbers, strings, None.

    numpy scalars become Python numbers and numpy arrays lists; tuples become
    lists and dict keys strings, as `json` writes them; any other object
    becomes its `str`. strict: a non-finite float (a run that never reached
    a level: ``inf``; a diverged loss: ``nan``) becomes its name as a
    string, for readers that refuse JSON's NaN/Infinity extension; otherwise
    it stays a float.
    """
    if isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(key): json_value(item, strict=strict) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item, strict=strict) for item in value]
    if isinstance(value, float):
        return str(value) if strict and not math.isfinite(value) else value
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def replace_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync, then rename onto `path`: never a half file.

    The file is made readable by every user (0644), so that another user of
    a shared results folder can read and resume what it holds. Raises
    OSError when the file cannot be written (errno ENOSPC for a full disk),
    after removing the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the file from other users
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, value) -> None:
    """`value` as indented JSON with sorted keys, written by `replace_atomically`."""
    replace_atomically(Path(path), json.dumps(value, indent=1, sort_keys=True).encode())
