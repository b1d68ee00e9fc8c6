"""The README as a front door: short, every command in it run somewhere, every link alive; docs/usage.md's
commands held to the same rule.

A command in one of the fenced code blocks of README.md or docs/usage.md counts as run when it appears
(whitespace normalised, shell line continuations joined) in what CI runs (`.ci/run`,
`ci/nightly-gpu.yml`), or when the table below names the test that runs it and that test file holds the
evidence, or when this file runs it itself, as written (cheap commands only), or when it is listed as too
long to run here, with the reason and what runs it instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import write_arrays_file

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
USAGE = ROOT / "docs" / "usage.md"
# The pages whose commands must run: each command in their fenced blocks is run somewhere (above).
CHECKED_DOCS = (README, USAGE)
MAX_LINES = 150
CI_FILES = (".ci/run", "ci/nightly-gpu.yml")

# The first word of a line that is a command to check.
COMMAND_WORDS = ("python", "python3", "pip", "pytest", "ruff", "torchrun", "harness")

# Commands that CI does not spell out but a test runs: command -> (test file, evidence that must
# appear in it, whitespace normalised).
RUN_BY_TESTS = {
    # On a CPU the test runs the paper tier's selection and checks each training claim skips with
    # "needs a CUDA device"; on a GPU the nightly runs the same tier (`--profile=paper`).
    "python -m pytest claims/ -m gpu": ("tests/test_plugin.py", '"--profile=paper", "-m", "gpu"'),
    "python -m harness models": ("tests/test_cli.py", 'harness("models")'),
    # The test builds the wheel, installs it into a fresh environment and runs the installed claims
    # from a folder outside the repository, with `mypkg/opt.py` there (one C1 test selected with -k).
    "python -m pytest --pyargs harness_claims --optimizer=mypkg.opt:Lion": (
        "tests/test_installed_suite.py",
        '"-m", "pytest", "--pyargs", "harness_claims", "--optimizer=mypkg.opt:Lion"',
    ),
}

# Cheap commands this file runs itself, as written, in this process (`python -m harness ARGS` is
# `harness.__main__.main(ARGS)`), with $HARNESS_DATA_DIR a folder holding one tiny `cifar10-tiny.npz`
# arrays file and $HARNESS_RESULTS_DIR an empty folder: command -> (exit status, what stdout must contain).
RUN_HERE = {
    "python -m harness --help": (0, "fit"),
    "python -m harness models": (0, "1,649,402"),
    # One pass over 100 images of the tiny file: found by the claims' rule, trained, not fitted (exit 3).
    "python -m harness fit --data cifar10 --n-train 100 --max-passes 1 --json": (3, '"passes": 1'),
}

# Commands too long for a test, none of them run by CI as written: command -> why, and what runs instead.
TOO_LONG_TO_RUN = {
    "python -m pytest claims/ -n auto": (
        "the smoke tier, minutes on a CPU; CI runs the same tier with the unit tests (`python -m pytest tests/ "
        "claims/ -n 2` in .ci/run)"
    ),
    "python -m harness fit --model mlp_1x512 --data cifar10 --n-train 5000 --variant random --seed 0 --json": (
        "trains until 5,000 random labels are fitted, minutes on a CPU; the one-pass fit beside it runs here"
    ),
}


def normalise(text: str) -> str:
    """Shell continuations joined and every run of whitespace made one space."""
    return " ".join(text.replace("\\\n", " ").split())


def fenced_blocks(markdown: str) -> list[str]:
    """The contents of the fenced (```) code blocks of `markdown`, in order."""
    return re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.S | re.M)


def commands(markdown: str) -> list[str]:
    """Each command line of the fenced blocks: lines whose first word is in COMMAND_WORDS."""
    found = []
    for block in fenced_blocks(markdown):
        for line in block.replace("\\\n", " ").splitlines():
            line = normalise(line.split("  #")[0])
            if line and line.split()[0] in COMMAND_WORDS:
                found.append(line)
    return found


def ci_text(root: Path = ROOT) -> str:
    return normalise("\n".join((root / name).read_text() for name in CI_FILES))


def where_run(command: str, ci: str, root: Path = ROOT) -> str | None:
    """Where `command` is run: "CI", a test file, "this test", or None when nowhere."""
    if normalise(command) in ci:
        return "CI"
    if command in RUN_BY_TESTS:
        test_file, evidence = RUN_BY_TESTS[command]
        path = root / test_file
        if path.exists() and normalise(evidence) in normalise(path.read_text()):
            return test_file
    if command in RUN_HERE:
        return "this test"
    if command in TOO_LONG_TO_RUN:
        return "too long to run: " + TOO_LONG_TO_RUN[command]
    return None


def unrun_commands(markdown: str, ci: str, root: Path = ROOT) -> list[str]:
    return [command for command in commands(markdown) if where_run(command, ci, root) is None]


def relative_links(markdown: str) -> list[str]:
    """Targets of Markdown links and images that are not URLs or in-page anchors, anchors cut."""
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", markdown)
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]


def broken_links(markdown: str, base: Path) -> list[str]:
    return [target for target in relative_links(markdown) if not (base / target).exists()]


# The README itself.


def test_readme_is_at_most_150_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/ (limit {MAX_LINES})"


def test_readme_has_commands_to_check():
    found = commands(README.read_text())
    assert "python -m pytest tests/ claims/ -n 2" in found
    assert any(c.startswith("python3 -m venv .venv") for c in found)


def test_usage_has_commands_to_check():
    found = commands(USAGE.read_text())
    assert "python -m harness models" in found
    assert any(c.startswith("python -m harness fit") for c in found)


@pytest.mark.parametrize("doc", CHECKED_DOCS, ids=lambda doc: doc.name)
def test_every_command_is_run_by_ci_or_a_test(doc):
    missing = unrun_commands(doc.read_text(), ci_text())
    assert not missing, (
        f"{doc.relative_to(ROOT)} commands run by neither CI nor a test, nor listed as too long: {missing}"
    )


def test_every_listed_command_is_still_in_the_docs():
    documented = {command for doc in CHECKED_DOCS for command in commands(doc.read_text())}
    stale = sorted((set(RUN_HERE) | set(TOO_LONG_TO_RUN)) - documented)
    assert not stale, f"listed here but in none of {[str(d.relative_to(ROOT)) for d in CHECKED_DOCS]}: {stale}"


def run_here(command: str, data_dir: Path, results_dir: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    """Run `python -m harness ...` as written, in this process: (exit status, stdout, stderr)."""
    from harness.__main__ import main

    words = command.split()
    if words[:3] != ["python", "-m", "harness"]:
        raise ValueError(f"only `python -m harness ...` commands run here, not {command!r}")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HARNESS_RESULTS_DIR", str(results_dir))
    monkeypatch.chdir(results_dir)
    try:
        status = main(words[3:])
    except SystemExit as stop:  # argparse's --help
        status = stop.code
    out = capsys.readouterr()
    return int(status or 0), out.out, out.err


@pytest.mark.parametrize("command", sorted(RUN_HERE))
def test_cheap_commands_run_as_written(command, tmp_path, monkeypatch, capsys):
    documented = {c for doc in CHECKED_DOCS for c in commands(doc.read_text())}
    if command not in documented:
        pytest.skip(f"{command!r} is no longer in the docs")
    (tmp_path / "data").mkdir()
    (tmp_path / "results").mkdir()
    write_arrays_file(tmp_path / "data" / "cifar10-tiny.npz", n_train=128, n_test=64, size=32, channels=3)
    status, out, err = run_here(command, tmp_path / "data", tmp_path / "results", monkeypatch, capsys)
    expected_status, expected_output = RUN_HERE[command]
    assert status == expected_status, f"{command!r} exited {status}, not {expected_status}:\n{err[-2000:]}"
    assert expected_output in out, f"{command!r} printed no {expected_output!r}:\n{out[-2000:]}"


def test_run_by_tests_table_points_at_real_evidence():
    for command, (test_file, evidence) in RUN_BY_TESTS.items():
        text = normalise((ROOT / test_file).read_text())
        assert normalise(evidence) in text, f"{test_file} no longer holds {evidence!r} (for {command!r})"


def test_every_relative_link_in_the_readme_exists():
    broken = broken_links(README.read_text(), ROOT)
    assert not broken, f"README links to missing files: {broken}"


def test_every_relative_link_in_docs_exists():
    broken = {
        page.name: missing
        for page in sorted((ROOT / "docs").glob("*.md"))
        if (missing := broken_links(page.read_text(), page.parent))
    }
    assert not broken, f"docs pages link to missing files: {broken}"


# The checks themselves, on planted wrong answers.

CI_SAMPLE = normalise("python -m pytest tests/ claims/ \\\n    -n 2\nruff check . && ruff format --check .\n")


def test_a_command_ci_runs_passes_after_normalising():
    readme = "```\npython -m pytest  tests/ claims/ -n 2\nruff check . && ruff format --check .\n```\n"
    assert commands(readme) == ["python -m pytest tests/ claims/ -n 2", "ruff check . && ruff format --check ."]
    assert unrun_commands(readme, CI_SAMPLE) == []


def test_an_unknown_command_is_caught():
    readme = "Text.\n\n```\npython -m pytest tests/ claims/ -n 2\npython -m harness frobnicate --all\n```\n"
    assert unrun_commands(readme, CI_SAMPLE) == ["python -m harness frobnicate --all"]


def test_a_command_outside_a_fenced_block_or_not_a_command_is_not_checked():
    readme = "Run `python -m harness frobnicate` inline.\n\n```\nexport HARNESS_DATA_DIR=/data\n```\n"
    assert commands(readme) == []


def test_a_mapped_command_needs_its_evidence_in_the_test_file(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_cli.py").write_text("def test_other():\n    pass\n")
    readme = "```\npython -m harness models\n```\n"
    # Without the evidence the table entry does not count; RUN_HERE still covers it.
    assert where_run("python -m harness models", CI_SAMPLE, tmp_path) == "this test"
    (tmp_path / "tests" / "test_cli.py").write_text('result = harness("models")\n')
    assert where_run("python -m harness models", CI_SAMPLE, tmp_path) == "tests/test_cli.py"
    assert unrun_commands(readme, CI_SAMPLE, tmp_path) == []


def test_a_broken_link_is_caught(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "speed.md").write_text("# Speed\n")
    readme = (
        "[speed](docs/speed.md), [speed, anchored](docs/speed.md#bf16), [gone](docs/gone.md),\n"
        "![figure](docs/results/figure1a.png), [web](https://example.org/x.md), [here](#layout)\n"
    )
    assert broken_links(readme, tmp_path) == ["docs/gone.md", "docs/results/figure1a.png"]
