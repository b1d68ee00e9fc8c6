"""The paper's figures drawn from run records, as PNG files.

Figure 1a: training loss against steps for the label and input variants.
Figure 1b: time to fit relative to true labels, against label corruption p.
Figure 1c: test error against label corruption p.
Memorisation order: training accuracy of the clean and the corrupted examples
of partially corrupted runs, pass by pass (Arpit et al.'s A1).
Figure 2 (early stopping): test accuracy along training and its cumulative
best, for the true-label runs with and without explicit regularisers.

matplotlib is optional and imported only when drawing (its object API with
the Agg canvas: no pyplot state, no display). Each function takes the run
records, draws what they hold, and returns None when they hold nothing it
plots; runs are grouped by setup (model, scale, schedule, precision,
regularisers), so runs that are not comparable never share a line.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from harness.core.record import replace_atomically
from harness.report.describe import label_level, regulariser_text, regularisers, setup_key, setup_text

VARIANT_ORDER = ("true", "random", "shuffled_pixels", "random_pixels", "gaussian")
VARIANT_LABELS = {
    "true": "true labels",
    "random": "random labels",
    "shuffled_pixels": "shuffled pixels",
    "random_pixels": "random pixels",
    "gaussian": "Gaussian",
}
DPI = 110


def save_figure(figure, path: Path) -> None:
    """The figure as a PNG, written whole or not at all (a full disk leaves the earlier file, not half of one)."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=DPI, format="png")
    replace_atomically(Path(path), buffer.getvalue())


def _figure(panels: int, width: float = 4.2, height: float = 3.2):
    from matplotlib.figure import Figure  # lazy: the report works without matplotlib

    columns = min(panels, 3)
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[panels:]:
        ax.set_visible(False)
    return figure, axes


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


def figure_1a(runs: list[dict], path: Path) -> Path | None:
    """Average training loss per pass against steps, one line per variant (first seed), one panel per setup."""
    groups = {
        key: records
        for key, records in _groups(runs, _plain).items()
        if len({_kind(r["config"]) for r in records} - {None}) >= 2
    }
    if not groups:
        return None
    figure, axes = _figure(len(groups))
    for ax, records in zip(axes, groups.values()):
        for kind in VARIANT_ORDER:
            chosen = [r for r in records if _kind(r["config"]) == kind]
            if not chosen:
                continue
            record = _first_seed(chosen)
            loss = record["curves"]["loss"]
            steps = [(i + 1) * record["steps_per_pass"] / 1000 for i in range(len(loss))]
            ax.plot(steps, loss, label=VARIANT_LABELS[kind])
        ax.set_title(setup_text(records[0]), fontsize=8)
        ax.set_xlabel("thousand steps")
        ax.set_ylabel("average training loss")
        ax.legend(fontsize=7)
    figure.suptitle("Figure 1a: training loss")
    save_figure(figure, path)
    return path


def _level_runs(runs):
    """Label-corruption runs without regularisers, grouped by setup, with at least two levels."""
    groups = _groups(runs, lambda r: _plain(r) and label_level(r["config"]) is not None)
    return {key: records for key, records in groups.items() if len({label_level(r["config"]) for r in records}) >= 2}


def _by_level(records):
    levels = defaultdict(list)
    for record in records:
        levels[label_level(record["config"])].append(record)
    return dict(sorted(levels.items()))


def figure_1b(runs: list[dict], path: Path) -> Path | None:
    """Steps to fit at level p / steps to fit at p = 0 (same setup and seed); a miss plots its budget, hollow."""
    groups = {}
    for key, records in _level_runs(runs).items():
        baseline = {
            r["config"].get("seed", 0): r["steps_to_fit"]
            for r in records
            if label_level(r["config"]) == 0.0 and r.get("steps_to_fit")
        }
        if baseline:
            groups[key] = (records, baseline)
    if not groups:
        return None
    figure, axes = _figure(1, width=5.5, height=4.0)
    ax = axes[0]
    for records, baseline in groups.values():
        fitted, missed = [], []
        for record in records:
            seed = record["config"].get("seed", 0)
            if seed not in baseline:
                continue
            steps = record.get("steps_to_fit")
            target = fitted if steps else missed
            target.append(
                (label_level(record["config"]), (steps or record["passes"] * record["steps_per_pass"]) / baseline[seed])
            )
        mean = defaultdict(list)
        for level, ratio in fitted:
            mean[level].append(ratio)
        levels = sorted(mean)
        line = ax.plot(levels, [sum(mean[l]) / len(mean[l]) for l in levels], marker="o", label=setup_text(records[0]))[
            0
        ]
        if missed:
            ax.scatter(*zip(*missed), marker="^", facecolors="none", edgecolors=line.get_color())
    ax.set_xlabel("label corruption p")
    ax.set_ylabel("time to fit / time with true labels")
    ax.set_title("Figure 1b: relative convergence time (hollow: budget spent, a lower bound)", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(figure, path)
    return path


def figure_1c(runs: list[dict], path: Path) -> Path | None:
    """Final test error against label corruption p, one line per setup (mean over seeds)."""
    groups = _level_runs(runs)
    if not groups:
        return None
    figure, axes = _figure(1, width=5.5, height=4.0)
    ax = axes[0]
    for records in groups.values():
        levels = _by_level(records)
        errors = [
            _mean_of(1 - r["test_accuracy"] for r in rs if r.get("test_accuracy") is not None) for rs in levels.values()
        ]
        ax.plot(list(levels), errors, marker="o", label=setup_text(records[0]))
    ax.axhline(0.9, color="grey", linestyle=":", linewidth=1, label="chance (90% error)")
    ax.set_xlabel("label corruption p")
    ax.set_ylabel("test error")
    ax.set_ylim(0, 1)
    ax.set_title("Figure 1c: test error", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(figure, path)
    return path


def memorisation_order(runs: list[dict], path: Path) -> Path | None:
    """Clean (solid) and corrupted (dashed) training accuracy per pass, one colour per level p."""
    groups = _groups(
        runs,
        lambda r: (
            _plain(r)
            and "train_accuracy_clean" in r.get("curves", {})
            and 0.0 < (label_level(r["config"]) or 0.0) < 1.0
        ),
    )
    if not groups:
        return None
    figure, axes = _figure(len(groups))
    for ax, records in zip(axes, groups.values()):
        for index, (level, chosen) in enumerate(_by_level(records).items()):
            record = _first_seed(chosen)
            curves = record["curves"]
            passes = range(1, len(curves["train_accuracy_clean"]) + 1)
            colour = f"C{index}"
            ax.plot(passes, curves["train_accuracy_clean"], color=colour, label=f"p={level:g} clean")
            ax.plot(
                passes, curves["train_accuracy_corrupted"], color=colour, linestyle="--", label=f"p={level:g} corrupted"
            )
        ax.set_title(setup_text(records[0]), fontsize=8)
        ax.set_xlabel("pass")
        ax.set_ylabel("training accuracy")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=6)
    figure.suptitle("Memorisation order: clean (solid) vs corrupted (dashed) examples")
    save_figure(figure, path)
    return path


def early_stopping(runs: list[dict], path: Path) -> Path | None:
    """Test accuracy readings along training (solid) and their cumulative best (dotted), true labels."""
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
    figure, axes = _figure(len(by_model))
    for ax, records in zip(axes, by_model.values()):
        groups = defaultdict(list)
        for record in records:
            groups[setup_key(record)].append(record)
        for index, chosen in enumerate(groups.values()):
            record = _first_seed(chosen)
            readings = [(i + 1, a) for i, a in enumerate(record["curves"]["test_accuracy"]) if a is not None]
            if not readings:
                continue
            passes, accuracy = zip(*readings)
            best = [max(accuracy[: i + 1]) for i in range(len(accuracy))]
            colour = f"C{index}"
            label = f"{regulariser_text(record['config'])} ({setup_text(record).split(', ', 2)[-1]})"
            ax.plot(passes, accuracy, color=colour, marker=".", label=label)
            ax.plot(passes, best, color=colour, linestyle=":")
        ax.set_title(f"{records[0]['config'].get('model')}, n={records[0].get('n_train')}", fontsize=8)
        ax.set_xlabel("pass")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize=6)
    figure.suptitle("Figure 2 (early stopping): test accuracy (solid) and cumulative best (dotted)")
    save_figure(figure, path)
    return path


def _mean_of(values):
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


FIGURES = (
    (
        "figure1a.png",
        "Figure 1a: training loss against steps",
        figure_1a,
        "Average training loss per pass, first seed of each variant, on the steps axis of the paper's Figure 1a. "
        "One panel per setup (model, scale, schedule, precision).",
    ),
    (
        "figure1b.png",
        "Figure 1b: relative convergence time",
        figure_1b,
        "Steps to 100% training accuracy at label corruption p over the steps at p = 0 (same setup and seed), "
        "mean over seeds; hollow triangles: runs that spent their budget (the ratio is a lower bound).",
    ),
    (
        "figure1c.png",
        "Figure 1c: test error against label corruption",
        figure_1c,
        "Final test error (mean over seeds) at each corruption level; chance is 90% error.",
    ),
    (
        "memorisation.png",
        "Memorisation order (A1)",
        memorisation_order,
        "Training accuracy of the examples whose label was kept (clean) and of those whose label was redrawn "
        "(corrupted), after every pass; first seed of each level.",
    ),
    (
        "figure2_early_stopping.png",
        "Figure 2: early stopping (C7)",
        early_stopping,
        "Test accuracy at each reading along training and its cumulative best: the gap at the end is all that "
        "early stopping on the test set could have gained. True labels; one line per regulariser setting.",
    ),
)


def render_all(runs: list[dict], out_dir: Path) -> list[dict]:
    """Draw every figure the runs support into out_dir; [{"title", "path", "caption"}].

    Raises ImportError when matplotlib is missing (the report catches it).
    """
    import matplotlib  # noqa: F401  (fail early and clearly)

    out_dir = Path(out_dir)
    drawn = []
    for name, title, draw, caption in FIGURES:
        path = draw(runs, out_dir / name)
        if path is not None:
            drawn.append({"title": title, "path": path, "caption": caption})
    return drawn
