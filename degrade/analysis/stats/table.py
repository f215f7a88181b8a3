"""The statistics table: per line (experiment, model, method, group, settings), measure and level.

One row per level with its mean and bootstrap interval, Cohen's d against level 0 and its
interval, and the min–max normalised mean; the line's critical level and Spearman test repeat
on each of its rows, so the CSV stays one tidy table.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pandas as pd

from degrade.analysis.stats.analysis import ANALYSES, Analysis, damage_effect
from degrade.analysis.stats.baseline import BASELINE, with_baselines
from degrade.analysis.stats.effects import (
    N_BOOT,
    cohens_d,
    cohens_d_array,
    critical_level,
    interval,
    nested_bootstrap,
    spearman_decline,
    spearman_of_means,
)
from degrade.analysis.stats.measures import Measure, measures_in, values
from degrade.methods import LevelAxis, level_axis

SETTINGS = "settings_hash"
LINE = ["experiment", "model_name", "degradation_method", "param_group_name", SETTINGS]
LEVEL_COLUMNS = ["n", "n_rep", "mean", "ci_low", "ci_high", "sd", "d", "d_ci_low", "d_ci_high", "normalised"]
PER_LINE = ["critical_level", "critical_how", "spearman_rho", "spearman_p", BASELINE]


def line_key(named: dict[str, Any]) -> tuple:
    """A line's key with nulls as None (pandas groups a None key as NaN)."""
    return tuple(None if pd.isna(named[c]) else named[c] for c in LINE)


def level_stats(
    df: pd.DataFrame, *, seed: int = 0, n_boot: int = N_BOOT, how: Analysis = ANALYSES["default"]
) -> pd.DataFrame:
    """The statistics of every measure the records hold, per line and level.

    A line without level 0 is measured against a shared clean job of the same model, prompts and
    decoding where the records hold one (:func:`degrade.analysis.stats.baseline.with_baselines`).

    Args:
        df: Records, as :func:`degrade.records.collect.collect` returns them (a ``settings_hash``
            column is optional: without it every method and group is one line).
        seed: Seeds the bootstrap; each (line, measure) draws from its own stream, so a table
            does not change when another line is added.
        n_boot: Bootstrap resamples per level.
        how: The analysis (:data:`degrade.analysis.stats.analysis.ANALYSES`): how d is signed, where the
            crossing is interpolated, what the trend test is over.

    Returns:
        Columns ``LINE``, measure, better, level_value, n, n_rep, mean, ci_low, ci_high, sd, d,
        d_ci_low, d_ci_high, normalised, critical_level, critical_how, spearman_rho, spearman_p and
        baseline (the job dir whose clean records served as level 0; empty for the line's own);
        levels in the method's order of damage, level 0 (clean) first.
    """
    if SETTINGS not in df:
        df = df.assign(**{SETTINGS: None})
    df = with_baselines(df, LINE)
    rows: list[dict[str, Any]] = []
    for key, line in df.groupby(LINE, dropna=False, sort=False):
        named = dict(zip(LINE, line_key(dict(zip(LINE, key)))))
        axis = level_axis(named["degradation_method"])
        baseline = next((b for b in line[BASELINE] if b), "")
        for measure in measures_in(line):
            stream = zlib.crc32(repr((*named.values(), measure.column)).encode())
            rng = np.random.default_rng([seed, stream])
            made = _measure_rows(line, measure, axis, rng, n_boot, how)
            rows += [{**named, **row, BASELINE: baseline} for row in made]
    return pd.DataFrame(rows, columns=[*LINE, "measure", "better", "level_value", *LEVEL_COLUMNS, *PER_LINE])


def _measure_rows(
    line: pd.DataFrame, measure: Measure, axis: LevelAxis, rng: np.random.Generator, n_boot: int, how: Analysis
) -> list[dict[str, Any]]:
    frame = pd.DataFrame(
        {"level": line["level_value"].to_numpy(), "rep": line["repeat_index"].to_numpy(), "v": values(line, measure)}
    ).dropna(subset=["v"])
    if measure.per_level:  # one value per level, repeated on every record: a single sample of it
        frame = frame.drop_duplicates("level").assign(rep=0)
    levels = sorted(frame["level"].unique(), key=axis.damage_order)
    rows, draws = [], {}
    for level in levels:
        cell = frame[frame["level"] == level]
        draws[level] = nested_bootstrap(cell["v"].to_numpy(), cell["rep"].to_numpy(), rng, n_boot)
        v = cell["v"].to_numpy()
        low, high = interval(draws[level].mean)
        sd = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
        row = {"level_value": float(level), "n": len(v), "n_rep": cell["rep"].nunique(), "mean": float(v.mean())}
        rows.append({**row, "ci_low": low, "ci_high": high, "sd": sd})
    clean = next((r for r in rows if r["level_value"] == 0), None)
    for row in rows:
        row.update(_effect(row, clean, draws, measure, how))
    effects = [r["d"] for r in rows]
    critical, found = critical_level(
        [r["level_value"] for r in rows], effects, axis, signed=how.damage_signed, log_crossing=how.log_crossing
    )
    if measure.per_level:
        found = "one value per level (no spread)"
    if [r["level_value"] for r in rows] == [0.0]:
        found = "clean only"  # a degradation=none job: a baseline, nothing to break
    rank = {level: i for i, level in enumerate(levels)}
    if how.trend_of_means:
        ranks = np.arange(len(rows), dtype=float)  # rows come in the order of damage
        rho, p = spearman_of_means(ranks, np.array([r["mean"] for r in rows]), measure.better)
    else:
        rho, p = spearman_decline(frame["level"].map(rank).to_numpy(float), frame["v"].to_numpy(), measure.better)
    means = np.array([r["mean"] for r in rows])
    spread = means.max() - means.min()
    normalised = (means - means.min()) / spread if spread > 0 else np.full(len(means), np.nan)
    if measure.better == "lower":
        normalised = 1 - normalised  # up is better on every normalised curve
    common = {"critical_level": critical, "critical_how": found, "spearman_rho": rho, "spearman_p": p}
    return [
        {"measure": measure.column, "better": measure.better, **row, "normalised": float(x), **common}
        for row, x in zip(rows, normalised)
    ]


def _effect(
    row: dict[str, Any], clean: dict[str, Any] | None, draws: dict, measure: Measure, how: Analysis
) -> dict[str, float]:
    """d of a level against the clean one, with its bootstrap interval; pointing the way of damage in ``study``."""
    if clean is None:
        return {"d": math.nan, "d_ci_low": math.nan, "d_ci_high": math.nan}
    if row is clean:
        return {"d": 0.0, "d_ci_low": math.nan, "d_ci_high": math.nan}
    d = cohens_d(row["mean"], row["sd"], row["n"], clean["mean"], clean["sd"], clean["n"])
    mine, base = draws[row["level_value"]], draws[0.0]
    boot = cohens_d_array(mine.mean, mine.sd, mine.n, base.mean, base.sd, base.n)
    if how.damage_signed:
        d, boot = float(damage_effect(d, measure.better)), damage_effect(boot, measure.better)
    low, high = interval(boot)
    return {"d": d, "d_ci_low": low, "d_ci_high": high}


def critical_table(stats: pd.DataFrame) -> pd.DataFrame:
    """One row per line and measure: its critical level, how it was found, and the Spearman test."""
    keep = [*LINE, "measure", "better", *PER_LINE]
    return stats[keep].drop_duplicates([*LINE, "measure"]).reset_index(drop=True)


def ranking(stats: pd.DataFrame, labels: dict | None = None, *, per_experiment: bool = False) -> pd.DataFrame:
    """The vulnerability ranking: per model, method and group, the (experiment, measure) pairs ordered by
    critical level, the first to break first; those never reaching it last.

    The tasks are ranked together, as the thesis ranked them: jobs of different experiments have
    different settings hashes (their prompts differ), so the ranking goes by the settings' label
    instead, which tells apart only jobs of one experiment whose settings differ.

    Args:
        stats: :func:`level_stats`'s table.
        labels: ``{settings_hash: label}`` of jobs whose settings differ (none: every job alike).
        per_experiment: Rank each experiment's measures apart instead.

    Returns:
        The critical table with a ``rank`` column (1 = most vulnerable; equal levels share a rank;
        null when not reached).
    """
    table = critical_table(stats)
    table = table[table["critical_how"] != "clean only"]  # a clean job has no place in a ranking of damage
    order = [
        level_axis(m).damage_order(c) if not math.isnan(c) else math.inf
        for m, c in zip(table["degradation_method"], table["critical_level"])
    ]
    labels = labels or {}
    settings = [labels.get(None if pd.isna(h) else h, "") for h in table[SETTINGS]]
    table = table.assign(_order=order, _settings=settings)
    by = ["experiment"] * per_experiment + ["model_name", "degradation_method", "param_group_name", "_settings"]
    parts = []
    for _, part in table.groupby(by, dropna=False, sort=False):
        part = part.sort_values("_order", kind="stable")
        ranks = part["_order"].rank(method="min")  # equal critical levels share a rank
        parts.append(
            part.assign(
                rank=pd.array([int(r) if o < math.inf else None for r, o in zip(ranks, part["_order"])], dtype="Int64")
            )
        )
    if not parts:  # nothing but clean jobs
        return table.drop(columns=["_order", "_settings"]).assign(rank=pd.array([], dtype="Int64"))
    return pd.concat(parts).drop(columns=["_order", "_settings"]).reset_index(drop=True)
