"""Render run records and claim figures as a report: Markdown, JSON and PNG figures.

    python -m harness report [--results DIR] [--out DIR]

Reads ``RESULTS/runs/<key>/*.json`` (the newest record per run key) and
``RESULTS/sessions/*.json`` (the claim figures of each pytest session), and
writes ``report.md``, ``report.json`` and the figures (``harness.report.figures``;
matplotlib is optional: without it the report is tables only and says so).
Every number is printed as measured; where one differs from the paper's by
more than the expected spread the report says so, and adjusts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from harness.core.formatting import fmt_seconds, fmt_value, shown_figure
from harness.core.record import json_value
from harness.report.describe import (
    EXPECTED_SPREAD,
    PAPER_N_TRAIN,
    at_paper_scale,
    claim_figures,
    device_text,
    label_level,
    load_runs,
    load_sessions,
    on_cifar10,
    paper_value,
    regulariser_text,
    regularisers,
    setup_text,
    table_1_matches,
    variant_name,
)
from harness.suite.paper import ARPIT_ET_AL

# --- tables ------------------------------------------------------------------


def run_rows(runs: list[dict]) -> list[dict]:
    rows = []
    for record in runs:
        config = record.get("config", {})
        reference = paper_value(config) if on_cifar10(record) else None
        test, train = record.get("test_accuracy"), record.get("train_accuracy")
        row = {
            "key": record.get("key"),
            "model": config.get("model"),
            "variant": variant_name(config),
            "p": label_level(config),
            "regularisers": regulariser_text(config),
            "seed": config.get("seed"),
            "n_train": record.get("n_train"),
            "outcome": record.get("outcome"),
            "passes": record.get("passes"),
            "passes_to_fit": record.get("passes_to_fit"),
            "max_passes": config.get("max_passes"),
            "train_accuracy": train,
            "test_accuracy": test,
            "best_test_accuracy": record.get("best_test_accuracy"),
            "paper": reference[1] if reference else None,
            "paper_kind": reference[0] if reference else None,
            "train_seconds": record.get("train_seconds"),
            "data_source": record.get("data_source"),
            "device": device_text(record.get("stamp"), config),
            "precision": config.get("precision", "fp32"),
            "optimizer": config.get("optimizer", "paper_sgd"),
            "setup": setup_text(record),
        }
        row["differs"] = None
        if reference and at_paper_scale(record):
            measured = test if reference[0] == "test" else train
            if measured is not None:
                gap = 100 * measured - reference[1]
                if abs(gap) > EXPECTED_SPREAD[reference[0]]:
                    row["differs"] = round(gap, 2)
        rows.append(row)
    return rows


def table_1_rows(runs: list[dict]) -> list[dict]:
    """Table 1 beside the measured runs of each of its settings, one row per (setting, setup).

    Only runs of Table 1's own settings (`describe.table_1_matches`: the C6
    sweep's other weight decays are left out); percentages as the paper's.
    """
    rows = []
    for (model, crop, weight_decay, labels, paper_train, paper_test), matches in table_1_matches(runs):
        base = {
            "model": model,
            "crop": crop,
            "weight_decay": weight_decay,
            "labels": labels,
            "paper_train": paper_train,
            "paper_test": paper_test,
        }
        if not matches:
            rows.append({**base, "setup": None, "seeds": [], "train": None, "test": None, "note": "not run"})
        for records in matches.values():
            train = _mean([r.get("train_accuracy") for r in records])
            test = _mean([r.get("test_accuracy") for r in records])
            row = {
                **base,
                "setup": setup_text(records[0]),
                "seeds": sorted(r["config"].get("seed", 0) for r in records),
                "n_train": records[0].get("n_train"),
                "data_source": records[0].get("data_source"),
                "weight_decay_value": regularisers(records[0]["config"])["weight_decay"],
                "train": train,
                "test": test,
                "outcomes": sorted({r.get("outcome") for r in records}),
            }
            row["note"] = _compare_note(records[0], train, test, paper_train, paper_test)
            rows.append(row)
    return rows


def _compare_note(record, train, test, paper_train, paper_test) -> str:
    if not at_paper_scale(record):
        return f"n={record.get('n_train')}: not the paper's scale, not compared"
    notes = []
    for kind, measured, reference in (("train", train, paper_train), ("test", test, paper_test)):
        if measured is None:
            continue
        gap = 100 * measured - reference
        if abs(gap) > EXPECTED_SPREAD[kind]:
            notes.append(f"{kind} differs by {gap:+.2f} points (expected spread {EXPECTED_SPREAD[kind]:g})")
    return "; ".join(notes) or "within the expected spread"


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


# --- rendering ---------------------------------------------------------------


def render_report(results_dir: Path, out_dir: Path) -> Path:
    """Write report.md, report.json and the figures into out_dir; return the Markdown's path."""
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = load_runs(results_dir)
    sessions = load_sessions(results_dir)
    figures_rows = claim_figures(sessions)
    runs_table = run_rows(runs)
    table_1 = table_1_rows(runs)

    figure_files, figure_note = [], None
    try:
        from harness.report import figures

        figure_files = figures.render_all(runs, out_dir)
    except ImportError as error:
        figure_note = (
            f"matplotlib is not available ({error}); figures omitted, the tables hold every number. "
            "Install it with `pip install matplotlib` (the `plots` extra)."
        )

    differences = [
        f"{row['setup']}, {row['labels']} labels, crop {_yes(row['crop'])}, weight decay "
        f"{_yes(row['weight_decay'])}: {row['note']}"
        for row in table_1
        if row["setup"] and "differs" in row["note"]
    ]
    differences += [
        f"{row['setup']}, {row['variant']}, seed {row['seed']}: {row['paper_kind']} accuracy "
        f"{_pct(row[row['paper_kind'] + '_accuracy'])} vs paper {row['paper']:.2f} ({row['differs']:+.2f} points)"
        for row in runs_table
        if row["differs"] is not None and not _in_table_1(row)
    ]
    machines = _machines(runs, sessions)
    sources = sorted({f"{r.get('data_source')} (n_train {r.get('n_train')}, n_test {r.get('n_test')})" for r in runs})
    report = {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "results_dir": str(results_dir),
        "command": f"python -m harness report --results {results_dir} --out {out_dir}",
        "data_sources": sources,
        "machines": machines,
        "sessions": [{k: s.get(k) for k in ("file", "profile", "exit_status", "stamp")} for s in sessions],
        "claims": figures_rows,
        "table_1": table_1,
        "runs": runs_table,
        "differences": differences,
        "expected_spread_points": EXPECTED_SPREAD,
        "figures": [  # file names, relative to the report
            {**f, "path": Path(f["path"]).name, "svg": Path(f["svg"]).name} for f in figure_files
        ],
        "figures_note": figure_note,
    }
    from harness.core.record import replace_atomically, write_json_atomic

    write_json_atomic(out_dir / "report.json", json_value(report, strict=True))
    path = out_dir / "report.md"
    replace_atomically(path, _markdown(report, figure_files, out_dir).encode())  # whole or not at all
    return path


def _in_table_1(row) -> bool:
    return row["paper_kind"] == "test"  # Table 1's own rows are reported from the side-by-side table


def _machines(runs, sessions) -> list[str]:
    seen = defaultdict(int)
    for record in runs:
        stamp = record.get("stamp") or {}
        text = (
            f"{device_text(stamp, record.get('config'))}; {stamp.get('host_platform', '?')}; torch "
            f"{stamp.get('torch', '?')}, CUDA {stamp.get('cuda') or 'none'}; commit {stamp.get('commit', '?')}"
        )
        seen[text] += 1
    return [f"{text} ({count} run{'s' if count != 1 else ''})" for text, count in sorted(seen.items())]


def _markdown(report: dict, figure_files: list[dict], out_dir: Path) -> str:
    lines = [
        "# Report: Understanding deep learning requires rethinking generalization",
        "",
        f"Rendered {report['generated']} by `{report['command']}` from "
        f"{len(report['runs'])} run records and {len(report['sessions'])} claim sessions.",
        "",
        "## Data and hardware",
        "",
        *(f"- data: {source}" for source in report["data_sources"] or ["no run records"]),
        *(f"- machine: {machine}" for machine in report["machines"]),
        *(
            f"- claims session {s['file']}: profile {s['profile']}, exit status {s['exit_status']}, on "
            f"{device_text(s.get('stamp'))}"
            for s in report["sessions"]
        ),
        "",
        "## Claim figures",
        "",
    ]
    claims = report["claims"]
    if claims:
        held = sum(1 for f in claims if f.get("holds"))
        lines += [
            f"{held} of {len(claims)} figures hold. Paper values as printed (percent, or percentage points "
            "for differences); a measured accuracy beside a paper value is shown in percent too, then as the "
            "claim reports it and its threshold reads it (a fraction), in brackets. "
            "A label in brackets after a figure is its scope: [beyond the paper] for a run the paper never "
            f"made (--claims-extended), [{ARPIT_ET_AL}] for that paper's claims (A1-A3), read from these runs.",
            "",
            "| claim | verdict | figure | threshold | paper | measured | profile | optimizer | test |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for f in claims:
            lines.append(
                f"| {f.get('claim')} | {'holds' if f.get('holds') else '**FAILS**'} | {_cell(shown_figure(f))} | "
                f"{_cell(f.get('threshold'))} | {_cell(fmt_value(f.get('paper')))} | {_cell(_measured_text(f))} | "
                f"{f.get('profile')} | {_cell(f.get('optimizer') or '-')} | {_cell(f.get('test', '').split('::')[-1])} |"
            )
    else:
        lines.append("No claim sessions found.")
    lines += [
        "",
        "## Table 1 side by side",
        "",
        f"Test accuracy in percent; the paper's scale is the full training set (n={PAPER_N_TRAIN:,}). "
        f"Expected spread: {EXPECTED_SPREAD['test']:g} points (test), {EXPECTED_SPREAD['train']:g} (train); "
        "seeds averaged within a setup.",
        "",
        "| model | crop | weight decay | labels | paper train | paper test | setup | seeds | train | test | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["table_1"]:
        lines.append(
            f"| {row['model']} | {_yes(row['crop'])} | {_yes(row['weight_decay'])} | {row['labels']} | "
            f"{row['paper_train']:.2f} | {row['paper_test']:.2f} | {row['setup'] or '-'} | "
            f"{', '.join(map(str, row['seeds'])) or '-'} | {_pct(row['train'])} | {_pct(row['test'])} | {row['note']} |"
        )
    lines += ["", "## Differences from the paper", ""]
    lines += [f"- {text}" for text in report["differences"]] or [
        "None beyond the expected spread at the paper's scale."
    ]
    lines += [
        "",
        "## Runs",
        "",
        "Accuracies in percent; passes = passes trained (budget); seconds = training time, evaluation excluded.",
        "",
        "| model | variant | p | regularisers | seed | n | outcome | passes | train | test | best test | "
        "paper | seconds | data | device | precision | optimizer |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["runs"]:
        paper_text = f"{row['paper']:.2f} ({row['paper_kind']})" if row["paper"] is not None else "-"
        if row["differs"] is not None:
            paper_text += f" **differs {row['differs']:+.2f}**"
        lines.append(
            f"| {row['model']} | {row['variant']} | {fmt_value(row['p'])} | {row['regularisers']} | {row['seed']} | "
            f"{row['n_train']} | {row['outcome']} | {row['passes']} ({row['max_passes']}) | "
            f"{_pct(row['train_accuracy'])} | {_pct(row['test_accuracy'])} | {_pct(row['best_test_accuracy'])} | "
            f"{paper_text} | {fmt_seconds(row['train_seconds'])} | {row['data_source']} | {row['device']} | "
            f"{row['precision']} | {_cell(row['optimizer'])} |"
        )
    lines += ["", "## Figures", ""]
    if report["figures_note"]:
        lines.append(report["figures_note"])
    elif not figure_files:
        lines.append("No runs of the kinds the figures plot.")
    for figure in figure_files:
        name = Path(figure["path"]).name
        svg = Path(figure["svg"]).name
        lines += [
            f"### {figure['title']}",
            "",
            f"![{figure['title']}]({name})",
            "",
            f"{figure['caption']} [SVG]({svg})",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _measured_text(figure: dict) -> str:
    """A claim figure's measured value; an accuracy (or its change) set beside a paper percentage in percent too.

    "75.74% (0.7574)" where the paper's 76.07 stands beside it, so the two
    read in one unit; the fraction stays for the threshold, which reads it.
    A change of accuracy is in points, as the paper's difference is.
    """
    measured, paper = figure.get("measured"), figure.get("paper")
    is_number = isinstance(measured, (int, float)) and not isinstance(measured, bool)
    if not (is_number and isinstance(paper, (int, float)) and "accuracy" in str(figure.get("figure", ""))):
        return fmt_value(measured)
    unit = " points" if "change" in str(figure.get("figure", "")) else "%"
    return f"{100 * measured:.2f}{unit} ({fmt_value(measured)})"


def _yes(value) -> str:
    return "yes" if value else "no"


def _pct(value) -> str:
    """Percent with 2 decimals; more where rounding would print a miss as 100.00."""
    if value is None:
        return "-"
    text = f"{100 * value:.2f}"
    if text == "100.00" and value < 1.0:
        text = f"{100 * value:.4f}"
    return text


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# --- command line ------------------------------------------------------------


def _folder(text: str) -> Path:
    """A folder given on the command line, '~' as the home folder (a shell leaves it in '--x=~/y')."""
    return Path(text).expanduser()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness report", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results-dir",
        "--results",
        dest="results",
        type=_folder,
        default=_folder(os.environ.get("HARNESS_RESULTS_DIR", ".harness-results")),
        help="results folder holding runs/ and sessions/ (default $HARNESS_RESULTS_DIR or .harness-results; "
        "--results is the older spelling)",
    )
    parser.add_argument("--out", type=_folder, default=None, help="where the report goes (default RESULTS/report)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not (args.results / "runs").is_dir() and not (args.results / "sessions").is_dir():
        print(f"error: no runs/ or sessions/ under {args.results}", file=sys.stderr)
        return 2
    path = render_report(args.results, args.out or args.results / "report")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
