"""The report: rendered from real tiny runs and session files of the real shape."""

import copy
import json
import sys

import pytest
from support import write_arrays_file

from harness.core.config import RunConfig
from harness.core.runner import cached_fit
from harness.core.store import save_record, write_json_atomic
from harness.report.render import main, render_report

PAPER_SCALE_SOURCE = "CIFAR-10 (JPEG q75 copy, centre-cropped 28x28)"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results folder: four real tiny runs, one record at the paper's scale, two claim sessions."""
    folder = tmp_path_factory.mktemp("results")
    data = write_arrays_file(folder.parent / "tiny.npz")
    records = {}
    for variant, p in (("true", 0.0), ("random", 0.0), ("partial", 0.5), ("gaussian", 0.0)):
        config = RunConfig(data=f"npz:{data}", max_passes=30, device="cpu", variant=variant, corruption=p, lr=0.05)
        records[variant] = cached_fit(config, root=folder)
    # A record of the real shape at Table 1's scale, its numbers set by hand:
    # Inception, true labels, no regularisers, 80.00% test (paper 85.75).
    paper_scale = copy.deepcopy(records["true"])
    paper_scale.update(
        n_train=50_000,
        data_source=PAPER_SCALE_SOURCE,
        test_accuracy=0.8,
        best_test_accuracy=0.8,
        train_accuracy=1.0,
        key="0123456789abcdef",
    )
    paper_scale["config"].update(model="inception", lr=None, precision="tf32", device="cuda")
    paper_scale["stamp"] = {**paper_scale["stamp"], "gpu": "NVIDIA Test GPU"}
    save_record(paper_scale, folder)
    sessions = folder / "sessions"
    figure = {
        "claim": "C1",
        "figure": "train accuracy, random labels",
        "threshold": "== 1.0",
        "paper": 99.34,
        "test": "claims/test_c01.py::test_c1[mlp_1x512-paper_sgd]",
        "optimizer": "paper_sgd",
    }
    write_json_atomic(
        sessions / "20260101T000000Z-smoke.json",
        {
            "profile": "smoke",
            "stamp": {"cpu": "x86_64"},
            "exit_status": 1,
            "figures": [{**figure, "measured": 0.5, "holds": False}],
        },
    )
    write_json_atomic(
        sessions / "20260102T000000Z-smoke.json",
        {
            "profile": "smoke",
            "stamp": {"cpu": "x86_64"},
            "exit_status": 1,
            "figures": [
                {**figure, "measured": 1.0, "holds": True},
                {
                    "claim": "A1",
                    "figure": "lag to 50%",
                    "measured": 5,
                    "threshold": "clean first",
                    "holds": False,
                    "scope": "Arpit et al. (2017)",
                    "test": "claims/test_a1.py::test_a1[mlp_1x512-paper_sgd]",
                },
                {
                    "claim": "C4",
                    "figure": "train accuracy, gaussian",
                    "measured": 1.0,
                    "threshold": "== 1.0",
                    "holds": True,
                    "scope": "beyond the paper",
                    "test": "claims/test_c04.py::test_c4[mlp_1x512-paper_sgd]",
                },
            ],
        },
    )
    return folder, records


@pytest.fixture(scope="module")
def rendered(results, tmp_path_factory):
    folder, records = results
    out = tmp_path_factory.mktemp("report")
    path = render_report(folder, out)
    return path, json.loads((out / "report.json").read_text()), records


def test_report_files_exist_and_the_figures_decode(rendered):
    image = pytest.importorskip("matplotlib.image")
    path, report, _ = rendered
    assert path.name == "report.md" and path.exists()
    names = {entry["path"] for entry in report["figures"]}  # file names, relative to the report
    assert {"figure1a.png", "figure1b.png", "figure1c.png", "memorisation.png", "figure2_early_stopping.png"} <= names
    for name in names:
        pixels = image.imread(path.parent / name)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert f"]({name})" in path.read_text()
    assert report["figures_note"] is None


def test_runs_table_holds_each_records_numbers(rendered):
    path, report, records = rendered
    rows = {(row["model"], row["variant"], row["n_train"]): row for row in report["runs"]}
    assert len(report["runs"]) == 5
    true = rows[("mlp_1x512", "true labels", 256)]
    assert true["test_accuracy"] == records["true"]["test_accuracy"]
    assert true["train_accuracy"] == records["true"]["train_accuracy"]
    assert true["passes"] == records["true"]["passes"] and true["outcome"] == "fitted"
    assert true["data_source"] == "arrays file tiny.npz"
    assert rows[("mlp_1x512", "partial p=0.5", 256)]["p"] == 0.5
    text = path.read_text()
    partial = records["partial"]
    assert f"| {100 * partial['test_accuracy']:.2f} |" in text
    assert "arrays file tiny.npz" in text and "NVIDIA Test GPU" in text


def test_table_1_compares_only_runs_at_the_papers_scale_and_says_where_they_differ(rendered):
    path, report, _ = rendered
    rows = [
        row
        for row in report["table_1"]
        if row["model"] == "inception" and row["labels"] == "true" and not row["crop"] and not row["weight_decay"]
    ]
    assert len(rows) == 1 and rows[0]["paper_test"] == 85.75 and rows[0]["test"] == 0.8
    assert "test differs by -5.75 points" in rows[0]["note"]
    assert any("-5.75 points" in line for line in report["differences"])
    subset = [row for row in report["table_1"] if row["model"] == "mlp_1x512" and row["setup"]]
    assert not subset  # the tiny runs' data is an arrays file, not CIFAR-10: not Table 1's
    assert [row["paper_test"] for row in report["table_1"] if row["model"] == "alexnet"] == [
        81.22,
        79.66,
        77.36,
        76.07,
        9.86,
    ]
    assert "| inception | no | no | true | 100.00 | 85.75 |" in path.read_text()


def test_claim_figures_come_from_the_newest_session_of_each_test(rendered):
    path, report, _ = rendered
    c1 = [f for f in report["claims"] if f["claim"] == "C1"]
    assert len(c1) == 1 and c1[0]["measured"] == 1.0 and c1[0]["holds"] is True
    assert [f["claim"] for f in report["claims"]] == ["C1", "C4", "A1"]  # the paper's claims, then Arpit et al.'s
    text = path.read_text()
    assert "2 of 3 figures hold" in text and "| A1 | **FAILS** |" in text and "| 99.34 |" in text
    assert "| C4 | holds | train accuracy, gaussian [beyond the paper] |" in text
    assert "| A1 | **FAILS** | lag to 50% [Arpit et al. (2017)] |" in text  # another paper's claim, labelled
    assert "[Arpit et al. (2017)] for that paper's claims" in text  # and the label explained


def test_another_papers_claim_that_failed_before_any_figure_is_still_labelled_with_that_paper():
    """A3 failing on a premise declares no figure; its row in the report still says whose claim it is."""
    from harness.core.formatting import shown_figure
    from harness.report.describe import claim_figures

    a3 = "claims/test_a1_a3_memorisation.py::test_a3_dropout_slows_noise_more_than_real_data[mlp_1x512-paper_sgd]"
    c3 = "claims/test_c03_slowdown.py::test_c3_random_labels_cost_a_small_constant_factor[mlp_1x512-paper_sgd]"
    session = {
        "file": "1.json",
        "profile": "smoke",
        "figures": [],
        "tests": {
            a3: {"outcome": "failed", "message": "A3: mlp_1x512 true labels without dropout, seed 0 diverged: ..."},
            c3: {"outcome": "failed", "message": "C3: mlp_1x512 true labels, seed 0 diverged: ..."},
        },
    }
    shown = {row["claim"]: shown_figure(row) for row in claim_figures([session])}
    assert shown == {
        "A3": "test failed before declaring a figure [Arpit et al. (2017)]",
        "C3": "test failed before declaring a figure",
    }


def test_without_matplotlib_the_report_is_tables_only_and_says_so(results, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    folder, _ = results
    path = render_report(folder, tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["figures"] == [] and "matplotlib is not available" in report["figures_note"]
    assert not list(tmp_path.glob("*.png"))
    assert "matplotlib is not available" in path.read_text()
    assert "| inception | no | no | true | 100.00 | 85.75 |" in path.read_text()  # the tables are all there


def test_command_line_defaults_and_errors(results, tmp_path, capsys, monkeypatch):
    folder, _ = results
    assert main(["--results", str(folder), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip().endswith("report.md")
    assert (tmp_path / "out" / "report.md").exists()
    monkeypatch.setenv("HARNESS_RESULTS_DIR", str(tmp_path / "nothing"))
    assert main([]) == 2
    assert "no runs/ or sessions/" in capsys.readouterr().err


def test_a_near_miss_is_never_printed_as_100_percent():
    from harness.report.render import _pct

    assert _pct(0.99998) == "99.9980" and _pct(1.0) == "100.00" and _pct(None) == "-"


def test_a_newer_failure_before_any_figure_replaces_the_older_verdict():
    """A test that held last night and errored tonight must not still show 'holds'."""
    from harness.report.describe import claim_figures

    test = "claims/test_c03_slowdown.py::test_c3_random_labels_cost_a_small_constant_factor[mlp_1x512-paper_sgd]"
    older = {
        "file": "1.json",
        "profile": "smoke",
        "figures": [
            {"claim": "C3", "figure": "slowdown", "measured": 0.9, "threshold": "<= 10", "holds": True, "test": test}
        ],
    }
    newer = {
        "file": "2.json",
        "profile": "smoke",
        "figures": [],
        "tests": {test: {"outcome": "failed", "message": "true labels, seed 0: out of budget"}},
    }
    rows = claim_figures([older, newer])
    assert len(rows) == 1 and rows[0]["holds"] is False and rows[0]["claim"] == "C3"
    assert "out of budget" in rows[0]["measured"] and rows[0]["session"] == "2.json"


def test_table_1_and_paper_values_take_only_cifar10_runs(results):
    """Table 1 is CIFAR-10's: an MNIST run of the same model and labels is neither a row of it nor compared."""
    from harness.report.render import run_rows, table_1_rows

    _, records = results
    cifar = copy.deepcopy(records["random"])
    cifar.update(n_train=50_000, data_source=PAPER_SCALE_SOURCE, key="c" * 16)
    mnist = copy.deepcopy(cifar)
    mnist.update(n_train=60_000, data_source="MNIST (lossless arrays copy)", key="m" * 16)
    subset = copy.deepcopy(cifar)
    subset.update(n_train=5_000, data_source="CIFAR-10 (JPEG q75 copy)", key="s" * 16)
    rows = [row for row in table_1_rows([cifar, mnist, subset]) if row["setup"] is not None]
    assert sorted(row["data_source"] for row in rows) == ["CIFAR-10 (JPEG q75 copy)", PAPER_SCALE_SOURCE]
    assert ["not the paper's scale" in row["note"] for row in rows if row["n_train"] == 5_000] == [True]
    paper_values = {row["key"]: row["paper"] for row in run_rows([cifar, mnist])}
    assert paper_values["c" * 16] is not None and paper_values["m" * 16] is None
