"""How numbers are printed in terminal lines, comparisons, the claims matrix and the report.

One place for it, so a figure reads the same wherever it appears.
"""

from __future__ import annotations


def fmt_value(value, *, none: str = "-") -> str:
    """A measured value as printed: a float to 4 significant digits (inf, nan by name), anything else as str().

    `none` is what None prints as: '-' (nothing there) in comparisons and the
    report's tables. The claim figure lines and the claims matrix print what a
    claim declared, so they pass none="None"; their output has always read so.
    """
    if value is None:
        return none
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def fmt_seconds(value) -> str:
    """A duration in seconds, one decimal: a fixed format, unlike a figure's significant digits."""
    return "-" if value is None else f"{value:.1f}"


def fmt_train_reading(state: dict) -> str:
    """A pass's training accuracy for a progress line, naming the sample when it was not the whole set."""
    text = f"{state['train_accuracy']:.4f}"
    if not state.get("train_whole", True):
        text += f" (sample of {state['train_checked']})"
    return text


# The scope label of a figure from a run the paper never made (--claims-extended).
BEYOND_THE_PAPER = "beyond the paper"


def shown_figure(entry: dict) -> str:
    """A declared figure's text as shown, labelled when it comes from a run beyond the paper's scope."""
    figure = str(entry.get("figure", ""))
    return f"{figure} [{BEYOND_THE_PAPER}]" if entry.get("scope") == BEYOND_THE_PAPER else figure
