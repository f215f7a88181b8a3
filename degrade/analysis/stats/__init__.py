"""The study's statistics: bootstrap means, effect sizes against the clean model, critical levels, trends.

:func:`write_stats` writes them beside the report; :func:`level_stats` returns the table.
Which way each measure declines is the registry's (:mod:`degrade.scoring.measures`); the two analyses,
``default`` and the thesis's ``study``, are :mod:`degrade.analysis.stats.analysis`.
"""

from degrade.analysis.stats.analysis import ANALYSES, Analysis, analysis
from degrade.analysis.stats.effects import (
    THRESHOLD,
    cohens_d,
    critical_level,
    nested_bootstrap,
    spearman_decline,
    spearman_of_means,
)
from degrade.analysis.stats.measures import MEASURES, Measure, measures_in
from degrade.analysis.stats.table import critical_table, level_stats, ranking
from degrade.analysis.stats.write import write_stats

__all__ = [
    "ANALYSES",
    "Analysis",
    "MEASURES",
    "THRESHOLD",
    "Measure",
    "analysis",
    "cohens_d",
    "critical_level",
    "critical_table",
    "level_stats",
    "measures_in",
    "nested_bootstrap",
    "ranking",
    "spearman_decline",
    "spearman_of_means",
    "write_stats",
]
