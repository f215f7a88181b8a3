"""Where damage bites: each measure as a heatmap of layer × level, and the layers ranked by the damage they take.

A layer map is a sweep whose jobs damage one layer, or one block of layers, each
(``--multirun 'param_group.layer=range(0,30)'``, see docs/sweeps.md): the same experiment, model,
method and group, a different ``param_group.layers`` in each job's settings. The report finds such
jobs by those settings, so a map needs no file of its own; jobs without a layer range, or a group
swept over a single range, draw no map.

A layer's damage, for one measure, is how far the measure moved from the clean model in its direction
of decline (:mod:`degrade.analysis.stats.measures`), averaged over the damaged levels with each level
weighing the same. The clean value is the mean of the map's level-0 records (every layer's job ran the
same clean model). A map needs no level 0 to rank its layers: the clean value is the same for every
layer, so the mean over the damaged levels orders them alike (``layers.md`` then shows that mean).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from degrade.analysis.plots import axis_label  # noqa: E402
from degrade.analysis.stats.measures import Measure, measures_in, values  # noqa: E402
from degrade.methods import level_axis  # noqa: E402
from degrade.records.collect import SETTINGS  # noqa: E402

log = logging.getLogger(__name__)

MAP = ["experiment", "model_name", "degradation_method", "param_group_name"]
LAYERS = "param_group.layers"  # the settings key a job's layer range is read from
_COLOURS = {"higher": "RdYlGn", "lower": "RdYlGn_r", "either": "viridis"}  # red is worse, where worse is known


def with_layers(df: pd.DataFrame, settings: dict[str, dict] | None) -> pd.DataFrame:
    """The records of jobs that damaged a layer range, with ``first_layer`` and ``layers`` (``"3"``, ``"0–2"``)."""
    ranges = {h: s.get(LAYERS) for h, s in (settings or {}).items() if isinstance(s.get(LAYERS), list)}
    if SETTINGS not in df or not ranges:
        return df.iloc[:0].assign(first_layer=pd.Series(dtype="int64"), layers=pd.Series(dtype=object))
    picked = df[df[SETTINGS].isin(list(ranges))]
    start = picked[SETTINGS].map(lambda h: int(ranges[h][0]))
    stop = picked[SETTINGS].map(lambda h: int(ranges[h][1]))
    label = [str(a) if b - a == 1 else f"{a}–{b - 1}" for a, b in zip(start, stop)]
    return picked.assign(first_layer=start, layers=label)


def maps(df: pd.DataFrame, settings: dict[str, dict] | None) -> dict[tuple, pd.DataFrame]:
    """The layer maps in ``df``: records by (experiment, model, method, group) where two layer ranges or more ran."""
    layered = with_layers(df, settings)
    return {key: part for key, part in layered.groupby(MAP, sort=False, dropna=False) if part["layers"].nunique() > 1}


def grid(part: pd.DataFrame, measure: Measure) -> pd.DataFrame:
    """The mean of ``measure`` per layer range (rows, by first layer) and level (columns, in damage order)."""
    axis = level_axis(part["degradation_method"].iloc[0])
    frame = part.assign(_value=values(part, measure))
    table = frame.pivot_table(index=["first_layer", "layers"], columns="level_value", values="_value", aggfunc="mean")
    table = table.droplevel("first_layer").reindex(columns=sorted(table.columns, key=axis.damage_order))
    return table.dropna(how="all")


def ranking(part: pd.DataFrame, measure: Measure) -> pd.DataFrame:
    """The layer ranges by the damage ``measure`` shows, most first: ``layers``, ``mean``, ``damage``, ``rank``.

    ``mean`` is over the damaged levels, each weighing the same; ``damage`` is its change from the clean
    level in the measure's direction of decline, NaN when the map has no level-0 record. Without one, the
    order is the same (every layer shares the clean model), taken from the mean; a measure with no good
    direction then has no order, and no rows.
    """
    table = grid(part, measure)
    mean = table[[c for c in table.columns if c != 0]].mean(axis=1)
    clean = values(part[part["level_value"] == 0], measure).mean()
    if np.isnan(clean) and measure.better == "either":
        return pd.DataFrame(columns=["layers", "mean", "damage", "rank"])
    change = mean - (0.0 if np.isnan(clean) else clean)
    score = {"higher": -change, "lower": change, "either": change.abs()}[measure.better]
    order = score.sort_values(ascending=False, kind="stable").index
    damage = score if not np.isnan(clean) else score * np.nan
    ranked = pd.DataFrame({"layers": order, "mean": mean[order].to_numpy(), "damage": damage[order].to_numpy() + 0.0})
    return ranked.assign(rank=range(1, len(ranked) + 1))


def figure(part: pd.DataFrame, measures: list[Measure]) -> plt.Figure:
    """One heatmap per measure: a row per layer range, a column per level, each cell its mean (written in it)."""
    method = part["degradation_method"].iloc[0]
    tables = [grid(part, m) for m in measures]
    cols = min(4, len(measures))
    rows = -(-len(measures) // cols)
    height = 1.6 + 0.24 * max(len(t) for t in tables)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, height * rows), squeeze=False)
    for ax, measure, table in zip(axes.flat, measures, tables):
        image = ax.imshow(table.to_numpy(dtype=float), aspect="auto", cmap=_COLOURS[measure.better])
        ax.set_xticks(range(len(table.columns)), [f"{v:g}" for v in table.columns], fontsize=7)
        ax.set_yticks(range(len(table.index)), table.index, fontsize=6 if len(table) > 12 else 8)
        ax.set_title(
            f"{measure.label} ({'either way' if measure.better == 'either' else measure.better + ' is better'})"
        )
        ax.set_xlabel(axis_label(method), fontsize=7)
        ax.set_ylabel("layer", fontsize=8)
        if table.size <= 400:  # few cells: the value itself, small, as a table would give it
            for (i, j), value in np.ndenumerate(table.to_numpy(dtype=float)):
                if not np.isnan(value):
                    ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=5)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    for ax in list(axes.flat)[len(measures) :]:
        ax.axis("off")
    fig.suptitle(" / ".join(str(v) for v in part[MAP].iloc[0]) + ": one layer range damaged per job")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the title above the panels
    return fig


def _stem(key: tuple) -> str:
    return "layers_" + re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(str(k) for k in (key[0], *key[2:])))


def write_layer_maps(df: pd.DataFrame, out_dir: Path, settings: dict[str, dict] | None = None) -> list[Path]:
    """For each layer map among ``df``: a PNG of heatmaps, and the layer ranking in ``layers.md`` and ``layers.csv``.

    Args:
        df: Records, as :func:`degrade.records.collect.collect` returns them.
        out_dir: The report dir.
        settings: ``{settings_hash: settings}``, as :func:`degrade.records.collect.read_settings` returns them.

    Returns:
        The PNGs written (none when no sweep damaged one layer range per job).
    """
    found = maps(df, settings)
    written, ranks, lines = [], [], ["# Layer maps", ""]
    for key, part in found.items():
        measures = measures_in(part)
        if not measures:
            continue
        fig = figure(part, measures)
        path = Path(out_dir) / f"{_stem(key)}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
        clean = bool((part["level_value"] == 0).any())
        what = "damage: the change from level 0" if clean else "no level 0: the mean over the damaged levels"
        lines += [f"## {' / '.join(str(k) for k in key)}", "", f"| measure | layers, most damaged first ({what}) |"]
        lines.append("|---|---|")
        for measure in measures:
            ranked = ranking(part, measure)
            if ranked.empty:
                continue
            ranks.append(ranked.assign(**dict(zip(MAP, key)), measure=measure.column))
            shown = ", ".join(f"{r.layers} ({r.damage if clean else r.mean:.3g})" for r in ranked.itertuples())
            lines.append(f"| {measure.label} | {shown} |")
        lines.append("")
    if ranks:
        pd.concat(ranks)[[*MAP, "measure", "rank", "layers", "damage"]].to_csv(
            Path(out_dir) / "layers.csv", index=False
        )
        (Path(out_dir) / "layers.md").write_text("\n".join(lines), encoding="utf-8")
        log.info("layer maps: %d (%s), the ranking in layers.md", len(written), ", ".join(p.name for p in written))
    return written
