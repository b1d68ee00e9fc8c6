"""The identity of the code under test: what a run key, a session header and a session file say an optimizer is.

An optimizer spec names one module, yet the code that trains is its whole
package and the version it came in. These tests edit a package the way an
author does (the implementation module behind a re-exporting
``__init__.py``) and install a fake distribution, and check that the run key
follows, that built-ins keep their keys, and that headers and session files
name the version and the code fingerprint. A factory file that wraps another
package is keyed by that package's code too (and what it imports in turn),
so editing the wrapped package retrains.
"""

import hashlib
import importlib
import json
import sys

import pytest
import torch

from harness.core.config import RunConfig
from harness.core.optim import code_fingerprint, code_identity, describe, optimizer_identity
from harness.core.optimizer_source import NOT_INSTALLED, VERSION_ONLY_CODE
from harness.core.record import RUN_SEMANTICS_VERSION
from harness.core.runner import cached_fit
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


# A small factory file that wraps another package, as SAM, Muon, CAME and SOAP need: its only import
# of the package it wraps is inside the factory (imported lazily, when the optimizer is built).
WRAPPER_SOURCE = """import json

def make(params, lr=0.1):
    import inner_opt_pkg

    return inner_opt_pkg.Opt(params, lr=lr)
"""
INNER_PACKAGE = {"inner_opt_pkg/__init__.py": "from .impl import Opt\n", "inner_opt_pkg/impl.py": OPTIMIZER_SOURCE}
EDITED_OPTIMIZER_SOURCE = OPTIMIZER_SOURCE.replace("pass", "lr_scale = 2.0")  # an edit that changes no number


def file_digest(path) -> str:
    """A single file's fingerprint as it was before imports counted: sha256 of its bytes, 16 hex digits."""
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def imported(spec: str) -> dict[str, dict]:
    """{import name: {package, distribution, version, code}} of the packages the spec's code imports."""
    return {entry["package"]: entry for entry in code_identity(spec).as_dict()["imports"]}


def test_editing_the_package_a_factory_imports_inside_itself_changes_the_fingerprint_and_reverting_restores_it(
    importable,
):
    folder = importable({"wrapping_opt.py": WRAPPER_SOURCE, **INNER_PACKAGE})
    before = code_identity("wrapping_opt:make")
    inner = imported("wrapping_opt:make")["inner_opt_pkg"]
    assert inner["code"] == code_identity("inner_opt_pkg:Opt").digest  # hashed as its own spec would be
    assert "json" not in imported("wrapping_opt:make")  # the standard library is not named

    (folder / "inner_opt_pkg" / "impl.py").write_text(EDITED_OPTIMIZER_SOURCE)
    edited = code_fingerprint("wrapping_opt:make")
    assert edited != before.fingerprint
    assert code_identity("wrapping_opt:make").digest == before.digest  # the wrapper itself is unchanged
    (folder / "inner_opt_pkg" / "impl.py").write_text(OPTIMIZER_SOURCE)
    assert code_fingerprint("wrapping_opt:make") == before.fingerprint


def test_a_module_importing_only_the_standard_library_and_torch_keeps_the_fingerprint_it_had(importable):
    """Records of such optimizers keep their keys: torch is named by version, recorded, and not keyed."""
    source = "import json\nimport torch\n\ndef make(params, lr=0.1):\n    import os.path\n\n"
    source += "    return torch.optim.SGD(params, lr=lr)\n"
    folder = importable({"stdlib_torch_opt.py": source})
    assert code_fingerprint("stdlib_torch_opt:make") == file_digest(folder / "stdlib_torch_opt.py")
    torch_entry = imported("stdlib_torch_opt:make")["torch"]
    assert (torch_entry["distribution"], torch_entry["code"]) == ("torch", VERSION_ONLY_CODE)
    assert torch_entry["version"] is not None and torch.__version__.startswith(torch_entry["version"])
    assert set(imported("stdlib_torch_opt:make")) == {"torch"}


def test_a_package_wrapped_by_a_package_the_factory_wraps_is_followed(importable):
    """wrapper -> outer_wrap_pkg -> inner_chain_pkg: editing the innermost package retrains."""
    folder = importable(
        {
            "chain_opt.py": "from outer_wrap_pkg import Opt as make\n",
            "outer_wrap_pkg/__init__.py": "from inner_chain_pkg import Opt\n",
            "inner_chain_pkg/__init__.py": "from .impl import Opt\n",
            "inner_chain_pkg/impl.py": OPTIMIZER_SOURCE,
        }
    )
    before = code_fingerprint("chain_opt:make")
    assert {"outer_wrap_pkg", "inner_chain_pkg"} <= set(imported("chain_opt:make"))
    (folder / "inner_chain_pkg" / "impl.py").write_text(EDITED_OPTIMIZER_SOURCE)
    assert code_fingerprint("chain_opt:make") != before


def test_an_optional_import_that_is_not_installed_is_recorded_and_installing_it_retrains(importable):
    source = "try:\n    import optional_speedup_pkg\nexcept ImportError:\n    optional_speedup_pkg = None\n\n"
    source += "from inner_opt_pkg import Opt as make\n"
    folder = importable({"optional_opt.py": source, **INNER_PACKAGE})
    identity = code_identity("optional_opt:make")
    assert identity.digest == file_digest(folder / "optional_opt.py")
    assert imported("optional_opt:make")["optional_speedup_pkg"] == {
        "package": "optional_speedup_pkg",
        "distribution": None,
        "version": None,
        "code": NOT_INSTALLED,
    }
    assert describe("optional_opt:make").endswith(", 1 imported package hashed)")

    importable({"optional_speedup_pkg/__init__.py": "FAST = True\n"})
    importlib.invalidate_caches()  # as a new process would find it
    assert imported("optional_opt:make")["optional_speedup_pkg"]["code"].startswith("sha256:")
    assert code_fingerprint("optional_opt:make") != identity.fingerprint


def test_the_wrapped_packages_distribution_and_version_are_recorded_and_keyed(importable, tmp_path):
    metadata = "fake_inner_dist-0.3.1.dist-info/METADATA"
    importable(
        {
            "versioned_wrapper_opt.py": WRAPPER_SOURCE,
            **INNER_PACKAGE,
            metadata: "Metadata-Version: 2.1\nName: fake-inner-dist\nVersion: 0.3.1\n",
            "fake_inner_dist-0.3.1.dist-info/top_level.txt": "inner_opt_pkg\n",
        }
    )
    spec = "versioned_wrapper_opt:make(lr=0.05)"
    inner = imported(spec)["inner_opt_pkg"]
    assert (inner["distribution"], inner["version"]) == ("fake-inner-dist", "0.3.1")
    assert optimizer_identity(spec)["imports"] == code_identity(spec).as_dict()["imports"]
    summary = {"profile": "smoke", "optimizers": [spec], "figures": []}
    saved = json.loads(save_session(summary, tmp_path / "results").read_text())["optimizer_identity"][spec]
    assert inner in saved["imports"]  # the session file records the wrapped package's version

    before = code_fingerprint(spec)
    (tmp_path / metadata).write_text((tmp_path / metadata).read_text().replace("0.3.1", "0.3.2"))  # same sources
    assert code_fingerprint(spec) != before


def test_a_run_of_a_wrapper_retrains_after_the_wrapped_package_is_edited(importable, tiny_npz, results):
    folder = importable({"fitting_wrapper_opt.py": WRAPPER_SOURCE, **INNER_PACKAGE})
    config = RunConfig(
        data=f"npz:{tiny_npz}",
        model="mlp_1x512",
        n_train=64,
        n_test=32,
        max_passes=2,
        optimizer="fitting_wrapper_opt:make",
    )
    first = cached_fit(config)
    assert not first["reused"] and cached_fit(config)["reused"]  # unchanged code is answered by its record
    (folder / "inner_opt_pkg" / "impl.py").write_text(EDITED_OPTIMIZER_SOURCE)
    forget("inner_opt_pkg")  # the edited code is what trains, as in a new process
    edited = cached_fit(config)
    assert not edited["reused"] and edited["key"] != first["key"]


def test_a_hybrid_of_the_harness_is_keyed_by_the_optimizers_it_combines_not_by_the_harness_files(importable):
    """by_shape's own code is what every record's run-code stamp answers; its parts are named by their own
    fingerprints, so editing the package of a part retrains (hashing the harness package instead would
    retrain on any edit of the project and never on an edit of the part)."""
    importable({"part_opt.py": "import torch\n\ndef Opt(params, lr=0.1):\n    return torch.optim.SGD(params, lr=lr)\n"})
    spec = 'harness.core.hybrid:by_shape(matrices="part_opt:Opt", rest="adamw")'
    before = code_fingerprint(spec)
    assert before == f"harness run code; matrices={code_fingerprint('part_opt:Opt')}; rest=torch {torch.__version__}"
    importable({"part_opt.py": "import torch\n\ndef Opt(params, lr=0.2):\n    return torch.optim.SGD(params, lr=lr)\n"})
    assert code_fingerprint(spec) != before
    identity = optimizer_identity(spec)
    assert identity["package"] == "harness" and set(identity["parts"]) == {"matrices", "rest"}
    assert describe(spec).startswith(spec + " (harness run code; matrices=")
