"""The house's floor plan: the wings of `harness`, no import circle, no arrow running back up.

Wings, lowest first: the run core (`harness.core`) imports no other wing;
the theory package (`harness.theory`) imports the core for the optimizer
contract alone (C9 steps every optimizer under test as the training loop
does); the session files (`harness.sessions`), the benchmarks
(`harness.bench`) and the ImageNet tier (`harness.imagenet`) import the
core; the claims suite (`harness.suite`) the core and the session files;
the report (`harness.report`) reads what the core and the suite write.
Nothing but the command line imports the benchmarks: no run needs them. The two doors,
`harness.__main__` (the command line) and the pytest plugins named in the
root conftest, sit on top. Every import counts, those inside functions too.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "harness"
# What each wing may import, besides itself and the top-level `harness` (its version constants).
ALLOWED = {
    "core": set(),
    "theory": {"core"},
    "sessions": {"core"},
    "bench": {"core"},
    "suite": {"core", "sessions"},
    "imagenet": {"core"},
    "report": {"core", "sessions", "suite"},
}
LAYOUT_DOC = PACKAGE.parent / "docs" / "layout.md"


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str], root: Path = PACKAGE) -> set[str]:
    """The harness modules `path` imports anywhere in its body, relative imports resolved."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {target for target in targets if target in modules}
    return found - {name}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    paths = sorted(root.rglob("*.py"))
    modules = {module_name(path, root) for path in paths}
    return {module_name(path, root): imported_modules(path, modules, root) for path in paths}


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` as a list of modules (first repeated last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (circle := visit(target)):
                return circle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (circle := visit(node)):
            return circle
    return None


def wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else None


def upward_arrows(graph: dict[str, set[str]]) -> list[str]:
    arrows = []
    for source, targets in graph.items():
        if (own := wing(source)) is None:
            continue  # the top level: the doors and the version constants
        for target in targets:
            other = wing(target)
            if other is None and target != "harness":
                arrows.append(f"{source} -> {target} (a door)")
            elif other is not None and other != own and other not in ALLOWED[own]:
                arrows.append(f"{source} -> {target}")
    return sorted(arrows)


def test_harness_has_no_import_circle():
    assert find_circle(import_graph()) is None


def test_no_wing_imports_a_wing_above_it():
    assert upward_arrows(import_graph()) == []


def test_every_module_sits_in_a_wing_or_is_a_door():
    top = {module for module in import_graph() if wing(module) is None}
    assert top == {"harness", "harness.__main__"}, "a new module belongs in one of the wings: " + ", ".join(
        sorted(ALLOWED)
    )


def layout_doc_differences(doc: str, modules: set[str]) -> tuple[list[str], list[str]]:
    """(modules the doc does not list, modules the doc lists that do not exist), by the doc's folder lines."""
    listed, folder = set(), None
    for line in doc.splitlines():
        words = line.split()
        if not words or not line.startswith("  "):
            continue
        if not line.startswith("    ") and words[0].endswith("/"):
            folder = words[0].rstrip("/")
        elif line.startswith("    ") and words[0].endswith(".py") and folder is not None:
            listed.add(f"harness.{folder}.{words[0].removesuffix('.py')}")
    return sorted(modules - listed), sorted(listed - modules)


def test_the_layout_doc_names_every_module():
    """docs/layout.md lists each module of each wing under its wing's folder, and no module that is gone."""
    modules = {module for module in import_graph() if wing(module) is not None and module.count(".") == 2}
    missing, gone = layout_doc_differences(LAYOUT_DOC.read_text(), modules)
    assert missing == [], "modules missing from docs/layout.md"
    assert gone == [], "docs/layout.md lists modules that do not exist"


def test_the_layout_doc_check_finds_a_planted_missing_and_a_planted_stale_module():
    doc = "```\nharness/\n  core/   the run core\n    store.py   records\n    plan.py    gone\n```\n"
    assert layout_doc_differences(doc, {"harness.core.store", "harness.core.runner"}) == (
        ["harness.core.runner"],
        ["harness.core.plan"],
    )


def test_the_checks_find_a_planted_circle_and_a_planted_upward_arrow(tmp_path):
    package = tmp_path / "harness"
    for wing_name in ("core", "report"):
        (package / wing_name).mkdir(parents=True)
        (package / wing_name / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "core" / "a.py").write_text("def f():\n    from harness.report.b import g\n")  # inside a function
    (package / "report" / "b.py").write_text("from ..core import a\n")  # relative
    graph = import_graph(package)
    assert find_circle(graph) == ["harness.core.a", "harness.report.b", "harness.core.a"]
    assert upward_arrows(graph) == ["harness.core.a -> harness.report.b"]


@pytest.mark.parametrize("wing_name", sorted(ALLOWED))
def test_each_module_imports_alone(wing_name):
    """Each module of the wing imports in a fresh interpreter state, with no other harness module loaded first."""
    modules = sorted(module for module in import_graph() if wing(module) == wing_name)
    script = (
        "import importlib, sys, torch\n"
        f"for name in {modules!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'harness' or m.startswith('harness.')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=PACKAGE.parent)
