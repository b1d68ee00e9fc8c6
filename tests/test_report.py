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


# --- figures for a talk: read against the paper --------------------------------------------------------------

JPEG_COPY = "CIFAR-10 (JPEG q75 copy, centre-cropped 28x28)"


def _paper_scale_copy(template, key, model, variant, p, **fields):
    """A record of the real shape on the JPEG copy at Table 1's scale, its numbers set by hand."""
    record = copy.deepcopy(template)
    record.update(n_train=50_000, n_test=10_000, data_source=JPEG_COPY, key=key, **fields)
    record["config"].update(model=model, variant=variant, corruption=p, lr=None)
    return record


@pytest.fixture(scope="module")
def drawn(results, tmp_path_factory):
    """The figures of synthetic paper-scale records, drawn once: ({png name: matplotlib figure}, runs, folder).

    MLP 1x512 runs at p = 0, 0.2, 0.5, 1; AlexNet at p = 0 and 1 only, so
    its line must break over 0.2 and 0.5; true-label MLP 1x512 runs at
    Table 1's weight decay (44.44% test) and at the C6 sweep's 0.05 (33.33%).
    """
    pytest.importorskip("matplotlib")
    from harness.report import figures

    _, records = results
    runs = []
    for model, levels in (("mlp_1x512", (0.0, 0.2, 0.5, 1.0)), ("alexnet", (0.0, 1.0))):
        for p in levels:
            variant = {0.0: "true", 1.0: "random"}.get(p, "partial")
            template = records["partial"] if variant == "partial" else records["true"]
            runs.append(
                _paper_scale_copy(
                    template,
                    f"{model}-{p}",
                    model,
                    variant,
                    p,
                    steps_to_fit=int(1000 * (1 + p)),
                    test_accuracy=0.5 - 0.4 * p,
                )
            )
    for decay, accuracy in ((0.0005, 0.4444), (0.05, 0.3333)):
        run = _paper_scale_copy(records["true"], f"wd-{decay}", "mlp_1x512", "true", 0.0, test_accuracy=accuracy)
        run["config"]["weight_decay"] = decay
        runs.append(run)
    runs.append(_paper_scale_copy(records["gaussian"], "gaussian", "mlp_1x512", "gaussian", 0.0))
    folder = tmp_path_factory.mktemp("figures")
    captured = {}
    real_save = figures.save_figure

    def keep(figure, path):
        captured[path.name] = figure
        return real_save(figure, path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figures, "save_figure", keep)
        figures.render_all(runs, folder)
    return captured, runs, folder


def _texts(figure) -> str:
    """Every text of a figure (titles, labels, legend, footer), lines joined by spaces."""
    from matplotlib.text import Text

    return " ".join(" ".join(t.get_text().split()) for t in figure.findobj(Text))


def _lines(figure):
    return [line for ax in figure.axes for line in ax.get_lines()]


def test_every_figure_is_drawn_and_written_as_png_and_svg(drawn):
    import xml.etree.ElementTree as ElementTree

    captured, _, folder = drawn
    assert set(captured) == {
        "figure1a.png",
        "figure1b.png",
        "figure1c.png",
        "table1.png",
        "memorisation.png",
        "figure2_early_stopping.png",
    }
    for name in captured:
        assert (folder / name).stat().st_size > 0
        ElementTree.parse(folder / name.replace(".png", ".svg"))  # a whole SVG, not a stub


def test_reference_points_are_the_papers_numbers_labelled_with_their_source(drawn):
    from harness.suite.paper import TABLE_1

    captured, _, _ = drawn
    lines = {line.get_label(): line for line in _lines(captured["figure1c.png"])}
    for model in ("mlp_1x512", "alexnet"):
        name = {"mlp_1x512": "MLP 1x512", "alexnet": "AlexNet (small)"}[model]
        reference = lines[f"{name}: paper, Table 1 (no regulariser, 50,000 training images)"]
        stated = {labels: test for m, crop, decay, labels, _, test in TABLE_1 if m == model and not crop and not decay}
        assert list(reference.get_xdata()) == [0.0, 1.0]
        assert list(reference.get_ydata()) == pytest.approx([100 - stated["true"], 100 - stated["random"]])
    chance = lines["chance: 90% error"]
    assert set(chance.get_ydata()) == {90.0}
    ratio_lines = {line.get_label(): line for line in _lines(captured["figure1b.png"])}
    definition = ratio_lines["paper: 1 at p = 0 (by definition)"]
    assert (list(definition.get_xdata()), list(definition.get_ydata())) == ([0.0], [1.0])
    assert "Table 1" in _texts(captured["table1.png"])


def test_no_line_passes_over_a_level_without_a_run(drawn):
    """AlexNet ran p = 0 and 1 only: its line must not join them across 0.2 and 0.5, which MLP 1x512 ran."""
    captured, _, _ = drawn
    for name in ("figure1b.png", "figure1c.png"):
        grid = [0.0, 0.2, 0.5, 1.0]
        measured = [line for line in _lines(captured[name]) if line.get_marker() == "o"]
        assert measured, name
        for line in measured:
            xs = list(line.get_xdata())
            assert xs == grid[grid.index(xs[0]) : grid.index(xs[0]) + len(xs)], (name, line.get_label(), xs)
        alexnet = [
            list(line.get_xdata()) for line in measured if str(line.get_color()) == _colour_of(measured, "AlexNet")
        ]
        assert sorted(alexnet) == [[0.0], [1.0]], name


def _colour_of(lines, model_name) -> str:
    return next(str(line.get_color()) for line in lines if line.get_label().startswith(model_name))


def test_figure_1b_reads_from_zero(drawn):
    captured, _, _ = drawn
    bottom, top = captured["figure1b.png"].axes[0].get_ylim()
    assert bottom == 0 and top > 1


def test_every_figure_names_its_data_from_the_records(drawn):
    captured, runs, _ = drawn
    for name, figure in captured.items():
        assert "data: the JPEG copy (q75) of CIFAR-10, centre-cropped 28x28" in _texts(figure), name
        assert "CIFAR-10 (JPEG" not in _texts(figure), name  # the copy is never called CIFAR-10 itself


def test_titles_fit_inside_the_figure_at_any_panel_count(drawn):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    captured, _, _ = drawn
    for name, figure in captured.items():
        renderer = FigureCanvasAgg(figure).get_renderer()  # the layout of the last save stands
        bounds = figure.bbox
        titles = [figure._suptitle, figure._supxlabel, *(ax.title for ax in figure.axes if ax.get_visible())]
        for text in titles:
            if text is None or not text.get_text():
                continue
            box = text.get_window_extent(renderer)
            assert bounds.x0 - 1 <= box.x0 and box.x1 <= bounds.x1 + 1, (name, text.get_text())


def test_table_1_figure_and_rows_leave_out_the_weight_decay_sweep(drawn):
    """The C6 sweep's 0.05 run is not Table 1's 'weight decay: yes': neither in its rows nor on its figure."""
    from harness.report.describe import paper_value
    from harness.report.render import table_1_rows

    captured, runs, _ = drawn
    dots = [x for line in _lines(captured["table1.png"]) if line.get_marker() == "o" for x in line.get_xdata()]
    assert 44.44 in [round(x, 2) for x in dots] and 33.33 not in [round(x, 2) for x in dots]
    rows = [row for row in table_1_rows(runs) if row["model"] == "mlp_1x512" and row["weight_decay"] and row["setup"]]
    assert [(row["weight_decay_value"], row["test"]) for row in rows] == [(0.0005, 0.4444)]
    sweep = next(run for run in runs if run["key"] == "wd-0.05")
    assert paper_value(sweep["config"]) is None


def test_measured_accuracies_beside_the_paper_are_in_percent(rendered):
    path, _, _ = rendered
    text = path.read_text()
    assert "| 99.34 | 100.00% (1) |" in text  # C1: the paper's 99.34 beside the measured 100.00%
    row = next(line for line in text.splitlines() if line.startswith("| inception | no | no | true | 100.00 | 85.75 |"))
    assert row.split(" | ")[8:10] == ["100.00", "80.00"]  # measured train and test, in percent as the paper's


def test_table_1_coefficient_is_the_one_the_claims_run():
    from harness.report.describe import TABLE_1_WEIGHT_DECAY

    regularisation = pytest.importorskip("claims.test_c06_regularisation")
    assert regularisation.WEIGHT_DECAY == TABLE_1_WEIGHT_DECAY
