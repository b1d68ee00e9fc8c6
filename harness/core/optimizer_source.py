"""The sources behind an imported optimizer spec: which package, its version, a hash of its code.

An import spec's run keys hold `code_identity(spec).fingerprint`
(harness.core.optim.code_fingerprint), so that editing the optimizer's
code trains anew instead of reusing records made by the old code.

The code that trains is more than the spec's own package: a small factory
file often wraps another package (SAM, Muon, CAME, SOAP). So the identity
also covers every package the hashed sources import, followed transitively:
each is hashed like the spec's own package and named with its distribution
and version, except the harness's own dependencies (torch, torchvision,
numpy), named by version only, and the standard library, not named at all.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# The harness's own dependencies: an optimizer's import of them is named by version only. Hashing
# torch's thousands of files whenever a run key is made would cost seconds, and every run record is
# stamped with these three versions already (store.machine_stamp), as a built-in's runs are. Their
# versions are recorded in `imports`, not keyed, so a spec that imports only these and the standard
# library keeps the fingerprint it had before imports counted (its records keep their keys).
VERSION_ONLY = frozenset({"torch", "torchvision", "numpy"})

# How an imported package's code is named where no digest of its sources is: one of the
# VERSION_ONLY set, or one whose code is not Python source (a compiled extension); and an
# optional import that is not installed here (the optimizer runs without it).
VERSION_ONLY_CODE = "version only"
NOT_INSTALLED = "not installed"


@dataclass(frozen=True)
class ImportedPackage:
    """One package that the hashed sources of an optimizer import, directly or through another package.

    package: its import name (``sam_pytorch``), the outermost regular package
        or module along the imported name (a namespace package is looked through).
    distribution: the installed distribution providing it, None where none is.
    version: that distribution's version (else an already imported module's
        ``__version__``), None where neither says.
    code: ``sha256:<16 hex>`` of its sources (hashed as the spec's own package
        is), VERSION_ONLY_CODE or NOT_INSTALLED.
    """

    package: str
    distribution: str | None
    version: str | None
    code: str

    @property
    def hashed(self) -> bool:
        """Whether its sources were hashed (not named by version only, nor missing)."""
        return self.code.startswith("sha256:")

    @property
    def keyed(self) -> bool:
        """Whether it goes into the fingerprint: all but the harness's own dependencies (VERSION_ONLY)."""
        return self.package.split(".")[0] not in VERSION_ONLY

    def as_dict(self) -> dict:
        """{package, distribution, version, code}, as a session file stores it."""
        return {"package": self.package, "distribution": self.distribution, "version": self.version, "code": self.code}


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
    imports: the packages the hashed sources import, directly or transitively,
        sorted by import name (`ImportedPackage`); the standard library, the
        package itself and the harness left out.
    """

    package: str
    distribution: str | None
    version: str | None
    source: str
    files: int
    digest: str | None
    fingerprint: str
    imports: tuple[ImportedPackage, ...] = ()

    def __str__(self) -> str:
        named = f"{self.distribution or self.package} {self.version or 'no version'}"
        if self.digest is None:
            return f"{named}, code not readable"
        count = f", {self.files} files" if self.source.endswith("/") else ""
        hashed = sum(imported.hashed for imported in self.imports)
        imported = f", {hashed} imported package{'s' * (hashed != 1)} hashed" if hashed else ""
        return f"{named}, code {self.digest} of {self.source}{count}{imported}"

    def as_dict(self) -> dict:
        """The identity as a session file stores it: {package, distribution, version, source, files, code, imports}.

        imports: one {package, distribution, version, code} per imported package (`ImportedPackage.as_dict`).
        """
        return {
            "package": self.package,
            "distribution": self.distribution,
            "version": self.version,
            "source": self.source,
            "files": self.files,
            "code": self.fingerprint,
            "imports": [imported.as_dict() for imported in self.imports],
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
    by the distribution's version).

    What the package imports is covered too, so that editing a package that
    a small factory file wraps retrains: the import statements of the hashed
    files (``import`` and ``from ... import``, anywhere in a file: factories
    import lazily) are parsed with `ast` (`_imported_names`); every package
    they name is hashed the same way, named with its distribution and
    version (`ImportedPackage`), and its own imports followed in turn. Left
    out: the standard library, the package itself (relative imports stay
    inside it) and the harness. torch, torchvision and numpy (VERSION_ONLY)
    are named by version only: hashing their thousands of files on every key
    would cost seconds. An imported name that is not installed (an optional
    import) is recorded as such. All of them are in `imports`; all but
    VERSION_ONLY go into the fingerprint as one more part, ``imports
    sha256:<16 hex>`` over their identities in sorted order, so a spec that
    imports nothing else keeps the fingerprint it had before imports counted.

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
    imports = _imported_packages(package, files)
    fingerprint = f"{distribution or package} {version}, {digest}" if version else digest
    keyed = [imported for imported in imports if imported.keyed]
    if keyed:
        fingerprint += f", imports {_digest_of_imports(keyed)}"
    return CodeIdentity(package, distribution, version, source, len(files), digest, fingerprint, imports)


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


def _imported_packages(own: str, files: list[Path]) -> tuple[ImportedPackage, ...]:
    """Every package that `files` (the sources of package `own`) import, and the packages those import, by name.

    Followed transitively through the packages hashed (a wrapper over a
    package that itself wraps another), each package read once. Packages are
    found on disk without being imported: a factory may import lazily, and
    the key must not depend on whether it has run.
    """
    found: dict[str, ImportedPackage] = {}
    visited = {own}  # packages identified, by the name `_import_root` gives
    settled = set()  # top-level names that are a package or module themselves: nothing below them to look up
    pending = sorted(_imports_of(files))
    while pending:
        imported = pending.pop()
        if imported.split(".")[0] in settled or imported in visited or not _is_other_package(imported, own):
            continue
        visited.add(imported)  # a dotted name under a namespace package is looked up once
        root = _import_root(imported)
        if root is None or (root[0] in found):
            continue
        name, spec = root
        if "." not in name:
            settled.add(name)
        found[name], sources = _identify_import(name, spec)
        pending += sorted(_imports_of(sources))
    return tuple(found[name] for name in sorted(found))


def _is_other_package(imported: str, own: str) -> bool:
    """Whether a dotted import name may be a package of its own: not the standard library, `own` or the harness."""
    top = imported.split(".")[0]
    if top in sys.stdlib_module_names or top in ("__main__", "harness"):
        return False
    return imported != own and not imported.startswith(own + ".")


def _import_root(imported: str) -> tuple[str, importlib.machinery.ModuleSpec | None] | None:
    """(name, spec) of the outermost regular package or module along a dotted import name; spec None: not installed.

    A namespace package is looked through, without importing anything, to
    the next name down; None where the name ends at a namespace package
    (``from ns import attribute`` names nothing that has code).
    """
    names = imported.split(".")
    search_path = None  # None: sys.path (a top-level name)
    for depth in range(1, len(names) + 1):
        name = ".".join(names[:depth])
        try:
            if search_path is None:
                spec = importlib.util.find_spec(name)  # a top-level name: finds it, imports nothing
            else:
                spec = importlib.machinery.PathFinder.find_spec(name, search_path)
        except ValueError:  # a module made at run time (in sys.modules without a spec): no file to name
            return None
        except ImportError:
            spec = None
        if spec is None:
            return name, None
        if spec.submodule_search_locations is not None and not spec.has_location:  # a namespace package
            search_path = list(spec.submodule_search_locations)
            continue
        return name, spec
    return None


def _identify_import(name: str, spec: importlib.machinery.ModuleSpec | None) -> tuple[ImportedPackage, list[Path]]:
    """The identity of an imported package found at `spec`, and the source files hashed for it (to follow)."""
    if spec is None:
        return ImportedPackage(name, None, None, NOT_INSTALLED), []
    distribution, version = _version_of(name.split(".")[0])
    origin = Path(spec.origin) if spec.has_location and spec.origin else None
    if name.split(".")[0] in VERSION_ONLY or origin is None or not origin.is_file():
        # One of the harness's own dependencies, or code that is not a file (built in, frozen, zipped).
        return ImportedPackage(name, distribution, version, VERSION_ONLY_CODE), []
    if spec.submodule_search_locations is not None:
        files = _package_sources(origin.parent)
        return ImportedPackage(name, distribution, version, _digest_of_files(origin.parent, files)), files
    if origin.suffix != ".py":  # a compiled extension module: named by its distribution's version
        return ImportedPackage(name, distribution, version, VERSION_ONLY_CODE), []
    return ImportedPackage(name, distribution, version, "sha256:" + _file_sha256(origin)[:16]), [origin]


def _digest_of_imports(imports: list[ImportedPackage]) -> str:
    """sha256 (16 hex digits) over each imported package's name, distribution, version and code, sorted by name."""
    combined = hashlib.sha256()
    for imported in sorted(imports, key=lambda imported: imported.package):
        fields = (imported.package, imported.distribution or "", imported.version or "", imported.code)
        combined.update(("\0".join(fields) + "\n").encode())
    return "sha256:" + combined.hexdigest()[:16]


_IMPORTS_BY_CONTENT: dict[str, tuple[str, ...]] = {}  # full hex sha256 of a file -> the names it imports


def _imports_of(files: list[Path]) -> set[str]:
    """The dotted names that `files` import absolutely, anywhere in them (functions included)."""
    names: set[str] = set()
    for path in files:
        cached = _IMPORTS_BY_CONTENT.get(_file_sha256(path))
        if cached is None:  # parsed once per content: run keys are made often
            content = path.read_bytes()
            cached = _IMPORTS_BY_CONTENT[hashlib.sha256(content).hexdigest()] = _imported_names(content)
        names.update(cached)
    return names


def _imported_names(source: bytes) -> tuple[str, ...]:
    """The modules a source file imports: ``import a.b`` gives a.b; ``from a import b`` gives a and a.b
    (b may be a submodule of a namespace package). Relative imports stay inside the package: left out.

    Each import statement is parsed with `ast`, found by its keyword at the
    start of a line or after ``:`` or ``;`` (``try: import x``), anywhere in
    the file, functions included. Not the whole file: a wrapper over a large
    library reaches tens of megabytes of sources (sympy and matplotlib with
    what they import: 50 MB), and parsing them whole took about nine times
    as long as the statements alone, in every new process. A line of a
    docstring that reads as an import counts too: a package more in the
    key retrains at worst, it never reuses a wrong record.
    """
    names = set()
    for start in _IMPORT_START.finditer(source):
        try:
            statements = ast.parse(_statement_at(source, start.end())).body
        except (SyntaxError, ValueError):  # prose that begins with "import" or "from"
            continue
        for node in statements:  # an import and what follows it on its line after ";"
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*")
    return tuple(sorted(names))


# Where an import statement may begin: its keyword at the start of a line, or after ":" or ";".
_IMPORT_START = re.compile(rb"(?:^|[:;])[ \t]*(?=(?:import|from)[ \t])", re.MULTILINE)
_MOST_CONTINUATION_LINES = 200  # a parenthesised list of names longer than this is not an import
_COMMENT = re.compile(rb"#[^\n]*")


def _statement_at(source: bytes, start: int) -> bytes:
    """The text of the statement that begins at byte `start`: to the end of its line, and on through
    a parenthesised list of names or a backslash continuation."""
    end = start
    for _ in range(_MOST_CONTINUATION_LINES):
        line_end = source.find(b"\n", end)
        if line_end < 0:
            return source[start:]
        text = source[start:line_end]
        code = _COMMENT.sub(b"", text)  # a parenthesis in a comment opens nothing
        if code.count(b"(") <= code.count(b")") and not code.rstrip().endswith(b"\\"):
            return text
        end = line_end + 1
    return source[start:end]


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
