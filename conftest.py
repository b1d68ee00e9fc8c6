# Thin: all options, markers and fixtures live in the harness's plugin.
pytest_plugins = ["harness.plugin"]
