"""The two analyses the report can run: ``default`` (as documented since the report had statistics) and ``study``.

``study`` is the thesis's own analysis: Cohen's d signed in the direction of damage, so a measure that
moved its better way never breaks; the critical level where that d first reaches 0.8, the crossing
interpolated linearly in the level's own unit (the thesis's "interpolación lineal", σ, p or n alike);
Spearman's ρ between the order of damage and the per-level means (its table 4.2), with the exact p of
the permutation distribution when a line has at most 9 levels. ``default`` keeps |d|, the crossing in log
level on a log axis (uni_quant's), and Spearman over every record. Both take d over records (the pooled
SD of the records of the two levels), not over repetition means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from degrade.errors import DegradeError
from degrade.scoring.measures import Better


@dataclass(frozen=True)
class Analysis:
    """How the statistics read effects, crossings and trends.

    Attributes:
        name: ``default`` or ``study``.
        damage_signed: d is (M_clean − M_damaged) / SD for a higher-is-better measure (mirrored for
            lower-is-better, |d| for one with no better direction), and breaks at d ≥ 0.8; else |d| ≥ 0.8
            breaks and the table's d is (M_damaged − M_clean) / SD.
        trend_of_means: Spearman over the per-level means (exact p up to 9 levels), else over every record.
        log_crossing: on a log axis the crossing is interpolated in log level, else in the level's own unit.
        summary: The paragraph of ``stats.md`` that says which analysis it is.
    """

    name: str
    damage_signed: bool
    trend_of_means: bool
    log_crossing: bool
    summary: str


ANALYSES = {
    "default": Analysis(
        "default",
        damage_signed=False,
        trend_of_means=False,
        log_crossing=True,
        summary=(
            "Analysis: **default**. d = (M_level − M_clean) / SD_pooled over records; a level breaks when |d| ≥ 0.8, "
            "whichever way the measure moved. The crossing is interpolated linearly between the two levels around "
            "it, in the logarithm of the level on a method whose axis is log. Spearman's ρ is over every record, "
            "against the order of damage. `--stats study` gives the thesis's analysis."
        ),
    ),
    "study": Analysis(
        "study",
        damage_signed=True,
        trend_of_means=True,
        log_crossing=False,
        summary=(
            "Analysis: **study**, as the thesis did it. d is signed in the direction of damage: "
            "d = (M_clean − M_level) / SD_pooled for a measure where higher is better, (M_level − M_clean) / "
            "SD_pooled where lower is better, |M_level − M_clean| / SD_pooled where neither is; a level breaks "
            "when d ≥ 0.8, so a measure that moved its better way never breaks. The crossing is interpolated "
            "linearly between the two levels around it, in the level's own unit (σ, p or n). Spearman's ρ is "
            "between the order of damage and the per-level means (the clean level among them), its p exact "
            "(every permutation of the means) for up to 9 levels, from the t distribution above."
        ),
    ),
}
UNIT_OF_D = (
    "The unit of d is the record: SD_pooled is the pooled standard deviation of the records (prompts × "
    "repetitions) of the two levels, not of repetition means."
)


def analysis(name: str) -> Analysis:
    """The analysis called ``name``.

    Raises:
        DegradeError: an unknown name (the line names the allowed ones).
    """
    if name not in ANALYSES:
        raise DegradeError(f"--stats {name}: unknown analysis; allowed: {', '.join(ANALYSES)}")
    return ANALYSES[name]


def damage_effect(d: float | np.ndarray, better: Better) -> float | np.ndarray:
    """d = (M_level − M_clean) / SD turned to point the way of damage: positive is a decline."""
    if better == "higher":
        return -d
    if better == "lower":
        return d
    return np.abs(d) if isinstance(d, np.ndarray) else abs(d)
