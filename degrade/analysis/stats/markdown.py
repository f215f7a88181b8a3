"""``stats.md``: the statistics as a reader wants them, critical levels and ranking first."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from degrade.analysis.stats.effects import CONFIDENCE, THRESHOLD
from degrade.analysis.stats.measures import JUDGE_LOWER, JUDGE_PREFIX, MEASURES
from degrade.analysis.stats.table import LINE, critical_table, ranking
from degrade.search.files import Found


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table: floats to 4 significant digits, nulls empty, pipes escaped."""

    def cell(value: object) -> str:
        if value is None or value is pd.NA:
            return ""
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4g}"
        return str(value).replace("|", "\\|")

    rows = [[str(c) for c in table.columns], ["---"] * len(table.columns)]
    rows += [[cell(v) for v in row] for row in table.itertuples(index=False)]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"


def shown(table: pd.DataFrame, labels: dict) -> pd.DataFrame:
    """``table`` with the settings hash replaced by its label where jobs' settings differ, else dropped."""
    if labels:
        table = table.assign(settings=[labels.get(None if pd.isna(h) else h, "") for h in table[LINE[-1]]])
        at = table.columns.get_loc(LINE[-1])
        table = table[[*table.columns[:at], "settings", *table.columns[at + 1 : -1]]]
    return table.drop(columns=LINE[-1], errors="ignore")


def _with_interval(value: float, low: float, high: float) -> str:
    if math.isnan(value):
        return ""
    if math.isnan(low):
        return f"{value:.4g}"
    return f"{value:.4g} [{low:.4g}, {high:.4g}]"


def _searched(found: Sequence[Found]) -> list[str]:
    if not found:
        return []
    rows = pd.DataFrame(
        [(f.label, f.measure, f.threshold, f.level, f.status) for f in found],
        columns=["search", "measure", "threshold", "level", "status"],
    )
    note = "The level where the measure crossed its threshold, by bisection (each sweep's `breakpoint.md`).\n"
    return ["## Breaking points found by search\n", note, markdown_table(rows)]


def render(stats: pd.DataFrame, labels: dict, n_boot: int, seed: int, found: Sequence[Found] = ()) -> str:
    """The text of ``stats.md`` for the table :func:`degrade.analysis.stats.table.level_stats` returns.

    ``found``, the breaking points found by search, get a table of their own after the critical levels.
    """
    lower = [m.column for m in MEASURES if m.better == "lower"] + [f"{JUDGE_PREFIX}…_{f}" for f in JUDGE_LOWER]
    either = [m.column for m in MEASURES if m.better == "either"]
    parts = [
        "# Statistics\n",
        f"Per experiment, model, method, parameter group and measure. Means with {CONFIDENCE:.0%} bootstrap "
        f"intervals ({n_boot} resamples, seed {seed}: repetitions drawn with replacement, then the records "
        "within each drawn repetition). Cohen's d of every level against level 0 (pooled SD), with its "
        f"bootstrap interval. The critical level is the first level, in order of damage, where |d| ≥ {THRESHOLD}, "
        "interpolated linearly between the two levels around the crossing (in the logarithm of the level on a "
        "method whose axis is log). Spearman's ρ is of the measure against the order of damage; p is "
        "one-sided in the direction of decline.\n",
        f"Lower is better (decline is a rise): {', '.join(lower)}. No better direction (two-sided p, curve "
        f"not inverted): {', '.join(either)}. Higher is better for every other measure.\n",
        "## Critical levels\n",
        markdown_table(shown(critical_table(stats), labels)),
        *_searched(found),
        "## Vulnerability ranking\n",
        "Per model, method and group: tasks and measures, the first to break first.\n",
    ]
    ranked = shown(ranking(stats), labels)
    group = ["model_name", "degradation_method", "param_group_name"] + ["settings"] * bool(labels)
    parts.append(markdown_table(ranked[[*group, "rank", "experiment", "measure", "critical_level", "critical_how"]]))
    per_level = stats.assign(
        mean=[_with_interval(*v) for v in stats[["mean", "ci_low", "ci_high"]].itertuples(index=False)],
        d=[_with_interval(*v) for v in stats[["d", "d_ci_low", "d_ci_high"]].itertuples(index=False)],
    )
    keep = [*LINE, "measure", "level_value", "n", "n_rep", "mean", "d", "normalised"]
    parts += ["## Per level\n", "Mean [95 % interval] and d [95 % interval].\n"]
    parts.append(markdown_table(shown(per_level[keep], labels)))
    return "\n".join(parts)
