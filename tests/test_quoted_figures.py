"""Counts and times the docs quote for the suite itself come from one place: the committed measurement's
measured.json. A figure in the README that the file does not hold fails here (planted below)."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEASURED = ROOT / "docs" / "results" / "suite-time-cpu-2026-12-05" / "measured.json"


def minutes_and_seconds(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60} s"


def quoted_figures(text: str, measured: dict) -> list[str]:
    """The README's quick-start sentence's figures that measured.json does not give; [] when all agree."""
    sentence = re.search(r"the smoke tier with the unit tests \(([^)]*)\)", text)
    if sentence is None:
        return ["no quick-start sentence with the test command's time"]
    wanted = [
        minutes_and_seconds(measured["test_command"]["seconds"]) + " on 2 cores",
        f"{measured['test_command']['passed']} passed",
        f"the whole `.ci/run` {minutes_and_seconds(measured['ci_run_seconds'])}",
    ]
    quoted = " ".join(sentence.group(1).split())  # the sentence as read, whatever its line breaks
    return [figure for figure in wanted if figure not in quoted]


def test_the_readme_quotes_the_committed_measurement():
    measured = json.loads(MEASURED.read_text())
    assert quoted_figures((ROOT / "README.md").read_text(), measured) == []
    assert measured["test_command"]["command"] in (ROOT / ".ci" / "run").read_text()


def test_a_figure_the_measurement_does_not_give_is_caught():
    measured = json.loads(MEASURED.read_text())
    readme = (ROOT / "README.md").read_text()
    planted = re.sub(rf"{measured['test_command']['passed']}\s+passed", "950 passed", readme)
    assert quoted_figures(planted, measured) == [f"{measured['test_command']['passed']} passed"]
    assert quoted_figures("no such sentence", measured) == ["no quick-start sentence with the test command's time"]
