"""The paper's figures drawn from run records, set beside what the paper states in numbers; PNG and SVG.

Figure 1a: training loss against steps, one panel per model (setup).
Figure 1b: time to fit relative to true labels, against label corruption p.
Figure 1c: test error against label corruption p.
Table 1: test accuracy, paper against measured, per model and regulariser setting.
Memorisation order: training accuracy of the clean and the corrupted examples
of partially corrupted runs, pass by pass (Arpit et al.'s A1).
Figure 2 (early stopping): test accuracy along training and its cumulative
best, for the true-label runs with and without explicit regularisers.

Reference points are only numbers the paper states: the values of its
Figure 1 cannot be read, so Figure 1b has only its ratio 1 at p = 0 (by
definition) and Figure 1c Table 1's test errors at p = 0 and p = 1 and
chance (90% error); each is labelled with its source. A line joins only
levels that were run: where a level another line has is missing, the line
breaks. Accuracies and errors are in percent. Each function takes the run
records, draws what they hold, and returns None when they hold nothing it
plots; runs are grouped by setup (model, scale, schedule, precision,
regularisers), so runs that are not comparable never share a line.
"""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

from harness.core.record import replace_atomically
from harness.report.canvas import REFERENCE_STYLE, frame, name_the_data, panel_title, title
from harness.report.describe import (
    distinguishing_labels,
    label_level,
    model_name,
    on_cifar10,
    regularisers,
    setup_key,
)
from harness.report.table1_figure import draw_table_1
from harness.suite.paper import FIGURE_1A_MODELS, FIGURE_1BC_MODELS, TABLE_1

VARIANT_ORDER = ("true", "random", "shuffled_pixels", "random_pixels", "gaussian")
VARIANT_LABELS = {
    "true": "true labels",
    "random": "random labels",
    "shuffled_pixels": "shuffled pixels",
    "random_pixels": "random pixels",
    "gaussian": "Gaussian",
}
CHANCE_ERROR = 90.0  # percent: ten balanced classes
# The narrowest test-accuracy axis (percentage points): seed-to-seed noise (about
# 0.5 points) must not fill the panel and read as a trend.
MIN_ACCURACY_SPAN = 10.0


DPI = 110


def save_figure(figure, path: Path) -> Path:
    """The figure as PNG at `path` and as SVG beside it (same name, .svg), each written whole or not at all.

    A full disk leaves the earlier file, not half of one. The SVG keeps text
    as text (small, searchable) and carries no date, so the same figure
    writes the same bytes. Returns the PNG's path; raises ValueError for a
    path that does not end in .png.
    """
    import matplotlib

    path = Path(path)
    if path.suffix != ".png":
        raise ValueError(f"a figure is saved by its PNG path (name.png), got {path}")
    png = io.BytesIO()
    figure.savefig(png, dpi=DPI, format="png")
    replace_atomically(path, png.getvalue())
    svg = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "report"}):
        figure.savefig(svg, format="svg", metadata={"Date": None})
    replace_atomically(path.with_suffix(".svg"), svg.getvalue())
    return path


def _plain(record: dict) -> bool:
    """No explicit regulariser and the label/input variants of section 2 only."""
    reg = regularisers(record["config"])
    return not (reg["weight_decay"] or reg["crop"] or reg["dropout"]) and record.get("outcome") != "interrupted"


def _kind(config: dict) -> str | None:
    level = label_level(config)
    if level is None:
        return config.get("variant")
    return {0.0: "true", 1.0: "random"}.get(level)


def _groups(runs, keep) -> dict:
    groups = defaultdict(list)
    for record in runs:
        if keep(record):
            groups[setup_key(record)].append(record)
    return groups


def _first_seed(records: list[dict]) -> dict:
    return min(records, key=lambda r: r["config"].get("seed", 0))


def _all(groups) -> list[dict]:
    return [record for records in groups for record in records]


def figure_1a(runs: list[dict], path: Path) -> Path | None:
    """Average training loss per pass against steps, one line per variant (first seed), one panel per setup."""
    groups = [
        records
        for records in _groups(runs, _plain).values()
        if len({_kind(r["config"]) for r in records} - {None}) >= 2
    ]
    if not groups:
        return None
    labels, shared = distinguishing_labels([records[0] for records in groups])
    figure, axes = frame(len(groups))
    for ax, records, label in zip(axes, groups, labels):
        for kind in VARIANT_ORDER:
            chosen = [r for r in records if _kind(r["config"]) == kind]
            if not chosen:
                continue
            record = _first_seed(chosen)
            loss = record["curves"]["loss"]
            steps = [(i + 1) * record["steps_per_pass"] / 1000 for i in range(len(loss))]
            ax.plot(steps, loss, label=VARIANT_LABELS[kind])
        if records[0]["config"].get("model") not in FIGURE_1A_MODELS:
            label += " (not in the paper's Figure 1a, which shows Inception (small) only)"
        panel_title(ax, label)
        ax.set_xlabel("thousand steps")
        ax.set_ylabel("average training loss")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    title(figure, f"Figure 1a: training loss ({shared}); the paper's curves give no numbers to compare")
    name_the_data(figure, _all(groups))
    return save_figure(figure, path)


def _level_runs(runs):
    """Label-corruption runs without regularisers, grouped by setup, with at least two levels."""
    groups = _groups(runs, lambda r: _plain(r) and label_level(r["config"]) is not None)
    return {key: records for key, records in groups.items() if len({label_level(r["config"]) for r in records}) >= 2}


def _by_level(records):
    levels = defaultdict(list)
    for record in records:
        levels[label_level(record["config"])].append(record)
    return dict(sorted(levels.items()))


def measured_segments(points: dict[float, float], grid: list[float]) -> list[list[tuple[float, float]]]:
    """The runs of consecutive grid levels a line may join: [[(level, value), ...], ...].

    points: level -> value of one line; grid: every level any line of the
    figure has. A grid level missing from points breaks the line there, so
    no segment passes over a level that was not run. A lone level is a
    segment of one point (drawn as a marker).
    """
    segments, current = [], []
    for level in sorted(grid):
        if level in points:
            current.append((level, points[level]))
        elif current:
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    return segments


def _draw_segments(ax, points: dict, grid: list[float], label: str, colour=None):
    """One line's measured points, joined only across consecutive run levels; returns its colour."""
    for index, segment in enumerate(measured_segments(points, grid)):
        xs, ys = zip(*segment)
        line = ax.plot(xs, ys, marker="o", color=colour, label=label if index == 0 else None)[0]
        colour = line.get_color()
    return colour


def _legend_beside(ax) -> None:
    """The legend right of the axes (the layout makes room for it): labels in words cover no data."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def figure_1b(runs: list[dict], path: Path) -> Path | None:
    """Steps to fit at level p / steps to fit at p = 0 (same setup and seed); a miss plots its budget, hollow."""
    groups = []
    for records in _level_runs(runs).values():
        baseline = {
            r["config"].get("seed", 0): r["steps_to_fit"]
            for r in records
            if label_level(r["config"]) == 0.0 and r.get("steps_to_fit")
        }
        if baseline:
            groups.append((records, baseline))
    if not groups:
        return None
    grid = sorted({label_level(r["config"]) for records, _ in groups for r in records})
    labels, shared = distinguishing_labels([records[0] for records, _ in groups])
    figure, axes = frame(1, width=11.0, height=4.6)
    ax = axes[0]
    ax.axhline(1.0, color="grey", linewidth=1, linestyle=":", label="ratio 1: as fast as true labels")
    highest = 1.0
    for (records, baseline), label in zip(groups, labels):
        fitted, missed = defaultdict(list), []
        for record in records:
            seed = record["config"].get("seed", 0)
            if seed not in baseline:
                continue
            steps = record.get("steps_to_fit")
            ratio = (steps or record["passes"] * record["steps_per_pass"]) / baseline[seed]
            if steps:
                fitted[label_level(record["config"])].append(ratio)
            else:
                missed.append((label_level(record["config"]), ratio))
        means = {level: sum(values) / len(values) for level, values in fitted.items()}
        if records[0]["config"].get("model") not in FIGURE_1BC_MODELS:
            label += " (beyond the paper's figure)"
        colour = _draw_segments(ax, means, grid, label)
        if missed:
            ax.scatter(*zip(*missed), marker="^", facecolors="none", edgecolors=colour, label=f"{label}: budget spent")
        highest = max([highest, *means.values(), *(ratio for _, ratio in missed)])
    ax.plot([0.0], [1.0], color="black", label="paper: 1 at p = 0 (by definition)", **REFERENCE_STYLE)
    ax.set_xlabel("label corruption p")
    ax.set_ylabel("time to fit / time with true labels")
    ax.set_ylim(0, highest * 1.15)  # from 0: a ratio near 1 is read as such, not zoomed into a hump
    ax.set_xlim(-0.05, 1.05)
    _legend_beside(ax)
    title(
        figure,
        f"Figure 1b: relative convergence time ({shared}). Hollow triangles: budget spent, a lower bound. "
        "The paper's curve values cannot be read from its figure.",
        fontsize=10,
    )
    name_the_data(figure, _all(records for records, _ in groups))
    return save_figure(figure, path)


def figure_1c(runs: list[dict], path: Path) -> Path | None:
    """Final test error (%) against label corruption p, one line per setup (mean over seeds), Table 1 beside it."""
    groups = list(_level_runs(runs).values())
    if not groups:
        return None
    grid = sorted({label_level(r["config"]) for records in groups for r in records})
    labels, shared = distinguishing_labels([records[0] for records in groups])
    figure, axes = frame(1, width=11.0, height=4.6)
    ax = axes[0]
    ax.axhline(CHANCE_ERROR, color="grey", linestyle=":", linewidth=1, label="chance: 90% error")
    referenced = set()
    for records, label in zip(groups, labels):
        errors = {
            level: _mean_of(100 * (1 - r["test_accuracy"]) for r in rs if r.get("test_accuracy") is not None)
            for level, rs in _by_level(records).items()
        }
        model = records[0]["config"].get("model")
        if model not in FIGURE_1BC_MODELS:
            label += " (beyond the paper's figure)"
        colour = _draw_segments(ax, {k: v for k, v in errors.items() if v == v}, grid, label)
        if on_cifar10(records[0]) and model not in referenced:
            reference = table_1_test_errors(model)
            if reference:
                referenced.add(model)
                ax.plot(
                    *zip(*sorted(reference.items())),
                    color=colour,
                    label=f"{model_name(model)}: paper, Table 1 (no regulariser, 50,000 training images)",
                    **REFERENCE_STYLE,
                )
    ax.set_xlabel("label corruption p")
    ax.set_ylabel("test error (%)")
    ax.set_ylim(0, 100)
    ax.set_xlim(-0.05, 1.05)
    _legend_beside(ax)
    title(
        figure,
        f"Figure 1c: test error ({shared}). Diamonds: Table 1's numbers at p = 0 and 1; "
        "the paper's curve values between cannot be read from its figure.",
        fontsize=10,
    )
    name_the_data(figure, _all(groups))
    return save_figure(figure, path)


def table_1_test_errors(model: str) -> dict[float, float]:
    """Table 1's test error (%) of a model without regularisers: {0.0: true labels, 1.0: random labels}."""
    return {
        (0.0 if labels == "true" else 1.0): 100.0 - test
        for name, crop, decay, labels, _, test in TABLE_1
        if name == model and not crop and not decay
    }


def table_1(runs: list[dict], path: Path) -> Path | None:
    """Table 1 as a figure, paper beside measured (`harness.report.table1_figure`); None without a Table 1 run."""
    figure = draw_table_1(runs)
    return None if figure is None else save_figure(figure, path)


def memorisation_order(runs: list[dict], path: Path) -> Path | None:
    """Clean (solid) and corrupted (dashed) training accuracy (%) per pass, one colour per level p."""
    groups = list(
        _groups(
            runs,
            lambda r: (
                _plain(r)
                and "train_accuracy_clean" in r.get("curves", {})
                and 0.0 < (label_level(r["config"]) or 0.0) < 1.0
            ),
        ).values()
    )
    if not groups:
        return None
    labels, shared = distinguishing_labels([records[0] for records in groups])
    figure, axes = frame(len(groups))
    for ax, records, label in zip(axes, groups, labels):
        for index, (level, chosen) in enumerate(_by_level(records).items()):
            record = _first_seed(chosen)
            curves = record["curves"]
            passes = range(1, len(curves["train_accuracy_clean"]) + 1)
            colour = f"C{index}"
            ax.plot(passes, _percent(curves["train_accuracy_clean"]), color=colour, label=f"p = {level:g}, kept labels")
            ax.plot(
                passes,
                _percent(curves["train_accuracy_corrupted"]),
                color=colour,
                linestyle="--",
                label=f"p = {level:g}, redrawn labels",
            )
        panel_title(ax, label)
        ax.set_xlabel("pass")
        ax.set_ylabel("training accuracy (%)")
        ax.set_ylim(0, 102)
        ax.legend(fontsize=6)
    title(figure, f"Memorisation order (Arpit et al.): kept (solid) vs redrawn (dashed) labels ({shared})")
    name_the_data(figure, _all(groups))
    return save_figure(figure, path)


def early_stopping(runs: list[dict], path: Path) -> Path | None:
    """Test accuracy (%) readings along training (solid) and their cumulative best (dotted), true labels."""
    by_model = defaultdict(list)
    for record in runs:
        config = record["config"]
        if (
            label_level(config) == 0.0
            and not regularisers(config)["dropout"]
            and record.get("outcome") != "interrupted"
        ):
            by_model[(config.get("model"), record.get("data_source"), record.get("n_train"))].append(record)
    if not by_model:
        return None
    figure, axes = frame(len(by_model))
    for ax, records in zip(axes, by_model.values()):
        groups = defaultdict(list)
        for record in records:
            groups[setup_key(record)].append(record)
        chosen = [_first_seed(group) for group in groups.values()]
        line_labels, panel_label = distinguishing_labels(chosen, always=("regularisers",))
        lowest, highest = 100.0, 0.0
        for index, (record, label) in enumerate(zip(chosen, line_labels)):
            readings = [(i + 1, 100 * a) for i, a in enumerate(record["curves"]["test_accuracy"]) if a is not None]
            if not readings:
                continue
            passes, accuracy = zip(*readings)
            best = [max(accuracy[: i + 1]) for i in range(len(accuracy))]
            colour = f"C{index}"
            ax.plot(passes, accuracy, color=colour, marker=".", label=label)
            ax.plot(passes, best, color=colour, linestyle=":")
            lowest, highest = min(lowest, *accuracy), max(highest, *accuracy)
        _at_least_span(ax, lowest, highest, MIN_ACCURACY_SPAN)
        panel_title(ax, panel_label)
        ax.set_xlabel("pass")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=6)
    title(figure, "Figure 2 (early stopping): test accuracy (solid) and its cumulative best (dotted), true labels")
    name_the_data(figure, _all(by_model.values()))
    return save_figure(figure, path)


def _at_least_span(ax, lowest: float, highest: float, span: float) -> None:
    """The y axis around [lowest, highest], widened to `span` about its middle and kept within 0..100."""
    if lowest > highest:
        return
    middle, half = (lowest + highest) / 2, max(span, highest - lowest) / 2 * 1.1
    bottom = max(0.0, middle - half)
    ax.set_ylim(bottom, min(100.0, bottom + 2 * half))


def _percent(values):
    return [float("nan") if v is None else 100 * v for v in values]


def _mean_of(values):
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


FIGURES = (
    (
        "figure1a.png",
        "Figure 1a: training loss against steps",
        figure_1a,
        "Average training loss per pass, first seed of each variant, on the steps axis of the paper's Figure 1a. "
        "One panel per setup (model, scale, schedule, precision). The paper's curves give no numbers to compare.",
    ),
    (
        "figure1b.png",
        "Figure 1b: relative convergence time",
        figure_1b,
        "Steps to 100% training accuracy at label corruption p over the steps at p = 0 (same setup and seed), "
        "mean over seeds, on an axis from 0; lines join only levels that were run. Hollow triangles: runs that "
        "spent their budget (the ratio is a lower bound). Paper reference: the ratio is 1 at p = 0 by definition; "
        "its other values cannot be read from the paper's figure.",
    ),
    (
        "figure1c.png",
        "Figure 1c: test error against label corruption",
        figure_1c,
        "Final test error in percent (mean over seeds) at each corruption level; lines join only levels that were "
        "run. Diamonds: Table 1's test error without regularisers (true labels at p = 0, random labels at p = 1); "
        "dotted: chance, 90% error. The paper's values between cannot be read from its figure.",
    ),
    (
        "table1.png",
        "Table 1: test accuracy, paper and measured",
        table_1,
        "Test accuracy in percent of each Table 1 setting that was run: the paper's (diamond) and each measured "
        "setup's mean over seeds (dot; hollow where the training set is smaller than the paper's 50,000 images). "
        "Weight decay at Table 1's coefficient only; the C6 sweep's other coefficients are not Table 1's.",
    ),
    (
        "memorisation.png",
        "Memorisation order (A1)",
        memorisation_order,
        "Training accuracy in percent of the examples whose label was kept (clean) and of those whose label was "
        "redrawn (corrupted), after every pass; first seed of each level.",
    ),
    (
        "figure2_early_stopping.png",
        "Figure 2: early stopping (C7)",
        early_stopping,
        "Test accuracy in percent at each reading along training and its cumulative best: the gap at the end is "
        "all that early stopping on the test set could have gained. True labels; one line per regulariser setting.",
    ),
)


def render_all(runs: list[dict], out_dir: Path) -> list[dict]:
    """Draw every figure the runs support into out_dir; [{"title", "path", "svg", "caption"}].

    Each figure is written as PNG ("path") and SVG ("svg") side by side.
    Raises ImportError when matplotlib is missing (the report catches it).
    """
    import matplotlib  # noqa: F401  (fail early and clearly)

    out_dir = Path(out_dir)
    drawn = []
    for name, figure_title, draw, caption in FIGURES:
        path = draw(runs, out_dir / name)
        if path is not None:
            drawn.append({"title": figure_title, "path": path, "svg": path.with_suffix(".svg"), "caption": caption})
    return drawn
