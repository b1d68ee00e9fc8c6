"""Claims sessions: numbering, references, figure identity, comparison, failure rules, expected failures."""

import json
from pathlib import Path

import pytest
from support import figure

from harness.sessions.compare import (
    FailRule,
    compare,
    figure_label,
    format_comparison,
    indexed_figures,
    parse_fail_rule,
    parse_optimizer_pair,
    strip_optimizer_param,
)
from harness.sessions.expected import read_expected_failures
from harness.sessions.files import SessionError, load_session, resolve_reference, save_session
from harness.suite import sessions_cli

BASELINES = Path(__file__).resolve().parents[1] / "ci" / "baselines"


def session(*figures, gpu=None, profile="smoke", optimizers=("paper_sgd",)):
    stamp = {"cpu": "x86_64", "host_platform": "Linux-6-x86_64", "torch": "2.4", "python": "3.11"}
    if gpu:
        stamp["gpu"] = gpu
    return {"profile": profile, "stamp": stamp, "optimizers": list(optimizers), "figures": list(figures)}


@pytest.mark.parametrize(
    "text, label",
    [
        (
            "train accuracy, random labels, mlp_1x512, seed 0 (CIFAR-10 (JPEG q75 copy), n=5000)",
            "train accuracy, random labels, mlp_1x512, seed 0",
        ),
        ("passes to fit, mlp_1x512, seed 1: true 12, random 30", "passes to fit, mlp_1x512, seed 1: true #, random #"),
        ("lag, p=0.4 (passes clean vs corrupted: 50%: 3 vs 8)", "lag, p=0.4"),
        ("depth 101: worst residual", "depth 101: worst residual"),
        ("x, seed 0: dropout 0.5 0.7050 vs none -1e-3, w0", "x, seed 0: dropout # # vs none #, w0"),
        ("Kendall tau of test error vs p, mlp_1x512 (errors 0.5, 0.6)", "Kendall tau of test error vs p, mlp_1x512"),
        ("test accuracy, random labels, MNIST (chance 0.1003)", "test accuracy, random labels, MNIST"),
        (
            "steps to fit, gaussian (slowest seed) vs random labels (fastest seed), mlp_1x512",
            "steps to fit, gaussian vs random labels, mlp_1x512",
        ),
    ],
)
def test_a_figure_label_drops_the_measured_details(text, label):
    assert figure_label(text) == label


@pytest.mark.parametrize(
    "nodeid, optimizer, stripped",
    [
        ("c.py::test_a[mlp_1x512-paper_sgd]", "paper_sgd", "c.py::test_a[mlp_1x512]"),
        ("c.py::test_a[paper_sgd]", "paper_sgd", "c.py::test_a"),
        ("c.py::test_a[mlp_1x512-adam-gaussian]", "adam", "c.py::test_a[mlp_1x512-gaussian]"),
        ("c.py::test_a[frozen(lr=1e-3)-x]", "m:frozen(lr=1e-3)", "c.py::test_a[x]"),
        ("c.py::test_a[mlp_1x512]", "paper_sgd", "c.py::test_a[mlp_1x512]"),  # written before the plug-in
        ("c.py::test_a[3]", None, "c.py::test_a[3]"),
    ],
)
def test_the_optimizer_parameter_is_removed_from_test_ids(nodeid, optimizer, stripped):
    assert strip_optimizer_param(nodeid, optimizer) == stripped


def test_sessions_are_numbered_in_order_and_their_names_sort_oldest_first(tmp_path):
    first = save_session({"profile": "smoke", "figures": []}, tmp_path)
    second = save_session({"profile": "paper", "figures": []}, tmp_path)
    assert first.name.endswith("-0001-smoke.json") and second.name.endswith("-0002-paper.json")
    assert sorted(p.name for p in (tmp_path / "sessions").glob("*.json")) == [first.name, second.name]
    assert json.loads(second.read_text())["number"] == 2
    assert resolve_reference("last", tmp_path) == second
    assert resolve_reference("last", tmp_path, before=2) == first
    assert resolve_reference("0001", tmp_path) == first
    assert load_session(str(second))["profile"] == "paper"
    for bad in ("7", "no-such-file.json"):
        with pytest.raises(SessionError):
            resolve_reference(bad, tmp_path)
    with pytest.raises(SessionError, match="no earlier numbered session"):
        resolve_reference("last", tmp_path, before=1)


def test_failure_rules_parse_relative_absolute_and_every_claim():
    assert parse_fail_rule("C3:50%") == FailRule("C3", 0.5, True, "C3:50%")
    assert parse_fail_rule("C2:0.01") == FailRule("C2", 0.01, False, "C2:0.01")
    assert parse_fail_rule("*:10%").selects("C12") and parse_fail_rule("5%").selector == "*"
    assert parse_fail_rule("c3:1").selects("C3") and not parse_fail_rule("C3:1").selects("C2")
    for bad in ("C3:", "C3:fast", "C3:-1", "C 3:5%", "C3:nan%", "3:5%"):
        with pytest.raises(SessionError, match="bad failure rule"):
            parse_fail_rule(bad)


def test_compare_flags_figures_past_their_tolerance_and_verdict_flips():
    before = session(
        figure("C3", "slowdown, seed 0: true 10, random 20", 2.0),
        figure("C2", "test accuracy (chance 0.1000)", 0.100),
        figure("C1", "train accuracy", 1.0),
        figure("C4", "steps to fit", "12 vs 30"),
        figure("C5", "tau", 0.9, holds=False),
    )
    after = session(
        figure("C3", "slowdown, seed 0: true 10, random 32", 3.2),
        figure("C2", "test accuracy (chance 0.1001)", 0.105),
        figure("C1", "train accuracy", 0.99, holds=False),
        figure("C4", "steps to fit", "14 vs 30"),
        figure("C5", "tau", 1.0, holds=True),
    )
    result = compare(after, before, [parse_fail_rule("C3:50%"), parse_fail_rule("C2:0.01")])
    rows = {row.key[1]: row for row in result.rows}
    assert rows["C3"].regression == "moved past C3:50%"  # +60%
    assert rows["C2"].regression is None and rows["C2"].delta == pytest.approx(0.005)
    assert rows["C1"].status == "flipped" and "holds -> FAILS" in rows["C1"].regression
    assert rows["C4"].status == "changed" and rows["C4"].delta is None and rows["C4"].regression is None
    assert rows["C5"].status == "fixed" and rows["C5"].regression is None
    assert {row.key[1] for row in result.regressions} == {"C1", "C3"}
    assert not result.hardware
    text = "\n".join(format_comparison(result))
    assert "2 regression(s)" in text and "REGRESSION: moved past C3:50%" in text
    assert "note: failure rule C7:1% selects no figure" in "\n".join(
        format_comparison(compare(after, before, [parse_fail_rule("C7:1%")]))
    )
    tighter = compare(after, before, [parse_fail_rule("C2:0.001")])
    assert {row.key[1] for row in tighter.regressions} == {"C1", "C2"}  # a flip needs no rule


def test_compare_across_machines_warns_loudly_and_lists_new_and_missing_figures():
    before = session(figure("C1", "a", 1.0), figure("C1", "b", 1.0), gpu="NVIDIA H100 80GB HBM3")
    after = session(
        figure("C1", "a", 1.0),
        figure("C1", "c", 1.0),
        figure("C1", "a", 1.0, optimizer="adam"),
        optimizers=("paper_sgd", "adam"),
    )
    result = compare(after, before)
    assert result.hardware == ["gpu: 'NVIDIA H100 80GB HBM3' vs 'none'", "gpu_count: 1 vs 0"]
    statuses = sorted((row.key[0], row.key[3], row.status) for row in result.rows)
    assert statuses == [("paper_sgd", "a", "same"), ("paper_sgd", "b", "missing"), ("paper_sgd", "c", "new")]
    lines = format_comparison(result)
    assert lines[0].startswith("!!!") and "different machines" in lines[1]
    assert "note: 1 figures of adam have no baseline (the baseline did not run it)" in lines


def test_a_baseline_figure_the_session_lacks_is_a_regression_that_names_why():
    """A session without data declares only the theory figures: every training figure of the baseline is listed."""
    trained = figure("C1", "train accuracy, seed 0", 1.0)
    theory = {**figure("C8", "worst residual", 1e-13), "optimizer": None, "test": "claims/test_c08.py::test_c8_fit"}
    baseline = session(trained, theory)
    no_data = session(theory)
    no_data["tests"] = {
        f"{trained['test']}": {
            "optimizer": "paper_sgd",
            "outcome": "skipped",
            "reason": "data missing: no cifar10 data in '/x'",
        }
    }
    result = compare(no_data, baseline)
    (row,) = result.regressions
    assert row.status == "missing" and row.key[1] == "C1"
    assert row.regression == "absent from this session (its test skipped: data missing: no cifar10 data in '/x')"
    assert "1 regression(s)" in format_comparison(result)[-1]
    no_data.pop("tests")
    assert compare(no_data, baseline).regressions[0].regression == (
        "absent from this session (its test did not run, or declared no such figure)"
    )
    assert not compare(baseline, baseline).regressions  # the same figures: nothing missing


def test_a_session_from_before_the_optimizer_plug_in_compares_as_the_papers_sgd():
    legacy = {
        "profile": "paper",
        "stamp": {},
        "figures": [
            {
                "claim": "C1",
                "figure": "train accuracy, seed 0 (n=50000)",
                "measured": 1.0,
                "holds": True,
                "test": "claims/test_c01.py::test_c1[mlp_1x512]",
            }
        ],
    }
    now = session(
        figure("C1", "train accuracy, seed 0 (n=50000)", 1.0, test="claims/test_c01.py::test_c1[mlp_1x512-paper_sgd]"),
        profile="paper",
    )
    assert [row.status for row in compare(now, legacy).rows] == ["same"]


def test_repeated_figure_identities_stay_distinct():
    twice = session(figure("C1", "x (seed 0)", 1.0), figure("C1", "x (seed 1)", 0.5))
    assert [key[3] for key in indexed_figures(twice)] == ["x", "x #2"]


def test_expected_failures_file(tmp_path):
    path = tmp_path / "xfail.txt"
    path.write_text(
        "# comment\n\nadam: claims/test_c03_slowdown.py::*  # Adam fits true labels too fast\n"
        "*: *::test_c9_adam[x]\nmod.opt:frozen: *fits*\n"
    )
    adam, anyone, frozen = read_expected_failures(path)
    assert adam.reason == "Adam fits true labels too fast" and adam.where == f"{path}:3"
    assert adam.applies("claims/test_c03_slowdown.py::test_c3[mlp_1x512-adam]", "adam")
    assert not adam.applies("claims/test_c03_slowdown.py::test_c3[mlp_1x512-paper_sgd]", "paper_sgd")
    assert anyone.applies("claims/a.py::test_c9_adam[x]", None)  # brackets are literal
    assert not anyone.applies("claims/a.py::test_c9_adam[y]", None)
    assert frozen.applies("t.py::test_fits[frozen]", "mod.opt:frozen") and frozen.reason.startswith("listed in")
    path.write_text("adam claims/test_c03_slowdown.py\n")
    with pytest.raises(SessionError, match=":1: expected 'optimizer_id: test-id-glob"):
        read_expected_failures(path)


def test_command_line_compare_exits_1_on_a_regression_and_baseline_copies_the_figures(tmp_path, capsys):
    good = session(figure("C3", "ratio", 2.0))
    worse = session(figure("C3", "ratio", 4.0))
    save_session(good, tmp_path)
    save_session(worse, tmp_path)
    root = ["--results-dir", str(tmp_path)]
    assert sessions_cli.main(root + ["compare", "last", "1", "--fail", "C3:50%"]) == 1
    assert "REGRESSION" in capsys.readouterr().out
    assert sessions_cli.main(root + ["compare", "last", "1", "--fail", "C3:150%"]) == 0
    out = tmp_path / "baseline.json"
    assert sessions_cli.main(root + ["baseline", "1", str(out)]) == 0
    baseline = json.loads(out.read_text())
    assert baseline["figures"] == json.loads(json.dumps(good["figures"]))
    assert baseline["baseline"]["from"].endswith("-0001-smoke.json")
    assert sessions_cli.main(root + ["compare", "2", "7"]) == 2


@pytest.mark.parametrize("name", ["smoke-cpu.json", "paper-h100.json"])
def test_the_committed_baselines_are_real_sessions(name):
    """Made from real session files by `python -m harness sessions baseline`, never by hand."""
    path = BASELINES / name
    if not path.exists():
        pytest.skip(f"{name} not committed")
    baseline = load_session(str(path))
    assert baseline["baseline"]["from"] and baseline["figures"] and baseline["stamp"]
    result = compare(baseline, baseline, [parse_fail_rule("*:0")])
    assert not result.regressions and not result.hardware
    assert {row.status for row in result.rows} == {"same"}


def test_listing_skips_a_damaged_session_file_with_a_warning(tmp_path, capsys):
    """One truncated file (a session killed while saving, a full disk) must not hide the others."""
    first = save_session(session(figure("C1", "a", 1.0)), tmp_path)
    damaged = save_session(session(figure("C1", "a", 1.0)), tmp_path)
    damaged.write_text(damaged.read_text()[:40])
    not_a_session = save_session(session(), tmp_path)
    not_a_session.write_text("[1, 2]")
    assert sessions_cli.main(["--results-dir", str(tmp_path), "list"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [line for line in out.splitlines() if line.startswith("0001")] and first.name in out
    warnings = err.strip().splitlines()
    assert len(warnings) == 2 and all(line.startswith("warning: skipped ") for line in warnings)
    assert damaged.name in warnings[0] and not_a_session.name in warnings[1]
    assert "remove it" in warnings[0]


# --- two specs of one optimizer, sessions across days ----------------------------

LION, SLOW_LION = "lionpkg.impl:Lion", "lionpkg.impl:Lion(lr=0.0001)"


def lion_figure(spec, measured, holds=True, claim="C1", text="train accuracy, seed 0 (n=5000)"):
    from harness.core.optim import spec_id

    return figure(
        claim, text, measured, holds, optimizer=spec, test=f"claims/test_c01.py::test_c1_fit[mlp_1x512-{spec_id(spec)}]"
    )


def test_two_specs_of_one_optimizer_line_up_when_paired():
    """Lion(lr=0.0001) and Lion have different ids: unpaired, the baseline's Lion is missing; paired, it is compared."""
    monday = session(lion_figure(LION, 1.0), lion_figure("paper_sgd", 1.0), optimizers=("paper_sgd", LION))
    tuesday = session(
        lion_figure(SLOW_LION, 0.91, holds=False), lion_figure("paper_sgd", 1.0), optimizers=("paper_sgd", SLOW_LION)
    )
    unpaired = compare(tuesday, monday)
    assert [(row.key[0], row.status) for row in unpaired.rows] == [("Lion", "missing"), ("paper_sgd", "same")]
    assert unpaired.rows[0].regression == "absent from this session (Lion did not run)"
    assert "note: 1 figures of Lion(lr=0.0001) have no baseline (the baseline did not run it)" in format_comparison(
        unpaired
    )
    for pair in ({SLOW_LION: LION}, {"Lion(lr=0.0001)": "Lion"}):  # by spec or by id
        paired = compare(tuesday, monday, as_optimizer=pair)
        rows = {row.key[0]: row for row in paired.rows}
        assert set(rows) == {"paper_sgd", "Lion -> Lion(lr=0.0001)"}
        lion = rows["Lion -> Lion(lr=0.0001)"]
        assert lion.status == "flipped" and lion.delta == pytest.approx(-0.09)
        assert lion.key[1:] == ("C1", "claims/test_c01.py::test_c1_fit[mlp_1x512]", "train accuracy, seed 0")
        assert "<Lion -> Lion(lr=0.0001)>: 1 -> 0.91" in "\n".join(format_comparison(paired))


def test_two_specs_of_one_session_compare_with_each_other():
    both = session(lion_figure(LION, 1.0), lion_figure(SLOW_LION, 0.95), optimizers=(LION, SLOW_LION))
    result = compare(both, both, as_optimizer={SLOW_LION: LION})
    assert [(row.key[0], row.status) for row in result.rows] == [("Lion -> Lion(lr=0.0001)", "changed")]
    assert "Lion of this session is left out: Lion(lr=0.0001) takes its place" in result.notes


def test_a_pair_naming_no_optimizer_of_its_session_is_refused_with_the_choices():
    monday = session(lion_figure(LION, 1.0), optimizers=(LION,))
    with pytest.raises(SessionError, match=r"'adam' names none of the session's optimizers \(lionpkg.impl:Lion\)"):
        compare(monday, monday, as_optimizer={"adam": "Lion"})
    with pytest.raises(SessionError, match="of the baseline's optimizers"):
        compare(monday, monday, as_optimizer={"Lion": "Lion(lr=1)"})


@pytest.mark.parametrize(
    "text, pair",
    [
        ("Lion(lr=0.0001)=Lion", ("Lion(lr=0.0001)", "Lion")),
        (
            "pkg.m:Lion(betas=(0.9, 0.99), lr=1e-4) = pkg.m:Lion",
            ("pkg.m:Lion(betas=(0.9, 0.99), lr=1e-4)", "pkg.m:Lion"),
        ),
        ("m:Opt(name='a=b')=m:Opt", ("m:Opt(name='a=b')", "m:Opt")),
        ("adam=paper_sgd", ("adam", "paper_sgd")),
    ],
)
def test_an_optimizer_pair_splits_at_the_equals_sign_outside_the_arguments(text, pair):
    assert parse_optimizer_pair(text) == pair


@pytest.mark.parametrize("text", ["Lion", "Lion(lr=1)", "=Lion", "Lion="])
def test_an_optimizer_pair_without_two_sides_is_refused(text):
    with pytest.raises(SessionError, match="expected SPEC_A=SPEC_B"):
        parse_optimizer_pair(text)


def test_sessions_of_two_days_compare_on_the_command_line_with_a_pair(tmp_path, capsys):
    monday = session(
        lion_figure(LION, 2.0, claim="C3", text="slowdown, seed 0: true 10, random 20"), optimizers=(LION,)
    )
    tuesday = session(
        lion_figure(SLOW_LION, 3.5, claim="C3", text="slowdown, seed 0: true 10, random 35"), optimizers=(SLOW_LION,)
    )
    monday["stamp"].update(time="2026-03-02T09:00:00+00:00", commit="a" * 40)
    tuesday["stamp"].update(time="2026-03-03T09:00:00+00:00", commit="b" * 40)
    save_session(monday, tmp_path)
    save_session(tuesday, tmp_path)
    root = ["--results-dir", str(tmp_path), "compare", "2", "1", "--fail", "C3:50%"]
    assert sessions_cli.main(root) == 1  # nothing in common: the baseline's Lion was not measured
    out = capsys.readouterr().out
    assert "have no baseline" in out and "REGRESSION: absent from this session (Lion did not run)" in out
    assert sessions_cli.main(root + ["--as-optimizer", f"{SLOW_LION}={LION}"]) == 1
    out = capsys.readouterr().out
    assert "C3   changed  slowdown, seed 0: true #, random # <Lion -> Lion(lr=0.0001)>: 2 -> 3.5" in out
    assert "REGRESSION: moved past C3:50%" in out
    assert sessions_cli.main(root + ["--as-optimizer", "Lion(lr=0.0001)"]) == 2
    assert "expected SPEC_A=SPEC_B" in capsys.readouterr().err


def test_a_comparison_says_when_an_optimizers_code_changed():
    before = session(lion_figure(LION, 1.0), optimizers=(LION,))
    after = session(lion_figure(LION, 1.0), optimizers=(LION,))
    before["optimizer_identity"] = {LION: {"version": "0.2.1", "code": "lion-pytorch 0.2.1, sha256:aaaa"}}
    after["optimizer_identity"] = {LION: {"version": "0.2.2", "code": "lion-pytorch 0.2.2, sha256:bbbb"}}
    assert (
        "code of Lion differs: lion-pytorch 0.2.1, sha256:aaaa in the baseline, lion-pytorch 0.2.2, "
        "sha256:bbbb now; its deltas include that change"
    ) in compare(after, before).notes
    assert not [note for note in compare(before, before).notes if "code of" in note]
    unread = session(lion_figure(LION, 1.0), optimizers=(LION,))
    unread["optimizer_identity"] = {LION: {"version": None, "code": f"unhashable {LION}"}}
    assert not [note for note in compare(unread, before).notes if "code of" in note]


def test_the_results_folder_is_taken_after_the_subcommand_too_and_a_closed_pipe_ends_quietly(tmp_path, capsys):
    """`sessions list --results-dir X`, as every other command spells it; given on both sides, the later wins."""
    import subprocess
    import sys

    save_session(session(figure("C1", "a", 1.0)), tmp_path)
    assert sessions_cli.main(["list", "--results-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("0001")
    assert sessions_cli.main(["--results-dir", str(tmp_path / "none"), "list", "--results-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("0001")
    # A reader that stops at once (`| head -0`): no traceback, the exit status a shell gives a tool stopped by it.
    listing = subprocess.Popen(
        [sys.executable, "-m", "harness", "sessions", "list", "--results-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    listing.stdout.close()
    assert listing.wait(timeout=120) == 141
    assert b"Traceback" not in listing.stderr.read()
