"""The identity of the code under test: what a run key, a session header and a session file say an optimizer is.

An optimizer spec names one module, yet the code that trains is its whole
package and the version it came in. These tests edit a package the way an
author does (the implementation module behind a re-exporting
``__init__.py``) and install a fake distribution, and check that the run key
follows, that built-ins keep their keys, and that headers and session files
name the version and the code fingerprint.
"""

import hashlib
import json
import sys

import pytest
import torch

from harness.core.config import RunConfig
from harness.core.optim import code_fingerprint, code_identity, describe, optimizer_identity
from harness.core.record import RUN_SEMANTICS_VERSION
from harness.sessions.files import save_session

OPTIMIZER_SOURCE = "import torch\n\nclass Opt(torch.optim.SGD):\n    pass\n"


@pytest.fixture
def importable(tmp_path, monkeypatch):
    """Function: {relative path: source} -> the folder they were written to, which is put on sys.path.

    Modules the test imports are forgotten at its end, so that the next test
    imports its own files of the same name.
    """
    names_before = set(sys.modules)
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(files: dict[str, str]):
        for relative, source in files.items():
            path = tmp_path / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source)
        return tmp_path

    yield write
    for name in set(sys.modules) - names_before:
        sys.modules.pop(name, None)


def forget(prefix: str) -> None:
    """Drop a package's modules from sys.modules, as a new process would not have them."""
    for name in [name for name in sys.modules if name == prefix or name.startswith(prefix + ".")]:
        del sys.modules[name]


def run_key_of(spec: str, data) -> str:
    from harness.core.store import run_key

    return run_key(RunConfig(data=f"npz:{data}", optimizer=spec))


def test_editing_the_implementation_behind_a_re_export_changes_the_run_key(importable, tiny_npz):
    """lion_pytorch's layout: __init__.py re-exports the class; the spec names the package, the code is in impl.py."""
    folder = importable(
        {"reexport_pkg/__init__.py": "from .impl import Opt\n", "reexport_pkg/impl.py": OPTIMIZER_SOURCE}
    )
    before = run_key_of("reexport_pkg:Opt", tiny_npz)
    (folder / "reexport_pkg" / "impl.py").write_text(OPTIMIZER_SOURCE.replace("pass", "lr_scale = 2.0"))
    forget("reexport_pkg")
    assert run_key_of("reexport_pkg:Opt", tiny_npz) != before


def test_the_whole_package_is_hashed_whatever_was_imported_and_caches_are_not(importable):
    """All .py files under the package folder: a key that depended on which submodules happen to be
    imported would differ between two computations of one run in one process."""
    folder = importable(
        {
            "lazy_pkg/__init__.py": "from .impl import Opt\n",
            "lazy_pkg/impl.py": OPTIMIZER_SOURCE,
            "lazy_pkg/later.py": "HELPER = 1\n",
        }
    )
    first = code_identity("lazy_pkg:Opt")
    assert (first.package, first.source, first.files) == ("lazy_pkg", "lazy_pkg/", 3)
    import lazy_pkg.later  # noqa: F401  (imported by a step, say, after the key was first computed)

    assert code_fingerprint("lazy_pkg:Opt") == first.fingerprint
    (folder / "lazy_pkg" / "__pycache__").mkdir(exist_ok=True)
    (folder / "lazy_pkg" / "__pycache__" / "stale.py").write_text("compiled leftovers do not count\n")
    assert code_fingerprint("lazy_pkg:Opt") == first.fingerprint
    (folder / "lazy_pkg" / "later.py").write_text("HELPER = 2\n")  # same size, other bytes
    assert code_fingerprint("lazy_pkg:Opt") != first.fingerprint


def test_a_module_under_a_namespace_package_is_identified_by_the_first_regular_package(importable):
    """A namespace package's portions may be other projects: hashing stops at the regular package below it."""
    importable(
        {
            "shared_ns/inner/__init__.py": "from .impl import Opt\n",
            "shared_ns/inner/impl.py": OPTIMIZER_SOURCE,
            "shared_ns/unrelated.py": "X = 1\n",
        }
    )
    identity = code_identity("shared_ns.inner:Opt")
    assert (identity.package, identity.source, identity.files) == ("shared_ns.inner", "inner/", 2)


def test_a_single_module_is_its_own_file_and_keeps_the_key_it_had(importable):
    """A file on sys.path is hashed alone, as before: records of such optimizers keep their keys."""
    folder = importable({"single_file_opt.py": OPTIMIZER_SOURCE})
    digest = hashlib.sha256((folder / "single_file_opt.py").read_bytes()).hexdigest()[:16]
    assert code_fingerprint("single_file_opt:Opt") == f"sha256:{digest}"
    assert describe("single_file_opt:Opt") == (
        f"single_file_opt:Opt (single_file_opt no version, code sha256:{digest} of single_file_opt.py)"
    )


def test_the_version_of_a_fake_installed_distribution_is_shown_and_keyed(importable):
    """The distribution is found by the top-level name it installs, whatever it is called itself."""
    folder = importable(
        {
            "installed_opt/__init__.py": "from .impl import Opt\n",
            "installed_opt/impl.py": OPTIMIZER_SOURCE,
            "fake_optimizer_dist-1.2.3.dist-info/METADATA": "Metadata-Version: 2.1\nName: fake-optimizer-dist\n"
            "Version: 1.2.3\n",
            "fake_optimizer_dist-1.2.3.dist-info/top_level.txt": "installed_opt\n",
        }
    )
    identity = code_identity("installed_opt:Opt(lr=0.1)")
    assert (identity.distribution, identity.version) == ("fake-optimizer-dist", "1.2.3")
    assert identity.fingerprint == f"fake-optimizer-dist 1.2.3, {identity.digest}"
    assert describe("installed_opt:Opt(lr=0.1)") == (
        f"installed_opt:Opt(lr=0.1) (fake-optimizer-dist 1.2.3, code {identity.digest} of installed_opt/, 2 files)"
    )
    metadata = folder / "fake_optimizer_dist-1.2.3.dist-info" / "METADATA"
    metadata.write_text(metadata.read_text().replace("1.2.3", "1.2.4"))  # reinstalled in place, same sources
    assert code_fingerprint("installed_opt:Opt") == f"fake-optimizer-dist 1.2.4, {identity.digest}"


def test_without_a_distribution_the_packages_own_version_is_shown(importable):
    importable(
        {
            "versioned_src/__init__.py": "__version__ = '0.7.1'\nfrom .impl import Opt\n",
            "versioned_src/impl.py": OPTIMIZER_SOURCE,
        }
    )
    identity = code_identity("versioned_src:Opt")
    assert (identity.distribution, identity.version) == (None, "0.7.1")
    assert describe("versioned_src:Opt").startswith("versioned_src:Opt (versioned_src 0.7.1, code sha256:")
    assert code_fingerprint("versioned_src:Opt") == f"versioned_src 0.7.1, {identity.digest}"


def test_built_ins_keep_their_fingerprint_header_and_key_identity():
    """Committed records of the built-ins are found by keys made from exactly this text."""
    from harness.core.store import _identity

    for name in ("paper_sgd", "sgd", "adam", "adamw", "rmsprop", "adam(lr=3e-4)"):
        assert code_fingerprint(name) == f"torch {torch.__version__}"
        assert describe(name) == f"{name} (torch {torch.__version__})"
        assert (
            _identity("data|sha256:x", name) == f"data|sha256:x|torch {torch.__version__}|semantics "
            f"{RUN_SEMANTICS_VERSION}"
        )
    assert optimizer_identity("adam")["code"] == f"torch {torch.__version__}"


def test_a_spec_that_cannot_be_imported_is_unhashable_as_before():
    assert code_fingerprint("no_such_optimizer_module:Opt") == "unhashable no_such_optimizer_module:Opt"
    assert (
        describe("no_such_optimizer_module:Opt") == "no_such_optimizer_module:Opt (no_such_optimizer_module "
        "not importable)"
    )


def test_the_session_file_names_each_optimizers_version_and_code(importable, tmp_path):
    importable(
        {
            "session_opt/__init__.py": "__version__ = '2.0'\nfrom .impl import Opt\n",
            "session_opt/impl.py": OPTIMIZER_SOURCE,
        }
    )
    summary = {"profile": "smoke", "optimizers": ["paper_sgd", "session_opt:Opt(lr=0.01)"], "figures": []}
    path = save_session(summary, tmp_path / "results")
    saved = json.loads(path.read_text())["optimizer_identity"]
    assert saved["paper_sgd"]["code"] == f"torch {torch.__version__}"
    assert saved["session_opt:Opt(lr=0.01)"]["version"] == "2.0"
    assert saved["session_opt:Opt(lr=0.01)"]["code"] == code_fingerprint("session_opt:Opt(lr=0.01)")
    assert saved["session_opt:Opt(lr=0.01)"]["source"] == "session_opt/"
    assert summary["optimizer_identity"] == saved  # the summary in memory says what the file says
