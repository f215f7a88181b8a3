"""``stats.md``: the statistics as a reader wants them, critical levels and ranking first."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from degrade.analysis.stats.analysis import ANALYSES, UNIT_OF_D, Analysis
from degrade.analysis.stats.baseline import BASELINE
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


def _baselines(stats: pd.DataFrame, labels: dict) -> list[str]:
    """The lines measured against another job's clean records, and which job served."""
    borrowed = stats[stats[BASELINE].fillna("") != ""].drop_duplicates(LINE)
    if borrowed.empty:
        return []
    rows = shown(borrowed[[*LINE, BASELINE]], labels).rename(columns={BASELINE: "clean level 0 from"})
    note = (
        "These lines have no level 0 of their own; each is measured against the level-0 records of a clean job of "
        "the same model, prompts and decoding (a `degradation=none` job first, else level 0 of another job).\n"
    )
    return ["## Shared clean baselines\n", note, markdown_table(rows)]


def _rankings(stats: pd.DataFrame, labels: dict) -> list[str]:
    group = ["model_name", "degradation_method", "param_group_name"] + ["settings"] * bool(labels)
    columns = ["rank", "experiment", "measure", "critical_level", "critical_how"]
    joint = shown(ranking(stats, labels), labels)
    apart = shown(ranking(stats, labels, per_experiment=True), labels)
    return [
        "## Vulnerability ranking\n",
        "Per model, method and group: every task's measures ranked together, the first to break first.\n",
        markdown_table(joint[[*group, *columns]]),
        "## Vulnerability ranking per experiment\n",
        "Per experiment, model, method and group: its measures, the first to break first.\n",
        markdown_table(apart[["experiment", *group, *[c for c in columns if c != "experiment"]]]),
    ]


def render(
    stats: pd.DataFrame,
    labels: dict,
    n_boot: int,
    seed: int,
    found: Sequence[Found] = (),
    how: Analysis = ANALYSES["default"],
) -> str:
    """The text of ``stats.md`` for the table :func:`degrade.analysis.stats.table.level_stats` returns.

    It opens with which analysis it is (``how``); ``found``, the breaking points found by search, get a
    table of their own after the critical levels; lines measured against a shared clean job say which.
    """
    lower = [m.column for m in MEASURES if m.better == "lower"] + [f"{JUDGE_PREFIX}…_{f}" for f in JUDGE_LOWER]
    either = [m.column for m in MEASURES if m.better == "either"]
    d_is = (
        "d points the way of damage (positive: the measure declined)"
        if how.damage_signed
        else "d is (M_level − M_clean) / SD_pooled"
    )
    parts = [
        "# Statistics\n",
        how.summary + "\n",
        f"Per experiment, model, method, parameter group and measure. Means with {CONFIDENCE:.0%} bootstrap "
        f"intervals ({n_boot} resamples, seed {seed}: repetitions drawn with replacement, then the records "
        f"within each drawn repetition). Cohen's d of every level against level 0 (pooled SD), with its "
        f"bootstrap interval; {d_is}. The critical level is the first level, in order of damage, where the "
        f"effect reaches {THRESHOLD}. Spearman's p is one-sided in the direction of decline. {UNIT_OF_D}\n",
        f"Lower is better (decline is a rise): {', '.join(lower)}. No better direction (two-sided p, curve "
        f"not inverted): {', '.join(either)}. Higher is better for every other measure.\n",
        "## Critical levels\n",
        markdown_table(shown(critical_table(stats).drop(columns=BASELINE), labels)),
        *_baselines(stats, labels),
        *_searched(found),
        *_rankings(stats, labels),
    ]
    per_level = stats.assign(
        mean=[_with_interval(*v) for v in stats[["mean", "ci_low", "ci_high"]].itertuples(index=False)],
        d=[_with_interval(*v) for v in stats[["d", "d_ci_low", "d_ci_high"]].itertuples(index=False)],
    )
    keep = [*LINE, "measure", "level_value", "n", "n_rep", "mean", "d", "normalised"]
    parts += ["## Per level\n", "Mean [95 % interval] and d [95 % interval].\n"]
    parts.append(markdown_table(shown(per_level[keep], labels)))
    return "\n".join(parts)
