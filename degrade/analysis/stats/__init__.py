"""The study's statistics: bootstrap means, effect sizes against the clean model, critical levels, trends.

:func:`write_stats` writes them beside the report; :func:`level_stats` returns the table.
The measures and which way each declines are declared in :mod:`degrade.analysis.stats.measures`.
"""

from degrade.analysis.stats.effects import THRESHOLD, cohens_d, critical_level, nested_bootstrap, spearman_decline
from degrade.analysis.stats.measures import MEASURES, Measure, measures_in
from degrade.analysis.stats.table import critical_table, level_stats, ranking
from degrade.analysis.stats.write import write_stats

__all__ = [
    "MEASURES",
    "THRESHOLD",
    "Measure",
    "cohens_d",
    "critical_level",
    "critical_table",
    "level_stats",
    "measures_in",
    "nested_bootstrap",
    "ranking",
    "spearman_decline",
    "write_stats",
]
