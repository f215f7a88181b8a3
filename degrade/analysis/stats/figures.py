"""The statistics' figures, one page per experiment.

``breaking_<experiment>.png``: every measure (rows) against the level for every method
(columns), a line per group, mean with its bootstrap interval, the critical level marked, and where a
breaking-point search ran on those jobs, its answer marked on its threshold.
``normalised_<experiment>.png``: a panel per method and group, every measure min–max normalised
(up is better, measures where lower is better inverted), the |d| = 0.8 crossings marked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from degrade.analysis.plots import axis_label, clean_apart, scale_axis
from degrade.analysis.stats.measures import MEASURES, judge_measure
from degrade.analysis.stats.table import LINE
from degrade.methods import LevelAxis, level_axis
from degrade.search.files import Found

LABELS = {m.column: m.label for m in MEASURES}
CLEAN = "\ndashed: level 0 (clean), where the axis has no place for it (log, or larger is less damage)"


def _clean_note(methods) -> str:
    return CLEAN if any(clean_apart(level_axis(m)) for m in set(methods)) else ""


def label_of(measure: str) -> str:
    """A measure's name on a plot."""
    return LABELS.get(measure) or judge_measure(measure).label


def file_stem(experiment: str) -> str:
    """An experiment's name as a file name part."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", str(experiment)).strip("-") or "experiment"


def _line_name(named: dict, naming: list[str], labels: dict) -> str:
    parts = [str(named[c]) for c in naming]
    settings = labels.get(named[LINE[-1]]) if labels else None
    return " / ".join(parts + [settings] * bool(settings))


def _draw(
    ax: plt.Axes, line: pd.DataFrame, axis: LevelAxis, y: str, label: str, band: bool, colour: str | None = None
) -> str:
    """One curve; level 0 as a reference line where the axis has no place for it. Returns its colour."""
    clean = line[line["level_value"] == 0] if clean_apart(axis) else line.iloc[:0]
    points = line.drop(index=clean.index)
    yerr = None
    if band:
        yerr = np.vstack([points[y] - points["ci_low"], points["ci_high"] - points[y]]).clip(min=0)
        yerr = np.nan_to_num(yerr)
    drawn = ax.errorbar(
        points["level_value"], points[y], yerr=yerr, marker="o", ms=3, capsize=2, label=label, color=colour
    )
    colour = drawn[0].get_color()
    for value in clean[y]:
        ax.axhline(value, linestyle="--", color=colour, alpha=0.6)
    return colour


def _mark(ax: plt.Axes, line: pd.DataFrame, axis: LevelAxis, y: str, colour: str) -> None:
    """The critical level: a dotted vertical line and a cross on the curve."""
    critical = line["critical_level"].iloc[0]
    if math.isnan(critical):
        return
    points = line[line["level_value"] > 0].sort_values("level_value")
    to_axis = np.log if axis.log else (lambda v: np.asarray(v, dtype=float))
    xs = line.sort_values("level_value")["level_value"] if not clean_apart(axis) else points["level_value"]
    ys = line.set_index("level_value").loc[xs, y]
    height = np.interp(to_axis(critical), to_axis(xs.to_numpy(float)), ys.to_numpy(float))
    ax.axvline(critical, linestyle=":", color=colour, alpha=0.8)
    ax.plot([critical], [height], marker="X", ms=9, color=colour, markeredgecolor="black", zorder=5)


def _mark_found(ax: plt.Axes, found: Found, colour: str) -> None:
    """A search's answer: a diamond at its level on its threshold, the threshold a faint dotted line."""
    ax.axhline(found.threshold, linestyle=(0, (1, 3)), color=colour, alpha=0.6, linewidth=1)
    ax.plot(
        [found.level], [found.threshold], marker="D", ms=7, color=colour, markeredgecolor="black", zorder=6, ls="none"
    )


def breaking_figure(
    stats: pd.DataFrame, experiment: str, labels: dict | None = None, found: Sequence[Found] = ()
) -> plt.Figure:
    """Every measure against the level, a column per method, the critical levels and searches' answers marked.

    ``found``: breaking points found by search (:func:`degrade.search.files.read_answers`); each
    is drawn on the line of the jobs that share its settings hash, in the panel of its measure.
    """
    part = stats[stats["experiment"] == experiment]
    measures = list(dict.fromkeys(part["measure"]))
    methods = list(dict.fromkeys(part["degradation_method"]))
    naming = [c for c in ("model_name",) if part[c].nunique() > 1] + ["param_group_name"]
    fig, axes = plt.subplots(
        len(measures),
        len(methods),
        figsize=(max(4.8 * len(methods), 9), 3.2 * len(measures) + 0.6),
        squeeze=False,
        layout="constrained",  # leaves room for the page title above the panels' own titles
    )
    colours: dict[str, str] = {}  # one colour per group across the page
    searched = False
    for col, method in enumerate(methods):
        axis = level_axis(method)
        for row, measure in enumerate(measures):
            ax = axes[row][col]
            cell = part[(part["degradation_method"] == method) & (part["measure"] == measure)]
            for key, line in cell.groupby(LINE, dropna=False, sort=False):
                name = _line_name(dict(zip(LINE, key)), naming, labels or {})
                colour = colours.setdefault(name, f"C{len(colours)}")
                _draw(ax, line, axis, "mean", name, band=True, colour=colour)
                _mark(ax, line, axis, "mean", colour)
                for answer in found:
                    if (answer.settings_hash, answer.measure) == (key[-1], measure):
                        _mark_found(ax, answer, colour)
                        searched = True
            scale_axis(ax, axis, cell["level_value"])
            ax.set_title(f"{method}: {label_of(measure)}", fontsize="medium")
            ax.set_ylabel(label_of(measure))
            ax.grid(alpha=0.3)
            if row == len(measures) - 1:
                ax.set_xlabel(axis_label(method), fontsize="small")
            if row == 0 and len(ax.get_legend_handles_labels()[0]):
                ax.legend(fontsize="small")
    title = f"{experiment}: mean ± 95 % CI per level; X = critical level (d reaches 0.8 against level 0: stats.md)"
    if searched:
        title += "\n◆ = breaking point found by search (breakpoint.json), on its threshold (dotted)"
    fig.suptitle(title + _clean_note(methods), fontsize="medium")
    return fig


def normalised_figure(stats: pd.DataFrame, experiment: str, labels: dict | None = None) -> plt.Figure:
    """Min–max normalised curves of every measure, a panel per method and group, crossings marked."""
    part = stats[stats["experiment"] == experiment]
    panels = list(part.groupby(LINE, dropna=False, sort=False))
    naming = [c for c in ("model_name",) if part[c].nunique() > 1] + ["degradation_method", "param_group_name"]
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(max(5.2 * cols, 9), 3.8 * rows + 0.6), squeeze=False, layout="constrained"
    )
    colours: dict[str, str] = {}  # one colour per measure across the page
    for ax, (key, panel) in zip(axes.flat, panels):
        named = dict(zip(LINE, key))
        axis = level_axis(named["degradation_method"])
        for measure, line in panel.groupby("measure", sort=False):
            if line["normalised"].isna().all():
                continue  # a measure that never moves has no normalised curve
            colour = colours.setdefault(measure, f"C{len(colours)}")
            _draw(ax, line, axis, "normalised", label_of(measure), band=False, colour=colour)
            _mark(ax, line, axis, "normalised", colour)
        scale_axis(ax, axis, panel["level_value"])
        ax.set_title(_line_name(named, naming, labels or {}), fontsize="medium")
        ax.set_xlabel(axis_label(named["degradation_method"]), fontsize="small")
        ax.set_ylabel("normalised (1 = best level)")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    title = f"{experiment}: min–max normalised, lower-is-better inverted; X = d reaches 0.8 (as stats.md says)"
    fig.suptitle(title + _clean_note(part["degradation_method"]), fontsize="medium")
    return fig
