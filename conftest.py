"""Test configuration: the claims plugin, the report plugin, hypothesis's profiles."""

import os

from hypothesis import HealthCheck, settings

# Thin: all options, markers and fixtures live in the harness's plugins. Installed (pip install -e),
# they load from the project's pytest11 entry points, named by these modules, so naming them here too
# registers nothing twice; here they load without the entry points as well (PYTEST_DISABLE_PLUGIN_AUTOLOAD).
pytest_plugins = ["harness.suite.plugin", "harness.report.pytest_report"]

# "ci" by default, "nightly" (HYPOTHESIS_PROFILE=nightly) for the long runs. The installed claims
# (harness_claims, from claims/__init__.py) load the same profiles where nothing chose one.
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nightly", max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
