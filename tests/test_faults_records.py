"""Records, clocks and damaged files: the store's own order, a gate that stays on, files written whole."""

import csv
import errno
import json
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from support import figure

from harness.core import record as record_module
from harness.core.config import RunConfig
from harness.core.runner import cached_fit
from harness.core.store import RecordFromTheFutureWarning, latest_record, store_seq
from harness.report import pytest_report
from harness.sessions.compare import parse_fail_rule
from harness.sessions.files import SessionSkippedWarning, resolve_reference, save_session
from harness.suite import sessions_cli, tuning
from harness.suite.session import SESSION
from harness.suite.summary import SessionEnd

HOUR = 3600.0


def config(tiny_npz, **changes):
    values = dict(data=f"npz:{tiny_npz}", max_passes=2, device="cpu", variant="random")
    values.update(changes)
    return RunConfig(**values)


def fit_with_clock_ahead(monkeypatch, run_config, seconds=HOUR, **options):
    """cached_fit in a process whose clock runs `seconds` ahead of this one's."""
    real = time.time
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: real() + seconds)
        return cached_fit(run_config, **options)


def latest_quietly(key, root):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = latest_record(key, root)
    return found, [str(w.message) for w in caught]


# --- 1. the store's order, not the clocks' ------------------------------------------


def test_a_record_from_a_clock_running_ahead_does_not_shadow_a_later_fresh_retrain(tiny_npz, results, monkeypatch):
    ahead = fit_with_clock_ahead(monkeypatch, config(tiny_npz))
    later = cached_fit(config(tiny_npz), fresh=True)
    assert ahead["finished_at"] > later["finished_at"]  # by the clocks, the earlier record looks newer

    found, messages = latest_quietly(later["key"], results)
    assert found["finished_at"] == later["finished_at"]
    assert store_seq(ahead) == 1 and store_seq(later) == 2
    assert any("later than this machine's clock" in message and "ranked oldest" in message for message in messages)
    with pytest.warns(RecordFromTheFutureWarning):
        assert cached_fit(config(tiny_npz))["finished_at"] == later["finished_at"]


def test_claims_fresh_retrains_a_run_whose_record_a_clock_ahead_dated_after_the_session_start(
    tiny_npz, results, monkeypatch
):
    fit_with_clock_ahead(monkeypatch, config(tiny_npz))
    started = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecordFromTheFutureWarning)
        first = cached_fit(config(tiny_npz), fresh_since=started)
        again = cached_fit(config(tiny_npz), fresh_since=started)  # another process of the same session
        later_session = cached_fit(config(tiny_npz), fresh_since=started + 1)
    assert first["reused"] is False and first["stamp"]["fresh_since"] == started
    assert again["reused"] is True and again["finished_at"] == first["finished_at"]
    assert later_session["reused"] is False


def test_a_record_planted_with_a_finish_in_the_year_9999_never_wins(tiny_npz, results):
    real = cached_fit(config(tiny_npz))
    folder = results / "runs" / real["key"]
    planted = json.loads(next(folder.glob("*.json")).read_text())
    planted["finished_at"] = 253402300799.0  # 9999-12-31
    planted["stamp"]["store_seq"] = 1
    (folder / "99991231T235959000000Z.json").write_text(json.dumps(planted))
    later = cached_fit(config(tiny_npz), fresh=True)

    found, messages = latest_quietly(real["key"], results)
    assert found["finished_at"] == later["finished_at"] and store_seq(later) == 2
    assert len(messages) == 1 and "99991231T235959000000Z.json" in messages[0]


def test_a_record_without_a_store_number_ranks_below_every_numbered_one(tiny_npz, results):
    old = cached_fit(config(tiny_npz))
    path = next((results / "runs" / old["key"]).glob("*.json"))
    older_code = json.loads(path.read_text())
    older_code["stamp"].pop("store_seq", None)
    older_code["finished_at"] = time.time() + 60  # newer by its clock field, within the tolerance
    path.write_text(json.dumps(older_code))
    numbered = cached_fit(config(tiny_npz), fresh=True)
    found, messages = latest_quietly(old["key"], results)
    assert found["finished_at"] == numbered["finished_at"] and messages == []
    assert store_seq(numbered) == 1


# --- 2. the regression gate never switches itself off --------------------------------


def saved_session(root, value):
    return save_session(
        {"profile": "smoke", "stamp": {}, "optimizers": ["paper_sgd"], "figures": [figure("C1", "a", value)]}, root
    )


def test_last_is_the_last_readable_session_and_a_damaged_one_is_named(tmp_path):
    good = saved_session(tmp_path, 1.0)
    damaged = saved_session(tmp_path, 1.0)
    damaged.write_text("{ half a file")
    with pytest.warns(SessionSkippedWarning, match=damaged.name):
        assert resolve_reference("last", tmp_path) == good
    assert resolve_reference("last", tmp_path, before=2) == good


def test_a_comparison_that_cannot_be_made_fails_a_session_with_a_fail_rule(results):
    only = saved_session(results, 1.0)
    only.write_text("[1, 2]")
    end = SessionEnd({"profile": "smoke", "figures": [figure("C1", "a", 1.0)], "optimizers": ["paper_sgd"]})
    with pytest.warns(SessionSkippedWarning, match=only.name):
        end.compare_with("last", [parse_fail_rule("C1:0.01")])
    assert end.compare_error and "failure rules were given" in end.compare_error
    assert end.regressed is True and end.summary["comparison"]["error"] == end.compare_error

    without_rules = SessionEnd({"profile": "smoke", "figures": [], "optimizers": ["paper_sgd"]})
    with pytest.warns(SessionSkippedWarning):
        without_rules.compare_with("last", [])
    assert without_rules.compare_error and without_rules.regressed is False


def test_a_damaged_newest_session_still_leaves_the_gate_on(results):
    saved_session(results, 1.0)
    saved_session(results, 1.0).write_text("not json")
    end = SessionEnd({"profile": "smoke", "figures": [figure("C1", "a", 0.5)], "optimizers": ["paper_sgd"]})
    with pytest.warns(SessionSkippedWarning):
        end.compare_with("last", [parse_fail_rule("C1:0.01")])
    assert end.compare_error is None and end.comparison is not None and end.regressed is True


# --- 3. files written whole; damage met on reading -----------------------------------


def full_disk(monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(record_module.os, "fsync", no_space)


@pytest.mark.parametrize("when", ["writing-rows", "syncing"])
def test_a_csv_export_on_a_full_disk_keeps_the_earlier_file_and_leaves_no_half_one(tmp_path, monkeypatch, capsys, when):
    saved_session(tmp_path, 1.0)
    saved_session(tmp_path, 2.0)
    out = tmp_path / "figures.csv"
    refs = ["--results-dir", str(tmp_path), "export", "1", "2", "--csv", str(out)]
    assert sessions_cli.main(refs) == 0
    before = out.read_text()
    if when == "syncing":
        full_disk(monkeypatch)
    else:  # the disk fills after the first row
        original = csv.DictWriter.writerow

        def first_row_only(writer, row):
            if getattr(writer, "rows_written", 0) >= 2:  # the header, then one row
                raise OSError(errno.ENOSPC, "No space left on device")
            writer.rows_written = getattr(writer, "rows_written", 0) + 1
            return original(writer, row)

        monkeypatch.setattr(csv.DictWriter, "writerow", first_row_only)
        monkeypatch.setattr(csv.DictWriter, "writerows", lambda writer, rows: [writer.writerow(r) for r in rows])
    assert sessions_cli.main(refs) == 2
    assert out.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".figures")) == []
    assert "No space left" in capsys.readouterr().err


class Terminal:
    def __init__(self):
        self.lines = []

    def write_line(self, line, **markup):
        self.lines.append(line)


@pytest.mark.parametrize("fault", ["full-disk", "mistyped-MPLBACKEND"])
def test_the_report_never_turns_a_passing_session_red(tmp_path, results, monkeypatch, fault):
    if fault == "full-disk":
        full_disk(monkeypatch)
        import harness.report.render as render

        def render_full(results_dir, out_dir):
            record_module.replace_atomically(out_dir / "report.md", b"x")

        monkeypatch.setattr(render, "render_report", render_full)
    else:
        import harness.report.render as render

        def render_bad_backend(results_dir, out_dir):
            import matplotlib

            # What matplotlib raises for MPLBACKEND=agg-typo; validated before it is set, so nothing stays changed.
            matplotlib.rcParams["backend"] = "agg-typo"

        monkeypatch.setattr(render, "render_report", render_bad_backend)
    options = {"--claims-report": str(tmp_path / "report")}
    config = SimpleNamespace(getoption=options.get, stash={SESSION: SimpleNamespace(end=object())})  # a saved session
    terminal = Terminal()
    pytest_report.pytest_terminal_summary(terminal, 0, config)  # must not raise
    assert len(terminal.lines) == 1 and terminal.lines[0].startswith("warning: --claims-report: report not written")
    assert ("disk is full" in terminal.lines[0]) == (fault == "full-disk")


@pytest.mark.parametrize(
    "content, why",
    [("[1, 2]", "not a tuning record"), ("{ half", "cannot be read as JSON"), (b"\xff\xfe", "cannot be read")],
    ids=["a-list", "half-json", "not-utf8"],
)
def test_a_damaged_tuning_file_is_skipped_with_a_warning(tmp_path, content, why):
    base = RunConfig(device="cpu")
    path = tuning.tuning_path("adam", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.warns(tuning.TuningWarning, match=why):
        assert tuning.load_choice("adam", base, root=tmp_path) is None


@pytest.mark.parametrize("lr", [1e9, -1.0, float("nan"), "0.01"])
def test_a_tuned_lr_outside_the_values_tried_is_refused(tiny_npz, results, lr):
    smoke_base = tuning.base_config(f"npz:{tiny_npz}", device="cpu")
    record = tuning.tune("adam", smoke_base, grid=(1e-3,), passes=1)
    path = tuning.tuning_path("adam")
    written = json.loads(path.read_text())
    written["lr"] = lr
    path.write_text(json.dumps(written))
    with pytest.warns(tuning.TuningWarning, match="is not one of the values tried"):
        assert tuning.load_choice("adam", smoke_base, grid=(1e-3,), passes=1) is None
    with pytest.warns(tuning.TuningWarning):
        again = tuning.tune("adam", smoke_base, grid=(1e-3,), passes=1)
    assert again["lr"] == record["lr"] and again["reused"] is False
    assert json.loads(path.read_text())["lr"] == record["lr"]


def test_a_report_on_a_full_disk_keeps_the_earlier_report_and_figure_whole(tmp_path, monkeypatch):
    """report.md and each PNG are written whole or not at all: the disk filling at their sync leaves the earlier ones."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from harness.report.figures import save_figure
    from harness.report.render import render_report

    out = tmp_path / "report"
    render_report(tmp_path / "no-results", out)  # an empty results folder still gives a report.md
    before = (out / "report.md").read_bytes()
    figure = plt.figure()
    save_figure(figure, out / "figure.png")
    png = (out / "figure.png").read_bytes()
    real_write = record_module.replace_atomically

    def disk_full_for(name):
        def write(path, data):
            if Path(path).name != name:
                return real_write(path, data)
            with monkeypatch.context() as full:
                full_disk(full)
                return real_write(path, data)

        return write

    monkeypatch.setattr(record_module, "replace_atomically", disk_full_for("report.md"))
    with pytest.raises(OSError):
        render_report(tmp_path / "no-results", out)
    monkeypatch.setattr("harness.report.figures.replace_atomically", disk_full_for("figure.png"))
    with pytest.raises(OSError):
        save_figure(figure, out / "figure.png")
    plt.close(figure)
    assert (out / "report.md").read_bytes() == before and (out / "figure.png").read_bytes() == png
    assert not [path.name for path in out.iterdir() if path.name.endswith(".tmp")]
