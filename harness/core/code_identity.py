"""The identity of the harness code that decides a run's numbers: a fingerprint of its modules' syntax.

A run's key names its config, its data and its optimizer's code; the
harness's own loop, corruption, preparation and models are named here
instead. Every record is stamped with `run_code_fingerprint()`
(``stamp.run_code``) and the runner (harness.core.runner) reuses only a
record, and resumes only a checkpoint, made by code with the same
fingerprint: edit the label corruption to a no-op, train, revert the
edit, and the record of the edited code is never served (the original
code's record answers again, or the run retrains).

The fingerprint is of the syntax tree of each module in RUN_CODE_MODULES,
docstrings removed: comments, docstrings and formatting do not count; any
other change to those modules (and a Python version whose syntax trees
print differently) retrains the runs on their next use. Records made
before records carried a fingerprint are not reused.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

# The modules of harness.core whose code decides what a run computes: its data, the manipulation,
# the model, the optimizer built-ins, the training loop and its checks, and the record they write.
RUN_CODE_MODULES = (
    "config",
    "corrupt",
    "data",
    "evidence",
    "graph_step",
    "hybrid",
    "models",
    "optim",
    "prepare",
    "record",
    "train",
    "train_check",
)


@lru_cache(maxsize=1)
def run_code_fingerprint() -> str:
    """16 hex digits of sha256 over the syntax (docstrings removed) of each module in RUN_CODE_MODULES."""
    digest = hashlib.sha256()
    for name in RUN_CODE_MODULES:
        digest.update(f"{name}\n{syntax_of(Path(__file__).with_name(f'{name}.py').read_text())}\n".encode())
    return digest.hexdigest()[:16]


def syntax_of(source: str) -> str:
    """`source`'s syntax tree as text, without docstrings, comments, positions or formatting.

    Raises SyntaxError for source that does not parse.
    """
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and _has_docstring(node):
            node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _has_docstring(node) -> bool:
    first = node.body[0] if node.body else None
    return isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
