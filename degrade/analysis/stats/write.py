"""Write the statistics beside the report: ``stats.csv``, ``stats.md`` and a page of plots per experiment."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from degrade.analysis.stats.analysis import ANALYSES, Analysis
from degrade.analysis.stats.effects import N_BOOT
from degrade.analysis.stats.figures import breaking_figure, file_stem, normalised_figure
from degrade.analysis.stats.markdown import render, shown
from degrade.analysis.stats.table import level_stats
from degrade.search.files import Found

log = logging.getLogger(__name__)


def write_stats(
    records: pd.DataFrame,
    out_dir: Path,
    labels: dict | None = None,
    *,
    found: Sequence[Found] = (),
    seed: int = 0,
    n_boot: int = N_BOOT,
    how: Analysis = ANALYSES["default"],
) -> dict[str, Path | list[Path]]:
    """Compute the statistics of ``records`` and write them into ``out_dir``.

    Args:
        records: Records, as :func:`degrade.records.collect.collect` returns them.
        out_dir: The report dir (created if missing).
        labels: ``{settings_hash: label}`` of jobs whose settings differ
            (:func:`degrade.analysis.report.split_settings`): a ``settings`` column tells them apart.
        found: Breaking points found by search (:func:`degrade.search.files.read_answers`): listed
            in ``stats.md`` and marked on the ``breaking_`` page.
        seed: Seeds the bootstrap.
        n_boot: Bootstrap resamples per level.
        how: The analysis (:data:`degrade.analysis.stats.analysis.ANALYSES`); ``stats.md`` says which.

    Returns:
        ``{"stats_csv": ..., "stats_md": ..., "stats_plots": [...]}``, the paths written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = labels or {}
    stats = level_stats(records, seed=seed, n_boot=n_boot, how=how)
    paths: dict[str, Path | list[Path]] = {"stats_csv": out_dir / "stats.csv", "stats_md": out_dir / "stats.md"}
    shown(stats, labels).to_csv(paths["stats_csv"], index=False)
    paths["stats_md"].write_text(render(stats, labels, n_boot, seed, found, how), encoding="utf-8")
    plots = []
    for experiment in dict.fromkeys(stats["experiment"]):
        for name, draw in (("breaking", partial(breaking_figure, found=found)), ("normalised", normalised_figure)):
            fig = draw(stats, experiment, labels)
            path = out_dir / f"{name}_{file_stem(experiment)}.png"
            fig.savefig(path, dpi=90)
            plt.close(fig)
            plots.append(path)
    paths["stats_plots"] = plots
    reached = stats.drop_duplicates(["experiment", "degradation_method", "param_group_name", "measure"])
    log.info(
        "stats: %d measures × lines, %d with a critical level → %s",
        len(reached),
        int(reached["critical_level"].notna().sum()),
        paths["stats_md"],
    )
    return paths
