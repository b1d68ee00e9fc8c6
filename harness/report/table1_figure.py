"""Table 1 as a figure: test accuracy in percent, the paper's beside the measured, per model and regularisers.

One row per Table 1 setting that a run measured (`describe.table_1_matches`:
Table 1's own weight decay only, never the C6 sweep's other coefficients),
in Table 1's order; the paper's number a hollow diamond, each measured
setup's seed mean a dot in its own colour, hollow where the training set is
smaller than the paper's.
"""

from __future__ import annotations

from harness.report.canvas import REFERENCE_STYLE, frame, name_the_data, title
from harness.report.describe import (
    PAPER_N_TRAIN,
    TABLE_1_WEIGHT_DECAY,
    distinguishing_labels,
    model_name,
    setup_key,
    table_1_matches,
)


def draw_table_1(runs: list[dict]):
    """Test accuracy (%) of each Table 1 row: the paper's (diamond) and the measured setups' (dots, seed mean).

    Returns the matplotlib Figure, unsaved, or None when no run has a Table 1
    setting.
    Only Table 1's settings (weight decay at its coefficient, no sweep);
    rows no run measured are left out. A dot at another scale than the
    paper's 50,000 images is hollow: shown, not comparable.
    """
    rows = [(row, list(groups.values())) for row, groups in table_1_matches(runs) if groups]
    if not rows:
        return None
    setups = {}  # setup key -> (its first dot, its first run): one colour per setup, across rows
    figure, axes = frame(1, width=9.0, height=1.4 + 0.42 * len(rows))
    ax = axes[0]
    paper = None
    for y, (row, groups) in enumerate(rows):
        paper = ax.plot([row[5]], [y], color="black", **REFERENCE_STYLE)[0]
        for offset, records in zip(_offsets(len(groups)), groups):
            key = setup_key(records[0])
            colour = f"C{list(setups).index(key) if key in setups else len(setups)}"
            test = _mean_of(100 * r["test_accuracy"] for r in records if r.get("test_accuracy") is not None)
            at_scale = records[0].get("n_train") == PAPER_N_TRAIN
            dot = ax.plot(
                [test],
                [y + offset],
                marker="o",
                linestyle="",
                color=colour,
                markerfacecolor=colour if at_scale else "none",
            )[0]
            setups.setdefault(key, (dot, records[0]))
    labels, shared = distinguishing_labels([record for _, record in setups.values()], always=())
    ax.legend(
        [paper, *(dot for dot, _ in setups.values())],
        ["paper (Table 1)"]
        + [
            f"measured: {label or 'this harness'}{_scale_note(record)}"
            for label, (_, record) in zip(labels, setups.values())
        ],
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
    )
    ax.set_yticks(range(len(rows)), [_row_text(row) for row, _ in rows], fontsize=7)
    ax.invert_yaxis()  # Table 1's order, top to bottom
    ax.set_xlim(0, 100)
    ax.set_xlabel("test accuracy (%)")
    ax.grid(axis="x", linewidth=0.5, alpha=0.5)
    title(figure, "Table 1: test accuracy, paper and measured" + (f" ({shared})" if shared else ""), fontsize=10)
    name_the_data(figure, [r for _, groups in rows for records in groups for r in records])
    return figure


def _offsets(count: int) -> list[float]:
    """Vertical offsets that keep several setups of one row apart (0 for one)."""
    step = 0.15
    return [step * (i - (count - 1) / 2) for i in range(count)]


def _scale_note(record: dict) -> str:
    n = record.get("n_train")
    return "" if n == PAPER_N_TRAIN else f" (hollow: n = {n:,}, not the paper's scale)"


def _row_text(row) -> str:
    model, crop, weight_decay, labels = row[:4]
    regulariser = (
        ", ".join(["random crop"] * crop + [f"weight decay {TABLE_1_WEIGHT_DECAY:g}"] * weight_decay)
        or "no regulariser"
    )
    return f"{model_name(model)}, {regulariser}, {labels} labels"


def _mean_of(values):
    values = list(values)
    return sum(values) / len(values) if values else float("nan")
