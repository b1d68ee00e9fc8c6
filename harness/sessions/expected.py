"""Expected failures: the lines of an expected-failures file (``--claims-xfail``) and the tests they match."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.core.optim import spec_id
from harness.sessions.files import SessionError


@dataclass
class ExpectedFailure:
    """One line of an expected-failures file: `optimizer: test-id-glob  # reason`."""

    optimizer: str  # an optimizer id (adam), a full spec (pkg.mod:Opt), a glob of ids, or * for every test
    pattern: str  # test id glob: * and ? are wildcards, everything else (brackets too) is literal
    reason: str
    path: str  # the file and line the entry comes from, for messages
    line: int
    matched: int = 0

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def covers(self, optimizer: str | None) -> bool:
        """Whether the line is about this optimizer (None: a test that trains nothing)."""
        if self.optimizer == "*":
            return True
        if optimizer is None:
            return False
        name = spec_id(optimizer)
        return self.optimizer in (optimizer, name) or bool(_glob(self.optimizer).fullmatch(name))

    def applies(self, nodeid: str, optimizer: str | None) -> bool:
        return self.covers(optimizer) and bool(_glob(self.pattern).fullmatch(nodeid))


class ExpectedFailureWarning(UserWarning):
    """A line of the expected-failures file that matches no collected test."""


def match_expected_failures(entries: list[ExpectedFailure], tests, optimizers) -> tuple[list, list]:
    """The expected failure of each test, and the lines that match none of them.

    `tests`: (test id, optimizer spec or None) pairs; the first line that
    applies to a test is its entry (None where none does), and counts in the
    line's `matched`. The unmatched lines returned are those about an
    optimizer under test (`optimizers`) or about every optimizer (*).
    """
    listed = []
    for nodeid, optimizer in tests:
        entry = next((entry for entry in entries if entry.applies(nodeid, optimizer)), None)
        if entry is not None:
            entry.matched += 1
        listed.append(entry)
    unmatched = [
        entry
        for entry in entries
        if not entry.matched and (entry.optimizer == "*" or any(entry.covers(spec) for spec in optimizers))
    ]
    return listed, unmatched


def _glob(pattern: str) -> re.Pattern:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


def read_expected_failures(path: str | Path) -> list[ExpectedFailure]:
    """Parse an expected-failures file; blank lines and '#' comments are skipped."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise SessionError(f"cannot read expected-failures file {path}: {error}") from None
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        comment = re.search(r"(?:^|\s)#", raw)
        body, reason = (raw[: comment.start()], raw[comment.end() :]) if comment else (raw, "")
        body = body.strip()
        if not body:
            continue
        match = re.fullmatch(r"(?P<optimizer>\S+?):\s+(?P<pattern>\S+)", body)
        if not match:
            raise SessionError(f"{path}:{number}: expected 'optimizer_id: test-id-glob  # reason', got {raw!r}")
        entries.append(
            ExpectedFailure(
                match["optimizer"], match["pattern"], reason.strip() or f"listed in {path}:{number}", str(path), number
            )
        )
    return entries
