"""How a method's level axis is drawn, the same on every plot of the report.

What a level means, whether its axis is logarithmic and whether a larger level is more damage
come from the method registry (:func:`degrade.methods.level_axis`); this module turns that into
matplotlib calls, so no plot names a method.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402

from degrade.methods import LevelAxis, level_axis  # noqa: E402


def axis_label(method: str) -> str:
    """The x-axis label of ``method``'s panel: what its level is, and how the axis is drawn."""
    axis = level_axis(method)
    notes = ["log scale"] * axis.log + ["reversed: larger is less damage"] * (not axis.damage_grows_with_level)
    return f"{axis.label} ({', '.join(notes)})" if notes else axis.label


def clean_apart(axis: LevelAxis) -> bool:
    """Level 0 (clean) has no place on the axis: a log axis, or the less-damage end of a reversed one.

    Such a panel draws the clean level as a horizontal reference line instead of a point.
    """
    return axis.log or not axis.damage_grows_with_level


def scale_axis(ax: plt.Axes, axis: LevelAxis, levels: Iterable[float]) -> None:
    """Log scale where the method's axis is log (each level ticked when there are few), damage growing rightwards."""
    damaged = sorted({float(v) for v in levels if v > 0})
    if axis.log and damaged:
        ax.set_xscale("log")
        if len(damaged) <= 12:  # few levels: tick each one, as the user swept it
            ticked = spread(damaged)
            ax.set_xticks(ticked, [tick_label(v) for v in ticked])
            ax.minorticks_off()
    if not axis.damage_grows_with_level:
        ax.invert_xaxis()  # damage grows rightwards on every panel


def tick_label(level: float) -> str:
    """A level as its tick on a log axis reads (and so the room the tick needs)."""
    return f"{level:g}"


def spread(levels: list[float], share: float = 0.025) -> list[float]:
    """The sorted positive ``levels`` to label on a log axis: the ends, and none crowding the one before.

    A search's probes cluster around its answer (98, 89, 84, 80; 7.772e-09, 7.985e-09, 8.203e-09);
    labelled all, their ticks run together. Two labels are kept apart by ``share`` of the axis's span
    per character of the longest label, so long labels such as bit_flip's get more room.
    """
    logs = [math.log10(v) for v in levels]
    gap = share * max(len(tick_label(v)) for v in levels) * (logs[-1] - logs[0])
    kept = [0]
    for i in range(1, len(levels)):
        if logs[i] - logs[kept[-1]] >= gap:
            kept.append(i)
    if kept[-1] != len(levels) - 1:  # both ends are always labelled: drop the one crowding the last
        kept[-1:] = [len(levels) - 1] if len(kept) > 1 else [0, len(levels) - 1]
    return [levels[i] for i in kept]
