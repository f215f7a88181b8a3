"""Effect sizes against the clean model, their bootstrap intervals, the critical level and the trend test.

The study's analysis: Cohen's d of every level against level 0 (pooled standard deviation),
the first level where d reaches 0.8 (|d|, or d signed in the direction of damage: the two analyses of
:mod:`degrade.analysis.stats.analysis`), and a one-sided Spearman test of the measure against the
damage, over every record or over the per-level means. Confidence intervals come from a bootstrap that
resamples as the design nests the records: repetitions first, then the records (prompts) within each
drawn repetition.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from degrade.methods import LevelAxis

THRESHOLD = 0.8  # the study's threshold on d: a large effect
CONFIDENCE = 0.95
N_BOOT = 2000


@dataclass(frozen=True)
class Draws:
    """Bootstrap draws of one level's records: the mean, standard deviation and size of each resample."""

    mean: np.ndarray
    sd: np.ndarray
    n: np.ndarray


def nested_bootstrap(values: np.ndarray, groups: np.ndarray, rng: np.random.Generator, n_boot: int = N_BOOT) -> Draws:
    """Resample repetitions with replacement, then the records within each drawn repetition.

    Args:
        values: One level's measure, one value per record (no nulls).
        groups: The repetition of each record.
        rng: The seeded generator every draw comes from.
        n_boot: How many resamples.

    Returns:
        The mean, standard deviation (ddof 1; NaN for a single record) and size of every resample.
    """
    reps = [values[groups == g] for g in dict.fromkeys(groups.tolist())]
    counts = np.array([len(r) for r in reps])
    padded = np.full((len(reps), counts.max()), np.nan)
    for i, rep in enumerate(reps):
        padded[i, : len(rep)] = rep
    chosen = rng.integers(0, len(reps), size=(n_boot, len(reps)))  # repetitions, with replacement
    within = (rng.random((n_boot, len(reps), counts.max())) * counts[chosen][..., None]).astype(int)
    drawn = padded[chosen[..., None], within]
    keep = np.arange(counts.max()) < counts[chosen][..., None]  # a drawn repetition keeps its own size
    n = keep.sum(axis=(1, 2))
    total = np.where(keep, drawn, 0.0).sum(axis=(1, 2))
    mean = total / n
    squares = np.where(keep, (drawn - mean[:, None, None]) ** 2, 0.0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(squares / (n - 1))
    return Draws(mean, sd, n)


def cohens_d(mean: float, sd: float, n: int, mean0: float, sd0: float, n0: int) -> float:
    """Cohen's d of a level against the clean level: (mean − mean0) / pooled SD.

    Equal means give 0 even with no spread; different means with no spread give ±inf; fewer than
    two records in all give NaN.
    """
    return float(cohens_d_array(np.array([mean]), np.array([sd]), np.array([n]), mean0, sd0, n0)[0])


def cohens_d_array(mean, sd, n, mean0, sd0, n0) -> np.ndarray:
    """:func:`cohens_d` over arrays (bootstrap draws), elementwise."""
    mean, sd, n, mean0, sd0, n0 = (np.asarray(a, dtype=float) for a in (mean, sd, n, mean0, sd0, n0))
    dof = n + n0 - 2
    var = (np.where(n > 1, (n - 1) * sd**2, 0.0) + np.where(n0 > 1, (n0 - 1) * sd0**2, 0.0)) / np.where(dof > 0, dof, 1)
    diff = mean - mean0
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(var > 0, diff / np.sqrt(var), np.where(diff == 0, 0.0, np.sign(diff) * np.inf))
    return np.where(dof > 0, d, np.nan)


def interval(draws: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile interval of bootstrap draws (NaN draws left out; NaN when none is finite)."""
    finite = draws[~np.isnan(draws)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def critical_level(
    levels: Sequence[float],
    effects: Sequence[float],
    axis: LevelAxis,
    *,
    signed: bool = False,
    log_crossing: bool = True,
) -> tuple[float, str]:
    """The first level, in order of damage, at which the effect reaches 0.8, interpolated between the levels around it.

    The effect is |d| (``signed=False``: a change either way breaks), or d itself when it is already signed
    in the direction of damage (``signed=True``, :func:`degrade.analysis.stats.analysis.damage_effect`: a
    measure that moved its better way never breaks). The crossing is interpolated linearly on the method's
    axis: in the level on a linear axis, in its logarithm on a log axis when ``log_crossing`` (levels that
    span orders of magnitude, as the plots draw them), else in the level's own unit.

    Args:
        levels: The levels, the clean level 0 among them, in any order.
        effects: Cohen's d of each level against level 0 (NaN where it is unknown).
        axis: The method's level axis (:func:`degrade.methods.level_axis`).
        signed: Compare d itself with the threshold, not |d|.
        log_crossing: Interpolate in log level on a log axis.

    Returns:
        The critical level (NaN when there is none) and how it was found: ``interpolated``;
        ``first damaged level`` (reached at once, and the clean level has no place on the axis to
        interpolate from: a log axis, or one where a larger level is less damage); ``no spread``
        (the effect infinite: the two levels differ without any spread); ``not reached``; ``no clean level``.
    """
    pairs = sorted(zip(levels, effects), key=lambda p: axis.damage_order(p[0]))
    if not pairs or pairs[0][0] != 0:
        return math.nan, "no clean level"
    prev_x, prev_e = 0.0, 0.0
    for x, d in pairs[1:]:
        if math.isnan(d):
            continue
        e = d if signed else abs(d)
        if e < THRESHOLD:
            prev_x, prev_e = x, e
            continue
        if math.isinf(e):
            return x, "no spread"
        if prev_x == 0 and (axis.log or not axis.damage_grows_with_level):
            return x, "first damaged level"
        t = (THRESHOLD - prev_e) / (e - prev_e)
        if axis.log and log_crossing:
            return math.exp(math.log(prev_x) + t * (math.log(x) - math.log(prev_x))), "interpolated"
        return prev_x + t * (x - prev_x), "interpolated"
    return math.nan, "not reached"


def spearman_decline(damage_rank: np.ndarray, values: np.ndarray, better: str) -> tuple[float, float]:
    """Spearman's ρ of the measure against the damage, and its p-value one-sided in the direction of decline.

    A measure where higher is better declines when ρ < 0; one where lower is better, when ρ > 0; for
    one with no good direction the test is two-sided.

    Returns:
        (ρ, p); both NaN when either side is constant or there are fewer than three values.
    """
    if len(values) < 3 or np.ptp(values) == 0 or np.ptp(damage_rank) == 0:
        return math.nan, math.nan
    alternative = {"higher": "less", "lower": "greater", "either": "two-sided"}[better]
    result = scipy_stats.spearmanr(damage_rank, values, alternative=alternative)
    return float(result.statistic), float(result.pvalue)


EXACT_UP_TO = 9  # levels: every permutation of at most 9 means (362 880) is enumerated; beyond, the t distribution
_PERMUTATIONS: dict[int, np.ndarray] = {}


def spearman_of_means(damage_rank: np.ndarray, means: np.ndarray, better: str) -> tuple[float, float]:
    """Spearman's ρ between the order of damage and the per-level means, p one-sided in the direction of decline.

    With at most :data:`EXACT_UP_TO` levels the p-value is exact: the share of the permutations of the
    means whose ρ is at least as far in the direction of decline (four means in perfect decline: 1/24).
    Beyond, it is :func:`scipy.stats.spearmanr`'s (the t distribution). Two-sided for a measure with no
    better direction.

    Returns:
        (ρ, p); both NaN when either side is constant or there are fewer than three levels.
    """
    n = len(means)
    if n < 3 or np.ptp(means) == 0 or np.ptp(damage_rank) == 0:
        return math.nan, math.nan
    alternative = {"higher": "less", "lower": "greater", "either": "two-sided"}[better]
    if n > EXACT_UP_TO:
        result = scipy_stats.spearmanr(damage_rank, means, alternative=alternative)
        return float(result.statistic), float(result.pvalue)
    x, y = (scipy_stats.rankdata(v) for v in (damage_rank, means))
    rho = _rho(x, y[None, :])[0]
    if n not in _PERMUTATIONS:
        _PERMUTATIONS[n] = np.array(list(itertools.permutations(range(n))), dtype=np.int8)
    null = _rho(x, y[_PERMUTATIONS[n]])
    tolerance = 1e-12  # ties of ρ computed two ways
    if alternative == "less":
        p = np.mean(null <= rho + tolerance)
    elif alternative == "greater":
        p = np.mean(null >= rho - tolerance)
    else:
        p = np.mean(np.abs(null) >= abs(rho) - tolerance)
    return float(rho), float(p)


def _rho(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Pearson's r of the ranks ``x`` with each row of ranks ``ys``: Spearman's ρ, ties as average ranks."""
    xc = x - x.mean()
    yc = ys - ys.mean(axis=1, keepdims=True)
    return (yc @ xc) / np.sqrt((xc @ xc) * (yc * yc).sum(axis=1))
