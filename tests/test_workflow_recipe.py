"""docs/optimizer-ci.yml, the CI recipe an optimizer author copies: a valid GitHub workflow that runs this suite.

Two kinds of check, both offline:

- the file against GitHub's workflow JSON schema, as vendored by the check-jsonschema package (the `test`
  extra), read with ruamel.yaml, the YAML library check-jsonschema itself uses (YAML 1.2: the key `on`
  stays a string, where YAML 1.1 readers turn it into True);
- its commands against this project: every option of its pytest command is registered in this pytest
  session (pytest's own, pytest-xdist's, the claims plugins'), the command runs the installed claims
  (`--pyargs harness_claims`) with the reference optimizer, and the project and the extra it installs are
  the ones pyproject.toml declares.

The last section plants a defect of each kind and shows the check naming it.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "docs" / "optimizer-ci.yml"
PYPROJECT = ROOT / "pyproject.toml"
SCHEMA = files("check_jsonschema.builtin_schemas.vendor") / "github-workflows.json"

# `pip install NAME[EXTRA,...]`, with or without ` @ URL` after it.
REQUIREMENT_WITH_EXTRAS = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\[([^\]]+)\]")


def load_workflow(text: str) -> dict:
    """A workflow file's YAML as plain dicts, lists and strings (YAML 1.2, as GitHub reads it)."""
    workflow = YAML(typ="safe", pure=True).load(text)
    if not isinstance(workflow, dict):
        raise ValueError(f"a workflow file is a YAML mapping, not {type(workflow).__name__}")
    return workflow


def schema_errors(workflow: dict) -> list[str]:
    """Where and why `workflow` breaks GitHub's workflow schema, one line each; empty when it is valid.

    A schema error at a oneOf (a job is a normal job or a call of a reusable workflow; a step has `uses`
    or `run`) carries the reasons of each alternative; the deepest of them are the useful ones.
    """
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    lines = []
    for error in validator.iter_errors(workflow):
        leaves = list(_leaf_errors(error))
        deepest = max(len(leaf.absolute_path) for leaf in leaves)
        for leaf in leaves:
            if len(leaf.absolute_path) == deepest:
                where = ".".join(str(part) for part in leaf.absolute_path) or "(top level)"
                message = leaf.message.replace(repr(leaf.instance), "the value")
                line = f"{where}: {message[:300]}"
                if line not in lines:
                    lines.append(line)
    return lines


def _leaf_errors(error: jsonschema.ValidationError):
    if not error.context:
        yield error
    for child in error.context:
        yield from _leaf_errors(child)


def run_commands(workflow: dict) -> list[str]:
    """Every command of every step's `run:` script, in file order: shell continuations joined, and a
    quoted argument that spans lines (`python -c "..."`) kept with its command."""
    commands = []
    for job in workflow.get("jobs", {}).values():
        for step in job.get("steps", []):
            pending = ""
            for line in step.get("run", "").replace("\\\n", " ").splitlines():
                pending = f"{pending}\n{line}" if pending else line.strip()
                try:
                    shlex.split(pending)
                except ValueError:  # a quote still open: the command goes on on the next line
                    continue
                if pending:
                    commands.append(pending)
                pending = ""
            if pending:
                raise ValueError(f"a quote is never closed in the step {step.get('name', step)!r}")
    return commands


def pytest_commands(workflow: dict) -> list[list[str]]:
    """The `python -m pytest ...` commands of the workflow, each split into its shell words."""
    found = []
    for command in run_commands(workflow):
        words = shlex.split(command)
        if words[:3] == ["python", "-m", "pytest"]:
            found.append(words)
    return found


def options_used(words: list[str]) -> list[str]:
    """The option names of a command's words: `--optimizer=x` is `--optimizer`, `-n 2` is `-n`."""
    return [word.split("=", 1)[0] for word in words if word.startswith("-")]


def registered_options(config: pytest.Config) -> set[str]:
    """Every option name this pytest session's parser knows: pytest's, its plugins', the claims plugins'."""
    parser = config._parser  # no public list of a session's options; pytest's --help prints this parser
    arguments = list(parser._anonymous.options)
    for group in parser._groups:
        arguments += group.options
    return {name for argument in arguments for name in argument.names()}


def unknown_options(workflow: dict, known: set[str]) -> list[str]:
    """Options of the workflow's pytest commands that no plugin of this session registers."""
    return [option for words in pytest_commands(workflow) for option in options_used(words) if option not in known]


def installed_extras(workflow: dict) -> dict[str, set[str]]:
    """Project name -> the extras the workflow's `pip install` commands ask of it."""
    extras: dict[str, set[str]] = {}
    for command in run_commands(workflow):
        words = shlex.split(command)
        if words[:2] != ["pip", "install"]:
            continue
        for word in words[2:]:
            if match := REQUIREMENT_WITH_EXTRAS.match(word):
                names = {extra.strip() for extra in match.group(2).split(",")}
                extras.setdefault(match.group(1), set()).update(names)
    return extras


def claims_command_problems(workflow: dict) -> list[str]:
    """Why the workflow's pytest commands would not run the installed claims beside the paper's SGD."""
    commands = pytest_commands(workflow)
    if not commands:
        return ["the workflow runs no `python -m pytest` command"]
    problems = []
    for words in commands:
        if ("--pyargs", "harness_claims") not in list(zip(words, words[1:])):
            problems.append(f"not the installed claims (no `--pyargs harness_claims`): {shlex.join(words)}")
        if "--optimizer=paper_sgd" not in words:
            problems.append(f"no --optimizer=paper_sgd, the matrix's reference column: {shlex.join(words)}")
    return problems


def project_table() -> dict:
    """pyproject.toml's [project] table."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")
    return tomllib.loads(PYPROJECT.read_text())["project"]


def normalised_name(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_problems(workflow: dict, project: dict) -> list[str]:
    """Why the workflow's install of this project would not work as written; empty when it would."""
    asked = {normalised_name(name): wanted for name, wanted in installed_extras(workflow).items()}
    name = normalised_name(project["name"])
    if name not in asked:
        return [f"no `pip install` of {project['name']}[...] (pyproject.toml's name) in the workflow"]
    declared = set(project.get("optional-dependencies", {}))
    return [
        f"{project['name']}[{extra}]: pyproject.toml declares no extra {extra!r} (it has {sorted(declared)})"
        for extra in sorted(asked[name] - declared)
    ]


@pytest.fixture(scope="module")
def recipe() -> dict:
    return load_workflow(RECIPE.read_text())


# The recipe itself.


def test_recipe_is_a_valid_github_workflow(recipe):
    errors = schema_errors(recipe)
    assert not errors, "docs/optimizer-ci.yml breaks GitHub's workflow schema:\n" + "\n".join(errors)


def test_recipe_pytest_options_exist(recipe, pytestconfig):
    if not pytestconfig.pluginmanager.hasplugin("xdist"):
        pytest.skip("pytest-xdist is not loaded in this session (-p no:xdist): the recipe's -n cannot be checked")
    assert pytest_commands(recipe), "docs/optimizer-ci.yml runs no `python -m pytest` command"
    unknown = unknown_options(recipe, registered_options(pytestconfig))
    assert not unknown, f"docs/optimizer-ci.yml uses pytest options nothing registers: {unknown}"


def test_recipe_runs_the_installed_claims_beside_the_reference(recipe):
    problems = claims_command_problems(recipe)
    assert not problems, "\n".join(problems)


def test_recipe_installs_this_project_with_an_extra_it_declares(recipe):
    problems = extra_problems(recipe, project_table())
    assert not problems, "\n".join(problems)


def test_recipe_installs_cpu_torch_before_the_suite(recipe):
    # Installed first, the CPU build satisfies the suite's torch requirement; after, pip has already
    # fetched the CUDA build from PyPI.
    lines = run_commands(recipe)
    name = project_table()["name"]
    cpu = [i for i, line in enumerate(lines) if "download.pytorch.org/whl/cpu" in line]
    suite = [i for i, line in enumerate(lines) if line.startswith("pip install") and f"{name}[" in line]
    assert cpu and suite, f"the recipe should install torch from the CPU wheel index and then {name}"
    assert cpu[0] < suite[0], "the CPU-only torch must be installed before the suite, or pip fetches CUDA torch"


# The checks themselves, on planted defects.


def test_a_misspelt_runs_on_is_caught(recipe):
    planted = copy.deepcopy(recipe)
    job = planted["jobs"]["claims"]
    job["runs_on"] = job.pop("runs-on")
    errors = schema_errors(planted)
    assert "jobs.claims: 'runs-on' is a required property" in errors
    assert any("'runs_on' was unexpected" in error for error in errors)


def test_a_step_with_both_uses_and_run_is_caught(recipe):
    planted = copy.deepcopy(recipe)
    step = next(step for step in planted["jobs"]["claims"]["steps"] if "run" in step)
    step["uses"] = "actions/checkout@v4"
    errors = schema_errors(planted)
    assert errors and all(error.startswith("jobs.claims") for error in errors)
    assert any("is valid under each of" in error for error in errors)


def test_a_made_up_pytest_option_is_caught(recipe, pytestconfig):
    planted = copy.deepcopy(recipe)
    step = next(step for step in planted["jobs"]["claims"]["steps"] if "pytest" in step.get("run", ""))
    step["run"] += " --claims-matrix-file=matrix.md"
    known = registered_options(pytestconfig) | {"-n"}  # -n whether or not xdist is loaded here
    assert unknown_options(planted, known) == ["--claims-matrix-file"]


def test_a_wrong_extra_or_project_name_is_caught(recipe):
    project = {"name": "rethinking-generalization-claims", "optional-dependencies": {"claims": [], "test": []}}
    planted = copy.deepcopy(recipe)
    step = next(step for step in planted["jobs"]["claims"]["steps"] if "[claims]" in step.get("run", ""))
    step["run"] = step["run"].replace("[claims]", "[claimz]")
    assert extra_problems(planted, project) == [
        "rethinking-generalization-claims[claimz]: pyproject.toml declares no extra 'claimz' (it has ['claims', 'test'])"
    ]
    step["run"] = step["run"].replace("rethinking-generalization-claims", "rethinking-claims")
    assert extra_problems(planted, project) == [
        "no `pip install` of rethinking-generalization-claims[...] (pyproject.toml's name) in the workflow"
    ]


def test_a_command_without_the_installed_claims_or_the_reference_is_caught():
    workflow = load_workflow("jobs:\n  a:\n    steps:\n      - run: python -m pytest claims/ --optimizer=adam\n")
    assert claims_command_problems(workflow) == [
        "not the installed claims (no `--pyargs harness_claims`): python -m pytest claims/ --optimizer=adam",
        "no --optimizer=paper_sgd, the matrix's reference column: python -m pytest claims/ --optimizer=adam",
    ]
    assert claims_command_problems(load_workflow("jobs:\n  a:\n    steps:\n      - run: echo\n")) == [
        "the workflow runs no `python -m pytest` command"
    ]
