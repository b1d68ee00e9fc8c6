"""Several claims sessions at once: every figure as a CSV row, and one claims matrix over all their optimizers."""

import csv
import json

import pytest
from support import figure

from harness.sessions.export import EXPORT_COLUMNS, export_rows, write_csv
from harness.sessions.files import load_session, save_session
from harness.suite import sessions_cli
from harness.suite.matrix import merged_session, sessions_matrix

C1 = "claims/test_c01.py::test_c1_random_labels_are_fitted[{}]"
C3 = "claims/test_c03.py::test_c3_slowdown[mlp_1x512-{}]"
C9 = "claims/test_c09.py::test_c9_minimum_norm"
LION = "lionpkg.impl:Lion(lr=0.0001)"


def session(optimizers, figures, tests, *, time, commit, profile="smoke"):
    stamp = {"cpu": "x86_64", "host_platform": "Linux-6-x86_64", "time": time, "commit": commit}
    return {"profile": profile, "stamp": stamp, "optimizers": list(optimizers), "figures": figures, "tests": tests}


def monday():
    """paper_sgd and adam; C1 and the theory claim C9 (which trains nothing)."""
    return session(
        ["paper_sgd", "adam"],
        [
            figure("C1", "train accuracy, seed 0 (n=5000)", 1.0, True, "paper_sgd", C1.format("mlp_1x512-paper_sgd")),
            figure("C1", "train accuracy, seed 0 (n=5000)", 0.97, False, "adam", C1.format("mlp_1x512-adam")),
            figure(
                "C1",
                "train accuracy, alexnet, seed 0",
                1.0,
                True,
                "adam",
                C1.format("alexnet-adam"),
                scope="beyond the paper",
            ),
            figure("C9", "SGD: ||w - pinv(X) y||", 1e-12, True, None, C9),
            figure("C3", "passes per seed", [27, 30], True, "paper_sgd", C3.format("paper_sgd")),
        ],
        {
            C1.format("mlp_1x512-paper_sgd"): {"optimizer": "paper_sgd", "outcome": "passed"},
            C1.format("mlp_1x512-adam"): {"optimizer": "adam", "outcome": "xfailed", "reason": "listed"},
            C1.format("alexnet-adam"): {"optimizer": "adam", "outcome": "passed"},
            C9: {"optimizer": None, "outcome": "passed"},
            C3.format("paper_sgd"): {"optimizer": "paper_sgd", "outcome": "passed"},
        },
        time="2026-03-02T09:00:00+00:00",
        commit="a" * 40,
    )


def tuesday():
    """adam again (after a change) and a Lion; no paper_sgd of its own."""
    return session(
        ["adam", LION],
        [
            figure("C1", "train accuracy, seed 0 (n=5000)", 1.0, True, "adam", C1.format("mlp_1x512-adam")),
            figure("C1", "train accuracy, seed 0 (n=5000)", 0.99, True, LION, C1.format("mlp_1x512-Lion(lr=0.0001)")),
            figure("C9", "SGD: ||w - pinv(X) y||", 2e-12, True, None, C9),
        ],
        {
            C1.format("mlp_1x512-adam"): {"optimizer": "adam", "outcome": "passed"},
            C1.format("mlp_1x512-Lion(lr=0.0001)"): {"optimizer": LION, "outcome": "passed"},
            C9: {"optimizer": None, "outcome": "passed"},
        },
        time="2026-03-03T10:30:00+00:00",
        commit="b" * 40,
    )


def saved(tmp_path, *made):
    for one in made:
        save_session(one, tmp_path)
    return ["--results-dir", str(tmp_path)]


def read_csv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


# --- export -------------------------------------------------------------------------


def test_export_rows_give_one_row_per_figure_with_its_session_optimizer_scope_and_outcome():
    first = monday()
    first["number"] = 3
    first["optimizer_identity"] = {"adam": {"version": "2.4.0", "code": "torch 2.4.0"}}
    rows = export_rows([first])
    assert len(rows) == 5 and all(tuple(row) == EXPORT_COLUMNS for row in rows)
    adam = rows[1]
    assert adam == {
        "session": "0003",
        "date": "2026-03-02T09:00:00+00:00",
        "profile": "smoke",
        "commit": "a" * 40,
        "optimizer_spec": "adam",
        "optimizer_id": "adam",
        "optimizer_version": "2.4.0",
        "optimizer_code": "torch 2.4.0",
        "claim": "C1",
        "test": C1.format("mlp_1x512-adam"),
        "figure": "train accuracy, seed 0 (n=5000)",
        "label": "train accuracy, seed 0",
        "measured": 0.97,
        "threshold": "t",
        "holds": False,
        "scope": "paper",
        "outcome": "xfailed",
    }
    assert rows[2]["scope"] == "beyond the paper"
    theory = rows[3]
    assert (theory["optimizer_spec"], theory["optimizer_id"], theory["outcome"]) == ("", "", "passed")
    assert rows[4]["measured"] == "[27, 30]"  # a list, as JSON text in one cell
    assert rows[0]["optimizer_version"] == ""  # the file did not name paper_sgd's code


def test_export_on_the_command_line_writes_every_figure_of_every_session(tmp_path, capsys):
    root = saved(tmp_path / "results", monday(), tuesday())
    out = tmp_path / "claims.csv"
    assert sessions_cli.main(root + ["export", "1", "last", "--csv", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"8 figures of 2 session(s) written to {out}"
    rows = read_csv(out)
    assert list(rows[0]) == list(EXPORT_COLUMNS)
    assert [row["session"] for row in rows] == ["0001"] * 5 + ["0002"] * 3
    assert {row["date"][:10] for row in rows} == {"2026-03-02", "2026-03-03"}
    lion = next(row for row in rows if row["optimizer_id"] == "Lion(lr=0.0001)")
    assert (lion["optimizer_spec"], lion["measured"], lion["holds"]) == (LION, "0.99", "True")
    assert lion["outcome"] == "passed"
    assert lion["optimizer_code"] == f"unhashable {LION}"  # named when saved; not importable here
    assert rows[1]["optimizer_code"].startswith("torch ")  # adam, a built-in: torch's version
    assert sessions_cli.main(root + ["export", "2"]) == 0  # standard output by default
    assert len(list(csv.DictReader(capsys.readouterr().out.splitlines()))) == 3


def test_a_baseline_exports_under_its_file_name_and_the_date_of_its_source(tmp_path):
    root = saved(tmp_path / "results", monday())
    baseline_path = tmp_path / "smoke-cpu.json"
    assert sessions_cli.main(root + ["baseline", "1", str(baseline_path)]) == 0
    baseline = json.loads(baseline_path.read_text())
    del baseline["stamp"]["time"], baseline["number"]  # as a file written before stamps had a time
    baseline_path.write_text(json.dumps(baseline))
    rows = export_rows([load_session(str(baseline_path))])
    assert {row["session"] for row in rows} == {"smoke-cpu.json"}
    assert rows[0]["date"].endswith("+00:00") and rows[0]["date"][:4].isdigit()  # from the source's file name


def test_write_csv_writes_a_header_even_without_rows_and_refuses_a_missing_folder(tmp_path, capsys):
    write_csv([], tmp_path / "empty.csv")
    assert (tmp_path / "empty.csv").read_text().strip() == ",".join(EXPORT_COLUMNS)
    with pytest.raises(OSError):
        write_csv([], tmp_path / "no" / "such" / "folder.csv")
    root = saved(tmp_path / "results", monday())
    assert sessions_cli.main(root + ["export", "1", "--csv", str(tmp_path / "no" / "x.csv")]) == 2
    assert "cannot write" in capsys.readouterr().err


# --- one matrix of several sessions ------------------------------------------------------


def table_rows(text, first_cell):
    return [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]


def test_a_matrix_of_two_sessions_has_a_column_per_optimizer_of_each():
    first, second = monday(), tuesday()
    first["number"], second["number"] = 1, 2
    text = sessions_matrix([first, second])
    assert (
        "| claim | paper_sgd (reference, session 0001) | adam (session 0001) | adam (session 0002) | Lion(lr=0.0001) |"
    ) in text
    assert "- session 0001 (2026-03-02, commit aaaaaaaaaaaa, profile smoke): paper_sgd, adam" in text
    assert "- session 0002 (2026-03-03, commit bbbbbbbbbbbb, profile smoke): adam, lionpkg.impl:Lion(lr=0.0001)" in text
    c1 = table_rows(text, "C1")
    assert c1[0].startswith(
        "| C1 | holds · 1/1 figures hold · 1 | FAILS (expected) · 1/2 figures hold · 0.97, 1 "
        "| holds · 1/1 figures hold · 1 | holds · 1/1 figures hold · 0.99 |"
    )
    # the figures table lines the same figure up across all four columns
    assert "| C1 | train accuracy, seed 0 (n=5000) | ? | 1 holds | 0.97 **FAILS** | 1 holds | 0.99 holds |" in c1
    assert "| C9 | holds · 2/2 figures hold · 1e-12, 2e-12 |" in text  # trains nothing: kept from both sessions
    assert "profiles differ" not in text


def test_the_merged_session_renames_columns_only_where_two_would_share_an_id():
    first, second = monday(), tuesday()
    first["number"], second["number"] = 1, 2
    merged, reference = merged_session([first, second])
    assert reference is first
    assert merged["optimizers"] == ["adam (session 0001)", "adam (session 0002)", LION]
    assert C1.format("mlp_1x512-adam (session 0002)") in merged["tests"]
    assert merged["tests"][C9]["optimizer"] is None and f"{C9} (session 0002)" in merged["tests"]
    assert not [f for f in merged["figures"] if f["optimizer"] == "paper_sgd"]  # the reference gives its column


def test_a_second_papers_sgd_and_differing_profiles_are_said(tmp_path, capsys):
    later = monday()
    later["profile"] = "paper"
    later["stamp"]["time"] = "2026-03-05T00:00:00+00:00"
    root = saved(tmp_path / "results", monday(), tuesday(), later)
    assert sessions_cli.main(root + ["matrix", "1", "2", "3", "1"]) == 0  # a session given twice is one
    text = capsys.readouterr().out
    assert (
        "| claim | paper_sgd (reference, session 0001) | adam (session 0001) | adam (session 0002) "
        "| Lion(lr=0.0001) | paper_sgd (session 0003) | adam (session 0003) |"
    ) in text
    assert "### Claims matrix (profile smoke + paper)" in text
    assert "- **profiles differ** (smoke + paper)" in text
    assert sessions_cli.main(root + ["matrix", "2"]) == 0  # one session: its own matrix, as before
    assert "| claim | paper_sgd (reference, not run) | adam | Lion(lr=0.0001) |" in capsys.readouterr().out
