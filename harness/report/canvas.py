"""A report figure's frame: panels, titles that fit their width, the data named below.

matplotlib's object API with no pyplot state; imported only when a figure is
drawn (the report works without matplotlib). Every figure of the report is
framed here, so each one's titles fit and each one names its data;
`harness.report.figures.save_figure` writes it as PNG and SVG.
"""

from __future__ import annotations

import math
import textwrap

from harness.report.describe import data_text, device_text

PANEL_WIDTH = 4.6  # inches per panel column
PANEL_HEIGHT = 3.4  # inches per panel row
MAX_COLUMNS = 3
# A number the paper states, on any figure: a hollow diamond, never joined by a line.
REFERENCE_STYLE = {"marker": "D", "markersize": 7, "markerfacecolor": "none", "markeredgewidth": 1.5, "linestyle": ""}
MIN_FIGURE_WIDTH = 6.0  # inches: a one-panel figure still holds its title in a few lines
# Average glyph width of matplotlib's default sans-serif, as a fraction of the
# font size: the number of characters a line of a given width holds.
GLYPH_WIDTH = 0.6


def frame(panels: int, *, width: float = PANEL_WIDTH, height: float = PANEL_HEIGHT, columns: int | None = None):
    """(figure, axes): `panels` axes on a grid of at most MAX_COLUMNS columns, extra cells hidden.

    Raises ValueError for fewer than one panel.
    """
    from matplotlib.figure import Figure  # lazy: the report works without matplotlib

    if panels < 1:
        raise ValueError(f"a figure needs at least one panel, got {panels}")
    columns = columns or min(panels, MAX_COLUMNS)
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(max(width * columns, MIN_FIGURE_WIDTH), height * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[panels:]:
        ax.set_visible(False)
    return figure, axes


def wrapped(text: str, width_inches: float, fontsize: float) -> str:
    """text broken into lines that fit width_inches at fontsize points (72 points an inch)."""
    characters = max(12, int(width_inches * 72 / (GLYPH_WIDTH * fontsize)))
    return "\n".join(textwrap.wrap(text, characters)) or text


def title(figure, text: str, *, fontsize: float = 11) -> None:
    """The figure's title, wrapped to the figure's width (never cut at either edge, at any panel count)."""
    figure.suptitle(wrapped(text, figure.get_figwidth() * 0.95, fontsize), fontsize=fontsize)


def panel_title(ax, text: str, *, fontsize: float = 8) -> None:
    """A panel's title, wrapped to the panel's width."""
    columns = ax.get_subplotspec().get_gridspec().ncols
    width = ax.figure.get_figwidth() / columns
    ax.set_title(wrapped(text, width * 0.9, fontsize), fontsize=fontsize)


def data_line(records: list[dict]) -> str:
    """What the figure's runs trained on and where: "data: the JPEG copy (q75) of CIFAR-10, ...; measured on ...".

    From the records' own data_source, sizes and machine stamps, never assumed.
    """
    sources = sorted(
        {
            f"{data_text(r.get('data_source'))} ({_count(r.get('n_train'))} training, {_count(r.get('n_test'))} test "
            "images)"
            for r in records
        }
    )
    machines = sorted({device_text(r.get("stamp"), r.get("config")) for r in records})
    return f"data: {'; '.join(sources)}. Measured on {'; '.join(machines)}."


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def name_the_data(figure, records: list[dict], *, fontsize: float = 7) -> None:
    """The data line under the figure (as its bottom label, so the layout makes room for it)."""
    figure.supxlabel(wrapped(data_line(records), figure.get_figwidth() * 0.95, fontsize), fontsize=fontsize)
