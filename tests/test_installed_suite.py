"""The claims as an optimizer author meets them from their own repository, after `pip install`, not a clone.

The wheel is built from a copy of the project's sources, installed into a fresh environment (this
environment's torch, numpy, pytest and hypothesis reused through a `.pth` file, nothing downloaded), and
`python -m pytest --pyargs harness_claims` runs from a folder outside the repository, with the guide's
Lion in that folder as `mypkg/opt.py`: no conftest, no ini file, the plugins from the wheel's entry points.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from hypothesis import settings
from support import write_arrays_file

from harness.suite.entry import names_the_claims

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "check-your-optimizer.md"
BASELINE = ROOT / "ci" / "baselines" / "smoke-cpu.json"  # a session of the repository's claims/
# The project's one `[project.entry-points.pytest11]` entry: it loads the plugins for claims sessions only.
ENTRY = "harness.suite.entry"


def clean_environment() -> dict:
    """This process's environment without what would steer the child session (the harness's own
    variables, an outer pytest's, a PYTHONPATH that could reach the repository)."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("HARNESS_", "PYTEST_", "HYPOTHESIS_")) and name != "PYTHONPATH"
    }


def run(command, cwd, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built offline from a copy of its sources (a build in the repository would leave
    build/ there, whose stale files a later wheel could pick up)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("harness", "claims"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = work / "dist"
    build = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            dist,
            source,
        ],
        cwd=work,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (built,) = dist.glob("rethinking_generalization_claims-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh environment with the wheel installed: its python. torch and the test tools come from this
    environment's site-packages, appended by a .pth file (whose own .pth files, the editable install's
    import finder among them, are not read), so `harness` is imported from the wheel."""
    env = tmp_path_factory.mktemp("venv") / "env"
    made = run([sys.executable, "-m", "venv", "--without-pip", env], cwd=env.parent)
    assert made.returncode == 0, made.stderr
    python = env / "bin" / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env).stdout.strip())
    reused = dict.fromkeys(sysconfig.get_paths()[kind] for kind in ("purelib", "platlib"))
    (site / "reused-test-environment.pth").write_text("".join(f"{path}\n" for path in reused))
    install = run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", site, wheel], cwd=env
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return python


def test_the_wheel_holds_every_module_of_the_harness_and_the_claims_and_the_pytest_entry_points(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, package in (("harness", "harness"), ("claims", "harness_claims")):
        modules = {
            f"{package}/{path.relative_to(ROOT / folder).as_posix()}"
            for path in (ROOT / folder).rglob("*.py")
            if "__pycache__" not in path.parts
        }
        assert modules and not modules - names, f"missing from the wheel: {sorted(modules - names)}"
    assert not any(name.startswith("claims/") for name in names)  # shipped only as harness_claims
    dist_info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "[pytest11]" in entry_points
    assert f"{ENTRY} = {ENTRY}" in entry_points
    assert "harness.suite.plugin =" not in entry_points  # loaded by the entry, only for a claims session
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "Provides-Extra: claims" in metadata
    for requirement in ("pytest", "hypothesis"):
        assert re.search(rf"^Requires-Dist: {requirement}>=[\d.]+; extra == \"claims\"$", metadata, re.M), requirement


def test_the_claims_hypothesis_profiles_are_the_ones_the_repositorys_conftest_registers():
    """claims/__init__.py registers them where the conftest does not run (installed); this session has the
    conftest's, and executing the package's __init__ here changes nothing (a profile is loaded)."""
    spec = importlib.util.spec_from_file_location("claims_init_copy", ROOT / "claims" / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.HYPOTHESIS_PROFILES) == {"ci", "nightly"}
    for name, values in module.HYPOTHESIS_PROFILES.items():
        registered = settings.get_profile(name)
        for key, value in values.items():
            got = getattr(registered, key)
            assert (list(got) if isinstance(value, list) else got) == value, (name, key)


def test_the_installed_package_is_imported_and_keeps_a_chosen_hypothesis_profile(installed, tmp_path):
    """Imported from the fresh environment, not the repository; the claims load the suite's "ci" profile
    where nothing chose one (as the repository's conftest does), and leave a chosen one alone."""
    code = (
        "import harness, harness_claims\n"
        "from hypothesis import settings\n"
        "print(harness.__file__)\n"
        "print(harness_claims.__file__)\n"
        "print(settings.get_current_profile_name(), settings.default.max_examples, settings.default.deadline,"
        " settings.get_profile('nightly').max_examples)\n"
    )
    probe = run(
        [installed, "-c", "from hypothesis import settings; settings.load_profile('default')\n" + code], tmp_path
    )
    assert probe.returncode == 0, probe.stderr
    harness_file, claims_file, profile = probe.stdout.splitlines()
    prefix = installed.parent.parent
    assert Path(harness_file).is_relative_to(prefix) and Path(claims_file).is_relative_to(prefix)
    assert not Path(harness_file).is_relative_to(ROOT)
    assert profile == "ci 60 None 2000"
    chosen = "from hypothesis import settings\nsettings.register_profile('mine', max_examples=7)\n"
    chosen += "settings.load_profile('mine')\nimport harness_claims\n"
    chosen += "print(settings.get_current_profile_name(), settings.default.max_examples)\n"
    kept = run([installed, "-c", chosen], tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.split() == ["mine", "7"]


def test_the_installed_claims_run_from_any_folder_with_your_optimizer(installed, tmp_path):
    """The README's `python -m pytest --pyargs harness_claims --optimizer=mypkg.opt:Lion`, in a folder
    of one's own (a `claims` folder of its own too, which must not shadow the installed claims)."""
    project = tmp_path / "my-optimizer"
    (project / "mypkg").mkdir(parents=True)
    (project / "mypkg" / "__init__.py").write_text("")
    lion = re.search(r"<!-- example-optimizer[^>]*-->\n```python\n(.*?)```", GUIDE.read_text(), re.S).group(1)
    (project / "mypkg" / "opt.py").write_text(lion)
    (project / "claims").mkdir()
    (project / "claims" / "__init__.py").write_text('raise ImportError("the project\'s own claims package")\n')
    data = tmp_path / "data"
    data.mkdir()
    write_arrays_file(data / "cifar10-tiny.npz", n_train=128, n_test=64, channels=3)  # 28x28x3: 2 s a run
    results = tmp_path / "results"
    session = run(
        [
            installed,
            "-m",
            "pytest",
            "--pyargs",
            "harness_claims",
            "--optimizer=mypkg.opt:Lion",
            "--optimizer=paper_sgd",
            "-k",
            "c1_random_labels",
            f"--data-dir={data}",
            f"--results-dir={results}",
            "--profile=smoke",
            "-n",  # as the CI recipe runs it: the workers load the plugins through the same entry point
            "2",
            "-p",
            "no:cacheprovider",
            "-W",
            "error::pytest.PytestUnknownMarkWarning",  # gpu and slow are registered by the plugin
        ],
        cwd=project,
        timeout=300,
    )
    output = session.stdout + session.stderr
    assert session.returncode == 0, output
    assert "claims profile: smoke" in output  # the plugin, loaded from the wheel's entry point
    assert re.search(r"^C1 +holds", output, re.M), output
    assert "| claim | paper_sgd (reference) | Lion |" in output
    assert re.search(r"^\| C1 \| holds .* \| holds .* \|$", output, re.M), output
    # Both optimizers' C1 tests passed; MNIST's C1 is beyond the paper, skipped.
    assert re.search(r"\b2 passed, 2 skipped\b", output), output
    assert list((results / "sessions").glob("*-smoke.json"))
    # Installed, test ids start at the file; compared with the repository's baseline (ids under claims/), the
    # paper's SGD's C1 figures still line up (planted: ids compared as written, they read "missing").
    compared = run(
        [installed, "-m", "harness", "sessions", "--results-dir", results, "compare", "last", "--all", BASELINE],
        cwd=project,
    )
    c1 = [line for line in compared.stdout.splitlines() if line.startswith("C1 ") and "mlp_1x512, seed 0" in line]
    assert c1 and not any("missing" in line for line in c1), compared.stdout + compared.stderr


def test_the_arguments_that_name_the_installed_claims():
    named = (["--pyargs", "harness_claims"], ["harness_claims.test_c03_slowdown"], ["x/site-packages/harness_claims/"])
    for args in named:
        assert names_the_claims(args), args
    for args in (["tests/"], ["my_harness_claims_copy"], ["harness_claimsx"], ["-k", "claims"], []):
        assert not names_the_claims(args), args


def test_an_installed_project_leaves_a_users_own_test_suite_and_its_options_alone(installed, tmp_path):
    """The entry point loads in every pytest session of the environment: a user's conftest that defines
    --device (as the claims plugin does) must still work, and the claims' options stay out of their --help."""
    project = tmp_path / "users-project"
    project.mkdir()
    (project / "conftest.py").write_text(
        "def pytest_addoption(parser):\n    parser.addoption('--device', default='tpu')\n\n\n"
        "def pytest_report_header(config):\n    return f\"device option: {config.getoption('--device')}\"\n"
    )
    (project / "test_own.py").write_text("def test_own():\n    assert True\n")
    own = run([installed, "-m", "pytest", "-p", "no:cacheprovider"], cwd=project)
    assert own.returncode == 0, own.stdout + own.stderr
    assert "device option: tpu" in own.stdout and "1 passed" in own.stdout
    assert "claims profile" not in own.stdout
    helped = run([installed, "-m", "pytest", "--help", "-p", "no:cacheprovider"], cwd=project)
    assert helped.returncode == 0 and "--claims-deadline" not in helped.stdout
