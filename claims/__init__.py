"""The claims of Zhang et al. (2017), one test file per claim family.

In the repository this folder is `claims/` (run as `python -m pytest claims/`);
installed, it is the package `harness_claims` (run as `pytest --pyargs
harness_claims`), so that a project's own `claims` folder cannot shadow it.

The hypothesis tests of C8 and C9 are written for the profile the repository's
conftest.py loads ("ci": no deadline, 60 examples; "nightly" with
HYPOTHESIS_PROFILE=nightly). Installed, no such conftest runs: when nothing
chose a profile before the claims are imported (a conftest, --hypothesis-profile,
hypothesis's own CI detection), the same profiles are registered and loaded
here. A profile chosen by the user is left alone.
"""

import os

from hypothesis import HealthCheck, settings

# The repository's conftest.py registers the same two (tests/test_installed_suite.py compares them).
HYPOTHESIS_PROFILES = {
    "ci": dict(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]),
    "nightly": dict(max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]),
}


def _current_profile() -> str | None:
    getter = getattr(settings, "get_current_profile_name", None)  # newer hypothesis; older: the attribute
    return getter() if getter is not None else getattr(settings, "_current_profile", None)


if _current_profile() == "default":
    for _name, _values in HYPOTHESIS_PROFILES.items():
        settings.register_profile(_name, **_values)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
