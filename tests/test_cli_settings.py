"""`harness fit` settings that do not apply, and optimizer specs: refused in one line that names the fix.

Driven in-process (`harness.__main__.main`): every case is refused before any
data is read, so no subprocess start is worth paying for; test_cli.py drives
the same command in a subprocess.
"""

import re

import pytest

from harness.__main__ import main


def fit(tiny_npz, *args):
    return main(["fit", "--data", f"npz:{tiny_npz}", "--max-passes", "1", "--device", "cpu", "--quiet", *args])


@pytest.mark.parametrize(
    "args, message",
    [
        # The corruption level belongs to the partial variant, and the partial variant needs one.
        (["--p", "0.5"], "add --variant partial"),
        (["--variant", "random", "--p", "0.5"], "add --variant partial"),
        (["--variant", "partial"], "--variant partial needs --p"),
        (["--model", "inception", "--dropout", "0.5"], "inception has no dropout layer"),
        (["--precision", "tf32"], "precision tf32 is a GPU setting"),
        (["--loop", "graph"], "loop 'graph' needs a CUDA device"),
        (["--optimizer", "adam", "--momentum", "0.5"], "momentum applies only to paper_sgd"),
        (["--optimizer", "torch.optim:SGD(lr=0.5)", "--lr", "0.1"], "lr is set twice"),
        # Optimizer specs.
        (["--optimizer", "torch.optim:SGD(0.5)"], "name it: torch.optim:SGD(lr=0.5)"),
        (["--optimizer", "torch.optim.SGD"], "did you mean 'torch.optim:SGD'"),
        (["--optimizer", "torch.optim.SGD(lr=0.5)"], "did you mean 'torch.optim:SGD(lr=0.5)'"),
        (["--optimizer", "os:system"], "is not an optimizer factory"),
        (["--optimizer", "builtins:eval"], "is not an optimizer factory"),
        (["--optimizer", "torch.nn:Linear"], "is not an optimizer factory"),
        (["--optimizer", "torch.optim:SGD(nesterov=True, bogus=1)"], "takes no keyword bogus"),
        (["--optimizer", "adam(bogus=1)"], "takes no keyword bogus"),
        (["--optimizer", "adam(**extra)"], "keyword arguments must be name=literal"),
    ],
)
def test_a_setting_that_does_not_apply_is_one_line_naming_the_fix(tiny_npz, results, capsys, args, message):
    status = fit(tiny_npz, *args)
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (results / "runs").exists()


def test_a_built_in_takes_keyword_arguments(tiny_npz, results, capsys):
    status = fit(tiny_npz, "--optimizer", "adam(lr=3e-4, eps=1e-6)", "--json")
    record = capsys.readouterr().out.strip().splitlines()[-1]
    assert status in (0, 3), record  # fitted or out of budget: it trained
    import json

    summary = json.loads(record)
    assert summary["config"]["optimizer"] == "adam(lr=3e-4, eps=1e-6)"
    saved = json.loads(open(summary["path"]).read())
    assert saved["curves"]["lr"][0] == pytest.approx(3e-4)  # trained at the spec's rate, not adam's 1e-3


def test_weight_decay_reaches_an_imported_factory():
    """The config's weight decay was dropped for `package.module:factory` specs (claim C6 ran without it)."""
    import torch

    from harness.core.optim import Hyper, resolve

    params = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = resolve("torch.optim:SGD")(params, Hyper(lr=0.1, weight_decay=5e-4))
    assert optimizer.param_groups[0]["weight_decay"] == 5e-4
    optimizer = resolve("torch.optim:SGD(weight_decay=0.01)")(params, Hyper(lr=0.1))
    assert optimizer.param_groups[0]["weight_decay"] == 0.01  # the spec's own, the config's left at 0


def test_every_fit_option_says_what_it_sets_and_its_default(capsys):
    """No option of `fit --help` without a help text; every RunConfig setting names its default."""
    from harness.__main__ import FIT_FIELDS

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in FIT_FIELDS:
        flag = "--" + name.replace("_", "-")
        assert re.search(rf"{re.escape(flag)} (?:[A-Z_]+|{{[^}}]+}}) [^-\s]", text), flag  # help follows the metavar
    assert "--max-passes MAX_PASSES budget, in passes over the training set (default 100)" in text
    assert "(default cuda where CUDA is present, else cpu)" in text


def test_fit_prints_its_human_summary_rounded(tiny_npz, results, capsys):
    assert main(["fit", "--data", f"npz:{tiny_npz}", "--max-passes", "2", "--quiet", "--device", "cpu"]) in (0, 3)
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines() if ": " in line)
    seconds = lines["train_seconds".rjust(20)]
    digits = re.sub(r"e-?\d+$", "", seconds).replace(".", "").lstrip("0")
    assert len(digits) <= 4, seconds  # 4 significant digits, not 143.33518860400017
