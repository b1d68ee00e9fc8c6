"""The installed package's one pytest entry point: the claims plugins load only for a session that runs the claims.

An entry point loads in every pytest session of an environment where the
project is installed. Registering the claims options there (``--device``,
``--profile``, ``--optimizer``, ...) would break a user's own test suite
whose conftest defines an option of the same name ("option names already
added"). So the entry point registers nothing itself: before any conftest is
read, it looks at the session's arguments and loads the two plugins only
when they name the installed claims (``--pyargs harness_claims``, a test id
or folder under ``harness_claims``). Their options are then parsed as usual.

In the repository, the root conftest names the plugins (``pytest_plugins``);
``-p harness.suite.plugin`` loads them anywhere; ``-p no:harness.suite.plugin``
keeps them out even of a claims session.
"""

from __future__ import annotations

import re

import pytest

PLUGINS = ("harness.suite.plugin", "harness.report.pytest_report")

# "harness_claims" as a whole dotted or path component of a command-line argument.
_NAMES_THE_CLAIMS = re.compile(r"(?:^|[/\\.])harness_claims(?:$|[/\\.:])")


def names_the_claims(args: list[str]) -> bool:
    """Whether any command-line argument names the installed claims package (its name, a module or a path in it)."""
    return any(_NAMES_THE_CLAIMS.search(arg) for arg in args)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, args, parser):
    """Load the claims plugins for a claims session, before conftests (their options join the parser here)."""
    if names_the_claims(args):
        for name in PLUGINS:
            early_config.pluginmanager.import_plugin(name)  # nothing when blocked (-p no:) or loaded already
