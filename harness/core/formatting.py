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


def fmt_duration(seconds: float) -> str:
    """A duration for people: '0.4 s', '12 s', '3.1 min', '2.5 h'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_time_left(pass_seconds: list[float], passes_left: int) -> str:
    """'<= 3.1 min left': the mean pass time so far times the passes left to max_passes.

    An upper bound: a run that reaches its target accuracy stops before
    max_passes. '' before any pass is timed.
    """
    if not pass_seconds:
        return ""
    mean = sum(pass_seconds) / len(pass_seconds)
    return f"<= {fmt_duration(mean * max(passes_left, 0))} left"


def fmt_train_reading(state: dict, *, optimizer: str | None = None, pass_seconds: list[float] | None = None) -> str:
    """A pass's training accuracy for a progress line, naming the sample when it was not the whole set.

    optimizer: the optimizer's id, named with the pass's lr after the reading
    ('0.9812 · adam lr 0.001'). pass_seconds: the passes' times so far; adds
    the time left at most (`fmt_time_left`, from state's pass and max_passes).
    """
    text = f"{state['train_accuracy']:.4f}"
    if not state.get("train_whole", True):
        text += f" (sample of {state['train_checked']})"
    if optimizer is not None:
        lr = state.get("lr")
        text += f" · {optimizer}" + (f" lr {lr:.3g}" if isinstance(lr, (int, float)) else "")
    if pass_seconds is not None:
        left = fmt_time_left(pass_seconds, state["max_passes"] - state["pass"])
        if left:
            text += f" · {left}"
    return text


# A figure's scope (its entry's "scope"): unset for a claim of the paper within the
# paper's scope; BEYOND_THE_PAPER for one from a run the paper never made
# (--claims-extended); the name of another paper for a claim that paper makes, read
# from this paper's runs ("Arpit et al. (2017)"); both, joined by SCOPE_SEPARATOR,
# for another paper's claim on a run beyond this paper's scope. Every display (the
# terminal, the matrix, the report) labels a figure with its scope.
BEYOND_THE_PAPER = "beyond the paper"
PAPER_SCOPE = "paper"  # what the session export writes for a figure with no scope: not a label
SCOPE_SEPARATOR = "; "


def scope_beyond_the_paper(scope: str | None) -> str:
    """`scope` (a figure's own, or None) with BEYOND_THE_PAPER added, once."""
    if not scope or scope in (BEYOND_THE_PAPER, PAPER_SCOPE):
        return BEYOND_THE_PAPER
    parts = scope.split(SCOPE_SEPARATOR)
    return scope if BEYOND_THE_PAPER in parts else f"{scope}{SCOPE_SEPARATOR}{BEYOND_THE_PAPER}"


def figure_scope(entry: dict) -> str | None:
    """The scope label of a declared figure ("beyond the paper", "Arpit et al. (2017)", ...); None within the paper."""
    scope = entry.get("scope")
    return str(scope) if scope and scope != PAPER_SCOPE else None


def is_beyond_the_paper(entry: dict) -> bool:
    """Whether a figure comes from a run beyond the paper's scope (alone or with another scope)."""
    return BEYOND_THE_PAPER in (figure_scope(entry) or "").split(SCOPE_SEPARATOR)


def shown_figure(entry: dict) -> str:
    """A declared figure's text as shown, labelled with its scope where it has one ("... [beyond the paper]")."""
    figure = str(entry.get("figure", ""))
    scope = figure_scope(entry)
    return f"{figure} [{scope}]" if scope else figure
