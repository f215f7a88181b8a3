"""Every method on one axis: each measure against the relative weight error its damage did (``weight_error.png``).

A level means something else for every method (σ, p, n, bits), so the per-level plots cannot put two
methods side by side. Every record carries what its cell's damage did to the weights
(:mod:`degrade.model.weight_error`), so here each line is a method (and group) drawn against
``weight_rel_error``, ‖W′ − W‖ / ‖W‖, on a log axis: methods compare at equal damage. A point is a level:
its measure's mean over repetitions (± standard error) against its mean relative error; the clean level
(error 0, with no place on a log axis) is a dashed reference line. Lines whose weights never changed
(``activation_noise`` damages outputs, not weights) and cells whose error is null (a NaN or infinite
weight) have no point.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from degrade.analysis.settings import LINE, settings_label, split_settings, with_settings  # noqa: E402
from degrade.methods import level_axis  # noqa: E402
from degrade.scoring.measures import BY_COLUMN  # noqa: E402

log = logging.getLogger(__name__)

X = "weight_rel_error"
FILE = "weight_error.png"
# The measures drawn, where records hold them: the report's per-level plots' own
MEASURES = ("correct", "repetition_rate", "mattr", "tokens_out", "info_units", "perplexity", "kl_to_clean")
MEASURES += ("top1_agreement", "acc_norm")
COLUMNS = 3


def points(df: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Per line and level: the mean relative error, the measure's mean over repetitions, its standard error.

    Returns:
        Columns of :data:`LINE`, level_value, error, mean, sem (NaN with one repetition), in each line's
        order of damage (the method registry's).
    """
    df = with_settings(df)
    cells = df.groupby([*LINE, "level_value", "repeat_index"], dropna=False, sort=False)[[X, measure]].mean()
    per_level = cells.reset_index().groupby([*LINE, "level_value"], dropna=False, sort=False)
    out = per_level.agg(error=(X, "mean"), mean=(measure, "mean"), sem=(measure, "sem"), reps=(measure, "count"))
    out = out.reset_index()
    out.loc[out["reps"] < 2, "sem"] = float("nan")
    order = [level_axis(m).damage_order(v) for m, v in zip(out["degradation_method"], out["level_value"])]
    return out.assign(_order=order).sort_values("_order", kind="stable").drop(columns=["_order", "reps"])


def drawable(df: pd.DataFrame) -> bool:
    """Whether any record holds a positive relative error: a damaged cell to place on the axis."""
    return X in df and bool((pd.to_numeric(df[X], errors="coerce") > 0).any())


def figure(df: pd.DataFrame, settings: dict[str, dict] | None = None) -> plt.Figure:
    """A panel per measure the records hold, a line per method and group against the relative weight error."""
    measures = [m for m in MEASURES if m in df and pd.to_numeric(df[m], errors="coerce").notna().any()]
    labels, _ = split_settings(df, settings)
    naming = [c for c in ("experiment", "model_name") if df[c].nunique() > 1]
    rows = -(-len(measures) // COLUMNS)
    cols = min(len(measures), COLUMNS)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    for ax, measure in zip(axes.flat, measures):
        for key, line in points(df, measure).groupby(LINE, dropna=False, sort=False):
            named = dict(zip(LINE, key))
            damaged = line[line["error"] > 0]
            if damaged.empty:
                continue
            parts = [str(named[c]) for c in (*naming, "degradation_method", "param_group_name")]
            label = " / ".join([*parts, settings_label(labels, named[LINE[-1]])]).removesuffix(" / ")
            x, y, err = damaged["error"], damaged["mean"], damaged["sem"]
            drawn = ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
            for value in line.loc[line["level_value"] == 0, "mean"]:
                ax.axhline(value, linestyle="--", color=drawn[0].get_color(), alpha=0.6)
        ax.set_xscale("log")
        ax.set_xlabel("relative weight error ‖W′−W‖/‖W‖ (log scale)")
        ax.set_ylabel(f"{BY_COLUMN[measure].label}\n(mean ± s.e. over repetitions)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(measures) :]:
        ax.set_visible(False)
    fig.suptitle("Each measure against the damage done to the weights (dashed: the clean level)")
    fig.tight_layout()
    return fig


def write_damage_axis(df: pd.DataFrame, out_dir: Path, settings: dict[str, dict] | None = None) -> list[Path]:
    """``weight_error.png`` in ``out_dir`` when a record holds a damaged cell's error; the paths written."""
    if not drawable(df):
        log.info("no %s: no record holds a relative weight error above 0", FILE)
        return []
    fig = figure(df, settings)
    path = Path(out_dir) / FILE
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
