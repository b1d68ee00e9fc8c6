"""The sources behind an imported optimizer spec: which package, its version, a hash of its code.

An import spec's run keys hold `code_identity(spec).fingerprint`
(harness.core.optim.code_fingerprint), so that editing the optimizer's
code trains anew instead of reusing records made by the old code.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CodeIdentity:
    """What a run knows of the code behind its optimizer spec.

    package: the import name whose sources are hashed: the outermost regular
        package holding the spec's module (``lion_pytorch``), or the module
        itself where it is a single file (``myopt``). Import specs only: a
        built-in's code is torch's (`optimizer_identity`).
    distribution: the installed distribution providing that top-level name
        (``lion-pytorch``), None where none is installed (a file on sys.path).
    version: the distribution's version, else the top-level module's
        ``__version__``, else None.
    source: the package's folder name with a trailing ``/`` (``lion_pytorch/``)
        or the module's file name (``myopt.py``); "" where nothing was read.
    files: how many source files the digest covers (0: none could be read).
    digest: ``sha256:<16 hex>`` of those files, None where none could be read.
    fingerprint: the text that goes into run keys and tuning records.
    """

    package: str
    distribution: str | None
    version: str | None
    source: str
    files: int
    digest: str | None
    fingerprint: str

    def __str__(self) -> str:
        named = f"{self.distribution or self.package} {self.version or 'no version'}"
        if self.digest is None:
            return f"{named}, code not readable"
        count = f", {self.files} files" if self.source.endswith("/") else ""
        return f"{named}, code {self.digest} of {self.source}{count}"

    def as_dict(self) -> dict:
        """The identity as a session file stores it: {package, distribution, version, source, files, code}."""
        return {
            "package": self.package,
            "distribution": self.distribution,
            "version": self.version,
            "source": self.source,
            "files": self.files,
            "code": self.fingerprint,
        }


def code_identity(spec: str, module_name: str) -> CodeIdentity:
    """Where an import spec's code (`module_name`, the module the spec names) comes from, its version, and a hash of its sources.

    What is hashed: every ``*.py`` file under the folder of the outermost
    regular package holding the spec's module (hidden folders and
    ``__pycache__`` left out), by path relative to that folder and content;
    for a module that is a single file, that file's bytes alone (the digest
    it had when only the named file was hashed, so such records keep their
    keys). All files rather than the modules imported so far: which
    submodules are in sys.modules depends on import order and on what a
    step imports lazily, and a key must be the same whenever it is computed;
    editing a module the optimizer never uses retrains, which costs time,
    never a wrong reuse. Compiled extensions are not hashed (they are named
    by the distribution's version); code outside the package that it imports
    is named only by that package's version.

    A namespace package (no ``__init__.py``: its portions may belong to
    other projects) is looked through to the first regular package or module
    below it. A spec whose module
    cannot be imported, or is not read from a file (a zip), gives
    ``unhashable SPEC`` as its fingerprint, as before.
    """
    top_name = module_name.split(".")[0]
    try:
        importlib.import_module(module_name)
        root = _source_root(module_name)
    except ImportError:  # resolve() reports it, with the fix; the key of a run that cannot train does not matter
        root = None
    distribution, version = _version_of(top_name)
    if root is None:
        return CodeIdentity(top_name, distribution, version, "", 0, None, f"unhashable {spec}")
    package, path, is_package = root
    if is_package:
        files = _package_sources(path)
        digest = _digest_of_files(path, files)
        source = f"{path.name}/"
    else:
        files = [path]
        digest = "sha256:" + _file_sha256(path)[:16]
        source = path.name
    fingerprint = f"{distribution or package} {version}, {digest}" if version else digest
    return CodeIdentity(package, distribution, version, source, len(files), digest, fingerprint)


def _source_root(module_name: str) -> tuple[str, Path, bool] | None:
    """(import name, folder or file, is a package) whose sources identify `module_name`; None if not on disk.

    The outermost regular package along the dotted name, else the module
    itself. `module_name` must be imported already (its parents are then in
    sys.modules).
    """
    names = module_name.split(".")
    for depth in range(1, len(names) + 1):
        name = ".".join(names[:depth])
        module = sys.modules.get(name)
        location = getattr(module, "__file__", None)
        if module is None or location is None:
            continue  # a namespace package: look at the next name down
        path = Path(location)
        if not path.is_file():
            return None  # imported from a zip or built into the interpreter: no file to hash
        if hasattr(module, "__path__"):
            return name, path.parent, True
        return name, path, False
    return None


def _package_sources(folder: Path) -> list[Path]:
    """Every .py file under `folder`, hidden folders and __pycache__ left out, in a fixed order."""
    found = []
    for directory, subdirectories, names in os.walk(folder):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith(".") and d != "__pycache__")
        found += [Path(directory, name) for name in sorted(names) if name.endswith(".py")]
    return found


def _digest_of_files(folder: Path, files: list[Path]) -> str:
    """sha256 (16 hex digits) over each file's path relative to `folder` and its content's hash."""
    combined = hashlib.sha256()
    for path in files:
        combined.update(f"{path.relative_to(folder).as_posix()}\0{_file_sha256(path)}\n".encode())
    return "sha256:" + combined.hexdigest()[:16]


# A file's hash is reused while its (size, mtime, inode) stay the same, except for a file
# modified less than this many seconds before it was hashed: a file edited again within the
# same clock tick (coarse on some file systems) could keep its stat and change its bytes.
_RECENT_EDIT_S = 2.0
_FILE_HASHES: dict[str, tuple[tuple, str]] = {}  # path -> (stat identity, full hex sha256)


def _file_sha256(path: Path) -> str:
    """The full hex sha256 of a file's bytes; reused while the file is unchanged (run keys are made often)."""
    status = path.stat()
    stamp = (status.st_size, status.st_mtime_ns, status.st_ino)
    cached = _FILE_HASHES.get(str(path))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if time.time() - status.st_mtime > _RECENT_EDIT_S:
        _FILE_HASHES[str(path)] = (stamp, digest)
    return digest


def _version_of(top_name: str) -> tuple[str | None, str | None]:
    """(distribution, version) of the installed distribution providing `top_name`, else (None, __version__).

    The distribution is looked up by the top-level names it installs
    (importlib.metadata); the module's own ``__version__`` is the fallback
    for a package used from a source folder. (None, None) where neither says.
    """
    providers = _distributions_by_top_level(tuple(sys.path)).get(top_name) or []
    for distribution in dict.fromkeys(providers):
        try:
            return distribution, importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    version = getattr(sys.modules.get(top_name), "__version__", None)
    return None, (str(version) if version is not None else None)


@functools.lru_cache(maxsize=8)
def _distributions_by_top_level(search_path: tuple[str, ...]) -> dict[str, list[str]]:
    """importlib.metadata's top-level name -> distributions map, once per sys.path (it reads every
    installed distribution's metadata: a quarter of a second)."""
    return importlib.metadata.packages_distributions()
