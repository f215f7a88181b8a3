"""The analysis report: a summary table, plots and the statistics of every record under a run or sweep dir.

Jobs write only inside their own dirs; :mod:`degrade.records.collect` gathers their records and this
module aggregates them. What a method's level means, how its axis is drawn and in which order
its levels damage more comes from the method registry (:func:`degrade.methods.level_axis`),
so the report names no method. The study's statistics (effect sizes, critical levels, trends) are
:mod:`degrade.analysis.stats`'s, written beside the summary.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from degrade.analysis.browse import missing_baselines, write_page  # noqa: E402
from degrade.analysis.damage_axis import write_damage_axis  # noqa: E402
from degrade.analysis.layermap import write_layer_maps  # noqa: E402
from degrade.analysis.plots import axis_label, clean_apart, scale_axis  # noqa: E402
from degrade.analysis.settings import LINE, settings_key, settings_label, split_settings, with_settings  # noqa: E402
from degrade.analysis.stats import analysis, write_stats  # noqa: E402
from degrade.analysis.stats.markdown import markdown_table  # noqa: E402
from degrade.judge.frame import add_judgments, agreement  # noqa: E402
from degrade.methods import LevelAxis, level_axis  # noqa: E402
from degrade.records.collect import SETTINGS, collect, read_settings, sources  # noqa: E402
from degrade.records.contract import SCHEMA  # noqa: E402
from degrade.search.files import read_answers  # noqa: E402

log = logging.getLogger(__name__)

ALL_RECORDS = "all_records.parquet"  # not records.parquet: a sweep's */records.parquet glob must not match it
GROUP = [*LINE, "level_value"]
CORE = ("tokens_out", "mattr", "repetition_rate")  # the metrics every record has (mattr: when long enough)
ASKED = ("kl_to_clean", "top1_agreement", "acc_norm")  # with experiment.fidelity.enabled, experiment=lm_eval


def summarize(df: pd.DataFrame, settings: dict[str, dict] | None = None) -> pd.DataFrame:
    """One row per (experiment, model, method, param group, settings, level): counts and mean scores.

    Columns: n (records), n_rep (distinct repetitions), tokens_out, accuracy (mean of the
    non-null ``correct``; NaN when none), ``accuracy_<category>`` per prompt category with
    scored items, mattr, repetition_rate, and info_units / perplexity / weight_rel_error (the mean of the
    level's cells) when any record has them.
    Records of one (experiment, model, method, group) whose settings differ are not pooled:
    a ``settings`` column names what differs, and one log line says so.

    Args:
        df: Records, as :func:`collect` returns them.
        settings: ``{settings_hash: settings}``, as :func:`read_settings` returns them.

    Returns:
        The summary, in damage order within each line (the method registry's order).
    """
    df = with_settings(df)
    scored = df[df["correct"].notna()]
    categories = sorted(scored["prompt_category"].dropna().unique())
    grouped = df.groupby(GROUP, sort=False, dropna=False)
    out = grouped.agg(
        n=("prompt_id", "size"),
        n_rep=("repeat_index", "nunique"),
        tokens_out=("tokens_out", "mean"),
        accuracy=("correct", "mean"),
        mattr=("mattr", "mean"),
        repetition_rate=("repetition_rate", "mean"),
    )
    for category in categories:
        by_cell = scored[scored["prompt_category"] == category].groupby(GROUP, dropna=False)["correct"].mean()
        out[f"accuracy_{category}"] = by_cell
    for column in ("info_units", "perplexity", *ASKED, "weight_rel_error"):
        if column in df and df[column].notna().any():
            out[column] = grouped[column].mean()
    out = out.reset_index()
    # Settings in the order their jobs come (job-dir order), levels in the method's order of damage.
    first = {h: i for i, h in enumerate(dict.fromkeys(df[SETTINGS]))}
    order = [level_axis(m).damage_order(v) for m, v in zip(out["degradation_method"], out["level_value"])]
    out = out.assign(_first=[first[settings_key(h)] for h in out[SETTINGS]], _order=order)
    out = out.sort_values([*LINE[:-1], "_first", "_order"], kind="stable").drop(columns=["_first", "_order"])
    labels, differences = split_settings(df, settings)
    if labels:
        log.warning("settings differ between jobs: %s; the table splits them (column settings)", differences)
        out.insert(len(LINE) - 1, "settings", [settings_label(labels, h) for h in out[SETTINGS]])
    return out.drop(columns=SETTINGS).reset_index(drop=True)


def repetition_stats(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean ± standard error over repetitions of each repetition's mean of ``metric``, per line and level.

    Returns:
        Columns experiment, model_name, degradation_method, param_group_name, settings_hash,
        level_value, mean, sem (NaN with a single repetition) and count (repetitions).
    """
    # sort=False: lines come in the order of their records (job-dir order), as in the table.
    reps = with_settings(df).groupby([*GROUP, "repeat_index"], dropna=False, sort=False)[metric].mean()
    stats = reps.dropna().reset_index().groupby(GROUP, dropna=False, sort=False)[metric]
    stats = stats.agg(["mean", "sem", "count"]).reset_index()
    stats.loc[stats["count"] < 2, "sem"] = float("nan")  # one repetition: no spread to show
    return stats


def figure(df: pd.DataFrame, metric: str, settings: dict[str, dict] | None = None) -> plt.Figure:
    """``metric`` against level: a panel per method (that has the metric), a line per group and settings.

    Args:
        df: Records, as :func:`collect` returns them.
        metric: A numeric record column.
        settings: ``{settings_hash: settings}``, as :func:`read_settings` returns them.

    Returns:
        The figure (the caller saves and closes it).
    """
    stats = repetition_stats(df, metric)
    labels, _ = split_settings(df, settings)
    # Name a line by what varies: the group always, experiment and model only when there are several.
    naming = [c for c in ("experiment", "model_name") if df[c].nunique() > 1] + ["param_group_name"]
    methods = [m for m in dict.fromkeys(df["degradation_method"]) if m in set(stats["degradation_method"])]
    fig, axes = plt.subplots(1, len(methods), figsize=(5 * len(methods), 4), sharey=True, squeeze=False)
    for ax, method in zip(axes[0], methods):
        axis = level_axis(method)
        for key, line in stats[stats["degradation_method"] == method].groupby(LINE, dropna=False, sort=False):
            named = dict(zip(LINE, key))
            parts = [str(named[c]) for c in naming] + [settings_label(labels, named[SETTINGS])]
            label = " / ".join(parts).removesuffix(" / ")
            _draw(ax, line.sort_values("level_value"), axis, label)
        scale_axis(ax, axis, stats.loc[stats["degradation_method"] == method, "level_value"])
        ax.set_title(method)
        ax.set_xlabel(axis_label(method))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    # two lines: a long measure name (judge_language_syntactic_complexity) would not fit the panel's height
    axes[0][0].set_ylabel(f"{'accuracy' if metric == 'correct' else metric}\n(mean ± s.e. over repetitions)")
    fig.tight_layout()
    return fig


def _draw(ax: plt.Axes, line: pd.DataFrame, axis: LevelAxis, label: str) -> None:
    clean = line[line["level_value"] == 0] if clean_apart(axis) else line.iloc[:0]
    points = line.drop(index=clean.index)
    drawn = ax.errorbar(points["level_value"], points["mean"], yerr=points["sem"], marker="o", capsize=3, label=label)
    for value in clean["mean"]:
        ax.axhline(value, linestyle="--", color=drawn[0].get_color(), alpha=0.6, label=f"{label} (clean, level 0)")


def plot(df: pd.DataFrame, out_dir: Path, settings: dict[str, dict] | None = None) -> list[Path]:
    """One PNG per metric against level (see :func:`figure`).

    Args:
        df: Records, as :func:`collect` returns them.
        out_dir: Where the PNGs go (created if missing).
        settings: ``{settings_hash: settings}``, as :func:`read_settings` returns them.

    Returns:
        The PNG paths written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Accuracy, information units and perplexity exist for some experiments only; the others for every
    # record, except mattr, null for an output shorter than its window.
    judged = [c for c in df.columns if c.startswith("judge_") and pd.api.types.is_numeric_dtype(df[c])]
    optional = ("correct", "info_units", "perplexity", *ASKED)
    metrics = [m for m in (*CORE, *optional, *judged) if m in df and df[m].notna().any()]
    if set(CORE) - set(metrics):
        log.info("no %s plot: no record has a value", " or ".join(m for m in CORE if m not in metrics))
    written = []
    for metric in metrics:
        fig = figure(df, metric, settings)
        path = out_dir / f"{'accuracy' if metric == 'correct' else metric}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def judge_agreement(df: pd.DataFrame) -> str:
    """A paragraph on how far the judge's answer-correct agrees with the rule-based ``correct`` (or nothing)."""
    result = agreement(df)
    if not result["n"]:
        return ""
    kappa = "undefined (one label only)" if result["kappa"] is None else f"{result['kappa']:.2f}"
    return (
        f"\n\nJudge agreement (rubric reasoning, answer_correct against `correct`): Cohen's kappa {kappa} on "
        f"{result['n']} records, observed {result['observed']:.0%} against chance {result['expected']:.0%}; "
        f"{result['failed']} judgments failed.\n"
    )


def write_report(
    root: Path | Sequence[Path],
    out_dir: Path | None = None,
    *,
    stats: str = "default",
    legacy_models: dict[str, str] | None = None,
) -> dict[str, Path | list[Path]]:
    """Collect, summarise, plot and analyse every record under ``root``.

    Args:
        root: A job, run or sweep dir, or what else :func:`degrade.records.collect.collect` reads (result
            files, several paths).
        out_dir: Where the report goes; ``root/report`` by default (required for several paths).
        stats: The analysis, ``default`` or the thesis's ``study`` (:mod:`degrade.analysis.stats.analysis`).
        legacy_models: The model of the study's records whose ``model_name`` is a local path
            (:func:`degrade.records.collect.collect`).

    Returns:
        ``{"records": ..., "summary_csv": ..., "summary_md": ..., "plots": [...]}`` and the statistics'
        ``{"stats_csv": ..., "stats_md": ..., "stats_plots": [...]}`` (:func:`degrade.analysis.stats.write_stats`),
        the paths written; ``plots`` lists every PNG, the statistics' pages included.

    Raises:
        DegradeError: ``root`` is not a directory or holds no records.
    """
    root = Path(root) if isinstance(root, str) else root
    how = analysis(stats)
    records = collect(root, legacy_models=legacy_models)
    records = add_judgments(records, root)  # a judge's ratings, where scripts/judge.py has run, in any path given
    judged = [c for c in records.columns if c.startswith("judge_") and pd.api.types.is_numeric_dtype(records[c])]
    records[judged] = records[judged].astype("float64")  # NaN, not pd.NA, for the statistics and the plots
    settings = read_settings(root, records)
    out_dir = Path(out_dir) if out_dir is not None else Path(root) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(records, settings)
    paths: dict[str, Path | list[Path]] = {
        "records": out_dir / ALL_RECORDS,
        "summary_csv": out_dir / "summary.csv",
        "summary_md": out_dir / "summary.md",
    }
    # The pinned schema again: pandas would turn nullable ints into floats and all-null lists into nulls.
    schema = SCHEMA if SETTINGS in SCHEMA.names else SCHEMA.append(pa.field(SETTINGS, pa.string()))
    schema = schema.append(pa.field("job_dir", pa.string()))
    pq.write_table(pa.Table.from_pandas(records[schema.names], schema=schema, preserve_index=False), paths["records"])
    summary.to_csv(paths["summary_csv"], index=False)
    paths["summary_md"].write_text(markdown_table(summary) + judge_agreement(records), encoding="utf-8")
    found = read_answers(sources(root))  # breaking points where a bisect sweep ran
    paths.update(write_stats(records, out_dir, split_settings(records, settings)[0], found=found, how=how))
    layer_maps = write_layer_maps(records, out_dir, settings)  # where the jobs damaged one layer range each
    on_one_axis = write_damage_axis(records, out_dir, settings)  # every method against the weights' relative error
    paths["plots"] = plot(records, out_dir, settings) + on_one_axis + paths["stats_plots"] + layer_maps  # every PNG
    split_line = split_settings(records, settings)[1]
    paths["page"] = write_page(
        records,
        out_dir,
        summary=summary,
        stats_md=Path(paths["stats_md"]).read_text(encoding="utf-8") if Path(paths["stats_md"]).exists() else None,
        settings=settings,
        warnings=[line for line in [split_line] if line] + missing_baselines(records),
        figures=paths["plots"],
    )
    log.info("report: %d records from %d job dirs → %s", len(records), records["job_dir"].nunique(), out_dir)
    return paths
